//! Session persistence: the changes a session asks to be made durable ([`StoreOp`]), what is
//! read back at start ([`Stored`]), the [`Store`] trait, and its SQLite implementation.
//!
//! The session core never writes anything itself: it hands out [`StoreOp`]s through
//! [`crate::session::Session::poll_store`], and the driver applies them **before** it
//! transmits the bytes produced in the same step, so a QoS 1/2 message is on disk before the
//! network sees it and an incoming QoS 2 id is on disk before its PUBREC goes out.
//!
//! Tables (schema version 1): `meta(key, value)` with the client id and protocol version,
//! `outgoing(pkid, seq, released, packet)` holding each message as its encoded PUBLISH,
//! `incoming(pkid)`, `subscriptions(filter, packet)` holding an encoded one-filter
//! SUBSCRIBE.

use std::path::Path;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::{error::Error, reason::Version};

/// One change to the durable session state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreOp {
    /// An outgoing QoS 1/2 message was accepted: its encoded PUBLISH (full topic, DUP clear).
    PutOutgoing {
        /// Packet identifier.
        pkid: u16,
        /// Order of acceptance.
        seq: u64,
        /// The encoded PUBLISH.
        packet: Bytes,
    },
    /// PUBREC arrived for this QoS 2 message: only PUBREL remains to be sent.
    Released {
        /// Packet identifier.
        pkid: u16,
    },
    /// The message is done (acknowledged, or dropped).
    RemoveOutgoing {
        /// Packet identifier.
        pkid: u16,
    },
    /// An incoming QoS 2 message was delivered; its id must be remembered until PUBREL.
    AddIncoming {
        /// Packet identifier.
        pkid: u16,
    },
    /// PUBREL arrived for this id.
    RemoveIncoming {
        /// Packet identifier.
        pkid: u16,
    },
    /// The server has no session: forget all incoming ids.
    ClearIncoming,
    /// The server granted a subscription: its encoded one-filter SUBSCRIBE.
    PutSubscription {
        /// The topic filter.
        filter: String,
        /// The encoded SUBSCRIBE.
        packet: Bytes,
    },
    /// The subscription was removed (UNSUBACK, or refused on resubscribe).
    RemoveSubscription {
        /// The topic filter.
        filter: String,
    },
}

/// Durable state read at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stored {
    /// `(pkid, seq, released, encoded PUBLISH)` in `seq` order.
    pub outgoing: Vec<(u16, u64, bool, Bytes)>,
    /// Incoming QoS 2 ids awaiting PUBREL.
    pub incoming: Vec<u16>,
    /// Encoded one-filter SUBSCRIBE packets.
    pub subscriptions: Vec<Bytes>,
}

/// Where a session's durable state lives. Another backend plugs in by implementing this.
pub trait Store: Send {
    /// Reads everything stored.
    ///
    /// # Errors
    /// The backend's failure.
    fn load(&mut self) -> Result<Stored, Error>;
    /// Applies `ops` atomically and durably, in order.
    ///
    /// # Errors
    /// The backend's failure.
    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), Error>;
}

/// The SQLite store (rusqlite with the bundled SQLite; WAL journal, synchronous FULL).
#[derive(Debug)]
pub struct SqliteStore {
    db: Connection,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` for `client_id` speaking `version`.
    ///
    /// # Errors
    /// [`Error::Store`] when SQLite fails; [`Error::StoreMismatch`] when the file holds the
    /// session of another client id or protocol version.
    pub fn open(path: &Path, client_id: &str, version: Version) -> Result<Self, Error> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS outgoing (pkid INTEGER PRIMARY KEY, seq INTEGER NOT NULL,
                 released INTEGER NOT NULL DEFAULT 0, packet BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS incoming (pkid INTEGER PRIMARY KEY);
             CREATE TABLE IF NOT EXISTS subscriptions (filter TEXT PRIMARY KEY, packet BLOB NOT NULL);",
        )?;
        let version = match version {
            Version::V311 => "3.1.1",
            Version::V5 => "5",
        };
        for (key, value) in [
            ("schema", "1"),
            ("client_id", client_id),
            ("version", version),
        ] {
            let old: Option<String> = db
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?;
            match old {
                Some(old) if old != value => {
                    return Err(Error::StoreMismatch(format!(
                        "{} holds {key} {old:?}, not {value:?}",
                        path.display()
                    )));
                }
                Some(_) => {}
                None => {
                    db.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        [key, value],
                    )?;
                }
            }
        }
        Ok(Self { db })
    }

    /// The client id recorded in the store at `path`, if the file exists and has one (so that a
    /// restarted client with a random id can resume its session).
    ///
    /// # Errors
    /// [`Error::Store`] when the file exists but cannot be read.
    pub fn stored_client_id(path: &Path) -> Result<Option<String>, Error> {
        if !path.exists() {
            return Ok(None);
        }
        let db = Connection::open(path)?;
        let has_meta: bool = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)?;
        if !has_meta {
            return Ok(None);
        }
        Ok(db
            .query_row("SELECT value FROM meta WHERE key = 'client_id'", [], |r| {
                r.get(0)
            })
            .optional()?)
    }
}

impl Store for SqliteStore {
    fn load(&mut self) -> Result<Stored, Error> {
        let mut out = Stored::default();
        let mut q = self
            .db
            .prepare("SELECT pkid, seq, released, packet FROM outgoing ORDER BY seq")?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, u16>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        for row in rows {
            let (pkid, seq, rel, packet) = row?;
            out.outgoing.push((
                pkid,
                u64::try_from(seq).unwrap_or(0),
                rel,
                Bytes::from(packet),
            ));
        }
        let mut q = self.db.prepare("SELECT pkid FROM incoming ORDER BY pkid")?;
        for id in q.query_map([], |r| r.get::<_, u16>(0))? {
            out.incoming.push(id?);
        }
        let mut q = self
            .db
            .prepare("SELECT packet FROM subscriptions ORDER BY filter")?;
        for p in q.query_map([], |r| r.get::<_, Vec<u8>>(0))? {
            out.subscriptions.push(Bytes::from(p?));
        }
        Ok(out)
    }

    fn apply(&mut self, ops: &[StoreOp]) -> Result<(), Error> {
        if ops.is_empty() {
            return Ok(());
        }
        let tx = self.db.transaction()?;
        for op in ops {
            match op {
                StoreOp::PutOutgoing { pkid, seq, packet } => {
                    tx.execute(
                        "INSERT OR REPLACE INTO outgoing (pkid, seq, released, packet) VALUES (?1, ?2, 0, ?3)",
                        params![pkid, i64::try_from(*seq).unwrap_or(i64::MAX), &packet[..]],
                    )?;
                }
                StoreOp::Released { pkid } => {
                    tx.execute("UPDATE outgoing SET released = 1 WHERE pkid = ?1", [pkid])?;
                }
                StoreOp::RemoveOutgoing { pkid } => {
                    tx.execute("DELETE FROM outgoing WHERE pkid = ?1", [pkid])?;
                }
                StoreOp::AddIncoming { pkid } => {
                    tx.execute("INSERT OR IGNORE INTO incoming (pkid) VALUES (?1)", [pkid])?;
                }
                StoreOp::RemoveIncoming { pkid } => {
                    tx.execute("DELETE FROM incoming WHERE pkid = ?1", [pkid])?;
                }
                StoreOp::ClearIncoming => {
                    tx.execute("DELETE FROM incoming", [])?;
                }
                StoreOp::PutSubscription { filter, packet } => {
                    tx.execute(
                        "INSERT OR REPLACE INTO subscriptions (filter, packet) VALUES (?1, ?2)",
                        params![filter, &packet[..]],
                    )?;
                }
                StoreOp::RemoveSubscription { filter } => {
                    tx.execute("DELETE FROM subscriptions WHERE filter = ?1", [filter])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let mut s = SqliteStore::open(&path, "c1", Version::V5).unwrap();
            s.apply(&[
                StoreOp::PutOutgoing {
                    pkid: 2,
                    seq: 10,
                    packet: Bytes::from_static(b"b"),
                },
                StoreOp::PutOutgoing {
                    pkid: 1,
                    seq: 11,
                    packet: Bytes::from_static(b"a"),
                },
                StoreOp::PutOutgoing {
                    pkid: 3,
                    seq: 12,
                    packet: Bytes::from_static(b"c"),
                },
                StoreOp::Released { pkid: 1 },
                StoreOp::RemoveOutgoing { pkid: 3 },
                StoreOp::AddIncoming { pkid: 9 },
                StoreOp::AddIncoming { pkid: 8 },
                StoreOp::RemoveIncoming { pkid: 9 },
                StoreOp::PutSubscription {
                    filter: "a/#".into(),
                    packet: Bytes::from_static(b"s"),
                },
            ])
            .unwrap();
        }
        assert_eq!(
            SqliteStore::stored_client_id(&path).unwrap().as_deref(),
            Some("c1")
        );
        let mut s = SqliteStore::open(&path, "c1", Version::V5).unwrap();
        let got = s.load().unwrap();
        assert_eq!(
            got.outgoing,
            vec![
                (2, 10, false, Bytes::from_static(b"b")),
                (1, 11, true, Bytes::from_static(b"a"))
            ]
        );
        assert_eq!(got.incoming, vec![8]);
        assert_eq!(got.subscriptions, vec![Bytes::from_static(b"s")]);
        s.apply(&[StoreOp::ClearIncoming]).unwrap();
        assert!(s.load().unwrap().incoming.is_empty());
        drop(s);
        assert!(matches!(
            SqliteStore::open(&path, "c2", Version::V5),
            Err(Error::StoreMismatch(_))
        ));
        assert!(matches!(
            SqliteStore::open(&path, "c1", Version::V311),
            Err(Error::StoreMismatch(_))
        ));
    }
}
