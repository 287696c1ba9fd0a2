//! The smallest useful server: every WebSocket message comes back to its sender.
//!
//! ```text
//! cargo run -p ws-server --example echo -- [--listen 127.0.0.1:9001] [--for SECONDS]
//! cargo run -p ws-client --example reconnect -- ws://127.0.0.1:9001/    # in another shell
//! ```
//!
//! Without `--for` it runs until Ctrl-C; either way it stops cleanly (Close 1001 to every
//! client, then waits for them). `WSKIT_EXAMPLE_FOR=SECONDS` does the same as `--for`.

use std::time::Duration;

use ws_frame::Message;
use ws_server::{Binding, Ctx, Handler, Server, ServerConfig};

struct Echo;

impl Handler for Echo {
    // Text and binary alike; on_text / on_binary exist for handlers that care.
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        // send queues the message on this connection; it fails only once the connection closes.
        let _ = ctx.send(msg);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, run_for) = args()?;
    let config = ServerConfig::new(vec![Binding::plain(listen.parse()?)]);
    let server = Server::start(config, Echo).await?;
    println!("listening on {}", server.local_addrs()[0]);

    match run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => tokio::signal::ctrl_c().await?,
    }
    server.stop().await;
    Ok(())
}

/// `--listen ADDR` and `--for SECONDS` (or `WSKIT_EXAMPLE_FOR`).
fn args() -> Result<(String, Option<Duration>), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:9001".to_owned();
    let mut run_for = std::env::var("WSKIT_EXAMPLE_FOR").ok();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().ok_or("--listen needs ADDR")?,
            "--for" => run_for = Some(args.next().ok_or("--for needs SECONDS")?),
            _ => return Err(format!("unknown argument {a}").into()),
        }
    }
    let run_for = run_for
        .map(|s| s.parse().map(Duration::from_secs_f64))
        .transpose()?;
    Ok((listen, run_for))
}
