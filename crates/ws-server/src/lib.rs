//! tokio WebSocket server for wskit: a thin driver around the sans-IO `ws-frame` connection.
//!
//! Every protocol decision (framing, masking, UTF-8, close handshake, permessage-deflate) lives
//! in `ws-frame`; this crate accepts sockets, runs the opening handshake, and moves bytes.
//!
//! ```text
//!  Binding (plain | TLS)  --accept-->  serve(): TLS accept, read request head (bounded,
//!                                      timed), admission (max conns, origin), auth,
//!                                      Handler::on_handshake, deflate negotiation, 101
//!        non-HTTP bytes --> RawTcp mode (Handler::on_unknown_protocol)  | plain HTTP -->
//!                                                                       Handler::on_http
//!                                         |
//!                                         v   one task per connection, on ws-io's loop:
//!   ServerHandle / ConnHandle   ---->  bounded command queue --+
//!   (write_to, broadcast, close)                                v
//!   socket --read--> ws_frame::Connection --events--> Handler (Ctx::send queues directly)
//!         (not while paused: Ctx::pause_reading / ConnHandle::resume_reading)
//!   socket <--one batched / vectored write-- queued frames        |
//!   one timer: the connection's (close handshake, heartbeat, pong, v
//!   idle) and the throttle's                                      |
//!                                       Registry (ids, info, channels with + / # wildcards)
//! ```
//!
//! Slow readers: each connection has a bounded command queue
//! ([`ServerConfig::send_queue`]). With [`SlowReaderPolicy::Disconnect`] (the default) a full
//! queue closes that connection with 1013 and the sender gets [`Error::QueueFull`]; with
//! [`SlowReaderPolicy::Backpressure`] the sender waits. A connection whose unwritten output
//! exceeds [`ServerConfig::write_buffer_limit`] stops reading and stops taking commands until
//! its peer catches up, so memory per connection stays bounded either way.
//!
//! Read flow control: a handler that cannot take more input calls [`Ctx::pause_reading`] and
//! returns (instead of waiting inside the handler method, which would also stop the
//! connection's writes); [`ConnHandle::resume_reading`], from any task, lets the data flow
//! again ([`ConnHandle::pause_reading`] pauses from outside). A paused connection does not
//! read its socket, so TCP flow control stops the peer, and holds back messages it already
//! read; it keeps writing queued frames, taking commands, sending heartbeat pings, and reads
//! again once its close handshake starts. Neither call waits or needs room in the command
//! queue. See the [`Handler`] docs for the pattern (ws-proxy uses it for its upstream
//! buffer).
//!
//! Partly received messages: one connection holds at most `ws.max_message` bytes in an
//! unfinished message, made of at most `ws.max_fragments` frames (65,537 by default), and a
//! fragmented message must finish within `ws.message_timeout` (60 s; 1008 otherwise). All
//! connections together hold at most [`ServerConfig::max_partial_bytes`] (1 GiB by default):
//! past it a connection whose partly received message grows is closed with 1013, and a warning
//! is logged at most once per 10 s.
//!
//! Handler panics: a panic in a [`Handler`] method of a WebSocket connection closes only that
//! connection, with 1011; it reaches [`Handler::on_error`] as [`Error::HandlerPanicked`] and
//! tracing at error level, `on_disconnect` still runs, the connection leaves the registry, and
//! the server goes on. Plain-TCP and SSE connections and `on_http` are not guarded call by
//! call yet: a panic there ends that connection's task, logged at error level.
//!
//! Memory: an idle plain connection holds no receive or send buffer (the receive buffer is
//! taken only once data is really there, and both are released after a few idle seconds or
//! after large messages); about 6.6 KiB of RSS per idle connection was measured at 10,000
//! connections, request headers included ([`ServerConfig::keep_request_headers`]).
//!
//! HTTP parsing, body framing and the opening handshake come from the sans-IO `ws-http` crate
//! (request heads bounded by [`HttpLimits`], `Content-Length` / chunked bodies, smuggling
//! checks, RFC 6455 accept key, subprotocol and permessage-deflate negotiation); this crate
//! only moves bytes and asks the handler.
//!
//! The HTTP side of the port ([`Handler::on_before_request`], [`Handler::on_http`] with a
//! streamed [`Body`] and a [`Response`] builder, static files from
//! [`ServerConfig::document_root`], keep-alive and pipelining, server-sent events through
//! [`SseConfig`]) is described in the `http` module's diagram:
//!
//! ```text
//!  head -> on_before_request -> upgrade | SSE | static file | on_http(request, body)
//!       -> response (Content-Length | chunked [+ trailers]) -> next pipelined request or close
//! ```
//!
//! Inside [`Handler::on_http`], [`multipart::save`] streams `multipart/form-data` uploads to
//! disk (bounded memory, sanitised names, a hook to rename or refuse files; the parser,
//! [`multipart::Parser`], is sans-IO), and [`Sessions`] keeps optional cookie sessions
//! (random 128-bit ids, idle timeout, start and end hooks).
//!
//! # Example
//!
//! An echo server on a free port, and a raw client exchanging one message with it:
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use ws_server::{Binding, Ctx, Handler, Server, ServerConfig};
//!
//! struct Echo;
//! impl Handler for Echo {
//!     async fn on_text(&self, ctx: &mut Ctx<'_>, text: ws_frame::Utf8Bytes) {
//!         let _ = ctx.send(ws_frame::Message::Text(text));
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let config = ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]);
//! let server = Server::start(config, Echo).await?;
//! let addr = server.local_addrs()[0];
//!
//! let mut tcp = tokio::net::TcpStream::connect(addr).await?;
//! tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").await?;
//! let mut head = vec![0; 4096];
//! let n = tcp.read(&mut head).await?;
//! assert!(head[..n].starts_with(b"HTTP/1.1 101"));
//! // A masked "Hello" text frame (RFC 6455 section 5.7); the echo comes back unmasked.
//! tcp.write_all(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]).await?;
//! let mut echo = [0; 7];
//! tcp.read_exact(&mut echo).await?;
//! assert_eq!(&echo, b"\x81\x05Hello");
//! drop(tcp);
//! server.stop().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Modules are floors: each uses only the floors below it, so no two modules import each
// other in a circle (`cargo xtask deps` checks it).
//   0 leaf types   assets, types (ConnId, Transport), error, request, event (SseEvent), tx, io
//   1 settings     auth, config; http::files (static-file lookup and cache; uses request only)
//   2 state        channels, registry
//   3 handles      handle (ServerHandle, ConnHandle, the shared state)
//   4 handler API  body, response, handler (Handler, Ctx over a Sink)
//   5 drivers      conn (WebSocket), http (requests, upgrade), sse, raw; beside them the HTTP
//                  add-ons multipart and session
//   6 the server   server (listeners, accept, TLS), stream (the stream API over it),
//                  watchdog (restarts a failed server)
pub mod assets;
mod auth;
mod backplane;
mod body;
mod channels;
mod config;
mod conn;
pub mod delegate;
mod error;
mod event;
mod handle;
mod handler;
mod http;
mod io;
pub mod multipart;
mod raw;
mod registry;
mod request;
mod response;
mod server;
pub mod session;
mod sgc_auth;
mod sse;
mod stream;
mod types;
pub mod watchdog;

pub use auth::{AuthConfig, AuthOutcome, Authenticator, BoxFuture};
pub use backplane::{Backplane, BackplaneStats, Envelope, NodeCount};
pub use body::Body;
pub use channels::{channel_matches, validate_channel};
pub use config::{
    AlpnSelect, Binding, Delimiter, DelimiterScan, Heartbeat, HttpCompression, HttpLimits,
    ProtocolMismatch, RawTcp, ServerConfig, SlowReaderPolicy, SseConfig, TcpKeepAlive,
};
pub use error::{BadValue, Error};
pub use event::SseEvent;
pub use handle::{ConnHandle, ServerHandle};
pub use handler::{
    Before, Ctx, Decision, Disconnect, EchoHandler, Fragment, Handler, NoopHandler, TcpDecision,
};
pub use multipart::UploadConfig;
pub use registry::{ConnInfo, Filter, Priority};
pub use request::Request;
pub use response::Response;
pub use server::Server;
pub use session::{Session, SessionConfig, Sessions};
pub use sgc_auth::SgcAuth;
pub use stream::{Incoming, WsStream};
pub use types::{ConnId, Transport};
pub use watchdog::{Monitor, Watchdog, WatchdogConfig, WatchdogEvent};
/// The sans-IO protocol crate this server drives (message and close-code types).
pub use ws_frame;
/// The sans-IO HTTP crate this server uses (request heads, versions, limits).
pub use ws_http;
