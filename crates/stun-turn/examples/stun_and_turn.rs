//! A STUN binding and a TURN allocation, against a server this example starts itself (or
//! against any server you name, coturn for example).
//!
//! ```text
//! cargo run -p stun-turn --example stun_and_turn
//! cargo run -p stun-turn --example stun_and_turn -- --server 127.0.0.1:3478 --user alice:secret
//! ```
//!
//! 1. STUN: "what is my address as the server sees it?" over UDP and over TCP.
//! 2. TURN: allocate a relayed address (the long-term credential exchange, 401 then an
//!    authenticated retry, happens inside), allow a peer, send it a datagram through the relay,
//!    get its answer back through the relay, release the allocation.
//!
//! The peer is a plain UDP socket in this process that echoes what it gets. It sits on
//! 127.0.0.1, and TURN servers refuse loopback peers unless told otherwise: the built-in server
//! sets `allow_loopback_peers`; for coturn add `--allow-loopback-peers`.

use std::{net::SocketAddr, time::Duration};

use stun_turn::{
    ClientConfig,
    net::{TurnClient, TurnServer, TurnServerConfig, stun_binding},
};
use tokio::net::UdpSocket;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> Result<()> {
    let (server_arg, user, password) = args()?;

    // The server: UDP and TCP on free loopback ports, one user. Dropping it stops it.
    let mut _own_server = None;
    let (udp, tcp) = match server_arg {
        Some(addr) => (addr, addr),
        None => {
            let mut cfg = TurnServerConfig::default();
            cfg.udp = vec!["127.0.0.1:0".parse()?];
            cfg.tcp = vec!["127.0.0.1:0".parse()?];
            cfg.server.users = vec![(user.clone(), password.clone())];
            cfg.server.allow_loopback_peers = true; // the peer below is on 127.0.0.1
            let server = TurnServer::bind(cfg).await?;
            let addrs = (server.udp_addrs()[0], server.tcp_addrs()[0]);
            println!("server: udp {}, tcp {}", addrs.0, addrs.1);
            _own_server = Some(server);
            addrs
        }
    };

    // 1. STUN Binding: the reflexive transport address, over UDP and TCP.
    println!("stun udp: I am {}", stun_binding(udp, false).await?);
    println!("stun tcp: I am {}", stun_binding(tcp, true).await?);

    // 2. TURN over UDP.
    let peer = UdpSocket::bind("127.0.0.1:0").await?;
    let peer_addr = peer.local_addr()?;
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        // Echo: the datagram comes from the relayed address, and so the answer goes there.
        while let Ok((n, from)) = peer.recv_from(&mut buf).await {
            println!(
                "peer: got {:?} from {from}",
                String::from_utf8_lossy(&buf[..n])
            );
            let _ = peer.send_to(&buf[..n], from).await;
        }
    });

    let config = ClientConfig::with_credentials(&user, &password);
    let mut client = TurnClient::udp(udp, config).await?;
    let relayed = client.allocate().await?; // refreshed in the background while it lives
    println!("turn: relayed address {relayed}");
    client.create_permission(&[peer_addr]).await?; // the relay drops other peers' data
    client
        .send_to(peer_addr, b"hello through the relay")
        .await?;
    let (from, data) = tokio::time::timeout(Duration::from_secs(5), client.recv_from())
        .await?
        .ok_or("the client stopped")?;
    println!("turn: {from} answered {:?}", String::from_utf8_lossy(&data));
    client.refresh(0).await?; // lifetime 0 releases the allocation
    println!("turn: released");
    Ok(())
}

/// `--server ADDR` and `--user NAME:PASSWORD` (default `alice:secret`).
fn args() -> Result<(Option<SocketAddr>, String, String)> {
    let (mut server, mut user) = (None, "alice:secret".to_owned());
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--server" => server = Some(it.next().ok_or("--server needs ADDR")?.parse()?),
            "--user" => user = it.next().ok_or("--user needs NAME:PASSWORD")?,
            _ => return Err(format!("unknown argument {flag}").into()),
        }
    }
    let (name, password) = user.split_once(':').ok_or("--user wants NAME:PASSWORD")?;
    Ok((server, name.to_owned(), password.to_owned()))
}
