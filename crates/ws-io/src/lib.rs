//! The one tokio drive loop of a WebSocket connection, shared by ws-server and ws-client.
//!
//! The protocol lives in [`ws_frame::Connection`] (sans-IO, timers included: keep-alive
//! pings, the pong deadline, the idle and close-handshake timeouts). This crate moves its
//! bytes: [`Driver::next`] reads from a [`Transport`], feeds the core, writes what it yields
//! through a bounded write queue ([`TxQueue`]), and sleeps until the core's
//! [`ws_frame::Connection::poll_timeout`]. The runtimes above keep only what is theirs:
//! ws-server accepting, routing, handlers and registries; ws-client connecting, redirects,
//! reconnecting and its handles.
//!
//! ```
//! use std::time::Duration;
//! use ws_frame::{Config, Connection, Event, Heartbeat, Message, Role};
//! use ws_io::{Driver, End, Gates, Step, Stream};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // Two connections over an in-memory pipe, on tokio's paused clock.
//! let (a, b) = tokio::io::duplex(4096);
//! let mut config = Config::default();
//! config.heartbeat = Some(Heartbeat::new(Duration::from_secs(30), Duration::from_secs(5)));
//! let server = Connection::new(Role::Server, config).unwrap();
//! let client = Connection::new(Role::Client, Config::default()).unwrap();
//! let mut server = Driver::new(Stream::new(a), Box::new(server), 1 << 20);
//! let mut client = Driver::new(Stream::new(b), Box::new(client), 1 << 20);
//! client.ws.send(Message::text("hello")).unwrap();
//! let peer = tokio::spawn(async move {
//!     // The client answers pings by itself; it runs until the transport ends.
//!     loop {
//!         if let Step::End(_) = client.next(Gates::default(), None::<std::future::Pending<()>>).await {
//!             break;
//!         }
//!     }
//! });
//! let mut pongs = 0;
//! loop {
//!     match server.next(Gates::default(), None::<std::future::Pending<()>>).await {
//!         Step::Event(Event::Message(m)) => assert_eq!(m.as_text(), Some("hello")),
//!         Step::Event(Event::Pong(_)) => {
//!             pongs += 1;
//!             if pongs == 3 {
//!                 server.ws.close(ws_frame::CloseCode::NORMAL, "", ws_io::now()).unwrap();
//!             }
//!         }
//!         Step::End(End::Closed) => break,
//!         _ => {}
//!     }
//! }
//! assert_eq!(pongs, 3); // 90 s of keep-alive, no real time spent
//! peer.await.unwrap();
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod driver;
pub mod frames;
mod priority;
mod transport;
mod tx;

pub use driver::{Driver, End, Gates, Step, now};
pub use priority::Priority;
pub use transport::{Stream, Transport};
pub use tx::{TxQueue, VECTORED_MIN};
