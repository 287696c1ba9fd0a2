//! Chat rooms with channels and broadcast.
//!
//! A client joins the room named by its path (`ws://HOST/lobby` joins channel `room/lobby`);
//! every message it sends goes to everyone in that room, itself included. A message starting
//! with `/all ` goes to every connected client instead. Every ten seconds the server itself
//! announces how many people are online, from outside any handler, through the
//! `ServerHandle` that `Server::start` returned.
//!
//! ```text
//! cargo run -p ws-server --example chat -- [--listen 127.0.0.1:9002] [--for SECONDS]
//! cargo run -p ws-client --example through_proxy -- ws://127.0.0.1:9002/lobby "hi all"
//! ```

use std::time::Duration;

use ws_frame::Message;
use ws_server::{Binding, Ctx, Filter, Handler, Server, ServerConfig};

struct Chat;

/// The channel of a connection's room: its path without the leading `/` (`lobby` for `/`).
fn room(ctx: &Ctx<'_>) -> String {
    let path = ctx.info().path().trim_start_matches('/');
    format!("room/{}", if path.is_empty() { "lobby" } else { path })
}

impl Handler for Chat {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let room = room(ctx);
        // Channel names are validated (no wildcards, no empty segments); subscribe says why not.
        if let Err(e) = ctx.subscribe(&room) {
            let _ = ctx.send(format!("cannot join {room}: {e}"));
        }
    }

    async fn on_text(&self, ctx: &mut Ctx<'_>, text: ws_frame::Utf8Bytes) {
        let (filter, line) = match text.strip_prefix("/all ") {
            Some(rest) => (Filter::all(), format!("[all] {}: {rest}", ctx.id())),
            // Filter::channel also takes wildcards: `room/+` is every room, `#` everything.
            None => (Filter::channel(room(ctx)), format!("{}: {text}", ctx.id())),
        };
        // broadcast is async; clone the server handle out of ctx to await it.
        let server = ctx.server().clone();
        let n = server.broadcast(Message::text(line), &filter).await;
        eprintln!("chat: {} delivered to {n} client(s)", ctx.id()); // logs go to stderr
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, run_for) = args()?;
    let config = ServerConfig::new(vec![Binding::plain(listen.parse()?)]);
    let server = Server::start(config, Chat).await?;
    println!("listening on {}", server.local_addrs()[0]);

    // Announcements from outside the handler.
    let announcer = server.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.tick().await; // the first tick is immediate
        loop {
            tick.tick().await;
            let online = announcer.count();
            let text = format!(
                "[server] {online} online, rooms: {:?}",
                announcer.channels()
            );
            announcer
                .broadcast(Message::text(text), &Filter::all())
                .await;
        }
    });

    match run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => tokio::signal::ctrl_c().await?,
    }
    server.stop().await;
    Ok(())
}

/// `--listen ADDR` and `--for SECONDS` (or `WSKIT_EXAMPLE_FOR`).
fn args() -> Result<(String, Option<Duration>), Box<dyn std::error::Error>> {
    let mut listen = "127.0.0.1:9002".to_owned();
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
