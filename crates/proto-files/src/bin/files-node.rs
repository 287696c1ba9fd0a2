//! `files-node`: a files-protocol node for benchmarks (`cargo xtask bench files`) and fault tests,
//! one mode per run:
//!
//! ```text
//! files-node serve DIR [ADDR]                 receive into DIR (files protocol on any path, tus at
//!                                             /files/, raw binary sink on /raw, raw binary messages
//!                                             appended to DIR/rawdisk.bin and synced on /rawdisk);
//!                                             prints "listening ADDR"
//! files-node send URL FILE [QOS] [CHUNK]      send FILE; prints "sent BYTES SECS SHA256HEX" or "error ..."
//! files-node raw URL BYTES CHUNK              send BYTES as binary messages of CHUNK bytes to /raw
//!                                             (or /rawdisk); prints "raw BYTES SECS"
//! ```

use std::{
    io::Write as _,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use proto_files::{Config, Files, FilesClient, FilesHandler, NoHooks, QoS, SendOptions};
use tokio::sync::{Mutex, mpsc};
use ws_client::ClientConfig;
use ws_server::{
    Binding, Body, ConnInfo, Ctx, Decision, Disconnect, Handler, Request, Response, Server,
    ServerConfig, SlowReaderPolicy, ws_frame::Message,
};

struct Node {
    files: FilesHandler,
    raw_bytes: Arc<AtomicU64>,
    dir: PathBuf,
    /// The `/rawdisk` connection's writing thread (one such connection at a time).
    disk: Mutex<Option<DiskSink>>,
}

/// `/rawdisk`: binary messages appended to a file by a blocking thread (the disk-writing part
/// of a file transfer without its protocol and hashing), synced when the text `done` arrives.
struct DiskSink {
    tx: mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl DiskSink {
    fn start(path: PathBuf) -> std::io::Result<Self> {
        let mut file = std::fs::File::create(path)?;
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(b) = rx.blocking_recv() {
                file.write_all(&b)?;
            }
            file.sync_all()
        });
        Ok(Self { tx, done })
    }
}

impl Handler for Node {
    async fn on_handshake(&self, request: &Request) -> Decision {
        self.files.on_handshake(request).await
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        self.files.on_http(request, body).await
    }

    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        match ctx.info().path() {
            "/raw" => {}
            "/rawdisk" => match DiskSink::start(self.dir.join("rawdisk.bin")) {
                Ok(s) => *self.disk.lock().await = Some(s),
                Err(e) => eprintln!("rawdisk: {e}"),
            },
            _ => self.files.on_connect(ctx).await,
        }
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        if ctx.info().path() == "/rawdisk" {
            match msg {
                Message::Binary(b) => {
                    let tx = self.disk.lock().await.as_ref().map(|s| s.tx.clone());
                    if let Some(tx) = tx {
                        let _ = tx.send(b).await;
                    }
                }
                Message::Text(_) => {
                    let sink = self.disk.lock().await.take();
                    let ok = match sink {
                        Some(DiskSink { tx, done }) => {
                            drop(tx);
                            matches!(done.await, Ok(Ok(())))
                        }
                        None => false,
                    };
                    let _ = ctx.send(Message::Text(if ok { "ok" } else { "failed" }.into()));
                }
            }
        } else if ctx.info().path() == "/raw" {
            match msg {
                Message::Binary(b) => {
                    self.raw_bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                }
                Message::Text(_) => {
                    let _ = ctx.send(Message::Text("ok".into()));
                }
            }
        } else if let Message::Binary(b) = msg {
            self.files.on_binary(ctx, b).await;
        }
    }

    async fn on_disconnect(&self, info: &Arc<ConnInfo>, d: Disconnect) {
        self.files.on_disconnect(info, d).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "serve" => {
            let dir = PathBuf::from(arg(1));
            let addr = args.get(2).map_or("127.0.0.1:0", String::as_str).parse()?;
            let files = Files::new(Config::default(), Some(dir.clone()), NoHooks)?;
            let mut sc = ServerConfig::new(vec![Binding::plain(addr)]);
            sc.slow_reader = SlowReaderPolicy::Backpressure;
            sc.http.max_body = 1 << 40;
            let node = Node {
                files: FilesHandler::new(files),
                raw_bytes: Arc::new(AtomicU64::new(0)),
                dir,
                disk: Mutex::new(None),
            };
            let server = Server::start(sc, node).await?;
            println!("listening {}", server.local_addrs()[0]);
            server.stopped().await;
        }
        "send" => {
            let qos = QoS::from_u8(arg(3).parse().unwrap_or(0)).unwrap_or_default();
            let mut config = Config::default();
            if let Ok(c) = arg(4).parse() {
                config.chunk = c;
            }
            let client = FilesClient::connect(
                arg(1).as_str(),
                ClientConfig::default(),
                config,
                None,
                NoHooks,
            )
            .await?;
            let t = Instant::now();
            match client.send_file(arg(2), &SendOptions::qos(qos)).await {
                Ok(r) => {
                    let hex: String = r.sha256.iter().map(|b| format!("{b:02x}")).collect();
                    println!("sent {} {:.3} {hex}", r.size, t.elapsed().as_secs_f64());
                }
                Err(e) => println!("error {} {e}", e.code().as_u16()),
            }
            client.close().await;
        }
        "raw" => {
            let total: u64 = arg(2).parse()?;
            let chunk: usize = arg(3).parse()?;
            let ws = ws_client::connect(arg(1).as_str(), ClientConfig::default()).await?;
            let mut ws = ws;
            let payload = Bytes::from(vec![0x5a; chunk]);
            let t = Instant::now();
            let mut sent = 0u64;
            while sent < total {
                let n = (total - sent).min(chunk as u64) as usize;
                ws.send_binary(payload.slice(..n)).await?;
                sent += n as u64;
            }
            ws.send_text("done").await?;
            while let Some(m) = ws.recv().await {
                match m?.as_text() {
                    Some("ok") => break,
                    Some(other) => return Err(format!("the sink answered {other}").into()),
                    None => {}
                }
            }
            println!("raw {sent} {:.3}", t.elapsed().as_secs_f64());
        }
        _ => {
            eprintln!(
                "usage: files-node serve DIR [ADDR] | send URL FILE [QOS] [CHUNK] | raw URL BYTES CHUNK"
            );
            std::process::exit(2);
        }
    }
    Ok(())
}
