//! Parse a WebSocket upgrade request and build the 101 response, over a real TCP connection.
//!
//! `ws-http` does no IO either: the server below reads bytes from a `std::net::TcpStream`
//! until `parse_request` has a complete head, validates the upgrade, negotiates a subprotocol
//! and permessage-deflate, and writes the 101 it built. A client thread writes the request
//! with `ClientHandshake` and checks the answer. A second request, a plain GET, shows the error
//! path: every handshake error knows the status and response it deserves.
//!
//! ```text
//! cargo run -p ws-http --example upgrade
//! ```

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};

use bytes::BytesMut;
use ws_frame::deflate::DeflateConfig;
use ws_http::{
    Accept, ClientConfig, ClientHandshake, Limits, Parsed, Request, UpgradeRequest, parse_request,
    parse_response,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Reads until a complete request head is buffered (limits are checked on every call).
fn read_request(sock: &mut TcpStream, buf: &mut BytesMut) -> Result<Request> {
    loop {
        if let Parsed::Complete(request, len) = parse_request(buf, &Limits::default())? {
            let _ = buf.split_to(len); // what follows the head (frames, a body) stays
            return Ok(request);
        }
        let mut chunk = [0; 4096];
        let n = sock.read(&mut chunk)?;
        if n == 0 {
            return Err("connection closed before a complete request".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The server side of one connection: 101 for a valid upgrade, the error's response otherwise.
fn serve(mut sock: TcpStream) -> Result<()> {
    let mut buf = BytesMut::new();
    let request = read_request(&mut sock, &mut buf)?;
    println!("server: {} {}", request.method(), request.path());
    let mut out = BytesMut::new();
    match UpgradeRequest::from_request(&request) {
        Ok(upgrade) => {
            let accept = Accept::new()
                .protocol(upgrade.choose_protocol(&["chat"]))
                .deflate(upgrade.negotiate_deflate(&DeflateConfig::default()));
            upgrade.write_accept(&accept, &mut out)?;
            // From here on the socket speaks WebSocket frames: hand it to ws_frame::Connection.
        }
        Err(e) => {
            println!("server: refused, {e}");
            e.write_response(&mut out);
        }
    }
    sock.write_all(&out)?;
    Ok(())
}

fn main() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> Result<()> {
        for sock in listener.incoming().take(2) {
            serve(sock?)?;
        }
        Ok(())
    });

    // 1. A WebSocket client: offer "chat" and permessage-deflate.
    let mut config = ClientConfig::default();
    config.protocols = vec!["chat".into()];
    config.deflate = Some(DeflateConfig::default());
    let mut sock = TcpStream::connect(addr)?;
    let mut out = BytesMut::new();
    let mut handshake = ClientHandshake::new(&config, &addr.to_string(), "/chat", &mut out)?;
    sock.write_all(&out)?;
    let mut rx = BytesMut::new();
    let upgraded = loop {
        if let Some(upgraded) = handshake.handle_response(&mut rx)? {
            break upgraded;
        }
        let mut chunk = [0; 4096];
        let n = sock.read(&mut chunk)?;
        if n == 0 {
            return Err(handshake.handle_eof().into());
        }
        rx.extend_from_slice(&chunk[..n]);
    };
    println!(
        "client: upgraded, protocol {:?}, deflate {:?}",
        upgraded.protocol(),
        upgraded.deflate()
    );
    assert_eq!(upgraded.protocol(), Some("chat"));

    // 2. A plain GET on the same endpoint: the server answers 426 Upgrade Required.
    let mut sock = TcpStream::connect(addr)?;
    sock.write_all(b"GET /chat HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut answer = Vec::new();
    sock.read_to_end(&mut answer)?; // the error response ends with Connection: close
    let Parsed::Complete(response, _) = parse_response(&answer, &Limits::default())? else {
        return Err("incomplete response".into());
    };
    println!("client: plain GET got {}", response.status());
    assert_eq!(response.status(), 426);

    server.join().expect("server thread")?;
    Ok(())
}
