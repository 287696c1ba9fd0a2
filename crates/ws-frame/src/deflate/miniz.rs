//! The miniz_oxide engine (feature `deflate-miniz`, the default).

use miniz_oxide::{
    DataFormat, MZError, MZFlush, MZStatus,
    deflate::core::{CompressorOxide, create_comp_flags_from_zip_params},
    inflate::{
        TINFLStatus,
        stream::{InflateState, MinReset},
    },
};

use super::{CompressError, Corrupt, Flush, Inflated};

/// The engine's name, as [`super::BACKEND`] reports it.
pub(super) const NAME: &str = "miniz_oxide";

/// `CompressorOxide` finds matches up to 32 KiB back whatever window it is given, so the only
/// window it keeps by itself is 15 bits; smaller ones are kept by the caller.
pub(super) const MIN_NATIVE_WINDOW_BITS: u8 = 15;

/// Raw deflate compressor.
pub(super) struct Deflater(Box<CompressorOxide>);

impl Deflater {
    pub(super) fn new(level: u8, _window_bits: u8) -> Self {
        // Negative window bits: raw deflate without a zlib wrapper.
        let flags = create_comp_flags_from_zip_params(i32::from(level.min(9)), -15, 0);
        Self(Box::new(CompressorOxide::new(flags)))
    }

    /// Compresses from `input` into `output`: `(consumed, written)`.
    pub(super) fn deflate(
        &mut self,
        input: &[u8],
        output: &mut [u8],
        flush: Flush,
    ) -> Result<(usize, usize), CompressError> {
        let flush = match flush {
            Flush::None => MZFlush::None,
            Flush::Sync => MZFlush::Sync,
            Flush::Full => MZFlush::Full,
        };
        let res = miniz_oxide::deflate::stream::deflate(&mut self.0, input, output, flush);
        match res.status {
            Ok(_) => Ok((res.bytes_consumed, res.bytes_written)),
            // No progress possible (nothing left to flush): not an error.
            Err(MZError::Buf) => Ok((res.bytes_consumed, res.bytes_written)),
            Err(_) => Err(CompressError),
        }
    }
}

/// Raw deflate decompressor with a 32 KiB window (takes streams made with any window).
pub(super) struct RawInflater(Box<InflateState>);

impl RawInflater {
    pub(super) fn new() -> Self {
        Self(InflateState::new_boxed(DataFormat::Raw))
    }

    /// Inflates from `input` into `output`.
    pub(super) fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> Result<Inflated, Corrupt> {
        let res = miniz_oxide::inflate::stream::inflate(&mut self.0, input, output, MZFlush::None);
        let (end, stalled) = match res.status {
            Ok(MZStatus::StreamEnd) => (true, false),
            Ok(_) => (false, false),
            Err(MZError::Buf) => (false, true),
            Err(_) => return Err(Corrupt),
        };
        Ok(Inflated {
            consumed: res.bytes_consumed,
            written: res.bytes_written,
            end,
            stalled,
            more_output: self.0.last_status() == TINFLStatus::HasMoreOutput,
        })
    }

    /// Back to the start of a new stream with an empty window.
    pub(super) fn reset(&mut self) {
        self.0.reset_as(MinReset);
    }
}
