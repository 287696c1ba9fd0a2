//! The transport under a connection: plain TCP or TLS over TCP, with read and write sides that
//! can wait at the same time.

use std::{
    io,
    pin::{Pin, pin},
    task::{Context, Poll, ready},
};

use bytes::BytesMut;
use tokio::{
    io::{AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf},
    net::TcpStream,
};
use tokio_rustls::server::TlsStream;
use ws_frame::Connection;
use ws_io::{Transport, TxQueue};

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
        self.halves().0.read(buf).await
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

/// Plain TCP waits for readability before asking for the receive buffer (an idle connection
/// holds none) and writes without waiting when the socket takes it; TLS reads and writes its
/// halves.
impl Transport for Io {
    fn poll_read_ws(
        &mut self,
        cx: &mut Context<'_>,
        ws: &mut Connection,
        probe: bool,
    ) -> Poll<io::Result<usize>> {
        match self {
            Self::Plain(s) => {
                if probe {
                    let mut one = [0u8; 1];
                    let mut peek = ReadBuf::new(&mut one);
                    if ready!(s.poll_peek(cx, &mut peek))? == 0 {
                        return Poll::Ready(Ok(0));
                    }
                }
                // TcpStream's own poll_read (the stream's single reader slot: no waiter list,
                // no lock), not poll_read_ready + try_read: a read that leaves room in the
                // buffer drained the socket, and poll_read then clears the readiness, so the
                // next wait parks at once instead of spending a read on EAGAIN (one syscall
                // per echoed message with one message in flight).
                pin!(s.read_buf(ws.read_buf())).poll(cx)
            }
            Self::Tls { r, .. } => pin!(r.read_buf(ws.read_buf())).poll(cx),
        }
    }

    fn poll_write_queue(
        &mut self,
        cx: &mut Context<'_>,
        tx: &mut TxQueue,
    ) -> Poll<io::Result<usize>> {
        let n = match self {
            Self::Plain(s) => loop {
                ready!(s.poll_write_ready(cx))?;
                let r = match tx.contiguous() {
                    Some(buf) => s.try_write(buf),
                    None => s.try_write_vectored(&tx.slices()),
                };
                match r {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    other => break other?,
                }
            },
            Self::Tls { w, dirty, .. } => {
                if tx.is_empty() {
                    ready!(Pin::new(&mut *w).poll_flush(cx))?;
                    *dirty = false;
                    return Poll::Ready(Ok(0));
                }
                let n = ready!(match tx.contiguous() {
                    Some(buf) => Pin::new(&mut *w).poll_write(cx, buf),
                    None => Pin::new(&mut *w).poll_write_vectored(cx, &tx.slices()),
                })?;
                *dirty = true;
                n
            }
        };
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        tx.advance(n);
        Poll::Ready(Ok(n))
    }

    fn wants_flush(&self) -> bool {
        Self::wants_flush(self)
    }

    fn try_write_now(&mut self, tx: &mut TxQueue) -> io::Result<usize> {
        Self::try_write_now(self, tx)
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls { w, .. } => Pin::new(w).poll_shutdown(cx),
        }
    }
}

impl Reader<'_> {
    /// Reads once into `buf`. Cancel-safe.
    pub(crate) async fn read(self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            // poll_read_ready uses the stream's single reader slot: no waiter list, no lock.
            Self::Plain(s) => {
                std::future::poll_fn(|cx| {
                    loop {
                        ready!(s.poll_read_ready(cx))?;
                        match s.try_read_buf(buf) {
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            other => return Poll::Ready(other),
                        }
                    }
                })
                .await
            }
            Self::Tls(r) => r.read_buf(buf).await,
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
