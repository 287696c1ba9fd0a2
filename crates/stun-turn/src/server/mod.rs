//! The sans-IO STUN/TURN server: Binding, long-term authentication, allocations, permissions,
//! channels, RFC 6062 TCP relays, and the transaction cache. No sockets, no clock reads.
//!
//! One module per job: `config` (settings), `auth` (nonces, credentials, responses), `cache`
//! (retransmissions), `allocation` (the allocation table), `permissions` (peer policy),
//! `channels` (channel bindings), `relay` (relayed data), `tcp` (RFC 6062); this file holds the
//! public types, the state and the dispatch of client requests.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::time::{Duration, Instant, SystemTime};

use ring::hmac;

use crate::attr::{AddressFamily, AttrType, ErrorCode, PasswordAlgorithm, RelayProtocol};
use crate::channel::{ChannelData, FrameKind, frame_kind, is_valid_channel};
use crate::error::{ConfigError, Error};
use crate::integrity::{Key, rest_api_expiry, rest_api_password, userhash};
use crate::message::{
    Class, DecodeLimits, Message, MessageEncoder, MessageType, Method, TransactionId,
};
use crate::policy::{Cidr, is_loopback, is_special};
use crate::random::{BoxedRandom, RandomSource};

mod allocation;
mod auth;
mod cache;
mod channels;
mod config;
mod hooks;
mod permissions;
mod relay;
mod tcp;

use allocation::{Allocation, Channel, PendingAllocation, Reservation};
use auth::Auth;
pub use config::ServerConfig;
pub use hooks::{DeleteReason, DiscardReason, ServerHooks, SharedHooks};
use tcp::{PeerConn, PeerConnState};
use token_bucket::TokenBucket;

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
    rng: BoxedRandom,
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
    /// `random` supplies the nonce key, RFC 6062 connection ids, reservation tokens and the
    /// transaction ids of ConnectionAttempt indications (the runtime passes
    /// [`crate::net::OsRandom`]).
    ///
    /// # Errors
    /// [`Error::Config`] when the configuration is invalid; [`Error::Random`] when `random`
    /// fails to give the nonce key.
    pub fn new(
        cfg: ServerConfig,
        now: Instant,
        wall: SystemTime,
        random: impl RandomSource + 'static,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        let mut rng = BoxedRandom::new(random);
        let mut k = [0u8; 32];
        if !rng.fill(&mut k) {
            return Err(Error::Random);
        }
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

    fn random_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        // A failing source leaves zeros; ids are then still unique through the collision check.
        let _ = self.rng.fill(&mut b);
        u32::from_be_bytes(b)
    }

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
            Ok(FrameKind::ChannelData) => match self.client_channel_data(now, &from, data) {
                Ok(action) => action,
                Err(reason) => {
                    self.hooks().channel_data_discarded(&from, reason);
                    Action::None
                }
            },
            Ok(FrameKind::Stun) => match Message::decode(data, &self.cfg.limits) {
                Ok(msg) => self.client_message(now, from, &msg, out),
                Err(_) => {
                    self.hooks()
                        .message_discarded(&from, DiscardReason::Malformed);
                    Action::None
                }
            },
            Err(_) => {
                self.hooks()
                    .message_discarded(&from, DiscardReason::Malformed);
                Action::None
            }
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
            self.hooks()
                .message_discarded(&from, DiscardReason::BadFingerprint);
            return Action::None;
        }
        match msg.class() {
            Class::Indication => {
                return match self.client_indication(now, &from, msg) {
                    Ok(action) => action,
                    Err(reason) => {
                        self.hooks().message_discarded(&from, reason);
                        Action::None
                    }
                };
            }
            Class::Request => {}
            Class::Success | Class::Error => {
                self.hooks()
                    .message_discarded(&from, DiscardReason::Unexpected);
                return Action::None;
            }
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
            Ok(Some(())) => self.hooks().request_succeeded(&from, msg.method()),
            Ok(None) => return Action::None,
            Err((reject, auth)) => {
                out.truncate(start);
                self.hooks()
                    .request_failed(&from, msg.method(), reject.code);
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

    /// The client connection `client` (TCP/TLS) closed: its allocation goes with it (RFC 6062 §5).
    pub fn client_closed(&mut self, client: &FiveTuple) {
        self.remove_allocation(client, DeleteReason::ClientClosed);
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
            self.remove_allocation(&k, DeleteReason::Expired);
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
    use super::auth::NONCE_COOKIE;
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
        assert!(b.try_take(1000, t0));
        assert!(!b.try_take(1, t0));
        assert!(b.try_take(500, t0 + Duration::from_millis(500)));
        assert!(!b.try_take(100, t0 + Duration::from_millis(500)));
    }

    #[test]
    fn nonces_expire_and_are_bound_to_the_client_ip() {
        let t0 = Instant::now();
        let cfg = ServerConfig {
            users: vec![("a".into(), "b".into())],
            ..Default::default()
        };
        let s = Server::new(cfg, t0, SystemTime::UNIX_EPOCH, |b: &mut [u8]| {
            b.fill(7);
            true
        })
        .unwrap();
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
