//! Connection registry: who is connected, with what, and how to reach them.

use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{
        Arc, Mutex, OnceLock, RwLock, Weak,
        atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use ws_frame::{CloseCode, Message, Prepared, SendOptions};

use crate::{
    backplane::{Backplane, Envelope},
    channels::{Change, Channels},
    config::SlowReaderPolicy,
    error::Error,
    types::{ConnId, Transport},
};

/// A command for a connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Look at `kill_code` (sent by [`ConnInfo::kill`] when the queue has room).
    Wake,
    Send(Message),
    /// A broadcast message framed once, shared by every subscriber
    /// ([`Prepared`]).
    Prepared(Arc<Prepared>),
    /// Boxed: rare, and it would make every queue slot larger.
    SendWith(Box<(Message, SendOptions)>),
    Ping(Bytes),
    /// A message at a send-queue level ([`crate::ConnHandle::send_with_priority`]).
    SendAt(Box<(Message, Priority)>),
    Close(Box<(CloseCode, String)>),
    /// A server-sent event (WebSocket connections get its data as text).
    Event(Box<crate::event::SseEvent>),
}

pub use ws_io::Priority;

/// Why the connection task was told to stop at once.
pub(crate) const KILL_NONE: u16 = 0;
/// Drop the socket without a close handshake.
pub(crate) const KILL_DROP: u16 = 1;

/// What the server knows about one connection. Shared (`Arc`) between the registry, the
/// connection task and handles.
pub struct ConnInfo {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
    pub(crate) transport: Transport,
    pub(crate) url: String,
    pub(crate) headers: ws_http::Headers,
    pub(crate) response_headers: ws_http::Headers,
    pub(crate) protocol: Option<String>,
    pub(crate) extensions: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) connected_at: SystemTime,
    pub(crate) rx_bytes: AtomicU64,
    pub(crate) tx_bytes: AtomicU64,
    pub(crate) subscriptions: Mutex<Vec<String>>,
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) kill: Notify,
    /// [`KILL_NONE`], [`KILL_DROP`] or a close code to send before dropping.
    pub(crate) kill_code: AtomicU16,
    /// Read flow control: the task does not read the socket (nor deliver what it already
    /// read) while this is set. See [`crate::ConnHandle::pause_reading`].
    pub(crate) read_paused: AtomicBool,
}

impl ConnInfo {
    /// The connection id.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address.
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Our address of this connection.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the connection came over TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// WebSocket or plain TCP.
    #[must_use]
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Request target of the upgrade request (path and query), e.g. `/chat?room=1`.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The path part of [`ConnInfo::url`].
    #[must_use]
    pub fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or("")
    }

    /// Request headers of the upgrade (empty when
    /// [`crate::ServerConfig::keep_request_headers`] is off).
    #[must_use]
    pub fn headers(&self) -> &ws_http::Headers {
        &self.headers
    }

    /// Header fields of the 101 response the server sent (the seed's `HeadersResponse`):
    /// Upgrade, Connection, Sec-WebSocket-Accept, the chosen subprotocol and extensions,
    /// `Server` and the handler's own. Empty for SSE and plain TCP connections, and when
    /// [`crate::ServerConfig::keep_request_headers`] is off.
    #[must_use]
    pub fn response_headers(&self) -> &ws_http::Headers {
        &self.response_headers
    }

    /// First request header named `name` (ASCII case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Negotiated subprotocol.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Negotiated extensions (the `Sec-WebSocket-Extensions` response value).
    #[must_use]
    pub fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// User authenticated in the handshake.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// When the connection was established.
    #[must_use]
    pub fn connected_at(&self) -> SystemTime {
        self.connected_at
    }

    /// Bytes received on the socket (after TLS).
    #[must_use]
    pub fn bytes_received(&self) -> u64 {
        self.rx_bytes.load(Ordering::Relaxed)
    }

    /// Bytes written to the socket (before TLS).
    #[must_use]
    pub fn bytes_sent(&self) -> u64 {
        self.tx_bytes.load(Ordering::Relaxed)
    }

    /// Channel subscriptions of this connection.
    #[must_use]
    pub fn subscriptions(&self) -> Vec<String> {
        lock(&self.subscriptions).clone()
    }

    /// Whether reading is paused ([`crate::Ctx::pause_reading`],
    /// [`crate::ConnHandle::pause_reading`]).
    #[must_use]
    pub fn is_reading_paused(&self) -> bool {
        self.read_paused.load(Ordering::Acquire)
    }

    /// Sets the read flow control flag; returns whether it changed.
    pub(crate) fn set_reading_paused(&self, paused: bool) -> bool {
        self.read_paused.swap(paused, Ordering::AcqRel) != paused
    }

    /// [`ConnInfo::set_reading_paused`] from outside the connection task, which is then woken
    /// so that it looks at the flag. The wake-up never waits: when the command queue is full,
    /// the task has commands to take and checks the flag after taking them (and while it
    /// cannot take commands, it does not read either).
    pub(crate) fn set_reading_paused_remote(&self, paused: bool) {
        if self.set_reading_paused(paused) {
            let _ = self.tx.try_send(Command::Wake);
        }
    }

    /// Asks the connection task to stop: with a Close frame carrying `code`, or at once
    /// (`KILL_DROP`). The task learns it through its command queue when that has room (it
    /// checks `kill_code` after every wake-up), or through `kill` when its queue is full or
    /// paused: so the hot loop never polls the `Notify`.
    pub(crate) fn kill(&self, code: u16) {
        let _ =
            self.kill_code
                .compare_exchange(KILL_NONE, code, Ordering::AcqRel, Ordering::Acquire);
        let _ = self.tx.try_send(Command::Wake);
        self.kill.notify_one();
    }

    /// The pending kill request, if any.
    pub(crate) fn kill_requested(&self) -> Option<u16> {
        match self.kill_code.load(Ordering::Acquire) {
            KILL_NONE => None,
            code => Some(code),
        }
    }

    /// Hands a command to the connection task according to `policy`. Under backpressure
    /// the sender waits only when the queue is full: a queue with room takes the command
    /// without going through tokio's cooperative budget, so a broadcast is not cut into
    /// slices of a hundred-odd subscribers (with the subscribers' tasks, hence one socket
    /// write per message for each of them, in between).
    pub(crate) async fn deliver(
        &self,
        cmd: Command,
        policy: SlowReaderPolicy,
    ) -> Result<(), Error> {
        match policy {
            SlowReaderPolicy::Backpressure => match self.tx.try_send(cmd) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Full(cmd)) => {
                    self.tx.send(cmd).await.map_err(|_| Error::Closed)
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::Closed),
            },
            SlowReaderPolicy::Disconnect => self.try_deliver(cmd),
        }
    }

    /// Hands a command to the connection task without waiting; a full queue closes the
    /// connection with 1013.
    pub(crate) fn try_deliver(&self, cmd: Command) -> Result<(), Error> {
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.kill(CloseCode::TRY_AGAIN.as_u16());
                Err(Error::QueueFull)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Error::Closed),
        }
    }
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnInfo")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .field("local", &self.local)
            .field("tls", &self.tls)
            .field("transport", &self.transport)
            .field("url", &self.url)
            .field("protocol", &self.protocol)
            .field("extensions", &self.extensions)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

type Conns = RwLock<HashMap<ConnId, Arc<ConnInfo>>>;

/// All connections of a server and their channel subscriptions.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Shared (`Arc`) with the task that delivers other nodes' broadcasts.
    conns: Arc<Conns>,
    channels: Arc<RwLock<Channels>>,
    /// The link to the other nodes, once attached: broadcasts are relayed through it and a
    /// channel pattern's first (last) local subscriber subscribes (unsubscribes) this node.
    backplane: OnceLock<Arc<dyn Backplane>>,
    next_id: AtomicU64,
    /// Connections counted against `max_connections` (handshaking ones included).
    pub(crate) admitted: AtomicUsize,
    /// Signalled whenever a connection leaves.
    pub(crate) left: Notify,
    /// Bytes held in partly received WebSocket messages, all connections together
    /// (`ServerConfig::max_partial_bytes`).
    pub(crate) partial_bytes: AtomicUsize,
    /// Refusals for that budget, logged once per interval.
    pub(crate) partial_refusals: EveryInterval,
}

/// Counts events and says when to report them: at the first, then at most once per interval
/// (a rate-limited warning).
#[derive(Debug, Default)]
pub(crate) struct EveryInterval {
    /// When the last report was due, and events since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl EveryInterval {
    /// Counts one event at `now`; returns the events to report (this one included) when a
    /// report is due.
    pub(crate) fn hit(&self, now: Instant, interval: Duration) -> Option<u64> {
        let mut state = lock(&self.state);
        state.1 += 1;
        match state.0 {
            Some(last) if now.duration_since(last) < interval => None,
            _ => {
                state.0 = Some(now);
                Some(std::mem::take(&mut state.1))
            }
        }
    }
}

impl Registry {
    pub(crate) fn next_id(&self) -> ConnId {
        ConnId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    pub(crate) fn insert(&self, info: Arc<ConnInfo>) {
        let mut conns = write(&self.conns);
        conns.insert(info.id, info);
        if let Some(backplane) = self.backplane.get() {
            backplane.set_local_count(conns.len());
        }
    }

    pub(crate) fn remove(&self, info: &ConnInfo) {
        {
            let mut conns = write(&self.conns);
            conns.remove(&info.id);
            if let Some(backplane) = self.backplane.get() {
                backplane.set_local_count(conns.len());
            }
        }
        let subs = std::mem::take(&mut *lock(&info.subscriptions));
        if !subs.is_empty() {
            let mut channels = write(&self.channels);
            for s in subs {
                let change = channels.unsubscribe(info.id, &s);
                self.on_change(&channels, change, &s, false);
            }
        }
        self.left.notify_waiters();
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<Arc<ConnInfo>> {
        read(&self.conns).get(&id).cloned()
    }

    pub(crate) fn count(&self) -> usize {
        read(&self.conns).len()
    }

    /// Connections on every live node ([`Backplane::nodes`]); the local count without a
    /// backplane or before any node is known.
    pub(crate) fn cluster_count(&self) -> usize {
        let nodes = self.backplane.get().map(|b| b.nodes()).unwrap_or_default();
        if nodes.is_empty() {
            return self.count();
        }
        nodes.iter().map(|n| n.connections).sum()
    }

    pub(crate) fn all(&self) -> Vec<Arc<ConnInfo>> {
        read(&self.conns).values().cloned().collect()
    }

    pub(crate) fn subscribe(&self, info: &ConnInfo, pattern: &str) -> bool {
        let mut subs = lock(&info.subscriptions);
        let mut channels = write(&self.channels);
        let change = channels.subscribe(info.id, pattern);
        self.on_change(&channels, change, pattern, true);
        drop(channels);
        if change.changed() {
            subs.push(pattern.to_owned());
        }
        change.changed()
    }

    pub(crate) fn unsubscribe(&self, info: &ConnInfo, pattern: &str) -> bool {
        let mut subs = lock(&info.subscriptions);
        let mut channels = write(&self.channels);
        let change = channels.unsubscribe(info.id, pattern);
        self.on_change(&channels, change, pattern, false);
        drop(channels);
        subs.retain(|s| s != pattern);
        change.changed()
    }

    /// Tells the backplane (if any) that `pattern` got its first or lost its last local
    /// subscriber, and its new subscriber count. Called with the channel index locked, so the
    /// backplane sees the changes in the order the index made them.
    fn on_change(&self, channels: &Channels, change: Change, pattern: &str, subscribed: bool) {
        if !change.changed() {
            return;
        }
        let Some(backplane) = self.backplane.get() else {
            return;
        };
        if change == Change::Edge {
            if subscribed {
                backplane.subscribe(pattern);
            } else {
                backplane.unsubscribe(pattern);
            }
        }
        backplane.channel_count_changed(pattern, channels.count(pattern));
    }

    /// Local connections subscribed with exactly `pattern`.
    pub(crate) fn channel_count(&self, pattern: &str) -> usize {
        read(&self.channels).count(pattern)
    }

    /// Connections subscribed with exactly `pattern` on every live node
    /// ([`Backplane::cluster_channel_count`]); the local count without a backplane or before
    /// any node is known.
    pub(crate) fn cluster_channel_count(&self, pattern: &str) -> usize {
        self.backplane
            .get()
            .and_then(|b| b.cluster_channel_count(pattern))
            .unwrap_or_else(|| self.channel_count(pattern))
    }

    /// Hands a broadcast to the other nodes when a backplane is attached (without one this is
    /// one atomic load, and nothing is allocated). A filter with an `include` list is not
    /// relayed: connection ids are local to a node; likewise `exclude` only applies here.
    pub(crate) fn relay(&self, msg: &Message, filter: &Filter) {
        let Some(backplane) = self.backplane.get() else {
            return;
        };
        if filter.include.is_some() {
            return;
        }
        backplane.publish(
            Envelope::new(backplane.node_id(), filter.channel.clone(), msg.clone())
                .with_protocol(filter.protocol.clone())
                .with_path(filter.path.clone()),
        );
    }

    /// Sends `msg` to (or with `disconnect`, drops) connection `id` of node `node` through the
    /// backplane; `None` when `node` is this node (the caller acts locally).
    ///
    /// # Errors
    /// [`Error::UnknownConnection`] without a backplane (no other node can be reached).
    pub(crate) fn direct(
        &self,
        node: &str,
        id: ConnId,
        msg: Message,
        disconnect: bool,
    ) -> Result<Option<()>, Error> {
        let backplane = self.backplane.get().ok_or(Error::UnknownConnection(id.0))?;
        if node == backplane.node_id() {
            return Ok(None);
        }
        backplane.publish_to(
            node,
            Envelope::direct(backplane.node_id(), id, msg, disconnect),
        );
        Ok(Some(()))
    }

    /// Links this registry to other nodes through `backplane`: subscribes the patterns that
    /// have local subscribers now, and spawns the task that hands other nodes' broadcasts to
    /// local subscribers (following `policy`, as a local broadcast does). The task ends when
    /// the registry is dropped or the backplane's stream ends. Returns `false` (and does
    /// nothing) when a backplane is attached already or its stream was taken.
    ///
    /// # Panics
    /// Outside a tokio runtime (it spawns a task).
    pub(crate) fn attach(&self, backplane: Arc<dyn Backplane>, policy: SlowReaderPolicy) -> bool {
        // The channel lock orders this against concurrent (un)subscriptions: each pattern is
        // subscribed once, here or by `on_change`.
        let channels = write(&self.channels);
        if self.backplane.get().is_some() {
            return false;
        }
        let Some(incoming) = backplane.take_incoming() else {
            return false;
        };
        for (pattern, count) in channels.counts() {
            backplane.subscribe(&pattern);
            backplane.channel_count_changed(&pattern, count);
        }
        let node = backplane.node_id().to_owned();
        backplane.set_local_count(self.count());
        let _ = self.backplane.set(backplane);
        drop(channels);
        tokio::spawn(deliver_remote(
            Arc::downgrade(&self.conns),
            Arc::downgrade(&self.channels),
            node,
            incoming,
            policy,
        ));
        true
    }

    pub(crate) fn channels(&self) -> Vec<String> {
        read(&self.channels).patterns()
    }

    /// Connections a broadcast with `filter` reaches.
    pub(crate) fn select(&self, filter: &Filter) -> Vec<Arc<ConnInfo>> {
        select(&self.conns, &self.channels, filter)
    }
}

/// The task [`Registry::attach`] spawns: other nodes' broadcasts to local subscribers, one
/// [`Message`] per envelope shared by all of them.
async fn deliver_remote(
    conns: Weak<Conns>,
    channels: Weak<RwLock<Channels>>,
    node: String,
    mut incoming: mpsc::Receiver<Envelope>,
    policy: SlowReaderPolicy,
) {
    while let Some(envelope) = incoming.recv().await {
        if envelope.origin == node {
            continue;
        }
        let (Some(conns), Some(channels)) = (conns.upgrade(), channels.upgrade()) else {
            return;
        };
        if let Some(id) = envelope.to {
            let info = read(&conns).get(&id).cloned();
            drop((conns, channels));
            match info {
                Some(info) if envelope.disconnect => info.kill(KILL_DROP),
                Some(info) => {
                    let _ = info.deliver(Command::Send(envelope.message), policy).await;
                }
                None => {}
            }
            continue;
        }
        let filter = Filter {
            channel: envelope.channel,
            protocol: envelope.protocol,
            path: envelope.path,
            include: None,
            exclude: Vec::new(),
        };
        let targets = select(&conns, &channels, &filter);
        drop((conns, channels));
        let prepared = Arc::new(Prepared::new(envelope.message));
        for info in targets {
            let _ = info
                .deliver(Command::Prepared(prepared.clone()), policy)
                .await;
        }
    }
}

/// Connections a broadcast with `filter` reaches.
fn select(conns: &Conns, channels: &RwLock<Channels>, filter: &Filter) -> Vec<Arc<ConnInfo>> {
    let by_channel = filter
        .channel
        .as_deref()
        .map(|c| read(channels).subscribers(c));
    let conns = read(conns);
    let keep = |info: &ConnInfo| {
        filter
            .protocol
            .as_deref()
            .is_none_or(|p| info.protocol.as_deref() == Some(p))
            && filter.path.as_deref().is_none_or(|p| info.path() == p)
            && !filter.exclude.contains(&info.id)
    };
    match (&filter.include, by_channel) {
        (Some(include), channel) => include
            .iter()
            .filter(|id| channel.as_ref().is_none_or(|c| c.contains(id)))
            .filter_map(|id| conns.get(id))
            .filter(|i| keep(i))
            .cloned()
            .collect(),
        (None, Some(ids)) => ids
            .iter()
            .filter_map(|id| conns.get(id))
            .filter(|i| keep(i))
            .cloned()
            .collect(),
        (None, None) => conns.values().filter(|i| keep(i)).cloned().collect(),
    }
}

/// Which connections a broadcast reaches: all of them, narrowed by every field that is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Filter {
    /// Only subscribers of this channel (wildcard subscriptions match). Default: `None`.
    pub channel: Option<String>,
    /// Only connections with this negotiated subprotocol. Default: `None`.
    pub protocol: Option<String>,
    /// Only connections whose request path ([`ConnInfo::path`]) is this one: with SSE the
    /// path acts as the channel (`Broadcast("text", "/sse.html")`). Default: `None`.
    pub path: Option<String>,
    /// Only these connections. Default: `None` (no restriction).
    pub include: Option<Vec<ConnId>>,
    /// Never these connections (e.g. the sender). Default: empty.
    pub exclude: Vec<ConnId>,
}

impl Filter {
    /// Every connection.
    #[must_use]
    pub fn all() -> Self {
        Self::default()
    }

    /// Subscribers of `channel`.
    #[must_use]
    pub fn channel(channel: impl Into<String>) -> Self {
        Self {
            channel: Some(channel.into()),
            ..Self::default()
        }
    }

    /// Connections (WebSocket or SSE) opened on `path`.
    #[must_use]
    pub fn path(path: impl Into<String>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::default()
        }
    }

    /// Also require the subprotocol `protocol`.
    #[must_use]
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Restrict to these ids.
    #[must_use]
    pub fn including(mut self, ids: impl IntoIterator<Item = ConnId>) -> Self {
        self.include = Some(ids.into_iter().collect());
        self
    }

    /// Leave out these ids.
    #[must_use]
    pub fn excluding(mut self, ids: impl IntoIterator<Item = ConnId>) -> Self {
        self.exclude.extend(ids);
        self
    }
}

#[cfg(test)]
pub(crate) fn test_info(
    id: u64,
    protocol: Option<&str>,
) -> (Arc<ConnInfo>, mpsc::Receiver<Command>) {
    let (tx, rx) = mpsc::channel(2);
    let addr = SocketAddr::from(([127, 0, 0, 1], 1));
    (
        Arc::new(ConnInfo {
            id: ConnId(id),
            peer: addr,
            local: addr,
            tls: false,
            transport: Transport::WebSocket,
            url: "/".into(),
            headers: ws_http::Headers::new(),
            response_headers: ws_http::Headers::new(),
            protocol: protocol.map(str::to_owned),
            extensions: None,
            user: None,
            connected_at: SystemTime::now(),
            rx_bytes: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            subscriptions: Mutex::new(Vec::new()),
            tx,
            kill: Notify::new(),
            kill_code: AtomicU16::new(KILL_NONE),
            read_paused: AtomicBool::new(false),
        }),
        rx,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: Vec<Arc<ConnInfo>>) -> Vec<u64> {
        let mut ids: Vec<u64> = v.iter().map(|i| i.id.0).collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn broadcast_filters_combine() {
        let reg = Registry::default();
        let mut rxs = Vec::new();
        for (id, proto) in [
            (1, Some("chat")),
            (2, Some("chat")),
            (3, None),
            (4, Some("mqtt")),
        ] {
            let (info, rx) = test_info(id, proto);
            reg.insert(info);
            rxs.push(rx);
        }
        let get = |id| reg.get(ConnId(id)).unwrap();
        reg.subscribe(&get(1), "room/#");
        reg.subscribe(&get(3), "room/a");
        reg.subscribe(&get(4), "room/+");
        assert_eq!(ids(reg.select(&Filter::all())), vec![1, 2, 3, 4]);
        assert_eq!(ids(reg.select(&Filter::channel("room/a"))), vec![1, 3, 4]);
        assert_eq!(ids(reg.select(&Filter::channel("room/a/b"))), vec![1]);
        assert_eq!(
            ids(reg.select(&Filter::channel("room/a").with_protocol("chat"))),
            vec![1]
        );
        assert_eq!(
            ids(reg.select(&Filter::all().excluding([ConnId(2), ConnId(3)]))),
            vec![1, 4]
        );
        assert_eq!(
            ids(reg.select(&Filter::channel("room/a").including([
                ConnId(2),
                ConnId(3),
                ConnId(9)
            ]))),
            vec![3]
        );
        reg.remove(&get(1));
        assert_eq!(
            ids(reg.select(&Filter::channel("room/a/b"))),
            Vec::<u64>::new()
        );
        assert_eq!(reg.count(), 3);
        assert_eq!(get(4).subscriptions(), vec!["room/+".to_owned()]);
        assert!(reg.unsubscribe(&get(4), "room/+"));
        assert!(get(4).subscriptions().is_empty());
    }

    /// A backplane test double: records what the registry asks of it.
    #[derive(Debug)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
        incoming: Mutex<Option<mpsc::Receiver<Envelope>>>,
        nodes: Mutex<Vec<crate::NodeCount>>,
    }

    impl Backplane for Recorder {
        fn node_id(&self) -> &str {
            "n1"
        }
        fn publish(&self, envelope: Envelope) {
            lock(&self.calls).push(format!(
                "publish {:?} {:?} {:?}",
                envelope.origin, envelope.channel, envelope.message
            ));
        }
        fn subscribe(&self, pattern: &str) {
            lock(&self.calls).push(format!("sub {pattern}"));
        }
        fn unsubscribe(&self, pattern: &str) {
            lock(&self.calls).push(format!("unsub {pattern}"));
        }
        fn take_incoming(&self) -> Option<mpsc::Receiver<Envelope>> {
            lock(&self.incoming).take()
        }
        fn stats(&self) -> crate::BackplaneStats {
            crate::BackplaneStats::default()
        }
        fn channel_count_changed(&self, pattern: &str, count: usize) {
            lock(&self.calls).push(format!("count {pattern} {count}"));
        }
        fn nodes(&self) -> Vec<crate::NodeCount> {
            lock(&self.nodes).clone()
        }
    }

    #[tokio::test]
    async fn backplane_sees_first_and_last_subscribers_and_relays_broadcasts() {
        let reg = Registry::default();
        let (a, mut rx_a) = test_info(1, None);
        let (b, mut rx_b) = test_info(2, None);
        reg.insert(a.clone());
        reg.insert(b.clone());
        // No backplane: relaying is a no-op.
        reg.relay(&Message::text("before"), &Filter::channel("x"));
        reg.subscribe(&a, "room/#");
        let (tx, incoming) = mpsc::channel(8);
        let recorder = Arc::new(Recorder {
            calls: Mutex::new(Vec::new()),
            incoming: Mutex::new(Some(incoming)),
            nodes: Mutex::new(Vec::new()),
        });
        assert!(reg.attach(recorder.clone(), SlowReaderPolicy::Disconnect));
        assert!(!reg.attach(recorder.clone(), SlowReaderPolicy::Disconnect));
        reg.subscribe(&b, "room/#");
        reg.subscribe(&b, "room/a");
        reg.unsubscribe(&a, "room/#");
        reg.relay(&Message::text("hi"), &Filter::channel("room/a"));
        reg.relay(
            &Message::text("local ids"),
            &Filter::all().including([ConnId(1)]),
        );
        // Exact-pattern counts: `room/a`'s subscriber is not counted under `room/#`.
        assert_eq!(
            (reg.channel_count("room/#"), reg.channel_count("room/a")),
            (1, 1)
        );
        assert_eq!(reg.channel_count("room/b"), 0);
        // No node known yet: the cluster-wide count is the local one.
        assert_eq!(reg.cluster_channel_count("room/a"), 1);
        let mut other = std::collections::BTreeMap::new();
        other.insert("room/a".to_owned(), 4);
        *lock(&recorder.nodes) = vec![
            crate::NodeCount::new("n1", 2),
            crate::NodeCount::new("n2", 9).with_channels(other),
        ];
        // The recorder's own entry reports no channels: the cluster figure is what the nodes
        // report, not the local index.
        assert_eq!(reg.cluster_channel_count("room/a"), 4);
        assert_eq!(reg.cluster_channel_count("room/#"), 0);
        lock(&recorder.nodes).clear();
        reg.remove(&b);
        assert_eq!(reg.channel_count("room/#"), 0);
        assert_eq!(
            *lock(&recorder.calls),
            [
                "sub room/#",
                "count room/# 1",
                "count room/# 2",
                "sub room/a",
                "count room/a 1",
                "count room/# 1",
                "publish \"n1\" Some(\"room/a\") Text(\"hi\")",
                "unsub room/#",
                "count room/# 0",
                "unsub room/a",
                "count room/a 0",
            ]
        );

        // Other nodes' broadcasts reach local subscribers; this node's own are ignored.
        let (c, mut rx_c) = test_info(3, None);
        reg.insert(c.clone());
        reg.subscribe(&c, "room/+");
        let remote = |origin: &str, text: &str| {
            Envelope::new(
                origin,
                Some("room/b".into()),
                Message::text(text.to_owned()),
            )
        };
        tx.send(remote("n1", "own")).await.unwrap();
        tx.send(remote("n2", "from n2")).await.unwrap();
        match rx_c.recv().await {
            Some(Command::Prepared(p)) => assert_eq!(p.message(), &Message::text("from n2")),
            other => panic!("expected the remote message, got {other:?}"),
        }
        assert!(rx_a.try_recv().is_err());
        assert!(rx_b.try_recv().is_err());
        assert!(rx_c.try_recv().is_err());
    }

    #[test]
    fn every_interval_reports_the_first_event_then_once_per_interval() {
        let limiter = EveryInterval::default();
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        assert_eq!(limiter.hit(t0, 10 * second), Some(1));
        assert_eq!(limiter.hit(t0 + second, 10 * second), None);
        assert_eq!(limiter.hit(t0 + 9 * second, 10 * second), None);
        assert_eq!(limiter.hit(t0 + 10 * second, 10 * second), Some(3));
        assert_eq!(limiter.hit(t0 + 11 * second, 10 * second), None);
    }

    #[test]
    fn full_queue_under_disconnect_policy_kills_with_1013() {
        let (info, _rx) = test_info(1, None);
        for _ in 0..2 {
            info.try_deliver(Command::Ping(Bytes::new())).unwrap();
        }
        let err = info.try_deliver(Command::Ping(Bytes::new())).unwrap_err();
        assert!(matches!(err, Error::QueueFull));
        assert_eq!(info.kill_code.load(Ordering::Acquire), 1013);
    }
}
