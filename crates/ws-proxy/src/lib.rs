//! WebSocket-to-TCP (and WebSocket-to-WebSocket) bridge for wskit: the seeds'
//! `TsgcWebSocketProxyServer`, and what users run websockify for.
//!
//! A [`ProxyServer`] is a `ws-server` whose handler opens, for each accepted WebSocket, a
//! connection to a backend and relays both ways. Everything on the browser side (bindings, TLS
//! termination, authentication, allowed origins, max connections, heartbeat, throttle, limits)
//! is [`ProxyConfig::server`], a plain [`ws_server::ServerConfig`].
//!
//! ```text
//!  browser --WS/WSS--> ws-server --on_handshake: route (resolver | token file | path | target),
//!                                  pick subprotocol (binary | base64), maybe connect first
//!                       on_connect: connect (TCP | TLS, PROXY header) or take the WS backend
//!    on_message --decode/hook--> up queue (bytes-bounded) --task--> backend socket
//!       (never waits; full queue: Ctx::pause_reading ... drained to half: resume_reading)
//!    browser <--ConnHandle::send (bounded, waits)-- hook/encode <--task-- backend reads (64 KiB)
//! ```
//!
//! # Relaying
//!
//! - TCP and TLS backends (`tcp://host:port`, `tls://host:port`): the payload of every browser
//!   message (binary or text) is written to the backend as bytes; bytes read from the backend
//!   (chunks of up to [`ProxyConfig::read_chunk`], 64 KiB, sent as they arrive) become binary
//!   messages.
//! - websockify subprotocols: when the browser offers `binary` it is selected; otherwise when
//!   it offers `base64` that is selected, and both directions then carry base64 in text
//!   messages (invalid base64 from the browser closes with 1007); with neither (or none
//!   offered) the connection is binary without a subprotocol.
//! - WebSocket backends (`ws://`, `wss://`): connected before the upgrade with the browser's
//!   subprotocol offer, whose choice is passed back; then relayed message by message (text
//!   stays text), with `X-Forwarded-For` / `Forwarded` headers
//!   ([`ProxyConfig::forwarded_headers`]).
//!
//! # Close mapping
//!
//! | Event | What the other side sees |
//! |---|---|
//! | backend EOF (TCP) | every byte read before it is delivered, then Close 1000 |
//! | backend read/write error (TCP) | Close 1011 `backend connection lost` |
//! | backend connect failure | Close 1011 `backend unavailable: <cause>` after the 101; HTTP 502 instead when [`ProxyConfig::connect_before_upgrade`] is set, and always for WebSocket backends |
//! | no route (unknown path, missing or unknown token, resolver said `None`) | HTTP 404 before the upgrade |
//! | WebSocket closed or lost (TCP backend) | queued data is written, then `shutdown(write)` (FIN); the connection is dropped once the backend closes its side, or after [`ProxyConfig::drain_timeout`] (5 s) |
//! | WebSocket backend closes with code C | the browser gets Close C (1000 for a close without code, 1011 when the backend connection was lost) |
//! | browser closes with code C (WebSocket backend) | the backend gets Close C (1000 without code, 1001 when the browser connection was lost) |
//! | [`Hooks::on_connect`] returns false | Close 1008 `refused` |
//!
//! # Backpressure and memory
//!
//! Both directions are bounded. Backend to browser: the reading task hands each chunk to the
//! connection's bounded queue ([`ws_server::ServerConfig::send_queue`], 16 messages by
//! default, policy forced to [`ws_server::SlowReaderPolicy::Backpressure`]) and waits while
//! it is full; a connection whose unwritten output passes
//! [`ws_server::ServerConfig::write_buffer_limit`] (1 MiB) stops taking them. So a slow
//! browser stops the backend reads, and TCP flow control stops the backend. Browser to
//! backend: messages wait in a queue bounded by [`ProxyConfig::up_buffer`] (256 KiB). The
//! handler never waits: when a message takes the queue over the bound, it pauses reading
//! the browser's connection ([`ws_server::Ctx::pause_reading`]) and returns; the task
//! writing to the backend resumes it ([`ws_server::ConnHandle::resume_reading`]) once the
//! queue has drained to half the bound. A paused connection still writes what the backend
//! sends and still answers its heartbeat and close handshake, so a backend that stops
//! reading while its own writes are blocked (an echo built on `tokio::io::copy`) cannot
//! lock the pair up: the browser is stopped by TCP flow control while backend data keeps
//! flowing to it. Per bridged connection the proxy holds at most about
//! `send_queue x read_chunk + write_buffer_limit` (2 MiB) plus `up_buffer` and one message
//! (256 KiB + one message, plus the message being written), plus one receive buffer and one
//! message being reassembled.
//!
//! # Routing
//!
//! [`ProxyConfig::resolver`] (a callback) when set; else a websockify token file
//! ([`ProxyConfig::token_file`], `token: host:port` per line, re-read when it changes, token
//! from `?token=` or a `token` cookie); else [`ProxyConfig::paths`]; else
//! [`ProxyConfig::target`].
//!
//! # HTTP forwarding
//!
//! With [`ProxyConfig::http_upstream`] set (an [`HttpUpstream`], `http://host:port[/base]` or
//! `https://...`), plain HTTP requests on the same listeners, the ones that are not
//! WebSocket upgrades, go to that upstream (a reverse proxy in front of, say, the web app
//! that serves noVNC's pages); upgrades are bridged as above. Without it they get 404.
//!
//! - Request: method, `base` + path and query, header fields in their order, except the
//!   hop-by-hop ones (RFC 9110 section 7.6.1: `Connection` and the fields it names,
//!   `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade`) and
//!   `Expect` (ws-server answers `100 Continue` itself); `Trailer` only with a chunked body. `Host` is the client's
//!   ([`HostHeader::Client`], the default) or the upstream's ([`HostHeader::Upstream`]).
//!   With [`HttpUpstream::forwarded_headers`] (default) the proxy appends the client's
//!   address to `X-Forwarded-For`, sets `X-Forwarded-Proto` and `X-Forwarded-Host`, and
//!   appends `for=...;host=...;proto=...` to `Forwarded` (RFC 7239).
//! - Request body: streamed as it arrives, bounded by the server's
//!   [`ws_server::HttpLimits::max_body`] (413) and body timeout (408); a `Content-Length`
//!   body keeps its length, a chunked one is sent chunked (with its trailers, below).
//! - Response: status and fields relayed (hop-by-hop ones dropped; ws-server writes its own
//!   `Date`, `Server` and framing), the body streamed through a bounded channel, with the
//!   upstream's `Content-Length` when it sent one, else chunked. A body cut short by the
//!   upstream closes the client's connection rather than ending cleanly. `HEAD` gets the
//!   upstream's head.
//! - Trailers: the trailer section of a chunked body goes on in both directions when the
//!   message goes on chunked (always for a request; for a response, to HTTP/1.1 clients),
//!   without hop-by-hop fields and fields that must not be trailers (RFC 9110 section 6.5.1:
//!   `Content-Length`, `Transfer-Encoding`, `Host`, request modifiers such as `TE`,
//!   `Expect`, `Range`, `Cache-Control`, `Max-Forwards` and `If-*`, authentication fields
//!   and cookies, response control such as `Date`, `Location`, `Vary`, and
//!   `Content-Encoding`, `Content-Type`, `Content-Range`, `Trailer`). The `Trailer` field
//!   announcing them goes on only then, reduced to the names forwarded.
//! - Failures: upstream unreachable (refused, DNS, TLS) -> `502 Bad Gateway` with a short
//!   text reason, also for a broken or invalid response; connect timeout
//!   ([`ProxyConfig::connect_timeout`]) or no response within
//!   [`HttpUpstream::response_timeout`] -> `504 Gateway Timeout`. `CONNECT` gets 405.
//! - Connections: idle upstream connections are reused by requests without a body (up to
//!   [`HttpUpstream::max_idle`], for [`HttpUpstream::idle_timeout`]); a reused connection
//!   that the upstream had closed is replaced once, transparently.
//!
//! ```no_run
//! # async fn run() -> Result<(), ws_proxy::Error> {
//! use ws_proxy::{HttpUpstream, ProxyConfig, ProxyServer, Target};
//!
//! let mut config = ProxyConfig::to(Target::parse("tcp://127.0.0.1:5900")?);
//! config.http_upstream = Some(HttpUpstream::parse("http://127.0.0.1:8000")?);
//! let proxy = ProxyServer::start(config).await?; // ws:// -> VNC, http:// -> the web app
//! # proxy.stop().await; Ok(()) }
//! ```
//!
//! # Load balancing
//!
//! [`ProxyConfig::balance`] spreads the upgrades nothing else routes, and plain HTTP requests,
//! over several backends: [`Policy`] round robin, least connections, or sticky by cookie or
//! header; a backend that cannot be reached is marked down and the next one tried before the
//! upgrade is answered; [`HealthCheck`] probes (TCP connect or HTTP GET, interval, timeout,
//! thresholds); draining ([`ProxyServer::drain_backend`]); a [`Registration`] API through
//! which backends add and remove themselves (bearer secret). The decisions are the sans-IO
//! [`balance::Balancer`]'s: it picks a backend given the state and the time.
//!
//! # Hooks
//!
//! [`Hooks`] sees the server's whole event surface (startup, shutdown, TCP connect, unknown
//! protocol, handshake, connect, messages both ways, fragments, pings, heartbeat, errors,
//! disconnect), the HTTP forwarding ([`Hooks::on_before_forward`] rewrites a
//! [`ForwardRequest`] and picks its upstream; [`Hooks::on_after_forward`] sees the result)
//! and the balancer's backend states.
//!
//! # Example
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use ws_proxy::{ProxyConfig, ProxyServer, Target};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! // A TCP echo backend.
//! let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let target = Target::parse(&format!("tcp://{}", backend.local_addr()?))?;
//! tokio::spawn(async move {
//!     let (mut s, _) = backend.accept().await.unwrap();
//!     let (mut r, mut w) = s.split();
//!     let _ = tokio::io::copy(&mut r, &mut w).await;
//! });
//!
//! let mut config = ProxyConfig::to(target);
//! config.server.bindings = vec![ws_server::Binding::plain("127.0.0.1:0".parse()?)];
//! let proxy = ProxyServer::start(config).await?;
//! let url = format!("ws://{}/", proxy.local_addrs()[0]);
//!
//! let mut client = ws_client::ClientConfig::default();
//! client.protocols = vec!["binary".into()];
//! let mut ws = ws_client::connect(url.as_str(), client).await?;
//! assert_eq!(ws.protocol(), Some("binary"));
//! ws.send_binary(&b"hello"[..]).await?;
//! let echo = ws.recv().await.unwrap()?;
//! assert_eq!(echo.as_bytes(), b"hello");
//! proxy.stop().await;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod balance;
mod bridge;
mod config;
mod error;
mod forward;
mod hooks;
mod http_forward;
mod lb;
mod pp;
mod server;
mod sync;
mod target;
mod tokens;
mod upstream;

pub use balance::{BalancerConfig, HealthCheck, Policy, Probe, Registration};
pub use config::{ProxyConfig, ProxyProtocol, Resolver};
#[allow(deprecated)]
pub use error::{Error, ProxyError};
pub use forward::{ForwardError, ForwardErrorKind, ForwardRequest, Forwarded};
pub use hooks::{Hooks, NoHooks};
pub use pp::V2_SIGNATURE;
pub use server::ProxyServer;
pub use target::Target;
pub use tokens::parse_token_file;
pub use upstream::{HostHeader, HttpUpstream};
/// The server crate the proxy runs on (its configuration, request and connection types).
pub use ws_server;
