//! Interop with the Python TURN client `aioice` (`aioice.turn.create_turn_endpoint`) against our
//! server, over UDP and over TCP to the server (the relay is UDP either way).
//!
//! The client is `tests/python/aioice_client.py`; it prints one JSON line which is checked here.
//! The UDP echo peers run in this process and note the source of every datagram, which is the
//! relayed transport address our server allocated.
//!
//! When `python3` or its `aioice` package (`pip install aioice`) is missing these tests print
//! why and pass, unless the environment sets `WSKIT_REQUIRE_PEERS=1` (CI does), in which case
//! they fail. `WSKIT_PYTHON` names another interpreter than `python3`.

use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stun_turn::net::{TurnServer, TurnServerConfig};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";
const REALM: &str = "example.org";
/// Datagrams per peer in each of the script's burst and ping-pong phases.
const COUNT: usize = 12;
/// Echo peers (aioice binds one channel to each).
const PEERS: usize = 2;

fn python() -> String {
    std::env::var("WSKIT_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/aioice_client.py")
}

/// `true` when the interpreter can import aioice; otherwise skips or fails as
/// `ws_testkit::peers` decides.
fn aioice_available() -> bool {
    let probe = Command::new(python())
        .args([
            "-c",
            "import aioice, aioice.turn; print(aioice.__version__)",
        ])
        .stdin(Stdio::null())
        .output();
    let why = match probe {
        Ok(out) if out.status.success() => {
            eprintln!(
                "aioice {} ({})",
                String::from_utf8_lossy(&out.stdout).trim(),
                python()
            );
            return true;
        }
        Ok(out) => format!(
            "`{} -c 'import aioice'` failed: {}",
            python(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("cannot run {}: {e}", python()),
    };
    ws_testkit::peers::missing(&why, "python3 -m pip install aioice==0.13.0");
    false
}

/// Runs the command; a hang is killed (by its pid) and fails the test.
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

async fn start_server() -> TurnServer {
    let mut cfg = TurnServerConfig::default();
    cfg.udp = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.tcp = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.relay_ip = Some([127, 0, 0, 1].into());
    cfg.server.users = vec![(USER.into(), PASSWORD.into())];
    cfg.server.realm = REALM.into();
    cfg.server.allow_loopback_peers = true;
    TurnServer::bind(cfg).await.expect("bind wskit turn")
}

/// A UDP echo peer on 127.0.0.1 that records where each datagram came from.
async fn udp_echo_peer() -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let a = s.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut b = [0u8; 2048];
        while let Ok((n, from)) = s.recv_from(&mut b).await {
            log.lock().unwrap().push(from);
            let _ = s.send_to(&b[..n], from).await;
        }
    });
    (a, seen)
}

/// Runs the aioice script and returns its JSON result.
fn run_aioice(server: SocketAddr, transport: &str, password: &str, peers: &[SocketAddr]) -> Json {
    let mut cmd = Command::new(python());
    cmd.arg(script())
        .args(["--server", &server.to_string(), "--transport", transport])
        .args(["--username", USER, "--password", password])
        .args(["--count", &COUNT.to_string(), "--channel-refresh-time", "2"])
        .args(["--overall-timeout", "60"]);
    for p in peers {
        cmd.args(["--peer", &p.to_string()]);
    }
    let out = run_with_timeout(&mut cmd, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aioice script exited with {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line\nstdout: {stdout}\nstderr: {stderr}"));
    eprintln!("aioice over {transport}: {line}");
    serde_json::from_str::<Json>(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {line}"))
}

/// Waits (briefly) until the server holds no allocation.
fn wait_no_allocations(rt: &tokio::runtime::Runtime, server: &TurnServer) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stats = rt.block_on(async { server.stats() });
        if stats.allocations == 0 && stats.pending_allocations == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "allocations left: {stats:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn relays_through(transport: &str) {
    if !aioice_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start_server());
    let (peers, seen): (Vec<_>, Vec<_>) = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..PEERS {
            v.push(udp_echo_peer().await);
        }
        v.into_iter().unzip()
    });
    let listen = if transport == "tcp" {
        server.tcp_addrs()[0]
    } else {
        server.udp_addrs()[0]
    };
    let r = run_aioice(listen, transport, PASSWORD, &peers);

    assert_eq!(r["ok"].as_bool(), Some(true), "aioice failed: {r:?}");
    assert_eq!(r["transport"].as_str(), Some(transport));

    // The relayed address: on 127.0.0.1, in the relay port range, and the very address the
    // peers saw every relayed datagram come from.
    let relayed: SocketAddr = r["relayed"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no relayed address: {r:?}"));
    assert_eq!(relayed.ip().to_string(), "127.0.0.1", "{r:?}");
    assert!(
        (TurnServerConfig::DEFAULT_MIN_PORT..=TurnServerConfig::DEFAULT_MAX_PORT)
            .contains(&relayed.port()),
        "relay port outside the configured range: {relayed}"
    );
    for (peer, seen) in peers.iter().zip(&seen) {
        let sources: BTreeSet<SocketAddr> = seen.lock().unwrap().iter().copied().collect();
        assert_eq!(
            sources,
            BTreeSet::from([relayed]),
            "peer {peer} got datagrams from other sources than the relay {relayed}"
        );
    }
    // XOR-MAPPED-ADDRESS is aioice's own socket toward the server.
    assert_eq!(r["mapped"], r["local"], "{r:?}");

    // Every datagram came back, byte for byte.
    let per_peer = 2 * COUNT + 1;
    let expected = (PEERS * per_peer) as u64;
    assert_eq!(r["sent"].as_u64(), Some(expected), "{r:?}");
    assert_eq!(r["received"].as_u64(), Some(expected), "{r:?}");
    assert_eq!(r["payloads_match"].as_bool(), Some(true), "{r:?}");
    assert_eq!(r["send_errors"].as_array().map(Vec::len), Some(0));
    for s in &seen {
        assert_eq!(s.lock().unwrap().len(), per_peer);
    }

    // aioice binds a channel per peer and then sends ChannelData only, and our server answers
    // with ChannelData (no Send or Data indications anywhere).
    let channels: BTreeSet<u64> = r["channel_numbers_sent"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_u64)
        .collect();
    assert_eq!(channels, BTreeSet::from([0x4000, 0x4001]), "{r:?}");
    assert_eq!(r["channel_data_sent"].as_u64(), Some(expected), "{r:?}");
    assert_eq!(r["channel_data_received"].as_u64(), Some(expected), "{r:?}");
    let sent = &r["stun_sent"];
    let received = &r["stun_received"];
    // Allocate: once without credentials (401), once with.
    assert_eq!(sent["ALLOCATE/REQUEST"].as_u64(), Some(2), "{r:?}");
    assert_eq!(received["ALLOCATE/ERROR"].as_u64(), Some(1), "{r:?}");
    assert_eq!(received["ALLOCATE/RESPONSE"].as_u64(), Some(1), "{r:?}");
    // ChannelBind: one per peer, then once more per peer after channel_refresh_time.
    let binds = (2 * PEERS) as u64;
    assert_eq!(sent["CHANNEL_BIND/REQUEST"].as_u64(), Some(binds));
    assert_eq!(
        received["CHANNEL_BIND/RESPONSE"].as_u64(),
        Some(binds),
        "{r:?}"
    );
    assert_eq!(received["CHANNEL_BIND/ERROR"], Json::Null, "{r:?}");
    for method in ["SEND/INDICATION", "CREATE_PERMISSION/REQUEST"] {
        assert_eq!(sent[method], Json::Null, "{r:?}");
    }
    assert_eq!(received["DATA/INDICATION"], Json::Null, "{r:?}");
    assert_eq!(received["unparsable"], Json::Null, "{r:?}");

    // Closing sends Refresh with LIFETIME 0, which our server accepts.
    assert_eq!(sent["REFRESH/REQUEST"].as_u64(), Some(1), "{r:?}");
    assert_eq!(received["REFRESH/RESPONSE"].as_u64(), Some(1), "{r:?}");
    assert_eq!(r["closed"].as_bool(), Some(true), "{r:?}");
    wait_no_allocations(&rt, &server);
}

#[test]
fn aioice_relays_through_channels_over_udp() {
    relays_through("udp");
}

#[test]
fn aioice_relays_through_channels_over_tcp() {
    relays_through("tcp");
}

#[test]
fn aioice_with_a_wrong_password_fails_with_401() {
    if !aioice_available() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(start_server());
    let (peer, seen) = rt.block_on(udp_echo_peer());
    for (transport, listen) in [
        ("udp", server.udp_addrs()[0]),
        ("tcp", server.tcp_addrs()[0]),
    ] {
        let r = run_aioice(listen, transport, "wrong", &[peer]);
        assert_eq!(r["ok"].as_bool(), Some(false), "{r:?}");
        assert_eq!(r["error_type"].as_str(), Some("TransactionFailed"));
        assert_eq!(r["error_code"].as_u64(), Some(401), "{r:?}");
        assert!(
            r["error"].as_str().is_some_and(|e| e.contains("401")),
            "{r:?}"
        );
        assert_eq!(r["relayed"], Json::Null, "{r:?}");
        // Both Allocate attempts, the second with the wrong key, were refused.
        let sent = &r["stun_sent"];
        assert_eq!(sent["ALLOCATE/REQUEST"].as_u64(), Some(2), "{r:?}");
        assert_eq!(
            r["stun_received"]["ALLOCATE/ERROR"].as_u64(),
            Some(2),
            "{r:?}"
        );
        assert_eq!(r["channel_data_sent"].as_u64(), Some(0), "{r:?}");
    }
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(rt.block_on(async { server.stats() }).allocations, 0);
}
