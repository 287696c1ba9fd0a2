//! Echo server on fastwebsockets (upgrade through hyper, as its documentation shows), the peer
//! `cargo xtask bench echo` compares `wskit serve` with: one single-threaded (current_thread)
//! tokio runtime, every path accepted, fragmented messages reassembled and every text and
//! binary message echoed; pongs and Close replies are automatic (fastwebsockets' defaults).
//!
//! `echo-fastwebsockets --listen 127.0.0.1:9002`

use anyhow::{Context, Result};
use clap::Parser;
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError, upgrade};
use http_body_util::Empty;
use hyper::{
    Request, Response, body::Bytes, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wskit_benches::EchoArgs;

async fn echo(upgraded: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(upgraded.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn handshake(mut req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgraded) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        // Peers that vanish are normal under load; nothing to report.
        let _ = echo(upgraded).await;
    });
    Ok(response)
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
        println!(
            "echo-fastwebsockets listening on {}",
            listener.local_addr()?
        );
        loop {
            let (tcp, _) = listener.accept().await?;
            tcp.set_nodelay(true)?;
            tokio::spawn(async move {
                let conn = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service_fn(handshake))
                    .with_upgrades();
                let _ = conn.await;
            });
        }
    })
}
