//! Helpers shared by the behavioural tests: a files server on a free port, test files, hashes,
//! and a TCP relay that cuts connections after N bytes.
#![allow(dead_code, unreachable_pub)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use proto_files::{Config, Files, FilesHandler, Hooks};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use ws_server::{Binding, Server, ServerConfig, ServerHandle, SlowReaderPolicy};

pub fn server_config(addr: SocketAddr) -> ServerConfig {
    let mut c = ServerConfig::new(vec![Binding::plain(addr)]);
    c.slow_reader = SlowReaderPolicy::Backpressure;
    c.http.max_body = 1 << 30;
    c
}

pub async fn start(
    config: Config,
    dir: &Path,
    hooks: impl Hooks,
) -> (ServerHandle, Files, SocketAddr) {
    start_at("127.0.0.1:0".parse().unwrap(), config, dir, hooks).await
}

pub async fn start_at(
    addr: SocketAddr,
    config: Config,
    dir: &Path,
    hooks: impl Hooks,
) -> (ServerHandle, Files, SocketAddr) {
    let files = Files::new(config, Some(dir.to_path_buf()), hooks).unwrap();
    let server = Server::start(server_config(addr), FilesHandler::new(files.clone()))
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    (server, files, addr)
}

/// A file of `len` pseudo-random bytes in `dir`.
pub fn make_file(dir: &Path, name: &str, len: usize, seed: u32) -> PathBuf {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

pub fn sha256_file(p: &Path) -> [u8; 32] {
    Sha256::digest(std::fs::read(p).unwrap()).into()
}

pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A TCP relay to `upstream` that closes each connection once `cut_after` bytes went from the
/// client to the server (`None`: never). Counts connections.
pub struct Relay {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    pub async fn start(upstream: SocketAddr, cut_after: Option<u64>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(relay_one(client, upstream, cut_after));
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }
}

async fn relay_one(client: TcpStream, upstream: SocketAddr, cut_after: Option<u64>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0u64;
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let n = match cut_after {
                Some(limit) if sent + n as u64 >= limit => {
                    let left = (limit - sent) as usize;
                    let _ = sw.write_all(&buf[..left]).await;
                    return;
                }
                _ => n,
            };
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
            sent += n as u64;
        }
    };
    let down = async {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    // The first direction to end ends both (a cut closes both sockets).
    tokio::select! {
        () = up => {},
        () = down => {},
    }
}
