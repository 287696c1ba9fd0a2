//! Hooks: the seeds' proxy events (`OnConnect`, `OnMessage`/`OnBinary` before forwarding,
//! `OnDisconnect`, `OnException` for upstream errors), as plain synchronous methods.

use ws_server::{ConnInfo, Disconnect, ws_frame::Message};

use crate::config::Target;

/// Application hooks of a [`crate::ProxyServer`]. Every method has a default; they run on the
/// connection's tasks, so keep them short (no blocking I/O).
pub trait Hooks: Send + Sync + 'static {
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

    /// The backend could not be reached or failed (`OnException`). `info` is `None` when it
    /// happened before the upgrade ([`crate::ProxyConfig::connect_before_upgrade`] and
    /// WebSocket backends).
    fn on_backend_error(&self, info: Option<&ConnInfo>, target: &Target, error: &str) {
        let _ = (info, target, error);
    }

    /// The WebSocket ended (`OnDisconnect`); the backend is being shut down.
    fn on_disconnect(&self, info: &ConnInfo, disconnect: &Disconnect) {
        let _ = (info, disconnect);
    }
}

/// Hooks that do nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}
