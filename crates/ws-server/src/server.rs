//! Listeners, the accept path (TLS, request head, admission, auth, handshake) and the handles.

use std::{
    fmt,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;
use ws_frame::{CloseCode, Message, SendOptions};

use crate::{
    channels::validate_channel,
    config::{ServerConfig, SlowReaderPolicy},
    conn,
    error::Error,
    handler::{Handler, TcpDecision},
    http::files::FileCache,
    http::{self, Accepted, Next},
    io::Io,
    raw,
    registry::{Command, ConnId, ConnInfo, Filter, KILL_DROP, Registry, lock},
    sse::{self, SseEvent},
};

/// Shared state of a running server.
pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    pub(crate) registry: Registry,
    listeners: Mutex<Vec<JoinHandle<()>>>,
    local_addrs: Mutex<Vec<SocketAddr>>,
    pub(crate) stopping: AtomicBool,
    /// Signalled when `stop` begins (idle keep-alive connections close).
    pub(crate) stop_signal: Notify,
    stopped: Notify,
    /// The canonical document root.
    pub(crate) root: Option<std::path::PathBuf>,
    /// Small static files kept in memory.
    pub(crate) file_cache: FileCache,
    /// Binds the listeners again (kept for `restart`).
    #[allow(clippy::type_complexity)]
    spawner: Mutex<Option<Box<dyn Fn(&ServerHandle) -> Result<(), Error> + Send + Sync>>>,
}

impl Inner {
    pub(crate) fn unregister(&self, info: &ConnInfo) {
        self.registry.remove(info);
    }
}

/// Holds one admission slot (`max_connections`) until dropped.
pub(crate) struct AdmitGuard(Arc<Inner>);

impl Drop for AdmitGuard {
    fn drop(&mut self) {
        self.0.registry.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A cheap, cloneable handle to a running server: address connections by id, broadcast,
/// stop and restart.
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addrs", &self.local_addrs())
            .field("connections", &self.count())
            .finish()
    }
}

/// Starts servers.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Validates `config`, binds every listener and starts accepting on the current tokio
    /// runtime. Connections are served by `handler`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration, [`Error::Bind`] when an address cannot
    /// be bound.
    pub async fn start<H: Handler>(
        config: ServerConfig,
        handler: H,
    ) -> Result<ServerHandle, Error> {
        config.validate()?;
        let root = match &config.document_root {
            Some(dir) => Some(
                std::fs::canonicalize(dir)
                    .map_err(|e| Error::Config(format!("document root {}: {e}", dir.display())))?,
            ),
            None => None,
        };
        let handler = Arc::new(handler);
        let inner = Arc::new(Inner {
            root,
            file_cache: FileCache::new(config.file_cache),
            stop_signal: Notify::new(),
            config,
            registry: Registry::default(),
            listeners: Mutex::new(Vec::new()),
            local_addrs: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            stopped: Notify::new(),
            spawner: Mutex::new(None),
        });
        let handle = ServerHandle { inner };
        let spawner = move |server: &ServerHandle| spawn_listeners(server, &handler);
        spawner(&handle)?;
        *lock(&handle.inner.spawner) = Some(Box::new(spawner));
        Ok(handle)
    }
}

fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let err = |source| Error::Bind { addr, source };
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(err)?;
    if addr.is_ipv6() {
        // [::] and 0.0.0.0 can then be bound side by side.
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

fn spawn_listeners<H: Handler>(server: &ServerHandle, handler: &Arc<H>) -> Result<(), Error> {
    let mut listeners = Vec::new();
    for binding in &server.inner.config.bindings {
        let listener = bind(binding.addr)?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            addr: binding.addr,
            source,
        })?;
        listeners.push((listener, local, binding.tls.clone().map(TlsAcceptor::from)));
    }
    let mut addrs = lock(&server.inner.local_addrs);
    let mut tasks = lock(&server.inner.listeners);
    addrs.clear();
    for (listener, local, tls) in listeners {
        addrs.push(local);
        tasks.push(tokio::spawn(accept_loop(
            server.clone(),
            handler.clone(),
            listener,
            tls,
        )));
    }
    // Debug: the binary prints its own `listening on ADDR` line (scripts read it), once.
    tracing::debug!(addrs = ?*addrs, "listening");
    Ok(())
}

async fn accept_loop<H: Handler>(
    server: ServerHandle,
    handler: Arc<H>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let server = server.clone();
                let handler = handler.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    // WebSocket handlers are guarded call by call (conn.rs); this catches the
                    // rest (plain TCP, SSE, HTTP) so that no panic ends a task unreported.
                    let task = std::pin::pin!(serve(server, handler, tcp, peer, tls));
                    if let Err(panic) = conn::CatchUnwind(task).await {
                        tracing::error!(%peer, %panic, "connection task panicked");
                    }
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves one accepted TCP connection from TLS through the HTTP phase to its end. The accept
/// phase runs in its own boxed future, so its buffers and state do not stay in the (long-lived)
/// connection task.
async fn serve<H: Handler>(
    server: ServerHandle,
    handler: Arc<H>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
) {
    let next = Box::pin(accept(&server, &handler, tcp, peer, tls)).await;
    match next {
        Some(Next::Ws(est)) => conn::run(server, handler, est).await,
        Some(Next::Raw {
            io,
            peer,
            local,
            tls,
            first,
            guard,
        }) => {
            Box::pin(raw::run(
                server, handler, io, peer, local, tls, first, guard,
            ))
            .await
        }
        Some(Next::Sse { io, request, guard }) => {
            Box::pin(sse::run(server, handler, io, *request, guard)).await
        }
        None => {}
    }
}

/// Admission, `on_tcp_connect`, TLS, then the HTTP phase (requests, upgrade, SSE).
async fn accept<H: Handler>(
    server: &ServerHandle,
    handler: &Arc<H>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> Option<Next> {
    let inner = server.inner.clone();
    let config = &inner.config;
    let admitted = inner.registry.admitted.fetch_add(1, Ordering::AcqRel) + 1;
    let guard = AdmitGuard(inner.clone());
    let over_limit = config.max_connections != 0 && admitted > config.max_connections;
    let Ok(local) = tcp.local_addr() else {
        return None;
    };
    let decision = handler.on_tcp_connect(peer, local).await;
    if decision == TcpDecision::Reject {
        return None;
    }
    if config.nodelay {
        let _ = tcp.set_nodelay(true);
    }
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let is_tls = tls.is_some();
    let io = match tls {
        None => Io::Plain(tcp),
        Some(acceptor) => match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Io::tls(s),
            Ok(Err(e)) => {
                handler.on_error(peer, None, &Error::Tls(e)).await;
                return None;
            }
            Err(_) => {
                handler.on_error(peer, None, &Error::HandshakeTimeout).await;
                return None;
            }
        },
    };
    if decision == TcpDecision::RawTcp {
        return Some(Next::Raw {
            io,
            peer,
            local,
            tls: is_tls,
            first: Bytes::new(),
            guard,
        });
    }
    let accepted = Accepted {
        io,
        peer,
        local,
        tls: is_tls,
        deadline,
        guard,
        over_limit,
    };
    http::serve(server, handler, accepted).await
}

impl ServerHandle {
    /// Addresses the listeners are bound to (with the real port when port 0 was asked).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        lock(&self.inner.local_addrs).clone()
    }

    /// The configuration in use.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// Number of established connections (`Count`).
    #[must_use]
    pub fn count(&self) -> usize {
        self.inner.registry.count()
    }

    /// Bytes held in partly received WebSocket messages across all connections (the total
    /// that [`ServerConfig::max_partial_bytes`] bounds).
    #[must_use]
    pub fn partial_bytes(&self) -> usize {
        self.inner.registry.partial_bytes.load(Ordering::Acquire)
    }

    /// Every established connection.
    #[must_use]
    pub fn connections(&self) -> Vec<Arc<ConnInfo>> {
        self.inner.registry.all()
    }

    /// One connection by id.
    #[must_use]
    pub fn get(&self, id: ConnId) -> Option<ConnHandle> {
        self.inner
            .registry
            .get(id)
            .map(|info| ConnHandle::new(info, self.clone()))
    }

    /// Sends a message to one connection (`WriteData(guid, ...)`), following
    /// [`ServerConfig::slow_reader`].
    ///
    /// # Errors
    /// [`Error::UnknownConnection`], [`Error::Closed`], or [`Error::QueueFull`] (the
    /// connection is then being closed with 1013).
    pub async fn write_to(&self, id: ConnId, msg: impl Into<Message>) -> Result<(), Error> {
        let info = self
            .inner
            .registry
            .get(id)
            .ok_or(Error::UnknownConnection(id.0))?;
        info.deliver(Command::Send(msg.into()), self.inner.config.slow_reader)
            .await
    }

    /// Sends a message to every connection `filter` selects (SSE connections get text as a
    /// `message` event). Returns how many connections
    /// took it; under [`crate::SlowReaderPolicy::Disconnect`] connections whose queue is full
    /// are closed with 1013 and not counted.
    pub async fn broadcast(&self, msg: impl Into<Message>, filter: &Filter) -> usize {
        let msg = msg.into();
        let targets = self.inner.registry.select(filter);
        let policy = self.inner.config.slow_reader;
        let mut sent = 0;
        for info in targets {
            let cmd = Command::Send(msg.clone());
            if info.deliver(cmd, policy).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Sends a server-sent event to one connection: SSE connections get it with its name, id
    /// and retry; WebSocket connections get its data as a text message.
    ///
    /// # Errors
    /// As [`ServerHandle::write_to`].
    pub async fn send_event(&self, id: ConnId, event: SseEvent) -> Result<(), Error> {
        let info = self
            .inner
            .registry
            .get(id)
            .ok_or(Error::UnknownConnection(id.0))?;
        info.deliver(
            Command::Event(Box::new(event)),
            self.inner.config.slow_reader,
        )
        .await
    }

    /// [`ServerHandle::broadcast`] for a server-sent event (see [`ServerHandle::send_event`]).
    pub async fn broadcast_event(&self, event: SseEvent, filter: &Filter) -> usize {
        let targets = self.inner.registry.select(filter);
        let policy = self.inner.config.slow_reader;
        let mut sent = 0;
        for info in targets {
            let cmd = Command::Event(Box::new(event.clone()));
            if info.deliver(cmd, policy).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Pings every connection (`Ping`); with a heartbeat configured, missing pongs close
    /// connections. Returns how many were pinged.
    pub fn ping_all(&self) -> usize {
        self.inner
            .registry
            .all()
            .iter()
            .filter(|info| info.try_deliver(Command::Ping(Bytes::new())).is_ok())
            .count()
    }

    /// Closes every connection with `code` (`DisconnectAll`); the listeners keep running.
    pub fn disconnect_all(&self, code: CloseCode) {
        for info in self.inner.registry.all() {
            info.kill(code.as_u16());
        }
    }

    /// Subscribes a connection to a channel (wildcards allowed).
    ///
    /// # Errors
    /// [`Error::InvalidChannel`] for malformed names.
    pub fn subscribe(&self, info: &ConnInfo, channel: &str) -> Result<bool, Error> {
        validate_channel(channel)?;
        Ok(self.inner.registry.subscribe(info, channel))
    }

    /// Removes a subscription.
    pub fn unsubscribe(&self, info: &ConnInfo, channel: &str) -> bool {
        self.inner.registry.unsubscribe(info, channel)
    }

    /// Channel patterns that have at least one subscriber.
    #[must_use]
    pub fn channels(&self) -> Vec<String> {
        self.inner.registry.channels()
    }

    /// Stops accepting, closes every connection with 1001 (going away), and waits until they
    /// are gone or [`ServerConfig::stop_timeout`] passed; then drops the rest.
    pub async fn stop(&self) {
        self.inner.stopping.store(true, Ordering::Release);
        self.inner.stop_signal.notify_waiters();
        for task in lock(&self.inner.listeners).drain(..) {
            task.abort();
        }
        for info in self.inner.registry.all() {
            info.kill(CloseCode::AWAY.as_u16());
        }
        let deadline = Instant::now() + self.inner.config.stop_timeout;
        loop {
            let left = self.inner.registry.left.notified();
            if self.count() == 0 {
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                for info in self.inner.registry.all() {
                    info.kill_code.store(KILL_DROP, Ordering::Release);
                    info.kill.notify_one();
                }
                break;
            }
            let _ = tokio::time::timeout(deadline - now, left).await;
        }
        self.inner.stopped.notify_waiters();
    }

    /// [`ServerHandle::stop`], then binds the listeners again (`ReStart`).
    ///
    /// # Errors
    /// [`Error::Bind`] when an address cannot be bound again.
    pub async fn restart(&self) -> Result<(), Error> {
        self.stop().await;
        self.inner.stopping.store(false, Ordering::Release);
        let spawner = lock(&self.inner.spawner);
        match spawner.as_ref() {
            Some(spawn) => spawn(self),
            None => Ok(()),
        }
    }

    /// Waits until [`ServerHandle::stop`] is called (from anywhere).
    pub async fn stopped(&self) {
        self.inner.stopped.notified().await;
    }
}

/// A cheap, cloneable handle to one connection, usable from any task.
#[derive(Clone)]
pub struct ConnHandle {
    info: Arc<ConnInfo>,
    server: ServerHandle,
}

impl fmt::Debug for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ConnHandle").field(&self.info.id).finish()
    }
}

impl ConnHandle {
    pub(crate) fn new(info: Arc<ConnInfo>, server: ServerHandle) -> Self {
        Self { info, server }
    }

    /// The connection id.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.info.id
    }

    /// The connection's details.
    #[must_use]
    pub fn info(&self) -> &Arc<ConnInfo> {
        &self.info
    }

    /// Sends a message, following [`ServerConfig::slow_reader`].
    ///
    /// # Errors
    /// [`Error::Closed`] or [`Error::QueueFull`].
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.info
            .deliver(
                Command::Send(msg.into()),
                self.server.inner.config.slow_reader,
            )
            .await
    }

    /// Sends a message with options.
    ///
    /// # Errors
    /// As [`ConnHandle::send`].
    pub async fn send_with(&self, msg: Message, opts: SendOptions) -> Result<(), Error> {
        self.info
            .deliver(
                Command::SendWith(Box::new((msg, opts))),
                self.server.inner.config.slow_reader,
            )
            .await
    }

    /// Sends a ping.
    ///
    /// # Errors
    /// As [`ConnHandle::send`].
    pub async fn ping(&self, payload: Bytes) -> Result<(), Error> {
        self.info
            .deliver(Command::Ping(payload), self.server.inner.config.slow_reader)
            .await
    }

    /// Starts the close handshake (`Close`).
    ///
    /// # Errors
    /// As [`ConnHandle::send`].
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.info
            .deliver(
                Command::Close(Box::new((code, reason.to_owned()))),
                SlowReaderPolicy::Backpressure,
            )
            .await
    }

    /// Drops the connection without a close handshake (`Disconnect`).
    pub fn disconnect(&self) {
        self.info.kill(KILL_DROP);
    }

    /// Stops reading from the connection's socket (read flow control; see
    /// [`crate::Ctx::pause_reading`] for what goes on meanwhile). Never waits: it sets a flag
    /// and wakes the connection task, which stops reading at its next step.
    pub fn pause_reading(&self) {
        self.info.set_reading_paused_remote(true);
    }

    /// Reads again after a pause ([`crate::Ctx::pause_reading`] or
    /// [`ConnHandle::pause_reading`]); a no-op when reading is not paused. Never waits, and
    /// takes no room in the connection's command queue when that is full.
    pub fn resume_reading(&self) {
        self.info.set_reading_paused_remote(false);
    }

    /// Whether reading is paused.
    #[must_use]
    pub fn is_reading_paused(&self) -> bool {
        self.info.is_reading_paused()
    }

    /// Subscribes to a channel (wildcards allowed).
    ///
    /// # Errors
    /// [`Error::InvalidChannel`] for malformed names.
    pub fn subscribe(&self, channel: &str) -> Result<bool, Error> {
        self.server.subscribe(&self.info, channel)
    }

    /// Removes a subscription.
    pub fn unsubscribe(&self, channel: &str) -> bool {
        self.server.unsubscribe(&self.info, channel)
    }
}
