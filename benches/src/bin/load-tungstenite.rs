//! Client load generator on tokio-tungstenite, the peer of `load-wsclient` in
//! `cargo xtask bench echo`: same driver, same flags, same summary line.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::{WebSocketStream, client_async, tungstenite::Message};
use wskit_benches::{LoadArgs, load};

type Ws = WebSocketStream<TcpStream>;

fn main() -> Result<()> {
    let args = LoadArgs::parse();
    load::run(
        &args,
        async |url: &str| -> Result<Ws> {
            let authority = url
                .strip_prefix("ws://")
                .and_then(|rest| rest.split('/').next())
                .context("expected a ws://HOST:PORT/PATH URL")?;
            let tcp = TcpStream::connect(authority).await?;
            tcp.set_nodelay(true)?;
            let (ws, _) = client_async(url, tcp).await?;
            Ok(ws)
        },
        async |ws: &mut Ws, payload: Bytes| -> Result<usize> {
            ws.send(Message::Binary(payload)).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => return Ok(b.len()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    other => bail!("unexpected {other:?}"),
                }
            }
        },
    )
}
