//! Persistence of apps, tokens and users behind [`Store`], with [`SqliteStore`] as the
//! embedded default (rusqlite, SQLite bundled). Tokens and client secrets are stored as
//! SHA-256 digests only: a copy of the database does not hand out live credentials.

use std::{path::Path, sync::Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    apikey::{ApiKey, ApiKeyStore},
    error::Error,
};

/// A registered client application (the seed's RegisterApp / AddApp).
#[derive(Clone, PartialEq, Eq)]
pub struct App {
    /// Public identifier.
    pub client_id: String,
    /// Display name (on the consent page).
    pub name: String,
    /// SHA-256 (hex) of the client secret; `None` for a public client (PKCE only).
    pub secret_hash: Option<String>,
    /// Registered redirect URIs, matched exactly (a loopback URI's port may vary).
    pub redirect_uris: Vec<String>,
    /// Allowed grants: `authorization_code`, `client_credentials`, `refresh_token`,
    /// `password`.
    pub grants: Vec<String>,
    /// Access token lifetime in seconds (`None`: the server's default).
    pub access_ttl: Option<u64>,
    /// Creation time (Unix seconds).
    pub created_at: u64,
}

impl std::fmt::Debug for App {
    /// The secret digest is not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("confidential", &self.secret_hash.is_some())
            .field("redirect_uris", &self.redirect_uris)
            .field("grants", &self.grants)
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

/// What a stored token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// An authorization code.
    Code,
    /// An access token.
    Access,
    /// A refresh token.
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "code" => Self::Code,
            "access" => Self::Access,
            "refresh" => Self::Refresh,
            _ => return None,
        })
    }
}

/// A stored code or token (keyed by the SHA-256 of its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 (hex) of the token.
    pub hash: String,
    /// Code, access or refresh.
    pub kind: TokenKind,
    /// The client it was issued to.
    pub client_id: String,
    /// The user (resource owner), `None` for client credentials.
    pub subject: Option<String>,
    /// Granted scope (space-separated).
    pub scope: String,
    /// Everything issued from one authorization (a code, its tokens and all their rotations)
    /// shares a family; reuse of a code or refresh token revokes the family.
    pub family: String,
    /// Issue time (Unix seconds).
    pub issued_at: u64,
    /// Expiry (Unix seconds).
    pub expires_at: u64,
    /// Revoked.
    pub revoked: bool,
    /// Used (a redeemed code, a rotated refresh token).
    pub used: bool,
    /// Kind-specific data (a code's redirect URI and PKCE challenge), JSON.
    pub extra: String,
}

/// A sign-in in progress: the authorization request behind a sign-in page, until its form is
/// posted (or it expires). Kept in the store, so a restart between the page and the form does
/// not lose it, and every process on one database sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingSignIn {
    /// SHA-256 (hex) of the request id (the form's hidden `id` field).
    pub id_hash: String,
    /// The client asking.
    pub client_id: String,
    /// The redirect URI of the request (already matched against the app's).
    pub redirect_uri: String,
    /// Requested scope (space-separated).
    pub scope: String,
    /// The client's `state`, returned with the redirect.
    pub state: Option<String>,
    /// PKCE S256 challenge (empty without PKCE).
    pub challenge: String,
    /// SHA-256 (hex) of the form's CSRF token (which is also the `oauth2_csrf` cookie).
    pub csrf_hash: String,
    /// Expiry (Unix seconds).
    pub expires_at: u64,
}

impl std::fmt::Debug for PendingSignIn {
    /// Digests are not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSignIn")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Storage of apps, tokens, pending sign-ins and users. Each method is one transaction.
pub trait Store: Send + Sync + 'static {
    /// Inserts or replaces an app.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn put_app(&self, app: &App) -> Result<(), Error>;
    /// An app by client id.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn app(&self, client_id: &str) -> Result<Option<App>, Error>;
    /// Every app.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn apps(&self) -> Result<Vec<App>, Error>;
    /// Removes an app and its tokens; false when there was none.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn remove_app(&self, client_id: &str) -> Result<bool, Error>;
    /// Stores a token (committed before it is handed out).
    ///
    /// # Errors
    /// [`Error::Store`].
    fn put_token(&self, token: &TokenRecord) -> Result<(), Error>;
    /// A token by hash.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, Error>;
    /// Marks a token used; true only for the one caller that changed it from unused (so a
    /// code or refresh token is redeemed once, even under a race).
    ///
    /// # Errors
    /// [`Error::Store`].
    fn mark_used(&self, hash: &str) -> Result<bool, Error>;
    /// Revokes one token; false when unknown.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn revoke(&self, hash: &str) -> Result<bool, Error>;
    /// Revokes every token of a family; the number revoked.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn revoke_family(&self, family: &str) -> Result<usize, Error>;
    /// Deletes tokens that expired before `now` (Unix seconds) and pending sign-ins that
    /// expired; the number deleted.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn purge_expired(&self, now: u64) -> Result<usize, Error>;
    /// Stores a pending sign-in after deleting the expired ones (at `now`); false, storing
    /// nothing, when `max` unexpired ones are already there.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn put_pending(&self, pending: &PendingSignIn, now: u64, max: usize) -> Result<bool, Error>;
    /// An unexpired pending sign-in by the digest of its id.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn pending(&self, id_hash: &str, now: u64) -> Result<Option<PendingSignIn>, Error>;
    /// Removes a pending sign-in; true only for the one caller that removed it (so a sign-in
    /// is completed once, even under a race).
    ///
    /// # Errors
    /// [`Error::Store`].
    fn remove_pending(&self, id_hash: &str) -> Result<bool, Error>;
    /// Inserts or replaces a user with a password hash (PHC string).
    ///
    /// # Errors
    /// [`Error::Store`].
    fn put_user(&self, name: &str, password_hash: &str) -> Result<(), Error>;
    /// A user's password hash.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn user(&self, name: &str) -> Result<Option<String>, Error>;
    /// Removes a user; false when there was none.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn remove_user(&self, name: &str) -> Result<bool, Error>;
}

/// The schema, one entry per version; `PRAGMA user_version` records how many ran.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE oauth2_apps (
        client_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret_hash TEXT,
        redirect_uris TEXT NOT NULL,
        grants TEXT NOT NULL,
        access_ttl INTEGER,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE oauth2_tokens (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        client_id TEXT NOT NULL,
        subject TEXT,
        scope TEXT NOT NULL,
        family TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0,
        used INTEGER NOT NULL DEFAULT 0,
        extra TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX oauth2_tokens_family ON oauth2_tokens(family);
    CREATE INDEX oauth2_tokens_client ON oauth2_tokens(client_id);
    CREATE TABLE oauth2_users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL
    );",
    "CREATE TABLE oauth2_pending (
        id_hash TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        redirect_uri TEXT NOT NULL,
        scope TEXT NOT NULL,
        state TEXT,
        challenge TEXT NOT NULL,
        csrf_hash TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );",
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked INTEGER NOT NULL DEFAULT 0
    );",
];

/// The SQLite store. Without a path ([`SqliteStore::memory`]) everything is lost at exit.
pub struct SqliteStore {
    db: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

fn list(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path`.
    ///
    /// # Errors
    /// [`Error::Store`] when it cannot be opened or migrated.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::init(Connection::open(path)?)
    }

    /// A database in memory (lost at exit).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn memory() -> Result<Self, Error> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Self, Error> {
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.pragma_update(None, "journal_mode", "WAL").ok();
        db.pragma_update(None, "synchronous", "FULL")?;
        let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(0);
        if version > MIGRATIONS.len() {
            return Err(Error::Store(format!(
                "database schema version {version} is newer than this program's {}",
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            let tx = db.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn row_to_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    let kind: String = r.get(1)?;
    Ok(TokenRecord {
        hash: r.get(0)?,
        kind: TokenKind::parse(&kind).unwrap_or(TokenKind::Access),
        client_id: r.get(2)?,
        subject: r.get(3)?,
        scope: r.get(4)?,
        family: r.get(5)?,
        issued_at: r.get::<_, i64>(6)? as u64,
        expires_at: r.get::<_, i64>(7)? as u64,
        revoked: r.get(8)?,
        used: r.get(9)?,
        extra: r.get(10)?,
    })
}

fn row_to_app(r: &rusqlite::Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        client_id: r.get(0)?,
        name: r.get(1)?,
        secret_hash: r.get(2)?,
        redirect_uris: list(&r.get::<_, String>(3)?),
        grants: list(&r.get::<_, String>(4)?),
        access_ttl: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        created_at: r.get::<_, i64>(6)? as u64,
    })
}

const APP_COLUMNS: &str =
    "client_id, name, secret_hash, redirect_uris, grants, access_ttl, created_at";
const TOKEN_COLUMNS: &str =
    "hash, kind, client_id, subject, scope, family, issued_at, expires_at, revoked, used, extra";
const PENDING_COLUMNS: &str =
    "id_hash, client_id, redirect_uri, scope, state, challenge, csrf_hash, expires_at";

fn row_to_pending(r: &rusqlite::Row<'_>) -> rusqlite::Result<PendingSignIn> {
    Ok(PendingSignIn {
        id_hash: r.get(0)?,
        client_id: r.get(1)?,
        redirect_uri: r.get(2)?,
        scope: r.get(3)?,
        state: r.get(4)?,
        challenge: r.get(5)?,
        csrf_hash: r.get(6)?,
        expires_at: r.get::<_, i64>(7)? as u64,
    })
}

impl Store for SqliteStore {
    fn put_app(&self, app: &App) -> Result<(), Error> {
        self.db().execute(
            &format!("INSERT OR REPLACE INTO oauth2_apps ({APP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                app.client_id,
                app.name,
                app.secret_hash,
                serde_json::to_string(&app.redirect_uris).unwrap_or_default(),
                serde_json::to_string(&app.grants).unwrap_or_default(),
                app.access_ttl.map(|v| v as i64),
                app.created_at as i64,
            ],
        )?;
        Ok(())
    }

    fn app(&self, client_id: &str) -> Result<Option<App>, Error> {
        Ok(self
            .db()
            .query_row(
                &format!("SELECT {APP_COLUMNS} FROM oauth2_apps WHERE client_id = ?1"),
                [client_id],
                row_to_app,
            )
            .optional()?)
    }

    fn apps(&self) -> Result<Vec<App>, Error> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {APP_COLUMNS} FROM oauth2_apps ORDER BY created_at, name"
        ))?;
        let apps = stmt
            .query_map([], row_to_app)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(apps)
    }

    fn remove_app(&self, client_id: &str) -> Result<bool, Error> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "DELETE FROM oauth2_tokens WHERE client_id = ?1",
            [client_id],
        )?;
        let n = tx.execute("DELETE FROM oauth2_apps WHERE client_id = ?1", [client_id])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn put_token(&self, t: &TokenRecord) -> Result<(), Error> {
        self.db().execute(
            &format!(
                "INSERT INTO oauth2_tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            params![
                t.hash,
                t.kind.as_str(),
                t.client_id,
                t.subject,
                t.scope,
                t.family,
                t.issued_at as i64,
                t.expires_at as i64,
                t.revoked,
                t.used,
                t.extra,
            ],
        )?;
        Ok(())
    }

    fn token(&self, hash: &str) -> Result<Option<TokenRecord>, Error> {
        Ok(self
            .db()
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM oauth2_tokens WHERE hash = ?1"),
                [hash],
                row_to_token,
            )
            .optional()?)
    }

    fn mark_used(&self, hash: &str) -> Result<bool, Error> {
        let n = self.db().execute(
            "UPDATE oauth2_tokens SET used = 1 WHERE hash = ?1 AND used = 0",
            [hash],
        )?;
        Ok(n == 1)
    }

    fn revoke(&self, hash: &str) -> Result<bool, Error> {
        let n = self.db().execute(
            "UPDATE oauth2_tokens SET revoked = 1 WHERE hash = ?1",
            [hash],
        )?;
        Ok(n == 1)
    }

    fn revoke_family(&self, family: &str) -> Result<usize, Error> {
        Ok(self.db().execute(
            "UPDATE oauth2_tokens SET revoked = 1 WHERE family = ?1",
            [family],
        )?)
    }

    fn purge_expired(&self, now: u64) -> Result<usize, Error> {
        // Used codes and rotated refresh tokens are kept until they expire: reuse detection
        // needs them.
        let db = self.db();
        let pending = db.execute(
            "DELETE FROM oauth2_pending WHERE expires_at <= ?1",
            [now as i64],
        )?;
        Ok(db.execute(
            "DELETE FROM oauth2_tokens WHERE expires_at < ?1",
            [now as i64],
        )? + pending)
    }

    fn put_pending(&self, p: &PendingSignIn, now: u64, max: usize) -> Result<bool, Error> {
        let db = self.db();
        let tx = db.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM oauth2_pending WHERE expires_at <= ?1",
            [now as i64],
        )?;
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM oauth2_pending", [], |r| r.get(0))?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= max {
            return Ok(false);
        }
        tx.execute(
            &format!(
                "INSERT OR REPLACE INTO oauth2_pending ({PENDING_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params![
                p.id_hash,
                p.client_id,
                p.redirect_uri,
                p.scope,
                p.state,
                p.challenge,
                p.csrf_hash,
                p.expires_at as i64,
            ],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn pending(&self, id_hash: &str, now: u64) -> Result<Option<PendingSignIn>, Error> {
        Ok(self
            .db()
            .query_row(
                &format!(
                    "SELECT {PENDING_COLUMNS} FROM oauth2_pending \
                     WHERE id_hash = ?1 AND expires_at > ?2"
                ),
                params![id_hash, now as i64],
                row_to_pending,
            )
            .optional()?)
    }

    fn remove_pending(&self, id_hash: &str) -> Result<bool, Error> {
        Ok(self
            .db()
            .execute("DELETE FROM oauth2_pending WHERE id_hash = ?1", [id_hash])?
            > 0)
    }

    fn put_user(&self, name: &str, password_hash: &str) -> Result<(), Error> {
        self.db().execute(
            "INSERT OR REPLACE INTO oauth2_users (name, password_hash) VALUES (?1, ?2)",
            [name, password_hash],
        )?;
        Ok(())
    }

    fn user(&self, name: &str) -> Result<Option<String>, Error> {
        Ok(self
            .db()
            .query_row(
                "SELECT password_hash FROM oauth2_users WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn remove_user(&self, name: &str) -> Result<bool, Error> {
        Ok(self
            .db()
            .execute("DELETE FROM oauth2_users WHERE name = ?1", [name])?
            > 0)
    }
}

fn row_to_api_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        name: r.get(1)?,
        hash: r.get(2)?,
        created_at: r.get::<_, i64>(3)? as u64,
        revoked: r.get(4)?,
    })
}

const API_KEY_COLUMNS: &str = "id, name, hash, created_at, revoked";

impl ApiKeyStore for SqliteStore {
    fn put_api_key(&self, key: &ApiKey) -> Result<bool, Error> {
        let n = self.db().execute(
            &format!(
                "INSERT OR IGNORE INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ),
            params![
                key.id,
                key.name,
                key.hash,
                key.created_at as i64,
                key.revoked
            ],
        )?;
        Ok(n == 1)
    }

    fn api_key(&self, id: &str) -> Result<Option<ApiKey>, Error> {
        Ok(self
            .db()
            .query_row(
                &format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1"),
                [id],
                row_to_api_key,
            )
            .optional()?)
    }

    fn api_keys(&self) -> Result<Vec<ApiKey>, Error> {
        let db = self.db();
        let mut stmt = db.prepare(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, rowid"
        ))?;
        let keys = stmt
            .query_map([], row_to_api_key)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(keys)
    }

    fn revoke_api_key(&self, id: &str) -> Result<bool, Error> {
        Ok(self
            .db()
            .execute("UPDATE api_keys SET revoked = 1 WHERE id = ?1", [id])?
            == 1)
    }

    fn remove_api_key(&self, id: &str) -> Result<bool, Error> {
        Ok(self
            .db()
            .execute("DELETE FROM api_keys WHERE id = ?1", [id])?
            == 1)
    }
}
