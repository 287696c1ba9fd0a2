//! MQTT 3.1.1 and 5 client for wskit.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// `Config` is `#[non_exhaustive]`: `let mut c = Config::default(); c.x = ..` is the way to set it.
#![allow(clippy::field_reassign_with_default)]

mod client;
mod config;
mod error;
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
