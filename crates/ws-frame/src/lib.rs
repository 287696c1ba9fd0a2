//! Sans-IO WebSocket protocol (RFC 6455) with permessage-deflate (RFC 7692).
//!
//! No sockets, no async runtime, no clock reads: bytes go in, events come out, and frames to
//! write are appended to a buffer the caller owns. Time is an argument.
//!
//! ```text
//!   transport bytes                                              application
//!        |                                                            ^
//!        v                                                            |
//!   feed() / read_buf() --> rx: BytesMut                              |
//!                            | parse_header: role, RSV, opcode,       |
//!                            |   control rules, limits (before any    |
//!                            |   allocation)                          |
//!                            | split_to(len) + unmask in place        |
//!                            | UTF-8 checked as bytes arrive          |
//!                            | inflate, bounded per chunk             |
//!                            v                                        |
//!                      reassembly / close state machine --------> poll_event()
//!                            | pongs, Close echo (queued)     Message | Fragment | Ping |
//!                            v                                Pong | Closed | Err(..)
//!   send() / ping() / close() --> deflate + fragment --> frame queue
//!                                                              |
//!   transport <-- poll_transmit(&mut BytesMut) / poll_frame() <-'
//!                 (masked for clients)
//!   handle_timeout(now) / poll_timeout(): every timer of the connection: keep-alive pings
//!   and the pong deadline (Config::heartbeat), the idle timeout, the close-handshake
//!   deadline, a client's wait for the server's TCP close, and the deadline of an unfinished
//!   fragmented message (timers start at the first handle_timeout after they are needed:
//!   see Connection::wants_now)
//!
//!   Randomness comes from the caller too: a client's masking keys from a MaskSource
//!   (Connection::with_mask_source; Connection::new uses OsMaskSource).
//! ```
//!
//! # Example
//!
//! A client and a server exchanging a message and closing, with the bytes moved by hand:
//!
//! ```
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use ws_frame::{CloseCode, Config, Connection, Event, Initiator, Message, Role};
//!
//! let mut client = Connection::new(Role::Client, Config::default())?;
//! let mut server = Connection::new(Role::Server, Config::default())?;
//! let mut wire = BytesMut::new();
//!
//! client.send(Message::text("hello"))?;
//! while client.poll_transmit(&mut wire) {}
//! server.feed(&wire.split());
//! assert_eq!(server.poll_event()?, Some(Event::Message(Message::text("hello"))));
//!
//! let now = Instant::now();
//! client.close(CloseCode::NORMAL, "bye", now)?;
//! while client.poll_transmit(&mut wire) {}
//! server.feed(&wire.split());
//! let Some(Event::Closed { code, by, .. }) = server.poll_event()? else { panic!() };
//! assert_eq!((code, by), (CloseCode::NORMAL, Initiator::Remote));
//! while server.poll_transmit(&mut wire) {} // the echoed Close
//! assert!(server.wants_transport_close());
//! client.feed(&wire.split());
//! let Some(Event::Closed { by, .. }) = client.poll_event()? else { panic!() };
//! assert_eq!(by, Initiator::User);
//! assert!(client.is_closed());
//! # Ok::<(), ws_frame::Error>(())
//! ```
//!
//! # Conformance
//!
//! Driven by a minimal blocking echo server and client, this crate passed all 517 cases of
//! Autobahn|Testsuite in both roles (every case OK or INFORMATIONAL), including the
//! permessage-deflate cases with `server_max_window_bits=8`. Compressed output for every window
//! size from 8 to 15 was also checked with zlib inflating through windows of exactly 2^bits.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod close;
mod config;
mod connection;
pub mod deflate;
mod error;
mod header;
pub mod id_header;
pub mod mask;
mod message;
mod os_random;
mod prepared;
mod utf8;

pub use close::CloseCode;
pub use config::{Config, Heartbeat};
pub use connection::Connection;
pub use error::{ConfigError, Error, ProtocolError};
pub use header::{Header, MAX_HEADER_LEN, OpCode, parse_header};
pub use mask::MaskSource;
pub use message::{
    CloseInfo, Event, FragmentMode, Initiator, Message, OutFrame, Role, SendOptions,
};
pub use os_random::OsMaskSource;
pub use prepared::Prepared;
pub use utf8::Utf8Bytes;

/// Entry points for the fuzz targets (the cargo-fuzz workspace calls these with raw bytes).
/// Each checks properties beyond "does not crash" and panics when one fails. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use bytes::BytesMut;

    use crate::{
        Config, Connection, Event, Role,
        deflate::{Compressor, DeflateParams, Inflater},
        header::{MAX_HEADER_LEN, parse_header},
        mask,
    };

    /// Parses a header; on success re-encodes it and checks the round trip, then runs the same
    /// bytes through a client and a server connection.
    pub fn header(data: &[u8]) {
        if let Ok(Some((h, n))) = parse_header(data) {
            assert!(n <= MAX_HEADER_LEN && n <= data.len());
            let mut out = [0; MAX_HEADER_LEN];
            let m = h.encode_into(&mut out);
            let (again, used) = parse_header(&out[..m])
                .ok()
                .flatten()
                .expect("re-encoded header parses");
            assert_eq!(again, h);
            assert_eq!(used, m);
        }
        for role in [Role::Client, Role::Server] {
            connection(data, role, false, 0);
        }
    }

    /// Feeds `data` to a connection in chunks of `chunk` bytes (0: all at once) and drains it,
    /// checking that limits hold, that an error is reported once, and that output is produced.
    pub fn connection(data: &[u8], role: Role, deflate: bool, chunk: usize) {
        let config = Config {
            max_frame: 64 * 1024,
            max_message: 256 * 1024,
            deflate: deflate.then(DeflateParams::default),
            accept_unmasked_from_client: chunk % 2 == 1,
            fixed_mask_key: Some([1, 2, 3, 4]),
            ..Config::default()
        };
        let max_message = config.max_message;
        let Ok(mut conn) = Connection::new(role, config) else {
            return;
        };
        let chunk = if chunk == 0 { data.len().max(1) } else { chunk };
        let mut out = BytesMut::new();
        let mut failed = false;
        for piece in data.chunks(chunk) {
            conn.feed(piece);
            loop {
                match conn.poll_event() {
                    Ok(Some(Event::Message(m))) => assert!(m.len() <= max_message),
                    Ok(Some(Event::Fragment { payload, .. })) => {
                        assert!(payload.len() <= max_message)
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        assert!(!failed, "second error {e}");
                        failed = true;
                        let _ = e.close_code();
                    }
                }
            }
            while conn.poll_transmit(&mut out) {}
            out.clear();
        }
        if failed {
            assert!(matches!(conn.poll_event(), Ok(None)));
            assert!(conn.is_closed());
        }
    }

    /// Inflates arbitrary data with an output limit and checks that the limit held.
    pub fn inflate(data: &[u8], limit: usize) -> Option<Vec<u8>> {
        let mut inflater = Inflater::new(false);
        let mut out = BytesMut::new();
        let result = inflater.inflate(data, true, &mut out, limit);
        assert!(out.len() <= limit + 1);
        assert!(out.capacity() <= limit + 64 * 1024 + 1);
        result.ok().map(|()| out.to_vec())
    }

    /// Compresses `data` as one message with the given window and context mode, inflates it
    /// back and checks equality.
    pub fn deflate_round_trip(data: &[u8], window_bits: u8, no_context_takeover: bool) {
        let mut compressor = Compressor::new(1, window_bits, no_context_takeover);
        let mut inflater = Inflater::new(no_context_takeover);
        for _ in 0..2 {
            let mut z = BytesMut::new();
            compressor.compress(data, &mut z).expect("compress");
            let mut back = BytesMut::new();
            inflater
                .inflate(&z, true, &mut back, data.len())
                .expect("inflate");
            assert_eq!(&back[..], data);
        }
    }

    /// The word-wise mask equals the byte-wise reference.
    pub fn mask(data: &[u8], key: [u8; 4], offset: usize) {
        let mut fast = data.to_vec();
        let mut slow = data.to_vec();
        mask::apply_at(&mut fast, key, offset);
        mask::apply_reference(&mut slow, key, offset);
        assert_eq!(fast, slow);
    }
}
