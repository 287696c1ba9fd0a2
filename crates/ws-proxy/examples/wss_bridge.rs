//! Put a TCP service behind `wss://`: TLS with a self-signed certificate, WebSocket in front,
//! plain TCP behind (what websockify does for a VNC server).
//!
//! ```text
//! cargo run -p ws-proxy --example wss_bridge -- [--listen 127.0.0.1:6443] [--to HOST:PORT]
//!     [--cert cert.pem --key key.pem] [--for SECONDS]
//! ```
//!
//! - `--cert` / `--key`: the certificate to serve, e.g. from `wskit cert --host localhost`.
//!   Without them the example makes a throwaway self-signed one for `localhost` and
//!   `127.0.0.1` (the same kind `wskit cert` writes) in a temporary directory.
//! - `--to`: the TCP service. Without it the example starts a small one itself, on a free
//!   port, that answers every line in upper case.
//!
//! Once the bridge listens, the example goes through it once as a browser would (ws-client,
//! trusting exactly that certificate): it sends `hello` over `wss://` and prints what the TCP
//! service answered. Then it serves until `--for` (or `WSKIT_EXAMPLE_FOR`) seconds pass or
//! Ctrl-C.

use std::{path::PathBuf, time::Duration};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use ws_client::{ClientConfig, CloseCode, Message};
use ws_proxy::{ProxyConfig, ProxyServer, Target, ws_server::Binding};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A self-signed end-entity certificate for localhost (what `wskit cert --host localhost
/// --host 127.0.0.1` writes), as `(cert.pem, key.pem)` in `dir`.
fn self_signed(dir: &std::path::Path) -> Result<(PathBuf, PathBuf)> {
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params.is_ca = IsCa::ExplicitNoCa; // a CA certificate is refused as a server's own
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::create_dir_all(dir)?;
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    Ok((cert_file, key_file))
}

/// A TCP service to put behind the bridge: answers each line in upper case.
async fn upper_case_service() -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply = format!("{}\n", line.to_uppercase());
                    if write.write_all(reply.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr.to_string())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse()?;
    let temp = std::env::temp_dir().join(format!("wss-bridge-{}", std::process::id()));
    let (cert, key) = match (args.cert, args.key) {
        (Some(c), Some(k)) => (c, k),
        (None, None) => self_signed(&temp)?,
        _ => return Err("give both --cert and --key, or neither".into()),
    };
    let backend = match args.to {
        Some(to) => to,
        None => upper_case_service().await?,
    };

    // TLS from PEM files (ws-tls), on the proxy's server binding.
    let tls = ws_tls::server_config(&ws_tls::ServerTlsConfig::new(&cert, &key))?;
    let mut config = ProxyConfig::to(Target::parse(&format!("tcp://{backend}"))?);
    config.server.bindings = vec![Binding::tls(args.listen.parse()?, tls)];
    config.connect_before_upgrade = true; // backend down: 502 before the upgrade
    let proxy = ProxyServer::start(config).await?;
    let addr = proxy.local_addrs()[0];
    println!(
        "listening on wss://localhost:{}/ -> tcp://{backend}",
        addr.port()
    );

    // Go through it once, as a browser would: TLS verified against exactly this certificate.
    let mut client = ClientConfig::default();
    client.tls.ca_file = Some(cert.clone());
    client.tls.webpki_roots = false;
    let url = format!("wss://localhost:{}/", addr.port());
    let mut ws = ws_client::connect(url.as_str(), client).await?;
    // The bridge passes bytes: one WebSocket message may carry part of a line or several.
    ws.send(Message::binary(&b"hello\n"[..])).await?;
    let mut answer = Vec::new();
    while !answer.ends_with(b"\n") {
        match tokio::time::timeout(Duration::from_secs(5), ws.recv()).await? {
            Some(msg) => answer.extend_from_slice(msg?.as_bytes()),
            None => return Err("the bridge closed the connection".into()),
        }
    }
    println!(
        "through the bridge: {}",
        String::from_utf8_lossy(&answer).trim_end()
    );
    ws.close(CloseCode::NORMAL, "").await?;

    match args.run_for {
        Some(d) => tokio::time::sleep(d).await,
        None => tokio::signal::ctrl_c().await?,
    }
    proxy.stop().await;
    let _ = std::fs::remove_dir_all(&temp);
    Ok(())
}

struct Args {
    listen: String,
    to: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    run_for: Option<Duration>,
}

impl Args {
    fn parse() -> Result<Self> {
        let mut a = Self {
            listen: "127.0.0.1:6443".into(),
            to: None,
            cert: None,
            key: None,
            run_for: None,
        };
        let mut run_for = std::env::var("WSKIT_EXAMPLE_FOR").ok();
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--listen" => a.listen = value()?,
                "--to" => a.to = Some(value()?),
                "--cert" => a.cert = Some(value()?.into()),
                "--key" => a.key = Some(value()?.into()),
                "--for" => run_for = Some(value()?),
                _ => return Err(format!("unknown argument {flag}").into()),
            }
        }
        a.run_for = run_for
            .map(|s| s.parse().map(Duration::from_secs_f64))
            .transpose()?;
        Ok(a)
    }
}
