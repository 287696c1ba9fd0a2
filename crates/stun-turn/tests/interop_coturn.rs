//! Interop with coturn: its clients (`turnutils_uclient`, `turnutils_stunclient`) against our
//! server, and our client against its `turnserver`.
//!
//! When the coturn binaries are missing these tests print why and pass, unless the environment
//! sets `WSKIT_REQUIRE_PEERS=1` (CI does), in which case they fail.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use stun_turn::net::{TurnClient, TurnServer, TurnServerConfig};
use stun_turn::{
    Client, ClientConfig, ClientEvent, DecodeLimits, ErrorCode, Message, RelayProtocol,
};

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(program).is_file()))
}

/// `true` when the tools are there; otherwise skips or fails as `ws_testkit::peers` decides.
fn peers_available(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !have(t)).collect();
    if missing.is_empty() {
        return true;
    }
    ws_testkit::peers::missing(
        &format!("{missing:?} not found on PATH"),
        "apt-get install -y coturn",
    );
    false
}

/// Kills the child by pid when dropped, so a failing assertion never leaves a server running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (checked by binding both, then releasing).
fn free_port() -> u16 {
    ws_testkit::peers::free_port()
}

fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("wait"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
    }
}

/// Starts `turnutils_peer` (a UDP echo peer) on a free port.
fn start_udp_peer() -> (Guard, u16) {
    let port = free_port();
    let child = Command::new("turnutils_peer")
        .args(["-L", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnutils_peer");
    std::thread::sleep(Duration::from_millis(300));
    (Guard(child), port)
}

async fn start_wskit(secret: Option<&str>) -> TurnServer {
    start_wskit_with(secret, None).await
}

async fn start_wskit_with(
    secret: Option<&str>,
    hooks: Option<stun_turn::SharedHooks>,
) -> TurnServer {
    // A port found free can be taken again before the bind (by a relay allocation of a test
    // running in parallel, for example): try a few.
    let mut attempt = 0;
    loop {
        let mut cfg = TurnServerConfig::default();
        let port = free_port();
        cfg.udp = vec![SocketAddr::from(([127, 0, 0, 1], port))];
        cfg.tcp = cfg.udp.clone();
        cfg.server.users = vec![("alice".into(), "s3cret".into())];
        cfg.server.realm = "example.org".into();
        cfg.server.allow_loopback_peers = true;
        cfg.server.auth_secret = secret.map(String::from);
        cfg.server.hooks = hooks.clone();
        match TurnServer::bind(cfg).await {
            Ok(server) => return server,
            Err(e) if attempt < 5 => {
                attempt += 1;
                eprintln!("bind wskit turn on {port}: {e:?}; retrying");
            }
            Err(e) => panic!("bind wskit turn: {e:?}"),
        }
    }
}

#[derive(Debug)]
struct UclientResult {
    sent: u64,
    received: u64,
    lost_line: String,
}

fn parse_uclient(out: &Output) -> UclientResult {
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut r = UclientResult {
        sent: 0,
        received: 0,
        lost_line: String::new(),
    };
    for line in text.lines() {
        if let Some(rest) = line.split("start_mclient: tot_send_msgs=").nth(1) {
            let mut it = rest.split(", tot_recv_msgs=");
            r.sent = it.next().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
            r.received = it.next().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        }
        if line.contains("Total lost packets") {
            r.lost_line = line.to_string();
        }
    }
    r
}

/// Runs `turnutils_uclient` with `flags` against `port` and the peer, and asserts 0% loss.
fn uclient_zero_loss(flags: &[&str], auth: &[&str], port: u16, peer_port: u16, messages: u32) {
    let mut cmd = Command::new("turnutils_uclient");
    cmd.args(flags)
        .args(auth)
        .args([
            "-p",
            &port.to_string(),
            "-e",
            "127.0.0.1",
            "-r",
            &peer_port.to_string(),
            "-X",
        ])
        .args([
            "-n",
            &messages.to_string(),
            "-m",
            "4",
            "-l",
            "170",
            "127.0.0.1",
        ]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(90));
    let r = parse_uclient(&out);
    eprintln!("uclient {flags:?}: {r:?}");
    assert!(
        out.status.success(),
        "uclient {flags:?} exited with {:?}: {r:?}",
        out.status
    );
    assert!(r.sent > 0, "uclient {flags:?} sent nothing: {r:?}");
    assert_eq!(r.sent, r.received, "uclient {flags:?} lost messages: {r:?}");
    assert!(
        r.lost_line.contains("Total lost packets 0 (0.000000%)"),
        "{r:?}"
    );
}

fn uclient_matrix(flags: &[&str]) {
    if !peers_available(&["turnutils_uclient", "turnutils_peer"]) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start_wskit(None));
    let (_peer, peer_port) = start_udp_peer();
    let port = server.udp_addrs()[0].port();
    uclient_zero_loss(flags, &["-u", "alice", "-w", "s3cret"], port, peer_port, 40);
    assert_eq!(rt.block_on(async { server.stats() }).pending_allocations, 0);
}

#[test]
fn coturn_uclient_udp_channels_zero_loss() {
    uclient_matrix(&["-c"]);
}

#[test]
fn coturn_uclient_send_indications_zero_loss() {
    uclient_matrix(&["-c", "-s"]);
}

#[test]
fn coturn_uclient_over_tcp_zero_loss() {
    uclient_matrix(&["-c", "-t"]);
}

#[test]
fn coturn_uclient_tcp_relay_rfc6062_zero_loss() {
    uclient_matrix(&["-T"]);
}

#[test]
fn coturn_uclient_without_c_uses_even_port_and_reservation_zero_loss() {
    uclient_matrix(&[]);
}

#[test]
fn coturn_uclient_client_to_client_zero_loss() {
    uclient_matrix(&["-c", "-y"]);
}

#[test]
fn coturn_uclient_rest_api_secret_works_and_a_wrong_secret_fails() {
    if !peers_available(&["turnutils_uclient", "turnutils_peer"]) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start_wskit(Some("north-sea")));
    let (_peer, peer_port) = start_udp_peer();
    let port = server.udp_addrs()[0].port();
    uclient_zero_loss(
        &["-c"],
        &["-W", "north-sea", "-u", "bob"],
        port,
        peer_port,
        20,
    );
    let out = run_with_timeout(
        Command::new("turnutils_uclient")
            .args(["-c", "-W", "other", "-u", "bob", "-p", &port.to_string()])
            .args([
                "-e",
                "127.0.0.1",
                "-r",
                &peer_port.to_string(),
                "-X",
                "-n",
                "5",
                "127.0.0.1",
            ]),
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "a wrong REST secret must fail");
}

#[test]
fn coturn_uclient_with_a_wrong_password_fails() {
    if !peers_available(&["turnutils_uclient", "turnutils_peer"]) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start_wskit(None));
    let (_peer, peer_port) = start_udp_peer();
    let port = server.udp_addrs()[0].port();
    let out = run_with_timeout(
        Command::new("turnutils_uclient")
            .args(["-c", "-u", "alice", "-w", "wrong", "-p", &port.to_string()])
            .args([
                "-e",
                "127.0.0.1",
                "-r",
                &peer_port.to_string(),
                "-X",
                "-n",
                "5",
                "127.0.0.1",
            ]),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(255),
        "uclient with a wrong password: {text}"
    );
    assert!(text.contains("Cannot complete Allocation"), "{text}");
    assert_eq!(rt.block_on(async { server.stats() }).allocations, 0);
}

#[test]
fn coturn_stunclient_gets_the_reflexive_address() {
    if !peers_available(&["turnutils_stunclient"]) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start_wskit(None));
    let port = server.udp_addrs()[0].port();
    let out = run_with_timeout(
        Command::new("turnutils_stunclient").args(["-p", &port.to_string(), "127.0.0.1"]),
        Duration::from_secs(30),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let addr: SocketAddr = text
        .lines()
        .find_map(|l| l.split("UDP reflexive addr: ").nth(1))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reflexive address in: {text}"));
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert!(addr.port() != 0 && addr.port() != port, "{addr}");
}

/// Starts coturn's `turnserver` on free ports; `extra` adds flags such as `--stale-nonce=2`.
fn start_coturn(extra: &[&str]) -> (Guard, u16) {
    let port = free_port();
    let base = 20000 + (std::process::id() % 200) as u16 * 100 + (port % 7) * 10;
    let child = Command::new("turnserver")
        .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
        .arg(format!("--listening-port={port}"))
        .arg(format!("--min-port={base}"))
        .arg(format!("--max-port={}", base + 99))
        .args([
            "--lt-cred-mech",
            "--user=alice:s3cret",
            "--realm=example.org",
            "--fingerprint",
        ])
        .args([
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--allow-loopback-peers",
            "--log-file=stdout",
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver");
    let guard = Guard(child);
    // Wait until it answers a Binding.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sock = StdUdp::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut c = Client::new(ClientConfig::default(), stun_turn::net::OsRandom::new()).unwrap();
    loop {
        assert!(Instant::now() < deadline, "coturn did not start");
        c.binding(Instant::now()).unwrap();
        while let Some(b) = c.poll_transmit() {
            let _ = sock.send_to(&b, ("127.0.0.1", port));
        }
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            c.handle_input(Instant::now(), &buf[..n]);
            if matches!(c.poll_event(), Some(ClientEvent::Binding { .. })) {
                return (guard, port);
            }
        }
    }
}

async fn udp_echo_peer() -> SocketAddr {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut b).await {
            let _ = s.send_to(&b[..n], from).await;
        }
    });
    a
}

#[test]
fn wskit_client_against_coturn_relays_over_udp_and_tcp() {
    if !peers_available(&["turnserver"]) {
        return;
    }
    let (_coturn, port) = start_coturn(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server = SocketAddr::from(([127, 0, 0, 1], port));
        let peer = udp_echo_peer().await;
        for tcp in [false, true] {
            let cfg = ClientConfig::with_credentials("alice", "s3cret");
            let mut c = if tcp {
                TurnClient::tcp(server, cfg).await
            } else {
                TurnClient::udp(server, cfg).await
            }
            .unwrap();
            let t = Duration::from_secs(10);
            let relayed = tokio::time::timeout(t, c.allocate())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(relayed.ip().to_string(), "127.0.0.1");
            assert_eq!(
                tokio::time::timeout(t, c.binding()).await.unwrap().unwrap(),
                c.local_addr()
            );
            tokio::time::timeout(t, c.create_permission(&[peer]))
                .await
                .unwrap()
                .unwrap();
            c.send_to(peer, b"indication via coturn").await.unwrap();
            let (from, d) = tokio::time::timeout(t, c.recv_from())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((from, d.as_slice()), (peer, &b"indication via coturn"[..]));
            tokio::time::timeout(t, c.bind_channel(peer))
                .await
                .unwrap()
                .unwrap();
            for i in 0..10u8 {
                let m = vec![i; 3 + usize::from(i)];
                c.send_to(peer, &m).await.unwrap();
                let (from, d) = tokio::time::timeout(t, c.recv_from())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!((from, d), (peer, m));
            }
            assert_eq!(
                tokio::time::timeout(t, c.refresh(0))
                    .await
                    .unwrap()
                    .unwrap(),
                0
            );
        }
    });
}

#[test]
fn wskit_client_against_coturn_with_a_wrong_password_gets_401() {
    if !peers_available(&["turnserver"]) {
        return;
    }
    let (_coturn, port) = start_coturn(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = TurnClient::udp(
            ([127, 0, 0, 1], port).into(),
            ClientConfig::with_credentials("alice", "bad"),
        )
        .await
        .unwrap();
        match tokio::time::timeout(Duration::from_secs(10), c.allocate())
            .await
            .unwrap()
        {
            Err(stun_turn::Error::Response { code, .. }) => {
                assert_eq!(code, ErrorCode::UNAUTHORIZED)
            }
            other => panic!("{other:?}"),
        }
    });
}

/// coturn with `--stale-nonce=2`: after the nonce expires the next request gets 438 Stale Nonce;
/// the client takes the new nonce, retries, and carries on. The exchange is watched on the wire.
#[test]
fn wskit_client_recovers_from_coturn_stale_nonce() {
    if !peers_available(&["turnserver"]) {
        return;
    }
    let (_coturn, port) = start_coturn(&["--stale-nonce=2"]);
    let sock = StdUdp::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut c = Client::new(
        ClientConfig::with_credentials("alice", "s3cret"),
        stun_turn::net::OsRandom::new(),
    )
    .unwrap();
    let mut stale_seen = 0;
    let mut drive = |c: &mut Client, until: &dyn Fn(&ClientEvent) -> bool| -> ClientEvent {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            assert!(Instant::now() < deadline, "no answer from coturn");
            while let Some(b) = c.poll_transmit() {
                sock.send(&b).unwrap();
            }
            let mut buf = [0u8; 2048];
            if let Ok(n) = sock.recv(&mut buf) {
                if let Ok(m) = Message::decode(&buf[..n], &DecodeLimits::default())
                    && matches!(m.error_code(), Ok(Some((ErrorCode::STALE_NONCE, _))))
                {
                    stale_seen += 1;
                }
                c.handle_input(Instant::now(), &buf[..n]);
            }
            c.handle_timeout(Instant::now());
            while let Some(ev) = c.poll_event() {
                if let ClientEvent::Failed { .. } = ev {
                    panic!("request failed: {ev:?}");
                }
                if until(&ev) {
                    return ev;
                }
            }
        }
    };
    c.allocate(Instant::now(), RelayProtocol::Udp).unwrap();
    drive(&mut c, &|e| matches!(e, ClientEvent::Allocated { .. }));
    std::thread::sleep(Duration::from_secs(3));
    c.create_permission(Instant::now(), &["127.0.0.1:9".parse().unwrap()])
        .unwrap();
    drive(&mut c, &|e| {
        matches!(e, ClientEvent::PermissionCreated { .. })
    });
    std::thread::sleep(Duration::from_secs(3));
    c.refresh(Instant::now(), 600).unwrap();
    drive(&mut c, &|e| matches!(e, ClientEvent::Refreshed { .. }));
    assert!(
        stale_seen >= 2,
        "coturn sent {stale_seen} 438 answers; expected one per expired nonce"
    );
}

/// A user database behind the password hook, counting what the hooks see.
#[derive(Default)]
struct CountingHooks {
    asked: std::sync::atomic::AtomicU32,
    created: std::sync::atomic::AtomicU32,
    succeeded: std::sync::atomic::AtomicU32,
}

impl stun_turn::ServerHooks for CountingHooks {
    fn password(&self, username: &str, _realm: &str) -> Option<String> {
        self.asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (username == "dave").then(|| "from-db".to_string())
    }

    fn allocation_created(
        &self,
        _client: &stun_turn::FiveTuple,
        username: &str,
        _relay: SocketAddr,
        _lifetime: Duration,
    ) {
        assert_eq!(username, "dave");
        self.created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn request_succeeded(&self, _from: &stun_turn::FiveTuple, _method: stun_turn::Method) {
        self.succeeded
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn coturn_uclient_authenticates_through_the_password_hook() {
    if !peers_available(&["turnutils_uclient", "turnutils_peer"]) {
        return;
    }
    let hooks = std::sync::Arc::new(CountingHooks::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start_wskit_with(None, Some(hooks.clone())));
    let (_peer, peer_port) = start_udp_peer();
    let port = server.udp_addrs()[0].port();
    uclient_zero_loss(
        &["-c"],
        &["-u", "dave", "-w", "from-db"],
        port,
        peer_port,
        20,
    );
    let load = |a: &std::sync::atomic::AtomicU32| a.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        load(&hooks.asked) > 0,
        "the hook was asked for dave's password"
    );
    // uclient -m 4: at least four allocations (8 seen with coturn 4.6), each reported once.
    assert!(load(&hooks.created) >= 4, "{}", load(&hooks.created));
    assert!(
        load(&hooks.succeeded) >= 8,
        "Allocate and ChannelBind at least"
    );
}
