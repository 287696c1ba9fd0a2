//! The sans-IO STUN/TURN server: Binding, long-term authentication, allocations, permissions,
//! channels, RFC 6062 TCP relays, and the transaction cache. No sockets, no clock reads.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::attr::{AddressFamily, AttrType, ErrorCode, PasswordAlgorithm, RelayProtocol};
use crate::channel::{ChannelData, FrameKind, frame_kind, is_valid_channel};
use crate::error::{ConfigError, Error};
use crate::integrity::{Key, rest_api_expiry, rest_api_password, userhash};
use crate::message::{
    Class, DecodeLimits, Message, MessageEncoder, MessageType, Method, TransactionId,
};
use crate::policy::{Cidr, is_loopback, is_special};

/// The transport a client reached the server over.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Whether the transport is a byte stream (TCP or TLS).
    pub fn is_stream(self) -> bool {
        !matches!(self, Self::Udp)
    }
}

/// The 5-tuple that identifies a client: transport, client address, server address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FiveTuple {
    /// Transport.
    pub transport: Transport,
    /// The client's (reflexive) address.
    pub client: SocketAddr,
    /// The server address the client sent to.
    pub server: SocketAddr,
}

/// Server configuration. Build with `ServerConfig::default()`, set fields, then [`Server::new`]
/// validates it.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Realm of the long-term credential mechanism. Default: [`ServerConfig::DEFAULT_REALM`].
    pub realm: String,
    /// Static users (name, password). Default: none.
    pub users: Vec<(String, String)>,
    /// TURN REST API shared secret: usernames `"<expiry>:<user>"` with password
    /// base64(HMAC-SHA1(secret, username)) are accepted until the expiry. Default: `None`.
    pub auth_secret: Option<String>,
    /// Whether TURN methods are served; `false` makes a STUN-only server. Default: `true`.
    pub turn: bool,
    /// Whether Binding requests need credentials too. Default: `false`.
    pub stun_auth: bool,
    /// Nonce validity; older nonces get 438 Stale Nonce. Default: [`ServerConfig::DEFAULT_NONCE_LIFETIME`] (600 s).
    pub nonce_lifetime: Duration,
    /// Whether the 401 advertises PASSWORD-ALGORITHMS (MD5, SHA-256) per RFC 8489. Default: `true`.
    pub password_algorithms: bool,
    /// SOFTWARE sent in responses (`None`: omitted). Default: `Some("wskit")`.
    pub software: Option<String>,
    /// Whether every response carries FINGERPRINT (otherwise only responses to requests that had one).
    /// Default: `false`.
    pub fingerprint: bool,
    /// Allocation lifetime when the client asks for less or nothing. Default: [`ServerConfig::DEFAULT_LIFETIME`] (600 s).
    pub default_lifetime: Duration,
    /// Longest allocation lifetime granted. Default: [`ServerConfig::DEFAULT_MAX_LIFETIME`] (3600 s).
    pub max_lifetime: Duration,
    /// Permission lifetime. Default: [`ServerConfig::DEFAULT_PERMISSION_LIFETIME`] (300 s).
    pub permission_lifetime: Duration,
    /// Channel binding lifetime. Default: [`ServerConfig::DEFAULT_CHANNEL_LIFETIME`] (600 s).
    pub channel_lifetime: Duration,
    /// Allocations per user (486 beyond). Default: [`ServerConfig::DEFAULT_USER_QUOTA`] (100).
    pub user_quota: usize,
    /// Allocations in total (508 beyond). Default: [`ServerConfig::DEFAULT_TOTAL_QUOTA`] (100 000).
    pub total_quota: usize,
    /// Permissions per allocation (508 beyond). Default: [`ServerConfig::DEFAULT_MAX_PERMISSIONS`] (64).
    pub max_permissions: usize,
    /// Channels per allocation (508 beyond). Default: [`ServerConfig::DEFAULT_MAX_CHANNELS`] (64).
    pub max_channels: usize,
    /// Relayed bytes per second per allocation, each direction; `None`: unlimited. Default: `None`.
    pub bandwidth_limit: Option<u64>,
    /// Let peers in 127.0.0.0/8 and ::1 be reached. Default: `false`.
    pub allow_loopback_peers: bool,
    /// Networks that peers may be in even though they are special (private, link-local...).
    /// Default: none.
    pub allowed_peers: Vec<Cidr>,
    /// Networks that peers may never be in (checked first). Default: none.
    pub denied_peers: Vec<Cidr>,
    /// Redirect Allocate requests (and Binding on a STUN-only server) with 300 Try Alternate.
    /// Default: `None`.
    pub alternate_server: Option<SocketAddr>,
    /// Address sent as OTHER-ADDRESS in Binding responses (RFC 5780). Default: `None`.
    pub other_address: Option<SocketAddr>,
    /// How long a RESERVATION-TOKEN holds the reserved port. Default: [`ServerConfig::DEFAULT_RESERVATION_LIFETIME`] (30 s).
    pub reservation_lifetime: Duration,
    /// How long responses are kept for retransmitted requests. Default: [`ServerConfig::DEFAULT_TRANSACTION_CACHE_LIFETIME`] (40 s).
    pub transaction_cache_lifetime: Duration,
    /// Most cached responses. Default: [`ServerConfig::DEFAULT_TRANSACTION_CACHE_SIZE`] (65 536).
    pub transaction_cache_size: usize,
    /// RFC 6062: how long a peer connection waits for ConnectionBind. Default: [`ServerConfig::DEFAULT_CONNECTION_BIND_TIMEOUT`] (30 s).
    pub connection_bind_timeout: Duration,
    /// Decoder limits. Default: [`DecodeLimits::default`].
    pub limits: DecodeLimits,
}

impl ServerConfig {
    /// Default of [`ServerConfig::realm`].
    pub const DEFAULT_REALM: &'static str = "wskit";
    /// Default of [`ServerConfig::nonce_lifetime`].
    pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(600);
    /// Default of [`ServerConfig::default_lifetime`].
    pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
    /// Default of [`ServerConfig::max_lifetime`].
    pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(3600);
    /// Default of [`ServerConfig::permission_lifetime`].
    pub const DEFAULT_PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
    /// Default of [`ServerConfig::channel_lifetime`].
    pub const DEFAULT_CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
    /// Default of [`ServerConfig::user_quota`].
    pub const DEFAULT_USER_QUOTA: usize = 100;
    /// Default of [`ServerConfig::total_quota`].
    pub const DEFAULT_TOTAL_QUOTA: usize = 100_000;
    /// Default of [`ServerConfig::max_permissions`].
    pub const DEFAULT_MAX_PERMISSIONS: usize = 64;
    /// Default of [`ServerConfig::max_channels`].
    pub const DEFAULT_MAX_CHANNELS: usize = 64;
    /// Default of [`ServerConfig::reservation_lifetime`].
    pub const DEFAULT_RESERVATION_LIFETIME: Duration = Duration::from_secs(30);
    /// Default of [`ServerConfig::transaction_cache_lifetime`].
    pub const DEFAULT_TRANSACTION_CACHE_LIFETIME: Duration = Duration::from_secs(40);
    /// Default of [`ServerConfig::transaction_cache_size`].
    pub const DEFAULT_TRANSACTION_CACHE_SIZE: usize = 65_536;
    /// Default of [`ServerConfig::connection_bind_timeout`].
    pub const DEFAULT_CONNECTION_BIND_TIMEOUT: Duration = Duration::from_secs(30);

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.realm.is_empty() || self.realm.len() > 763 {
            return bad("realm must be 1..=763 bytes");
        }
        if self.default_lifetime.is_zero() || self.max_lifetime < self.default_lifetime {
            return bad("lifetimes: 0 < default_lifetime <= max_lifetime");
        }
        if self.max_lifetime > Duration::from_secs(u64::from(u32::MAX)) {
            return bad("max_lifetime must fit in 32 bits of seconds");
        }
        if self.nonce_lifetime.is_zero()
            || self.permission_lifetime.is_zero()
            || self.channel_lifetime.is_zero()
        {
            return bad("nonce, permission and channel lifetimes must be positive");
        }
        if self.user_quota == 0
            || self.total_quota == 0
            || self.max_permissions == 0
            || self.max_channels == 0
        {
            return bad("quotas must be positive");
        }
        if self.bandwidth_limit == Some(0) {
            return bad("bandwidth_limit must be positive (None for unlimited)");
        }
        for (u, _) in &self.users {
            if u.is_empty() || u.len() > 513 {
                return bad("user names must be 1..=513 bytes");
            }
        }
        if self.turn && self.users.is_empty() && self.auth_secret.is_none() {
            return bad("a TURN server needs users or an auth secret");
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            realm: Self::DEFAULT_REALM.into(),
            users: Vec::new(),
            auth_secret: None,
            turn: true,
            stun_auth: false,
            nonce_lifetime: Self::DEFAULT_NONCE_LIFETIME,
            password_algorithms: true,
            software: Some("wskit".into()),
            fingerprint: false,
            default_lifetime: Self::DEFAULT_LIFETIME,
            max_lifetime: Self::DEFAULT_MAX_LIFETIME,
            permission_lifetime: Self::DEFAULT_PERMISSION_LIFETIME,
            channel_lifetime: Self::DEFAULT_CHANNEL_LIFETIME,
            user_quota: Self::DEFAULT_USER_QUOTA,
            total_quota: Self::DEFAULT_TOTAL_QUOTA,
            max_permissions: Self::DEFAULT_MAX_PERMISSIONS,
            max_channels: Self::DEFAULT_MAX_CHANNELS,
            bandwidth_limit: None,
            allow_loopback_peers: false,
            allowed_peers: Vec::new(),
            denied_peers: Vec::new(),
            alternate_server: None,
            other_address: None,
            reservation_lifetime: Self::DEFAULT_RESERVATION_LIFETIME,
            transaction_cache_lifetime: Self::DEFAULT_TRANSACTION_CACHE_LIFETIME,
            transaction_cache_size: Self::DEFAULT_TRANSACTION_CACHE_SIZE,
            connection_bind_timeout: Self::DEFAULT_CONNECTION_BIND_TIMEOUT,
            limits: DecodeLimits::default(),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Passwords and the secret are never printed.
        f.debug_struct("ServerConfig")
            .field("realm", &self.realm)
            .field(
                "users",
                &self
                    .users
                    .iter()
                    .map(|(u, _)| u.as_str())
                    .collect::<Vec<_>>(),
            )
            .field(
                "auth_secret",
                &self.auth_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("turn", &self.turn)
            .field("default_lifetime", &self.default_lifetime)
            .field("max_lifetime", &self.max_lifetime)
            .field("user_quota", &self.user_quota)
            .field("allow_loopback_peers", &self.allow_loopback_peers)
            .field("allowed_peers", &self.allowed_peers)
            .finish_non_exhaustive()
    }
}

/// What to do with the datagram or frame given to [`Server::handle_client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to send (dropped, or an indication with no effect).
    None,
    /// Send the bytes appended to `out` back to the client over the same 5-tuple.
    Reply,
    /// Send `data[payload]` (the caller's input slice) from relay socket `relay` to `peer`.
    ToPeer {
        /// The relayed address (identifies the relay socket).
        relay: SocketAddr,
        /// Destination peer.
        peer: SocketAddr,
        /// Range of the payload inside the input slice.
        payload: Range<usize>,
    },
}

/// Work for the runtime that does not fit the request/response path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Bind a relay socket, then call [`Server::relay_bound`] or [`Server::relay_failed`] with `id`.
    BindRelay {
        /// Request id to answer with.
        id: u64,
        /// Address family of the relay.
        family: AddressFamily,
        /// UDP relay (RFC 8656) or TCP relay (RFC 6062, a listening socket).
        protocol: RelayProtocol,
        /// EVEN-PORT: `Some(reserve_next)` asks for an even port, and with `true` also for the
        /// next port to be held under a reservation token.
        even_port: Option<bool>,
        /// Use the socket already held for a RESERVATION-TOKEN at this address.
        reserved: Option<SocketAddr>,
    },
    /// The allocation on this relay is gone: close its socket (and its TCP peer connections).
    ReleaseRelay {
        /// The relayed address.
        relay: SocketAddr,
    },
    /// A reservation expired or was never claimed: close the socket held at this address.
    ReleaseReservation {
        /// The reserved address.
        addr: SocketAddr,
    },
    /// RFC 6062 Connect: open a TCP connection from `relay` to `peer`, then call
    /// [`Server::peer_connected`] or [`Server::peer_connect_failed`].
    ConnectPeer {
        /// Connection id.
        connection_id: u32,
        /// Relayed address to connect from.
        relay: SocketAddr,
        /// Peer to connect to.
        peer: SocketAddr,
    },
    /// RFC 6062 ConnectionBind succeeded: after sending the queued response on `client`, pipe raw
    /// bytes between that client connection and the peer connection `connection_id`.
    PipeConnection {
        /// Connection id.
        connection_id: u32,
        /// The client data connection.
        client: FiveTuple,
    },
    /// Close the peer TCP connection `connection_id` (never bound, or its allocation is gone).
    ClosePeerConnection {
        /// Connection id.
        connection_id: u32,
    },
    /// A request of the allocation on `relay` named a peer the policy refuses (the client got
    /// 403 Forbidden). Raised once per allocation, so that the runtime can log it without
    /// flooding: the first refusal usually explains the rest.
    PeerRefused {
        /// The relayed address of the allocation.
        relay: SocketAddr,
        /// The refused peer.
        peer: SocketAddr,
        /// Which rule refused it.
        reason: PeerRefusal,
    },
}

/// Why a peer address was refused ([`ServerEvent::PeerRefused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerRefusal {
    /// In [`ServerConfig::denied_peers`].
    Denied,
    /// A loopback address, refused unless [`ServerConfig::allow_loopback_peers`].
    Loopback,
    /// A private, link-local or otherwise special-purpose address, refused unless a network of
    /// [`ServerConfig::allowed_peers`] holds it.
    Special,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mac {
    Sha1,
    Sha256,
}

/// Credentials that passed authentication.
#[derive(Clone)]
struct Auth {
    username: String,
    key: Key,
    mac: Mac,
}

struct TokenBucket {
    rate: u64,
    tokens: u64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn take(&mut self, n: usize, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last);
        if !dt.is_zero() {
            let add = (u128::from(self.rate) * dt.as_micros() / 1_000_000) as u64;
            self.tokens = (self.tokens + add).min(self.rate);
            self.last = now;
        }
        let n = n as u64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

struct Channel {
    number: u16,
    peer: SocketAddr,
    expires: Instant,
}

struct Allocation {
    relay: SocketAddr,
    protocol: RelayProtocol,
    auth: Auth,
    expires: Instant,
    permissions: Vec<(IpAddr, Instant)>,
    channels: Vec<Channel>,
    up: Option<TokenBucket>,
    down: Option<TokenBucket>,
    connections: Vec<u32>,
    /// A [`ServerEvent::PeerRefused`] was raised for this allocation.
    refusal_reported: bool,
}

impl Allocation {
    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|(p, exp)| *p == ip && *exp > now)
    }
}

struct PendingAllocation {
    client: FiveTuple,
    tid: TransactionId,
    auth: Auth,
    lifetime: Duration,
    protocol: RelayProtocol,
    reserve_next: bool,
    fingerprint: bool,
    family_error: bool,
}

enum PeerConnState {
    /// Connect sent by the client; waiting for the runtime's TCP connect.
    Connecting {
        tid: TransactionId,
        fingerprint: bool,
    },
    /// Connected (actively or passively); waiting for ConnectionBind until the deadline.
    Ready { deadline: Instant },
    /// Piped to a client data connection.
    Bound,
}

struct PeerConn {
    alloc: FiveTuple,
    peer: SocketAddr,
    state: PeerConnState,
}

struct Reservation {
    addr: SocketAddr,
    expires: Instant,
}

/// Counters for monitoring and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Live allocations.
    pub allocations: usize,
    /// Allocations waiting for a relay socket.
    pub pending_allocations: usize,
    /// Cached responses.
    pub cached_responses: usize,
    /// Live RFC 6062 peer connections.
    pub peer_connections: usize,
}

const KNOWN_ATTRIBUTES: &[AttrType] = &[
    AttrType::MAPPED_ADDRESS,
    AttrType::USERNAME,
    AttrType::ERROR_CODE,
    AttrType::UNKNOWN_ATTRIBUTES,
    AttrType::CHANNEL_NUMBER,
    AttrType::LIFETIME,
    AttrType::XOR_PEER_ADDRESS,
    AttrType::DATA,
    AttrType::REALM,
    AttrType::NONCE,
    AttrType::XOR_RELAYED_ADDRESS,
    AttrType::REQUESTED_ADDRESS_FAMILY,
    AttrType::EVEN_PORT,
    AttrType::REQUESTED_TRANSPORT,
    AttrType::DONT_FRAGMENT,
    AttrType::PASSWORD_ALGORITHM,
    AttrType::USERHASH,
    AttrType::XOR_MAPPED_ADDRESS,
    AttrType::RESERVATION_TOKEN,
    AttrType::PRIORITY,
    AttrType::USE_CANDIDATE,
    AttrType::PADDING,
    AttrType::RESPONSE_PORT,
    AttrType::CONNECTION_ID,
];

/// The nonce cookie of RFC 8489 §9.2 followed by the security feature set (password algorithms
/// and username anonymity), base64.
const NONCE_COOKIE: &str = "obMatJos2AAAD";

/// The STUN/TURN server state machine.
///
/// Call order: feed client datagrams/frames to [`Server::handle_client`] and act on the returned
/// [`Action`]; feed peer datagrams to [`Server::handle_peer`]; after either, drain
/// [`Server::poll_event`] (sockets to bind/close, connections to open) and [`Server::poll_transmit`]
/// (responses produced asynchronously); report socket results with [`Server::relay_bound`],
/// [`Server::relay_failed`], [`Server::peer_connected`], [`Server::peer_connect_failed`] and
/// [`Server::handle_peer_tcp_connection`]; call [`Server::handle_timeout`] at
/// [`Server::poll_timeout`].
pub struct Server {
    cfg: ServerConfig,
    users: HashMap<String, String>,
    userhashes: HashMap<[u8; 32], String>,
    nonce_key: hmac::Key,
    rng: SystemRandom,
    mono0: Instant,
    wall0: u64,
    allocations: HashMap<FiveTuple, Allocation>,
    by_relay: HashMap<SocketAddr, FiveTuple>,
    per_user: HashMap<String, usize>,
    pending: HashMap<u64, PendingAllocation>,
    pending_keys: HashMap<(FiveTuple, TransactionId), u64>,
    next_id: u64,
    reservations: HashMap<[u8; 8], Reservation>,
    peer_conns: HashMap<u32, PeerConn>,
    cache: HashMap<(FiveTuple, TransactionId), Vec<u8>>,
    cache_order: VecDeque<(Instant, FiveTuple, TransactionId)>,
    events: VecDeque<ServerEvent>,
    transmits: VecDeque<(FiveTuple, Vec<u8>)>,
    next_sweep: Instant,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.cfg)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A request failure: the error code and whether the response must be signed.
struct Reject {
    code: ErrorCode,
    signed: bool,
    unknown: Vec<AttrType>,
}

impl Reject {
    fn plain(code: ErrorCode) -> Self {
        Self {
            code,
            signed: false,
            unknown: Vec::new(),
        }
    }

    fn signed(code: ErrorCode) -> Self {
        Self {
            code,
            signed: true,
            unknown: Vec::new(),
        }
    }
}

impl Server {
    /// A server. `now` and `wall` are the current monotonic and wall-clock times; the server
    /// derives later wall-clock times (for TURN REST API expiries) from the `now` it is given.
    ///
    /// # Errors
    /// [`Error::Config`] when the configuration is invalid; [`Error::Random`] when the system
    /// random source fails.
    pub fn new(cfg: ServerConfig, now: Instant, wall: SystemTime) -> Result<Self, Error> {
        cfg.validate()?;
        let rng = SystemRandom::new();
        let mut k = [0u8; 32];
        rng.fill(&mut k).map_err(|_| Error::Random)?;
        let users: HashMap<String, String> = cfg.users.iter().cloned().collect();
        let userhashes = users
            .keys()
            .map(|u| (userhash(u, &cfg.realm), u.clone()))
            .collect();
        Ok(Self {
            users,
            userhashes,
            nonce_key: hmac::Key::new(hmac::HMAC_SHA256, &k),
            rng,
            mono0: now,
            wall0: wall
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            per_user: HashMap::new(),
            pending: HashMap::new(),
            pending_keys: HashMap::new(),
            next_id: 1,
            reservations: HashMap::new(),
            peer_conns: HashMap::new(),
            cache: HashMap::new(),
            cache_order: VecDeque::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            next_sweep: now + SWEEP_INTERVAL,
            cfg,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            allocations: self.allocations.len(),
            pending_allocations: self.pending.len(),
            cached_responses: self.cache.len(),
            peer_connections: self.peer_conns.len(),
        }
    }

    /// The relayed address of the allocation on `client`, if any.
    pub fn relay_of(&self, client: &FiveTuple) -> Option<SocketAddr> {
        self.allocations.get(client).map(|a| a.relay)
    }

    /// The client 5-tuple owning relay `relay`, if any.
    pub fn client_of(&self, relay: SocketAddr) -> Option<FiveTuple> {
        self.by_relay.get(&relay).copied()
    }

    /// Next runtime work item.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Next asynchronously produced message for a client.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(FiveTuple, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// When [`Server::handle_timeout`] should run next.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        self.next_sweep
    }

    fn unix_now(&self, now: Instant) -> u64 {
        self.wall0 + now.saturating_duration_since(self.mono0).as_secs()
    }

    // ---------------------------------------------------------------- nonces

    fn make_nonce(&self, now: Instant, client: &FiveTuple) -> String {
        let t = now.saturating_duration_since(self.mono0).as_secs();
        let tag = self.nonce_tag(t, client.client.ip());
        let prefix = if self.cfg.password_algorithms {
            NONCE_COOKIE
        } else {
            ""
        };
        format!("{prefix}{t:012x}{tag}")
    }

    fn nonce_tag(&self, t: u64, ip: IpAddr) -> String {
        let mut c = hmac::Context::with_key(&self.nonce_key);
        c.update(&t.to_be_bytes());
        match ip {
            IpAddr::V4(v) => c.update(&v.octets()),
            IpAddr::V6(v) => c.update(&v.octets()),
        }
        c.sign().as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `Some(true)`: valid; `Some(false)`: ours but expired; `None`: not ours.
    fn check_nonce(&self, nonce: &str, now: Instant, client: &FiveTuple) -> Option<bool> {
        let body = nonce.strip_prefix(NONCE_COOKIE).unwrap_or(nonce);
        if body.len() != 28 || !body.is_char_boundary(12) {
            return None;
        }
        let t = u64::from_str_radix(&body[..12], 16).ok()?;
        let tag = self.nonce_tag(t, client.client.ip());
        if !crate::integrity::ct_eq(tag.as_bytes(), &body.as_bytes()[12..]) {
            return None;
        }
        let age = now
            .saturating_duration_since(self.mono0)
            .as_secs()
            .checked_sub(t)?;
        Some(Duration::from_secs(age) < self.cfg.nonce_lifetime)
    }

    // ---------------------------------------------------------------- auth

    fn password_for(&self, username: &str, now: Instant) -> Option<String> {
        if let Some(p) = self.users.get(username) {
            return Some(p.clone());
        }
        let secret = self.cfg.auth_secret.as_ref()?;
        let expiry = rest_api_expiry(username)?;
        if expiry < self.unix_now(now) {
            return None;
        }
        Some(rest_api_password(secret, username))
    }

    fn authenticate(
        &self,
        msg: &Message<'_>,
        now: Instant,
        client: &FiveTuple,
    ) -> Result<Auth, Reject> {
        if !msg.has_integrity() && !msg.has_integrity_sha256() {
            return Err(Reject::plain(ErrorCode::UNAUTHORIZED));
        }
        let bad = || Reject::plain(ErrorCode::BAD_REQUEST);
        let username = match (
            msg.username().map_err(|_| bad())?,
            msg.userhash().map_err(|_| bad())?,
        ) {
            (Some(u), _) => u.to_string(),
            (None, Some(h)) => self
                .userhashes
                .get(&h)
                .cloned()
                .ok_or(Reject::plain(ErrorCode::UNAUTHORIZED))?,
            (None, None) => return Err(bad()),
        };
        let realm = msg.realm().map_err(|_| bad())?.ok_or_else(bad)?;
        let nonce = msg.nonce().map_err(|_| bad())?.ok_or_else(bad)?;
        match self.check_nonce(nonce, now, client) {
            Some(true) => {}
            _ => return Err(Reject::plain(ErrorCode::STALE_NONCE)),
        }
        if realm != self.cfg.realm {
            return Err(Reject::plain(ErrorCode::UNAUTHORIZED));
        }
        let alg = match msg.password_algorithm().map_err(|_| bad())? {
            None => PasswordAlgorithm::Md5,
            Some(code) => {
                let alg = PasswordAlgorithm::from_code(code).ok_or_else(bad)?;
                // RFC 8489 §9.2.4: the request must echo the list the server offered.
                if self.cfg.password_algorithms {
                    let offered = [
                        PasswordAlgorithm::Md5.code(),
                        PasswordAlgorithm::Sha256.code(),
                    ];
                    match msg.password_algorithms().map_err(|_| bad())? {
                        Some(list) if list == offered => {}
                        _ => return Err(bad()),
                    }
                }
                alg
            }
        };
        let password = self
            .password_for(&username, now)
            .ok_or(Reject::plain(ErrorCode::UNAUTHORIZED))?;
        let key = Key::long_term_with(alg, &username, realm, &password);
        let mac = if msg.has_integrity_sha256() {
            msg.verify_integrity_sha256(&key)
                .map_err(|_| Reject::plain(ErrorCode::UNAUTHORIZED))?;
            Mac::Sha256
        } else {
            msg.verify_integrity(&key)
                .map_err(|_| Reject::plain(ErrorCode::UNAUTHORIZED))?;
            Mac::Sha1
        };
        Ok(Auth { username, key, mac })
    }

    // ---------------------------------------------------------------- encoding helpers

    fn finish_response(&self, e: &mut MessageEncoder<'_>, auth: Option<&Auth>, fingerprint: bool) {
        if let Some(s) = &self.cfg.software {
            e.software(s);
        }
        if let Some(a) = auth {
            match a.mac {
                Mac::Sha1 => e.message_integrity(&a.key),
                Mac::Sha256 => e.message_integrity_sha256(&a.key),
            };
        }
        if fingerprint || self.cfg.fingerprint {
            e.fingerprint();
        }
    }

    fn error_response(
        &self,
        out: &mut Vec<u8>,
        msg: &Message<'_>,
        reject: &Reject,
        auth: Option<&Auth>,
        now: Instant,
        client: &FiveTuple,
    ) {
        let start = out.len();
        let mut e = MessageEncoder::new(
            out,
            MessageType::new(msg.method(), Class::Error),
            msg.transaction_id(),
        );
        e.error_code(reject.code);
        if !reject.unknown.is_empty() {
            e.unknown_attributes(&reject.unknown);
        }
        if matches!(
            reject.code,
            ErrorCode::UNAUTHORIZED | ErrorCode::STALE_NONCE
        ) {
            e.realm(&self.cfg.realm)
                .nonce(&self.make_nonce(now, client));
            if self.cfg.password_algorithms {
                e.password_algorithms(&[PasswordAlgorithm::Md5, PasswordAlgorithm::Sha256]);
            }
        }
        if reject.code == ErrorCode::TRY_ALTERNATE
            && let Some(a) = self.cfg.alternate_server
        {
            e.alternate_server(a);
        }
        self.finish_response(
            &mut e,
            if reject.signed { auth } else { None },
            msg.has_fingerprint(),
        );
        if e.finish().is_err() {
            out.truncate(start);
        }
    }

    fn cache_response(
        &mut self,
        now: Instant,
        client: FiveTuple,
        tid: TransactionId,
        bytes: &[u8],
    ) {
        if self.cache.len() >= self.cfg.transaction_cache_size {
            self.purge_cache(now, true);
        }
        self.cache.insert((client, tid), bytes.to_vec());
        self.cache_order
            .push_back((now + self.cfg.transaction_cache_lifetime, client, tid));
    }

    fn purge_cache(&mut self, now: Instant, force_one: bool) {
        let mut forced = !force_one;
        while let Some(&(exp, c, t)) = self.cache_order.front() {
            if exp > now && forced {
                break;
            }
            forced = true;
            self.cache_order.pop_front();
            self.cache.remove(&(c, t));
        }
    }

    fn peer_allowed(&self, ip: IpAddr) -> bool {
        self.peer_refusal(ip).is_none()
    }

    /// Why the policy refuses `ip`, if it does.
    fn peer_refusal(&self, ip: IpAddr) -> Option<PeerRefusal> {
        if self.cfg.denied_peers.iter().any(|c| c.contains(ip)) {
            return Some(PeerRefusal::Denied);
        }
        if self.cfg.allowed_peers.iter().any(|c| c.contains(ip)) {
            return None;
        }
        if is_loopback(ip) {
            return (!self.cfg.allow_loopback_peers).then_some(PeerRefusal::Loopback);
        }
        is_special(ip).then_some(PeerRefusal::Special)
    }

    fn random_u32(&self) -> u32 {
        let mut b = [0u8; 4];
        // A failing system RNG leaves zeros; ids are then still unique through the collision check.
        let _ = self.rng.fill(&mut b);
        u32::from_be_bytes(b)
    }

    // ---------------------------------------------------------------- input: client

    /// Handles one datagram (UDP) or one frame (TCP, split with [`crate::frame_len`]) from `from`.
    /// Responses are appended to `out`.
    pub fn handle_client(
        &mut self,
        now: Instant,
        from: FiveTuple,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Action {
        match frame_kind(data) {
            Ok(FrameKind::ChannelData) => self.client_channel_data(now, &from, data),
            Ok(FrameKind::Stun) => match Message::decode(data, &self.cfg.limits) {
                Ok(msg) => self.client_message(now, from, &msg, out),
                Err(_) => Action::None,
            },
            Err(_) => Action::None,
        }
    }

    fn client_channel_data(&mut self, now: Instant, from: &FiveTuple, data: &[u8]) -> Action {
        let Ok(cd) = ChannelData::decode(data) else {
            return Action::None;
        };
        let Some(a) = self.allocations.get_mut(from) else {
            return Action::None;
        };
        if a.expires <= now {
            return Action::None;
        }
        let Some(ch) = a
            .channels
            .iter()
            .find(|c| c.number == cd.channel && c.expires > now)
        else {
            return Action::None;
        };
        let peer = ch.peer;
        if !a.permitted(peer.ip(), now) {
            return Action::None;
        }
        if let Some(b) = &mut a.up
            && !b.take(cd.data.len(), now)
        {
            return Action::None;
        }
        Action::ToPeer {
            relay: a.relay,
            peer,
            payload: 4..4 + cd.data.len(),
        }
    }

    fn client_message(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
    ) -> Action {
        if msg.verify_fingerprint().is_err() {
            return Action::None;
        }
        match msg.class() {
            Class::Indication => return self.client_indication(now, &from, msg),
            Class::Request => {}
            Class::Success | Class::Error => return Action::None,
        }
        let key = (from, msg.transaction_id());
        if let Some(cached) = self.cache.get(&key) {
            out.extend_from_slice(cached);
            return Action::Reply;
        }
        if self.pending_keys.contains_key(&key) {
            return Action::None; // retransmission of an Allocate still being served
        }
        let start = out.len();
        let result = self.request(now, from, msg, out);
        match result {
            Ok(Some(())) => {}
            Ok(None) => return Action::None,
            Err((reject, auth)) => {
                out.truncate(start);
                self.error_response(out, msg, &reject, auth.as_deref(), now, &from);
            }
        }
        if out.len() == start {
            return Action::None;
        }
        if msg.method() != Method::BINDING {
            let bytes = out[start..].to_vec();
            self.cache_response(now, from, msg.transaction_id(), &bytes);
        }
        Action::Reply
    }

    /// `Ok(Some)`: response written; `Ok(None)`: answered later (pending); `Err`: error response.
    fn request(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, (Reject, Option<Box<Auth>>)> {
        let unknown = msg.unknown_required(KNOWN_ATTRIBUTES);
        if !unknown.is_empty() {
            return Err((
                Reject {
                    code: ErrorCode::UNKNOWN_ATTRIBUTE,
                    signed: false,
                    unknown,
                },
                None,
            ));
        }
        let method = msg.method();
        if method == Method::BINDING {
            if self.cfg.alternate_server.is_some() && !self.cfg.turn {
                return Err((Reject::plain(ErrorCode::TRY_ALTERNATE), None));
            }
            let auth = if self.cfg.stun_auth {
                Some(self.authenticate(msg, now, &from).map_err(|r| (r, None))?)
            } else {
                None
            };
            self.binding(msg, &from, auth.as_ref(), out);
            return Ok(Some(()));
        }
        let turn_method = matches!(
            method,
            Method::ALLOCATE
                | Method::REFRESH
                | Method::CREATE_PERMISSION
                | Method::CHANNEL_BIND
                | Method::CONNECT
                | Method::CONNECTION_BIND
        );
        if !self.cfg.turn || !turn_method {
            return Err((Reject::plain(ErrorCode::BAD_REQUEST), None));
        }
        let auth = self.authenticate(msg, now, &from).map_err(|r| (r, None))?;
        let r = match method {
            Method::ALLOCATE => self.allocate(now, from, msg, &auth),
            Method::REFRESH => self.refresh(now, from, msg, &auth, out),
            Method::CREATE_PERMISSION => self.create_permission(now, from, msg, &auth, out),
            Method::CHANNEL_BIND => self.channel_bind(now, from, msg, &auth, out),
            Method::CONNECT => self.connect(now, from, msg, &auth),
            _ => self.connection_bind(now, from, msg, &auth, out),
        };
        r.map_err(|rej| (rej, Some(Box::new(auth))))
    }

    fn binding(&self, msg: &Message<'_>, from: &FiveTuple, auth: Option<&Auth>, out: &mut Vec<u8>) {
        let start = out.len();
        let mut e = MessageEncoder::new(
            out,
            MessageType::new(Method::BINDING, Class::Success),
            msg.transaction_id(),
        );
        e.xor_mapped_address(from.client);
        e.response_origin(from.server);
        if let Some(o) = self.cfg.other_address {
            e.other_address(o);
        }
        self.finish_response(&mut e, auth, msg.has_fingerprint());
        if e.finish().is_err() {
            out.truncate(start);
        }
    }

    fn success<F>(&self, out: &mut Vec<u8>, msg: &Message<'_>, auth: &Auth, body: F)
    where
        F: FnOnce(&mut MessageEncoder<'_>),
    {
        let start = out.len();
        let mut e = MessageEncoder::new(
            out,
            MessageType::new(msg.method(), Class::Success),
            msg.transaction_id(),
        );
        body(&mut e);
        self.finish_response(&mut e, Some(auth), msg.has_fingerprint());
        if e.finish().is_err() {
            out.truncate(start);
        }
    }

    fn clamp_lifetime(&self, requested: Option<u32>) -> Duration {
        match requested {
            Some(s) if Duration::from_secs(u64::from(s)) > self.cfg.default_lifetime => {
                Duration::from_secs(u64::from(s)).min(self.cfg.max_lifetime)
            }
            _ => self.cfg.default_lifetime,
        }
    }

    fn allocate(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
    ) -> Result<Option<()>, Reject> {
        if self.allocations.contains_key(&from) {
            return Err(Reject::signed(ErrorCode::ALLOCATION_MISMATCH));
        }
        if self.cfg.alternate_server.is_some() {
            return Err(Reject::signed(ErrorCode::TRY_ALTERNATE));
        }
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        let proto = msg
            .requested_transport()
            .map_err(|_| bad())?
            .ok_or_else(bad)?;
        let protocol = RelayProtocol::from_code(proto)
            .ok_or(Reject::signed(ErrorCode::UNSUPPORTED_TRANSPORT))?;
        let even = msg.even_port().map_err(|_| bad())?;
        let token = msg.reservation_token().map_err(|_| bad())?;
        let family_code = msg.requested_address_family().map_err(|_| bad())?;
        if protocol == RelayProtocol::Tcp
            && (!from.transport.is_stream()
                || even.is_some()
                || token.is_some()
                || msg.has(AttrType::DONT_FRAGMENT))
        {
            return Err(bad());
        }
        if token.is_some() && (even.is_some() || family_code.is_some()) {
            return Err(bad());
        }
        let family = match family_code {
            None => AddressFamily::of(from.client.ip()),
            Some(c) => AddressFamily::from_code(c)
                .ok_or(Reject::signed(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED))?,
        };
        let family_error = msg.has(AttrType::ADDITIONAL_ADDRESS_FAMILY);
        let reserved = match token {
            None => None,
            Some(t) => match self.reservations.remove(&t) {
                Some(r) if r.expires > now => Some(r.addr),
                Some(r) => {
                    self.events
                        .push_back(ServerEvent::ReleaseReservation { addr: r.addr });
                    return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
                }
                None => return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY)),
            },
        };
        let used = self.per_user.get(&auth.username).copied().unwrap_or(0)
            + self
                .pending
                .values()
                .filter(|p| p.auth.username == auth.username)
                .count();
        if used >= self.cfg.user_quota {
            return Err(Reject::signed(ErrorCode::ALLOCATION_QUOTA_REACHED));
        }
        if self.allocations.len() + self.pending.len() >= self.cfg.total_quota {
            return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            PendingAllocation {
                client: from,
                tid: msg.transaction_id(),
                auth: auth.clone(),
                lifetime: self.clamp_lifetime(msg.lifetime().map_err(|_| bad())?),
                protocol,
                reserve_next: even == Some(true),
                fingerprint: msg.has_fingerprint(),
                family_error,
            },
        );
        self.pending_keys.insert((from, msg.transaction_id()), id);
        self.events.push_back(ServerEvent::BindRelay {
            id,
            family,
            protocol,
            even_port: even,
            reserved,
        });
        Ok(None)
    }

    /// The runtime bound a relay socket for [`ServerEvent::BindRelay`] `id` at `relay`; with
    /// `reserved`, it also holds the next port (EVEN-PORT with R bit) at that address.
    /// The success response is queued for [`Server::poll_transmit`].
    pub fn relay_bound(
        &mut self,
        now: Instant,
        id: u64,
        relay: SocketAddr,
        reserved: Option<SocketAddr>,
    ) {
        let Some(p) = self.pending.remove(&id) else {
            self.events.push_back(ServerEvent::ReleaseRelay { relay });
            if let Some(addr) = reserved {
                self.events
                    .push_back(ServerEvent::ReleaseReservation { addr });
            }
            return;
        };
        self.pending_keys.remove(&(p.client, p.tid));
        let token = match (p.reserve_next, reserved) {
            (true, Some(addr)) => {
                let mut t = [0u8; 8];
                let _ = self.rng.fill(&mut t);
                self.reservations.insert(
                    t,
                    Reservation {
                        addr,
                        expires: now + self.cfg.reservation_lifetime,
                    },
                );
                Some(t)
            }
            (_, Some(addr)) => {
                self.events
                    .push_back(ServerEvent::ReleaseReservation { addr });
                None
            }
            _ => None,
        };
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::ALLOCATE, Class::Success),
            p.tid,
        );
        e.xor_relayed_address(relay)
            .xor_mapped_address(p.client.client)
            .lifetime(p.lifetime.as_secs() as u32);
        if let Some(t) = &token {
            e.reservation_token(t);
        }
        if p.family_error {
            let mut v = vec![2u8, 0, 4, 40];
            v.extend_from_slice(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED.reason().as_bytes());
            e.attr(AttrType::ADDRESS_ERROR_CODE, &v);
        }
        self.finish_response(&mut e, Some(&p.auth), p.fingerprint);
        if e.finish().is_err() {
            return;
        }
        *self.per_user.entry(p.auth.username.clone()).or_insert(0) += 1;
        let rate = self.cfg.bandwidth_limit;
        self.allocations.insert(
            p.client,
            Allocation {
                relay,
                protocol: p.protocol,
                auth: p.auth,
                expires: now + p.lifetime,
                permissions: Vec::new(),
                channels: Vec::new(),
                up: rate.map(|r| TokenBucket::new(r, now)),
                down: rate.map(|r| TokenBucket::new(r, now)),
                connections: Vec::new(),
                refusal_reported: false,
            },
        );
        self.by_relay.insert(relay, p.client);
        self.cache_response(now, p.client, p.tid, &out);
        self.transmits.push_back((p.client, out));
    }

    /// The runtime could not bind a relay socket for `id`: the client gets 508.
    pub fn relay_failed(&mut self, now: Instant, id: u64) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        self.pending_keys.remove(&(p.client, p.tid));
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::ALLOCATE, Class::Error),
            p.tid,
        );
        e.error_code(ErrorCode::INSUFFICIENT_CAPACITY);
        self.finish_response(&mut e, Some(&p.auth), p.fingerprint);
        if e.finish().is_ok() {
            self.cache_response(now, p.client, p.tid, &out);
            self.transmits.push_back((p.client, out));
        }
    }

    fn owned_allocation(
        &mut self,
        from: &FiveTuple,
        auth: &Auth,
    ) -> Result<&mut Allocation, Reject> {
        let a = self
            .allocations
            .get_mut(from)
            .ok_or(Reject::signed(ErrorCode::ALLOCATION_MISMATCH))?;
        if a.auth.username != auth.username {
            return Err(Reject::signed(ErrorCode::WRONG_CREDENTIALS));
        }
        Ok(a)
    }

    fn refresh(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, Reject> {
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        let requested = msg.lifetime().map_err(|_| bad())?;
        let family = msg.requested_address_family().map_err(|_| bad())?;
        let lifetime = if requested == Some(0) {
            Duration::ZERO
        } else {
            self.clamp_lifetime(requested)
        };
        let a = self.owned_allocation(&from, auth)?;
        if let Some(f) = family
            && Some(AddressFamily::of(a.relay.ip())) != AddressFamily::from_code(f)
        {
            return Err(Reject::signed(ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH));
        }
        if lifetime.is_zero() {
            self.remove_allocation(&from);
        } else {
            a.expires = now + lifetime;
        }
        let secs = lifetime.as_secs() as u32;
        self.success(out, msg, auth, |e| {
            e.lifetime(secs);
        });
        Ok(Some(()))
    }

    fn check_peer(
        &mut self,
        from: &FiveTuple,
        relay: SocketAddr,
        peer: SocketAddr,
    ) -> Result<(), Reject> {
        if peer.is_ipv4() != relay.is_ipv4() {
            return Err(Reject::signed(ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH));
        }
        if let Some(reason) = self.peer_refusal(peer.ip()) {
            if let Some(a) = self.allocations.get_mut(from)
                && !a.refusal_reported
            {
                a.refusal_reported = true;
                self.events.push_back(ServerEvent::PeerRefused {
                    relay,
                    peer,
                    reason,
                });
            }
            return Err(Reject::signed(ErrorCode::FORBIDDEN));
        }
        Ok(())
    }

    fn add_permission(
        a: &mut Allocation,
        ip: IpAddr,
        until: Instant,
        now: Instant,
        max: usize,
    ) -> bool {
        if let Some(p) = a.permissions.iter_mut().find(|(p, _)| *p == ip) {
            p.1 = until;
            return true;
        }
        a.permissions.retain(|(_, exp)| *exp > now);
        if a.permissions.len() >= max {
            return false;
        }
        a.permissions.push((ip, until));
        true
    }

    fn create_permission(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, Reject> {
        let peers = msg
            .xor_peer_addresses()
            .map_err(|_| Reject::signed(ErrorCode::BAD_REQUEST))?;
        if peers.is_empty() {
            return Err(Reject::signed(ErrorCode::BAD_REQUEST));
        }
        let relay = self.owned_allocation(&from, auth)?.relay;
        for p in &peers {
            self.check_peer(&from, relay, *p)?;
        }
        let until = now + self.cfg.permission_lifetime;
        let max = self.cfg.max_permissions;
        let a = self.owned_allocation(&from, auth)?;
        for p in &peers {
            if !Self::add_permission(a, p.ip(), until, now, max) {
                return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
            }
        }
        self.success(out, msg, auth, |_| {});
        Ok(Some(()))
    }

    fn channel_bind(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, Reject> {
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        let number = msg.channel_number().map_err(|_| bad())?.ok_or_else(bad)?;
        let peer = msg.xor_peer_address().map_err(|_| bad())?.ok_or_else(bad)?;
        if !is_valid_channel(number) {
            return Err(bad());
        }
        let (relay, protocol) = {
            let a = self.owned_allocation(&from, auth)?;
            (a.relay, a.protocol)
        };
        if protocol != RelayProtocol::Udp {
            return Err(bad());
        }
        self.check_peer(&from, relay, peer)?;
        let (perm_until, ch_until) = (
            now + self.cfg.permission_lifetime,
            now + self.cfg.channel_lifetime,
        );
        let (max_ch, max_perm) = (self.cfg.max_channels, self.cfg.max_permissions);
        let a = self.owned_allocation(&from, auth)?;
        a.channels.retain(|c| c.expires > now);
        match a
            .channels
            .iter_mut()
            .find(|c| c.number == number || c.peer == peer)
        {
            Some(c) if c.number == number && c.peer == peer => c.expires = ch_until,
            Some(_) => return Err(bad()),
            None => {
                if a.channels.len() >= max_ch {
                    return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
                }
                a.channels.push(Channel {
                    number,
                    peer,
                    expires: ch_until,
                });
            }
        }
        if !Self::add_permission(a, peer.ip(), perm_until, now, max_perm) {
            return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
        }
        self.success(out, msg, auth, |_| {});
        Ok(Some(()))
    }

    fn connect(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
    ) -> Result<Option<()>, Reject> {
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        let peer = msg.xor_peer_address().map_err(|_| bad())?.ok_or_else(bad)?;
        let (relay, protocol) = {
            let a = self.owned_allocation(&from, auth)?;
            (a.relay, a.protocol)
        };
        if protocol != RelayProtocol::Tcp {
            return Err(bad());
        }
        self.check_peer(&from, relay, peer)?;
        if self
            .peer_conns
            .values()
            .any(|c| c.alloc == from && c.peer == peer)
        {
            return Err(Reject::signed(ErrorCode::CONNECTION_ALREADY_EXISTS));
        }
        if !self
            .allocations
            .get(&from)
            .is_some_and(|a| a.permitted(peer.ip(), now))
        {
            return Err(Reject::signed(ErrorCode::FORBIDDEN));
        }
        let id = self.new_connection_id();
        self.peer_conns.insert(
            id,
            PeerConn {
                alloc: from,
                peer,
                state: PeerConnState::Connecting {
                    tid: msg.transaction_id(),
                    fingerprint: msg.has_fingerprint(),
                },
            },
        );
        if let Some(a) = self.allocations.get_mut(&from) {
            a.connections.push(id);
        }
        self.pending_keys.insert((from, msg.transaction_id()), 0);
        self.events.push_back(ServerEvent::ConnectPeer {
            connection_id: id,
            relay,
            peer,
        });
        Ok(None)
    }

    fn new_connection_id(&self) -> u32 {
        loop {
            let id = self.random_u32();
            if id != 0 && !self.peer_conns.contains_key(&id) {
                return id;
            }
        }
    }

    fn connect_result(&mut self, now: Instant, id: u32, ok: bool) {
        let Some(c) = self.peer_conns.get_mut(&id) else {
            self.events
                .push_back(ServerEvent::ClosePeerConnection { connection_id: id });
            return;
        };
        let PeerConnState::Connecting { tid, fingerprint } = c.state else {
            return;
        };
        let alloc = c.alloc;
        self.pending_keys.remove(&(alloc, tid));
        let Some(a) = self.allocations.get(&alloc) else {
            return;
        };
        let mut out = Vec::new();
        let class = if ok { Class::Success } else { Class::Error };
        let mut e = MessageEncoder::new(&mut out, MessageType::new(Method::CONNECT, class), tid);
        if ok {
            e.connection_id(id);
        } else {
            e.error_code(ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE);
        }
        self.finish_response(&mut e, Some(&a.auth), fingerprint);
        let good = e.finish().is_ok();
        if ok {
            if let Some(c) = self.peer_conns.get_mut(&id) {
                c.state = PeerConnState::Ready {
                    deadline: now + self.cfg.connection_bind_timeout,
                };
            }
        } else {
            self.drop_peer_conn(id, false);
        }
        if good {
            self.cache_response(now, alloc, tid, &out);
            self.transmits.push_back((alloc, out));
        }
    }

    /// RFC 6062: the TCP connection for [`ServerEvent::ConnectPeer`] `connection_id` is up.
    pub fn peer_connected(&mut self, now: Instant, connection_id: u32) {
        self.connect_result(now, connection_id, true);
    }

    /// RFC 6062: the TCP connection for `connection_id` failed: the client gets 447.
    pub fn peer_connect_failed(&mut self, now: Instant, connection_id: u32) {
        self.connect_result(now, connection_id, false);
    }

    /// RFC 6062: a peer connected to the TCP relay `relay`. Returns the connection id to hold the
    /// socket under (a ConnectionAttempt indication is queued for the client), or `None` when the
    /// peer has no permission: close the socket.
    pub fn handle_peer_tcp_connection(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
    ) -> Option<u32> {
        let client = *self.by_relay.get(&relay)?;
        let a = self.allocations.get(&client)?;
        if a.protocol != RelayProtocol::Tcp
            || !a.permitted(peer.ip(), now)
            || !self.peer_allowed(peer.ip())
        {
            return None;
        }
        if self
            .peer_conns
            .values()
            .any(|c| c.alloc == client && c.peer == peer)
        {
            return None;
        }
        let id = self.new_connection_id();
        let tid = TransactionId::random().ok()?;
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication),
            tid,
        );
        e.xor_peer_address(peer).connection_id(id);
        self.finish_response(&mut e, None, false);
        e.finish().ok()?;
        self.peer_conns.insert(
            id,
            PeerConn {
                alloc: client,
                peer,
                state: PeerConnState::Ready {
                    deadline: now + self.cfg.connection_bind_timeout,
                },
            },
        );
        if let Some(a) = self.allocations.get_mut(&client) {
            a.connections.push(id);
        }
        self.transmits.push_back((client, out));
        Some(id)
    }

    /// RFC 6062: the peer connection `connection_id` closed (either side); forget it.
    pub fn peer_connection_closed(&mut self, connection_id: u32) {
        self.drop_peer_conn(connection_id, false);
    }

    fn connection_bind(
        &mut self,
        _now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, Reject> {
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        if !from.transport.is_stream() || self.allocations.contains_key(&from) {
            return Err(bad());
        }
        let id = msg.connection_id().map_err(|_| bad())?.ok_or_else(bad)?;
        let c = self.peer_conns.get_mut(&id).ok_or_else(bad)?;
        if !matches!(c.state, PeerConnState::Ready { .. }) {
            return Err(bad());
        }
        let owner = self
            .allocations
            .get(&c.alloc)
            .map(|a| a.auth.username.as_str());
        if owner != Some(auth.username.as_str()) {
            return Err(Reject::signed(ErrorCode::WRONG_CREDENTIALS));
        }
        c.state = PeerConnState::Bound;
        self.success(out, msg, auth, |_| {});
        self.events.push_back(ServerEvent::PipeConnection {
            connection_id: id,
            client: from,
        });
        Ok(Some(()))
    }

    fn client_indication(&mut self, now: Instant, from: &FiveTuple, msg: &Message<'_>) -> Action {
        if msg.method() != Method::SEND {
            return Action::None;
        }
        let (Ok(Some(peer)), Some(payload)) =
            (msg.xor_peer_address(), msg.range_of(AttrType::DATA))
        else {
            return Action::None;
        };
        let Some(a) = self.allocations.get_mut(from) else {
            return Action::None;
        };
        if a.expires <= now || a.protocol != RelayProtocol::Udp || !a.permitted(peer.ip(), now) {
            return Action::None;
        }
        if let Some(b) = &mut a.up
            && !b.take(payload.len(), now)
        {
            return Action::None;
        }
        Action::ToPeer {
            relay: a.relay,
            peer,
            payload,
        }
    }

    // ---------------------------------------------------------------- input: peers

    /// Handles a datagram from `peer` on the UDP relay `relay`. When it may be delivered, the
    /// ChannelData or Data indication is appended to `out` and the client to send it to is returned.
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<FiveTuple> {
        let client = *self.by_relay.get(&relay)?;
        let a = self.allocations.get_mut(&client)?;
        if a.expires <= now || !a.permitted(peer.ip(), now) {
            return None;
        }
        if let Some(b) = &mut a.down
            && !b.take(data.len(), now)
        {
            return None;
        }
        if let Some(ch) = a
            .channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
        {
            ChannelData::encode(ch.number, data, client.transport.is_stream(), out).ok()?;
        } else {
            let tid = self.indication_tid();
            let start = out.len();
            let mut e =
                MessageEncoder::new(out, MessageType::new(Method::DATA, Class::Indication), tid);
            e.xor_peer_address(peer).data(data);
            if self.cfg.fingerprint {
                e.fingerprint();
            }
            if e.finish().is_err() {
                out.truncate(start);
                return None;
            }
        }
        Some(client)
    }

    fn indication_tid(&mut self) -> TransactionId {
        // Indications need unique but not unpredictable ids: a counter keyed by the server start.
        self.next_id += 1;
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&self.next_id.to_be_bytes());
        b[8..].copy_from_slice(&(self.wall0 as u32).to_be_bytes());
        TransactionId(b)
    }

    // ---------------------------------------------------------------- timers and removal

    fn drop_peer_conn(&mut self, id: u32, notify: bool) {
        if let Some(c) = self.peer_conns.remove(&id) {
            if let PeerConnState::Connecting { tid, .. } = c.state {
                self.pending_keys.remove(&(c.alloc, tid));
            }
            if let Some(a) = self.allocations.get_mut(&c.alloc) {
                a.connections.retain(|x| *x != id);
            }
            if notify {
                self.events
                    .push_back(ServerEvent::ClosePeerConnection { connection_id: id });
            }
        }
    }

    fn remove_allocation(&mut self, client: &FiveTuple) {
        let Some(a) = self.allocations.remove(client) else {
            return;
        };
        self.by_relay.remove(&a.relay);
        if let Some(n) = self.per_user.get_mut(&a.auth.username) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&a.auth.username);
            }
        }
        for id in a.connections {
            self.peer_conns.remove(&id);
            self.events
                .push_back(ServerEvent::ClosePeerConnection { connection_id: id });
        }
        self.events
            .push_back(ServerEvent::ReleaseRelay { relay: a.relay });
    }

    /// The client connection `client` (TCP/TLS) closed: its allocation goes with it (RFC 6062 §5).
    pub fn client_closed(&mut self, client: &FiveTuple) {
        self.remove_allocation(client);
    }

    /// Expires allocations, permissions, channels, reservations, unbound peer connections and
    /// cached responses.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        let expired: Vec<FiveTuple> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now)
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            self.remove_allocation(&k);
        }
        for a in self.allocations.values_mut() {
            a.permissions.retain(|(_, e)| *e > now);
            a.channels.retain(|c| c.expires > now);
        }
        let stale: Vec<[u8; 8]> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in stale {
            if let Some(r) = self.reservations.remove(&t) {
                self.events
                    .push_back(ServerEvent::ReleaseReservation { addr: r.addr });
            }
        }
        let unbound: Vec<u32> = self
            .peer_conns
            .iter()
            .filter(
                |(_, c)| matches!(c.state, PeerConnState::Ready { deadline } if deadline <= now),
            )
            .map(|(id, _)| *id)
            .collect();
        for id in unbound {
            self.drop_peer_conn(id, true);
        }
        self.purge_cache(now, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation_catches_bad_values() {
        let ok = ServerConfig {
            users: vec![("a".into(), "b".into())],
            ..Default::default()
        };
        ok.validate().unwrap();
        assert!(
            ServerConfig::default().validate().is_err(),
            "TURN without users"
        );
        let stun = ServerConfig {
            turn: false,
            ..Default::default()
        };
        stun.validate().unwrap();
        let bad = ServerConfig {
            max_lifetime: Duration::from_secs(10),
            ..ok.clone()
        };
        assert!(bad.validate().is_err());
        let bad = ServerConfig {
            realm: String::new(),
            ..ok.clone()
        };
        assert!(bad.validate().is_err());
        let bad = ServerConfig {
            bandwidth_limit: Some(0),
            ..ok
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn token_bucket_limits_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1000, t0);
        assert!(b.take(1000, t0));
        assert!(!b.take(1, t0));
        assert!(b.take(500, t0 + Duration::from_millis(500)));
        assert!(!b.take(100, t0 + Duration::from_millis(500)));
    }

    #[test]
    fn nonces_expire_and_are_bound_to_the_client_ip() {
        let t0 = Instant::now();
        let cfg = ServerConfig {
            users: vec![("a".into(), "b".into())],
            ..Default::default()
        };
        let s = Server::new(cfg, t0, SystemTime::now()).unwrap();
        let ft = FiveTuple {
            transport: Transport::Udp,
            client: "192.0.2.1:1000".parse().unwrap(),
            server: "192.0.2.2:3478".parse().unwrap(),
        };
        let other = FiveTuple {
            client: "192.0.2.9:1000".parse().unwrap(),
            ..ft
        };
        let n = s.make_nonce(t0, &ft);
        assert!(n.starts_with(NONCE_COOKIE));
        assert_eq!(
            s.check_nonce(&n, t0 + Duration::from_secs(599), &ft),
            Some(true)
        );
        assert_eq!(
            s.check_nonce(&n, t0 + Duration::from_secs(600), &ft),
            Some(false)
        );
        assert_eq!(s.check_nonce(&n, t0, &other), None);
        assert_eq!(s.check_nonce("garbage", t0, &ft), None);
    }
}
