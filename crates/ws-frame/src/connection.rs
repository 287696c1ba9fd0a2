//! The sans-IO connection: bytes in, events out, frames queued for the caller to write.

use std::{collections::VecDeque, fmt, time::Instant};

use bytes::{Buf, Bytes, BytesMut};

use crate::{
    close::CloseCode,
    config::Config,
    deflate::{Compressor, InflateError, Inflater},
    error::{Error, ProtocolError},
    header::{Header, MAX_HEADER_LEN, OpCode, parse_header},
    mask,
    mask::MaskSource,
    message::{Event, FragmentMode, Initiator, Message, OutFrame, Role, SendOptions},
    os_random::OsMaskSource,
    prepared::Prepared,
    utf8::{Utf8Bytes, Utf8Validator},
};

/// Most payload bytes reserved ahead for a frame whose payload is still arriving; larger frames
/// grow the buffer as data comes, so a header alone never makes us allocate more than this.
const RX_RESERVE_CAP: usize = 1 << 20;
/// [`Connection::read_buf`] guarantees at least this much spare capacity...
const READ_MIN_SPARE: usize = 4 * 1024;
/// ...by reserving this much.
const READ_RESERVE: usize = 16 * 1024;
/// Largest frame (header and payload) that [`Connection::read_buf`] makes room for in one
/// read between frames.
const READ_HINT_MAX: usize = 64 * 1024;
/// Most control frames (pongs, pings) waiting to be written; beyond it the oldest is dropped,
/// as RFC 6455 section 5.5.3 allows for pongs.
const MAX_QUEUED_CONTROL: usize = 64;
/// Idle-timeout checks per [`Config::idle_timeout`] (it fires between 1 and 1.25 times the
/// setting after the last received byte).
const IDLE_TICKS: u32 = 4;

/// Masking keys for client frames: a fixed test key, or the caller's source.
struct MaskKeys {
    fixed: Option<[u8; 4]>,
    source: Option<Box<dyn MaskSource>>,
}

impl MaskKeys {
    fn next(&mut self) -> Result<[u8; 4], Error> {
        if let Some(key) = self.fixed {
            return Ok(key);
        }
        self.source
            .as_mut()
            .and_then(|s| s.next_key())
            .ok_or(Error::Random)
    }
}

impl fmt::Debug for MaskKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaskKeys")
            .field("fixed", &self.fixed.is_some())
            .finish_non_exhaustive()
    }
}

/// Keep-alive and idle timers ([`Config::heartbeat`], [`Config::idle_timeout`]). Received
/// bytes are counted by an epoch that each timer compares with the one it saw last, so the
/// receive path never touches a deadline.
#[derive(Debug, Default)]
struct KeepAlive {
    /// The timers run (set by the first `handle_timeout`).
    started: bool,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    next_idle: Option<Instant>,
    idle_ticks: u32,
    /// Bumped whenever new bytes were found in the receive buffer.
    rx_epoch: u64,
    ping_seen: u64,
    idle_seen: u64,
    /// Length of the receive buffer when events were last polled.
    rx_mark: usize,
    /// The runtime stopped reading (see [`Connection::set_read_paused`]).
    paused: bool,
}

/// The frame whose payload is being received.
#[derive(Clone, Copy, Debug)]
struct RxFrame {
    fin: bool,
    /// RSV1 on the first frame: the message is compressed.
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
    /// Payload bytes at the front of `rx` already unmasked and UTF-8 checked.
    done: usize,
    /// Check UTF-8 as the payload arrives (uncompressed text with validation on).
    check_utf8: bool,
}

/// A fragmented message being received.
#[derive(Debug)]
struct RxMessage {
    text: bool,
    compressed: bool,
    fragments: usize,
    /// Message bytes so far (inflated size for compressed messages).
    size: usize,
    /// Reassembly buffer ([`FragmentMode::Buffer`] and [`FragmentMode::Both`]).
    buf: BytesMut,
    /// No fragment event delivered yet.
    first: bool,
}

/// The deadline of an unfinished fragmented message ([`Config::message_timeout`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MessageTimer {
    /// No fragmented message is open (or it has no deadline).
    Off,
    /// A fragmented message opened; the next `handle_timeout(now)` sets its deadline.
    Unarmed,
    /// The message must be finished by then.
    Armed(Instant),
}

/// A client's wait for the server to close TCP after the close handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TcpWait {
    /// Not waiting (a server).
    No,
    /// The next `handle_timeout(now)` sets the deadline to `now + close_timeout`.
    Unarmed,
    /// The transport is dropped at this time.
    Until(Instant),
}

/// A frame queued for writing.
#[derive(Debug)]
struct Outgoing {
    head: [u8; MAX_HEADER_LEN],
    head_len: u8,
    mask: Option<[u8; 4]>,
    payload: Bytes,
    is_close: bool,
}

/// The close handshake (RFC 6455 section 7), named after the RFC's states.
#[derive(Debug)]
enum CloseState {
    /// Messages flow both ways.
    Open,
    /// The application closed; our Close is queued or sent and we wait for the peer's.
    Sent {
        code: CloseCode,
        reason: Utf8Bytes,
        deadline: Instant,
    },
    /// Both Close frames exchanged (ours may still be queued). A client waits for the server's
    /// TCP close until a deadline: the one of its own close, or [`Config::close_timeout`] from
    /// the next `handle_timeout` when the server started the close.
    Done { tcp_wait: TcpWait },
    /// Failed by an error or a timeout; our Close (if any) is queued. Nothing more is processed.
    Failed,
}

/// A sans-IO WebSocket connection (RFC 6455 with optional RFC 7692 compression), created after
/// the opening handshake.
///
/// # Call order
///
/// The runtime runs one loop:
///
/// 1. input: [`Connection::feed`] (or read into [`Connection::read_buf`]) whatever the transport
///    delivered, [`Connection::handle_timeout`] when the deadline from
///    [`Connection::poll_timeout`] passes, [`Connection::handle_eof`] at end of stream;
/// 2. events: call [`Connection::poll_event`] until it returns `Ok(None)` or an error;
/// 3. commands: [`Connection::send`], [`Connection::ping`], [`Connection::close`], ... at any time;
/// 4. output: write everything [`Connection::poll_transmit`] (or [`Connection::poll_frame`])
///    hands out; this includes pongs and Close replies queued while events were polled;
/// 5. close the transport once [`Connection::wants_transport_close`] says so; arm a timer for
///    [`Connection::poll_timeout`].
///
/// ```
/// use std::time::Instant;
/// use bytes::BytesMut;
/// use ws_frame::{Config, Connection, Event, Message, Role};
///
/// let mut server = Connection::new(Role::Server, Config::default())?;
/// // A masked "Hello" text frame (RFC 6455 section 5.7).
/// server.feed(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// let Some(Event::Message(msg)) = server.poll_event()? else { panic!() };
/// assert_eq!(msg.as_text(), Some("Hello"));
/// server.send(Message::text("Hello"))?;
/// let mut out = BytesMut::new();
/// while server.poll_transmit(&mut out) {}
/// assert_eq!(&out[..], &[0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
/// # Ok::<(), ws_frame::Error>(())
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    rx: BytesMut,
    rx_frame: Option<RxFrame>,
    /// The whole payload of `rx_frame`, set aside by [`Connection::feed`] when the bytes fed
    /// went past its end (so `rx` starts afresh instead of regrowing, and copying, a large
    /// payload to fit the next frame's first bytes).
    rx_ready: Option<BytesMut>,
    /// The size on the wire (header and payload, at most [`READ_HINT_MAX`]) of the last data
    /// frame whose header was read: between frames, [`Connection::read_buf`] leaves room for
    /// one more like it, so that a peer's next frame comes in one read.
    rx_hint: usize,
    rx_msg: Option<RxMessage>,
    utf8: Utf8Validator,
    /// Consecutive frames without message data while a fragmented message is open.
    empty_frames: usize,
    msg_timer: MessageTimer,
    pending_event: Option<Event>,
    pending_error: Option<Error>,
    inflater: Option<Inflater>,
    compressor: Option<Compressor>,
    ctrl_out: VecDeque<Outgoing>,
    data_out: VecDeque<Outgoing>,
    out_bytes: usize,
    /// Kind (text?) of a message opened with `send_fragment` and not finished yet.
    tx_fragmented: Option<bool>,
    close: CloseState,
    /// Our Close frame is queued or written; nothing may be queued after it.
    close_queued: bool,
    /// Our Close frame has left through `poll_transmit`/`poll_frame`.
    close_flushed: bool,
    /// Close the transport now, whatever is still queued (timeouts, end of stream).
    force_transport_close: bool,
    keys: MaskKeys,
    keepalive: KeepAlive,
}

impl Connection {
    /// Creates a connection for `role` with `config` (checked with [`Config::validate`]). A
    /// client draws its masking keys from the operating system ([`OsMaskSource`]); use
    /// [`Connection::with_mask_source`] to pass another source.
    ///
    /// # Errors
    /// [`Error::Config`] when the configuration is inconsistent.
    pub fn new(role: Role, config: Config) -> Result<Self, Error> {
        let source: Option<Box<dyn MaskSource>> = match role {
            Role::Client => Some(Box::new(OsMaskSource::new())),
            Role::Server => None,
        };
        Self::build(role, config, source)
    }

    /// Creates a connection whose masking keys (client role) come from `source`: the sans-IO
    /// constructor, for runtimes that own their randomness and for tests that replay a session
    /// byte for byte. A server never masks and ignores the source.
    ///
    /// # Errors
    /// [`Error::Config`] when the configuration is inconsistent.
    pub fn with_mask_source(
        role: Role,
        config: Config,
        source: impl MaskSource + 'static,
    ) -> Result<Self, Error> {
        Self::build(role, config, Some(Box::new(source)))
    }

    fn build(
        role: Role,
        config: Config,
        source: Option<Box<dyn MaskSource>>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let keys = MaskKeys {
            fixed: config.fixed_mask_key,
            source,
        };
        Ok(Self {
            role,
            config,
            rx: BytesMut::new(),
            rx_frame: None,
            rx_ready: None,
            rx_hint: 0,
            rx_msg: None,
            utf8: Utf8Validator::default(),
            empty_frames: 0,
            msg_timer: MessageTimer::Off,
            pending_event: None,
            pending_error: None,
            inflater: None,
            compressor: None,
            ctrl_out: VecDeque::new(),
            data_out: VecDeque::new(),
            out_bytes: 0,
            tx_fragmented: None,
            close: CloseState::Open,
            close_queued: false,
            close_flushed: false,
            force_transport_close: false,
            keys,
            keepalive: KeepAlive::default(),
        })
    }

    // ----- getters -----

    /// This side's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether no further events will come: the close handshake completed, or the connection
    /// failed or timed out.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self.close, CloseState::Done { .. } | CloseState::Failed)
    }

    /// Whether the runtime should close the transport now.
    ///
    /// A server closes TCP as soon as both Close frames are exchanged and its own was written. A
    /// client waits for the server to close TCP (RFC 6455 section 7.1.1): this turns true for a
    /// client only once the deadline of its own [`Connection::close`] passes; when the server
    /// started the close, runtimes bound the wait for end of stream by
    /// [`Config::close_timeout`]. After a failure, true once the Close frame is written; after a
    /// timeout or end of stream, true at once.
    #[must_use]
    pub fn wants_transport_close(&self) -> bool {
        if self.force_transport_close {
            return true;
        }
        match self.close {
            CloseState::Failed => self.close_flushed || !self.close_queued,
            CloseState::Done { .. } => self.role == Role::Server && self.close_flushed,
            CloseState::Open | CloseState::Sent { .. } => false,
        }
    }

    /// Whether we sent a Close frame and wait for the peer's (the close-handshake deadline
    /// runs).
    #[must_use]
    pub fn is_closing(&self) -> bool {
        matches!(self.close, CloseState::Sent { .. })
    }

    /// Message bytes this connection holds for messages not delivered yet: the reassembly
    /// buffer of an unfinished fragmented message plus the payload received so far of a data
    /// frame still arriving. A runtime adds these up across connections to bound the memory
    /// that partly received messages take (at most [`Config::max_message`] per connection).
    /// Exact after [`Connection::poll_event`] returned `Ok(None)`.
    #[must_use]
    pub fn partial_message_bytes(&self) -> usize {
        let buffered = self.rx_msg.as_ref().map_or(0, |m| m.buf.len());
        let arriving = match (self.rx_frame, &self.rx_ready) {
            (Some(f), _) if f.opcode.is_control() => 0,
            (Some(_), Some(ready)) => ready.len(),
            (Some(f), None) => self.rx.len().min(f.len),
            (None, _) => 0,
        };
        buffered + arriving
    }

    /// Whether a timer waits for the time to start: a fragmented message began since the last
    /// [`Connection::handle_timeout`] (its deadline, [`Config::message_timeout`], counts from
    /// the `now` of the next call), the keep-alive and idle timers of a new connection have
    /// not started, or a client waits for the server's TCP close after a close the server
    /// started. Runtimes check this after polling events and then call `handle_timeout(now)`.
    #[must_use]
    pub fn wants_now(&self) -> bool {
        let message =
            self.msg_timer == MessageTimer::Unarmed && self.receiving() && !self.keepalive.paused;
        let keepalive = !self.keepalive.started
            && (self.config.heartbeat.is_some() || self.config.idle_timeout.is_some())
            && self.sending_open();
        let linger = matches!(
            self.close,
            CloseState::Done {
                tcp_wait: TcpWait::Unarmed
            }
        ) && !self.force_transport_close;
        message || keepalive || linger
    }

    /// Whether the connection is open both ways and no Close frame of ours is queued: pings
    /// and the idle timeout run.
    fn sending_open(&self) -> bool {
        matches!(self.close, CloseState::Open) && !self.close_queued
    }

    /// Whether [`Connection::handle_timeout`] at `now` would queue a keep-alive ping
    /// ([`Config::heartbeat`]): for runtimes that let the application decide first (the seeds'
    /// `OnBeforeHeartBeat`); [`Connection::skip_heartbeat`] then counts the interval as kept
    /// alive without a ping.
    #[must_use]
    pub fn heartbeat_due(&self, now: Instant) -> bool {
        let ka = &self.keepalive;
        let Some(hb) = &self.config.heartbeat else {
            return false;
        };
        ka.started
            && self.sending_open()
            && ka.next_ping.is_some_and(|at| now >= at)
            && ka.pong_deadline.is_none()
            && !(hb.only_if_idle && ka.rx_epoch != ka.ping_seen)
    }

    /// Counts the current heartbeat interval as kept alive: the next ping is due one interval
    /// from `now`, and none is sent now.
    pub fn skip_heartbeat(&mut self, now: Instant) {
        if let Some(hb) = &self.config.heartbeat
            && self.keepalive.started
        {
            self.keepalive.next_ping = Some(now + hb.interval);
            self.keepalive.ping_seen = self.keepalive.rx_epoch;
        }
    }

    /// Tells the connection that the runtime stopped (or resumed) reading on the application's
    /// request (read flow control). While paused, the deadline of an unfinished fragmented
    /// message stops and counts afresh after the pause, pings still go out but their pong is
    /// not waited for (it could not be read), and the idle timeout takes the connection for
    /// active. Not a pause: a connection whose close handshake runs must read.
    pub fn set_read_paused(&mut self, paused: bool) {
        if self.keepalive.paused == paused {
            return;
        }
        self.keepalive.paused = paused;
        if paused {
            self.keepalive.pong_deadline = None;
        } else {
            self.keepalive.idle_ticks = 0;
            self.restart_message_timer();
        }
    }

    /// Whether reading is paused (see [`Connection::set_read_paused`]).
    #[must_use]
    pub fn is_read_paused(&self) -> bool {
        self.keepalive.paused
    }

    /// Bytes queued for writing (headers included): a backpressure signal for runtimes.
    #[must_use]
    pub fn pending_transmit_bytes(&self) -> usize {
        self.out_bytes
    }

    /// The next deadline at which [`Connection::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let paused = self.keepalive.paused;
        let message = match self.msg_timer {
            MessageTimer::Armed(deadline) if self.receiving() && !paused => Some(deadline),
            _ => None,
        };
        let ka = &self.keepalive;
        let keepalive = if ka.started {
            let open = self.sending_open();
            let pong = ka.pong_deadline.filter(|_| self.receiving() && !paused);
            [
                ka.next_ping.filter(|_| open),
                ka.next_idle.filter(|_| open),
                pong,
            ]
            .into_iter()
            .flatten()
            .min()
        } else {
            None
        };
        let close = match self.close {
            CloseState::Sent { deadline, .. } => Some(deadline),
            CloseState::Done {
                tcp_wait: TcpWait::Until(deadline),
            } if self.role == Role::Client && !self.force_transport_close => Some(deadline),
            _ => None,
        };
        [message, close, keepalive].into_iter().flatten().min()
    }

    // ----- inputs -----

    /// Appends bytes received from the transport, in any chunking. Ignored once the connection
    /// stopped receiving (close received, failed).
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if !self.receiving() {
            return;
        }
        // The frame being received ends inside `bytes`, and `rx` (sized for that frame) has no
        // room for what follows: complete the frame and set its payload aside; the rest goes
        // into a new buffer.
        if let Some(frame) = self.rx_frame
            && self.rx_ready.is_none()
            && self.rx.len() < frame.len
            && self.rx.len() + bytes.len() > frame.len
            && self.rx.capacity() < self.rx.len() + bytes.len()
        {
            let (end, rest) = bytes.split_at(frame.len - self.rx.len());
            self.rx.extend_from_slice(end);
            self.rx_ready = Some(self.rx.split_to(frame.len));
            bytes = rest;
        }
        self.rx.extend_from_slice(bytes);
    }

    /// The receive buffer, for runtimes that read straight into it (zero-copy input). At least
    /// 4 KiB of spare capacity is reserved on every call, and between frames 4 KiB more than
    /// the size of the last data frame (up to 64 KiB); once the connection stopped receiving,
    /// the buffer is emptied on every call.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        if !self.receiving() {
            // Nothing more is processed: keep whatever the transport still delivers from
            // piling up.
            self.rx.clear();
        }
        // Between frames, room for a whole frame like the last one and then some: a read that
        // fills the buffer exactly leaves the socket looking readable, and the next read
        // finds nothing (EAGAIN); a frame that does not fit takes two reads. While a frame
        // arrives, its header reserved room for it.
        let want = match self.rx_frame {
            None => READ_MIN_SPARE + self.rx_hint,
            Some(_) => READ_MIN_SPARE,
        };
        if self.rx.capacity() - self.rx.len() < want {
            self.rx.reserve(want.max(READ_RESERVE));
        }
        &mut self.rx
    }

    /// Fires due timers: the deadline of an unfinished fragmented message (the connection
    /// fails with 1008: a Close frame is queued and the next [`Connection::poll_event`]
    /// returns [`Error::MessageTimeout`]), the pong deadline of a keep-alive ping (the next
    /// [`Connection::poll_event`] returns [`Error::PongTimeout`]; no Close frame, the transport
    /// should be dropped at once), the next keep-alive ping ([`Config::heartbeat`]), the idle
    /// timeout ([`Config::idle_timeout`]: closes with 1000 "idle timeout"), the
    /// close-handshake deadline (the next [`Connection::poll_event`] then returns
    /// [`Error::CloseTimeout`]) and a client's wait for the server's TCP close. Also starts
    /// the timers that wait for the time (see [`Connection::wants_now`]). Spurious calls are
    /// harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.start_keepalive(now);
        if self.receiving() && !self.keepalive.paused {
            match (self.msg_timer, self.config.message_timeout) {
                (MessageTimer::Unarmed, Some(after)) => {
                    self.msg_timer = MessageTimer::Armed(now + after);
                }
                (MessageTimer::Armed(deadline), Some(after)) if now >= deadline => {
                    let error = Error::MessageTimeout { after };
                    self.fail(&error);
                    self.pending_error = Some(error);
                    return;
                }
                _ => {}
            }
        }
        if self.fire_keepalive(now) {
            return;
        }
        match self.close {
            CloseState::Sent { deadline, .. } if now >= deadline => {
                self.close = CloseState::Failed;
                self.pending_error = Some(Error::CloseTimeout);
                self.force_transport_close = true;
                self.rx_msg = None;
            }
            CloseState::Done {
                tcp_wait: TcpWait::Until(deadline),
            } if now >= deadline => self.force_transport_close = true,
            CloseState::Done {
                tcp_wait: TcpWait::Unarmed,
            } => {
                self.close = CloseState::Done {
                    tcp_wait: TcpWait::Until(now + self.config.close_timeout),
                };
            }
            _ => {}
        }
    }

    /// Starts the keep-alive and idle timers at the first call after the connection opened.
    fn start_keepalive(&mut self, now: Instant) {
        if self.keepalive.started || !self.sending_open() {
            return;
        }
        let ka = &mut self.keepalive;
        let hb = self.config.heartbeat.as_ref();
        let idle = self.config.idle_timeout;
        if hb.is_none() && idle.is_none() {
            return;
        }
        ka.started = true;
        ka.next_ping = hb.map(|h| now + h.interval);
        ka.next_idle = idle.map(|d| now + d / IDLE_TICKS);
        ka.ping_seen = ka.rx_epoch;
        ka.idle_seen = ka.rx_epoch;
    }

    /// Fires due keep-alive timers: the pong deadline (fails the connection: returns true),
    /// the next ping, the idle check.
    fn fire_keepalive(&mut self, now: Instant) -> bool {
        if !self.keepalive.started {
            return false;
        }
        if self.receiving()
            && !self.keepalive.paused
            && self.keepalive.pong_deadline.is_some_and(|d| now >= d)
        {
            let after = self
                .config
                .heartbeat
                .as_ref()
                .and_then(|h| h.timeout)
                .unwrap_or_default();
            let error = Error::PongTimeout { after };
            // 1006 is never sent: no Close frame, the transport is dropped.
            self.fail(&error);
            self.pending_error = Some(error);
            self.force_transport_close = true;
            return true;
        }
        if !self.sending_open() {
            return false;
        }
        if let (Some(at), Some(hb)) = (self.keepalive.next_ping, &self.config.heartbeat)
            && now >= at
        {
            let ka = &mut self.keepalive;
            ka.next_ping = Some(now + hb.interval);
            let active = ka.rx_epoch != ka.ping_seen;
            ka.ping_seen = ka.rx_epoch;
            if !(hb.only_if_idle && active) && ka.pong_deadline.is_none() {
                let timeout = hb.timeout;
                let paused = ka.paused;
                if self.queue_control(OpCode::Ping, Bytes::new()).is_ok() && !paused {
                    self.keepalive.pong_deadline = timeout.map(|t| now + t);
                }
            }
        }
        if let (Some(at), Some(idle)) = (self.keepalive.next_idle, self.config.idle_timeout)
            && now >= at
        {
            let ka = &mut self.keepalive;
            ka.next_idle = Some(now + idle / IDLE_TICKS);
            if ka.paused || ka.rx_epoch != ka.idle_seen {
                ka.idle_seen = ka.rx_epoch;
                ka.idle_ticks = 0;
            } else {
                ka.idle_ticks += 1;
                if ka.idle_ticks >= IDLE_TICKS {
                    ka.next_idle = None;
                    let _ = self.close(CloseCode::NORMAL, "idle timeout", now);
                }
            }
        }
        false
    }

    /// Lets the deadline of an unfinished fragmented message count afresh from the next
    /// [`Connection::handle_timeout`]: for a runtime that stopped reading for a while (read
    /// flow control), which is not the peer's delay.
    pub fn restart_message_timer(&mut self) {
        if matches!(self.msg_timer, MessageTimer::Armed(_)) {
            self.msg_timer = MessageTimer::Unarmed;
        }
    }

    /// The transport reached end of stream. Before a completed close handshake this is an
    /// abnormal closure: the next [`Connection::poll_event`] returns [`Error::UnexpectedEof`].
    pub fn handle_eof(&mut self) {
        if matches!(self.close, CloseState::Open | CloseState::Sent { .. }) {
            self.close = CloseState::Failed;
            self.pending_error = Some(Error::UnexpectedEof);
            self.rx_msg = None;
        }
        self.force_transport_close = true;
    }

    // ----- events -----

    /// The next event decoded from the received bytes; `Ok(None)` when more bytes are needed
    /// or when nothing more will come.
    ///
    /// # Errors
    /// A protocol violation, invalid UTF-8, a limit, a close timeout or an unexpected end of
    /// stream. The error is returned once: a Close frame with [`Error::close_code`] is queued
    /// (when sendable and none was sent yet) and later calls return `Ok(None)`.
    pub fn poll_event(&mut self) -> Result<Option<Event>, Error> {
        // New bytes since the last poll prove the peer alive (heartbeat, idle timeout).
        let ka = &mut self.keepalive;
        if self.rx.len() > ka.rx_mark || self.rx_ready.is_some() {
            ka.rx_epoch = ka.rx_epoch.wrapping_add(1);
            ka.pong_deadline = None;
        }
        let event = self.poll_event_inner();
        self.keepalive.rx_mark = self.rx.len();
        event
    }

    fn poll_event_inner(&mut self) -> Result<Option<Event>, Error> {
        if let Some(event) = self.pending_event.take() {
            return Ok(Some(event));
        }
        if let Some(error) = self.pending_error.take() {
            return Err(error);
        }
        if !self.receiving() {
            return Ok(None);
        }
        match self.next_event() {
            Ok(event) => Ok(event),
            Err(error) => {
                self.fail(&error);
                Err(error)
            }
        }
    }

    fn receiving(&self) -> bool {
        matches!(self.close, CloseState::Open | CloseState::Sent { .. })
    }

    /// Fails the connection: queue a Close with the error's code unless one was sent already.
    fn fail(&mut self, error: &Error) {
        let code = error.close_code();
        if !self.close_queued && code.is_sendable() {
            let text = error.to_string();
            let mut end = text.len().min(123);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let mut payload = BytesMut::with_capacity(2 + end);
            payload.extend_from_slice(&code.as_u16().to_be_bytes());
            payload.extend_from_slice(&text.as_bytes()[..end]);
            // A failing random source leaves the Close unsent; the transport closes anyway.
            let _ = self.queue_close_frame(payload.freeze());
        }
        self.stop_receiving();
    }

    /// Enters the failed state: nothing more is received, partial input is dropped.
    fn stop_receiving(&mut self) {
        self.close = CloseState::Failed;
        self.msg_timer = MessageTimer::Off;
        self.rx_msg = None;
        self.rx_frame = None;
        self.rx_ready = None;
        self.rx = BytesMut::new();
    }

    fn next_event(&mut self) -> Result<Option<Event>, Error> {
        loop {
            let frame = match self.rx_frame {
                Some(frame) => frame,
                None => {
                    let Some((header, header_len)) = parse_header(&self.rx)? else {
                        return Ok(None);
                    };
                    let frame = self.accept_header(&header)?;
                    if !frame.opcode.is_control() {
                        self.rx_hint = (header_len + frame.len).min(READ_HINT_MAX);
                    }
                    self.rx.advance(header_len);
                    let missing = frame.len.saturating_sub(self.rx.len());
                    if missing > 0 {
                        self.rx.reserve(missing.min(RX_RESERVE_CAP) + READ_RESERVE);
                    }
                    self.rx_frame = Some(frame);
                    frame
                }
            };
            let mut payload = match self.rx_ready.take() {
                Some(payload) => payload,
                None if self.rx.len() < frame.len => {
                    if frame.check_utf8 && self.rx.len() > frame.done {
                        self.check_partial(frame)?;
                    }
                    return Ok(None);
                }
                None => self.rx.split_to(frame.len),
            };
            self.rx_frame = None;
            if let Some(key) = frame.mask {
                mask::apply_at(&mut payload[frame.done..], key, frame.done);
            }
            if let Some(event) = self.on_frame(frame, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// Unmasks and checks the part of a text frame's payload that arrived so far.
    fn check_partial(&mut self, frame: RxFrame) -> Result<(), Error> {
        let arrived = &mut self.rx[frame.done..];
        if let Some(key) = frame.mask {
            mask::apply_at(arrived, key, frame.done);
        }
        self.utf8.feed(arrived).map_err(|()| Error::InvalidUtf8)?;
        let done = self.rx.len();
        if let Some(f) = self.rx_frame.as_mut() {
            f.done = done;
        }
        Ok(())
    }

    /// Validates a header against the role, the extensions, the message state and the limits.
    fn accept_header(&mut self, h: &Header) -> Result<RxFrame, Error> {
        let opcode = OpCode::try_from(h.opcode)?;
        if h.rsv2 || h.rsv3 || (h.rsv1 && self.config.deflate.is_none()) {
            return Err(ProtocolError::ReservedBits.into());
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) if !self.config.accept_unmasked_from_client => {
                return Err(ProtocolError::UnmaskedFrame.into());
            }
            (Role::Client, true) if !self.config.accept_masked_from_server => {
                return Err(ProtocolError::MaskedFrame.into());
            }
            _ => {}
        }
        if opcode.is_control() {
            if !h.fin {
                return Err(ProtocolError::FragmentedControl.into());
            }
            if h.payload_len > 125 {
                return Err(ProtocolError::ControlTooLong(h.payload_len).into());
            }
            if h.rsv1 {
                return Err(ProtocolError::Rsv1NotOnFirstFrame.into());
            }
            if self.rx_msg.is_some() {
                self.count_empty_frame()?;
            }
            return Ok(RxFrame {
                fin: true,
                rsv1: false,
                opcode,
                mask: h.mask,
                // At most 125: checked above.
                len: h.payload_len as usize,
                done: 0,
                check_utf8: false,
            });
        }
        if h.payload_len > self.config.max_frame as u64 {
            return Err(Error::FrameTooLarge {
                len: h.payload_len,
                max: self.config.max_frame as u64,
            });
        }
        // Below max_frame, hence fits in usize.
        let len = h.payload_len as usize;
        let (text, compressed, size) = match (opcode, &self.rx_msg) {
            (OpCode::Continuation, None) => {
                return Err(ProtocolError::UnexpectedContinuation.into());
            }
            (OpCode::Continuation, Some(msg)) => {
                if h.rsv1 {
                    return Err(ProtocolError::Rsv1NotOnFirstFrame.into());
                }
                if msg.fragments >= self.config.max_fragments {
                    return Err(Error::TooManyFragments {
                        max: self.config.max_fragments as u64,
                    });
                }
                (msg.text, msg.compressed, msg.size)
            }
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation.into()),
            (op, None) => {
                self.utf8.reset();
                if !h.fin && self.config.message_timeout.is_some() {
                    self.msg_timer = MessageTimer::Unarmed;
                }
                (op == OpCode::Text, h.rsv1, 0)
            }
        };
        if !compressed && size + len > self.config.max_message {
            return Err(Error::MessageTooLarge {
                max: self.config.max_message as u64,
            });
        }
        if len > 0 || h.fin {
            self.empty_frames = 0;
        } else {
            self.count_empty_frame()?;
        }
        Ok(RxFrame {
            fin: h.fin,
            rsv1: h.rsv1,
            opcode,
            mask: h.mask,
            len,
            done: 0,
            check_utf8: text && !compressed && self.config.validate_utf8,
        })
    }

    fn count_empty_frame(&mut self) -> Result<(), Error> {
        self.empty_frames += 1;
        if self.empty_frames > self.config.max_empty_frames {
            return Err(Error::TooManyEmptyFrames {
                max: self.config.max_empty_frames as u64,
            });
        }
        Ok(())
    }

    fn on_frame(&mut self, frame: RxFrame, payload: BytesMut) -> Result<Option<Event>, Error> {
        match frame.opcode {
            OpCode::Ping => {
                let payload = payload.freeze();
                if self.config.auto_pong && matches!(self.close, CloseState::Open) {
                    self.queue_control(OpCode::Pong, payload.clone())?;
                }
                Ok(Some(Event::Ping(payload)))
            }
            OpCode::Pong => Ok(Some(Event::Pong(payload.freeze()))),
            OpCode::Close => self.on_close(payload).map(Some),
            OpCode::Text | OpCode::Binary | OpCode::Continuation => self.on_data(frame, payload),
        }
    }

    fn on_close(&mut self, payload: BytesMut) -> Result<Event, Error> {
        let (code, reason) = match payload.len() {
            0 => (CloseCode::NO_STATUS, Utf8Bytes::new()),
            1 => return Err(ProtocolError::CloseTooShort.into()),
            _ => {
                let code = CloseCode::from(u16::from_be_bytes([payload[0], payload[1]]));
                if !code.is_valid_received() {
                    return Err(ProtocolError::InvalidCloseCode(code.as_u16()).into());
                }
                let reason = Utf8Bytes::try_from(payload.freeze().slice(2..))
                    .map_err(|_| Error::InvalidUtf8)?;
                (code, reason)
            }
        };
        self.rx_msg = None;
        self.rx = BytesMut::new();
        let state = std::mem::replace(&mut self.close, CloseState::Failed);
        let event = match state {
            CloseState::Sent {
                code: our_code,
                reason: our_reason,
                deadline,
            } => {
                self.close = CloseState::Done {
                    tcp_wait: TcpWait::Until(deadline),
                };
                Event::Closed {
                    code: our_code,
                    reason: our_reason,
                    by: Initiator::User,
                }
            }
            _ => {
                // RFC 6455 section 7.1.1: the server closes TCP; a client bounds the wait.
                let tcp_wait = match self.role {
                    Role::Client => TcpWait::Unarmed,
                    Role::Server => TcpWait::No,
                };
                self.close = CloseState::Done { tcp_wait };
                let echo = if code == CloseCode::NO_STATUS {
                    CloseCode::NORMAL
                } else {
                    code
                };
                if !self.close_queued {
                    self.queue_close_frame(Bytes::copy_from_slice(&echo.as_u16().to_be_bytes()))?;
                }
                Event::Closed {
                    code,
                    reason,
                    by: Initiator::Remote,
                }
            }
        };
        Ok(event)
    }

    fn on_data(&mut self, frame: RxFrame, payload: BytesMut) -> Result<Option<Event>, Error> {
        let first = frame.opcode != OpCode::Continuation;
        if first && frame.fin && !frame.rsv1 {
            // Unfragmented and uncompressed: hand out the received bytes without a copy.
            let bytes = payload.freeze();
            let message = if frame.opcode == OpCode::Text {
                Message::Text(Utf8Bytes::try_from(bytes).map_err(|_| Error::InvalidUtf8)?)
            } else {
                Message::Binary(bytes)
            };
            return Ok(Some(Event::Message(message)));
        }
        let mut msg = match self.rx_msg.take() {
            Some(msg) if !first => msg,
            _ => RxMessage {
                text: frame.opcode == OpCode::Text,
                compressed: frame.rsv1,
                fragments: 0,
                size: 0,
                buf: BytesMut::new(),
                first: true,
            },
        };
        msg.fragments += 1;
        let unfragmented = first && frame.fin;
        let (deliver, buffer) = if unfragmented {
            (false, true)
        } else {
            match self.config.fragment_mode {
                FragmentMode::Buffer => (false, true),
                FragmentMode::Deliver => (true, false),
                FragmentMode::Both => (true, true),
            }
        };
        let check_utf8 = msg.text && self.config.validate_utf8;
        let chunk = if msg.compressed {
            let limit = self.config.max_message - msg.size;
            let deflate = self.config.deflate.as_ref();
            let inflater = self.inflater.get_or_insert_with(|| {
                let peer_no_context = deflate.is_some_and(|p| match self.role {
                    Role::Server => p.client_no_context_takeover(),
                    Role::Client => p.server_no_context_takeover(),
                });
                Inflater::new(peer_no_context)
            });
            let map = |e| match e {
                InflateError::TooBig => Error::MessageTooLarge {
                    max: self.config.max_message as u64,
                },
                InflateError::Corrupt => Error::InvalidDeflate,
            };
            if deliver {
                let mut out = BytesMut::new();
                inflater
                    .inflate(&payload, frame.fin, &mut out, limit)
                    .map_err(map)?;
                if check_utf8 {
                    self.utf8.feed(&out).map_err(|()| Error::InvalidUtf8)?;
                }
                msg.size += out.len();
                if buffer {
                    msg.buf.extend_from_slice(&out);
                }
                Some(out.freeze())
            } else {
                let before = msg.buf.len();
                inflater
                    .inflate(&payload, frame.fin, &mut msg.buf, limit)
                    .map_err(map)?;
                if check_utf8 {
                    self.utf8
                        .feed(&msg.buf[before..])
                        .map_err(|()| Error::InvalidUtf8)?;
                }
                msg.size = msg.buf.len();
                None
            }
        } else {
            if frame.check_utf8 {
                self.utf8
                    .feed(&payload[frame.done..])
                    .map_err(|()| Error::InvalidUtf8)?;
            }
            msg.size += payload.len();
            if deliver {
                if buffer {
                    msg.buf.extend_from_slice(&payload);
                }
                Some(payload.freeze())
            } else {
                if msg.buf.is_empty() {
                    msg.buf = payload;
                } else {
                    msg.buf.extend_from_slice(&payload);
                }
                None
            }
        };
        if frame.fin && check_utf8 {
            self.utf8.finish().map_err(|()| Error::InvalidUtf8)?;
        }
        let fragment = chunk.map(|payload| Event::Fragment {
            text: msg.text,
            payload,
            first: msg.first,
            fin: frame.fin,
        });
        msg.first = false;
        if !frame.fin {
            self.rx_msg = Some(msg);
            return Ok(fragment);
        }
        self.msg_timer = MessageTimer::Off;
        let message = if buffer {
            let bytes = msg.buf.freeze();
            Some(if msg.text {
                Message::Text(Utf8Bytes::try_from(bytes).map_err(|_| Error::InvalidUtf8)?)
            } else {
                Message::Binary(bytes)
            })
        } else {
            None
        };
        Ok(match (fragment, message) {
            (Some(fragment), Some(message)) => {
                self.pending_event = Some(Event::Message(message));
                Some(fragment)
            }
            (Some(fragment), None) => Some(fragment),
            (None, message) => message.map(Event::Message),
        })
    }

    // ----- commands -----

    fn check_open(&self) -> Result<(), Error> {
        if matches!(self.close, CloseState::Open) && !self.close_queued {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    /// Queues `msg` with default [`SendOptions`]; bytes appear on the next
    /// [`Connection::poll_transmit`].
    ///
    /// # Errors
    /// See [`Connection::send_with`].
    pub fn send(&mut self, msg: Message) -> Result<(), Error> {
        self.send_with(msg, SendOptions::default())
    }

    /// Queues `msg`, compressed when permessage-deflate is in use (and `opts.compress`, and the
    /// message is at least the negotiated minimum size), split into frames of at most
    /// `opts.fragment_size` (or [`Config::fragment_size`]) payload bytes.
    ///
    /// # Errors
    /// [`Error::Closed`] once a Close frame was queued, sent or received;
    /// [`Error::FragmentState`] while a message from [`Connection::send_fragment`] is open;
    /// [`Error::Config`] for a fragment size of 0; [`Error::Random`] if masking keys cannot be
    /// generated.
    pub fn send_with(&mut self, msg: Message, opts: SendOptions) -> Result<(), Error> {
        self.check_open()?;
        if self.tx_fragmented.is_some() {
            return Err(Error::FragmentState);
        }
        let fragment_size = match opts.fragment_size.or(self.config.fragment_size) {
            Some(0) => return Err(crate::error::ConfigError::ZeroFragmentSize.into()),
            other => other,
        };
        let opcode = if msg.is_text() {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        let payload = msg.into_payload();
        let (payload, compressed) = match &self.config.deflate {
            Some(params) if opts.compress && payload.len() >= params.min_size() => {
                let (bits, no_context) = match self.role {
                    Role::Server => (
                        params.server_max_window_bits(),
                        params.server_no_context_takeover(),
                    ),
                    Role::Client => (
                        params.client_max_window_bits(),
                        params.client_no_context_takeover(),
                    ),
                };
                let level = params.level();
                let compressor = self
                    .compressor
                    .get_or_insert_with(|| Compressor::new(level, bits, no_context));
                let mut out = BytesMut::with_capacity(payload.len() / 2 + 64);
                // A compressor failure is an engine parameter or stream error: report it as internal
                // by sending the message uncompressed instead.
                match compressor.compress(&payload, &mut out) {
                    // Without context takeover the dictionary was emptied after this message,
                    // so sending it raw when compression did not pay off is safe.
                    Ok(()) if no_context && out.len() >= payload.len() => (payload, false),
                    Ok(()) => (out.freeze(), true),
                    Err(_) => {
                        self.compressor = None;
                        (payload, false)
                    }
                }
            }
            _ => (payload, false),
        };
        match fragment_size {
            Some(size) if payload.len() > size => {
                let mut rest = payload;
                let mut first = true;
                while !rest.is_empty() {
                    let piece = rest.split_to(size.min(rest.len()));
                    let fin = rest.is_empty();
                    let op = if first { opcode } else { OpCode::Continuation };
                    self.queue_data(op, first && compressed, fin, piece)?;
                    first = false;
                }
                Ok(())
            }
            _ => self.queue_data(opcode, compressed, true, payload),
        }
    }

    /// Queues a message framed once for many connections ([`Prepared`]): the same header
    /// bytes and payload `Bytes` as every other connection that queues it. A connection that
    /// frames differently (client role, [`Config::fragment_size`] below the message size,
    /// permessage-deflate with server context takeover) sends the message as
    /// [`Connection::send`] does; the bytes on the wire are the same either way.
    ///
    /// # Errors
    /// As [`Connection::send_with`].
    pub fn send_prepared(&mut self, prepared: &Prepared) -> Result<(), Error> {
        self.check_open()?;
        if self.tx_fragmented.is_some() {
            return Err(Error::FragmentState);
        }
        let len = prepared.payload().len();
        let fragments = self.config.fragment_size.is_some_and(|size| len > size);
        if self.role == Role::Client || fragments {
            return self.send(prepared.message().clone());
        }
        let frame = match &self.config.deflate {
            Some(params) if len >= params.min_size() => {
                if !params.server_no_context_takeover() {
                    return self.send(prepared.message().clone());
                }
                prepared.deflated(params.server_max_window_bits(), params.level())
            }
            _ => prepared.plain().clone(),
        };
        self.out_bytes += usize::from(frame.head_len) + frame.payload.len();
        self.data_out.push_back(Outgoing {
            head: frame.head,
            head_len: frame.head_len,
            mask: None,
            payload: frame.payload,
            is_close: false,
        });
        Ok(())
    }

    /// Queues one fragment of a message the caller streams without reassembly (relays,
    /// proxies). `first` opens a message (`text` selects its kind), `fin` ends it; fragments
    /// are never compressed.
    ///
    /// # Errors
    /// [`Error::Closed`] once a Close frame was queued, sent or received;
    /// [`Error::FragmentState`] for a first fragment while a message is open or a continuation
    /// without one; [`Error::Random`] if masking keys cannot be generated.
    pub fn send_fragment(
        &mut self,
        text: bool,
        payload: Bytes,
        first: bool,
        fin: bool,
    ) -> Result<(), Error> {
        self.check_open()?;
        let opcode = match (first, self.tx_fragmented) {
            (true, None) if text => OpCode::Text,
            (true, None) => OpCode::Binary,
            (false, Some(_)) => OpCode::Continuation,
            _ => return Err(Error::FragmentState),
        };
        self.queue_data(opcode, false, fin, payload)?;
        self.tx_fragmented = if fin { None } else { Some(text) };
        Ok(())
    }

    /// Queues a ping.
    ///
    /// # Errors
    /// [`Error::ControlPayloadTooLong`] above 125 bytes; [`Error::Closed`] once a Close frame
    /// was queued, sent or received; [`Error::Random`] if masking keys cannot be generated.
    pub fn ping(&mut self, payload: Bytes) -> Result<(), Error> {
        self.check_open()?;
        self.queue_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (a heartbeat RFC 6455 section 5.5.3 allows).
    ///
    /// # Errors
    /// As [`Connection::ping`].
    pub fn pong(&mut self, payload: Bytes) -> Result<(), Error> {
        self.check_open()?;
        self.queue_control(OpCode::Pong, payload)
    }

    /// Starts the close handshake: queues a Close frame with `code` and `reason` and waits for
    /// the peer's Close until `now + Config::close_timeout`. [`CloseCode::NO_STATUS`] sends a
    /// Close frame without a payload. Messages that arrive meanwhile are still delivered.
    ///
    /// # Errors
    /// [`Error::UnsendableCloseCode`] for codes that may not be sent;
    /// [`Error::ControlPayloadTooLong`] for a reason over 123 bytes; [`Error::Closed`] once a
    /// Close frame was queued, sent or received; [`Error::Random`] if masking keys cannot be
    /// generated.
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), Error> {
        self.check_open()?;
        let payload = close_payload(code, reason)?;
        self.queue_close_frame(payload)?;
        self.close = CloseState::Sent {
            code,
            reason: Utf8Bytes::from(reason.to_owned()),
            deadline: now + self.config.close_timeout,
        };
        Ok(())
    }

    /// Fails the connection on the application's behalf (RFC 6455 section 7.1.7), for limits
    /// the runtime enforces itself (a server-wide memory budget, a broken handler): queues a
    /// Close frame with `code` and `reason` unless one was queued already, drops any partly
    /// received message and stops receiving. No event follows;
    /// [`Connection::wants_transport_close`] turns true once the Close frame is written.
    ///
    /// # Errors
    /// [`Error::UnsendableCloseCode`] and [`Error::ControlPayloadTooLong`] as for
    /// [`Connection::close`] (nothing changes then); [`Error::Closed`] once the connection
    /// stopped receiving (closed or failed); [`Error::Random`] if the masking key cannot be
    /// generated (the connection fails without a Close frame).
    pub fn abort(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !self.receiving() {
            return Err(Error::Closed);
        }
        let payload = close_payload(code, reason)?;
        let queued = if self.close_queued {
            Ok(())
        } else {
            self.queue_close_frame(payload)
        };
        self.stop_receiving();
        queued
    }

    fn queue_control(&mut self, opcode: OpCode, payload: Bytes) -> Result<(), Error> {
        if payload.len() > 125 {
            return Err(Error::ControlPayloadTooLong { len: payload.len() });
        }
        let frame = self.encode(
            Header::new(true, opcode, payload.len() as u64),
            payload,
            false,
        )?;
        if self.ctrl_out.len() >= MAX_QUEUED_CONTROL {
            if let Some(old) = self.ctrl_out.pop_front() {
                self.out_bytes -= usize::from(old.head_len) + old.payload.len();
            }
        }
        self.out_bytes += usize::from(frame.head_len) + frame.payload.len();
        self.ctrl_out.push_back(frame);
        Ok(())
    }

    fn queue_close_frame(&mut self, payload: Bytes) -> Result<(), Error> {
        let frame = self.encode(
            Header::new(true, OpCode::Close, payload.len() as u64),
            payload,
            true,
        )?;
        self.close_queued = true;
        self.out_bytes += usize::from(frame.head_len) + frame.payload.len();
        self.data_out.push_back(frame);
        Ok(())
    }

    fn queue_data(
        &mut self,
        opcode: OpCode,
        rsv1: bool,
        fin: bool,
        payload: Bytes,
    ) -> Result<(), Error> {
        let mut header = Header::new(fin, opcode, payload.len() as u64);
        header.rsv1 = rsv1;
        let frame = self.encode(header, payload, false)?;
        self.out_bytes += usize::from(frame.head_len) + frame.payload.len();
        self.data_out.push_back(frame);
        Ok(())
    }

    fn encode(
        &mut self,
        mut header: Header,
        payload: Bytes,
        is_close: bool,
    ) -> Result<Outgoing, Error> {
        if self.role == Role::Client {
            header.mask = Some(self.keys.next()?);
        }
        let mut head = [0; MAX_HEADER_LEN];
        let head_len = header.encode_into(&mut head) as u8;
        Ok(Outgoing {
            head,
            head_len,
            mask: header.mask,
            payload,
            is_close,
        })
    }

    // ----- outputs -----

    fn pop_outgoing(&mut self) -> Option<Outgoing> {
        let frame = self
            .ctrl_out
            .pop_front()
            .or_else(|| self.data_out.pop_front())?;
        self.out_bytes -= usize::from(frame.head_len) + frame.payload.len();
        if frame.is_close {
            self.close_flushed = true;
            // Nothing may follow our Close frame.
            self.ctrl_out.clear();
            self.data_out.clear();
            self.out_bytes = 0;
        }
        Some(frame)
    }

    /// Appends every queued frame (data, pongs, Close replies) to `out`, reserving once.
    /// Returns false when nothing was queued.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        if self.ctrl_out.is_empty() && self.data_out.is_empty() {
            return false;
        }
        out.reserve(self.out_bytes);
        while let Some(frame) = self.pop_outgoing() {
            out.extend_from_slice(&frame.head[..usize::from(frame.head_len)]);
            let start = out.len();
            out.extend_from_slice(&frame.payload);
            if let Some(key) = frame.mask {
                mask::apply(&mut out[start..], key);
            }
        }
        true
    }

    /// Takes the next queued frame as header bytes plus payload, for vectored writes. A
    /// server's payload is the `Bytes` the application passed (no copy); a client's is masked,
    /// in place when the application no longer shares it.
    #[must_use]
    pub fn poll_frame(&mut self) -> Option<OutFrame> {
        let frame = self.pop_outgoing()?;
        let payload = match frame.mask {
            None => frame.payload,
            Some(key) => {
                let mut owned = frame
                    .payload
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                mask::apply(&mut owned, key);
                owned.freeze()
            }
        };
        Some(OutFrame {
            head: frame.head,
            head_len: usize::from(frame.head_len),
            payload,
        })
    }
}

/// The payload of a Close frame with `code` and `reason` ([`CloseCode::NO_STATUS`]: empty).
fn close_payload(code: CloseCode, reason: &str) -> Result<Bytes, Error> {
    if code == CloseCode::NO_STATUS {
        if !reason.is_empty() {
            return Err(Error::UnsendableCloseCode(code.as_u16()));
        }
        return Ok(Bytes::new());
    }
    if !code.is_sendable() {
        return Err(Error::UnsendableCloseCode(code.as_u16()));
    }
    if reason.len() > 123 {
        return Err(Error::ControlPayloadTooLong {
            len: reason.len() + 2,
        });
    }
    let mut p = BytesMut::with_capacity(2 + reason.len());
    p.extend_from_slice(&code.as_u16().to_be_bytes());
    p.extend_from_slice(reason.as_bytes());
    Ok(p.freeze())
}
