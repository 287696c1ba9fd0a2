//! Where the metadata of partial files lives: the [`MetaStore`] trait, [`MemoryMeta`] (process
//! memory, lost at exit) and [`SqliteMeta`], the workspace's embedded store (SQLite through
//! rusqlite, bundled), which survives a restart. The partial files themselves stay on disk in
//! the save directory; the stored offset is always the partial file's length, never a number
//! in the metadata, so metadata and data cannot disagree about how much arrived.

#[cfg(feature = "sqlite")]
use std::path::{Path, PathBuf};
use std::{collections::HashMap, sync::Mutex};

use crate::{error::Error, sender::OfferInfo, wire::FileId};
#[cfg(feature = "sqlite")]
use crate::{name::check_name, wire::QoS};

/// Metadata kept for a partial file.
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
}

/// Which door a partial file belongs to: its own namespace of file ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Area {
    /// The files protocol over WebSocket (`.partial/`).
    Ws,
    /// tus uploads (`.tus/`).
    Tus,
}

impl Area {
    /// The name used in storage (`ws`, `tus`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ws => "ws",
            Self::Tus => "tus",
        }
    }
}

/// A place for partial files' metadata. [`SqliteMeta`] is the embedded default; another
/// backend (PostgreSQL, Redis) implements these five calls. Every call is short and blocking.
pub trait MetaStore: Send + Sync + std::fmt::Debug + 'static {
    /// The metadata of `id`, `None` when there is none.
    ///
    /// # Errors
    /// [`Error::Store`] when the backend fails or the stored row is unreadable (corrupt):
    /// the transfer is refused with that text rather than resumed on a guess.
    fn get(&self, area: Area, id: FileId) -> Result<Option<Meta>, Error>;

    /// Records (inserts or replaces) the metadata of `id`, durably before returning.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn put(&self, area: Area, id: FileId, meta: &Meta) -> Result<(), Error>;

    /// Forgets `id` (nothing to forget is fine).
    ///
    /// # Errors
    /// [`Error::Store`].
    fn remove(&self, area: Area, id: FileId) -> Result<(), Error>;

    /// Every id with metadata in `area`.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn ids(&self, area: Area) -> Result<Vec<FileId>, Error>;
}

/// Metadata in process memory: lost at exit, so nothing resumes after a restart (a partial
/// file without metadata starts over). For tests and for a receiver without a disk to spare.
#[derive(Debug, Default)]
pub struct MemoryMeta {
    rows: Mutex<HashMap<(Area, FileId), Meta>>,
}

impl MemoryMeta {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<(Area, FileId), Meta>> {
        self.rows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl MetaStore for MemoryMeta {
    fn get(&self, area: Area, id: FileId) -> Result<Option<Meta>, Error> {
        Ok(self.rows().get(&(area, id)).cloned())
    }

    fn put(&self, area: Area, id: FileId, meta: &Meta) -> Result<(), Error> {
        self.rows().insert((area, id), meta.clone());
        Ok(())
    }

    fn remove(&self, area: Area, id: FileId) -> Result<(), Error> {
        self.rows().remove(&(area, id));
        Ok(())
    }

    fn ids(&self, area: Area) -> Result<Vec<FileId>, Error> {
        Ok(self
            .rows()
            .keys()
            .filter(|(a, _)| *a == area)
            .map(|(_, id)| *id)
            .collect())
    }
}

/// The schema, one entry per version; `PRAGMA user_version` records how many ran.
#[cfg(feature = "sqlite")]
const MIGRATIONS: &[&str] = &["CREATE TABLE files_partial (
        area TEXT NOT NULL,
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        chunk INTEGER NOT NULL,
        qos INTEGER NOT NULL,
        channel TEXT NOT NULL,
        data TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER,
        tus_metadata TEXT,
        done INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (area, id)
    );"];

/// Partial files' metadata in SQLite (rusqlite, bundled: no system library), one table
/// `files_partial` with its migrations. Writes are committed (`synchronous = FULL`) before the
/// call returns.
#[cfg(feature = "sqlite")]
pub struct SqliteMeta {
    db: Mutex<rusqlite::Connection>,
    path: PathBuf,
}

#[cfg(feature = "sqlite")]
impl std::fmt::Debug for SqliteMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMeta")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "sqlite")]
fn db_error(path: &Path, what: &str, e: &rusqlite::Error) -> Error {
    Error::Store(format!(
        "the files metadata database {}: {what}: {e}",
        path.display()
    ))
}

#[cfg(feature = "sqlite")]
impl SqliteMeta {
    /// Opens (creating and migrating) the database at `path`.
    ///
    /// # Errors
    /// [`Error::Store`] when it cannot be opened, is not a database, or has a schema newer
    /// than this program's.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let db = rusqlite::Connection::open(&path).map_err(|e| db_error(&path, "opening", &e))?;
        let init = || -> rusqlite::Result<usize> {
            db.busy_timeout(std::time::Duration::from_secs(5))?;
            db.pragma_update(None, "synchronous", "FULL")?;
            let v: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
            Ok(usize::try_from(v).unwrap_or(0))
        };
        let version = init().map_err(|e| db_error(&path, "reading the schema version", &e))?;
        if version > MIGRATIONS.len() {
            return Err(Error::Store(format!(
                "the files metadata database {} has schema version {version}, newer than this \
                 program's {}: use a newer wskit or another save directory",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let run = || -> rusqlite::Result<()> {
                let tx = db.unchecked_transaction()?;
                tx.execute_batch(sql)?;
                tx.pragma_update(None, "user_version", (i + 1) as i64)?;
                tx.commit()
            };
            run().map_err(|e| db_error(&path, "migrating", &e))?;
        }
        Ok(Self {
            db: Mutex::new(db),
            path,
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn corrupt(&self, id: FileId, what: &str) -> Error {
        Error::Store(format!(
            "the metadata of partial file {id} in {} is corrupt ({what}); delete its row \
             (or the partial file) to start that transfer over",
            self.path.display()
        ))
    }
}

#[cfg(feature = "sqlite")]
fn to_i64(v: u64, what: &str) -> Result<i64, Error> {
    i64::try_from(v).map_err(|_| Error::Store(format!("{what} {v} does not fit the database")))
}

#[cfg(feature = "sqlite")]
impl MetaStore for SqliteMeta {
    fn get(&self, area: Area, id: FileId) -> Result<Option<Meta>, Error> {
        use rusqlite::OptionalExtension as _;
        type Row = (
            String,
            i64,
            i64,
            i64,
            String,
            String,
            i64,
            Option<i64>,
            Option<String>,
            i64,
        );
        let row: Option<Row> = self
            .db()
            .query_row(
                "SELECT name, size, chunk, qos, channel, data, created, expires, tus_metadata, done
                 FROM files_partial WHERE area = ?1 AND id = ?2",
                rusqlite::params![area.as_str(), id.to_hex()],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| match e {
                // A value of the wrong type in a column: a damaged row, not a broken database.
                rusqlite::Error::InvalidColumnType(..)
                | rusqlite::Error::FromSqlConversionFailure(..) => self.corrupt(id, &e.to_string()),
                e => db_error(&self.path, "reading", &e),
            })?;
        let Some((name, size, chunk, qos, channel, data, created, expires, tus_metadata, done)) =
            row
        else {
            return Ok(None);
        };
        let size = u64::try_from(size).map_err(|_| self.corrupt(id, "negative size"))?;
        let chunk = u32::try_from(chunk).map_err(|_| self.corrupt(id, "chunk out of range"))?;
        let qos = u8::try_from(qos)
            .ok()
            .and_then(QoS::from_u8)
            .ok_or_else(|| self.corrupt(id, &format!("QoS {qos}")))?;
        if check_name(&name).is_err() {
            return Err(self.corrupt(id, &format!("file name {name:?}")));
        }
        let created = u64::try_from(created).map_err(|_| self.corrupt(id, "negative time"))?;
        let expires = expires
            .map(u64::try_from)
            .transpose()
            .map_err(|_| self.corrupt(id, "negative expiry"))?;
        let mut info = OfferInfo::new(name, size, qos);
        info.channel = channel;
        info.data = data;
        Ok(Some(Meta {
            info,
            chunk,
            created,
            expires,
            tus_metadata,
            done: done != 0,
        }))
    }

    fn put(&self, area: Area, id: FileId, meta: &Meta) -> Result<(), Error> {
        let i = &meta.info;
        self.db()
            .execute(
                "INSERT OR REPLACE INTO files_partial
                 (area, id, name, size, chunk, qos, channel, data, created, expires, tus_metadata, done)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                rusqlite::params![
                    area.as_str(),
                    id.to_hex(),
                    i.name,
                    to_i64(i.size, "size")?,
                    i64::from(meta.chunk),
                    i64::from(i.qos as u8),
                    i.channel,
                    i.data,
                    to_i64(meta.created, "time")?,
                    meta.expires.map(|e| to_i64(e, "expiry")).transpose()?,
                    meta.tus_metadata,
                    i64::from(meta.done),
                ],
            )
            .map_err(|e| db_error(&self.path, "writing", &e))?;
        Ok(())
    }

    fn remove(&self, area: Area, id: FileId) -> Result<(), Error> {
        self.db()
            .execute(
                "DELETE FROM files_partial WHERE area = ?1 AND id = ?2",
                rusqlite::params![area.as_str(), id.to_hex()],
            )
            .map_err(|e| db_error(&self.path, "deleting", &e))?;
        Ok(())
    }

    fn ids(&self, area: Area) -> Result<Vec<FileId>, Error> {
        let db = self.db();
        let read = || -> rusqlite::Result<Vec<String>> {
            let mut st = db.prepare("SELECT id FROM files_partial WHERE area = ?1")?;
            let rows = st.query_map([area.as_str()], |r| r.get::<_, String>(0))?;
            rows.collect()
        };
        let ids = read().map_err(|e| db_error(&self.path, "listing", &e))?;
        Ok(ids.iter().filter_map(|s| FileId::from_hex(s)).collect())
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    fn meta() -> Meta {
        let mut info = OfferInfo::new("a=b.txt", 1 << 40, QoS::Pulled);
        info.channel = "x/y".into();
        info.data = "line1\nline2\\=".into();
        Meta {
            info,
            chunk: 7,
            created: 99,
            expires: Some(5),
            tus_metadata: Some("filename YQ==".into()),
            done: true,
        }
    }

    #[test]
    fn rows_round_trip_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let id = FileId([3; 16]);
        {
            let db = SqliteMeta::open(&path).unwrap();
            db.put(Area::Ws, id, &meta()).unwrap();
            db.put(
                Area::Tus,
                FileId([4; 16]),
                &Meta::new(OfferInfo::new("t", 1, QoS::AtMostOnce), 1, 2),
            )
            .unwrap();
        }
        let db = SqliteMeta::open(&path).unwrap();
        assert_eq!(db.get(Area::Ws, id).unwrap(), Some(meta()));
        assert_eq!(db.get(Area::Tus, id).unwrap(), None);
        assert_eq!(db.ids(Area::Ws).unwrap(), vec![id]);
        assert_eq!(db.ids(Area::Tus).unwrap(), vec![FileId([4; 16])]);
        db.remove(Area::Ws, id).unwrap();
        assert_eq!(db.get(Area::Ws, id).unwrap(), None);
    }

    #[test]
    fn a_corrupt_row_or_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let db = SqliteMeta::open(&path).unwrap();
        let id = FileId([3; 16]);
        for (sql, what) in [
            ("UPDATE files_partial SET qos = 9", "QoS 9"),
            ("UPDATE files_partial SET size = -1", "negative size"),
            ("UPDATE files_partial SET name = '../x'", "file name"),
            ("UPDATE files_partial SET size = 'many'", "corrupt"),
        ] {
            db.put(Area::Ws, id, &meta()).unwrap();
            db.db().execute_batch(sql).unwrap();
            let e = db.get(Area::Ws, id).unwrap_err();
            assert!(matches!(e, Error::Store(_)), "{e:?}");
            let text = e.to_string();
            assert!(text.contains(what) && text.contains(&id.to_hex()), "{text}");
        }
        drop(db);
        std::fs::write(
            &path,
            b"this is not a database, not at all, not even close....",
        )
        .unwrap();
        let e = SqliteMeta::open(&path).unwrap_err();
        assert!(e.to_string().contains("m.db"), "{e}");
    }
}
