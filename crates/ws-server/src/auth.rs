//! Authentication of every request: WebSocket upgrades, server-sent event streams, static
//! files and the handler's HTTP routes alike, except the paths listed in
//! [`AuthConfig::public_paths`].
//!
//! ```text
//!  Authorization: Basic u:p --> AuthConfig::users --no--> Authenticator::basic
//!  Authorization: <Scheme> d ---------------------------> Authenticator::scheme  (Bearer, ...)
//!  ?<query_param>=token --------------------------------> Authenticator::token
//!  nothing ---------------------------------------------> 401 + WWW-Authenticate: Basic
//! ```
//!
//! [`Authenticator`] is a trait so that token verifiers (JWT, OAuth2 introspection) can plug in.
//! The seed's credentials-in-the-path modes ([`AuthConfig::sgc`], off by default) are described in
//! [`crate::SgcAuth`].

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use base64::Engine as _;

use crate::{error::Error, request::Request, sgc_auth::SgcAuth};

/// A boxed future, as returned by [`Authenticator`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The verdict on a request's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthOutcome {
    /// Let the request in, as this user (recorded in [`crate::ConnInfo::user`]).
    Allow {
        /// Authenticated identity, if any.
        user: Option<String>,
    },
    /// Unknown or wrong credentials: 401 with a `WWW-Authenticate` challenge.
    Unauthorized,
    /// Valid credentials without permission: 403.
    Forbidden,
}

impl AuthOutcome {
    /// Allow as `user`.
    #[must_use]
    pub fn allow(user: impl Into<String>) -> Self {
        Self::Allow {
            user: Some(user.into()),
        }
    }
}

/// Decides credentials the built-in user list does not settle. Every method defaults to
/// [`AuthOutcome::Unauthorized`].
pub trait Authenticator: Send + Sync + 'static {
    /// `Authorization: Basic` credentials not found in [`AuthConfig::users`]
    /// (the seeds' `OnAuthentication`).
    fn basic<'a>(
        &'a self,
        request: &'a Request,
        user: &'a str,
        password: &'a str,
    ) -> BoxFuture<'a, AuthOutcome> {
        let _ = (request, user, password);
        Box::pin(async { AuthOutcome::Unauthorized })
    }

    /// Any other `Authorization` scheme, e.g. `Bearer` (the seeds' `OnUnknownAuthentication`).
    /// `scheme` keeps the client's spelling; compare it case-insensitively.
    fn scheme<'a>(
        &'a self,
        request: &'a Request,
        scheme: &'a str,
        data: &'a str,
    ) -> BoxFuture<'a, AuthOutcome> {
        let _ = (request, scheme, data);
        Box::pin(async { AuthOutcome::Unauthorized })
    }

    /// A token from the [`AuthConfig::query_param`] query parameter (percent-decoded).
    fn token<'a>(&'a self, request: &'a Request, token: &'a str) -> BoxFuture<'a, AuthOutcome> {
        let _ = (request, token);
        Box::pin(async { AuthOutcome::Unauthorized })
    }
}

/// Authentication settings. With an `AuthConfig` in [`crate::ServerConfig::auth`], every
/// request must authenticate (upgrades, SSE, static files, [`crate::Handler::on_http`]
/// routes) unless its path is in [`AuthConfig::public_paths`] or
/// [`crate::Handler::on_before_request`] already recorded a user with
/// [`crate::Request::set_user`].
#[derive(Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Users accepted with `Authorization: Basic`, as `(user, password)`. Default: empty.
    pub users: Vec<(String, String)>,
    /// Realm in the `WWW-Authenticate: Basic` challenge. Default: [`AuthConfig::DEFAULT_REALM`].
    pub realm: String,
    /// Query parameter that may carry a token (`/ws?token=...`), checked by
    /// [`Authenticator::token`]. Default: `None`.
    pub query_param: Option<String>,
    /// Extra headers added to 401 and 403 responses. Default: empty.
    pub reject_headers: Vec<(String, String)>,
    /// Callback for what the user list does not settle. Default: `None`.
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Paths served without credentials. An entry matches the request path (without the
    /// query, as sent) exactly, or, when it ends with `*`, every path that starts with what
    /// precedes the `*` (`/static/*`). A path with a `.` or `..` segment, raw or
    /// percent-encoded, or with a backslash, is never public. Default: empty (every path needs
    /// credentials).
    pub public_paths: Vec<String>,
    /// The seed's credentials in the path: `/sgc/auth/url/USER/PASSWORD` and the session-token
    /// mode ([`SgcAuth`]). Default: both off.
    pub sgc: SgcAuth,
}

impl AuthConfig {
    /// Default of [`AuthConfig::realm`].
    pub const DEFAULT_REALM: &str = "wskit";

    /// Basic authentication against a user list.
    #[must_use]
    pub fn basic(users: Vec<(String, String)>) -> Self {
        Self {
            users,
            ..Self::default()
        }
    }

    /// Everything goes to `authenticator`.
    #[must_use]
    pub fn with_authenticator(authenticator: Arc<dyn Authenticator>) -> Self {
        Self {
            authenticator: Some(authenticator),
            ..Self::default()
        }
    }

    /// Adds `path` to [`AuthConfig::public_paths`].
    #[must_use]
    pub fn with_public(mut self, path: impl Into<String>) -> Self {
        self.public_paths.push(path.into());
        self
    }

    /// Whether `path` (a request path without its query) may be served without credentials
    /// (see [`AuthConfig::public_paths`]).
    #[must_use]
    pub fn is_public(&self, path: &str) -> bool {
        if self.public_paths.is_empty() || !plain_path(path) {
            return false;
        }
        self.public_paths.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => p == path,
        })
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::SettingValue`] for an empty user name, a user name with `:`, or a public path
    /// that does not start with `/`; [`Error::Setting`] for a realm with `"` or a line break,
    /// or an empty query parameter name.
    pub fn validate(&self) -> Result<(), Error> {
        for path in &self.public_paths {
            if !path.starts_with('/') {
                return Err(Error::bad_value(
                    "auth.public_paths",
                    path,
                    "must start with `/` (e.g. /health or /static/*)",
                ));
            }
        }
        for (user, _) in &self.users {
            if user.is_empty() || user.contains(':') {
                return Err(Error::bad_value(
                    "auth.users",
                    user,
                    "must be a non-empty Basic user name without `:`",
                ));
            }
        }
        if self.realm.contains('"') || self.realm.contains(['\r', '\n']) {
            return Err(Error::Setting {
                field: "auth.realm",
                rule: "must not contain quotes or line breaks",
            });
        }
        if self.query_param.as_deref() == Some("") {
            return Err(Error::Setting {
                field: "auth.query_param",
                rule: "must not be empty (leave it unset to take no token from the query)",
            });
        }
        Ok(())
    }

    /// Checks a user and password as `Authorization: Basic` credentials are checked: the user
    /// list, then [`Authenticator::basic`].
    pub async fn check_password(
        &self,
        request: &Request,
        user: &str,
        password: &str,
    ) -> AuthOutcome {
        if self.lookup(user, password) {
            return AuthOutcome::allow(user);
        }
        match &self.authenticator {
            Some(a) => a.basic(request, user, password).await,
            None => AuthOutcome::Unauthorized,
        }
    }

    fn lookup(&self, user: &str, password: &str) -> bool {
        self.users
            .iter()
            .any(|(u, p)| u == user && ct_eq(p.as_bytes(), password.as_bytes()))
    }

    /// Checks the credentials of `request` as the server does for upgrade requests (flow in
    /// the module docs); usable from [`crate::Handler::on_before_request`] to protect plain
    /// HTTP routes too.
    pub async fn authenticate(&self, request: &Request) -> AuthOutcome {
        if let Some(value) = request.header("authorization") {
            let value = value.trim();
            let (scheme, data) = value.split_once(' ').unwrap_or((value, ""));
            let data = data.trim();
            if scheme.eq_ignore_ascii_case("basic") {
                let Some((user, password)) = decode_basic(data) else {
                    return AuthOutcome::Unauthorized;
                };
                return self.check_password(request, &user, &password).await;
            }
            return match &self.authenticator {
                Some(a) => a.scheme(request, scheme, data).await,
                None => AuthOutcome::Unauthorized,
            };
        }
        if let (Some(param), Some(a)) = (&self.query_param, &self.authenticator) {
            if let Some(token) = request.query_param(param) {
                return a.token(request, &token).await;
            }
        }
        AuthOutcome::Unauthorized
    }

    /// Headers of a rejection with `status`: the `WWW-Authenticate: Basic` challenge for 401,
    /// then [`AuthConfig::reject_headers`].
    #[must_use]
    pub fn rejection_headers(&self, status: u16) -> Vec<(String, String)> {
        let mut headers = Vec::with_capacity(self.reject_headers.len() + 1);
        if status == 401 {
            headers.push((
                "WWW-Authenticate".to_owned(),
                format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm),
            ));
        }
        headers.extend(self.reject_headers.iter().cloned());
        headers
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            users: Vec::new(),
            realm: Self::DEFAULT_REALM.to_owned(),
            query_param: None,
            reject_headers: Vec::new(),
            authenticator: None,
            public_paths: Vec::new(),
            sgc: SgcAuth::default(),
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords are never printed.
        f.debug_struct("AuthConfig")
            .field(
                "users",
                &self.users.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .field("realm", &self.realm)
            .field("query_param", &self.query_param)
            .field("reject_headers", &self.reject_headers)
            .field("authenticator", &self.authenticator.is_some())
            .field("public_paths", &self.public_paths)
            .finish()
    }
}

/// A path without dot segments (raw or percent-encoded) and backslashes, so that a public
/// prefix cannot be walked out of.
fn plain_path(path: &str) -> bool {
    if path.contains('\\') {
        return false;
    }
    let decoded;
    let path = if path.contains('%') {
        match ws_http::percent_decode(&path.replace('+', "%2B")) {
            Some(d) if !d.contains('\\') => {
                decoded = d;
                decoded.as_str()
            }
            _ => return false,
        }
    } else {
        path
    };
    path.split('/').all(|seg| seg != "." && seg != "..")
}

fn decode_basic(data: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Compares without an early exit on the first differing byte.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_decode() {
        assert_eq!(
            decode_basic("YWxhZGRpbjpvcGVuc2VzYW1l"),
            Some(("aladdin".into(), "opensesame".into()))
        );
        assert_eq!(decode_basic("!!"), None);
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn public_paths_match_exactly_or_by_prefix() {
        let auth = AuthConfig::basic(vec![("a".into(), "b".into())])
            .with_public("/health")
            .with_public("/static/*");
        assert!(auth.validate().is_ok());
        assert!(auth.is_public("/health"));
        assert!(!auth.is_public("/health/x"));
        assert!(!auth.is_public("/healthz"));
        assert!(auth.is_public("/static/app.js"));
        assert!(auth.is_public("/static/"));
        assert!(!auth.is_public("/static"));
        assert!(!auth.is_public("/"));
        // No walking out of a public prefix.
        assert!(!auth.is_public("/static/../secret.txt"));
        assert!(!auth.is_public("/static/%2e%2e/secret.txt"));
        assert!(!auth.is_public("/static/%2E%2E/secret.txt"));
        assert!(!auth.is_public("/static/./x"));
        assert!(!auth.is_public("/static/..\\secret.txt"));
        assert!(!auth.is_public("/static/%5c..%5csecret.txt"));
        assert!(!AuthConfig::default().is_public("/health"));
        assert!(
            AuthConfig::default()
                .with_public("health")
                .validate()
                .is_err()
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(ws_http::percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(ws_http::percent_decode("%zz"), None);
        assert_eq!(ws_http::percent_decode("%4"), None);
    }

    #[test]
    fn invalid_auth_config_is_rejected() {
        let e = AuthConfig::basic(vec![("a:b".into(), "x".into())])
            .validate()
            .unwrap_err();
        assert!(
            matches!(&e, Error::SettingValue(b) if b.field == "auth.users" && b.value == "a:b"),
            "{e:?}"
        );
        assert!(e.to_string().contains("without `:`"), "{e}");
        let e = AuthConfig::default()
            .with_public("health")
            .validate()
            .unwrap_err();
        assert!(
            matches!(&e, Error::SettingValue(b) if b.field == "auth.public_paths" && b.value == "health"),
            "{e:?}"
        );
        let realm = AuthConfig {
            realm: "a\"b".into(),
            ..AuthConfig::default()
        };
        assert!(matches!(
            realm.validate(),
            Err(Error::Setting {
                field: "auth.realm",
                ..
            })
        ));
        let query = AuthConfig {
            query_param: Some(String::new()),
            ..AuthConfig::default()
        };
        assert!(matches!(
            query.validate(),
            Err(Error::Setting {
                field: "auth.query_param",
                ..
            })
        ));
        assert!(
            AuthConfig::basic(vec![("ab".into(), "x".into())])
                .validate()
                .is_ok()
        );
        let dbg = format!(
            "{:?}",
            AuthConfig::basic(vec![("ab".into(), "secret".into())])
        );
        assert!(!dbg.contains("secret"));
    }
}
