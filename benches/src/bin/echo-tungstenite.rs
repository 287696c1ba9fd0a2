//! Echo server on tokio-tungstenite, the peer `cargo xtask bench echo` compares `wskit serve`
//! with: one single-threaded (current_thread) tokio runtime, every path accepted, every text
//! and binary message echoed; tungstenite answers pings and closes by itself.
//!
//! `echo-tungstenite --listen 127.0.0.1:9001`

use anyhow::{Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use wskit_benches::EchoArgs;

async fn connection(tcp: TcpStream) -> Result<()> {
    tcp.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async(tcp).await?;
    while let Some(msg) = ws.next().await {
        // Pings are answered and Close echoed inside tungstenite; the stream then ends.
        if let m @ (Message::Text(_) | Message::Binary(_)) = msg? {
            ws.send(m).await?;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = EchoArgs::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        println!("echo-tungstenite listening on {}", listener.local_addr()?);
        loop {
            let (tcp, _) = listener.accept().await?;
            tokio::spawn(async move {
                // Peers that vanish are normal under load; nothing to report.
                let _ = connection(tcp).await;
            });
        }
    })
}
