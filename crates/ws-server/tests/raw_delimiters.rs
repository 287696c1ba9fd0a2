//! Per-connection delimiters on plain-TCP connections (`Ctx::set_delimiter`, parity row K-06):
//! each connection starts with the server's delimiter and can switch to its own sequences
//! and scan mode, without touching the others; WebSocket connections refuse the call.

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::{connect, local_config};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use ws_frame::Message;
use ws_server::{Ctx, Delimiter, DelimiterScan, Handler, Server};

/// Replies `[message]` to each message; `#mode ...` messages switch the framing.
#[derive(Clone, Default)]
struct Switcher {
    ws_refusal: Arc<Mutex<Option<String>>>,
}

impl Handler for Switcher {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        if ctx.info().transport() == ws_server::Transport::WebSocket {
            let e = ctx
                .set_delimiter(Delimiter::new(DelimiterScan::All, [&b"\n"[..]]))
                .unwrap_err();
            *self.ws_refusal.lock().unwrap() = Some(e.to_string());
        }
    }

    async fn on_unknown_protocol(&self, _peer: std::net::SocketAddr, _first: &[u8]) -> bool {
        true
    }

    async fn on_binary(&self, ctx: &mut Ctx<'_>, data: Bytes) {
        let mode = |m: &str| data.starts_with(format!("#mode {m}").as_bytes());
        let d = if mode("nul") {
            Some(Delimiter::new(DelimiterScan::All, [&b"\0"[..]]))
        } else if mode("multi") {
            Some(Delimiter::new(DelimiterScan::All, [&b"\r\n"[..], b";"]))
        } else if mode("latest") {
            Some(Delimiter::new(DelimiterScan::Latest, [&b"!"[..]]))
        } else if mode("none") {
            Some(Delimiter::none())
        } else {
            None
        };
        if let Some(d) = d {
            ctx.set_delimiter(d).unwrap();
        }
        // A scan without a sequence is refused, and the setting stays.
        assert!(
            ctx.set_delimiter(Delimiter::new(DelimiterScan::All, Vec::<Vec<u8>>::new()))
                .is_err()
        );
        let mut reply = b"[".to_vec();
        reply.extend_from_slice(&data);
        reply.extend_from_slice(b"]");
        let _ = ctx.send(Message::binary(reply));
    }
}

async fn read_exactly(tcp: &mut TcpStream, want: &[u8]) {
    let mut buf = vec![0; want.len()];
    tcp.read_exact(&mut buf).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&buf), String::from_utf8_lossy(want));
}

#[tokio::test]
async fn each_connection_can_set_its_own_delimiters_and_scan_mode() {
    let mut config = local_config();
    config.raw_tcp.enabled = true;
    config.raw_tcp.delimiter = b"\n".to_vec();
    config.raw_tcp.scan = DelimiterScan::All;
    let handler = Switcher::default();
    let server = Server::start(config, handler.clone()).await.unwrap();
    let addr = server.local_addrs()[0];

    let mut a = TcpStream::connect(addr).await.unwrap();
    let mut b = TcpStream::connect(addr).await.unwrap();
    // `a` switches to NUL-ended frames in the same write as the first frames: the bytes
    // after the switch are cut by the new delimiter, including a "\n" inside a frame.
    a.write_all(b"#mode nul\nx\ny\0z\0").await.unwrap();
    read_exactly(&mut a, b"[#mode nul\n][x\ny\0][z\0]").await;
    // `b` still has the server's delimiter.
    b.write_all(b"one\0two\n").await.unwrap();
    read_exactly(&mut b, b"[one\0two\n]").await;

    // Several sequences: the first one that ends cuts.
    a.write_all(b"#mode multi\n\0p;q\r\nr").await.unwrap();
    read_exactly(&mut a, b"[#mode multi\n\0][p;][q\r\n]").await;
    a.write_all(b";").await.unwrap();
    read_exactly(&mut a, b"[r;]").await;

    // Latest: delivered when the buffered bytes end with the sequence.
    a.write_all(b"#mode latest;").await.unwrap();
    read_exactly(&mut a, b"[#mode latest;]").await;
    a.write_all(b"a!b").await.unwrap();
    a.write_all(b"!").await.unwrap();
    read_exactly(&mut a, b"[a!b!]").await;

    // None: whatever a read brings.
    a.write_all(b"#mode none!").await.unwrap();
    read_exactly(&mut a, b"[#mode none!]").await;
    a.write_all(b"free").await.unwrap();
    read_exactly(&mut a, b"[free]").await;
    b.write_all(b"three\n").await.unwrap();
    read_exactly(&mut b, b"[three\n]").await;

    // WebSocket connections have no delimiter to set.
    let _ws = connect(addr, "/").await;
    let refusal = loop {
        if let Some(r) = handler.ws_refusal.lock().unwrap().clone() {
            break r;
        }
        tokio::task::yield_now().await;
    };
    assert!(refusal.contains("plain TCP connections only"), "{refusal}");
}
