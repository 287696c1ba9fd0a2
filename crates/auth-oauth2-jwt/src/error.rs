//! The crate's one error type.

use std::fmt;

/// Why a token was refused. Every variant maps to `invalid_token` (RFC 6750 section 3.1) on
/// the wire; [`TokenError::description`] is the text for `error_description`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No token in any of the configured places.
    #[error("no token")]
    Missing,
    /// The token is longer than [`crate::Config::max_token_len`]; refused before decoding.
    #[error("token is {len} bytes, the limit is {max}")]
    TooLarge {
        /// Length of the token.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not three base64url parts with a JSON header and a JSON object as payload.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg: none` (an unsigned token): always refused.
    #[error("unsigned tokens (alg none) are refused")]
    AlgNone,
    /// An algorithm this crate does not implement (e.g. ES512, see the crate docs).
    #[error("algorithm {0} is not supported")]
    UnsupportedAlgorithm(String),
    /// The header lists extensions in `crit` (RFC 7515 section 4.1.11) that are not understood.
    #[error("critical header extensions are not supported")]
    CriticalHeader,
    /// The token's `alg` is not among the algorithms allowed for any candidate key (the
    /// algorithm comes from the key's settings, never from the token: this refuses algorithm
    /// confusion, e.g. HS256 signed with an RSA public key).
    #[error("algorithm {alg} is not allowed for the key")]
    AlgorithmNotAllowed {
        /// The token's algorithm.
        alg: String,
    },
    /// The token names a key id that no configured key or fetched JWKS has.
    #[error("unknown key id {0:?}")]
    UnknownKid(String),
    /// No key is configured.
    #[error("no verification key configured")]
    NoKey,
    /// The signature does not verify with any candidate key.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp` (Unix seconds).
        exp: u64,
        /// The time of the check (Unix seconds).
        now: u64,
    },
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid {
        /// The token's `nbf` (Unix seconds).
        nbf: u64,
        /// The time of the check (Unix seconds).
        now: u64,
    },
    /// `iat` is in the future (beyond the leeway), or older than [`crate::Config::max_age`].
    #[error("token issued at an unacceptable time ({iat})")]
    BadIssuedAt {
        /// The token's `iat` (Unix seconds).
        iat: u64,
    },
    /// A time claim that is not a non-negative number.
    #[error("claim {0} is not a number of seconds")]
    BadTimeClaim(&'static str),
    /// `iss` is missing or not one of [`crate::Config::issuers`].
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not name one of [`crate::Config::audiences`] (or names an audience while
    /// none is configured, RFC 7519 section 4.1.3).
    #[error("wrong audience")]
    WrongAudience,
    /// A claim of [`crate::Config::required_claims`] is absent.
    #[error("missing claim {0}")]
    MissingClaim(String),
    /// An opaque access token that the store does not know, that expired or was revoked.
    #[error("unknown, expired or revoked access token")]
    Inactive,
    /// Refused by a hook, with its reason.
    #[error("refused: {0}")]
    Rejected(String),
}

impl TokenError {
    /// The text for a `WWW-Authenticate` `error_description` (no token content, no secret).
    #[must_use]
    pub fn description(&self) -> String {
        self.to_string().replace('"', "'")
    }
}

/// An OAuth2 error response (RFC 6749 section 5.2 and 4.1.2.1): the `error` code and a
/// description.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `access_denied`, `server_error`, ...
    pub code: &'static str,
    /// `error_description`.
    pub description: String,
}

impl OAuthError {
    /// An error with `code` and `description`.
    #[must_use]
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    /// HTTP status for the token endpoint: 401 for `invalid_client`, 500 for `server_error`,
    /// 400 otherwise.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self.code {
            "invalid_client" => 401,
            "server_error" => 500,
            _ => 400,
        }
    }
}

impl fmt::Debug for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.description)
    }
}

/// Everything that can fail in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A token was refused.
    #[error("invalid token: {0}")]
    Token(#[from] TokenError),
    /// A key could not be loaded (bad PEM, empty secret, unsupported JWK).
    #[error("key: {0}")]
    Key(String),
    /// Signing failed (wrong key type for the algorithm, ...).
    #[error("signing: {0}")]
    Sign(String),
    /// A setting is invalid: `field` breaks `rule`.
    #[error("invalid setting: {field} {rule}")]
    Config {
        /// The setting (or object) at fault.
        field: &'static str,
        /// What it must be, or what is missing.
        rule: &'static str,
    },
    /// A setting's value is invalid.
    #[error("invalid setting: {field} {value:?} {rule}")]
    ConfigValue {
        /// The setting.
        field: &'static str,
        /// The value given.
        value: String,
        /// What it must be.
        rule: &'static str,
    },
    /// A URL setting that does not parse or uses a scheme not allowed.
    #[error("invalid setting: {field} {url:?}: {reason}")]
    Url {
        /// The setting (`token URL`, `authorization URL`, `redirect URL`).
        field: &'static str,
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// Hashing a password failed (bad Argon2 parameters).
    #[error("password hashing: {reason}")]
    PasswordHash {
        /// What argon2 said.
        reason: String,
    },
    /// Fetching or parsing a JWKS failed.
    #[error("JWKS {url}: {reason}")]
    Jwks {
        /// The JWKS URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// An OAuth2 protocol error: answered to a client by the server, or received by the
    /// client from a server.
    #[error("oauth2 {0}")]
    OAuth(OAuthError),
    /// An HTTP exchange of the OAuth2 client failed (connect, TLS, an unreadable answer).
    #[error("http: {0}")]
    Http(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(String),
    /// The OS random source failed.
    #[error("random source: {0}")]
    Random(String),
}

impl From<OAuthError> for Error {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small() {
        assert!(size_of::<Error>() <= 64);
    }

    #[test]
    fn oauth_statuses() {
        assert_eq!(OAuthError::new("invalid_client", "x").status(), 401);
        assert_eq!(OAuthError::new("invalid_grant", "x").status(), 400);
    }
}
