//! The sans-IO client against the sans-IO server over an in-memory network with a fake clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use stun_turn::integrity::{rest_api_password, rest_api_username};
use stun_turn::{
    Action, AttrType, Class, Client, ClientConfig, ClientEvent, DecodeLimits, ErrorCode, Failure,
    FiveTuple, Key, Message, MessageEncoder, MessageType, Method, PeerRefusal, RelayProtocol,
    Request, Server, ServerConfig, ServerEvent, TransactionId, Transport,
};

const SERVER: &str = "198.51.100.1:3478";
const CLIENT: &str = "203.0.113.5:40000";
const PEER: &str = "203.0.113.77:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A fixed, counting random source: every run draws the same transaction ids and keys.
fn rng() -> impl stun_turn::RandomSource + 'static {
    let mut n = 0u8;
    move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            n = n.wrapping_add(1);
            *b = n;
        }
        true
    }
}

fn five(transport: Transport) -> FiveTuple {
    FiveTuple {
        transport,
        client: addr(CLIENT),
        server: addr(SERVER),
    }
}

struct Net {
    server: Server,
    now: Instant,
    next_port: u16,
    to_peers: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    released: Vec<SocketAddr>,
    reservations_released: Vec<SocketAddr>,
    piped: Vec<(u32, FiveTuple)>,
    refused: Vec<(SocketAddr, SocketAddr, PeerRefusal)>,
    fail_binds: bool,
}

impl Net {
    fn new(cfg: ServerConfig) -> Self {
        let now = Instant::now();
        Self {
            server: Server::new(cfg, now, SystemTime::now(), rng()).unwrap(),
            now,
            next_port: 50000,
            to_peers: vec![],
            released: vec![],
            reservations_released: vec![],
            piped: vec![],
            refused: vec![],
            fail_binds: false,
        }
    }

    fn with_alice() -> Self {
        Self::new(with(ServerConfig::default(), |c| {
            c.users = vec![("alice".into(), "s3cret".into())];
            c.realm = "example.org".into();
        }))
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.server.handle_timeout(self.now);
        while let Some(ev) = self.server.poll_event() {
            match ev {
                ServerEvent::ReleaseRelay { relay } => self.released.push(relay),
                ServerEvent::ReleaseReservation { addr } => self.reservations_released.push(addr),
                _ => {}
            }
        }
    }

    /// Moves messages until both sides are idle.
    fn pump(&mut self, client: &mut Client, ft: FiveTuple) {
        let mut out = Vec::new();
        for _ in 0..100 {
            let mut moved = false;
            while let Some(bytes) = client.poll_transmit() {
                moved = true;
                out.clear();
                match self.server.handle_client(self.now, ft, &bytes, &mut out) {
                    Action::Reply => client.handle_input(self.now, &out),
                    Action::ToPeer {
                        relay,
                        peer,
                        payload,
                    } => self.to_peers.push((relay, peer, bytes[payload].to_vec())),
                    Action::None => {}
                }
            }
            while let Some(ev) = self.server.poll_event() {
                moved = true;
                match ev {
                    ServerEvent::BindRelay {
                        id,
                        even_port,
                        reserved,
                        ..
                    } => {
                        if self.fail_binds {
                            self.server.relay_failed(self.now, id);
                            continue;
                        }
                        let (relay, extra) = match reserved {
                            Some(r) => (r, None),
                            None => {
                                if even_port.is_some() && self.next_port % 2 == 1 {
                                    self.next_port += 1;
                                }
                                let p = self.next_port;
                                self.next_port += 2;
                                let extra = (even_port == Some(true))
                                    .then(|| SocketAddr::new(addr(SERVER).ip(), p + 1));
                                (SocketAddr::new(addr(SERVER).ip(), p), extra)
                            }
                        };
                        self.server.relay_bound(self.now, id, relay, extra);
                    }
                    ServerEvent::ReleaseRelay { relay } => self.released.push(relay),
                    ServerEvent::ReleaseReservation { addr } => {
                        self.reservations_released.push(addr)
                    }
                    ServerEvent::ConnectPeer { connection_id, .. } => {
                        self.server.peer_connected(self.now, connection_id)
                    }
                    ServerEvent::PipeConnection {
                        connection_id,
                        client,
                    } => self.piped.push((connection_id, client)),
                    ServerEvent::PeerRefused {
                        relay,
                        peer,
                        reason,
                    } => self.refused.push((relay, peer, reason)),
                    _ => {}
                }
            }
            while let Some((to, bytes)) = self.server.poll_transmit() {
                moved = true;
                if to == ft {
                    client.handle_input(self.now, &bytes);
                }
            }
            if !moved {
                return;
            }
        }
        panic!("network did not settle");
    }

    /// A datagram from `peer` to `relay`, delivered to the client if the server lets it through.
    fn deliver_from_peer(
        &mut self,
        client: &mut Client,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
    ) -> bool {
        let mut out = Vec::new();
        match self
            .server
            .handle_peer(self.now, relay, peer, data, &mut out)
        {
            Some(_) => {
                client.handle_input(self.now, &out);
                true
            }
            None => false,
        }
    }
}

fn with<T>(mut v: T, f: impl FnOnce(&mut T)) -> T {
    f(&mut v);
    v
}

fn events(c: &mut Client) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn allocated(net: &mut Net, c: &mut Client, ft: FiveTuple) -> SocketAddr {
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(c, ft);
    let evs = events(c);
    match evs.as_slice() {
        [
            ClientEvent::Allocated {
                relayed,
                reflexive,
                lifetime,
                ..
            },
        ] => {
            assert_eq!(*reflexive, Some(ft.client));
            assert_eq!(*lifetime, Duration::from_secs(600));
            *relayed
        }
        other => panic!("expected Allocated, got {other:?}"),
    }
}

fn alice() -> Client {
    Client::new(ClientConfig::with_credentials("alice", "s3cret"), rng()).unwrap()
}

#[test]
fn binding_returns_the_reflexive_address_without_credentials() {
    let mut net = Net::with_alice();
    let mut c = Client::new(ClientConfig::default(), rng()).unwrap();
    c.binding(net.now).unwrap();
    net.pump(&mut c, five(Transport::Udp));
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::Binding {
            reflexive: addr(CLIENT)
        }]
    );
}

#[test]
fn allocate_after_401_challenge_then_relay_data_with_indications() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = alice();
    let relay = allocated(&mut net, &mut c, ft);
    assert_eq!(net.server.relay_of(&ft), Some(relay));

    // Without a permission nothing passes in either direction.
    let mut out = Vec::new();
    c.send_to(addr(PEER), b"early", &mut out).unwrap();
    assert_eq!(
        net.server.handle_client(net.now, ft, &out, &mut Vec::new()),
        Action::None
    );
    assert!(!net.deliver_from_peer(&mut c, relay, addr(PEER), b"early"));

    c.create_permission(net.now, &[addr(PEER)]).unwrap();
    net.pump(&mut c, ft);
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::PermissionCreated {
            peers: vec![addr(PEER)]
        }]
    );

    out.clear();
    c.send_to(addr(PEER), b"hello peer", &mut out).unwrap();
    match net.server.handle_client(net.now, ft, &out, &mut Vec::new()) {
        Action::ToPeer {
            relay: r,
            peer,
            payload,
        } => {
            assert_eq!((r, peer), (relay, addr(PEER)));
            assert_eq!(&out[payload], b"hello peer");
        }
        other => panic!("{other:?}"),
    }
    // Any port of the permitted IP may answer.
    let other_port = SocketAddr::new(addr(PEER).ip(), 9);
    assert!(net.deliver_from_peer(&mut c, relay, other_port, b"hi client"));
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::Data {
            peer: other_port,
            data: b"hi client".to_vec()
        }]
    );
}

#[test]
fn channel_bind_then_channel_data_both_ways_over_udp_and_tcp() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut net = Net::with_alice();
        let ft = five(transport);
        let mut c = Client::new(
            with(ClientConfig::with_credentials("alice", "s3cret"), |c| {
                c.reliable = transport.is_stream();
            }),
            rng(),
        )
        .unwrap();
        let relay = allocated(&mut net, &mut c, ft);
        let ch = c.bind_channel(net.now, addr(PEER)).unwrap();
        net.pump(&mut c, ft);
        assert_eq!(
            events(&mut c),
            vec![ClientEvent::ChannelBound {
                channel: ch,
                peer: addr(PEER)
            }]
        );
        assert_eq!(c.channel_of(addr(PEER)), Some(ch));
        let mut out = Vec::new();
        c.send_to(addr(PEER), b"abcde", &mut out).unwrap();
        assert_eq!(
            out.len(),
            if transport.is_stream() { 12 } else { 9 },
            "ChannelData padded only over TCP"
        );
        match net.server.handle_client(net.now, ft, &out, &mut Vec::new()) {
            Action::ToPeer { peer, payload, .. } => {
                assert_eq!(peer, addr(PEER));
                assert_eq!(&out[payload], b"abcde");
            }
            other => panic!("{other:?}"),
        }
        let mut down = Vec::new();
        assert_eq!(
            net.server
                .handle_peer(net.now, relay, addr(PEER), b"xyz", &mut down),
            Some(ft)
        );
        assert_eq!(down[..2], ch.to_be_bytes());
        assert_eq!(down.len(), if transport.is_stream() { 8 } else { 7 });
        c.handle_input(net.now, &down);
        // ChannelData is its own event, apart from Data indications.
        assert_eq!(
            events(&mut c),
            vec![ClientEvent::ChannelData {
                channel: ch,
                peer: addr(PEER),
                data: b"xyz".to_vec()
            }]
        );
    }
}

#[test]
fn wrong_password_fails_with_401_after_one_retry() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = Client::new(ClientConfig::with_credentials("alice", "wrong"), rng()).unwrap();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c, ft);
    match events(&mut c).as_slice() {
        [
            ClientEvent::Failed {
                request: Request::Allocate(_),
                failure: Failure::Error { code, .. },
            },
        ] => {
            assert_eq!(*code, ErrorCode::UNAUTHORIZED)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(net.server.stats().allocations, 0);
}

#[test]
fn stale_nonce_gets_438_and_the_client_retries_transparently() {
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.nonce_lifetime = Duration::from_secs(30);
    }));
    let ft = five(Transport::Udp);
    let mut c = alice();
    let _relay = allocated(&mut net, &mut c, ft);
    net.advance(Duration::from_secs(31));
    c.create_permission(net.now, &[addr(PEER)]).unwrap();
    // Observe the 438 on the wire.
    let req = c.poll_transmit().unwrap();
    let mut out = Vec::new();
    assert_eq!(
        net.server.handle_client(net.now, ft, &req, &mut out),
        Action::Reply
    );
    let m = Message::decode(&out, &DecodeLimits::default()).unwrap();
    assert_eq!(m.error_code().unwrap().unwrap().0, ErrorCode::STALE_NONCE);
    assert!(m.nonce().unwrap().is_some());
    c.handle_input(net.now, &out);
    net.pump(&mut c, ft);
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::PermissionCreated {
            peers: vec![addr(PEER)]
        }]
    );
}

#[test]
fn retransmitted_allocate_is_answered_from_the_cache_not_437() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    // First attempt: 401. Client retries with credentials.
    let first = c.poll_transmit().unwrap();
    let mut out = Vec::new();
    net.server.handle_client(net.now, ft, &first, &mut out);
    c.handle_input(net.now, &out);
    let authed = c.poll_transmit().unwrap();
    out.clear();
    assert_eq!(
        net.server.handle_client(net.now, ft, &authed, &mut out),
        Action::None,
        "answered after the bind"
    );
    // A retransmission while the relay is being bound is absorbed.
    assert_eq!(
        net.server.handle_client(net.now, ft, &authed, &mut out),
        Action::None
    );
    net.pump(&mut c, ft);
    assert!(matches!(
        events(&mut c).as_slice(),
        [ClientEvent::Allocated { .. }]
    ));
    // A late retransmission gets the same success, byte for byte.
    out.clear();
    assert_eq!(
        net.server.handle_client(net.now, ft, &authed, &mut out),
        Action::Reply
    );
    let m = Message::decode(&out, &DecodeLimits::default()).unwrap();
    assert_eq!(m.class(), Class::Success);
    assert!(m.xor_relayed_address().unwrap().is_some());
    // A new Allocate on the same 5-tuple is a mismatch.
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c, ft);
    match events(&mut c).as_slice() {
        [
            ClientEvent::Failed {
                failure: Failure::Error { code, .. },
                ..
            },
        ] => {
            assert_eq!(*code, ErrorCode::ALLOCATION_MISMATCH)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(net.server.stats().allocations, 1);
}

#[test]
fn loopback_and_private_peers_are_refused_unless_allowed() {
    for (cfg_allow, peer, ok) in [
        (false, "127.0.0.1:5000", false),
        (false, "10.1.2.3:5000", false),
        (false, "169.254.0.1:5000", false),
        (true, "127.0.0.1:5000", true),
        (true, "10.1.2.3:5000", false),
    ] {
        let mut net = Net::new(with(ServerConfig::default(), |c| {
            c.users = vec![("alice".into(), "s3cret".into())];
            c.allow_loopback_peers = cfg_allow;
        }));
        let ft = five(Transport::Udp);
        let mut c = alice();
        allocated(&mut net, &mut c, ft);
        c.create_permission(net.now, &[addr(peer)]).unwrap();
        net.pump(&mut c, ft);
        let evs = events(&mut c);
        if ok {
            assert!(
                matches!(evs.as_slice(), [ClientEvent::PermissionCreated { .. }]),
                "{peer}: {evs:?}"
            );
        } else {
            match evs.as_slice() {
                [
                    ClientEvent::Failed {
                        failure: Failure::Error { code, .. },
                        ..
                    },
                ] => {
                    assert_eq!(*code, ErrorCode::FORBIDDEN, "{peer}")
                }
                other => panic!("{peer}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_refused_peer_is_reported_once_per_allocation_with_the_rule() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = alice();
    let relay = allocated(&mut net, &mut c, ft);
    for peer in ["127.0.0.1:5000", "127.0.0.1:5001", "10.1.2.3:5000"] {
        c.create_permission(net.now, &[addr(peer)]).unwrap();
        net.pump(&mut c, ft);
    }
    c.bind_channel(net.now, addr("192.168.1.1:7")).unwrap();
    net.pump(&mut c, ft);
    assert_eq!(
        net.refused,
        [(relay, addr("127.0.0.1:5000"), PeerRefusal::Loopback)],
        "one report for the allocation, the first refusal"
    );
    // Another allocation gets its own report; a private address names its rule.
    let ft2 = FiveTuple {
        client: addr("192.0.2.2:4000"),
        ..ft
    };
    let mut c2 = alice();
    let relay2 = allocated(&mut net, &mut c2, ft2);
    c2.create_permission(net.now, &[addr("10.1.2.3:5000")])
        .unwrap();
    net.pump(&mut c2, ft2);
    assert_eq!(
        net.refused[1..],
        [(relay2, addr("10.1.2.3:5000"), PeerRefusal::Special)]
    );
}

#[test]
fn allow_list_cidr_opens_a_private_range() {
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.allowed_peers = vec!["10.0.0.0/8".parse().unwrap()];
    }));
    let ft = five(Transport::Udp);
    let mut c = alice();
    allocated(&mut net, &mut c, ft);
    c.bind_channel(net.now, addr("10.9.9.9:7")).unwrap();
    net.pump(&mut c, ft);
    assert!(matches!(
        events(&mut c).as_slice(),
        [ClientEvent::ChannelBound { .. }]
    ));
}

#[test]
fn refresh_zero_deletes_and_expiry_releases_the_relay() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = alice();
    let relay = allocated(&mut net, &mut c, ft);
    c.refresh(net.now, 0).unwrap();
    net.pump(&mut c, ft);
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::Refreshed {
            lifetime: Duration::ZERO
        }]
    );
    assert_eq!(net.released, vec![relay]);
    assert_eq!(c.relayed(), None);

    // A second client lets its allocation lapse: the server expires it after the lifetime.
    let ft2 = FiveTuple {
        client: addr("203.0.113.6:1"),
        ..ft
    };
    let mut c2 = alice();
    let relay2 = allocated(&mut net, &mut c2, ft2);
    net.advance(Duration::from_secs(599));
    assert_eq!(net.server.stats().allocations, 1);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.server.stats().allocations, 0);
    assert_eq!(net.released, vec![relay, relay2]);
}

#[test]
fn client_refreshes_the_allocation_before_it_expires() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = alice();
    allocated(&mut net, &mut c, ft);
    c.create_permission(net.now, &[addr(PEER)]).unwrap();
    net.pump(&mut c, ft);
    events(&mut c);
    // Run an hour of fake time, letting the client's timers drive refreshes.
    for _ in 0..60 {
        net.advance(Duration::from_secs(60));
        c.handle_timeout(net.now);
        net.pump(&mut c, ft);
    }
    let evs = events(&mut c);
    assert!(
        evs.iter()
            .filter(|e| matches!(e, ClientEvent::Refreshed { .. }))
            .count()
            >= 6,
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, ClientEvent::PermissionCreated { .. }))
    );
    assert!(
        !evs.iter().any(|e| matches!(e, ClientEvent::Failed { .. })),
        "{evs:?}"
    );
    assert_eq!(net.server.stats().allocations, 1);
    let relay = c.relayed().unwrap();
    assert!(net.deliver_from_peer(&mut c, relay, addr(PEER), b"still here"));
}

#[test]
fn lifetime_is_clamped_to_the_maximum() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = Client::new(
        with(ClientConfig::with_credentials("alice", "s3cret"), |c| {
            c.lifetime = Duration::from_secs(100_000);
        }),
        rng(),
    )
    .unwrap();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c, ft);
    match events(&mut c).as_slice() {
        [ClientEvent::Allocated { lifetime, .. }] => {
            assert_eq!(*lifetime, Duration::from_secs(3600))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn user_quota_gives_486() {
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.user_quota = 2;
    }));
    let mut codes = vec![];
    for i in 0..3u16 {
        let ft = FiveTuple {
            client: SocketAddr::new(addr(CLIENT).ip(), 1000 + i),
            ..five(Transport::Udp)
        };
        let mut c = alice();
        c.allocate(net.now, RelayProtocol::Udp).unwrap();
        net.pump(&mut c, ft);
        codes.push(match events(&mut c).as_slice() {
            [ClientEvent::Allocated { .. }] => 0,
            [
                ClientEvent::Failed {
                    failure: Failure::Error { code, .. },
                    ..
                },
            ] => code.0,
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(codes, vec![0, 0, 486]);
}

#[test]
fn relay_bind_failure_gives_508() {
    let mut net = Net::with_alice();
    net.fail_binds = true;
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c, ft);
    match events(&mut c).as_slice() {
        [
            ClientEvent::Failed {
                failure: Failure::Error { code, .. },
                ..
            },
        ] => {
            assert_eq!(*code, ErrorCode::INSUFFICIENT_CAPACITY)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rest_api_credentials_work_until_they_expire() {
    let secret = "north-sea";
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let now = Instant::now();
    let cfg = with(ServerConfig::default(), |c| {
        c.auth_secret = Some(secret.into());
    });
    let mut net = Net::new(cfg.clone());
    net.server = Server::new(cfg, now, wall, rng()).unwrap();
    net.now = now;
    let ft = five(Transport::Udp);
    let user = rest_api_username(1_700_000_100, "bob");
    let mut c = Client::new(
        ClientConfig::with_credentials(&user, &rest_api_password(secret, &user)),
        rng(),
    )
    .unwrap();
    allocated(&mut net, &mut c, ft);

    // 101 s later the same username has expired.
    net.advance(Duration::from_secs(101));
    let ft2 = FiveTuple {
        client: addr("203.0.113.6:1"),
        ..ft
    };
    let mut c2 = Client::new(
        ClientConfig::with_credentials(&user, &rest_api_password(secret, &user)),
        rng(),
    )
    .unwrap();
    c2.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c2, ft2);
    match events(&mut c2).as_slice() {
        [
            ClientEvent::Failed {
                failure: Failure::Error { code, .. },
                ..
            },
        ] => assert_eq!(*code, ErrorCode::UNAUTHORIZED),
        other => panic!("{other:?}"),
    }
    // A wrong secret never works.
    let ft3 = FiveTuple {
        client: addr("203.0.113.7:1"),
        ..ft
    };
    let user = rest_api_username(1_800_000_000, "bob");
    let mut c3 = Client::new(
        ClientConfig::with_credentials(&user, &rest_api_password("other", &user)),
        rng(),
    )
    .unwrap();
    c3.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c3, ft3);
    assert!(matches!(
        events(&mut c3).as_slice(),
        [ClientEvent::Failed { .. }]
    ));
}

#[test]
fn even_port_with_reservation_token_reserves_the_next_port() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate_with(net.now, RelayProtocol::Udp, Some(true), None)
        .unwrap();
    net.pump(&mut c, ft);
    let (relay, token) = match events(&mut c).as_slice() {
        [
            ClientEvent::Allocated {
                relayed,
                reservation_token: Some(t),
                ..
            },
        ] => (*relayed, *t),
        other => panic!("{other:?}"),
    };
    assert_eq!(relay.port() % 2, 0);
    let ft2 = FiveTuple {
        client: addr("203.0.113.6:1"),
        ..ft
    };
    let mut c2 = alice();
    c2.allocate_with(net.now, RelayProtocol::Udp, None, Some(token))
        .unwrap();
    net.pump(&mut c2, ft2);
    match events(&mut c2).as_slice() {
        [ClientEvent::Allocated { relayed, .. }] => assert_eq!(relayed.port(), relay.port() + 1),
        other => panic!("{other:?}"),
    }
    // The token is single-use.
    let ft3 = FiveTuple {
        client: addr("203.0.113.7:1"),
        ..ft
    };
    let mut c3 = alice();
    c3.allocate_with(net.now, RelayProtocol::Udp, None, Some(token))
        .unwrap();
    net.pump(&mut c3, ft3);
    assert!(matches!(
        events(&mut c3).as_slice(),
        [ClientEvent::Failed { .. }]
    ));
}

#[test]
fn unclaimed_reservation_is_released_after_30_s() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate_with(net.now, RelayProtocol::Udp, Some(true), None)
        .unwrap();
    net.pump(&mut c, ft);
    let relay = c.relayed().unwrap();
    net.advance(Duration::from_secs(31));
    assert_eq!(
        net.reservations_released,
        vec![SocketAddr::new(relay.ip(), relay.port() + 1)]
    );
}

#[test]
fn alternate_server_redirects_allocate_with_300() {
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.alternate_server = Some(addr("198.51.100.2:3478"));
    }));
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c, ft);
    assert!(matches!(
        events(&mut c).as_slice(),
        [ClientEvent::Failed { failure: Failure::Redirect(a), .. }] if *a == addr("198.51.100.2:3478")
    ));
}

#[test]
fn sha256_password_algorithm_is_negotiated_and_md5_still_accepted() {
    // Our client picks SHA-256 when the server offers it.
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    let first = c.poll_transmit().unwrap();
    let mut out = Vec::new();
    net.server.handle_client(net.now, ft, &first, &mut out);
    c.handle_input(net.now, &out);
    let authed = c.poll_transmit().unwrap();
    let m = Message::decode(&authed, &DecodeLimits::default()).unwrap();
    assert!(m.has_integrity_sha256() && !m.has_integrity());
    assert_eq!(m.password_algorithm().unwrap(), Some(2));
    out.clear();
    net.server.handle_client(net.now, ft, &authed, &mut out);
    net.pump(&mut c, ft);
    assert!(matches!(
        events(&mut c).as_slice(),
        [ClientEvent::Allocated { .. }]
    ));

    // A server that does not advertise algorithms gets MD5 MESSAGE-INTEGRITY.
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.password_algorithms = false;
    }));
    let mut c = alice();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    let first = c.poll_transmit().unwrap();
    let mut out = Vec::new();
    net.server.handle_client(net.now, ft, &first, &mut out);
    c.handle_input(net.now, &out);
    let authed = c.poll_transmit().unwrap();
    let m = Message::decode(&authed, &DecodeLimits::default()).unwrap();
    assert!(m.has_integrity() && !m.has_integrity_sha256());
    out.clear();
    net.server.handle_client(net.now, ft, &authed, &mut out);
    net.pump(&mut c, ft);
    assert!(matches!(
        events(&mut c).as_slice(),
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn unknown_comprehension_required_attribute_gives_420_with_the_list() {
    let mut net = Net::with_alice();
    let mut req = Vec::new();
    MessageEncoder::new(
        &mut req,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([3; 12]),
    )
    .attr(AttrType(0x7777), b"x")
    .finish()
    .unwrap();
    let mut out = Vec::new();
    assert_eq!(
        net.server
            .handle_client(net.now, five(Transport::Udp), &req, &mut out),
        Action::Reply
    );
    let m = Message::decode(&out, &DecodeLimits::default()).unwrap();
    assert_eq!(
        m.error_code().unwrap().unwrap().0,
        ErrorCode::UNKNOWN_ATTRIBUTE
    );
    assert_eq!(m.get(AttrType::UNKNOWN_ATTRIBUTES), Some(&[0x77, 0x77][..]));
}

#[test]
fn stun_only_server_refuses_allocate_and_answers_binding() {
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.turn = false;
    }));
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    c.binding(net.now).unwrap();
    net.pump(&mut c, ft);
    let evs = events(&mut c);
    assert!(evs.contains(&ClientEvent::Binding {
        reflexive: addr(CLIENT)
    }));
    assert!(evs.iter().any(|e| matches!(e, ClientEvent::Failed { failure: Failure::Error { code, .. }, .. } if *code == ErrorCode::BAD_REQUEST)));
}

#[test]
fn responses_carry_valid_integrity_with_the_users_key() {
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.realm = "example.org".into();
        c.password_algorithms = false;
        c.fingerprint = true;
    }));
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    let first = c.poll_transmit().unwrap();
    let mut out = Vec::new();
    net.server.handle_client(net.now, ft, &first, &mut out);
    c.handle_input(net.now, &out);
    let authed = c.poll_transmit().unwrap();
    net.server
        .handle_client(net.now, ft, &authed, &mut Vec::new());
    while let Some(ev) = net.server.poll_event() {
        if let ServerEvent::BindRelay { id, .. } = ev {
            net.server
                .relay_bound(net.now, id, addr("198.51.100.1:50000"), None);
        }
    }
    let (to, resp) = net.server.poll_transmit().unwrap();
    assert_eq!(to, ft);
    let m = Message::decode(&resp, &DecodeLimits::default()).unwrap();
    m.verify_integrity(&Key::long_term("alice", "example.org", "s3cret"))
        .unwrap();
    assert!(m.verify_fingerprint().unwrap());
    assert_eq!(m.software().unwrap(), Some("wskit"));
}

#[test]
fn rfc6062_connect_and_connection_bind() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Tcp);
    let mut c = Client::new(
        with(ClientConfig::with_credentials("alice", "s3cret"), |c| {
            c.reliable = true;
        }),
        rng(),
    )
    .unwrap();
    c.allocate(net.now, RelayProtocol::Tcp).unwrap();
    net.pump(&mut c, ft);
    let relay = match events(&mut c).as_slice() {
        [ClientEvent::Allocated { relayed, .. }] => *relayed,
        other => panic!("{other:?}"),
    };
    // Connect needs a permission first.
    c.connect(net.now, addr(PEER)).unwrap();
    net.pump(&mut c, ft);
    assert!(
        matches!(events(&mut c).as_slice(), [ClientEvent::Failed { failure: Failure::Error { code, .. }, .. }] if *code == ErrorCode::FORBIDDEN)
    );
    c.create_permission(net.now, &[addr(PEER)]).unwrap();
    c.connect(net.now, addr(PEER)).unwrap();
    net.pump(&mut c, ft);
    let evs = events(&mut c);
    let id = match evs.as_slice() {
        [
            ClientEvent::PermissionCreated { .. },
            ClientEvent::Connected {
                connection_id,
                peer,
            },
        ] => {
            assert_eq!(*peer, addr(PEER));
            *connection_id
        }
        other => panic!("{other:?}"),
    };
    // A second Connect to the same peer: 446.
    c.connect(net.now, addr(PEER)).unwrap();
    net.pump(&mut c, ft);
    assert!(
        matches!(events(&mut c).as_slice(), [ClientEvent::Failed { failure: Failure::Error { code, .. }, .. }] if *code == ErrorCode::CONNECTION_ALREADY_EXISTS)
    );
    // ConnectionBind on a new TCP connection.
    let data_ft = FiveTuple {
        client: addr("203.0.113.5:40001"),
        ..ft
    };
    let mut d = c.data_connection(rng()).unwrap();
    d.connection_bind(net.now, id).unwrap();
    net.pump(&mut d, data_ft);
    assert_eq!(
        events(&mut d),
        vec![ClientEvent::ConnectionBound { connection_id: id }]
    );
    assert_eq!(net.piped, vec![(id, data_ft)]);

    // Passive: a peer connects to the relay; the client learns of it and binds.
    let other_peer = SocketAddr::new(addr(PEER).ip(), 6000);
    let pid = net
        .server
        .handle_peer_tcp_connection(net.now, relay, other_peer)
        .unwrap();
    net.pump(&mut c, ft);
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::ConnectionAttempt {
            peer: other_peer,
            connection_id: pid
        }]
    );
    // Peers without permission are refused.
    assert_eq!(
        net.server
            .handle_peer_tcp_connection(net.now, relay, addr("203.0.113.99:1")),
        None
    );
    // An unbound passive connection is dropped after 30 s.
    net.advance(Duration::from_secs(31));
    assert_eq!(net.server.stats().peer_connections, 1);
}

#[test]
fn udp_client_retransmits_on_the_rfc_schedule_then_times_out() {
    let mut c = Client::new(ClientConfig::default(), rng()).unwrap();
    let t0 = Instant::now();
    c.binding(t0).unwrap();
    let mut sends = vec![];
    let mut now = t0;
    while c.poll_transmit().is_some() {
        sends.push((now - t0).as_millis());
    }
    while let Some(at) = c.poll_timeout() {
        now = at;
        c.handle_timeout(now);
        while c.poll_transmit().is_some() {
            sends.push((now - t0).as_millis());
        }
        if let Some(ev) = c.poll_event() {
            assert_eq!(
                ev,
                ClientEvent::Failed {
                    request: Request::Binding,
                    failure: Failure::Timeout
                }
            );
            break;
        }
    }
    assert_eq!(sends, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!((now - t0).as_millis(), 39_500);
}

/// Runs Binding, Allocate (401 then authenticated), CreatePermission, a Send indication and a
/// Data indication back, with the server and the client drawing from fixed sources, and returns
/// every byte string that crossed the wire, in order.
fn recorded_exchange(t0: Instant) -> Vec<Vec<u8>> {
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let cfg = with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
    });
    let mut server = Server::new(cfg, t0, wall, rng()).unwrap();
    let mut client = Client::new(ClientConfig::with_credentials("alice", "s3cret"), rng()).unwrap();
    let ft = five(Transport::Udp);
    let mut wire = Vec::new();
    let exchange = |server: &mut Server, client: &mut Client, wire: &mut Vec<Vec<u8>>| {
        let mut out = Vec::new();
        for _ in 0..4 {
            while let Some(bytes) = client.poll_transmit() {
                wire.push(bytes.clone());
                out.clear();
                if server.handle_client(t0, ft, &bytes, &mut out) == Action::Reply {
                    wire.push(out.clone());
                    client.handle_input(t0, &out);
                }
            }
            while let Some(ev) = server.poll_event() {
                if let ServerEvent::BindRelay { id, .. } = ev {
                    server.relay_bound(t0, id, addr("198.51.100.1:50000"), None);
                }
            }
            while let Some((_, bytes)) = server.poll_transmit() {
                wire.push(bytes.clone());
                client.handle_input(t0, &bytes);
            }
        }
    };
    client.binding(t0).unwrap();
    client.allocate(t0, RelayProtocol::Udp).unwrap();
    exchange(&mut server, &mut client, &mut wire);
    client.create_permission(t0, &[addr(PEER)]).unwrap();
    exchange(&mut server, &mut client, &mut wire);
    let mut send = Vec::new();
    client.send_to(addr(PEER), b"ping", &mut send).unwrap();
    wire.push(send);
    let mut data = Vec::new();
    server
        .handle_peer(
            t0,
            addr("198.51.100.1:50000"),
            addr(PEER),
            b"pong",
            &mut data,
        )
        .unwrap();
    wire.push(data);
    assert!(client.relayed().is_some(), "the exchange allocated");
    wire
}

#[test]
fn a_core_exchange_replays_byte_for_byte_with_fixed_random_sources() {
    let t0 = Instant::now();
    let first = recorded_exchange(t0);
    let second = recorded_exchange(t0);
    assert!(first.len() >= 9, "{} messages", first.len());
    assert_eq!(first, second);
    // The first request's transaction id is the first 12 bytes of the client's source.
    let binding = Message::decode(&first[0], &DecodeLimits::default()).unwrap();
    let expected: Vec<u8> = (1..=12).collect();
    assert_eq!(binding.transaction_id().0.as_slice(), expected.as_slice());
}

#[test]
fn a_failing_random_source_is_an_error_not_a_zero_id() {
    let broken = |_: &mut [u8]| false;
    assert!(matches!(
        Server::new(
            with(ServerConfig::default(), |c| c.turn = false),
            Instant::now(),
            SystemTime::UNIX_EPOCH,
            broken
        ),
        Err(stun_turn::Error::Random)
    ));
    let mut c = Client::new(ClientConfig::default(), broken).unwrap();
    assert!(matches!(
        c.binding(Instant::now()),
        Err(stun_turn::Error::Random)
    ));
}

#[test]
fn client_limits_are_typed_errors_that_name_the_setting() {
    let mut c = Client::new(
        with(ClientConfig::default(), |c| c.max_transactions = 1),
        rng(),
    )
    .unwrap();
    c.binding(Instant::now()).unwrap();
    let e = c.binding(Instant::now()).unwrap_err();
    assert!(
        matches!(e, stun_turn::Error::TooManyTransactions { max: 1 }),
        "{e:?}"
    );
    assert!(e.to_string().contains("max_transactions"), "{e}");
}

// ------------------------------------------------------------------ server hooks

/// Records every hook call as a line; answers `password` from its own table and refuses
/// relays on `refuse_port`.
#[derive(Default)]
struct Recorder {
    log: std::sync::Mutex<Vec<String>>,
    passwords: Vec<(String, String)>,
    refuse_port: Option<u16>,
}

impl Recorder {
    fn push(&self, line: String) {
        self.log.lock().unwrap().push(line);
    }

    fn lines(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl stun_turn::ServerHooks for Recorder {
    fn password(&self, username: &str, realm: &str) -> Option<String> {
        self.push(format!("password {username} {realm:?}"));
        self.passwords
            .iter()
            .find(|(u, _)| u == username)
            .map(|(_, p)| p.clone())
    }

    fn before_allocate(&self, _client: &FiveTuple, username: &str, relay: SocketAddr) -> bool {
        self.push(format!("before_allocate {username} {}", relay.port()));
        self.refuse_port != Some(relay.port())
    }

    fn allocation_created(
        &self,
        _client: &FiveTuple,
        username: &str,
        relay: SocketAddr,
        lifetime: Duration,
    ) {
        self.push(format!(
            "created {username} {} {}",
            relay.port(),
            lifetime.as_secs()
        ));
    }

    fn allocation_deleted(
        &self,
        _client: &FiveTuple,
        relay: SocketAddr,
        reason: stun_turn::DeleteReason,
    ) {
        self.push(format!("deleted {} {reason:?}", relay.port()));
    }

    fn request_succeeded(&self, _from: &FiveTuple, method: Method) {
        self.push(format!("ok {method:?}"));
    }

    fn request_failed(&self, _from: &FiveTuple, method: Method, code: ErrorCode) {
        self.push(format!("error {method:?} {}", code.0));
    }

    fn message_discarded(&self, _from: &FiveTuple, reason: stun_turn::DiscardReason) {
        self.push(format!("discarded message {reason:?}"));
    }

    fn channel_data_discarded(&self, _from: &FiveTuple, reason: stun_turn::DiscardReason) {
        self.push(format!("discarded channel data {reason:?}"));
    }
}

fn hooked(rec: &std::sync::Arc<Recorder>) -> Net {
    Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.realm = "example.org".into();
        c.hooks = Some(rec.clone());
    }))
}

#[test]
fn hooks_see_allocations_created_and_deleted_and_every_answer() {
    let rec = std::sync::Arc::new(Recorder::default());
    let mut net = hooked(&rec);
    let ft = five(Transport::Udp);
    let mut c = alice();
    let relay = allocated(&mut net, &mut c, ft);
    let port = relay.port();
    assert_eq!(
        rec.lines(),
        vec![
            "error Allocate 401".to_string(),
            format!("before_allocate alice {port}"),
            format!("created alice {port} 600"),
            "ok Allocate".into(),
        ]
    );
    c.refresh(net.now, 0).unwrap();
    net.pump(&mut c, ft);
    assert_eq!(
        rec.lines(),
        vec![format!("deleted {port} Refreshed"), "ok Refresh".into()]
    );
    // An allocation that lapses is deleted as Expired; one on a closed TCP connection as
    // ClientClosed.
    let mut c2 = alice();
    // (Another 5-tuple: the fixed source repeats transaction ids, which the cache would answer.)
    let ft2 = FiveTuple {
        client: addr("203.0.113.6:1"),
        ..ft
    };
    let relay2 = allocated(&mut net, &mut c2, ft2);
    rec.lines();
    net.advance(Duration::from_secs(601));
    assert_eq!(
        rec.lines(),
        vec![format!("deleted {} Expired", relay2.port())]
    );
    let tcp = five(Transport::Tcp);
    let mut c3 = Client::new(
        with(ClientConfig::with_credentials("alice", "s3cret"), |c| {
            c.reliable = true
        }),
        rng(),
    )
    .unwrap();
    let relay3 = allocated(&mut net, &mut c3, tcp);
    rec.lines();
    net.server.client_closed(&tcp);
    assert_eq!(
        rec.lines(),
        vec![format!("deleted {} ClientClosed", relay3.port())]
    );
}

#[test]
fn before_allocate_can_refuse_the_relay_with_403() {
    let rec = std::sync::Arc::new(Recorder {
        refuse_port: Some(50000),
        ..Recorder::default()
    });
    let mut net = hooked(&rec);
    let ft = five(Transport::Udp);
    let mut c = alice();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c, ft);
    match events(&mut c).as_slice() {
        [
            ClientEvent::Failed {
                request: Request::Allocate(_),
                failure: Failure::Error { code, .. },
            },
        ] => assert_eq!(*code, ErrorCode::FORBIDDEN),
        other => panic!("{other:?}"),
    }
    assert_eq!(net.released, vec![addr("198.51.100.1:50000")]);
    assert_eq!(net.server.stats().allocations, 0);
    let lines = rec.lines();
    assert!(
        lines.contains(&"error Allocate 403".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("created")), "{lines:?}");
    // The next relay (another port) is accepted.
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    net.pump(&mut c, ft);
    assert!(matches!(
        events(&mut c).as_slice(),
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn a_password_hook_authenticates_users_beside_the_static_list() {
    let rec = std::sync::Arc::new(Recorder {
        passwords: vec![("bob".into(), "from-db".into())],
        ..Recorder::default()
    });
    let mut net = hooked(&rec);
    let ft = five(Transport::Udp);
    let mut bob = Client::new(ClientConfig::with_credentials("bob", "from-db"), rng()).unwrap();
    allocated(&mut net, &mut bob, ft);
    assert!(
        rec.lines()
            .contains(&"password bob \"example.org\"".to_string())
    );
    // A user the hook does not know, and a wrong password, get 401.
    for (user, pass) in [("carol", "x"), ("bob", "wrong")] {
        let ft = FiveTuple {
            client: addr("203.0.113.9:1"),
            ..ft
        };
        let mut c = Client::new(ClientConfig::with_credentials(user, pass), rng()).unwrap();
        c.allocate(net.now, RelayProtocol::Udp).unwrap();
        net.pump(&mut c, ft);
        assert!(
            matches!(events(&mut c).as_slice(), [ClientEvent::Failed { failure: Failure::Error { code, .. }, .. }] if *code == ErrorCode::UNAUTHORIZED),
            "{user}"
        );
    }
    // Static users do not reach the hook.
    rec.lines();
    let mut c = alice();
    allocated(
        &mut net,
        &mut c,
        FiveTuple {
            client: addr("203.0.113.10:1"),
            ..ft
        },
    );
    assert!(!rec.lines().iter().any(|l| l.starts_with("password")));
    // A TURN server may rely on the hook alone.
    let only_hook = with(ServerConfig::default(), |c| c.hooks = Some(rec.clone()));
    only_hook.validate().unwrap();
}

#[test]
fn discarded_messages_and_channel_data_are_reported_with_the_reason() {
    let rec = std::sync::Arc::new(Recorder::default());
    let mut net = hooked(&rec);
    let ft = five(Transport::Udp);
    let mut out = Vec::new();
    // ChannelData before any allocation.
    net.server
        .handle_client(net.now, ft, &[0x40, 0x00, 0x00, 0x01, 0xaa], &mut out);
    // Garbage.
    net.server.handle_client(net.now, ft, &[0xff; 24], &mut out);
    // A Binding request whose FINGERPRINT is wrong.
    let mut req = Vec::new();
    let mut e = MessageEncoder::new(
        &mut req,
        MessageType::new(Method::BINDING, Class::Request),
        TransactionId([9; 12]),
    );
    e.fingerprint();
    e.finish().unwrap();
    let last = req.len() - 1;
    req[last] ^= 1;
    assert_eq!(
        net.server.handle_client(net.now, ft, &req, &mut out),
        Action::None
    );
    assert!(out.is_empty(), "nothing answered");
    assert_eq!(
        rec.lines(),
        vec![
            "discarded channel data NoAllocation".to_string(),
            "discarded message Malformed".into(),
            "discarded message BadFingerprint".into(),
        ]
    );
    let mut c = alice();
    let relay = allocated(&mut net, &mut c, ft);
    rec.lines();
    // A Send indication to a peer without permission, ChannelData on an unbound channel.
    let mut send = Vec::new();
    c.send_to(addr(PEER), b"no permission", &mut send).unwrap();
    net.server.handle_client(net.now, ft, &send, &mut out);
    net.server
        .handle_client(net.now, ft, &[0x40, 0x07, 0x00, 0x01, 0xaa], &mut out);
    assert!(relay.port() >= 50000);
    assert_eq!(
        rec.lines(),
        vec![
            "discarded message NoPermission".to_string(),
            "discarded channel data UnknownChannel".into(),
        ]
    );
}

#[test]
fn binding_with_stun_auth_needs_long_term_credentials() {
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.stun_auth = true;
    }));
    let ft = five(Transport::Udp);
    let mut anon = Client::new(ClientConfig::default(), rng()).unwrap();
    anon.binding(net.now).unwrap();
    net.pump(&mut anon, ft);
    assert!(
        matches!(events(&mut anon).as_slice(), [ClientEvent::Failed { request: Request::Binding, failure: Failure::Error { code, .. } }] if *code == ErrorCode::UNAUTHORIZED)
    );
    let mut c = alice();
    c.binding(net.now).unwrap();
    net.pump(&mut c, ft);
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::Binding {
            reflexive: addr(CLIENT)
        }]
    );
    let mut wrong = Client::new(ClientConfig::with_credentials("alice", "nope"), rng()).unwrap();
    wrong.binding(net.now).unwrap();
    net.pump(&mut wrong, ft);
    assert!(matches!(
        events(&mut wrong).as_slice(),
        [ClientEvent::Failed { .. }]
    ));
}

fn short_term_server() -> Net {
    Net::new(with(ServerConfig::default(), |c| {
        c.users = vec![("alice".into(), "s3cret".into())];
        c.turn = false;
        c.stun_auth = true;
        c.short_term = true;
    }))
}

fn short_term_client(password: &str) -> Client {
    Client::new(
        with(ClientConfig::with_credentials("alice", password), |c| {
            c.short_term = true
        }),
        rng(),
    )
    .unwrap()
}

#[test]
fn short_term_credentials_sign_binding_without_a_challenge() {
    let mut net = short_term_server();
    let ft = five(Transport::Udp);
    let mut c = short_term_client("s3cret");
    c.binding(net.now).unwrap();
    // The first request is already signed with the password as key: no 401 round trip.
    let first = c.poll_transmit().unwrap();
    let msg = Message::decode(&first, &DecodeLimits::default()).unwrap();
    assert_eq!(msg.username().unwrap(), Some("alice"));
    assert_eq!(msg.realm().unwrap(), None);
    msg.verify_integrity(&Key::short_term("s3cret")).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        net.server.handle_client(net.now, ft, &first, &mut out),
        Action::Reply
    );
    // The response is signed with the same key, and the client accepts it.
    let resp = Message::decode(&out, &DecodeLimits::default()).unwrap();
    resp.verify_integrity(&Key::short_term("s3cret")).unwrap();
    c.handle_input(net.now, &out);
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::Binding {
            reflexive: addr(CLIENT)
        }]
    );
    // A wrong password gets 401 without REALM or NONCE, and the client does not retry.
    let mut wrong = short_term_client("nope");
    wrong.binding(net.now).unwrap();
    let req = wrong.poll_transmit().unwrap();
    out.clear();
    net.server.handle_client(net.now, ft, &req, &mut out);
    let resp = Message::decode(&out, &DecodeLimits::default()).unwrap();
    assert_eq!(
        resp.error_code().unwrap().unwrap().0,
        ErrorCode::UNAUTHORIZED
    );
    assert_eq!(resp.realm().unwrap(), None);
    assert_eq!(resp.nonce().unwrap(), None);
    wrong.handle_input(net.now, &out);
    assert!(wrong.poll_transmit().is_none(), "no retry");
    assert!(matches!(
        events(&mut wrong).as_slice(),
        [ClientEvent::Failed { .. }]
    ));
    // An unsigned request is 400.
    let mut anon = Client::new(ClientConfig::default(), rng()).unwrap();
    anon.binding(net.now).unwrap();
    let req = anon.poll_transmit().unwrap();
    out.clear();
    net.server.handle_client(net.now, ft, &req, &mut out);
    let resp = Message::decode(&out, &DecodeLimits::default()).unwrap();
    assert_eq!(
        resp.error_code().unwrap().unwrap().0,
        ErrorCode::BAD_REQUEST
    );
    // Short-term on a TURN server is a configuration error.
    let bad = with(ServerConfig::default(), |c| {
        c.users = vec![("a".into(), "b".into())];
        c.stun_auth = true;
        c.short_term = true;
    });
    assert!(bad.validate().is_err());
}

#[test]
fn binding_responses_carry_response_origin_and_other_address() {
    let mut net = Net::new(with(ServerConfig::default(), |c| {
        c.turn = false;
        c.other_address = Some(addr("198.51.100.2:3479"));
    }));
    let ft = five(Transport::Udp);
    let mut c = Client::new(ClientConfig::default(), rng()).unwrap();
    c.binding(net.now).unwrap();
    let req = c.poll_transmit().unwrap();
    let mut out = Vec::new();
    net.server.handle_client(net.now, ft, &req, &mut out);
    let resp = Message::decode(&out, &DecodeLimits::default()).unwrap();
    assert_eq!(resp.xor_mapped_address().unwrap(), Some(addr(CLIENT)));
    let origin = resp
        .get(AttrType::RESPONSE_ORIGIN)
        .expect("RESPONSE-ORIGIN");
    let other = resp.get(AttrType::OTHER_ADDRESS).expect("OTHER-ADDRESS");
    // Plain (not XOR'ed) address attributes: family 1, port, IPv4.
    assert_eq!(origin, [0, 1, 0x0d, 0x96, 198, 51, 100, 1]);
    assert_eq!(other, [0, 1, 0x0d, 0x97, 198, 51, 100, 2]);
}

#[test]
fn before_send_can_add_attributes_that_integrity_covers() {
    let mut net = Net::with_alice();
    let ft = five(Transport::Udp);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let cfg = with(ClientConfig::with_credentials("alice", "s3cret"), |c| {
        c.software = Some("wskit-test 1.0".into());
        c.before_send = Some(std::sync::Arc::new(
            move |req: &Request, e: &mut MessageEncoder<'_>| {
                log.lock().unwrap().push(req.clone());
                e.attr(AttrType(0x8070), b"tag!");
            },
        ));
    });
    let mut c = Client::new(cfg, rng()).unwrap();
    c.allocate(net.now, RelayProtocol::Udp).unwrap();
    let first = c.poll_transmit().unwrap();
    let msg = Message::decode(&first, &DecodeLimits::default()).unwrap();
    assert_eq!(msg.get(AttrType(0x8070)), Some(&b"tag!"[..]));
    assert_eq!(msg.get(AttrType::SOFTWARE), Some(&b"wskit-test 1.0"[..]));
    let mut out = Vec::new();
    net.server.handle_client(net.now, ft, &first, &mut out);
    c.handle_input(net.now, &out);
    // The authenticated retry carries it too, under MESSAGE-INTEGRITY, and the server accepts it.
    let retry = c.poll_transmit().unwrap();
    let msg = Message::decode(&retry, &DecodeLimits::default()).unwrap();
    assert_eq!(msg.get(AttrType(0x8070)), Some(&b"tag!"[..]));
    // Signed: the encoder adds MESSAGE-INTEGRITY after everything the hook wrote.
    assert!(msg.has_integrity() || msg.has_integrity_sha256());
    let mut out = Vec::new();
    net.server.handle_client(net.now, ft, &retry, &mut out);
    net.pump(&mut c, ft);
    assert!(matches!(
        events(&mut c).as_slice(),
        [ClientEvent::Allocated { .. }]
    ));
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "first send and the authenticated retry"
    );
}
