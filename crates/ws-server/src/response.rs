//! The response builder: status, headers, and a body from bytes, a reader, a channel or a file.

use std::{fmt, path::PathBuf, pin::Pin};

use bytes::Bytes;
use tokio::{
    io::AsyncRead,
    sync::{mpsc, oneshot},
};

/// Where a streamed body comes from.
pub(crate) enum Source {
    /// Read until end of input (or exactly `len` bytes when known).
    Reader {
        reader: Pin<Box<dyn AsyncRead + Send>>,
        len: Option<u64>,
    },
    /// Chunks until every sender is dropped.
    Channel {
        rx: mpsc::Receiver<Bytes>,
        len: Option<u64>,
    },
    /// A file, served with `ETag`, `Last-Modified`, conditional requests and ranges.
    File(PathBuf),
    /// A file the static-file lookup already opened.
    Opened(Box<crate::http::files::Opened>),
}

/// A response to an HTTP request ([`crate::Handler::on_http`],
/// [`crate::Before::Respond`]) or a handshake rejection ([`crate::Decision::Reject`]).
///
/// The server frames the body: `Content-Length` for bytes and streams of known length,
/// `Transfer-Encoding: chunked` for other streams (HTTP/1.1; HTTP/1.0 clients get a body that
/// ends when the connection closes). `Content-Length`, `Transfer-Encoding` and `Connection` in
/// [`Response::headers`] are ignored; `Server` and `Date` are added. A `HEAD` request gets the
/// same head without the body. A chunked body can end with trailer fields
/// ([`Response::with_trailers`]).
///
/// ```
/// use ws_server::Response;
/// let page = Response::new(200)
///     .with_header("Content-Type", "text/html; charset=utf-8")
///     .with_body("<h1>hi</h1>");
/// assert_eq!(page.body.len(), 11);
/// let missing = Response::new(404); // empty body
/// let file = Response::file("/srv/www/report.pdf"); // 200, 206, 304, 404 or 416
/// # let _ = (missing, file);
/// ```
#[non_exhaustive]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields (framing fields are set by the server).
    pub headers: Vec<(String, String)>,
    /// Body, unless the response streams ([`Response::stream`], [`Response::channel`],
    /// [`Response::file`]).
    pub body: Bytes,
    pub(crate) source: Option<Source>,
    /// Trailer fields, awaited after the last byte of a chunked body.
    pub(crate) trailers: Option<oneshot::Receiver<Vec<(String, String)>>>,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            None => "bytes",
            Some(Source::Reader { .. }) => "reader",
            Some(Source::Channel { .. }) => "channel",
            Some(Source::File(_) | Source::Opened(_)) => "file",
        };
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &self.body.len())
            .field("source", &source)
            .field("trailers", &self.trailers.is_some())
            .finish()
    }
}

impl Response {
    /// A response with `status` and an empty body.
    #[must_use]
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            source: None,
            trailers: None,
        }
    }

    /// A `text/plain; charset=utf-8` response.
    #[must_use]
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(body.into())
    }

    /// A redirect (`301`, `302`, `303`, `307`, `308`) to `location`.
    #[must_use]
    pub fn redirect(status: u16, location: impl Into<String>) -> Self {
        Self::new(status).with_header("Location", location)
    }

    /// A `200` response whose body is read from `reader` as it is sent (chunked unless
    /// [`Response::with_content_length`] gives the length).
    #[must_use]
    pub fn stream(reader: impl AsyncRead + Send + 'static) -> Self {
        let mut r = Self::new(200);
        r.source = Some(Source::Reader {
            reader: Box::pin(reader),
            len: None,
        });
        r
    }

    /// A `200` response whose body is whatever is sent on the returned channel, until every
    /// sender is dropped. `capacity` bounds the chunks waiting to be written.
    #[must_use]
    pub fn channel(capacity: usize) -> (Self, mpsc::Sender<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut r = Self::new(200);
        r.source = Some(Source::Channel { rx, len: None });
        (r, tx)
    }

    /// The file at `path`, served like a static file: content type by extension (unless set),
    /// `ETag`, `Last-Modified`, `Accept-Ranges`; `304` for a matching `If-None-Match` /
    /// `If-Modified-Since`, `206` for a single satisfiable `Range`, `416` for an unsatisfiable
    /// one, `404` when the file cannot be opened. Streamed in bounded chunks.
    #[must_use]
    pub fn file(path: impl Into<PathBuf>) -> Self {
        let mut r = Self::new(200);
        r.source = Some(Source::File(path.into()));
        r
    }

    /// Sets the status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a bytes body (and drops a stream body).
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self.source = None;
        self
    }

    /// Declares the length of a [`Response::stream`] or [`Response::channel`] body, sent as
    /// `Content-Length` instead of chunked framing; a body that ends early closes the
    /// connection, extra bytes are not sent.
    #[must_use]
    pub fn with_content_length(mut self, len: u64) -> Self {
        if let Some(Source::Reader { len: l, .. } | Source::Channel { len: l, .. }) =
            &mut self.source
        {
            *l = Some(len);
        }
        self
    }

    /// Trailer fields sent after a chunked body (RFC 9112 section 7.1.2): once the body's last
    /// byte is written, the server waits for `trailers` and writes the fields it receives
    /// after the last (zero-size) chunk. A sender dropped without sending means no trailers.
    /// The wait is bounded by [`crate::ServerConfig::body_timeout`], as a write of the body
    /// is: past it the connection closes without the last chunk. Send or drop the sender
    /// when the body ends.
    ///
    /// Only a chunked body can carry trailers, so they are dropped (the receiver with them;
    /// the sender's `send` then fails) when the response is not sent chunked: a bytes or file
    /// body, a stream with [`Response::with_content_length`], an HTTP/1.0 request (the body
    /// ends with the connection), a `HEAD` request, a status without a body (1xx, 204, 304).
    ///
    /// The fields are checked like header fields: a name that is not a token, or a value with
    /// CR, LF, NUL or other controls, ends the response without its last chunk and closes the
    /// connection (the head went out long before; the client sees an incomplete body rather
    /// than a complete one without its trailers). `Content-Length`, `Transfer-Encoding` and
    /// `Connection` are ignored, as in [`Response::headers`]. Announcing the fields in a
    /// `Trailer` header field, and sending only fields allowed in trailers (RFC 9110
    /// section 6.5.1), is up to the caller.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use tokio::sync::oneshot;
    /// use ws_server::Response;
    ///
    /// let (trailers_tx, trailers_rx) = oneshot::channel();
    /// let (resp, body) = Response::channel(4);
    /// let resp = resp
    ///     .with_header("Trailer", "X-Checksum")
    ///     .with_trailers(trailers_rx);
    /// // Usually from a task: the body, then its trailers.
    /// body.try_send(Bytes::from_static(b"hello")).unwrap();
    /// drop(body);
    /// let _ = trailers_tx.send(vec![("X-Checksum".into(), "sha-256=LPJNul+wow4m6Dsq".into())]);
    /// // Sent (to an HTTP/1.1 GET) as:
    /// // ...Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: sha-256=...\r\n\r\n
    /// # assert!(resp.is_streamed());
    /// ```
    #[must_use]
    pub fn with_trailers(mut self, trailers: oneshot::Receiver<Vec<(String, String)>>) -> Self {
        self.trailers = Some(trailers);
        self
    }

    /// Whether the body is streamed rather than held in [`Response::body`].
    #[must_use]
    pub fn is_streamed(&self) -> bool {
        self.source.is_some()
    }

    /// The first header named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
