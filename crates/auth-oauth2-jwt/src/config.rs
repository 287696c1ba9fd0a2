//! [`Config`]: every setting of the crate, with its default.

use std::time::Duration;

use crate::error::Error;

/// Where a server looks for the token, tried in the order of [`Config::sources`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Location {
    /// `Authorization: Bearer <token>` (RFC 6750 section 2.1).
    Header,
    /// A query parameter, `?access_token=<token>` by default (RFC 6750 section 2.3; tokens in
    /// URLs can end up in proxy logs, prefer the other places where the client can).
    Query(String),
    /// A cookie, e.g. `access_token=<token>`.
    Cookie(String),
    /// A `Sec-WebSocket-Protocol` entry `<prefix><token>` (`bearer.<token>` by default), for
    /// browsers, which cannot set headers on a WebSocket:
    /// `new WebSocket(url, ["chat", "bearer." + token])`.
    Protocol(String),
}

impl Location {
    /// Default query parameter name.
    pub const DEFAULT_QUERY: &str = "access_token";
    /// Default cookie name.
    pub const DEFAULT_COOKIE: &str = "access_token";
    /// Default `Sec-WebSocket-Protocol` prefix.
    pub const DEFAULT_PROTOCOL_PREFIX: &str = "bearer.";

    /// The default order: header, query parameter, cookie, subprotocol.
    #[must_use]
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::Header,
            Self::Query(Self::DEFAULT_QUERY.into()),
            Self::Cookie(Self::DEFAULT_COOKIE.into()),
            Self::Protocol(Self::DEFAULT_PROTOCOL_PREFIX.into()),
        ]
    }

    /// Parses `header`, `query[:NAME]`, `cookie[:NAME]` or `protocol[:PREFIX]`.
    ///
    /// # Errors
    /// [`Error::ConfigValue`] for anything else.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (kind, name) = match s.split_once(':') {
            Some((k, n)) => (k, Some(n.to_owned())),
            None => (s, None),
        };
        Ok(match kind {
            "header" if name.is_none() => Self::Header,
            "query" => Self::Query(name.unwrap_or_else(|| Self::DEFAULT_QUERY.into())),
            "cookie" => Self::Cookie(name.unwrap_or_else(|| Self::DEFAULT_COOKIE.into())),
            "protocol" => {
                Self::Protocol(name.unwrap_or_else(|| Self::DEFAULT_PROTOCOL_PREFIX.into()))
            }
            _ => {
                return Err(Error::ConfigValue {
                    field: "token source",
                    value: s.to_owned(),
                    rule: "must be header, query[:NAME], cookie[:NAME] or protocol[:PREFIX]",
                });
            }
        })
    }
}

/// All settings of JWT verification, the server-side guard, JWKS caching and the OAuth2
/// authorization server. Build with `Config::default()` and change fields; check with
/// [`Config::validate`] (constructors that take a `Config` call it).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default: [`Config::DEFAULT_LEEWAY`]
    /// (60 s).
    pub leeway: Duration,
    /// Accepted issuers; when non-empty `iss` must be one of them. Default: empty (not
    /// checked).
    pub issuers: Vec<String>,
    /// Accepted audiences; when non-empty `aud` must name one. When empty, a token that
    /// carries `aud` is refused (RFC 7519 section 4.1.3). Default: empty.
    pub audiences: Vec<String>,
    /// Claims that must be present. Default: `["exp"]` (a token without expiry is refused).
    pub required_claims: Vec<String>,
    /// Oldest acceptable `iat`, when set (tokens issued longer ago are refused even if `exp`
    /// is later). Default: `None`.
    pub max_age: Option<Duration>,
    /// Longest accepted token, checked before any decoding. Default:
    /// [`Config::DEFAULT_MAX_TOKEN_LEN`] (8 KiB, as a common HTTP header field limit).
    pub max_token_len: usize,
    /// Where the server looks for the token, in order; the first place that has one decides.
    /// Default: [`Location::defaults`] (header, `access_token` query parameter,
    /// `access_token` cookie, `bearer.` subprotocol).
    pub sources: Vec<Location>,
    /// Paths served without a token: exact, or a prefix ending in `*` (as ws-server's
    /// `AuthConfig::public_paths`; paths with dot segments never match). Default: empty.
    pub public_paths: Vec<String>,
    /// Let CORS preflight requests (`OPTIONS` with `Access-Control-Request-Method`) through
    /// without a token (browsers never send credentials on them). Default: `false`.
    pub allow_cors_preflight: bool,
    /// Realm in the `WWW-Authenticate: Bearer` challenge. Default: [`Config::DEFAULT_REALM`].
    pub realm: String,
    /// When a WebSocket token came in `Sec-WebSocket-Protocol` and the client offered no
    /// other subprotocol, select the token entry in the 101 answer (browsers fail a
    /// connection whose offered subprotocols get no answer). Default: `true`.
    pub echo_token_protocol: bool,
    /// A fetched JWKS is fetched again after this long. Default:
    /// [`Config::DEFAULT_JWKS_MAX_AGE`] (1 hour).
    pub jwks_max_age: Duration,
    /// At most one JWKS fetch per this interval, whatever unknown `kid`s arrive (a flood of
    /// made-up key ids cannot make the server hammer the key server). Default:
    /// [`Config::DEFAULT_JWKS_MIN_REFRESH`] (30 s).
    pub jwks_min_refresh: Duration,
    /// Largest JWKS document accepted. Default: 256 KiB.
    pub jwks_max_bytes: usize,
    /// Time allowed for one JWKS fetch (connect, TLS, response). Default: 10 s.
    pub jwks_timeout: Duration,
    /// Algorithms allowed for a JWKS RSA key that has no `alg` member (EC and OKP keys
    /// take theirs from the curve). Default: `["RS256"]`.
    pub jwks_rsa_algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Allow a JWKS URL with `http://` when its host is a loopback address (tests, a local
    /// sidecar); other `http://` URLs are always refused. Default: `false`.
    pub jwks_allow_loopback_http: bool,
    /// OAuth2 authorization server settings.
    pub oauth2: OAuth2Config,
}

impl Config {
    /// Default of [`Config::leeway`].
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
    /// Default of [`Config::max_token_len`].
    pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
    /// Default of [`Config::realm`].
    pub const DEFAULT_REALM: &str = "wskit";
    /// Default of [`Config::jwks_max_age`].
    pub const DEFAULT_JWKS_MAX_AGE: Duration = Duration::from_secs(3600);
    /// Default of [`Config::jwks_min_refresh`].
    pub const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);
    /// Default of [`Config::jwks_max_bytes`].
    pub const DEFAULT_JWKS_MAX_BYTES: usize = 256 * 1024;

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] or [`Error::ConfigValue`]: no token source, an empty source name, a public path not starting
    /// with `/`, a realm with quotes, a zero `max_token_len`, invalid OAuth2 settings.
    pub fn validate(&self) -> Result<(), Error> {
        if self.sources.is_empty() {
            return Err(Error::Config {
                field: "sources",
                rule: "must name at least one token source",
            });
        }
        for s in &self.sources {
            match s {
                Location::Query(n) | Location::Cookie(n) | Location::Protocol(n)
                    if n.is_empty() =>
                {
                    return Err(Error::ConfigValue {
                        field: "token source",
                        value: format!("{s:?}"),
                        rule: "must not have an empty name",
                    });
                }
                _ => {}
            }
        }
        if let Some(p) = self.public_paths.iter().find(|p| !p.starts_with('/')) {
            return Err(Error::ConfigValue {
                field: "public path",
                value: p.clone(),
                rule: "must start with /",
            });
        }
        if self.realm.contains(['"', '\r', '\n', '\\']) {
            return Err(Error::Config {
                field: "realm",
                rule: "must not contain quotes, backslashes or line breaks",
            });
        }
        if self.max_token_len == 0 {
            return Err(Error::Config {
                field: "max_token_len",
                rule: "must not be 0",
            });
        }
        self.oauth2.validate()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            leeway: Self::DEFAULT_LEEWAY,
            issuers: Vec::new(),
            audiences: Vec::new(),
            required_claims: vec!["exp".into()],
            max_age: None,
            max_token_len: Self::DEFAULT_MAX_TOKEN_LEN,
            sources: Location::defaults(),
            public_paths: Vec::new(),
            allow_cors_preflight: false,
            realm: Self::DEFAULT_REALM.into(),
            echo_token_protocol: true,
            jwks_max_age: Self::DEFAULT_JWKS_MAX_AGE,
            jwks_min_refresh: Self::DEFAULT_JWKS_MIN_REFRESH,
            jwks_max_bytes: Self::DEFAULT_JWKS_MAX_BYTES,
            jwks_timeout: Duration::from_secs(10),
            jwks_rsa_algorithms: vec![jsonwebtoken::Algorithm::RS256],
            jwks_allow_loopback_http: false,
            oauth2: OAuth2Config::default(),
        }
    }
}

/// Endpoint paths and token policy of the OAuth2 authorization server (part of [`Config`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OAuth2Config {
    /// The issuer identifier (RFC 8414 `issuer`, RFC 9207 `iss`): the server's base URL, e.g.
    /// `https://auth.example.com`. Default: `http://127.0.0.1:8080`.
    pub issuer: String,
    /// Authorization endpoint path. Default: `/oauth2/authorize` (the seed's preset:
    /// [`OAuth2Config::sgc_paths`]).
    pub authorize_path: String,
    /// Token endpoint path. Default: `/oauth2/token`.
    pub token_path: String,
    /// Introspection endpoint path (RFC 7662). Default: `/oauth2/introspect`.
    pub introspect_path: String,
    /// Revocation endpoint path (RFC 7009). Default: `/oauth2/revoke`.
    pub revoke_path: String,
    /// JWKS path (the key of JWT access tokens, RFC 9068). Default: `/oauth2/jwks`.
    pub jwks_path: String,
    /// Access token lifetime when the app sets none. Default: 3600 s.
    pub access_token_ttl: Duration,
    /// Refresh token lifetime. Default: 30 days.
    pub refresh_token_ttl: Duration,
    /// Authorization code lifetime (RFC 6749 recommends at most 10 minutes). Default: 60 s.
    pub code_ttl: Duration,
    /// Lifetime of a pending sign-in (the consent form's request id and CSRF token).
    /// Default: 600 s.
    pub pending_ttl: Duration,
    /// Require PKCE (S256) for confidential clients too (always required for public ones).
    /// Default: `true`.
    pub require_pkce: bool,
    /// Allow the resource owner password grant (RFC 6749 section 4.3; deprecated by OAuth 2.1).
    /// Default: `false`.
    pub allow_password_grant: bool,
    /// Wrong passwords tolerated per user name before sign-ins for it are slowed down. Default:
    /// 3.
    pub sign_in_free_failures: u32,
    /// Delay added per failure beyond [`OAuth2Config::sign_in_free_failures`] (doubling, at
    /// most 30 s). Default: 1 s.
    pub sign_in_delay: Duration,
}

impl OAuth2Config {
    /// The seed's endpoint paths, `/sgc/oauth2/auth` and `/sgc/oauth2/token` (the other
    /// endpoints stay where they are), for clients written against the seed.
    #[must_use]
    pub fn sgc_paths(mut self) -> Self {
        self.authorize_path = "/sgc/oauth2/auth".into();
        self.token_path = "/sgc/oauth2/token".into();
        self
    }

    /// RFC 8414 metadata path.
    pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

    /// All endpoint paths (they are served without an access token).
    #[must_use]
    pub fn endpoint_paths(&self) -> [&str; 6] {
        [
            &self.authorize_path,
            &self.token_path,
            &self.introspect_path,
            &self.revoke_path,
            &self.jwks_path,
            Self::METADATA_PATH,
        ]
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::ConfigValue`] or [`Error::Config`] for a path not starting with `/`, an issuer that is not an
    /// `http(s)://` URL without query or fragment, or a zero lifetime.
    pub fn validate(&self) -> Result<(), Error> {
        for p in self.endpoint_paths() {
            if !p.starts_with('/') {
                return Err(Error::ConfigValue {
                    field: "endpoint path",
                    value: p.to_string(),
                    rule: "must start with /",
                });
            }
        }
        let scheme_ok = self.issuer.starts_with("https://") || self.issuer.starts_with("http://");
        if !scheme_ok || self.issuer.contains(['?', '#']) {
            return Err(Error::ConfigValue {
                field: "issuer",
                value: self.issuer.clone(),
                rule: "must be an http(s) URL without query or fragment",
            });
        }
        if self.access_token_ttl.is_zero() || self.code_ttl.is_zero() {
            return Err(Error::Config {
                field: "access_token_ttl and code_ttl",
                rule: "must not be 0",
            });
        }
        Ok(())
    }
}

impl Default for OAuth2Config {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            authorize_path: "/oauth2/authorize".into(),
            token_path: "/oauth2/token".into(),
            introspect_path: "/oauth2/introspect".into(),
            revoke_path: "/oauth2/revoke".into(),
            jwks_path: "/oauth2/jwks".into(),
            access_token_ttl: Duration::from_secs(3600),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            code_ttl: Duration::from_secs(60),
            pending_ttl: Duration::from_secs(600),
            require_pkce: true,
            allow_password_grant: false,
            sign_in_free_failures: 3,
            sign_in_delay: Duration::from_secs(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_say_what_to_fix() {
        let c = Config {
            public_paths: vec!["health".into()],
            ..Default::default()
        };
        let e = c.validate().unwrap_err();
        assert!(
            matches!(&e, Error::ConfigValue { field: "public path", value, .. } if value == "health"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "invalid setting: public path \"health\" must start with /"
        );
        let e = Location::parse("body").unwrap_err();
        assert!(matches!(
            e,
            Error::ConfigValue {
                field: "token source",
                ..
            }
        ));
    }
}
