//! In-memory TLS handshakes between rustls connections built from ws-tls configs: no sockets,
//! bytes move through `Vec<u8>` buffers with `write_tls` / `read_tls`.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
use rustls_pki_types::ServerName;

/// Which side's `process_new_packets` failed first, and with what.
#[derive(Debug)]
pub enum Failure {
    Client(rustls::Error),
    Server(rustls::Error),
}

impl Failure {
    pub fn client(&self) -> Option<&rustls::Error> {
        match self {
            Self::Client(e) => Some(e),
            Self::Server(_) => None,
        }
    }
    pub fn server(&self) -> Option<&rustls::Error> {
        match self {
            Self::Server(e) => Some(e),
            Self::Client(_) => None,
        }
    }
}

#[derive(Debug)]
pub struct Pair {
    pub client: ClientConnection,
    pub server: ServerConnection,
}

/// Moves every pending TLS record from one side to the other; returns whether bytes moved.
fn flush_client(pair: &mut Pair) -> Result<bool, Failure> {
    let mut buf = Vec::new();
    while pair.client.wants_write() {
        pair.client.write_tls(&mut buf).expect("write to Vec");
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        pair.server.read_tls(&mut rd).expect("read from slice");
        pair.server.process_new_packets().map_err(Failure::Server)?;
    }
    Ok(!buf.is_empty())
}

fn flush_server(pair: &mut Pair) -> Result<bool, Failure> {
    let mut buf = Vec::new();
    while pair.server.wants_write() {
        pair.server.write_tls(&mut buf).expect("write to Vec");
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        pair.client.read_tls(&mut rd).expect("read from slice");
        pair.client.process_new_packets().map_err(Failure::Client)?;
    }
    Ok(!buf.is_empty())
}

/// Drives both sides until neither has anything to send.
pub fn pump(pair: &mut Pair) -> Result<(), Failure> {
    for _ in 0..64 {
        let moved = flush_client(pair)? | flush_server(pair)?;
        if !moved {
            return Ok(());
        }
    }
    panic!("handshake did not settle after 64 rounds");
}

/// Connects a client (to `server_name`, a DNS name or IP address) and a server, completes a
/// full handshake (session resumption off, so the server always presents its current
/// certificate), then sends one message each way to prove the session keys work.
pub fn connect(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    server_name: &str,
) -> Result<Pair, Failure> {
    let mut fresh = (**client).clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    connect_as_is(&Arc::new(fresh), server, server_name)
}

/// [`connect`] with the client config exactly as given (session resumption as configured).
pub fn connect_as_is(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
    server_name: &str,
) -> Result<Pair, Failure> {
    let name = ServerName::try_from(server_name.to_owned()).expect("valid server name");
    let mut pair = Pair {
        client: ClientConnection::new(client.clone(), name).expect("client connection"),
        server: ServerConnection::new(server.clone()).expect("server connection"),
    };
    pump(&mut pair)?;
    assert!(!pair.client.is_handshaking() && !pair.server.is_handshaking());

    pair.client.writer().write_all(b"ping from client").unwrap();
    pump(&mut pair)?;
    assert_eq!(read_all(pair.server.reader()), b"ping from client");
    pair.server.writer().write_all(b"pong from server").unwrap();
    pump(&mut pair)?;
    assert_eq!(read_all(pair.client.reader()), b"pong from server");
    Ok(pair)
}

fn read_all(mut reader: impl Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return out,
            Err(e) => panic!("read plaintext: {e}"),
        }
    }
}

/// The end-entity certificate the server presented to the client.
pub fn served_cert(pair: &Pair) -> Vec<u8> {
    pair.client.peer_certificates().expect("server certificate")[0].to_vec()
}
