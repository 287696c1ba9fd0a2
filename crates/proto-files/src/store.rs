//! The save directory: finished files at its top, partial files in `.partial/` (WebSocket
//! transfers) and `.tus/` (tus uploads), their metadata in a [`MetaStore`] (by default SQLite,
//! `.wskit-files.db` in the save directory). Everything needed to resume survives a restart;
//! the stored offset is the partial file's length.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
};

use crate::{
    error::{Code, Error},
    meta::{Area, Meta, MetaStore},
    name::{check_name, numbered},
    receiver::Partial,
    sender::OfferInfo,
    wire::{FileId, QoS},
};

/// The text metadata files (`<id>.meta`) of earlier versions: read once, moved into the
/// [`MetaStore`], deleted.
fn decode_legacy(text: &str) -> Option<Meta> {
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
    let mut lines = text.lines();
    if lines.next()? != "wskit-files-meta 1" {
        return None;
    }
    let mut m = Meta::new(OfferInfo::new(String::new(), 0, QoS::AtMostOnce), 0, 0);
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

/// A save directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    meta: Arc<dyn MetaStore>,
}

impl Store {
    /// The metadata database's file name inside the save directory.
    pub const DB_FILE: &'static str = ".wskit-files.db";

    /// Opens (and creates) `dir` with its `.partial/` and `.tus/` subdirectories and the
    /// metadata in SQLite at [`Store::DB_FILE`] inside it (without the `sqlite` feature: in
    /// memory, so nothing resumes after a restart).
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be created, [`Error::Store`] when the database
    /// cannot be opened.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        #[cfg(feature = "sqlite")]
        let meta: Arc<dyn MetaStore> =
            Arc::new(crate::meta::SqliteMeta::open(dir.join(Self::DB_FILE))?);
        #[cfg(not(feature = "sqlite"))]
        let meta: Arc<dyn MetaStore> = Arc::new(crate::meta::MemoryMeta::new());
        Self::with_meta(dir, meta)
    }

    /// Opens (and creates) `dir` with the metadata in `meta` (another backend, or
    /// [`crate::MemoryMeta`]). Text metadata files of earlier versions (`<id>.meta`) found in
    /// the areas are moved into `meta`.
    ///
    /// # Errors
    /// [`Error::Io`] when a directory cannot be created, [`Error::Store`].
    pub fn with_meta(dir: impl Into<PathBuf>, meta: Arc<dyn MetaStore>) -> Result<Self, Error> {
        let dir = dir.into();
        fs::create_dir_all(dir.join(".partial"))?;
        fs::create_dir_all(dir.join(".tus"))?;
        let store = Self { dir, meta };
        store.import_legacy()?;
        Ok(store)
    }

    fn import_legacy(&self) -> Result<(), Error> {
        for area in [Area::Ws, Area::Tus] {
            let Ok(rd) = fs::read_dir(self.area(area)) else {
                continue;
            };
            for e in rd.flatten() {
                let path = e.path();
                let Some(id) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".meta"))
                    .and_then(FileId::from_hex)
                else {
                    continue;
                };
                if let Some(m) = fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| decode_legacy(&t))
                {
                    self.meta.put(area, id, &m)?;
                }
                let _ = fs::remove_file(&path);
            }
        }
        Ok(())
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
        let Some(meta) = self.meta.get(area, id)? else {
            if self.part_in(area, id).exists() {
                tracing::warn!(
                    "files: partial file {id} has no metadata in the store; it starts over"
                );
            }
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

    /// Records a new partial file: an empty `.part`, then its metadata (committed before this
    /// returns).
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
        self.meta.put(area, id, meta)
    }

    /// Removes the partial file and metadata for `id` (missing files are fine).
    pub fn remove(&self, id: FileId) {
        self.remove_in(Area::Ws, id);
    }

    pub(crate) fn remove_in(&self, area: Area, id: FileId) {
        let _ = fs::remove_file(self.part_in(area, id));
        if let Err(e) = self.meta.remove(area, id) {
            tracing::warn!("files: forgetting partial file {id}: {e}");
        }
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
        if let Err(e) = self.meta.remove(area, id) {
            tracing::warn!("files: forgetting finished file {id}: {e}");
        }
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
        self.meta.ids(area).unwrap_or_else(|e| {
            tracing::warn!("files: listing partial files: {e}");
            Vec::new()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_text_metadata_moves_into_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let id = FileId([6; 16]);
        fs::create_dir_all(dir.path().join(".partial")).unwrap();
        fs::write(
            dir.path().join(".partial").join(format!("{}.meta", id.to_hex())),
            "wskit-files-meta 1\nname=r.txt\nsize=10\nchunk=4\nqos=1\nchannel=\ndata=a\\nb\ncreated=3\n",
        )
        .unwrap();
        fs::write(
            dir.path()
                .join(".partial")
                .join(format!("{}.part", id.to_hex())),
            b"abc",
        )
        .unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (m, p) = store.lookup(id).unwrap().unwrap();
        assert_eq!(m.info.data, "a\nb");
        assert_eq!(m.info.qos, QoS::Acknowledged);
        assert_eq!(p, Partial::new("r.txt", 10, 3));
        assert!(
            !dir.path()
                .join(".partial")
                .join(format!("{}.meta", id.to_hex()))
                .exists()
        );
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
