//! The seed's credentials-in-the-path authentication, off by default:
//!
//! ```text
//!  URL mode      WS  [P]/sgc/auth/url/USER/PASSWORD         --> the connection continues at [P] ("/")
//!  session mode  GET [P]/sgc/req/auth/session/USER/PASSWORD --> 200, body: a one-time token
//!                WS  [P]/sgc/auth/session/TOKEN             --> the connection continues at [P]
//! ```
//!
//! USER and PASSWORD are percent-decoded and checked like `Authorization: Basic` credentials
//! ([`crate::AuthConfig::users`], then [`crate::Authenticator::basic`]). A token is random
//! (128 bits), good for one upgrade within [`SgcAuth::session_lifetime`]. After a successful
//! check the credentials are cut from the request target, so handlers, [`crate::ConnInfo::url`]
//! and logs see `[P]` (or `/`) and never the password or token.
//!
//! Weaker than a header: the whole URL of a request ends up in browser history, proxy logs and
//! `Referer` fields, so a password in it leaks where an `Authorization` field would not. It exists
//! for pages and clients written for the seed (its browser library's `{host, user, password}` form
//! uses the URL mode); prefer Basic or a bearer token.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use ws_http::percent_decode;

/// Which of the seed's path forms the server accepts ([`crate::AuthConfig::sgc`]).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SgcAuth {
    /// Accept `/sgc/auth/url/USER/PASSWORD`. Default: `false`.
    pub url: bool,
    /// Answer `GET /sgc/req/auth/session/USER/PASSWORD` with a token and accept
    /// `/sgc/auth/session/TOKEN`, a token being good for one upgrade within this time.
    /// Default: `None` (off).
    pub session_lifetime: Option<Duration>,
    tokens: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

/// What a request path holds, for [`SgcAuth`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SgcPath {
    /// `[P]/sgc/req/auth/session/USER/PASSWORD`: ask for a token.
    TokenRequest {
        /// Decoded user.
        user: String,
        /// Decoded password.
        password: String,
    },
    /// `[P]/sgc/auth/url/USER/PASSWORD`.
    Url {
        /// Decoded user.
        user: String,
        /// Decoded password.
        password: String,
        /// `[P]`, or `/` when empty.
        rest: String,
    },
    /// `[P]/sgc/auth/session/TOKEN`.
    Session {
        /// The token as sent.
        token: String,
        /// `[P]`, or `/` when empty.
        rest: String,
    },
}

impl SgcAuth {
    /// Default of the token lifetime in [`SgcAuth::with_sessions`].
    pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(60);

    /// The URL mode on.
    #[must_use]
    pub fn with_url(mut self) -> Self {
        self.url = true;
        self
    }

    /// The session mode on, tokens good for `lifetime`.
    #[must_use]
    pub fn with_sessions(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = Some(lifetime);
        self
    }

    /// Whether any mode is on.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.url || self.session_lifetime.is_some()
    }

    /// Reads the seed's forms out of `path` (the target without its query), for the modes that
    /// are on. `None`: not one of them, or malformed (wrong number of segments, bad encoding).
    pub(crate) fn parse(&self, path: &str) -> Option<SgcPath> {
        if self.session_lifetime.is_some() {
            if let Some((_, tail)) = path.split_once("/sgc/req/auth/session/") {
                let (user, password) = two_segments(tail)?;
                return Some(SgcPath::TokenRequest { user, password });
            }
            if let Some((prefix, tail)) = path.split_once("/sgc/auth/session/") {
                if tail.is_empty() || tail.contains('/') {
                    return None;
                }
                return Some(SgcPath::Session {
                    token: tail.to_owned(),
                    rest: rest(prefix),
                });
            }
        }
        if self.url {
            if let Some((prefix, tail)) = path.split_once("/sgc/auth/url/") {
                let (user, password) = two_segments(tail)?;
                return Some(SgcPath::Url {
                    user,
                    password,
                    rest: rest(prefix),
                });
            }
        }
        None
    }

    /// A new one-time token for `user`, good until `now` plus the session lifetime. Expired
    /// tokens are dropped on the way.
    ///
    /// # Errors
    /// When the OS has no entropy to give.
    pub(crate) fn issue(&self, user: &str, now: Instant) -> Result<String, getrandom::Error> {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw)?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let lifetime = self
            .session_lifetime
            .unwrap_or(Self::DEFAULT_SESSION_LIFETIME);
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.retain(|_, (_, expires)| *expires > now);
        tokens.insert(token.clone(), (user.to_owned(), now + lifetime));
        Ok(token)
    }

    /// The user of `token` when it is known and not expired; the token is used up either way.
    pub(crate) fn redeem(&self, token: &str, now: Instant) -> Option<String> {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        let (user, expires) = tokens.remove(token)?;
        (expires > now).then_some(user)
    }
}

fn two_segments(tail: &str) -> Option<(String, String)> {
    let (user, password) = tail.split_once('/')?;
    if user.is_empty() || password.contains('/') {
        return None;
    }
    Some((percent_decode(user)?, percent_decode(password)?))
}

fn rest(prefix: &str) -> String {
    if prefix.is_empty() {
        "/".to_owned()
    } else {
        prefix.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> SgcAuth {
        SgcAuth::default()
            .with_url()
            .with_sessions(Duration::from_secs(60))
    }

    #[test]
    fn paths_parse_only_for_the_modes_that_are_on() {
        let path = "/sgc/auth/url/admin/1234";
        assert_eq!(SgcAuth::default().parse(path), None);
        assert_eq!(
            SgcAuth::default().with_url().parse(path),
            Some(SgcPath::Url {
                user: "admin".into(),
                password: "1234".into(),
                rest: "/".into()
            })
        );
        assert_eq!(
            SgcAuth::default().with_url().parse("/sgc/auth/session/abc"),
            None
        );
        assert_eq!(
            both().parse("/echo/sgc/auth/session/abc"),
            Some(SgcPath::Session {
                token: "abc".into(),
                rest: "/echo".into()
            })
        );
        assert_eq!(
            both().parse("/sgc/req/auth/session/a%20b/p%2Fq"),
            Some(SgcPath::TokenRequest {
                user: "a b".into(),
                password: "p/q".into()
            })
        );
    }

    #[test]
    fn malformed_paths_are_not_credentials() {
        for path in [
            "/sgc/auth/url/admin",
            "/sgc/auth/url//pw",
            "/sgc/auth/url/a/b/c",
            "/sgc/auth/url/a/%zz",
            "/sgc/auth/session/",
            "/sgc/auth/session/a/b",
            "/sgc/req/auth/session/onlyuser",
        ] {
            assert_eq!(both().parse(path), None, "{path}");
        }
    }

    #[test]
    fn tokens_are_single_use_and_expire() {
        let auth = both();
        let t0 = Instant::now();
        let a = auth.issue("alice", t0).unwrap();
        let b = auth.issue("bob", t0).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(auth.redeem(&a, t0), Some("alice".into()));
        assert_eq!(auth.redeem(&a, t0), None, "used up");
        assert_eq!(
            auth.redeem(&b, t0 + Duration::from_secs(61)),
            None,
            "expired"
        );
        assert_eq!(auth.redeem("unknown", t0), None);
    }
}
