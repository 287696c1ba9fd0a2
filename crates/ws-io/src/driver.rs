//! The drive loop: one [`Driver::next`] call runs the connection until something is for the
//! application.

use std::{
    future::{Future, poll_fn},
    io,
    pin::{Pin, pin},
    task::Poll,
    time::{Duration, Instant},
};

use tokio::time::Sleep;
use ws_frame::{Connection, Event};

use crate::{transport::Transport, tx::TxQueue};

/// The drive loop's clock: tokio's, so that a paused test clock
/// (`#[tokio::test(start_paused = true)]`) drives every timer of the connection.
#[must_use]
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What the application allows during one [`Driver::next`] call: its backpressure and flow
/// control, decided from [`Driver::backlog`] and its own state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gates {
    /// Read from the transport.
    pub read: bool,
    /// Write to the transport (false: a write throttle waits).
    pub write: bool,
    /// Hand out events (false: reading is paused and what was read stays in the buffer).
    pub events: bool,
    /// A time of the application's own (a throttle, a buffer release): [`Step::Wake`] then.
    pub wake_at: Option<Instant>,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            read: true,
            write: true,
            events: true,
            wake_at: None,
        }
    }
}

/// What one [`Driver::next`] call ended with.
#[derive(Debug)]
pub enum Step<X> {
    /// An event of the connection.
    Event(Event),
    /// The connection failed (a protocol error, a limit, a timeout, end of stream before the
    /// close handshake). A Close frame with the error's code is queued when it may be sent;
    /// call `next` again to write it and reach [`Step::End`].
    /// [`ws_frame::Error::PongTimeout`]: the peer is gone; drop the transport.
    Error(ws_frame::Error),
    /// A keep-alive ping is due at this time ([`Connection::heartbeat_due`]): the application
    /// may count the interval as kept alive ([`Connection::skip_heartbeat`]) before the next
    /// call sends the ping.
    HeartbeatDue(Instant),
    /// This many bytes were read (0: end of stream, [`Connection::handle_eof`] was called);
    /// reported after the events they completed (unless events are gated off), so that what
    /// the connection holds ([`Connection::partial_message_bytes`]) is exact then. With
    /// [`Driver::join_reads`], a read followed at once by a write comes with that write's step
    /// ([`Driver::take_read`]).
    Read(usize),
    /// This many bytes were written.
    Wrote(usize),
    /// The application's future completed.
    Other(X),
    /// [`Gates::wake_at`] passed.
    Wake,
    /// The transport is done: the close handshake completed or the connection failed, and
    /// everything queued was written ([`End::Closed`]), or the transport failed.
    End(End),
}

/// Why the transport is done.
#[derive(Debug)]
pub enum End {
    /// The connection wants the transport closed and the queue is written: shut it down (a
    /// server lingers for the peer's FIN).
    Closed,
    /// End of stream seen and the connection closed: nothing more to write or read.
    Eof,
    /// Reading failed.
    ReadFailed(io::Error),
    /// Writing failed.
    WriteFailed(io::Error),
}

/// One WebSocket connection over a transport: the core, its write queue and its one timer.
///
/// ```text
///  next():  events (if Gates::events) -> Step::Event / Step::Error
///           queue what the core yields (TxQueue: small frames batched, large ones vectored),
///           try a write without waiting
///           End::Closed once the core wants the transport closed and all is written
///           due timers -> Step::HeartbeatDue first, then Connection::handle_timeout
///           sleep until Connection::poll_timeout (or Gates::wake_at)
///           wait (biased): write | read | the application's future | timer
/// ```
///
/// Backpressure: the write queue is bounded by the application's gates: it reads and takes
/// commands only while [`Driver::backlog`] is below its limit (see
/// [`Driver::below_limit`]).
#[derive(Debug)]
pub struct Driver<T> {
    /// The transport.
    pub io: T,
    /// The sans-IO connection.
    pub ws: Box<Connection>,
    tx: TxQueue,
    write_limit: usize,
    sleep: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    eof: bool,
    /// The receive buffer holds an allocation (idle connections keep none).
    rx_allocated: bool,
    /// A HeartbeatDue step was handed out for the current due ping.
    asked: bool,
    /// A write without waiting was tried since the last wait.
    tried_now: bool,
    /// Bytes read, reported once the events they carry are handed out.
    read: Option<usize>,
    /// [`Driver::join_reads`] is on.
    join_reads: bool,
    /// Bytes read that went out with a [`Step::Wrote`] (or a failed write) instead of a
    /// [`Step::Read`]: [`Driver::take_read`].
    joined: Option<usize>,
}

enum Wake<X> {
    Wrote(io::Result<usize>),
    Read(io::Result<usize>),
    Other(X),
    Timer,
    Stuck,
}

impl<T: Transport> Driver<T> {
    /// A driver for `ws` over `io`; reading and new sends stop while more than `write_limit`
    /// bytes wait to be written (as decided by the application's gates, with
    /// [`Driver::below_limit`]).
    pub fn new(io: T, ws: Box<Connection>, write_limit: usize) -> Self {
        let mut tx = TxQueue::default();
        tx.log_id = crate::frames::next_id();
        Self {
            io,
            ws,
            tx,
            write_limit: write_limit.max(1),
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
            armed: None,
            eof: false,
            rx_allocated: false,
            asked: false,
            tried_now: false,
            read: None,
            join_reads: false,
            joined: None,
        }
    }

    /// Joins a read to the write that follows it (off by default): when the events of a read
    /// are handed out and the same call then writes without waiting, the call returns
    /// [`Step::Wrote`] alone (or the write's [`Step::End`]) and the bytes read are taken with
    /// [`Driver::take_read`] instead of coming as a [`Step::Read`] of their own. One step
    /// fewer per request answered at once (an echo). End of stream (`Read(0)`) and a read not
    /// followed by a write come as [`Step::Read`] as ever. An application that turns this on
    /// calls [`Driver::take_read`] after every step.
    pub fn join_reads(&mut self, on: bool) {
        self.join_reads = on;
    }

    /// The bytes of a read joined to the step just returned ([`Driver::join_reads`]), once.
    pub fn take_read(&mut self) -> Option<usize> {
        self.joined.take()
    }

    /// The connection id in the frame log ([`crate::frames`]): unique in the process unless
    /// set with [`Driver::set_log_id`].
    #[must_use]
    pub fn log_id(&self) -> u64 {
        self.tx.log_id
    }

    /// Sets the connection id of the frame log (a runtime's own connection id).
    pub fn set_log_id(&mut self, id: u64) {
        self.tx.log_id = id;
    }

    /// Bytes waiting to be written: the write queue plus what the core has queued.
    #[must_use]
    pub fn backlog(&self) -> usize {
        self.tx.len() + self.ws.pending_transmit_bytes()
    }

    /// Whether the backlog is below the write limit (new sends may be taken, reading goes on).
    #[must_use]
    pub fn below_limit(&self) -> bool {
        self.backlog() < self.write_limit
    }

    /// The write limit.
    #[must_use]
    pub fn write_limit(&self) -> usize {
        self.write_limit
    }

    /// Whether end of stream was read.
    #[must_use]
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// The write queue (to release its buffers when idle, or to queue raw bytes).
    pub fn tx(&mut self) -> &mut TxQueue {
        &mut self.tx
    }

    /// Releases the receive buffer when it is empty and holds more than `above` bytes of
    /// capacity (0: any; idle connections keep no memory).
    pub fn release_read_buffer(&mut self, above: usize) {
        if self.rx_allocated {
            let rx = self.ws.read_buf();
            if rx.is_empty() && rx.capacity() > above {
                *rx = bytes::BytesMut::new();
                self.rx_allocated = false;
            }
        }
    }

    /// Feeds bytes that arrived before the driver took over (after the handshake).
    pub fn feed(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.rx_allocated = true;
            self.ws.feed(bytes);
        }
    }

    /// Runs the connection until there is something for the application; `other` is
    /// whatever else the application waits for (commands, delivery room, a kill signal),
    /// polled after the transport and before the timer. It must be cancel-safe: it is
    /// dropped whenever something else happens first.
    pub async fn next<X>(
        &mut self,
        gates: Gates,
        other: Option<impl Future<Output = X>>,
    ) -> Step<X> {
        // Pinned on the stack for the whole call: no allocation per step.
        let mut other = pin!(other);
        let has_other = other.is_some();
        loop {
            if gates.events {
                match self.ws.poll_event() {
                    Ok(Some(event)) => {
                        if crate::frames::enabled() {
                            crate::frames::log_in(self.tx.log_id, &event);
                        }
                        return Step::Event(event);
                    }
                    Ok(None) => {}
                    Err(error) => return Step::Error(error),
                }
            }
            // A read is reported once its events are out; joined, it goes out with the write
            // that follows, when there is one.
            let read = self.read.take();
            if let Some(n) = read
                && !(self.join_reads && n > 0)
            {
                return Step::Read(n);
            }
            self.tx.collect(&mut self.ws);
            if !self.tx.is_empty() && gates.write && !self.tried_now {
                self.tried_now = true;
                match self.io.try_write_now(&mut self.tx) {
                    Ok(0) => {}
                    Ok(n) => {
                        self.joined = read;
                        return Step::Wrote(n);
                    }
                    Err(e) => {
                        self.joined = read;
                        self.eof = true;
                        return Step::End(End::WriteFailed(e));
                    }
                }
            }
            if let Some(n) = read {
                return Step::Read(n);
            }
            if self.ws.wants_transport_close() && self.tx.is_empty() && !self.io.wants_flush() {
                return Step::End(End::Closed);
            }
            if self.eof && self.ws.is_closed() && self.ws.wants_transport_close() {
                return Step::End(End::Eof);
            }

            // The one timer. A HeartbeatDue the application answered with skip_heartbeat is
            // no longer due: the next due ping is asked about again.
            if self.asked && !self.ws.heartbeat_due(now()) {
                self.asked = false;
            }
            let due = self.ws.wants_now() || self.ws.poll_timeout().is_some_and(|at| at <= now());
            if due {
                let now = now();
                if !self.asked && self.ws.heartbeat_due(now) {
                    self.asked = true;
                    return Step::HeartbeatDue(now);
                }
                self.asked = false;
                self.ws.handle_timeout(now);
                continue;
            }
            let deadline = [self.ws.poll_timeout(), gates.wake_at]
                .into_iter()
                .flatten()
                .min();
            if deadline != self.armed {
                if let Some(at) = deadline {
                    self.sleep.as_mut().reset(at.into());
                }
                self.armed = deadline;
            }

            // Wait.
            let can_write = (!self.tx.is_empty() || self.io.wants_flush()) && gates.write;
            let can_read = gates.read && !self.eof;
            let probe = !self.rx_allocated;
            let io = &mut self.io;
            let ws = &mut self.ws;
            let tx = &mut self.tx;
            let transport = poll_fn(|cx| {
                if can_write && let Poll::Ready(r) = io.poll_write_queue(cx, tx) {
                    return Poll::Ready(Wake::Wrote(r));
                }
                if can_read && let Poll::Ready(r) = io.poll_read_ws(cx, ws, probe) {
                    return Poll::Ready(Wake::Read(r));
                }
                Poll::Pending
            });
            let armed = self.armed.is_some();
            let sleep = self.sleep.as_mut();
            let wake = tokio::select! {
                biased;
                w = transport, if can_write || can_read => w,
                x = poll_fn(|cx| match other.as_mut().as_pin_mut() {
                    Some(f) => f.poll(cx),
                    None => Poll::Pending,
                }), if has_other => Wake::Other(x),
                () = sleep, if armed => Wake::Timer,
                // Nothing can happen any more (no transport work allowed, nothing else to wait
                // for, no deadline): the connection is over. Without this arm select! panics.
                else => Wake::Stuck,
            };
            self.tried_now = false;
            match wake {
                Wake::Wrote(Ok(n)) => return Step::Wrote(n),
                Wake::Wrote(Err(e)) => {
                    self.eof = true;
                    return Step::End(End::WriteFailed(e));
                }
                Wake::Read(Err(e)) => {
                    self.eof = true;
                    return Step::End(End::ReadFailed(e));
                }
                Wake::Read(Ok(n)) => {
                    if n == 0 {
                        self.eof = true;
                        self.ws.handle_eof();
                    } else {
                        self.rx_allocated = true;
                    }
                    self.read = Some(n);
                }
                Wake::Other(x) => return Step::Other(x),
                Wake::Stuck => return Step::End(End::Closed),
                Wake::Timer => {
                    self.armed = None;
                    if gates.wake_at.is_some_and(|at| at <= now()) {
                        return Step::Wake;
                    }
                }
            }
        }
    }

    /// Sends end of stream on the transport.
    ///
    /// # Errors
    /// The transport's error.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.io.poll_shutdown(cx)).await
    }

    /// The transport and the connection, for what the runtime does after the loop.
    pub fn into_parts(self) -> (T, Box<Connection>) {
        (self.io, self.ws)
    }
}
