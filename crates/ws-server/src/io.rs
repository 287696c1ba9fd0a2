//! The transport under a connection: plain TCP or TLS over TCP, with read and write sides that
//! can wait at the same time.

use std::{
    io,
    task::{Poll, ready},
};

use bytes::BytesMut;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf},
    net::TcpStream,
};
use tokio_rustls::server::TlsStream;
use ws_frame::Connection;

use crate::tx::TxQueue;

type Tls = TlsStream<TcpStream>;

/// A connection's byte stream.
#[derive(Debug)]
pub(crate) enum Io {
    Plain(TcpStream),
    Tls {
        r: ReadHalf<Tls>,
        w: WriteHalf<Tls>,
        /// Plaintext was written since the last flush.
        dirty: bool,
    },
}

/// Where a read goes.
pub(crate) enum Target<'a> {
    /// The connection's receive buffer; `probe`: the buffer is not allocated yet, so make sure
    /// data is really there (readiness can be stale) before asking for it.
    Ws(&'a mut Connection, bool),
    Buf(&'a mut BytesMut),
}

impl Target<'_> {
    fn buf(&mut self) -> &mut BytesMut {
        match self {
            Self::Ws(ws, _) => ws.read_buf(),
            Self::Buf(b) => b,
        }
    }

    fn probe(&self) -> bool {
        matches!(self, Self::Ws(_, true))
    }
}

/// The read side, borrowed for one wait.
pub(crate) enum Reader<'a> {
    Plain(&'a TcpStream),
    Tls(&'a mut ReadHalf<Tls>),
}

/// The write side, borrowed for one wait.
pub(crate) enum Writer<'a> {
    Plain(&'a TcpStream),
    Tls(&'a mut WriteHalf<Tls>, &'a mut bool),
}

impl Io {
    pub(crate) fn tls(stream: Tls) -> Self {
        let (r, w) = tokio::io::split(stream);
        Self::Tls { r, w, dirty: false }
    }

    /// Both sides, to wait on them at once.
    pub(crate) fn halves(&mut self) -> (Reader<'_>, Writer<'_>) {
        match self {
            Self::Plain(s) => (Reader::Plain(s), Writer::Plain(s)),
            Self::Tls { r, w, dirty } => (Reader::Tls(r), Writer::Tls(w, dirty)),
        }
    }

    /// Whether a write call has work even with an empty queue (a TLS flush).
    pub(crate) fn wants_flush(&self) -> bool {
        matches!(self, Self::Tls { dirty: true, .. })
    }

    /// Writes what the socket takes right now without waiting (plain TCP only; TLS returns
    /// 0 and leaves the queue to [`Writer::write`]). Returns the bytes taken from the queue.
    pub(crate) fn try_write_now(&mut self, tx: &mut TxQueue) -> io::Result<usize> {
        let Self::Plain(s) = self else { return Ok(0) };
        let r = match tx.contiguous() {
            Some(buf) => s.try_write(buf),
            None => s.try_write_vectored(&tx.slices()),
        };
        match r {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                tx.advance(n);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Reads into `buf` (handshake phase, lingering close).
    pub(crate) async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.halves().0.read(Target::Buf(buf)).await
    }

    /// Writes everything (handshake responses).
    pub(crate) async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(bytes).await,
            Self::Tls { w, .. } => {
                w.write_all(bytes).await?;
                w.flush().await
            }
        }
    }

    /// Writes `head` then `body`, in one vectored write when the socket takes it (a response
    /// head and its body, without copying the body next to the head).
    pub(crate) async fn write_all_pair(&mut self, head: &[u8], body: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(s) => {
                let (mut head, mut body) = (head, body);
                while !head.is_empty() {
                    let n = s
                        .write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)])
                        .await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    let from_head = n.min(head.len());
                    head = &head[from_head..];
                    body = &body[n - from_head..];
                }
                s.write_all(body).await
            }
            Self::Tls { w, .. } => {
                w.write_all(head).await?;
                w.write_all(body).await?;
                w.flush().await
            }
        }
    }

    /// Sends FIN (and TLS close_notify).
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.shutdown().await,
            Self::Tls { w, .. } => w.shutdown().await,
        }
    }
}

impl Reader<'_> {
    /// Reads once into the target. Plain TCP waits for readability before asking for the
    /// buffer, so an idle connection holds no receive buffer. Cancel-safe.
    pub(crate) async fn read(self, mut target: Target<'_>) -> io::Result<usize> {
        match self {
            // poll_read_ready uses the stream's single reader slot: no waiter list, no lock.
            Self::Plain(s) => {
                std::future::poll_fn(|cx| {
                    if target.probe() {
                        let mut one = [0u8; 1];
                        let mut peek = ReadBuf::new(&mut one);
                        if ready!(s.poll_peek(cx, &mut peek))? == 0 {
                            return Poll::Ready(Ok(0));
                        }
                    }
                    loop {
                        ready!(s.poll_read_ready(cx))?;
                        match s.try_read_buf(target.buf()) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            other => return Poll::Ready(other),
                        }
                    }
                })
                .await
            }
            Self::Tls(r) => r.read_buf(target.buf()).await,
        }
    }
}

impl Writer<'_> {
    /// Writes some queued bytes (vectored when the queue holds separate payloads), or flushes
    /// TLS once the queue is empty. Returns the number of bytes taken from the queue.
    /// Cancel-safe: a cancelled call wrote nothing.
    pub(crate) async fn write(self, tx: &mut TxQueue) -> io::Result<usize> {
        let n = match self {
            Self::Plain(s) => {
                std::future::poll_fn(|cx| {
                    loop {
                        ready!(s.poll_write_ready(cx))?;
                        let r = match tx.contiguous() {
                            Some(buf) => s.try_write(buf),
                            None => s.try_write_vectored(&tx.slices()),
                        };
                        match r {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            other => return Poll::Ready(other),
                        }
                    }
                })
                .await?
            }
            Self::Tls(w, dirty) => {
                if tx.is_empty() {
                    w.flush().await?;
                    *dirty = false;
                    return Ok(0);
                }
                let n = match tx.contiguous() {
                    Some(buf) => w.write(buf).await?,
                    None => w.write_vectored(&tx.slices()).await?,
                };
                *dirty = true;
                n
            }
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        tx.advance(n);
        Ok(n)
    }
}
