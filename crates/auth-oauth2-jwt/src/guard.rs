//! ws-server glue: one token check guards the WebSocket handshake and every HTTP route.
//!
//! ```text
//!  request --> bypass? (public path, CORS preflight, GuardHooks::bypass) --yes--> inner handler
//!     | find_token (Config::sources, in order)       none/invalid --> GuardHooks::unauthorized
//!     v                                                 keep: inner handler, no user
//!  TokenCheck::check(token, now)                        else: GuardHooks::error_response
//!     | GuardHooks::after_validation -> user                  (401 + WWW-Authenticate: Bearer)
//!     v
//!  Request::set_user(user) --> inner.on_before_request --> upgrade / SSE / file / on_http
//! ```
//!
//! Two ways in: [`Guard`] wraps a [`Handler`] (every token place, the hooks), or
//! [`JwtAuth::auth_config`] gives ws-server an `AuthConfig` whose [`Authenticator`] checks
//! `Authorization: Bearer` and the query parameter. The handler reads the claims with
//! [`JwtAuth::claims`] (HTTP) or [`JwtAuth::claims_of_conn`] (an open WebSocket).

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

use ws_server::{
    AuthConfig, AuthOutcome, Authenticator, Before, BoxFuture, ConnInfo, Decision, Handler,
    Request, Response, delegate::Delegate,
};

use crate::{
    config::{Config, Location},
    error::TokenError,
    jwt::{claims::Claims, verify::Verified},
    source::{Found, find_token},
    verifier::Verifier,
};

/// Something that decides whether an access token is good: a JWT [`Verifier`], or the OAuth2
/// server's store for opaque tokens.
pub trait TokenCheck: Send + Sync + 'static {
    /// Checks `token` at `now` (may fetch keys).
    fn check<'a>(
        &'a self,
        token: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Claims, TokenError>>;
    /// Checks `token` at `now` with what is at hand (no network).
    ///
    /// # Errors
    /// Why the token is refused.
    fn check_cached(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError>;
}

impl TokenCheck for Verifier {
    fn check<'a>(
        &'a self,
        token: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Claims, TokenError>> {
        Box::pin(async move { self.verify(token, now).await.map(|v: Verified| v.claims) })
    }

    fn check_cached(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        self.verify_cached(token, now).map(|v| v.claims)
    }
}

/// Several token checks on one server (the seed's OAuth2 and JWT attachments side by side):
/// a token is good when any check accepts it, tried in order; the first that accepts gives the
/// claims. A refusal reports the first error that says more than "unknown token"
/// ([`TokenError::Inactive`], [`TokenError::Malformed`]: what a check says of a token that is
/// not its kind), else the first check's.
pub struct AnyOf(pub Vec<Arc<dyn TokenCheck>>);

impl std::fmt::Debug for AnyOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnyOf")
            .field("checks", &self.0.len())
            .finish()
    }
}

impl AnyOf {
    fn pick(errors: Vec<TokenError>) -> TokenError {
        let telling = errors
            .iter()
            .position(|e| !matches!(e, TokenError::Inactive | TokenError::Malformed(_)));
        match telling {
            Some(i) => errors.into_iter().nth(i),
            None => errors.into_iter().next(),
        }
        .unwrap_or(TokenError::NoKey)
    }
}

impl TokenCheck for AnyOf {
    fn check<'a>(
        &'a self,
        token: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Claims, TokenError>> {
        Box::pin(async move {
            let mut errors = Vec::with_capacity(self.0.len());
            for check in &self.0 {
                match check.check(token, now).await {
                    Ok(claims) => return Ok(claims),
                    Err(e) => errors.push(e),
                }
            }
            Err(Self::pick(errors))
        })
    }

    fn check_cached(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        let mut errors = Vec::with_capacity(self.0.len());
        for check in &self.0 {
            match check.check_cached(token, now) {
                Ok(claims) => return Ok(claims),
                Err(e) => errors.push(e),
            }
        }
        Err(Self::pick(errors))
    }
}

/// The seeds' JWT server events as hooks. Every method has a default.
pub trait GuardHooks: Send + Sync + 'static {
    /// Let this request through without a token (`OnJWTBeforeRequest` with `Cancel`).
    /// Default: false.
    fn bypass(&self, request: &Request) -> bool {
        let _ = request;
        false
    }

    /// A token passed (`OnJWTAfterValidateToken`): the user to record, or a reason to refuse
    /// (403). Default: the `sub` claim, else `client_id`, else an empty name.
    ///
    /// # Errors
    /// The reason, answered with 403 `insufficient_scope`.
    fn after_validation(&self, request: &Request, claims: &Claims) -> Result<String, String> {
        let _ = request;
        Ok(claims
            .sub()
            .or_else(|| claims.str("client_id"))
            .unwrap_or_default()
            .to_owned())
    }

    /// No token, or a bad one (`OnJWTUnauthorized`): return true to let the request go on
    /// without a user (then ws-server's own `AuthConfig`, if any, still applies). Default:
    /// false (refuse).
    fn unauthorized(&self, request: &Request, error: &TokenError) -> bool {
        let _ = (request, error);
        false
    }

    /// The refusal (`OnJWTResponseError`). Default: [`error_response`].
    fn error_response(&self, request: &Request, error: &TokenError, realm: &str) -> Response {
        let _ = request;
        error_response(error, realm)
    }
}

impl GuardHooks for Arc<dyn GuardHooks> {
    fn bypass(&self, request: &Request) -> bool {
        (**self).bypass(request)
    }

    fn after_validation(&self, request: &Request, claims: &Claims) -> Result<String, String> {
        (**self).after_validation(request, claims)
    }

    fn unauthorized(&self, request: &Request, error: &TokenError) -> bool {
        (**self).unauthorized(request, error)
    }

    fn error_response(&self, request: &Request, error: &TokenError, realm: &str) -> Response {
        (**self).error_response(request, error, realm)
    }
}

/// The default hooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultHooks;

impl GuardHooks for DefaultHooks {}

/// 401 with `WWW-Authenticate: Bearer realm=".."` plus `error="invalid_token"` and a
/// description when a token was there (RFC 6750 section 3.1); 403 `insufficient_scope` for a
/// hook's refusal. `Cache-Control: no-store`.
#[must_use]
pub fn error_response(error: &TokenError, realm: &str) -> Response {
    let (status, challenge) = match error {
        TokenError::Missing => (401, format!("Bearer realm=\"{realm}\"")),
        TokenError::Rejected(_) => (
            403,
            format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\", error_description=\"{}\"",
                error.description()
            ),
        ),
        _ => (
            401,
            format!(
                "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
                error.description()
            ),
        ),
    };
    Response::text(status, format!("{error}\n"))
        .with_header("WWW-Authenticate", challenge)
        .with_header("Cache-Control", "no-store")
}

/// A token check with its settings and hooks: makes [`Guard`]s, an `AuthConfig`, and reads
/// claims. Cheap to clone; keep a clone in the handler to read claims.
#[derive(Clone)]
pub struct JwtAuth {
    check: Arc<dyn TokenCheck>,
    config: Arc<Config>,
    public: Arc<AuthConfig>,
    hooks: Arc<dyn GuardHooks>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("sources", &self.config.sources)
            .field("public_paths", &self.config.public_paths)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Guards with `verifier` and its settings.
    #[must_use]
    pub fn new(verifier: Verifier) -> Self {
        let config = verifier.config().clone();
        Self::with_check(Arc::new(verifier), config)
    }

    /// Guards with any [`TokenCheck`] (the OAuth2 server's store, for opaque tokens).
    #[must_use]
    pub fn with_check(check: Arc<dyn TokenCheck>, config: Config) -> Self {
        let mut public = AuthConfig::default();
        public.public_paths.clone_from(&config.public_paths);
        Self {
            check,
            config: Arc::new(config),
            public: Arc::new(public),
            hooks: Arc::new(DefaultHooks),
        }
    }

    /// Replaces the hooks.
    #[must_use]
    pub fn with_hooks(mut self, hooks: impl GuardHooks) -> Self {
        self.hooks = Arc::new(hooks);
        self
    }

    /// Adds public paths (exact, or a prefix ending in `*`).
    #[must_use]
    pub fn with_public(mut self, paths: impl IntoIterator<Item = String>) -> Self {
        let mut public = (*self.public).clone();
        public.public_paths.extend(paths);
        self.public = Arc::new(public);
        self
    }

    /// Wraps `inner`: every request passes the guard first.
    #[must_use]
    pub fn guard<H: Handler>(&self, inner: H) -> Guard<H> {
        Guard {
            inner,
            auth: self.clone(),
        }
    }

    /// An `AuthConfig` for ws-server whose authenticator checks `Authorization: Bearer` and
    /// the first [`Location::Query`] of [`Config::sources`] (ws-server has no cookie or
    /// subprotocol hook; use [`JwtAuth::guard`] for those), with the public paths and a
    /// `WWW-Authenticate: Bearer` challenge next to ws-server's Basic one.
    #[must_use]
    pub fn auth_config(&self) -> AuthConfig {
        let mut auth = AuthConfig::with_authenticator(Arc::new(self.clone()));
        auth.query_param = self.config.sources.iter().find_map(|s| match s {
            Location::Query(n) => Some(n.clone()),
            _ => None,
        });
        auth.public_paths.clone_from(&self.public.public_paths);
        auth.realm.clone_from(&self.config.realm);
        auth.reject_headers.push((
            "WWW-Authenticate".into(),
            format!("Bearer realm=\"{}\"", self.config.realm),
        ));
        auth
    }

    fn bypassed(&self, request: &Request) -> bool {
        self.public.is_public(request.path())
            || (self.config.allow_cors_preflight
                && request.method() == "OPTIONS"
                && request.header("access-control-request-method").is_some())
            || self.hooks.bypass(request)
    }

    fn find(&self, headers: &ws_http::Headers, target: &str) -> Option<Found> {
        find_token(headers, target, &self.config.sources)
    }

    /// Checks the request's token: the user to record, or why not.
    ///
    /// # Errors
    /// Why the request is refused.
    pub async fn authenticate(&self, request: &Request) -> Result<String, TokenError> {
        let found = self
            .find(request.headers(), request.url())
            .ok_or(TokenError::Missing)?;
        let claims = self.check.check(&found.token, SystemTime::now()).await?;
        self.hooks
            .after_validation(request, &claims)
            .map_err(TokenError::Rejected)
    }

    /// The claims of the token of an HTTP request (checked again, with the keys at hand).
    ///
    /// # Errors
    /// [`TokenError::Missing`] without a token; why it is refused otherwise.
    pub fn claims(&self, request: &Request) -> Result<Claims, TokenError> {
        let found = self
            .find(request.headers(), request.url())
            .ok_or(TokenError::Missing)?;
        self.check.check_cached(&found.token, SystemTime::now())
    }

    /// The claims of the token an open WebSocket or SSE connection came with (from its
    /// upgrade request's headers and target: keep ws-server's `keep_request_headers` on).
    /// An expired token answers [`TokenError::Expired`]: a handler may close then.
    ///
    /// # Errors
    /// As [`JwtAuth::claims`].
    pub fn claims_of_conn(&self, info: &ConnInfo) -> Result<Claims, TokenError> {
        let found = self
            .find(info.headers(), info.url())
            .ok_or(TokenError::Missing)?;
        self.check.check_cached(&found.token, SystemTime::now())
    }
}

impl Authenticator for JwtAuth {
    fn scheme<'a>(
        &'a self,
        request: &'a Request,
        scheme: &'a str,
        data: &'a str,
    ) -> BoxFuture<'a, AuthOutcome> {
        Box::pin(async move {
            if !scheme.eq_ignore_ascii_case("bearer") {
                return AuthOutcome::Unauthorized;
            }
            self.outcome(request, data).await
        })
    }

    fn token<'a>(&'a self, request: &'a Request, token: &'a str) -> BoxFuture<'a, AuthOutcome> {
        Box::pin(self.outcome(request, token))
    }
}

impl JwtAuth {
    async fn outcome(&self, request: &Request, token: &str) -> AuthOutcome {
        match self.check.check(token, SystemTime::now()).await {
            Ok(claims) => match self.hooks.after_validation(request, &claims) {
                Ok(user) => AuthOutcome::allow(user),
                Err(_) => AuthOutcome::Forbidden,
            },
            Err(e) => {
                tracing::debug!(peer = %request.peer_addr(), path = request.path(), error = %e, "token refused");
                AuthOutcome::Unauthorized
            }
        }
    }
}

/// A [`Handler`] behind a token check (see the module docs).
#[derive(Debug)]
pub struct Guard<H> {
    inner: H,
    auth: JwtAuth,
}

impl<H> Guard<H> {
    /// The wrapped handler.
    #[must_use]
    pub fn inner(&self) -> &H {
        &self.inner
    }

    /// The token check.
    #[must_use]
    pub fn auth(&self) -> &JwtAuth {
        &self.auth
    }
}

/// The token check is in `on_before_request` (and plain TCP is refused); every other call is
/// the inner handler's (ws-server's [`Delegate`]).
impl<H: Handler> Delegate for Guard<H> {
    type Inner = H;

    fn inner(&self) -> &H {
        &self.inner
    }

    async fn on_unknown_protocol(&self, peer: SocketAddr, first_bytes: &[u8]) -> bool {
        // Plain TCP connections carry no token: refused whatever the inner handler says.
        let _ = (peer, first_bytes);
        false
    }

    async fn on_before_request(&self, request: &mut Request) -> Before {
        if !self.auth.bypassed(request) {
            match self.auth.authenticate(request).await {
                Ok(user) => request.set_user(Some(user)),
                Err(e) => {
                    if !self.auth.hooks.unauthorized(request, &e) {
                        tracing::info!(peer = %request.peer_addr(), path = request.path(), error = %e, "request refused");
                        return Before::Respond(self.auth.hooks.error_response(
                            request,
                            &e,
                            &self.auth.config.realm,
                        ));
                    }
                }
            }
        }
        self.inner.on_before_request(request).await
    }

    async fn on_handshake(&self, request: &Request) -> Decision {
        let decision = self.inner.on_handshake(request).await;
        if !self.auth.config.echo_token_protocol {
            return decision;
        }
        match decision {
            Decision::Accept {
                protocol: None,
                headers,
            } => {
                let offered = request.protocols();
                let entry = self
                    .auth
                    .find(request.headers(), request.url())
                    .and_then(|f| f.protocol_entry);
                match entry {
                    Some(entry) if offered.len() == 1 => Decision::Accept {
                        protocol: Some(entry),
                        headers,
                    },
                    _ => Decision::Accept {
                        protocol: None,
                        headers,
                    },
                }
            }
            other => other,
        }
    }
}
