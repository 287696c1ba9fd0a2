//! tokio runtime: the UDP/TCP server ([`TurnServer`]) and client ([`TurnClient`]).
//!
//! Each is a thin driver around the sans-IO core: read -> feed the core -> act on its output.

mod client;
mod random;
mod send_batch;
mod server;
mod wire;

pub use client::{TurnClient, stun_binding};
pub use random::OsRandom;
pub use server::{TurnServer, TurnServerConfig};
