//! ws-client glue: a [`Signer`] supplies the token of every connection attempt, as an
//! `Authorization: Bearer` header ([`bearer_auth`]) or a query parameter ([`query_hook`]),
//! signing anew once [`Signer::refresh_after`] has passed (and at once after a 401).

use std::{sync::Arc, time::SystemTime};

use ws_client::{Auth, BoxFuture, HandshakeRequest, RequestHook, TokenSource};

use crate::{jwt::sign::Signer, source::query_param};

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
    fn query_parameter_is_replaced() {
        let mut t = "/ws?room=1&access_token=old".to_owned();
        set_query_param(&mut t, "access_token", "a.b+c");
        assert_eq!(t, "/ws?room=1&access_token=a.b%2Bc");
        let mut t = "/ws".to_owned();
        set_query_param(&mut t, "t", "x");
        assert_eq!(t, "/ws?t=x");
    }
}
