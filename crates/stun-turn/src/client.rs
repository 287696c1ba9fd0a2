//! The sans-IO STUN/TURN client: Binding, Allocate with the 401/438 challenge flow, automatic
//! refresh of the allocation, permissions and channels, Send/Data indications and ChannelData,
//! RFC 6062 Connect/ConnectionBind. No sockets, no clock reads.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::attr::{ErrorCode, PasswordAlgorithm, RelayProtocol};
use crate::channel::{ChannelData, FrameKind, MAX_CHANNEL, MIN_CHANNEL, frame_kind};
use crate::error::{ConfigError, Error};
use crate::integrity::Key;
use crate::message::{
    Class, DecodeLimits, Message, MessageEncoder, MessageType, Method, TransactionId,
};
use crate::random::{BoxedRandom, RandomSource};
use crate::transaction::{RetransmitConfig, TimerAction, TransactionTimer};

/// A hook that sees every request the client encodes, just before MESSAGE-INTEGRITY and
/// FINGERPRINT are added, and may add attributes to it ([`ClientConfig::before_send`]).
pub type BeforeSend = Arc<dyn Fn(&Request, &mut MessageEncoder<'_>) + Send + Sync>;

/// Client configuration.
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Long-term credential user name. Default: `None` (Binding only).
    pub username: Option<String>,
    /// Long-term credential password. Default: `None`.
    pub password: Option<String>,
    /// Whether the transport to the server is reliable (TCP/TLS): no retransmissions, and
    /// ChannelData is padded. Default: `false` (UDP).
    pub reliable: bool,
    /// Retransmission timers. Default: [`RetransmitConfig::default`].
    pub retransmit: RetransmitConfig,
    /// Allocation lifetime asked for. Default: [`ClientConfig::DEFAULT_LIFETIME`] (600 s).
    pub lifetime: Duration,
    /// Refresh permissions this long after installing them (they last 300 s).
    /// Default: [`ClientConfig::DEFAULT_PERMISSION_REFRESH`] (240 s).
    pub permission_refresh: Duration,
    /// Refresh channel bindings this long after binding (they last 600 s).
    /// Default: [`ClientConfig::DEFAULT_CHANNEL_REFRESH`] (540 s).
    pub channel_refresh: Duration,
    /// SOFTWARE sent with requests. Default: `None`.
    pub software: Option<String>,
    /// Whether requests carry FINGERPRINT. Default: `true`.
    pub fingerprint: bool,
    /// Most transactions in flight. Default: [`ClientConfig::DEFAULT_MAX_TRANSACTIONS`] (64).
    pub max_transactions: usize,
    /// How many 438 Stale Nonce answers one request may get before it fails.
    /// Default: [`ClientConfig::DEFAULT_MAX_AUTH_RETRIES`] (3).
    pub max_auth_retries: u32,
    /// Decoder limits. Default: [`DecodeLimits::default`].
    pub limits: DecodeLimits,
    /// Use [`ClientConfig::username`] and [`ClientConfig::password`] as short-term credentials
    /// (RFC 8489 section 9.1): every request, Binding included, carries USERNAME and
    /// MESSAGE-INTEGRITY keyed with the password, with no realm, nonce or 401 round trip.
    /// Default: `false` (long-term credentials, as TURN needs).
    pub short_term: bool,
    /// Called for every request while it is encoded (first sends, retransmissions reuse the
    /// bytes); it can add attributes, which MESSAGE-INTEGRITY then covers. Default: `None`.
    pub before_send: Option<BeforeSend>,
    /// How many 300 Try Alternate redirects [`crate::net::TurnClient`] follows for one Binding or
    /// Allocate before it gives up with [`Error::Redirected`] (0: never follow). The sans-IO
    /// client reports a redirect as [`Failure::Redirect`]: following it means a new transport.
    /// Default: [`ClientConfig::DEFAULT_MAX_REDIRECTS`] (3).
    pub max_redirects: u32,
}

impl ClientConfig {
    /// Default of [`ClientConfig::max_redirects`].
    pub const DEFAULT_MAX_REDIRECTS: u32 = 3;
    /// Default of [`ClientConfig::lifetime`].
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
    /// Default of [`ClientConfig::permission_refresh`].
    pub const DEFAULT_PERMISSION_REFRESH: Duration = Duration::from_secs(240);
    /// Default of [`ClientConfig::channel_refresh`].
    pub const DEFAULT_CHANNEL_REFRESH: Duration = Duration::from_secs(540);
    /// Default of [`ClientConfig::max_transactions`].
    pub const DEFAULT_MAX_TRANSACTIONS: usize = 64;
    /// Default of [`ClientConfig::max_auth_retries`].
    pub const DEFAULT_MAX_AUTH_RETRIES: u32 = 3;

    /// A configuration with long-term credentials.
    pub fn with_credentials(username: &str, password: &str) -> Self {
        Self {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Self::default()
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`ConfigError::OutOfRange`] or [`ConfigError::Requires`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.retransmit.validate()?;
        if self.username.is_some() != self.password.is_some() {
            return Err(ConfigError::Requires {
                field: "username",
                needs: "password (set both or neither)",
            });
        }
        if self.short_term && self.username.is_none() {
            return Err(ConfigError::Requires {
                field: "short_term",
                needs: "username and password",
            });
        }
        if self.lifetime.is_zero()
            || self.permission_refresh.is_zero()
            || self.channel_refresh.is_zero()
        {
            return Err(ConfigError::OutOfRange {
                field: "lifetime, permission_refresh and channel_refresh",
                rule: "positive",
            });
        }
        if self.max_transactions == 0 {
            return Err(ConfigError::OutOfRange {
                field: "max_transactions",
                rule: "positive",
            });
        }
        Ok(())
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            username: None,
            password: None,
            reliable: false,
            retransmit: RetransmitConfig::default(),
            lifetime: Self::DEFAULT_LIFETIME,
            permission_refresh: Self::DEFAULT_PERMISSION_REFRESH,
            channel_refresh: Self::DEFAULT_CHANNEL_REFRESH,
            software: None,
            fingerprint: true,
            max_transactions: Self::DEFAULT_MAX_TRANSACTIONS,
            max_auth_retries: Self::DEFAULT_MAX_AUTH_RETRIES,
            limits: DecodeLimits::default(),
            short_term: false,
            before_send: None,
            max_redirects: Self::DEFAULT_MAX_REDIRECTS,
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("reliable", &self.reliable)
            .field("lifetime", &self.lifetime)
            .field("short_term", &self.short_term)
            .field("before_send", &self.before_send.as_ref().map(|_| "<hook>"))
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

/// The request a transaction carries.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// Binding.
    Binding,
    /// Allocate for a UDP or TCP relay.
    Allocate(RelayProtocol),
    /// Refresh with this lifetime (0 deletes the allocation).
    Refresh(u32),
    /// CreatePermission for these peers.
    CreatePermission(Vec<SocketAddr>),
    /// ChannelBind.
    ChannelBind {
        /// Channel number.
        channel: u16,
        /// Peer.
        peer: SocketAddr,
    },
    /// RFC 6062 Connect.
    Connect(SocketAddr),
    /// RFC 6062 ConnectionBind.
    ConnectionBind(u32),
}

impl Request {
    fn method(&self) -> Method {
        match self {
            Self::Binding => Method::BINDING,
            Self::Allocate(_) => Method::ALLOCATE,
            Self::Refresh(_) => Method::REFRESH,
            Self::CreatePermission(_) => Method::CREATE_PERMISSION,
            Self::ChannelBind { .. } => Method::CHANNEL_BIND,
            Self::Connect(_) => Method::CONNECT,
            Self::ConnectionBind(_) => Method::CONNECTION_BIND,
        }
    }
}

/// Why a request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The server answered with an error.
    Error {
        /// Code.
        code: ErrorCode,
        /// Reason phrase.
        reason: String,
    },
    /// No answer before the transaction timeout.
    Timeout,
    /// The server redirected to another server (300 Try Alternate).
    Redirect(SocketAddr),
    /// A success response lacked a mandatory attribute.
    Malformed,
}

/// What happened, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Binding succeeded.
    Binding {
        /// The reflexive (server-observed) address.
        reflexive: SocketAddr,
    },
    /// Allocate succeeded.
    Allocated {
        /// The relayed address peers send to.
        relayed: SocketAddr,
        /// The reflexive address.
        reflexive: Option<SocketAddr>,
        /// Lifetime granted.
        lifetime: Duration,
        /// RESERVATION-TOKEN, when EVEN-PORT with the R bit was granted.
        reservation_token: Option<[u8; 8]>,
    },
    /// Refresh succeeded (lifetime 0: the allocation is gone).
    Refreshed {
        /// Lifetime granted.
        lifetime: Duration,
    },
    /// Permissions installed or refreshed.
    PermissionCreated {
        /// Peers.
        peers: Vec<SocketAddr>,
    },
    /// A channel is bound (or refreshed).
    ChannelBound {
        /// Channel number.
        channel: u16,
        /// Peer.
        peer: SocketAddr,
    },
    /// RFC 6062: the server connected to the peer; bind a data connection with this id.
    Connected {
        /// Peer.
        peer: SocketAddr,
        /// Connection id.
        connection_id: u32,
    },
    /// RFC 6062: a peer connected to the relay; bind a data connection with this id.
    ConnectionAttempt {
        /// Peer.
        peer: SocketAddr,
        /// Connection id.
        connection_id: u32,
    },
    /// RFC 6062: ConnectionBind succeeded; this connection now carries raw peer data.
    ConnectionBound {
        /// Connection id.
        connection_id: u32,
    },
    /// Data from a peer that came in a Data indication (no channel bound to the peer).
    Data {
        /// Peer.
        peer: SocketAddr,
        /// Payload.
        data: Vec<u8>,
    },
    /// Data from a peer that came as ChannelData on a bound channel.
    ChannelData {
        /// Channel number.
        channel: u16,
        /// The peer bound to the channel.
        peer: SocketAddr,
        /// Payload.
        data: Vec<u8>,
    },
    /// A request failed.
    Failed {
        /// The request.
        request: Request,
        /// Why.
        failure: Failure,
    },
}

#[derive(Clone)]
struct AuthState {
    realm: String,
    nonce: String,
    key: Key,
    sha256: bool,
}

struct Transaction {
    request: Request,
    bytes: Vec<u8>,
    timer: TransactionTimer,
    authed: bool,
    retries: u32,
    even_port: Option<bool>,
    reservation: Option<[u8; 8]>,
}

struct ChannelState {
    peer: SocketAddr,
    confirmed: bool,
    refresh_at: Instant,
}

/// The client state machine for one server connection (one 5-tuple).
///
/// Commands ([`Client::binding`], [`Client::allocate`], [`Client::create_permission`],
/// [`Client::bind_channel`], [`Client::refresh`], [`Client::connect`]) queue requests; send what
/// [`Client::poll_transmit`] returns; feed every datagram/frame from the server to
/// [`Client::handle_input`]; drain [`Client::poll_event`]; call [`Client::handle_timeout`] at
/// [`Client::poll_timeout`] (retransmissions, timeouts and automatic refreshes).
/// [`Client::send_to`] writes application data for a peer directly into a caller buffer.
pub struct Client {
    cfg: ClientConfig,
    rng: BoxedRandom,
    /// The key of short-term credentials ([`ClientConfig::short_term`]).
    short_key: Option<Key>,
    auth: Option<AuthState>,
    transactions: HashMap<TransactionId, Transaction>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    relayed: Option<SocketAddr>,
    reflexive: Option<SocketAddr>,
    protocol: Option<RelayProtocol>,
    refresh_at: Option<Instant>,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, ChannelState>,
    channel_of: HashMap<SocketAddr, u16>,
    next_channel: u16,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("relayed", &self.relayed)
            .field("reflexive", &self.reflexive)
            .field("transactions", &self.transactions.len())
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client that draws its transaction ids from `random` (the runtime passes
    /// [`crate::net::OsRandom`]; a test can pass a fixed sequence and replay an exchange).
    ///
    /// # Errors
    /// [`Error::Config`] when the configuration is invalid.
    pub fn new(cfg: ClientConfig, random: impl RandomSource + 'static) -> Result<Self, Error> {
        cfg.validate()?;
        let short_key = cfg
            .password
            .as_deref()
            .filter(|_| cfg.short_term)
            .map(Key::short_term);
        Ok(Self {
            short_key,
            cfg,
            rng: BoxedRandom::new(random),
            auth: None,
            transactions: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            relayed: None,
            reflexive: None,
            protocol: None,
            refresh_at: None,
            permissions: HashMap::new(),
            channels: HashMap::new(),
            channel_of: HashMap::new(),
            next_channel: MIN_CHANNEL,
        })
    }

    /// A client for an RFC 6062 data connection that reuses this client's credentials and nonce,
    /// so its ConnectionBind is authenticated at once; it draws transaction ids from `random`.
    ///
    /// # Errors
    /// [`Error::Config`] as [`Client::new`].
    pub fn data_connection(&self, random: impl RandomSource + 'static) -> Result<Self, Error> {
        let mut c = Self::new(
            ClientConfig {
                reliable: true,
                ..self.cfg.clone()
            },
            random,
        )?;
        c.auth = self.auth.clone();
        Ok(c)
    }

    /// The relayed address, once allocated.
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// The reflexive address, once learned.
    pub fn reflexive(&self) -> Option<SocketAddr> {
        self.reflexive
    }

    /// The channel bound (and confirmed) to `peer`, if any.
    pub fn channel_of(&self, peer: SocketAddr) -> Option<u16> {
        let ch = *self.channel_of.get(&peer)?;
        self.channels.get(&ch).filter(|c| c.confirmed).map(|_| ch)
    }

    /// Whether a permission for `ip` is installed.
    pub fn has_permission(&self, ip: IpAddr) -> bool {
        self.permissions.contains_key(&ip)
    }

    /// Transactions in flight.
    pub fn transactions(&self) -> usize {
        self.transactions.len()
    }

    /// Next message to send to the server.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// Next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Client::handle_timeout`] should run next, if anything is scheduled.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = self.transactions.values().map(|t| t.timer.deadline());
        let r = self.refresh_at.into_iter();
        let p = self.permissions.values().copied();
        let c = self
            .channels
            .values()
            .filter(|c| c.confirmed)
            .map(|c| c.refresh_at);
        t.chain(r).chain(p).chain(c).min()
    }

    // ---------------------------------------------------------------- commands

    /// Sends a Binding request.
    ///
    /// # Errors
    /// [`Error::TooManyTransactions`] when too many transactions are in flight; [`Error::Random`].
    pub fn binding(&mut self, now: Instant) -> Result<TransactionId, Error> {
        self.start(now, Request::Binding, None, None)
    }

    /// Sends an Allocate request for a relay of `protocol`.
    ///
    /// # Errors
    /// [`Error::TooManyTransactions`], [`Error::Random`]; [`Error::Config`] without credentials.
    pub fn allocate(
        &mut self,
        now: Instant,
        protocol: RelayProtocol,
    ) -> Result<TransactionId, Error> {
        self.allocate_with(now, protocol, None, None)
    }

    /// Sends an Allocate request with EVEN-PORT (`Some(reserve_next)`) or a RESERVATION-TOKEN.
    ///
    /// # Errors
    /// As [`Client::allocate`].
    pub fn allocate_with(
        &mut self,
        now: Instant,
        protocol: RelayProtocol,
        even_port: Option<bool>,
        reservation: Option<[u8; 8]>,
    ) -> Result<TransactionId, Error> {
        if self.cfg.username.is_none() {
            return Err(ConfigError::Requires {
                field: "Allocate",
                needs: "credentials (username and password)",
            }
            .into());
        }
        self.start(now, Request::Allocate(protocol), even_port, reservation)
    }

    /// Sends a Refresh; `lifetime` 0 deletes the allocation.
    ///
    /// # Errors
    /// [`Error::NoAllocation`], [`Error::TooManyTransactions`], [`Error::Random`].
    pub fn refresh(&mut self, now: Instant, lifetime: u32) -> Result<TransactionId, Error> {
        if self.relayed.is_none() {
            return Err(Error::NoAllocation);
        }
        self.start(now, Request::Refresh(lifetime), None, None)
    }

    /// Installs permissions for the peers' IP addresses; they are refreshed automatically.
    ///
    /// # Errors
    /// [`Error::NoAllocation`], [`Error::TooManyTransactions`], [`Error::Random`].
    pub fn create_permission(
        &mut self,
        now: Instant,
        peers: &[SocketAddr],
    ) -> Result<TransactionId, Error> {
        if self.relayed.is_none() {
            return Err(Error::NoAllocation);
        }
        self.start(now, Request::CreatePermission(peers.to_vec()), None, None)
    }

    /// Binds a channel to `peer` (which also installs its permission) and returns the channel
    /// number; [`Client::send_to`] uses it once the server confirmed. Refreshed automatically.
    ///
    /// # Errors
    /// [`Error::NoAllocation`], [`Error::TooManyTransactions`], [`Error::NoFreeChannel`].
    pub fn bind_channel(&mut self, now: Instant, peer: SocketAddr) -> Result<u16, Error> {
        if self.relayed.is_none() {
            return Err(Error::NoAllocation);
        }
        let channel = match self.channel_of.get(&peer) {
            Some(c) => *c,
            None => {
                if self.next_channel > MAX_CHANNEL {
                    return Err(Error::NoFreeChannel);
                }
                let c = self.next_channel;
                self.next_channel += 1;
                c
            }
        };
        self.start(now, Request::ChannelBind { channel, peer }, None, None)?;
        self.channel_of.insert(peer, channel);
        self.channels.entry(channel).or_insert(ChannelState {
            peer,
            confirmed: false,
            refresh_at: now,
        });
        Ok(channel)
    }

    /// RFC 6062: asks the server to open a TCP connection to `peer`.
    ///
    /// # Errors
    /// [`Error::NoAllocation`], [`Error::TooManyTransactions`], [`Error::Random`].
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) -> Result<TransactionId, Error> {
        if self.relayed.is_none() {
            return Err(Error::NoAllocation);
        }
        self.start(now, Request::Connect(peer), None, None)
    }

    /// RFC 6062: binds this (data) connection to `connection_id`. Use on a client made with
    /// [`Client::data_connection`] over a new TCP connection.
    ///
    /// # Errors
    /// [`Error::TooManyTransactions`], [`Error::Random`].
    pub fn connection_bind(
        &mut self,
        now: Instant,
        connection_id: u32,
    ) -> Result<TransactionId, Error> {
        self.start(now, Request::ConnectionBind(connection_id), None, None)
    }

    /// Appends application data for `peer` to `out`: ChannelData when a channel is bound, else a
    /// Send indication (which needs a permission on the server).
    ///
    /// # Errors
    /// [`Error::NoAllocation`]; [`Error::Encode`] when the data is too large; [`Error::Random`].
    pub fn send_to(
        &mut self,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.relayed.is_none() {
            return Err(Error::NoAllocation);
        }
        if let Some(ch) = self.channel_of(peer) {
            ChannelData::encode(ch, data, self.cfg.reliable, out)
                .map_err(|_| Error::Encode(crate::EncodeError::TooLong))?;
            return Ok(());
        }
        let tid = TransactionId::from_random(&mut *self.rng.0)?;
        let start = out.len();
        let mut e =
            MessageEncoder::new(out, MessageType::new(Method::SEND, Class::Indication), tid);
        e.xor_peer_address(peer).data(data);
        if self.cfg.fingerprint {
            e.fingerprint();
        }
        if let Err(err) = e.finish() {
            out.truncate(start);
            return Err(err.into());
        }
        Ok(())
    }

    fn start(
        &mut self,
        now: Instant,
        request: Request,
        even_port: Option<bool>,
        reservation: Option<[u8; 8]>,
    ) -> Result<TransactionId, Error> {
        if self.transactions.len() >= self.cfg.max_transactions {
            return Err(Error::TooManyTransactions {
                max: self.cfg.max_transactions,
            });
        }
        let tid = TransactionId::from_random(&mut *self.rng.0)?;
        let authed = self.cfg.short_term || (request != Request::Binding && self.auth.is_some());
        let bytes = self.encode_request(&request, tid, authed, even_port, reservation)?;
        self.transmits.push_back(bytes.clone());
        let timer = TransactionTimer::new(now, self.cfg.reliable, &self.cfg.retransmit);
        self.transactions.insert(
            tid,
            Transaction {
                request,
                bytes,
                timer,
                authed,
                retries: 0,
                even_port,
                reservation,
            },
        );
        Ok(tid)
    }

    fn encode_request(
        &self,
        request: &Request,
        tid: TransactionId,
        authed: bool,
        even_port: Option<bool>,
        reservation: Option<[u8; 8]>,
    ) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(128);
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(request.method(), Class::Request),
            tid,
        );
        match request {
            Request::Binding => {}
            Request::Allocate(p) => {
                e.requested_transport(*p);
                e.lifetime(self.cfg.lifetime.as_secs().min(u64::from(u32::MAX)) as u32);
                if let Some(r) = even_port {
                    e.even_port(r);
                }
                if let Some(t) = &reservation {
                    e.reservation_token(t);
                }
            }
            Request::Refresh(l) => {
                e.lifetime(*l);
            }
            Request::CreatePermission(peers) => {
                for p in peers {
                    e.xor_peer_address(*p);
                }
            }
            Request::ChannelBind { channel, peer } => {
                e.channel_number(*channel).xor_peer_address(*peer);
            }
            Request::Connect(peer) => {
                e.xor_peer_address(*peer);
            }
            Request::ConnectionBind(id) => {
                e.connection_id(*id);
            }
        }
        if let Some(s) = &self.cfg.software {
            e.software(s);
        }
        if let Some(hook) = &self.cfg.before_send {
            hook(request, &mut e);
        }
        if authed
            && self.cfg.short_term
            && let (Some(user), Some(key)) = (&self.cfg.username, &self.short_key)
        {
            e.username(user).message_integrity(key);
        } else if authed && let (Some(a), Some(user)) = (&self.auth, &self.cfg.username) {
            e.username(user).realm(&a.realm).nonce(&a.nonce);
            if a.sha256 {
                e.password_algorithms(&[PasswordAlgorithm::Md5, PasswordAlgorithm::Sha256])
                    .password_algorithm(PasswordAlgorithm::Sha256)
                    .message_integrity_sha256(&a.key);
            } else {
                e.message_integrity(&a.key);
            }
        }
        if self.cfg.fingerprint {
            e.fingerprint();
        }
        e.finish()?;
        Ok(out)
    }

    // ---------------------------------------------------------------- input

    /// Handles one datagram (UDP) or frame (TCP) from the server.
    pub fn handle_input(&mut self, now: Instant, data: &[u8]) {
        match frame_kind(data) {
            Ok(FrameKind::ChannelData) => {
                if let Ok(cd) = ChannelData::decode(data)
                    && let Some(c) = self.channels.get(&cd.channel)
                {
                    self.events.push_back(ClientEvent::ChannelData {
                        channel: cd.channel,
                        peer: c.peer,
                        data: cd.data.to_vec(),
                    });
                }
            }
            Ok(FrameKind::Stun) => {
                let Ok(msg) = Message::decode(data, &self.cfg.limits) else {
                    return;
                };
                if msg.verify_fingerprint().is_err() {
                    return;
                }
                match msg.class() {
                    Class::Indication => self.indication(&msg),
                    Class::Success | Class::Error => self.response(now, &msg),
                    Class::Request => {}
                }
            }
            Err(_) => {}
        }
    }

    fn indication(&mut self, msg: &Message<'_>) {
        let Ok(Some(peer)) = msg.xor_peer_address() else {
            return;
        };
        match msg.method() {
            Method::DATA => {
                if let Some(d) = msg.data() {
                    self.events.push_back(ClientEvent::Data {
                        peer,
                        data: d.to_vec(),
                    });
                }
            }
            Method::CONNECTION_ATTEMPT => {
                if let Ok(Some(connection_id)) = msg.connection_id() {
                    self.events.push_back(ClientEvent::ConnectionAttempt {
                        peer,
                        connection_id,
                    });
                }
            }
            _ => {}
        }
    }

    fn fail(&mut self, request: Request, failure: Failure) {
        if let Request::ChannelBind { channel, peer } = &request
            && self.channels.get(channel).is_some_and(|c| !c.confirmed)
        {
            self.channels.remove(channel);
            self.channel_of.remove(peer);
        }
        self.events
            .push_back(ClientEvent::Failed { request, failure });
    }

    fn response(&mut self, now: Instant, msg: &Message<'_>) {
        let tid = msg.transaction_id();
        let Some(tx) = self.transactions.get(&tid) else {
            return;
        };
        if msg.method() != tx.request.method() {
            return;
        }
        // Responses to authenticated requests must carry valid integrity (401/438 are unsigned).
        let key = if self.cfg.short_term {
            self.short_key.as_ref()
        } else {
            self.auth.as_ref().map(|a| &a.key)
        };
        if tx.authed
            && let Some(key) = key
        {
            let signed = msg.has_integrity() || msg.has_integrity_sha256();
            if signed && msg.verify_any_integrity(key).is_err() {
                return;
            }
            if !signed && msg.class() == Class::Success {
                return;
            }
        }
        let Some(tx) = self.transactions.remove(&tid) else {
            return;
        };
        if msg.class() == Class::Error {
            let (code, reason) = match msg.error_code() {
                Ok(Some((c, r))) => (c, r.to_string()),
                _ => (
                    ErrorCode::SERVER_ERROR,
                    String::from("malformed error response"),
                ),
            };
            self.error_response(now, msg, tx, code, reason);
            return;
        }
        let reflexive = msg.reflexive_address().ok().flatten();
        if reflexive.is_some() {
            self.reflexive = reflexive;
        }
        match tx.request {
            Request::Binding => match reflexive {
                Some(r) => self.events.push_back(ClientEvent::Binding { reflexive: r }),
                None => self.fail(Request::Binding, Failure::Malformed),
            },
            Request::Allocate(p) => {
                let Ok(Some(relayed)) = msg.xor_relayed_address() else {
                    return self.fail(tx.request, Failure::Malformed);
                };
                let lifetime =
                    Duration::from_secs(u64::from(msg.lifetime().ok().flatten().unwrap_or(600)));
                self.relayed = Some(relayed);
                self.protocol = Some(p);
                self.refresh_at = Some(now + refresh_delay(lifetime));
                let reservation_token = msg.reservation_token().ok().flatten();
                self.events.push_back(ClientEvent::Allocated {
                    relayed,
                    reflexive,
                    lifetime,
                    reservation_token,
                });
            }
            Request::Refresh(_) => {
                let lifetime =
                    Duration::from_secs(u64::from(msg.lifetime().ok().flatten().unwrap_or(0)));
                if lifetime.is_zero() {
                    self.clear_allocation();
                } else {
                    self.refresh_at = Some(now + refresh_delay(lifetime));
                }
                self.events.push_back(ClientEvent::Refreshed { lifetime });
            }
            Request::CreatePermission(peers) => {
                for p in &peers {
                    self.permissions
                        .insert(p.ip(), now + self.cfg.permission_refresh);
                }
                self.events
                    .push_back(ClientEvent::PermissionCreated { peers });
            }
            Request::ChannelBind { channel, peer } => {
                if let Some(c) = self.channels.get_mut(&channel) {
                    c.confirmed = true;
                    c.refresh_at = now + self.cfg.channel_refresh;
                }
                // The binding installs the peer's permission too; refreshing the channel keeps it.
                self.events
                    .push_back(ClientEvent::ChannelBound { channel, peer });
            }
            Request::Connect(peer) => match msg.connection_id() {
                Ok(Some(connection_id)) => self.events.push_back(ClientEvent::Connected {
                    peer,
                    connection_id,
                }),
                _ => self.fail(tx.request, Failure::Malformed),
            },
            Request::ConnectionBind(connection_id) => {
                self.events
                    .push_back(ClientEvent::ConnectionBound { connection_id });
            }
        }
    }

    fn error_response(
        &mut self,
        now: Instant,
        msg: &Message<'_>,
        mut tx: Transaction,
        code: ErrorCode,
        reason: String,
    ) {
        let challenge = matches!(code, ErrorCode::UNAUTHORIZED | ErrorCode::STALE_NONCE);
        let can_retry = challenge
            && !self.cfg.short_term
            && self.cfg.username.is_some()
            && (code == ErrorCode::STALE_NONCE || !tx.authed)
            && tx.retries < self.cfg.max_auth_retries;
        if can_retry
            && let (Ok(Some(realm)), Ok(Some(nonce))) = (msg.realm(), msg.nonce())
            && let (Some(user), Some(pass)) = (&self.cfg.username, &self.cfg.password)
        {
            // RFC 8489 §9.2: SHA-256 when the nonce cookie and the algorithm list offer it.
            let sha256 = nonce.starts_with("obMatJos2")
                && msg
                    .password_algorithms()
                    .ok()
                    .flatten()
                    .is_some_and(|l| l.contains(&PasswordAlgorithm::Sha256.code()));
            let alg = if sha256 {
                PasswordAlgorithm::Sha256
            } else {
                PasswordAlgorithm::Md5
            };
            let key = match &self.auth {
                Some(a) if a.realm == realm && a.sha256 == sha256 => a.key.clone(),
                _ => Key::long_term_with(alg, user, realm, pass),
            };
            self.auth = Some(AuthState {
                realm: realm.into(),
                nonce: nonce.into(),
                key,
                sha256,
            });
            let Ok(tid) = TransactionId::from_random(&mut *self.rng.0) else {
                return self.fail(tx.request, Failure::Error { code, reason });
            };
            match self.encode_request(&tx.request, tid, true, tx.even_port, tx.reservation) {
                Ok(bytes) => {
                    self.transmits.push_back(bytes.clone());
                    tx.bytes = bytes;
                    tx.authed = true;
                    tx.retries += 1;
                    tx.timer = TransactionTimer::new(now, self.cfg.reliable, &self.cfg.retransmit);
                    self.transactions.insert(tid, tx);
                }
                Err(_) => self.fail(tx.request, Failure::Error { code, reason }),
            }
            return;
        }
        let failure = match (code, msg.alternate_server()) {
            (ErrorCode::TRY_ALTERNATE, Ok(Some(a))) => Failure::Redirect(a),
            _ => Failure::Error { code, reason },
        };
        if matches!(tx.request, Request::Refresh(_)) && code == ErrorCode::ALLOCATION_MISMATCH {
            self.clear_allocation();
        }
        self.fail(tx.request, failure);
    }

    fn clear_allocation(&mut self) {
        self.relayed = None;
        self.refresh_at = None;
        self.permissions.clear();
        self.channels.clear();
        self.channel_of.clear();
    }

    /// Retransmits, times out, and refreshes what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut dead = Vec::new();
        for (tid, tx) in &mut self.transactions {
            match tx.timer.handle_timeout(now) {
                TimerAction::Wait => {}
                TimerAction::Retransmit => self.transmits.push_back(tx.bytes.clone()),
                TimerAction::TimedOut => dead.push(*tid),
            }
        }
        for tid in dead {
            if let Some(tx) = self.transactions.remove(&tid) {
                self.fail(tx.request, Failure::Timeout);
            }
        }
        if self.relayed.is_none() {
            return;
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            let lifetime = self.cfg.lifetime.as_secs().min(u64::from(u32::MAX)) as u32;
            if self
                .start(now, Request::Refresh(lifetime), None, None)
                .is_err()
            {
                self.refresh_at = Some(now + Duration::from_secs(1));
            }
        }
        let due: Vec<IpAddr> = self
            .permissions
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(ip, _)| *ip)
            .collect();
        if !due.is_empty() {
            // Pushed forward now; the success response sets the next refresh.
            for ip in &due {
                self.permissions
                    .insert(*ip, now + self.cfg.permission_refresh);
            }
            let peers: Vec<SocketAddr> = due.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            let _ = self.start(now, Request::CreatePermission(peers), None, None);
        }
        let due: Vec<(u16, SocketAddr)> = self
            .channels
            .iter()
            .filter(|(_, c)| c.confirmed && c.refresh_at <= now)
            .map(|(n, c)| (*n, c.peer))
            .collect();
        for (channel, peer) in due {
            if let Some(c) = self.channels.get_mut(&channel) {
                c.refresh_at = now + self.cfg.channel_refresh;
            }
            let _ = self.start(now, Request::ChannelBind { channel, peer }, None, None);
        }
    }
}

/// Refresh a minute before expiry (or at half the lifetime when it is short).
fn refresh_delay(lifetime: Duration) -> Duration {
    let margin = Duration::from_secs(60).min(lifetime / 2);
    lifetime - margin
}
