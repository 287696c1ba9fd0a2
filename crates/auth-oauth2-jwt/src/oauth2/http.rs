//! The authorization server on a ws-server port: [`OAuth2::wrap`] puts the endpoints in
//! front of a [`Handler`] and every other route (WebSocket upgrades included) behind a valid
//! access token.
//!
//! ```text
//!  request --> endpoint path? (authorize, token, introspect, revoke, metadata) --> answered here
//!     | no
//!     v
//!  Guard (access token from the configured places, checked against the store) --> inner handler
//! ```

use std::{sync::Arc, time::SystemTime};

use serde_json::{Value, json};
use ws_server::{Body, BoxFuture, Handler, Request, Response, delegate::Delegate};

use crate::{
    error::{OAuthError, TokenError},
    guard::{AnyOf, Guard, GuardHooks, JwtAuth, TokenCheck},
    jwt::claims::Claims,
    oauth2::server::{AuthServer, AuthorizeAnswer, SignInPage, parse_form},
};

impl TokenCheck for AuthServer {
    fn check<'a>(
        &'a self,
        token: &'a str,
        now: SystemTime,
    ) -> BoxFuture<'a, Result<Claims, TokenError>> {
        let result = self.check_access(token, now);
        Box::pin(async move { result })
    }

    fn check_cached(&self, token: &str, now: SystemTime) -> Result<Claims, TokenError> {
        self.check_access(token, now)
    }
}

/// Renders the sign-in page (the seed's `OnOAuth2BeforeDispatchPage`).
pub type PageHook = Arc<dyn Fn(&SignInPage, &str) -> String + Send + Sync>;

/// The default sign-in and consent page: a template with `{{client_name}}`, `{{scope}}`,
/// `{{message}}`, `{{action}}`, `{{id}}` and `{{csrf}}` (HTML-escaped when filled in). A
/// replacement must keep the form fields `id`, `csrf`, `username`, `password` and `action`.
pub const DEFAULT_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Sign in</title>
<style>body{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}
label,input,button{display:block;width:100%;margin:.4rem 0}input,button{padding:.5rem;box-sizing:border-box}
.msg{color:#b00}.row{display:flex;gap:.5rem}</style></head>
<body><h1>Sign in</h1>
<p><b>{{client_name}}</b> asks for access{{scope}}.</p>
<p class="msg">{{message}}</p>
<form method="post" action="{{action}}">
<input type="hidden" name="id" value="{{id}}"><input type="hidden" name="csrf" value="{{csrf}}">
<label>User name <input name="username" autocomplete="username" required></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required></label>
<div class="row"><button name="action" value="allow">Allow</button>
<button name="action" value="deny" formnovalidate>Deny</button></div>
</form></body></html>
"#;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Fills [`DEFAULT_PAGE`]-style `template` with `page`'s data.
#[must_use]
pub fn render_page(template: &str, page: &SignInPage, action: &str) -> String {
    let scope = if page.scope.is_empty() {
        String::new()
    } else {
        format!(" ({})", escape(&page.scope))
    };
    template
        .replace("{{client_name}}", &escape(&page.client_name))
        .replace("{{scope}}", &scope)
        .replace("{{message}}", &escape(&page.message))
        .replace("{{action}}", &escape(action))
        .replace("{{id}}", &escape(&page.id))
        .replace("{{csrf}}", &escape(&page.csrf))
}

/// The authorization server's HTTP face and its access-token guard. Cheap to clone.
#[derive(Clone)]
pub struct OAuth2 {
    server: Arc<AuthServer>,
    page: PageHook,
    guard_hooks: Option<Arc<dyn GuardHooks>>,
    also: Option<Arc<dyn TokenCheck>>,
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Largest form body accepted by the endpoints.
const MAX_FORM: usize = 16 * 1024;

impl OAuth2 {
    /// Serves `server`.
    #[must_use]
    pub fn new(server: AuthServer) -> Self {
        Self {
            server: Arc::new(server),
            page: Arc::new(|page, action| render_page(DEFAULT_PAGE, page, action)),
            guard_hooks: None,
            also: None,
        }
    }

    /// Replaces the sign-in page renderer.
    #[must_use]
    pub fn with_page(mut self, page: PageHook) -> Self {
        self.page = page;
        self
    }

    /// Hooks of the access-token guard: bypass (the seed's `OnOAuth2BeforeRequest`), after
    /// validation (`OnOAuth2AfterValidateAccessToken`), unauthorized (`OnOAuth2Unauthorized`)
    /// and the refusal.
    #[must_use]
    pub fn with_guard_hooks(mut self, hooks: Arc<dyn GuardHooks>) -> Self {
        self.guard_hooks = Some(hooks);
        self
    }

    /// Also accept the tokens `check` accepts on the guarded routes: the seed's JWT attachment
    /// beside its OAuth2 one, e.g. a [`crate::Verifier`] for JWTs from another issuer. The
    /// server's own access tokens are tried first ([`crate::guard::AnyOf`]).
    #[must_use]
    pub fn with_also_accepted(mut self, check: Arc<dyn TokenCheck>) -> Self {
        self.also = Some(check);
        self
    }

    /// The core.
    #[must_use]
    pub fn server(&self) -> &Arc<AuthServer> {
        &self.server
    }

    /// The access-token guard (endpoints public), to read claims in a handler.
    #[must_use]
    pub fn auth(&self) -> JwtAuth {
        let config = self.server.config().clone();
        let endpoints: Vec<String> = config
            .oauth2
            .endpoint_paths()
            .iter()
            .map(|p| (*p).to_owned())
            .collect();
        let check: Arc<dyn TokenCheck> = match &self.also {
            Some(also) => Arc::new(AnyOf(vec![self.server.clone(), also.clone()])),
            None => self.server.clone(),
        };
        let auth = JwtAuth::with_check(check, config).with_public(endpoints);
        match &self.guard_hooks {
            Some(hooks) => auth.with_hooks(hooks.clone()),
            None => auth,
        }
    }

    /// Serves the endpoints in front of `inner`, whose routes all need an access token.
    #[must_use]
    pub fn wrap<H: Handler>(&self, inner: H) -> OAuth2Routes<H> {
        OAuth2Routes {
            inner: self.auth().guard(inner),
            oauth2: self.clone(),
        }
    }

    fn json(status: u16, value: &Value) -> Response {
        Response::new(status)
            .with_header("Content-Type", "application/json")
            .with_header("Cache-Control", "no-store")
            .with_header("Pragma", "no-cache")
            .with_body(value.to_string())
    }

    fn oauth_error(e: &OAuthError) -> Response {
        let mut resp = Self::json(
            e.status(),
            &json!({"error": e.code, "error_description": e.description}),
        );
        if e.status() == 401 {
            resp = resp.with_header("WWW-Authenticate", "Basic realm=\"oauth2\"");
        }
        resp
    }

    fn page_response(&self, answer: AuthorizeAnswer) -> Response {
        let action = &self.server.config().oauth2.authorize_path;
        match answer {
            AuthorizeAnswer::Page { page, .. } => {
                let html = (self.page)(&page, action);
                Response::new(200)
                    .with_header("Content-Type", "text/html; charset=utf-8")
                    .with_header("Cache-Control", "no-store")
                    .with_header("X-Frame-Options", "DENY")
                    .with_header(
                        "Content-Security-Policy",
                        "frame-ancestors 'none'; form-action 'self'",
                    )
                    .with_header("Referrer-Policy", "no-referrer")
                    .with_header(
                        "Set-Cookie",
                        format!(
                            "oauth2_csrf={}; Path={action}; HttpOnly; SameSite=Strict",
                            page.csrf
                        ),
                    )
                    .with_body(html)
            }
            AuthorizeAnswer::Redirect(url) => Response::new(302)
                .with_header("Location", url)
                .with_header("Cache-Control", "no-store"),
            AuthorizeAnswer::Error { status, message } => {
                Response::text(status, format!("{message}\n"))
                    .with_header("Cache-Control", "no-store")
                    .with_header("X-Frame-Options", "DENY")
            }
        }
    }

    async fn form_body(body: &mut Body<'_>) -> Result<String, Response> {
        if body.content_length().is_some_and(|n| n > MAX_FORM as u64) {
            return Err(Response::text(413, "form too large\n"));
        }
        let bytes = body
            .bytes()
            .await
            .map_err(|_| Response::text(400, "unreadable body\n"))?;
        if bytes.len() > MAX_FORM {
            return Err(Response::text(413, "form too large\n"));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| Response::text(400, "form is not UTF-8\n"))
    }

    /// Answers `request` when it is for an endpoint.
    async fn handle(&self, request: &Request, body: &mut Body<'_>) -> Option<Response> {
        let o = &self.server.config().oauth2;
        let path = request.path();
        let method = request.method();
        let now = SystemTime::now();
        let auth = request.header("authorization");
        let answer = if path == crate::config::OAuth2Config::METADATA_PATH {
            Self::json(200, &self.server.metadata())
        } else if path == o.jwks_path {
            Response::new(200)
                .with_header("Content-Type", "application/jwk-set+json")
                .with_header("Cache-Control", "max-age=300")
                .with_body(self.server.jwks().to_string())
        } else if path == o.authorize_path && method == "GET" {
            self.page_response(self.server.authorize(request.query().unwrap_or(""), now))
        } else if path == o.authorize_path && method == "POST" {
            let body = match Self::form_body(body).await {
                Ok(b) => b,
                Err(r) => return Some(r),
            };
            let Ok(form) = parse_form(&body) else {
                return Some(Response::text(400, "bad form\n"));
            };
            let answer = self
                .server
                .sign_in(&form, request.cookie("oauth2_csrf"), now);
            if let AuthorizeAnswer::Page { delay, .. } = &answer {
                if !delay.is_zero() {
                    tokio::time::sleep(*delay).await;
                }
            }
            self.page_response(answer)
        } else if [&o.token_path, &o.introspect_path, &o.revoke_path].contains(&&path.to_owned()) {
            if method != "POST" {
                return Some(Response::text(405, "use POST\n").with_header("Allow", "POST"));
            }
            let body = match Self::form_body(body).await {
                Ok(b) => b,
                Err(r) => return Some(r),
            };
            let result = if path == o.token_path {
                self.server
                    .token(&body, auth, now)
                    .map(|v| Self::json(200, &v))
            } else if path == o.introspect_path {
                self.server
                    .introspect(&body, auth, now)
                    .map(|v| Self::json(200, &v))
            } else {
                self.server
                    .revoke(&body, auth)
                    .map(|()| Response::new(200).with_header("Cache-Control", "no-store"))
            };
            result.unwrap_or_else(|e| Self::oauth_error(&e))
        } else if path == o.authorize_path {
            Response::text(405, "use GET or POST\n").with_header("Allow", "GET, POST")
        } else {
            return None;
        };
        Some(answer)
    }
}

/// A [`Handler`] with the OAuth2 endpoints in front and the access-token [`Guard`] around
/// `H` (see the module docs).
#[derive(Debug)]
pub struct OAuth2Routes<H> {
    inner: Guard<H>,
    oauth2: OAuth2,
}

/// The OAuth2 endpoints in `on_http`; every other call is the guard's (ws-server's
/// [`Delegate`]).
impl<H: Handler> Delegate for OAuth2Routes<H> {
    type Inner = Guard<H>;

    fn inner(&self) -> &Guard<H> {
        &self.inner
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        match self.oauth2.handle(request, body).await {
            Some(r) => r,
            None => Handler::on_http(&self.inner, request, body).await,
        }
    }
}
