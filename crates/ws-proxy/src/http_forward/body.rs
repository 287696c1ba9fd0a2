//! Body streaming: request bodies to the upstream (as they came, or re-chunked with trailers),
//! the upstream response head, and the upstream body relayed to the client through a channel.

use super::*;

/// Largest read from the upstream (so the largest piece in the response channel).
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// Largest Content-Length body of an idempotent request read before the upstream is
/// contacted, so that it can be sent again on a new connection.
pub(super) const REPLAY_MAX: u64 = 64 * 1024;

/// A failure reading the client's body, with the status the server answers.
pub(super) fn body_failure(e: ws_server::Error) -> Failure {
    match e {
        ws_server::Error::Http { status, reason } => Failure::Body(status, reason),
        e => Failure::Body(400, e.to_string()),
    }
}

/// Reads the client's whole body (a small one: the caller checked its length).
pub(super) async fn read_body(body: &mut Body<'_>) -> Result<Bytes, Failure> {
    body.bytes().await.map_err(body_failure)
}

/// Streams the client's body to the upstream (chunked framing again when it came chunked,
/// with the client's trailers that may go on; `named`: the fields the request's `Connection`
/// names).
pub(super) async fn send_body<W: AsyncWrite + Unpin>(
    w: &mut W,
    body: &mut Body<'_>,
    chunked: bool,
    named: &[String],
    t: Duration,
) -> Result<(), Failure> {
    pub(super) async fn put<W: AsyncWrite + Unpin>(
        w: &mut W,
        bytes: &[u8],
        t: Duration,
    ) -> Result<(), Failure> {
        match tokio::time::timeout(t, w.write_all(bytes)).await {
            Err(_) => Err(Failure::Timeout("writing to the upstream timed out")),
            Ok(Err(e)) => Err(Failure::Upstream(format!("write failed: {e}"))),
            Ok(Ok(())) => Ok(()),
        }
    }
    let mut enc = ChunkedEncoder::new();
    let mut out = BytesMut::new();
    loop {
        let Some(chunk) = body.chunk().await.map_err(body_failure)? else {
            break;
        };
        if chunked {
            out.clear();
            let _ = enc.write_chunk(&chunk, &mut out);
            put(w, &out, t).await?;
        } else {
            put(w, &chunk, t).await?;
        }
    }
    if chunked {
        out.clear();
        let trailers = body
            .trailers()
            .map(|t| forward_trailers(t, named))
            .unwrap_or_default();
        let refs: Vec<(&str, &str)> = trailers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if enc.finish(&refs, &mut out).is_err() {
            // Parsed fields always pass the check; should one not, the body still ends.
            out.clear();
            let _ = enc.finish(&[], &mut out);
        }
        put(w, &out, t).await?;
    }
    match tokio::time::timeout(t, w.flush()).await {
        Err(_) => Err(Failure::Timeout("writing to the upstream timed out")),
        Ok(Err(e)) => Err(Failure::Upstream(format!("write failed: {e}"))),
        Ok(Ok(())) => Ok(()),
    }
}

/// Reads the final response head (interim 1xx answers are skipped); the bytes after it stay
/// in `rx`. No timeout here: the caller arms it once the request is sent.
pub(super) async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    rx: &mut BytesMut,
    limits: &ws_http::Limits,
) -> Result<ws_http::Response, Failure> {
    let mut received = false;
    loop {
        if !rx.is_empty() {
            match ws_http::parse_response(rx, limits) {
                Ok(Parsed::Complete(head, len)) => {
                    rx.advance(len);
                    match head.status() {
                        101 => return Err(Failure::Upstream("unexpected 101 response".into())),
                        100..=199 => continue,
                        _ => return Ok(head),
                    }
                }
                Ok(Parsed::Partial) => {}
                Err(e) => return Err(Failure::Upstream(format!("invalid response: {e}"))),
            }
        }
        rx.reserve(4096);
        match r.read_buf(rx).await {
            Ok(0) if !received => return Err(Failure::Closed),
            Ok(0) => return Err(Failure::Upstream("response cut short".into())),
            Err(_) if !received => return Err(Failure::Closed),
            Err(e) => return Err(Failure::Upstream(format!("read failed: {e}"))),
            Ok(_) => received = true,
        }
    }
}

/// Where [`relay`] hands the upstream's trailers that may go on.
pub(super) struct TrailersTo {
    pub(super) tx: oneshot::Sender<Vec<(String, String)>>,
    /// The fields the response's `Connection` names.
    pub(super) named: Vec<String>,
}

/// Upstream body to the client's response channel; the connection goes back to the pool
/// (`back`) after a clean end with nothing after it. The trailers that may go on are sent to
/// `trailers_to` before the channel ends.
pub(super) async fn relay(
    mut r: ReadHalf<Conn>,
    mut rx: BytesMut,
    mut decoder: BodyDecoder,
    tx: mpsc::Sender<io::Result<Bytes>>,
    t: Duration,
    back: Option<(WriteHalf<Conn>, Arc<Pool>)>,
    trailers_to: Option<TrailersTo>,
) {
    loop {
        match decoder.decode(&mut rx) {
            Ok(Some(BodyEvent::Data(b))) => {
                if tx.send(Ok(b)).await.is_err() {
                    // The client is gone: the rest of the body is not wanted.
                    return;
                }
                continue;
            }
            Ok(Some(BodyEvent::End { trailers })) => {
                if let Some(to) = trailers_to {
                    let _ = to.tx.send(forward_trailers(&trailers, &to.named));
                }
                if let Some((w, pool)) = back {
                    if rx.is_empty() {
                        pool.put(r.unsplit(w));
                    }
                }
                return;
            }
            Ok(None) => {}
            Err(e) => {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                return;
            }
        }
        rx.reserve(READ_CHUNK);
        match tokio::time::timeout(t, r.read_buf(&mut (&mut rx).limit(READ_CHUNK))).await {
            Err(_) => {
                let e = io::Error::new(io::ErrorKind::TimedOut, "upstream body timed out");
                let _ = tx.send(Err(e)).await;
                return;
            }
            Ok(Err(e)) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Ok(Ok(0)) => {
                // A close-delimited body ends here; any other is cut short.
                if let Err(e) = decoder.finish() {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                }
                return;
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// The response body as ws-server reads it: pieces from [`relay`]; an error makes the server
/// close the client's connection instead of ending the body cleanly.
pub(super) struct ChannelReader {
    pub(super) rx: mpsc::Receiver<io::Result<Bytes>>,
    pub(super) cur: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.cur.is_empty() {
                let n = self.cur.len().min(buf.remaining());
                buf.put_slice(&self.cur[..n]);
                self.cur.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}
