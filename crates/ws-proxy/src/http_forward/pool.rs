//! Idle upstream connections kept for reuse, and the probe that drops closed ones.

use super::*;

pub(super) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

pub(super) type Conn = Box<dyn Stream>;

/// Idle upstream connections.
pub(super) struct Pool {
    pub(super) idle: Mutex<Vec<(Conn, Instant)>>,
    pub(super) max: usize,
    pub(super) ttl: Duration,
}

impl Pool {
    /// The most recently used idle connection that still looks open.
    pub(super) async fn take(&self) -> Option<Conn> {
        loop {
            let mut conn = {
                let mut idle = lock(&self.idle);
                let now = Instant::now();
                idle.retain(|(_, since)| now.duration_since(*since) < self.ttl);
                idle.pop()?.0
            };
            if std::future::poll_fn(|cx| Poll::Ready(still_idle(&mut conn, cx))).await {
                return Some(conn);
            }
            tracing::trace!("dropped an idle upstream connection the upstream had closed");
        }
    }

    pub(super) fn put(&self, conn: Conn) {
        let mut idle = lock(&self.idle);
        let now = Instant::now();
        idle.retain(|(_, since)| now.duration_since(*since) < self.ttl);
        if idle.len() < self.max {
            idle.push((conn, now));
        }
    }
}

/// Whether an idle connection can carry a request: a read would block. End of stream, an
/// error or bytes nobody asked for mean the upstream closed it (or broke it) meanwhile.
pub(super) fn still_idle(conn: &mut Conn, cx: &mut Context<'_>) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    Pin::new(conn).poll_read(cx, &mut buf).is_pending()
}
