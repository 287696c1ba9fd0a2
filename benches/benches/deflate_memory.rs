//! Heap bytes per connection held by permessage-deflate, with and without context takeover, for
//! the engine ws-frame was built with (miniz_oxide by default; zlib-rs with
//! `--features deflate-zlib-rs`).
//!
//! `cargo bench -p wskit-benches --bench deflate_memory [--features deflate-zlib-rs]`
//!
//! dhat's allocator counts every live heap byte. For each case, `CONNECTIONS` server connections
//! are opened with the negotiated parameters; each then sends one compressed 1 KiB JSON message
//! (which creates its compressor) and receives one (which creates its decompressor). The bytes
//! still allocated afterwards, less what as many connections without deflate hold after the same
//! exchange, divided by `CONNECTIONS`, are the deflate state of one connection. A connection
//! that has not yet sent or received a compressed message holds none (both are created on first
//! use).

use bytes::BytesMut;
use ws_frame::{
    Config, Connection, Event, Message, Role,
    deflate::{self, DeflateParams},
};
use wskit_benches::{deflate::params_with, payload};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const CONNECTIONS: usize = 64;

/// What is measured: the compressor (send only), the decompressor (receive only), or both.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Send,
    Receive,
    Both,
}

fn live_bytes() -> usize {
    dhat::HeapStats::get().curr_bytes
}

/// One compressed client message carrying `text`, made by a client connection with the same
/// parameters (its own compressor; the server only inflates it).
fn client_frame(params: &DeflateParams, text: &str) -> Vec<u8> {
    let mut config = Config::default();
    config.deflate = Some(params.clone());
    let mut client = Connection::new(Role::Client, config).expect("config");
    client.send(Message::text(text.to_owned())).expect("send");
    let mut out = BytesMut::new();
    while client.poll_transmit(&mut out) {}
    out.to_vec()
}

/// Live heap bytes held by `CONNECTIONS` server connections after one exchange.
fn held(params: Option<&DeflateParams>, text: &str, frame: &[u8], what: Use) -> usize {
    let before = live_bytes();
    let mut conns = Vec::with_capacity(CONNECTIONS);
    let mut out = BytesMut::with_capacity(4096);
    let list_bytes = live_bytes() - before;
    for _ in 0..CONNECTIONS {
        let mut config = Config::default();
        config.deflate = params.cloned();
        let mut conn = Connection::new(Role::Server, config).expect("config");
        if what != Use::Receive {
            conn.send(Message::text(text.to_owned())).expect("send");
            while conn.poll_transmit(&mut out) {}
            out.clear();
        }
        if what != Use::Send {
            conn.feed(frame);
            match conn.poll_event().expect("valid frame") {
                Some(Event::Message(m)) => assert_eq!(m.len(), text.len()),
                other => panic!("{other:?}"),
            }
        }
        conns.push(conn);
    }
    let held = live_bytes() - before - list_bytes;
    drop(conns);
    held
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let text = payload::json_with_seed(1024, 0);
    println!(
        "permessage-deflate heap per connection, engine {} ({} connections, one 1 KiB JSON \
         message each way, level 1)",
        deflate::BACKEND,
        CONNECTIONS
    );
    println!("engine       | window | context takeover | compressor B | decompressor B | both B");
    for bits in [15, 9] {
        for no_context in [false, true] {
            let params = params_with(1, bits, no_context);
            let frame = client_frame(&params, &text);
            let mut row = Vec::new();
            for what in [Use::Send, Use::Receive, Use::Both] {
                let with = held(Some(&params), &text, &frame, what);
                let without = held(None, &text, &frame_plain(&text), what);
                row.push(with.saturating_sub(without) / CONNECTIONS);
            }
            println!(
                "{:<12} | {:>6} | {:<16} | {:>12} | {:>14} | {:>6}",
                deflate::BACKEND,
                bits,
                if no_context { "no" } else { "yes" },
                row[0],
                row[1],
                row[2]
            );
        }
    }
}

/// The same message as an uncompressed client frame, for the connections without deflate.
fn frame_plain(text: &str) -> Vec<u8> {
    let mut client = Connection::new(Role::Client, Config::default()).expect("config");
    client.send(Message::text(text.to_owned())).expect("send");
    let mut out = BytesMut::new();
    while client.poll_transmit(&mut out) {}
    out.to_vec()
}
