//! The tokio TURN/STUN server: UDP and TCP listeners, UDP relay sockets, RFC 6062 TCP relays.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::attr::{AddressFamily, RelayProtocol};
use crate::channel::frame_len;
use crate::error::{ConfigError, Error};
use crate::server::{Action, FiveTuple, PeerRefusal, Server, ServerConfig, ServerEvent, Transport};

use super::send_batch::{SendBatch, Source};

/// Runtime configuration of [`TurnServer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TurnServerConfig {
    /// The protocol core's configuration.
    pub server: ServerConfig,
    /// UDP listening addresses. Default: `127.0.0.1:3478`.
    pub udp: Vec<SocketAddr>,
    /// TCP listening addresses. Default: `127.0.0.1:3478`.
    pub tcp: Vec<SocketAddr>,
    /// Address relay sockets bind to and advertise. Default: `None`: the IP of the first listener
    /// (which must then not be a wildcard address).
    pub relay_ip: Option<IpAddr>,
    /// Lowest relay port. Default: [`TurnServerConfig::DEFAULT_MIN_PORT`] (49152).
    pub min_port: u16,
    /// Highest relay port. Default: [`TurnServerConfig::DEFAULT_MAX_PORT`] (65535).
    pub max_port: u16,
    /// Messages queued per TCP client connection before data is dropped.
    /// Default: [`TurnServerConfig::DEFAULT_TCP_QUEUE`] (1024).
    pub tcp_queue: usize,
    /// Timeout of RFC 6062 outgoing TCP connects. Default: [`TurnServerConfig::DEFAULT_CONNECT_TIMEOUT`] (10 s).
    pub connect_timeout: Duration,
    /// Event-loop threads the server runs on. Each thread owns a single-threaded tokio runtime
    /// and its own `SO_REUSEPORT` socket on every UDP listening address; the kernel spreads
    /// clients over them by flow hash, and the relay sockets of an allocation live on the thread
    /// of the client that asked for it, so a relayed packet never crosses threads. Every socket
    /// is read in batches (`recvmmsg` where the system has it) and the protocol state, one
    /// [`Server`] behind a lock, is taken once per batch, not once per datagram, so threads
    /// rarely wait for each other. `0` runs everything on the caller's runtime instead.
    /// Default: the number of cores ([`TurnServerConfig::default_threads`]); at most
    /// [`TurnServerConfig::MAX_THREADS`].
    pub threads: usize,
}

impl TurnServerConfig {
    /// Default of [`TurnServerConfig::min_port`].
    pub const DEFAULT_MIN_PORT: u16 = 49152;
    /// Default of [`TurnServerConfig::max_port`].
    pub const DEFAULT_MAX_PORT: u16 = 65535;
    /// Default of [`TurnServerConfig::tcp_queue`].
    pub const DEFAULT_TCP_QUEUE: usize = 1024;
    /// Default of [`TurnServerConfig::connect_timeout`].
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Upper bound of [`TurnServerConfig::threads`].
    pub const MAX_THREADS: usize = 64;

    /// Default of [`TurnServerConfig::threads`]: the cores the process may run on (1 when the
    /// system does not say), at most [`TurnServerConfig::MAX_THREADS`].
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(Self::MAX_THREADS))
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] or [`ConfigError::Requires`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        let bad = |field, rule| Err(ConfigError::OutOfRange { field, rule });
        if self.udp.is_empty() && self.tcp.is_empty() {
            return bad("udp and tcp", "not both empty (no listening address)");
        }
        if self.min_port == 0 || self.min_port > self.max_port {
            return bad("min_port", "positive and at most max_port");
        }
        if self.tcp_queue == 0 {
            return bad("tcp_queue", "positive");
        }
        if self.threads > Self::MAX_THREADS {
            return bad("threads", "at most TurnServerConfig::MAX_THREADS (64)");
        }
        if self.server.turn && self.relay_ip().is_none_or(|ip| ip.is_unspecified()) {
            return Err(ConfigError::Requires {
                field: "a TURN server listening on a wildcard address",
                needs: "relay_ip",
            });
        }
        Ok(())
    }

    fn relay_ip(&self) -> Option<IpAddr> {
        self.relay_ip
            .or_else(|| self.udp.first().or(self.tcp.first()).map(|a| a.ip()))
    }
}

impl Default for TurnServerConfig {
    fn default() -> Self {
        let local = SocketAddr::from(([127, 0, 0, 1], 3478));
        Self {
            server: ServerConfig::default(),
            udp: vec![local],
            tcp: vec![local],
            relay_ip: None,
            min_port: Self::DEFAULT_MIN_PORT,
            max_port: Self::DEFAULT_MAX_PORT,
            tcp_queue: Self::DEFAULT_TCP_QUEUE,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            threads: Self::default_threads(),
        }
    }
}

enum Relay {
    Udp(Arc<UdpSocket>, JoinHandle<()>),
    Tcp(JoinHandle<()>),
}

impl Drop for Relay {
    fn drop(&mut self) {
        match self {
            Self::Udp(_, h) | Self::Tcp(h) => h.abort(),
        }
    }
}

struct State {
    core: Server,
    relays: HashMap<SocketAddr, Relay>,
    reserved: HashMap<SocketAddr, Arc<UdpSocket>>,
    tcp_clients: HashMap<FiveTuple, mpsc::Sender<Vec<u8>>>,
    peer_streams: HashMap<u32, TcpStream>,
}

struct Shared {
    state: Mutex<State>,
    batch_io: BatchIo,
    udp: HashMap<SocketAddr, Arc<UdpSocket>>,
    relay_ip: IpAddr,
    min_port: u16,
    max_port: u16,
    tcp_queue: usize,
    connect_timeout: Duration,
}

/// Receive/send buffer of listening UDP sockets (the kernel caps it at `net.core.rmem_max`).
const LISTENER_BUFFER: usize = 4 << 20;
/// Receive/send buffer of relay sockets.
const RELAY_BUFFER: usize = 1 << 20;

/// A non-blocking UDP socket with `SO_REUSEADDR`, optionally `SO_REUSEPORT` (several sockets on one
/// port share the load by flow hash), and large buffers, bound to `addr`.
fn std_udp_socket(
    addr: SocketAddr,
    reuse_port: bool,
    buffer: usize,
) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
    }
    // Best effort: a smaller buffer still works, it only drops more under bursts.
    let _ = s.set_recv_buffer_size(buffer);
    let _ = s.set_send_buffer_size(buffer);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// [`std_udp_socket`], registered with the current runtime.
fn udp_socket(addr: SocketAddr, reuse_port: bool, buffer: usize) -> std::io::Result<UdpSocket> {
    UdpSocket::from_std(std_udp_socket(addr, reuse_port, buffer)?)
}

/// Datagrams taken per receive call (`recvmmsg` on Linux, one `recvmsg` elsewhere).
const BATCH: usize = quinn_udp::BATCH_SIZE;
/// Buffer space per datagram of a batch: the largest UDP payload fits.
const SLOT: usize = 65_536;
/// Receive batches a listener or relay task takes per readiness wake-up before it lets the
/// other tasks of its thread run.
const BATCHES_PER_WAKE: usize = 4;

/// The receive and output buffers the tasks of one thread share: one batch of slots (the pages
/// of a slot become resident only when a datagram that long arrives), what the batch's
/// datagrams are (kept here, not in each relay task: 32 of them weigh about 3 KB), a reply
/// buffer and the relayed datagrams the batch makes. No task holds them across an await.
struct IoBuffers {
    recv: Vec<u8>,
    meta: [quinn_udp::RecvMeta; BATCH],
    out: Vec<u8>,
    send: SendBatch,
}

thread_local! {
    static IO_BUFFERS: std::cell::RefCell<IoBuffers> = std::cell::RefCell::new(IoBuffers {
        recv: vec![0u8; BATCH * SLOT],
        meta: [quinn_udp::RecvMeta::default(); BATCH],
        out: Vec::with_capacity(65_600),
        send: SendBatch::default(),
    });
}

/// quinn-udp over our sockets: `recvmmsg` to receive, segmented sends (see [`SendBatch`]). Its
/// [`UdpSocketState`] is made on a socket of its own and dropped with it: the receive and send
/// paths use whatever socket they are handed, and the options the state sets up (the DF bit on
/// every datagram, GRO, timestamps) would change what the relay does, so our sockets keep
/// theirs. The state also says how many segments one send may carry.
///
/// [`UdpSocketState`]: quinn_udp::UdpSocketState
struct BatchIo(quinn_udp::UdpSocketState);

impl BatchIo {
    fn new() -> std::io::Result<Self> {
        let probe = std::net::UdpSocket::bind((IpAddr::from([127, 0, 0, 1]), 0))?;
        Ok(Self(quinn_udp::UdpSocketState::new((&probe).into())?))
    }

    /// Takes up to [`BATCH`] datagrams from `sock` without waiting; datagram `i` is in
    /// `buf[i * SLOT..][..meta[i].len]`. Clears the socket's readiness on `WouldBlock`.
    fn recv(
        &self,
        sock: &UdpSocket,
        buf: &mut [u8],
        meta: &mut [quinn_udp::RecvMeta; BATCH],
    ) -> std::io::Result<usize> {
        let mut slots = buf.chunks_exact_mut(SLOT);
        let mut slices: [std::io::IoSliceMut<'_>; BATCH] =
            std::array::from_fn(|_| std::io::IoSliceMut::new(slots.next().unwrap_or_default()));
        sock.try_io(tokio::io::Interest::READABLE, || {
            self.0.recv(sock.into(), &mut slices, meta)
        })
    }
}

/// The datagrams of a received batch: (source, bytes), split at the GRO stride if the kernel
/// coalesced some.
fn datagrams<'a>(
    buf: &'a [u8],
    meta: &'a [quinn_udp::RecvMeta],
) -> impl Iterator<Item = (SocketAddr, &'a [u8])> + 'a {
    meta.iter()
        .zip(buf.chunks_exact(SLOT))
        .flat_map(|(m, slot)| {
            let len = m.len.min(SLOT);
            slot[..len]
                .chunks(m.stride.clamp(1, SLOT))
                .map(move |d| (m.addr, d))
        })
}

/// Work to do outside the lock.
enum Work {
    Send(FiveTuple, Vec<u8>),
    Event(ServerEvent),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough state for the remaining tasks.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn drain(st: &mut State, work: &mut Vec<Work>) {
        while let Some(ev) = st.core.poll_event() {
            work.push(Work::Event(ev));
        }
        while let Some((to, b)) = st.core.poll_transmit() {
            work.push(Work::Send(to, b));
        }
    }

    /// Sends to a client over its 5-tuple.
    fn send_to_client(&self, st: &State, to: &FiveTuple, bytes: Vec<u8>) {
        super::wire::log(
            super::wire::Dir::Out,
            transport_name(to.transport),
            to.server,
            to.client,
            &bytes,
        );
        match to.transport {
            Transport::Udp => {
                if let Some(s) = self.udp.get(&to.server) {
                    let _ = s.try_send_to(&bytes, to.client);
                }
            }
            Transport::Tcp | Transport::Tls => {
                if let Some(tx) = st.tcp_clients.get(to) {
                    let _ = tx.try_send(bytes);
                }
            }
        }
    }

    fn run_work(self: &Arc<Self>, work: Vec<Work>) {
        if work.is_empty() {
            return;
        }
        let mut st = self.lock();
        for w in work {
            match w {
                Work::Send(to, b) => self.send_to_client(&st, &to, b),
                Work::Event(ev) => self.event(&mut st, ev),
            }
        }
    }

    fn event(self: &Arc<Self>, st: &mut State, ev: ServerEvent) {
        match ev {
            ServerEvent::BindRelay {
                id,
                family,
                protocol,
                even_port,
                reserved,
            } => {
                let me = self.clone();
                tokio::spawn(async move {
                    me.bind_relay(id, family, protocol, even_port, reserved)
                        .await
                });
            }
            ServerEvent::ReleaseRelay { relay } => {
                st.relays.remove(&relay);
            }
            ServerEvent::ReleaseReservation { addr } => {
                st.reserved.remove(&addr);
            }
            ServerEvent::ConnectPeer {
                connection_id,
                relay,
                peer,
            } => {
                let me = self.clone();
                tokio::spawn(async move { me.connect_peer(connection_id, relay, peer).await });
            }
            ServerEvent::ClosePeerConnection { connection_id } => {
                st.peer_streams.remove(&connection_id);
            }
            // Handled by the TCP connection task that sent the ConnectionBind.
            ServerEvent::PipeConnection { .. } => {}
            ServerEvent::PeerRefused {
                relay,
                peer,
                reason,
            } => {
                let (what, allow) = match reason {
                    PeerRefusal::Denied => (
                        "in a denied network",
                        "remove it from denied_peers (wskit turn --deny-peer)",
                    ),
                    PeerRefusal::Loopback => (
                        "a loopback address",
                        "allow_loopback_peers (wskit turn --allow-loopback-peers) allows it",
                    ),
                    PeerRefusal::Special => (
                        "a private or special-purpose address",
                        "allowed_peers (wskit turn --allow-peer CIDR) allows it",
                    ),
                };
                tracing::info!(
                    "refused peer {peer} for the allocation on {relay}: {what}; {allow} \
                     (logged once per allocation)"
                );
            }
        }
    }

    async fn bind_relay(
        self: Arc<Self>,
        id: u64,
        family: AddressFamily,
        protocol: RelayProtocol,
        even_port: Option<bool>,
        reserved: Option<SocketAddr>,
    ) {
        let ip = self.relay_ip;
        let bound = if AddressFamily::of(ip) != family {
            None
        } else if let Some(addr) = reserved {
            self.lock().reserved.remove(&addr).map(|s| (s, None))
        } else if protocol == RelayProtocol::Udp {
            self.bind_udp(ip, even_port)
        } else {
            None
        };
        let mut work = Vec::new();
        match (protocol, bound) {
            (RelayProtocol::Udp, Some((sock, extra))) => {
                let Ok(addr) = sock.local_addr() else { return };
                let task = tokio::spawn(self.clone().relay_udp_loop(sock.clone()));
                let mut st = self.lock();
                st.relays.insert(addr, Relay::Udp(sock, task));
                let extra_addr = extra.and_then(|e| {
                    let a = e.local_addr().ok()?;
                    st.reserved.insert(a, e);
                    Some(a)
                });
                st.core.relay_bound(Instant::now(), id, addr, extra_addr);
                Self::drain(&mut st, &mut work);
            }
            (RelayProtocol::Tcp, _) => match self.bind_tcp_listener(ip) {
                Some(listener) => {
                    let Ok(addr) = listener.local_addr() else {
                        return;
                    };
                    let task = tokio::spawn(self.clone().relay_tcp_accept_loop(listener, addr));
                    let mut st = self.lock();
                    st.relays.insert(addr, Relay::Tcp(task));
                    st.core.relay_bound(Instant::now(), id, addr, None);
                    Self::drain(&mut st, &mut work);
                }
                None => {
                    let mut st = self.lock();
                    st.core.relay_failed(Instant::now(), id);
                    Self::drain(&mut st, &mut work);
                }
            },
            (RelayProtocol::Udp, None) => {
                let mut st = self.lock();
                st.core.relay_failed(Instant::now(), id);
                Self::drain(&mut st, &mut work);
            }
        }
        self.run_work(work);
    }

    /// Relay ports to try, in order: 32 random ones (unpredictable ports, and quick in a range
    /// with free ports spread out), then the whole range from a random start, so that a free
    /// port is found however full the range is (sequential runs of taken ports are common:
    /// the kernel's ephemeral ports share the range).
    fn port_candidates(&self, even: bool) -> impl Iterator<Item = u16> {
        const RANDOM: usize = 32;
        let span = u32::from(self.max_port - self.min_port) + 1;
        let mut seed = [0u8; 4 * (RANDOM + 1)];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
        let mut words = seed
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) % span);
        let start = words.next().unwrap_or(0);
        let randoms: Vec<u32> = words.collect();
        let min = u32::from(self.min_port);
        randoms
            .into_iter()
            .chain((0..span).map(move |i| (start + i) % span))
            .map(move |o| (min + o) as u16)
            .filter(move |p| !even || p % 2 == 0)
    }

    fn bind_udp(
        &self,
        ip: IpAddr,
        even_port: Option<bool>,
    ) -> Option<(Arc<UdpSocket>, Option<Arc<UdpSocket>>)> {
        let even = even_port.is_some();
        let reserve = even_port == Some(true);
        let mut last = None;
        for port in self.port_candidates(even) {
            let s = match udp_socket(SocketAddr::new(ip, port), false, RELAY_BUFFER) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                // Out of file descriptors or memory: another port will not help.
                Err(e) => {
                    last = Some(e);
                    break;
                }
            };
            if reserve {
                if port == u16::MAX {
                    continue;
                }
                let Ok(next) = udp_socket(SocketAddr::new(ip, port + 1), false, RELAY_BUFFER)
                else {
                    continue;
                };
                return Some((Arc::new(s), Some(Arc::new(next))));
            }
            return Some((Arc::new(s), None));
        }
        match last {
            Some(e) => tracing::warn!("no relay socket on {ip}: {e}"),
            None => tracing::warn!(
                "no free relay port on {ip} in {}..={}",
                self.min_port,
                self.max_port
            ),
        }
        None
    }

    fn bind_tcp_listener(&self, ip: IpAddr) -> Option<TcpListener> {
        for port in self.port_candidates(false) {
            let sock = if ip.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .ok()?;
            // SO_REUSEPORT lets the RFC 6062 connections to peers leave from the relay
            // address; it would also let another allocation's listener take the same port,
            // so a plain socket must be able to bind it first.
            let free = if ip.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .ok()?
            .bind(SocketAddr::new(ip, port))
            .is_ok();
            if !free {
                continue;
            }
            let _ = sock.set_reuseaddr(true);
            let _ = sock.set_reuseport(true);
            if sock.bind(SocketAddr::new(ip, port)).is_err() {
                continue;
            }
            if let Ok(l) = sock.listen(128) {
                return Some(l);
            }
        }
        None
    }

    /// Receives on a relay socket (see [`Self::batch_loop`]).
    async fn relay_udp_loop(self: Arc<Self>, sock: Arc<UdpSocket>) {
        let Ok(relay) = sock.local_addr() else { return };
        self.batch_loop(&sock, |st, peer, data, out, send, now| {
            self.peer_datagram(st, relay, peer, data, out, send, now);
        })
        .await;
    }

    /// Drains a UDP socket in batches: waits for readability, then receives batches (at most
    /// [`BATCHES_PER_WAKE`] per wake-up) into the worker thread's shared buffers (no 64 KiB
    /// buffer per socket), hands each datagram to `handle` under one lock of the core per
    /// batch, sends what the batch made together, then runs the work it left.
    async fn batch_loop(
        self: &Arc<Self>,
        sock: &UdpSocket,
        mut handle: impl FnMut(&mut State, SocketAddr, &[u8], &mut Vec<u8>, &mut SendBatch, Instant),
    ) {
        loop {
            if sock.readable().await.is_err() {
                continue;
            }
            for _ in 0..BATCHES_PER_WAKE {
                let step = IO_BUFFERS.with(|cell| {
                    let mut guard = cell.borrow_mut();
                    let IoBuffers {
                        recv,
                        meta,
                        out,
                        send,
                    } = &mut *guard;
                    let n = match self.batch_io.recv(sock, recv, meta) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                        // An ICMP error queued on the socket (the far end went away): next batch.
                        Err(_) => return Some(Vec::new()),
                    };
                    let mut work = Vec::new();
                    let now = Instant::now();
                    let mut st = self.lock();
                    for (from, data) in datagrams(recv, &meta[..n]) {
                        handle(&mut st, from, data, out, send, now);
                    }
                    self.flush(&st, send);
                    Self::drain(&mut st, &mut work);
                    Some(work)
                });
                match step {
                    None => break,
                    Some(work) => self.run_work(work),
                }
            }
            tokio::task::yield_now().await;
        }
    }

    /// One datagram from a peer to relay `relay`: handed to the core, and what it gives queued
    /// for a UDP client (sent with the rest of the batch, without waiting: a full socket
    /// buffer drops it, as the network would) or handed to a TCP client's queue.
    #[allow(clippy::too_many_arguments)]
    fn peer_datagram(
        &self,
        st: &mut State,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
        send: &mut SendBatch,
        now: Instant,
    ) {
        out.clear();
        let Some(to) = st.core.handle_peer(now, relay, peer, data, out) else {
            return;
        };
        super::wire::log(
            super::wire::Dir::Out,
            transport_name(to.transport),
            to.server,
            to.client,
            out,
        );
        match to.transport {
            Transport::Udp => send.push(Source::Listener(to.server), to.client, out),
            // Bounded per-client queue: a slow TCP client loses data, never memory.
            _ => {
                if let Some(tx) = st.tcp_clients.get(&to) {
                    let _ = tx.try_send(out.clone());
                }
            }
        }
    }

    async fn relay_tcp_accept_loop(self: Arc<Self>, listener: TcpListener, relay: SocketAddr) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let mut work = Vec::new();
            {
                let mut st = self.lock();
                if let Some(id) = st
                    .core
                    .handle_peer_tcp_connection(Instant::now(), relay, peer)
                {
                    st.peer_streams.insert(id, stream);
                }
                Self::drain(&mut st, &mut work);
            }
            self.run_work(work);
        }
    }

    async fn connect_peer(self: Arc<Self>, id: u32, relay: SocketAddr, peer: SocketAddr) {
        let attempt = async {
            let sock = if relay.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }?;
            sock.set_reuseaddr(true)?;
            sock.set_reuseport(true)?;
            sock.bind(relay)?;
            sock.connect(peer).await
        };
        let result = tokio::time::timeout(self.connect_timeout, attempt).await;
        let mut work = Vec::new();
        {
            let mut st = self.lock();
            match result {
                Ok(Ok(stream)) => {
                    st.peer_streams.insert(id, stream);
                    st.core.peer_connected(Instant::now(), id);
                }
                _ => st.core.peer_connect_failed(Instant::now(), id),
            }
            Self::drain(&mut st, &mut work);
        }
        self.run_work(work);
    }

    /// Sends the datagrams a received batch made (the relays they leave from are looked up in
    /// `st`: one released meanwhile drops its datagrams).
    fn flush(&self, st: &State, send: &mut SendBatch) {
        send.flush(&self.batch_io.0, |source| match source {
            Source::Listener(addr) => self.udp.get(&addr).map(|s| &**s),
            Source::Relay(addr) => match st.relays.get(&addr) {
                Some(Relay::Udp(s, _)) => Some(&**s),
                _ => None,
            },
        });
    }

    /// Receives on a client-facing UDP socket (see [`Self::batch_loop`]).
    async fn udp_listener_loop(self: Arc<Self>, sock: Arc<UdpSocket>) {
        let Ok(local) = sock.local_addr() else { return };
        self.batch_loop(&sock, |st, from, data, out, send, now| {
            let ft = FiveTuple {
                transport: Transport::Udp,
                client: from,
                server: local,
            };
            Self::client_datagram(st, &sock, ft, data, out, send, now);
        })
        .await;
    }

    /// One datagram from a UDP client: handed to the core; a relayed payload is queued for its
    /// peer (sent with the rest of the batch), a reply goes back to the client at once, both
    /// without waiting.
    fn client_datagram(
        st: &mut State,
        sock: &UdpSocket,
        ft: FiveTuple,
        data: &[u8],
        out: &mut Vec<u8>,
        send: &mut SendBatch,
        now: Instant,
    ) {
        out.clear();
        super::wire::log(super::wire::Dir::In, "udp", ft.server, ft.client, data);
        match st.core.handle_client(now, ft, data, out) {
            Action::ToPeer {
                relay,
                peer,
                payload,
            } => send.push(Source::Relay(relay), peer, &data[payload]),
            Action::Reply => {
                super::wire::log(super::wire::Dir::Out, "udp", ft.server, ft.client, out);
                let _ = sock.try_send_to(out, ft.client);
            }
            Action::None => {}
        }
    }

    async fn tcp_accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, from)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let me = self.clone();
            tokio::spawn(async move { me.tcp_client(stream, from).await });
        }
    }

    async fn tcp_client(self: Arc<Self>, mut stream: TcpStream, from: SocketAddr) {
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let ft = FiveTuple {
            transport: Transport::Tcp,
            client: from,
            server: local,
        };
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(self.tcp_queue);
        self.lock().tcp_clients.insert(ft, tx);
        let mut rbuf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 65_536];
        let mut out = Vec::with_capacity(1500);
        let mut pipe: Option<u32> = None;
        let limits = self.lock().core.config().limits.clone();
        'conn: loop {
            tokio::select! {
                r = stream.read(&mut chunk) => {
                    let n = match r { Ok(0) | Err(_) => break 'conn, Ok(n) => n };
                    rbuf.extend_from_slice(&chunk[..n]);
                    let mut consumed = 0;
                    loop {
                        let len = match frame_len(&rbuf[consumed..], &limits) {
                            Ok(Some((_, len))) => len,
                            Ok(None) => break,
                            Err(_) => break 'conn,
                        };
                        let frame = &rbuf[consumed..consumed + len];
                        consumed += len;
                        out.clear();
                        let mut work = Vec::new();
                        let forward = {
                            let mut st = self.lock();
                            super::wire::log(super::wire::Dir::In, "tcp", ft.server, ft.client, frame);
                            let action = st.core.handle_client(Instant::now(), ft, frame, &mut out);
                            let fwd = match action {
                                Action::ToPeer { relay, peer, payload } => match st.relays.get(&relay) {
                                    Some(Relay::Udp(s, _)) => Some((s.clone(), peer, payload)),
                                    _ => None,
                                },
                                _ => None,
                            };
                            Self::drain(&mut st, &mut work);
                            fwd
                        };
                        if !out.is_empty() {
                            super::wire::log(super::wire::Dir::Out, "tcp", ft.server, ft.client, &out);
                        }
                        if !out.is_empty() && stream.write_all(&out).await.is_err() {
                            break 'conn;
                        }
                        if let Some((s, peer, payload)) = forward {
                            let _ = s.send_to(&frame[payload], peer).await;
                        }
                        work.retain(|w| match w {
                            Work::Event(ServerEvent::PipeConnection { connection_id, client }) if *client == ft => {
                                pipe = Some(*connection_id);
                                false
                            }
                            _ => true,
                        });
                        self.run_work(work);
                        if pipe.is_some() {
                            rbuf.drain(..consumed);
                            break 'conn;
                        }
                    }
                    rbuf.drain(..consumed);
                }
                Some(msg) = rx.recv() => {
                    if stream.write_all(&msg).await.is_err() {
                        break 'conn;
                    }
                }
            }
        }
        let peer_stream = {
            let mut st = self.lock();
            st.tcp_clients.remove(&ft);
            match pipe {
                Some(id) => st.peer_streams.remove(&id),
                None => {
                    st.core.client_closed(&ft);
                    None
                }
            }
        };
        let mut work = Vec::new();
        Self::drain(&mut self.lock(), &mut work);
        self.run_work(work);
        if let (Some(id), Some(mut peer)) = (pipe, peer_stream) {
            // RFC 6062 data connection: raw bytes both ways from now on.
            if !rbuf.is_empty() && peer.write_all(&rbuf).await.is_err() {
                self.lock().core.peer_connection_closed(id);
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut peer).await;
            self.lock().core.peer_connection_closed(id);
        }
    }

    async fn timer_loop(self: Arc<Self>) {
        loop {
            let next = self.lock().core.poll_timeout();
            tokio::time::sleep_until(tokio::time::Instant::from_std(next)).await;
            let mut work = Vec::new();
            {
                let mut st = self.lock();
                st.core.handle_timeout(Instant::now());
                Self::drain(&mut st, &mut work);
            }
            self.run_work(work);
        }
    }
}

/// A running TURN/STUN server. Dropping it stops every task and closes every socket.
pub struct TurnServer {
    shared: Arc<Shared>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    threads: Vec<Worker>,
}

/// A runtime of the server's own. Dropped without waiting (the server runs no blocking tasks),
/// so that a [`TurnServer::bind`] that fails half-way may drop it inside async code.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl OwnedRuntime {
    fn handle(&self) -> Option<tokio::runtime::Handle> {
        self.0.as_ref().map(|r| r.handle().clone())
    }
}

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            r.shutdown_background();
        }
    }
}

/// An event-loop thread of [`TurnServer`] and the way to stop it.
struct Worker {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnServer")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

/// A listening socket that could not be bound, naming the address and transport:
/// `cannot listen on udp 127.0.0.1:3478: Address already in use (os error 98)`.
fn listen_error(transport: &str, addr: SocketAddr, e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("cannot listen on {transport} {addr}: {e}"),
    )
}

impl TurnServer {
    /// Binds the listeners and starts serving: on [`TurnServerConfig::threads`] event-loop
    /// threads of its own, or on the current tokio runtime when that is `0`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration; [`Error::Io`] when a listener cannot bind
    /// or a thread cannot start.
    pub async fn bind(cfg: TurnServerConfig) -> Result<Self, Error> {
        cfg.validate()?;
        let relay_ip = cfg.relay_ip().unwrap_or(IpAddr::from([127, 0, 0, 1]));
        // The runtimes the listeners run on: the server's own single-threaded ones, each driven
        // by its thread, or the caller's.
        let mut runtimes = Vec::new();
        for _ in 0..cfg.threads {
            runtimes.push(OwnedRuntime(Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?,
            )));
        }
        let handles: Vec<tokio::runtime::Handle> = if runtimes.is_empty() {
            vec![tokio::runtime::Handle::current()]
        } else {
            runtimes.iter().filter_map(OwnedRuntime::handle).collect()
        };
        // On the caller's multi-thread runtime, a few tasks share each socket.
        let tasks_per_socket = if runtimes.is_empty() {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, 4)
        } else {
            1
        };
        // Per UDP address, one SO_REUSEPORT socket per runtime (registered with it).
        let mut udp = Vec::new();
        let mut udp_first = HashMap::new();
        let mut listeners: Vec<(usize, Arc<UdpSocket>)> = Vec::new();
        for a in &cfg.udp {
            // SO_REUSEPORT would let a second server (or anything of the same user) share the
            // port silently and split the clients between them: a plain bind first makes an
            // address in use an error, and picks the port when 0 was asked.
            let mut local = std::net::UdpSocket::bind(a)
                .map_err(|e| listen_error("udp", *a, &e))?
                .local_addr()?;
            for (i, h) in handles.iter().enumerate() {
                let std_sock = std_udp_socket(local, true, LISTENER_BUFFER)?;
                if i == 0 {
                    local = std_sock.local_addr()?;
                    udp.push(local);
                }
                let sock = {
                    let _entered = h.enter();
                    Arc::new(UdpSocket::from_std(std_sock)?)
                };
                if i == 0 {
                    udp_first.insert(local, sock.clone());
                }
                listeners.push((i, sock));
            }
        }
        let mut tcp_listeners = Vec::new();
        let mut tcp = Vec::new();
        for a in &cfg.tcp {
            let l = std::net::TcpListener::bind(a).map_err(|e| listen_error("tcp", *a, &e))?;
            l.set_nonblocking(true)?;
            tcp.push(l.local_addr()?);
            let _entered = handles[0].enter();
            tcp_listeners.push(TcpListener::from_std(l)?);
        }
        let core = Server::new(
            cfg.server.clone(),
            Instant::now(),
            SystemTime::now(),
            super::OsRandom::new(),
        )?;
        let shared = Arc::new(Shared {
            batch_io: BatchIo::new()?,
            state: Mutex::new(State {
                core,
                relays: HashMap::new(),
                reserved: HashMap::new(),
                tcp_clients: HashMap::new(),
                peer_streams: HashMap::new(),
            }),
            udp: udp_first,
            relay_ip,
            min_port: cfg.min_port,
            max_port: cfg.max_port,
            tcp_queue: cfg.tcp_queue,
            connect_timeout: cfg.connect_timeout,
        });
        let mut tasks = Vec::new();
        for (i, s) in listeners {
            for _ in 0..tasks_per_socket {
                tasks.push(handles[i].spawn(shared.clone().udp_listener_loop(s.clone())));
            }
        }
        for l in tcp_listeners {
            tasks.push(handles[0].spawn(shared.clone().tcp_accept_loop(l)));
        }
        tasks.push(handles[0].spawn(shared.clone().timer_loop()));
        let mut threads = Vec::new();
        for (i, rt) in runtimes.into_iter().enumerate() {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("turn-{i}"))
                .spawn(move || {
                    // Returns when the server is dropped; dropping the runtime then ends the
                    // tasks that still run on it.
                    if let Some(r) = &rt.0 {
                        let _ = r.block_on(stopped);
                    }
                })?;
            threads.push(Worker {
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(Self {
            shared,
            udp,
            tcp,
            tasks,
            threads,
        })
    }

    /// The bound UDP listening addresses (with the ports the OS picked for port 0).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// The bound TCP listening addresses.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// Core counters.
    pub fn stats(&self) -> crate::server::ServerStats {
        self.shared.lock().core.stats()
    }

    /// Runs until the future is dropped (the server itself runs in background tasks).
    pub async fn run_forever(&self) {
        std::future::pending::<()>().await;
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let mut st = self.shared.lock();
        st.relays.clear();
        st.reserved.clear();
        st.peer_streams.clear();
        st.tcp_clients.clear();
        drop(st);
        for w in &mut self.threads {
            if let Some(stop) = w.stop.take() {
                let _ = stop.send(());
            }
        }
        for w in &mut self.threads {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
