//! The connection task: ws-io's drive loop for WebSocket connections, a small loop of its own
//! for `tcp://` (raw bytes), and what both hand the handles.
//!
//! ```text
//!  WebSocket (ws_io::Driver::next, the loop shared with ws-server):
//!         events -> pending (Message, Fragment, Ping, Pong) / close info
//!         the core's frames -> the bounded write queue; End once the close is done
//!         the connection's own timers (close handshake, heartbeat ping, pong deadline,
//!         the wait for the server's TCP close)
//!         wait: write | read | (deliver | command | reader gone) | timer
//!  here:  the gates (reading stops at the receive queue and the write backlog), commands,
//!         delivery to the reader, close replies, winding down
//! ```

use std::{
    collections::VecDeque,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use token_bucket::TokenBucket;

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf},
    sync::{mpsc, oneshot},
};
use ws_frame::{CloseCode, Connection, Event, Initiator, Message, SendOptions};
use ws_io::{End, Gates, Step, Stream};

use crate::{
    config::{HeartbeatAction, HeartbeatHook, Priority, SendPriorities},
    error::Error,
    transport::BoxStream,
};

/// How a connection ended (the seeds' `OnDisconnect`, with the code): ws-frame's
/// [`ws_frame::CloseInfo`], the workspace's one close-reason type.
pub use ws_frame::CloseInfo;

/// What the reader receives besides complete messages.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// A complete message.
    Message(Message),
    /// One fragment, when [`ws_frame::Config::fragment_mode`] delivers fragments
    /// (the seeds' `OnFragmented`).
    Fragment {
        /// Whether the message is text.
        text: bool,
        /// This fragment's (inflated) data.
        payload: Bytes,
        /// First fragment of the message.
        first: bool,
        /// Last fragment of the message.
        fin: bool,
        /// With [`crate::ClientConfig::fragments_so_far`] (the seeds' `frgAll`): everything
        /// received of this message up to and including this fragment. `None` otherwise.
        so_far: Option<Bytes>,
    },
    /// A ping arrived (the pong was queued automatically).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
}

pub(crate) enum Command {
    Send(Message, SendOptions, Option<Priority>),
    Ping(Bytes),
    /// A ping whose pong is waited for; none in time fails the connection.
    PingWait(Bytes, Duration, oneshot::Sender<Result<Duration, Error>>),
    /// Drop the transport without a Close frame.
    Abort,
    Close(
        CloseCode,
        String,
        Option<oneshot::Sender<Result<CloseInfo, Error>>>,
    ),
}

/// State shared by the handles and the task.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// A Close was queued or received, or the connection ended: sends fail.
    pub(crate) closing: AtomicBool,
    pub(crate) close_info: Mutex<Option<CloseInfo>>,
}

impl Shared {
    pub(crate) fn close_info(&self) -> Option<CloseInfo> {
        self.close_info
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_close_info(&self, info: CloseInfo) {
        let mut slot = self
            .close_info
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert(info);
    }
}

pub(crate) type Item = Result<Incoming, Error>;

/// The framing in use.
pub(crate) enum Mode {
    WebSocket(Box<Connection>),
    /// `tcp://`: bytes as they come, no framing.
    Raw,
}

/// What the WebSocket loop does besides moving frames.
pub(crate) struct ConnOpts {
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) before_heartbeat: Option<HeartbeatHook>,
    /// Bytes per second.
    pub(crate) throttle: Option<u64>,
    pub(crate) priorities: SendPriorities,
    /// Most commands taken from the channel and waiting for the backlog.
    pub(crate) send_queue: usize,
    pub(crate) fragments_so_far: bool,
}

pub(crate) struct Driver {
    pub(crate) opts: ConnOpts,
    pub(crate) io: BoxStream,
    pub(crate) mode: Mode,
    pub(crate) leftover: Bytes,
    pub(crate) close_timeout: Duration,
    pub(crate) write_buffer_limit: usize,
    pub(crate) recv_queue: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cmds: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<Item>,
}

/// Commands applied per wake-up (a batch stops earlier at the write limit).
const COMMAND_BATCH: usize = 64;

type Closers = Vec<oneshot::Sender<Result<CloseInfo, Error>>>;

/// What the task owes the handles, whatever the framing.
struct Ends {
    shared: Arc<Shared>,
    /// Items read but not handed to the reader yet.
    pending: VecDeque<Item>,
    /// `close()` calls waiting for the end of the close handshake.
    closers: Closers,
    final_error: Option<Error>,
    reader_gone: bool,
    cmds: mpsc::Receiver<Command>,
    cmds_open: bool,
    events: mpsc::Sender<Item>,
    /// The message so far, for [`ConnOpts::fragments_so_far`].
    fragments: BytesMut,
}

/// What the task waits for besides the transport.
enum Wait<'a> {
    Deliver(mpsc::Permit<'a, Item>),
    ReaderGone,
    Cmd(Option<Command>),
}

/// The closing state and close info, told to everyone waiting for the close.
fn closed(shared: &Shared, closers: &mut Closers, info: CloseInfo) {
    shared.closing.store(true, Ordering::Release);
    shared.set_close_info(info.clone());
    for c in closers.drain(..) {
        let _ = c.send(Ok(info.clone()));
    }
}

impl Ends {
    /// The connection is finished: tell waiting closers, hand the reader what is left, then
    /// the error.
    async fn wind_down(mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.set_close_info(CloseInfo::new(
            CloseCode::ABNORMAL,
            String::new(),
            Initiator::Remote,
        ));
        let info = self.shared.close_info();
        for c in self.closers.drain(..) {
            let _ = c.send(info.clone().ok_or(Error::Closed));
        }
        // An abort by the application ends the stream without an error.
        let clean =
            matches!(&info, Some(i) if i.code != CloseCode::ABNORMAL || i.by == Initiator::User);
        if self.final_error.is_none() && !clean {
            self.final_error = Some(Error::Protocol(ws_frame::Error::UnexpectedEof));
        }
        // Late commands are refused from here on.
        self.cmds.close();
        if !self.reader_gone {
            for item in self.pending {
                if self.events.send(item).await.is_err() {
                    return;
                }
            }
            if let Some(e) = self.final_error {
                let _ = self.events.send(Err(e)).await;
            }
        }
    }

    /// Waits for room to deliver, a command (when `take_cmds`), or the reader going away.
    /// Cancel-safe.
    async fn wait<'a>(
        events: &'a mpsc::Sender<Item>,
        cmds: &mut mpsc::Receiver<Command>,
        can_deliver: bool,
        take_cmds: bool,
        reader_gone: bool,
    ) -> Wait<'a> {
        tokio::select! {
            biased;
            permit = events.reserve(), if can_deliver => match permit {
                Ok(p) => Wait::Deliver(p),
                Err(_) => Wait::ReaderGone,
            },
            c = cmds.recv(), if take_cmds => Wait::Cmd(c),
            () = events.closed(), if !reader_gone => Wait::ReaderGone,
            // Nothing to wait for here (no event to deliver, no command taken, the reader
            // gone): the caller's other branches decide; without this arm `select!` panics.
            else => std::future::pending().await,
        }
    }
}

fn map_frame_error(e: ws_frame::Error) -> Error {
    Error::Protocol(e)
}

impl Driver {
    pub(crate) async fn run(self) {
        let Self {
            opts,
            io,
            mode,
            leftover,
            close_timeout,
            write_buffer_limit,
            recv_queue,
            shared,
            cmds,
            events,
        } = self;
        let ends = Ends {
            shared,
            pending: VecDeque::new(),
            closers: Vec::new(),
            final_error: None,
            reader_gone: false,
            cmds,
            cmds_open: true,
            events,
            fragments: BytesMut::new(),
        };
        match mode {
            Mode::WebSocket(ws) => {
                let limits = (write_buffer_limit, recv_queue);
                run_ws(io, ws, leftover, close_timeout, limits, opts, ends).await;
            }
            Mode::Raw => run_raw(io, leftover, write_buffer_limit, recv_queue, ends).await,
        }
    }
}

/// Waiting `ping_and_wait` calls: when the ping went out, its deadline, and the caller.
type PingWaiters = Vec<(Instant, Instant, oneshot::Sender<Result<Duration, Error>>)>;

/// The connection is given up on: no Close frame, the transport is dropped, the reader gets
/// `error` after what was read.
fn give_up(shared: &Shared, final_error: &mut Option<Error>, reason: &str, error: Error) {
    shared.closing.store(true, Ordering::Release);
    shared.set_close_info(CloseInfo::new(
        CloseCode::ABNORMAL,
        reason,
        Initiator::Local,
    ));
    final_error.get_or_insert(error);
}

/// The application aborted: 1006 by the user, waiting closers told, the transport dropped by
/// the caller without a Close frame.
fn aborted(shared: &Shared, closers: &mut Closers) {
    shared.closing.store(true, Ordering::Release);
    shared.set_close_info(CloseInfo::new(
        CloseCode::ABNORMAL,
        "aborted",
        Initiator::User,
    ));
    for c in closers.drain(..) {
        let _ = c.send(Err(Error::Closed));
    }
}

/// Commands taken from the channel, by priority, waiting for room in the write backlog.
#[derive(Default)]
struct Queues {
    levels: [VecDeque<Command>; 3],
    /// A Close, applied once everything taken before it was.
    close: Option<Command>,
}

impl Queues {
    fn len(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    fn pop(&mut self) -> Option<Command> {
        self.levels
            .iter_mut()
            .find_map(VecDeque::pop_front)
            .or_else(|| self.close.take())
    }
}

/// A WebSocket connection on ws-io's drive loop.
#[allow(clippy::too_many_lines)]
async fn run_ws(
    io: BoxStream,
    ws: Box<Connection>,
    leftover: Bytes,
    close_timeout: Duration,
    (write_buffer_limit, recv_queue): (usize, usize),
    opts: ConnOpts,
    mut ends: Ends,
) {
    let mut d = ws_io::Driver::new(Stream::new(io), ws, write_buffer_limit);
    d.feed(&leftover);
    drop(leftover);
    // Bytes of the backlog counted as sends rather than replies to what was read (pongs, the
    // close echo): all of it once commands have been applied, counted down by writes.
    // Replies queued before a batch count as sends; that stays bounded, since commands are
    // only applied while the backlog is below the limit.
    let mut sent_backlog = 0usize;
    let mut eof = false;
    let mut queues = Queues::default();
    let mut last_read = ws_io::now();
    let mut stalled_since: Option<Instant> = None;
    let mut pings: PingWaiters = Vec::new();
    // The client-side throttle (the seeds' `Throttle`): bytes are booked after they were
    // written, so the balance may go into debt and writing then waits until it is paid off.
    let mut bucket = opts
        .throttle
        .map(|rate| TokenBucket::new(rate.max(1), ws_io::now()));
    // Whether the last wait read the transport (the read timeout only runs then).
    let mut reading;
    // The hook chose to ping for the heartbeat due now.
    let mut hb_ping_chosen = false;
    loop {
        if ends.reader_gone && !ends.cmds_open && !ends.shared.closing.load(Ordering::Acquire) {
            // Every handle is gone: close politely.
            let _ = d.ws.close(CloseCode::NORMAL, "", ws_io::now());
            ends.shared.closing.store(true, Ordering::Release);
        }
        // The before-heartbeat hook decides here, before ws-io would send the ping (the timer
        // of the core wakes this loop first: see wake_at).
        if let Some(hook) = &opts.before_heartbeat {
            let now = ws_io::now();
            if !d.ws.heartbeat_due(now) {
                hb_ping_chosen = false;
            } else if !hb_ping_chosen {
                match hook() {
                    HeartbeatAction::Ping => hb_ping_chosen = true,
                    HeartbeatAction::Skip => d.ws.skip_heartbeat(now),
                    HeartbeatAction::Send(msg) => {
                        let _ = d.ws.send(msg);
                        d.ws.skip_heartbeat(now);
                    }
                }
            }
        }
        // Commands taken, highest priority first, while the backlog has room.
        let mut applied = false;
        while d.backlog() < write_buffer_limit {
            let Some(cmd) = queues.pop() else { break };
            apply_ws(&mut d.ws, &ends.shared, cmd, &mut ends.closers);
            applied = true;
        }
        if applied {
            sent_backlog = d.backlog();
        }
        let now = ws_io::now();
        if d.backlog() == 0 {
            stalled_since = None;
        } else if stalled_since.is_none() {
            stalled_since = Some(now);
        }
        // A write backlog stops new sends, not reading: a peer that stops reading while its
        // own writes are blocked (an echo behind `tokio::io::copy`, a paused proxy) would
        // otherwise deadlock with us. Reading can only add control replies (pongs, the close
        // echo) to the backlog, so it stops once those could exceed the limit on top of what
        // the sends left (at least the limit itself: twice it in all). The sends' part can
        // overshoot the limit by the last message taken, so it cannot be a fixed 2x bound: a
        // large message would stop reading while the peer waits for us to read.
        let backlog = d.backlog();
        let take_cmds = ends.cmds_open && queues.close.is_none() && queues.len() < opts.send_queue;
        let read_limit = sent_backlog
            .max(write_buffer_limit)
            .saturating_add(write_buffer_limit);
        let throttled = bucket.as_mut().and_then(|b| b.ready_at(now));
        let read = ends.pending.len() < recv_queue && backlog < read_limit;
        // The timeouts measure the peer, not our own gates: no read timeout while we do not
        // read (the application is behind), no write timeout while the throttle holds writes.
        reading = read;
        if !read {
            last_read = now;
        }
        if throttled.is_some() && stalled_since.is_some() {
            stalled_since = Some(now);
        }
        let wake_at = [
            opts.read_timeout.filter(|_| read).map(|t| last_read + t),
            opts.write_timeout
                .and_then(|t| stalled_since.map(|s| s + t)),
            pings.iter().map(|p| p.1).min(),
            throttled,
            // With a heartbeat hook, every timer of the core comes back here first.
            opts.before_heartbeat.as_ref().and(d.ws.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min();
        let gates = Gates {
            read,
            write: throttled.is_none(),
            wake_at,
            ..Gates::default()
        };
        let can_deliver = !ends.pending.is_empty() && !ends.reader_gone;
        let wait = Ends::wait(
            &ends.events,
            &mut ends.cmds,
            can_deliver,
            take_cmds,
            ends.reader_gone,
        );
        match d.next(gates, Some(wait)).await {
            Step::Event(ev) => match ev {
                Event::Message(m) => ends.pending.push_back(Ok(Incoming::Message(m))),
                Event::Fragment {
                    text,
                    payload,
                    first,
                    fin,
                } => {
                    let so_far = if opts.fragments_so_far {
                        let acc = &mut ends.fragments;
                        if first {
                            acc.clear();
                        }
                        acc.extend_from_slice(&payload);
                        let so_far = Bytes::copy_from_slice(acc);
                        if fin {
                            *acc = BytesMut::new();
                        }
                        Some(so_far)
                    } else {
                        None
                    };
                    ends.pending.push_back(Ok(Incoming::Fragment {
                        text,
                        payload,
                        first,
                        fin,
                        so_far,
                    }));
                }
                Event::Ping(p) => ends.pending.push_back(Ok(Incoming::Ping(p))),
                Event::Pong(p) => {
                    let now = ws_io::now();
                    for (sent, _, reply) in pings.drain(..) {
                        let _ = reply.send(Ok(now.saturating_duration_since(sent)));
                    }
                    ends.pending.push_back(Ok(Incoming::Pong(p)));
                }
                Event::Closed { code, reason, by } => closed(
                    &ends.shared,
                    &mut ends.closers,
                    CloseInfo::new(code, reason.as_str(), by),
                ),
            },
            Step::Error(ws_frame::Error::PongTimeout { after }) => {
                // The peer or the path is dead: drop the transport at once.
                give_up(
                    &ends.shared,
                    &mut ends.final_error,
                    "heartbeat timeout",
                    Error::PeerDead(after),
                );
                eof = true;
                break;
            }
            Step::Error(e) => {
                ends.shared.closing.store(true, Ordering::Release);
                let timed_out = matches!(e, ws_frame::Error::CloseTimeout);
                let by = if matches!(e, ws_frame::Error::UnexpectedEof) {
                    Initiator::Remote
                } else {
                    Initiator::Local
                };
                ends.shared
                    .set_close_info(CloseInfo::new(e.close_code(), e.to_string(), by));
                for c in ends.closers.drain(..) {
                    let _ = c.send(Err(if timed_out {
                        Error::ReplyTimeout(close_timeout)
                    } else {
                        Error::Closed
                    }));
                }
                if !timed_out {
                    ends.final_error.get_or_insert(map_frame_error(e));
                }
            }
            // Decided at the top of the loop (the hook), or nothing to decide.
            Step::HeartbeatDue(_) => {}
            Step::Read(n) => {
                if n > 0 {
                    last_read = ws_io::now();
                }
            }
            Step::Wake => {
                let now = ws_io::now();
                if reading && opts.read_timeout.is_some_and(|t| now >= last_read + t) {
                    let t = opts.read_timeout.unwrap_or_default();
                    give_up(
                        &ends.shared,
                        &mut ends.final_error,
                        "read timeout",
                        Error::ReadTimeout(t),
                    );
                    eof = true;
                    break;
                }
                let throttled = bucket.as_mut().is_some_and(|b| b.ready_at(now).is_some());
                if let (Some(t), Some(since)) = (opts.write_timeout, stalled_since)
                    && !throttled
                    && now >= since + t
                {
                    give_up(
                        &ends.shared,
                        &mut ends.final_error,
                        "write timeout",
                        Error::WriteTimeout(t),
                    );
                    eof = true;
                    break;
                }
                let expired = pings
                    .iter()
                    .find(|p| now >= p.1)
                    .map(|p| p.1.saturating_duration_since(p.0));
                if let Some(timeout) = expired {
                    for (_, _, reply) in pings.drain(..) {
                        let _ = reply.send(Err(Error::PeerDead(timeout)));
                    }
                    give_up(
                        &ends.shared,
                        &mut ends.final_error,
                        "no pong",
                        Error::PeerDead(timeout),
                    );
                    eof = true;
                    break;
                }
            }
            Step::Wrote(n) => {
                sent_backlog = sent_backlog.saturating_sub(n);
                stalled_since = None;
                if let Some(b) = bucket.as_mut() {
                    b.consume(n as u64, ws_io::now());
                }
            }
            Step::Other(Wait::Deliver(permit)) => {
                if let Some(item) = ends.pending.pop_front() {
                    permit.send(item);
                }
            }
            Step::Other(Wait::ReaderGone) => {
                ends.reader_gone = true;
                ends.pending.clear();
            }
            Step::Other(Wait::Cmd(None)) => ends.cmds_open = false,
            Step::Other(Wait::Cmd(Some(cmd))) => {
                let mut next = Some(cmd);
                let mut taken = 0;
                while let Some(cmd) = next.take() {
                    match cmd {
                        Command::Abort => {
                            aborted(&ends.shared, &mut ends.closers);
                            eof = true;
                            break;
                        }
                        Command::PingWait(payload, timeout, reply) => {
                            let now = ws_io::now();
                            match d.ws.ping(payload) {
                                Ok(()) => pings.push((now, now + timeout, reply)),
                                Err(e) => {
                                    let _ = reply.send(Err(map_frame_error(e)));
                                }
                            }
                        }
                        Command::Close(..) => queues.close = Some(cmd),
                        Command::Send(ref msg, _, prio) => {
                            let level = prio.unwrap_or(match msg {
                                Message::Text(_) => opts.priorities.text,
                                _ => opts.priorities.binary,
                            });
                            queues.levels[level.index()].push_back(cmd);
                        }
                        Command::Ping(_) => {
                            queues.levels[opts.priorities.ping.index()].push_back(cmd);
                        }
                    }
                    taken += 1;
                    if taken == COMMAND_BATCH
                        || queues.close.is_some()
                        || queues.len() >= opts.send_queue
                    {
                        break;
                    }
                    next = ends.cmds.try_recv().ok();
                }
                if eof {
                    break;
                }
            }
            Step::End(End::Closed) => break,
            Step::End(End::Eof) => {
                eof = true;
                break;
            }
            Step::End(End::WriteFailed(e)) => {
                give_up(
                    &ends.shared,
                    &mut ends.final_error,
                    "write failed",
                    Error::Io(e),
                );
                eof = true;
                break;
            }
            Step::End(End::ReadFailed(e)) => {
                ends.shared.closing.store(true, Ordering::Release);
                ends.shared.set_close_info(CloseInfo::new(
                    CloseCode::ABNORMAL,
                    e.to_string(),
                    Initiator::Remote,
                ));
                ends.final_error.get_or_insert(Error::Io(e));
                eof = true;
                break;
            }
        }
    }
    for (_, _, reply) in pings.drain(..) {
        let _ = reply.send(Err(Error::Closed));
    }
    if !eof {
        let _ = tokio::time::timeout(Duration::from_secs(1), d.shutdown()).await;
    }
    drop(d);
    ends.wind_down().await;
}

/// What the raw loop waits for.
enum RawWake<'a> {
    Wrote(io::Result<usize>),
    Flushed(io::Result<()>),
    Read(io::Result<usize>),
    Other(Wait<'a>),
}

/// A `tcp://` connection: bytes as they come, no framing, no timers.
async fn run_raw(
    io: BoxStream,
    leftover: Bytes,
    write_buffer_limit: usize,
    recv_queue: usize,
    mut ends: Ends,
) {
    let (mut reader, mut writer): (ReadHalf<BoxStream>, WriteHalf<BoxStream>) =
        tokio::io::split(io);
    let mut out = BytesMut::new();
    let mut rx = BytesMut::new();
    let mut dirty = false;
    let mut eof = false;
    let mut closing = false;
    if !leftover.is_empty() {
        ends.pending
            .push_back(Ok(Incoming::Message(Message::Binary(leftover))));
    }
    loop {
        if eof || (closing && out.is_empty() && !dirty) {
            break;
        }
        if ends.reader_gone && !ends.cmds_open && !ends.shared.closing.load(Ordering::Acquire) {
            // Every handle is gone: close politely.
            let _ = close_raw(&ends.shared, "", &mut closing);
            ends.shared.closing.store(true, Ordering::Release);
            continue;
        }
        let take_cmds = ends.cmds_open && out.len() < write_buffer_limit;
        let can_read = ends.pending.len() < recv_queue && out.len() < 2 * write_buffer_limit;
        let can_deliver = !ends.pending.is_empty() && !ends.reader_gone;
        let wake = tokio::select! {
            biased;
            w = write_or_flush(&mut writer, &mut out), if !out.is_empty() || dirty => w,
            r = read_raw(&mut reader, &mut rx), if can_read => RawWake::Read(r),
            w = Ends::wait(&ends.events, &mut ends.cmds, can_deliver, take_cmds, ends.reader_gone)
                => RawWake::Other(w),
        };
        match wake {
            RawWake::Wrote(Ok(0)) | RawWake::Wrote(Err(_)) | RawWake::Flushed(Err(_)) => {
                ends.shared.closing.store(true, Ordering::Release);
                ends.shared.set_close_info(CloseInfo::new(
                    CloseCode::ABNORMAL,
                    "write failed",
                    Initiator::Local,
                ));
                let e = match wake {
                    RawWake::Wrote(Err(e)) | RawWake::Flushed(Err(e)) => e,
                    _ => io::ErrorKind::WriteZero.into(),
                };
                ends.final_error.get_or_insert(Error::Io(e));
                eof = true;
            }
            RawWake::Wrote(Ok(_)) => dirty = true,
            RawWake::Flushed(Ok(())) => dirty = false,
            RawWake::Read(Ok(0)) => {
                eof = true;
                let by = if closing {
                    Initiator::User
                } else {
                    Initiator::Remote
                };
                closed(
                    &ends.shared,
                    &mut ends.closers,
                    CloseInfo::new(CloseCode::NO_STATUS, String::new(), by),
                );
            }
            RawWake::Read(Ok(_)) => {
                let chunk = rx.split().freeze();
                ends.pending
                    .push_back(Ok(Incoming::Message(Message::Binary(chunk))));
            }
            RawWake::Read(Err(e)) => {
                ends.shared.closing.store(true, Ordering::Release);
                ends.shared.set_close_info(CloseInfo::new(
                    CloseCode::ABNORMAL,
                    e.to_string(),
                    Initiator::Remote,
                ));
                ends.final_error.get_or_insert(Error::Io(e));
                eof = true;
            }
            RawWake::Other(Wait::Deliver(permit)) => {
                if let Some(item) = ends.pending.pop_front() {
                    permit.send(item);
                }
            }
            RawWake::Other(Wait::ReaderGone) => {
                ends.reader_gone = true;
                ends.pending.clear();
            }
            RawWake::Other(Wait::Cmd(None)) => ends.cmds_open = false,
            RawWake::Other(Wait::Cmd(Some(cmd))) => {
                let mut next = Some(cmd);
                let mut taken = 0;
                while let Some(cmd) = next.take() {
                    if matches!(cmd, Command::Abort) {
                        aborted(&ends.shared, &mut ends.closers);
                        eof = true;
                        break;
                    }
                    apply_raw(cmd, &ends.shared, &mut ends.closers, &mut out, &mut closing);
                    taken += 1;
                    if taken == COMMAND_BATCH || out.len() >= write_buffer_limit {
                        break;
                    }
                    next = ends.cmds.try_recv().ok();
                }
            }
        }
    }
    if !eof {
        let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
    }
    drop(writer);
    drop(reader);
    ends.wind_down().await;
}

/// Writes some of `out` (cancel-safe: one `poll_write`), or flushes once it is empty.
async fn write_or_flush<'a>(writer: &mut WriteHalf<BoxStream>, out: &mut BytesMut) -> RawWake<'a> {
    if out.is_empty() {
        RawWake::Flushed(writer.flush().await)
    } else {
        RawWake::Wrote(writer.write_buf(out).await)
    }
}

async fn read_raw(reader: &mut ReadHalf<BoxStream>, rx: &mut BytesMut) -> io::Result<usize> {
    if rx.capacity() - rx.len() < 4096 {
        rx.reserve(16 * 1024);
    }
    reader.read_buf(rx).await
}

/// Starts closing a raw connection: nothing more is written, the write side shuts down once
/// the queue is written.
fn close_raw(shared: &Shared, reason: &str, closing: &mut bool) -> Result<(), Error> {
    if *closing {
        return Err(Error::Closed);
    }
    *closing = true;
    shared.set_close_info(CloseInfo::new(
        CloseCode::NORMAL,
        reason.to_owned(),
        Initiator::User,
    ));
    shared.closing.store(true, Ordering::Release);
    Ok(())
}

/// Answers a `close()` call: wait for the end with the others, or now.
fn reply_to_close(
    shared: &Shared,
    already: bool,
    result: Result<(), Error>,
    reply: Option<oneshot::Sender<Result<CloseInfo, Error>>>,
    closers: &mut Closers,
) {
    let Some(r) = reply else { return };
    match result {
        Ok(()) => closers.push(r),
        Err(e) => {
            if let (true, Some(info)) = (already, shared.close_info()) {
                let _ = r.send(Ok(info));
            } else if already {
                // Closing already: wait with the others for the end.
                closers.push(r);
            } else {
                let _ = r.send(Err(e));
            }
        }
    }
}

/// Applies a command to the WebSocket connection.
fn apply_ws(ws: &mut Connection, shared: &Shared, cmd: Command, closers: &mut Closers) {
    match cmd {
        // Errors here mean the connection is closing: the sender was already told so by
        // `Shared::closing` where it could be.
        Command::Send(msg, opts, _) => {
            let _ = ws.send_with(msg, opts);
        }
        // Applied as they are taken (see run_ws).
        Command::PingWait(..) | Command::Abort => {}
        Command::Ping(p) => {
            let _ = ws.ping(p);
        }
        Command::Close(code, reason, reply) => {
            let already = shared.closing.load(Ordering::Acquire);
            let r = ws
                .close(code, &reason, ws_io::now())
                .map_err(map_frame_error);
            if r.is_ok() {
                shared.closing.store(true, Ordering::Release);
            }
            reply_to_close(shared, already, r, reply, closers);
        }
    }
}

/// Applies a command to a raw connection: sends are bytes, pings do nothing.
fn apply_raw(
    cmd: Command,
    shared: &Shared,
    closers: &mut Closers,
    out: &mut BytesMut,
    closing: &mut bool,
) {
    match cmd {
        Command::Send(msg, ..) if !*closing => out.extend_from_slice(msg.as_bytes()),
        Command::Send(..) | Command::Ping(_) | Command::Abort => {}
        Command::PingWait(_, _, reply) => {
            let _ = reply.send(Err(Error::RawTcp));
        }
        Command::Close(_, reason, reply) => {
            let already = shared.closing.load(Ordering::Acquire);
            let r = close_raw(shared, &reason, closing);
            reply_to_close(shared, already, r, reply, closers);
        }
    }
}
