//! Spread WebSocket connections over three backends, then take one away.
//!
//! ```text
//! cargo run -p ws-proxy --example load_balancer -- [--balance round-robin|least-connections|
//!     cookie:NAME|header:NAME]
//! ```
//!
//! The example starts three small ws-server backends in-process (each greets a connection
//! with its name, then echoes), a proxy balancing over them with a TCP health check every
//! 200 ms, and connects six clients through it, printing which backend each got. Then it
//! stops one backend and connects three more: they go to the two left (the stopped one is
//! marked down at the first failed connect, or by the health check, whichever comes first).
//! It prints the balancer's view of the backends and exits.

use std::time::Duration;

use ws_client::{ClientConfig, Message};
use ws_proxy::{
    BalancerConfig, HealthCheck, Policy, ProxyConfig, ProxyServer, Target,
    ws_server::{self, Binding, Ctx, Handler, ServerConfig, ServerHandle},
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A backend: its name first, then an echo.
struct Named(String);

impl Handler for Named {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let _ = ctx.send(Message::text(self.0.clone()));
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}

async fn backend(name: &str) -> Result<(ServerHandle, Target)> {
    let mut cfg = ServerConfig::default();
    cfg.bindings = vec![Binding::plain("127.0.0.1:0".parse()?)];
    let server = ws_server::Server::start(cfg, Named(name.to_owned())).await?;
    let target = Target::parse(&format!("ws://{}", server.local_addrs()[0]))?;
    Ok((server, target))
}

/// Connects through the proxy and returns the greeting (the backend's name).
async fn through(url: &str) -> Result<(ws_client::WebSocket, String)> {
    let mut ws = ws_client::connect(url, ClientConfig::default()).await?;
    let first = ws.recv().await.ok_or("closed before the greeting")??;
    let name = String::from_utf8_lossy(first.as_bytes()).into_owned();
    Ok((ws, name))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut policy = Policy::RoundRobin;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--balance" => policy = Policy::parse(&args.next().ok_or("--balance POLICY")?)?,
            _ => return Err(format!("unknown argument {a:?}").into()),
        }
    }

    let mut servers = Vec::new();
    let mut balance = BalancerConfig::new(policy);
    for name in ["alpha", "beta", "gamma"] {
        let (server, target) = backend(name).await?;
        servers.push(server);
        balance.backends.push(target);
    }
    let mut health = HealthCheck::default();
    health.interval = Duration::from_millis(200);
    balance.health = Some(health);

    let mut config = ProxyConfig::default();
    config.server.bindings = vec![Binding::plain("127.0.0.1:0".parse()?)];
    config.balance = Some(balance);
    let proxy = ProxyServer::start(config).await?;
    let url = format!("ws://{}/", proxy.local_addrs()[0]);
    println!("balancing on {url}");

    let mut open = Vec::new();
    for i in 0..6 {
        let (ws, name) = through(&url).await?;
        println!("client {i} -> {name}");
        open.push(ws);
    }

    println!("stopping beta");
    servers[1].stop().await;
    for i in 6..9 {
        let (ws, name) = through(&url).await?;
        println!("client {i} -> {name}");
        open.push(ws);
    }

    for b in proxy.backends() {
        println!(
            "{} {} active={} total={}",
            b.target,
            b.state.as_str(),
            b.active,
            b.total
        );
    }
    drop(open);
    proxy.stop().await;
    for s in &servers {
        s.stop().await;
    }
    Ok(())
}
