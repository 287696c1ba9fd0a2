//! The connection task: one per WebSocket connection, on ws-io's drive loop.
//!
//! ```text
//!  ws_io::Driver::next (shared with ws-client): events [not while paused], the core's frames
//!         -> TxQueue (small frames batched, large ones vectored), End once the close is done,
//!         the connection's own timers (close handshake, message deadline, heartbeat, pong,
//!         idle), wait: write | read [gated] | kill / command | timer
//!  here:  events -> handler (may queue frames on `ws`); HeartbeatDue -> on_before_heartbeat
//!         account partly received bytes (server-wide budget, 1013 past it)
//!         the gates: read pause, backpressure (write backlog), throttle; the shrink timer
//!         after a read: take the commands already queued (reads never starve them)
//! ```
//!
//! Read flow control (`ConnInfo::read_paused`, set by `Ctx::pause_reading` and
//! `ConnHandle::pause_reading`) only gates reading and event delivery; writes, commands and
//! timers go on (see `Connection::set_read_paused` for the timers). A connection whose close
//! handshake has started reads anyway.
//!
//! Handler panics: every handler call is polled under `catch_unwind`. A panic closes that
//! connection with 1011, goes to `on_error` as `Error::HandlerPanicked` and to tracing, and
//! the handler gets nothing more for the connection but `on_disconnect`. Whatever ends the
//! task, a drop guard unregisters the connection and gives back its share of the server-wide
//! partial-message total.

use std::{
    any::Any,
    collections::VecDeque,
    future::Future,
    panic::AssertUnwindSafe,
    pin::{Pin, pin},
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::{Duration, Instant},
};
use token_bucket::TokenBucket;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use ws_frame::{CloseCode, Connection, Event, Initiator, Message};
use ws_io::{Driver, End, Gates, Step};

use crate::{
    error::Error,
    handle::{AdmitGuard, ServerHandle},
    handler::{Ctx, Disconnect, Fragment, Handler, Sink},
    io::Io,
    registry::{Command, ConnInfo, KILL_DROP},
};

/// Commands applied per wake-up before writing (batches broadcasts into one write).
const COMMAND_BATCH: usize = 64;
/// Most times a connection woken by a command yields to let more arrive before it writes.
const COALESCE_ROUNDS: usize = 8;
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
    disconnect.get_or_insert(Disconnect::new(
        CloseCode::INTERNAL,
        format!("handler panicked in {method}"),
        Initiator::Local,
    ));
    let _ = ws.close(CloseCode::INTERNAL, "internal error", ws_io::now());
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

/// What the task waits for besides the transport.
enum Wait {
    Kill,
    Cmd(Option<Command>),
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
        Command::Prepared(p) => ws.send_prepared(&p),
        Command::SendWith(b) => ws.send_with(b.0, b.1),
        Command::SendAt(b) => ws.send(b.0),
        Command::Ping(payload) => ws.ping(payload),
        Command::Event(ev) => ws.send(Message::text(ev.data)),
        Command::Close(b) => ws.close(b.0, &b.1, ws_io::now()),
        Command::Wake => Ok(()),
    };
}

/// Commands taken from the channel, by send-queue level ([`crate::Priority`]), waiting for
/// room in the write backlog; a Close waits until everything taken before it was applied.
#[derive(Default)]
struct Queues {
    levels: [VecDeque<Command>; 3],
    close: Option<Command>,
}

impl Queues {
    fn len(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum::<usize>() + usize::from(self.close.is_some())
    }

    fn push(&mut self, cmd: Command) {
        let level = match &cmd {
            Command::Wake => return,
            Command::Close(_) => {
                self.close = Some(cmd);
                return;
            }
            Command::SendAt(b) => b.1.index(),
            _ => crate::Priority::Normal.index(),
        };
        self.levels[level].push_back(cmd);
    }

    /// Applies what is queued, highest level first, while the backlog is below its limit.
    fn apply<T: ws_io::Transport>(&mut self, d: &mut Driver<T>) {
        while d.below_limit() {
            let Some(cmd) = self
                .levels
                .iter_mut()
                .find_map(VecDeque::pop_front)
                .or_else(|| self.close.take())
            else {
                break;
            };
            apply(&mut d.ws, cmd);
        }
    }
}

/// Takes the commands already queued (`taken` were taken before), up to a batch; returns
/// how many are taken now in all.
fn take_batch(queues: &mut Queues, cmds: &mut mpsc::Receiver<Command>, taken: usize) -> usize {
    let mut taken = taken;
    while taken < COMMAND_BATCH {
        match cmds.try_recv() {
            Ok(cmd) => queues.push(cmd),
            Err(_) => break,
        }
        taken += 1;
    }
    taken
}

/// Write coalescing: a broadcast that wakes an idle connection often has company on the way
/// (a broadcast burst delivers message k+1 to every subscriber right after message k, and the
/// sender yields to the scheduler between subscribers). Yields to the scheduler, taking what
/// arrived meanwhile, until a round brings nothing new, the batch is full or
/// [`COALESCE_ROUNDS`] passed; the frames then leave in one write instead of one each. A lone
/// broadcast costs one extra scheduler round; other commands do not wait (at 10,000
/// subscribers the burst took 1.17x as long without coalescing, one run).
async fn coalesce(queues: &mut Queues, cmds: &mut mpsc::Receiver<Command>, mut taken: usize) {
    for _ in 0..COALESCE_ROUNDS {
        if taken >= COMMAND_BATCH {
            return;
        }
        tokio::task::yield_now().await;
        let now = take_batch(queues, cmds, taken);
        if now == taken {
            return;
        }
        taken = now;
    }
}

/// Runs one WebSocket connection to its end on ws-io's drive loop, then unregisters it and
/// reports the disconnect.
pub(crate) async fn run<H: Handler>(server: ServerHandle, handler: Arc<H>, est: Established) {
    let Established {
        io,
        ws,
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
    let mut d = Driver::new(io, ws, config.write_buffer_limit);
    // A read answered at once (an echo) comes with its write: one step fewer per message.
    d.join_reads(true);
    let mut data: Option<Box<dyn Any + Send + Sync>> = None;
    let mut disconnect: Option<Disconnect> = None;
    let now = ws_io::now();
    let mut timers = Timers {
        next_shrink: None,
        rx_shrink: false,
    };
    let mut throttle = config
        .throttle
        .map(|rate| (TokenBucket::new(rate, now), TokenBucket::new(rate, now)));
    let kill = info.kill.notified();
    tokio::pin!(kill);
    let mut killed = false;
    let mut pending_kill = false;
    let mut eof = false;
    // When the write timeout passes if the peer takes nothing more (ServerConfig::write_timeout).
    let mut write_stall: Option<Instant> = None;
    let mut read_since_shrink = 0usize;
    // Set once a handler method panicked: the handler gets nothing more but on_disconnect.
    let mut broken = false;
    let mut was_paused = false;
    let mut queues = Queues::default();
    // The message so far, for ServerConfig::fragments_so_far.
    let mut so_far_buf = BytesMut::new();

    macro_rules! ctx {
        () => {
            Ctx {
                sink: Sink::Ws(&mut d.ws),
                info: &info,
                server: &server,
                data: &mut data,
            }
        };
    }

    if !leftover.is_empty() {
        d.feed(&leftover);
        timers.rx_shrink = true;
    }
    drop(leftover);
    // Cold paths are boxed so that they do not grow every connection's task.
    if let Err(panic) = CatchUnwind(Box::pin(handler.on_connect(&mut ctx!()))).await {
        broken = true;
        let h = &*handler;
        Box::pin(handler_panicked(
            h,
            &mut d.ws,
            &info,
            &mut disconnect,
            "on_connect",
            panic,
        ))
        .await;
    }

    loop {
        // Bytes held in partly received messages, against the server-wide budget.
        let held = d.ws.partial_message_bytes();
        if held != registered.held {
            let budget = config.max_partial_bytes;
            if let Some(total) = registered.hold(held).filter(|&t| budget != 0 && t > budget) {
                refuse_partial(&server, &info, &mut d.ws, &mut disconnect, total, budget);
                registered.hold(d.ws.partial_message_bytes());
            }
        }
        if read_since_shrink > SHRINK_ABOVE {
            read_since_shrink = 0;
            d.release_read_buffer(SHRINK_ABOVE);
        }
        if pending_kill && !killed {
            pending_kill = false;
            killed = true;
            if kill_now(&info, &mut d.ws, &mut disconnect) {
                eof = true;
                break;
            }
        }

        queues.apply(&mut d);
        // The gates: read flow control (the connection's timers know: set_read_paused),
        // backpressure (the write backlog stops reading and commands), the throttle.
        let paused = read_paused(&info, &d.ws);
        if paused != was_paused {
            was_paused = paused;
            d.ws.set_read_paused(paused);
        }
        let (read_wait, write_wait) = match &mut throttle {
            Some((r, w)) => {
                let now = ws_io::now();
                (r.ready_at(now), w.ready_at(now))
            }
            None => (None, None),
        };
        // The write timeout: unwritten data the peer has taken nothing of for that long.
        if let Some(limit) = config.write_timeout {
            if d.backlog() == 0 {
                write_stall = None;
            } else {
                let now = ws_io::now();
                let at = *write_stall.get_or_insert(now + limit);
                if now >= at {
                    disconnect.get_or_insert(Disconnect::new(
                        CloseCode::ABNORMAL,
                        format!("write timeout: the peer took nothing for {limit:?}"),
                        Initiator::Local,
                    ));
                    eof = true;
                    break;
                }
            }
        }
        let backlog = d.below_limit();
        // Commands are taken while the local queues have room (config.send_queue), even with
        // a full backlog, so that a later higher-level send can overtake what waits.
        let can_cmd =
            queues.close.is_none() && queues.len() < config.send_queue && !d.ws.is_closed();
        let gates = Gates {
            read: backlog && read_wait.is_none() && !paused,
            write: write_wait.is_none(),
            events: !paused,
            wake_at: [timers.next(), read_wait, write_wait, write_stall]
                .into_iter()
                .flatten()
                .min(),
        };
        // A kill is only waited for while commands cannot arrive; otherwise it comes as
        // Command::Wake (see ConnInfo::kill).
        let wait_kill = !killed && !can_cmd;
        let other = (wait_kill || can_cmd).then_some(async {
            tokio::select! {
                biased;
                () = &mut kill, if wait_kill => Wait::Kill,
                c = cmds.recv(), if can_cmd => Wait::Cmd(c),
            }
        });
        let step = d.next(gates, other).await;
        // Bytes read are accounted before what came with them (see Driver::join_reads).
        macro_rules! account_read {
            ($n:expr) => {{
                let n: usize = $n;
                info.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                read_since_shrink += n;
                if !timers.rx_shrink {
                    timers.rx_shrink = true;
                    if timers.next_shrink.is_none() {
                        timers.next_shrink = Some(ws_io::now() + SHRINK_PERIOD);
                    }
                }
                if let Some((r, _)) = &mut throttle {
                    r.consume(n as u64, ws_io::now());
                }
                // Reads come first: take what other tasks queued meanwhile, so that a peer
                // that keeps sending does not hold up frames queued for it.
                if can_cmd {
                    let _ = take_batch(&mut queues, &mut cmds, 0);
                    pending_kill = !killed && info.kill_requested().is_some();
                }
            }};
        }
        if let Some(n) = d.take_read() {
            account_read!(n);
        }
        let mut panicked: Option<(&'static str, String)> = None;
        match step {
            Step::Event(event) => match event {
                Event::Closed { code, reason, by } => {
                    disconnect.get_or_insert(Disconnect::new(code, reason.as_str(), by));
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
                    let so_far = config.fragments_so_far.then(|| {
                        if first {
                            so_far_buf.clear();
                        }
                        so_far_buf.extend_from_slice(&payload);
                        let all = Bytes::copy_from_slice(&so_far_buf);
                        if fin {
                            so_far_buf = BytesMut::new();
                        }
                        all
                    });
                    let fragment = Fragment {
                        text,
                        payload,
                        first,
                        fin,
                        so_far,
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
            Step::Error(ws_frame::Error::PongTimeout { .. }) => {
                // The peer is gone: no Close frame, no lingering.
                disconnect.get_or_insert(Disconnect::new(
                    CloseCode::ABNORMAL,
                    "heartbeat timeout",
                    Initiator::Local,
                ));
                eof = true;
                break;
            }
            Step::Error(e) => {
                let by = if matches!(e, ws_frame::Error::UnexpectedEof) {
                    Initiator::Remote
                } else {
                    Initiator::Local
                };
                disconnect.get_or_insert(Disconnect::new(e.close_code(), e.to_string(), by));
                if !matches!(e, ws_frame::Error::UnexpectedEof) && !broken {
                    let err = Error::WebSocket(e);
                    let call = Box::pin(handler.on_error(info.peer, Some(&info), &err));
                    if let Err(panic) = CatchUnwind(call).await {
                        broken = true;
                        tracing::error!(conn = %info.id, panic = %panic, "on_error panicked");
                    }
                }
            }
            Step::HeartbeatDue(now) => {
                // The handler may keep the connection alive its own way (OnBeforeHeartBeat).
                if !broken {
                    match CatchUnwind(Box::pin(handler.on_before_heartbeat(&mut ctx!()))).await {
                        Ok(true) => d.ws.skip_heartbeat(now),
                        Ok(false) => {}
                        Err(panic) => panicked = Some(("on_before_heartbeat", panic)),
                    }
                }
            }
            Step::Read(0) => eof = true,
            Step::Read(n) => account_read!(n),
            Step::Wrote(n) => {
                info.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                // Progress: the write timeout counts afresh.
                write_stall = None;
                if let Some((_, w)) = &mut throttle {
                    w.consume(n as u64, ws_io::now());
                }
            }
            Step::Other(Wait::Kill) => {
                killed = true;
                pending_kill = false;
                if kill_now(&info, &mut d.ws, &mut disconnect) {
                    eof = true;
                    break;
                }
            }
            Step::Other(Wait::Cmd(Some(cmd))) => {
                // Only a broadcast (framed once for every subscriber) waits for company: a
                // command for this connection alone (a reply relayed from a backend, a
                // `write_to`) is written at once, without the extra scheduler round.
                let broadcast = matches!(cmd, Command::Prepared(_));
                queues.push(cmd);
                let taken = take_batch(&mut queues, &mut cmds, 1);
                // Nothing waits to be written: let a burst gather before the write.
                if broadcast && d.backlog() == 0 && queues.close.is_none() {
                    coalesce(&mut queues, &mut cmds, taken).await;
                }
                pending_kill = !killed && info.kill_requested().is_some();
            }
            Step::Other(Wait::Cmd(None)) => {}
            Step::Wake => {
                if timers.shrink_due(ws_io::now()) {
                    d.tx().shrink();
                    d.release_read_buffer(0);
                }
            }
            Step::End(End::Closed) => break,
            Step::End(End::Eof) => {
                eof = true;
                break;
            }
            Step::End(End::ReadFailed(e) | End::WriteFailed(e)) => {
                disconnect.get_or_insert(Disconnect::new(
                    CloseCode::ABNORMAL,
                    e.to_string(),
                    Initiator::Remote,
                ));
                eof = true;
                break;
            }
        }
        if let Some((method, panic)) = panicked {
            broken = true;
            let h = &*handler;
            Box::pin(handler_panicked(
                h,
                &mut d.ws,
                &info,
                &mut disconnect,
                method,
                panic,
            ))
            .await;
        }
    }

    // Lingering close: send FIN, then read until the peer's FIN (bounded), so that unread
    // input does not turn our close into a reset that could destroy the Close frame.
    drop(server);
    let (io, _ws) = d.into_parts();
    Box::pin(finish(handler, io, registered, eof, disconnect)).await;
}

/// A kill from the server handle: drop the connection (returns true) or close it with the
/// requested code.
fn kill_now(info: &ConnInfo, ws: &mut Connection, disconnect: &mut Option<Disconnect>) -> bool {
    let code = info.kill_code.load(Ordering::Acquire);
    if code == KILL_DROP {
        disconnect.get_or_insert(Disconnect::new(
            CloseCode::ABNORMAL,
            "dropped",
            Initiator::User,
        ));
        return true;
    }
    let reason = if code == CloseCode::TRY_AGAIN.as_u16() {
        "send queue full"
    } else {
        ""
    };
    let _ = ws.close(CloseCode::from_u16(code), reason, ws_io::now());
    false
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
    disconnect.get_or_insert(Disconnect::new(
        CloseCode::TRY_AGAIN,
        PARTIAL_REASON.to_owned(),
        Initiator::Local,
    ));
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
    let disconnect = disconnect.unwrap_or(Disconnect::new(
        CloseCode::ABNORMAL,
        String::new(),
        Initiator::Remote,
    ));
    if let Err(panic) = CatchUnwind(pin!(handler.on_disconnect(&info, disconnect))).await {
        tracing::error!(conn = %info.id, panic = %panic, "on_disconnect panicked");
    }
}
