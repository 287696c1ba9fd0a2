//! The ws-server handler that bridges each WebSocket to its backend, and the two relay tasks
//! per connection.
//!
//! What one small message costs each way, plain TCP backend, one message in flight: browser to
//! backend, one read of the WebSocket (the connection task) and one write to the backend,
//! made from `on_message` itself ([`UpQueue::push`]: no hand-over, no wake-up); backend to
//! browser, one read of the backend (`tcp_down`, whose read ends the socket's readiness, so no
//! second read finds it empty) and one write of the frame by the connection task, which
//! `tcp_down` wakes through the connection's command queue (on the same thread with the
//! default single-threaded runtime). That is the floor of four system calls per round trip,
//! and a wait for readiness before each read when nothing else is ready. Most of a round
//! trip's CPU time is the kernel's (the loopback send wakes the peer in the sender's time),
//! not this code's: `cargo xtask bench proxy` counts the bridge's context switches, and its
//! system calls with `WSKIT_BENCH_SYSCALLS=1`, per round trip.

use std::{
    collections::{HashMap, VecDeque},
    io::{self, IoSlice},
    net::SocketAddr,
    pin::pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use bytes::{BufMut as _, Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::Notify,
    task::JoinHandle,
};
use tokio_rustls::TlsConnector;
use ws_server::{
    Body, ConnHandle, ConnId, ConnInfo, Ctx, Decision, Disconnect, Fragment, Handler, Request,
    Response, TcpDecision,
    ws_frame::{CloseCode, Message},
};

use crate::{
    config::ProxyConfig,
    hooks::Hooks,
    http_forward::HttpSide,
    lb::{Lb, LbGuard},
    sync::lock,
    target::Target,
    tokens::TokenFile,
};

/// The websockify subprotocol for raw binary frames.
pub(crate) const BINARY: &str = "binary";
/// The websockify subprotocol for base64 in text frames.
pub(crate) const BASE64: &str = "base64";

/// Counters shared with [`crate::ProxyServer`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Backend connections currently open (bridges not yet torn down).
    pub(crate) active: AtomicUsize,
    /// Bridges established since start.
    pub(crate) total: AtomicU64,
    /// Backend connection attempts that failed.
    pub(crate) failed: AtomicU64,
}

struct ActiveGuard(Arc<Stats>);

impl ActiveGuard {
    fn new(stats: &Arc<Stats>) -> Self {
        stats.active.fetch_add(1, Ordering::AcqRel);
        stats.total.fetch_add(1, Ordering::Relaxed);
        Self(stats.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How payloads are carried on the WebSocket side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// TCP backend, binary frames (subprotocol `binary` or none); text frames are accepted
    /// and their UTF-8 bytes written.
    Binary,
    /// TCP backend, base64 in text frames (subprotocol `base64`).
    Base64,
    /// WebSocket backend, message by message.
    Ws,
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// An open TCP or TLS backend connection.
enum BackendIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl BackendIo {
    fn split(self) -> (DownRead, UpWrite) {
        match self {
            Self::Plain(tcp) => {
                let (r, w) = tcp.into_split();
                (DownRead::Plain(r), UpWrite::Plain(Arc::new(w)))
            }
            Self::Tls(tls) => {
                let (r, w) = tokio::io::split(*tls);
                (DownRead::Boxed(Box::new(r)), UpWrite::Boxed(Box::new(w)))
            }
        }
    }
}

/// The backend's read side.
enum DownRead {
    Plain(OwnedReadHalf),
    Boxed(BoxRead),
}

impl DownRead {
    /// Waits until a read will find data (plain TCP; TLS: at once), so that an idle
    /// connection holds no read buffer.
    async fn readable(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(r) => r.readable().await,
            Self::Boxed(_) => Ok(()),
        }
    }

    /// Reads up to `max` bytes into `buf` (appended). Through `AsyncRead`: a read that does
    /// not fill the buffer ends the socket's readiness, so no second read finds it empty.
    async fn read(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let mut limited = buf.limit(max);
        match self {
            Self::Plain(r) => r.read_buf(&mut limited).await,
            Self::Boxed(r) => r.read_buf(&mut limited).await,
        }
    }
}

/// The backend's write side. Plain TCP is shared with [`UpQueue::push`], which writes to it
/// directly while nothing is queued.
enum UpWrite {
    Plain(Arc<OwnedWriteHalf>),
    Boxed(BoxWrite),
}

/// Most bytes of messages written to the backend in one (vectored) write (or the first message
/// alone when larger; at most the queue's limit): what queued up goes out together.
const WRITE_BATCH: usize = 256 * 1024;
/// Messages shorter than this are written to a plain TCP backend straight from
/// [`UpQueue::push`] when nothing is ahead of them (one system call, no hand-over to the
/// writer task); longer ones go through the writer task, which writes what queued up
/// meanwhile in one system call, in parallel with the reading of the WebSocket.
const DIRECT_BELOW: usize = 16 * 1024;
/// Most messages in one vectored write.
const WRITE_SLICES: usize = 64;

impl UpWrite {
    /// Writes every message of `batch`, in order; `more`: whether more is queued (TLS flushes
    /// only when nothing is).
    async fn write(&mut self, batch: &[Message], more: impl FnOnce() -> bool) -> io::Result<()> {
        match self {
            Self::Plain(w) => {
                let mut slices: Vec<IoSlice<'_>> =
                    batch.iter().map(|m| IoSlice::new(m.as_bytes())).collect();
                let mut bufs = &mut slices[..];
                while !bufs.is_empty() {
                    w.writable().await?;
                    let r = if let [one] = bufs {
                        w.try_write(one)
                    } else {
                        w.try_write_vectored(bufs)
                    };
                    match r {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => IoSlice::advance_slices(&mut bufs, n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Self::Boxed(w) => {
                for m in batch {
                    w.write_all(m.as_bytes()).await?;
                }
                if !more() {
                    w.flush().await?;
                }
                Ok(())
            }
        }
    }

    /// FIN (and TLS close_notify).
    async fn shutdown(self) {
        match self {
            // The last handle: dropping it shuts the write side down.
            Self::Plain(w) => match Arc::try_unwrap(w) {
                Ok(mut w) => {
                    let _ = w.shutdown().await;
                }
                Err(w) => drop(w),
            },
            Self::Boxed(mut w) => {
                let _ = w.shutdown().await;
            }
        }
    }
}

/// Read buffers of the backend-to-browser direction: what is read from the backend travels
/// to the browser in that buffer (no copy), which comes back here once written, to be read
/// into again. Reused memory stays mapped, where a fresh allocation costs a page fault for
/// every page a read touches. Keeps at most [`POOL_KEEP`] bytes of spare buffers (what
/// circulates under load: the WebSocket side's queues), and none after [`POOL_IDLE`] without
/// backend data.
struct Pool {
    spare: Mutex<Vec<Vec<u8>>>,
    /// Capacity of every buffer.
    size: usize,
    /// Most spare buffers.
    keep: usize,
}

const POOL_KEEP: usize = 4 << 20;
const POOL_IDLE: Duration = Duration::from_secs(1);
/// Reads that find this little are copied out, into a slice of a small buffer shared by the
/// messages cut from it, and the read buffer is kept (the WebSocket side copies payloads this
/// small into its write batch anyway).
const COPY_BELOW: usize = 4 * 1024;
/// Size of that small buffer: it is reused once the messages cut from it are gone, so small
/// messages cost no allocation.
const SMALL_BUF: usize = 16 * 1024;
/// A backend with data pending is read up to this many chunks at a time (one system call;
/// fewer window updates), as long as that is at most [`BURST_MAX`] bytes; every chunk still
/// goes to the browser as a message of its own.
const READ_BURST: usize = 4;
const BURST_MAX: usize = 256 * 1024;

impl Pool {
    fn new(chunk: usize) -> Arc<Self> {
        let size = chunk.max((chunk * READ_BURST).min(BURST_MAX));
        Arc::new(Self {
            spare: Mutex::new(Vec::new()),
            size,
            keep: (POOL_KEEP / size).max(2),
        })
    }

    fn take(&self) -> Vec<u8> {
        let spare = lock(&self.spare).pop();
        spare.unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    fn has_spare(&self) -> bool {
        !lock(&self.spare).is_empty()
    }

    fn clear(&self) {
        let spare = std::mem::take(&mut *lock(&self.spare));
        drop(spare);
    }
}

/// A chunk read from the backend, as the payload of a message; returns its buffer to the
/// pool when dropped.
struct Chunk {
    buf: Vec<u8>,
    pool: Arc<Pool>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let mut spare = lock(&self.pool.spare);
        if spare.len() < self.pool.keep {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            spare.push(buf);
        }
    }
}

enum Backend {
    Stream(BackendIo),
    Ws(Box<ws_client::WebSocket>),
}

/// What `on_handshake` decided, picked up by `on_connect`.
struct Pending {
    id: u64,
    target: Target,
    mode: Mode,
    backend: Option<Backend>,
    /// The balanced backend's connection count (released with the bridge).
    lb: Option<LbGuard>,
}

type PendingMap = Arc<Mutex<HashMap<(SocketAddr, SocketAddr), Pending>>>;

/// Messages from the browser waiting for the backend, counted in bytes. Above its limit the
/// browser's connection is paused ([`Ctx::pause_reading`]); once half of it has drained,
/// reading resumes ([`ConnHandle::resume_reading`]). Both decisions are taken under the
/// queue's lock, so that a resume never overtakes the pause it undoes.
struct UpQueue {
    state: Mutex<UpState>,
    readable: Notify,
    closed: Notify,
    /// Bytes queued above which the browser is not read.
    limit: usize,
    /// The browser's connection, resumed from the task that drains the queue.
    conn: ConnHandle,
}

#[derive(Default)]
struct UpState {
    q: VecDeque<Message>,
    bytes: usize,
    closed: bool,
    /// The browser's connection was paused by this queue.
    paused: bool,
    /// A plain TCP backend's socket: [`UpQueue::push`] writes to it directly (no hand-over to
    /// the writer task, no wake-up) while the writer task has nothing to write.
    direct: Option<Arc<OwnedWriteHalf>>,
    /// The writer task holds messages it has not finished writing.
    writing: bool,
}

impl UpQueue {
    fn new(limit: usize, conn: ConnHandle) -> Self {
        Self {
            state: Mutex::default(),
            readable: Notify::new(),
            closed: Notify::new(),
            limit,
            conn,
        }
    }

    /// Appends, calling `pause` (under the lock) when the queue just went over its limit;
    /// false when the queue is closed (the message is dropped). A short message for a plain
    /// TCP backend with nothing ahead of it is written to the socket at once, as far as the
    /// socket takes it; only the rest is queued.
    fn push(&self, mut msg: Message, pause: impl FnOnce()) -> bool {
        let mut s = lock(&self.state);
        if s.closed {
            return false;
        }
        if msg.len() < DIRECT_BELOW
            && !s.writing
            && s.q.is_empty()
            && let Some(w) = &s.direct
        {
            match w.try_write(msg.as_bytes()) {
                Ok(n) if n == msg.len() => return true,
                Ok(n) => msg = Message::Binary(msg.into_payload().slice(n..)),
                // Would block, or failed: the writer task meets the failure again and reports it.
                Err(_) => {}
            }
        }
        s.bytes += msg.len();
        s.q.push_back(msg);
        if s.bytes > self.limit && !s.paused {
            s.paused = true;
            pause();
        }
        drop(s);
        self.readable.notify_one();
        true
    }

    /// Moves the next messages into `out`: the first one, and those after it while they add
    /// up to at most [`WRITE_BATCH`] bytes (and the queue's limit, so the writer never holds
    /// more than the queue may). Until the next call, messages are not written directly (the
    /// writer holds these). False once closed and empty.
    async fn pop_batch(&self, out: &mut Vec<Message>) -> bool {
        loop {
            let readable = self.readable.notified();
            {
                let mut s = lock(&self.state);
                s.writing = false;
                if let Some(first) = s.q.pop_front() {
                    let mut taken = first.len();
                    out.push(first);
                    while let Some(next) = s.q.front() {
                        if taken + next.len() > WRITE_BATCH.min(self.limit).max(out[0].len())
                            || out.len() >= WRITE_SLICES
                        {
                            break;
                        }
                        taken += next.len();
                        out.extend(s.q.pop_front());
                    }
                    s.bytes -= taken;
                    s.writing = true;
                    if s.paused && s.bytes <= self.limit / 2 {
                        s.paused = false;
                        self.conn.resume_reading();
                    }
                    return true;
                }
                if s.closed {
                    return false;
                }
            }
            readable.await;
        }
    }

    /// Lets [`UpQueue::push`] write to this socket directly.
    fn set_direct(&self, w: Arc<OwnedWriteHalf>) {
        lock(&self.state).direct = Some(w);
    }

    /// Stops direct writes and drops the queue's handle of the socket.
    fn take_direct(&self) {
        let w = lock(&self.state).direct.take();
        drop(w);
    }

    /// The next message; `None` once closed and empty.
    async fn pop(&self) -> Option<Message> {
        loop {
            let readable = self.readable.notified();
            {
                let mut s = lock(&self.state);
                if let Some(msg) = s.q.pop_front() {
                    s.bytes -= msg.len();
                    if s.paused && s.bytes <= self.limit / 2 {
                        s.paused = false;
                        self.conn.resume_reading();
                    }
                    return Some(msg);
                }
                if s.closed {
                    return None;
                }
            }
            readable.await;
        }
    }

    fn is_empty(&self) -> bool {
        lock(&self.state).q.is_empty()
    }

    fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// No more messages will come (what is queued is still delivered).
    fn close(&self) {
        lock(&self.state).closed = true;
        self.readable.notify_one();
        self.closed.notify_waiters();
    }

    /// The backend failed: drop what is queued and refuse more (the browser may be read again:
    /// what it sends is dropped while its connection closes).
    fn fail(&self) {
        let direct = {
            let mut s = lock(&self.state);
            s.q.clear();
            s.bytes = 0;
            if std::mem::take(&mut s.paused) {
                self.conn.resume_reading();
            }
            s.direct.take()
        };
        drop(direct);
        self.close();
    }

    async fn wait_closed(&self) {
        let mut closed = pin!(self.closed.notified());
        closed.as_mut().enable();
        if self.is_closed() {
            return;
        }
        closed.await;
    }
}

/// One bridged connection's shared state.
struct Link {
    mode: Mode,
    up: UpQueue,
    /// How the browser side ended (for WebSocket backends).
    browser_close: Mutex<Option<(CloseCode, String)>>,
    /// A balanced backend's connection count, released when the bridge is gone.
    _lb: Option<LbGuard>,
}

impl Link {
    fn new(mode: Mode, limit: usize, conn: ConnHandle, lb: Option<LbGuard>) -> Self {
        Self {
            mode,
            up: UpQueue::new(limit, conn),
            browser_close: Mutex::new(None),
            _lb: lb,
        }
    }
}

/// Closes the link's queue when the connection's data is dropped (the task ended, or was
/// aborted at shutdown).
struct LinkGuard(Arc<Link>);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        self.0.up.close();
    }
}

/// The proxy's ws-server handler.
pub(crate) struct Proxy<H> {
    pub(crate) cfg: ProxyConfig,
    pub(crate) hooks: Arc<H>,
    pub(crate) tokens: Option<TokenFile>,
    pub(crate) tls: TlsConnector,
    pub(crate) upstream_ws: ws_client::ClientConfig,
    pub(crate) stats: Arc<Stats>,
    /// The fixed target, changeable at run time ([`crate::ProxyServer::set_target`]).
    pub(crate) target: Arc<Mutex<Option<Target>>>,
    /// The load balancer, when [`ProxyConfig::balance`] is set.
    pub(crate) lb: Option<Arc<Lb>>,
    /// Plain HTTP requests.
    pub(crate) http: Arc<HttpSide>,
    pending: PendingMap,
    next_pending: AtomicU64,
    live: Mutex<HashMap<ConnId, Arc<Link>>>,
}

/// A close reason of at most 123 bytes.
fn reason(text: &str) -> String {
    let mut end = text.len().min(123);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl<H: Hooks> Proxy<H> {
    pub(crate) fn new(
        cfg: ProxyConfig,
        hooks: Arc<H>,
        tokens: Option<TokenFile>,
        tls: TlsConnector,
        upstream_ws: ws_client::ClientConfig,
        lb: Option<Arc<Lb>>,
        http: Arc<HttpSide>,
    ) -> Self {
        Self {
            target: Arc::new(Mutex::new(cfg.target.clone())),
            cfg,
            hooks,
            tokens,
            tls,
            upstream_ws,
            lb,
            http,
            stats: Arc::default(),
            pending: PendingMap::default(),
            next_pending: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The target of an upgrade request, or the status to refuse it with.
    fn route(&self, req: &Request) -> Result<Target, u16> {
        if let Some(resolve) = &self.cfg.resolver {
            return resolve(req).ok_or(404);
        }
        if let Some(tokens) = &self.tokens {
            let param = &self.cfg.token_param;
            let token = req
                .query_param(param)
                .or_else(|| req.cookie(param).map(str::to_owned))
                .ok_or(404_u16)?;
            return tokens.lookup(&token).ok_or(404);
        }
        if let Some((_, t)) = self.cfg.paths.iter().find(|(p, _)| p == req.path()) {
            return Ok(t.clone());
        }
        lock(&self.target).clone().ok_or(404)
    }

    fn stash(
        &self,
        key: (SocketAddr, SocketAddr),
        target: Target,
        mode: Mode,
        backend: Option<Backend>,
        lb: Option<LbGuard>,
    ) {
        let id = self.next_pending.fetch_add(1, Ordering::Relaxed);
        let has_backend = backend.is_some();
        lock(&self.pending).insert(
            key,
            Pending {
                id,
                target,
                mode,
                backend,
                lb,
            },
        );
        if has_backend {
            // An upgrade that fails after the decision never reaches on_connect: drop its
            // backend connection after a while.
            let pending = self.pending.clone();
            let after = self.cfg.server.handshake_timeout + Duration::from_secs(1);
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let mut map = lock(&pending);
                if map.get(&key).is_some_and(|p| p.id == id) {
                    map.remove(&key);
                }
            });
        }
    }

    async fn connect_stream(
        &self,
        target: &Target,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> Result<BackendIo, String> {
        let (host, port, tls) = match target {
            Target::Tcp { host, port } => (host, *port, false),
            Target::Tls { host, port } => (host, *port, true),
            Target::WebSocket(_) => return Err("not a TCP target".to_owned()),
        };
        let work = async {
            let mut tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| e.to_string())?;
            if self.cfg.nodelay {
                let _ = tcp.set_nodelay(true);
            }
            if let Some(pp) = self.cfg.proxy_protocol {
                tcp.write_all(&pp.header(peer, local))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if !tls {
                return Ok(BackendIo::Plain(tcp));
            }
            let name = self
                .cfg
                .backend_tls_server_name
                .clone()
                .unwrap_or_else(|| host.clone());
            let name = rustls::pki_types::ServerName::try_from(name)
                .map_err(|e| format!("TLS server name: {e}"))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Ok(BackendIo::Tls(Box::new(tls)))
        };
        match tokio::time::timeout(self.cfg.connect_timeout, work).await {
            Ok(r) => r,
            Err(_) => Err("connect timed out".to_owned()),
        }
    }

    async fn connect_ws(
        &self,
        url: &ws_client::WsUrl,
        req: &Request,
    ) -> Result<ws_client::WebSocket, String> {
        let mut cfg = self.upstream_ws.clone();
        cfg.protocols = req.protocols().into_iter().map(str::to_owned).collect();
        if self.cfg.forwarded_headers {
            let ip = req.peer_addr().ip();
            let proto = if req.is_tls() { "https" } else { "http" };
            let prior = req.header("x-forwarded-for");
            let xff = match prior {
                Some(p) => format!("{p}, {ip}"),
                None => ip.to_string(),
            };
            let node = if ip.is_ipv6() {
                format!("\"[{ip}]\"")
            } else {
                ip.to_string()
            };
            cfg.headers.push(("X-Forwarded-For".into(), xff));
            cfg.headers.push(("X-Forwarded-Proto".into(), proto.into()));
            cfg.headers
                .push(("Forwarded".into(), format!("for={node};proto={proto}")));
        }
        ws_client::connect(url, cfg)
            .await
            .map_err(|e| e.to_string())
    }

    fn spawn_stream(&self, io: BackendIo, handle: ConnHandle, link: Arc<Link>) {
        let (r, w) = io.split();
        if let UpWrite::Plain(w) = &w {
            link.up.set_direct(w.clone());
        }
        let reader = tokio::spawn(tcp_down(
            r,
            handle.clone(),
            link.clone(),
            self.hooks.clone(),
            self.cfg.read_chunk,
        ));
        let guard = ActiveGuard::new(&self.stats);
        tokio::spawn(tcp_up(
            w,
            link,
            handle,
            reader,
            self.cfg.drain_timeout,
            guard,
        ));
    }

    fn spawn_ws(&self, ws: ws_client::WebSocket, handle: ConnHandle, link: Arc<Link>) {
        let (r, w) = ws.split();
        let reader = tokio::spawn(ws_down(r, handle.clone(), self.hooks.clone()));
        let guard = ActiveGuard::new(&self.stats);
        tokio::spawn(ws_up(w, link, reader, self.cfg.drain_timeout, guard));
    }
}

impl<H: Hooks> Proxy<H> {
    /// The WebSocket side's subprotocol and mode for a TCP backend.
    fn stream_mode(req: &Request) -> (Mode, Option<&'static str>) {
        let offered = req.protocols();
        if offered.contains(&BINARY) {
            (Mode::Binary, Some(BINARY))
        } else if offered.contains(&BASE64) {
            (Mode::Base64, Some(BASE64))
        } else {
            (Mode::Binary, None)
        }
    }

    /// A balanced upgrade: backends in the policy's order until one connects (each that
    /// fails is marked down); 502 when none does, 503 when none is usable.
    async fn balanced_handshake(&self, lb: &Arc<Lb>, req: &Request) -> Decision {
        let key = (req.peer_addr(), req.local_addr());
        let mut tried: Vec<Target> = Vec::new();
        loop {
            let Some(target) = lb.pick(req, &tried) else {
                return Decision::reject(if tried.is_empty() { 503 } else { 502 });
            };
            if let Err(status) = self.hooks.on_handshake(req, &target) {
                return Decision::reject(status);
            }
            let attempt = match &target {
                Target::WebSocket(url) => {
                    let url = if url.path() == "/" && url.query().is_none() {
                        url.join(req.url()).unwrap_or_else(|_| url.clone())
                    } else {
                        url.clone()
                    };
                    self.connect_ws(&url, req).await.map(|ws| {
                        let protocol = ws.protocol().map(str::to_owned);
                        (Mode::Ws, protocol, Backend::Ws(Box::new(ws)))
                    })
                }
                _ => {
                    let (mode, protocol) = Self::stream_mode(req);
                    self.connect_stream(&target, req.peer_addr(), req.local_addr())
                        .await
                        .map(|io| (mode, protocol.map(str::to_owned), Backend::Stream(io)))
                }
            };
            match attempt {
                Ok((mode, protocol, backend)) => {
                    let guard = lb.guard(&target);
                    self.stash(key, target, mode, Some(backend), Some(guard));
                    return match protocol {
                        Some(p) => Decision::accept_protocol(p),
                        None => Decision::accept(),
                    };
                }
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %req.peer_addr(), %target, "backend unavailable, trying the next: {e}");
                    self.hooks.on_backend_error(None, &target, &e);
                    lb.failed(&target);
                    tried.push(target);
                }
            }
        }
    }
}

impl<H: Hooks> Handler for Proxy<H> {
    async fn on_tcp_connect(&self, peer: SocketAddr, local: SocketAddr) -> TcpDecision {
        if self.hooks.on_tcp_connect(peer, local) {
            TcpDecision::Accept
        } else {
            TcpDecision::Reject
        }
    }

    async fn on_unknown_protocol(&self, peer: SocketAddr, first_bytes: &[u8]) -> bool {
        self.hooks.on_unknown_protocol(peer, first_bytes)
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        self.http
            .handle(&*self.hooks, self.lb.as_ref(), request, body)
            .await
    }

    async fn on_fragment(&self, ctx: &mut Ctx<'_>, fragment: Fragment) {
        self.hooks.on_fragment(ctx.info(), &fragment);
    }

    async fn on_ping(&self, ctx: &mut Ctx<'_>, payload: Bytes) {
        self.hooks.on_ping(ctx.info(), &payload);
    }

    async fn on_pong(&self, ctx: &mut Ctx<'_>, payload: Bytes) {
        self.hooks.on_pong(ctx.info(), &payload);
    }

    async fn on_before_heartbeat(&self, ctx: &mut Ctx<'_>) -> bool {
        self.hooks.on_before_heartbeat(ctx.info())
    }

    async fn on_error(
        &self,
        peer: SocketAddr,
        conn: Option<&Arc<ConnInfo>>,
        error: &ws_server::Error,
    ) {
        self.hooks.on_error(peer, conn.map(|c| &**c), error);
    }

    async fn on_handshake(&self, req: &Request) -> Decision {
        if let Some(lb) = &self.lb
            && self.cfg.resolver.is_none()
            && self.tokens.is_none()
            && !self.cfg.paths.iter().any(|(p, _)| p == req.path())
        {
            return self.balanced_handshake(lb, req).await;
        }
        let target = match self.route(req) {
            Ok(t) => t,
            Err(status) => return Decision::reject(status),
        };
        if let Err(status) = self.hooks.on_handshake(req, &target) {
            return Decision::reject(status);
        }
        let key = (req.peer_addr(), req.local_addr());
        if let Target::WebSocket(url) = &target {
            return match self.connect_ws(url, req).await {
                Ok(ws) => {
                    let protocol = ws.protocol().map(str::to_owned);
                    self.stash(key, target, Mode::Ws, Some(Backend::Ws(Box::new(ws))), None);
                    match protocol {
                        Some(p) => Decision::accept_protocol(p),
                        None => Decision::accept(),
                    }
                }
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %req.peer_addr(), %target, "backend unavailable: {e}");
                    self.hooks.on_backend_error(None, &target, &e);
                    Decision::reject(502)
                }
            };
        }
        let (mode, protocol) = Self::stream_mode(req);
        let backend = if self.cfg.connect_before_upgrade {
            match self
                .connect_stream(&target, req.peer_addr(), req.local_addr())
                .await
            {
                Ok(io) => Some(Backend::Stream(io)),
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(peer = %req.peer_addr(), %target, "backend unavailable: {e}");
                    self.hooks.on_backend_error(None, &target, &e);
                    return Decision::reject(502);
                }
            }
        } else {
            None
        };
        self.stash(key, target, mode, backend, None);
        match protocol {
            Some(p) => Decision::accept_protocol(p),
            None => Decision::accept(),
        }
    }

    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let info = ctx.info().clone();
        let key = (info.peer_addr(), info.local_addr());
        let Some(pending) = lock(&self.pending).remove(&key) else {
            let _ = ctx.close(CloseCode::INTERNAL, "no route");
            return;
        };
        let Pending {
            target,
            mode,
            backend,
            lb,
            ..
        } = pending;
        let backend = match backend {
            Some(b) => b,
            None => match self
                .connect_stream(&target, info.peer_addr(), info.local_addr())
                .await
            {
                Ok(io) => Backend::Stream(io),
                Err(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        id = %info.id(),
                        peer = %info.peer_addr(),
                        %target,
                        "backend unavailable: {e}; closing with 1011"
                    );
                    self.hooks.on_backend_error(Some(&info), &target, &e);
                    let _ = ctx.close(
                        CloseCode::INTERNAL,
                        &reason(&format!("backend unavailable: {e}")),
                    );
                    return;
                }
            },
        };
        if !self.hooks.on_connect(&info, &target) {
            let _ = ctx.close(CloseCode::POLICY, "refused");
            return;
        }
        tracing::info!(
            id = %info.id(),
            peer = %info.peer_addr(),
            path = info.url(),
            %target,
            "connection open"
        );
        let handle = ctx.handle();
        let link = Arc::new(Link::new(mode, self.cfg.up_buffer, handle.clone(), lb));
        ctx.set_data(LinkGuard(link.clone()));
        lock(&self.live).insert(info.id(), link.clone());
        match backend {
            Backend::Stream(io) => self.spawn_stream(io, handle, link),
            Backend::Ws(ws) => self.spawn_ws(*ws, handle, link),
        }
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let Some(link) = ctx.data::<LinkGuard>().map(|g| g.0.clone()) else {
            return;
        };
        let msg = match (link.mode, msg) {
            (Mode::Base64, Message::Text(text)) => match B64.decode(text.as_str().trim_ascii()) {
                Ok(bytes) => Message::binary(bytes),
                Err(_) => {
                    let _ = ctx.close(CloseCode::INVALID_PAYLOAD, "invalid base64");
                    return;
                }
            },
            (_, msg) => msg,
        };
        let Some(msg) = self.hooks.on_client_message(ctx.info(), msg) else {
            return;
        };
        if msg.is_empty() && link.mode != Mode::Ws {
            return;
        }
        // Never waits: over the limit the connection stops reading the browser (but goes on
        // writing what the backend sends), until the backend has drained half of the queue.
        link.up.push(msg, || ctx.pause_reading());
    }

    async fn on_disconnect(&self, info: &Arc<ConnInfo>, disconnect: Disconnect) {
        let link = lock(&self.live).remove(&info.id());
        if link.is_some() {
            tracing::info!(
                id = %info.id(),
                peer = %info.peer_addr(),
                code = disconnect.code.as_u16(),
                reason = %disconnect.reason,
                by = ?disconnect.by,
                "connection closed"
            );
        }
        if let Some(link) = link {
            *lock(&link.browser_close) = Some((disconnect.code, disconnect.reason.clone()));
            link.up.close();
        }
        self.hooks.on_disconnect(info, &disconnect);
    }
}

/// Backend (TCP/TLS) to browser.
async fn tcp_down<H: Hooks>(
    mut r: DownRead,
    handle: ConnHandle,
    link: Arc<Link>,
    hooks: Arc<H>,
    chunk: usize,
) {
    let pool = Pool::new(chunk);
    // The buffer read into; none while waiting for data after the last one went out with what
    // was read into it.
    let mut buf: Option<Vec<u8>> = None;
    let mut small = BytesMut::new();
    let gone = 'read: loop {
        let ready = if buf.is_some() {
            Ok(())
        } else {
            wait_readable(&mut r, &pool).await
        };
        let b = buf.get_or_insert_with(|| pool.take());
        let read = match ready {
            Ok(()) => r.read(b, pool.size).await,
            Err(e) => Err(e),
        };
        match read {
            Ok(0) => {
                // Backend EOF: Close 1000, queued behind the data already handed over.
                let _ = handle.close(CloseCode::NORMAL, "").await;
                return;
            }
            Ok(n) => {
                let data = if n < COPY_BELOW {
                    if small.capacity() < n {
                        small.reserve(SMALL_BUF);
                    }
                    small.extend_from_slice(b);
                    b.clear();
                    small.split().freeze()
                } else {
                    let filled = buf.take().unwrap_or_default();
                    Bytes::from_owner(Chunk {
                        buf: filled,
                        pool: pool.clone(),
                    })
                };
                let mut at = 0;
                while at < n {
                    let end = n.min(at + chunk);
                    let piece = data.slice(at..end);
                    at = end;
                    let Some(msg) = hooks.on_backend_message(handle.info(), Message::Binary(piece))
                    else {
                        continue;
                    };
                    let msg = if link.mode == Mode::Base64 {
                        Message::text(B64.encode(msg.as_bytes()))
                    } else {
                        msg
                    };
                    if handle.send(msg).await.is_err() {
                        break 'read true;
                    }
                }
            }
            Err(e) => {
                tracing::info!("backend read failed: {e}");
                let _ = handle
                    .close(CloseCode::INTERNAL, "backend connection lost")
                    .await;
                return;
            }
        }
    };
    if gone {
        // The WebSocket is gone: let the backend finish (read and discard until it closes;
        // the other task stops this after the drain timeout).
        pool.clear();
        let mut b = buf.unwrap_or_default();
        loop {
            b.clear();
            match r.read(&mut b, pool.size).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// Waits for backend data; spare buffers are released when none comes for a while.
async fn wait_readable(r: &mut DownRead, pool: &Pool) -> io::Result<()> {
    if pool.has_spare() {
        if let Ok(ready) = tokio::time::timeout(POOL_IDLE, r.readable()).await {
            return ready;
        }
        pool.clear();
    }
    r.readable().await
}

/// Browser to backend (TCP/TLS); after the WebSocket ended: FIN, then wait for the backend to
/// close (bounded by the drain timeout).
async fn tcp_up(
    mut w: UpWrite,
    link: Arc<Link>,
    handle: ConnHandle,
    reader: JoinHandle<()>,
    drain: Duration,
    _active: ActiveGuard,
) {
    let abort = reader.abort_handle();
    let work = async {
        let mut batch = Vec::new();
        while link.up.pop_batch(&mut batch).await {
            let res = w.write(&batch, || !link.up.is_empty()).await;
            batch.clear();
            if let Err(e) = res {
                tracing::info!("backend write failed: {e}");
                link.up.fail();
                let _ = handle
                    .close(CloseCode::INTERNAL, "backend connection lost")
                    .await;
                return;
            }
        }
        // Closed and written: no direct writes anymore, then FIN.
        link.up.take_direct();
        w.shutdown().await;
        let _ = reader.await;
    };
    let deadline = async {
        link.up.wait_closed().await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        () = work => {}
        () = deadline => {}
    }
    link.up.take_direct();
    abort.abort();
}

/// The browser's close code, as passed on to a WebSocket backend.
fn browser_close(link: &Link) -> (CloseCode, String) {
    match lock(&link.browser_close).clone() {
        Some((code, reason)) if code.is_sendable() => (code, reason),
        Some((CloseCode::NO_STATUS, _)) => (CloseCode::NORMAL, String::new()),
        _ => (CloseCode::AWAY, "client connection lost".to_owned()),
    }
}

/// WebSocket backend to browser, message by message; the backend's close code is passed on.
async fn ws_down<H: Hooks>(mut r: ws_client::WsReader, handle: ConnHandle, hooks: Arc<H>) {
    let mut gone = false;
    while let Some(item) = r.recv().await {
        let Ok(msg) = item else { break };
        if gone {
            continue;
        }
        let Some(msg) = hooks.on_backend_message(handle.info(), msg) else {
            continue;
        };
        if handle.send(msg).await.is_err() {
            // Keep reading (and discarding) so the backend's close reply gets through.
            gone = true;
        }
    }
    if gone {
        return;
    }
    let (code, why) = match r.close_info() {
        Some(ci) if ci.code.is_sendable() => (ci.code, ci.reason),
        Some(ci) if ci.code == CloseCode::NO_STATUS => (CloseCode::NORMAL, String::new()),
        _ => (CloseCode::INTERNAL, "backend connection lost".to_owned()),
    };
    let _ = handle.close(code, &reason(&why)).await;
}

/// Browser to WebSocket backend; after the browser closed, the close is passed on.
async fn ws_up(
    w: ws_client::WsWriter,
    link: Arc<Link>,
    reader: JoinHandle<()>,
    drain: Duration,
    _active: ActiveGuard,
) {
    let abort = reader.abort_handle();
    let work = async {
        while let Some(msg) = link.up.pop().await {
            if w.send(msg).await.is_err() {
                // The backend is gone; the reader closes the browser side.
                link.up.fail();
                link.up.wait_closed().await;
                return;
            }
        }
        let (code, why) = browser_close(&link);
        let _ = w.close(code, &reason(&why)).await;
        let _ = reader.await;
    };
    let deadline = async {
        link.up.wait_closed().await;
        tokio::time::sleep(drain).await;
    };
    tokio::select! {
        () = work => {}
        () = deadline => {}
    }
    abort.abort();
}
