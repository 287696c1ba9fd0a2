//! Connect through an HTTP CONNECT or SOCKS proxy, send messages, print the replies.
//!
//! The proxy comes from `--proxy URL`, or else from the `WS_PROXY` environment variable
//! (`http://HOST:PORT`, `socks4://`, `socks4a://` or `socks5://`, with `USER:PASSWORD@` if the
//! proxy wants credentials). Without either it connects directly. For `wss://` URLs the TLS
//! handshake runs end to end through the tunnel: the proxy sees only the host and port.
//!
//! ```text
//! cargo run -p ws-client --example through_proxy -- [--proxy URL] [--linger SECS] [WS_URL] [MESSAGE...]
//! cargo run -p ws-client --example through_proxy -- --proxy http://127.0.0.1:8888 ws://127.0.0.1:9001/ hello
//! ```
//!
//! It waits for one reply per message (an echo or chat server answers each), prints whatever
//! else arrives for `--linger` seconds (other people's chat lines), then closes. It exits
//! with an error when the connection, the proxy or a reply fails.

use std::time::Duration;

use ws_client::{ClientConfig, CloseCode, Proxy, ProxyKind, connect};

/// `SCHEME://[USER:PASSWORD@]HOST:PORT` as a ws-client proxy.
fn parse_proxy(url: &str) -> Result<Proxy, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("proxy: expected SCHEME://HOST:PORT")?;
    let kind = match scheme {
        "http" => ProxyKind::Http,
        "socks4" => ProxyKind::Socks4,
        "socks4a" => ProxyKind::Socks4a,
        "socks5" | "socks5h" => ProxyKind::Socks5,
        other => {
            return Err(format!(
                "proxy scheme {other}: use http, socks4, socks4a or socks5"
            ));
        }
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, host_port) = match rest.rsplit_once('@') {
        Some((c, hp)) => (Some(c), hp),
        None => (None, rest),
    };
    let (host, port) = host_port.rsplit_once(':').ok_or("proxy: missing :PORT")?;
    let port = port
        .parse()
        .map_err(|_| format!("proxy: bad port {port}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']'); // [::1]
    let proxy = Proxy::new(kind, host, port);
    Ok(match credentials.and_then(|c| c.split_once(':')) {
        Some((user, password)) => proxy.with_credentials(user, password),
        None => proxy,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut proxy = std::env::var("WS_PROXY").ok().filter(|p| !p.is_empty());
    let mut linger = 0.0;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--proxy" => proxy = Some(args.next().ok_or("--proxy needs a URL")?),
            "--linger" => linger = args.next().ok_or("--linger needs SECONDS")?.parse()?,
            _ => rest.push(a),
        }
    }
    let mut rest = rest.into_iter();
    let url = rest.next().unwrap_or_else(|| "ws://127.0.0.1:9001/".into());
    let mut messages: Vec<String> = rest.collect();
    if messages.is_empty() {
        messages.push("hello".into());
    }

    let mut config = ClientConfig::default();
    config.connect_timeout = Duration::from_secs(10); // DNS, proxy, TLS and the upgrade
    match &proxy {
        Some(p) => {
            config.proxy = Some(parse_proxy(p)?);
            eprintln!("connecting to {url} through {p}");
        }
        None => eprintln!("connecting to {url} directly (no --proxy, no WS_PROXY)"),
    }
    let mut ws = connect(url.as_str(), config).await?;

    for text in &messages {
        ws.send_text(text.clone()).await?;
        // recv gives the next message; ping/pong and the close handshake are handled inside.
        let reply = tokio::time::timeout(Duration::from_secs(5), ws.recv())
            .await
            .map_err(|_| "no reply within 5 s")?
            .ok_or("the server closed the connection")??;
        match reply.as_text() {
            Some(t) => println!("{t}"),
            None => println!("<{} binary bytes>", reply.len()),
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(linger);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.recv()).await {
        println!("{}", msg?.as_text().unwrap_or("<binary>"));
    }
    let closed = ws.close(CloseCode::NORMAL, "bye").await?;
    eprintln!("closed: {} {}", closed.code, closed.reason);
    Ok(())
}
