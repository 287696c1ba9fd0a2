//! The handles users hold: [`ServerHandle`] (address connections by id, broadcast, stop,
//! restart) and [`ConnHandle`] (one connection), over the shared state of a running server.

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::{sync::Notify, task::JoinHandle};
use ws_frame::{CloseCode, Message, Prepared, SendOptions};

use crate::{
    channels::validate_channel,
    config::{ServerConfig, SlowReaderPolicy},
    error::Error,
    event::SseEvent,
    http::files::FileCache,
    registry::{Command, ConnInfo, Filter, KILL_DROP, Registry, lock},
    types::ConnId,
};

/// A lifecycle hook of the handler, type-erased (`Handler::on_startup`, `on_shutdown`); its
/// future never panics (server.rs wraps the handler's call in `CatchUnwind`).
pub(crate) type Hook =
    Box<dyn Fn(ServerHandle) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Shared state of a running server.
pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    pub(crate) registry: Registry,
    pub(crate) listeners: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) local_addrs: Mutex<Vec<SocketAddr>>,
    pub(crate) stopping: AtomicBool,
    /// Signalled when `stop` begins (idle keep-alive connections close).
    pub(crate) stop_signal: Notify,
    pub(crate) stopped: Notify,
    /// The canonical document root.
    pub(crate) root: Option<std::path::PathBuf>,
    /// Small static files kept in memory.
    pub(crate) file_cache: FileCache,
    /// Binds the listeners again (kept for `restart`).
    #[allow(clippy::type_complexity)]
    pub(crate) spawner:
        Mutex<Option<Box<dyn Fn(&ServerHandle) -> Result<(), Error> + Send + Sync>>>,
    /// `Handler::on_startup`.
    pub(crate) on_startup: Hook,
    /// `Handler::on_shutdown`.
    pub(crate) on_shutdown: Hook,
}

impl Inner {
    pub(crate) fn unregister(&self, info: &ConnInfo) {
        self.registry.remove(info);
    }
}

/// Holds one admission slot (`max_connections`) until dropped.
pub(crate) struct AdmitGuard(pub(crate) Arc<Inner>);

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

    /// Connections on every live node of the cluster ([`crate::Backplane::nodes`]); without
    /// a backplane, [`ServerHandle::count`].
    #[must_use]
    pub fn cluster_count(&self) -> usize {
        self.inner.registry.cluster_count()
    }

    /// Local connections subscribed with exactly `pattern` (a channel or a wildcard pattern,
    /// compared as written, like the size of a room): a broadcast to `room/a` also reaches
    /// the subscribers of `room/#`, but they are counted under `room/#` only.
    #[must_use]
    pub fn channel_count(&self, pattern: &str) -> usize {
        self.inner.registry.channel_count(pattern)
    }

    /// [`ServerHandle::channel_count`] summed over every live node of the cluster
    /// ([`crate::NodeCount::channels`]); without a backplane, or before any node is known,
    /// the local count. Other nodes' figures are as of their last report (ws-backplane: one
    /// heartbeat period old at most, and a dead node's subscribers drop out after the node
    /// time-to-live).
    #[must_use]
    pub fn cluster_channel_count(&self, pattern: &str) -> usize {
        self.inner.registry.cluster_channel_count(pattern)
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
        self.inner.registry.relay(&msg, filter);
        let targets = self.inner.registry.select(filter);
        let policy = self.inner.config.slow_reader;
        // Framed once: every subscriber queues the same header and payload bytes.
        let prepared = Arc::new(Prepared::new(msg));
        let mut sent = 0;
        for info in targets {
            let cmd = Command::Prepared(prepared.clone());
            if info.deliver(cmd, policy).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Joins a cluster (see [`crate::Backplane`]): [`ServerHandle::broadcast`] also reaches
    /// the other nodes' subscribers, theirs reach this node's. Returns `false` when a
    /// backplane is attached already.
    pub fn attach_backplane(&self, backplane: Arc<dyn crate::Backplane>) -> bool {
        let policy = self.inner.config.slow_reader;
        self.inner.registry.attach(backplane, policy)
    }

    /// [`ServerHandle::write_to`] for connection `id` of cluster node `node` (this node's id
    /// is [`crate::Backplane::node_id`]). A remote connection gets the message through the
    /// backplane when it is still there (an unknown id there is silently ignored).
    ///
    /// # Errors
    /// As [`ServerHandle::write_to`] for a local connection; [`Error::UnknownConnection`] for
    /// another node without a backplane.
    pub async fn write_to_node(
        &self,
        node: &str,
        id: ConnId,
        msg: impl Into<Message>,
    ) -> Result<(), Error> {
        let msg = msg.into();
        match self.inner.registry.direct(node, id, msg.clone(), false)? {
            Some(()) => Ok(()),
            None => self.write_to(id, msg).await,
        }
    }

    /// Drops connection `id` of cluster node `node` without a close handshake (as
    /// [`ConnHandle::disconnect`]), through the backplane for another node.
    ///
    /// # Errors
    /// [`Error::UnknownConnection`]: not a local connection, or another node without a
    /// backplane.
    pub fn disconnect_on_node(&self, node: &str, id: ConnId) -> Result<(), Error> {
        let empty = Message::Binary(Bytes::new());
        if self.inner.registry.direct(node, id, empty, true)?.is_none() {
            let info = self
                .inner
                .registry
                .get(id)
                .ok_or(Error::UnknownConnection(id.0))?;
            info.kill(KILL_DROP);
        }
        Ok(())
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

    /// Pings every connection and drops those from which nothing arrives (no pong, no data)
    /// within `timeout` (`Ping(Timeout)`), without a Close frame: a silent peer would not
    /// answer one either. Works with or without a heartbeat configured; a connection whose
    /// reading is paused cannot show its pong and counts as silent. Returns how many were
    /// pinged; the check runs in a spawned task, and the dropped connections reach
    /// [`crate::Handler::on_disconnect`] as usual.
    pub fn ping_all_timeout(&self, timeout: Duration) -> usize {
        let pinged: Vec<(Arc<ConnInfo>, u64)> = self
            .inner
            .registry
            .all()
            .into_iter()
            .filter_map(|info| {
                let before = info.bytes_received();
                info.try_deliver(Command::Ping(Bytes::new()))
                    .is_ok()
                    .then_some((info, before))
            })
            .collect();
        let n = pinged.len();
        if n > 0 {
            tokio::spawn(async move {
                tokio::time::sleep(timeout).await;
                for (info, before) in pinged {
                    if info.bytes_received() == before {
                        info.kill(KILL_DROP);
                    }
                }
            });
        }
        n
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
        let was_running = !self.inner.stopping.swap(true, Ordering::AcqRel);
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
        if was_running {
            self.run_hook(&self.inner.on_shutdown).await;
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
        {
            let spawner = lock(&self.inner.spawner);
            if let Some(spawn) = spawner.as_ref() {
                spawn(self)?;
            }
        }
        self.run_hook(&self.inner.on_startup).await;
        Ok(())
    }

    /// Runs a lifecycle hook (the hook catches and logs its own panic: see server.rs).
    pub(crate) async fn run_hook(&self, hook: &Hook) {
        hook(self.clone()).await;
    }

    /// How many listeners stopped accepting while the server runs: their accept loop ended
    /// (persistent accept errors, see [`crate::watchdog`]) or panicked. 0 on a healthy
    /// server and after [`ServerHandle::stop`]; [`crate::Watchdog`] restarts the server when
    /// it is not 0.
    #[must_use]
    pub fn failed_listeners(&self) -> usize {
        if self.inner.stopping.load(Ordering::Acquire) {
            return 0;
        }
        lock(&self.inner.listeners)
            .iter()
            .filter(|t| t.is_finished())
            .count()
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

    /// Queues a message at send-queue level `priority`: while the connection's write backlog
    /// is full, it overtakes what waits at lower levels (the seed's queue levels).
    ///
    /// # Errors
    /// As [`ConnHandle::send`].
    pub async fn send_with_priority(
        &self,
        msg: impl Into<Message>,
        priority: crate::Priority,
    ) -> Result<(), Error> {
        self.info
            .deliver(
                Command::SendAt(Box::new((msg.into(), priority))),
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

    /// Pings this connection and waits up to `timeout` for anything from the peer (its pong,
    /// or any data); when nothing comes, drops the connection without a Close frame
    /// (`Ping(Timeout)` for one connection). A connection whose reading is paused counts as
    /// silent.
    ///
    /// # Errors
    /// As [`ConnHandle::send`] for the ping; [`Error::PongTimeout`] when nothing came and the
    /// connection was dropped.
    pub async fn ping_timeout(&self, payload: Bytes, timeout: Duration) -> Result<(), Error> {
        let before = self.info.bytes_received();
        self.ping(payload).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let step = (timeout / 8).max(Duration::from_millis(1));
        loop {
            if self.info.bytes_received() != before {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.info.kill(KILL_DROP);
                return Err(Error::PongTimeout { timeout });
            }
            tokio::time::sleep_until(deadline.min(now + step)).await;
        }
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
