//! The server side of the opening handshake (RFC 6455 section 4.2) on top of `ws-http`:
//! validation, the handler's decision, negotiation, 101 (the origin check and authentication
//! ran before, for every route: `super::check_guards`).

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU16, AtomicU64},
    },
    time::SystemTime,
};

use bytes::BytesMut;
use tokio::{
    sync::{Notify, mpsc},
    time::Instant,
};
use ws_frame::{Connection, Role};
use ws_http::{Accept, UpgradeRequest};

use super::{Next, Response, close_gracefully, fail, http_error, send};
use crate::{
    config::ProtocolMismatch,
    conn::Established,
    error::Error,
    handle::{AdmitGuard, ServerHandle},
    handler::{Decision, Handler},
    io::Io,
    registry::{ConnInfo, KILL_NONE},
    request::Request,
    types::Transport,
};

/// Answers `resp` and closes.
async fn refuse(io: &mut Io, resp: Response, request: &Request, config: &crate::ServerConfig) {
    let _ = send(io, resp, Some(request), false, config).await;
    close_gracefully(io).await;
}

/// Validates and answers an upgrade request; on success the connection is registered and
/// handed to the WebSocket loop with the bytes that followed the head.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run<H: Handler>(
    server: &ServerHandle,
    handler: &Arc<H>,
    mut io: Io,
    head: &ws_http::Request,
    request: Request,
    buf: BytesMut,
    guard: AdmitGuard,
    deadline: Instant,
) -> Option<Next> {
    let inner = &server.inner;
    let config = &inner.config;
    let peer = request.peer;
    let upgrade = match UpgradeRequest::from_request(head) {
        Ok(u) => u,
        Err(e) => {
            fail(&mut io, &e).await;
            handler.on_error(peer, None, &http_error(&e)).await;
            return None;
        }
    };
    let (protocol, extra_headers) = match handler.on_handshake(&request).await {
        Decision::Accept { protocol, headers } => {
            let protocol = match protocol {
                Some(p) if upgrade.protocols().contains(&p) => Some(p),
                Some(_) => {
                    let resp = Response::text(500, "handler chose a protocol not offered\n");
                    refuse(&mut io, resp, &request, config).await;
                    return None;
                }
                // The client's first offer that the server supports (ServerConfig::protocols).
                None => {
                    let offered = upgrade.protocols();
                    let chosen = offered
                        .iter()
                        .find(|p| config.protocols.contains(p))
                        .cloned();
                    if chosen.is_none()
                        && !offered.is_empty()
                        && !config.protocols.is_empty()
                        && config.protocol_mismatch == ProtocolMismatch::Refuse
                    {
                        let reason = format!(
                            "none of the offered subprotocols ({}) is supported; this server \
                             speaks: {}",
                            offered.join(", "),
                            config.protocols.join(", ")
                        );
                        let resp = Response::text(400, format!("{reason}\n"));
                        refuse(&mut io, resp, &request, config).await;
                        let error = Error::Http {
                            status: 400,
                            reason,
                        };
                        handler.on_error(peer, None, &error).await;
                        return None;
                    }
                    chosen
                }
            };
            (protocol, headers)
        }
        Decision::Reject(resp) => {
            refuse(&mut io, resp, &request, config).await;
            return None;
        }
    };
    let deflate = config
        .deflate
        .as_ref()
        .and_then(|d| upgrade.negotiate_deflate(d));
    let extensions = deflate.as_ref().map(|p| p.response_value());
    let mut ws_config = config.ws.clone();
    ws_config.deflate.clone_from(&deflate);
    if config.heartbeat.is_some() {
        ws_config.heartbeat.clone_from(&config.heartbeat);
    }
    if config.idle_timeout.is_some() {
        ws_config.idle_timeout = config.idle_timeout;
    }
    let ws = match Connection::new(Role::Server, ws_config) {
        Ok(ws) => ws,
        Err(e) => {
            handler.on_error(peer, None, &Error::WebSocket(e)).await;
            return None;
        }
    };
    let mut accept = Accept::new().protocol(protocol.as_deref()).deflate(deflate);
    if !config.server_name.is_empty() {
        accept = accept.header("Server", config.server_name.clone());
    }
    for (n, v) in extra_headers {
        accept = accept.header(n, v);
    }
    let mut response = BytesMut::with_capacity(256);
    if let Err(e) = upgrade.write_accept(&accept, &mut response) {
        let resp = Response::text(500, "invalid handshake response\n");
        refuse(&mut io, resp, &request, config).await;
        handler.on_error(peer, None, &http_error(&e)).await;
        return None;
    }
    let (tx, cmds) = mpsc::channel(config.send_queue);
    let info = Arc::new(ConnInfo {
        id: inner.registry.next_id(),
        peer,
        local: request.local,
        tls: request.tls,
        transport: Transport::WebSocket,
        url: request.target,
        headers: if config.keep_request_headers {
            request.headers.clone()
        } else {
            ws_http::Headers::new()
        },
        response_headers: match ws_http::parse_response(&response, &ws_http::Limits::default()) {
            Ok(ws_http::Parsed::Complete(sent, _)) if config.keep_request_headers => {
                sent.headers().clone()
            }
            _ => ws_http::Headers::new(),
        },
        protocol,
        extensions,
        user: request.user,
        connected_at: SystemTime::now(),
        rx_bytes: AtomicU64::new(0),
        tx_bytes: AtomicU64::new(response.len() as u64),
        subscriptions: Mutex::new(Vec::new()),
        tx,
        kill: Notify::new(),
        kill_code: AtomicU16::new(KILL_NONE),
        read_paused: AtomicBool::new(false),
    });
    // Registered before the 101 goes out, so a client that saw the 101 is in the registry.
    inner.registry.insert(info.clone());
    match tokio::time::timeout_at(deadline, io.write_all(&response)).await {
        Ok(Ok(())) => {}
        _ => {
            inner.unregister(&info);
            return None;
        }
    }
    Some(Next::Ws(Established {
        io,
        ws: Box::new(ws),
        info,
        cmds,
        leftover: buf.freeze(),
        guard,
    }))
}
