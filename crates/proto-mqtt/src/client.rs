//! The async client: a [`Session`] driven by one tokio task per client, over any
//! [`Transport`], with reconnects, an optional store and per-call futures.
//!
//! ```text
//!  Client (clone, any task) --bounded commands--> driver task --> Session --> Transport
//!  Events <--bounded events-- driver task <-- Session <-- Transport
//!  per-call futures (publish_and_wait, subscribe, request) <-- oneshots keyed by packet id
//! ```

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    time::Duration,
};

use std::future::Future;

use bytes::{Bytes, BytesMut};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use crate::{
    config::{Config, OfflinePolicy},
    error::Error,
    packet::{
        Ack, AuthProperties, DisconnectProperties, Publish, SubAck, SubscribeFilter,
        SubscribeProperties, UnsubscribeProperties,
    },
    reason::{QoS, ReasonCode, Version},
    session::{Event, Session, SessionState},
    store::{SqliteStore, Store as _},
    transport::{BrokerUrl, Transport},
};

/// The answer to `publish`: the packet id once the message is accepted.
type AcceptReply = oneshot::Sender<Result<Option<u16>, Error>>;

enum Command {
    Publish {
        publish: Box<Publish>,
        accepted: Option<AcceptReply>,
        done: Option<oneshot::Sender<Result<Ack, Error>>>,
    },
    Subscribe {
        filters: Vec<SubscribeFilter>,
        properties: Option<SubscribeProperties>,
        reply: oneshot::Sender<Result<SubAck, Error>>,
    },
    Unsubscribe {
        filters: Vec<String>,
        properties: Option<UnsubscribeProperties>,
        reply: oneshot::Sender<Result<SubAck, Error>>,
    },
    Request {
        publish: Box<Publish>,
        correlation: Bytes,
        reply: oneshot::Sender<Result<Publish, Error>>,
    },
    Auth {
        reason: ReasonCode,
        properties: AuthProperties,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Ping(oneshot::Sender<Result<(), Error>>),
    Disconnect {
        reason: ReasonCode,
        properties: Option<DisconnectProperties>,
        reply: oneshot::Sender<()>,
    },
}

#[derive(Debug, Default)]
struct Shared {
    connected: AtomicBool,
    inflight_peak: AtomicUsize,
    pending: AtomicUsize,
    connections: AtomicU32,
    client_id: std::sync::Mutex<String>,
}

/// A handle on an MQTT connection: cheap to clone, usable from any task. The connection
/// lives in its own task until [`Client::disconnect`], a fatal error, or the last handle
/// and the [`Events`] are dropped.
#[derive(Clone, Debug)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    version: Version,
    policy: OfflinePolicy,
}

/// The stream of [`Event`]s of a client. Read it steadily: when its buffer
/// ([`Config::event_queue`]) is full the client stops reading from the server, which also
/// holds back acknowledgements awaited by [`Client::publish_and_wait`]. Drop it when you do
/// not want events: they are then discarded.
#[derive(Debug)]
pub struct Events {
    rx: mpsc::Receiver<Event>,
}

impl Events {
    /// The next event; `None` once the client has ended.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::fill(&mut b).is_err() {
        // Without an OS source, fall back to the clock (ids only need to differ).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
    b
}

fn random_unit() -> f64 {
    let b = random_bytes::<8>();
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// CONNACK codes after which trying again cannot help (3.1.1 codes arrive mapped to these).
const fn is_fatal(code: ReasonCode) -> bool {
    matches!(code.0, 0x84..=0x87 | 0x8A | 0x8C)
}

impl Client {
    /// Connects to `url` (`mqtt://`, `mqtts://`, `ws://`, `wss://`) and waits for the first
    /// CONNACK. With [`Config::store`], the stored session is loaded first (and its client id
    /// reused when the configuration names none).
    ///
    /// # Errors
    /// [`Error::InvalidUrl`], [`Error::Config`], store errors, and the first connection
    /// attempt's failure: transport errors, [`Error::Refused`] with the CONNACK code,
    /// [`Error::Timeout`].
    pub async fn connect(url: &str, config: Config) -> Result<(Self, Events), Error> {
        let url = BrokerUrl::parse(url)?;
        let mut config = config;
        if config.credentials.is_none() {
            config.credentials.clone_from(&url.credentials);
        }
        config.validate()?;
        let stored_id = match &config.store {
            Some(p) => SqliteStore::stored_client_id(p)?,
            None => None,
        };
        let client_id = config
            .client_id
            .clone()
            .or(stored_id)
            .unwrap_or_else(|| Session::random_client_id(random_bytes()));
        let mut session = Session::new(config.clone(), client_id.clone())?;
        let store = match &config.store {
            Some(p) => {
                let mut s = SqliteStore::open(p, &client_id, config.version)?;
                session.restore(s.load()?)?;
                Some(s)
            }
            None => None,
        };
        session.set_store_ops(store.is_some());
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (etx, erx) = mpsc::channel(config.event_queue);
        let shared = Arc::new(Shared {
            connected: AtomicBool::new(false),
            inflight_peak: AtomicUsize::new(0),
            pending: AtomicUsize::new(0),
            connections: AtomicU32::new(0),
            client_id: std::sync::Mutex::new(client_id),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let driver = Driver {
            url,
            session,
            store,
            cmds: rx,
            cmds_open: true,
            events: etx,
            events_open: true,
            pending_events: VecDeque::new(),
            shared: Arc::clone(&shared),
            acks: HashMap::new(),
            subs: HashMap::new(),
            requests: HashMap::new(),
            parked: None,
            accepted: Vec::new(),
            ready: Some(ready_tx),
            stop: false,
            disconnect_reply: None,
        };
        tokio::spawn(driver.run());
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(Error::Closed),
        }
        Ok((
            Self {
                tx,
                shared,
                version: config.version,
                policy: config.offline_policy,
            },
            Events { rx: erx },
        ))
    }

    async fn command(&self, c: Command) -> Result<(), Error> {
        match self.policy {
            OfflinePolicy::Wait => self.tx.send(c).await.map_err(|_| Error::Closed),
            OfflinePolicy::FailFast => self.tx.try_send(c).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::QueueFull(COMMAND_QUEUE),
                mpsc::error::TrySendError::Closed(_) => Error::Closed,
            }),
        }
    }

    /// Whether a connection is up (CONNACK accepted).
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// The most outgoing QoS 1/2 messages that were in flight at once (never above the
    /// server's Receive Maximum).
    #[must_use]
    pub fn inflight_peak(&self) -> usize {
        self.shared.inflight_peak.load(Ordering::Relaxed)
    }

    /// Outgoing messages not yet complete: queued, in flight, or awaiting PUBCOMP (including
    /// those restored from the store).
    #[must_use]
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Connections accepted by the server so far (1 + reconnects).
    #[must_use]
    pub fn connections(&self) -> u32 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// The client identifier in use (the server-assigned one, when it assigned one).
    #[must_use]
    pub fn client_id(&self) -> String {
        self.shared
            .client_id
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Publishes `payload` (text or bytes) to `topic`. Resolves once the message is accepted:
    /// queued, and for QoS 1/2 written to the store when there is one. Returns the packet id
    /// of a QoS 1/2 message. Offline, messages wait in the queue (see [`OfflinePolicy`]).
    ///
    /// # Errors
    /// As [`Session::publish`]; [`Error::Closed`] after disconnect.
    pub async fn publish(
        &self,
        topic: impl Into<String>,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<Option<u16>, Error> {
        let mut p = crate::packet::publish(topic, qos, payload);
        p.retain = retain;
        self.publish_message(p).await
    }

    /// Publishes a prepared PUBLISH (v5 properties included). See [`Client::publish`].
    ///
    /// # Errors
    /// As [`Client::publish`].
    pub async fn publish_message(&self, publish: Publish) -> Result<Option<u16>, Error> {
        let (accepted, rx) = oneshot::channel();
        self.command(Command::Publish {
            publish: Box::new(publish),
            accepted: Some(accepted),
            done: None,
        })
        .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Queues a message without waiting for the session to take it: the fast path for
    /// streams of messages (it returns as soon as the command queue has room, as rumqttc's
    /// `publish` does). The topic is checked here; a failure found later (a full outgoing
    /// queue with [`OfflinePolicy::FailFast`], a limit of the server) is logged, not returned.
    /// With a store, the message is on disk a moment later, not when this returns: use
    /// [`Client::publish`] when the caller must know.
    ///
    /// # Errors
    /// [`Error::InvalidTopic`]; [`Error::Closed`]; [`Error::QueueFull`] with
    /// [`OfflinePolicy::FailFast`] when the command queue is full.
    pub async fn publish_nowait(&self, publish: Publish) -> Result<(), Error> {
        crate::topic::validate_topic(&publish.topic)?;
        self.command(Command::Publish {
            publish: Box::new(publish),
            accepted: None,
            done: None,
        })
        .await
    }

    /// Publishes and waits up to `timeout` for PUBACK (QoS 1) or PUBCOMP (QoS 2; a failed
    /// PUBREC ends it too), returning the acknowledgement with its reason code (the seeds'
    /// `PublishAndWait`). QoS 0 resolves at once with Success and packet id 0.
    ///
    /// # Errors
    /// [`Error::Timeout`]; the errors of [`Client::publish`]; [`Error::NotSupported`] when
    /// the message was dropped under the server's limits.
    pub async fn publish_and_wait(
        &self,
        publish: Publish,
        timeout: Duration,
    ) -> Result<Ack, Error> {
        let (accepted, arx) = oneshot::channel();
        let (done, drx) = oneshot::channel();
        let fut = async {
            self.command(Command::Publish {
                publish: Box::new(publish),
                accepted: Some(accepted),
                done: Some(done),
            })
            .await?;
            arx.await.map_err(|_| Error::Closed)??;
            drx.await.map_err(|_| Error::Closed)?
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Clears the retained message of `topic` (an empty retained QoS 0 message).
    ///
    /// # Errors
    /// As [`Client::publish`].
    pub async fn clear_retained(&self, topic: impl Into<String>) -> Result<(), Error> {
        self.publish(topic, Bytes::new(), QoS::AtMostOnce, true)
            .await
            .map(|_| ())
    }

    /// Subscribes to one filter and waits for SUBACK; the code of the filter is in
    /// `codes[0]` (a failure code such as 0x80 or 0x87 is returned, not an error).
    ///
    /// # Errors
    /// As [`Client::subscribe_many`].
    pub async fn subscribe(&self, filter: impl Into<String>, qos: QoS) -> Result<SubAck, Error> {
        self.subscribe_many(
            vec![SubscribeFilter::new(filter.into(), qos.to_mqttbytes())],
            None,
        )
        .await
    }

    /// Subscribes to several filters in one SUBSCRIBE, with v5 options (no local, retain as
    /// published, retain handling on each [`SubscribeFilter`]) and properties (subscription
    /// identifier, user properties), and waits for SUBACK. Offline, it is sent on connection.
    ///
    /// # Errors
    /// As [`Session::subscribe`]; [`Error::Closed`].
    pub async fn subscribe_many(
        &self,
        filters: Vec<SubscribeFilter>,
        properties: Option<SubscribeProperties>,
    ) -> Result<SubAck, Error> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Subscribe {
            filters,
            properties,
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Unsubscribes and waits for UNSUBACK.
    ///
    /// # Errors
    /// As [`Session::unsubscribe`]; [`Error::Closed`].
    pub async fn unsubscribe(
        &self,
        filters: Vec<String>,
        properties: Option<UnsubscribeProperties>,
    ) -> Result<SubAck, Error> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Unsubscribe {
            filters,
            properties,
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// MQTT 5 request/response: publishes `publish` with `response_topic` and fresh
    /// correlation data, and waits up to `timeout` for the message on that topic carrying
    /// the same correlation data (which is not reported as an event). The caller subscribes
    /// to `response_topic` first.
    ///
    /// # Errors
    /// [`Error::NeedsV5`]; [`Error::Timeout`]; the errors of [`Client::publish`].
    pub async fn request(
        &self,
        mut publish: Publish,
        response_topic: impl Into<String>,
        timeout: Duration,
    ) -> Result<Publish, Error> {
        if self.version != Version::V5 {
            return Err(Error::NeedsV5("request/response"));
        }
        let correlation = Bytes::copy_from_slice(&random_bytes::<16>());
        let props = publish
            .properties
            .get_or_insert_with(crate::session::publish_properties);
        props.response_topic = Some(response_topic.into());
        props.correlation_data = Some(correlation.clone());
        let (reply, rx) = oneshot::channel();
        let fut = async {
            self.command(Command::Request {
                publish: Box::new(publish),
                correlation,
                reply,
            })
            .await?;
            rx.await.map_err(|_| Error::Closed)?
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Sends AUTH (MQTT 5): [`ReasonCode::CONTINUE_AUTHENTICATION`] to answer the server's
    /// challenge, [`ReasonCode::REAUTHENTICATE`] to start re-authentication. The server's
    /// AUTH packets arrive as [`Event::Auth`].
    ///
    /// # Errors
    /// [`Error::NeedsV5`]; [`Error::Closed`] when no connection is open.
    pub async fn auth(&self, reason: ReasonCode, properties: AuthProperties) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Auth {
            reason,
            properties,
            reply,
        })
        .await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Sends PINGREQ now; PINGRESP arrives as [`Event::Pong`].
    ///
    /// # Errors
    /// [`Error::Closed`] when not connected.
    pub async fn ping(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Ping(reply)).await?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Sends DISCONNECT with `reason` (and `properties`, MQTT 5), closes the transport and
    /// ends the client. Messages not yet acknowledged stay in the store, if any.
    ///
    /// # Errors
    /// [`Error::Closed`] when the client had already ended.
    pub async fn disconnect(
        &self,
        reason: ReasonCode,
        properties: Option<DisconnectProperties>,
    ) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Disconnect {
                reason,
                properties,
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)
    }
}

/// Commands waiting for the connection task (bounded: callers wait when it is full).
const COMMAND_QUEUE: usize = 256;

/// Most events held in the driver before it stops reading from the server.
const PENDING_EVENTS: usize = 64;

struct Driver {
    url: BrokerUrl,
    session: Session,
    store: Option<SqliteStore>,
    cmds: mpsc::Receiver<Command>,
    cmds_open: bool,
    events: mpsc::Sender<Event>,
    events_open: bool,
    pending_events: VecDeque<Event>,
    shared: Arc<Shared>,
    acks: HashMap<u16, oneshot::Sender<Result<Ack, Error>>>,
    subs: HashMap<u16, oneshot::Sender<Result<SubAck, Error>>>,
    requests: HashMap<Bytes, oneshot::Sender<Result<Publish, Error>>>,
    parked: Option<Command>,
    /// `publish` replies held until the store has the message.
    accepted: Vec<(AcceptReply, Option<u16>)>,
    ready: Option<oneshot::Sender<Result<(), Error>>>,
    stop: bool,
    disconnect_reply: Option<oneshot::Sender<()>>,
}

/// What one turn of a drive loop produced.
enum Step {
    Read(Result<bool, Error>),
    Cmd(Option<Command>),
    Timer,
    Nothing,
}

/// Why a connection ended, for the reconnect decision.
enum Ended {
    /// Try again.
    Retry,
    /// Stop the client.
    Stop,
}

impl Driver {
    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let backoff = self.session.config().reconnect.clone();
        loop {
            if attempt > 0 {
                let Some(b) = &backoff else { break };
                if b.max_attempts > 0 && attempt > b.max_attempts {
                    break;
                }
                let delay = b.delay(attempt, random_unit());
                tracing::debug!("MQTT reconnect attempt {attempt} in {delay:?}");
                let sleep = tokio::time::sleep(delay);
                if !self.serve_until(sleep).await {
                    break;
                }
            }
            let timeout = self.session.config().connect_timeout;
            let config = self.session.config().clone();
            let url = self.url.clone();
            let connect = async move {
                tokio::time::timeout(timeout, Transport::connect(&url, &config))
                    .await
                    .unwrap_or(Err(Error::Timeout(timeout)))
            };
            let Some(result) = self.serve_value(connect).await else {
                break;
            };
            let transport = match result {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!("MQTT transport to {:?} failed: {e}", self.url);
                    if let Some(r) = self.ready.take() {
                        let _ = r.send(Err(e));
                        break;
                    }
                    attempt += 1;
                    continue;
                }
            };
            let (ended, got_connack) = self.drive(transport).await;
            if got_connack {
                attempt = 1;
            } else {
                attempt += 1;
            }
            if matches!(ended, Ended::Stop) || self.stop {
                break;
            }
            if backoff.is_none() {
                break;
            }
        }
        self.shutdown().await;
    }

    /// Serves commands (offline) until `fut` completes; false when the client must stop.
    async fn serve_until(&mut self, fut: impl Future<Output = ()>) -> bool {
        self.serve_value(fut).await.is_some()
    }

    async fn serve_value<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        tokio::pin!(fut);
        loop {
            self.flush_store();
            self.route_events();
            self.retry_parked();
            self.flush_events();
            if self.stop {
                return None;
            }
            let events = self.events.clone();
            let want_events = !self.pending_events.is_empty() && self.events_open;
            let step = tokio::select! {
                v = &mut fut => return Some(v),
                cmd = self.cmds.recv(), if self.parked.is_none() && self.cmds_open => Step::Cmd(cmd),
                permit = events.reserve(), if want_events => {
                    self.deliver(permit);
                    Step::Nothing
                }
            };
            if let Step::Cmd(cmd) = step {
                match cmd {
                    Some(c) => self.handle_command(c),
                    None => {
                        // All handles dropped: keep going while someone reads events.
                        self.cmds_open = false;
                        if !self.events_open || self.events.is_closed() {
                            return None;
                        }
                    }
                }
            }
        }
    }

    fn deliver(&mut self, permit: Result<mpsc::Permit<'_, Event>, mpsc::error::SendError<()>>) {
        match permit {
            Ok(p) => {
                if let Some(e) = self.pending_events.pop_front() {
                    p.send(e);
                }
                self.flush_events();
            }
            Err(_) => {
                self.events_open = false;
                self.pending_events.clear();
            }
        }
    }

    /// Moves pending events into the channel while it has room.
    fn flush_events(&mut self) {
        while let Some(e) = self.pending_events.pop_front() {
            match self.events.try_send(e) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(e)) => {
                    self.pending_events.push_front(e);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.events_open = false;
                    self.pending_events.clear();
                    break;
                }
            }
        }
    }

    /// One connection: CONNECT, then read / commands / timers until it ends.
    async fn drive(&mut self, mut transport: Transport) -> (Ended, bool) {
        let mut got_connack = false;
        if let Err(e) = self.session.start(Instant::now().into_std()) {
            transport.close().await;
            self.fail_ready(e);
            return (Ended::Stop, false);
        }
        let mut rx = BytesMut::with_capacity(16 * 1024);
        let mut tx = BytesMut::new();
        let mut ended: Option<Ended> = None;
        loop {
            for ev in self.take_events() {
                if let Event::Connected(ack) = &ev {
                    if ack.code.is_success() {
                        got_connack = true;
                        self.shared.connections.fetch_add(1, Ordering::Relaxed);
                        self.shared.connected.store(true, Ordering::Relaxed);
                        if let Ok(mut id) = self.shared.client_id.lock() {
                            *id = self.session.client_id().to_owned();
                        }
                        if let Some(r) = self.ready.take() {
                            let _ = r.send(Ok(()));
                        }
                    } else if is_fatal(ack.code) || self.ready.is_some() {
                        self.fail_ready(Error::Refused(ack.code));
                        ended = Some(Ended::Stop);
                    }
                }
                self.route_event(ev);
            }
            self.retry_parked();
            self.flush_events();
            // Durable first, then the network (answers to what was just handled included).
            self.flush_store();
            if self.session.poll_transmit(&mut tx) {
                let data = tx.split().freeze();
                if let Err(e) = transport.write(data).await {
                    tracing::debug!("MQTT write failed: {e}");
                    self.session
                        .handle_transport_closed(Instant::now().into_std());
                }
            }
            self.shared
                .inflight_peak
                .fetch_max(self.session.inflight(), Ordering::Relaxed);
            self.shared
                .pending
                .store(self.session.queued(), Ordering::Relaxed);
            match self.session.state() {
                SessionState::Connecting | SessionState::Connected => {}
                SessionState::Closed => {
                    ended = Some(Ended::Stop);
                    break;
                }
                SessionState::Disconnected => break,
            }
            if self.stop {
                ended = Some(Ended::Stop);
                break;
            }
            let deadline = self.session.poll_timeout().map(Instant::from_std);
            let reading = self.pending_events.len() < PENDING_EVENTS;
            let events = self.events.clone();
            let want_events = !self.pending_events.is_empty() && self.events_open;
            let step = tokio::select! {
                r = transport.read(&mut rx), if reading => Step::Read(r),
                cmd = self.cmds.recv(), if self.parked.is_none() && self.cmds_open => Step::Cmd(cmd),
                () = sleep_until(deadline) => Step::Timer,
                permit = events.reserve(), if want_events => {
                    self.deliver(permit);
                    Step::Nothing
                }
            };
            let now = Instant::now().into_std();
            match step {
                Step::Read(Ok(true)) => self.session.feed(now, &rx),
                Step::Read(Ok(false)) => self.session.handle_transport_closed(now),
                Step::Read(Err(e)) => {
                    tracing::debug!("MQTT read failed: {e}");
                    self.session.handle_transport_closed(now);
                }
                Step::Cmd(Some(c)) => {
                    self.handle_command(c);
                    // Take what else is queued, so that one write carries many packets.
                    for _ in 0..256 {
                        if self.parked.is_some() {
                            break;
                        }
                        match self.cmds.try_recv() {
                            Ok(c) => self.handle_command(c),
                            Err(_) => break,
                        }
                    }
                }
                Step::Cmd(None) => {
                    self.cmds_open = false;
                    if !self.events_open || self.events.is_closed() {
                        self.session.disconnect(ReasonCode::SUCCESS, None);
                    }
                }
                Step::Timer => self.session.handle_timeout(now),
                Step::Nothing => {}
            }
        }
        self.shared.connected.store(false, Ordering::Relaxed);
        // Last bytes (a DISCONNECT) out before closing.
        self.flush_store();
        if self.session.poll_transmit(&mut tx) {
            let _ = transport.write(tx.split().freeze()).await;
        }
        transport.close().await;
        for ev in self.take_events() {
            self.route_event(ev);
        }
        if self.ready.is_some() {
            let e = self.session.take_error().unwrap_or(Error::Closed);
            self.fail_ready(e);
            return (Ended::Stop, got_connack);
        }
        (ended.unwrap_or(Ended::Retry), got_connack)
    }

    fn fail_ready(&mut self, e: Error) {
        if let Some(r) = self.ready.take() {
            let _ = r.send(Err(e));
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    /// Makes the session's changes durable, then answers the `publish` calls they cover.
    fn flush_store(&mut self) {
        let ops: Vec<_> = std::iter::from_fn(|| self.session.poll_store()).collect();
        let mut failed = false;
        if let (false, Some(s)) = (ops.is_empty(), &mut self.store) {
            if let Err(e) = s.apply(&ops) {
                // Without a durable store the guarantees are gone: stop rather than lie.
                tracing::error!("MQTT store failed, stopping the client: {e}");
                self.session.disconnect(ReasonCode::UNSPECIFIED_ERROR, None);
                self.stop = true;
                failed = true;
            }
        }
        for (reply, id) in self.accepted.drain(..) {
            let _ = reply.send(if failed { Err(Error::Closed) } else { Ok(id) });
        }
    }

    /// Events produced while offline (no transport loop running).
    fn route_events(&mut self) {
        for ev in self.take_events() {
            self.route_event(ev);
        }
    }

    fn route_event(&mut self, ev: Event) {
        match &ev {
            Event::PubAck(a) | Event::PubComp(a) => {
                if let Some(w) = self.acks.remove(&a.pkid) {
                    let _ = w.send(Ok(a.clone()));
                }
            }
            Event::PubRec(a) if !a.reason.is_success() => {
                if let Some(w) = self.acks.remove(&a.pkid) {
                    let _ = w.send(Ok(a.clone()));
                }
            }
            Event::Dropped { pkid, reason } => {
                if let Some(w) = self.acks.remove(pkid) {
                    let _ = w.send(Err(Error::NotSupported(*reason)));
                }
            }
            Event::Auth(a) if a.reason == ReasonCode::CONTINUE_AUTHENTICATION => {
                if let Some(h) = self.session.config().authenticator.clone() {
                    let props = a.properties.clone().unwrap_or_default();
                    let method = props.method.clone().unwrap_or_default();
                    match (h.0)(&method, props.data.as_deref()) {
                        Ok(data) => {
                            let reply = AuthProperties {
                                method: Some(method),
                                data,
                                ..AuthProperties::default()
                            };
                            if let Err(e) = self
                                .session
                                .auth(ReasonCode::CONTINUE_AUTHENTICATION, reply)
                            {
                                tracing::debug!("cannot answer AUTH: {e}");
                            }
                        }
                        Err(why) => {
                            tracing::debug!("authentication refused locally: {why}");
                            self.fail_ready(Error::Refused(ReasonCode::NOT_AUTHORIZED));
                            self.session.disconnect(ReasonCode::NOT_AUTHORIZED, None);
                            self.stop = true;
                        }
                    }
                }
            }
            Event::SubAck(s) | Event::UnsubAck(s) => {
                if let Some(w) = self.subs.remove(&s.pkid) {
                    let _ = w.send(Ok(s.clone()));
                }
            }
            Event::Publish(p) => {
                if let Some(c) = p
                    .properties
                    .as_ref()
                    .and_then(|pr| pr.correlation_data.as_ref())
                {
                    if let Some(w) = self.requests.remove(c) {
                        let _ = w.send(Ok(p.clone()));
                        return;
                    }
                }
            }
            _ => {}
        }
        if self.events_open {
            self.pending_events.push_back(ev);
        }
    }

    fn retry_parked(&mut self) {
        if let Some(c) = self.parked.take() {
            self.handle_command(c);
        }
    }

    fn handle_command(&mut self, c: Command) {
        match c {
            Command::Publish {
                publish,
                accepted,
                done,
            } => {
                let qos0 = publish.qos == mqttbytes::QoS::AtMostOnce;
                match self.session.publish((*publish).clone()) {
                    Err(Error::QueueFull(_))
                        if self.session.config().offline_policy == OfflinePolicy::Wait =>
                    {
                        self.parked = Some(Command::Publish {
                            publish,
                            accepted,
                            done,
                        });
                    }
                    Err(e) => match accepted {
                        Some(a) => {
                            let _ = a.send(Err(e));
                        }
                        None => tracing::warn!("message not published: {e}"),
                    },
                    Ok(id) => {
                        if let Some(a) = accepted {
                            self.accepted.push((a, id));
                        }
                        if let Some(done) = done {
                            match id {
                                Some(id) => {
                                    self.acks.insert(id, done);
                                }
                                None if qos0 => {
                                    let _ = done.send(Ok(Ack {
                                        pkid: 0,
                                        reason: ReasonCode::SUCCESS,
                                        properties: None,
                                    }));
                                }
                                None => {}
                            }
                        }
                    }
                }
            }
            Command::Subscribe {
                filters,
                properties,
                reply,
            } => match self.session.subscribe(filters, properties) {
                Ok(id) => {
                    self.subs.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Unsubscribe {
                filters,
                properties,
                reply,
            } => match self.session.unsubscribe(filters, properties) {
                Ok(id) => {
                    self.subs.insert(id, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Request {
                publish,
                correlation,
                reply,
            } => match self.session.publish(*publish) {
                Ok(_) => {
                    self.requests.retain(|_, w| !w.is_closed());
                    self.requests.insert(correlation, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Auth {
                reason,
                properties,
                reply,
            } => {
                let _ = reply.send(self.session.auth(reason, properties));
            }
            Command::Ping(reply) => {
                let _ = reply.send(self.session.ping());
            }
            Command::Disconnect {
                reason,
                properties,
                reply,
            } => {
                self.session.disconnect(reason, properties);
                self.stop = true;
                self.disconnect_reply = Some(reply);
            }
        }
    }

    async fn shutdown(mut self) {
        self.shared.connected.store(false, Ordering::Relaxed);
        self.flush_store();
        self.fail_ready(Error::Closed);
        if let Some(Command::Publish {
            accepted: Some(accepted),
            ..
        }) = self.parked.take()
        {
            let _ = accepted.send(Err(Error::Closed));
        }
        for (_, w) in self.acks.drain() {
            let _ = w.send(Err(Error::Closed));
        }
        for (_, w) in self.subs.drain() {
            let _ = w.send(Err(Error::Closed));
        }
        for (_, w) in self.requests.drain() {
            let _ = w.send(Err(Error::Closed));
        }
        if let Some(r) = self.disconnect_reply.take() {
            let _ = r.send(());
        }
        for ev in self.take_events() {
            self.pending_events.push_back(ev);
        }
        // Hand over what is left; the channel closes when the driver is dropped.
        while let Some(ev) = self.pending_events.pop_front() {
            if !self.events_open || self.events.send(ev).await.is_err() {
                break;
            }
        }
        self.cmds.close();
        while let Ok(c) = self.cmds.try_recv() {
            match c {
                Command::Publish {
                    accepted: Some(accepted),
                    ..
                } => {
                    let _ = accepted.send(Err(Error::Closed));
                }
                Command::Disconnect { reply, .. } => {
                    let _ = reply.send(());
                }
                _ => {}
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
