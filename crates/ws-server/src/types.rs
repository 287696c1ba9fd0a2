//! Leaf types: connection ids and transports.

use std::fmt;

/// A connection's id, unique for the lifetime of a server (the seeds' `Guid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// How a connection talks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// RFC 6455 WebSocket.
    WebSocket,
    /// Plain TCP (the client did not speak HTTP; see [`crate::RawTcp`]).
    Tcp,
    /// Server-sent events (`text/event-stream`, see [`crate::SseConfig`]): send-only.
    Sse,
}
