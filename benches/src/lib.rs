//! Benchmarks of the wskit codecs, and peer echo servers for end-to-end comparisons.
//!
//! This package is not published. It holds:
//!
//! - the criterion micro-benchmarks in `benches/` (`cargo bench -p wskit-benches`): masking
//!   next to a plain copy, header parsing, decoding streams of frames with ws-frame and with
//!   tungstenite, permessage-deflate both ways on text, JSON and binary corpora (with the engine
//!   ws-frame was built with), and miniz_oxide against zlib-rs side by side;
//! - `benches/deflate_memory.rs`: heap bytes per connection held by permessage-deflate;
//! - two peer echo servers in `src/bin/` (`echo-tungstenite`, `echo-fastwebsockets`) that
//!   `cargo xtask bench echo` drives with `wskit bench` next to `wskit serve`;
//! - this library: the inputs and the decode / compress loops the benchmarks time, kept here
//!   so that the tests in `tests/` check exactly what is measured.
//!
//! ```text
//!  payload::{json, binary, Corpus}         deterministic inputs
//!        |
//!        v
//!  frames::masked_stream ---------------> decode::ws_frame     (ws_frame::Connection, server)
//!        |                          \---> decode::tungstenite  (WebSocket over an in-memory stream)
//!        v
//!  deflate::WsCompressor  ----wire----->  deflate::ws_inflate  (permessage-deflate via Connection)
//!  engines::{Miniz, ZlibRs}  compress / inflate raw deflate    (speed and ratio, same level)
//! ```
//!
//! # Example
//!
//! Both decoders see the same 3 masked frames:
//!
//! ```
//! use wskit_benches::{decode, frames, payload};
//!
//! let message = payload::binary(1000);
//! let wire = frames::masked_stream(&message, 3, false);
//! assert_eq!(decode::ws_frame(&wire, decode::READ_CHUNK), (3, 3000));
//! assert_eq!(decode::tungstenite(&wire, 3), (3, 3000));
//! ```

use std::net::SocketAddr;

/// Flags shared by the peer echo servers.
#[derive(Debug, clap::Parser)]
pub struct EchoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9001")]
    pub listen: SocketAddr,
}

/// Flags shared by the client load generators (`load-wsclient`, `load-tungstenite`): the
/// protocol of `wskit bench` (each connection keeps one binary message in flight).
#[derive(Debug, Clone, clap::Parser)]
pub struct LoadArgs {
    /// Echo endpoint, `ws://HOST:PORT/PATH`.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Connections, each with one message in flight.
    #[arg(long, default_value_t = 100)]
    pub conns: usize,
    /// Message size in bytes (binary).
    #[arg(long, default_value_t = 20)]
    pub size: usize,
    /// Measurement length in seconds, counted once every connection is open.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
}

pub mod load {
    //! The driver both client load generators share, so that only the WebSocket client differs:
    //! one current-thread runtime; connections opened one after another; then each task sends a
    //! binary message, awaits its echo, and repeats until the time is up. Prints the summary line
    //! of `wskit bench` (`summary: msgs_per_sec=... messages=... errors=...`).

    use std::{cell::Cell, rc::Rc, time::Instant};

    use anyhow::{Context, Result};
    use bytes::Bytes;

    use crate::LoadArgs;

    /// Runs the load with `open` to connect and `round_trip` to send one message and await its
    /// echo (which must be `payload.len()` bytes).
    ///
    /// # Errors
    /// A connection that cannot be opened, or any failed round trip (after the summary).
    pub fn run<C, O, R>(args: &LoadArgs, open: O, round_trip: R) -> Result<()>
    where
        C: 'static,
        O: AsyncFn(&str) -> Result<C>,
        R: AsyncFn(&mut C, Bytes) -> Result<usize> + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async {
            let mut conns = Vec::with_capacity(args.conns);
            for i in 0..args.conns {
                conns.push(
                    open(&args.url)
                        .await
                        .with_context(|| format!("opening connection {i}"))?,
                );
            }
            println!("connected: {} connections", args.conns);
            let payload = Bytes::from(vec![0xa5; args.size]);
            let round_trip = Rc::new(round_trip);
            let counting = Rc::new(Cell::new(true));
            let (messages, errors) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
            let start = Instant::now();
            for mut conn in conns {
                let (round_trip, counting) = (round_trip.clone(), counting.clone());
                let (messages, errors, payload) = (messages.clone(), errors.clone(), payload.clone());
                tokio::task::spawn_local(async move {
                    while counting.get() {
                        match round_trip(&mut conn, payload.clone()).await {
                            Ok(n) if n == payload.len() => {
                                if counting.get() {
                                    messages.set(messages.get() + 1);
                                }
                            }
                            _ => {
                                errors.set(errors.get() + 1);
                                return;
                            }
                        }
                    }
                });
            }
            tokio::time::sleep(std::time::Duration::from_secs(args.secs)).await;
            counting.set(false);
            let secs = start.elapsed().as_secs_f64();
            let (n, e) = (messages.get(), errors.get());
            println!(
                "summary: msgs_per_sec={:.0} conns={} size={} secs={secs:.2} messages={n} errors={e}",
                n as f64 / secs,
                args.conns,
                args.size
            );
            if e > 0 {
                anyhow::bail!("{e} connections failed during the run");
            }
            Ok(())
        })
    }
}

/// `1KiB`, `16KiB`, `1MiB`, `20B`: sizes as benchmark labels.
#[must_use]
pub fn human_size(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

/// Deterministic benchmark inputs.
pub mod payload {
    /// A small linear congruential generator: the same inputs on every run and machine.
    #[derive(Debug, Clone)]
    pub struct Lcg(u64);

    impl Lcg {
        /// A generator seeded with `seed`.
        #[must_use]
        pub const fn new(seed: u64) -> Self {
            Self(seed)
        }

        /// The next pseudo-random number.
        pub fn next_u32(&mut self) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.next_u32() as usize % items.len()]
        }
    }

    const EVENTS: &[&str] = &[
        "click", "view", "purchase", "login", "logout", "scroll", "search",
    ];
    const NAMES: &[&str] = &[
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
    ];
    const PAGES: &[&str] = &[
        "/",
        "/products",
        "/products/42",
        "/cart",
        "/checkout",
        "/account/settings",
        "/search?q=websocket",
    ];
    const AGENTS: &[&str] = &[
        "Mozilla/5.0 (X11; Linux x86_64)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4)",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
    ];

    /// A JSON array of event records (the kind of text real WebSocket applications send),
    /// exactly `len` bytes long: records are added while they fit, then spaces pad the array
    /// before its closing bracket. ASCII only, hence valid UTF-8.
    #[must_use]
    pub fn json(len: usize) -> String {
        json_with_seed(len, 0)
    }

    /// Like [`json`], with other values for each `seed` (same field names and vocabulary, as
    /// consecutive messages of one application have).
    #[must_use]
    pub fn json_with_seed(len: usize, seed: u64) -> String {
        let mut rng = Lcg::new(0x5EED ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = String::with_capacity(len);
        if len < 2 {
            out.extend(std::iter::repeat_n(' ', len));
            return out;
        }
        out.push('[');
        let mut id = 100_000u32;
        loop {
            let record = format!(
                "{{\"id\":{id},\"user\":\"{}{}\",\"event\":\"{}\",\"page\":\"{}\",\
                 \"ts\":{},\"latency_ms\":{}.{},\"ok\":{},\"agent\":\"{}\"}}",
                rng.pick(NAMES),
                rng.next_u32() % 1000,
                rng.pick(EVENTS),
                rng.pick(PAGES),
                1_700_000_000 + rng.next_u32() % 10_000_000,
                rng.next_u32() % 500,
                rng.next_u32() % 100,
                rng.next_u32() & 7 != 0,
                rng.pick(AGENTS),
            );
            let sep = usize::from(out.len() > 1);
            if out.len() + sep + record.len() + 1 > len {
                break;
            }
            if sep == 1 {
                out.push(',');
            }
            out.push_str(&record);
            id += 1;
        }
        while out.len() + 1 < len {
            out.push(' ');
        }
        out.push(']');
        out
    }

    /// `len` bytes of varied binary data (not compressible in any useful way).
    #[must_use]
    pub fn binary(len: usize) -> Vec<u8> {
        let mut rng = Lcg::new(0xB10AB1);
        (0..len).map(|_| rng.next_u32() as u8).collect()
    }

    const WORDS: &[&str] = &[
        "the",
        "of",
        "and",
        "a",
        "to",
        "in",
        "is",
        "that",
        "it",
        "was",
        "for",
        "on",
        "are",
        "as",
        "with",
        "his",
        "they",
        "at",
        "be",
        "this",
        "from",
        "have",
        "or",
        "by",
        "one",
        "had",
        "not",
        "but",
        "what",
        "all",
        "were",
        "when",
        "we",
        "there",
        "can",
        "an",
        "your",
        "which",
        "their",
        "said",
        "if",
        "will",
        "each",
        "about",
        "how",
        "up",
        "out",
        "them",
        "then",
        "she",
        "many",
        "some",
        "so",
        "these",
        "would",
        "other",
        "into",
        "has",
        "more",
        "her",
        "two",
        "like",
        "him",
        "see",
        "time",
        "could",
        "no",
        "make",
        "than",
        "first",
        "been",
        "its",
        "who",
        "now",
        "people",
        "my",
        "made",
        "over",
        "did",
        "down",
        "only",
        "way",
        "find",
        "use",
        "may",
        "water",
        "long",
        "little",
        "very",
        "after",
        "words",
        "called",
        "just",
        "where",
        "most",
        "know",
        "server",
        "message",
        "window",
        "connection",
        "river",
        "morning",
        "letter",
        "question",
        "garden",
        "station",
        "evening",
        "careful",
        "quietly",
    ];

    /// English-like prose, exactly `len` bytes: sentences of 4 to 18 words drawn from a fixed
    /// list of common words (capitalised, with commas and full stops), in paragraphs. ASCII.
    #[must_use]
    pub fn prose_with_seed(len: usize, seed: u64) -> String {
        let mut rng = Lcg::new(0x7E47 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = String::with_capacity(len + 32);
        while out.len() < len {
            let words = 4 + rng.next_u32() as usize % 15;
            for i in 0..words {
                let word = rng.pick(WORDS);
                if i == 0 {
                    let (first, rest) = word.split_at(1);
                    out.push_str(&first.to_ascii_uppercase());
                    out.push_str(rest);
                } else {
                    out.push_str(word);
                }
                if i + 1 < words {
                    out.push_str(if rng.next_u32().is_multiple_of(9) {
                        ", "
                    } else {
                        " "
                    });
                }
            }
            out.push_str(if rng.next_u32().is_multiple_of(6) {
                ".\n\n"
            } else {
                ". "
            });
        }
        out.truncate(len);
        out
    }

    /// Binary with structure, exactly `len` bytes: 32-byte records (a magic tag, a counter,
    /// a type byte from a few values, a small length, then 20 pseudo-random bytes), as a
    /// binary protocol of sensor readings or game state might send.
    #[must_use]
    pub fn records_with_seed(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = Lcg::new(0xB1_4A7 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut out = Vec::with_capacity(len + 32);
        let mut counter = (seed as u32).wrapping_mul(1000);
        while out.len() < len {
            out.extend_from_slice(b"\xA5REC");
            out.extend_from_slice(&counter.to_le_bytes());
            counter = counter.wrapping_add(1);
            out.push((rng.next_u32() % 4) as u8);
            out.push(0);
            out.extend_from_slice(&((rng.next_u32() % 300) as u16).to_le_bytes());
            for _ in 0..5 {
                out.extend_from_slice(&rng.next_u32().to_le_bytes());
            }
        }
        out.truncate(len);
        out
    }

    /// The three kinds of message the deflate benchmarks compare.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Corpus {
        /// [`prose_with_seed`], sent as text.
        Text,
        /// [`json_with_seed`], sent as text.
        Json,
        /// [`records_with_seed`], sent as binary.
        Binary,
    }

    impl Corpus {
        /// All three.
        pub const ALL: [Self; 3] = [Self::Text, Self::Json, Self::Binary];

        /// Short name for benchmark ids and tables.
        #[must_use]
        pub const fn name(self) -> &'static str {
            match self {
                Self::Text => "text",
                Self::Json => "json",
                Self::Binary => "binary",
            }
        }

        /// Whether its messages go out as text frames.
        #[must_use]
        pub const fn is_text(self) -> bool {
            !matches!(self, Self::Binary)
        }

        /// Message number `seed` of `len` bytes.
        #[must_use]
        pub fn message(self, len: usize, seed: u64) -> Vec<u8> {
            match self {
                Self::Text => prose_with_seed(len, seed).into_bytes(),
                Self::Json => json_with_seed(len, seed).into_bytes(),
                Self::Binary => records_with_seed(len, seed),
            }
        }
    }
}

/// Wire bytes for the decode benchmarks.
pub mod frames {
    use ws_frame::{Header, MAX_HEADER_LEN, OpCode, mask};

    use crate::payload::Lcg;

    /// `count` copies of `payload` as client frames (masked, each with its own key), binary or
    /// text, back to back: what a server reads from a busy client. Encoded with
    /// [`Header::encode_into`] and [`mask::apply`] only, independently of the decoder.
    #[must_use]
    pub fn masked_stream(payload: &[u8], count: usize, text: bool) -> Vec<u8> {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        let mut rng = Lcg::new(0x4DA5C0);
        let mut out = Vec::with_capacity(count * (payload.len() + MAX_HEADER_LEN));
        let mut head = [0; MAX_HEADER_LEN];
        for _ in 0..count {
            let mut header = Header::new(true, opcode, payload.len() as u64);
            let key = rng.next_u32().to_be_bytes();
            header.mask = Some(key);
            let n = header.encode_into(&mut head);
            out.extend_from_slice(&head[..n]);
            let start = out.len();
            out.extend_from_slice(payload);
            mask::apply(&mut out[start..], key);
        }
        out
    }

    /// How many messages of `size` bytes make one decode-benchmark input: about 1 MiB of
    /// payload, and at least 4 messages.
    #[must_use]
    pub fn count_for(size: usize) -> usize {
        ((1 << 20) / size.max(1)).max(4)
    }
}

/// The decode loops the benchmarks time. Each returns `(messages, payload bytes)` decoded.
pub mod decode {
    use std::io::{self, Read, Write};

    use ws_frame::{Config, Connection, Event, Role};

    /// Bytes handed to a decoder per read: tungstenite's default read buffer size, so both
    /// decoders see the same chunking.
    pub const READ_CHUNK: usize = 128 * 1024;

    /// Decodes `wire` with a server-side [`ws_frame::Connection`] (default limits, UTF-8
    /// validation on), fed `chunk` bytes at a time as a socket runtime would.
    ///
    /// # Panics
    /// On a protocol error: the benchmark inputs are valid.
    #[must_use]
    pub fn ws_frame(wire: &[u8], chunk: usize) -> (usize, usize) {
        let mut conn = Connection::new(Role::Server, Config::default()).expect("default config");
        let (mut messages, mut bytes) = (0, 0);
        for piece in wire.chunks(chunk.max(1)) {
            conn.feed(piece);
            while let Some(event) = conn.poll_event().expect("valid input") {
                if let Event::Message(m) = event {
                    messages += 1;
                    bytes += m.len();
                }
            }
        }
        (messages, bytes)
    }

    /// An in-memory stream: reads come from a byte slice, writes are discarded.
    #[derive(Debug)]
    pub struct MockStream<'a> {
        input: &'a [u8],
    }

    impl<'a> MockStream<'a> {
        /// A stream whose reads return `input`, then end of stream.
        #[must_use]
        pub const fn new(input: &'a [u8]) -> Self {
            Self { input }
        }
    }

    impl Read for MockStream<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for MockStream<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Decodes the first `count` messages of `wire` with tungstenite's server-side
    /// `WebSocket::from_raw_socket` over a [`MockStream`] (default configuration: 128 KiB
    /// reads, UTF-8 validation of text).
    ///
    /// # Panics
    /// When tungstenite reports an error before `count` messages.
    #[must_use]
    pub fn tungstenite(wire: &[u8], count: usize) -> (usize, usize) {
        use tungstenite::{Message, protocol::Role, protocol::WebSocket};
        let mut ws = WebSocket::from_raw_socket(MockStream::new(wire), Role::Server, None);
        let (mut messages, mut bytes) = (0, 0);
        while messages < count {
            match ws.read().expect("valid input") {
                Message::Binary(b) => bytes += b.len(),
                Message::Text(t) => bytes += t.len(),
                _ => continue,
            }
            messages += 1;
        }
        (messages, bytes)
    }
}

/// permessage-deflate through ws-frame's public API.
pub mod deflate {
    use bytes::BytesMut;
    use ws_frame::{
        Config, Connection, Event, Message, Role,
        deflate::{DeflateConfig, DeflateParams},
    };

    /// Negotiated parameters with `level` and a server window of `window_bits`, as a server
    /// would get from a client offering `server_max_window_bits=<bits>`.
    ///
    /// # Panics
    /// For window bits outside 8..=15.
    #[must_use]
    pub fn params(level: u8, window_bits: u8) -> DeflateParams {
        let mut ours = DeflateConfig::default();
        ours.level = level;
        let bits = window_bits.to_string();
        let offer = [("server_max_window_bits", Some(bits.as_str()))];
        ours.accept_offer(&offer)
            .expect("valid offer")
            .expect("accepted offer")
    }

    /// Like [`params`], with `server_no_context_takeover` asked for (the server then resets
    /// its compression context after every message) when `no_context_takeover` is set.
    ///
    /// # Panics
    /// For window bits outside 8..=15.
    #[must_use]
    pub fn params_with(level: u8, window_bits: u8, no_context_takeover: bool) -> DeflateParams {
        let mut ours = DeflateConfig::default();
        ours.level = level;
        let bits = window_bits.to_string();
        let mut offer = vec![("server_max_window_bits", Some(bits.as_str()))];
        if no_context_takeover {
            offer.push(("server_no_context_takeover", None));
        }
        ours.accept_offer(&offer)
            .expect("valid offer")
            .expect("accepted offer")
    }

    /// A server connection that compresses every message it sends (context kept between
    /// messages, as negotiated by default), writing into a reused buffer.
    #[derive(Debug)]
    pub struct WsCompressor {
        conn: Connection,
        out: BytesMut,
    }

    impl WsCompressor {
        /// A compressor using `params`.
        ///
        /// # Panics
        /// Never for parameters from [`params`].
        #[must_use]
        pub fn new(params: DeflateParams) -> Self {
            let mut config = Config::default();
            config.deflate = Some(params);
            Self {
                conn: Connection::new(Role::Server, config).expect("valid config"),
                out: BytesMut::with_capacity(64 * 1024),
            }
        }

        /// Compresses `text` as one message and returns its wire bytes (header included).
        ///
        /// # Panics
        /// When the connection refuses to send (it never closes here).
        pub fn send(&mut self, text: &str) -> &[u8] {
            self.out.clear();
            self.conn
                .send(Message::text(text.to_owned()))
                .expect("open connection");
            while self.conn.poll_transmit(&mut self.out) {}
            &self.out
        }
    }

    impl WsCompressor {
        /// Compresses `data` as one text (`text`, which must then be UTF-8) or binary message
        /// and returns its wire bytes (header included).
        ///
        /// # Panics
        /// When the connection refuses to send, or `text` is set for data that is not UTF-8.
        pub fn send_bytes(&mut self, data: &[u8], text: bool) -> &[u8] {
            self.out.clear();
            let message = if text {
                Message::text(String::from_utf8(data.to_vec()).expect("UTF-8"))
            } else {
                Message::binary(data.to_vec())
            };
            self.conn.send(message).expect("open connection");
            while self.conn.poll_transmit(&mut self.out) {}
            &self.out
        }
    }

    /// The wire bytes of `count` messages, cycling through `messages` (text or binary frames),
    /// compressed by one [`WsCompressor`] in order.
    #[must_use]
    pub fn compressed_messages(
        messages: &[Vec<u8>],
        text: bool,
        count: usize,
        params: DeflateParams,
    ) -> Vec<u8> {
        let mut c = WsCompressor::new(params);
        let mut wire = Vec::new();
        for m in messages.iter().cycle().take(count) {
            wire.extend_from_slice(c.send_bytes(m, text));
        }
        wire
    }

    /// The wire bytes of `count` messages, cycling through `texts`, compressed by one
    /// [`WsCompressor`] in order (later messages refer back to earlier ones).
    #[must_use]
    pub fn compressed_stream(texts: &[String], count: usize, params: DeflateParams) -> Vec<u8> {
        let mut c = WsCompressor::new(params);
        let mut wire = Vec::new();
        for text in texts.iter().cycle().take(count) {
            wire.extend_from_slice(c.send(text));
        }
        wire
    }

    /// Inflates a stream from [`compressed_stream`] with a client connection using `params`;
    /// returns `(messages, inflated bytes)`.
    ///
    /// # Panics
    /// On a protocol or inflate error: the benchmark inputs are valid.
    #[must_use]
    pub fn ws_inflate(wire: &[u8], params: DeflateParams) -> (usize, usize) {
        let mut config = Config::default();
        config.deflate = Some(params);
        let mut conn = Connection::new(Role::Client, config).expect("valid config");
        let (mut messages, mut bytes) = (0, 0);
        for piece in wire.chunks(crate::decode::READ_CHUNK) {
            conn.feed(piece);
            while let Some(event) = conn.poll_event().expect("valid input") {
                if let Event::Message(m) = event {
                    messages += 1;
                    bytes += m.len();
                }
            }
        }
        (messages, bytes)
    }
}

/// Raw deflate engines side by side: miniz_oxide (what ws-frame uses) and flate2 with its
/// pure-Rust zlib-rs backend, each compressing one whole message per call from a reset state.
pub mod engines {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
    use miniz_oxide::{
        DataFormat, MZFlush, MZStatus,
        deflate::core::{CompressorOxide, create_comp_flags_from_zip_params},
        inflate::stream::InflateState,
    };

    /// Room for the compressed form of `len` bytes, stored blocks included.
    #[must_use]
    pub const fn bound(len: usize) -> usize {
        len + len / 64 + 256
    }

    /// miniz_oxide raw deflate. Window bits below 15 are honoured the way ws-frame does it:
    /// a full flush (empty dictionary) after every 2^bits input bytes.
    pub struct Miniz {
        compressor: Box<CompressorOxide>,
        inflater: Box<InflateState>,
        window: usize,
    }

    impl Miniz {
        /// An engine at `level` (0..=9) with a window of `window_bits` (8..=15).
        #[must_use]
        pub fn new(level: u8, window_bits: u8) -> Self {
            let flags = create_comp_flags_from_zip_params(i32::from(level), -15, 0);
            Self {
                compressor: Box::new(CompressorOxide::new(flags)),
                inflater: InflateState::new_boxed(DataFormat::Raw),
                window: 1 << window_bits.clamp(8, 15),
            }
        }

        /// Compresses `input` as one finished raw deflate stream into `out` (cleared first).
        ///
        /// # Panics
        /// When miniz_oxide reports a stream error.
        pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
            self.compressor.reset();
            out.clear();
            out.resize(bound(input.len()), 0);
            let mut written = 0;
            // At 15 bits the dictionary never needs emptying: one piece.
            let step = if self.window >= 1 << 15 {
                input.len().max(1)
            } else {
                self.window
            };
            let pieces = input.len().div_ceil(step).max(1);
            for i in 0..pieces {
                let end = ((i + 1) * step).min(input.len());
                let mut piece = &input[(i * step).min(end)..end];
                let flush = if i + 1 == pieces {
                    MZFlush::Finish
                } else {
                    MZFlush::Full
                };
                loop {
                    let room = out.len() - written;
                    let res = miniz_oxide::deflate::stream::deflate(
                        &mut self.compressor,
                        piece,
                        &mut out[written..],
                        flush,
                    );
                    let status = res.status.expect("deflate");
                    written += res.bytes_written;
                    piece = &piece[res.bytes_consumed..];
                    // A flush is complete once it leaves output room unused.
                    let flushed = piece.is_empty() && res.bytes_written < room;
                    if status == MZStatus::StreamEnd || (flush == MZFlush::Full && flushed) {
                        break;
                    }
                    if out.len() - written < 64 {
                        out.resize(out.len() * 2, 0);
                    }
                }
            }
            out.truncate(written);
        }

        /// Inflates a finished raw deflate stream into `out` (cleared first; its capacity is
        /// used, so reserve the expected size).
        ///
        /// # Panics
        /// On a corrupt stream.
        pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>, expected: usize) {
            self.inflater.reset(DataFormat::Raw);
            out.clear();
            out.resize(expected + 1, 0);
            let res = miniz_oxide::inflate::stream::inflate(
                &mut self.inflater,
                input,
                out,
                MZFlush::Finish,
            );
            assert_eq!(res.status, Ok(MZStatus::StreamEnd), "inflate");
            out.truncate(res.bytes_written);
        }
    }

    impl std::fmt::Debug for Miniz {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Miniz")
                .field("window", &self.window)
                .finish_non_exhaustive()
        }
    }

    /// flate2 over zlib-rs, raw deflate with a native window of `window_bits`.
    #[derive(Debug)]
    pub struct ZlibRs {
        compressor: Compress,
        inflater: Decompress,
    }

    impl ZlibRs {
        /// An engine at `level` (0..=9) with a window of `window_bits` (9..=15; zlib raises 8
        /// to 9).
        #[must_use]
        pub fn new(level: u8, window_bits: u8) -> Self {
            let bits = window_bits.clamp(9, 15);
            Self {
                compressor: Compress::new_with_window_bits(
                    Compression::new(u32::from(level)),
                    false,
                    bits,
                ),
                inflater: Decompress::new_with_window_bits(false, 15),
            }
        }

        /// Compresses `input` as one finished raw deflate stream into `out` (cleared first).
        ///
        /// # Panics
        /// When zlib-rs reports an error.
        pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
            self.compressor.reset();
            out.clear();
            out.reserve(bound(input.len()));
            let mut rest = input;
            loop {
                let before = self.compressor.total_in();
                let status = self
                    .compressor
                    .compress_vec(rest, out, FlushCompress::Finish)
                    .expect("deflate");
                rest = &rest[(self.compressor.total_in() - before) as usize..];
                if status == Status::StreamEnd {
                    break;
                }
                out.reserve(out.capacity().max(256));
            }
        }

        /// Inflates a finished raw deflate stream into `out` (cleared first).
        ///
        /// # Panics
        /// On a corrupt stream.
        pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>, expected: usize) {
            self.inflater.reset(false);
            out.clear();
            out.reserve(expected + 1);
            let status = self
                .inflater
                .decompress_vec(input, out, FlushDecompress::Finish)
                .expect("inflate");
            assert_eq!(status, Status::StreamEnd, "inflate");
        }
    }
}
