//! Limits and behaviour of a [`crate::Connection`].

use std::time::Duration;

use crate::{deflate::DeflateParams, error::ConfigError, message::FragmentMode};

/// Limits and behaviour of one [`crate::Connection`]. Every limit is checked before the
/// allocation it protects.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest accepted frame payload in bytes (compressed size for compressed frames); a larger
    /// announced length fails the connection with 1009 before anything is allocated. At least
    /// 125 and at most `max_message`. Default: [`Config::DEFAULT_MAX_FRAME`] (16 MiB).
    pub max_frame: usize,
    /// Largest accepted message in bytes, after reassembly and inflation; inflation stops at the
    /// first chunk beyond it. Default: [`Config::DEFAULT_MAX_MESSAGE`] (64 MiB).
    pub max_message: usize,
    /// Most frames one message may be split into; one more fails the connection with 1009.
    /// Default: [`Config::DEFAULT_MAX_FRAGMENTS`] (65 537).
    pub max_fragments: usize,
    /// Longest time a fragmented message may stay unfinished, counted from its first frame;
    /// past it the connection fails with 1008 and the reason "fragmented message not finished
    /// within ...". The deadline is a timer of this connection: it starts at the first
    /// [`crate::Connection::handle_timeout`] after the first fragment (see
    /// [`crate::Connection::wants_now`]), so a runtime that never passes the time leaves it
    /// unarmed. `None` waits forever. Default: [`Config::DEFAULT_MESSAGE_TIMEOUT`] (60 s).
    pub message_timeout: Option<Duration>,
    /// Most consecutive frames without message data (control frames and empty fragments)
    /// accepted while a fragmented message is open; more fail the connection with 1008.
    /// Default: [`Config::DEFAULT_MAX_EMPTY_FRAMES`] (1024).
    pub max_empty_frames: usize,
    /// How fragmented messages are delivered. Default: [`FragmentMode::Buffer`].
    pub fragment_mode: FragmentMode,
    /// Check text as it arrives and fail at the first invalid byte (1007). When false, fragments
    /// delivered as [`crate::Event::Fragment`] are not checked at all; a reassembled text message
    /// is still checked once, because [`crate::Utf8Bytes`] is always valid UTF-8.
    /// Default: [`Config::DEFAULT_VALIDATE_UTF8`] (true).
    pub validate_utf8: bool,
    /// Answer every ping with a pong carrying its payload. Default:
    /// [`Config::DEFAULT_AUTO_PONG`] (true).
    pub auto_pong: bool,
    /// How long [`crate::Connection::close`] waits for the peer's Close frame. Default:
    /// [`Config::DEFAULT_CLOSE_TIMEOUT`] (5 s).
    pub close_timeout: Duration,
    /// Split outgoing messages into frames of at most this many payload bytes. Default:
    /// `None` (one frame per message).
    pub fragment_size: Option<usize>,
    /// Server only, for tests: accept unmasked client frames (RFC 6455 requires failing the
    /// connection). Default: false.
    pub accept_unmasked_from_client: bool,
    /// Client only, for tests: accept masked server frames (RFC 6455 requires failing the
    /// connection). Default: false.
    pub accept_masked_from_server: bool,
    /// Negotiated permessage-deflate parameters; `None` when the extension is not in use.
    /// Default: `None`.
    pub deflate: Option<DeflateParams>,
    /// Tests only: use this masking key for every client frame instead of random keys.
    #[doc(hidden)]
    pub fixed_mask_key: Option<[u8; 4]>,
}

impl Config {
    /// Default of [`Config::max_frame`]: 16 MiB.
    pub const DEFAULT_MAX_FRAME: usize = 16 << 20;
    /// Default of [`Config::max_message`]: 64 MiB.
    pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
    /// Default of [`Config::max_fragments`]: 65 537 (2^16 + 1).
    ///
    /// The most any peer we test against needs: Autobahn|Testsuite's largest fragmented
    /// messages (cases 9.3.1 and 9.4.1) are 4 MiB sent in 64-byte fragments, 65 536 frames
    /// plus an empty final one (its fragmenting loop ends a message whose length is a multiple
    /// of the fragment size with an empty FIN frame): 65 537 frames. 2^16 fails both cases with
    /// 1009; everything else Autobahn sends uses at most 513 (12.x/13.x: 128 KiB in 256-byte
    /// fragments).
    /// Cases 9.5.x and 9.6.x send 1 MiB as one frame cut into small TCP writes, which is not
    /// fragmentation. A full 64 MiB message then needs fragments of at least 1 KiB.
    pub const DEFAULT_MAX_FRAGMENTS: usize = (1 << 16) + 1;
    /// Default of [`Config::message_timeout`]: 60 s.
    ///
    /// A fragmented message normally finishes as fast as its bytes arrive: Autobahn's slowest
    /// fragmented cases (9.3.1 and 9.4.1, 65 537 fragments) take a few seconds on loopback,
    /// and 60 s lets a message of the default 64 MiB maximum through at about 9 Mbit/s. A peer
    /// that keeps a message open longer holds the server's memory for nothing.
    pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
    /// Default of [`Config::max_empty_frames`].
    pub const DEFAULT_MAX_EMPTY_FRAMES: usize = 1024;
    /// Default of [`Config::validate_utf8`].
    pub const DEFAULT_VALIDATE_UTF8: bool = true;
    /// Default of [`Config::auto_pong`].
    pub const DEFAULT_AUTO_PONG: bool = true;
    /// Default of [`Config::close_timeout`].
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

    /// Checks the invariants [`crate::Connection::new`] relies on.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame < 125 {
            return Err(ConfigError::MaxFrameTooSmall);
        }
        if self.max_frame > self.max_message {
            return Err(ConfigError::FrameExceedsMessage);
        }
        if self.max_fragments == 0 {
            return Err(ConfigError::NoFragments);
        }
        if self.fragment_size == Some(0) {
            return Err(ConfigError::ZeroFragmentSize);
        }
        if self.message_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::ZeroMessageTimeout);
        }
        Ok(())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame: Self::DEFAULT_MAX_FRAME,
            max_message: Self::DEFAULT_MAX_MESSAGE,
            max_fragments: Self::DEFAULT_MAX_FRAGMENTS,
            message_timeout: Some(Self::DEFAULT_MESSAGE_TIMEOUT),
            max_empty_frames: Self::DEFAULT_MAX_EMPTY_FRAMES,
            fragment_mode: FragmentMode::Buffer,
            validate_utf8: Self::DEFAULT_VALIDATE_UTF8,
            auto_pong: Self::DEFAULT_AUTO_PONG,
            close_timeout: Self::DEFAULT_CLOSE_TIMEOUT,
            fragment_size: None,
            accept_unmasked_from_client: false,
            accept_masked_from_server: false,
            deflate: None,
            fixed_mask_key: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid_and_matches_constants() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.max_frame, 16 * 1024 * 1024);
        assert_eq!(c.max_message, 64 * 1024 * 1024);
        assert_eq!(c.close_timeout, Duration::from_secs(5));
        assert_eq!(c.max_fragments, 65_537);
        assert_eq!(c.message_timeout, Some(Duration::from_secs(60)));
        assert!(c.validate_utf8 && c.auto_pong && c.deflate.is_none());
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let cases = [
            (
                Config {
                    max_frame: 124,
                    ..Config::default()
                },
                ConfigError::MaxFrameTooSmall,
            ),
            (
                Config {
                    max_frame: 2000,
                    max_message: 1000,
                    ..Config::default()
                },
                ConfigError::FrameExceedsMessage,
            ),
            (
                Config {
                    max_fragments: 0,
                    ..Config::default()
                },
                ConfigError::NoFragments,
            ),
            (
                Config {
                    fragment_size: Some(0),
                    ..Config::default()
                },
                ConfigError::ZeroFragmentSize,
            ),
            (
                Config {
                    message_timeout: Some(Duration::ZERO),
                    ..Config::default()
                },
                ConfigError::ZeroMessageTimeout,
            ),
        ];
        for (config, error) in cases {
            assert_eq!(config.validate(), Err(error));
        }
    }
}
