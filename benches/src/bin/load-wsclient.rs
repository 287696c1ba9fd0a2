//! Client load generator on ws-client (the client `cargo xtask bench echo` compares with
//! tokio-tungstenite's): `load-wsclient ws://127.0.0.1:9001/echo --conns 100 --size 20 --secs 5`.

use anyhow::{Result, bail};
use bytes::Bytes;
use clap::Parser;
use ws_client::{ClientConfig, Message, WebSocket, connect};
use wskit_benches::{LoadArgs, load};

fn main() -> Result<()> {
    let args = LoadArgs::parse();
    load::run(
        &args,
        async |url: &str| -> Result<WebSocket> {
            let mut config = ClientConfig::default();
            config.deflate = None;
            Ok(connect(url, config).await?)
        },
        async |ws: &mut WebSocket, payload: Bytes| -> Result<usize> {
            ws.send_binary(payload).await?;
            match ws.recv().await {
                Some(Ok(Message::Binary(b))) => Ok(b.len()),
                other => bail!("unexpected {other:?}"),
            }
        },
    )
}
