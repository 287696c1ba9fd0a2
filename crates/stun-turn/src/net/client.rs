//! The tokio STUN/TURN client over UDP or TCP.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::attr::RelayProtocol;
use crate::channel::frame_len;
use crate::client::{Client, ClientConfig, ClientEvent, Failure, Request};
use crate::error::Error;

enum Io {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

type Reply = oneshot::Sender<Result<ClientEvent, Error>>;

enum Cmd {
    Binding(Reply),
    Allocate(RelayProtocol, Option<bool>, Option<[u8; 8]>, Reply),
    Refresh(u32, Reply),
    Permission(Vec<SocketAddr>, Reply),
    Channel(SocketAddr, Reply),
    Connect(SocketAddr, Reply),
    Send(SocketAddr, Vec<u8>, oneshot::Sender<Result<(), Error>>),
}

/// What kind of event answers a waiting command.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Binding,
    Allocate,
    Refresh,
    Permission,
    Channel,
    Connect,
}

fn wants(ev: &ClientEvent) -> Option<Want> {
    Some(match ev {
        ClientEvent::Binding { .. } => Want::Binding,
        ClientEvent::Allocated { .. } => Want::Allocate,
        ClientEvent::Refreshed { .. } => Want::Refresh,
        ClientEvent::PermissionCreated { .. } => Want::Permission,
        ClientEvent::ChannelBound { .. } => Want::Channel,
        ClientEvent::Connected { .. } => Want::Connect,
        ClientEvent::Failed { request, .. } => match request {
            Request::Binding => Want::Binding,
            Request::Allocate(_) => Want::Allocate,
            Request::Refresh(_) => Want::Refresh,
            Request::CreatePermission(_) => Want::Permission,
            Request::ChannelBind { .. } => Want::Channel,
            Request::Connect(_) => Want::Connect,
            Request::ConnectionBind(_) => return None,
        },
        _ => return None,
    })
}

/// A STUN/TURN client connection driven by a background task.
///
/// Requests wait for their answer; data from peers arrives through [`TurnClient::recv_from`].
/// Allocation, permissions and channels are refreshed automatically while the client lives.
#[derive(Debug)]
pub struct TurnClient {
    cmds: mpsc::Sender<Cmd>,
    data: mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    other: mpsc::UnboundedReceiver<ClientEvent>,
    /// Changes when a UDP Allocate moves to another local port after a 437.
    local: Arc<Mutex<SocketAddr>>,
}

/// Local ports a UDP client tries when Allocate gets 437 Allocation Mismatch.
const MISMATCH_PORTS: u32 = 4;

/// A UDP socket on a fresh ephemeral port of `server`'s family, connected to it.
async fn udp_to(server: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(any).await?;
    sock.connect(server).await?;
    Ok(sock)
}

fn failure_to_error(f: Failure) -> Error {
    match f {
        Failure::Error { code, reason } => Error::Response { code, reason },
        Failure::Timeout => Error::Timeout,
        Failure::Redirect(alternate) => Error::Redirected { alternate },
        Failure::Malformed => Error::MissingAttribute(crate::attr::AttrType::XOR_RELAYED_ADDRESS),
    }
}

impl TurnClient {
    /// Connects over UDP (binds an ephemeral local port of the server's family).
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Config`] for an invalid configuration.
    pub async fn udp(server: SocketAddr, cfg: ClientConfig) -> Result<Self, Error> {
        Self::udp_from(udp_to(server).await?, server, cfg).await
    }

    /// Connects over a UDP socket of the caller's, bound where it wants (an interface, a
    /// port); it is connected to `server` here.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Config`] for an invalid configuration.
    pub async fn udp_from(
        sock: UdpSocket,
        server: SocketAddr,
        mut cfg: ClientConfig,
    ) -> Result<Self, Error> {
        cfg.reliable = false;
        sock.connect(server).await?;
        let local = sock.local_addr()?;
        Self::start(Io::Udp(sock), cfg, local)
    }

    /// Connects over TCP.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Config`] for an invalid configuration.
    pub async fn tcp(server: SocketAddr, mut cfg: ClientConfig) -> Result<Self, Error> {
        cfg.reliable = true;
        let s = TcpStream::connect(server).await?;
        s.set_nodelay(true)?;
        let local = s.local_addr()?;
        Self::start(Io::Tcp(s), cfg, local)
    }

    fn start(io: Io, cfg: ClientConfig, local: SocketAddr) -> Result<Self, Error> {
        let core = Client::new(cfg.clone(), super::OsRandom::new())?;
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (data_tx, data_rx) = mpsc::channel(1024);
        let (other_tx, other_rx) = mpsc::unbounded_channel();
        let local = Arc::new(Mutex::new(local));
        tokio::spawn(drive(
            io,
            core,
            cfg,
            cmd_rx,
            data_tx,
            other_tx,
            local.clone(),
        ));
        Ok(Self {
            cmds: cmd_tx,
            data: data_rx,
            other: other_rx,
            local,
        })
    }

    /// The local address of the connection. Over UDP it changes when the server answered
    /// Allocate with 437 Allocation Mismatch (its 5-tuple still had an allocation, say of a
    /// crashed client behind the same NAT port): the client then retries from another local
    /// port, as RFC 8656 section 7.3 suggests, up to 4 ports.
    pub fn local_addr(&self) -> SocketAddr {
        *self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn ask(&self, f: impl FnOnce(Reply) -> Cmd) -> Result<ClientEvent, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmds.send(f(tx)).await.map_err(|_| Error::Closed)?;
        match rx.await.map_err(|_| Error::Closed)?? {
            ClientEvent::Failed { failure, .. } => Err(failure_to_error(failure)),
            ev => Ok(ev),
        }
    }

    /// Binding request: the reflexive address.
    ///
    /// # Errors
    /// [`Error::Response`], [`Error::Timeout`], [`Error::Closed`].
    pub async fn binding(&self) -> Result<SocketAddr, Error> {
        match self.ask(Cmd::Binding).await? {
            ClientEvent::Binding { reflexive } => Ok(reflexive),
            _ => Err(Error::Closed),
        }
    }

    /// Allocates a UDP relay; returns the relayed address.
    ///
    /// # Errors
    /// [`Error::Response`] (401 for wrong credentials, 486 quota...), [`Error::Timeout`].
    pub async fn allocate(&self) -> Result<SocketAddr, Error> {
        self.allocate_with(RelayProtocol::Udp, None, None)
            .await
            .map(|(a, _)| a)
    }

    /// Allocates with a relay protocol, EVEN-PORT or a RESERVATION-TOKEN; returns the relayed
    /// address and the reservation token the server granted, if any.
    ///
    /// # Errors
    /// As [`TurnClient::allocate`].
    pub async fn allocate_with(
        &self,
        protocol: RelayProtocol,
        even_port: Option<bool>,
        token: Option<[u8; 8]>,
    ) -> Result<(SocketAddr, Option<[u8; 8]>), Error> {
        match self
            .ask(|r| Cmd::Allocate(protocol, even_port, token, r))
            .await?
        {
            ClientEvent::Allocated {
                relayed,
                reservation_token,
                ..
            } => Ok((relayed, reservation_token)),
            _ => Err(Error::Closed),
        }
    }

    /// Refreshes the allocation (0 deletes it); returns the granted lifetime in seconds.
    ///
    /// # Errors
    /// [`Error::Response`], [`Error::Timeout`], [`Error::NoAllocation`].
    pub async fn refresh(&self, lifetime: u32) -> Result<u64, Error> {
        match self.ask(|r| Cmd::Refresh(lifetime, r)).await? {
            ClientEvent::Refreshed { lifetime } => Ok(lifetime.as_secs()),
            _ => Err(Error::Closed),
        }
    }

    /// Installs permissions for the peers' IPs (kept alive automatically).
    ///
    /// # Errors
    /// [`Error::Response`] (403 for refused peers), [`Error::Timeout`], [`Error::NoAllocation`].
    pub async fn create_permission(&self, peers: &[SocketAddr]) -> Result<(), Error> {
        self.ask(|r| Cmd::Permission(peers.to_vec(), r))
            .await
            .map(|_| ())
    }

    /// Binds a channel to `peer` (kept alive automatically); [`TurnClient::send_to`] then uses it.
    ///
    /// # Errors
    /// [`Error::Response`], [`Error::Timeout`], [`Error::NoAllocation`].
    pub async fn bind_channel(&self, peer: SocketAddr) -> Result<u16, Error> {
        match self.ask(|r| Cmd::Channel(peer, r)).await? {
            ClientEvent::ChannelBound { channel, .. } => Ok(channel),
            _ => Err(Error::Closed),
        }
    }

    /// RFC 6062 Connect: returns the connection id for a data connection.
    ///
    /// # Errors
    /// [`Error::Response`] (447 when the peer is unreachable), [`Error::Timeout`].
    pub async fn connect(&self, peer: SocketAddr) -> Result<u32, Error> {
        match self.ask(|r| Cmd::Connect(peer, r)).await? {
            ClientEvent::Connected { connection_id, .. } => Ok(connection_id),
            _ => Err(Error::Closed),
        }
    }

    /// Sends data to a peer (ChannelData if a channel is bound, else a Send indication).
    ///
    /// # Errors
    /// [`Error::NoAllocation`], [`Error::Encode`], [`Error::Closed`].
    pub async fn send_to(&self, peer: SocketAddr, data: &[u8]) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Send(peer, data.to_vec(), tx))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Next data from a peer; `None` once the connection is gone.
    pub async fn recv_from(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.data.recv().await
    }

    /// Next event not answered by a request (ConnectionAttempt, failed automatic refreshes).
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.other.recv().await
    }
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    mut io: Io,
    mut core: Client,
    cfg: ClientConfig,
    mut cmds: mpsc::Receiver<Cmd>,
    data: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    other: mpsc::UnboundedSender<ClientEvent>,
    local: Arc<Mutex<SocketAddr>>,
) {
    let mut waiters: Vec<(Want, Reply)> = Vec::new();
    // The last Allocate's parameters and the local ports tried for it (437 handling).
    let mut allocating: Option<(RelayProtocol, Option<bool>, Option<[u8; 8]>)> = None;
    let mut ports_tried = 0u32;
    // 300 Try Alternate redirects followed for the current Binding or Allocate.
    let mut hops = 0u32;
    let mut buf = vec![0u8; 65_536];
    let mut stream_buf: Vec<u8> = Vec::new();
    let mut out = Vec::with_capacity(2048);
    let limits = crate::message::DecodeLimits::default();
    'drive: loop {
        // Flush what the core wants to send.
        while let Some(b) = core.poll_transmit() {
            log_wire(&io, super::wire::Dir::Out, &b);
            let ok = match &mut io {
                Io::Udp(s) => s.send(&b).await.is_ok(),
                Io::Tcp(s) => s.write_all(&b).await.is_ok(),
            };
            if !ok {
                return;
            }
        }
        while let Some(ev) = core.poll_event() {
            if is_mismatch(&ev)
                && ports_tried + 1 < MISMATCH_PORTS
                && let (Io::Udp(s), Some((p, e, t))) = (&io, allocating)
                && let Ok(server) = s.peer_addr()
                && let Ok(fresh) = udp_to(server).await
                && let Ok(addr) = fresh.local_addr()
                && core.allocate_with(Instant::now(), p, e, t).is_ok()
            {
                // The new socket is bound before the old one closes: another port.
                io = Io::Udp(fresh);
                *local.lock().unwrap_or_else(|e| e.into_inner()) = addr;
                ports_tried += 1;
                continue;
            }
            if let Some(alternate) = redirect_of(&ev)
                && hops < cfg.max_redirects
                && core.transactions() == 0
                && core.relayed().is_none()
                && let Some(fresh) = reconnect(&io, alternate).await
                && let Ok(mut next) = Client::new(cfg.clone(), super::OsRandom::new())
            {
                let now = Instant::now();
                let again = match (&ev, allocating) {
                    (
                        ClientEvent::Failed {
                            request: Request::Allocate(_),
                            ..
                        },
                        Some((p, e, t)),
                    ) => next.allocate_with(now, p, e, t).map(|_| ()),
                    _ => next.binding(now).map(|_| ()),
                };
                if again.is_ok() {
                    // A new server: a new transport and a new core (its own realm and nonce).
                    tracing::debug!(%alternate, hop = hops + 1, "following 300 Try Alternate");
                    if let Ok(addr) = match &fresh {
                        Io::Udp(s) => s.local_addr(),
                        Io::Tcp(s) => s.local_addr(),
                    } {
                        *local.lock().unwrap_or_else(|e| e.into_inner()) = addr;
                    }
                    io = fresh;
                    core = next;
                    stream_buf.clear();
                    hops += 1;
                    // Send the re-issued request now (over TCP no retransmission would).
                    continue 'drive;
                }
            }
            match ev {
                ClientEvent::Data { peer, data: d }
                | ClientEvent::ChannelData { peer, data: d, .. } => {
                    let _ = data.try_send((peer, d));
                }
                ev => match wants(&ev).and_then(|w| waiters.iter().position(|(x, _)| *x == w)) {
                    Some(i) => {
                        let (_, r) = waiters.remove(i);
                        let _ = r.send(Ok(ev));
                    }
                    None => {
                        let _ = other.send(ev);
                    }
                },
            }
        }
        let timeout = core.poll_timeout();
        let sleep = async {
            match timeout {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        let read = async {
            match &mut io {
                Io::Udp(s) => s.recv(&mut buf).await.map(|n| buf[..n].to_vec()),
                Io::Tcp(s) => s.read(&mut buf).await.map(|n| buf[..n].to_vec()),
            }
        };
        tokio::select! {
            r = read => {
                let Ok(bytes) = r else { return };
                let now = Instant::now();
                match &io {
                    Io::Udp(_) => {
                        log_wire(&io, super::wire::Dir::In, &bytes);
                        core.handle_input(now, &bytes);
                    }
                    Io::Tcp(_) => {
                        if bytes.is_empty() {
                            return;
                        }
                        stream_buf.extend_from_slice(&bytes);
                        let mut used = 0;
                        loop {
                            match frame_len(&stream_buf[used..], &limits) {
                                Ok(Some((_, n))) => {
                                    log_wire(&io, super::wire::Dir::In, &stream_buf[used..used + n]);
                                    core.handle_input(now, &stream_buf[used..used + n]);
                                    used += n;
                                }
                                Ok(None) => break,
                                Err(_) => return,
                            }
                        }
                        stream_buf.drain(..used);
                    }
                }
            }
            () = sleep => core.handle_timeout(Instant::now()),
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { return };
                let now = Instant::now();
                let (want, reply, res) = match cmd {
                    Cmd::Binding(r) => {
                        hops = 0;
                        (Want::Binding, r, core.binding(now).map(|_| ()))
                    }
                    Cmd::Allocate(p, e, t, r) => {
                        allocating = Some((p, e, t));
                        ports_tried = 0;
                        hops = 0;
                        (Want::Allocate, r, core.allocate_with(now, p, e, t).map(|_| ()))
                    }
                    Cmd::Refresh(l, r) => (Want::Refresh, r, core.refresh(now, l).map(|_| ())),
                    Cmd::Permission(p, r) => (Want::Permission, r, core.create_permission(now, &p).map(|_| ())),
                    Cmd::Channel(p, r) => (Want::Channel, r, core.bind_channel(now, p).map(|_| ())),
                    Cmd::Connect(p, r) => (Want::Connect, r, core.connect(now, p).map(|_| ())),
                    Cmd::Send(peer, d, r) => {
                        out.clear();
                        let res = core.send_to(peer, &d, &mut out);
                        if res.is_ok() {
                            log_wire(&io, super::wire::Dir::Out, &out);
                            let ok = match &mut io {
                                Io::Udp(s) => s.send(&out).await.is_ok(),
                                Io::Tcp(s) => s.write_all(&out).await.is_ok(),
                            };
                            if !ok {
                                let _ = r.send(Err(Error::Closed));
                                return;
                            }
                        }
                        let _ = r.send(res);
                        continue;
                    }
                };
                match res {
                    Ok(()) => waiters.push((want, reply)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
        }
    }
}

/// Logs a message to or from the server on the `stun_turn::wire` target.
fn log_wire(io: &Io, dir: super::wire::Dir, bytes: &[u8]) {
    if !super::wire::enabled() {
        return;
    }
    let (name, local, remote) = match io {
        Io::Udp(s) => ("udp", s.local_addr(), s.peer_addr()),
        Io::Tcp(s) => ("tcp", s.local_addr(), s.peer_addr()),
    };
    if let (Ok(local), Ok(remote)) = (local, remote) {
        super::wire::log(dir, name, local, remote, bytes);
    }
}

/// The server a Binding or Allocate was redirected to (300 with ALTERNATE-SERVER).
fn redirect_of(ev: &ClientEvent) -> Option<SocketAddr> {
    match ev {
        ClientEvent::Failed {
            request: Request::Binding | Request::Allocate(_),
            failure: Failure::Redirect(a),
        } => Some(*a),
        _ => None,
    }
}

/// A transport of the same kind as `io` to `server`.
async fn reconnect(io: &Io, server: SocketAddr) -> Option<Io> {
    match io {
        Io::Udp(_) => udp_to(server).await.ok().map(Io::Udp),
        Io::Tcp(_) => {
            let s = TcpStream::connect(server).await.ok()?;
            s.set_nodelay(true).ok()?;
            Some(Io::Tcp(s))
        }
    }
}

fn is_mismatch(ev: &ClientEvent) -> bool {
    matches!(ev, ClientEvent::Failed {
        request: Request::Allocate(_),
        failure: Failure::Error { code, .. },
    } if *code == crate::attr::ErrorCode::ALLOCATION_MISMATCH)
}

/// One Binding request over UDP or TCP: the reflexive address of this host as seen by `server`.
///
/// # Errors
/// As [`TurnClient::binding`], plus [`Error::Io`].
pub async fn stun_binding(server: SocketAddr, tcp: bool) -> Result<SocketAddr, Error> {
    let c = if tcp {
        TurnClient::tcp(server, ClientConfig::default()).await?
    } else {
        TurnClient::udp(server, ClientConfig::default()).await?
    };
    c.binding().await
}
