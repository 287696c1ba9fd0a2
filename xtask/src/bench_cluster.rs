//! `cargo xtask bench cluster [--subscribers 10000] [--messages 100]`: scale-out, measured.
//!
//! Starts its own redis-server and nats-server on free loopback ports, then:
//!
//! 1. three `wskit serve --backplane URL --threads 1` nodes on Redis, then on NATS; the load
//!    client (ws-backplane's `cluster_load` example, release build) spreads the subscribers
//!    over the three nodes' `/chat` and publishes `--messages` timestamped messages on node 0
//!    as fast as it can;
//! 2. the same load against three Socket.IO 4 nodes (Node.js, @socket.io/redis-adapter, the
//!    pinned packages of xtask/bench/cluster, installed with `npm ci` when node_modules is
//!    missing) on the same Redis, driven by the same client speaking Engine.IO 4;
//! 3. one node without and with an idle `--backplane` (Redis, no other node): echo
//!    (`wskit bench`, 100 connections x 20 B, 5 s) and the broadcast load above with up to
//!    1,000 subscribers.
//!
//! For each run: deliveries per second, publish-to-receipt p50/p99 (a burst: the figures
//! include queueing), messages lost, and the servers' CPU time per delivery (every node
//! process, read from /proc between the first message and the last delivery; the engine's
//! own CPU is not included). Prints one Markdown table with the ratios and writes it to
//! target/bench/cluster.md. Every process runs under `ulimit -n 65536` (or the hard limit).
//! One run on a shared machine: figures, not assertions.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::flags::Args;
use crate::proc::{
    Mark, Proc, cpu_secs, field, free_port, lines, run_load_client, target_dir, wait_listening,
    with_nofile,
};
use crate::report::{Area, Better, Row};
use crate::util::{cargo, have, root, step};

/// Entry point of `cargo xtask bench cluster`.
pub(crate) fn main(args: &mut Args) -> Result<()> {
    let subs = args.number("subscribers", 10_000)?;
    let msgs = args.number("messages", 100)?;
    args.finish()?;
    run(subs, msgs).map(drop)
}

/// Runs the benchmark, prints and saves its table, returns the figures for the page.
pub(crate) fn run(subs: u64, msgs: u64) -> Result<Vec<Area>> {
    if subs == 0 || msgs == 0 {
        bail!("--subscribers and --messages must be at least 1");
    }
    for program in ["redis-server", "nats-server", "node", "npm"] {
        if !have(program) {
            bail!("`{program}` is not on PATH; install it (see PEERS.md) and run again");
        }
    }
    let bins = build()?;
    let peer_dir = root().join("xtask/bench/cluster");
    if !peer_dir.join("node_modules").is_dir() {
        step(
            "npm ci (Socket.IO peer)",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&peer_dir),
        )?;
    }

    let redis_port = free_port()?;
    let mut redis = Proc::new(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .context("starting redis-server")?,
    );
    ensure_up(&mut redis, redis_port, "redis-server")?;
    let nats_port = free_port()?;
    let mut nats = Proc::new(
        Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &nats_port.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .context("starting nats-server")?,
    );
    ensure_up(&mut nats, nats_port, "nats-server")?;
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let nats_url = format!("nats://127.0.0.1:{nats_port}");

    let load = |mode: &str, nodes: &[(Proc, u16)], subs: u64| -> Result<Run> {
        let urls: Vec<String> = nodes
            .iter()
            .map(|(_, port)| format!("ws://127.0.0.1:{port}"))
            .collect();
        let pids: Vec<u32> = nodes.iter().map(|(p, _)| p.pid()).collect();
        drive(&bins.load, mode, &urls.join(","), subs, msgs, &pids)
    };

    let mut rows = Vec::new();
    for (engine, url) in [("Redis", &redis_url), ("NATS", &nats_url)] {
        eprintln!("==> wskit, 3 nodes on {engine}, {subs} subscribers x {msgs} messages");
        let nodes = (0..3)
            .map(|i| wskit_node(&bins.wskit, Some(url), i))
            .collect::<Result<Vec<_>>>()?;
        let run = load("wskit", &nodes, subs).with_context(|| format!("wskit on {engine}"))?;
        eprintln!("    {run}");
        rows.push((format!("wskit serve x3, {engine}"), run));
    }
    eprintln!("==> Socket.IO, 3 nodes on Redis, {subs} subscribers x {msgs} messages");
    let sio = (0..3)
        .map(|_| socketio_node(&peer_dir, &redis_url))
        .collect::<Result<Vec<_>>>()?;
    let sio_run = load("socketio", &sio, subs).context("Socket.IO")?;
    eprintln!("    {sio_run}");
    drop(sio);
    rows.push(("Socket.IO 4 x3, redis-adapter".to_owned(), sio_run));

    // Single node: without and with an idle backplane.
    let local_subs = subs.min(1000);
    let mut single = Vec::new();
    for backplane in [None, Some(&redis_url)] {
        let label = if backplane.is_some() {
            "with --backplane redis"
        } else {
            "no backplane"
        };
        eprintln!("==> one node, {label}: echo, then broadcast to {local_subs}");
        let node = wskit_node(&bins.wskit, backplane.map(String::as_str), 9)?;
        let echo = echo(&bins.wskit, &node)?;
        eprintln!("    echo {:.0} msgs/s", echo.0);
        let bcast = load("wskit", std::slice::from_ref(&node), local_subs)?;
        eprintln!("    broadcast {bcast}");
        single.push((label, echo, bcast));
    }
    drop(redis);
    drop(nats);

    let table = report(subs, msgs, &rows, &single);
    println!("\n{table}");
    let out = target_dir().join("bench");
    fs::create_dir_all(&out)?;
    fs::write(out.join("cluster.md"), &table)?;
    eprintln!("written to {}", out.join("cluster.md").display());
    Ok(areas(subs, msgs, &rows, &single))
}

/// The figures as the benchmark page's areas: the fan-out against Socket.IO, and one node's
/// cost of an idle backplane.
fn areas(subs: u64, msgs: u64, rows: &[(String, Run)], single: &[Single<'_>]) -> Vec<Area> {
    let reproduce = format!("cargo xtask bench cluster --subscribers {subs} --messages {msgs}");
    let mut fanout = Area::new("cluster", "Cluster fan-out", &reproduce);
    fanout.note(format!(
        "One publisher, {subs} subscribers spread over 3 nodes, {msgs} messages sent as fast as \
         possible (a burst: latencies include queueing): three `wskit serve --backplane` nodes \
         on Redis and on NATS against three Socket.IO 4 nodes with the Redis adapter, the same \
         load client. Server CPU: every node process, not the engine."
    ));
    if let Some((sio_name, sio)) = rows.iter().find(|(n, _)| n.starts_with("Socket.IO")) {
        let peer = sio_name.as_str();
        for (name, r) in rows.iter().filter(|(n, _)| !n.starts_with("Socket.IO")) {
            let engine = name.rsplit(", ").next().unwrap_or(name);
            let ours = name.as_str();
            fanout.rows.push(Row::vs(
                format!("{engine}: deliveries"),
                "deliveries/s",
                Better::HigherIsBetter,
                (ours, r.per_sec),
                (peer, sio.per_sec),
            ));
            fanout.rows.push(Row::vs(
                format!("{engine}: p99 publish to receipt"),
                "ms",
                Better::LowerIsBetter,
                (ours, r.p99),
                (peer, sio.p99),
            ));
            if let (Some(a), Some(b)) = (r.cpu_us, sio.cpu_us) {
                fanout.rows.push(Row::vs(
                    format!("{engine}: server CPU"),
                    "µs/delivery",
                    Better::LowerIsBetter,
                    (ours, a),
                    (peer, b),
                ));
            }
        }
    }
    let mut backplane = Area::new("backplane", "One node with an idle backplane", &reproduce);
    backplane.note(
        "One `wskit serve` node with an idle `--backplane` (Redis, no other node) against the \
         same node without one: echo (`wskit bench`, 100 connections x 20 B, 5 s) and the \
         broadcast load with up to 1,000 subscribers. Our own overhead, not a peer: the target \
         is at most 3% slower (ratio >= 0.97x).",
    );
    if let [(_, (e0, c0), b0), (with, (e1, c1), b1)] = single {
        let without = "no backplane";
        backplane.rows.push(Row::vs(
            "echo",
            "msgs/s",
            Better::HigherIsBetter,
            (with, *e1),
            (without, *e0),
        ));
        if let (Some(c0), Some(c1)) = (c0, c1) {
            backplane.rows.push(Row::vs(
                "echo, server CPU",
                "µs/msg",
                Better::LowerIsBetter,
                (with, *c1),
                (without, *c0),
            ));
        }
        backplane.rows.push(Row::vs(
            "broadcast",
            "deliveries/s",
            Better::HigherIsBetter,
            (with, b1.per_sec),
            (without, b0.per_sec),
        ));
        backplane.rows.push(Row::vs(
            "broadcast p99",
            "ms",
            Better::LowerIsBetter,
            (with, b1.p99),
            (without, b0.p99),
        ));
    }
    vec![fanout, backplane]
}

struct Bins {
    wskit: PathBuf,
    load: PathBuf,
}

/// Release builds of `wskit` (or `WSKIT_BIN`) and of the load client.
fn build() -> Result<Bins> {
    let release = target_dir().join("release");
    let wskit = crate::proc::release_wskit()?;
    step(
        "build the cluster load client (release)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "ws-backplane",
            "--example",
            "cluster_load",
        ]),
    )?;
    Ok(Bins {
        wskit,
        load: release.join("examples/cluster_load"),
    })
}

fn ensure_up(proc: &mut Proc, port: u16, name: &str) -> Result<()> {
    if let Some(status) = wait_listening(proc, port, Duration::from_secs(20))? {
        bail!("{name} exited at start ({status})");
    }
    Ok(())
}

/// `wskit serve` on one thread, backpressure for slow readers (no message dropped), no
/// deflate, and `--backplane URL` when given.
fn wskit_node(wskit: &Path, backplane: Option<&str>, i: usize) -> Result<(Proc, u16)> {
    let port = free_port()?;
    let mut args: Vec<String> = [
        "serve",
        "--threads",
        "1",
        "--no-deflate",
        "--slow-reader",
        "backpressure",
        "--send-queue",
        "4096",
        "--log",
        "warn",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(["--listen".into(), format!("127.0.0.1:{port}")]);
    if let Some(url) = backplane {
        args.extend(["--backplane".into(), url.into()]);
        args.extend(["--node-id".into(), format!("bench-{i}")]);
    }
    let mut p = Proc::new(
        with_nofile(wskit, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting wskit serve")?,
    );
    ensure_up(&mut p, port, "wskit serve")?;
    Ok((p, port))
}

/// One Socket.IO node (`node server.mjs PORT REDIS_URL`), ready once it prints `listening`.
fn socketio_node(dir: &Path, redis_url: &str) -> Result<(Proc, u16)> {
    let port = free_port()?;
    let node = PathBuf::from("node");
    let mut p = Proc::new(
        with_nofile(
            &node,
            &[
                dir.join("server.mjs").to_string_lossy().into_owned(),
                port.to_string(),
                redis_url.to_owned(),
            ],
        )
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the Socket.IO node")?,
    );
    let out = lines(p.child.stdout.take().context("node stdout")?);
    match out.recv_timeout(Duration::from_secs(30)) {
        Ok(l) if l.starts_with("listening") => {}
        other => bail!("the Socket.IO node did not start: {other:?}"),
    }
    ensure_up(&mut p, port, "Socket.IO node")?;
    Ok((p, port))
}

/// One load run's figures.
struct Run {
    per_sec: f64,
    p50: f64,
    p99: f64,
    lost: f64,
    /// Server CPU microseconds per delivery (every node process).
    cpu_us: Option<f64>,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} deliveries/s, p50 {:.1} ms, p99 {:.1} ms, lost {}, server CPU {} per delivery",
            self.per_sec,
            self.p50,
            self.p99,
            self.lost,
            us(self.cpu_us)
        )
    }
}

fn us(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2} µs"))
}

fn cpu_sum(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|&p| cpu_secs(p)).sum()
}

/// Runs the load client; the servers' CPU is read at its `start:` and `result:` lines.
fn drive(load: &Path, mode: &str, urls: &str, subs: u64, msgs: u64, pids: &[u32]) -> Result<Run> {
    let args = [mode, urls, &subs.to_string(), &msgs.to_string()].map(|s| s.to_owned());
    let mut cpu = [None, None];
    let result = run_load_client(load, &args, Duration::from_secs(900), |mark| {
        cpu[usize::from(mark == Mark::Result)] = cpu_sum(pids);
    })?;
    let deliveries = result.get("deliveries")?;
    Ok(Run {
        per_sec: result.get("deliveries_per_sec")?,
        p50: result.get("p50_ms")?,
        p99: result.get("p99_ms")?,
        lost: result.get("lost")?,
        cpu_us: cpu[0]
            .zip(cpu[1])
            .filter(|_| deliveries > 0.0)
            .map(|(a, b)| (b - a) * 1e6 / deliveries),
    })
}

/// Echo messages per second against one node (`wskit bench`, 100 x 20 B for 5 s) and the
/// node's CPU microseconds per message.
fn echo(wskit: &Path, (node, port): &(Proc, u16)) -> Result<(f64, Option<f64>)> {
    let args: Vec<String> = [
        "bench",
        &format!("ws://127.0.0.1:{port}/echo"),
        "--conns",
        "100",
        "--size",
        "20",
        "--secs",
        "5",
        "--interval",
        "5",
        "--threads",
        "1",
    ]
    .map(str::to_owned)
    .to_vec();
    let before = cpu_secs(node.pid());
    let o = with_nofile(wskit, &args)
        .stdin(Stdio::null())
        .output()
        .context("starting wskit bench")?;
    let after = cpu_secs(node.pid());
    let text = String::from_utf8_lossy(&o.stdout);
    let summary = text
        .lines()
        .find(|l| l.starts_with("summary:"))
        .with_context(|| format!("wskit bench printed no summary ({})", o.status))?;
    let per_sec = field(summary, "msgs_per_sec").context("msgs_per_sec")?;
    let messages = field(summary, "messages").unwrap_or(0.0);
    let cpu = before
        .zip(after)
        .filter(|_| messages > 0.0)
        .map(|(a, b)| (b - a) * 1e6 / messages);
    Ok((per_sec, cpu))
}

/// Percent change of `with` relative to `without` (negative: slower).
fn change(without: f64, with: f64) -> String {
    format!("{:+.1}%", (with / without - 1.0) * 100.0)
}

type Single<'a> = (&'a str, (f64, Option<f64>), Run);

fn report(subs: u64, msgs: u64, rows: &[(String, Run)], single: &[Single<'_>]) -> String {
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut t = format!(
        "Fan-out: one publisher, {subs} subscribers over 3 nodes, {msgs} messages sent as fast \
         as possible (a burst: latencies include queueing). {cores} cores; load average before \
         the table: {}. Server CPU: all node processes, not the engine.\n\n\
         | run | deliveries/s | p50 ms | p99 ms | lost | server CPU per delivery |\n\
         |---|---:|---:|---:|---:|---:|\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (name, r) in rows {
        t += &format!(
            "| {name} | {:.0} | {:.1} | {:.1} | {} | {} |\n",
            r.per_sec,
            r.p50,
            r.p99,
            r.lost,
            us(r.cpu_us)
        );
    }
    if let Some((_, sio)) = rows.iter().find(|(n, _)| n.starts_with("Socket.IO")) {
        t += "\n| ratio to Socket.IO | deliveries/s (target >= 3x) | p99 (target <= 1x) | CPU per delivery |\n|---|---:|---:|---:|\n";
        for (name, r) in rows.iter().filter(|(n, _)| !n.starts_with("Socket.IO")) {
            let cpu = r
                .cpu_us
                .zip(sio.cpu_us)
                .map_or_else(|| "n/a".to_owned(), |(a, b)| format!("{:.2}x", a / b));
            t += &format!(
                "| {name} | {:.2}x | {:.2}x | {cpu} |\n",
                r.per_sec / sio.per_sec,
                r.p99 / sio.p99
            );
        }
    }
    t += "\nOne node, idle backplane (target: <= 3% slower)\n\n\
          | node | echo msgs/s | echo CPU/msg | broadcast deliveries/s | broadcast p99 ms | broadcast CPU/delivery |\n\
          |---|---:|---:|---:|---:|---:|\n";
    for (label, (echo, echo_cpu), b) in single {
        t += &format!(
            "| {label} | {echo:.0} | {} | {:.0} | {:.1} | {} |\n",
            us(*echo_cpu),
            b.per_sec,
            b.p99,
            us(b.cpu_us)
        );
    }
    if let [(_, (e0, _), b0), (_, (e1, _), b1)] = single {
        t += &format!(
            "| change with the backplane | {} | | {} | | |\n",
            change(*e0, *e1),
            change(b0.per_sec, b1.per_sec)
        );
    }
    t
}
