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
//! The proxy's handler answers `on_http` through [`HttpSide`]: the registration API of the
//! load balancer, then [`crate::Hooks::on_before_forward`], the upstream (the hook's, a
//! balanced backend's, or the fixed one), the forwarder of that upstream, and
//! [`crate::Hooks::on_after_forward`].

mod body;
mod headers;
mod pool;

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
    Body, Request, Response,
    ws_http::{self, BodyDecoder, BodyEvent, BodyKind, ChunkedEncoder, Parsed, Version},
};

use crate::error::Error;
use crate::forward::{ForwardError, ForwardErrorKind, ForwardRequest, Forwarded};
use crate::sync::lock;
use crate::upstream::{HostHeader, HttpUpstream};
use body::*;
use headers::*;
use pool::*;

/// The `Allow` field of the 405 answer to `CONNECT`: the methods forwarded (any other
/// method is forwarded too; the upstream decides what it supports).
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE";

/// Response body pieces waiting for the client.
const CHANNEL: usize = 4;

/// Why a request could not be forwarded.
pub(crate) enum Failure {
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
    /// The hooks' view of it, and the answer the client gets.
    pub(crate) fn into_error(self, upstream: Option<HttpUpstream>) -> (ForwardError, Response) {
        let kind = match &self {
            Self::Connect(_) => ForwardErrorKind::Connect,
            Self::Timeout(_) => ForwardErrorKind::Timeout,
            Self::Upstream(_) | Self::Closed => ForwardErrorKind::Upstream,
            Self::Body(..) => ForwardErrorKind::Body,
        };
        let resp = self.response();
        let err = ForwardError {
            kind,
            status: resp.status,
            message: String::from_utf8_lossy(&resp.body).trim_end().to_owned(),
            upstream,
        };
        (err, resp)
    }

    /// Whether nothing reached the upstream (another backend may be tried).
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }

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

impl Forwarder {
    pub(crate) fn new(
        up: HttpUpstream,
        config: &crate::ProxyConfig,
        tls: TlsConnector,
    ) -> Result<Self, Error> {
        let tls = if up.secure {
            let name = up.server_name.clone().unwrap_or_else(|| up.host.clone());
            let name = rustls::pki_types::ServerName::try_from(name.clone())
                .map_err(|_| Error::InvalidServerName { name })?;
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
        fr: &ForwardRequest,
        length: Option<u64>,
    ) -> Result<(BytesMut, bool), Failure> {
        let named = connection_named(fr.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let forwarded = self.up.forwarded_headers;
        let mut fields: Vec<(String, String)> = Vec::with_capacity(fr.headers.len() + 7);
        let mut xff: Vec<&str> = Vec::new();
        let mut fwd: Vec<&str> = Vec::new();
        let mut announced: Vec<&str> = Vec::new();
        for (name, value) in &fr.headers {
            let (name, value) = (name.as_str(), value.as_str());
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
            fields.push((name.to_owned(), value.to_owned()));
        }
        let client_host = req.header("host").filter(|h| !h.is_empty());
        let host = match (&fr.host, self.up.host_header, client_host) {
            (Some(h), _, _) => h.clone(),
            (None, HostHeader::Client, Some(h)) => h.to_owned(),
            _ => self.up.authority(),
        };
        fields.insert(0, ("Host".to_owned(), host));
        if let Some(origin) = &fr.origin {
            fields.insert(1, ("Origin".to_owned(), origin.clone()));
        }
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
        let target = self.target(&fr.url());
        ws_http::write_request_head(&mut out, &fr.method, &target, &refs)
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

    /// Forwards one request (as `fr` says) and returns the upstream's response (streamed), or
    /// why there is none.
    pub(crate) async fn forward(
        &self,
        req: &Request,
        fr: &ForwardRequest,
        body: &mut Body<'_>,
    ) -> Result<Response, Failure> {
        let length = body.content_length();
        let (mut head, chunked) = self.request_head(req, fr, length)?;
        let idempotent = idempotent(&fr.method);
        // The whole request is in `head` (no body, or a small one read now to be replayable);
        // otherwise the body is streamed from the client during the exchange.
        let whole = match length {
            Some(0) => true,
            Some(n) if idempotent && n <= REPLAY_MAX => {
                head.extend_from_slice(&read_body(body).await?);
                true
            }
            _ => false,
        };
        let mut pooled = self.pool.take().await;
        loop {
            let reused = pooled.is_some();
            let conn = match pooled.take() {
                Some(c) => c,
                None => self.connect().await?,
            };
            match self
                .exchange(conn, &head, (req, fr), body, !whole, chunked)
                .await
            {
                Ok(resp) => return Ok(resp),
                // Nothing of a streamed body read yet: it can still be sent in full.
                Err(Failure::Closed) if reused && idempotent && (whole || body.received() == 0) => {
                    tracing::debug!(
                        "reused upstream connection closed; sending again on a new one"
                    );
                }
                Err(f) => return Err(f),
            }
        }
    }

    /// One request/response exchange on `conn`: `head` (with the whole body unless
    /// `stream_body`), then the client's body streamed from `body` if `stream_body`.
    async fn exchange(
        &self,
        conn: Conn,
        head: &[u8],
        (req, fr): (&Request, &ForwardRequest),
        body: &mut Body<'_>,
        stream_body: bool,
        chunked: bool,
    ) -> Result<Response, Failure> {
        let method = fr.method.as_str();
        let req_named = connection_named(fr.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
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

// ---------------------------------------------------------------------------------------------
// The per-request side: hooks, upstream choice (hook, balancer, fixed), one forwarder per
// upstream.
// ---------------------------------------------------------------------------------------------

/// Plain HTTP requests of the proxy: the registration API, the forwarding hooks, the
/// upstream choice and a forwarder (with its connection pool) per upstream.
pub(crate) struct HttpSide {
    cfg: crate::ProxyConfig,
    tls: TlsConnector,
    /// The fixed upstream ([`crate::ProxyConfig::http_upstream`]; changeable at run time).
    pub(crate) fixed: Mutex<Option<HttpUpstream>>,
    forwarders: Mutex<std::collections::HashMap<String, Arc<Forwarder>>>,
}

impl HttpSide {
    pub(crate) fn new(cfg: &crate::ProxyConfig, tls: TlsConnector) -> Result<Self, Error> {
        let side = Self {
            cfg: cfg.clone(),
            tls,
            fixed: Mutex::new(cfg.http_upstream.clone()),
            forwarders: Mutex::default(),
        };
        if let Some(up) = &cfg.http_upstream {
            side.forwarder(up)?;
        }
        Ok(side)
    }

    /// The forwarder of `up` (made on first use).
    pub(crate) fn forwarder(&self, up: &HttpUpstream) -> Result<Arc<Forwarder>, Error> {
        let key = format!("{up}|{:?}|{}", up.host_header, up.forwarded_headers);
        if let Some(f) = lock(&self.forwarders).get(&key) {
            if f.up == *up {
                return Ok(f.clone());
            }
        }
        let f = Arc::new(Forwarder::new(up.clone(), &self.cfg, self.tls.clone())?);
        lock(&self.forwarders).insert(key, f.clone());
        Ok(f)
    }

    /// Answers a plain HTTP request: forwarded as the hooks and the balancer say.
    pub(crate) async fn handle<H: crate::Hooks>(
        &self,
        hooks: &H,
        lb: Option<&Arc<crate::lb::Lb>>,
        req: &Request,
        body: &mut Body<'_>,
    ) -> Response {
        if let Some(lb) = lb
            && let Some(resp) = lb.api(req, body).await
        {
            return resp;
        }
        if req.method() == "CONNECT" {
            // A reverse proxy: no tunnels. RFC 9110 section 15.5.6 requires `Allow` on 405.
            return Response::text(405, "CONNECT is not supported\n").with_header("Allow", ALLOW);
        }
        let mut tried = Vec::new();
        let mut picked = None;
        let fixed = lock(&self.fixed).clone();
        let default = match lb.and_then(|lb| lb.pick_http(req, &tried)) {
            Some((target, up)) => {
                picked = Some(target);
                Some(up)
            }
            None => fixed.clone(),
        };
        let mut fr = ForwardRequest::from_request(req, default.clone());
        if let Some(resp) = hooks.on_before_forward(req, &mut fr) {
            return resp;
        }
        // The hook chose the upstream: no balancing.
        if fr.upstream != default {
            picked = None;
        }
        loop {
            let Some(up) = fr.upstream.clone() else {
                let err = ForwardError {
                    kind: ForwardErrorKind::NoUpstream,
                    status: 404,
                    message: "no upstream for this request".to_owned(),
                    upstream: None,
                };
                hooks.on_after_forward(req, &fr, Err(&err));
                return Response::new(404);
            };
            let fwd = match self.forwarder(&up) {
                Ok(f) => f,
                Err(e) => {
                    let err = ForwardError {
                        kind: ForwardErrorKind::NoUpstream,
                        status: 502,
                        message: format!("bad gateway: {e}"),
                        upstream: Some(up),
                    };
                    hooks.on_after_forward(req, &fr, Err(&err));
                    return Response::text(502, format!("{}\n", err.message));
                }
            };
            let guard = match (lb, &picked) {
                (Some(lb), Some(t)) => Some(lb.guard(t)),
                _ => None,
            };
            match fwd.forward(req, &fr, body).await {
                Ok(resp) => {
                    drop(guard);
                    let done = Forwarded {
                        upstream: up,
                        status: resp.status,
                        headers: resp.headers.clone(),
                    };
                    hooks.on_after_forward(req, &fr, Ok(&done));
                    return resp;
                }
                Err(f) => {
                    drop(guard);
                    // A balanced backend that cannot be reached: down, and the next one
                    // (nothing of the body has been read yet).
                    if let (Some(lb), Some(t)) = (lb, picked.take())
                        && f.is_connect()
                        && body.received() == 0
                    {
                        lb.failed(&t);
                        tried.push(t);
                        if let Some((next, up)) = lb.pick_http(req, &tried) {
                            picked = Some(next);
                            fr.upstream = Some(up);
                            continue;
                        }
                    }
                    let (err, resp) = f.into_error(Some(up));
                    hooks.on_after_forward(req, &fr, Err(&err));
                    return resp;
                }
            }
        }
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
