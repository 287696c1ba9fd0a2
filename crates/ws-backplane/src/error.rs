//! The crate's one error type.

/// What went wrong setting up or using a backplane.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backplane URL cannot be used.
    #[error("backplane URL {url:?}: {reason} (expected redis://HOST:PORT or nats://HOST:PORT)")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL names an engine this build leaves out.
    #[error(
        "backplane engine {engine:?} is not in this build (enable the crate feature {engine:?})"
    )]
    EngineNotBuilt {
        /// `redis` or `nats`.
        engine: &'static str,
    },
    /// A setting is out of range.
    #[error("backplane setting {field}: {reason}")]
    InvalidConfig {
        /// The `Config` field.
        field: &'static str,
        /// What to change.
        reason: &'static str,
    },
    /// A node id, channel, protocol or path is too long for an envelope.
    #[error("{len} bytes is too long for a backplane envelope field (at most 65,534)")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Bytes on a backplane subject that are not a wskit envelope (another publisher uses the
    /// same prefix: choose another `prefix`).
    #[error("not a wskit backplane envelope: {0}")]
    Malformed(&'static str),
}
