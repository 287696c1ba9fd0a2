//! `cargo xtask bench broadcast [--subs 1000,10000] [--msgs 100] [--size 64] [--baseline PATH]
//! [--strace]`: fan-out from one node.
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
//! `--baseline PATH` runs another `wskit` binary (an older build) the same way, right after,
//! and prints the ratios. `--strace` runs each server under `strace -f -c` instead and
//! reports system calls (and write calls) per delivery; its timings are not comparable to
//! untraced runs and are left out. Every process runs under `ulimit -n 65536` (or the hard
//! limit). `WSKIT_BIN=PATH` uses a prebuilt `wskit`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::flags::Args;
use crate::proc::{
    Proc, cpu_secs, field, free_port, lines, rss_kib, target_dir, tree, wait_listening, with_nofile,
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
    let (wskit, load) = build()?;
    let mut bins = vec![("this build".to_owned(), wskit)];
    if let Some(b) = baseline {
        bins.push((format!("baseline ({})", b.display()), b));
    }
    let mut rows = Vec::new();
    for &n in &subs {
        for (label, bin) in &bins {
            eprintln!("==> {label}: {n} subscribers x {msgs} messages of {size} B");
            let run = drive(bin, &load, n, msgs, size, strace)
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

/// `bench all`'s area: this build alone (no peer: the cluster area compares fan-out with
/// Socket.IO), one row per figure and subscriber count, so the page shows how they grow.
pub(crate) fn area(subs: &[u64], msgs: u64, size: u64) -> Result<crate::report::Area> {
    use crate::report::{Area, Better, Row};
    let (wskit, load) = build()?;
    let mut area = Area::new(
        "broadcast",
        "Broadcast to one channel",
        "cargo xtask bench broadcast --subs 1000,10000 --msgs 100 --size 64",
    );
    area.note(format!(
        "One `wskit serve --threads 1 --no-deflate --slow-reader backpressure`, one client \
         process holding every subscriber, a burst of {msgs} messages of {size} B published as \
         fast as the server takes them; times are from the first publish."
    ));
    let ours = "wskit serve";
    for &n in subs {
        let run = drive(&wskit, &load, n, msgs, size, false)
            .with_context(|| format!("{n} subscribers"))?;
        eprintln!("    {n} subscribers: {run}");
        if run.lost > 0.0 {
            area.note(format!("{n} subscribers: {} deliveries lost", run.lost));
        }
        area.rows.push(Row::alone(
            format!("{n} subs: publish to last receipt"),
            "s",
            Better::LowerIsBetter,
            (ours, run.secs),
        ));
        area.rows.push(Row::alone(
            format!("{n} subs: deliveries"),
            "1/s",
            Better::HigherIsBetter,
            (ours, run.per_sec),
        ));
        area.rows.push(Row::alone(
            format!("{n} subs: p99 latency"),
            "ms",
            Better::LowerIsBetter,
            (ours, run.p99),
        ));
        if let Some(cpu) = run.cpu_us {
            area.rows.push(Row::alone(
                format!("{n} subs: server CPU per delivery"),
                "us",
                Better::LowerIsBetter,
                (ours, cpu),
            ));
        }
        if let Some(rss) = run.rss_per_sub {
            area.rows.push(Row::alone(
                format!("{n} subs: server memory per subscriber"),
                "B",
                Better::LowerIsBetter,
                (ours, rss),
            ));
        }
    }
    Ok(area)
}

/// Release builds of `wskit` (or `WSKIT_BIN`) and of the load client.
fn build() -> Result<(PathBuf, PathBuf)> {
    let release = target_dir().join("release");
    let wskit = match std::env::var_os("WSKIT_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            step(
                "build wskit (release)",
                cargo().args(["build", "--release", "-p", "wskit"]),
            )?;
            release.join("wskit")
        }
    };
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
    Ok((wskit, release.join("examples/cluster_load")))
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
fn drive(wskit: &Path, load: &Path, subs: u64, msgs: u64, size: u64, strace: bool) -> Result<Run> {
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
        "--listen",
    ]
    .map(str::to_owned)
    .to_vec();
    args.push(format!("127.0.0.1:{port}"));
    let counts = target_dir().join("bench/broadcast-strace.txt");
    let (program, args) = if strace {
        fs::create_dir_all(counts.parent().expect("a parent"))?;
        let _ = fs::remove_file(&counts);
        let mut a: Vec<String> = ["-f", "-c", "-o"].map(str::to_owned).to_vec();
        a.push(counts.to_string_lossy().into_owned());
        a.push(wskit.to_string_lossy().into_owned());
        a.extend(args);
        (PathBuf::from("strace"), a)
    } else {
        (wskit.to_owned(), args)
    };
    let mut server = Proc::new(
        with_nofile(&program, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting wskit serve")?,
    );
    if let Some(status) = wait_listening(&mut server, port, Duration::from_secs(20))? {
        bail!("wskit serve exited at start ({status})");
    }
    // The server itself: under strace, its one child.
    let pid = if strace {
        *tree(server.pid())
            .get(1)
            .context("no traced server process")?
    } else {
        server.pid()
    };
    let rss_before = rss_kib(pid)?;

    let url = format!("ws://127.0.0.1:{port}");
    let largs = [
        "wskit".to_owned(),
        url,
        subs.to_string(),
        msgs.to_string(),
        size.to_string(),
    ];
    let mut client = Proc::new(
        with_nofile(load, &largs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the load client")?,
    );
    let out = lines(client.child.stdout.take().context("client stdout")?);
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut cpu_start = None;
    let mut rss_start = None;
    let result = loop {
        match out.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.starts_with("start:") => {
                cpu_start = cpu_secs(pid);
                rss_start = rss_kib(pid).ok();
            }
            Ok(l) if l.starts_with("result:") => break l,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(e) => bail!("the load client ended without a result ({e:?})"),
        }
    };
    let cpu_end = cpu_secs(pid);
    let status = client.child.wait()?;
    if !status.success() {
        bail!("the load client failed ({status})");
    }
    let get = |k: &str| field(&result, k).with_context(|| format!("no {k} in `{result}`"));
    let deliveries = get("deliveries")?;
    let syscalls = if strace {
        // Killing the traced server makes strace write its summary and exit.
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        let _ = server.child.wait();
        Some(strace_counts(&fs::read_to_string(&counts)?, deliveries))
    } else {
        None
    };
    Ok(Run {
        secs: get("secs")?,
        per_sec: get("deliveries_per_sec")?,
        p50: get("p50_ms")?,
        p99: get("p99_ms")?,
        lost: get("lost")?,
        cpu_us: cpu_start
            .zip(cpu_end)
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
        "Broadcast: one `wskit serve --threads 1` node, one client process holding every \
         subscriber, {msgs} messages of {size} B published as fast as possible (a burst: \
         latencies include queueing). {cores} cores; load average before the table: {}.{}\n\n\
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
    // Ratios: this build against the baseline, for each subscriber count.
    let mut ratios = String::new();
    for (label, n, base) in rows.iter().filter(|(l, ..)| l.starts_with("baseline")) {
        let _ = label;
        if let Some((_, _, this)) = rows.iter().find(|(l, m, _)| l == "this build" && m == n) {
            let cpu = this
                .cpu_us
                .zip(base.cpu_us)
                .map_or_else(|| "n/a".to_owned(), |(a, b)| format!("{:.2}x", a / b));
            ratios += &format!(
                "| {n} | {:.2}x | {:.2}x | {:.2}x | {cpu} |\n",
                this.secs / base.secs,
                this.per_sec / base.per_sec,
                this.p99 / base.p99,
            );
        }
    }
    if !ratios.is_empty() {
        t += "\n| this build / baseline | time to last receipt | deliveries/s | p99 | CPU per delivery |\n\
              |---:|---:|---:|---:|---:|\n";
        t += &ratios;
    }
    t
}
