//! websockify token files: `token: host:port` per line, reloaded when the file changes.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
    time::SystemTime,
};

use crate::{error::Error, sync::lock, target::Target};

/// Parses the text of a token file: one `token: target` per line (`target` as accepted by
/// [`Target::parse`], so `host:port`, `tcp://`, `tls://`, `ws://`, `wss://`); blank lines and
/// lines starting with `#` are skipped. Returns the map and the numbers of the lines that
/// could not be parsed (1-based).
#[must_use]
pub fn parse_token_file(text: &str) -> (HashMap<String, Target>, Vec<usize>) {
    let mut map = HashMap::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(token, target)| {
            let token = token.trim();
            if token.is_empty() {
                return None;
            }
            Target::parse(target.trim())
                .ok()
                .map(|t| (token.to_owned(), t))
        });
        match parsed {
            Some((token, target)) => {
                map.insert(token, target);
            }
            None => bad.push(i + 1),
        }
    }
    (map, bad)
}

/// Which version of the file the cache holds.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

struct Cache {
    stamp: Option<Stamp>,
    map: HashMap<String, Target>,
}

/// A token file and its parsed contents, re-read when its modification time or size changes.
pub(crate) struct TokenFile {
    path: PathBuf,
    cache: Mutex<Cache>,
}

impl TokenFile {
    /// Reads the file once (it must be readable at start).
    pub(crate) fn open(path: &Path) -> Result<Self, Error> {
        let file = Self {
            path: path.to_owned(),
            cache: Mutex::new(Cache {
                stamp: None,
                map: HashMap::new(),
            }),
        };
        file.refresh().map_err(|source| Error::TokenFile {
            path: path.to_owned(),
            source,
        })?;
        Ok(file)
    }

    fn refresh(&self) -> std::io::Result<()> {
        let meta = std::fs::metadata(&self.path)?;
        let stamp = Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
        };
        if lock(&self.cache).stamp == Some(stamp) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path)?;
        let (map, bad) = parse_token_file(&text);
        if !bad.is_empty() {
            tracing::warn!(path = %self.path.display(), lines = ?bad, "token file: lines ignored");
        }
        let mut cache = lock(&self.cache);
        cache.stamp = Some(stamp);
        cache.map = map;
        Ok(())
    }

    /// The target of `token`, after re-reading the file if it changed. When the file cannot
    /// be read the last good contents are used.
    pub(crate) fn lookup(&self, token: &str) -> Option<Target> {
        if let Err(e) = self.refresh() {
            tracing::warn!(path = %self.path.display(), error = %e, "token file unreadable");
        }
        lock(&self.cache).map.get(token).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websockify_format() {
        let text = "# comment\n\nvnc1: 127.0.0.1:5901\n  vnc2 :  host.example:5902  \n\
                    secure: tls://db.internal:5433\nbroken line\nempty:\nws: ws://127.0.0.1:9/x\n";
        let (map, bad) = parse_token_file(text);
        assert_eq!(bad, vec![6, 7]);
        assert_eq!(map.len(), 4);
        assert_eq!(map["vnc1"].to_string(), "tcp://127.0.0.1:5901");
        assert_eq!(map["vnc2"].to_string(), "tcp://host.example:5902");
        assert_eq!(map["secure"].to_string(), "tls://db.internal:5433");
        assert!(map["ws"].is_websocket());
    }

    #[test]
    fn reloads_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "a: 127.0.0.1:1\n").unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert!(file.lookup("a").is_some());
        assert!(file.lookup("b").is_none());
        // A different size is noticed even when the mtime granularity is coarse.
        std::fs::write(&path, "b: 127.0.0.1:22\n# more\n").unwrap();
        assert!(file.lookup("a").is_none());
        assert_eq!(file.lookup("b").unwrap().to_string(), "tcp://127.0.0.1:22");
        std::fs::remove_file(&path).unwrap();
        assert!(file.lookup("b").is_some(), "last good contents kept");
        assert!(TokenFile::open(&dir.path().join("missing")).is_err());
    }
}
