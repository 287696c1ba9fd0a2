//! The zlib-rs engine (feature `deflate-zlib-rs`), through zlib-rs's safe API.

use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush, Status};

use super::{CompressError, Corrupt, Flush, Inflated};

/// The engine's name, as [`super::BACKEND`] reports it.
pub(super) const NAME: &str = "zlib-rs";

/// zlib keeps windows of 9 to 15 bits itself (it refuses 8 for raw deflate, as zlib does).
pub(super) const MIN_NATIVE_WINDOW_BITS: u8 = 9;

/// Raw deflate compressor.
pub(super) struct Deflater(Deflate);

impl Deflater {
    /// `window_bits` must be 9..=15 (zlib-rs panics otherwise).
    pub(super) fn new(level: u8, window_bits: u8) -> Self {
        let bits = window_bits.clamp(MIN_NATIVE_WINDOW_BITS, 15);
        Self(Deflate::new(i32::from(level.min(9)), false, bits))
    }

    /// Compresses from `input` into `output`: `(consumed, written)`.
    pub(super) fn deflate(
        &mut self,
        input: &[u8],
        output: &mut [u8],
        flush: Flush,
    ) -> Result<(usize, usize), CompressError> {
        let flush = match flush {
            Flush::None => DeflateFlush::NoFlush,
            Flush::Sync => DeflateFlush::SyncFlush,
            Flush::Full => DeflateFlush::FullFlush,
        };
        let (in_before, out_before) = (self.0.total_in(), self.0.total_out());
        // BufError means no progress was possible (nothing left to flush): not an error.
        self.0
            .compress(input, output, flush)
            .map_err(|_| CompressError)?;
        Ok((
            usize::try_from(self.0.total_in() - in_before).map_err(|_| CompressError)?,
            usize::try_from(self.0.total_out() - out_before).map_err(|_| CompressError)?,
        ))
    }
}

/// Raw deflate decompressor with a 32 KiB window (takes streams made with any window).
pub(super) struct RawInflater(Inflate);

impl RawInflater {
    pub(super) fn new() -> Self {
        Self(Inflate::new(false, 15))
    }

    /// Inflates from `input` into `output`.
    pub(super) fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> Result<Inflated, Corrupt> {
        let (in_before, out_before) = (self.0.total_in(), self.0.total_out());
        let status = self
            .0
            .decompress(input, output, InflateFlush::NoFlush)
            .map_err(|_| Corrupt)?;
        let consumed = usize::try_from(self.0.total_in() - in_before).map_err(|_| Corrupt)?;
        let written = usize::try_from(self.0.total_out() - out_before).map_err(|_| Corrupt)?;
        Ok(Inflated {
            consumed,
            written,
            end: status == Status::StreamEnd,
            stalled: status == Status::BufError,
            // zlib keeps no pending output of its own: a full output slice is the only sign.
            more_output: false,
        })
    }

    /// Back to the start of a new stream; the window allocation is kept.
    pub(super) fn reset(&mut self) {
        self.0.reset(false);
    }
}
