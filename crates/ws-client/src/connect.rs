//! [`connect`]: transport, upgrade, redirects and authentication, then the connection task.

use std::{sync::Arc, time::Duration};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};
use ws_frame::{Connection, OsMaskSource, Role};
use ws_http::WsUrl as Url;

use crate::{
    config::{Auth, ClientConfig, SgcAuth},
    conn::{ConnOpts, Driver, Mode, Shared},
    error::{Error, HandshakeError, HttpRejection},
    handshake::{self, HandshakeRequest, HandshakeResponse},
    socket::{Info, WebSocket},
    transport::{self, Transport},
    url::IntoUrl,
};

/// Connects to `url` (`ws://`, `wss://` or `tcp://`) and returns the established connection.
///
/// Everything (DNS, TCP, proxy, TLS, upgrade, redirects) must finish within
/// [`ClientConfig::connect_timeout`]. `tcp://` URLs skip the HTTP upgrade: the connection then
/// carries raw bytes (received chunks arrive as binary messages, sent messages are written as
/// they are).
///
/// # Errors
/// One [`Error`] variant per cause: [`Error::InvalidUrl`], [`Error::Setting`] and the other
/// configuration variants of [`ClientConfig::validate`], [`Error::Dns`],
/// [`Error::Refused`], [`Error::Connect`], [`Error::TlsConfig`], [`Error::Tls`],
/// [`Error::Proxy`], [`Error::Http`] (non-101 status, with headers and body),
/// [`Error::Handshake`], [`Error::TooManyRedirects`], [`Error::Auth`], [`Error::Timeout`],
/// [`Error::Io`].
pub async fn connect(url: impl IntoUrl, config: ClientConfig) -> Result<WebSocket, Error> {
    let url = url.into_url()?;
    config.validate()?;
    connect_url(url, &config).await
}

/// [`connect`] with a parsed URL and a validated configuration.
pub(crate) async fn connect_url(mut url: Url, config: &ClientConfig) -> Result<WebSocket, Error> {
    let edited;
    let config = match &config.before_connect {
        Some(hook) => {
            let mut copy = config.clone();
            hook(&mut url, &mut copy);
            copy.validate()?;
            edited = copy;
            &edited
        }
        None => config,
    };
    let limit = config.connect_timeout;
    match tokio::time::timeout(limit, establish(url, config)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout(limit)),
    }
}

fn tls_config(config: &ClientConfig) -> Result<Arc<rustls::ClientConfig>, Error> {
    match &config.rustls {
        Some(c) => Ok(c.clone()),
        None => Ok(ws_tls::client_config(&config.tls)?),
    }
}

async fn establish(mut url: Url, config: &ClientConfig) -> Result<WebSocket, Error> {
    let mut tls: Option<Arc<rustls::ClientConfig>> = None;
    // Credentials go to the host and port the caller named, never to a host a redirect names.
    let first = (url.host().to_owned(), url.port());
    let mut redirects = 0;
    let mut refresh = false;
    loop {
        if url.is_secure() && tls.is_none() {
            tls = Some(tls_config(config)?);
        }
        let t = transport::open(
            &url,
            config,
            if url.is_secure() { tls.as_ref() } else { None },
        )
        .await?;
        if url.is_tcp() {
            return Ok(spawn(
                t,
                Mode::Raw,
                Bytes::new(),
                url,
                None,
                None,
                None,
                config,
            ));
        }
        let send_auth = (url.host(), url.port()) == (first.0.as_str(), first.1);
        let sgc_target = match &config.sgc_auth {
            Some(auth) if send_auth => Some(sgc_target(&url, auth, config, tls.as_ref()).await?),
            _ => None,
        };
        let sgc = sgc_target.as_deref();
        match upgrade(t, &url, sgc, config, refresh, send_auth).await? {
            Upgrade::Done(ws) => return Ok(*ws),
            Upgrade::Redirect(location) => {
                redirects += 1;
                if redirects > config.max_redirects {
                    return Err(Error::TooManyRedirects {
                        limit: config.max_redirects,
                    });
                }
                let next = url
                    .join(&location)
                    .map_err(|_| HandshakeError::BadRedirect)?;
                if next.is_tcp() {
                    return Err(Error::RedirectScheme {
                        url: next.to_string(),
                    });
                }
                tracing::debug!(from = %url, to = %next, "following redirect");
                url = next;
            }
            Upgrade::RetryWithFreshToken => refresh = true,
        }
    }
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
fn segment(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The request target of the seeds' session or URL authentication, the URL's query kept.
/// Session mode first asks the server for a token over its own connection.
async fn sgc_target(
    url: &Url,
    auth: &SgcAuth,
    config: &ClientConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<String, Error> {
    let path = match auth {
        SgcAuth::Url { user, password } => {
            format!("/sgc/auth/url/{}/{}", segment(user), segment(password))
        }
        SgcAuth::Session { user, password } => {
            let token = session_token(url, user, password, config, tls).await?;
            format!("/sgc/auth/session/{}", segment(&token))
        }
    };
    Ok(match url.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    })
}

/// Session mode's first step: `GET /sgc/req/auth/session/USER/PASS`; the token is the body
/// of a 200 answer, trimmed.
async fn session_token(
    url: &Url,
    user: &str,
    password: &str,
    config: &ClientConfig,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<String, Error> {
    let mut t = transport::open(url, config, if url.is_secure() { tls } else { None }).await?;
    let request = format!(
        "GET /sgc/req/auth/session/{}/{} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\n\
         Connection: close\r\n\r\n",
        segment(user),
        segment(password),
        url.host_header(),
        config.user_agent,
    );
    t.stream.write_all(request.as_bytes()).await?;
    t.stream.flush().await?;
    let limits = http_limits(config);
    let most = config.max_response_head + config.max_rejection_body;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let n = t.stream.read_buf(&mut buf).await?;
        if let Ok(ws_http::Parsed::Complete(head, len)) = ws_http::parse_response(&buf, &limits) {
            let body_len = head
                .headers()
                .get("content-length")
                .and_then(|v| v.parse::<usize>().ok());
            let done = n == 0 || body_len.is_some_and(|b| buf.len() >= len + b);
            if done || buf.len() > most {
                let end = body_len.map_or(buf.len(), |b| (len + b).min(buf.len()));
                let body = Bytes::copy_from_slice(&buf[len..end]);
                if head.status() != 200 {
                    return Err(Error::Http(Box::new(HttpRejection {
                        status: head.status(),
                        reason: head.reason().to_owned(),
                        headers: head.headers().clone(),
                        body,
                    })));
                }
                let token = String::from_utf8_lossy(&body).trim().to_owned();
                if token.is_empty() {
                    return Err(Error::Auth(
                        "the session request answered 200 without a token".into(),
                    ));
                }
                return Ok(token);
            }
        } else if n == 0 || buf.len() > most {
            return Err(HandshakeError::MalformedResponse(
                "no HTTP answer to the session request".into(),
            )
            .into());
        }
    }
}

enum Upgrade {
    Done(Box<WebSocket>),
    Redirect(String),
    RetryWithFreshToken,
}

async fn authorization(
    url: &Url,
    config: &ClientConfig,
    refresh: bool,
) -> Result<Option<String>, Error> {
    Ok(match &config.auth {
        Some(Auth::Basic { user, password }) => Some(format!(
            "Basic {}",
            B64.encode(format!("{user}:{password}"))
        )),
        Some(Auth::Bearer(t)) => Some(format!("Bearer {t}")),
        Some(Auth::BearerFn(source)) => {
            let token = source.token(refresh).await.map_err(Error::Auth)?;
            if token.is_empty() || token.contains(['\r', '\n']) {
                return Err(Error::Auth(
                    "token callback returned an invalid token".into(),
                ));
            }
            Some(format!("Bearer {token}"))
        }
        Some(Auth::QueryToken { .. }) => None,
        None => url
            .credentials()
            .map(|(u, p)| format!("Basic {}", B64.encode(format!("{u}:{p}")))),
    })
}

/// Builds the upgrade request for `url` and runs the hook on it. Without `send_auth` (a
/// redirect to another host or port) no credentials are added: no `Authorization` header and
/// no query token. `sgc` replaces the target (the seeds' session or URL authentication) without
/// changing the URL the connection reports.
pub(crate) async fn build_request(
    url: &Url,
    sgc: Option<&str>,
    config: &ClientConfig,
    refresh: bool,
    send_auth: bool,
) -> Result<HandshakeRequest, Error> {
    let url_for_target = match sgc {
        Some(target) => url
            .with_target(target)
            .map_err(|_| Error::InvalidRequestField {
                field: "sgc_auth path",
            })?,
        None => url.clone(),
    };
    let target_url = match &config.auth {
        Some(Auth::QueryToken { param, token }) if send_auth => {
            url_for_target.with_query_param(param, token)
        }
        _ => url_for_target,
    };
    let mut headers = ws_http::Headers::new();
    if !config.user_agent.is_empty() {
        headers.push("User-Agent", config.user_agent.clone());
    }
    if send_auth && let Some(auth) = authorization(url, config, refresh).await? {
        headers.push("Authorization", auth);
    }
    for (name, value) in &config.headers {
        headers.push(name.clone(), value.clone());
    }
    let mut request = HandshakeRequest {
        target: target_url.target().to_owned(),
        origin: config.origin.clone(),
        protocols: config.protocols.clone(),
        headers,
    };
    if let Some(hook) = &config.request_hook {
        hook(&mut request);
    }
    Ok(request)
}

fn http_limits(config: &ClientConfig) -> ws_http::Limits {
    let mut limits = ws_http::Limits::default();
    limits.max_head_bytes = config.max_response_head;
    limits.max_headers = config.max_response_headers;
    limits.max_header_line = limits.max_header_line.min(config.max_response_head);
    limits.max_request_line = limits.max_request_line.min(config.max_response_head);
    limits.max_rejection_body = config.max_rejection_body;
    limits
}

/// How long a rejection body may pause before what arrived is taken as the whole body
/// (servers that neither frame the body nor close the connection).
const BODY_IDLE: Duration = Duration::from_millis(500);

async fn upgrade(
    mut t: Transport,
    url: &Url,
    sgc: Option<&str>,
    config: &ClientConfig,
    refresh: bool,
    send_auth: bool,
) -> Result<Upgrade, Error> {
    let request = build_request(url, sgc, config, refresh, send_auth).await?;
    let mut hs_config = ws_http::ClientConfig::default();
    hs_config.origin = request.origin;
    hs_config.protocols = request.protocols;
    hs_config.deflate.clone_from(&config.deflate);
    hs_config.headers = request
        .headers
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    hs_config.limits = http_limits(config);
    let mut out = BytesMut::with_capacity(512);
    // The runtime owns the randomness: the handshake nonce and (below) the masking keys.
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|_| handshake::map_error(ws_http::Error::Random, None))?;
    let mut hs = ws_http::ClientHandshake::with_key(
        &hs_config,
        &url.host_header(),
        &request.target,
        key,
        &mut out,
    )
    .map_err(|e| handshake::map_error(e, None))?;
    t.stream.write_all(&out).await?;
    t.stream.flush().await?;
    let mut buf = BytesMut::with_capacity(4096);
    // The response head once seen (for error details and the body's idle rule).
    let mut head: Option<ws_http::Response> = None;
    let outcome = loop {
        if head.is_none() {
            if let Ok(ws_http::Parsed::Complete(r, _)) =
                ws_http::parse_response(&buf, &hs_config.limits)
            {
                head = Some(r);
            }
        }
        match hs.handle_response(&mut buf) {
            Ok(Some(upgraded)) => break Ok(upgraded),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        let read = if head.is_some() {
            match tokio::time::timeout(BODY_IDLE, t.stream.read_buf(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => 0,
            }
        } else {
            t.stream.read_buf(&mut buf).await?
        };
        if read == 0 {
            break Err(hs.handle_eof());
        }
    };
    match outcome {
        Ok(upgraded) => {
            let mut ws_config = config.ws.clone();
            ws_config.deflate = upgraded.deflate().cloned();
            if config.heartbeat.is_some() {
                ws_config.heartbeat.clone_from(&config.heartbeat);
            }
            if config.require_protocol
                && !config.protocols.is_empty()
                && upgraded.protocol().is_none()
            {
                return Err(HandshakeError::NoProtocol.into());
            }
            let conn = Connection::with_mask_source(Role::Client, ws_config, OsMaskSource::new())?;
            Ok(Upgrade::Done(Box::new(spawn(
                t,
                Mode::WebSocket(Box::new(conn)),
                buf.freeze(),
                url.clone(),
                upgraded.protocol().map(str::to_owned),
                upgraded.deflate().cloned(),
                Some(HandshakeResponse::from(upgraded.response())),
                config,
            ))))
        }
        Err(ws_http::Error::Rejected(r)) => match r.status() {
            301 | 302 | 303 | 307 | 308 => match r.location() {
                Some(loc) if !loc.is_empty() => Ok(Upgrade::Redirect(loc.to_owned())),
                _ => Err(HandshakeError::BadRedirect.into()),
            },
            401 if matches!(config.auth, Some(Auth::BearerFn(_))) && !refresh => {
                Ok(Upgrade::RetryWithFreshToken)
            }
            status => Err(Error::Http(Box::new(HttpRejection {
                status,
                reason: r.reason().to_owned(),
                headers: r.headers().clone(),
                body: r.body().clone(),
            }))),
        },
        Err(_) if head.is_none() && looks_like_tls(&buf) => Err(HandshakeError::TlsAnswer.into()),
        Err(e) => Err(handshake::map_error(e, head.as_ref())),
    }
}

/// Whether `bytes` start like a TLS record (content type 20..=24, major version 3): what a TLS
/// server sends back, usually an alert, when it gets an HTTP request.
fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x14..=0x18, 3, 0..=4, ..])
}

#[allow(clippy::too_many_arguments)]
fn spawn(
    t: Transport,
    mode: Mode,
    leftover: Bytes,
    url: Url,
    protocol: Option<String>,
    deflate: Option<ws_frame::deflate::DeflateParams>,
    response: Option<HandshakeResponse>,
    config: &ClientConfig,
) -> WebSocket {
    let (cmd_tx, cmd_rx) = mpsc::channel(config.send_queue);
    let (ev_tx, ev_rx) = mpsc::channel(config.recv_queue);
    let shared = Arc::new(Shared::default());
    let info = Info {
        url,
        peer: t.peer,
        protocol,
        deflate,
        alpn: t.alpn,
        response,
        close_timeout: config.ws.close_timeout,
    };
    let driver = Driver {
        opts: ConnOpts {
            read_timeout: config.read_timeout,
            write_timeout: config.write_timeout,
            before_heartbeat: config.before_heartbeat.clone(),
            throttle: config
                .throttle_bps
                .filter(|&b| b > 0)
                .map(|b| (b / 8).max(1)),
            priorities: config.priorities,
            send_queue: config.send_queue,
            fragments_so_far: config.fragments_so_far,
        },
        io: t.stream,
        mode,
        leftover,
        close_timeout: config.ws.close_timeout,
        write_buffer_limit: config.write_buffer_limit,
        recv_queue: config.recv_queue,
        shared: shared.clone(),
        cmds: cmd_rx,
        events: ev_tx,
    };
    tokio::spawn(driver.run());
    WebSocket::new(cmd_tx, ev_rx, shared, info)
}
