//! Hooks: the seeds' proxy events as plain synchronous methods, the whole server event surface
//! (TCP connect, unknown protocol, handshake, connect, messages both ways, fragments, pings,
//! heartbeat, errors, disconnect, startup, shutdown), the HTTP forwarding events
//! (`OnBeforeForwardHTTP`, `OnAfterForwardHTTP`) and the load balancer's backend events.

use std::net::SocketAddr;

use ws_server::{ConnInfo, Disconnect, Fragment, Request, Response, ws_frame::Message};

use crate::{
    balance::BackendStatus,
    forward::{ForwardError, ForwardRequest, Forwarded},
    target::Target,
};

/// Application hooks of a [`crate::ProxyServer`]. Every method has a default; they run on the
/// connection's tasks, so keep them short (no blocking I/O).
pub trait Hooks: Send + Sync + 'static {
    /// The listeners are bound and accepting (`OnStartup`); also after
    /// [`crate::ProxyServer::restart`]. Default: nothing.
    fn on_startup(&self, addrs: &[SocketAddr]) {
        let _ = addrs;
    }

    /// [`crate::ProxyServer::stop`] (or a restart) is closing every connection
    /// (`OnShutdown`). Default: nothing.
    fn on_shutdown(&self) {}

    /// A TCP connection was accepted (`OnTCPConnect`). Return false to drop it before
    /// anything is read. Default: true.
    fn on_tcp_connect(&self, peer: SocketAddr, local: SocketAddr) -> bool {
        let _ = (peer, local);
        true
    }

    /// The first bytes of a connection are not HTTP (`OnUnknownProtocol`; only asked when
    /// the server's raw TCP mode is enabled). The proxy bridges no raw TCP: the answer only
    /// decides whether the connection is kept open. Default: false (close).
    fn on_unknown_protocol(&self, peer: SocketAddr, first_bytes: &[u8]) -> bool {
        let _ = (peer, first_bytes);
        false
    }

    /// An upgrade request was routed to `target` (`OnHandshake`), before the backend is
    /// contacted. Return `Err(status)` to refuse it with that HTTP status. Default: `Ok`.
    ///
    /// # Errors
    /// The status to refuse the upgrade with.
    fn on_handshake(&self, request: &Request, target: &Target) -> Result<(), u16> {
        let _ = (request, target);
        Ok(())
    }

    /// The WebSocket is established and the backend connection is open (`OnConnect`).
    /// Return false to refuse: the WebSocket is closed with 1008 and the backend dropped.
    /// Default: true.
    fn on_connect(&self, info: &ConnInfo, target: &Target) -> bool {
        let _ = (info, target);
        true
    }

    /// A browser message about to go to the backend (`OnMessage` / `OnBinary`): return it,
    /// changed, or `None` to drop it. For TCP backends it arrives decoded (base64 text as
    /// binary) and its payload bytes are what gets written. Default: unchanged.
    fn on_client_message(&self, info: &ConnInfo, msg: Message) -> Option<Message> {
        let _ = info;
        Some(msg)
    }

    /// Backend data about to go to the browser: a chunk read from a TCP backend (as binary,
    /// before base64 encoding) or a message of a WebSocket backend. Return it, changed, or
    /// `None` to drop it. Default: unchanged.
    fn on_backend_message(&self, info: &ConnInfo, msg: Message) -> Option<Message> {
        let _ = info;
        Some(msg)
    }

    /// A fragment from the browser (`OnFragmented`), when the server's
    /// `ws_frame::Config::fragment_mode` delivers fragments; the whole message still reaches
    /// [`Hooks::on_client_message`] and the backend. Default: nothing.
    fn on_fragment(&self, info: &ConnInfo, fragment: &Fragment) {
        let _ = (info, fragment);
    }

    /// A ping from the browser (the pong is sent automatically). Default: nothing.
    fn on_ping(&self, info: &ConnInfo, payload: &[u8]) {
        let _ = (info, payload);
    }

    /// A pong from the browser. Default: nothing.
    fn on_pong(&self, info: &ConnInfo, payload: &[u8]) {
        let _ = (info, payload);
    }

    /// The server's heartbeat is due for this connection (`OnBeforeHeartBeat`). Return true
    /// when the application kept it alive itself (no ping is sent). Default: false.
    fn on_before_heartbeat(&self, info: &ConnInfo) -> bool {
        let _ = info;
        false
    }

    /// The backend could not be reached or failed (`OnException`). `info` is `None` when it
    /// happened before the upgrade ([`crate::ProxyConfig::connect_before_upgrade`], WebSocket
    /// backends and balanced backends).
    fn on_backend_error(&self, info: Option<&ConnInfo>, target: &Target, error: &str) {
        let _ = (info, target, error);
    }

    /// Something failed on the browser's side (`OnError`): a bad handshake (`info` is
    /// `None`), a protocol error, a socket error, a panicking handler method.
    /// Default: nothing.
    fn on_error(&self, peer: SocketAddr, info: Option<&ConnInfo>, error: &ws_server::Error) {
        let _ = (peer, info, error);
    }

    /// The WebSocket ended (`OnDisconnect`); the backend is being shut down.
    fn on_disconnect(&self, info: &ConnInfo, disconnect: &Disconnect) {
        let _ = (info, disconnect);
    }

    /// A plain HTTP request is about to be forwarded (`OnBeforeForwardHTTP`): change what
    /// goes upstream in `forward` (method, path, query, `Host`, `Origin`, header fields) and
    /// pick its upstream ([`ForwardRequest::upstream`]), or answer it here by returning a
    /// response (nothing is forwarded then). `request` is what the client sent.
    /// Default: `None` (forward `forward` as it is).
    fn on_before_forward(
        &self,
        request: &Request,
        forward: &mut ForwardRequest,
    ) -> Option<Response> {
        let _ = (request, forward);
        None
    }

    /// A forwarded request has its answer (`OnAfterForwardHTTP`): the upstream's response
    /// head (`Ok`), or why there is none (`Err`: the client gets 502, 504 or a body error).
    /// Called once the response head is known, before its body is streamed.
    /// Default: nothing.
    fn on_after_forward(
        &self,
        request: &Request,
        forward: &ForwardRequest,
        result: Result<&Forwarded, &ForwardError>,
    ) {
        let _ = (request, forward, result);
    }

    /// A balanced backend changed state (up, down, draining, removed; the seeds'
    /// `OnLoadBalancerConnect` / `OnLoadBalancerDisconnect`). Default: nothing.
    fn on_backend_state(&self, status: &BackendStatus) {
        let _ = status;
    }
}

/// Hooks that do nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}
