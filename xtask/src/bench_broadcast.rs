//! `cargo xtask bench broadcast [--subs 1000,10000] [--msgs 100] [--size 64] [--baseline PATH]
//! [--strace]`: fan-out from one node, next to a plain loop that writes the same bytes.
//!
//! For each subscriber count: a release `wskit serve --threads 1 --no-deflate` (backpressure
//! for slow readers, so nothing is dropped) and one client process holding every connection
//! (ws-backplane's `cluster_load` example, the load client of `cargo xtask bench cluster`):
//! every subscriber joins `/chat`, the publisher sends `--msgs` messages of `--size` bytes as
//! fast as it can. Reported: the time from the first publish to the last subscriber's receipt
//! of the last message, p50/p99 publish-to-receipt (a burst: queueing included), deliveries
//! per second, the server's CPU time per delivery (from /proc, between the first publish and
//! the last receipt) and the server's RSS per subscriber (growth of VmRSS from before the
//! subscribers connected to just before the burst).
//!
//! The reference: the same load client against `broadcast-loop` (wskit-benches' `src/bin`),
//! which accepts the same connections with a minimal handshake and writes each published
//! message, framed once, to every socket in a plain loop (one tokio task on one
//! single-threaded runtime, `write_all` to one socket after the other). The target is
//! `wskit serve`'s time to the last receipt at most twice the loop's; the table gives the
//! ratio wskit / loop for each subscriber count.
//!
//! `--baseline PATH` runs another `wskit` binary (an older build) the same way, right after,
//! and prints the ratios. `--strace` runs each server under `strace -f -c` instead and
//! reports system calls (and write calls) per delivery; its timings are not comparable to
//! untraced runs and are left out. Every process runs under `ulimit -n 65536` (or the hard
//! limit). `WSKIT_BIN=PATH` uses a prebuilt `wskit`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::flags::Args;
use crate::proc::{
    Mark, Proc, cpu_secs, free_port, rss_kib, run_load_client, target_dir, tree, wait_listening,
    with_nofile,
};
use crate::util::{cargo, have, step};

/// Entry point of `cargo xtask bench broadcast`.
pub(crate) fn main(args: &mut Args) -> Result<()> {
    let subs: Vec<u64> = args
        .value("subs")?
        .unwrap_or_else(|| "1000,10000".to_owned())
        .split(',')
        .map(|s| s.trim().parse().with_context(|| format!("--subs: `{s}`")))
        .collect::<Result<_>>()?;
    let msgs = args.number("msgs", 100)?;
    let size = args.number("size", 64)?;
    let baseline = args.value("baseline")?.map(PathBuf::from);
    let strace = args.flag("strace");
    args.finish()?;
    if subs.contains(&0) || msgs == 0 {
        bail!("--subs and --msgs must be at least 1");
    }
    if strace && !have("strace") {
        bail!("`strace` is not on PATH");
    }
    let Bins {
        wskit,
        reference,
        load,
    } = build()?;
    let mut servers = vec![Server::wskit("this build", &wskit)];
    if let Some(b) = baseline {
        servers.push(Server::wskit(&format!("baseline ({})", b.display()), &b));
    }
    servers.push(Server::reference(&reference));
    let mut rows = Vec::new();
    for &n in &subs {
        for server in &servers {
            let label = &server.label;
            eprintln!("==> {label}: {n} subscribers x {msgs} messages of {size} B");
            let run = drive(server, &load, n, msgs, size, strace)
                .with_context(|| format!("{label}, {n} subscribers"))?;
            eprintln!("    {run}");
            rows.push((label.clone(), n, run));
        }
    }
    let table = report(msgs, size, strace, &rows);
    println!("\n{table}");
    let out = target_dir().join("bench");
    fs::create_dir_all(&out)?;
    fs::write(out.join("broadcast.md"), &table)?;
    eprintln!("written to {}", out.join("broadcast.md").display());
    Ok(())
}

/// `bench all`'s area: this build next to the plain loop (the cluster area compares fan-out
/// with Socket.IO), one row per figure and subscriber count, so the page shows how they grow.
pub(crate) fn area(subs: &[u64], msgs: u64, size: u64) -> Result<crate::report::Area> {
    use crate::report::{Area, Better, Row};
    let Bins {
        wskit,
        reference,
        load,
    } = build()?;
    let mut area = Area::new(
        "broadcast",
        "Broadcast to one channel",
        "cargo xtask bench broadcast --subs 1000,10000 --msgs 100 --size 64",
    );
    area.note(format!(
        "One `wskit serve --threads 1 --no-deflate --slow-reader backpressure`, one client \
         process holding every subscriber, a burst of {msgs} messages of {size} B published as \
         fast as the server takes them; times are from the first publish. The peer is the \
         reference `broadcast-loop`: the same connections and load client, each message framed \
         once and written to every socket in a plain loop (one task, one thread). Target: \
         wskit's time to the last receipt at most 2x the loop's (ratio >= 0.5x)."
    ));
    let ours = "wskit serve";
    let peer = "plain loop";
    let (wskit, reference) = (Server::wskit(ours, &wskit), Server::reference(&reference));
    for &n in subs {
        let run = drive(&wskit, &load, n, msgs, size, false)
            .with_context(|| format!("{n} subscribers"))?;
        eprintln!("    {n} subscribers, wskit: {run}");
        let base = drive(&reference, &load, n, msgs, size, false)
            .with_context(|| format!("{n} subscribers, the plain loop"))?;
        eprintln!("    {n} subscribers, plain loop: {base}");
        for (who, r) in [(ours, &run), (peer, &base)] {
            if r.lost > 0.0 {
                area.note(format!(
                    "{n} subscribers: {} deliveries lost ({who})",
                    r.lost
                ));
            }
        }
        area.note(format!(
            "{n} subscribers: wskit / plain loop, time to the last receipt: {:.2}x \
             (target <= 2x).",
            run.secs / base.secs
        ));
        let row = |case: &str, unit: &str, better, a: f64, b: Option<f64>| match b {
            Some(b) => Row::vs(
                format!("{n} subs: {case}"),
                unit,
                better,
                (ours, a),
                (peer, b),
            ),
            None => Row::alone(format!("{n} subs: {case}"), unit, better, (ours, a)),
        };
        area.rows.push(row(
            "publish to last receipt",
            "s",
            Better::LowerIsBetter,
            run.secs,
            Some(base.secs),
        ));
        area.rows.push(row(
            "deliveries",
            "1/s",
            Better::HigherIsBetter,
            run.per_sec,
            Some(base.per_sec),
        ));
        area.rows.push(row(
            "p99 latency",
            "ms",
            Better::LowerIsBetter,
            run.p99,
            Some(base.p99),
        ));
        if let Some(cpu) = run.cpu_us {
            area.rows.push(row(
                "server CPU per delivery",
                "us",
                Better::LowerIsBetter,
                cpu,
                base.cpu_us,
            ));
        }
        if let Some(rss) = run.rss_per_sub {
            area.rows.push(row(
                "server memory per subscriber",
                "B",
                Better::LowerIsBetter,
                rss,
                base.rss_per_sub,
            ));
        }
    }
    Ok(area)
}

/// The release binaries a run needs.
struct Bins {
    wskit: PathBuf,
    /// wskit-benches' `broadcast-loop`.
    reference: PathBuf,
    /// ws-backplane's example `cluster_load`.
    load: PathBuf,
}

/// Release builds of `wskit` (or `WSKIT_BIN`), of the plain-loop reference and of the load
/// client.
fn build() -> Result<Bins> {
    let release = target_dir().join("release");
    let wskit = crate::proc::release_wskit()?;
    step(
        "build the plain-loop reference (release)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "wskit-benches",
            "--bin",
            "broadcast-loop",
        ]),
    )?;
    step(
        "build the load client (release)",
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
        reference: release.join("broadcast-loop"),
        load: release.join("examples/cluster_load"),
    })
}

/// A server under test: a program, its arguments before `--listen 127.0.0.1:PORT`, and the
/// label of its rows.
struct Server {
    label: String,
    program: PathBuf,
    args: Vec<String>,
}

impl Server {
    /// `wskit serve` on one thread, without compression, backpressure for slow readers.
    fn wskit(label: &str, bin: &Path) -> Self {
        Self {
            label: label.to_owned(),
            program: bin.to_owned(),
            args: [
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
            .to_vec(),
        }
    }

    /// The plain-loop reference.
    fn reference(bin: &Path) -> Self {
        Self {
            label: "plain loop".to_owned(),
            program: bin.to_owned(),
            args: Vec::new(),
        }
    }
}

/// One run's figures.
struct Run {
    /// First publish to the last receipt, seconds.
    secs: f64,
    per_sec: f64,
    p50: f64,
    p99: f64,
    lost: f64,
    /// Server CPU microseconds per delivery.
    cpu_us: Option<f64>,
    /// Server RSS growth per subscriber, bytes.
    rss_per_sub: Option<f64>,
    /// System calls and write calls (write, writev, sendto, sendmsg) per delivery (`--strace`).
    syscalls: Option<(f64, f64)>,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "last receipt after {:.3} s, {:.0} deliveries/s, p50 {:.1} ms, p99 {:.1} ms, lost {}, \
             CPU {} per delivery, RSS {} per subscriber",
            self.secs,
            self.per_sec,
            self.p50,
            self.p99,
            self.lost,
            opt(self.cpu_us, "µs", 2),
            opt(self.rss_per_sub, "B", 0),
        )?;
        if let Some((all, writes)) = self.syscalls {
            write!(f, ", {all:.3} syscalls and {writes:.3} writes per delivery")?;
        }
        Ok(())
    }
}

fn opt(v: Option<f64>, unit: &str, digits: usize) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.digits$} {unit}"))
}

/// Starts the server (under strace when asked), runs the load client against it.
fn drive(
    server: &Server,
    load: &Path,
    subs: u64,
    msgs: u64,
    size: u64,
    strace: bool,
) -> Result<Run> {
    let port = free_port()?;
    let mut args = server.args.clone();
    args.push("--listen".to_owned());
    args.push(format!("127.0.0.1:{port}"));
    let counts = target_dir().join("bench/broadcast-strace.txt");
    let (program, args) = if strace {
        fs::create_dir_all(counts.parent().expect("a parent"))?;
        let _ = fs::remove_file(&counts);
        let mut a: Vec<String> = ["-f", "-c", "-o"].map(str::to_owned).to_vec();
        a.push(counts.to_string_lossy().into_owned());
        a.push(server.program.to_string_lossy().into_owned());
        a.extend(args);
        (PathBuf::from("strace"), a)
    } else {
        (server.program.clone(), args)
    };
    let mut proc = Proc::new(
        with_nofile(&program, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", server.program.display()))?,
    );
    if let Some(status) = wait_listening(&mut proc, port, Duration::from_secs(20))? {
        bail!("{} exited at start ({status})", server.label);
    }
    // The server itself: under strace, its one child.
    let pid = if strace {
        *tree(proc.pid())
            .get(1)
            .context("no traced server process")?
    } else {
        proc.pid()
    };
    let rss_before = rss_kib(pid)?;

    let largs = [
        "wskit".to_owned(),
        format!("ws://127.0.0.1:{port}"),
        subs.to_string(),
        msgs.to_string(),
        size.to_string(),
    ];
    let mut cpu = [None, None];
    let mut rss_start = None;
    let result = run_load_client(load, &largs, Duration::from_secs(900), |mark| {
        cpu[usize::from(mark == Mark::Result)] = cpu_secs(pid);
        if mark == Mark::Start {
            rss_start = rss_kib(pid).ok();
        }
    })?;
    let deliveries = result.get("deliveries")?;
    let syscalls = if strace {
        // Killing the traced server makes strace write its summary and exit.
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let _ = proc.child.wait();
        Some(strace_counts(&fs::read_to_string(&counts)?, deliveries))
    } else {
        None
    };
    Ok(Run {
        secs: result.get("secs")?,
        per_sec: result.get("deliveries_per_sec")?,
        p50: result.get("p50_ms")?,
        p99: result.get("p99_ms")?,
        lost: result.get("lost")?,
        cpu_us: cpu[0]
            .zip(cpu[1])
            .filter(|_| deliveries > 0.0 && !strace)
            .map(|(a, b)| (b - a) * 1e6 / deliveries),
        rss_per_sub: rss_start.map(|r| (r.saturating_sub(rss_before) * 1024) as f64 / subs as f64),
        syscalls,
    })
}

/// System calls and write calls per delivery from a `strace -c` summary (the whole run,
/// connection set-up included).
fn strace_counts(summary: &str, deliveries: f64) -> (f64, f64) {
    let mut total = 0.0;
    let mut writes = 0.0;
    for line in summary.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        let (Some(name), Some(calls)) = (words.last(), words.get(3)) else {
            continue;
        };
        let Ok(calls) = calls.parse::<f64>() else {
            continue;
        };
        if *name == "total" {
            total = calls;
        } else if matches!(*name, "write" | "writev" | "sendto" | "sendmsg") {
            writes += calls;
        }
    }
    let per = |n: f64| {
        if deliveries > 0.0 {
            n / deliveries
        } else {
            0.0
        }
    };
    (per(total), per(writes))
}

fn report(msgs: u64, size: u64, strace: bool, rows: &[(String, u64, Run)]) -> String {
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut t = format!(
        "Broadcast: one `wskit serve --threads 1` node (and the plain-loop reference \
         `broadcast-loop`), one client process holding every subscriber, {msgs} messages of \
         {size} B published as fast as possible (a burst: latencies include queueing). {cores} cores; load average before the table: {}.{}\n\n\
         | server | subscribers | publish to last receipt s | deliveries/s | p50 ms | p99 ms | lost | CPU per delivery | RSS per subscriber | syscalls / writes per delivery |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        if strace {
            " Servers ran under `strace -f -c`: timings are the traced ones."
        } else {
            ""
        }
    );
    for (label, n, r) in rows {
        t += &format!(
            "| {label} | {n} | {:.3} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} |\n",
            r.secs,
            r.per_sec,
            r.p50,
            r.p99,
            r.lost,
            opt(r.cpu_us, "µs", 2),
            opt(r.rss_per_sub, "B", 0),
            r.syscalls
                .map_or_else(|| "-".to_owned(), |(a, w)| format!("{a:.3} / {w:.3}")),
        );
    }
    // Ratios: this build against the baseline and the plain loop, for each subscriber count.
    let mut ratios = String::new();
    for (label, n, other) in rows.iter().filter(|(l, ..)| l != "this build") {
        if let Some((_, _, this)) = rows.iter().find(|(l, m, _)| l == "this build" && m == n) {
            let cpu = this
                .cpu_us
                .zip(other.cpu_us)
                .map_or_else(|| "n/a".to_owned(), |(a, b)| format!("{:.2}x", a / b));
            ratios += &format!(
                "| {label} | {n} | {:.2}x | {:.2}x | {:.2}x | {cpu} |\n",
                this.secs / other.secs,
                this.per_sec / other.per_sec,
                this.p99 / other.p99,
            );
        }
    }
    if !ratios.is_empty() {
        t += "\nThis build / the other (the target against the plain loop: time to the last receipt \
              at most 2x):\n\n\
              | other | subscribers | time to last receipt | deliveries/s | p99 | CPU per delivery |\n\
              |---|---:|---:|---:|---:|---:|\n";
        t += &ratios;
    }
    t
}
