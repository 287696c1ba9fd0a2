//! The crate's one error type.

use std::{io, net::SocketAddr, time::Duration};

use bytes::Bytes;

/// A non-101 answer to the upgrade request (boxed inside [`Error::Http`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRejection {
    /// Status code, e.g. 403.
    pub status: u16,
    /// Reason phrase as sent.
    pub reason: String,
    /// Response headers in order.
    pub headers: ws_http::Headers,
    /// Response body (at most [`crate::ClientConfig::max_rejection_body`] bytes).
    pub body: Bytes,
}

impl HttpRejection {
    /// The first header called `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// Why a 101 response was not accepted (RFC 6455 section 4.1, RFC 7692 section 5).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The response does not parse as HTTP/1.1, or its head exceeds the limit.
    #[error("malformed HTTP response: {0}")]
    MalformedResponse(String),
    /// `Upgrade: websocket` missing.
    #[error("response lacks Upgrade: websocket")]
    MissingUpgrade,
    /// `Connection: upgrade` missing.
    #[error("response lacks Connection: upgrade")]
    MissingConnection,
    /// `Sec-WebSocket-Accept` missing or not derived from our key.
    #[error("Sec-WebSocket-Accept does not match the key")]
    AcceptMismatch,
    /// The server selected a subprotocol we did not offer (or several).
    #[error("server selected subprotocol {0:?}, which was not offered")]
    UnexpectedProtocol(String),
    /// We required a subprotocol ([`crate::ClientConfig::require_protocol`]) and the server
    /// selected none.
    #[error("server selected no subprotocol")]
    NoProtocol,
    /// The server enabled an extension we did not offer.
    #[error("server enabled extension {0:?}, which was not offered")]
    UnexpectedExtension(String),
    /// The permessage-deflate parameters do not fit our offer.
    #[error("permessage-deflate response: {0}")]
    Deflate(ws_frame::deflate::NegotiationError),
    /// A `ws://` server answered the upgrade request with a TLS record (an alert, most likely)
    /// where an HTTP status line was expected: the port speaks TLS.
    #[error(
        "the server answered with TLS where an HTTP status line was expected: this looks like \
         TLS; try wss://"
    )]
    TlsAnswer,
    /// A redirect (3xx) without a usable `Location`.
    #[error("redirect without a valid Location header")]
    BadRedirect,
}

/// Everything that can go wrong in this crate. Each failure cause has its own variant.
///
/// A clean close (either side sent Close and the handshake completed) is not an error: the
/// message stream simply ends (see [`crate::WsReader::close_info`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL does not parse (see [`crate::WsUrl::parse_client`]).
    #[error(
        "invalid URL {url:?}: {source}; the client takes ws://HOST[:PORT]/PATH, wss://..., \
         http(s):// as their synonyms, or tcp://HOST:PORT"
    )]
    InvalidUrl {
        /// The text given.
        url: String,
        /// What is wrong with it.
        #[source]
        source: ws_http::UrlError,
    },
    /// A redirect pointed at a URL of another kind than ws:// or wss://.
    #[error("redirect to {url}, which is not a ws:// or wss:// URL")]
    RedirectScheme {
        /// Where the redirect pointed (without credentials).
        url: String,
    },
    /// The host name resolved to no address at all.
    #[error("{host} resolved to no address; check the host name")]
    NoAddress {
        /// The name.
        host: String,
    },
    /// A fragment size of 0 given to a send.
    #[error("fragment size must be at least 1 byte (use send without fragmenting instead)")]
    ZeroFragmentSize,
    /// A ping payload above the 125 bytes RFC 6455 section 5.5 allows a control frame.
    #[error("ping payload of {len} bytes is over the limit of {max}; send a shorter one")]
    PingTooLong {
        /// The payload length.
        len: usize,
        /// The limit (125).
        max: usize,
    },
    /// The upgrade request, as [`crate::ClientConfig::request_hook`] left it, has a field
    /// that cannot be written into an HTTP head.
    #[error(
        "the upgrade request's {field} cannot be written into an HTTP head (CR, LF or a \
         character not allowed there); fix ClientConfig or the request hook"
    )]
    InvalidRequestField {
        /// Which field (`header`, `Origin`, `host`, `request target`, ...).
        field: &'static str,
    },
    /// The upgrade request, as [`crate::ClientConfig::request_hook`] left it, breaks a rule
    /// of the handshake (a header the handshake writes itself, a subprotocol listed twice).
    #[error("the upgrade request cannot be sent: {0}; fix ClientConfig or the request hook")]
    Request(ws_http::ConfigError),
    /// A setting of [`crate::ClientConfig`] breaks its rule.
    #[error("invalid client configuration: {field} {rule}")]
    Setting {
        /// The setting (or settings) at fault.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// [`crate::ClientConfig::ws`] does not validate.
    #[error("invalid client configuration: websocket limits: {0}")]
    WsLimits(#[source] ws_frame::ConfigError),
    /// An extra request header whose name is not a token or whose value holds CR or LF.
    #[error("invalid client configuration: invalid request header {name:?}")]
    InvalidHeader {
        /// The header name.
        name: String,
    },
    /// An extra request header that the handshake writes itself.
    #[error(
        "invalid client configuration: header {name:?} is written by the handshake itself (use \
         origin, protocols or deflate)"
    )]
    ReservedHeader {
        /// The header name.
        name: String,
    },
    /// A subprotocol that is not an HTTP token.
    #[error("invalid client configuration: subprotocol {protocol:?} is not an HTTP token")]
    InvalidProtocol {
        /// The subprotocol.
        protocol: String,
    },
    /// [`crate::ClientConfig::tls_server_name`] is neither a DNS name nor an IP address.
    #[error("invalid client configuration: invalid TLS server name {name:?}")]
    InvalidServerName {
        /// The name.
        name: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Dns {
        /// The name.
        host: String,
        /// What the resolver said.
        #[source]
        source: io::Error,
    },
    /// The local address or port range could not be bound
    /// ([`crate::ClientConfig::local_addr`], [`crate::ClientConfig::local_ports`]).
    #[error(
        "cannot bind the local address {addr:?} / ports {ports:?}: {source}; pick a local \
         address of this machine and free ports"
    )]
    LocalBind {
        /// The address asked for.
        addr: Option<std::net::IpAddr>,
        /// The port range asked for.
        ports: Option<(u16, u16)>,
        /// The last OS error.
        #[source]
        source: io::Error,
    },
    /// Every address refused the TCP connection.
    #[error("connection refused by {addr}")]
    Refused {
        /// The (last) address tried.
        addr: SocketAddr,
    },
    /// TCP connect failed for another reason (unreachable network, ...).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The (last) address tried.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The TLS configuration could not be built (CA file, client certificate, ALPN).
    #[error("TLS configuration: {0}")]
    TlsConfig(Box<ws_tls::Error>),
    /// The TLS handshake failed (certificate not trusted, wrong name, no shared version, ...).
    /// Its `Display` is a sentence that says what to do (see [`ws_tls::describe_error`]).
    #[error("TLS handshake failed: {}", describe_tls(.0))]
    Tls(io::Error),
    /// A `wss://` server did not answer the TLS handshake as a TLS server would: it closed the
    /// connection without a reply, or answered plain HTTP. Most likely a plain `ws://` port.
    #[error("the server did not answer TLS ({0}); try ws://")]
    NotTls(String),
    /// The proxy refused or broke the tunnel (HTTP CONNECT status, SOCKS reply code, ...).
    #[error("proxy: {0}")]
    Proxy(String),
    /// The server answered the upgrade with another status than 101 (body included).
    #[error("server answered HTTP {} {}", .0.status, .0.reason)]
    Http(Box<HttpRejection>),
    /// The 101 response does not match the request.
    #[error("handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// More redirects than [`crate::ClientConfig::max_redirects`].
    #[error("more than {limit} redirects")]
    TooManyRedirects {
        /// The limit.
        limit: usize,
    },
    /// [`crate::ClientConfig::connect_timeout`] passed before the connection was ready.
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    /// A token callback ([`crate::Auth::BearerFn`]) failed.
    #[error("authentication: {0}")]
    Auth(String),
    /// The peer broke RFC 6455 (or a limit); the connection was failed with the error's close
    /// code.
    #[error("WebSocket: {0}")]
    Protocol(#[from] ws_frame::Error),
    /// No pong arrived within the heartbeat timeout: the peer or the path is dead.
    #[error("no pong within {0:?}: peer is not responding")]
    PeerDead(Duration),
    /// Nothing arrived within [`crate::ClientConfig::read_timeout`].
    #[error("nothing received for {0:?} (read timeout): the server or the path is silent")]
    ReadTimeout(Duration),
    /// Queued bytes could not be written within [`crate::ClientConfig::write_timeout`].
    #[error("could not write for {0:?} (write timeout): the server is not reading")]
    WriteTimeout(Duration),
    /// A WebSocket-only operation (a ping) on a `tcp://` connection.
    #[error("tcp:// connections carry raw bytes: no pings; use ws:// or wss://")]
    RawTcp,
    /// [`crate::ClientConfig::verify_peer`] refused the server's certificate chain.
    #[error("the certificate check (verify_peer) refused the server {name:?}")]
    PeerRejected {
        /// The server name checked.
        name: String,
    },
    /// [`crate::WebSocket::request`] or [`crate::WebSocket::close`] waited longer than its
    /// timeout.
    #[error("no answer within {0:?}")]
    ReplyTimeout(Duration),
    /// Reading or writing the socket failed (reset, broken pipe, ...).
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// The connection is closed (or closing); nothing more can be sent.
    #[error("connection closed")]
    Closed,
    /// A reconnect hook cancelled further attempts ([`crate::ReconnectDecision::Cancel`]).
    #[error("reconnect cancelled")]
    Cancelled,
}

/// The sentence for a failed TLS handshake: rustls's error explained, or what the transport said.
fn describe_tls(e: &io::Error) -> String {
    if let Some(r) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return ws_tls::describe_error(r);
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the TLS handshake".to_owned()
        }
        io::ErrorKind::ConnectionReset => {
            "the server reset the connection during the TLS handshake".to_owned()
        }
        _ => e.to_string(),
    }
}

impl From<ws_tls::Error> for Error {
    fn from(e: ws_tls::Error) -> Self {
        Self::TlsConfig(Box::new(e))
    }
}

impl Error {
    /// Whether reconnecting may help: network, timeout, TLS handshake, 5xx, dead peer, ...
    /// False for configuration and URL errors and for 4xx answers.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::InvalidUrl { .. }
            | Self::RedirectScheme { .. }
            | Self::NoAddress { .. }
            | Self::ZeroFragmentSize
            | Self::PingTooLong { .. }
            | Self::InvalidRequestField { .. }
            | Self::Request(_)
            | Self::RawTcp
            | Self::LocalBind { .. }
            | Self::PeerRejected { .. }
            | Self::Setting { .. }
            | Self::WsLimits(_)
            | Self::InvalidHeader { .. }
            | Self::ReservedHeader { .. }
            | Self::InvalidProtocol { .. }
            | Self::InvalidServerName { .. }
            | Self::TlsConfig(_)
            | Self::TooManyRedirects { .. }
            | Self::NotTls(_)
            | Self::Cancelled => false,
            Self::Http(r) => r.status >= 500 || r.status == 429 || r.status == 408,
            Self::Dns { .. }
            | Self::Refused { .. }
            | Self::Connect { .. }
            | Self::Tls(_)
            | Self::Proxy(_)
            | Self::Handshake(_)
            | Self::Timeout(_)
            | Self::Auth(_)
            | Self::Protocol(_)
            | Self::PeerDead(_)
            | Self::ReadTimeout(_)
            | Self::WriteTimeout(_)
            | Self::ReplyTimeout(_)
            | Self::Io(_)
            | Self::Closed => true,
        }
    }

    /// The HTTP status, for [`Error::Http`].
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Http(r) => Some(r.status),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_small() {
        assert!(
            size_of::<Error>() <= 48,
            "Error is {} bytes: box the large variant",
            size_of::<Error>()
        );
    }

    #[test]
    fn transient_classification() {
        let http = |status| {
            Error::Http(Box::new(HttpRejection {
                status,
                reason: String::new(),
                headers: ws_http::Headers::new(),
                body: Bytes::new(),
            }))
        };
        assert!(http(503).is_transient());
        assert!(!http(403).is_transient());
        assert_eq!(http(404).status(), Some(404));
        let url = Error::InvalidUrl {
            url: "ftp://h".into(),
            source: ws_http::UrlError::Scheme,
        };
        assert!(!url.is_transient());
        assert!(url.to_string().contains("tcp://HOST:PORT"), "{url}");
        let ping = Error::PingTooLong { len: 200, max: 125 };
        assert!(ping.to_string().contains("200") && !ping.is_transient());
        assert!(Error::PeerDead(Duration::from_secs(1)).is_transient());
    }
}
