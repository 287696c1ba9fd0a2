//! Load through a WebSocket-to-TCP proxy: bulk throughput (64 KiB messages, echoed) and round
//! trips per second (64-byte messages), against an echo backend this program starts itself.
//!
//! ```text
//! wskit proxy --listen 127.0.0.1:8080 --to tcp://127.0.0.1:5999 &
//! cargo run --release -p ws-proxy --example proxy_load -- ws://127.0.0.1:8080/ 5999 [MiB] [secs]
//! cargo run --release -p ws-proxy --example proxy_load -- self     # an in-process proxy
//! ```

use std::{net::SocketAddr, time::Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// An echo backend whose reads never wait for its writes.
async fn echo_backend(port: u16) -> SocketAddr {
    let l = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind echo port");
    let addr = l.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            let (mut r, mut w) = s.into_split();
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = r.read(&mut buf).await {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some(chunk) = rx.recv().await {
                    if w.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn client() -> ws_client::ClientConfig {
    let mut c = ws_client::ClientConfig::default();
    c.protocols = vec!["binary".into()];
    c
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url_arg = args.first().cloned().unwrap_or_else(|| "self".into());
    let port: u16 = args.get(1).map_or(Ok(0), |p| p.parse())?;
    let mib: usize = args.get(2).map_or(Ok(256), |p| p.parse())?;
    let secs: u64 = args.get(3).map_or(Ok(3), |p| p.parse())?;
    let backend = echo_backend(port).await;
    let (url, _proxy) = if url_arg == "self" {
        let mut c =
            ws_proxy::ProxyConfig::to(ws_proxy::Target::parse(&format!("tcp://{backend}"))?);
        c.server.bindings = vec![ws_server::Binding::plain("127.0.0.1:0".parse()?)];
        let p = ws_proxy::ProxyServer::start(c).await?;
        (format!("ws://{}/", p.local_addrs()[0]), Some(p))
    } else {
        (url_arg, None)
    };
    println!("proxy {url}, echo backend {backend}");

    // Bulk: send MiB in 64 KiB messages while reading the echo.
    const SIZE: usize = 64 * 1024;
    let n = mib * 1024 * 1024 / SIZE;
    let (mut reader, writer) = ws_client::connect(url.as_str(), client()).await?.split();
    let start = Instant::now();
    let send = tokio::spawn(async move {
        let payload = bytes::Bytes::from(vec![0x5au8; SIZE]);
        for _ in 0..n {
            writer.send_binary(payload.clone()).await?;
        }
        Ok::<_, ws_client::Error>(writer)
    });
    let mut got = 0usize;
    while got < n * SIZE {
        match reader.recv().await {
            Some(Ok(m)) => got += m.len(),
            other => return Err(format!("bulk stream ended early: {other:?}").into()),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let writer = send.await??;
    let mb = (n * SIZE) as f64 / 1e6;
    println!(
        "bulk: {mb:.0} MB each way in {elapsed:.2} s = {:.1} MB/s",
        mb / elapsed
    );
    drop(writer);

    // Round trips: 64-byte messages, one at a time.
    let mut ws = ws_client::connect(url.as_str(), client()).await?;
    let msg = vec![7u8; 64];
    let start = Instant::now();
    let mut trips = 0u64;
    while start.elapsed().as_secs() < secs {
        ws.send_binary(msg.clone()).await?;
        let mut back = 0;
        while back < msg.len() {
            match ws.recv().await {
                Some(Ok(m)) => back += m.len(),
                other => return Err(format!("round trip failed: {other:?}").into()),
            }
        }
        trips += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "round trips: {trips} in {elapsed:.2} s = {:.0}/s",
        trips as f64 / elapsed
    );
    Ok(())
}
