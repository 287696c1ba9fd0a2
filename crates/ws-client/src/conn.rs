//! The connection task: one loop per connection, in the spirit of ws-server's.
//!
//! ```text
//!  loop:  drain ws.poll_event() -> pending (Message, Fragment, Ping, Pong) / close info
//!         poll_transmit -> one output buffer (one write per batch of frames)
//!         stop once ws.wants_transport_close() and everything is written
//!         arm the one timer (close handshake, heartbeat ping, pong deadline, linger)
//!         select (biased): write | flush | deliver | read | command | reader gone | timer
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

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf},
    sync::{mpsc, oneshot},
};
use ws_frame::{CloseCode, Connection, Event, Initiator, Message, SendOptions};

use crate::{config::Heartbeat, error::Error, transport::BoxStream};

/// How a connection ended (the seeds' `OnDisconnect`, with the code).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseInfo {
    /// Close code of whoever closed first; [`CloseCode::ABNORMAL`] when the transport ended
    /// without a close handshake, [`CloseCode::NO_STATUS`] for a Close frame without a code.
    pub code: CloseCode,
    /// Close reason.
    pub reason: String,
    /// `User`: this application called close; `Remote`: the server closed; `Local`: this
    /// library failed the connection (protocol error, dead peer, I/O error).
    pub by: Initiator,
}

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
    },
    /// A ping arrived (the pong was queued automatically).
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
}

pub(crate) enum Command {
    Send(Message, SendOptions),
    Ping(Bytes),
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

pub(crate) struct Driver {
    pub(crate) io: BoxStream,
    pub(crate) mode: Mode,
    pub(crate) leftover: Bytes,
    pub(crate) heartbeat: Option<Heartbeat>,
    pub(crate) close_timeout: Duration,
    pub(crate) write_buffer_limit: usize,
    pub(crate) recv_queue: usize,
    pub(crate) shared: Arc<Shared>,
    pub(crate) cmds: mpsc::Receiver<Command>,
    pub(crate) events: mpsc::Sender<Item>,
}

enum Wake {
    Wrote(io::Result<usize>),
    Flushed(io::Result<()>),
    Delivered,
    Read(io::Result<usize>),
    Cmd(Option<Command>),
    ReaderGone,
    Timer,
}

struct Timers {
    hb: Option<Heartbeat>,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    /// Something arrived since the last heartbeat check.
    active: bool,
    linger: Option<Instant>,
}

impl Timers {
    fn next(&self) -> Option<Instant> {
        [self.next_ping, self.pong_deadline, self.linger]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Fills `out` from the connection (one buffer per batch).
fn transmit(mode: &mut Mode, out: &mut BytesMut) {
    if let Mode::WebSocket(ws) = mode {
        while ws.poll_transmit(out) {}
    }
}

fn map_frame_error(e: ws_frame::Error) -> Error {
    Error::Protocol(e)
}

impl Driver {
    #[allow(clippy::too_many_lines)]
    pub(crate) async fn run(self) {
        let Self {
            io,
            mut mode,
            leftover,
            heartbeat,
            close_timeout,
            write_buffer_limit,
            recv_queue,
            shared,
            mut cmds,
            events,
        } = self;
        let (mut reader, mut writer): (ReadHalf<BoxStream>, WriteHalf<BoxStream>) =
            tokio::io::split(io);
        let raw = matches!(mode, Mode::Raw);
        let mut pending: VecDeque<Item> = VecDeque::new();
        let mut out = BytesMut::new();
        let mut raw_rx = BytesMut::new();
        let mut dirty = false;
        // Bytes of `out` counted as sends rather than replies to what was read (pongs, the close
        // echo): all of `out` once a batch of commands has been transmitted, counted down by
        // writes. Replies queued before a batch count as sends; that stays bounded, since
        // commands are only taken while `out` is below the limit.
        let mut sent_backlog = 0usize;
        let mut eof = false;
        let mut cmds_open = true;
        let mut reader_gone = false;
        let mut closers: Vec<oneshot::Sender<Result<CloseInfo, Error>>> = Vec::new();
        let mut final_error: Option<Error> = None;
        let mut raw_closing = false;
        let now = Instant::now();
        let mut timers = Timers {
            next_ping: heartbeat.as_ref().map(|h| now + h.interval),
            hb: heartbeat,
            pong_deadline: None,
            active: false,
            linger: None,
        };
        let sleep = tokio::time::sleep(Duration::from_secs(86_400));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;

        if !leftover.is_empty() {
            match &mut mode {
                Mode::WebSocket(ws) => ws.feed(&leftover),
                Mode::Raw => pending.push_back(Ok(Incoming::Message(Message::Binary(leftover)))),
            }
        }

        loop {
            // 1. events
            if let Mode::WebSocket(ws) = &mut mode {
                loop {
                    match ws.poll_event() {
                        Ok(Some(ev)) => match ev {
                            Event::Message(m) => pending.push_back(Ok(Incoming::Message(m))),
                            Event::Fragment {
                                text,
                                payload,
                                first,
                                fin,
                            } => pending.push_back(Ok(Incoming::Fragment {
                                text,
                                payload,
                                first,
                                fin,
                            })),
                            Event::Ping(p) => pending.push_back(Ok(Incoming::Ping(p))),
                            Event::Pong(p) => {
                                timers.pong_deadline = None;
                                pending.push_back(Ok(Incoming::Pong(p)));
                            }
                            Event::Closed { code, reason, by } => {
                                shared.closing.store(true, Ordering::Release);
                                let info = CloseInfo {
                                    code,
                                    reason: reason.as_str().to_owned(),
                                    by,
                                };
                                shared.set_close_info(info.clone());
                                for c in closers.drain(..) {
                                    let _ = c.send(Ok(info.clone()));
                                }
                                if by == Initiator::Remote && timers.linger.is_none() {
                                    // RFC 6455 7.1.1: the server closes TCP; bound the wait.
                                    timers.linger = Some(Instant::now() + close_timeout);
                                }
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            shared.closing.store(true, Ordering::Release);
                            let timed_out = matches!(e, ws_frame::Error::CloseTimeout);
                            let by = if matches!(e, ws_frame::Error::UnexpectedEof) {
                                Initiator::Remote
                            } else {
                                Initiator::Local
                            };
                            shared.set_close_info(CloseInfo {
                                code: e.close_code(),
                                reason: e.to_string(),
                                by,
                            });
                            for c in closers.drain(..) {
                                let _ = c.send(Err(if timed_out {
                                    Error::ReplyTimeout(close_timeout)
                                } else {
                                    Error::Closed
                                }));
                            }
                            if !timed_out {
                                final_error.get_or_insert(map_frame_error(e));
                            }
                            break;
                        }
                    }
                }
            }

            // 2. output
            transmit(&mut mode, &mut out);
            let transport_done = match &mode {
                Mode::WebSocket(ws) => ws.wants_transport_close(),
                Mode::Raw => eof || (raw_closing && out.is_empty()),
            };
            if transport_done && out.is_empty() && !dirty {
                break;
            }
            if eof && raw {
                break;
            }
            if reader_gone && !cmds_open && !shared.closing.load(Ordering::Acquire) {
                // Every handle is gone: close politely.
                let _ = close_now(&mut mode, &shared, CloseCode::NORMAL, "", &mut raw_closing);
                shared.closing.store(true, Ordering::Release);
                continue;
            }

            // 3. the one timer (a fragmented message that began arms its deadline first)
            let ws_deadline = match &mut mode {
                Mode::WebSocket(ws) => {
                    if ws.wants_now() {
                        // Arming may also fire a deadline that is due: go round once more so
                        // that what it produced is handled and written before waiting.
                        ws.handle_timeout(Instant::now());
                        continue;
                    }
                    ws.poll_timeout()
                }
                Mode::Raw => None,
            };
            let deadline = [timers.next(), ws_deadline].into_iter().flatten().min();
            if deadline != armed {
                if let Some(at) = deadline {
                    sleep.as_mut().reset(at.into());
                }
                armed = deadline;
            }

            // 4. wait
            // A write backlog stops new sends, not reading: a peer that stops reading while its
            // own writes are blocked (an echo behind `tokio::io::copy`, a paused proxy) would
            // otherwise deadlock with us. Reading can only add control replies (pongs, the
            // close echo) to the backlog, so it stops once those could exceed the limit on top
            // of what the sends left (at least the limit itself: twice it in all). The sends'
            // part can overshoot the limit by the last message taken, so it cannot be a fixed
            // 2x bound: a large message would stop reading while the peer waits for us to read.
            let can_cmd = cmds_open && out.len() < write_buffer_limit;
            let read_limit = sent_backlog
                .max(write_buffer_limit)
                .saturating_add(write_buffer_limit);
            let can_read = !eof && pending.len() < recv_queue && out.len() < read_limit;
            let can_deliver = !pending.is_empty() && !reader_gone;
            let wake = tokio::select! {
                biased;
                w = write_or_flush(&mut writer, &mut out), if !out.is_empty() || dirty => w,
                permit = events.reserve(), if can_deliver => match permit {
                    Ok(p) => {
                        if let Some(item) = pending.pop_front() {
                            p.send(item);
                        }
                        Wake::Delivered
                    }
                    Err(_) => Wake::ReaderGone,
                },
                r = read_into(&mut reader, &mut mode, &mut raw_rx), if can_read => Wake::Read(r),
                c = cmds.recv(), if can_cmd => Wake::Cmd(c),
                () = events.closed(), if !reader_gone => Wake::ReaderGone,
                () = &mut sleep, if armed.is_some() => Wake::Timer,
            };
            match wake {
                Wake::Wrote(Ok(0)) | Wake::Flushed(Err(_)) | Wake::Wrote(Err(_)) => {
                    shared.closing.store(true, Ordering::Release);
                    shared.set_close_info(CloseInfo {
                        code: CloseCode::ABNORMAL,
                        reason: "write failed".into(),
                        by: Initiator::Local,
                    });
                    if let Wake::Wrote(Err(e)) | Wake::Flushed(Err(e)) = wake {
                        final_error.get_or_insert(Error::Io(e));
                    } else {
                        final_error.get_or_insert(Error::Io(io::ErrorKind::WriteZero.into()));
                    }
                    eof = true;
                    break;
                }
                Wake::Wrote(Ok(n)) => {
                    dirty = true;
                    sent_backlog = sent_backlog.saturating_sub(n);
                }
                Wake::Flushed(Ok(())) => dirty = false,
                Wake::Delivered => {}
                Wake::ReaderGone => {
                    reader_gone = true;
                    pending.clear();
                }
                Wake::Read(Ok(0)) => {
                    eof = true;
                    match &mut mode {
                        Mode::WebSocket(ws) => ws.handle_eof(),
                        Mode::Raw => {
                            shared.closing.store(true, Ordering::Release);
                            let by = if raw_closing {
                                Initiator::User
                            } else {
                                Initiator::Remote
                            };
                            let info = CloseInfo {
                                code: CloseCode::NO_STATUS,
                                reason: String::new(),
                                by,
                            };
                            shared.set_close_info(info.clone());
                            for c in closers.drain(..) {
                                let _ = c.send(Ok(info.clone()));
                            }
                        }
                    }
                }
                Wake::Read(Ok(_)) => {
                    timers.active = true;
                    // Any data proves the peer alive.
                    timers.pong_deadline = None;
                    if raw && !raw_rx.is_empty() {
                        let chunk = raw_rx.split().freeze();
                        pending.push_back(Ok(Incoming::Message(Message::Binary(chunk))));
                    }
                }
                Wake::Read(Err(e)) => {
                    shared.closing.store(true, Ordering::Release);
                    shared.set_close_info(CloseInfo {
                        code: CloseCode::ABNORMAL,
                        reason: e.to_string(),
                        by: Initiator::Remote,
                    });
                    final_error.get_or_insert(Error::Io(e));
                    eof = true;
                    break;
                }
                Wake::Cmd(None) => cmds_open = false,
                Wake::Cmd(Some(cmd)) => {
                    apply(
                        &mut mode,
                        &shared,
                        cmd,
                        &mut closers,
                        &mut out,
                        &mut raw_closing,
                    );
                    // The batch stops at the write limit (a batch of 64 large messages would
                    // otherwise queue several times the limit).
                    transmit(&mut mode, &mut out);
                    for _ in 1..64 {
                        if out.len() >= write_buffer_limit {
                            break;
                        }
                        match cmds.try_recv() {
                            Ok(cmd) => apply(
                                &mut mode,
                                &shared,
                                cmd,
                                &mut closers,
                                &mut out,
                                &mut raw_closing,
                            ),
                            Err(_) => break,
                        }
                        transmit(&mut mode, &mut out);
                    }
                    sent_backlog = out.len();
                }
                Wake::Timer => {
                    armed = None;
                    let now = Instant::now();
                    if let Mode::WebSocket(ws) = &mut mode {
                        ws.handle_timeout(now);
                    }
                    if timers.linger.is_some_and(|t| now >= t) {
                        break;
                    }
                    if timers.pong_deadline.is_some_and(|t| now >= t) {
                        let timeout = timers
                            .hb
                            .as_ref()
                            .and_then(|h| h.timeout)
                            .unwrap_or_default();
                        shared.closing.store(true, Ordering::Release);
                        shared.set_close_info(CloseInfo {
                            code: CloseCode::ABNORMAL,
                            reason: "heartbeat timeout".into(),
                            by: Initiator::Local,
                        });
                        final_error.get_or_insert(Error::PeerDead(timeout));
                        eof = true;
                        break;
                    }
                    if let (Some(at), Some(hb)) = (timers.next_ping, &timers.hb) {
                        if now >= at {
                            timers.next_ping = Some(now + hb.interval);
                            let active = std::mem::take(&mut timers.active);
                            if !(hb.only_if_idle && active) && timers.pong_deadline.is_none() {
                                if let Mode::WebSocket(ws) = &mut mode {
                                    if ws.ping(Bytes::new()).is_ok() {
                                        timers.pong_deadline = hb.timeout.map(|t| now + t);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }

        // Wind down: tell waiting closers, hand the reader what is left, then the error.
        shared.closing.store(true, Ordering::Release);
        shared.set_close_info(CloseInfo {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            by: Initiator::Remote,
        });
        let info = shared.close_info();
        for c in closers.drain(..) {
            let _ = c.send(info.clone().ok_or(Error::Closed));
        }
        let clean = matches!(&info, Some(i) if i.code != CloseCode::ABNORMAL);
        if final_error.is_none() && !clean {
            final_error = Some(Error::Protocol(ws_frame::Error::UnexpectedEof));
        }
        if !eof {
            let _ = tokio::time::timeout(Duration::from_secs(1), writer.shutdown()).await;
        }
        drop(writer);
        drop(reader);
        // Late commands are refused from here on.
        cmds.close();
        if !reader_gone {
            for item in pending {
                if events.send(item).await.is_err() {
                    return;
                }
            }
            if let Some(e) = final_error {
                let _ = events.send(Err(e)).await;
            }
        }
    }
}

/// Writes some of `out` (cancel-safe: one `poll_write`), or flushes once it is empty.
async fn write_or_flush(writer: &mut WriteHalf<BoxStream>, out: &mut BytesMut) -> Wake {
    if out.is_empty() {
        Wake::Flushed(writer.flush().await)
    } else {
        Wake::Wrote(writer.write_buf(out).await)
    }
}

async fn read_into(
    reader: &mut ReadHalf<BoxStream>,
    mode: &mut Mode,
    raw_rx: &mut BytesMut,
) -> io::Result<usize> {
    match mode {
        Mode::WebSocket(ws) => reader.read_buf(ws.read_buf()).await,
        Mode::Raw => {
            if raw_rx.capacity() - raw_rx.len() < 4096 {
                raw_rx.reserve(16 * 1024);
            }
            reader.read_buf(raw_rx).await
        }
    }
}

fn close_now(
    mode: &mut Mode,
    shared: &Shared,
    code: CloseCode,
    reason: &str,
    raw_closing: &mut bool,
) -> Result<(), Error> {
    let r = match mode {
        Mode::WebSocket(ws) => ws
            .close(code, reason, Instant::now())
            .map_err(map_frame_error),
        Mode::Raw if *raw_closing => Err(Error::Closed),
        Mode::Raw => {
            *raw_closing = true;
            shared.set_close_info(CloseInfo {
                code: CloseCode::NORMAL,
                reason: reason.to_owned(),
                by: Initiator::User,
            });
            Ok(())
        }
    };
    if r.is_ok() {
        shared.closing.store(true, Ordering::Release);
    }
    r
}

fn apply(
    mode: &mut Mode,
    shared: &Shared,
    cmd: Command,
    closers: &mut Vec<oneshot::Sender<Result<CloseInfo, Error>>>,
    out: &mut BytesMut,
    raw_closing: &mut bool,
) {
    match cmd {
        Command::Send(msg, opts) => match mode {
            // Errors here mean the connection is closing: the sender was already told so by
            // `Shared::closing` where it could be.
            Mode::WebSocket(ws) => {
                let _ = ws.send_with(msg, opts);
            }
            Mode::Raw => {
                if !*raw_closing {
                    out.extend_from_slice(msg.as_bytes());
                }
            }
        },
        Command::Ping(p) => {
            if let Mode::WebSocket(ws) = mode {
                let _ = ws.ping(p);
            }
        }
        Command::Close(code, reason, reply) => {
            let already = shared.closing.load(Ordering::Acquire);
            match close_now(mode, shared, code, &reason, raw_closing) {
                Ok(()) => {
                    if let Some(r) = reply {
                        closers.push(r);
                    }
                }
                Err(e) => {
                    if let Some(r) = reply {
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
        }
    }
}
