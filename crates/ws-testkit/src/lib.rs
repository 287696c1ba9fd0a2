//! Test helpers for wskit's sans-IO cores: an in-memory client/server [`Pair`] of
//! [`ws_frame::Connection`]s on a [`FakeClock`], and a [`RawFrame`] builder for hand-made (also
//! invalid) frames. A dev-dependency only.
//!
//! ```text
//!   client Connection --poll_transmit--> c2s buffer --chunked feed--> server Connection
//!          ^                                                                  |
//!          '--------chunked feed-- s2c buffer <--poll_transmit----------------'
//!   drive(): move bytes both ways, poll events after every chunk, fire due timers,
//!            close the "transport" when a side wants it (both then see end of stream)
//! ```
//!
//! ```
//! use ws_frame::{Config, Event, Message};
//! use ws_testkit::Pair;
//!
//! let mut pair = Pair::new(Config::default())?;
//! pair.chunk = Some(1); // deliver one byte at a time
//! pair.client.send(Message::text("hi"))?;
//! pair.drive();
//! let events = pair.take_server_events();
//! assert!(matches!(&events[..], [Ok(Event::Message(m))] if m.as_text() == Some("hi")));
//! # Ok::<(), ws_frame::Error>(())
//! ```

#![warn(missing_docs)]

pub mod peers;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use ws_frame::{
    Config, Connection, Error, Event, Header, MAX_HEADER_LEN, Message, Role,
    deflate::{DeflateConfig, NegotiationError, negotiate_in_memory},
    mask,
};

/// A clock that only moves when told to.
#[derive(Clone, Copy, Debug)]
pub struct FakeClock {
    now: Instant,
}

impl FakeClock {
    /// A clock starting at an arbitrary instant.
    #[must_use]
    pub fn new() -> Self {
        Self {
            now: Instant::now(),
        }
    }

    /// The current fake time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        Self::new()
    }
}

/// What one side observed: an event or the error `poll_event` returned.
pub type Observed = Result<Event, Error>;

/// Two connected [`Connection`]s exchanging bytes in memory.
#[derive(Debug)]
pub struct Pair {
    /// The client end.
    pub client: Connection,
    /// The server end.
    pub server: Connection,
    /// The shared fake clock.
    pub clock: FakeClock,
    /// Deliver bytes in pieces of this size (`None`: everything at once).
    pub chunk: Option<usize>,
    client_events: Vec<Observed>,
    server_events: Vec<Observed>,
    c2s: BytesMut,
    s2c: BytesMut,
    transport_open: bool,
    /// Bytes written by each side, for tests that inspect the wire.
    client_wire: Vec<u8>,
    server_wire: Vec<u8>,
}

impl Pair {
    /// A pair where both sides use `config`.
    ///
    /// # Errors
    /// The configuration error from [`Connection::new`].
    pub fn new(config: Config) -> Result<Self, Error> {
        Self::with_configs(config.clone(), config)
    }

    /// A pair with a configuration per side.
    ///
    /// # Errors
    /// The configuration error from [`Connection::new`].
    pub fn with_configs(client: Config, server: Config) -> Result<Self, Error> {
        Ok(Self {
            client: Connection::new(Role::Client, client)?,
            server: Connection::new(Role::Server, server)?,
            clock: FakeClock::new(),
            chunk: None,
            client_events: Vec::new(),
            server_events: Vec::new(),
            c2s: BytesMut::new(),
            s2c: BytesMut::new(),
            transport_open: true,
            client_wire: Vec::new(),
            server_wire: Vec::new(),
        })
    }

    /// A pair that negotiated permessage-deflate in memory (client offer, server answer).
    ///
    /// # Errors
    /// A negotiation error, or `NegotiationError::Missing("accepted offer")` when the server
    /// declined the offer.
    ///
    /// # Panics
    /// When `base` is an invalid configuration.
    pub fn with_deflate(
        base: Config,
        client: &DeflateConfig,
        server: &DeflateConfig,
    ) -> Result<Self, NegotiationError> {
        let (client_params, server_params) = negotiate_in_memory(client, server)?
            .ok_or_else(|| NegotiationError::Missing("accepted offer".into()))?;
        let mut client_config = base.clone();
        client_config.deflate = Some(client_params);
        let mut server_config = base;
        server_config.deflate = Some(server_params);
        Ok(Self::with_configs(client_config, server_config).expect("valid base config"))
    }

    /// Moves bytes both ways until nothing changes: events are collected per side (polled after
    /// every delivered chunk), due timers fire at the fake clock's time, and when a side wants
    /// the transport closed, both sides see end of stream after the bytes in flight.
    pub fn drive(&mut self) {
        loop {
            let mut progress = false;
            progress |= self.fire_timers();
            progress |= Self::drain(&mut self.client, &mut self.client_events);
            progress |= Self::drain(&mut self.server, &mut self.server_events);
            if self.transport_open {
                progress |= Self::pump(
                    &mut self.client,
                    &mut self.server,
                    &mut self.c2s,
                    &mut self.client_wire,
                    self.chunk,
                    &mut self.server_events,
                );
                progress |= Self::pump(
                    &mut self.server,
                    &mut self.client,
                    &mut self.s2c,
                    &mut self.server_wire,
                    self.chunk,
                    &mut self.client_events,
                );
                if self.client.wants_transport_close() || self.server.wants_transport_close() {
                    self.transport_open = false;
                    self.client.handle_eof();
                    self.server.handle_eof();
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }

    /// Advances the fake clock, then drives.
    pub fn advance(&mut self, by: Duration) {
        self.clock.advance(by);
        self.drive();
    }

    fn fire_timers(&mut self) -> bool {
        let now = self.clock.now();
        let mut fired = false;
        for conn in [&mut self.client, &mut self.server] {
            // A timer that waits for the time to start (see Connection::wants_now) starts now.
            if conn.wants_now() || conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
                fired = true;
            }
        }
        fired
    }

    fn drain(conn: &mut Connection, events: &mut Vec<Observed>) -> bool {
        let mut any = false;
        loop {
            match conn.poll_event() {
                Ok(Some(event)) => events.push(Ok(event)),
                Ok(None) => return any,
                Err(error) => events.push(Err(error)),
            }
            any = true;
        }
    }

    fn pump(
        from: &mut Connection,
        to: &mut Connection,
        buf: &mut BytesMut,
        wire: &mut Vec<u8>,
        chunk: Option<usize>,
        to_events: &mut Vec<Observed>,
    ) -> bool {
        while from.poll_transmit(buf) {}
        if buf.is_empty() {
            return false;
        }
        wire.extend_from_slice(buf);
        while !buf.is_empty() {
            let n = chunk.unwrap_or(buf.len()).clamp(1, buf.len());
            let piece = buf.split_to(n);
            to.feed(&piece);
            Self::drain(to, to_events);
        }
        true
    }

    /// Whether the in-memory transport is still open.
    #[must_use]
    pub fn transport_open(&self) -> bool {
        self.transport_open
    }

    /// Both sides send every message of `messages` (as text where `as_text(index)` says so,
    /// else binary), the pair is driven, and each side must have received exactly those
    /// messages, byte for byte and in order (panics otherwise, naming the side). Returns how
    /// many bytes the server wrote meanwhile (what compression saved shows there).
    ///
    /// # Panics
    /// When a text message is not UTF-8, a send fails, or a side received something else.
    pub fn exchange_both_ways(
        &mut self,
        messages: &[Vec<u8>],
        as_text: impl Fn(usize) -> bool,
    ) -> usize {
        let before = self.server_wire.len();
        for (i, m) in messages.iter().enumerate() {
            let msg = if as_text(i) {
                Message::text(String::from_utf8(m.clone()).expect("text message is UTF-8"))
            } else {
                Message::binary(m.clone())
            };
            self.client.send(msg.clone()).expect("client send");
            self.server.send(msg).expect("server send");
        }
        self.drive();
        for (side, got) in [
            ("server", self.take_server_events()),
            ("client", self.take_client_events()),
        ] {
            assert_eq!(got.len(), messages.len(), "{side}: message count");
            for (event, want) in got.into_iter().zip(messages) {
                let Ok(Event::Message(m)) = event else {
                    panic!("{side}: {event:?}")
                };
                assert!(m.as_bytes() == &want[..], "{side}: message differs");
            }
        }
        self.server_wire.len() - before
    }

    /// Takes what the client observed so far.
    pub fn take_client_events(&mut self) -> Vec<Observed> {
        std::mem::take(&mut self.client_events)
    }

    /// Takes what the server observed so far.
    pub fn take_server_events(&mut self) -> Vec<Observed> {
        std::mem::take(&mut self.server_events)
    }

    /// Every byte the client wrote so far.
    #[must_use]
    pub fn client_wire(&self) -> &[u8] {
        &self.client_wire
    }

    /// Every byte the server wrote so far.
    #[must_use]
    pub fn server_wire(&self) -> &[u8] {
        &self.server_wire
    }

    /// Delivers raw bytes to the server as if the client had written them (hand-made frames).
    pub fn inject_to_server(&mut self, bytes: &[u8]) {
        self.client_wire.extend_from_slice(bytes);
        self.c2s.extend_from_slice(bytes);
        if self.transport_open {
            let mut buf = std::mem::take(&mut self.c2s);
            while !buf.is_empty() {
                let n = self.chunk.unwrap_or(buf.len()).clamp(1, buf.len());
                let piece = buf.split_to(n);
                self.server.feed(&piece);
                Self::drain(&mut self.server, &mut self.server_events);
            }
        }
        self.c2s.clear();
    }

    /// Delivers raw bytes to the client as if the server had written them.
    pub fn inject_to_client(&mut self, bytes: &[u8]) {
        self.server_wire.extend_from_slice(bytes);
        if self.transport_open {
            let mut buf = BytesMut::from(bytes);
            while !buf.is_empty() {
                let n = self.chunk.unwrap_or(buf.len()).clamp(1, buf.len());
                let piece = buf.split_to(n);
                self.client.feed(&piece);
                Self::drain(&mut self.client, &mut self.client_events);
            }
        }
    }
}

/// Builds one frame by hand, including frames RFC 6455 forbids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    /// The header; `payload_len` is overwritten with the payload's length by
    /// [`RawFrame::encode`] unless [`RawFrame::keep_len`] is set.
    pub header: Header,
    /// The unmasked payload.
    pub payload: Vec<u8>,
    /// Keep `header.payload_len` as given (to announce a length that does not match).
    pub keep_len: bool,
}

impl RawFrame {
    /// A frame with FIN set, the given raw opcode and payload, unmasked.
    #[must_use]
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Self {
        let payload = payload.into();
        Self {
            header: Header {
                fin: true,
                rsv1: false,
                rsv2: false,
                rsv3: false,
                opcode,
                mask: None,
                payload_len: payload.len() as u64,
            },
            payload,
            keep_len: false,
        }
    }

    /// Sets FIN.
    #[must_use]
    pub fn fin(mut self, fin: bool) -> Self {
        self.header.fin = fin;
        self
    }

    /// Sets RSV1..RSV3.
    #[must_use]
    pub fn rsv(mut self, rsv1: bool, rsv2: bool, rsv3: bool) -> Self {
        self.header.rsv1 = rsv1;
        self.header.rsv2 = rsv2;
        self.header.rsv3 = rsv3;
        self
    }

    /// Masks with `key` (what a client sends).
    #[must_use]
    pub fn masked(mut self, key: [u8; 4]) -> Self {
        self.header.mask = Some(key);
        self
    }

    /// Masks with a fixed key (what a client sends).
    #[must_use]
    pub fn client(self) -> Self {
        self.masked([0x37, 0xfa, 0x21, 0x3d])
    }

    /// Splits `bytes` into frames and unmasks their payloads (the inverse of
    /// [`RawFrame::encode`]), for tests that inspect what a connection wrote.
    ///
    /// # Panics
    /// When `bytes` does not end on a frame boundary or a header is malformed.
    #[must_use]
    pub fn decode_all(mut bytes: &[u8]) -> Vec<Self> {
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let (header, n) = ws_frame::parse_header(bytes)
                .expect("valid header")
                .expect("complete header");
            let len = usize::try_from(header.payload_len).expect("length fits");
            let mut payload = bytes[n..n + len].to_vec();
            if let Some(key) = header.mask {
                mask::apply(&mut payload, key);
            }
            bytes = &bytes[n + len..];
            frames.push(Self {
                header,
                payload,
                keep_len: false,
            });
        }
        frames
    }

    /// The close code of a Close frame's payload, if it has one.
    #[must_use]
    pub fn close_code(&self) -> Option<u16> {
        (self.header.opcode == 0x8 && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// The wire bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut header = self.header;
        if !self.keep_len {
            header.payload_len = self.payload.len() as u64;
        }
        let mut head = [0; MAX_HEADER_LEN];
        let n = header.encode_into(&mut head);
        let mut out = head[..n].to_vec();
        let start = out.len();
        out.extend_from_slice(&self.payload);
        if let Some(key) = header.mask {
            mask::apply(&mut out[start..], key);
        }
        out
    }
}

/// Deterministic incompressible bytes (xorshift64*): test payloads that deflate cannot shrink
/// and that differ at every offset, reproducible from `seed`.
///
/// ```
/// let a = ws_testkit::noise(1000, 1);
/// assert_eq!(a.len(), 1000);
/// assert_eq!(a, ws_testkit::noise(1000, 1));
/// assert_ne!(a, ws_testkit::noise(1000, 2));
/// ```
#[must_use]
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use ws_frame::{CloseCode, Initiator, Message};

    #[test]
    fn fake_clock_moves_only_when_advanced() {
        let mut clock = FakeClock::new();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(3));
        assert_eq!(clock.now() - start, Duration::from_secs(3));
    }

    #[test]
    fn pair_delivers_messages_both_ways_in_one_byte_chunks() {
        let mut pair = Pair::new(Config::default()).unwrap();
        pair.chunk = Some(1);
        pair.client.send(Message::text("ping?")).unwrap();
        pair.server.send(Message::binary(vec![1, 2, 3])).unwrap();
        pair.drive();
        let server = pair.take_server_events();
        let client = pair.take_client_events();
        assert!(matches!(&server[..], [Ok(Event::Message(m))] if m.as_text() == Some("ping?")));
        assert!(matches!(&client[..], [Ok(Event::Message(m))] if m.as_bytes() == [1, 2, 3]));
    }

    #[test]
    fn pair_closes_the_transport_after_the_handshake() {
        let mut pair = Pair::new(Config::default()).unwrap();
        let now = pair.clock.now();
        pair.client.close(CloseCode::NORMAL, "", now).unwrap();
        pair.drive();
        assert!(!pair.transport_open());
        let server = pair.take_server_events();
        assert!(matches!(
            &server[..],
            [Ok(Event::Closed {
                by: Initiator::Remote,
                ..
            })]
        ));
        let client = pair.take_client_events();
        assert!(matches!(
            &client[..],
            [Ok(Event::Closed {
                by: Initiator::User,
                ..
            })]
        ));
    }

    #[test]
    fn raw_frame_encodes_rfc_example() {
        let bytes = RawFrame::new(1, "Hello").client().encode();
        assert_eq!(
            bytes,
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }
}
