//! Plain-TCP connections (clients that do not speak HTTP, the seeds' `trpTCP`): bytes in go to
//! [`Handler::on_binary`], split by the optional delimiter; bytes out are written as they are.

use std::{
    any::Any,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering},
    },
    time::SystemTime,
};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, mpsc};
use ws_frame::{CloseCode, Initiator};
use ws_io::TxQueue;

use crate::{
    config::{Delimiter, DelimiterScan},
    conn::LINGER,
    handle::{AdmitGuard, ServerHandle},
    handler::{Ctx, Disconnect, Handler, Sink},
    io::Io,
    registry::{Command, ConnInfo, KILL_NONE},
    types::Transport,
};

/// Where the earliest of `sequences` ends in `buf`, if any does.
fn first_end(buf: &[u8], sequences: &[Vec<u8>]) -> Option<usize> {
    sequences
        .iter()
        .filter(|d| !d.is_empty())
        .filter_map(|d| {
            buf.windows(d.len())
                .position(|w| w == &d[..])
                .map(|p| p + d.len())
        })
        .min()
}

/// Takes the complete messages out of `buf` according to the connection's delimiter.
pub(crate) fn split_messages(buf: &mut BytesMut, delim: &Delimiter, out: &mut impl Extend<Bytes>) {
    if buf.is_empty() {
        return;
    }
    let seqs = &delim.sequences[..];
    match delim.scan {
        _ if seqs.iter().all(Vec::is_empty) => out.extend([buf.split().freeze()]),
        DelimiterScan::None => out.extend([buf.split().freeze()]),
        DelimiterScan::Latest => {
            if seqs.iter().any(|d| !d.is_empty() && buf.ends_with(d)) {
                out.extend([buf.split().freeze()]);
            }
        }
        DelimiterScan::All => {
            while let Some(end) = first_end(buf, seqs) {
                out.extend([buf.split_to(end).freeze()]);
            }
        }
    }
}

enum Wake {
    Kill,
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
    Cmd(Option<Command>),
}

fn apply(tx: &mut TxQueue, closing: &mut bool, cmd: Command) {
    match cmd {
        Command::Send(msg) => tx.push_bytes(msg.into_payload()),
        Command::Prepared(p) => tx.push_bytes(p.payload().clone()),
        Command::SendWith(b) => tx.push_bytes(b.0.into_payload()),
        // Plain TCP has one queue: levels do not apply.
        Command::SendAt(b) => tx.push_bytes(b.0.into_payload()),
        Command::Event(ev) => tx.push_bytes(Bytes::from(ev.data.into_bytes())),
        Command::Close(..) => *closing = true,
        Command::Ping(_) | Command::Wake => {}
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn run<H: Handler>(
    server: ServerHandle,
    handler: Arc<H>,
    mut io: Io,
    peer: SocketAddr,
    local: SocketAddr,
    tls: bool,
    first: Bytes,
    _guard: AdmitGuard,
) {
    let inner = server.inner.clone();
    let config = &inner.config;
    let (sender, mut cmds) = mpsc::channel(config.send_queue);
    let info = Arc::new(ConnInfo {
        id: inner.registry.next_id(),
        peer,
        local,
        tls,
        transport: Transport::Tcp,
        url: String::new(),
        headers: ws_http::Headers::new(),
        response_headers: ws_http::Headers::new(),
        protocol: None,
        extensions: None,
        user: None,
        connected_at: SystemTime::now(),
        rx_bytes: AtomicU64::new(first.len() as u64),
        tx_bytes: AtomicU64::new(0),
        subscriptions: Mutex::new(Vec::new()),
        tx: sender,
        kill: Notify::new(),
        kill_code: AtomicU16::new(KILL_NONE),
        read_paused: AtomicBool::new(false),
    });
    inner.registry.insert(info.clone());
    let mut data: Option<Box<dyn Any + Send + Sync>> = None;
    let mut tx = TxQueue::default();
    let mut closing = false;
    let mut buf = BytesMut::from(&first[..]);
    let mut messages = std::collections::VecDeque::new();
    let mut disconnect = Disconnect::new(CloseCode::NORMAL, String::new(), Initiator::Remote);
    // The server's until the handler sets this connection's own (Ctx::set_delimiter).
    // The flag says it changed during a handler call.
    let mut delimiter = (Delimiter::of(&config.raw_tcp), false);

    macro_rules! ctx {
        () => {
            Ctx {
                sink: Sink::Raw {
                    tx: &mut tx,
                    closing: &mut closing,
                    sse: false,
                    delimiter: Some(&mut delimiter),
                },
                info: &info,
                server: &server,
                data: &mut data,
            }
        };
    }

    handler.on_connect(&mut ctx!()).await;
    let kill = info.kill.notified();
    tokio::pin!(kill);
    let mut eof = false;
    loop {
        // Read flow control: while paused, nothing is delivered and nothing read.
        while !info.is_reading_paused() {
            if messages.is_empty() {
                split_messages(&mut buf, &delimiter.0, &mut messages);
            }
            let Some(msg) = messages.pop_front() else {
                break;
            };
            handler.on_binary(&mut ctx!(), msg).await;
            if std::mem::take(&mut delimiter.1) && !messages.is_empty() {
                // A new delimiter: what the old one cut and was not delivered is cut again.
                let mut rest = BytesMut::new();
                for m in messages.drain(..) {
                    rest.extend_from_slice(&m);
                }
                rest.extend_from_slice(&buf);
                buf = rest;
            }
        }
        let paused = info.is_reading_paused() || !messages.is_empty();
        if buf.len() > config.raw_tcp.max_buffer {
            disconnect = Disconnect::new(
                CloseCode::TOO_BIG,
                "no delimiter within the buffer limit",
                Initiator::Local,
            );
            break;
        }
        if (closing || eof) && tx.is_empty() && !io.wants_flush() {
            if closing {
                disconnect.by = Initiator::User;
            }
            break;
        }
        let room = tx.len() < config.write_buffer_limit;
        let can_write = !tx.is_empty() || io.wants_flush();
        let (reader, writer) = io.halves();
        let wake = tokio::select! {
            biased;
            () = &mut kill => Wake::Kill,
            r = writer.write(&mut tx), if can_write => Wake::Wrote(r),
            r = reader.read(&mut buf), if room && !closing && !eof && !paused => Wake::Read(r),
            c = cmds.recv(), if room && !closing => Wake::Cmd(c),
        };
        match wake {
            Wake::Kill => {
                disconnect = Disconnect::new(CloseCode::ABNORMAL, "dropped", Initiator::User);
                break;
            }
            Wake::Wrote(Ok(n)) => {
                info.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Wake::Wrote(Err(e)) | Wake::Read(Err(e)) => {
                disconnect = Disconnect::new(CloseCode::ABNORMAL, e.to_string(), Initiator::Remote);
                break;
            }
            Wake::Read(Ok(0)) => eof = true,
            Wake::Read(Ok(n)) => {
                info.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                // Reads win the select: take the commands queued meanwhile.
                while !closing && tx.len() < config.write_buffer_limit {
                    match cmds.try_recv() {
                        Ok(cmd) => apply(&mut tx, &mut closing, cmd),
                        Err(_) => break,
                    }
                }
            }
            Wake::Cmd(Some(cmd)) => apply(&mut tx, &mut closing, cmd),
            Wake::Cmd(None) => {}
        }
    }
    // Messages not yet delivered (end of stream while paused), and a partial message left at
    // end of stream, are still delivered.
    if eof {
        while let Some(msg) = messages.pop_front() {
            handler.on_binary(&mut ctx!(), msg).await;
        }
        if !buf.is_empty() {
            let rest = buf.split().freeze();
            handler.on_binary(&mut ctx!(), rest).await;
        }
    }
    let _ = tokio::time::timeout(LINGER, io.shutdown()).await;
    drop(io);
    inner.unregister(&info);
    handler.on_disconnect(&info, disconnect).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(delim: &[u8], scan: DelimiterScan) -> Delimiter {
        Delimiter::new(scan, [delim])
    }

    #[test]
    fn delimiter_scanning_modes() {
        let mut out = Vec::new();
        let mut buf = BytesMut::from(&b"a\nbc\nd"[..]);
        split_messages(&mut buf, &cfg(b"\n", DelimiterScan::All), &mut out);
        assert_eq!(out, vec![Bytes::from("a\n"), Bytes::from("bc\n")]);
        assert_eq!(&buf[..], b"d");

        out.clear();
        let mut buf = BytesMut::from(&b"a\nbc"[..]);
        split_messages(&mut buf, &cfg(b"\n", DelimiterScan::Latest), &mut out);
        assert!(out.is_empty());
        buf.extend_from_slice(b"\n");
        split_messages(&mut buf, &cfg(b"\n", DelimiterScan::Latest), &mut out);
        assert_eq!(out, vec![Bytes::from("a\nbc\n")]);

        out.clear();
        let mut buf = BytesMut::from(&b"xyz"[..]);
        split_messages(&mut buf, &cfg(b"", DelimiterScan::None), &mut out);
        assert_eq!(out, vec![Bytes::from("xyz")]);
        assert!(buf.is_empty());

        // Multi-byte delimiter (STOMP-like NUL + LF).
        out.clear();
        let mut buf = BytesMut::from(&b"F1\0\nF2\0"[..]);
        split_messages(&mut buf, &cfg(b"\0\n", DelimiterScan::All), &mut out);
        assert_eq!(out, vec![Bytes::from("F1\0\n")]);
    }

    #[test]
    fn several_delimiters_cut_at_the_first_one_that_ends() {
        let d = Delimiter::new(DelimiterScan::All, [&b"\r\n"[..], b";", b"END"]);
        let mut out = Vec::new();
        let mut buf = BytesMut::from(&b"a;b\r\ncENDd\r"[..]);
        split_messages(&mut buf, &d, &mut out);
        assert_eq!(out, ["a;", "b\r\n", "cEND"].map(Bytes::from));
        assert_eq!(&buf[..], b"d\r");
        // A sequence that is a prefix of another: the shorter one ends first.
        let d = Delimiter::new(DelimiterScan::All, [&b"\n\n"[..], b"\n"]);
        out.clear();
        let mut buf = BytesMut::from(&b"x\n\ny"[..]);
        split_messages(&mut buf, &d, &mut out);
        assert_eq!(out, ["x\n", "\n"].map(Bytes::from));

        let d = Delimiter::new(DelimiterScan::Latest, [&b"\n"[..], b"\0"]);
        out.clear();
        let mut buf = BytesMut::from(&b"p\nq"[..]);
        split_messages(&mut buf, &d, &mut out);
        assert!(out.is_empty());
        buf.extend_from_slice(b"\0");
        split_messages(&mut buf, &d, &mut out);
        assert_eq!(out, [Bytes::from_static(b"p\nq\0")]);
    }
}
