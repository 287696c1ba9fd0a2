//! MQTT load generator for `cargo xtask bench mqtt`: the same measurements with proto-mqtt
//! (`--client wskit`) or rumqttc (`--client rumqttc`) against one broker, MQTT 3.1.1, both with
//! an in-flight window of 100 (the broker is started with `max_inflight_messages 100`).
//!
//! ```text
//! mqtt_load throughput --client C --port P --qos Q --size S --count N
//!     one publisher, one subscriber (same library): messages per second delivered
//! mqtt_load latency --client C --port P --qos Q --size S --rate R --secs T
//!     publish at a fixed rate, publish-to-receive latency p50 / p99 (microseconds)
//! mqtt_load rss --client C --port P --clients N
//!     N idle connected clients: growth of this process's VmRSS per client
//! ```
//!
//! Each prints one `summary: key=value ...` line.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Lib {
    Wskit,
    Rumqttc,
}

#[derive(Debug, Parser)]
enum Cmd {
    Throughput {
        #[arg(long)]
        client: Lib,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        qos: u8,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        count: u64,
    },
    Latency {
        #[arg(long)]
        client: Lib,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        qos: u8,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        rate: u64,
        #[arg(long)]
        secs: u64,
    },
    Rss {
        #[arg(long)]
        client: Lib,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        clients: u64,
    },
}

const WINDOW: u16 = 100;

/// A publisher and a subscriber of one library, behind one interface.
enum Pair {
    Wskit {
        publ: proto_mqtt::Client,
        events: proto_mqtt::Events,
        _sub: proto_mqtt::Client,
    },
    Rumqttc {
        publ: rumqttc::AsyncClient,
        rx: tokio::sync::mpsc::UnboundedReceiver<Bytes>,
    },
}

fn wskit_config(id: &str) -> proto_mqtt::Config {
    let mut c = proto_mqtt::Config::default();
    c.version = proto_mqtt::Version::V311;
    c.client_id = Some(id.into());
    c.v311_receive_maximum = WINDOW;
    c.max_queued = 100_000;
    c.max_incoming_packet = 1 << 20;
    c
}

fn rumqttc_options(id: &str, port: u16) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_inflight(WINDOW);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

fn rq(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn wq(q: u8) -> proto_mqtt::QoS {
    proto_mqtt::QoS::from_u8(q).unwrap_or_default()
}

impl Pair {
    async fn new(lib: Lib, port: u16, qos: u8, topic: &str) -> Result<Self> {
        let url = format!("mqtt://127.0.0.1:{port}");
        match lib {
            Lib::Wskit => {
                let (sub, events) =
                    proto_mqtt::Client::connect(&url, wskit_config(&format!("sub-{topic}")))
                        .await?;
                sub.subscribe(topic, wq(qos)).await?;
                let (publ, _pe) =
                    proto_mqtt::Client::connect(&url, wskit_config(&format!("pub-{topic}")))
                        .await?;
                Ok(Self::Wskit {
                    publ,
                    events,
                    _sub: sub,
                })
            }
            Lib::Rumqttc => {
                let (sub, mut sub_loop) = rumqttc::AsyncClient::new(
                    rumqttc_options(&format!("sub-{topic}"), port),
                    100_000,
                );
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                let mut ready_tx = Some(ready_tx);
                sub.subscribe(topic, rq(qos)).await?;
                tokio::spawn(async move {
                    let _keep = sub;
                    loop {
                        match sub_loop.poll().await {
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                                let _ = tx.send(p.payload);
                            }
                            Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                                if let Some(r) = ready_tx.take() {
                                    let _ = r.send(());
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                eprintln!("rumqttc subscriber: {e}");
                                return;
                            }
                        }
                    }
                });
                ready_rx.await?;
                let (publ, mut pub_loop) = rumqttc::AsyncClient::new(
                    rumqttc_options(&format!("pub-{topic}"), port),
                    100_000,
                );
                tokio::spawn(async move {
                    loop {
                        if let Err(e) = pub_loop.poll().await {
                            eprintln!("rumqttc publisher: {e}");
                            return;
                        }
                    }
                });
                Ok(Self::Rumqttc { publ, rx })
            }
        }
    }

    fn publisher(&self) -> Pub {
        match self {
            Self::Wskit { publ, .. } => Pub::Wskit(publ.clone()),
            Self::Rumqttc { publ, .. } => Pub::Rumqttc(publ.clone()),
        }
    }

    /// The next delivered payload, or `None` after `idle` without one.
    async fn next(&mut self, idle: Duration) -> Option<Bytes> {
        match self {
            Self::Wskit { events, .. } => loop {
                match tokio::time::timeout(idle, events.recv()).await {
                    Ok(Some(proto_mqtt::Event::Publish(p))) => return Some(p.payload),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return None,
                }
            },
            Self::Rumqttc { rx, .. } => tokio::time::timeout(idle, rx.recv()).await.ok().flatten(),
        }
    }
}

fn vm_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    match Cmd::parse() {
        Cmd::Throughput {
            client,
            port,
            qos,
            size,
            count,
        } => {
            let topic = format!("bench/tp/{qos}/{size}");
            let mut pair = Pair::new(client, port, qos, &topic).await?;
            let payload = Bytes::from(vec![b'x'; size]);
            let publ = pair.publisher();
            let start = Instant::now();
            let t = topic.clone();
            let sender = tokio::spawn(async move {
                for _ in 0..count {
                    publ.publish(&t, qos, payload.clone()).await?;
                }
                anyhow::Ok(())
            });
            let mut got = 0u64;
            let mut last = start;
            // Until every message arrived, or 2 s of silence (QoS 0 may drop some).
            while got < count {
                match pair.next(Duration::from_secs(2)).await {
                    Some(_) => {
                        got += 1;
                        last = Instant::now();
                    }
                    None => break,
                }
            }
            sender.await??;
            let secs = last.duration_since(start).as_secs_f64().max(1e-9);
            println!(
                "summary: msgs_per_sec={:.0} delivered={got} sent={count} secs={secs:.3}",
                got as f64 / secs
            );
        }
        Cmd::Latency {
            client,
            port,
            qos,
            size,
            rate,
            secs,
        } => {
            let topic = format!("bench/lat/{qos}/{size}");
            let mut pair = Pair::new(client, port, qos, &topic).await?;
            let epoch = Instant::now();
            let total = rate * secs;
            let publ = pair.publisher();
            let t = topic.clone();
            let sender = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
                for _ in 0..total {
                    tick.tick().await;
                    let mut p = vec![b'x'; size.max(16)];
                    let ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    p[..8].copy_from_slice(&ns.to_be_bytes());
                    publ.publish(&t, qos, Bytes::from(p)).await?;
                }
                anyhow::Ok(())
            });
            let mut lat = Vec::with_capacity(total as usize);
            while (lat.len() as u64) < total {
                let Some(p) = pair.next(Duration::from_secs(3)).await else {
                    break;
                };
                let sent = u64::from_be_bytes(p[..8].try_into()?);
                let now = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                lat.push(now.saturating_sub(sent) / 1000);
            }
            sender.await??;
            if lat.is_empty() {
                bail!("nothing delivered");
            }
            lat.sort_unstable();
            let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
            println!(
                "summary: p50_us={} p99_us={} delivered={} sent={total}",
                pct(0.50),
                pct(0.99),
                lat.len()
            );
        }
        Cmd::Rss {
            client,
            port,
            clients,
        } => {
            let before = vm_rss_kib();
            let url = format!("mqtt://127.0.0.1:{port}");
            let mut keep_wskit = Vec::new();
            let mut keep_rumqttc = Vec::new();
            for i in 0..clients {
                match client {
                    Lib::Wskit => {
                        let mut c = wskit_config(&format!("idle-{i}"));
                        c.event_queue = 16;
                        keep_wskit.push(proto_mqtt::Client::connect(&url, c).await?);
                    }
                    Lib::Rumqttc => {
                        let (c, mut el) = rumqttc::AsyncClient::new(
                            rumqttc_options(&format!("idle-{i}"), port),
                            10,
                        );
                        // Poll until CONNACK, then keep polling in a task (keep-alive).
                        loop {
                            if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) =
                                el.poll().await?
                            {
                                break;
                            }
                        }
                        let h = tokio::spawn(async move { while el.poll().await.is_ok() {} });
                        keep_rumqttc.push((c, h));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let after = vm_rss_kib();
            println!(
                "summary: rss_kib_per_client={:.1} clients={clients} before_kib={before} after_kib={after}",
                after.saturating_sub(before) as f64 / clients as f64
            );
            drop(keep_wskit);
            for (_, h) in keep_rumqttc {
                h.abort();
            }
        }
    }
    Ok(())
}

/// A cloneable publisher handle of either library.
enum Pub {
    Wskit(proto_mqtt::Client),
    Rumqttc(rumqttc::AsyncClient),
}

impl Pub {
    async fn publish(&self, topic: &str, qos: u8, payload: Bytes) -> Result<()> {
        match self {
            // Both return once the message is queued for the connection task.
            Self::Wskit(c) => {
                c.publish_nowait(proto_mqtt::packet::publish(topic, wq(qos), payload))
                    .await?;
            }
            Self::Rumqttc(c) => c.publish_bytes(topic, rq(qos), false, payload).await?,
        }
        Ok(())
    }
}
