//! The save directory: finished files at its top, partial files and their metadata in
//! `.partial/` (WebSocket transfers) and `.tus/` (tus uploads). Everything needed to resume
//! lives on disk, so it survives a restart; the stored offset is the partial file's length.

use std::{
    fs,
    io::{self, Write as _},
    path::{Path, PathBuf},
};

use crate::{
    error::{Code, Error},
    name::{check_name, numbered},
    receiver::Partial,
    sender::OfferInfo,
    wire::{FileId, QoS},
};

/// Metadata kept beside a partial file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Meta {
    /// The offer (name, size, QoS, channel, data) as first received.
    pub info: OfferInfo,
    /// Chunk size of the first offer.
    pub chunk: u32,
    /// Seconds since the Unix epoch when the transfer started.
    pub created: u64,
    /// tus only: when the upload expires (seconds since the epoch).
    pub expires: Option<u64>,
    /// tus only: the raw `Upload-Metadata` header.
    pub tus_metadata: Option<String>,
    /// tus only: the upload is complete and moved into the save directory (the metadata stays
    /// as a tombstone so that `HEAD` still answers until it expires).
    pub done: bool,
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Meta {
    /// Metadata for a new partial file of `info` sent in `chunk`-byte chunks, created at
    /// `created` (seconds since the epoch).
    #[must_use]
    pub fn new(info: OfferInfo, chunk: u32, created: u64) -> Self {
        Self {
            info,
            chunk,
            created,
            expires: None,
            tus_metadata: None,
            done: false,
        }
    }

    fn encode(&self) -> String {
        let mut s = format!(
            "wskit-files-meta 1\nname={}\nsize={}\nchunk={}\nqos={}\nchannel={}\ndata={}\ncreated={}\n",
            escape(&self.info.name),
            self.info.size,
            self.chunk,
            self.info.qos as u8,
            escape(&self.info.channel),
            escape(&self.info.data),
            self.created
        );
        if let Some(e) = self.expires {
            s.push_str(&format!("expires={e}\n"));
        }
        if let Some(m) = &self.tus_metadata {
            s.push_str(&format!("tus_metadata={}\n", escape(m)));
        }
        if self.done {
            s.push_str("done=1\n");
        }
        s
    }

    fn decode(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        if lines.next()? != "wskit-files-meta 1" {
            return None;
        }
        let mut m = Self {
            info: OfferInfo::new(String::new(), 0, QoS::AtMostOnce),
            chunk: 0,
            created: 0,
            expires: None,
            tus_metadata: None,
            done: false,
        };
        for line in lines {
            let (k, v) = line.split_once('=')?;
            match k {
                "name" => m.info.name = unescape(v),
                "size" => m.info.size = v.parse().ok()?,
                "chunk" => m.chunk = v.parse().ok()?,
                "qos" => m.info.qos = QoS::from_u8(v.parse().ok()?)?,
                "channel" => m.info.channel = unescape(v),
                "data" => m.info.data = unescape(v),
                "created" => m.created = v.parse().ok()?,
                "expires" => m.expires = Some(v.parse().ok()?),
                "tus_metadata" => m.tus_metadata = Some(unescape(v)),
                "done" => m.done = v == "1",
                _ => {}
            }
        }
        Some(m)
    }
}

/// Which area of the store a partial file belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Area {
    Ws,
    Tus,
}

/// A save directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (and creates) `dir` with its `.partial/` and `.tus/` subdirectories.
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be created.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        fs::create_dir_all(dir.join(".partial"))?;
        fs::create_dir_all(dir.join(".tus"))?;
        Ok(Self { dir })
    }

    /// The save directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn area(&self, area: Area) -> PathBuf {
        self.dir.join(match area {
            Area::Ws => ".partial",
            Area::Tus => ".tus",
        })
    }

    /// Path of the partial file for `id`.
    #[must_use]
    pub fn part_path(&self, id: FileId) -> PathBuf {
        self.part_in(Area::Ws, id)
    }

    pub(crate) fn part_in(&self, area: Area, id: FileId) -> PathBuf {
        self.area(area).join(format!("{}.part", id.to_hex()))
    }

    pub(crate) fn meta_in(&self, area: Area, id: FileId) -> PathBuf {
        self.area(area).join(format!("{}.meta", id.to_hex()))
    }

    /// What the store holds for `id`: its metadata and the partial state (the stored offset is
    /// the partial file's length).
    ///
    /// # Errors
    /// [`Error::Io`] other than "not found".
    pub fn lookup(&self, id: FileId) -> Result<Option<(Meta, Partial)>, Error> {
        self.lookup_in(Area::Ws, id)
    }

    pub(crate) fn lookup_in(
        &self,
        area: Area,
        id: FileId,
    ) -> Result<Option<(Meta, Partial)>, Error> {
        let text = match fs::read_to_string(self.meta_in(area, id)) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(meta) = Meta::decode(&text) else {
            return Ok(None);
        };
        if meta.done {
            let partial = Partial::new(meta.info.name.clone(), meta.info.size, meta.info.size);
            return Ok(Some((meta, partial)));
        }
        let stored = match fs::metadata(self.part_in(area, id)) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let partial = Partial::new(meta.info.name.clone(), meta.info.size, stored);
        Ok(Some((meta, partial)))
    }

    /// Records a new partial file: the metadata (written to a temporary file, synced and
    /// renamed, so a crash never leaves half of it) and an empty `.part`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn create(&self, id: FileId, meta: &Meta) -> Result<(), Error> {
        self.create_in(Area::Ws, id, meta)
    }

    pub(crate) fn create_in(&self, area: Area, id: FileId, meta: &Meta) -> Result<(), Error> {
        let part = self.part_in(area, id);
        fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&part)?;
        self.write_meta(area, id, meta)
    }

    pub(crate) fn write_meta(&self, area: Area, id: FileId, meta: &Meta) -> Result<(), Error> {
        let path = self.meta_in(area, id);
        let tmp = path.with_extension("meta.tmp");
        let mut f = fs::File::create(&tmp)?;
        f.write_all(meta.encode().as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        Ok(())
    }

    /// Removes the partial file and metadata for `id` (missing files are fine).
    pub fn remove(&self, id: FileId) {
        self.remove_in(Area::Ws, id);
    }

    pub(crate) fn remove_in(&self, area: Area, id: FileId) {
        let _ = fs::remove_file(self.part_in(area, id));
        let _ = fs::remove_file(self.meta_in(area, id));
    }

    /// Moves the finished partial file into the save directory under `name` (or `name (n)`
    /// when taken and `overwrite` is off) and drops its metadata. Returns the final path.
    ///
    /// # Errors
    /// [`Error::Protocol`] with [`Code::InvalidName`] for a name that is not a bare file name;
    /// [`Error::Io`].
    pub fn finish(&self, id: FileId, name: &str, overwrite: bool) -> Result<PathBuf, Error> {
        self.finish_in(Area::Ws, id, name, overwrite)
    }

    pub(crate) fn finish_in(
        &self,
        area: Area,
        id: FileId,
        name: &str,
        overwrite: bool,
    ) -> Result<PathBuf, Error> {
        let target = self.move_part(area, id, name, overwrite)?;
        let _ = fs::remove_file(self.meta_in(area, id));
        Ok(target)
    }

    fn move_part(
        &self,
        area: Area,
        id: FileId,
        name: &str,
        overwrite: bool,
    ) -> Result<PathBuf, Error> {
        check_name(name)?;
        let part = self.part_in(area, id);
        let mut target = self.dir.join(name);
        if !overwrite {
            let mut n = 1;
            while target.exists() {
                n += 1;
                if n > 10_000 {
                    return Err(Error::proto(Code::Storage, "no free name left"));
                }
                target = self.dir.join(numbered(name, n));
            }
        }
        fs::rename(&part, &target)?;
        Ok(target)
    }

    /// Like [`Store::finish`], but the metadata stays, marked done.
    pub(crate) fn finish_kept(
        &self,
        area: Area,
        id: FileId,
        name: &str,
        overwrite: bool,
    ) -> Result<PathBuf, Error> {
        let Some((mut meta, _)) = self.lookup_in(area, id)? else {
            return Err(Error::proto(Code::UnknownFile, "no such upload"));
        };
        meta.done = true;
        self.write_meta(area, id, &meta)?;
        match self.move_part(area, id, name, overwrite) {
            Ok(p) => Ok(p),
            Err(e) => {
                meta.done = false;
                let _ = self.write_meta(area, id, &meta);
                Err(e)
            }
        }
    }

    /// Ids of the partial files in an area.
    pub(crate) fn ids_in(&self, area: Area) -> Vec<FileId> {
        let Ok(rd) = fs::read_dir(self.area(area)) else {
            return Vec::new();
        };
        rd.filter_map(|e| {
            let name = e.ok()?.file_name();
            let name = name.to_str()?;
            FileId::from_hex(name.strip_suffix(".meta")?)
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_with_awkward_text() {
        let mut info = OfferInfo::new("a=b.txt", 1 << 40, QoS::Pulled);
        info.channel = "x/y".into();
        info.data = "line1\nline2\\=".into();
        let m = Meta {
            info,
            chunk: 7,
            created: 99,
            expires: Some(5),
            tus_metadata: Some("filename YQ==".into()),
            done: true,
        };
        assert_eq!(Meta::decode(&m.encode()), Some(m));
    }

    #[test]
    fn a_partial_file_survives_reopening_and_finishes_under_a_free_name() {
        let dir = tempfile::tempdir().unwrap();
        let id = FileId([5; 16]);
        let store = Store::open(dir.path()).unwrap();
        let meta = Meta {
            info: OfferInfo::new("r.txt", 10, QoS::Acknowledged),
            chunk: 4,
            created: 1,
            expires: None,
            tus_metadata: None,
            done: false,
        };
        store.create(id, &meta).unwrap();
        fs::write(store.part_path(id), b"abcd").unwrap();
        let again = Store::open(dir.path()).unwrap();
        let (m, p) = again.lookup(id).unwrap().unwrap();
        assert_eq!(m, meta);
        assert_eq!(p, Partial::new("r.txt", 10, 4));
        fs::write(dir.path().join("r.txt"), b"old").unwrap();
        let path = again.finish(id, "r.txt", false).unwrap();
        assert_eq!(path, dir.path().join("r (2).txt"));
        assert_eq!(fs::read(&path).unwrap(), b"abcd");
        assert!(again.lookup(id).unwrap().is_none());
        assert!(again.finish(id, "../x", false).is_err());
    }
}
