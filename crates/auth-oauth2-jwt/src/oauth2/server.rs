//! The authorization server's decisions, without IO: every method takes the request's
//! parameters and `now`, reads and writes the [`Store`], and returns what to answer.
//! Randomness (codes, tokens, secrets, CSRF tokens) comes from a [`Random`] source.
//!
//! ```text
//!  GET  authorize ?response_type=code&client_id&redirect_uri&code_challenge(S256)&state
//!        | unknown client / redirect URI not registered --> error page (never a redirect)
//!        | other errors --> redirect_uri?error=..&state&iss
//!        v
//!  sign-in + consent page (id, CSRF token; no framing)
//!  POST authorize id, csrf, username, password, action
//!        | wrong CSRF --> 403; wrong password --> page again, slowed down after a few
//!        v
//!  redirect_uri?code&state&iss (RFC 9207)
//!  POST token grant_type=authorization_code (code once; reuse revokes its family; PKCE)
//!                        client_credentials | refresh_token (rotation; reuse revokes) | password
//!  POST introspect (RFC 7662)   POST revoke (RFC 7009)   GET metadata (RFC 8414)
//! ```

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, SystemTime},
};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub use crate::random::{OsRandom, Random};

use crate::{
    config::Config,
    error::{Error, OAuthError, TokenError},
    jwt::claims::Claims,
    oauth2::store::{App, PendingSignIn, Store, TokenKind, TokenRecord},
    source::{percent_decode, query_param},
};

/// Checks user names and passwords for the sign-in page (the seed's
/// `OnOAuth2Authentication`).
pub trait Users: Send + Sync + 'static {
    /// Whether `password` is `user`'s.
    fn verify(&self, user: &str, password: &str) -> bool;
}

/// What was issued, for [`OAuth2Hooks`] (never the tokens themselves).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Issued {
    /// The client.
    pub client_id: String,
    /// The user, `None` for client credentials.
    pub subject: Option<String>,
    /// The granted scope.
    pub scope: String,
    /// The grant: `authorization_code`, `client_credentials`, `refresh_token`, `password`.
    pub grant: &'static str,
    /// Whether a refresh token came with it.
    pub refresh_token: bool,
}

/// The seed's OAuth2 server events that are not covered elsewhere (`OnOAuth2AfterAccessToken`,
/// `OnOAuth2AfterRefreshToken`); the page, the sign-in check, the bypass, the validation and
/// the refusal are [`crate::oauth2::http::PageHook`], [`Users`] and
/// [`crate::guard::GuardHooks`]. Every method defaults to nothing.
pub trait OAuth2Hooks: Send + Sync + 'static {
    /// Tokens were issued (and stored) for any grant but refresh.
    fn after_access_token(&self, issued: &Issued) {
        let _ = issued;
    }

    /// A refresh token was used (and rotated).
    fn after_refresh_token(&self, issued: &Issued) {
        let _ = issued;
    }
}

/// The sign-in page to show.
#[derive(Clone, PartialEq, Eq)]
pub struct SignInPage {
    /// The pending request's id (hidden form field `id`).
    pub id: String,
    /// The CSRF token (hidden form field `csrf`, and the `oauth2_csrf` cookie).
    pub csrf: String,
    /// The app's name.
    pub client_name: String,
    /// The requested scope.
    pub scope: String,
    /// A message for the user (a failed sign-in), empty otherwise.
    pub message: String,
}

impl fmt::Debug for SignInPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignInPage")
            .field("client_name", &self.client_name)
            .field("scope", &self.scope)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// What the authorization endpoint answers.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthorizeAnswer {
    /// Show the sign-in page; wait `delay` first (repeated wrong passwords).
    Page {
        /// The page's data.
        page: SignInPage,
        /// Time to wait before answering.
        delay: Duration,
    },
    /// Redirect the browser (302) to this URL (a code, or an error for the client).
    Redirect(String),
    /// An error shown to the user, never redirected (unknown client, unregistered redirect
    /// URI: redirecting there would be an open redirect).
    Error {
        /// HTTP status.
        status: u16,
        /// What went wrong.
        message: String,
    },
}

/// Most pending sign-ins kept at once (then the authorization endpoint answers 503).
const MAX_PENDING: usize = 10_000;

/// The authorization server core.
pub struct AuthServer {
    config: Config,
    store: Arc<dyn Store>,
    random: Arc<dyn Random>,
    users: Option<Arc<dyn Users>>,
    jwt: Option<crate::jwt::sign::Signer>,
    hooks: Option<Arc<dyn OAuth2Hooks>>,
    failures: Mutex<HashMap<String, u32>>,
}

impl fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.config.oauth2.issuer)
            .finish_non_exhaustive()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// SHA-256 of `s`, lowercase hex.
#[must_use]
pub fn digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares in time independent of where the bytes differ (`subtle`; a length mismatch is a
/// plain `false`, lengths are not secret here).
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `bytes` random bytes as unpadded base64url, drawn again while the text starts with `-`:
/// client ids, secrets, codes and tokens are passed as command-line arguments
/// (`--client-id ID`, `--bearer TOKEN`), where a leading `-` reads as an option (1 draw in 64
/// did; the loss is under 0.03 bits).
fn random_string(random: &dyn Random, bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    for _ in 0..64 {
        random.fill(&mut buf)?;
        let text = b64(&buf);
        if !text.starts_with('-') {
            return Ok(text);
        }
    }
    Err(Error::Random(
        "the random source keeps giving strings that start with `-`".into(),
    ))
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 section 4.2).
#[must_use]
pub fn s256(verifier: &str) -> String {
    b64(&Sha256::digest(verifier.as_bytes()))
}

fn err(code: &'static str, description: impl Into<String>) -> OAuthError {
    OAuthError::new(code, description)
}

fn store_err(e: &Error) -> OAuthError {
    tracing::error!(error = %e, "oauth2 store");
    err("server_error", "storage failure")
}

/// Parses `application/x-www-form-urlencoded`; a repeated parameter is an error (RFC 6749
/// section 3.1).
///
/// # Errors
/// `invalid_request` for bad encoding or repeated parameters.
pub fn parse_form(body: &str) -> Result<HashMap<String, String>, OAuthError> {
    let mut out = HashMap::new();
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(key), Some(value)) = (percent_decode(k), percent_decode(v)) else {
            return Err(err("invalid_request", "bad form encoding"));
        };
        if out.insert(key.clone(), value).is_some() {
            return Err(err(
                "invalid_request",
                format!("parameter {key} is repeated"),
            ));
        }
    }
    Ok(out)
}

/// Form-encodes a value for a URL query.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Splits `scheme://host[:port]rest`; `None` when not absolute.
fn split_uri(uri: &str) -> Option<(&str, &str, Option<&str>, &str)> {
    let (scheme, rest) = uri.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    Some((scheme, host, port, path))
}

/// Whether `requested` matches the registered `registered` redirect URI: exactly, or, for a
/// loopback IP literal with `http` (RFC 8252 section 7.3), with any port.
#[must_use]
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    let (Some(a), Some(b)) = (split_uri(registered), split_uri(requested)) else {
        return false;
    };
    let loopback = matches!(a.1, "127.0.0.1" | "::1") && a.0 == "http";
    loopback
        && a.0 == b.0
        && a.1 == b.1
        && a.3 == b.3
        && b.2.is_none_or(|p| p.parse::<u16>().is_ok())
}

/// Whether `verifier` is a well-formed PKCE verifier whose S256 is `challenge`.
fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    valid_verifier(verifier) && ct_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}

fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Basic client credentials from an `Authorization` value (RFC 6749 section 2.3.1: both
/// parts form-urlencoded).
fn basic_credentials(authorization: Option<&str>) -> Option<(String, String)> {
    let value = authorization?.trim();
    let (scheme, data) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((percent_decode(id)?, percent_decode(secret)?))
}

impl AuthServer {
    /// A server over `store`, with `random` for codes and tokens (use [`OsRandom`]).
    ///
    /// # Errors
    /// [`Error::Config`] from [`Config::validate`].
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        random: Arc<dyn Random>,
    ) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            store,
            random,
            users: None,
            jwt: None,
            hooks: None,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Sets the user check for the sign-in page (else the store's users, argon2 hashes).
    #[must_use]
    pub fn with_users(mut self, users: Arc<dyn Users>) -> Self {
        self.users = Some(users);
        self
    }

    /// Issues access tokens as JWTs (RFC 9068: `typ` `at+jwt`, claims `iss`, `sub`, `aud`,
    /// `client_id`, `scope`, `iat`, `exp`, `jti`) signed by `signer` (give it a `kid`), whose
    /// public key the JWKS endpoint publishes, so that resource servers can verify them without
    /// calling back. They are still recorded in the store, so revocation and introspection
    /// keep working here.
    ///
    /// # Errors
    /// [`Error::Key`] for an HMAC signer (its secret cannot be published).
    pub fn with_jwt_access_tokens(
        mut self,
        signer: crate::jwt::sign::Signer,
    ) -> Result<Self, Error> {
        if signer.public_jwk().is_none() {
            return Err(Error::Key(
                "JWT access tokens need an asymmetric key (RS*, PS*, ES*, EdDSA)".into(),
            ));
        }
        self.jwt = Some(signer.typ("at+jwt"));
        Ok(self)
    }

    /// The JWKS document of the JWT access tokens' key (`{"keys": []}` without one).
    #[must_use]
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .jwt
            .iter()
            .filter_map(crate::jwt::sign::Signer::public_jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// Sets the event hooks.
    #[must_use]
    pub fn with_hooks(mut self, hooks: Arc<dyn OAuth2Hooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn random_string(&self, bytes: usize) -> Result<String, Error> {
        random_string(&*self.random, bytes)
    }

    /// Registers an app (the seed's RegisterApp): a new client id and, for a confidential
    /// app, a new secret, returned once (only its digest is stored).
    ///
    /// # Errors
    /// [`Error::ConfigValue`] or [`Error::Config`] for a redirect URI that is not absolute or has a fragment, or an
    /// unknown grant; [`Error::Store`].
    pub fn register_app(
        &self,
        name: &str,
        redirect_uris: &[String],
        grants: &[String],
        confidential: bool,
        now: SystemTime,
    ) -> Result<(App, Option<String>), Error> {
        for uri in redirect_uris {
            if split_uri(uri).is_none() || uri.contains('#') {
                return Err(Error::ConfigValue {
                    field: "redirect URI",
                    value: uri.clone(),
                    rule: "must be absolute, without a fragment",
                });
            }
        }
        const KNOWN: [&str; 4] = [
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "password",
        ];
        if let Some(g) = grants.iter().find(|g| !KNOWN.contains(&g.as_str())) {
            return Err(Error::ConfigValue {
                field: "grant",
                value: g.clone(),
                rule: "is unknown; known: authorization_code, client_credentials, refresh_token, password",
            });
        }
        if !confidential && grants.iter().any(|g| g == "client_credentials") {
            return Err(Error::Config {
                field: "client_credentials",
                rule: "needs a confidential client",
            });
        }
        let secret = if confidential {
            Some(self.random_string(32)?)
        } else {
            None
        };
        let app = App {
            client_id: self.random_string(16)?,
            name: name.to_owned(),
            secret_hash: secret.as_deref().map(digest),
            redirect_uris: redirect_uris.to_vec(),
            grants: if grants.is_empty() {
                vec!["authorization_code".into(), "refresh_token".into()]
            } else {
                grants.to_vec()
            },
            access_ttl: None,
            created_at: unix(now),
        };
        self.store.put_app(&app)?;
        Ok((app, secret))
    }

    // ---- authorization endpoint ----

    /// GET on the authorization endpoint with its query.
    pub fn authorize(&self, query: &str, now: SystemTime) -> AuthorizeAnswer {
        let target = format!("?{query}");
        let p = |n: &str| query_param(&target, n);
        let page_error = |message: &str| AuthorizeAnswer::Error {
            status: 400,
            message: message.to_owned(),
        };
        let Some(client_id) = p("client_id") else {
            return page_error("client_id is missing");
        };
        let app = match self.store.app(&client_id) {
            Ok(Some(app)) => app,
            Ok(None) => return page_error("unknown client"),
            Err(e) => {
                tracing::error!(error = %e, "oauth2 store");
                return AuthorizeAnswer::Error {
                    status: 500,
                    message: "storage failure".into(),
                };
            }
        };
        let redirect_uri = match p("redirect_uri") {
            Some(uri) if app.redirect_uris.iter().any(|r| redirect_matches(r, &uri)) => uri,
            Some(_) => return page_error("redirect_uri is not registered for this client"),
            None if app.redirect_uris.len() == 1 => app.redirect_uris[0].clone(),
            None => return page_error("redirect_uri is missing"),
        };
        // From here on, errors go back to the client.
        let state = p("state");
        let fail = |code: &str, description: &str| {
            AuthorizeAnswer::Redirect(self.redirect_with(
                &redirect_uri,
                &[("error", code), ("error_description", description)],
                state.as_deref(),
            ))
        };
        if p("response_type").as_deref() != Some("code") {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            );
        }
        if !app.grants.iter().any(|g| g == "authorization_code") {
            return fail(
                "unauthorized_client",
                "this client may not use the authorization code grant",
            );
        }
        let method = p("code_challenge_method").unwrap_or_else(|| "plain".into());
        let challenge = match p("code_challenge") {
            Some(c) if method == "S256" && c.len() == 43 => c,
            Some(_) if method != "S256" => {
                return fail(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is refused)",
                );
            }
            Some(_) => return fail("invalid_request", "code_challenge is not an S256 challenge"),
            None if app.secret_hash.is_none() || self.config.oauth2.require_pkce => {
                return fail(
                    "invalid_request",
                    "PKCE is required: code_challenge with S256",
                );
            }
            None => String::new(),
        };
        let (Ok(id), Ok(csrf)) = (self.random_string(16), self.random_string(24)) else {
            return AuthorizeAnswer::Error {
                status: 500,
                message: "random source failure".into(),
            };
        };
        let scope = p("scope").unwrap_or_default();
        let t = unix(now);
        // In the store: a restart (or another process on the same database) between the
        // page and the form does not lose the sign-in. Only digests of the id and the CSRF
        // token are kept.
        let pending = PendingSignIn {
            id_hash: digest(&id),
            client_id: app.client_id.clone(),
            redirect_uri,
            scope: scope.clone(),
            state,
            challenge,
            csrf_hash: digest(&csrf),
            expires_at: t + self.config.oauth2.pending_ttl.as_secs(),
        };
        match self.store.put_pending(&pending, t, MAX_PENDING) {
            Ok(true) => {}
            Ok(false) => {
                return AuthorizeAnswer::Error {
                    status: 503,
                    message: "too many pending sign-ins".into(),
                };
            }
            Err(e) => {
                tracing::error!(error = %e, "storing a pending sign-in");
                return AuthorizeAnswer::Error {
                    status: 500,
                    message: "server error".into(),
                };
            }
        }
        AuthorizeAnswer::Page {
            page: SignInPage {
                id,
                csrf,
                client_name: app.name,
                scope,
                message: String::new(),
            },
            delay: Duration::ZERO,
        }
    }

    fn redirect_with(&self, uri: &str, params: &[(&str, &str)], state: Option<&str>) -> String {
        let mut url = uri.to_owned();
        let mut sep = if uri.contains('?') { '&' } else { '?' };
        let iss = self.config.oauth2.issuer.as_str();
        let all = params
            .iter()
            .copied()
            .chain(state.map(|s| ("state", s)))
            .chain([("iss", iss)]);
        for (k, v) in all {
            url.push(sep);
            url.push_str(k);
            url.push('=');
            url.push_str(&enc(v));
            sep = '&';
        }
        url
    }

    fn delay_for(&self, failures: u32) -> Duration {
        let free = self.config.oauth2.sign_in_free_failures;
        if failures <= free {
            return Duration::ZERO;
        }
        let step = self.config.oauth2.sign_in_delay;
        let factor = 1u32 << (failures - free - 1).min(5);
        (step * factor).min(Duration::from_secs(30))
    }

    fn check_password(&self, user: &str, password: &str) -> bool {
        if let Some(users) = &self.users {
            return users.verify(user, password);
        }
        match self.store.user(user) {
            Ok(Some(hash)) => crate::oauth2::password::verify(password, &hash),
            _ => {
                // Same work for unknown users, so timing does not tell which names exist.
                let _ = crate::oauth2::password::verify(
                    password,
                    crate::oauth2::password::dummy_hash(),
                );
                false
            }
        }
    }

    /// POST on the authorization endpoint: the sign-in and consent form (`id`, `csrf`,
    /// `username`, `password`, `action` = `allow` or `deny`) with the `oauth2_csrf` cookie.
    pub fn sign_in(
        &self,
        form: &HashMap<String, String>,
        csrf_cookie: Option<&str>,
        now: SystemTime,
    ) -> AuthorizeAnswer {
        let t = unix(now);
        let forbidden = |m: &str| AuthorizeAnswer::Error {
            status: 403,
            message: m.to_owned(),
        };
        let Some(id) = form.get("id") else {
            return forbidden("the sign-in form has no request id");
        };
        let server_error = |e: Error| {
            tracing::error!(error = %e, "reading a pending sign-in");
            AuthorizeAnswer::Error {
                status: 500,
                message: "server error".into(),
            }
        };
        let id_hash = digest(id);
        let expired = || AuthorizeAnswer::Error {
            status: 400,
            message: "this sign-in request expired; start again".into(),
        };
        let pending = match self.store.pending(&id_hash, t) {
            Ok(Some(p)) => p,
            Ok(None) => return expired(),
            Err(e) => return server_error(e),
        };
        let matches = |c: &str| ct_eq(digest(c).as_bytes(), pending.csrf_hash.as_bytes());
        let (Some(csrf), true) = (
            form.get("csrf").filter(|c| matches(c)),
            csrf_cookie.is_some_and(matches),
        ) else {
            return forbidden("the form's CSRF token is missing or wrong");
        };
        if form.get("action").map(String::as_str) == Some("deny") {
            if let Err(e) = self.store.remove_pending(&id_hash) {
                return server_error(e);
            }
            return AuthorizeAnswer::Redirect(self.redirect_with(
                &pending.redirect_uri,
                &[
                    ("error", "access_denied"),
                    ("error_description", "the user denied access"),
                ],
                pending.state.as_deref(),
            ));
        }
        let user = form.get("username").cloned().unwrap_or_default();
        let password = form.get("password").cloned().unwrap_or_default();
        if user.is_empty() || !self.check_password(&user, &password) {
            let n = {
                let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
                if f.len() > 100_000 {
                    f.clear();
                }
                let n = f.entry(user.clone()).or_insert(0);
                *n += 1;
                *n
            };
            tracing::info!(user = %user, failures = n, "sign-in failed");
            let app_name = self
                .store
                .app(&pending.client_id)
                .ok()
                .flatten()
                .map(|a| a.name)
                .unwrap_or_default();
            return AuthorizeAnswer::Page {
                page: SignInPage {
                    id: id.clone(),
                    csrf: csrf.clone(),
                    client_name: app_name,
                    scope: pending.scope.clone(),
                    message: "Wrong user name or password.".into(),
                },
                delay: self.delay_for(n),
            };
        }
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&user);
        // Removed by exactly one of two forms posted at once: the other gets no code.
        match self.store.remove_pending(&id_hash) {
            Ok(true) => {}
            Ok(false) => return expired(),
            Err(e) => return server_error(e),
        }
        let code = match self.issue_code(&pending, &user, t) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "issuing a code");
                return AuthorizeAnswer::Error {
                    status: 500,
                    message: "server error".into(),
                };
            }
        };
        tracing::info!(user = %user, client_id = %pending.client_id, "authorization code issued");
        AuthorizeAnswer::Redirect(self.redirect_with(
            &pending.redirect_uri,
            &[("code", &code)],
            pending.state.as_deref(),
        ))
    }

    fn issue_code(&self, pending: &PendingSignIn, user: &str, t: u64) -> Result<String, Error> {
        let code = self.random_string(32)?;
        self.store.put_token(&TokenRecord {
            hash: digest(&code),
            kind: TokenKind::Code,
            client_id: pending.client_id.clone(),
            subject: Some(user.to_owned()),
            scope: pending.scope.clone(),
            family: self.random_string(16)?,
            issued_at: t,
            expires_at: t + self.config.oauth2.code_ttl.as_secs(),
            revoked: false,
            used: false,
            extra: json!({"redirect_uri": pending.redirect_uri, "challenge": pending.challenge})
                .to_string(),
        })?;
        Ok(code)
    }

    // ---- client authentication ----

    /// Authenticates the client of a token, introspection or revocation request: HTTP Basic
    /// or `client_id` + `client_secret` in the form (secrets compared in constant time), or a
    /// public client by `client_id` alone when `allow_public`.
    fn client(
        &self,
        form: &HashMap<String, String>,
        authorization: Option<&str>,
        allow_public: bool,
    ) -> Result<App, OAuthError> {
        let basic = basic_credentials(authorization);
        if authorization.is_some()
            && basic.is_none()
            && authorization.is_some_and(|a| a.trim().to_ascii_lowercase().starts_with("basic"))
        {
            return Err(err("invalid_client", "malformed Basic credentials"));
        }
        let (id, secret) = match (basic, form.get("client_id"), form.get("client_secret")) {
            (Some((id, secret)), form_id, None) => {
                if form_id.is_some_and(|f| *f != id) {
                    return Err(err("invalid_request", "two different client ids"));
                }
                (id, Some(secret))
            }
            (Some(_), _, Some(_)) => {
                return Err(err(
                    "invalid_request",
                    "more than one client authentication method",
                ));
            }
            (None, Some(id), secret) => (id.clone(), secret.cloned()),
            (None, None, _) => {
                return Err(err("invalid_client", "client authentication is required"));
            }
        };
        let app = self
            .store
            .app(&id)
            .map_err(|e| store_err(&e))?
            .ok_or_else(|| err("invalid_client", "unknown client"))?;
        match (&app.secret_hash, secret) {
            (Some(hash), Some(secret)) if ct_eq(digest(&secret).as_bytes(), hash.as_bytes()) => {
                Ok(app)
            }
            (Some(_), _) => Err(err("invalid_client", "client authentication failed")),
            (None, None) if allow_public => Ok(app),
            (None, _) => Err(err("invalid_client", "client authentication failed")),
        }
    }

    // ---- token endpoint ----

    /// POST on the token endpoint: the form body and the `Authorization` field. The answer
    /// is the JSON to send with 200 (`Cache-Control: no-store`).
    ///
    /// # Errors
    /// The OAuth2 error to send ([`OAuthError::status`]).
    pub fn token(
        &self,
        body: &str,
        authorization: Option<&str>,
        now: SystemTime,
    ) -> Result<Value, OAuthError> {
        let form = parse_form(body)?;
        let t = unix(now);
        let grant = form
            .get("grant_type")
            .map(String::as_str)
            .unwrap_or_default();
        let app = self.client(&form, authorization, grant != "client_credentials")?;
        if grant.is_empty() {
            return Err(err("invalid_request", "grant_type is missing"));
        }
        if !app.grants.iter().any(|g| g == grant) {
            return Err(match grant {
                "authorization_code" | "client_credentials" | "refresh_token" | "password" => err(
                    "unauthorized_client",
                    format!("this client may not use {grant}"),
                ),
                _ => err(
                    "unsupported_grant_type",
                    format!("grant_type {grant} is not supported"),
                ),
            });
        }
        match grant {
            "authorization_code" => self.redeem_code(&app, &form, t),
            "client_credentials" => {
                let scope = form.get("scope").cloned().unwrap_or_default();
                let family = self.random_string(16).map_err(|e| store_err(&e))?;
                self.issue("client_credentials", &app, None, &scope, &family, false, t)
            }
            "refresh_token" => self.rotate(&app, &form, t),
            "password" if self.config.oauth2.allow_password_grant => {
                let user = form.get("username").cloned().unwrap_or_default();
                let password = form.get("password").cloned().unwrap_or_default();
                if user.is_empty() || !self.check_password(&user, &password) {
                    return Err(err("invalid_grant", "wrong user name or password"));
                }
                let scope = form.get("scope").cloned().unwrap_or_default();
                let family = self.random_string(16).map_err(|e| store_err(&e))?;
                self.issue("password", &app, Some(&user), &scope, &family, true, t)
            }
            _ => Err(err(
                "unsupported_grant_type",
                format!("grant_type {grant} is not supported"),
            )),
        }
    }

    fn redeem_code(
        &self,
        app: &App,
        form: &HashMap<String, String>,
        t: u64,
    ) -> Result<Value, OAuthError> {
        let code = form
            .get("code")
            .ok_or_else(|| err("invalid_request", "code is missing"))?;
        let hash = digest(code);
        let rec = self
            .store
            .token(&hash)
            .map_err(|e| store_err(&e))?
            .filter(|r| r.kind == TokenKind::Code)
            .ok_or_else(|| err("invalid_grant", "unknown authorization code"))?;
        if rec.client_id != app.client_id {
            return Err(err(
                "invalid_grant",
                "the code was issued to another client",
            ));
        }
        if rec.used || rec.revoked || !self.store.mark_used(&hash).map_err(|e| store_err(&e))? {
            // RFC 6749 section 4.1.2: a code used twice revokes what it issued.
            let n = self
                .store
                .revoke_family(&rec.family)
                .map_err(|e| store_err(&e))?;
            tracing::warn!(client_id = %app.client_id, revoked = n, "authorization code reused; its tokens are revoked");
            return Err(err(
                "invalid_grant",
                "the authorization code was already used",
            ));
        }
        if rec.expires_at <= t {
            return Err(err("invalid_grant", "the authorization code expired"));
        }
        let extra: Value = serde_json::from_str(&rec.extra).unwrap_or(Value::Null);
        let registered = extra["redirect_uri"].as_str().unwrap_or_default();
        if form.get("redirect_uri").map(String::as_str) != Some(registered) {
            return Err(err(
                "invalid_grant",
                "redirect_uri differs from the authorization request's",
            ));
        }
        let challenge = extra["challenge"].as_str().unwrap_or_default();
        match form.get("code_verifier") {
            Some(v) if !challenge.is_empty() && !pkce_ok(v, challenge) => {
                self.store
                    .revoke_family(&rec.family)
                    .map_err(|e| store_err(&e))?;
                return Err(err(
                    "invalid_grant",
                    "code_verifier does not match the code_challenge",
                ));
            }
            Some(_) if !challenge.is_empty() => {}
            None if !challenge.is_empty() => {
                return Err(err("invalid_grant", "code_verifier is missing"));
            }
            Some(_) => {
                return Err(err(
                    "invalid_request",
                    "code_verifier without a code_challenge",
                ));
            }
            None => {}
        }
        let refresh = app.grants.iter().any(|g| g == "refresh_token");
        self.issue(
            "authorization_code",
            app,
            rec.subject.as_deref(),
            &rec.scope,
            &rec.family,
            refresh,
            t,
        )
    }

    fn rotate(
        &self,
        app: &App,
        form: &HashMap<String, String>,
        t: u64,
    ) -> Result<Value, OAuthError> {
        let token = form
            .get("refresh_token")
            .ok_or_else(|| err("invalid_request", "refresh_token is missing"))?;
        let hash = digest(token);
        let rec = self
            .store
            .token(&hash)
            .map_err(|e| store_err(&e))?
            .filter(|r| r.kind == TokenKind::Refresh && r.client_id == app.client_id)
            .ok_or_else(|| err("invalid_grant", "unknown refresh token"))?;
        if rec.revoked {
            return Err(err("invalid_grant", "the refresh token was revoked"));
        }
        if rec.used || !self.store.mark_used(&hash).map_err(|e| store_err(&e))? {
            let n = self
                .store
                .revoke_family(&rec.family)
                .map_err(|e| store_err(&e))?;
            tracing::warn!(client_id = %app.client_id, revoked = n, "refresh token reused; its family is revoked");
            return Err(err(
                "invalid_grant",
                "the refresh token was already used; every token of this grant is revoked",
            ));
        }
        if rec.expires_at <= t {
            return Err(err("invalid_grant", "the refresh token expired"));
        }
        // A narrower scope may be asked for (RFC 6749 section 6).
        let scope = match form.get("scope") {
            Some(s) => {
                let granted: Vec<&str> = rec.scope.split(' ').collect();
                if !s
                    .split(' ')
                    .filter(|x| !x.is_empty())
                    .all(|x| granted.contains(&x))
                {
                    return Err(err("invalid_scope", "the scope exceeds the original grant"));
                }
                s.clone()
            }
            None => rec.scope.clone(),
        };
        self.issue(
            "refresh_token",
            app,
            rec.subject.as_deref(),
            &scope,
            &rec.family,
            true,
            t,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn issue(
        &self,
        grant: &'static str,
        app: &App,
        subject: Option<&str>,
        scope: &str,
        family: &str,
        refresh: bool,
        t: u64,
    ) -> Result<Value, OAuthError> {
        let ttl = app
            .access_ttl
            .unwrap_or(self.config.oauth2.access_token_ttl.as_secs());
        let access = match &self.jwt {
            None => self.random_string(32).map_err(|e| store_err(&e))?,
            Some(signer) => {
                let mut claims = serde_json::Map::new();
                claims.insert("iss".into(), self.config.oauth2.issuer.clone().into());
                claims.insert("sub".into(), subject.unwrap_or(&app.client_id).into());
                claims.insert("aud".into(), self.config.oauth2.issuer.clone().into());
                claims.insert("client_id".into(), app.client_id.clone().into());
                claims.insert("scope".into(), scope.into());
                claims.insert("iat".into(), t.into());
                claims.insert("exp".into(), (t + ttl).into());
                claims.insert(
                    "jti".into(),
                    self.random_string(16).map_err(|e| store_err(&e))?.into(),
                );
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(t);
                signer.sign_with(at, &claims).map_err(|e| store_err(&e))?
            }
        };
        let record = |hash: String, kind: TokenKind, expires_at: u64| TokenRecord {
            hash,
            kind,
            client_id: app.client_id.clone(),
            subject: subject.map(str::to_owned),
            scope: scope.to_owned(),
            family: family.to_owned(),
            issued_at: t,
            expires_at,
            revoked: false,
            used: false,
            extra: String::new(),
        };
        // Stored (committed) before the answer leaves.
        self.store
            .put_token(&record(digest(&access), TokenKind::Access, t + ttl))
            .map_err(|e| store_err(&e))?;
        let mut answer = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
        });
        if !scope.is_empty() {
            answer["scope"] = scope.into();
        }
        if refresh {
            let rt = self.random_string(32).map_err(|e| store_err(&e))?;
            self.store
                .put_token(&record(
                    digest(&rt),
                    TokenKind::Refresh,
                    t + self.config.oauth2.refresh_token_ttl.as_secs(),
                ))
                .map_err(|e| store_err(&e))?;
            answer["refresh_token"] = rt.into();
        }
        tracing::info!(client_id = %app.client_id, subject = subject.unwrap_or("-"), grant, refresh, "access token issued");
        if let Some(hooks) = &self.hooks {
            let issued = Issued {
                client_id: app.client_id.clone(),
                subject: subject.map(str::to_owned),
                scope: scope.to_owned(),
                grant,
                refresh_token: refresh,
            };
            if grant == "refresh_token" {
                hooks.after_refresh_token(&issued);
            } else {
                hooks.after_access_token(&issued);
            }
        }
        Ok(answer)
    }

    // ---- introspection, revocation, metadata, access checks ----

    /// POST on the introspection endpoint (RFC 7662): a confidential client authenticates;
    /// the JSON answer.
    ///
    /// # Errors
    /// `invalid_client` (401), `invalid_request`.
    pub fn introspect(
        &self,
        body: &str,
        authorization: Option<&str>,
        now: SystemTime,
    ) -> Result<Value, OAuthError> {
        let form = parse_form(body)?;
        self.client(&form, authorization, false)?;
        let token = form
            .get("token")
            .ok_or_else(|| err("invalid_request", "token is missing"))?;
        let t = unix(now);
        let rec = self
            .store
            .token(&digest(token))
            .map_err(|e| store_err(&e))?;
        let Some(rec) = rec.filter(|r| {
            r.kind != TokenKind::Code
                && !r.revoked
                && r.expires_at > t
                && !(r.kind == TokenKind::Refresh && r.used)
        }) else {
            return Ok(json!({"active": false}));
        };
        let mut answer = json!({
            "active": true,
            "client_id": rec.client_id,
            "token_type": if rec.kind == TokenKind::Access { "Bearer" } else { "refresh_token" },
            "exp": rec.expires_at,
            "iat": rec.issued_at,
            "iss": self.config.oauth2.issuer,
        });
        if !rec.scope.is_empty() {
            answer["scope"] = rec.scope.into();
        }
        if let Some(sub) = rec.subject {
            answer["sub"] = sub.clone().into();
            answer["username"] = sub.into();
        }
        Ok(answer)
    }

    /// POST on the revocation endpoint (RFC 7009): revokes a token of the calling client (a
    /// refresh token with its whole family). Unknown tokens are not an error.
    ///
    /// # Errors
    /// `invalid_client`, `invalid_request`, `unsupported_token_type`.
    pub fn revoke(&self, body: &str, authorization: Option<&str>) -> Result<(), OAuthError> {
        let form = parse_form(body)?;
        let app = self.client(&form, authorization, true)?;
        let token = form
            .get("token")
            .ok_or_else(|| err("invalid_request", "token is missing"))?;
        if let Some(hint) = form.get("token_type_hint") {
            if hint != "access_token" && hint != "refresh_token" {
                return Err(err(
                    "unsupported_token_type",
                    format!("token_type_hint {hint} is not supported"),
                ));
            }
        }
        let hash = digest(token);
        if let Some(rec) = self.store.token(&hash).map_err(|e| store_err(&e))? {
            if rec.client_id == app.client_id {
                match rec.kind {
                    TokenKind::Refresh => {
                        self.store
                            .revoke_family(&rec.family)
                            .map_err(|e| store_err(&e))?;
                    }
                    _ => {
                        self.store.revoke(&hash).map_err(|e| store_err(&e))?;
                    }
                }
                tracing::info!(client_id = %app.client_id, "token revoked");
            }
        }
        Ok(())
    }

    /// The RFC 8414 server metadata.
    #[must_use]
    pub fn metadata(&self) -> Value {
        let o = &self.config.oauth2;
        let url = |p: &str| format!("{}{p}", o.issuer.trim_end_matches('/'));
        let mut grants = vec!["authorization_code", "client_credentials", "refresh_token"];
        if o.allow_password_grant {
            grants.push("password");
        }
        json!({
            "issuer": o.issuer,
            "authorization_endpoint": url(&o.authorize_path),
            "token_endpoint": url(&o.token_path),
            "introspection_endpoint": url(&o.introspect_path),
            "revocation_endpoint": url(&o.revoke_path),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": grants,
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "authorization_response_iss_parameter_supported": true,
            "jwks_uri": url(&o.jwks_path),
        })
    }

    /// Checks an access token at `now`: its claims (`sub`, `client_id`, `scope`, `exp`,
    /// `iat`, `iss`) when it is known, unexpired and not revoked.
    ///
    /// # Errors
    /// [`TokenError::Inactive`].
    pub fn check_access(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        if token.len() > self.config.max_token_len {
            return Err(TokenError::TooLarge {
                len: token.len(),
                max: self.config.max_token_len,
            });
        }
        let t = unix(now);
        let rec = self
            .store
            .token(&digest(token))
            .ok()
            .flatten()
            .filter(|r| r.kind == TokenKind::Access && !r.revoked && r.expires_at > t)
            .ok_or(TokenError::Inactive)?;
        let mut claims = serde_json::Map::new();
        if let Some(sub) = rec.subject {
            claims.insert("sub".into(), sub.into());
        }
        claims.insert("client_id".into(), rec.client_id.into());
        claims.insert("scope".into(), rec.scope.into());
        claims.insert("exp".into(), rec.expires_at.into());
        claims.insert("iat".into(), rec.issued_at.into());
        claims.insert("iss".into(), self.config.oauth2.issuer.clone().into());
        Ok(Claims(claims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives `first` (repeated over the buffer) on its first `times` fills, then 0x41.
    struct Scripted {
        first: u8,
        times: std::sync::atomic::AtomicUsize,
    }

    impl Random for Scripted {
        fn fill(&self, buf: &mut [u8]) -> Result<(), Error> {
            use std::sync::atomic::Ordering;
            let left = self.times.load(Ordering::Relaxed);
            let byte = if left > 0 {
                self.times.store(left - 1, Ordering::Relaxed);
                self.first
            } else {
                0x41
            };
            buf.fill(byte);
            Ok(())
        }
    }

    #[test]
    fn random_strings_never_start_with_a_dash() {
        // 0xF8 encodes to `-` (base64url index 62) first.
        assert!(b64(&[0xF8; 16]).starts_with('-'));
        let twice = Scripted {
            first: 0xF8,
            times: 2.into(),
        };
        let s = random_string(&twice, 16).unwrap();
        assert!(!s.starts_with('-'), "{s}");
        assert_eq!(s, b64(&[0x41; 16]));
        let stuck = Scripted {
            first: 0xF8,
            times: usize::MAX.into(),
        };
        assert!(matches!(random_string(&stuck, 16), Err(Error::Random(_))));
    }

    #[test]
    fn redirect_uris_match_exactly_except_loopback_ports() {
        assert!(redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb?x=1"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example.evil/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:53124/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:1/cb"
        ));
        assert!(redirect_matches(
            "http://[::1]:80/cb",
            "http://[::1]:9000/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:1/other"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.2:1/cb"
        ));
        assert!(!redirect_matches(
            "https://localhost/cb",
            "https://localhost:1/cb"
        ));
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
    }

    #[test]
    fn forms_refuse_repeated_parameters() {
        let f = parse_form("a=1&b=x+y%21").unwrap();
        assert_eq!(f["b"], "x y!");
        assert!(parse_form("a=1&a=2").is_err());
    }

    #[test]
    fn pkce_s256_matches_an_independent_computation() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mJ92K9qaZ8kmg3gm6sS6WQdr2fRoNk"),
            // base64url(sha256(verifier)) computed with Python's hashlib.
            "ZHM1Ddb_EBJ9KZIPENGCmXVIV483CsKI00YyfvBTGuE"
        );
    }
}
