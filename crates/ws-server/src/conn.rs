//! The connection task: one loop per WebSocket connection.
//!
//! ```text
//!  loop:  drain ws.poll_event() -> handler (may queue frames on `ws`)   [not while paused]
//!         collect queued frames -> TxQueue (small frames batched, large ones vectored)
//!         stop once ws.wants_transport_close() and everything is written
//!         account partly received bytes (server-wide budget, 1013 past it)
//!         re-arm the one timer (close handshake, message deadline, heartbeat, pong, idle,
//!         throttle, shrink)
//!         select (biased): kill | write | read [not while paused] | command | timer
//!         after a read: take the commands already queued (reads never starve them)
//! ```
//!
//! Read flow control (`ConnInfo::read_paused`, set by `Ctx::pause_reading` and
//! `ConnHandle::pause_reading`) only gates the read branch and event delivery; writes,
//! commands and timers go on, except the deadline of an unfinished fragmented message, which
//! counts afresh after the pause. A connection whose close handshake has started reads anyway.
//!
//! Handler panics: every handler call is polled under `catch_unwind`. A panic closes that
//! connection with 1011, goes to `on_error` as `Error::HandlerPanicked` and to tracing, and
//! the handler gets nothing more for the connection but `on_disconnect`. Whatever ends the
//! task, a drop guard unregisters the connection and gives back its share of the server-wide
//! partial-message total.

use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    pin::{Pin, pin},
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use ws_frame::{CloseCode, Connection, Event, Initiator, Message};

use crate::{
    error::Error,
    handle::{AdmitGuard, ServerHandle},
    handler::{Ctx, Disconnect, Fragment, Handler, Sink},
    io::{Io, Target},
    registry::{Command, ConnInfo, KILL_DROP},
    throttle::TokenBucket,
    tx::TxQueue,
};

/// Commands applied per wake-up before writing (batches broadcasts into one write).
const COMMAND_BATCH: usize = 64;
/// Idle connections release their buffers after this long without traffic.
const SHRINK_PERIOD: Duration = Duration::from_secs(5);
/// A receive buffer above this is released as soon as it is empty.
const SHRINK_ABOVE: usize = 256 * 1024;
/// Most time spent on a lingering close (FIN sent, waiting for the peer's).
pub(crate) const LINGER: Duration = Duration::from_secs(2);
/// Refusals for the server-wide partial-message budget are logged at most this often.
const PARTIAL_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Close reason of a connection refused for the server-wide partial-message budget.
const PARTIAL_REASON: &str = "server busy: too much data in partly received messages";

/// Polls a future (a handler call, a connection task), turning a panic into `Err(message)`.
pub(crate) struct CatchUnwind<F>(pub(crate) F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let fut = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(fut).poll(cx))) {
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Undoes a connection's registration however its task ends (a panic included): takes it out
/// of the registry and gives its partly received bytes back to the server-wide total.
struct Registered {
    server: ServerHandle,
    info: Arc<ConnInfo>,
    /// This connection's share of `Registry::partial_bytes`.
    held: usize,
    unregistered: bool,
}

impl Registered {
    /// Sets this connection's share of the server-wide total; returns the new total when the
    /// share grew.
    fn hold(&mut self, held: usize) -> Option<usize> {
        let total = &self.server.inner.registry.partial_bytes;
        if held > self.held {
            let more = held - self.held;
            self.held = held;
            Some(total.fetch_add(more, Ordering::AcqRel) + more)
        } else {
            if held < self.held {
                total.fetch_sub(self.held - held, Ordering::AcqRel);
                self.held = held;
            }
            None
        }
    }

    fn unregister(&mut self) {
        if !std::mem::replace(&mut self.unregistered, true) {
            self.server.inner.unregister(&self.info);
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.hold(0);
        self.unregister();
    }
}

/// After a handler panic: log it, close the connection with 1011, tell `on_error`.
async fn handler_panicked<H: Handler>(
    handler: &H,
    ws: &mut Connection,
    info: &Arc<ConnInfo>,
    disconnect: &mut Option<Disconnect>,
    method: &'static str,
    message: String,
) {
    tracing::error!(
        conn = %info.id,
        peer = %info.peer,
        method,
        panic = %message,
        "handler panicked; closing the connection with 1011"
    );
    disconnect.get_or_insert(Disconnect {
        code: CloseCode::INTERNAL,
        reason: format!("handler panicked in {method}"),
        by: Initiator::Local,
    });
    let _ = ws.close(CloseCode::INTERNAL, "internal error", Instant::now());
    let err = Error::HandlerPanicked { method, message };
    if let Err(again) = CatchUnwind(Box::pin(handler.on_error(info.peer, Some(info), &err))).await {
        tracing::error!(conn = %info.id, panic = %again, "on_error panicked too");
    }
}

/// The buffer-release timer (the protocol's timers, heartbeat and idle timeout included, are
/// the connection's own: `ws.poll_timeout()`).
struct Timers {
    next_shrink: Option<Instant>,
    /// Something was received since the shrink check last looked.
    rx_shrink: bool,
}

impl Timers {
    fn next(&self) -> Option<Instant> {
        self.next_shrink
    }

    /// Whether the buffers should be released at `now`.
    fn shrink_due(&mut self, now: Instant) -> bool {
        if self.next_shrink.is_some_and(|at| now >= at) {
            if std::mem::take(&mut self.rx_shrink) {
                self.next_shrink = Some(now + SHRINK_PERIOD);
            } else {
                self.next_shrink = None;
                return true;
            }
        }
        false
    }
}

enum Wake {
    Kill,
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
    Cmd(Option<Command>),
    Timer,
}

/// Whether the connection should neither read nor deliver events now: paused by the
/// application, unless the server has sent a Close and waits for the peer's (for a server,
/// `poll_timeout` is set exactly then: the close handshake deadline).
fn read_paused(info: &ConnInfo, ws: &Connection) -> bool {
    info.is_reading_paused() && !ws.is_closing()
}

/// An upgraded connection ready to run.
pub(crate) struct Established {
    pub(crate) io: Io,
    /// Boxed: the task future would otherwise carry the connection state in several
    /// generator slots (argument, local, caller's match binding).
    pub(crate) ws: Box<Connection>,
    pub(crate) info: Arc<ConnInfo>,
    pub(crate) cmds: mpsc::Receiver<Command>,
    /// Bytes that arrived after the request head.
    pub(crate) leftover: Bytes,
    /// The connection's admission slot.
    pub(crate) guard: AdmitGuard,
}

fn apply(ws: &mut Connection, cmd: Command) {
    // Commands for a closing connection are dropped: the sender cannot be told anymore.
    let _ = match cmd {
        Command::Send(msg) => ws.send(msg),
        Command::SendWith(b) => ws.send_with(b.0, b.1),
        Command::Ping(payload) => ws.ping(payload),
        Command::Event(ev) => ws.send(Message::text(ev.data)),
        Command::Close(b) => ws.close(b.0, &b.1, Instant::now()),
        Command::Wake => Ok(()),
    };
}

/// Runs one WebSocket connection to its end, then unregisters it and reports the disconnect.
pub(crate) async fn run<H: Handler>(server: ServerHandle, handler: Arc<H>, est: Established) {
    let Established {
        mut io,
        mut ws,
        info,
        mut cmds,
        leftover,
        guard: _guard,
    } = est;
    let mut registered = Registered {
        server: server.clone(),
        info: info.clone(),
        held: 0,
        unregistered: false,
    };
    let config = &server.inner.config;
    let mut data: Option<Box<dyn Any + Send + Sync>> = None;
    let mut tx = TxQueue::default();
    let mut disconnect: Option<Disconnect> = None;
    let now = Instant::now();
    let mut timers = Timers {
        next_shrink: None,
        rx_shrink: false,
    };
    let mut throttle = config
        .throttle
        .map(|rate| (TokenBucket::new(rate, now), TokenBucket::new(rate, now)));
    let mut armed: Option<Instant> = None;
    let sleep = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(sleep);
    let kill = info.kill.notified();
    tokio::pin!(kill);
    let mut killed = false;
    // Whether the receive buffer holds an allocation (idle connections keep none).
    let mut rx_allocated = false;
    let mut pending_kill = false;
    let mut write_wait_hint: Option<Instant> = None;
    let mut eof = false;
    let mut read_since_shrink = 0usize;
    // Set once a handler method panicked: the handler gets nothing more but on_disconnect.
    let mut broken = false;
    let mut was_paused = false;

    macro_rules! ctx {
        () => {
            Ctx {
                sink: Sink::Ws(&mut ws),
                info: &info,
                server: &server,
                data: &mut data,
            }
        };
    }

    if !leftover.is_empty() {
        rx_allocated = true;
        ws.feed(&leftover);
        timers.rx_shrink = true;
    }
    drop(leftover);
    // Cold paths are boxed so that they do not grow every connection's task.
    if let Err(panic) = CatchUnwind(Box::pin(handler.on_connect(&mut ctx!()))).await {
        broken = true;
        let h = &*handler;
        Box::pin(handler_panicked(
            h,
            &mut ws,
            &info,
            &mut disconnect,
            "on_connect",
            panic,
        ))
        .await;
    }

    let mut dead = false;
    loop {
        // 1. events (what was already read stays in the receive buffer while paused)
        while !read_paused(&info, &ws) {
            let mut panicked: Option<(&'static str, String)> = None;
            match ws.poll_event() {
                Ok(Some(event)) => match event {
                    Event::Closed { code, reason, by } => {
                        disconnect.get_or_insert(Disconnect {
                            code,
                            reason: reason.as_str().to_owned(),
                            by,
                        });
                    }
                    _ if broken => {}
                    Event::Message(msg) => {
                        panicked = CatchUnwind(pin!(handler.on_message(&mut ctx!(), msg)))
                            .await
                            .err()
                            .map(|p| ("on_message", p));
                    }
                    Event::Fragment {
                        text,
                        payload,
                        first,
                        fin,
                    } => {
                        let fragment = Fragment {
                            text,
                            payload,
                            first,
                            fin,
                        };
                        panicked = CatchUnwind(pin!(handler.on_fragment(&mut ctx!(), fragment)))
                            .await
                            .err()
                            .map(|p| ("on_fragment", p));
                    }
                    Event::Ping(p) => {
                        panicked = CatchUnwind(pin!(handler.on_ping(&mut ctx!(), p)))
                            .await
                            .err()
                            .map(|p| ("on_ping", p));
                    }
                    Event::Pong(p) => {
                        panicked = CatchUnwind(pin!(handler.on_pong(&mut ctx!(), p)))
                            .await
                            .err()
                            .map(|p| ("on_pong", p));
                    }
                },
                Ok(None) => break,
                Err(ws_frame::Error::PongTimeout { .. }) => {
                    // The peer is gone: no Close frame, no lingering.
                    disconnect.get_or_insert(Disconnect {
                        code: CloseCode::ABNORMAL,
                        reason: "heartbeat timeout".into(),
                        by: Initiator::Local,
                    });
                    dead = true;
                    break;
                }
                Err(e) => {
                    let by = if matches!(e, ws_frame::Error::UnexpectedEof) {
                        Initiator::Remote
                    } else {
                        Initiator::Local
                    };
                    disconnect.get_or_insert(Disconnect {
                        code: e.close_code(),
                        reason: e.to_string(),
                        by,
                    });
                    if !matches!(e, ws_frame::Error::UnexpectedEof) && !broken {
                        let err = Error::WebSocket(e);
                        let call = Box::pin(handler.on_error(info.peer, Some(&info), &err));
                        if let Err(panic) = CatchUnwind(call).await {
                            broken = true;
                            tracing::error!(conn = %info.id, panic = %panic, "on_error panicked");
                        }
                    }
                    break;
                }
            }
            if let Some((method, panic)) = panicked {
                broken = true;
                let h = &*handler;
                Box::pin(handler_panicked(
                    h,
                    &mut ws,
                    &info,
                    &mut disconnect,
                    method,
                    panic,
                ))
                .await;
            }
        }
        if dead {
            eof = true;
            break;
        }
        // Bytes held in partly received messages, against the server-wide budget.
        let held = ws.partial_message_bytes();
        if held != registered.held {
            let budget = config.max_partial_bytes;
            if let Some(total) = registered.hold(held).filter(|&t| budget != 0 && t > budget) {
                refuse_partial(&server, &info, &mut ws, &mut disconnect, total, budget);
                registered.hold(ws.partial_message_bytes());
            }
        }
        if read_since_shrink > SHRINK_ABOVE {
            read_since_shrink = 0;
            let rx = ws.read_buf();
            if rx.is_empty() && rx.capacity() > SHRINK_ABOVE {
                *rx = BytesMut::new();
                rx_allocated = false;
            }
        }

        // 2. output: try the write at once (plain TCP); what does not fit waits for the select.
        tx.collect(&mut ws);
        if !tx.is_empty() && write_wait_hint.is_none() {
            match io.try_write_now(&mut tx) {
                Ok(n) => {
                    if n > 0 {
                        info.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        if let Some((_, w)) = &mut throttle {
                            w.consume(n, Instant::now());
                        }
                    }
                }
                Err(e) => {
                    disconnect.get_or_insert(Disconnect {
                        code: CloseCode::ABNORMAL,
                        reason: e.to_string(),
                        by: Initiator::Remote,
                    });
                    eof = true;
                    break;
                }
            }
        }
        if ws.wants_transport_close() && tx.is_empty() && !io.wants_flush() {
            break;
        }
        if eof && ws.is_closed() && ws.wants_transport_close() {
            break;
        }

        // 3. the one timer (the connection's own timers run differently while reading is
        // paused: see Connection::set_read_paused)
        let paused = read_paused(&info, &ws);
        if paused != was_paused {
            was_paused = paused;
            ws.set_read_paused(paused);
        }
        if ws.wants_now() {
            Box::pin(fire_timers(
                &*handler,
                &mut ws,
                &info,
                &server,
                &mut data,
                &mut disconnect,
                &mut broken,
                Instant::now(),
            ))
            .await;
            // A deadline passed meanwhile (or a ping was queued): report and write first.
            continue;
        }
        let ws_deadline = ws.poll_timeout();
        let now_if_throttled = throttle.as_ref().map(|_| Instant::now());
        let (read_wait, write_wait) = match (&mut throttle, now_if_throttled) {
            (Some((r, w)), Some(now)) => (r.ready_at(now), w.ready_at(now)),
            _ => (None, None),
        };
        let deadline = [timers.next(), ws_deadline, read_wait, write_wait]
            .into_iter()
            .flatten()
            .min();
        write_wait_hint = write_wait;
        if deadline != armed {
            if let Some(at) = deadline {
                sleep.as_mut().reset(at.into());
            }
            armed = deadline;
        }

        // 4. wait
        let backlog = tx.len() < config.write_buffer_limit;
        let can_read = !eof && backlog && read_wait.is_none() && !paused;
        let can_write = (!tx.is_empty() || io.wants_flush()) && write_wait.is_none();
        let can_cmd = backlog && !ws.is_closed();
        let (reader, writer) = io.halves();
        let wake = if pending_kill && !killed {
            Wake::Kill
        } else {
            tokio::select! {
                biased;
                // Only polled while commands cannot arrive; otherwise a kill comes as
                // Command::Wake (see ConnInfo::kill).
                () = &mut kill, if !killed && !can_cmd => Wake::Kill,
                r = writer.write(&mut tx), if can_write => Wake::Wrote(r),
                r = reader.read(Target::Ws(&mut ws, !rx_allocated)), if can_read => Wake::Read(r),
                c = cmds.recv(), if can_cmd => Wake::Cmd(c),
                () = &mut sleep, if armed.is_some() => Wake::Timer,
            }
        };
        match wake {
            Wake::Kill => {
                killed = true;
                pending_kill = false;
                let code = info.kill_code.load(Ordering::Acquire);
                if code == KILL_DROP {
                    disconnect.get_or_insert(Disconnect {
                        code: CloseCode::ABNORMAL,
                        reason: "dropped".into(),
                        by: Initiator::User,
                    });
                    eof = true;
                    break;
                }
                let reason = if code == CloseCode::TRY_AGAIN.as_u16() {
                    "send queue full"
                } else {
                    ""
                };
                let _ = ws.close(CloseCode::from_u16(code), reason, Instant::now());
            }
            Wake::Wrote(Ok(n)) => {
                info.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                if let (Some((_, w)), Some(now)) = (&mut throttle, now_if_throttled) {
                    w.consume(n, now);
                }
            }
            Wake::Wrote(Err(e)) | Wake::Read(Err(e)) => {
                disconnect.get_or_insert(Disconnect {
                    code: CloseCode::ABNORMAL,
                    reason: e.to_string(),
                    by: Initiator::Remote,
                });
                eof = true;
                break;
            }
            Wake::Read(Ok(0)) => {
                eof = true;
                ws.handle_eof();
            }
            Wake::Read(Ok(n)) => {
                rx_allocated = true;
                info.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                read_since_shrink += n;
                if !timers.rx_shrink {
                    timers.rx_shrink = true;
                    if timers.next_shrink.is_none() {
                        timers.next_shrink = Some(Instant::now() + SHRINK_PERIOD);
                    }
                }
                if let (Some((r, _)), Some(now)) = (&mut throttle, now_if_throttled) {
                    r.consume(n, now);
                }
                // The select prefers reads: take what other tasks queued meanwhile, so that a
                // peer that keeps sending does not hold up frames queued for it.
                if can_cmd {
                    for _ in 0..COMMAND_BATCH {
                        match cmds.try_recv() {
                            Ok(cmd) => apply(&mut ws, cmd),
                            Err(_) => break,
                        }
                    }
                    pending_kill = !killed && info.kill_requested().is_some();
                }
            }
            Wake::Cmd(Some(cmd)) => {
                apply(&mut ws, cmd);
                for _ in 1..COMMAND_BATCH {
                    match cmds.try_recv() {
                        Ok(cmd) => apply(&mut ws, cmd),
                        Err(_) => break,
                    }
                }
                pending_kill = !killed && info.kill_requested().is_some();
            }
            Wake::Cmd(None) => {}
            Wake::Timer => {
                armed = None;
                let now = Instant::now();
                Box::pin(fire_timers(
                    &*handler,
                    &mut ws,
                    &info,
                    &server,
                    &mut data,
                    &mut disconnect,
                    &mut broken,
                    now,
                ))
                .await;
                if timers.shrink_due(now) {
                    tx.shrink();
                    if rx_allocated {
                        let rx = ws.read_buf();
                        if rx.is_empty() {
                            *rx = BytesMut::new();
                            rx_allocated = false;
                        }
                    }
                }
            }
        }
    }

    // Lingering close: send FIN, then read until the peer's FIN (bounded), so that unread
    // input does not turn our close into a reset that could destroy the Close frame.
    drop(server);
    Box::pin(finish(handler, io, registered, eof, disconnect)).await;
}

/// Fires the connection's due timers at `now`; a heartbeat ping first asks the handler
/// (`on_before_heartbeat`), which may count the interval as kept alive instead.
#[allow(clippy::too_many_arguments)]
async fn fire_timers<H: Handler>(
    handler: &H,
    ws: &mut Connection,
    info: &Arc<ConnInfo>,
    server: &ServerHandle,
    data: &mut Option<Box<dyn Any + Send + Sync>>,
    disconnect: &mut Option<Disconnect>,
    broken: &mut bool,
    now: Instant,
) {
    if ws.heartbeat_due(now) && !*broken {
        let mut ctx = Ctx {
            sink: Sink::Ws(ws),
            info,
            server,
            data,
        };
        match CatchUnwind(Box::pin(handler.on_before_heartbeat(&mut ctx))).await {
            Ok(true) => ws.skip_heartbeat(now),
            Ok(false) => {}
            Err(panic) => {
                *broken = true;
                handler_panicked(handler, ws, info, disconnect, "on_before_heartbeat", panic).await;
            }
        }
    }
    ws.handle_timeout(now);
}

/// Fails a connection whose partly received message grew while the server-wide total is past
/// `ServerConfig::max_partial_bytes` (1013), with a warning at most once per interval.
fn refuse_partial(
    server: &ServerHandle,
    info: &ConnInfo,
    ws: &mut Connection,
    disconnect: &mut Option<Disconnect>,
    total: usize,
    budget: usize,
) {
    let _ = ws.abort(CloseCode::TRY_AGAIN, PARTIAL_REASON);
    disconnect.get_or_insert(Disconnect {
        code: CloseCode::TRY_AGAIN,
        reason: PARTIAL_REASON.to_owned(),
        by: Initiator::Local,
    });
    let refusals = &server.inner.registry.partial_refusals;
    if let Some(refused) = refusals.hit(Instant::now(), PARTIAL_WARN_INTERVAL) {
        tracing::warn!(
            refused,
            total,
            budget,
            last = %info.id,
            "bytes in partly received messages exceed the server-wide budget \
             (max_partial_bytes): refusing with 1013"
        );
    }
}

/// Lingering close, unregistering, `on_disconnect`.
async fn finish<H: Handler>(
    handler: Arc<H>,
    mut io: Io,
    mut registered: Registered,
    eof: bool,
    disconnect: Option<Disconnect>,
) {
    if !eof {
        let _ = tokio::time::timeout(LINGER, async {
            let _ = io.shutdown().await;
            let mut sink = BytesMut::with_capacity(1024);
            loop {
                sink.clear();
                match io.read_buf(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    } else {
        let _ = tokio::time::timeout(LINGER, io.shutdown()).await;
    }
    drop(io);
    registered.hold(0);
    registered.unregister();
    let info = registered.info.clone();
    drop(registered);
    let disconnect = disconnect.unwrap_or(Disconnect {
        code: CloseCode::ABNORMAL,
        reason: String::new(),
        by: Initiator::Remote,
    });
    if let Err(panic) = CatchUnwind(pin!(handler.on_disconnect(&info, disconnect))).await {
        tracing::error!(conn = %info.id, panic = %panic, "on_disconnect panicked");
    }
}
