//! The request head handed to the handler: method, target, headers, peer, TLS, user.

use std::net::SocketAddr;

use ws_http::{Headers, percent_decode};

/// An HTTP request head as the server received it: the WebSocket upgrade request, or a plain
/// HTTP request for [`crate::Handler::on_http`].
#[derive(Clone)]
pub struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) version: ws_http::Version,
    pub(crate) headers: Headers,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) user: Option<String>,
    /// The session the server found or started ([`crate::ServerConfig::sessions`]); kept
    /// type-erased so this floor-0 module needs nothing from `session`, which reads it back
    /// (`Request::session`).
    pub(crate) session: Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("target", &self.target)
            .field("version", &self.version)
            .field("headers", &self.headers)
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .field("session", &self.session.is_some())
            .finish()
    }
}

impl Request {
    /// Copies a parsed head (the server keeps this form for the handler and [`ConnInfo`]).
    pub(crate) fn from_http(
        head: &ws_http::Request,
        peer: SocketAddr,
        local: SocketAddr,
        tls: bool,
    ) -> Self {
        Self {
            method: head.method().to_owned(),
            target: head.target().to_owned(),
            version: head.version(),
            headers: head.headers().clone(),
            peer,
            local,
            tls,
            user: None,
            session: None,
        }
    }

    /// The method (`GET`, ...).
    #[must_use]
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target: path and query (`/chat?room=1`).
    #[must_use]
    pub fn url(&self) -> &str {
        &self.target
    }

    /// The path part of the target, as sent (still percent-encoded).
    #[must_use]
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The HTTP version of the request.
    #[must_use]
    pub fn version(&self) -> ws_http::Version {
        self.version
    }

    /// The value of the cookie `name` from the `Cookie` header fields.
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all("cookie")
            .flat_map(|v| v.split(';'))
            .find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                (k.trim() == name).then(|| v.trim().trim_matches('"'))
            })
    }

    /// Whether `Accept` lists `text/event-stream` (an `EventSource` client).
    #[must_use]
    pub fn accepts_event_stream(&self) -> bool {
        self.headers.tokens("accept").any(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        })
    }

    /// The query part of the target, without `?`.
    #[must_use]
    pub fn query(&self) -> Option<&str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The first query parameter named `name`, percent-decoded.
    #[must_use]
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k).as_deref() == Some(name))
                .then(|| percent_decode(v))
                .flatten()
        })
    }

    /// All header fields in arrival order, with case-insensitive lookups
    /// ([`Headers::get`], [`Headers::get_all`], [`Headers::tokens`]).
    #[must_use]
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first header named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Subprotocols the client offered in `Sec-WebSocket-Protocol`, in its order.
    #[must_use]
    pub fn protocols(&self) -> Vec<&str> {
        self.headers.tokens("sec-websocket-protocol").collect()
    }

    /// The peer's address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Our address of this connection.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the request came over TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The user authenticated by [`crate::AuthConfig`] or set by
    /// [`crate::Handler::on_before_request`], if any.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Records the authenticated user (from [`crate::Handler::on_before_request`]); it ends up in
    /// [`crate::ConnInfo::user`] for WebSocket and SSE connections.
    pub fn set_user(&mut self, user: Option<String>) {
        self.user = user;
    }
}
