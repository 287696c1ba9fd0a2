//! API keys (the seed's `APIKeyManager`): long random keys handed to a client once, kept in
//! the store as a SHA-256 digest with a short public id, checked before a ws-server accepts a
//! request or connection.
//!
//! ```text
//!  ApiKeys::create(name, &random, now) -> (ApiKey, "wsk_<id>_<secret>")  shown once
//!  ApiKeyStore (SqliteStore: table api_keys, migration 3)  id, name, sha256(key), created, revoked
//!  ApiKeys::verify(key) -> ApiKey   parse the id, look it up, compare digests in constant time
//!  ApiKeyGuard<H> (ws-server Delegate): X-API-Key header or ?api_key= --> user "apikey:NAME"
//!                                       nothing or a bad key          --> 401, before any upgrade
//! ```
//!
//! A key is `wsk_` + a 12-hex-digit id + `_` + 43 base64url characters (256 random bits). The
//! id is public (listed, logged, used to revoke); the rest is secret and never stored.

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use ws_server::{AuthConfig, Before, Request, Response, delegate::Delegate};

use crate::{error::Error, random::Random};

/// Prefix of every key (lets secret scanners and people recognise one).
pub const KEY_PREFIX: &str = "wsk_";
/// Default header a client sends its key in.
pub const DEFAULT_HEADER: &str = "X-API-Key";
/// Default query parameter a client may send its key in (for browsers, which cannot set
/// headers on a WebSocket; a URL can end up in logs, prefer the header).
pub const DEFAULT_QUERY: &str = "api_key";
/// Prefix of the user recorded for a request with a good key: `apikey:NAME`.
pub const USER_PREFIX: &str = "apikey:";

/// A stored key, without its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public id (12 hex digits), part of the key itself.
    pub id: String,
    /// Who or what the key is for.
    pub name: String,
    /// SHA-256 (hex) of the whole key.
    pub hash: String,
    /// Creation time (Unix seconds).
    pub created_at: u64,
    /// Revoked keys never verify (kept so the id stays known).
    pub revoked: bool,
}

impl std::fmt::Debug for ApiKey {
    /// The digest is not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// Storage of API keys; each method is one transaction. [`crate::oauth2::SqliteStore`]
/// implements it (table `api_keys`).
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Inserts a key; false (nothing stored) when its id is taken.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn put_api_key(&self, key: &ApiKey) -> Result<bool, Error>;
    /// A key by id.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn api_key(&self, id: &str) -> Result<Option<ApiKey>, Error>;
    /// Every key, oldest first.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn api_keys(&self) -> Result<Vec<ApiKey>, Error>;
    /// Marks a key revoked; false when unknown.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn revoke_api_key(&self, id: &str) -> Result<bool, Error>;
    /// Deletes a key; false when unknown.
    ///
    /// # Errors
    /// [`Error::Store`].
    fn remove_api_key(&self, id: &str) -> Result<bool, Error>;
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The id part of a well-formed key.
fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() == 43)
        .then_some(id)
}

/// Creates, lists, revokes and verifies API keys over an [`ApiKeyStore`]. Cheap to clone.
#[derive(Clone)]
pub struct ApiKeys {
    store: Arc<dyn ApiKeyStore>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Keys kept in `store`.
    #[must_use]
    pub fn new(store: Arc<dyn ApiKeyStore>) -> Self {
        Self { store }
    }

    /// Creates a key named `name` at `now`: the record, and the key itself, which is not
    /// stored and cannot be shown again.
    ///
    /// # Errors
    /// [`Error::ConfigValue`] for an empty name or one with control characters;
    /// [`Error::Random`], [`Error::Store`].
    pub fn create(
        &self,
        name: &str,
        random: &dyn Random,
        now: SystemTime,
    ) -> Result<(ApiKey, String), Error> {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(Error::ConfigValue {
                field: "API key name",
                value: name.to_owned(),
                rule: "must be non-empty, without control characters",
            });
        }
        let created_at = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // A taken id (1 in 2^48 per key) is drawn again.
        for _ in 0..4 {
            let mut id = [0u8; 6];
            let mut secret = [0u8; 32];
            random.fill(&mut id)?;
            random.fill(&mut secret)?;
            let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let key = format!(
                "{KEY_PREFIX}{id}_{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
            );
            let record = ApiKey {
                id,
                name: name.to_owned(),
                hash: sha256_hex(&key),
                created_at,
                revoked: false,
            };
            if self.store.put_api_key(&record)? {
                return Ok((record, key));
            }
        }
        Err(Error::Random("four key ids in a row were taken".into()))
    }

    /// Every key (without secrets).
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn list(&self) -> Result<Vec<ApiKey>, Error> {
        self.store.api_keys()
    }

    /// Revokes the key with this id (it stays listed); false when unknown.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn revoke(&self, id: &str) -> Result<bool, Error> {
        self.store.revoke_api_key(id)
    }

    /// Deletes the key with this id; false when unknown.
    ///
    /// # Errors
    /// [`Error::Store`].
    pub fn remove(&self, id: &str) -> Result<bool, Error> {
        self.store.remove_api_key(id)
    }

    /// The record of `key` when it is a stored, unrevoked key. The digests are compared in
    /// constant time; a malformed key is refused before the store is asked.
    ///
    /// # Errors
    /// [`Error::Store`] only; a bad key is `Ok(None)`.
    pub fn verify(&self, key: &str) -> Result<Option<ApiKey>, Error> {
        let Some(id) = key_id(key) else {
            return Ok(None);
        };
        let Some(record) = self.store.api_key(id)? else {
            return Ok(None);
        };
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(sha256_hex(key).as_bytes(), record.hash.as_bytes())
                .into();
        Ok((same && !record.revoked).then_some(record))
    }
}

/// Where [`ApiKeyGuard`] looks for the key, and which paths it leaves open.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ApiKeyConfig {
    /// Header field carrying the key. Default: [`DEFAULT_HEADER`] (`X-API-Key`).
    pub header: String,
    /// Query parameter carrying the key, tried when the header is absent; `None` turns the
    /// query form off. Default: `Some(`[`DEFAULT_QUERY`]`)` (`api_key`).
    pub query: Option<String>,
    /// Paths served without a key: exact, or a prefix ending in `*` (as ws-server's
    /// `AuthConfig::public_paths`). Default: empty.
    pub public_paths: Vec<String>,
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        Self {
            header: DEFAULT_HEADER.into(),
            query: Some(DEFAULT_QUERY.into()),
            public_paths: Vec::new(),
        }
    }
}

/// A ws-server [`ws_server::Handler`] behind an API-key check: in `on_before_request`, so
/// every request (WebSocket upgrades, SSE, static files, HTTP routes) needs a good key before
/// anything else happens; the request's user becomes `apikey:NAME`. Without a key, or with a
/// bad one, the answer is 401 saying where to put one. Plain TCP connections are refused.
///
/// The user it records satisfies ws-server's own `AuthConfig` (which skips requests that
/// already have a user); a [`crate::Guard`] inside still checks its token.
pub struct ApiKeyGuard<H> {
    inner: H,
    keys: ApiKeys,
    config: ApiKeyConfig,
    public: AuthConfig,
}

impl<H> std::fmt::Debug for ApiKeyGuard<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyGuard")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<H> ApiKeyGuard<H> {
    /// Wraps `inner`: each request needs a key of `keys`, found as `config` says.
    #[must_use]
    pub fn new(inner: H, keys: ApiKeys, config: ApiKeyConfig) -> Self {
        let mut public = AuthConfig::default();
        public.public_paths.clone_from(&config.public_paths);
        Self {
            inner,
            keys,
            config,
            public,
        }
    }

    /// The wrapped handler.
    #[must_use]
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The key found in `request` (header first, then the query parameter), if any.
    fn find(&self, request: &Request) -> Option<String> {
        if let Some(v) = request.header(&self.config.header) {
            return Some(v.trim().to_owned());
        }
        let name = self.config.query.as_deref()?;
        crate::source::query_param(request.url(), name)
    }

    fn refuse(&self, text: String) -> Before {
        Before::Respond(
            Response::text(401, text)
                .with_header("Cache-Control", "no-store")
                .with_header(
                    "WWW-Authenticate",
                    format!("APIKey header=\"{}\"", self.config.header),
                ),
        )
    }
}

impl<H: ws_server::Handler> Delegate for ApiKeyGuard<H> {
    type Inner = H;

    fn inner(&self) -> &H {
        &self.inner
    }

    async fn on_unknown_protocol(&self, peer: SocketAddr, first_bytes: &[u8]) -> bool {
        // Plain TCP carries no key: refused whatever the inner handler says.
        let _ = (peer, first_bytes);
        false
    }

    async fn on_before_request(&self, request: &mut Request) -> Before {
        if self.public.is_public(request.path()) {
            return self.inner.on_before_request(request).await;
        }
        let Some(key) = self.find(request) else {
            let query = self
                .config
                .query
                .as_ref()
                .map(|q| format!(" or the {q} query parameter"))
                .unwrap_or_default();
            return self.refuse(format!(
                "API key required: send it in the {} header{query}\n",
                self.config.header
            ));
        };
        match self.keys.verify(&key) {
            Ok(Some(record)) => {
                request.set_user(Some(format!("{USER_PREFIX}{}", record.name)));
                self.inner.on_before_request(request).await
            }
            Ok(None) => {
                tracing::info!(peer = %request.peer_addr(), path = request.path(), id = key_id(&key).unwrap_or("-"), "API key refused");
                self.refuse("API key not valid: unknown, revoked or altered\n".into())
            }
            Err(e) => {
                tracing::error!(error = %e, "API key store failed");
                Before::Respond(Response::text(503, "API key store unavailable\n"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{oauth2::SqliteStore, random::OsRandom};

    fn keys_in(path: &std::path::Path) -> ApiKeys {
        ApiKeys::new(Arc::new(SqliteStore::open(path).unwrap()))
    }

    #[test]
    fn a_key_verifies_a_revoked_or_altered_one_does_not() {
        let keys = ApiKeys::new(Arc::new(SqliteStore::memory().unwrap()));
        let (record, key) = keys.create("ci", &OsRandom, SystemTime::now()).unwrap();
        assert!(key.starts_with(KEY_PREFIX) && key.contains(&record.id));
        assert_eq!(key_id(&key), Some(record.id.as_str()));
        assert_eq!(keys.verify(&key).unwrap().unwrap().name, "ci");
        // The secret is stored only as a digest.
        assert_ne!(record.hash, key);
        assert!(!format!("{record:?}").contains(&record.hash));
        // One character changed in the secret, or in the id.
        let mut altered = key.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            keys.verify(std::str::from_utf8(&altered).unwrap())
                .unwrap()
                .is_none()
        );
        let other_id = key.replacen(&record.id, "000000000000", 1);
        assert!(keys.verify(&other_id).unwrap().is_none());
        assert!(keys.verify("").unwrap().is_none());
        assert!(keys.verify(&key[..key.len() - 1]).unwrap().is_none());
        // A second key is independent; revoking the first leaves it working.
        let (_, key2) = keys.create("web", &OsRandom, SystemTime::now()).unwrap();
        assert!(keys.revoke(&record.id).unwrap());
        assert!(keys.verify(&key).unwrap().is_none());
        assert!(keys.verify(&key2).unwrap().is_some());
        let listed = keys.list().unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().any(|k| k.id == record.id && k.revoked));
        assert!(keys.remove(&record.id).unwrap());
        assert!(!keys.remove(&record.id).unwrap());
        assert!(!keys.revoke("ffffffffffff").unwrap());
        assert_eq!(keys.list().unwrap().len(), 1);
        assert!(keys.create("", &OsRandom, SystemTime::now()).is_err());
    }

    #[test]
    fn keys_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.db");
        let (record, key) = keys_in(&path)
            .create("svc", &OsRandom, SystemTime::now())
            .unwrap();
        let (revoked, revoked_key) = keys_in(&path)
            .create("old", &OsRandom, SystemTime::now())
            .unwrap();
        assert!(keys_in(&path).revoke(&revoked.id).unwrap());
        let reopened = keys_in(&path);
        assert_eq!(reopened.verify(&key).unwrap(), Some(record));
        assert!(reopened.verify(&revoked_key).unwrap().is_none());
        assert_eq!(reopened.list().unwrap().len(), 2);
    }

    #[test]
    fn malformed_keys_are_not_looked_up() {
        assert_eq!(key_id("wsk_0123456789ab_short"), None);
        assert_eq!(
            key_id(&format!("wsk_0123456789zz_{}", "a".repeat(43))),
            None
        );
        assert_eq!(
            key_id(&format!("wsk_0123456789ab_{}", "a".repeat(43))),
            Some("0123456789ab")
        );
    }
}
