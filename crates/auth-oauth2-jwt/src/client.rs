//! ws-client glue: a [`Signer`] supplies the token of every connection attempt, as an
//! `Authorization: Bearer` header ([`bearer_auth`]) or a query parameter ([`query_hook`]),
//! signing anew once [`Signer::refresh_after`] has passed (and at once after a 401); or a
//! token asked for with a user name and password ([`PostTokenSource`], SignalRCore's
//! `RequestToken` flow).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use ws_client::{Auth, BoxFuture, HandshakeRequest, RequestHook, TokenSource};

use crate::{fetch, jwt::sign::Signer, source::query_param};

/// A [`TokenSource`] for ws-client backed by a [`Signer`] (clock: the system time).
#[derive(Clone, Debug)]
pub struct SignerSource(pub Arc<Signer>);

impl TokenSource for SignerSource {
    fn token(&self, refresh: bool) -> BoxFuture<'_, Result<String, String>> {
        let result = self
            .0
            .token(SystemTime::now(), refresh)
            .map_err(|e| e.to_string());
        Box::pin(async move { result })
    }
}

/// `Authorization: Bearer <token>` on every attempt, from `signer`.
#[must_use]
pub fn bearer_auth(signer: Arc<Signer>) -> Auth {
    Auth::bearer_fn(SignerSource(signer))
}

/// A request hook that puts the signer's token in the query parameter `param` of every
/// attempt (replacing one already there); for servers that read the token from the URL.
#[must_use]
pub fn query_hook(signer: Arc<Signer>, param: impl Into<String>) -> RequestHook {
    let param = param.into();
    Arc::new(
        move |request: &mut HandshakeRequest| match signer.token(SystemTime::now(), false) {
            Ok(token) => set_query_param(&mut request.target, &param, &token),
            Err(e) => tracing::warn!(error = %e, "signing the connection's token failed"),
        },
    )
}

/// The SignalRCore `RequestToken` flow: POST a user name and password (form fields) to a
/// token URL, take the token from the answer, send it on the WebSocket: as a bearer token
/// ([`Auth::bearer_fn`] with this [`TokenSource`]) or, as SignalRCore does, in a query
/// parameter ([`PostTokenSource::query_hook`]). The token is cached; it is asked for again
/// after a 401 (`refresh`).
///
/// The answer's body may be the token as plain text, a JSON string, or a JSON object with
/// `access_token` or `token`.
pub struct PostTokenSource {
    url: String,
    fields: [(String, String); 2],
    tls: Arc<rustls::ClientConfig>,
    allow_loopback_http: bool,
    timeout: Duration,
    cached: Mutex<Option<String>>,
}

impl std::fmt::Debug for PostTokenSource {
    /// The password and the token are not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostTokenSource")
            .field("url", &self.url)
            .field("user", &self.fields[0].1)
            .finish_non_exhaustive()
    }
}

impl PostTokenSource {
    /// POSTs `username=USER&password=PASSWORD` to `url` (`https://`, see
    /// [`PostTokenSource::allow_loopback_http`]) over `tls`; 10 s timeout.
    #[must_use]
    pub fn new(
        url: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            url: url.into(),
            fields: [
                ("username".into(), user.into()),
                ("password".into(), password.into()),
            ],
            tls,
            allow_loopback_http: false,
            timeout: Duration::from_secs(10),
            cached: Mutex::new(None),
        }
    }

    /// The names of the two form fields (the seed's `PostFieldUsername`,
    /// `PostFieldPassword`). Default: `username`, `password`.
    #[must_use]
    pub fn field_names(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.fields[0].0 = user.into();
        self.fields[1].0 = password.into();
        self
    }

    /// Allow an `http://` token URL on a loopback address (tests, a local sidecar).
    #[must_use]
    pub fn allow_loopback_http(mut self, allow: bool) -> Self {
        self.allow_loopback_http = allow;
        self
    }

    /// Time allowed for one token request. Default: 10 s.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the token URL for a token and caches it.
    ///
    /// # Errors
    /// A sentence: the URL, connecting, the status of a refusal, an answer without a token.
    pub async fn request(&self) -> Result<String, String> {
        let url = fetch::parse_url(&self.url, self.allow_loopback_http)
            .map_err(|e| format!("token URL {}: {e}", self.url))?;
        let body = self
            .fields
            .iter()
            .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json, text/plain"),
        ];
        let (status, reason, _, answer) = fetch::request(
            &url,
            "POST",
            &headers,
            body.as_bytes(),
            &self.tls,
            64 * 1024,
            self.timeout,
        )
        .await
        .map_err(|e| format!("token request to {}: {e}", self.url))?;
        if status != 200 {
            return Err(format!(
                "token request to {} answered {status} {reason}",
                self.url
            ));
        }
        let token = token_of(&answer)
            .ok_or_else(|| format!("the answer of {} holds no token", self.url))?;
        *self.cache() = Some(token.clone());
        Ok(token)
    }

    /// A request hook that puts the cached token in the query parameter `param` (the seed's
    /// `QueryFieldToken`) of every attempt. Get the token first ([`PostTokenSource::request`]
    /// or [`TokenSource::token`]); the hook does no IO.
    #[must_use]
    pub fn query_hook(self: &Arc<Self>, param: impl Into<String>) -> RequestHook {
        let param = param.into();
        let source = Arc::clone(self);
        Arc::new(move |request: &mut HandshakeRequest| {
            if let Some(token) = source.cache().clone() {
                set_query_param(&mut request.target, &param, &token);
            }
        })
    }
}

/// The token in an answer body: a JSON object's `access_token` or `token`, a JSON string, or
/// the trimmed text.
fn token_of(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let token = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(o)) => ["access_token", "token"]
            .iter()
            .find_map(|k| o.get(*k)?.as_str().map(str::to_owned))?,
        Ok(serde_json::Value::String(s)) => s,
        _ => text.to_owned(),
    };
    (!token.is_empty() && !token.contains(char::is_whitespace)).then_some(token)
}

impl TokenSource for PostTokenSource {
    fn token(&self, refresh: bool) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            if !refresh && let Some(token) = self.cache().clone() {
                return Ok(token);
            }
            self.request().await
        })
    }
}

/// Sets `name=value` in the query of `target`, replacing existing `name` parameters.
fn set_query_param(target: &mut String, name: &str, value: &str) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.clone(), String::new()),
    };
    let mut kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && query_param(&format!("?{p}"), name).is_none())
        .collect();
    let pair = format!("{}={}", encode(name), encode(value));
    kept.push(&pair);
    *target = format!("{path}?{}", kept.join("&"));
}

fn encode(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_in_text_json_string_or_object() {
        assert_eq!(token_of(b"abc.def\n").as_deref(), Some("abc.def"));
        assert_eq!(token_of(br#""t1""#).as_deref(), Some("t1"));
        assert_eq!(token_of(br#"{"access_token":"t2"}"#).as_deref(), Some("t2"));
        assert_eq!(token_of(br#"{"token":"t3"}"#).as_deref(), Some("t3"));
        assert_eq!(token_of(br#"{"error":"x"}"#), None);
        assert_eq!(token_of(b"<html> no </html>"), None);
        assert_eq!(token_of(b""), None);
    }

    #[test]
    fn query_parameter_is_replaced() {
        let mut t = "/ws?room=1&access_token=old".to_owned();
        set_query_param(&mut t, "access_token", "a.b+c");
        assert_eq!(t, "/ws?room=1&access_token=a.b%2Bc");
        let mut t = "/ws".to_owned();
        set_query_param(&mut t, "t", "x");
        assert_eq!(t, "/ws?t=x");
    }
}
