//! MQTT 3.1.1 and 5 client for wskit: a sans-IO session core and a tokio client over TCP,
//! TLS, WebSocket and WSS, that never loses an accepted QoS 1/2 message.
//!
//! ```text
//!  Client (clone, any task)                      Events (stream of session::Event)
//!    | publish / publish_and_wait / subscribe /     ^
//!    | unsubscribe / request / auth / disconnect    |
//!    v            bounded command queue             |   bounded event queue
//!  driver task (one per client) -------------------+
//!    | reconnect: jittered exponential backoff (Config::reconnect)
//!    | Store (SQLite, Config::store): ops applied before the bytes that need them go out
//!    v
//!  session::Session (sans-IO: bytes + now in; events, packets, store ops out)
//!    | packet ids, QoS 1/2 both ways, QoS 2 dedup, keep-alive, Receive Maximum window,
//!    | topic aliases, CONNACK limits, resend with DUP, resubscribe, v5 reason codes
//!    v
//!  packet::Codec (mqttbytes v4/v5 + own acks, DISCONNECT, AUTH; limits from the header)
//!    v
//!  transport: mqtt:// TCP | mqtts:// TLS (rustls) | ws:// and wss:// (ws-client, "mqtt")
//! ```
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use proto_mqtt::{Client, Config, Event, QoS, ReasonCode};
//!
//! # async fn run() -> Result<(), proto_mqtt::Error> {
//! let mut config = Config::default();
//! config.store = Some("session.db".into()); // in-flight messages survive a restart
//! let (client, mut events) = Client::connect("mqtt://127.0.0.1:1883", config).await?;
//! client.subscribe("sensors/+/temperature", QoS::AtLeastOnce).await?;
//! let ack = client
//!     .publish_and_wait(
//!         proto_mqtt::packet::publish("sensors/1/temperature", QoS::ExactlyOnce, "21.5"),
//!         Duration::from_secs(10),
//!     )
//!     .await?;
//! assert!(ack.reason.is_success());
//! while let Some(event) = events.recv().await {
//!     if let Event::Publish(p) = event {
//!         println!("{}: {}", p.topic, String::from_utf8_lossy(&p.payload));
//!         break;
//!     }
//! }
//! client.disconnect(ReasonCode::SUCCESS, None).await?;
//! # Ok(())
//! # }
//! ```
//!
//! The guarantees (what survives a reconnect, a broker restart, a client restart) are in
//! `docs/mqtt.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// `Config` is `#[non_exhaustive]`: `let mut c = Config::default(); c.x = ..` is the way to set it.
#![allow(clippy::field_reassign_with_default)]

mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod packet;
mod reason;
pub mod session;
pub mod store;
pub mod topic;
mod transport;

pub use client::{Client, Events};
pub use config::{Authenticator, AuthenticatorFn, Backoff, Config, OfflinePolicy, Will};
pub use error::Error;
pub use reason::{Initiator, QoS, ReasonCode, Version};
pub use session::{Event, Session};
pub use transport::{BrokerUrl, Scheme};
