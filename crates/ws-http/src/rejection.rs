//! The answer of a server that refused an upgrade: its head and the start of its body.

use bytes::Bytes;

use crate::{Headers, head::Response};

/// A server's non-101 answer to an upgrade request: status, headers and the first
/// [`crate::Limits::max_rejection_body`] bytes of the body (an error page, a JSON reason, a redirect's
/// `Location`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub(crate) response: Response,
    pub(crate) body: Bytes,
    pub(crate) truncated: bool,
}

impl Rejection {
    /// The status code.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.response.status()
    }

    /// The reason phrase.
    #[must_use]
    pub fn reason(&self) -> &str {
        self.response.reason()
    }

    /// The response head.
    #[must_use]
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The response header fields.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        self.response.headers()
    }

    /// The body (at most [`crate::Limits::max_rejection_body`] bytes).
    #[must_use]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Whether the body was cut at [`crate::Limits::max_rejection_body`] or ended early.
    #[must_use]
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// `Location` of a 3xx redirect (resolve it with [`crate::WsUrl::join`]).
    #[must_use]
    pub fn location(&self) -> Option<&str> {
        if (300..400).contains(&self.status()) {
            self.headers().get("location")
        } else {
            None
        }
    }
}
