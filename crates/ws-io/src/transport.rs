//! The byte stream under a connection, as the drive loop uses it.

use std::{
    io,
    pin::{Pin, pin},
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use ws_frame::Connection;

use crate::tx::TxQueue;

/// A connection's byte stream. The drive loop polls reading and writing from one task, so a
/// transport needs no split halves. Every method is cancel-safe: `Pending` consumed nothing.
///
/// [`Stream`] implements it for any tokio stream; a runtime with a faster path of its own
/// (ws-server's plain TCP: readiness before a receive buffer is allocated, writes without
/// waiting) implements it directly.
pub trait Transport: Send + Unpin {
    /// Reads once into the connection's receive buffer ([`Connection::read_buf`]); `Ok(0)` at
    /// end of stream. `probe`: the buffer holds no allocation yet, so a transport that can wait
    /// for data without a buffer should do so before asking for it.
    ///
    /// # Errors
    /// The transport's read error.
    fn poll_read_ws(
        &mut self,
        cx: &mut Context<'_>,
        ws: &mut Connection,
        probe: bool,
    ) -> Poll<io::Result<usize>>;

    /// Writes some of `tx` and advances it past what was written, or flushes when `tx` is
    /// empty. Returns the bytes taken from the queue (0 after a flush).
    ///
    /// # Errors
    /// The transport's write error; `WriteZero` when it took nothing.
    fn poll_write_queue(
        &mut self,
        cx: &mut Context<'_>,
        tx: &mut TxQueue,
    ) -> Poll<io::Result<usize>>;

    /// Whether written bytes wait for a flush (a write call has work with an empty queue).
    fn wants_flush(&self) -> bool;

    /// Writes what the transport takes right now without waiting; returns the bytes taken
    /// from the queue. The default takes nothing (everything goes through
    /// [`Transport::poll_write_queue`]).
    ///
    /// # Errors
    /// The transport's write error.
    fn try_write_now(&mut self, tx: &mut TxQueue) -> io::Result<usize> {
        let _ = tx;
        Ok(0)
    }

    /// Sends end of stream (FIN, TLS close_notify).
    ///
    /// # Errors
    /// The transport's error.
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// Any tokio byte stream (TCP, TLS, an in-memory duplex, a boxed stream) as a [`Transport`]:
/// reads through `read_buf`, writes the queue (vectored when it holds separate payloads) and
/// flushes once it is empty.
#[derive(Debug)]
pub struct Stream<S> {
    inner: S,
    /// Bytes were written since the last flush.
    dirty: bool,
}

impl<S> Stream<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            dirty: false,
        }
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin> Transport for Stream<S> {
    fn poll_read_ws(
        &mut self,
        cx: &mut Context<'_>,
        ws: &mut Connection,
        _probe: bool,
    ) -> Poll<io::Result<usize>> {
        pin!(self.inner.read_buf(ws.read_buf())).poll(cx)
    }

    fn poll_write_queue(
        &mut self,
        cx: &mut Context<'_>,
        tx: &mut TxQueue,
    ) -> Poll<io::Result<usize>> {
        if tx.is_empty() {
            if self.dirty {
                ready!(Pin::new(&mut self.inner).poll_flush(cx))?;
                self.dirty = false;
            }
            return Poll::Ready(Ok(0));
        }
        let n = ready!(match tx.contiguous() {
            Some(buf) => Pin::new(&mut self.inner).poll_write(cx, buf),
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, &tx.slices()),
        })?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        tx.advance(n);
        self.dirty = true;
        Poll::Ready(Ok(n))
    }

    fn wants_flush(&self) -> bool {
        self.dirty
    }

    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
