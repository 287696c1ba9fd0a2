//! tokio WebSocket client for wskit: a thin driver around the sans-IO `ws-frame` connection.
//!
//! Every framing decision (masking, UTF-8, close handshake, permessage-deflate) lives in
//! `ws-frame`; this crate opens the transport, runs the opening handshake, and moves bytes.
//!
//! ```text
//!  connect(url, ClientConfig)
//!    | Url: ws:// wss:// tcp://, IPv4/IPv6 literals, DNS      (all within connect_timeout)
//!    | TCP (TCP_NODELAY, keep-alive) -- or via Proxy: HTTP CONNECT | SOCKS4 | 4a | 5
//!    | TLS (ws-tls: webpki roots / CA file / client cert / ALPN / SNI)       wss:// only
//!    | upgrade request: key, Origin, subprotocols, permessage-deflate offer, auth,
//!    |   extra headers, request_hook            --> 101: check accept, protocol, extensions
//!    |                                          --> 3xx: follow Location (max_redirects)
//!    |                                          --> 401 with a token callback: refresh once
//!    |                                          --> other: Error::Http{status, headers, body}
//!    v
//!  one task per connection, on ws-io's drive loop (shared with ws-server):
//!    WsWriter (clone, any task) --bounded command queue--> ws_frame::Connection --> one write
//!    WsReader / Stream  <--bounded message queue-- events <-- socket reads
//!    one timer, the connection's own: close handshake, heartbeat ping, pong deadline
//!    (dead peer), the wait for the server's TCP close
//!
//!  ReconnectingWebSocket: the same, re-established after unexpected disconnects
//!    (jittered exponential backoff, max attempts, hook that may change the URL or cancel)
//! ```
//!
//! The opening handshake is `ws_http::ClientHandshake` (sans-IO); this crate only moves its
//! bytes and maps its outcome to [`Error`].
//!
//! # Example
//!
//! Echo one message against a ws-server on a free port:
//!
//! ```
//! use futures_util::StreamExt as _;
//! use ws_client::{ClientConfig, CloseCode, connect};
//! use ws_server::{Binding, EchoHandler, Server, ServerConfig};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let config = ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]);
//! let server = Server::start(config, EchoHandler).await?;
//! let url = format!("ws://{}/echo", server.local_addrs()[0]);
//!
//! let mut ws = connect(url.as_str(), ClientConfig::default()).await?;
//! ws.send_text("hello").await?;
//! let reply = ws.next().await.unwrap()?;
//! assert_eq!(reply.as_text(), Some("hello"));
//! let closed = ws.close(CloseCode::NORMAL, "bye").await?;
//! assert_eq!(closed.code, CloseCode::NORMAL);
//! server.stop().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod conn;
mod connect;
mod error;
mod handshake;
mod reconnect;
mod socket;
mod transport;
mod url;

pub use config::{
    Auth, BeforeConnect, BoxFuture, ClientConfig, Heartbeat, HeartbeatAction, HeartbeatHook,
    Priority, Proxy, ProxyKind, Reconnect, ReconnectDecision, ReconnectHook, RequestHook,
    SendPriorities, SgcAuth, TokenSource, VerifyPeer,
};
pub use conn::{CloseInfo, Incoming};
pub use connect::connect;
pub use error::{Error, HandshakeError, HttpRejection};
pub use handshake::{HandshakeRequest, HandshakeResponse};
pub use reconnect::{ClientEvent, ReconnectingWebSocket};
pub use socket::{WebSocket, WsReader, WsWriter};
pub use transport::configure_tcp;
pub use url::IntoUrl;
/// The sans-IO protocol crate this client drives (message, close-code and config types).
pub use ws_frame;
pub use ws_frame::{CloseCode, Initiator, Message, SendOptions, Utf8Bytes};
/// The URL type ([`WsUrl::parse_client`]) and its scheme, from ws-http.
pub use ws_http::{UrlScheme, WsUrl};
/// TLS settings ([`ClientConfig::tls`]).
pub use ws_tls::ClientTlsConfig;
