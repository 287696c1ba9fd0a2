//! The crate's one configuration struct.

use std::time::Duration;

use crate::error::Error;

/// Settings of both ends of a transfer (and of the tus door). Every field has a documented
/// default; [`Config::validate`] checks a changed one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Chunk size this side sends with, in bytes (the seeds' `BufferSize`). Default 64 KiB
    /// (256 KiB measured no faster on the benchmark machine; `max_chunk` allows up to 1 MiB).
    pub chunk: u32,
    /// Largest chunk this side accepts in an offer (receiver). Default 1 MiB; at most 16 MiB.
    pub max_chunk: u32,
    /// Largest file this side accepts (receiver, both doors). Default 64 GiB.
    pub max_file_size: u64,
    /// Longest user `data` string accepted in an offer, in bytes. Default 4096.
    pub max_data: usize,
    /// Longest channel name accepted in an offer, in bytes. Default 256.
    pub max_channel: usize,
    /// Concurrent incoming transfers per connection. Default 16.
    pub max_transfers: usize,
    /// Flow-control window in chunks: unacknowledged chunks at QoS 1, credit at QoS 2
    /// (receiver). Default 16.
    pub window: u32,
    /// QoS 2: a receiver waiting this long for an outstanding chunk asks for it again (the
    /// seeds' `QoS.Interval`). Default 2 s.
    pub interval: Duration,
    /// A transfer with no message from the peer for this long ends with a timeout error, on
    /// both sides (the seeds' `QoS.Timeout`). Default 30 s.
    pub timeout: Duration,
    /// Keep a partial file when its connection ends, so that the sender can resume it later;
    /// `false` is the seeds' `ClearReceivedStreamsOnDisconnect`. Default true.
    pub keep_partial_on_disconnect: bool,
    /// Keep a partial file after an error (a timeout, a full disk), for a later resume.
    /// A checksum mismatch or a `cancel` always removes it. Default true.
    pub keep_partial_on_error: bool,
    /// Overwrite an existing file of the same name instead of adding ` (n)`. Default false.
    pub overwrite: bool,
    /// Receiving, on both doors: a file with 4 MiB or more still to come (on the tus door, a
    /// PATCH body of 4 MiB or more) is written with
    /// direct I/O (`O_DIRECT`, Linux) in 1 MiB aligned blocks by a second thread, bypassing the
    /// page cache, where the file system takes it (it falls back to the page cache by itself
    /// otherwise). Copying into page-cache pages was most of the receiving server's CPU on the
    /// benchmark machine. `false` keeps received files in the page cache (for instance when
    /// they are read again right away). Default true; no effect on other platforms.
    pub direct_io: bool,
    /// How long an unfinished tus upload lives (expiration extension). Default 24 h.
    pub tus_expiry: Duration,
    /// URL path prefix of the tus door, with the trailing slash. Default `/files/`.
    pub tus_path: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            chunk: 64 * 1024,
            max_chunk: 1 << 20,
            max_file_size: 64 << 30,
            max_data: 4096,
            max_channel: 256,
            max_transfers: 16,
            window: 16,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(30),
            keep_partial_on_disconnect: true,
            keep_partial_on_error: true,
            overwrite: false,
            direct_io: true,
            tus_expiry: Duration::from_secs(24 * 3600),
            tus_path: "/files/".into(),
        }
    }
}

impl Config {
    /// Largest accepted `max_chunk` (the default WebSocket frame limit).
    pub const MAX_CHUNK_LIMIT: u32 = 16 << 20;

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.into()));
        if self.chunk == 0 || self.chunk > Self::MAX_CHUNK_LIMIT {
            return bad("chunk must be between 1 byte and 16 MiB");
        }
        if self.max_chunk == 0 || self.max_chunk > Self::MAX_CHUNK_LIMIT {
            return bad("max_chunk must be between 1 byte and 16 MiB");
        }
        if self.window == 0 {
            return bad("window must be at least 1");
        }
        if self.max_transfers == 0 {
            return bad("max_transfers must be at least 1");
        }
        if self.interval.is_zero() || self.timeout.is_zero() {
            return bad("interval and timeout must be positive");
        }
        if self.interval > self.timeout {
            return bad("interval must not exceed timeout");
        }
        if !self.tus_path.starts_with('/') || !self.tus_path.ends_with('/') {
            return bad("tus_path must start and end with /");
        }
        Ok(())
    }

    /// The default settings with another chunk size, validated.
    ///
    /// # Errors
    /// As [`Config::validate`].
    pub fn with_chunk(chunk: u32) -> Result<Self, Error> {
        let c = Self {
            chunk,
            ..Self::default()
        };
        c.validate()?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        Config::default().validate().unwrap();
        assert!(Config::with_chunk(0).is_err());
        assert!(Config::with_chunk(17 << 20).is_err());
        let c = Config {
            interval: Duration::from_secs(60),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let c = Config {
            window: 0,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
