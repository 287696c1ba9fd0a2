//! The HTTP side of the port: one loop per connection until it upgrades, turns into SSE, or
//! closes.
//!
//! ```text
//!  read head (first: handshake_timeout; next: keep_alive_timeout idle, then handshake_timeout)
//!    | ws_http::parse_request (limits: 431 / 414 / 400 / 505)     not HTTP (first) -> RawTcp
//!    v
//!  Handler::on_before_request --Respond--> response
//!    | Continue
//!  guard: allowed origins, then auth unless public --refused--> 403 / 401 (upgrades: and close)
//!    +-- Upgrade: websocket --> upgrade::run (on_handshake, 101) --> WebSocket
//!    +-- sessions: find or start the request's session (Set-Cookie on the response)
//!    +-- body_kind (CL + TE, bad CL: 400 and close) ; BodyDecoder (CL > max_body: 413)
//!    +-- GET + SseConfig::allows(path) + Accept takes text/event-stream --> SSE connection
//!    +-- GET/HEAD + document_root --> static file (304 / 206 / 416 / 301 / 403)
//!    +-- html_files / javascript_files --> the built-in page and client (crate::assets)
//!    +-- Handler::on_http(request, body) --> Response
//!    v
//!  compress (ServerConfig::compression + Accept-Encoding: gzip | deflate, see compress.rs)
//!  write response (Content-Length | chunked [+ trailers] | close-delimited for HTTP/1.0 streams)
//!  discard the unread body (bounded), then the next pipelined request, or close
//! ```

mod compress;
pub(crate) mod files;
mod upgrade;

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
};

use bytes::{Buf, Bytes, BytesMut};
use tokio::{io::AsyncReadExt, time::Instant};
use ws_http::{BodyDecoder, BodyKind, ChunkedEncoder, Parsed, Version};

use crate::{
    auth::AuthOutcome,
    config::origin_allowed,
    conn::{Established, LINGER},
    error::Error,
    handle::{AdmitGuard, Inner, ServerHandle},
    handler::{Before, Handler},
    io::Io,
    request::Request,
};
use crate::{
    body::Body,
    response::{Response, Source},
};

/// Unread request body the server reads and drops to keep a connection reusable; beyond it
/// the connection is closed instead.
const DISCARD_BUDGET: u64 = 256 * 1024;
/// Stream bodies are copied in pieces of this size (bounded memory per response).
const COPY_CHUNK: usize = 64 * 1024;
/// Files over [`files::SMALL_FILE`] that cannot go out with sendfile(2) (TLS, an encoded body,
/// other platforms) are read in pieces of this size, each in one trip to the
/// blocking pool: at 64 KiB the trips (a wake-up and two context switches each) cost more
/// CPU than the copies. A streaming response holds two pieces (one read, one written).
const FILE_CHUNK: usize = 256 * 1024;
/// Fields the server frames itself: ignored in a response's headers and trailers.
const FRAMING_FIELDS: [&str; 3] = ["content-length", "transfer-encoding", "connection"];
/// Bytes bodies up to this size are copied next to the head; larger ones go in the same
/// vectored write.
const COALESCE: usize = 4 * 1024;

/// What follows the HTTP phase of a connection.
pub(crate) enum Next {
    Ws(Established),
    Raw {
        io: Io,
        peer: SocketAddr,
        local: SocketAddr,
        tls: bool,
        first: Bytes,
        guard: AdmitGuard,
    },
    Sse {
        io: Io,
        request: Box<Request>,
        guard: AdmitGuard,
    },
}

/// An accepted (and TLS-terminated) connection entering the HTTP phase.
pub(crate) struct Accepted {
    pub(crate) io: Io,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
    /// End of the handshake timeout (TLS plus the first request head).
    pub(crate) deadline: Instant,
    pub(crate) guard: AdmitGuard,
    /// Admitted beyond `max_connections`: answer 503.
    pub(crate) over_limit: bool,
}

enum HeadRead {
    Head(Box<ws_http::Request>, usize),
    NotHttp,
    Failed(ws_http::Error),
    TimedOut { partial: bool },
    Closed,
}

async fn read_head(
    io: &mut Io,
    buf: &mut BytesMut,
    inner: &Inner,
    first: Option<Instant>,
) -> HeadRead {
    let config = &inner.config;
    let mut head_deadline = first;
    loop {
        if first.is_none() {
            // Empty lines before a request are ignored (RFC 9112 section 2.2).
            while buf.first().is_some_and(|&b| b == b'\r' || b == b'\n') {
                buf.advance(1);
            }
        }
        if !buf.is_empty() {
            if first.is_some() && !ws_http::looks_like_http(buf) {
                return HeadRead::NotHttp;
            }
            match ws_http::parse_request(buf, &config.http) {
                Ok(Parsed::Complete(h, n)) => return HeadRead::Head(Box::new(h), n),
                Ok(Parsed::Partial) => {}
                Err(e) => return HeadRead::Failed(e),
            }
            head_deadline.get_or_insert_with(|| Instant::now() + config.handshake_timeout);
        }
        let idle = head_deadline.is_none();
        let deadline = head_deadline.unwrap_or_else(|| Instant::now() + config.keep_alive_timeout);
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let stop = inner.stop_signal.notified();
        if idle && inner.stopping.load(Ordering::Acquire) {
            return HeadRead::Closed;
        }
        let read = tokio::select! {
            r = tokio::time::timeout_at(deadline, io.read_buf(buf)) => r,
            () = stop, if idle => return HeadRead::Closed,
        };
        match read {
            Err(_) => {
                return HeadRead::TimedOut {
                    partial: !buf.is_empty(),
                };
            }
            Ok(Ok(0) | Err(_)) => return HeadRead::Closed,
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends FIN, then reads (and drops) what the peer still sends for a short while, so that
/// unread input does not turn the close into a reset that destroys the response.
pub(crate) async fn close_gracefully(io: &mut Io) {
    let _ = tokio::time::timeout(LINGER, async {
        let _ = io.shutdown().await;
        let mut sink = BytesMut::with_capacity(4096);
        let mut total = 0usize;
        while total < 1 << 20 {
            sink.clear();
            match io.read_buf(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// Writes a parse or framing error answer and closes.
async fn fail(io: &mut Io, e: &ws_http::Error) {
    let mut out = BytesMut::new();
    e.write_response(&mut out);
    let _ = tokio::time::timeout(LINGER, io.write_all(&out)).await;
    close_gracefully(io).await;
}

fn http_error(e: &ws_http::Error) -> Error {
    Error::Http {
        status: e.status(),
        reason: e.to_string(),
    }
}

/// Serves HTTP requests on one connection until it upgrades, becomes SSE, or closes.
pub(crate) async fn serve<H: Handler>(
    server: &ServerHandle,
    handler: &Arc<H>,
    accepted: Accepted,
) -> Option<Next> {
    let Accepted {
        mut io,
        peer,
        local,
        tls,
        deadline,
        guard,
        over_limit,
    } = accepted;
    let inner = &server.inner;
    let config = &inner.config;
    let mut buf = BytesMut::with_capacity(1024);
    let mut served = 0usize;
    loop {
        let first = (served == 0).then_some(deadline);
        let (head, head_len) = match read_head(&mut io, &mut buf, inner, first).await {
            HeadRead::Head(h, n) => (h, n),
            HeadRead::NotHttp => {
                if config.raw_tcp.enabled && handler.on_unknown_protocol(peer, &buf).await {
                    return Some(Next::Raw {
                        io,
                        peer,
                        local,
                        tls,
                        first: buf.freeze(),
                        guard,
                    });
                }
                return None;
            }
            HeadRead::Failed(e) => {
                fail(&mut io, &e).await;
                handler.on_error(peer, None, &http_error(&e)).await;
                return None;
            }
            HeadRead::TimedOut { partial } => {
                if partial {
                    let resp = Response::text(408, "request timeout\n");
                    let _ = send(&mut io, resp, None, false, config).await;
                    close_gracefully(&mut io).await;
                }
                if partial || first.is_some() {
                    handler.on_error(peer, None, &Error::HandshakeTimeout).await;
                }
                return None;
            }
            HeadRead::Closed => return None,
        };
        buf.advance(head_len);
        served += 1;
        let mut request = Request::from_http(&head, peer, local, tls);

        if (served == 1 && over_limit) || inner.stopping.load(Ordering::Acquire) {
            let resp = Response::text(503, "server busy\n");
            let _ = send(&mut io, resp, Some(&request), false, config).await;
            close_gracefully(&mut io).await;
            return None;
        }
        let before = handler.on_before_request(&mut request).await;
        let mut early = match before {
            Before::Respond(resp) => Some(resp),
            Before::Continue => None,
        };
        if early.is_none() {
            if let Some(refusal) = check_guards(config, &mut request).await {
                if head.is_websocket_upgrade() {
                    // As before the guards covered every route: answer and close.
                    let _ = send(&mut io, refusal, Some(&request), false, config).await;
                    close_gracefully(&mut io).await;
                    return None;
                }
                early = Some(refusal);
            }
        }
        if early.is_none() && head.is_websocket_upgrade() {
            let deadline = first.unwrap_or_else(|| Instant::now() + config.handshake_timeout);
            return Box::pin(upgrade::run(
                server, handler, io, &head, request, buf, guard, deadline,
            ))
            .await;
        }
        // AutoStartSession: the session is found or started before anyone answers.
        let new_cookie = match (&config.sessions, &early) {
            (Some(sessions), None) => {
                let (session, cookie) = sessions.get_or_start(&request);
                request.attach_session(&session);
                cookie
            }
            _ => None,
        };
        let kind = match head.body_kind() {
            Ok(k) => k,
            Err(e) => {
                // Request smuggling vectors (CL with TE, bad CL) and unknown codings.
                fail(&mut io, &e).await;
                handler.on_error(peer, None, &http_error(&e)).await;
                return None;
            }
        };
        if early.is_none()
            && request.method() == "GET"
            && config.sse.allows(request.path())
            && wants_event_stream(&request)
        {
            return Some(Next::Sse {
                io,
                request: Box::new(request),
                guard,
            });
        }
        let decoder = match BodyDecoder::new(kind, &config.http) {
            Ok(d) => d,
            Err(e) => {
                fail(&mut io, &e).await;
                handler.on_error(peer, None, &http_error(&e)).await;
                return None;
            }
        };
        let mut keep_alive =
            config.keep_alive && head.keep_alive() && served < config.max_requests_per_connection;
        let expects_continue = head.version() == Version::Http11
            && head
                .headers()
                .get("expect")
                .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let length = match kind {
            BodyKind::Length(n) => Some(n),
            _ => None,
        };
        let mut body = Body {
            io: &mut io,
            rx: &mut buf,
            decoder,
            length,
            timeout: config.body_timeout,
            continue_pending: expects_continue && length != Some(0),
            error: None,
            done: length == Some(0),
            trailers: ws_http::Headers::new(),
        };
        let mut response = match early {
            Some(resp) => resp,
            None => match static_file(inner, &request).await {
                Some(resp) => resp,
                None => match builtin_asset(config, &request) {
                    Some(resp) => resp,
                    None => handler.on_http(&request, &mut body).await,
                },
            },
        };
        if let Some(cookie) = new_cookie {
            response.headers.push(("Set-Cookie".into(), cookie));
        }
        if let Some((status, reason)) = body.error.take() {
            keep_alive = false;
            // The handler's answer stands only when it reports this same status (a custom
            // error page); anything else would hide why the body failed.
            if response.status != status {
                response = Response::text(status, format!("{reason}\n"));
            }
            handler
                .on_error(peer, None, &Error::Http { status, reason })
                .await;
        } else if !body.discard(DISCARD_BUDGET).await {
            keep_alive = false;
        }
        let keep_alive = keep_alive && !inner.stopping.load(Ordering::Acquire);
        if !send(&mut io, response, Some(&request), keep_alive, config).await {
            close_gracefully(&mut io).await;
            return None;
        }
    }
}

/// The guards every route passes, upgrades included, in this order: the allowed origins
/// ([`crate::ServerConfig::allowed_origins`], when the request has an `Origin` field), then
/// authentication ([`crate::ServerConfig::auth`]) unless the path is public or
/// [`Handler::on_before_request`] already recorded a user. `Some` is the refusal to send.
async fn check_guards(config: &crate::ServerConfig, request: &mut Request) -> Option<Response> {
    if !config.allowed_origins.is_empty() {
        if let Some(origin) = request.header("origin") {
            if !origin_allowed(&config.allowed_origins, origin) {
                return Some(Response::text(403, "origin not allowed\n"));
            }
        }
    }
    let auth = config.auth.as_ref()?;
    if let Some(path) = auth.sgc.parse(request.path()) {
        return sgc_guard(auth, request, path).await;
    }
    if request.user().is_some() || auth.is_public(request.path()) {
        return None;
    }
    match auth.authenticate(request).await {
        AuthOutcome::Allow { user } => {
            request.set_user(user);
            None
        }
        outcome => {
            let status = if outcome == AuthOutcome::Forbidden {
                403
            } else {
                401
            };
            let mut resp = Response::text(status, "authentication required\n");
            resp.headers.extend(auth.rejection_headers(status));
            Some(resp)
        }
    }
}

/// The seed's credentials in the path ([`crate::SgcAuth`]): answers a token request, or checks
/// URL or session credentials and cuts them from the target. `Some` is the response to send.
async fn sgc_guard(
    auth: &crate::AuthConfig,
    request: &mut Request,
    path: crate::sgc_auth::SgcPath,
) -> Option<Response> {
    use crate::sgc_auth::SgcPath;
    let refuse = |outcome: AuthOutcome| {
        let status = if outcome == AuthOutcome::Forbidden {
            403
        } else {
            401
        };
        Some(Response::text(status, "authentication required\n"))
    };
    let now = std::time::Instant::now();
    let (outcome, rest) = match path {
        SgcPath::TokenRequest { user, password } => {
            if request.method() != "GET" {
                return Some(Response::text(405, "ask for a session token with GET\n"));
            }
            return match auth.check_password(request, &user, &password).await {
                AuthOutcome::Allow { .. } => match auth.sgc.issue(&user, now) {
                    Ok(token) => {
                        Some(Response::text(200, token).with_header("Cache-Control", "no-store"))
                    }
                    Err(_) => Some(Response::text(503, "no entropy for a session token\n")),
                },
                outcome => refuse(outcome),
            };
        }
        SgcPath::Url {
            user,
            password,
            rest,
        } => (auth.check_password(request, &user, &password).await, rest),
        SgcPath::Session { token, rest } => match auth.sgc.redeem(&token, now) {
            Some(user) => (AuthOutcome::allow(user), rest),
            None => (AuthOutcome::Unauthorized, rest),
        },
    };
    match outcome {
        AuthOutcome::Allow { user } => {
            request.set_user(user);
            let query = request.query().map(|q| format!("?{q}")).unwrap_or_default();
            request.target = format!("{rest}{query}");
            None
        }
        outcome => refuse(outcome),
    }
}

/// Whether a GET on an SSE path should get the stream: `Accept` lists `text/event-stream`,
/// `text/*` or `*/*` (with a non-zero weight), or is absent (RFC 9110 section 12.5.1: any
/// type is acceptable). Others go to [`Handler::on_http`].
fn wants_event_stream(request: &Request) -> bool {
    let mut seen = false;
    for value in request.headers().get_all("accept") {
        seen = true;
        for item in value.split(',') {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim();
            let zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if !zero
                && ["text/event-stream", "text/*", "*/*"]
                    .iter()
                    .any(|m| media.eq_ignore_ascii_case(m))
            {
                return true;
            }
        }
    }
    !seen
}

/// The built-in page or client for `request`, when [`crate::ServerConfig::html_files`] or
/// [`crate::ServerConfig::javascript_files`] covers its path (405 for methods other than
/// GET and HEAD).
fn builtin_asset(config: &crate::ServerConfig, request: &Request) -> Option<Response> {
    use crate::assets::{PAGE_PATHS, SCRIPT_PATHS, WSKIT_JS};
    let path = request.path();
    let (body, content_type) = if config.html_files && PAGE_PATHS.contains(&path) {
        (config.test_page.clone(), "text/html; charset=utf-8")
    } else if config.javascript_files && SCRIPT_PATHS.contains(&path) {
        (
            Bytes::from_static(WSKIT_JS.as_bytes()),
            "application/javascript",
        )
    } else {
        return None;
    };
    if !matches!(request.method(), "GET" | "HEAD") {
        return Some(Response::new(405).with_header("Allow", "GET, HEAD"));
    }
    Some(
        Response::new(200)
            .with_header("Content-Type", content_type)
            .with_header("Cache-Control", "no-cache")
            .with_header("X-Content-Type-Options", "nosniff")
            .with_body(body),
    )
}

/// The static-file answer for `request`, when the document root has one.
async fn static_file(inner: &Inner, request: &Request) -> Option<Response> {
    let root = inner.root.as_deref()?;
    if !matches!(request.method(), "GET" | "HEAD") {
        return None;
    }
    match inner
        .file_cache
        .lookup(root, request.path(), request.method() == "GET")
        .await
    {
        files::Found::File(opened) => {
            let mut r = Response::new(200);
            r.source = Some(Source::Opened(opened));
            Some(r)
        }
        files::Found::Redirect(to) => {
            let location = match request.query() {
                Some(q) => format!("{to}?{q}"),
                None => to,
            };
            Some(Response::redirect(301, location))
        }
        files::Found::Refused(status) => Some(Response::new(status)),
        files::Found::Missing => None,
    }
}

/// A response body ready to be written.
enum Payload {
    Bytes(Bytes),
    Reader(
        std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>,
        Option<u64>,
    ),
    Channel(tokio::sync::mpsc::Receiver<Bytes>, Option<u64>),
    File(std::fs::File, u64, u64),
}

/// Writes `resp` for `request` (`None`: an answer before any request was understood). Returns
/// whether the connection can carry another request.
pub(crate) async fn send(
    io: &mut Io,
    resp: Response,
    request: Option<&Request>,
    mut keep_alive: bool,
    config: &crate::ServerConfig,
) -> bool {
    let head_only = request.is_some_and(|r| r.method() == "HEAD");
    let http10 = request.is_some_and(|r| r.version() == Version::Http10);
    let Response {
        mut status,
        headers,
        body,
        source,
        trailers,
    } = resp;
    let mut fields: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(n, _)| {
            !FRAMING_FIELDS
                .iter()
                .chain(&["date", "server"])
                .any(|f| n.eq_ignore_ascii_case(f))
        })
        .collect();
    // A file's length and type: what a 304 for it is judged by.
    let mut repr = None;
    let mut payload = match source {
        None => Payload::Bytes(body),
        Some(Source::Reader { reader, len }) => Payload::Reader(reader, len),
        Some(Source::Channel { rx, len }) => Payload::Channel(rx, len),
        Some(Source::File(path)) => {
            let read_small = !head_only;
            let opened =
                tokio::task::spawn_blocking(move || files::open_blocking(&path, read_small))
                    .await
                    .ok()
                    .flatten();
            repr = opened.as_ref().map(|o| (o.len, o.content_type));
            file_payload(opened.map(Box::new), request, &mut fields, &mut status)
        }
        Some(Source::Opened(o)) => {
            repr = Some((o.len, o.content_type));
            file_payload(Some(o), request, &mut fields, &mut status)
        }
    };
    let no_body = (100..200).contains(&status) || status == 204 || status == 304;
    let mut length = match &payload {
        Payload::Bytes(b) => Some(b.len() as u64),
        Payload::File(_, _, n) => Some(*n),
        Payload::Reader(_, l) | Payload::Channel(_, l) => *l,
    };
    let mut coder = None;
    if let Some(req) = request.filter(|_| config.compression.enabled) {
        let (size, file_type) = match repr {
            Some((len, t)) if status == 304 => (Some(len), Some(t)),
            _ => (length, None),
        };
        if let Some(coding) = compression(config, req, &mut fields, status, size, file_type) {
            match &mut payload {
                // A 304 names the variant the client holds: its entity tag, no body.
                _ if no_body => etag_of_variant(&mut fields, coding),
                Payload::Bytes(b) => {
                    match compress::compress_all(coding, config.compression.level, b) {
                        Ok(z) => {
                            *b = Bytes::from(z);
                            length = Some(b.len() as u64);
                            encoded(&mut fields, coding);
                        }
                        Err(e) => tracing::debug!(error = %e, "response not compressed"),
                    }
                }
                _ => {
                    coder = Some(compress::Encoder::new(coding, config.compression.level));
                    length = None;
                    encoded(&mut fields, coding);
                }
            }
        }
    }
    let mut chunked = false;
    if !no_body {
        match length {
            Some(n) => fields.push(("Content-Length".into(), n.to_string())),
            None if http10 => keep_alive = false,
            None => {
                fields.push(("Transfer-Encoding".into(), "chunked".into()));
                chunked = true;
            }
        }
    }
    if !keep_alive {
        fields.push(("Connection".into(), "close".into()));
    } else if http10 {
        fields.push(("Connection".into(), "keep-alive".into()));
    }
    if !config.server_name.is_empty() {
        fields.push(("Server".into(), config.server_name.clone()));
    }
    fields.push(("Date".into(), files::date_now()));
    let mut out = BytesMut::with_capacity(256);
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if ws_http::write_response_head(&mut out, status, None, &refs).is_err() {
        // A header from the application that cannot be written (CR/LF, bad name).
        out.clear();
        let _ = ws_http::write_response(&mut out, 500, &[], b"", false);
        let _ = write(io, &out, config).await;
        return false;
    }
    if head_only || no_body {
        return write(io, &out, config).await && keep_alive;
    }
    let ok = match payload {
        Payload::Bytes(b) => {
            if b.len() <= COALESCE {
                out.extend_from_slice(&b);
                write(io, &out, config).await
            } else {
                matches!(
                    tokio::time::timeout(config.body_timeout, io.write_all_pair(&out, &b)).await,
                    Ok(Ok(()))
                )
            }
        }
        Payload::File(file, start, n) => {
            #[cfg(target_os = "linux")]
            if !chunked
                && coder.is_none()
                && let Io::Plain(s) = io
            {
                return send_head(s, &out, n > 0, config).await
                    && send_file(s, &file, start, n, config).await
                    && keep_alive;
            }
            let mut body = BodyOut::new(chunked, coder);
            body.flush = false;
            write(io, &out, config).await
                && copy_file(io, file, start, n, &mut body, config).await
                && body.finish(io, None, config).await
        }
        Payload::Reader(mut reader, len) => {
            if !write(io, &out, config).await {
                return false;
            }
            let mut chunk = BytesMut::with_capacity(COPY_CHUNK);
            let mut left = len;
            let mut body = BodyOut::new(chunked, coder);
            let mut trailers = trailers;
            loop {
                chunk.clear();
                let want = left.map_or(COPY_CHUNK, |l| {
                    COPY_CHUNK.min(usize::try_from(l).unwrap_or(COPY_CHUNK))
                });
                if want == 0 {
                    break body.finish(io, trailers.take(), config).await;
                }
                let mut limited = (&mut reader).take(want as u64);
                match limited.read_buf(&mut chunk).await {
                    Ok(0) => {
                        break left.is_none() && body.finish(io, trailers.take(), config).await;
                    }
                    Ok(n) => {
                        if let Some(l) = &mut left {
                            *l -= n as u64;
                        }
                        if !body.piece(io, &chunk, config).await {
                            break false;
                        }
                    }
                    Err(_) => break false,
                }
            }
        }
        Payload::Channel(mut rx, len) => {
            if !write(io, &out, config).await {
                return false;
            }
            let mut left = len;
            let mut body = BodyOut::new(chunked, coder);
            let mut trailers = trailers;
            loop {
                match rx.recv().await {
                    None => {
                        break left.is_none_or(|l| l == 0)
                            && body.finish(io, trailers.take(), config).await;
                    }
                    Some(piece) => {
                        let piece = match &mut left {
                            Some(l) => {
                                let take =
                                    piece.len().min(usize::try_from(*l).unwrap_or(usize::MAX));
                                *l -= take as u64;
                                piece.slice(..take)
                            }
                            None => piece,
                        };
                        if !body.piece(io, &piece, config).await {
                            break false;
                        }
                        if left == Some(0) {
                            break body.finish(io, trailers.take(), config).await;
                        }
                    }
                }
            }
        }
    };
    ok && keep_alive
}

/// The payload of a file response (404 when it could not be opened), its validators and
/// range headers added to `fields`, and `status` set from the request's conditions.
fn file_payload(
    opened: Option<Box<files::Opened>>,
    request: Option<&Request>,
    fields: &mut Vec<(String, String)>,
    status: &mut u16,
) -> Payload {
    let Some(o) = opened else {
        *status = 404;
        return Payload::Bytes(Bytes::new());
    };
    let files::Opened {
        content_type,
        len,
        validators: v,
        data,
    } = *o;
    let has_type = fields
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    let plan = match request {
        Some(r) => files::plan(r, len, &v, content_type),
        None => files::Plan {
            status: 200,
            headers: Vec::new(),
            body: Some((0, len)),
            ranges: Vec::new(),
        },
    };
    if !plan.ranges.is_empty() {
        return byteranges(plan, content_type, len, data, fields, status);
    }
    fields.extend(
        plan.headers
            .into_iter()
            .filter(|(n, _)| !(has_type && n == "Content-Type")),
    );
    if plan.status != 200 {
        *status = plan.status;
    }
    match (plan.body, data) {
        (None, _) => Payload::Bytes(Bytes::new()),
        // Read whole when opened: the range is a slice of it (`plan` keeps it within `len`).
        (Some((start, n)), files::FileData::Whole(all)) => {
            let from = usize::try_from(start).unwrap_or(usize::MAX).min(all.len());
            let to = usize::try_from(start + n)
                .unwrap_or(usize::MAX)
                .min(all.len());
            Payload::Bytes(all.slice(from..to))
        }
        (Some((start, n)), files::FileData::Open(file)) => Payload::File(file, start, n),
    }
}

/// A `multipart/byteranges` answer (RFC 9110 section 14.6) for the ranges of `plan`, built in
/// memory (the plan keeps the total within [`files::MAX_MULTI_BYTES`]). A read error gives 500.
fn byteranges(
    plan: files::Plan,
    content_type: &str,
    len: u64,
    data: files::FileData,
    fields: &mut Vec<(String, String)>,
    status: &mut u16,
) -> Payload {
    let mut raw = [0u8; 12];
    if getrandom::fill(&mut raw).is_err() {
        *status = 500;
        return Payload::Bytes(Bytes::new());
    }
    let boundary: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let (heads, tail) = files::multipart_heads(&boundary, content_type, &plan.ranges, len);
    let mut body = BytesMut::new();
    for ((start, end), head) in plan.ranges.iter().zip(&heads) {
        body.extend_from_slice(head.as_bytes());
        let (from, n) = (*start, end - start + 1);
        match &data {
            files::FileData::Whole(all) => {
                let from = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
                let to = usize::try_from(end + 1)
                    .unwrap_or(usize::MAX)
                    .min(all.len());
                body.extend_from_slice(&all[from..to]);
            }
            files::FileData::Open(file) => {
                use std::os::unix::fs::FileExt as _;
                let at = body.len();
                body.resize(at + usize::try_from(n).unwrap_or(0), 0);
                if file.read_exact_at(&mut body[at..], from).is_err() {
                    *status = 500;
                    return Payload::Bytes(Bytes::new());
                }
            }
        }
    }
    body.extend_from_slice(tail.as_bytes());
    fields.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
    fields.extend(plan.headers);
    fields.push((
        "Content-Type".to_owned(),
        format!("multipart/byteranges; boundary={boundary}"),
    ));
    *status = 206;
    Payload::Bytes(body.freeze())
}

/// Whether `status` with `fields` and a body of `size` bytes (`None`: unknown) is compressed
/// for `request`, and with which coding ([`crate::HttpCompression`]); `file_type` is the
/// type of a file answered with 304 (which carries no `Content-Type`). Adds
/// `Vary: Accept-Encoding` to every response whose body depends on the request's
/// `Accept-Encoding`.
fn compression(
    config: &crate::ServerConfig,
    request: &Request,
    fields: &mut Vec<(String, String)>,
    status: u16,
    size: Option<u64>,
    file_type: Option<&str>,
) -> Option<compress::Coding> {
    let has = |fields: &[(String, String)], name: &str| {
        fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let has_body = status >= 200 && status != 204 && status != 206;
    if !has_body || has(fields, "content-encoding") || has(fields, "content-range") {
        return None;
    }
    let content_type = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map_or(file_type.unwrap_or(""), |(_, v)| v.as_str());
    let large = size.is_none_or(|n| n >= config.compression.min_size.max(1));
    let usual = compress::compressible(content_type) && large;
    let accepted = compress::negotiate(request.header("accept-encoding"));
    if usual {
        match fields
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case("vary"))
        {
            Some((_, v)) => {
                let listed = v
                    .split(',')
                    .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("accept-encoding"));
                if !listed {
                    v.push_str(", Accept-Encoding");
                }
            }
            None => fields.push(("Vary".into(), "Accept-Encoding".into())),
        }
    }
    let wanted = usual || (accepted.identity_refused && size != Some(0));
    accepted.coding.filter(|_| wanted)
}

/// Marks `fields` as those of the `coding` variant: `Content-Encoding`, and the entity tag
/// of the variant.
fn encoded(fields: &mut Vec<(String, String)>, coding: compress::Coding) {
    etag_of_variant(fields, coding);
    fields.push(("Content-Encoding".into(), coding.name().into()));
}

/// Replaces the entity tag in `fields` by that of the `coding` variant.
fn etag_of_variant(fields: &mut [(String, String)], coding: compress::Coding) {
    for (n, v) in fields.iter_mut() {
        if n.eq_ignore_ascii_case("etag") {
            *v = compress::variant_etag(v, coding);
        }
    }
}

/// A streamed body on its way out: chunk framing when `chunked`, compression when a coder
/// is set (with `flush`, each piece is flushed, so that a stream's pieces arrive as they are
/// produced; a file is not).
struct BodyOut {
    chunked: bool,
    flush: bool,
    framing: ChunkedEncoder,
    coder: Option<compress::Encoder>,
}

impl BodyOut {
    fn new(chunked: bool, coder: Option<compress::Encoder>) -> Self {
        Self {
            chunked,
            flush: true,
            framing: ChunkedEncoder::new(),
            coder,
        }
    }

    async fn piece(&mut self, io: &mut Io, piece: &[u8], config: &crate::ServerConfig) -> bool {
        match &mut self.coder {
            None => write_piece(io, piece, self.chunked, &mut self.framing, config).await,
            Some(c) => match c.push(piece, self.flush) {
                Ok(z) => write_piece(io, &z, self.chunked, &mut self.framing, config).await,
                Err(_) => false,
            },
        }
    }

    async fn finish(
        &mut self,
        io: &mut Io,
        trailers: Option<tokio::sync::oneshot::Receiver<Vec<(String, String)>>>,
        config: &crate::ServerConfig,
    ) -> bool {
        if let Some(c) = &mut self.coder {
            let Ok(z) = c.finish() else {
                return false;
            };
            if !write_piece(io, &z, self.chunked, &mut self.framing, config).await {
                return false;
            }
        }
        finish_chunked(io, self.chunked, &mut self.framing, trailers, config).await
    }
}

/// Writes with the body timeout; false on error or timeout.
async fn write(io: &mut Io, bytes: &[u8], config: &crate::ServerConfig) -> bool {
    matches!(
        tokio::time::timeout(config.body_timeout, io.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

async fn write_piece(
    io: &mut Io,
    piece: &[u8],
    chunked: bool,
    enc: &mut ChunkedEncoder,
    config: &crate::ServerConfig,
) -> bool {
    if piece.is_empty() {
        return true;
    }
    if !chunked {
        return write(io, piece, config).await;
    }
    let mut out = BytesMut::with_capacity(piece.len() + 16);
    enc.write_chunk(piece, &mut out).is_ok() && write(io, &out, config).await
}

/// Ends a chunked body: the last chunk and the trailer fields from `trailers` (awaited now,
/// within the body timeout; none when the sender is dropped). Framing fields among them are skipped; an invalid one
/// (see [`Response::with_trailers`]) fails the response: false, nothing written.
async fn finish_chunked(
    io: &mut Io,
    chunked: bool,
    enc: &mut ChunkedEncoder,
    trailers: Option<tokio::sync::oneshot::Receiver<Vec<(String, String)>>>,
    config: &crate::ServerConfig,
) -> bool {
    if !chunked {
        return true;
    }
    // Waited for as a body piece is: within the body timeout (else the body ends unfinished).
    let fields = match trailers {
        Some(rx) => match tokio::time::timeout(config.body_timeout, rx).await {
            Ok(r) => r.unwrap_or_default(),
            Err(_) => return false,
        },
        None => Vec::new(),
    };
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(n, _)| !FRAMING_FIELDS.iter().any(|f| n.eq_ignore_ascii_case(f)))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut out = BytesMut::with_capacity(8);
    match enc.finish(&refs, &mut out) {
        Ok(_) => write(io, &out, config).await,
        Err(e) => {
            tracing::debug!(error = %e, "invalid response trailer; closing without the last chunk");
            false
        }
    }
}

/// Reads up to `want` bytes of `file` at `offset` into `buf` on the blocking pool (no copy
/// through an intermediate buffer; the read position is not shared).
fn read_chunk(
    file: &Arc<std::fs::File>,
    mut buf: Vec<u8>,
    offset: u64,
    want: usize,
) -> tokio::task::JoinHandle<(Vec<u8>, std::io::Result<usize>)> {
    let file = file.clone();
    tokio::task::spawn_blocking(move || {
        if buf.len() < want {
            buf.resize(want, 0);
        }
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&*file, &mut buf[..want], offset);
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&*file, &mut buf[..want], offset);
        (buf, n)
    })
}

/// Writes a response head to a plain TCP socket within the body timeout; with `more` (a body
/// follows from sendfile) flagged MSG_MORE, so that the kernel sends it in the same segments as
/// the body's first bytes instead of a small segment of its own (with TCP_NODELAY on, it would
/// go out alone): the client receives fewer, fuller segments.
#[cfg(target_os = "linux")]
async fn send_head(
    s: &tokio::net::TcpStream,
    head: &[u8],
    more: bool,
    config: &crate::ServerConfig,
) -> bool {
    let flags = if more {
        rustix::net::SendFlags::MORE
    } else {
        rustix::net::SendFlags::empty()
    };
    let all = async {
        let mut left = head;
        while !left.is_empty() {
            s.writable().await?;
            match s.try_io(tokio::io::Interest::WRITABLE, || {
                rustix::net::send(s, left, flags).map_err(std::io::Error::from)
            }) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => left = &left[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok::<_, std::io::Error>(())
    };
    matches!(
        tokio::time::timeout(config.body_timeout, all).await,
        Ok(Ok(()))
    )
}

/// Sends `len` bytes of `file` from `start` to a plain TCP socket with sendfile(2): the kernel
/// hands the file's cached pages to the socket, so the bytes are neither copied through this
/// process nor read on the blocking pool (TLS and encoded bodies go through [`copy_file`]).
/// Each wait for room in the socket is bounded by the body timeout, as a written piece is.
/// Like any read of a file, a call may wait for the disk when the pages are not cached.
#[cfg(target_os = "linux")]
async fn send_file(
    s: &tokio::net::TcpStream,
    file: &std::fs::File,
    start: u64,
    len: u64,
    config: &crate::ServerConfig,
) -> bool {
    // The most one sendfile call moves on Linux.
    const MAX_CALL: u64 = 0x7fff_f000;
    let mut offset = start;
    let end = start.saturating_add(len);
    while offset < end {
        let want = usize::try_from((end - offset).min(MAX_CALL)).unwrap_or(1 << 20);
        let step = async {
            loop {
                s.writable().await?;
                let mut at = offset;
                match s.try_io(tokio::io::Interest::WRITABLE, || {
                    rustix::fs::sendfile(s, file, Some(&mut at), want).map_err(std::io::Error::from)
                }) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        };
        match tokio::time::timeout(config.body_timeout, step).await {
            // The file shrank: the promised length cannot be met; close.
            Ok(Ok(0)) => return false,
            Ok(Ok(n)) => offset += n as u64,
            _ => return false,
        }
    }
    true
}

/// Sends `len` bytes of `file` from `start` in bounded chunks, reading the next chunk while
/// the current one is written (two chunk buffers per connection).
async fn copy_file(
    io: &mut Io,
    file: std::fs::File,
    start: u64,
    len: u64,
    body: &mut BodyOut,
    config: &crate::ServerConfig,
) -> bool {
    let size = |left: u64| FILE_CHUNK.min(usize::try_from(left).unwrap_or(FILE_CHUNK));
    let file = Arc::new(file);
    let (mut offset, mut left) = (start, len);
    let mut spare = Some(Vec::new());
    let mut pending = (left > 0).then(|| read_chunk(&file, Vec::new(), offset, size(left)));
    while let Some(read) = pending.take() {
        let Ok((buf, Ok(n))) = read.await else {
            return false;
        };
        // The file shrank: the promised length cannot be met; close.
        if n == 0 {
            return false;
        }
        offset += n as u64;
        left -= n as u64;
        if left > 0 {
            pending = Some(read_chunk(
                &file,
                spare.take().unwrap_or_default(),
                offset,
                size(left),
            ));
        }
        if !body.piece(io, &buf[..n], config).await {
            return false;
        }
        spare = Some(buf);
    }
    true
}
