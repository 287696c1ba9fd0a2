//! STUN (RFC 8489, RFC 5389 compatible) and TURN (RFC 8656, RFC 5766 compatible, TCP relays per
//! RFC 6062) client and server.
//!
//! The crate root is sans-IO: a message codec with every attribute of those RFCs (plus RFC 5780's),
//! ChannelData framing, client transaction timers, and the server and client state machines. None
//! of it reads a clock, draws entropy or touches a socket: time is an argument, and random bytes
//! (transaction ids, the nonce key) come from a [`RandomSource`] the caller passes in. The tokio runtime lives in
//! [`net`] (feature `runtime`, on by default).
//!
//! ```text
//!  client side                                         server side
//!  -----------                                         -----------
//!  Client::allocate / bind_channel / send_to           datagram / TCP frame (frame_len)      
//!        |                                                   |
//!        v                                                   v
//!  Client (401/438 retry, refresh timers,            Server::handle_client(now, 5-tuple, bytes, out)
//!          TransactionTimer: RTO 500 ms, Rc 7)         |  auth: realm + expiring nonce, static users,
//!        |  poll_transmit -> bytes to server           |        REST secret; allocations, permissions,
//!        |  handle_input  <- bytes from server         |        channels, quotas, transaction cache
//!        v                                             +--> Action::Reply     -> bytes back to the client
//!  ClientEvent::{Allocated, Data, ...}                 +--> Action::ToPeer    -> relay socket -> peer
//!                                                      +--> poll_event: BindRelay / ReleaseRelay /
//!        Message::decode / MessageEncoder                   ConnectPeer / PipeConnection (runtime work)
//!        ChannelData::decode / encode                Server::handle_peer(relay, peer, bytes, out)
//!        (the codec under both)                        -> ChannelData or Data indication to the client
//! ```
//!
//! # Example
//!
//! A client allocates a relay on a server, both sans-IO, over an in-memory "network":
//!
//! ```
//! use std::time::{Instant, SystemTime};
//! use stun_turn::{Action, Client, ClientConfig, ClientEvent, FiveTuple, RelayProtocol, Server,
//!                 ServerConfig, ServerEvent, Transport};
//!
//! # fn main() -> Result<(), stun_turn::Error> {
//! let now = Instant::now();
//! let mut cfg = ServerConfig::default();
//! cfg.users = vec![("alice".into(), "s3cret".into())];
//! // Randomness is an argument too: the operating system's here, a fixed sequence in a replay test.
//! let mut server = Server::new(cfg, now, SystemTime::now(), stun_turn::net::OsRandom::new())?;
//! let mut client = Client::new(
//!     ClientConfig::with_credentials("alice", "s3cret"),
//!     stun_turn::net::OsRandom::new(),
//! )?;
//! let five = FiveTuple {
//!     transport: Transport::Udp,
//!     client: "203.0.113.5:40000".parse().unwrap(),
//!     server: "198.51.100.1:3478".parse().unwrap(),
//! };
//!
//! client.allocate(now, RelayProtocol::Udp)?; // first attempt: the server answers 401 + nonce
//! let mut out = Vec::new();
//! for _ in 0..3 {
//!     while let Some(bytes) = client.poll_transmit() {
//!         out.clear();
//!         if server.handle_client(now, five, &bytes, &mut out) == Action::Reply {
//!             client.handle_input(now, &out);
//!         }
//!     }
//!     // The runtime binds relay sockets; here we pretend port 50000 was free.
//!     while let Some(ev) = server.poll_event() {
//!         if let ServerEvent::BindRelay { id, .. } = ev {
//!             server.relay_bound(now, id, "198.51.100.1:50000".parse().unwrap(), None);
//!         }
//!     }
//!     while let Some((_, bytes)) = server.poll_transmit() {
//!         client.handle_input(now, &bytes);
//!     }
//! }
//! match client.poll_event() {
//!     Some(ClientEvent::Allocated { relayed, .. }) => assert_eq!(relayed.port(), 50000),
//!     other => panic!("{other:?}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! With the runtime, the same takes a few lines:
//! `TurnServer::bind(TurnServerConfig::default())` and `TurnClient::udp(addr, cfg).await?.allocate()`
//! (see [`net`]).
//!
//! # Security defaults
//!
//! Peers in loopback, private, link-local and other special ranges are refused unless allowed
//! ([`ServerConfig::allow_loopback_peers`], [`ServerConfig::allowed_peers`]); nonces expire
//! (438); allocations per user and in total, permissions and channels per allocation are capped;
//! an optional per-allocation bandwidth cap; decoders check [`DecodeLimits`] before allocating and
//! never panic.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod attr;
pub mod channel;
pub mod client;
mod error;
pub mod integrity;
pub mod message;
#[cfg(feature = "runtime")]
pub mod net;
pub mod policy;
pub mod random;
pub mod server;
pub mod transaction;

pub use attr::{AddressFamily, AttrType, ErrorCode, PasswordAlgorithm, RelayProtocol};
pub use channel::{ChannelData, FrameKind, frame_kind, frame_len};
pub use client::{BeforeSend, Client, ClientConfig, ClientEvent, Failure, Request};
pub use error::{ConfigError, DecodeError, EncodeError, Error};
pub use integrity::Key;
pub use message::{
    Attribute, Class, DecodeLimits, Message, MessageEncoder, MessageType, Method, TransactionId,
};
pub use random::RandomSource;
pub use server::{
    Action, DeleteReason, DiscardReason, FiveTuple, PeerRefusal, Server, ServerConfig, ServerEvent,
    ServerHooks, ServerStats, SharedHooks, Transport,
};
pub use transaction::{RetransmitConfig, TimerAction, TransactionTimer};

#[doc(hidden)]
pub mod fuzzing {
    //! Entry points for the fuzz targets: total functions over arbitrary bytes.

    use crate::{ChannelData, DecodeLimits, Key, Message, MessageEncoder, frame_len};

    /// Decodes `data` as a STUN message and exercises every accessor, integrity and fingerprint
    /// checks; re-encodes the attributes it decoded and checks the round trip.
    pub fn message(data: &[u8]) {
        let limits = DecodeLimits::default();
        let Ok(m) = Message::decode(data, &limits) else {
            return;
        };
        let _ = m.xor_mapped_address();
        let _ = m.mapped_address();
        let _ = m.xor_peer_addresses();
        let _ = m.xor_relayed_address();
        let _ = m.username();
        let _ = m.realm();
        let _ = m.nonce();
        let _ = m.error_code();
        let _ = m.lifetime();
        let _ = m.channel_number();
        let _ = m.even_port();
        let _ = m.password_algorithms();
        let _ = m.verify_fingerprint();
        let _ = m.verify_any_integrity(&Key::short_term("fuzz"));
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(&mut out, m.message_type(), m.transaction_id());
        for t in m.attribute_types().collect::<Vec<_>>() {
            if let Some(v) = m.get(t) {
                e.attr(t, v);
            }
        }
        if e.finish().is_ok() {
            let again = Message::decode(&out, &limits).expect("re-encoded message decodes");
            assert_eq!(again.message_type(), m.message_type());
            assert_eq!(again.attribute_types().count(), m.attribute_types().count());
        }
    }

    /// Decodes `data` as ChannelData and as a TCP stream of frames; re-encodes and compares.
    pub fn channel_data(data: &[u8]) {
        if let Ok(cd) = ChannelData::decode(data) {
            let mut out = Vec::new();
            ChannelData::encode(cd.channel, cd.data, true, &mut out)
                .expect("decoded channel is valid");
            assert_eq!(ChannelData::decode(&out), Ok(cd));
        }
        let limits = DecodeLimits::default();
        let mut rest = data;
        while let Ok(Some((_, n))) = frame_len(rest, &limits) {
            rest = &rest[n..];
        }
    }
}
