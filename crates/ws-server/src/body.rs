//! The request body handed to [`crate::Handler::on_http`]: streamed from the connection
//! through `ws_http::BodyDecoder` (content-length or chunked), bounded and timed.

use std::{path::Path, time::Duration};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use ws_http::{BodyDecoder, BodyEvent, Headers};

use crate::{error::Error, io::Io};

/// Reads of the body reserve at least this much room.
const READ_CHUNK: usize = 16 * 1024;
/// ... and this much while more than that is still to come (a `Content-Length` body), or once
/// that much came (a chunked one): a large upload took a read call per 16 KiB.
const READ_CHUNK_LARGE: usize = 256 * 1024;

/// A request body, read on demand. Chunks come out as they arrive ([`Body::chunk`]); the whole
/// body is bounded by [`crate::HttpLimits::max_body`] (413), a stall longer than
/// [`crate::ServerConfig::body_timeout`] fails with 408, a malformed chunked body with 400.
/// After a failure the server answers with that status (keeping the handler's response only
/// when it carries the same status, e.g. a custom 413 page) and closes the connection. `Expect: 100-continue` is answered on the first
/// read. A chunked body's trailer section is kept for [`Body::trailers`].
pub struct Body<'a> {
    pub(crate) io: &'a mut Io,
    pub(crate) rx: &'a mut BytesMut,
    pub(crate) decoder: BodyDecoder,
    pub(crate) length: Option<u64>,
    pub(crate) timeout: Duration,
    pub(crate) continue_pending: bool,
    pub(crate) error: Option<(u16, String)>,
    pub(crate) done: bool,
    /// The trailer section, once the body ended (empty unless chunked with trailers).
    pub(crate) trailers: Headers,
}

impl std::fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("length", &self.length)
            .field("received", &self.decoder.received())
            .field("done", &self.done)
            .field("trailers", &self.trailers.len())
            .finish_non_exhaustive()
    }
}

impl Body<'_> {
    /// The `Content-Length`, when the body has one (`None` for chunked bodies).
    #[must_use]
    pub fn content_length(&self) -> Option<u64> {
        self.length
    }

    /// Body bytes returned so far.
    #[must_use]
    pub fn received(&self) -> u64 {
        self.decoder.received()
    }

    /// Whether the whole body was read.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The trailer fields of a chunked body (RFC 9112 section 7.1.2), in arrival order:
    /// `Some` once the body was read to its end ([`Body::chunk`] returned `None`), empty for a
    /// body without trailers (and every `Content-Length` body); `None` before the end or after
    /// a failure.
    ///
    /// Trailers are bounded like the request head ([`crate::HttpLimits::max_head_bytes`],
    /// [`crate::HttpLimits::max_headers`]; 431 beyond) and are not merged into
    /// [`crate::Request::headers`]. They are the client's word after the fact: fields that
    /// must not be trailers (RFC 9110 section 6.5.1: framing, routing, authentication,
    /// request modifiers, ...) are passed on as sent, for the application to ignore.
    ///
    /// ```
    /// use ws_server::{Body, Request, Response};
    ///
    /// async fn on_http(_request: &Request, body: &mut Body<'_>) -> Response {
    ///     let Ok(data) = body.bytes().await else {
    ///         return Response::new(400);
    ///     };
    ///     match body.trailers().and_then(|t| t.get("x-checksum")) {
    ///         Some(sum) => Response::text(200, format!("{} bytes, checksum {sum}", data.len())),
    ///         None => Response::text(200, format!("{} bytes", data.len())),
    ///     }
    /// }
    /// ```
    #[must_use]
    pub fn trailers(&self) -> Option<&Headers> {
        (self.done && self.error.is_none()).then_some(&self.trailers)
    }

    fn fail(&mut self, status: u16, reason: String) -> Error {
        self.error = Some((status, reason.clone()));
        Error::Http { status, reason }
    }

    /// The next piece of the body; `None` at its end.
    ///
    /// # Errors
    /// [`Error::Http`] with 413 (too large), 400 (malformed or cut short), 431 (a trailer
    /// section beyond the head limits) or 408 (timed out); the same error again on later
    /// calls.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            if let Some((status, reason)) = &self.error {
                return Err(Error::Http {
                    status: *status,
                    reason: reason.clone(),
                });
            }
            if self.done {
                return Ok(None);
            }
            match self.decoder.decode(self.rx) {
                Ok(Some(BodyEvent::Data(b))) => return Ok(Some(b)),
                Ok(Some(BodyEvent::End { trailers })) => {
                    self.trailers = trailers;
                    self.done = true;
                    return Ok(None);
                }
                Ok(None) => {}
                Err(e) => return Err(self.fail(e.status(), e.to_string())),
            }
            if self.continue_pending {
                self.continue_pending = false;
                let w = self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
                if tokio::time::timeout(self.timeout, w).await.is_err() {
                    return Err(self.fail(408, "timed out".into()));
                }
            }
            let large = READ_CHUNK_LARGE as u64;
            let received = self.decoder.received();
            let want = if self
                .length
                .map_or(received >= large, |n| n.saturating_sub(received) > large)
            {
                READ_CHUNK_LARGE
            } else {
                READ_CHUNK
            };
            if self.rx.capacity() - self.rx.len() < want / 4 {
                self.rx.reserve(want);
            }
            match tokio::time::timeout(self.timeout, self.io.read_buf(self.rx)).await {
                Err(_) => return Err(self.fail(408, "request body timed out".into())),
                Ok(Err(e)) => return Err(self.fail(400, e.to_string())),
                Ok(Ok(0)) => {
                    let e = self.decoder.finish().err();
                    let reason = e.map_or_else(|| "body cut short".into(), |e| e.to_string());
                    return Err(self.fail(400, reason));
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The whole body in one buffer (at most [`crate::HttpLimits::max_body`] bytes).
    ///
    /// # Errors
    /// As [`Body::chunk`].
    pub async fn bytes(&mut self) -> Result<Bytes, Error> {
        let mut first: Option<Bytes> = None;
        let mut all = BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            match first.take() {
                None if all.is_empty() => first = Some(chunk),
                Some(f) => {
                    all.reserve(f.len() + chunk.len());
                    all.extend_from_slice(&f);
                    all.extend_from_slice(&chunk);
                }
                None => all.extend_from_slice(&chunk),
            }
        }
        Ok(first.unwrap_or_else(|| all.freeze()))
    }

    /// Streams the body into a new file at `path` (created or truncated) with bounded
    /// memory; returns its length.
    ///
    /// # Errors
    /// As [`Body::chunk`], and [`Error::Io`] when the file cannot be written.
    pub async fn save_to(&mut self, path: impl AsRef<Path>) -> Result<u64, Error> {
        let mut file = tokio::fs::File::create(path.as_ref()).await?;
        let mut n = 0u64;
        while let Some(chunk) = self.chunk().await? {
            file.write_all(&chunk).await?;
            n += chunk.len() as u64;
        }
        file.flush().await?;
        Ok(n)
    }

    /// Reads and drops what is left, within `budget` bytes. Returns whether the body ended
    /// cleanly (the connection can then carry the next request).
    pub(crate) async fn discard(&mut self, budget: u64) -> bool {
        if self.done {
            return self.error.is_none();
        }
        if self.error.is_some() || self.continue_pending {
            // The client may be waiting for 100 Continue: its body may never come.
            return false;
        }
        let left = self.length.map(|n| n.saturating_sub(self.received()));
        if left.is_some_and(|n| n > budget) {
            return false;
        }
        let start = self.received();
        loop {
            match self.chunk().await {
                Ok(Some(_)) if self.received() - start > budget => return false,
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}
