//! Plain HTTP forwarding: requests on the proxy's listener that are not WebSocket upgrades go
//! to an HTTP upstream ([`crate::ProxyConfig::http_upstream`]), a small reverse proxy.
//!
//! ```text
//!  ws-server on_http(request, body)
//!    -> request head (ws_http::write_request_head): hop-by-hop fields dropped, Host kept or
//!       replaced, X-Forwarded-For / -Proto / -Host and Forwarded added
//!    -> body of an idempotent request with Content-Length <= 64 KiB read first (replayable)
//!    -> upstream connection: an idle pooled one that still looks open, else a new one
//!       (TCP or TLS, connect timeout)
//!    -> body streamed (Content-Length as it is, chunked re-encoded) while the response head
//!       is awaited (ws_http::parse_response; 1xx interim answers skipped)
//!    -> Response::stream fed by a task that decodes the upstream body (ws_http::BodyDecoder)
//!       through a bounded channel; the connection goes back to the pool after a clean end
//! ```
//!
//! # Connection reuse and retries
//!
//! Every request, with or without a body, goes over an idle pooled connection when there is
//! one. A connection goes back to the pool only after a clean exchange: the whole request
//! sent, the whole response read with nothing after it, and no `Connection: close` (or
//! HTTP/1.0 without keep-alive) from the upstream. Before it is used again it is probed
//! without blocking: one the upstream closed while it was idle (end of stream, an error, or
//! stray bytes) is dropped and the next one (or a new connection) is taken.
//!
//! The upstream can still close an idle connection just as the request goes out. When a
//! *reused* connection fails before any byte of a response arrived, the request is sent once
//! more on a new connection only if it can be replayed and may be repeated:
//!
//! - the method is idempotent (`GET`, `HEAD`, `PUT`, `DELETE`, `OPTIONS`, `TRACE`; RFC 9110
//!   section 9.2.2); a proxy must not retry others (RFC 9112 section 9.3.1), so `POST` or
//!   `PATCH` get 502 instead;
//! - and the proxy still has the whole body: none, or a Content-Length body of at most
//!   64 KiB, which is read from the client before the upstream is contacted for that reason,
//!   or a streamed body (larger, or chunked) of which nothing had been read from the client
//!   yet. A streamed body already partly sent is gone: 502.
//!
//! A new connection that fails is never retried.
//!
//! # Trailers
//!
//! The trailer section after a chunked body (RFC 9112 section 7.1.2) is forwarded in both
//! directions when the message goes on chunked:
//!
//! - request: a chunked request body is always sent on chunked, with the client's trailers
//!   (read through [`Body::trailers`]) after its last chunk;
//! - response: a chunked upstream body reaches an HTTP/1.1 client chunked, with the
//!   upstream's trailers ([`Response::with_trailers`]); an HTTP/1.0 client gets the body
//!   without them (its body ends with the connection).
//!
//! Forwarded trailers are filtered like the header section (hop-by-hop fields and the fields
//! the head's `Connection` names are dropped) and lose the fields that must not be trailers
//! (RFC 9110 section 6.5.1): framing (`Content-Length`, `Transfer-Encoding`), routing
//! (`Host`), request modifiers (`TE`, `Expect`, `Range`, `Cache-Control`, `Pragma`,
//! `Max-Forwards` and the `If-*` conditionals), authentication (`Authorization`,
//! `Proxy-Authorization`, `WWW-Authenticate`, `Proxy-Authenticate`, `Cookie`, `Set-Cookie`),
//! response control (`Age`, `Expires`, `Date`, `Location`, `Retry-After`, `Vary`, `Warning`)
//! and payload processing (`Content-Encoding`, `Content-Type`, `Content-Range`, `Trailer`).
//! A recipient must not treat those as if they were in the head (RFC 9110 section 6.5.2),
//! and the next hop may not know that rule, so they stop here.
//!
//! The `Trailer` header field announcing the trailers is end-to-end (RFC 9110 section 6.6.2;
//! only RFC 2616 counted it as hop-by-hop): it goes on, reduced to the names that would be
//! forwarded, when the message goes on chunked, and is dropped otherwise (a `Content-Length`
//! request body, a response with a length or to an HTTP/1.0 client): no trailers follow then.
//!
//! The proxy's handler is wrapped rather than edited: [`WithHttp`] delegates every
//! [`Handler`] method to the bridge and answers [`Handler::on_http`] itself.

use std::{
    fmt, io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio::{
    io::{
        AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf, ReadHalf, WriteHalf,
    },
    net::TcpStream,
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_rustls::TlsConnector;
use ws_server::{
    Before, Body, ConnInfo, Ctx, Decision, Disconnect, Fragment, Handler, Request, Response,
    TcpDecision,
    ws_frame::{Message, Utf8Bytes},
    ws_http::{self, BodyDecoder, BodyEvent, BodyKind, ChunkedEncoder, Parsed, Version},
};

use crate::error::ProxyError;

/// Which `Host` the upstream receives ([`HttpUpstream::host_header`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HostHeader {
    /// The client's `Host`, as it sent it (the upstream's authority when the client sent
    /// none, as an HTTP/1.0 client may); the same value also goes in `X-Forwarded-Host`.
    #[default]
    Client,
    /// The upstream's own authority (`host[:port]` of [`HttpUpstream`]), for upstreams that
    /// check it (virtual hosts); the client's `Host` is then only in `X-Forwarded-Host`.
    Upstream,
}

/// An HTTP upstream for plain (non-upgrade) requests: `http://host:port[/base]` or
/// `https://...`. Build it with [`HttpUpstream::parse`] and adjust the fields.
///
/// A request for `/x?y` goes to `base` + `/x?y` on the upstream. Connections over TLS
/// (`https`) are verified with [`crate::ProxyConfig::backend_tls`] against the upstream's host
/// (or [`HttpUpstream::server_name`]); the connect timeout is
/// [`crate::ProxyConfig::connect_timeout`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpUpstream {
    /// `https` (TLS to the upstream) rather than `http`.
    pub secure: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (default 80 for `http`, 443 for `https`).
    pub port: u16,
    /// Path prefix put before every request path: empty, or starting with `/` and not ending
    /// with one (`/app`). Default: empty.
    pub base: String,
    /// Which `Host` the upstream receives. Default: [`HostHeader::Client`].
    pub host_header: HostHeader,
    /// Add `X-Forwarded-For` (appended to the client's), `X-Forwarded-Proto` and
    /// `X-Forwarded-Host` (replacing the client's), and an RFC 7239 `Forwarded` element
    /// (appended). When false, whatever the client sent of them passes unchanged.
    /// Default: true.
    pub forwarded_headers: bool,
    /// Longest wait for the upstream: for the response head once the request is sent, for
    /// each write of the request, and for each read of the response body. Past it the client
    /// gets 504 (or, once the response has started, its connection is closed).
    /// Default: [`HttpUpstream::DEFAULT_RESPONSE_TIMEOUT`] (60 s).
    pub response_timeout: Duration,
    /// Idle upstream connections kept for reuse (0: a new connection per request, sent with
    /// `Connection: close`). Requests with and without a body reuse them; when a reused one
    /// turns out to be closed, only a replayable idempotent request is sent again (see the
    /// module docs). Default: [`HttpUpstream::DEFAULT_MAX_IDLE`] (16).
    pub max_idle: usize,
    /// How long an idle upstream connection is kept. Default:
    /// [`HttpUpstream::DEFAULT_IDLE_TIMEOUT`] (15 s).
    pub idle_timeout: Duration,
    /// Name to verify the `https` upstream's certificate against (and send in SNI) instead
    /// of [`HttpUpstream::host`]. Default: `None`.
    pub server_name: Option<String>,
}

impl HttpUpstream {
    /// Default of [`HttpUpstream::response_timeout`].
    pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default of [`HttpUpstream::max_idle`].
    pub const DEFAULT_MAX_IDLE: usize = 16;
    /// Default of [`HttpUpstream::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

    /// Parses `http://host[:port][/base]` or `https://...` (IPv6 hosts in brackets).
    ///
    /// ```
    /// let up = ws_proxy::HttpUpstream::parse("http://127.0.0.1:8000/app/")?;
    /// assert_eq!((up.host.as_str(), up.port, up.base.as_str()), ("127.0.0.1", 8000, "/app"));
    /// assert_eq!(up.to_string(), "http://127.0.0.1:8000/app");
    /// # Ok::<(), ws_proxy::ProxyError>(())
    /// ```
    ///
    /// # Errors
    /// [`ProxyError::Config`] for another scheme, a missing or invalid host or port, a query,
    /// a fragment or user info.
    pub fn parse(input: &str) -> Result<Self, ProxyError> {
        let input = input.trim();
        let bad = |why: &str| ProxyError::Config(format!("invalid HTTP upstream {input:?}: {why}"));
        let scheme = input.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let secure = match scheme.as_deref() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(bad("expected http:// or https://")),
        };
        let url = ws_http::WsUrl::parse(input).map_err(|e| bad(&e.to_string()))?;
        if url.target().contains('?') {
            return Err(bad("a query is not allowed"));
        }
        if url.port() == 0 {
            return Err(bad("port 0"));
        }
        let up = Self {
            secure,
            host: url.host().to_owned(),
            port: url.port(),
            base: url.target().trim_end_matches('/').to_owned(),
            ..Self::default()
        };
        up.validate()?;
        Ok(up)
    }

    /// The authority: host (bracketed for IPv6) and the port unless it is the scheme's
    /// default. This is the `Host` sent with [`HostHeader::Upstream`].
    #[must_use]
    pub fn authority(&self) -> String {
        ws_http::host_header(&self.host, self.port, self.secure)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`ProxyError::Config`] for an empty host, port 0, a base that does not start with `/`
    /// or holds `?`, `#`, spaces or controls, or a zero response or idle timeout.
    pub fn validate(&self) -> Result<(), ProxyError> {
        let bad = |s: String| Err(ProxyError::Config(format!("HTTP upstream: {s}")));
        if self.host.is_empty() || self.host.contains(['/', '?', '#', ' ', '@']) {
            return bad(format!("invalid host {:?}", self.host));
        }
        if self.port == 0 {
            return bad("port 0".into());
        }
        if !self.base.is_empty()
            && (!self.base.starts_with('/')
                || self.base.contains(['?', '#'])
                || !self.base.bytes().all(|b| (0x21..0x7f).contains(&b)))
        {
            return bad(format!(
                "base {:?} must be empty or an absolute path without query",
                self.base
            ));
        }
        if self.response_timeout.is_zero() || self.idle_timeout.is_zero() {
            return bad("response_timeout and idle_timeout must not be zero".into());
        }
        Ok(())
    }
}

impl Default for HttpUpstream {
    /// `http://127.0.0.1:80` with the documented defaults.
    fn default() -> Self {
        Self {
            secure: false,
            host: "127.0.0.1".to_owned(),
            port: 80,
            base: String::new(),
            host_header: HostHeader::Client,
            forwarded_headers: true,
            response_timeout: Self::DEFAULT_RESPONSE_TIMEOUT,
            max_idle: Self::DEFAULT_MAX_IDLE,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            server_name: None,
        }
    }
}

impl fmt::Display for HttpUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.base)
    }
}

impl std::str::FromStr for HttpUpstream {
    type Err = ProxyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Forwarding.
// ---------------------------------------------------------------------------------------------

/// Hop-by-hop fields (RFC 9110 section 7.6.1), never forwarded in either direction; the
/// fields named by `Connection` are dropped too. `Content-Length` and `Expect` are handled
/// by the proxy (the body is framed again; `100 Continue` is answered by ws-server).
/// `Trailer` is end-to-end and goes on only with the trailers (see the module docs).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// Fields that must not be forwarded in a trailer section (RFC 9110 section 6.5.1), besides
/// the hop-by-hop ones: framing, routing, request modifiers, authentication, response
/// control and payload processing.
const NOT_IN_TRAILERS: [&str; 31] = [
    // Message framing.
    "content-length",
    "transfer-encoding",
    // Routing.
    "host",
    // Request modifiers: controls and conditionals (RFC 9110 sections 7.6.2, 10.1, 13).
    "te",
    "expect",
    "range",
    "cache-control",
    "pragma",
    "max-forwards",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
    // Authentication.
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    // Response control data.
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "warning",
    // Payload processing (and the announcement itself).
    "content-encoding",
    "content-type",
    "content-range",
    "trailer",
];

/// Largest read from the upstream (so the largest piece in the response channel).
const READ_CHUNK: usize = 64 * 1024;
/// Largest Content-Length body of an idempotent request read before the upstream is
/// contacted, so that it can be sent again on a new connection.
const REPLAY_MAX: u64 = 64 * 1024;
/// The `Allow` field of the 405 answer to `CONNECT`: the methods forwarded (any other
/// method is forwarded too; the upstream decides what it supports).
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE";
/// Response body pieces waiting for the client.
const CHANNEL: usize = 4;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

type Conn = Box<dyn Stream>;

/// Idle upstream connections.
struct Pool {
    idle: Mutex<Vec<(Conn, Instant)>>,
    max: usize,
    ttl: Duration,
}

impl Pool {
    /// The most recently used idle connection that still looks open.
    async fn take(&self) -> Option<Conn> {
        loop {
            let mut conn = {
                let mut idle = lock(&self.idle);
                let now = Instant::now();
                idle.retain(|(_, since)| now.duration_since(*since) < self.ttl);
                idle.pop()?.0
            };
            if std::future::poll_fn(|cx| Poll::Ready(still_idle(&mut conn, cx))).await {
                return Some(conn);
            }
            tracing::trace!("dropped an idle upstream connection the upstream had closed");
        }
    }

    fn put(&self, conn: Conn) {
        let mut idle = lock(&self.idle);
        let now = Instant::now();
        idle.retain(|(_, since)| now.duration_since(*since) < self.ttl);
        if idle.len() < self.max {
            idle.push((conn, now));
        }
    }
}

/// Whether an idle connection can carry a request: a read would block. End of stream, an
/// error or bytes nobody asked for mean the upstream closed it (or broke it) meanwhile.
fn still_idle(conn: &mut Conn, cx: &mut Context<'_>) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    Pin::new(conn).poll_read(cx, &mut buf).is_pending()
}

/// Whether a request with `method` may be repeated (RFC 9110 section 9.2.2).
fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "TRACE"
    )
}

/// The field names listed in the `Connection` fields among `fields`, lowercase.
fn connection_named<'a>(fields: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<String> {
    fields
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Whether a trailer field called `name` goes on to the next hop: not hop-by-hop, not named
/// by the head's `Connection` (`named`), and allowed in trailers ([`NOT_IN_TRAILERS`]).
fn trailer_allowed(name: &str, named: &[String]) -> bool {
    let lower = name.to_ascii_lowercase();
    !HOP_BY_HOP.contains(&lower.as_str())
        && !NOT_IN_TRAILERS.contains(&lower.as_str())
        && !named.contains(&lower)
}

/// The trailer fields to forward, in their order.
fn forward_trailers(trailers: &ws_http::Headers, named: &[String]) -> Vec<(String, String)> {
    trailers
        .iter()
        .filter(|(n, _)| trailer_allowed(n, named))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

/// The `Trailer` field for a message that goes on chunked: the names announced in `values`
/// that [`trailer_allowed`] lets through, each once; `None` when none is left.
fn trailer_announcement<'a>(
    values: impl IntoIterator<Item = &'a str>,
    named: &[String],
) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for name in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
        if !name.is_empty()
            && trailer_allowed(name, named)
            && !names.iter().any(|n| n.eq_ignore_ascii_case(name))
        {
            names.push(name);
        }
    }
    (!names.is_empty()).then(|| names.join(", "))
}

/// Why a request could not be forwarded.
enum Failure {
    /// Connecting failed (502).
    Connect(String),
    /// The upstream took too long (504).
    Timeout(&'static str),
    /// The upstream connection broke or answered nonsense (502).
    Upstream(String),
    /// The connection closed (or a write failed) before any byte of a response: on a reused
    /// connection a replayable idempotent request is sent again (see the module docs);
    /// otherwise 502.
    Closed,
    /// The client's body failed (its status: 413, 400, 408).
    Body(u16, String),
}

impl Failure {
    fn response(self) -> Response {
        let (status, text) = match self {
            Self::Connect(e) => (502, format!("bad gateway: upstream unavailable: {e}")),
            Self::Timeout(what) => (504, format!("gateway timeout: {what}")),
            Self::Upstream(e) => (502, format!("bad gateway: {e}")),
            Self::Closed => (
                502,
                "bad gateway: upstream closed the connection without a response".to_owned(),
            ),
            Self::Body(status, reason) => (status, reason),
        };
        tracing::debug!(status, reason = %text, "HTTP forward failed");
        Response::text(status, format!("{text}\n"))
    }
}

/// The forwarding half of the proxy: builds requests, keeps the connection pool.
pub(crate) struct Forwarder {
    up: HttpUpstream,
    connect_timeout: Duration,
    nodelay: bool,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    /// Head limits for the upstream's responses (the body is streamed, not bounded).
    limits: ws_http::Limits,
    pool: Arc<Pool>,
}

impl fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Forwarder")
            .field("upstream", &self.up.to_string())
            .finish_non_exhaustive()
    }
}

/// Quotes a `Forwarded` parameter value unless it is a token (RFC 7239 section 4).
fn forwarded_value(v: &str) -> String {
    let token = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        return v.to_owned();
    }
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl Forwarder {
    pub(crate) fn new(
        up: HttpUpstream,
        config: &crate::ProxyConfig,
        tls: TlsConnector,
    ) -> Result<Self, ProxyError> {
        let tls = if up.secure {
            let name = up.server_name.clone().unwrap_or_else(|| up.host.clone());
            let name = rustls::pki_types::ServerName::try_from(name)
                .map_err(|e| ProxyError::Config(format!("HTTP upstream TLS server name: {e}")))?;
            Some((tls, name))
        } else {
            None
        };
        let mut limits = config.server.http.clone();
        limits.max_body = u64::MAX;
        Ok(Self {
            connect_timeout: config.connect_timeout,
            nodelay: config.nodelay,
            tls,
            limits,
            pool: Arc::new(Pool {
                idle: Mutex::new(Vec::new()),
                max: up.max_idle,
                ttl: up.idle_timeout,
            }),
            up,
        })
    }

    /// The upstream request target for the client's `target`.
    fn target(&self, target: &str) -> String {
        let base = &self.up.base;
        if target.starts_with('/') {
            return format!("{base}{target}");
        }
        if target == "*" {
            return if base.is_empty() {
                "*".to_owned()
            } else {
                base.clone()
            };
        }
        // Absolute form (`http://host/path?q`): keep path and query.
        let rest = target.split_once("://").map_or("", |(_, r)| r);
        match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => format!("{base}{}", &rest[i..]),
            Some(i) => format!("{base}/{}", &rest[i..]),
            None => format!("{base}/"),
        }
    }

    /// The request head for the upstream, and whether the body is chunked.
    fn request_head(
        &self,
        req: &Request,
        length: Option<u64>,
    ) -> Result<(BytesMut, bool), Failure> {
        let named = connection_named(req.headers().iter().map(|(n, v)| (&**n, &**v)));
        let forwarded = self.up.forwarded_headers;
        let mut fields: Vec<(String, String)> = Vec::with_capacity(req.headers().len() + 6);
        let mut xff: Vec<&str> = Vec::new();
        let mut fwd: Vec<&str> = Vec::new();
        let mut announced: Vec<&str> = Vec::new();
        for (name, value) in req.headers() {
            let lower = name.to_ascii_lowercase();
            if HOP_BY_HOP.contains(&lower.as_str())
                || named.contains(&lower)
                || matches!(lower.as_str(), "content-length" | "expect" | "host")
            {
                continue;
            }
            if lower == "trailer" {
                announced.push(value);
                continue;
            }
            if forwarded {
                match lower.as_str() {
                    "x-forwarded-for" => {
                        xff.push(value);
                        continue;
                    }
                    "forwarded" => {
                        fwd.push(value);
                        continue;
                    }
                    "x-forwarded-proto" | "x-forwarded-host" => continue,
                    _ => {}
                }
            }
            fields.push((name.clone(), value.clone()));
        }
        let client_host = req.header("host").filter(|h| !h.is_empty());
        let host = match (self.up.host_header, client_host) {
            (HostHeader::Client, Some(h)) => h.to_owned(),
            _ => self.up.authority(),
        };
        fields.insert(0, ("Host".to_owned(), host));
        if forwarded {
            let ip = req.peer_addr().ip();
            let proto = if req.is_tls() { "https" } else { "http" };
            xff.retain(|v| !v.trim().is_empty());
            let prior = xff.join(", ");
            fields.push((
                "X-Forwarded-For".to_owned(),
                if prior.is_empty() {
                    ip.to_string()
                } else {
                    format!("{prior}, {ip}")
                },
            ));
            fields.push(("X-Forwarded-Proto".to_owned(), proto.to_owned()));
            let node = if ip.is_ipv6() {
                format!("\"[{ip}]\"")
            } else {
                ip.to_string()
            };
            let mut element = format!("for={node}");
            if let Some(h) = client_host {
                fields.push(("X-Forwarded-Host".to_owned(), h.to_owned()));
                element.push_str(&format!(";host={}", forwarded_value(h)));
            }
            element.push_str(&format!(";proto={proto}"));
            fwd.retain(|v| !v.trim().is_empty());
            fwd.push(&element);
            fields.push(("Forwarded".to_owned(), fwd.join(", ")));
        }
        let chunked = length.is_none();
        // Trailers can only follow a chunked body.
        if let Some(names) = trailer_announcement(announced, &named).filter(|_| chunked) {
            fields.push(("Trailer".to_owned(), names));
        }
        match length {
            None => fields.push(("Transfer-Encoding".to_owned(), "chunked".to_owned())),
            Some(n) if n > 0 || req.header("content-length").is_some() => {
                fields.push(("Content-Length".to_owned(), n.to_string()));
            }
            Some(_) => {}
        }
        if self.up.max_idle == 0 {
            fields.push(("Connection".to_owned(), "close".to_owned()));
        }
        let refs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let mut out = BytesMut::with_capacity(512);
        let target = self.target(req.url());
        ws_http::write_request_head(&mut out, req.method(), &target, &refs)
            .map_err(|e| Failure::Body(400, format!("cannot forward this request: {e}")))?;
        Ok((out, chunked))
    }

    async fn connect(&self) -> Result<Conn, Failure> {
        let work = async {
            let tcp = TcpStream::connect((self.up.host.as_str(), self.up.port))
                .await
                .map_err(|e| Failure::Connect(e.to_string()))?;
            if self.nodelay {
                let _ = tcp.set_nodelay(true);
            }
            match &self.tls {
                None => Ok(Box::new(tcp) as Conn),
                Some((connector, name)) => connector
                    .connect(name.clone(), tcp)
                    .await
                    .map(|s| Box::new(s) as Conn)
                    .map_err(|e| Failure::Connect(format!("TLS: {e}"))),
            }
        };
        tokio::time::timeout(self.connect_timeout, work)
            .await
            .unwrap_or(Err(Failure::Timeout(
                "connecting to the upstream timed out",
            )))
    }

    /// Forwards one request and returns the upstream's response (streamed), or the 502, 504
    /// or body error answer.
    pub(crate) async fn forward(&self, req: &Request, body: &mut Body<'_>) -> Response {
        if req.method() == "CONNECT" {
            // A reverse proxy: no tunnels. RFC 9110 section 15.5.6 requires `Allow` on 405.
            return Response::text(405, "CONNECT is not supported\n").with_header("Allow", ALLOW);
        }
        let length = body.content_length();
        let (mut head, chunked) = match self.request_head(req, length) {
            Ok(h) => h,
            Err(f) => return f.response(),
        };
        let idempotent = idempotent(req.method());
        // The whole request is in `head` (no body, or a small one read now to be replayable);
        // otherwise the body is streamed from the client during the exchange.
        let whole = match length {
            Some(0) => true,
            Some(n) if idempotent && n <= REPLAY_MAX => match read_body(body).await {
                Ok(b) => {
                    head.extend_from_slice(&b);
                    true
                }
                Err(f) => return f.response(),
            },
            _ => false,
        };
        let mut pooled = self.pool.take().await;
        loop {
            let reused = pooled.is_some();
            let conn = match pooled.take() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => c,
                    Err(f) => return f.response(),
                },
            };
            match self.exchange(conn, &head, req, body, !whole, chunked).await {
                Ok(resp) => return resp,
                // Nothing of a streamed body read yet: it can still be sent in full.
                Err(Failure::Closed) if reused && idempotent && (whole || body.received() == 0) => {
                    tracing::debug!(
                        "reused upstream connection closed; sending again on a new one"
                    );
                }
                Err(f) => return f.response(),
            }
        }
    }

    /// One request/response exchange on `conn`: `head` (with the whole body unless
    /// `stream_body`), then the client's body streamed from `body` if `stream_body`.
    async fn exchange(
        &self,
        conn: Conn,
        head: &[u8],
        req: &Request,
        body: &mut Body<'_>,
        stream_body: bool,
        chunked: bool,
    ) -> Result<Response, Failure> {
        let method = req.method();
        let req_named = connection_named(req.headers().iter().map(|(n, v)| (&**n, &**v)));
        let t = self.up.response_timeout;
        let (mut r, mut w) = tokio::io::split(conn);
        match tokio::time::timeout(t, async {
            w.write_all(head).await?;
            w.flush().await
        })
        .await
        {
            Err(_) => return Err(Failure::Timeout("writing to the upstream timed out")),
            // Nothing of a streamed body was read yet: the caller may send it all again.
            Ok(Err(_)) => return Err(Failure::Closed),
            Ok(Ok(())) => {}
        }
        let mut rx = BytesMut::new();
        let mut sent = !stream_body;
        let mut deadline = sent.then(|| Instant::now() + t);
        let resp = {
            let send = send_body(&mut w, body, chunked, &req_named, t);
            let recv = read_head(&mut r, &mut rx, &self.limits);
            tokio::pin!(send, recv);
            loop {
                let sleep = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now));
                tokio::select! {
                    res = &mut send, if !sent => {
                        res?;
                        sent = true;
                        deadline = Some(Instant::now() + t);
                    }
                    res = &mut recv => break res?,
                    () = sleep, if deadline.is_some() => {
                        return Err(Failure::Timeout("the upstream did not answer in time"));
                    }
                }
            }
        };
        let status = resp.status();
        let kind = resp
            .body_kind(method)
            .map_err(|e| Failure::Upstream(format!("invalid response framing: {e}")))?;
        // A response that came before the whole request was sent ends the connection's use.
        let reusable = sent && resp.keep_alive(method) && self.up.max_idle > 0;
        // Whether the client gets the body chunked (HTTP/1.1, no length), so that trailers can
        // reach it; for HEAD, the head a GET would get.
        let chunked_out = req.version() == Version::Http11
            && match kind {
                BodyKind::Chunked => true,
                BodyKind::Length(0) => method == "HEAD" && content_length(&resp).is_none(),
                _ => false,
            };
        let headers = response_headers(&resp, chunked_out);
        match kind {
            BodyKind::Length(0) => {
                let mut out = if method == "HEAD" {
                    // The head of what a GET would get: its length (or its chunked framing).
                    let reader = Response::stream(tokio::io::empty()).with_status(status);
                    match content_length(&resp) {
                        Some(n) => reader.with_content_length(n),
                        None => reader,
                    }
                } else {
                    Response::new(status)
                };
                out.headers = headers;
                if reusable && rx.is_empty() {
                    self.pool.put(r.unsplit(w));
                }
                Ok(out)
            }
            kind => {
                let decoder = BodyDecoder::new(kind, &self.limits)
                    .map_err(|e| Failure::Upstream(e.to_string()))?;
                let (tx, chan) = mpsc::channel(CHANNEL);
                let back = reusable.then(|| (w, self.pool.clone()));
                let (trailers_to, trailers) = if chunked_out && kind == BodyKind::Chunked {
                    let (ttx, trx) = oneshot::channel();
                    let named = connection_named(resp.headers().iter());
                    (Some(TrailersTo { tx: ttx, named }), Some(trx))
                } else {
                    (None, None)
                };
                tokio::spawn(relay(r, rx, decoder, tx, t, back, trailers_to));
                let mut out = Response::stream(ChannelReader {
                    rx: chan,
                    cur: Bytes::new(),
                })
                .with_status(status);
                if let Some(trx) = trailers {
                    out = out.with_trailers(trx);
                }
                if let BodyKind::Length(n) = kind {
                    out = out.with_content_length(n);
                }
                out.headers = headers;
                Ok(out)
            }
        }
    }
}

/// `Content-Length` of a response head, when it is one valid number.
fn content_length(resp: &ws_http::Response) -> Option<u64> {
    let mut values = resp
        .headers()
        .get_all("content-length")
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().parse::<u64>().ok());
    let first = values.next()??;
    values.all(|v| v == Some(first)).then_some(first)
}

/// The response fields to relay: everything but hop-by-hop fields (and the framing, which
/// ws-server writes itself); `Trailer` (reduced to the names forwarded) only when the
/// response goes on chunked (`chunked_out`).
fn response_headers(resp: &ws_http::Response, chunked_out: bool) -> Vec<(String, String)> {
    let named = connection_named(resp.headers().iter());
    let mut fields: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(n, _)| {
            let lower = n.to_ascii_lowercase();
            !HOP_BY_HOP.contains(&lower.as_str())
                && !named.contains(&lower)
                && lower != "content-length"
                && lower != "trailer"
        })
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    if chunked_out {
        if let Some(names) = trailer_announcement(resp.headers().get_all("trailer"), &named) {
            fields.push(("Trailer".to_owned(), names));
        }
    }
    fields
}

/// A failure reading the client's body, with the status the server answers.
fn body_failure(e: ws_server::Error) -> Failure {
    match e {
        ws_server::Error::Http { status, reason } => Failure::Body(status, reason),
        e => Failure::Body(400, e.to_string()),
    }
}

/// Reads the client's whole body (a small one: the caller checked its length).
async fn read_body(body: &mut Body<'_>) -> Result<Bytes, Failure> {
    body.bytes().await.map_err(body_failure)
}

/// Streams the client's body to the upstream (chunked framing again when it came chunked,
/// with the client's trailers that may go on; `named`: the fields the request's `Connection`
/// names).
async fn send_body<W: AsyncWrite + Unpin>(
    w: &mut W,
    body: &mut Body<'_>,
    chunked: bool,
    named: &[String],
    t: Duration,
) -> Result<(), Failure> {
    async fn put<W: AsyncWrite + Unpin>(
        w: &mut W,
        bytes: &[u8],
        t: Duration,
    ) -> Result<(), Failure> {
        match tokio::time::timeout(t, w.write_all(bytes)).await {
            Err(_) => Err(Failure::Timeout("writing to the upstream timed out")),
            Ok(Err(e)) => Err(Failure::Upstream(format!("write failed: {e}"))),
            Ok(Ok(())) => Ok(()),
        }
    }
    let mut enc = ChunkedEncoder::new();
    let mut out = BytesMut::new();
    loop {
        let Some(chunk) = body.chunk().await.map_err(body_failure)? else {
            break;
        };
        if chunked {
            out.clear();
            let _ = enc.write_chunk(&chunk, &mut out);
            put(w, &out, t).await?;
        } else {
            put(w, &chunk, t).await?;
        }
    }
    if chunked {
        out.clear();
        let trailers = body
            .trailers()
            .map(|t| forward_trailers(t, named))
            .unwrap_or_default();
        let refs: Vec<(&str, &str)> = trailers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if enc.finish(&refs, &mut out).is_err() {
            // Parsed fields always pass the check; should one not, the body still ends.
            out.clear();
            let _ = enc.finish(&[], &mut out);
        }
        put(w, &out, t).await?;
    }
    match tokio::time::timeout(t, w.flush()).await {
        Err(_) => Err(Failure::Timeout("writing to the upstream timed out")),
        Ok(Err(e)) => Err(Failure::Upstream(format!("write failed: {e}"))),
        Ok(Ok(())) => Ok(()),
    }
}

/// Reads the final response head (interim 1xx answers are skipped); the bytes after it stay
/// in `rx`. No timeout here: the caller arms it once the request is sent.
async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    rx: &mut BytesMut,
    limits: &ws_http::Limits,
) -> Result<ws_http::Response, Failure> {
    let mut received = false;
    loop {
        if !rx.is_empty() {
            match ws_http::parse_response(rx, limits) {
                Ok(Parsed::Complete(head, len)) => {
                    rx.advance(len);
                    match head.status() {
                        101 => return Err(Failure::Upstream("unexpected 101 response".into())),
                        100..=199 => continue,
                        _ => return Ok(head),
                    }
                }
                Ok(Parsed::Partial) => {}
                Err(e) => return Err(Failure::Upstream(format!("invalid response: {e}"))),
            }
        }
        rx.reserve(4096);
        match r.read_buf(rx).await {
            Ok(0) if !received => return Err(Failure::Closed),
            Ok(0) => return Err(Failure::Upstream("response cut short".into())),
            Err(_) if !received => return Err(Failure::Closed),
            Err(e) => return Err(Failure::Upstream(format!("read failed: {e}"))),
            Ok(_) => received = true,
        }
    }
}

/// Where [`relay`] hands the upstream's trailers that may go on.
struct TrailersTo {
    tx: oneshot::Sender<Vec<(String, String)>>,
    /// The fields the response's `Connection` names.
    named: Vec<String>,
}

/// Upstream body to the client's response channel; the connection goes back to the pool
/// (`back`) after a clean end with nothing after it. The trailers that may go on are sent to
/// `trailers_to` before the channel ends.
async fn relay(
    mut r: ReadHalf<Conn>,
    mut rx: BytesMut,
    mut decoder: BodyDecoder,
    tx: mpsc::Sender<io::Result<Bytes>>,
    t: Duration,
    back: Option<(WriteHalf<Conn>, Arc<Pool>)>,
    trailers_to: Option<TrailersTo>,
) {
    loop {
        match decoder.decode(&mut rx) {
            Ok(Some(BodyEvent::Data(b))) => {
                if tx.send(Ok(b)).await.is_err() {
                    // The client is gone: the rest of the body is not wanted.
                    return;
                }
                continue;
            }
            Ok(Some(BodyEvent::End { trailers })) => {
                if let Some(to) = trailers_to {
                    let _ = to.tx.send(forward_trailers(&trailers, &to.named));
                }
                if let Some((w, pool)) = back {
                    if rx.is_empty() {
                        pool.put(r.unsplit(w));
                    }
                }
                return;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                return;
            }
        }
        rx.reserve(READ_CHUNK);
        match tokio::time::timeout(t, r.read_buf(&mut (&mut rx).limit(READ_CHUNK))).await {
            Err(_) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "upstream body timed out");
                let _ = tx.send(Err(e)).await;
                return;
            }
            Ok(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Ok(Ok(0)) => {
                // A close-delimited body ends here; any other is cut short.
                if let Err(e) = decoder.finish() {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                }
                return;
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// The response body as ws-server reads it: pieces from [`relay`]; an error makes the server
/// close the client's connection instead of ending the body cleanly.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.cur.is_empty() {
                let n = self.cur.len().min(buf.remaining());
                buf.put_slice(&self.cur[..n]);
                self.cur.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The handler wrapper.
// ---------------------------------------------------------------------------------------------

/// The bridge's handler with plain HTTP requests forwarded: every other method is the
/// bridge's own.
pub(crate) struct WithHttp<P> {
    inner: P,
    fwd: Forwarder,
}

impl<P> WithHttp<P> {
    pub(crate) fn new(inner: P, fwd: Forwarder) -> Self {
        Self { inner, fwd }
    }
}

impl<P: Handler> Handler for WithHttp<P> {
    async fn on_tcp_connect(
        &self,
        peer: std::net::SocketAddr,
        local: std::net::SocketAddr,
    ) -> TcpDecision {
        self.inner.on_tcp_connect(peer, local).await
    }

    async fn on_unknown_protocol(&self, peer: std::net::SocketAddr, first_bytes: &[u8]) -> bool {
        self.inner.on_unknown_protocol(peer, first_bytes).await
    }

    async fn on_handshake(&self, request: &Request) -> Decision {
        self.inner.on_handshake(request).await
    }

    async fn on_before_request(&self, request: &mut Request) -> Before {
        self.inner.on_before_request(request).await
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        self.fwd.forward(request, body).await
    }

    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        self.inner.on_connect(ctx).await;
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        self.inner.on_message(ctx, msg).await;
    }

    async fn on_text(&self, ctx: &mut Ctx<'_>, text: Utf8Bytes) {
        self.inner.on_text(ctx, text).await;
    }

    async fn on_binary(&self, ctx: &mut Ctx<'_>, data: Bytes) {
        self.inner.on_binary(ctx, data).await;
    }

    async fn on_fragment(&self, ctx: &mut Ctx<'_>, fragment: Fragment) {
        self.inner.on_fragment(ctx, fragment).await;
    }

    async fn on_ping(&self, ctx: &mut Ctx<'_>, payload: Bytes) {
        self.inner.on_ping(ctx, payload).await;
    }

    async fn on_pong(&self, ctx: &mut Ctx<'_>, payload: Bytes) {
        self.inner.on_pong(ctx, payload).await;
    }

    async fn on_before_heartbeat(&self, ctx: &mut Ctx<'_>) -> bool {
        self.inner.on_before_heartbeat(ctx).await
    }

    async fn on_disconnect(&self, info: &Arc<ConnInfo>, disconnect: Disconnect) {
        self.inner.on_disconnect(info, disconnect).await;
    }

    async fn on_error(
        &self,
        peer: std::net::SocketAddr,
        conn: Option<&Arc<ConnInfo>>,
        error: &ws_server::Error,
    ) {
        self.inner.on_error(peer, conn, error).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_parse_and_print() {
        let up = HttpUpstream::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!((up.secure, up.port, up.base.as_str()), (false, 8000, ""));
        assert_eq!(up.to_string(), "http://127.0.0.1:8000");
        let up = HttpUpstream::parse("HTTPS://[::1]/api/v1/").unwrap();
        assert!(up.secure);
        assert_eq!((up.host.as_str(), up.port), ("::1", 443));
        assert_eq!(up.base, "/api/v1");
        assert_eq!(up.authority(), "[::1]");
        assert_eq!(up.to_string(), "https://[::1]/api/v1");
        for bad in [
            "ws://x:1",
            "tcp://x:1",
            "x:1",
            "http://",
            "http://x:0",
            "http://x:99999",
            "http://x/?q=1",
            "http://x/#f",
            "http://u@x/",
        ] {
            assert!(HttpUpstream::parse(bad).is_err(), "{bad}");
        }
        HttpUpstream::default().validate().unwrap();
        let up = HttpUpstream {
            response_timeout: Duration::ZERO,
            ..HttpUpstream::default()
        };
        assert!(up.validate().is_err());
        let up = HttpUpstream {
            base: "app".into(),
            ..HttpUpstream::default()
        };
        assert!(up.validate().is_err());
    }

    #[test]
    fn forwarded_values_are_quoted_when_needed() {
        assert_eq!(forwarded_value("example.com"), "example.com");
        assert_eq!(forwarded_value("example.com:8080"), "\"example.com:8080\"");
        assert_eq!(forwarded_value("a\"b"), "\"a\\\"b\"");
    }
}
