//! The crate's error type.

use std::{io, net::SocketAddr};

/// Everything that can go wrong in the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting of [`crate::ServerConfig`], [`crate::AuthConfig`] or
    /// [`crate::session::SessionConfig`] breaks its rule.
    #[error("invalid server configuration: {field} {rule}")]
    Setting {
        /// The setting (or settings) at fault.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// A value of a setting breaks its rule (a user name, a path, a cookie name).
    #[error("invalid server configuration: {} {:?} {}", .0.field, .0.value, .0.rule)]
    SettingValue(Box<BadValue>),
    /// [`crate::ServerConfig::ws`] does not validate.
    #[error("invalid server configuration: websocket limits: {0}")]
    WsLimits(#[source] ws_frame::ConfigError),
    /// [`crate::ServerConfig::http`] does not validate.
    #[error("invalid server configuration: HTTP limits: {0}")]
    HttpLimits(#[source] ws_http::Error),
    /// [`crate::ServerConfig::document_root`] is not a directory.
    #[error("invalid server configuration: document root {} is not a directory", path.display())]
    DocumentRoot {
        /// The path given.
        path: std::path::PathBuf,
    },
    /// [`crate::ServerConfig::document_root`] cannot be resolved (missing, or no permission).
    #[error("invalid server configuration: document root {}: {source} (give an existing, readable directory)", path.display())]
    DocumentRootUnreadable {
        /// The path given.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A listening socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A socket error on a connection.
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The HTTP request was malformed, exceeded a limit, or was not a valid upgrade; the
    /// client got this status.
    #[error("bad HTTP request ({status}): {reason}")]
    Http {
        /// Status sent to the client.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// The request head did not arrive within the handshake timeout.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The WebSocket protocol failed (the connection was closed with the error's close code).
    #[error("websocket: {0}")]
    WebSocket(#[from] ws_frame::Error),
    /// A channel name or pattern is malformed.
    #[error("invalid channel: {0}")]
    InvalidChannel(String),
    /// The connection's command queue is full; under [`crate::SlowReaderPolicy::Disconnect`]
    /// the connection is being closed with 1013.
    #[error("send queue of the connection is full")]
    QueueFull,
    /// The connection is closed (or unknown).
    #[error("connection is closed")]
    Closed,
    /// A [`crate::Handler`] method panicked. The server caught it, closed that connection
    /// with 1011 (internal error) and delivers nothing more to the handler for it (except
    /// `on_disconnect`); other connections go on.
    #[error("handler panicked in {method}: {message}")]
    HandlerPanicked {
        /// The handler method (`on_message`, `on_connect`, ...).
        method: &'static str,
        /// The panic message (`"non-string panic payload"` when it was not a string).
        message: String,
    },
    /// Nothing came from the peer within the timeout of [`crate::ConnHandle::ping_timeout`];
    /// the connection was dropped.
    #[error("no answer to a ping within {timeout:?}: the connection was dropped")]
    PongTimeout {
        /// The timeout given.
        timeout: std::time::Duration,
    },
    /// No connection has this id.
    #[error("no connection with id {0}")]
    UnknownConnection(u64),
    /// A `multipart/form-data` upload ([`crate::multipart::save`]) that is not one, is
    /// malformed, or exceeds a limit of [`crate::UploadConfig`]; the inner error says which and
    /// gives the status (415, 400 or 413).
    #[error("upload: {0}")]
    Upload(ws_http::Error),
    /// The hook of [`crate::multipart::save`] refused a file with this status; nothing of the
    /// upload was kept.
    #[error("file refused by the server (status {status})")]
    UploadRefused {
        /// The status the hook chose.
        status: u16,
    },
}

/// The details of [`Error::SettingValue`] (boxed: configuration errors are rare, and the
/// error stays small on the hot path).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BadValue {
    /// The setting at fault (`auth.users`, `SessionConfig::cookie_name`, ...).
    pub field: &'static str,
    /// The value given.
    pub value: String,
    /// What it must be.
    pub rule: &'static str,
}

impl Error {
    /// [`Error::SettingValue`] for `field` holding `value`, which must be `rule`.
    pub(crate) fn bad_value(field: &'static str, value: &str, rule: &'static str) -> Self {
        Self::SettingValue(Box::new(BadValue {
            field,
            value: value.to_owned(),
            rule,
        }))
    }

    /// The HTTP status that answers this error when an HTTP request caused it: the status
    /// carried by [`Error::Http`], [`Error::Upload`] and [`Error::UploadRefused`], 408 for
    /// [`Error::HandshakeTimeout`], 500 for the rest.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Http { status, .. } | Self::UploadRefused { status } => *status,
            Self::Upload(e) => e.status(),
            Self::HandshakeTimeout => 408,
            Self::Setting { .. }
            | Self::SettingValue(_)
            | Self::DocumentRootUnreadable { .. }
            | Self::WsLimits(_)
            | Self::HttpLimits(_)
            | Self::DocumentRoot { .. }
            | Self::Bind { .. }
            | Self::Io(_)
            | Self::Tls(_)
            | Self::WebSocket(_)
            | Self::InvalidChannel(_)
            | Self::QueueFull
            | Self::Closed
            | Self::HandlerPanicked { .. }
            | Self::PongTimeout { .. }
            | Self::UnknownConnection(_) => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_stays_small() {
        assert!(size_of::<super::Error>() <= 48);
    }
}
