//! The opening handshake as the application sees it: the request the hook may edit, the
//! response, and the mapping of ws-http's handshake errors to this crate's.
//!
//! The handshake itself (random key, request head, `Sec-WebSocket-Accept` check, subprotocol
//! and permessage-deflate negotiation, bounded rejection bodies) is `ws_http::ClientHandshake`.

use ws_http::Headers;

use crate::error::{Error, HandshakeError};

/// The upgrade request about to be sent, as given to [`crate::ClientConfig::request_hook`].
///
/// The fields the handshake writes itself (`Host`, `Upgrade`, `Connection`,
/// `Sec-WebSocket-*`) are not in `headers`; adding them fails the connection with
/// [`Error::Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeRequest {
    /// Request target (path and query, starting with `/`).
    pub target: String,
    /// `Origin` to send.
    pub origin: Option<String>,
    /// Subprotocols to offer, most preferred first.
    pub protocols: Vec<String>,
    /// Other header fields in order (`User-Agent`, `Authorization`, configured extras).
    pub headers: Headers,
}

impl HandshakeRequest {
    /// The first header called `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Replaces every header called `name` with one `name: value`, where the first one was
    /// (appended when absent).
    pub fn set_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let mut value = Some(value.into());
        let mut out = Headers::new();
        for (n, v) in &self.headers {
            if !n.eq_ignore_ascii_case(&name) {
                out.push(n, v);
            } else if let Some(value) = value.take() {
                out.push(name.clone(), value);
            }
        }
        if let Some(value) = value {
            out.push(name, value);
        }
        self.headers = out;
    }

    /// Removes every header called `name`.
    pub fn remove_header(&mut self, name: &str) {
        self.headers = self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(name))
            .collect();
    }
}

/// The server's answer to the upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeResponse {
    /// Status code (101 for an established connection).
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers in order.
    pub headers: Headers,
}

impl HandshakeResponse {
    /// The first header called `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

impl From<&ws_http::Response> for HandshakeResponse {
    fn from(r: &ws_http::Response) -> Self {
        Self {
            status: r.status(),
            reason: r.reason().to_owned(),
            headers: r.headers().clone(),
        }
    }
}

/// Maps a ws-http failure of the client handshake (not a rejection) to this crate's error.
/// `head` is the response head when it was seen, to name the offending protocol or extension.
pub(crate) fn map_error(e: ws_http::Error, head: Option<&ws_http::Response>) -> Error {
    use ws_http::HandshakeError as H;
    let named = |name: &str| {
        head.map(|r| r.headers().get_all(name).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    match e {
        ws_http::Error::Handshake(h) => match h {
            H::ResponseMissingUpgrade => HandshakeError::MissingUpgrade.into(),
            H::ResponseMissingConnection => HandshakeError::MissingConnection.into(),
            H::AcceptMismatch => HandshakeError::AcceptMismatch.into(),
            H::UnexpectedProtocol => {
                HandshakeError::UnexpectedProtocol(named("sec-websocket-protocol")).into()
            }
            H::UnexpectedExtension => {
                HandshakeError::UnexpectedExtension(named("sec-websocket-extensions")).into()
            }
            H::Deflate(d) => HandshakeError::Deflate(*d).into(),
            other => HandshakeError::MalformedResponse(other.to_string()).into(),
        },
        ws_http::Error::Config(ws_http::ConfigError::ReservedHeader(name)) => {
            Error::ReservedHeader {
                name: name.to_owned(),
            }
        }
        ws_http::Error::Config(c) => Error::Request(c),
        ws_http::Error::InvalidField(field) => Error::InvalidRequestField { field },
        ws_http::Error::Url(_) => Error::InvalidRequestField {
            field: "request target",
        },
        ws_http::Error::Random => Error::Io(std::io::Error::other(e.to_string())),
        other => HandshakeError::MalformedResponse(other.to_string()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_editing() {
        let mut r = HandshakeRequest {
            target: "/".into(),
            origin: None,
            protocols: vec![],
            headers: [("User-Agent", "x")].into_iter().collect(),
        };
        r.set_header("X-One", "1");
        r.headers.push("x-one", "dup");
        r.set_header("X-ONE", "2");
        assert_eq!(r.headers.count("x-one"), 1);
        assert_eq!(r.header("x-one"), Some("2"));
        r.remove_header("x-one");
        assert_eq!(r.header("x-one"), None);
        assert_eq!(r.header("user-agent"), Some("x"));
    }

    #[test]
    fn handshake_errors_map_to_named_causes() {
        use ws_http::HandshakeError as H;
        let raw = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Protocol: evil\r\n\r\n";
        let ws_http::Parsed::Complete(head, _) =
            ws_http::parse_response(raw, &ws_http::Limits::default()).unwrap()
        else {
            panic!()
        };
        assert!(matches!(
            map_error(H::UnexpectedProtocol.into(), Some(&head)),
            Error::Handshake(HandshakeError::UnexpectedProtocol(p)) if p == "evil"
        ));
        assert!(matches!(
            map_error(H::AcceptMismatch.into(), None),
            Error::Handshake(HandshakeError::AcceptMismatch)
        ));
        assert!(matches!(
            map_error(ws_http::Error::InvalidField("header"), None),
            Error::InvalidRequestField { field: "header" }
        ));
        assert!(matches!(
            map_error(ws_http::ConfigError::InvalidProtocol.into(), None),
            Error::Request(ws_http::ConfigError::InvalidProtocol)
        ));
        assert!(matches!(
            map_error(ws_http::Error::IncompleteBody, None),
            Error::Handshake(HandshakeError::MalformedResponse(_))
        ));
    }
}
