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
    /// How long [`crate::Connection::close`] waits for the peer's Close frame, and how long a
    /// client waits for the server to close TCP after a close handshake the server started.
    /// Not zero. Default: [`Config::DEFAULT_CLOSE_TIMEOUT`] (5 s).
    pub close_timeout: Duration,
    /// Keep-alive pings and the pong deadline, timers of this connection (see [`Heartbeat`]).
    /// They start at the first [`crate::Connection::handle_timeout`] (see
    /// [`crate::Connection::wants_now`]). Default: `None` (no pings).
    pub heartbeat: Option<Heartbeat>,
    /// Close the connection (1000, "idle timeout", then the close handshake) when nothing was
    /// received for this long. Checked four times per period, so it fires between 1 and 1.25
    /// times the setting after the last received byte; a runtime that paused reading (see
    /// [`crate::Connection::set_read_paused`]) counts as active. Not zero. Default: `None`.
    pub idle_timeout: Option<Duration>,
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
        if self.close_timeout.is_zero() {
            return Err(ConfigError::ZeroCloseTimeout);
        }
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::ZeroIdleTimeout);
        }
        if let Some(hb) = &self.heartbeat {
            hb.validate()?;
        }
        Ok(())
    }
}

/// Keep-alive pings (the seeds' `HeartBeat`): every `interval` the connection queues an empty
/// ping and, with a `timeout`, fails with [`crate::Error::PongTimeout`] when nothing at all
/// (a pong or any other frame) arrives within `timeout` of it. No Close frame is sent then:
/// the peer is taken for gone and the runtime drops the transport. The one heartbeat setting
/// of the workspace: ws-server and ws-client re-export it.
///
/// ```
/// use std::time::Duration;
/// use ws_frame::{Config, Heartbeat};
///
/// let mut config = Config::default();
/// config.heartbeat = Some(Heartbeat::new(Duration::from_secs(20), Duration::from_secs(5)));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Heartbeat {
    /// Time between pings; the first goes out one interval after the timers start. Not zero.
    /// Default: [`Heartbeat::DEFAULT_INTERVAL`] (30 s).
    pub interval: Duration,
    /// How long to wait for the peer after a ping before giving it up; `None`: never. Not
    /// zero. Default: [`Heartbeat::DEFAULT_TIMEOUT`] (10 s).
    pub timeout: Option<Duration>,
    /// Skip the ping when something arrived during the last interval
    /// (`hbtOnlyIfNoMsgRcvInterval`). Default: false.
    pub only_if_idle: bool,
}

impl Heartbeat {
    /// Default of [`Heartbeat::interval`].
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
    /// Default of [`Heartbeat::timeout`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A heartbeat with the given interval and pong timeout (a `Duration`, `Some(..)` or
    /// `None` for no deadline).
    #[must_use]
    pub fn new(interval: Duration, timeout: impl Into<Option<Duration>>) -> Self {
        Self {
            interval,
            timeout: timeout.into(),
            only_if_idle: false,
        }
    }

    /// Checks that neither the interval nor the timeout is zero.
    ///
    /// # Errors
    /// [`ConfigError::ZeroHeartbeat`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval.is_zero() || self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(ConfigError::ZeroHeartbeat);
        }
        Ok(())
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new(Self::DEFAULT_INTERVAL, Self::DEFAULT_TIMEOUT)
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
            heartbeat: None,
            idle_timeout: None,
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
            (
                Config {
                    close_timeout: Duration::ZERO,
                    ..Config::default()
                },
                ConfigError::ZeroCloseTimeout,
            ),
            (
                Config {
                    idle_timeout: Some(Duration::ZERO),
                    ..Config::default()
                },
                ConfigError::ZeroIdleTimeout,
            ),
            (
                Config {
                    heartbeat: Some(Heartbeat::new(Duration::ZERO, None)),
                    ..Config::default()
                },
                ConfigError::ZeroHeartbeat,
            ),
            (
                Config {
                    heartbeat: Some(Heartbeat::new(Duration::from_secs(1), Duration::ZERO)),
                    ..Config::default()
                },
                ConfigError::ZeroHeartbeat,
            ),
        ];
        for (config, error) in cases {
            assert_eq!(config.validate(), Err(error));
        }
    }
}
