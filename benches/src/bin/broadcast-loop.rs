//! The plain-loop reference of `cargo xtask bench broadcast`: what writing the same bytes to
//! every socket costs, with nothing else around it. The target of `wskit serve`'s broadcast is
//! at most twice this reference's time from the first publish to the last receipt.
//!
//! It accepts the same WebSocket connections from the same load client (ws-backplane's
//! `cluster_load`) on any path, with a minimal handshake: the request head is read up to its
//! blank line, and the answer is a 101 with the `Sec-WebSocket-Accept` of ws-http (no
//! subprotocols, no extensions, no checks beyond the key being there). Every text or binary
//! message any connection sends (the load client's publisher) is framed once, unmasked, and
//! written to every connection in turn, the sender included (as `wskit serve`'s `/chat`
//! does), by one task that holds every socket: `for socket in sockets { socket.write_all(frame) }`.
//!
//! That loop is the reference: one tokio task on one single-threaded (current_thread)
//! runtime, the same one thread `wskit serve --threads 1` gets. Each `write_all` is one
//! `write(2)` while the socket's buffer has room; when it has none, the loop waits for that
//! socket as a loop over blocking sockets would (the next sockets wait too). The reads of
//! every connection run on the same thread between the loop's passes (tokio's cooperative
//! budget makes the task yield every 128 writes). Sockets set `TCP_NODELAY`, as `wskit serve`
//! does. Fragmented messages, pings and closes get no answer: the load client sends none
//! during the measurement. A socket whose write fails is dropped from the set.
//!
//! `broadcast-loop --listen 127.0.0.1:9003`

use anyhow::{Context, Result, bail};
use bytes::{Buf, BytesMut};
use clap::Parser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedWriteHalf},
    sync::mpsc,
};
use ws_frame::{Header, MAX_HEADER_LEN, OpCode, parse_header};

/// Flags of `broadcast-loop`.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:9003")]
    listen: std::net::SocketAddr,
    /// Leave Nagle's algorithm on (no `TCP_NODELAY`): the kernel then holds small writes
    /// while earlier ones are unacknowledged and sends them together.
    #[arg(long)]
    nagle: bool,
}

/// The longest request head accepted.
const MAX_HEAD: usize = 8192;

/// What the writing task is told, in order: a new socket, or a frame for every socket.
enum Cmd {
    Join(OwnedWriteHalf),
    Send(bytes::Bytes),
}

/// The one task that writes: every frame to every socket, one after the other.
async fn broadcaster(mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut sockets: Vec<OwnedWriteHalf> = Vec::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Join(w) => sockets.push(w),
            Cmd::Send(frame) => {
                let mut i = 0;
                while i < sockets.len() {
                    if sockets[i].write_all(&frame).await.is_ok() {
                        i += 1;
                    } else {
                        drop(sockets.swap_remove(i));
                    }
                }
            }
        }
    }
}

/// Reads the request head and answers 101; returns what followed the head.
async fn handshake(tcp: &mut TcpStream) -> Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(1024);
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > MAX_HEAD {
            bail!("request head over {MAX_HEAD} bytes");
        }
        if tcp.read_buf(&mut buf).await? == 0 {
            bail!("closed during the handshake");
        }
    };
    let head = std::str::from_utf8(&buf[..end]).context("request head not UTF-8")?;
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim())
        })
        .context("no Sec-WebSocket-Key")?;
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        ws_http::accept_key(key)
    );
    tcp.write_all(answer.as_bytes()).await?;
    buf.advance(end);
    Ok(buf)
}

/// One connection: the handshake, then its write half goes to the writing task and its reads
/// stay here; each complete text or binary frame it sends is framed again for every socket.
async fn connection(
    mut tcp: TcpStream,
    nodelay: bool,
    tx: mpsc::UnboundedSender<Cmd>,
) -> Result<()> {
    tcp.set_nodelay(nodelay)?;
    let mut buf = handshake(&mut tcp).await?;
    let (mut rd, wr) = tcp.into_split();
    tx.send(Cmd::Join(wr)).context("the writing task ended")?;
    loop {
        while let Some((h, n)) = parse_header(&buf)? {
            let len = usize::try_from(h.payload_len).context("frame too long")?;
            if buf.len() < n + len {
                buf.reserve(n + len - buf.len());
                break;
            }
            buf.advance(n);
            let mut payload = buf.split_to(len);
            if let Some(key) = h.mask {
                ws_frame::mask::apply(&mut payload, key);
            }
            let opcode = match OpCode::try_from(h.opcode)? {
                OpCode::Close => return Ok(()),
                op @ (OpCode::Text | OpCode::Binary) if h.fin => op,
                _ => continue,
            };
            let mut head = [0; MAX_HEADER_LEN];
            let hn = Header::new(true, opcode, h.payload_len).encode_into(&mut head);
            let mut frame = BytesMut::with_capacity(hn + len);
            frame.extend_from_slice(&head[..hn]);
            frame.extend_from_slice(&payload);
            tx.send(Cmd::Send(frame.freeze()))
                .context("the writing task ended")?;
        }
        if rd.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        println!("broadcast-loop listening on {}", listener.local_addr()?);
        let nodelay = !args.nagle;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(broadcaster(rx));
        loop {
            let (tcp, _) = listener.accept().await?;
            let tx = tx.clone();
            tokio::spawn(async move {
                // Peers that vanish are normal under load; nothing to report.
                let _ = connection(tcp, nodelay, tx).await;
            });
        }
    })
}
