//! The sans-IO MQTT session: bytes and `now` in, events, packets and store operations out.
//! No tokio, no clock reads, no randomness of its own.
//!
//! A [`Session`] outlives connections: in-flight messages, incoming QoS 2 ids and
//! subscriptions stay across [`Session::handle_transport_closed`] and
//! [`Session::start`], which is how reconnects resume.
//!
//! Call order for a driver:
//!
//! ```text
//!  transport open -> start(now)
//!  loop:
//!    bytes arrived        -> feed(now, bytes)
//!    timer fired          -> handle_timeout(now)
//!    application command  -> publish / subscribe / unsubscribe / auth / ping / disconnect
//!    then, in this order:
//!      poll_store()      until None: apply to the Store (durable before the bytes go out)
//!      poll_transmit()   write the bytes
//!      poll_event()      until None: hand to the application
//!      poll_timeout()    sleep until then
//!      state()           not Connecting/Connected: flush, close the transport
//!  transport closed -> handle_transport_closed(now)
//! ```
//!
//! ```
//! use std::time::Instant;
//! use bytes::BytesMut;
//! use proto_mqtt::session::{Event, Session};
//! use proto_mqtt::packet::{Codec, ConnAck, Packet};
//! use proto_mqtt::{Config, QoS, ReasonCode};
//!
//! let now = Instant::now();
//! let mut s = Session::new(Config::default(), "client-1".into())?;
//! s.start(now)?;
//! let mut wire = BytesMut::new();
//! assert!(s.poll_transmit(&mut wire)); // CONNECT
//! // The server answers CONNACK.
//! let server = Codec::new(proto_mqtt::Version::V5, 1 << 20);
//! let mut connack = BytesMut::new();
//! server.encode(&Packet::ConnAck(ConnAck { session_present: false, code: ReasonCode::SUCCESS, properties: None }), &mut connack)?;
//! s.feed(now, &connack);
//! assert!(matches!(s.poll_event(), Some(Event::Connected(_))));
//! let pkid = s.publish(proto_mqtt::packet::publish("a/b", QoS::AtLeastOnce, "hi"))?;
//! assert_eq!(pkid, Some(1));
//! # Ok::<(), proto_mqtt::Error>(())
//! ```

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

use bytes::{Bytes, BytesMut};
use mqttbytes::v5;

use crate::{
    config::Config,
    error::Error,
    packet::{
        Ack, AckProperties, Auth, AuthProperties, Codec, ConnAck, Disconnect, DisconnectProperties,
        MAX_PACKET_SIZE, Packet, Publish, SubAck, Subscribe, SubscribeFilter, SubscribeProperties,
        Unsubscribe, UnsubscribeProperties,
    },
    reason::{Initiator, QoS, ReasonCode, Version},
    store::{StoreOp, Stored},
    topic,
};

/// Where the session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// No transport (before the first [`Session::start`], or after it closed or failed).
    Disconnected,
    /// CONNECT sent, CONNACK awaited (AUTH may be exchanged).
    Connecting,
    /// CONNACK accepted.
    Connected,
    /// [`Session::disconnect`] was called: nothing more is sent.
    Closed,
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisconnectInfo {
    /// The reason code: from the server's DISCONNECT, the one we sent, 0x8D for a
    /// keep-alive timeout, 0xA0 when CONNACK did not come in time, 0x80 when the transport
    /// closed without DISCONNECT.
    pub reason: ReasonCode,
    /// The DISCONNECT's properties (MQTT 5), with Server Reference when the server moved.
    pub properties: Option<DisconnectProperties>,
    /// Who ended it.
    pub by: Initiator,
}

/// What the session reports (the seeds' ten MQTT events, and two more).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// CONNACK (`OnMQTTConnect`): session present, reason code, CONNACK properties. A failure
    /// code means the server refused; a [`Event::Disconnected`] follows.
    Connected(ConnAck),
    /// The connection ended (`OnMQTTDisconnect`).
    Disconnected(DisconnectInfo),
    /// An incoming message (`OnMQTTPublish`), topic alias resolved; duplicates of QoS 2
    /// messages are not reported.
    Publish(Publish),
    /// PUBACK for an outgoing QoS 1 message (`OnMQTTPubAck`).
    PubAck(Ack),
    /// PUBREC for an outgoing QoS 2 message (`OnMQTTPubRec`); PUBREL was sent.
    PubRec(Ack),
    /// PUBCOMP: an outgoing QoS 2 message is complete (`OnMQTTPubComp`).
    PubComp(Ack),
    /// SUBACK (`OnMQTTSubscribe`).
    SubAck(SubAck),
    /// UNSUBACK (`OnMQTTUnSubscribe`).
    UnsubAck(SubAck),
    /// PINGRESP (`OnMQTTPing`).
    Pong,
    /// AUTH from the server (`OnMQTTAuth`).
    Auth(Auth),
    /// An accepted outgoing message could not be sent under the server's limits (Maximum QoS,
    /// Retain Available, Maximum Packet Size) and was dropped.
    Dropped {
        /// Its packet identifier (0 for QoS 0).
        pkid: u16,
        /// Why: 0x9B, 0x9A or 0x95.
        reason: ReasonCode,
    },
}

/// The server's limits from CONNACK (MQTT 5 section 3.2.2.3); defaults when absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Receive Maximum: our in-flight window. Default 65535 (MQTT 3.1.1:
    /// [`Config::v311_receive_maximum`]).
    pub receive_maximum: u16,
    /// Maximum Packet Size. Default: unlimited.
    pub max_packet_size: usize,
    /// Maximum QoS. Default 2.
    pub max_qos: QoS,
    /// Retain Available. Default true.
    pub retain_available: bool,
    /// Topic Alias Maximum. Default 0.
    pub topic_alias_maximum: u16,
    /// Wildcard Subscription Available. Default true.
    pub wildcard_available: bool,
    /// Shared Subscription Available. Default true.
    pub shared_available: bool,
    /// Subscription Identifiers Available. Default true.
    pub subscription_ids_available: bool,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            receive_maximum: u16::MAX,
            max_packet_size: MAX_PACKET_SIZE,
            max_qos: QoS::ExactlyOnce,
            retain_available: true,
            topic_alias_maximum: 0,
            wildcard_available: true,
            shared_available: true,
            subscription_ids_available: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutState {
    /// Waiting for the window; `dup` when it may have been sent before.
    Queued { dup: bool },
    /// PUBLISH sent, PUBACK or PUBREC awaited.
    AwaitAck,
    /// PUBREL sent, PUBCOMP awaited.
    AwaitComp,
}

#[derive(Debug)]
struct Outgoing {
    publish: Publish,
    seq: u64,
    state: OutState,
}

#[derive(Debug)]
enum Queued {
    Qos0(Box<Publish>),
    Id(u16),
}

#[derive(Debug)]
enum Request {
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
}

/// The MQTT session state machine. See the module documentation for the call order.
#[derive(Debug)]
pub struct Session {
    config: Config,
    client_id: String,
    codec: Codec,
    state: SessionState,
    now: Option<Instant>,
    rx: BytesMut,
    tx: BytesMut,
    events: VecDeque<Event>,
    store_ops: VecDeque<StoreOp>,
    next_pkid: u16,
    seq: u64,
    out: HashMap<u16, Outgoing>,
    queue: VecDeque<Queued>,
    inflight: usize,
    qos0_queued: usize,
    store_ops_enabled: bool,
    requests: BTreeMap<u64, (u16, Request)>,
    subscriptions: BTreeMap<String, (SubscribeFilter, Option<SubscribeProperties>)>,
    incoming_qos2: HashSet<u16>,
    server: ServerLimits,
    alias_in: HashMap<u16, String>,
    alias_out: HashMap<String, u16>,
    keep_alive: Duration,
    last_tx: Option<Instant>,
    last_rx: Option<Instant>,
    ping_deadline: Option<Instant>,
    connack_deadline: Option<Instant>,
    connected_once: bool,
    clean_start_sent: bool,
    disconnect_reported: bool,
    last_error: Option<Error>,
}

impl Session {
    /// A session for `client_id` (the caller makes a random one when the configuration has
    /// none: [`Session::random_client_id`]).
    ///
    /// # Errors
    /// [`Error::Config`] from [`Config::validate`].
    pub fn new(config: Config, client_id: String) -> Result<Self, Error> {
        config.validate()?;
        let mut codec = Codec::new(config.version, config.max_incoming_packet);
        codec.max_topic_len = config.max_topic_len;
        Ok(Self {
            keep_alive: config.keep_alive,
            config,
            client_id,
            codec,
            state: SessionState::Disconnected,
            now: None,
            rx: BytesMut::new(),
            tx: BytesMut::new(),
            events: VecDeque::new(),
            store_ops: VecDeque::new(),
            next_pkid: 1,
            seq: 0,
            out: HashMap::new(),
            queue: VecDeque::new(),
            inflight: 0,
            qos0_queued: 0,
            store_ops_enabled: true,
            requests: BTreeMap::new(),
            subscriptions: BTreeMap::new(),
            incoming_qos2: HashSet::new(),
            server: ServerLimits::default(),
            alias_in: HashMap::new(),
            alias_out: HashMap::new(),
            last_tx: None,
            last_rx: None,
            ping_deadline: None,
            connack_deadline: None,
            connected_once: false,
            clean_start_sent: false,
            disconnect_reported: true,
            last_error: None,
        })
    }

    /// `wskit-` and 16 hex digits of `random`.
    #[must_use]
    pub fn random_client_id(random: [u8; 8]) -> String {
        let mut s = String::from("wskit-");
        for b in random {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    // ---- getters -------------------------------------------------------------------------

    /// Where the session stands.
    #[must_use]
    pub const fn state(&self) -> SessionState {
        self.state
    }

    /// The client identifier (the server's Assigned Client Identifier once one came).
    #[must_use]
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The protocol version.
    #[must_use]
    pub const fn version(&self) -> Version {
        self.config.version
    }

    /// The server's limits from the last CONNACK.
    #[must_use]
    pub const fn server_limits(&self) -> &ServerLimits {
        &self.server
    }

    /// Outgoing QoS 1/2 messages sent and not yet complete.
    #[must_use]
    pub const fn inflight(&self) -> usize {
        self.inflight
    }

    /// Outgoing messages held (queued, in flight, or waiting for PUBCOMP); at most
    /// [`Config::max_queued`].
    #[must_use]
    pub fn queued(&self) -> usize {
        self.out.len() + self.qos0_queued
    }

    /// Whether a QoS 1/2 message with this packet id is still outstanding.
    #[must_use]
    pub fn is_outstanding(&self, pkid: u16) -> bool {
        self.out.contains_key(&pkid)
    }

    /// Subscriptions granted by the server (re-sent when the server lost the session).
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subscriptions.keys().map(String::as_str)
    }

    /// The error that closed the last connection from our side, if any.
    pub fn take_error(&mut self) -> Option<Error> {
        self.last_error.take()
    }

    /// Bytes received and not yet decoded (at most one packet's limit plus one read).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.rx.len()
    }

    /// The configuration.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    // ---- inputs --------------------------------------------------------------------------

    /// Whether [`Session::poll_store`] hands out operations (default: yes). A driver without
    /// a store turns them off, which saves encoding each message for it.
    pub fn set_store_ops(&mut self, enabled: bool) {
        self.store_ops_enabled = enabled;
        if !enabled {
            self.store_ops.clear();
        }
    }

    /// Loads durable state saved by an earlier process (before the first [`Session::start`]).
    ///
    /// # Errors
    /// [`Error::Malformed`] when a stored packet does not decode.
    pub fn restore(&mut self, stored: Stored) -> Result<(), Error> {
        let codec = Codec::new(self.config.version, MAX_PACKET_SIZE);
        for (pkid, seq, released, packet) in stored.outgoing {
            let Some(Packet::Publish(mut p)) = codec.decode(&mut BytesMut::from(&packet[..]))?
            else {
                return Err(Error::Malformed("stored message is not a PUBLISH".into()));
            };
            p.pkid = pkid;
            let state = if released {
                self.inflight += 1;
                OutState::AwaitComp
            } else {
                self.queue.push_back(Queued::Id(pkid));
                OutState::Queued { dup: true }
            };
            self.seq = self.seq.max(seq + 1);
            self.out.insert(
                pkid,
                Outgoing {
                    publish: p,
                    seq,
                    state,
                },
            );
        }
        self.incoming_qos2.extend(stored.incoming);
        for packet in stored.subscriptions {
            if let Some(Packet::Subscribe(s)) = codec.decode(&mut BytesMut::from(&packet[..]))? {
                for f in s.filters {
                    self.subscriptions
                        .insert(f.path.clone(), (f, s.properties.clone()));
                }
            }
        }
        Ok(())
    }

    /// A transport is open: queues CONNECT.
    ///
    /// # Errors
    /// [`Error::Closed`] after [`Session::disconnect`].
    pub fn start(&mut self, now: Instant) -> Result<(), Error> {
        if self.state == SessionState::Closed {
            return Err(Error::Closed);
        }
        self.now = Some(now);
        self.rx.clear();
        self.tx.clear();
        self.alias_in.clear();
        self.alias_out.clear();
        self.server = self.default_limits();
        self.keep_alive = self.config.keep_alive;
        self.ping_deadline = None;
        self.last_rx = Some(now);
        self.disconnect_reported = false;
        self.state = SessionState::Connecting;
        self.connack_deadline = Some(now + self.config.connect_timeout);
        let c = &self.config;
        let resume = self.connected_once
            && (!c.clean_start || (c.version == Version::V5 && c.session_expiry > 0));
        let clean = if resume { false } else { c.clean_start };
        self.clean_start_sent = clean;
        let mut connect = v5::Connect::new(self.client_id.clone());
        connect.keep_alive = u16::try_from(c.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.clean_session = clean;
        if let Some((u, p)) = &c.credentials {
            connect.set_login(u.as_str(), p.as_str());
        }
        if let Some(w) = &c.will {
            connect.last_will = Some(v5::LastWill {
                topic: w.topic.clone(),
                message: w.payload.clone(),
                qos: w.qos.to_mqttbytes(),
                retain: w.retain,
                properties: w.properties.clone(),
            });
        }
        if c.version == Version::V5 {
            let mut props = c
                .connect_properties
                .clone()
                .unwrap_or_else(connect_properties);
            props.session_expiry_interval = (c.session_expiry > 0).then_some(c.session_expiry);
            props.receive_maximum = (c.receive_maximum < u16::MAX).then_some(c.receive_maximum);
            props.max_packet_size = u32::try_from(c.max_incoming_packet).ok();
            props.topic_alias_max = (c.topic_alias_maximum > 0).then_some(c.topic_alias_maximum);
            connect.properties = Some(props);
        }
        self.send(&Packet::Connect(Box::new(connect)))?;
        Ok(())
    }

    /// Bytes from the transport, any chunking.
    pub fn feed(&mut self, now: Instant, bytes: &[u8]) {
        self.now = Some(now);
        if !matches!(
            self.state,
            SessionState::Connecting | SessionState::Connected
        ) {
            return;
        }
        self.rx.extend_from_slice(bytes);
        if !bytes.is_empty() {
            self.last_rx = Some(now);
        }
        loop {
            let packet = match self.codec.decode(&mut self.rx) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    self.fail(e);
                    break;
                }
            };
            if let Err(e) = self.handle_packet(packet) {
                self.fail(e);
                break;
            }
            if !matches!(
                self.state,
                SessionState::Connecting | SessionState::Connected
            ) {
                break;
            }
        }
    }

    /// Timers: keep-alive PINGREQ, PINGRESP deadline, CONNACK deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
        match self.state {
            SessionState::Connecting => {
                if self.connack_deadline.is_some_and(|d| now >= d) {
                    self.lost(ReasonCode::MAXIMUM_CONNECT_TIME, Initiator::Local);
                }
            }
            SessionState::Connected => {
                if self.ping_deadline.is_some_and(|d| now >= d) {
                    self.lost(ReasonCode::KEEP_ALIVE_TIMEOUT, Initiator::Local);
                    return;
                }
                if self.ping_deadline.is_none() && self.next_ping().is_some_and(|t| now >= t) {
                    let _ = self.send(&Packet::PingReq);
                    self.ping_deadline = Some(now + self.config.ping_timeout);
                }
            }
            SessionState::Disconnected | SessionState::Closed => {}
        }
    }

    /// The transport closed (or failed). The session keeps its state for the next
    /// [`Session::start`]; reports [`Event::Disconnected`] unless a DISCONNECT already did.
    pub fn handle_transport_closed(&mut self, now: Instant) {
        self.now = Some(now);
        if matches!(
            self.state,
            SessionState::Connecting | SessionState::Connected
        ) {
            self.lost(ReasonCode::UNSPECIFIED_ERROR, Initiator::Remote);
        }
        self.rx.clear();
        self.tx.clear();
    }

    // ---- commands ------------------------------------------------------------------------

    /// Queues a PUBLISH; it goes out at once when connected and the in-flight window has room.
    /// Returns the packet identifier of a QoS 1/2 message (its PUBACK or PUBCOMP event
    /// carries the same), `None` for QoS 0. A QoS 1/2 message also yields a
    /// [`StoreOp::PutOutgoing`].
    ///
    /// # Errors
    /// [`Error::Closed`] after disconnect; [`Error::InvalidTopic`]; [`Error::QueueFull`];
    /// [`Error::NoPacketId`]; [`Error::NotSupported`] for a QoS, retain flag or topic alias the
    /// connected server does not allow; [`Error::PacketTooLarge`] over its Maximum Packet
    /// Size.
    pub fn publish(&mut self, mut publish: Publish) -> Result<Option<u16>, Error> {
        if self.state == SessionState::Closed {
            return Err(Error::Closed);
        }
        topic::validate_topic(&publish.topic)?;
        if self.config.version == Version::V311 {
            publish.properties = None;
        }
        if self.state == SessionState::Connected {
            if let Some(reason) = self.limit_violation(&publish) {
                return Err(if reason == ReasonCode::PACKET_TOO_LARGE {
                    Error::PacketTooLarge {
                        size: self.publish_size(&publish),
                        max: self.server.max_packet_size,
                    }
                } else {
                    Error::NotSupported(reason)
                });
            }
        }
        if self.queued() >= self.config.max_queued {
            return Err(Error::QueueFull(self.config.max_queued));
        }
        publish.dup = false;
        if publish.qos == mqttbytes::QoS::AtMostOnce {
            publish.pkid = 0;
            self.queue.push_back(Queued::Qos0(Box::new(publish)));
            self.qos0_queued += 1;
            self.pump();
            return Ok(None);
        }
        let pkid = self.alloc_pkid()?;
        publish.pkid = pkid;
        let seq = self.seq;
        self.seq += 1;
        if self.store_ops_enabled {
            let mut encoded = BytesMut::new();
            self.codec
                .encode(&Packet::Publish(publish.clone()), &mut encoded)?;
            self.store_op(StoreOp::PutOutgoing {
                pkid,
                seq,
                packet: encoded.freeze(),
            });
        }
        self.out.insert(
            pkid,
            Outgoing {
                publish,
                seq,
                state: OutState::Queued { dup: false },
            },
        );
        self.queue.push_back(Queued::Id(pkid));
        self.pump();
        Ok(Some(pkid))
    }

    /// Sends SUBSCRIBE for `filters` (now, or on connection). Returns its packet identifier;
    /// [`Event::SubAck`] carries the same.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::InvalidFilter`] (checked locally); [`Error::NotSupported`]
    /// for wildcards, shared subscriptions or subscription identifiers the server does not
    /// offer; [`Error::NoPacketId`]; [`Error::NoFilters`] for an empty list.
    pub fn subscribe(
        &mut self,
        filters: Vec<SubscribeFilter>,
        properties: Option<SubscribeProperties>,
    ) -> Result<u16, Error> {
        if self.state == SessionState::Closed {
            return Err(Error::Closed);
        }
        if filters.is_empty() {
            return Err(Error::NoFilters {
                packet: "SUBSCRIBE",
            });
        }
        for f in &filters {
            topic::validate_filter(&f.path)?;
            if self.state == SessionState::Connected {
                if !self.server.wildcard_available && topic::has_wildcard(&f.path) {
                    return Err(Error::NotSupported(
                        ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
                    ));
                }
                if !self.server.shared_available && topic::is_shared(&f.path) {
                    return Err(Error::NotSupported(
                        ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
                    ));
                }
            }
        }
        let properties = if self.config.version == Version::V5 {
            properties
        } else {
            None
        };
        if properties.as_ref().is_some_and(|p| p.id.is_some())
            && self.state == SessionState::Connected
            && !self.server.subscription_ids_available
        {
            return Err(Error::NotSupported(
                ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
            ));
        }
        let pkid = self.alloc_pkid()?;
        let sub = Subscribe {
            pkid,
            filters,
            properties,
        };
        self.request(pkid, Request::Subscribe(sub));
        Ok(pkid)
    }

    /// Sends UNSUBSCRIBE for `filters`. Returns its packet identifier.
    ///
    /// # Errors
    /// As [`Session::subscribe`].
    pub fn unsubscribe(
        &mut self,
        filters: Vec<String>,
        properties: Option<UnsubscribeProperties>,
    ) -> Result<u16, Error> {
        if self.state == SessionState::Closed {
            return Err(Error::Closed);
        }
        if filters.is_empty() {
            return Err(Error::NoFilters {
                packet: "UNSUBSCRIBE",
            });
        }
        for f in &filters {
            topic::validate_filter(f)?;
        }
        let pkid = self.alloc_pkid()?;
        let properties = if self.config.version == Version::V5 {
            properties
        } else {
            None
        };
        self.request(
            pkid,
            Request::Unsubscribe(Unsubscribe {
                pkid,
                filters,
                properties,
            }),
        );
        Ok(pkid)
    }

    /// Sends AUTH (MQTT 5): `reason` 0x18 to continue an exchange, 0x19 to re-authenticate.
    ///
    /// # Errors
    /// [`Error::NeedsV5`]; [`Error::Closed`] when no connection is open.
    pub fn auth(&mut self, reason: ReasonCode, properties: AuthProperties) -> Result<(), Error> {
        if self.config.version != Version::V5 {
            return Err(Error::NeedsV5("AUTH"));
        }
        if !matches!(
            self.state,
            SessionState::Connecting | SessionState::Connected
        ) {
            return Err(Error::Closed);
        }
        self.send(&Packet::Auth(Auth {
            reason,
            properties: Some(properties),
        }))
    }

    /// Sends PINGREQ now (the keep-alive timer sends them by itself).
    ///
    /// # Errors
    /// [`Error::Closed`] when not connected.
    pub fn ping(&mut self) -> Result<(), Error> {
        if self.state != SessionState::Connected {
            return Err(Error::Closed);
        }
        self.send(&Packet::PingReq)?;
        if self.ping_deadline.is_none() {
            if let Some(now) = self.now {
                self.ping_deadline = Some(now + self.config.ping_timeout);
            }
        }
        Ok(())
    }

    /// Sends DISCONNECT (with `reason` and `properties` in MQTT 5) and closes the session for
    /// good; queued messages stay in the store for a later process.
    pub fn disconnect(&mut self, reason: ReasonCode, properties: Option<DisconnectProperties>) {
        if matches!(
            self.state,
            SessionState::Connecting | SessionState::Connected
        ) {
            let _ = self.send(&Packet::Disconnect(Disconnect { reason, properties }));
        }
        if !self.disconnect_reported {
            self.events.push_back(Event::Disconnected(DisconnectInfo {
                reason,
                properties: None,
                by: Initiator::User,
            }));
            self.disconnect_reported = true;
        }
        self.state = SessionState::Closed;
    }

    // ---- outputs -------------------------------------------------------------------------

    /// The next change to make durable; drain before [`Session::poll_transmit`].
    #[must_use]
    pub fn poll_store(&mut self) -> Option<StoreOp> {
        self.store_ops.pop_front()
    }

    /// Appends the bytes to send to `out`; false when there were none.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> bool {
        if self.tx.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut self.tx);
        } else {
            out.extend_from_slice(&self.tx);
            self.tx.clear();
        }
        true
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            SessionState::Connecting => self.connack_deadline,
            SessionState::Connected => self.ping_deadline.or_else(|| self.next_ping()),
            SessionState::Disconnected | SessionState::Closed => None,
        }
    }

    // ---- internals -----------------------------------------------------------------------

    fn store_op(&mut self, op: StoreOp) {
        if self.store_ops_enabled {
            self.store_ops.push_back(op);
        }
    }

    /// When the next PINGREQ is due: Keep Alive after the last packet sent or received,
    /// whichever is earlier. (MQTT requires one when nothing was sent; pinging when nothing
    /// arrived either finds a dead connection while we keep sending into it.)
    fn next_ping(&self) -> Option<Instant> {
        if self.keep_alive.is_zero() {
            return None;
        }
        let last = match (self.last_tx, self.last_rx) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some(last + self.keep_alive)
    }

    fn send(&mut self, packet: &Packet) -> Result<(), Error> {
        let start = self.tx.len();
        self.codec.encode(packet, &mut self.tx)?;
        let size = self.tx.len() - start;
        if size > self.server.max_packet_size {
            self.tx.truncate(start);
            return Err(Error::PacketTooLarge {
                size,
                max: self.server.max_packet_size,
            });
        }
        self.last_tx = self.now;
        Ok(())
    }

    fn alloc_pkid(&mut self) -> Result<u16, Error> {
        let in_use: HashSet<u16> = self.requests.values().map(|(id, _)| *id).collect();
        for _ in 0..u16::MAX {
            let id = self.next_pkid;
            self.next_pkid = if id == u16::MAX { 1 } else { id + 1 };
            if !self.out.contains_key(&id) && !in_use.contains(&id) {
                return Ok(id);
            }
        }
        Err(Error::NoPacketId)
    }

    fn request(&mut self, pkid: u16, req: Request) {
        let seq = self.seq;
        self.seq += 1;
        if self.state == SessionState::Connected {
            self.send_request(&req);
        }
        self.requests.insert(seq, (pkid, req));
    }

    fn send_request(&mut self, req: &Request) {
        let r = match req {
            Request::Subscribe(s) => self.send(&Packet::Subscribe(s.clone())),
            Request::Unsubscribe(u) => self.send(&Packet::Unsubscribe(u.clone())),
        };
        if let Err(e) = r {
            tracing::warn!("cannot send request: {e}");
        }
    }

    fn publish_size(&self, p: &Publish) -> usize {
        crate::packet::encoded_len(&self.codec, &Packet::Publish(p.clone())).unwrap_or(usize::MAX)
    }

    fn limit_violation(&self, p: &Publish) -> Option<ReasonCode> {
        if QoS::from_mqttbytes(p.qos) > self.server.max_qos {
            return Some(ReasonCode::QOS_NOT_SUPPORTED);
        }
        if p.retain && !self.server.retain_available {
            return Some(ReasonCode::RETAIN_NOT_SUPPORTED);
        }
        if let Some(a) = p.properties.as_ref().and_then(|pr| pr.topic_alias) {
            if a == 0 || a > self.server.topic_alias_maximum {
                return Some(ReasonCode::TOPIC_ALIAS_INVALID);
            }
        }
        if self.server.max_packet_size < MAX_PACKET_SIZE
            && self.publish_size(p) > self.server.max_packet_size
        {
            return Some(ReasonCode::PACKET_TOO_LARGE);
        }
        None
    }

    /// The limits before CONNACK says otherwise (MQTT 3.1.1: the assumed Receive Maximum).
    fn default_limits(&self) -> ServerLimits {
        let mut l = ServerLimits::default();
        if self.config.version == Version::V311 {
            l.receive_maximum = self.config.v311_receive_maximum;
        }
        l
    }

    fn window(&self) -> usize {
        usize::from(self.server.receive_maximum.min(self.config.max_inflight))
    }

    /// Sends queued messages while connected and the window has room.
    fn pump(&mut self) {
        if self.state != SessionState::Connected {
            return;
        }
        while let Some(front) = self.queue.front() {
            match front {
                Queued::Qos0(_) => {
                    let Some(Queued::Qos0(p)) = self.queue.pop_front() else {
                        unreachable!()
                    };
                    self.qos0_queued -= 1;
                    if let Some(reason) = self.limit_violation(&p) {
                        self.events.push_back(Event::Dropped { pkid: 0, reason });
                        continue;
                    }
                    self.send_publish(*p);
                }
                &Queued::Id(pkid) => {
                    if self.inflight >= self.window() {
                        break;
                    }
                    self.queue.pop_front();
                    let Some(o) = self.out.get(&pkid) else {
                        continue;
                    };
                    let OutState::Queued { dup } = o.state else {
                        continue;
                    };
                    let mut p = o.publish.clone();
                    if let Some(reason) = self.limit_violation(&p) {
                        self.out.remove(&pkid);
                        self.store_op(StoreOp::RemoveOutgoing { pkid });
                        self.events.push_back(Event::Dropped { pkid, reason });
                        continue;
                    }
                    p.dup = dup;
                    if let Some(o) = self.out.get_mut(&pkid) {
                        o.state = OutState::AwaitAck;
                    }
                    self.inflight += 1;
                    self.send_publish(p);
                }
            }
        }
    }

    /// Applies outgoing topic aliases and writes a PUBLISH.
    fn send_publish(&mut self, mut p: Publish) {
        if self.config.version == Version::V5
            && self.config.auto_topic_alias
            && self.server.topic_alias_maximum > 0
            && p.properties
                .as_ref()
                .is_none_or(|pr| pr.topic_alias.is_none())
        {
            let alias = if let Some(&a) = self.alias_out.get(&p.topic) {
                p.topic.clear();
                Some(a)
            } else if self.alias_out.len() < usize::from(self.server.topic_alias_maximum) {
                let a = u16::try_from(self.alias_out.len() + 1).unwrap_or(u16::MAX);
                self.alias_out.insert(p.topic.clone(), a);
                Some(a)
            } else {
                None
            };
            if let Some(a) = alias {
                p.properties
                    .get_or_insert_with(empty_publish_properties)
                    .topic_alias = Some(a);
            }
        }
        if let Err(e) = self.send(&Packet::Publish(p)) {
            tracing::warn!("cannot send PUBLISH: {e}");
        }
    }

    fn fail(&mut self, e: Error) {
        let reason = e.reason_code().unwrap_or(ReasonCode::PROTOCOL_ERROR);
        tracing::debug!("closing the MQTT session: {e}");
        let properties = Some(DisconnectProperties {
            reason_string: Some(e.to_string().chars().take(200).collect()),
            ..DisconnectProperties::default()
        });
        if self.config.version == Version::V5 && self.state == SessionState::Connected {
            let _ = self.send(&Packet::Disconnect(Disconnect {
                reason,
                properties: properties.clone(),
            }));
        }
        self.last_error = Some(e);
        self.report_disconnect(reason, properties, Initiator::Local);
        self.enter_disconnected();
    }

    fn lost(&mut self, reason: ReasonCode, by: Initiator) {
        self.report_disconnect(reason, None, by);
        self.enter_disconnected();
    }

    fn report_disconnect(
        &mut self,
        reason: ReasonCode,
        properties: Option<DisconnectProperties>,
        by: Initiator,
    ) {
        if !self.disconnect_reported {
            self.disconnect_reported = true;
            self.events.push_back(Event::Disconnected(DisconnectInfo {
                reason,
                properties,
                by,
            }));
        }
    }

    /// Leaves the connection: in-flight PUBLISHes go back to the queue front (sent again with
    /// DUP on the next connection), PUBRELs wait to be sent again.
    fn enter_disconnected(&mut self) {
        if self.state != SessionState::Closed {
            self.state = SessionState::Disconnected;
        }
        self.rx.clear();
        self.ping_deadline = None;
        self.connack_deadline = None;
        let mut back: Vec<(u64, u16)> = self
            .out
            .iter()
            .filter(|(_, o)| o.state == OutState::AwaitAck)
            .map(|(&id, o)| (o.seq, id))
            .collect();
        back.sort_unstable();
        for &(_, id) in back.iter().rev() {
            if let Some(o) = self.out.get_mut(&id) {
                o.state = OutState::Queued { dup: true };
            }
            self.queue.push_front(Queued::Id(id));
        }
        self.inflight = self
            .out
            .values()
            .filter(|o| o.state == OutState::AwaitComp)
            .count();
    }

    fn handle_packet(&mut self, packet: Packet) -> Result<(), Error> {
        let connected = self.state == SessionState::Connected;
        match packet {
            Packet::ConnAck(ack) if self.state == SessionState::Connecting => {
                self.handle_connack(ack)
            }
            Packet::Auth(a) => {
                let method = self
                    .config
                    .connect_properties
                    .as_ref()
                    .and_then(|p| p.authentication_method.as_ref());
                if method.is_none() {
                    return Err(Error::protocol(
                        ReasonCode::PROTOCOL_ERROR,
                        "AUTH without an authentication method in CONNECT",
                    ));
                }
                self.events.push_back(Event::Auth(a));
                Ok(())
            }
            Packet::Disconnect(d) => {
                self.report_disconnect(d.reason, d.properties, Initiator::Remote);
                self.enter_disconnected();
                Ok(())
            }
            Packet::Publish(p) if connected => self.handle_publish(p),
            Packet::PubAck(a) if connected => {
                if let Some(o) = self.out.get(&a.pkid) {
                    if o.state == OutState::AwaitAck && o.publish.qos == mqttbytes::QoS::AtLeastOnce
                    {
                        self.complete(a.pkid);
                        self.events.push_back(Event::PubAck(a));
                        self.pump();
                        return Ok(());
                    }
                }
                // A PUBACK for an id we no longer track: a late duplicate; ignored.
                tracing::debug!("PUBACK for packet id {} that awaits none", a.pkid);
                Ok(())
            }
            Packet::PubRec(a) if connected => {
                let state = self
                    .out
                    .get(&a.pkid)
                    .filter(|o| o.publish.qos == mqttbytes::QoS::ExactlyOnce)
                    .map(|o| o.state);
                match state {
                    Some(OutState::AwaitAck) if !a.reason.is_success() => {
                        self.complete(a.pkid);
                        self.events.push_back(Event::PubRec(a));
                        self.pump();
                    }
                    Some(OutState::AwaitAck) => {
                        if let Some(o) = self.out.get_mut(&a.pkid) {
                            o.state = OutState::AwaitComp;
                        }
                        self.store_op(StoreOp::Released { pkid: a.pkid });
                        self.send(&Packet::PubRel(Ack::new(a.pkid)))?;
                        self.events.push_back(Event::PubRec(a));
                    }
                    Some(OutState::AwaitComp) => {
                        self.send(&Packet::PubRel(Ack::new(a.pkid)))?;
                    }
                    _ => {
                        let mut rel = Ack::new(a.pkid);
                        rel.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                        self.send(&Packet::PubRel(rel))?;
                    }
                }
                Ok(())
            }
            Packet::PubComp(a) if connected => {
                if self
                    .out
                    .get(&a.pkid)
                    .is_some_and(|o| o.state == OutState::AwaitComp)
                {
                    self.complete(a.pkid);
                    self.events.push_back(Event::PubComp(a));
                    self.pump();
                }
                // A PUBCOMP for an id we no longer track is an answer to a repeated PUBREL.
                Ok(())
            }
            Packet::PubRel(a) if connected => {
                let mut comp = Ack::new(a.pkid);
                if self.incoming_qos2.remove(&a.pkid) {
                    self.store_ops
                        .push_back(StoreOp::RemoveIncoming { pkid: a.pkid });
                } else if self.config.version == Version::V5 {
                    comp.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                }
                self.send(&Packet::PubComp(comp))
            }
            Packet::SubAck(s) if connected => self.handle_suback(s, true),
            Packet::UnsubAck(s) if connected => self.handle_suback(s, false),
            Packet::PingResp if connected => {
                self.ping_deadline = None;
                self.events.push_back(Event::Pong);
                Ok(())
            }
            other => Err(Error::protocol(
                ReasonCode::PROTOCOL_ERROR,
                format!(
                    "unexpected {} from the server in state {:?}",
                    other.name(),
                    self.state
                ),
            )),
        }
    }

    fn complete(&mut self, pkid: u16) {
        if self.out.remove(&pkid).is_some() {
            self.inflight = self.inflight.saturating_sub(1);
            self.store_op(StoreOp::RemoveOutgoing { pkid });
        }
    }

    fn handle_connack(&mut self, ack: ConnAck) -> Result<(), Error> {
        self.connack_deadline = None;
        if !ack.code.is_success() {
            self.events.push_back(Event::Connected(ack.clone()));
            self.last_error = Some(Error::Refused(ack.code));
            self.report_disconnect(ack.code, None, Initiator::Remote);
            self.enter_disconnected();
            return Ok(());
        }
        if ack.session_present && self.clean_start_sent {
            return Err(Error::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "session present after a clean start",
            ));
        }
        let mut limits = self.default_limits();
        if let Some(p) = &ack.properties {
            if let Some(r) = p.receive_max {
                if r == 0 {
                    return Err(Error::protocol(
                        ReasonCode::PROTOCOL_ERROR,
                        "Receive Maximum 0",
                    ));
                }
                limits.receive_maximum = r;
            }
            if let Some(m) = p.max_packet_size {
                if m == 0 {
                    return Err(Error::protocol(
                        ReasonCode::PROTOCOL_ERROR,
                        "Maximum Packet Size 0",
                    ));
                }
                limits.max_packet_size = usize::try_from(m).unwrap_or(MAX_PACKET_SIZE);
            }
            if let Some(q) = p.max_qos {
                limits.max_qos = match q {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => {
                        return Err(Error::protocol(
                            ReasonCode::PROTOCOL_ERROR,
                            format!("Maximum QoS {q}"),
                        ));
                    }
                };
            }
            let flag = |v: Option<u8>, name: &str| -> Result<bool, Error> {
                match v {
                    None | Some(1) => Ok(true),
                    Some(0) => Ok(false),
                    Some(x) => Err(Error::protocol(
                        ReasonCode::PROTOCOL_ERROR,
                        format!("{name} {x}"),
                    )),
                }
            };
            limits.retain_available = flag(p.retain_available, "Retain Available")?;
            limits.wildcard_available = flag(
                p.wildcard_subscription_available,
                "Wildcard Subscription Available",
            )?;
            limits.shared_available = flag(
                p.shared_subscription_available,
                "Shared Subscription Available",
            )?;
            limits.subscription_ids_available = flag(
                p.subscription_identifiers_available,
                "Subscription Identifiers Available",
            )?;
            limits.topic_alias_maximum = p.topic_alias_max.unwrap_or(0);
            if let Some(id) = &p.assigned_client_identifier {
                self.client_id.clone_from(id);
            }
            if let Some(k) = p.server_keep_alive {
                self.keep_alive = Duration::from_secs(u64::from(k));
            }
        }
        self.server = limits;
        self.state = SessionState::Connected;
        self.connected_once = true;
        let session_present = ack.session_present;
        self.events.push_back(Event::Connected(ack));
        // Unacknowledged requests from before, in order.
        let reqs: Vec<u64> = self.requests.keys().copied().collect();
        for seq in reqs {
            if let Some((_, req)) = self.requests.remove(&seq) {
                self.send_request(&req);
                self.requests.insert(seq, (request_pkid(&req), req));
            }
        }
        if !session_present {
            if !self.incoming_qos2.is_empty() {
                self.incoming_qos2.clear();
                self.store_op(StoreOp::ClearIncoming);
            }
            // The server lost our subscriptions: send them again, one SUBSCRIBE each.
            let subs: Vec<_> = self.subscriptions.values().cloned().collect();
            for (filter, props) in subs {
                let pending = self.requests.values().any(|(_, r)| {
                    matches!(r, Request::Subscribe(s) if s.filters.iter().any(|f| f.path == filter.path))
                });
                if pending {
                    continue;
                }
                let pkid = self.alloc_pkid()?;
                self.request(
                    pkid,
                    Request::Subscribe(Subscribe {
                        pkid,
                        filters: vec![filter],
                        properties: props,
                    }),
                );
            }
        }
        // PUBRELs of QoS 2 messages past PUBREC, in order; then PUBLISHes (DUP) via the queue.
        let mut rels: Vec<(u64, u16)> = self
            .out
            .iter()
            .filter(|(_, o)| o.state == OutState::AwaitComp)
            .map(|(&id, o)| (o.seq, id))
            .collect();
        rels.sort_unstable();
        for (_, id) in rels {
            self.send(&Packet::PubRel(Ack::new(id)))?;
        }
        self.pump();
        Ok(())
    }

    fn handle_suback(&mut self, s: SubAck, subscribe: bool) -> Result<(), Error> {
        let key = self
            .requests
            .iter()
            .find(|(_, (id, r))| *id == s.pkid && matches!(r, Request::Subscribe(_)) == subscribe)
            .map(|(&k, _)| k);
        let Some((_, req)) = key.and_then(|k| self.requests.remove(&k)) else {
            return Err(Error::protocol(
                ReasonCode::PROTOCOL_ERROR,
                format!("SUBACK/UNSUBACK for unknown packet id {}", s.pkid),
            ));
        };
        match req {
            Request::Subscribe(sub) => {
                if s.codes.len() != sub.filters.len() {
                    return Err(Error::protocol(
                        ReasonCode::PROTOCOL_ERROR,
                        "SUBACK code count differs from the filter count",
                    ));
                }
                for (f, code) in sub.filters.into_iter().zip(&s.codes) {
                    if code.is_success() {
                        let mut one = BytesMut::new();
                        let packet = Packet::Subscribe(Subscribe {
                            pkid: 1,
                            filters: vec![f.clone()],
                            properties: sub.properties.clone(),
                        });
                        if self.codec.encode(&packet, &mut one).is_ok() {
                            self.store_op(StoreOp::PutSubscription {
                                filter: f.path.clone(),
                                packet: one.freeze(),
                            });
                        }
                        self.subscriptions
                            .insert(f.path.clone(), (f, sub.properties.clone()));
                    } else if self.subscriptions.remove(&f.path).is_some() {
                        self.store_ops
                            .push_back(StoreOp::RemoveSubscription { filter: f.path });
                    }
                }
                self.events.push_back(Event::SubAck(s));
            }
            Request::Unsubscribe(u) => {
                for f in u.filters {
                    if self.subscriptions.remove(&f).is_some() {
                        self.store_ops
                            .push_back(StoreOp::RemoveSubscription { filter: f });
                    }
                }
                self.events.push_back(Event::UnsubAck(s));
            }
        }
        Ok(())
    }

    fn handle_publish(&mut self, mut p: Publish) -> Result<(), Error> {
        if let Some(alias) = p.properties.as_ref().and_then(|pr| pr.topic_alias) {
            if alias == 0 || alias > self.config.topic_alias_maximum {
                return Err(Error::protocol(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    format!(
                        "topic alias {alias} (maximum {})",
                        self.config.topic_alias_maximum
                    ),
                ));
            }
            if p.topic.is_empty() {
                let Some(t) = self.alias_in.get(&alias) else {
                    return Err(Error::protocol(
                        ReasonCode::PROTOCOL_ERROR,
                        format!("unknown topic alias {alias}"),
                    ));
                };
                p.topic.clone_from(t);
            } else {
                self.alias_in.insert(alias, p.topic.clone());
            }
        }
        if let Err(e) = topic::validate_topic(&p.topic) {
            return Err(Error::protocol(
                ReasonCode::TOPIC_NAME_INVALID,
                e.to_string(),
            ));
        }
        match p.qos {
            mqttbytes::QoS::AtMostOnce => self.events.push_back(Event::Publish(p)),
            mqttbytes::QoS::AtLeastOnce => {
                let pkid = p.pkid;
                self.events.push_back(Event::Publish(p));
                self.send(&Packet::PubAck(Ack::new(pkid)))?;
            }
            mqttbytes::QoS::ExactlyOnce => {
                let pkid = p.pkid;
                if !self.incoming_qos2.contains(&pkid) {
                    if self.incoming_qos2.len() >= usize::from(self.config.receive_maximum) {
                        return Err(Error::protocol(
                            ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                            format!(
                                "more than {} QoS 2 messages awaiting PUBREL",
                                self.config.receive_maximum
                            ),
                        ));
                    }
                    self.incoming_qos2.insert(pkid);
                    self.store_op(StoreOp::AddIncoming { pkid });
                    self.events.push_back(Event::Publish(p));
                }
                self.send(&Packet::PubRec(Ack::new(pkid)))?;
            }
        }
        Ok(())
    }
}

const fn request_pkid(r: &Request) -> u16 {
    match r {
        Request::Subscribe(s) => s.pkid,
        Request::Unsubscribe(u) => u.pkid,
    }
}

fn empty_publish_properties() -> v5::PublishProperties {
    v5::PublishProperties {
        payload_format_indicator: None,
        message_expiry_interval: None,
        topic_alias: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
        subscription_identifiers: Vec::new(),
        content_type: None,
    }
}

/// Empty CONNECT properties (MQTT 5), to fill in ([`Config::connect_properties`]).
#[must_use]
pub fn connect_properties() -> v5::ConnectProperties {
    v5::ConnectProperties {
        session_expiry_interval: None,
        receive_maximum: None,
        max_packet_size: None,
        topic_alias_max: None,
        request_response_info: None,
        request_problem_info: None,
        user_properties: Vec::new(),
        authentication_method: None,
        authentication_data: None,
    }
}

/// Empty PUBLISH properties (MQTT 5), to fill in.
#[must_use]
pub fn publish_properties() -> v5::PublishProperties {
    empty_publish_properties()
}

/// Reason string and user properties for an acknowledgement.
#[must_use]
pub fn ack_properties(reason_string: Option<String>) -> AckProperties {
    AckProperties {
        reason_string,
        user_properties: Vec::new(),
    }
}

/// Bytes of a string, for payloads.
#[must_use]
pub fn text(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{ConnAckProperties, publish};

    struct Srv {
        codec: Codec,
        t: Instant,
    }

    impl Srv {
        fn new(v: Version) -> Self {
            Self {
                codec: Codec::new(v, MAX_PACKET_SIZE),
                t: Instant::now(),
            }
        }
        /// Everything the client wrote.
        fn recv(&self, s: &mut Session) -> Vec<Packet> {
            let mut b = BytesMut::new();
            let _ = s.poll_transmit(&mut b);
            let mut out = Vec::new();
            while let Some(p) = self.codec.decode(&mut b).unwrap() {
                out.push(p);
            }
            assert!(b.is_empty());
            out
        }
        fn send(&self, s: &mut Session, p: Packet) {
            let mut b = BytesMut::new();
            self.codec.encode(&p, &mut b).unwrap();
            s.feed(self.t, &b);
        }
        fn connack(&self, s: &mut Session, present: bool, props: Option<ConnAckProperties>) {
            self.send(
                s,
                Packet::ConnAck(ConnAck {
                    session_present: present,
                    code: ReasonCode::SUCCESS,
                    properties: props,
                }),
            );
        }
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn ops(s: &mut Session) -> Vec<StoreOp> {
        std::iter::from_fn(|| s.poll_store()).collect()
    }

    fn connected(v: Version, config: Config, props: Option<ConnAckProperties>) -> (Session, Srv) {
        let mut config = config;
        config.version = v;
        let srv = Srv::new(v);
        let mut s = Session::new(config, "c1".into()).unwrap();
        s.start(srv.t).unwrap();
        let sent = srv.recv(&mut s);
        assert!(matches!(&sent[..], [Packet::Connect(_)]));
        srv.connack(&mut s, false, props);
        assert!(matches!(events(&mut s)[..], [Event::Connected(_)]));
        assert_eq!(s.state(), SessionState::Connected);
        (s, srv)
    }

    fn limits() -> ConnAckProperties {
        ConnAckProperties::new()
    }

    fn last_disconnect(sent: &[Packet]) -> Option<ReasonCode> {
        sent.iter().rev().find_map(|p| match p {
            Packet::Disconnect(d) => Some(d.reason),
            _ => None,
        })
    }

    #[test]
    fn connect_carries_the_configuration() {
        let mut c = Config::default();
        c.credentials = Some(("u".into(), "p".into()));
        c.keep_alive = Duration::from_secs(15);
        c.session_expiry = 300;
        c.receive_maximum = 10;
        c.will = Some(crate::Will::new("w/t", "gone"));
        let srv = Srv::new(Version::V5);
        let mut s = Session::new(c, "id-9".into()).unwrap();
        s.start(srv.t).unwrap();
        let sent = srv.recv(&mut s);
        let [Packet::Connect(c)] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(c.client_id, "id-9");
        assert_eq!(c.keep_alive, 15);
        assert!(c.clean_session);
        assert_eq!(c.login.as_ref().unwrap().username, "u");
        assert_eq!(c.last_will.as_ref().unwrap().topic, "w/t");
        let p = c.properties.as_ref().unwrap();
        assert_eq!(p.session_expiry_interval, Some(300));
        assert_eq!(p.receive_maximum, Some(10));
        assert_eq!(p.max_packet_size, Some(1 << 20));
        assert_eq!(p.topic_alias_max, Some(32));
    }

    #[test]
    fn qos1_publish_is_stored_sent_and_completed() {
        let (mut s, srv) = connected(Version::V5, Config::default(), None);
        let id = s
            .publish(publish("a/b", QoS::AtLeastOnce, "x"))
            .unwrap()
            .unwrap();
        assert!(matches!(&ops(&mut s)[..], [StoreOp::PutOutgoing { pkid, .. }] if *pkid == id));
        let sent = srv.recv(&mut s);
        assert!(
            matches!(&sent[..], [Packet::Publish(p)] if p.pkid == id && !p.dup && p.topic == "a/b")
        );
        assert_eq!(s.inflight(), 1);
        srv.send(&mut s, Packet::PubAck(Ack::new(id)));
        assert!(matches!(&events(&mut s)[..], [Event::PubAck(a)] if a.pkid == id));
        assert_eq!(ops(&mut s), vec![StoreOp::RemoveOutgoing { pkid: id }]);
        assert_eq!(s.inflight(), 0);
        assert!(!s.is_outstanding(id));
    }

    #[test]
    fn qos2_outgoing_goes_through_pubrel() {
        for v in [Version::V311, Version::V5] {
            let (mut s, srv) = connected(v, Config::default(), None);
            let id = s
                .publish(publish("a", QoS::ExactlyOnce, "x"))
                .unwrap()
                .unwrap();
            let _ = ops(&mut s);
            assert_eq!(srv.recv(&mut s).len(), 1);
            srv.send(&mut s, Packet::PubRec(Ack::new(id)));
            assert_eq!(srv.recv(&mut s), vec![Packet::PubRel(Ack::new(id))]);
            assert_eq!(ops(&mut s), vec![StoreOp::Released { pkid: id }]);
            assert!(matches!(&events(&mut s)[..], [Event::PubRec(_)]));
            // A repeated PUBREC gets PUBREL again.
            srv.send(&mut s, Packet::PubRec(Ack::new(id)));
            assert_eq!(srv.recv(&mut s), vec![Packet::PubRel(Ack::new(id))]);
            srv.send(&mut s, Packet::PubComp(Ack::new(id)));
            assert!(matches!(&events(&mut s)[..], [Event::PubComp(a)] if a.pkid == id));
            assert_eq!(ops(&mut s), vec![StoreOp::RemoveOutgoing { pkid: id }]);
            assert_eq!(s.inflight(), 0);
        }
    }

    #[test]
    fn qos2_incoming_is_delivered_exactly_once() {
        let (mut s, srv) = connected(Version::V5, Config::default(), None);
        let mut p = publish("t", QoS::ExactlyOnce, "once");
        p.pkid = 7;
        srv.send(&mut s, Packet::Publish(p.clone()));
        p.dup = true;
        srv.send(&mut s, Packet::Publish(p.clone()));
        let ev = events(&mut s);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(
            srv.recv(&mut s),
            vec![Packet::PubRec(Ack::new(7)), Packet::PubRec(Ack::new(7))]
        );
        assert_eq!(ops(&mut s), vec![StoreOp::AddIncoming { pkid: 7 }]);
        srv.send(&mut s, Packet::PubRel(Ack::new(7)));
        assert_eq!(srv.recv(&mut s), vec![Packet::PubComp(Ack::new(7))]);
        assert_eq!(ops(&mut s), vec![StoreOp::RemoveIncoming { pkid: 7 }]);
        // After PUBREL the id is free: a new message with it is delivered.
        p.dup = false;
        srv.send(&mut s, Packet::PubRel(Ack::new(7)));
        let sent = srv.recv(&mut s);
        assert!(
            matches!(&sent[..], [Packet::PubComp(a)] if a.reason == ReasonCode::PACKET_IDENTIFIER_NOT_FOUND)
        );
        srv.send(&mut s, Packet::Publish(p));
        assert_eq!(events(&mut s).len(), 1);
    }

    #[test]
    fn receive_maximum_is_the_window() {
        let mut l = limits();
        l.receive_max = Some(2);
        let (mut s, srv) = connected(Version::V5, Config::default(), Some(l));
        let ids: Vec<u16> = (0..5)
            .map(|i| {
                s.publish(publish("w", QoS::AtLeastOnce, format!("{i}")))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_eq!(srv.recv(&mut s).len(), 2);
        assert_eq!(s.inflight(), 2);
        assert_eq!(s.queued(), 5);
        srv.send(&mut s, Packet::PubAck(Ack::new(ids[0])));
        let sent = srv.recv(&mut s);
        assert!(matches!(&sent[..], [Packet::Publish(p)] if p.pkid == ids[2]));
        assert_eq!(s.inflight(), 2);
        for id in &ids[1..] {
            srv.send(&mut s, Packet::PubAck(Ack::new(*id)));
            assert!(s.inflight() <= 2);
        }
        assert_eq!(srv.recv(&mut s).len(), 2);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn keep_alive_pings_and_times_out() {
        let mut c = Config::default();
        c.keep_alive = Duration::from_secs(10);
        c.ping_timeout = Duration::from_secs(3);
        let (mut s, srv) = connected(Version::V311, c, None);
        let t0 = srv.t;
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(10)));
        s.handle_timeout(t0 + Duration::from_secs(9));
        assert!(srv.recv(&mut s).is_empty());
        s.handle_timeout(t0 + Duration::from_secs(10));
        assert_eq!(srv.recv(&mut s), vec![Packet::PingReq]);
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(13)));
        srv.send(&mut s, Packet::PingResp);
        assert_eq!(events(&mut s), vec![Event::Pong]);
        s.handle_timeout(t0 + Duration::from_secs(20));
        assert_eq!(srv.recv(&mut s), vec![Packet::PingReq]);
        s.handle_timeout(t0 + Duration::from_secs(23));
        assert_eq!(s.state(), SessionState::Disconnected);
        assert!(matches!(&events(&mut s)[..], [Event::Disconnected(d)]
            if d.reason == ReasonCode::KEEP_ALIVE_TIMEOUT && d.by == Initiator::Local));
    }

    #[test]
    fn connack_timeout() {
        let srv = Srv::new(Version::V5);
        let mut s = Session::new(Config::default(), "c".into()).unwrap();
        s.start(srv.t).unwrap();
        let d = s.poll_timeout().unwrap();
        s.handle_timeout(d);
        assert_eq!(s.state(), SessionState::Disconnected);
        assert!(
            matches!(&events(&mut s)[..], [Event::Disconnected(d)] if d.reason == ReasonCode::MAXIMUM_CONNECT_TIME)
        );
    }

    #[test]
    fn incoming_topic_aliases() {
        let mut c = Config::default();
        c.topic_alias_maximum = 4;
        let (mut s, srv) = connected(Version::V5, c.clone(), None);
        let mut p = publish("long/topic", QoS::AtMostOnce, "1");
        let mut props = publish_properties();
        props.topic_alias = Some(2);
        p.properties = Some(props);
        srv.send(&mut s, Packet::Publish(p.clone()));
        p.topic.clear();
        srv.send(&mut s, Packet::Publish(p.clone()));
        let ev = events(&mut s);
        assert_eq!(ev.len(), 2);
        assert!(
            ev.iter()
                .all(|e| matches!(e, Event::Publish(p) if p.topic == "long/topic"))
        );

        // An alias never set: protocol error.
        p.properties.as_mut().unwrap().topic_alias = Some(3);
        srv.send(&mut s, Packet::Publish(p.clone()));
        assert_eq!(
            last_disconnect(&srv.recv(&mut s)),
            Some(ReasonCode::PROTOCOL_ERROR)
        );
        assert_eq!(s.state(), SessionState::Disconnected);
        assert!(matches!(s.take_error(), Some(Error::Protocol { .. })));

        // An alias above our maximum: 0x94.
        let (mut s, srv) = connected(Version::V5, c, None);
        p.topic = "x".into();
        p.properties.as_mut().unwrap().topic_alias = Some(5);
        srv.send(&mut s, Packet::Publish(p));
        assert_eq!(
            last_disconnect(&srv.recv(&mut s)),
            Some(ReasonCode::TOPIC_ALIAS_INVALID)
        );
        assert!(
            matches!(&events(&mut s)[..], [Event::Disconnected(d)] if d.reason == ReasonCode::TOPIC_ALIAS_INVALID && d.by == Initiator::Local)
        );
    }

    #[test]
    fn outgoing_topic_aliases() {
        let mut l = limits();
        l.topic_alias_max = Some(1);
        let (mut s, srv) = connected(Version::V5, Config::default(), Some(l));
        s.publish(publish("a/long/topic", QoS::AtMostOnce, "1"))
            .unwrap();
        s.publish(publish("a/long/topic", QoS::AtMostOnce, "2"))
            .unwrap();
        s.publish(publish("other", QoS::AtMostOnce, "3")).unwrap();
        let sent = srv.recv(&mut s);
        let got: Vec<(String, Option<u16>)> = sent
            .iter()
            .map(|p| match p {
                Packet::Publish(p) => (
                    p.topic.clone(),
                    p.properties.as_ref().and_then(|x| x.topic_alias),
                ),
                _ => panic!(),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a/long/topic".into(), Some(1)),
                (String::new(), Some(1)),
                ("other".into(), None)
            ]
        );
    }

    #[test]
    fn connack_limits_are_honoured() {
        let mut l = limits();
        l.max_qos = Some(1);
        l.retain_available = Some(0);
        l.max_packet_size = Some(100);
        l.wildcard_subscription_available = Some(0);
        l.subscription_identifiers_available = Some(0);
        let (mut s, _srv) = connected(Version::V5, Config::default(), Some(l));
        assert!(matches!(
            s.publish(publish("a", QoS::ExactlyOnce, "x")),
            Err(Error::NotSupported(ReasonCode::QOS_NOT_SUPPORTED))
        ));
        let mut p = publish("a", QoS::AtMostOnce, "x");
        p.retain = true;
        assert!(matches!(
            s.publish(p),
            Err(Error::NotSupported(ReasonCode::RETAIN_NOT_SUPPORTED))
        ));
        assert!(matches!(
            s.publish(publish("a", QoS::AtMostOnce, vec![0u8; 200])),
            Err(Error::PacketTooLarge { max: 100, .. })
        ));
        assert!(matches!(
            s.subscribe(
                vec![SubscribeFilter::new(
                    "a/+".into(),
                    mqttbytes::QoS::AtMostOnce
                )],
                None
            ),
            Err(Error::NotSupported(
                ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
            ))
        ));
        let props = SubscribeProperties {
            id: Some(3),
            user_properties: vec![],
        };
        assert!(matches!(
            s.subscribe(
                vec![SubscribeFilter::new("a".into(), mqttbytes::QoS::AtMostOnce)],
                Some(props)
            ),
            Err(Error::NotSupported(
                ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED
            ))
        ));
    }

    #[test]
    fn queued_messages_over_new_limits_are_dropped() {
        let srv = Srv::new(Version::V5);
        let mut s = Session::new(Config::default(), "c".into()).unwrap();
        let id = s
            .publish(publish("a", QoS::ExactlyOnce, "x"))
            .unwrap()
            .unwrap();
        s.start(srv.t).unwrap();
        let _ = srv.recv(&mut s);
        let mut l = limits();
        l.max_qos = Some(1);
        srv.connack(&mut s, false, Some(l));
        assert!(srv.recv(&mut s).is_empty());
        let ev = events(&mut s);
        assert!(ev.contains(&Event::Dropped {
            pkid: id,
            reason: ReasonCode::QOS_NOT_SUPPORTED
        }));
        assert!(ops(&mut s).contains(&StoreOp::RemoveOutgoing { pkid: id }));
    }

    #[test]
    fn bad_connack_values_are_protocol_errors() {
        for set in [
            (|l: &mut ConnAckProperties| l.receive_max = Some(0)) as fn(&mut ConnAckProperties),
            |l| l.max_qos = Some(2),
            |l| l.max_packet_size = Some(0),
            |l| l.retain_available = Some(7),
        ] {
            let srv = Srv::new(Version::V5);
            let mut s = Session::new(Config::default(), "c".into()).unwrap();
            s.start(srv.t).unwrap();
            let _ = srv.recv(&mut s);
            let mut l = limits();
            set(&mut l);
            srv.connack(&mut s, false, Some(l));
            assert_eq!(s.state(), SessionState::Disconnected);
            assert!(
                matches!(&events(&mut s)[..], [Event::Disconnected(d)] if d.reason == ReasonCode::PROTOCOL_ERROR)
            );
        }
    }

    #[test]
    fn protocol_violations_close_with_reason_codes() {
        // PUBLISH before CONNACK.
        let srv = Srv::new(Version::V5);
        let mut s = Session::new(Config::default(), "c".into()).unwrap();
        s.start(srv.t).unwrap();
        let _ = srv.recv(&mut s);
        srv.send(&mut s, Packet::Publish(publish("a", QoS::AtMostOnce, "x")));
        assert!(
            matches!(&events(&mut s)[..], [Event::Disconnected(d)] if d.reason == ReasonCode::PROTOCOL_ERROR)
        );

        // A second CONNACK; a SUBSCRIBE from the server.
        for bad in [
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode::SUCCESS,
                properties: None,
            }),
            Packet::Subscribe(Subscribe::new("a", mqttbytes::QoS::AtMostOnce)),
            Packet::PingReq,
        ] {
            let (mut s, srv) = connected(Version::V5, Config::default(), None);
            let mut bad = bad;
            if let Packet::Subscribe(x) = &mut bad {
                x.pkid = 1;
            }
            srv.send(&mut s, bad);
            assert_eq!(
                last_disconnect(&srv.recv(&mut s)),
                Some(ReasonCode::PROTOCOL_ERROR)
            );
        }

        // An oversized packet: 0x95, detected from its header.
        let mut c = Config::default();
        c.max_incoming_packet = 64;
        let (mut s, srv) = connected(Version::V5, c, None);
        s.feed(srv.t, &[0x30, 0xFF, 0xFF, 0x03]);
        assert_eq!(
            last_disconnect(&srv.recv(&mut s)),
            Some(ReasonCode::PACKET_TOO_LARGE)
        );

        // Garbage: 0x81.
        let (mut s, srv) = connected(Version::V5, Config::default(), None);
        s.feed(srv.t, &[0x40, 0x02, 0x00, 0x00]);
        assert_eq!(
            last_disconnect(&srv.recv(&mut s)),
            Some(ReasonCode::MALFORMED_PACKET)
        );

        // Too many QoS 2 messages awaiting PUBREL: 0x93.
        let mut c = Config::default();
        c.receive_maximum = 2;
        let (mut s, srv) = connected(Version::V5, c, None);
        for id in 1..=3 {
            let mut p = publish("a", QoS::ExactlyOnce, "x");
            p.pkid = id;
            srv.send(&mut s, Packet::Publish(p));
        }
        assert_eq!(
            last_disconnect(&srv.recv(&mut s)),
            Some(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
        );

        // Session present after a clean start.
        let srv = Srv::new(Version::V5);
        let mut s = Session::new(Config::default(), "c".into()).unwrap();
        s.start(srv.t).unwrap();
        let _ = srv.recv(&mut s);
        srv.connack(&mut s, true, None);
        assert_eq!(s.state(), SessionState::Disconnected);
    }

    #[test]
    fn server_disconnect_is_an_event_with_its_reference() {
        let (mut s, srv) = connected(Version::V5, Config::default(), None);
        srv.send(
            &mut s,
            Packet::Disconnect(Disconnect {
                reason: ReasonCode::SERVER_MOVED,
                properties: Some(DisconnectProperties {
                    server_reference: Some("other:1883".into()),
                    ..DisconnectProperties::default()
                }),
            }),
        );
        let ev = events(&mut s);
        let [Event::Disconnected(d)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!(d.reason, ReasonCode::SERVER_MOVED);
        assert_eq!(d.by, Initiator::Remote);
        assert_eq!(
            d.properties.as_ref().unwrap().server_reference.as_deref(),
            Some("other:1883")
        );
        assert_eq!(s.state(), SessionState::Disconnected);
    }

    #[test]
    fn resume_resends_with_dup_and_resubscribes_when_the_session_was_lost() {
        let mut c = Config::default();
        c.clean_start = false;
        c.session_expiry = 3600;
        let (mut s, srv) = connected(Version::V5, c, None);
        let sub = s
            .subscribe(
                vec![SubscribeFilter::new(
                    "s/#".into(),
                    mqttbytes::QoS::AtLeastOnce,
                )],
                None,
            )
            .unwrap();
        let _ = srv.recv(&mut s);
        srv.send(
            &mut s,
            Packet::SubAck(SubAck {
                pkid: sub,
                codes: vec![ReasonCode::GRANTED_QOS_1],
                properties: None,
            }),
        );
        let a = s
            .publish(publish("p", QoS::AtLeastOnce, "1"))
            .unwrap()
            .unwrap();
        let b = s
            .publish(publish("p", QoS::ExactlyOnce, "2"))
            .unwrap()
            .unwrap();
        let _ = srv.recv(&mut s);
        srv.send(&mut s, Packet::PubRec(Ack::new(b)));
        let _ = srv.recv(&mut s);
        s.handle_transport_closed(srv.t);
        assert!(
            matches!(&events(&mut s)[..], [.., Event::Disconnected(d)] if d.by == Initiator::Remote)
        );
        assert_eq!(s.inflight(), 1); // the QoS 2 message waiting for PUBCOMP

        // Session present: no SUBSCRIBE, PUBREL again, PUBLISH again with DUP.
        s.start(srv.t).unwrap();
        let sent = srv.recv(&mut s);
        assert!(matches!(&sent[..], [Packet::Connect(c)] if !c.clean_session));
        srv.connack(&mut s, true, None);
        let sent = srv.recv(&mut s);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert_eq!(sent[0], Packet::PubRel(Ack::new(b)));
        assert!(matches!(&sent[1], Packet::Publish(p) if p.pkid == a && p.dup));

        // Session lost: SUBSCRIBE again too.
        s.handle_transport_closed(srv.t);
        s.start(srv.t).unwrap();
        let _ = srv.recv(&mut s);
        srv.connack(&mut s, false, None);
        let sent = srv.recv(&mut s);
        assert!(matches!(&sent[0], Packet::Subscribe(x) if x.filters[0].path == "s/#"));
        assert!(
            sent.iter()
                .any(|p| matches!(p, Packet::Publish(p) if p.pkid == a))
        );
        assert!(sent.contains(&Packet::PubRel(Ack::new(b))));
    }

    #[test]
    fn restore_brings_back_inflight_incoming_and_subscriptions() {
        let (mut s1, srv) = connected(Version::V311, Config::default(), None);
        let a = s1
            .publish(publish("p", QoS::AtLeastOnce, "1"))
            .unwrap()
            .unwrap();
        let b = s1
            .publish(publish("p", QoS::ExactlyOnce, "2"))
            .unwrap()
            .unwrap();
        let _ = srv.recv(&mut s1);
        srv.send(&mut s1, Packet::PubRec(Ack::new(b)));
        let mut p = publish("in", QoS::ExactlyOnce, "x");
        p.pkid = 40;
        srv.send(&mut s1, Packet::Publish(p.clone()));
        let sub = s1
            .subscribe(
                vec![SubscribeFilter::new(
                    "s/+".into(),
                    mqttbytes::QoS::ExactlyOnce,
                )],
                None,
            )
            .unwrap();
        srv.send(
            &mut s1,
            Packet::SubAck(SubAck {
                pkid: sub,
                codes: vec![ReasonCode::GRANTED_QOS_2],
                properties: None,
            }),
        );
        // Replay the store operations into a fake store.
        let mut stored = Stored::default();
        let mut out: BTreeMap<u16, (u64, bool, Bytes)> = BTreeMap::new();
        for op in ops(&mut s1) {
            match op {
                StoreOp::PutOutgoing { pkid, seq, packet } => {
                    out.insert(pkid, (seq, false, packet));
                }
                StoreOp::Released { pkid } => out.get_mut(&pkid).unwrap().1 = true,
                StoreOp::RemoveOutgoing { pkid } => {
                    out.remove(&pkid);
                }
                StoreOp::AddIncoming { pkid } => stored.incoming.push(pkid),
                StoreOp::PutSubscription { packet, .. } => stored.subscriptions.push(packet),
                other => panic!("{other:?}"),
            }
        }
        stored.outgoing = out.into_iter().map(|(k, (s, r, p))| (k, s, r, p)).collect();

        let mut c = Config::default();
        c.version = Version::V311;
        c.clean_start = false;
        let mut s2 = Session::new(c, "c1".into()).unwrap();
        s2.restore(stored).unwrap();
        assert_eq!(s2.subscriptions().collect::<Vec<_>>(), vec!["s/+"]);
        s2.start(srv.t).unwrap();
        let _ = srv.recv(&mut s2);
        srv.connack(&mut s2, true, None);
        let _ = events(&mut s2);
        let sent = srv.recv(&mut s2);
        assert_eq!(sent[0], Packet::PubRel(Ack::new(b)));
        assert!(
            matches!(&sent[1], Packet::Publish(p) if p.pkid == a && p.dup && &p.payload[..] == b"1")
        );
        // The incoming QoS 2 id is still known: its duplicate is not delivered again.
        p.dup = true;
        srv.send(&mut s2, Packet::Publish(p));
        assert!(events(&mut s2).is_empty());
        // New packet ids do not collide with restored ones.
        let n = s2
            .publish(publish("p", QoS::AtLeastOnce, "3"))
            .unwrap()
            .unwrap();
        assert!(n != a && n != b);
    }

    #[test]
    fn packet_ids_are_never_reused_while_in_flight() {
        let mut c = Config::default();
        c.max_queued = 70_000;
        let (mut s, srv) = connected(Version::V5, c, None);
        let mut ids = HashSet::new();
        for _ in 0..65_535 {
            let id = s
                .publish(publish("a", QoS::AtLeastOnce, ""))
                .unwrap()
                .unwrap();
            assert!(id != 0 && ids.insert(id));
        }
        assert!(matches!(
            s.publish(publish("a", QoS::AtLeastOnce, "")),
            Err(Error::NoPacketId)
        ));
        // Free one in the middle: it is the next one handed out, after the wrap.
        let _ = srv.recv(&mut s);
        srv.send(&mut s, Packet::PubAck(Ack::new(300)));
        assert_eq!(
            s.publish(publish("a", QoS::AtLeastOnce, "")).unwrap(),
            Some(300)
        );
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut c = Config::default();
        c.max_queued = 3;
        let mut s = Session::new(c, "c".into()).unwrap();
        for _ in 0..3 {
            s.publish(publish("a", QoS::AtLeastOnce, "")).unwrap();
        }
        assert!(matches!(
            s.publish(publish("a", QoS::AtMostOnce, "")),
            Err(Error::QueueFull(3))
        ));
        s.disconnect(ReasonCode::SUCCESS, None);
        assert!(matches!(
            s.publish(publish("a", QoS::AtMostOnce, "")),
            Err(Error::Closed)
        ));
        assert!(matches!(s.start(Instant::now()), Err(Error::Closed)));
    }

    #[test]
    fn offline_requests_go_out_after_connack() {
        let srv = Srv::new(Version::V311);
        let mut c = Config::default();
        c.version = Version::V311;
        let mut s = Session::new(c, "c".into()).unwrap();
        let sub = s
            .subscribe(
                vec![SubscribeFilter::new("x".into(), mqttbytes::QoS::AtMostOnce)],
                None,
            )
            .unwrap();
        s.publish(publish("x", QoS::AtMostOnce, "q0")).unwrap();
        s.start(srv.t).unwrap();
        let _ = srv.recv(&mut s);
        srv.connack(&mut s, false, None);
        let sent = srv.recv(&mut s);
        assert!(matches!(&sent[..], [Packet::Subscribe(x), Packet::Publish(_)] if x.pkid == sub));
        srv.send(
            &mut s,
            Packet::SubAck(SubAck {
                pkid: sub,
                codes: vec![ReasonCode(0x80)],
                properties: None,
            }),
        );
        let ev = events(&mut s);
        assert!(
            matches!(&ev[..], [Event::Connected(_), Event::SubAck(a)] if a.codes == vec![ReasonCode(0x80)])
        );
        assert_eq!(s.subscriptions().count(), 0);
    }

    #[test]
    fn auth_exchange_during_connect() {
        let mut c = Config::default();
        let mut props = connect_properties();
        props.authentication_method = Some("TEST".into());
        c.connect_properties = Some(props);
        let srv = Srv::new(Version::V5);
        let mut s = Session::new(c, "c".into()).unwrap();
        s.start(srv.t).unwrap();
        let _ = srv.recv(&mut s);
        srv.send(
            &mut s,
            Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: Some(AuthProperties {
                    method: Some("TEST".into()),
                    data: Some(Bytes::from_static(b"challenge")),
                    ..AuthProperties::default()
                }),
            }),
        );
        assert!(
            matches!(&events(&mut s)[..], [Event::Auth(a)] if a.reason == ReasonCode::CONTINUE_AUTHENTICATION)
        );
        s.auth(
            ReasonCode::CONTINUE_AUTHENTICATION,
            AuthProperties {
                method: Some("TEST".into()),
                data: Some(Bytes::from_static(b"response")),
                ..AuthProperties::default()
            },
        )
        .unwrap();
        assert!(
            matches!(&srv.recv(&mut s)[..], [Packet::Auth(a)] if a.properties.as_ref().unwrap().data.as_deref() == Some(&b"response"[..]))
        );
        srv.connack(&mut s, false, None);
        assert_eq!(s.state(), SessionState::Connected);
    }
}
