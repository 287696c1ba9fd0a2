//! The message log: every STUN message and ChannelData frame the runtime exchanges is one trace
//! line on the `stun_turn::wire` target (its own test binary: it installs a global subscriber).

use std::io::Write;
use std::sync::{Arc, Mutex};

use stun_turn::ClientConfig;
use stun_turn::net::{TurnClient, TurnServer, TurnServerConfig};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_wire_target_logs_every_message_both_ways() {
    let buf = Buffer::default();
    let writer = buf.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("stun_turn::wire=trace"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let mut cfg = TurnServerConfig::default();
    cfg.udp = vec!["127.0.0.1:0".parse().unwrap()];
    cfg.tcp = vec![];
    cfg.server.users = vec![("alice".into(), "s3cret".into())];
    let server = TurnServer::bind(cfg).await.unwrap();
    // No retransmission on loopback: a busy machine that delays an answer past the default
    // 500 ms would otherwise log an extra request (and answer) and change the counts below.
    let mut client = ClientConfig::with_credentials("alice", "s3cret");
    client.retransmit.rto = std::time::Duration::from_secs(60);
    let c = TurnClient::udp(server.udp_addrs()[0], client)
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), c.allocate())
        .await
        .unwrap()
        .unwrap();
    drop(server);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    // Allocate twice (401, then signed) and back, seen by the client and by the server.
    assert_eq!(count("Allocate Request"), 4, "{text}");
    assert_eq!(count("Allocate Error"), 2, "{text}");
    assert_eq!(count("] 401 "), 2, "{text}");
    assert_eq!(count("Allocate Success"), 2, "{text}");
    assert!(
        count("dir=\"in\"") >= 4 && count("dir=\"out\"") >= 4,
        "{text}"
    );
    assert!(count("USERNAME") >= 2, "attributes are listed: {text}");
}
