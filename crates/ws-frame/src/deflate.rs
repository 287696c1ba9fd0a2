//! permessage-deflate (RFC 7692): parameter negotiation and the per-connection compressor and
//! decompressor.
//!
//! Header text parsing lives in ws-http; this module receives the parameters of one offer or
//! response as `(name, value)` pairs with quotes already removed.
//!
//! ```text
//!  client                                     server
//!  DeflateConfig::client_offer() ---offer---> DeflateConfig::accept_offer(params)
//!                                              -> Some(DeflateParams) .response_value()
//!  DeflateConfig::accept_response(params) <-------------'
//!   -> DeflateParams                           (both sides) Config::deflate = Some(params)
//! ```
//!
//! # Engines
//!
//! Two deflate engines, chosen by cargo feature: `deflate-miniz` (miniz_oxide, the default) and
//! `deflate-zlib-rs` (zlib-rs through its safe API). Cargo features add up, so with both enabled
//! zlib-rs is used; [`BACKEND`] names the one compiled in. Negotiation is the same for both:
//! each honours every window from 8 to 15 bits, as below. docs/ws-frame.md ("Deflate
//! backends") has the measurements behind the default.
//!
//! # Window sizes
//!
//! miniz_oxide's `CompressorOxide::with_params(.., window_bits)` does **not** keep match
//! distances inside small windows (its level-1 fast path ignores the window and finds matches up
//! to about 28 KiB back), so it cannot honour `*_max_window_bits` below 15. zlib-rs keeps windows
//! of 9 to 15 bits itself but, like zlib, refuses 8 for raw deflate. Below the engine's own
//! floor ([`NATIVE_MIN_WINDOW_BITS`]: 15 for miniz_oxide, 9 for zlib-rs) this compressor
//! empties its dictionary (a deflate full flush) every 2^bits input bytes: no match can then
//! reach further back than the window, and the output stays a single valid deflate stream. The
//! cost is ratio and CPU for those windows (each full flush clears the hash tables), which is
//! why [`DeflateConfig::min_window_bits`] lets a server decline offers below a floor. Inflating
//! accepts any window (the decompressor keeps a 32 KiB window).

use bytes::BytesMut;

/// The tail a sync flush leaves; stripped after compressing and appended before inflating.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// Extension token for `Sec-WebSocket-Extensions`.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Why a permessage-deflate offer or response was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// A parameter RFC 7692 does not define.
    #[error("unknown permessage-deflate parameter {0:?}")]
    UnknownParameter(String),
    /// The same parameter twice.
    #[error("duplicate permessage-deflate parameter {0:?}")]
    DuplicateParameter(String),
    /// A parameter with a value it may not have, or without one it needs.
    #[error("invalid value for permessage-deflate parameter {0:?}")]
    InvalidValue(String),
    /// A response parameter the offer did not allow (or a window larger than requested).
    #[error("permessage-deflate response parameter {0:?} was not allowed by the offer")]
    Unrequested(String),
    /// A response without a parameter the offer required the server to confirm.
    #[error("permessage-deflate response lacks the requested parameter {0:?}")]
    Missing(String),
}

/// Our permessage-deflate preferences, used to build an offer (client) or to answer one
/// (server). The negotiated outcome for one connection is a [`DeflateParams`].
///
/// Window bits outside 8..=15 and levels above 9 are clamped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Ask (client) or announce (server) that the server resets its compression context after
    /// every message. Default: [`DeflateConfig::DEFAULT_SERVER_NO_CONTEXT_TAKEOVER`] (false).
    pub server_no_context_takeover: bool,
    /// Ask (server) or promise (client) that the client resets its compression context after
    /// every message. Default: [`DeflateConfig::DEFAULT_CLIENT_NO_CONTEXT_TAKEOVER`] (false).
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window the server may use, as bits (8..=15). Default:
    /// [`DeflateConfig::DEFAULT_MAX_WINDOW_BITS`] (15).
    pub server_max_window_bits: u8,
    /// Largest LZ77 window the client may use, as bits (8..=15). Default:
    /// [`DeflateConfig::DEFAULT_MAX_WINDOW_BITS`] (15).
    pub client_max_window_bits: u8,
    /// Smallest window (bits) this side agrees to compress with; a server declines offers that
    /// ask for less, a client refuses such responses. Default:
    /// [`DeflateConfig::DEFAULT_MIN_WINDOW_BITS`] (8, i.e. everything RFC 7692 allows).
    pub min_window_bits: u8,
    /// Compression level 0 (stored) ..= 9 (best). Default: [`DeflateConfig::DEFAULT_LEVEL`] (1).
    pub level: u8,
    /// Messages shorter than this are sent uncompressed (RSV1 clear). Default:
    /// [`DeflateConfig::DEFAULT_MIN_SIZE`] (0: compress everything).
    pub min_size: usize,
}

impl DeflateConfig {
    /// Default of [`DeflateConfig::server_no_context_takeover`].
    pub const DEFAULT_SERVER_NO_CONTEXT_TAKEOVER: bool = false;
    /// Default of [`DeflateConfig::client_no_context_takeover`].
    pub const DEFAULT_CLIENT_NO_CONTEXT_TAKEOVER: bool = false;
    /// Default of both `*_max_window_bits`.
    pub const DEFAULT_MAX_WINDOW_BITS: u8 = 15;
    /// Default of [`DeflateConfig::min_window_bits`].
    pub const DEFAULT_MIN_WINDOW_BITS: u8 = 8;
    /// Default of [`DeflateConfig::level`].
    pub const DEFAULT_LEVEL: u8 = 1;
    /// Default of [`DeflateConfig::min_size`].
    pub const DEFAULT_MIN_SIZE: usize = 0;

    fn server_bits(&self) -> u8 {
        self.server_max_window_bits.clamp(8, 15)
    }

    fn client_bits(&self) -> u8 {
        self.client_max_window_bits.clamp(8, 15)
    }

    fn min_bits(&self) -> u8 {
        self.min_window_bits.clamp(8, 15)
    }

    /// The `Sec-WebSocket-Extensions` value a client sends, e.g.
    /// `permessage-deflate; client_max_window_bits`.
    #[must_use]
    pub fn client_offer(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_bits() < 15 {
            s.push_str(&format!("; server_max_window_bits={}", self.server_bits()));
        }
        if self.client_bits() < 15 {
            s.push_str(&format!("; client_max_window_bits={}", self.client_bits()));
        } else {
            s.push_str("; client_max_window_bits");
        }
        s
    }

    /// Server side: answers one offer (the parameters after `permessage-deflate`).
    ///
    /// `Ok(None)` declines a well-formed offer this configuration will not honour (a window below
    /// [`DeflateConfig::min_window_bits`]); try the client's next offer.
    ///
    /// # Errors
    /// A malformed offer (unknown or duplicate parameter, invalid value); RFC 7692 says to decline
    /// it, so treat the error like `Ok(None)` (and perhaps log it).
    pub fn accept_offer(
        &self,
        params: &[(&str, Option<&str>)],
    ) -> Result<Option<DeflateParams>, NegotiationError> {
        let offer = Parsed::parse(params, Side::Offer)?;
        let server_window = offer
            .server_max_window_bits
            .unwrap_or(15)
            .min(self.server_bits());
        if server_window < self.min_bits() {
            return Ok(None);
        }
        let (client_window, announce_client_window) = match offer.client_max_window_bits {
            // The client can take a limit: impose ours if it is below the client's own hint.
            Some(hint) => {
                let hint = hint.unwrap_or(15);
                let ours = self.client_bits();
                if ours < hint {
                    (ours, true)
                } else {
                    (hint, false)
                }
            }
            // The client cannot be limited; our decompressor takes any window anyway.
            None => (15, false),
        };
        Ok(Some(DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || self.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_window,
            client_max_window_bits: client_window,
            announce_server_window: offer.server_max_window_bits.is_some() || server_window < 15,
            announce_client_window,
            level: self.level.min(9),
            min_size: self.min_size,
        }))
    }

    /// Client side: checks the server's response against the offer [`DeflateConfig::client_offer`]
    /// made, and returns the parameters to use.
    ///
    /// # Errors
    /// A malformed response, a parameter the offer did not allow, a window above what was asked,
    /// or a missing confirmation of `server_no_context_takeover` / `server_max_window_bits`; the
    /// client must then fail the connection (RFC 7692 section 5).
    pub fn accept_response(
        &self,
        params: &[(&str, Option<&str>)],
    ) -> Result<DeflateParams, NegotiationError> {
        let resp = Parsed::parse(params, Side::Response)?;
        if self.server_no_context_takeover && !resp.server_no_context_takeover {
            return Err(NegotiationError::Missing(
                "server_no_context_takeover".into(),
            ));
        }
        let server_window = match resp.server_max_window_bits {
            Some(bits) if bits > self.server_bits() => {
                return Err(NegotiationError::Unrequested(
                    "server_max_window_bits".into(),
                ));
            }
            Some(bits) => bits,
            None if self.server_bits() < 15 => {
                return Err(NegotiationError::Missing("server_max_window_bits".into()));
            }
            None => 15,
        };
        let client_window = match resp.client_max_window_bits {
            Some(Some(bits)) if bits > self.client_bits() => {
                return Err(NegotiationError::Unrequested(
                    "client_max_window_bits".into(),
                ));
            }
            Some(Some(bits)) if bits < self.min_bits() => {
                return Err(NegotiationError::InvalidValue(
                    "client_max_window_bits".into(),
                ));
            }
            Some(Some(bits)) => bits,
            // Parsed::parse rejects a value-less client_max_window_bits in a response.
            Some(None) | None => self.client_bits(),
        };
        Ok(DeflateParams {
            server_no_context_takeover: resp.server_no_context_takeover,
            client_no_context_takeover: resp.client_no_context_takeover
                || self.client_no_context_takeover,
            server_max_window_bits: server_window,
            client_max_window_bits: client_window,
            announce_server_window: resp.server_max_window_bits.is_some(),
            announce_client_window: resp.client_max_window_bits.is_some(),
            level: self.level.min(9),
            min_size: self.min_size,
        })
    }
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            server_no_context_takeover: Self::DEFAULT_SERVER_NO_CONTEXT_TAKEOVER,
            client_no_context_takeover: Self::DEFAULT_CLIENT_NO_CONTEXT_TAKEOVER,
            server_max_window_bits: Self::DEFAULT_MAX_WINDOW_BITS,
            client_max_window_bits: Self::DEFAULT_MAX_WINDOW_BITS,
            min_window_bits: Self::DEFAULT_MIN_WINDOW_BITS,
            level: Self::DEFAULT_LEVEL,
            min_size: Self::DEFAULT_MIN_SIZE,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Offer,
    Response,
}

#[derive(Default)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// Outer Some: present; inner: its value.
    client_max_window_bits: Option<Option<u8>>,
}

/// RFC 7692 section 7.1.2: `%x38-39 / "1" %x30-35`, i.e. 8..=15 without leading zeros.
fn window_bits(name: &str, value: Option<&str>) -> Result<u8, NegotiationError> {
    match value {
        Some("8") => Ok(8),
        Some("9") => Ok(9),
        Some("10") => Ok(10),
        Some("11") => Ok(11),
        Some("12") => Ok(12),
        Some("13") => Ok(13),
        Some("14") => Ok(14),
        Some("15") => Ok(15),
        _ => Err(NegotiationError::InvalidValue(name.into())),
    }
}

impl Parsed {
    fn parse(params: &[(&str, Option<&str>)], side: Side) -> Result<Self, NegotiationError> {
        let mut p = Self::default();
        let mut seen = [false; 4];
        for &(name, value) in params {
            let index = match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return Err(NegotiationError::UnknownParameter(name.into())),
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(NegotiationError::DuplicateParameter(name.into()));
            }
            match index {
                0 | 1 => {
                    if value.is_some() {
                        return Err(NegotiationError::InvalidValue(name.into()));
                    }
                    if index == 0 {
                        p.server_no_context_takeover = true;
                    } else {
                        p.client_no_context_takeover = true;
                    }
                }
                2 => p.server_max_window_bits = Some(window_bits(name, value)?),
                _ => {
                    p.client_max_window_bits = Some(match (value, side) {
                        (None, Side::Offer) => None,
                        (value, _) => Some(window_bits(name, value)?),
                    });
                }
            }
        }
        Ok(p)
    }
}

/// The permessage-deflate parameters agreed for one connection, from
/// [`DeflateConfig::accept_offer`] (server) or [`DeflateConfig::accept_response`] (client).
/// Put it in [`crate::Config::deflate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    announce_server_window: bool,
    announce_client_window: bool,
    level: u8,
    min_size: usize,
}

impl Default for DeflateParams {
    /// Both directions compress with a 32 KiB window and keep their context: what a bare
    /// `permessage-deflate` offer and answer agree on.
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            announce_server_window: false,
            announce_client_window: false,
            level: DeflateConfig::DEFAULT_LEVEL,
            min_size: DeflateConfig::DEFAULT_MIN_SIZE,
        }
    }
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value a server answers with.
    #[must_use]
    pub fn response_value(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.announce_server_window {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.announce_client_window {
            s.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        s
    }

    /// Whether the server resets its compression context after each message.
    #[must_use]
    pub const fn server_no_context_takeover(&self) -> bool {
        self.server_no_context_takeover
    }

    /// Whether the client resets its compression context after each message.
    #[must_use]
    pub const fn client_no_context_takeover(&self) -> bool {
        self.client_no_context_takeover
    }

    /// The server's LZ77 window, in bits.
    #[must_use]
    pub const fn server_max_window_bits(&self) -> u8 {
        self.server_max_window_bits
    }

    /// The client's LZ77 window, in bits.
    #[must_use]
    pub const fn client_max_window_bits(&self) -> u8 {
        self.client_max_window_bits
    }

    /// Compression level used by this side.
    #[must_use]
    pub const fn level(&self) -> u8 {
        self.level
    }

    /// Messages shorter than this are sent uncompressed.
    #[must_use]
    pub const fn min_size(&self) -> usize {
        self.min_size
    }

    /// The same parameters with another compression level (0..=9, clamped). The level is a
    /// local choice that the peer never sees.
    #[must_use]
    pub fn with_level(mut self, level: u8) -> Self {
        self.level = level.min(9);
        self
    }

    /// The same parameters with another [`DeflateConfig::min_size`].
    #[must_use]
    pub fn with_min_size(mut self, min_size: usize) -> Self {
        self.min_size = min_size;
        self
    }
}

// The engine: zlib-rs when its feature is on (also when both are: cargo features add up, so
// the opt-in one wins), miniz_oxide otherwise. Each module has the same small surface:
// `NAME`, `MIN_NATIVE_WINDOW_BITS`, `Deflater` and `RawInflater`.
#[cfg(feature = "deflate-zlib-rs")]
#[path = "deflate/zlib_rs.rs"]
mod engine;

#[cfg(all(feature = "deflate-miniz", not(feature = "deflate-zlib-rs")))]
#[path = "deflate/miniz.rs"]
mod engine;

#[cfg(not(any(feature = "deflate-miniz", feature = "deflate-zlib-rs")))]
compile_error!(
    "ws-frame needs a deflate engine: enable feature `deflate-miniz` (the default) or \
     `deflate-zlib-rs`"
);

/// The deflate engine compiled in: `"miniz_oxide"` (feature `deflate-miniz`, the default) or
/// `"zlib-rs"` (feature `deflate-zlib-rs`, which wins when both features are enabled).
pub const BACKEND: &str = engine::NAME;

/// Smallest window (bits) the engine keeps by itself; for smaller negotiated windows the
/// compressor empties its dictionary every 2^bits input bytes (see the module docs).
pub const NATIVE_MIN_WINDOW_BITS: u8 = engine::MIN_NATIVE_WINDOW_BITS;

/// Flush modes the compressor uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    None,
    /// Byte-align and emit `00 00 ff ff`, keeping the dictionary.
    Sync,
    /// Like `Sync`, and empty the dictionary: nothing after it refers to what came before.
    Full,
}

/// One step of the raw inflater.
#[derive(Debug)]
struct Inflated {
    consumed: usize,
    written: usize,
    /// The stream ended (a final block).
    end: bool,
    /// No progress was possible with this input and output.
    stalled: bool,
    /// The engine holds output it could not write yet.
    more_output: bool,
}

/// The input is not a valid deflate stream.
#[derive(Debug)]
struct Corrupt;

/// Compresses outgoing messages for one direction of one connection.
pub(crate) struct Compressor {
    inner: engine::Deflater,
    /// 2^window_bits when the engine cannot keep that window itself: the dictionary is emptied
    /// every `window` input bytes.
    emulated_window: Option<usize>,
    /// Bytes compressed since the dictionary was last emptied.
    since_flush: usize,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("emulated_window", &self.emulated_window)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish_non_exhaustive()
    }
}

/// Failure of the compressor itself (an engine parameter or stream error).
#[derive(Debug)]
pub(crate) struct CompressError;

impl Compressor {
    pub(crate) fn new(level: u8, window_bits: u8, no_context_takeover: bool) -> Self {
        let bits = window_bits.clamp(8, 15);
        let native = bits >= NATIVE_MIN_WINDOW_BITS;
        Self {
            inner: engine::Deflater::new(level.min(9), bits.max(NATIVE_MIN_WINDOW_BITS)),
            emulated_window: (!native).then_some(1 << bits),
            since_flush: 0,
            no_context_takeover,
        }
    }

    /// Compresses one whole message into `out` (appending) and strips the sync-flush tail.
    pub(crate) fn compress(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), CompressError> {
        let end_flush = if self.no_context_takeover {
            Flush::Full
        } else {
            Flush::Sync
        };
        loop {
            let (piece, flush) = match self.emulated_window {
                None => (input, end_flush),
                Some(window) => {
                    let room = window - self.since_flush;
                    if input.len() >= room {
                        // Fill the window, then empty the dictionary: no match can reach past it.
                        (&input[..room], Flush::Full)
                    } else {
                        (input, end_flush)
                    }
                }
            };
            self.deflate(piece, flush, out)?;
            input = &input[piece.len()..];
            if flush == Flush::Full {
                self.since_flush = 0;
            } else {
                self.since_flush += piece.len();
            }
            if input.is_empty() {
                break;
            }
        }
        if out.ends_with(&SYNC_TAIL) {
            out.truncate(out.len() - SYNC_TAIL.len());
        }
        Ok(())
    }

    fn deflate(
        &mut self,
        mut input: &[u8],
        flush: Flush,
        out: &mut BytesMut,
    ) -> Result<(), CompressError> {
        loop {
            let start = out.len();
            let room = (input.len() + input.len() / 64 + 64).max(256);
            out.resize(start + room, 0);
            let result = self.inner.deflate(input, &mut out[start..], flush);
            let (consumed, written) = match result {
                Ok(step) => step,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            };
            out.truncate(start + written);
            input = &input[consumed..];
            // Without a flush, output may stay buffered in the compressor; with one, an output
            // slice that was not filled means the flush completed.
            if input.is_empty() && (flush == Flush::None || written < room) {
                return Ok(());
            }
        }
    }
}

/// Why inflating failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The output would exceed the limit.
    TooBig,
    /// Not a valid deflate stream.
    Corrupt,
}

/// Inflates incoming messages for one direction of one connection.
pub(crate) struct Inflater {
    state: engine::RawInflater,
    no_context_takeover: bool,
    /// The peer ended the deflate stream (BFINAL) inside the current message.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// Largest output slice handed to the decompressor at once.
const INFLATE_CHUNK: usize = 64 * 1024;

impl Inflater {
    pub(crate) fn new(no_context_takeover: bool) -> Self {
        Self {
            state: engine::RawInflater::new(),
            no_context_takeover,
            ended: false,
        }
    }

    /// Inflates one frame's payload of a compressed message, appending to `out` at most `limit`
    /// bytes (checked before every output chunk is reserved). `fin` marks the message's last
    /// frame: the sync tail is appended and the context is reset if negotiated.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        fin: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateError> {
        let base = out.len();
        let result = self.run(input, out, base, limit).and_then(|()| {
            if fin {
                self.run(&SYNC_TAIL, out, base, limit)
            } else {
                Ok(())
            }
        });
        if fin || result.is_err() {
            if self.no_context_takeover || self.ended || result.is_err() {
                self.state.reset();
            }
            self.ended = false;
        }
        result
    }

    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut BytesMut,
        base: usize,
        limit: usize,
    ) -> Result<(), InflateError> {
        if self.ended {
            // Data after a final block is ignored (RFC 7692 section 7.2.3.3's BFINAL case).
            return Ok(());
        }
        loop {
            let produced = out.len() - base;
            // One byte beyond the limit tells "exactly at the limit" from "over it".
            let allowance = (limit - produced.min(limit)) + 1;
            let spare = out.capacity() - out.len();
            let room = if spare >= 1024 {
                spare
            } else {
                (input.len() * 4).clamp(4096, INFLATE_CHUNK)
            }
            .min(INFLATE_CHUNK)
            .min(allowance);
            let start = out.len();
            out.resize(start + room, 0);
            let step = self.state.inflate(input, &mut out[start..]);
            let step = match step {
                Ok(step) => step,
                Err(Corrupt) => {
                    out.truncate(start);
                    return Err(InflateError::Corrupt);
                }
            };
            out.truncate(start + step.written);
            input = &input[step.consumed..];
            if out.len() - base > limit {
                return Err(InflateError::TooBig);
            }
            if step.end {
                self.ended = true;
                return Ok(());
            }
            if step.stalled {
                // No progress possible: fine once all input is consumed and all output delivered.
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(InflateError::Corrupt)
                };
            }
            let more_output = step.more_output || step.written == room;
            if input.is_empty() && !more_output {
                return Ok(());
            }
            if step.consumed == 0 && step.written == 0 {
                return Err(InflateError::Corrupt);
            }
        }
    }
}

/// Splits `value` like `permessage-deflate; a; b=1; c="2"` into the extension name and its
/// parameters. Only for tests and in-memory pairs: real handshakes use ws-http's parser.
#[doc(hidden)]
pub fn split_extension(value: &str) -> (&str, Vec<(&str, Option<&str>)>) {
    let mut parts = value.split(';').map(str::trim);
    let name = parts.next().unwrap_or("");
    let params = parts
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        })
        .collect();
    (name, params)
}

/// Runs a whole negotiation in memory: `client`'s offer, `server`'s answer, the client's check.
/// Returns `(client_params, server_params)`, or `Ok(None)` when the server declines.
///
/// # Errors
/// Whatever [`DeflateConfig::accept_offer`] or [`DeflateConfig::accept_response`] reports.
#[doc(hidden)]
pub fn negotiate_in_memory(
    client: &DeflateConfig,
    server: &DeflateConfig,
) -> Result<Option<(DeflateParams, DeflateParams)>, NegotiationError> {
    let offer = client.client_offer();
    let (_, offered) = split_extension(&offer);
    let Some(server_params) = server.accept_offer(&offered)? else {
        return Ok(None);
    };
    let response = server_params.response_value();
    let (_, answered) = split_extension(&response);
    let client_params = client.accept_response(&answered)?;
    Ok(Some((client_params, server_params)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use miniz_oxide::inflate::{
        TINFLStatus,
        core::{DecompressorOxide, decompress, inflate_flags},
    };

    fn compress_msg(c: &mut Compressor, data: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        c.compress(data, &mut out).unwrap();
        out.to_vec()
    }

    fn inflate_msg(i: &mut Inflater, data: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = BytesMut::new();
        i.inflate(data, true, &mut out, limit)?;
        Ok(out.to_vec())
    }

    /// Inflates a stream (with sync tails appended per message) through a circular output buffer
    /// of exactly 2^bits bytes: any match distance beyond the window reads the wrong bytes.
    fn inflate_with_window(messages: &[Vec<u8>], bits: u8) -> Vec<u8> {
        let size = 1usize << bits;
        let mut d = DecompressorOxide::new();
        let mut window = vec![0u8; size];
        let mut pos = 0;
        let mut result = Vec::new();
        for msg in messages {
            let mut input = msg.clone();
            input.extend_from_slice(&SYNC_TAIL);
            let mut rest = &input[..];
            loop {
                let (status, consumed, written) = decompress(
                    &mut d,
                    rest,
                    &mut window,
                    pos,
                    inflate_flags::TINFL_FLAG_HAS_MORE_INPUT,
                );
                result.extend_from_slice(&window[pos..pos + written]);
                pos = (pos + written) & (size - 1);
                rest = &rest[consumed..];
                assert!((status as i32) >= 0, "status {status:?}");
                if rest.is_empty() && status != TINFLStatus::HasMoreOutput {
                    break;
                }
            }
        }
        result
    }

    fn sample(len: usize, seed: u32) -> Vec<u8> {
        // Text-like data with repeats at many distances.
        let mut x = seed;
        let words = [
            "alpha ",
            "beta ",
            "gamma ",
            "delta ",
            "{\"id\":",
            "},",
            "websocket ",
            "x",
        ];
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if x >> 28 == 0 {
                out.push((x >> 8) as u8);
            } else {
                out.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn rfc7692_7_2_3_1_hello_compresses_to_the_rfc_bytes() {
        // The RFC shows the output of a default zlib; inflating the RFC bytes must give "Hello",
        // and so must inflating what our compressor makes of it.
        let mut i = Inflater::new(false);
        let rfc = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_msg(&mut i, &rfc, 100).unwrap(), b"Hello");
        let mut c = Compressor::new(1, 15, false);
        let ours = compress_msg(&mut c, b"Hello");
        assert_eq!(
            inflate_msg(&mut Inflater::new(false), &ours, 100).unwrap(),
            b"Hello"
        );
    }

    #[test]
    fn rfc7692_7_2_3_2_shared_context_second_message() {
        let mut i = Inflater::new(false);
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(inflate_msg(&mut i, &first, 100).unwrap(), b"Hello");
        assert_eq!(inflate_msg(&mut i, &second, 100).unwrap(), b"Hello");
    }

    #[test]
    fn rfc7692_7_2_3_3_no_compression_block() {
        let mut i = Inflater::new(false);
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_msg(&mut i, &stored, 100).unwrap(), b"Hello");
    }

    #[test]
    fn rfc7692_7_2_3_4_bfinal_block_then_next_message() {
        // "Hello" in a final fixed-Huffman block, followed by the tail the receiver appends.
        let mut i = Inflater::new(false);
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_msg(&mut i, &fin, 100).unwrap(), b"Hello");
        // The stream ended, so the next message starts a fresh one.
        let next = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_msg(&mut i, &next, 100).unwrap(), b"Hello");
    }

    #[test]
    fn rfc7692_7_2_3_5_two_deflate_blocks_in_one_message() {
        let mut i = Inflater::new(false);
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate_msg(&mut i, &two, 100).unwrap(), b"Hello");
    }

    #[test]
    fn compressed_empty_message() {
        let mut i = Inflater::new(false);
        assert_eq!(inflate_msg(&mut i, &[0x00], 100).unwrap(), b"");
        let mut c = Compressor::new(1, 15, false);
        let empty = compress_msg(&mut c, b"");
        assert_eq!(inflate_msg(&mut i, &empty, 100).unwrap(), b"");
    }

    #[test]
    fn context_takeover_makes_the_repeat_smaller_and_round_trips() {
        let mut c = Compressor::new(1, 15, false);
        let mut i = Inflater::new(false);
        let msg = sample(2000, 1);
        let first = compress_msg(&mut c, &msg);
        let second = compress_msg(&mut c, &msg);
        assert!(
            second.len() < first.len() / 4,
            "{} vs {}",
            second.len(),
            first.len()
        );
        assert_eq!(inflate_msg(&mut i, &first, 10_000).unwrap(), msg);
        assert_eq!(inflate_msg(&mut i, &second, 10_000).unwrap(), msg);
    }

    #[test]
    fn no_context_takeover_messages_inflate_independently() {
        let mut c = Compressor::new(6, 15, true);
        let msg = sample(3000, 2);
        let first = compress_msg(&mut c, &msg);
        let second = compress_msg(&mut c, &msg);
        assert!(
            second.len() * 10 > first.len() * 9,
            "second message used the first as context"
        );
        // A fresh inflater per message works, proving no reference to the previous message.
        assert_eq!(
            inflate_msg(&mut Inflater::new(false), &second, 10_000).unwrap(),
            msg
        );
    }

    #[test]
    fn every_window_size_keeps_distances_inside_the_window() {
        for bits in 8..=15u8 {
            for no_ctx in [false, true] {
                let mut c = Compressor::new(6, bits, no_ctx);
                let msgs: Vec<Vec<u8>> = (0..6).map(|k| sample(100 + k * 3000, k as u32)).collect();
                let compressed: Vec<Vec<u8>> =
                    msgs.iter().map(|m| compress_msg(&mut c, m)).collect();
                let expected: Vec<u8> = msgs.concat();
                let window_bits = bits.max(9); // the checker's circular buffer is at least 512 bytes
                let got = inflate_with_window(&compressed, window_bits);
                assert!(
                    got == expected,
                    "bits {bits} no_ctx {no_ctx}: window violated"
                );
                if bits == 8 {
                    assert_eq!(
                        inflate_with_window(&compressed, 8),
                        expected,
                        "256-byte window"
                    );
                }
            }
        }
    }

    #[test]
    fn small_windows_still_compress() {
        let msg = sample(64 * 1024, 9);
        let mut c = Compressor::new(1, 9, false);
        let out = compress_msg(&mut c, &msg);
        assert!(
            out.len() < msg.len() * 3 / 4,
            "{} of {}",
            out.len(),
            msg.len()
        );
    }

    #[test]
    fn inflate_stops_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        let mut c = Compressor::new(1, 15, false);
        let z = compress_msg(&mut c, &zeros);
        // A bomb: miniz_oxide makes about 1 KiB of it, zlib-rs's level 1 (static Huffman
        // codes) about 10 KiB.
        assert!(z.len() < 16 * 1024, "{}", z.len());
        let mut out = BytesMut::new();
        let mut i = Inflater::new(false);
        assert_eq!(
            i.inflate(&z, true, &mut out, 1000),
            Err(InflateError::TooBig)
        );
        assert!(out.capacity() < 8 * 1024, "capacity {}", out.capacity());
        // Exactly at the limit passes.
        let mut i = Inflater::new(false);
        assert_eq!(inflate_msg(&mut i, &z, 1 << 20).unwrap().len(), 1 << 20);
        let mut i = Inflater::new(false);
        assert_eq!(
            inflate_msg(&mut i, &z, (1 << 20) - 1),
            Err(InflateError::TooBig)
        );
    }

    #[test]
    fn corrupt_input_fails() {
        let mut i = Inflater::new(false);
        // BTYPE 11 is reserved.
        assert_eq!(
            inflate_msg(&mut i, &[0xff, 0xff, 0xff], 100),
            Err(InflateError::Corrupt)
        );
    }

    #[test]
    fn inflate_across_frames_in_any_split() {
        let msg = sample(5000, 4);
        let mut c = Compressor::new(1, 15, false);
        let z = compress_msg(&mut c, &msg);
        for cut in [0, 1, 7, z.len() / 2, z.len() - 1, z.len()] {
            let mut i = Inflater::new(false);
            let mut out = BytesMut::new();
            i.inflate(&z[..cut], false, &mut out, 10_000).unwrap();
            i.inflate(&z[cut..], true, &mut out, 10_000).unwrap();
            assert_eq!(&out[..], &msg[..], "cut {cut}");
        }
    }

    fn params(
        list: &[(&'static str, Option<&'static str>)],
    ) -> Vec<(&'static str, Option<&'static str>)> {
        list.to_vec()
    }

    #[test]
    fn server_accepts_a_bare_offer() {
        let p = DeflateConfig::default().accept_offer(&[]).unwrap().unwrap();
        assert_eq!(p.response_value(), "permessage-deflate");
        assert_eq!(
            (p.server_max_window_bits(), p.client_max_window_bits()),
            (15, 15)
        );
        assert!(!p.server_no_context_takeover() && !p.client_no_context_takeover());
    }

    #[test]
    fn server_honours_requested_window_and_no_context_takeover() {
        let offer = params(&[
            ("server_no_context_takeover", None),
            ("server_max_window_bits", Some("8")),
            ("client_max_window_bits", None),
        ]);
        let p = DeflateConfig::default()
            .accept_offer(&offer)
            .unwrap()
            .unwrap();
        assert!(p.server_no_context_takeover());
        assert_eq!(p.server_max_window_bits(), 8);
        assert_eq!(
            p.response_value(),
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=8"
        );
    }

    #[test]
    fn server_limits_the_client_window_only_when_offered() {
        let cfg = DeflateConfig {
            client_max_window_bits: 10,
            ..DeflateConfig::default()
        };
        let p = cfg
            .accept_offer(&params(&[("client_max_window_bits", None)]))
            .unwrap()
            .unwrap();
        assert_eq!(p.client_max_window_bits(), 10);
        assert_eq!(
            p.response_value(),
            "permessage-deflate; client_max_window_bits=10"
        );
        let p = cfg.accept_offer(&[]).unwrap().unwrap();
        assert_eq!(p.client_max_window_bits(), 15);
        assert_eq!(p.response_value(), "permessage-deflate");
    }

    #[test]
    fn server_declines_windows_below_its_floor() {
        let cfg = DeflateConfig {
            min_window_bits: 10,
            ..DeflateConfig::default()
        };
        assert_eq!(
            cfg.accept_offer(&params(&[("server_max_window_bits", Some("9"))])),
            Ok(None)
        );
        assert!(
            cfg.accept_offer(&params(&[("server_max_window_bits", Some("10"))]))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn malformed_offers_are_errors() {
        let cfg = DeflateConfig::default();
        let cases = [
            params(&[("foo", None)]),
            params(&[
                ("server_no_context_takeover", None),
                ("server_no_context_takeover", None),
            ]),
            params(&[("server_no_context_takeover", Some("1"))]),
            params(&[("server_max_window_bits", None)]),
            params(&[("server_max_window_bits", Some("7"))]),
            params(&[("server_max_window_bits", Some("16"))]),
            params(&[("server_max_window_bits", Some("08"))]),
            params(&[("client_max_window_bits", Some("abc"))]),
        ];
        for case in cases {
            assert!(cfg.accept_offer(&case).is_err(), "{case:?}");
        }
    }

    #[test]
    fn client_offer_text() {
        assert_eq!(
            DeflateConfig::default().client_offer(),
            "permessage-deflate; client_max_window_bits"
        );
        let cfg = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            ..DeflateConfig::default()
        };
        assert_eq!(
            cfg.client_offer(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        );
    }

    #[test]
    fn client_checks_the_response() {
        let cfg = DeflateConfig {
            server_max_window_bits: 10,
            server_no_context_takeover: true,
            ..DeflateConfig::default()
        };
        let ok = cfg
            .accept_response(&params(&[
                ("server_no_context_takeover", None),
                ("server_max_window_bits", Some("9")),
            ]))
            .unwrap();
        assert_eq!(ok.server_max_window_bits(), 9);
        assert!(ok.server_no_context_takeover());
        assert_eq!(
            cfg.accept_response(&params(&[("server_max_window_bits", Some("9"))])),
            Err(NegotiationError::Missing(
                "server_no_context_takeover".into()
            ))
        );
        assert!(matches!(
            cfg.accept_response(&params(&[
                ("server_no_context_takeover", None),
                ("server_max_window_bits", Some("11"))
            ])),
            Err(NegotiationError::Unrequested(_))
        ));
        assert!(matches!(
            cfg.accept_response(&params(&[("server_no_context_takeover", None)])),
            Err(NegotiationError::Missing(_))
        ));
        let default = DeflateConfig::default();
        let p = default
            .accept_response(&params(&[("client_max_window_bits", Some("8"))]))
            .unwrap();
        assert_eq!(p.client_max_window_bits(), 8);
        assert!(
            default
                .accept_response(&params(&[("client_max_window_bits", None)]))
                .is_err()
        );
    }

    #[test]
    fn in_memory_negotiation_agrees_on_both_sides() {
        let client = DeflateConfig {
            client_no_context_takeover: true,
            server_max_window_bits: 12,
            ..DeflateConfig::default()
        };
        let server = DeflateConfig::default();
        let (c, s) = negotiate_in_memory(&client, &server).unwrap().unwrap();
        assert_eq!(c.server_max_window_bits(), 12);
        assert_eq!(s.server_max_window_bits(), 12);
        assert!(c.client_no_context_takeover() && s.client_no_context_takeover());
    }
}
