//! `wskit mqtt sub|pub URL ...`: an MQTT 3.1.1 / 5 client with the flags of mosquitto_sub and
//! mosquitto_pub (`-t -q -V -u -P -C -i -c -v`, `-m -f -l -r`, `--cafile --cert --key
//! --insecure`). URL is `mqtt://`, `mqtts://`, `ws://` or `wss://` (`user:password@` allowed).

use std::{io::BufRead as _, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};
use proto_mqtt::{Client, Config, Event, QoS, ReasonCode, Version, packet::subscribe_filter};

/// Flags of `wskit mqtt`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Subscribe and print one payload per line (`-v`: topic and payload), like mosquitto_sub.
    Sub(SubArgs),
    /// Publish a message (`-m`), a file (`-f`) or one message per stdin line (`-l`), like
    /// mosquitto_pub.
    Pub(PubArgs),
}

/// Flags both subcommands take.
#[derive(Debug, clap::Args)]
struct Common {
    /// Broker URL: mqtt://HOST (port 1883 by default), mqtts://HOST (8883), ws://HOST:PORT/PATH or wss://...
    #[arg(value_name = "URL")]
    url: String,
    /// QoS: 0, 1 or 2.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Protocol version: 311 (or mqttv311) or 5 (or mqttv5).
    #[arg(short = 'V', long = "protocol-version", default_value = "5")]
    version: String,
    /// User name.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password.
    #[arg(short = 'P', long)]
    pw: Option<String>,
    /// Client id (random by default).
    #[arg(short = 'i', long)]
    id: Option<String>,
    /// Keep alive in seconds.
    #[arg(short = 'k', long, default_value_t = 60)]
    keepalive: u16,
    /// CA certificates to trust (PEM) instead of the built-in roots.
    #[arg(long)]
    cafile: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Client certificate key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Do not check the server certificate (development only).
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, clap::Args)]
struct SubArgs {
    #[command(flatten)]
    common: Common,
    /// Topic filter to subscribe to (repeat for several).
    #[arg(short = 't', long = "topic", required = true)]
    topics: Vec<String>,
    /// Exit after this many messages.
    #[arg(short = 'C', long = "count")]
    count: Option<u64>,
    /// Print the topic before each payload.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Keep the session (clean session / clean start off), like mosquitto_sub -c.
    #[arg(short = 'c', long = "no-clean")]
    no_clean: bool,
    /// Give up after this many seconds (exit status 1) unless `-C` messages arrived first,
    /// like mosquitto_sub -W.
    #[arg(short = 'W', long = "timeout", value_name = "SECS")]
    timeout: Option<u64>,
    /// Say on stderr when the subscription is acknowledged (`Subscribed: FILTER qos N`), so a
    /// script can wait for it before publishing; like mosquitto_sub -d.
    #[arg(short = 'd', long)]
    debug: bool,
}

#[derive(Debug, clap::Args)]
struct PubArgs {
    #[command(flatten)]
    common: Common,
    /// Topic to publish to.
    #[arg(short = 't', long)]
    topic: String,
    /// The message.
    #[arg(short = 'm', long, conflicts_with_all = ["file", "lines"])]
    message: Option<String>,
    /// Send the contents of this file as one message.
    #[arg(short = 'f', long, conflicts_with = "lines")]
    file: Option<PathBuf>,
    /// Send each line of stdin as a message.
    #[arg(short = 'l', long)]
    lines: bool,
    /// Retain the message(s).
    #[arg(short = 'r', long)]
    retain: bool,
}

fn config(c: &Common) -> Result<Config> {
    let mut config = Config::default();
    config.version = match c.version.to_ascii_lowercase().as_str() {
        "5" | "mqttv5" => Version::V5,
        "311" | "mqttv311" | "3.1.1" => Version::V311,
        v => bail!("-V {v}: use 311 or 5"),
    };
    config.client_id.clone_from(&c.id);
    config.keep_alive = Duration::from_secs(c.keepalive.into());
    if let Some(u) = &c.username {
        config.credentials = Some((u.clone(), c.pw.clone().unwrap_or_default()));
    }
    if let Some(ca) = &c.cafile {
        config.transport.tls.ca_file = Some(ca.clone());
        config.transport.tls.webpki_roots = false;
    }
    config.transport.tls.cert_file.clone_from(&c.cert);
    config.transport.tls.key_file.clone_from(&c.key);
    config.transport.tls.danger_accept_invalid_certs = c.insecure;
    // A command-line tool reports a lost broker instead of waiting for it.
    config.reconnect = None;
    Ok(config)
}

fn qos(n: u8) -> QoS {
    QoS::from_u8(n).unwrap_or_default()
}

/// Runs `wskit mqtt`.
pub(crate) async fn run(args: Args) -> Result<()> {
    match args.command {
        Sub::Sub(a) => sub(a).await,
        Sub::Pub(a) => publish(a).await,
    }
}

async fn sub(a: SubArgs) -> Result<()> {
    match a.timeout {
        Some(secs) => tokio::time::timeout(Duration::from_secs(secs), subscribe(&a))
            .await
            .unwrap_or_else(|_| bail!("-W {secs}: timed out")),
        None => subscribe(&a).await,
    }
}

async fn subscribe(a: &SubArgs) -> Result<()> {
    let mut config = config(&a.common)?;
    if a.no_clean {
        config.clean_start = false;
        config.session_expiry = u32::MAX;
    }
    let (client, mut events) = Client::connect(&a.common.url, config)
        .await
        .with_context(|| format!("connecting to {}", a.common.url))?;
    let filters = a
        .topics
        .iter()
        .map(|t| subscribe_filter(t.as_str(), qos(a.common.qos)))
        .collect();
    let ack = client.subscribe_many(filters, None).await?;
    for (t, code) in a.topics.iter().zip(&ack.codes) {
        if !code.is_success() {
            bail!("subscription to {t:?} refused: {code}");
        }
        if a.debug {
            eprintln!("Subscribed: {t} {code}");
        }
    }
    let mut seen = 0u64;
    let out = std::io::stdout();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Publish(p) => {
                let payload = String::from_utf8_lossy(&p.payload);
                {
                    use std::io::Write as _;
                    let mut o = out.lock();
                    if a.verbose {
                        writeln!(o, "{} {payload}", p.topic)?;
                    } else {
                        writeln!(o, "{payload}")?;
                    }
                    o.flush()?;
                }
                seen += 1;
                if a.count.is_some_and(|c| seen >= c) {
                    break;
                }
            }
            Event::Disconnected(d) => bail!("disconnected: {}", d.reason),
            _ => {}
        }
    }
    client.disconnect(ReasonCode::SUCCESS, None).await.ok();
    Ok(())
}

async fn publish(a: PubArgs) -> Result<()> {
    let config = config(&a.common)?;
    let (client, _events) = Client::connect(&a.common.url, config)
        .await
        .with_context(|| format!("connecting to {}", a.common.url))?;
    let q = qos(a.common.qos);
    let send = |payload: Vec<u8>| {
        let mut p = proto_mqtt::packet::publish(a.topic.clone(), q, payload);
        p.retain = a.retain;
        p
    };
    let timeout = Duration::from_secs(30);
    if a.lines {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            client.publish_message(send(line?.into_bytes())).await?;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while client.pending() > 0 {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} messages not acknowledged within {timeout:?}",
                    client.pending()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        let payload = match (&a.message, &a.file) {
            (Some(m), _) => m.clone().into_bytes(),
            (None, Some(f)) => {
                std::fs::read(f).with_context(|| format!("reading {}", f.display()))?
            }
            (None, None) => bail!("give -m MESSAGE, -f FILE or -l"),
        };
        let ack = client.publish_and_wait(send(payload), timeout).await?;
        if !ack.reason.is_success() {
            bail!("the broker refused the message: {}", ack.reason);
        }
    }
    client.disconnect(ReasonCode::SUCCESS, None).await.ok();
    Ok(())
}
