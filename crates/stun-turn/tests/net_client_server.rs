//! The tokio client against the tokio server over loopback, UDP and TCP.

use std::net::SocketAddr;
use std::time::Duration;

use stun_turn::net::{TurnClient, TurnServer, TurnServerConfig, stun_binding};
use stun_turn::{ClientConfig, Error, ErrorCode, RelayProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

fn server_config() -> TurnServerConfig {
    let mut cfg = TurnServerConfig::default();
    cfg.udp = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.server.users = vec![("alice".into(), "s3cret".into())];
    cfg.server.realm = "example.org".into();
    cfg.server.allow_loopback_peers = true;
    cfg
}

async fn udp_echo_peer() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut b).await {
            let _ = s.send_to(&b[..n], from).await;
        }
    });
    a
}

async fn timeout<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn udp_and_tcp_clients_relay_through_channels_and_indications() {
    // On the server's own event-loop threads (default), and on the caller's runtime.
    for threads in [2, 0] {
        let mut cfg = server_config();
        cfg.threads = threads;
        relay_through_channels_and_indications(cfg).await;
    }
}

async fn relay_through_channels_and_indications(cfg: TurnServerConfig) {
    let server = TurnServer::bind(cfg).await.unwrap();
    let peer = udp_echo_peer().await;
    for tcp in [false, true] {
        let cfg = ClientConfig::with_credentials("alice", "s3cret");
        let mut c = if tcp {
            TurnClient::tcp(server.tcp_addrs()[0], cfg).await.unwrap()
        } else {
            TurnClient::udp(server.udp_addrs()[0], cfg).await.unwrap()
        };
        let relayed = timeout(c.allocate()).await.unwrap();
        assert_eq!(
            relayed.ip(),
            "127.0.0.1".parse::<std::net::IpAddr>().unwrap()
        );
        // Indications first.
        timeout(c.create_permission(&[peer])).await.unwrap();
        c.send_to(peer, b"via indication").await.unwrap();
        let (from, data) = timeout(c.recv_from()).await.unwrap();
        assert_eq!((from, data.as_slice()), (peer, &b"via indication"[..]));
        // Then a channel.
        timeout(c.bind_channel(peer)).await.unwrap();
        for i in 0..20u8 {
            let msg = vec![i; 1 + usize::from(i)];
            c.send_to(peer, &msg).await.unwrap();
            let (from, data) = timeout(c.recv_from()).await.unwrap();
            assert_eq!((from, data), (peer, msg));
        }
        assert_eq!(timeout(c.refresh(0)).await.unwrap(), 0);
    }
    assert_eq!(server.stats().allocations, 0);
}

#[tokio::test]
async fn dropping_the_server_closes_its_sockets_and_threads() {
    let mut cfg = server_config();
    cfg.threads = 2;
    let server = TurnServer::bind(cfg).await.unwrap();
    let (udp, tcp) = (server.udp_addrs()[0], server.tcp_addrs()[0]);
    timeout(stun_binding(udp, false)).await.unwrap();
    drop(server);
    // Without SO_REUSEPORT these binds fail while any of the server's sockets is open.
    std::net::UdpSocket::bind(udp).expect("UDP port still held after drop");
    std::net::TcpListener::bind(tcp).expect("TCP port still held after drop");
}

#[tokio::test]
async fn a_second_server_on_the_same_udp_port_is_refused() {
    let first = TurnServer::bind(server_config()).await.unwrap();
    let mut cfg = server_config();
    cfg.udp = vec![first.udp_addrs()[0]];
    cfg.tcp = vec![];
    match TurnServer::bind(cfg).await {
        Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse),
        other => panic!("expected AddrInUse, got {other:?}"),
    }
}

#[tokio::test]
async fn udp_allocate_moves_to_another_port_on_437() {
    let server = TurnServer::bind(server_config()).await.unwrap();
    let srv = server.udp_addrs()[0];
    let creds = || ClientConfig::with_credentials("alice", "s3cret");
    // A client allocates, then vanishes without releasing: its 5-tuple keeps the allocation.
    let first = TurnClient::udp(srv, creds()).await.unwrap();
    let port = first.local_addr().port();
    timeout(first.allocate()).await.unwrap();
    drop(first);
    // The client's task closes its socket once it sees the handle gone: wait for the port by
    // yielding to it (no real sleep).
    let mut sock = None;
    for _ in 0..100_000 {
        if let Ok(s) = UdpSocket::bind(("0.0.0.0", port)).await {
            sock = Some(s);
            break;
        }
        tokio::task::yield_now().await;
    }
    // A new client on the same local port gets 437 and retries from another port.
    let sock = sock.expect("the dropped client's port was never released");
    let second = TurnClient::udp_from(sock, srv, creds()).await.unwrap();
    assert_eq!(second.local_addr().port(), port);
    timeout(second.allocate()).await.unwrap();
    assert_ne!(second.local_addr().port(), port);
    assert_eq!(server.stats().allocations, 2);
}

#[tokio::test]
async fn relay_ports_are_found_in_a_nearly_full_range_and_508_when_none_is_left() {
    // Three relay ports, the middle one taken by somebody else.
    let (base, _taken) = loop {
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = probe.local_addr().unwrap().port();
        drop(probe);
        if !(1_024..=60_000).contains(&p) {
            continue;
        }
        let (Ok(a), Ok(b), Ok(c)) = (
            std::net::UdpSocket::bind(("127.0.0.1", p)),
            std::net::UdpSocket::bind(("127.0.0.1", p + 1)),
            std::net::UdpSocket::bind(("127.0.0.1", p + 2)),
        ) else {
            continue;
        };
        drop((a, c));
        break (p, b);
    };
    let mut cfg = server_config();
    cfg.min_port = base;
    cfg.max_port = base + 2;
    let server = TurnServer::bind(cfg).await.unwrap();
    let creds = || ClientConfig::with_credentials("alice", "s3cret");
    let mut relays = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..2 {
        let c = TurnClient::udp(server.udp_addrs()[0], creds())
            .await
            .unwrap();
        relays.push(timeout(c.allocate()).await.unwrap().port());
        clients.push(c);
    }
    relays.sort_unstable();
    assert_eq!(relays, vec![base, base + 2]);
    let third = TurnClient::udp(server.udp_addrs()[0], creds())
        .await
        .unwrap();
    match timeout(third.allocate()).await {
        Err(Error::Response { code, .. }) => assert_eq!(code, ErrorCode::INSUFFICIENT_CAPACITY),
        other => panic!("expected 508, got {other:?}"),
    }
}

#[tokio::test]
async fn binding_over_udp_and_tcp_reports_the_local_address() {
    let server = TurnServer::bind(server_config()).await.unwrap();
    let udp = timeout(stun_binding(server.udp_addrs()[0], false))
        .await
        .unwrap();
    let tcp = timeout(stun_binding(server.tcp_addrs()[0], true))
        .await
        .unwrap();
    assert_eq!(udp.ip().to_string(), "127.0.0.1");
    assert_eq!(tcp.ip().to_string(), "127.0.0.1");
    assert_ne!(udp.port(), 0);
}

#[tokio::test]
async fn wrong_password_is_refused_with_401() {
    let server = TurnServer::bind(server_config()).await.unwrap();
    let c = TurnClient::udp(
        server.udp_addrs()[0],
        ClientConfig::with_credentials("alice", "nope"),
    )
    .await
    .unwrap();
    match timeout(c.allocate()).await {
        Err(Error::Response { code, .. }) => assert_eq!(code, ErrorCode::UNAUTHORIZED),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tcp_relay_connect_and_connection_bind_pipe_raw_bytes() {
    let server = TurnServer::bind(server_config()).await.unwrap();
    // A TCP echo peer.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 1024];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let c = TurnClient::tcp(
        server.tcp_addrs()[0],
        ClientConfig::with_credentials("alice", "s3cret"),
    )
    .await
    .unwrap();
    let (relayed, _) = timeout(c.allocate_with(RelayProtocol::Tcp, None, None))
        .await
        .unwrap();
    assert_ne!(relayed.port(), 0);
    timeout(c.create_permission(&[peer])).await.unwrap();
    let id = timeout(c.connect(peer)).await.unwrap();

    // The data connection: a raw ConnectionBind written with the sans-IO client.
    let mut data = TcpStream::connect(server.tcp_addrs()[0]).await.unwrap();
    let mut core = stun_turn::Client::new(
        {
            let mut cfg = ClientConfig::with_credentials("alice", "s3cret");
            cfg.reliable = true;
            cfg
        },
        stun_turn::net::OsRandom::new(),
    )
    .unwrap();
    let now = std::time::Instant::now();
    core.connection_bind(now, id).unwrap();
    let mut bound = false;
    let mut buf = vec![0u8; 4096];
    for _ in 0..4 {
        while let Some(b) = core.poll_transmit() {
            data.write_all(&b).await.unwrap();
        }
        let n = timeout(data.read(&mut buf)).await.unwrap();
        core.handle_input(now, &buf[..n]);
        while let Some(ev) = core.poll_event() {
            if matches!(ev, stun_turn::ClientEvent::ConnectionBound { connection_id } if connection_id == id)
            {
                bound = true;
            }
        }
        if bound {
            break;
        }
    }
    assert!(bound, "ConnectionBind succeeded");
    data.write_all(b"raw bytes through the relay")
        .await
        .unwrap();
    let mut got = vec![0u8; 27];
    timeout(data.read_exact(&mut got)).await.unwrap();
    assert_eq!(&got, b"raw bytes through the relay");
}

/// A TURN server that answers Allocate with 300 Try Alternate naming `to`.
async fn redirecting_to(to: SocketAddr, turn: bool) -> TurnServer {
    let mut cfg = server_config();
    cfg.server.alternate_server = Some(to);
    cfg.server.turn = turn;
    TurnServer::bind(cfg).await.unwrap()
}

#[tokio::test]
async fn the_client_follows_alternate_server_a_bounded_number_of_hops() {
    let target = TurnServer::bind(server_config()).await.unwrap();
    // Two hops over UDP: first -> second -> target.
    let second = redirecting_to(target.udp_addrs()[0], true).await;
    let first = redirecting_to(second.udp_addrs()[0], true).await;
    let creds = || ClientConfig::with_credentials("alice", "s3cret");
    let c = TurnClient::udp(first.udp_addrs()[0], creds())
        .await
        .unwrap();
    let relayed = timeout(c.allocate()).await.unwrap();
    assert_eq!(target.stats().allocations, 1);
    assert_eq!(first.stats().allocations + second.stats().allocations, 0);
    assert!(relayed.port() > 0);
    // With one hop allowed, the second redirect is the error, naming where it pointed.
    let mut one = creds();
    one.max_redirects = 1;
    let c = TurnClient::udp(first.udp_addrs()[0], one).await.unwrap();
    match timeout(c.allocate()).await {
        Err(Error::Redirected { alternate }) => assert_eq!(alternate, target.udp_addrs()[0]),
        other => panic!("expected Redirected, got {other:?}"),
    }
    // Over TCP, a STUN-only server redirects Binding.
    let stun_only = redirecting_to(target.tcp_addrs()[0], false).await;
    let mut none = ClientConfig::default();
    let c = TurnClient::tcp(stun_only.tcp_addrs()[0], none.clone())
        .await
        .unwrap();
    timeout(c.binding()).await.unwrap();
    none.max_redirects = 0;
    let c = TurnClient::tcp(stun_only.tcp_addrs()[0], none)
        .await
        .unwrap();
    assert!(matches!(
        timeout(c.binding()).await,
        Err(Error::Redirected { .. })
    ));
}
