//! `cargo xtask bench turn`: `wskit turn` against coturn's `turnserver`, in one run, on the same
//! clients and the same echo peer (coturn's `turnutils_peer`).
//!
//! Per server:
//! - paced traffic from coturn's own `turnutils_uclient` (`-m 50 -n 2000 -l 200 -c -z 0`): round
//!   trips per second and loss, and the server's CPU time per round trip. uclient paces its
//!   sends, so its rate is the same for any server that keeps up: the CPU figure is the one
//!   that tells the servers apart;
//! - relaying capacity: stun-turn's example `turn_load rtt` keeps 8 messages of 200 bytes in
//!   flight on each of 64 channels for 5 s (round trips per second, server CPU per round trip);
//! - Allocate rate: `turn_load alloc`, 2000 allocations 64 at a time, each through the whole
//!   401 / nonce / retry exchange;
//! - resident memory per allocation: `turn_load hold` keeps 10,000 allocations open; the
//!   figure is the growth of the server's VmRSS divided by their number.
//!
//! Knobs: `TURN_BENCH_SESSIONS` (50), `TURN_BENCH_MESSAGES` (2000) for uclient;
//! `TURN_BENCH_LOAD_SECS` (5), `TURN_BENCH_ALLOCS` (10000), `TURN_BENCH_ALLOC_RATE` (2000);
//! `WSKIT_BIN` (a prebuilt `wskit` instead of `cargo build --release -p wskit`).

use std::fs;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::report::{Area, Better, Row as ReportRow};

/// Kills the child when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn free_port() -> Result<u16> {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0")?;
        let p = u.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return Ok(p);
        }
    }
}

/// Waits until a STUN Binding request to `port` gets an answer.
fn wait_stun(port: u16) -> Result<()> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    s.set_read_timeout(Some(Duration::from_millis(200)))?;
    // Binding request: type 0x0001, length 0, magic cookie, transaction id.
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(b"wskit-bench!");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        s.send_to(&req, ("127.0.0.1", port))?;
        let mut buf = [0u8; 1500];
        if s.recv_from(&mut buf).is_ok() {
            return Ok(());
        }
    }
    bail!("no STUN answer on port {port}")
}

fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are 12 and 13 after the command name.
    let ut: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let st: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(ut + st)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

struct Traffic {
    sent: u64,
    received: u64,
    lost: String,
    secs: f64,
    cpu_secs: f64,
}

fn uclient(port: u16, peer: u16, extra: &[&str]) -> Command {
    let mut c = Command::new("turnutils_uclient");
    c.args([
        "-u",
        "alice",
        "-w",
        "s3cret",
        "-p",
        &port.to_string(),
        "-e",
        "127.0.0.1",
    ])
    .args(["-r", &peer.to_string(), "-X", "-c"])
    .args(extra)
    .stdin(Stdio::null());
    c
}

fn traffic(pid: u32, port: u16, peer: u16, sessions: u64, messages: u64) -> Result<Traffic> {
    let tck = clock_ticks_per_sec() as f64;
    let c0 = cpu_ticks(pid)?;
    let t0 = Instant::now();
    let (m, n) = (sessions.to_string(), messages.to_string());
    let out = uclient(
        port,
        peer,
        &["-m", &m, "-n", &n, "-l", "200", "-z", "0", "127.0.0.1"],
    )
    .output()
    .context("turnutils_uclient")?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu_secs = (cpu_ticks(pid)? - c0) as f64 / tck;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut t = Traffic {
        sent: 0,
        received: 0,
        lost: "?".into(),
        secs,
        cpu_secs,
    };
    for line in text.lines() {
        if let Some(rest) = line.split("start_mclient: tot_send_msgs=").nth(1) {
            let mut it = rest.split(", tot_recv_msgs=");
            t.sent = it.next().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            t.received = it.next().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        }
        if let Some(rest) = line.split("Total lost packets ").nth(1) {
            t.lost = rest.split(',').next().unwrap_or("?").trim().to_string();
        }
    }
    if t.sent == 0 {
        bail!("uclient sent nothing against port {port}:\n{text}");
    }
    Ok(t)
}

/// `program` run through `sh` with the open-file limit raised to the hard limit (10,000
/// allocations need as many sockets); `exec` keeps the pid the program's.
fn fd_limited(program: &str) -> Command {
    let mut c = Command::new("sh");
    c.args([
        "-c",
        "ulimit -n $(ulimit -Hn) 2>/dev/null; exec \"$0\" \"$@\"",
        program,
    ]);
    c
}

/// Runs `turn_load ARGS` with the file limit raised to the hard limit.
fn turn_load(load: &std::path::Path, args: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!(
            "ulimit -n $(ulimit -Hn) 2>/dev/null; exec {} {args}",
            load.display()
        ))
        .stdin(Stdio::null());
    c
}

/// The last line of `out` that starts with `prefix`, as text after it.
fn line_after(out: &std::process::Output, prefix: &str) -> Result<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix(prefix))
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "turn_load printed no {prefix:?} line: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Relaying capacity: (round trips/s, server CPU seconds per round trip).
fn capacity(
    load: &std::path::Path,
    pid: u32,
    port: u16,
    peer: u16,
    secs: u64,
) -> Result<(f64, f64)> {
    let tck = clock_ticks_per_sec() as f64;
    let c0 = cpu_ticks(pid)?;
    let out = turn_load(
        load,
        &format!("rtt 127.0.0.1:{port} 127.0.0.1:{peer} alice:s3cret 64 8 {secs} 200"),
    )
    .output()
    .context("turn_load rtt")?;
    let cpu = (cpu_ticks(pid)? - c0) as f64 / tck;
    // "round trips: N in T s = R/s, sent S"
    let line = line_after(&out, "round trips: ")?;
    let n: f64 = line
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .context("round trips count")?;
    let t: f64 = line
        .split(" in ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("round trips time")?;
    Ok((n / t, cpu / n.max(1.0)))
}

/// Allocations per second through the whole 401 / nonce / retry exchange.
fn allocate_rate(load: &std::path::Path, port: u16, count: u64) -> Result<f64> {
    let out = turn_load(
        load,
        &format!("alloc 127.0.0.1:{port} alice:s3cret {count} 64"),
    )
    .output()
    .context("turn_load alloc")?;
    // "allocations: N in T s = R/s"
    let line = line_after(&out, "allocations: ")?;
    line.rsplit("= ")
        .next()
        .and_then(|r| r.trim_end_matches("/s").parse().ok())
        .context("allocation rate")
}

/// Resident memory per allocation: `allocs` allocations held open by `turn_load hold`.
fn rss_per_allocation(load: &std::path::Path, pid: u32, port: u16, allocs: u64) -> Result<f64> {
    let before = rss_kib(pid)?;
    let mut cmd = turn_load(
        load,
        &format!("hold 127.0.0.1:{port} alice:s3cret {allocs} 64"),
    );
    let mut hold = Proc(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("turn_load hold")?,
    );
    let stdout = hold.0.stdout.take().context("stdout")?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let held: u64 = line
        .trim()
        .strip_prefix("held ")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("turn_load hold: {line:?}"))?;
    if held != allocs {
        bail!("turn_load held {held} of {allocs} allocations");
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(pid)?;
    // Closing stdin releases them.
    drop(hold.0.stdin.take());
    let _ = hold.0.wait();
    Ok(after.saturating_sub(before) as f64 * 1024.0 / allocs as f64)
}

struct Row {
    name: &'static str,
    t: Traffic,
    capacity: Option<(f64, f64)>,
    alloc_rate: Option<f64>,
    rss: Option<f64>,
}

fn measure(
    quick: bool,
    name: &'static str,
    load: &std::path::Path,
    server: &Proc,
    port: u16,
    peer: u16,
) -> Result<Row> {
    let pid = server.0.id();
    wait_stun(port)?;
    // `--quick` (from `cargo xtask bench all --quick`): smaller defaults, same measurements.
    let pick = |full: u64, short: u64| if quick { short } else { full };
    let sessions = env_num("TURN_BENCH_SESSIONS", pick(50, 20));
    let messages = env_num("TURN_BENCH_MESSAGES", pick(2000, 300));
    eprintln!("==> {name}: uclient, {sessions} sessions x {messages} messages of 200 bytes");
    let t = traffic(pid, port, peer, sessions, messages)?;
    let secs = env_num("TURN_BENCH_LOAD_SECS", pick(5, 1));
    eprintln!("==> {name}: turn_load rtt, 64 channels x 8 in flight for {secs} s");
    let capacity = capacity(load, pid, port, peer, secs)
        .map_err(|e| eprintln!("    {e:#}"))
        .ok();
    let count = env_num("TURN_BENCH_ALLOC_RATE", pick(2000, 500));
    eprintln!("==> {name}: turn_load alloc, {count} allocations");
    let alloc_rate = allocate_rate(load, port, count)
        .map_err(|e| eprintln!("    {e:#}"))
        .ok();
    let allocs = env_num("TURN_BENCH_ALLOCS", pick(10_000, 2000));
    eprintln!("==> {name}: turn_load hold, {allocs} allocations held open");
    let rss = rss_per_allocation(load, pid, port, allocs)
        .map_err(|e| eprintln!("    {e:#}"))
        .ok();
    Ok(Row {
        name,
        t,
        capacity,
        alloc_rate,
        rss,
    })
}

/// Runs the comparison, prints a table and returns the figures; `quick` makes the default
/// counts and durations smaller.
pub(crate) fn bench(quick: bool) -> Result<Area> {
    for tool in ["turnserver", "turnutils_uclient", "turnutils_peer"] {
        if !have(tool) {
            bail!("{tool} not found: install coturn (apt-get install -y coturn)");
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let prebuilt = std::env::var_os("WSKIT_BIN").map(PathBuf::from);
    let mut build = Command::new(&cargo);
    build.current_dir(root()).args([
        "build",
        "--release",
        "-p",
        "stun-turn",
        "--example",
        "turn_load",
    ]);
    // `--example` alone would leave out wskit's binary: it is named too.
    if prebuilt.is_none() {
        build.args(["-p", "wskit", "--bin", "wskit"]);
    }
    if !build.status().context("cargo build")?.success() {
        bail!("building wskit / turn_load failed");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        root().join(target)
    };
    let wskit = prebuilt.unwrap_or_else(|| target.join("release/wskit"));
    let load = target.join("release/examples/turn_load");
    let help = Command::new(&wskit)
        .args(["turn", "--help"])
        .output()
        .context("running wskit")?;
    if !help.status.success() {
        bail!("`wskit turn` is not available in {}", wskit.display());
    }

    let peer_port = free_port()?;
    let _peer = Proc(
        Command::new("turnutils_peer")
            .args(["-L", "127.0.0.1", "-p", &peer_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("turnutils_peer")?,
    );
    std::thread::sleep(Duration::from_millis(300));

    let mut rows = Vec::new();
    {
        let port = free_port()?;
        let coturn = Proc(
            fd_limited("turnserver")
                .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
                .arg(format!("--listening-port={port}"))
                .args([
                    "--min-port=20000",
                    "--max-port=39999",
                    "--lt-cred-mech",
                    "--user=alice:s3cret",
                ])
                .args([
                    "--realm=example.org",
                    "--no-tls",
                    "--no-dtls",
                    "--no-cli",
                    "--allow-loopback-peers",
                ])
                .args([
                    "--log-file=/dev/null",
                    "--no-stdout-log",
                    "--total-quota=0",
                    "--user-quota=0",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("turnserver")?,
        );
        rows.push(measure(
            quick,
            "coturn turnserver",
            &load,
            &coturn,
            port,
            peer_port,
        )?);
    }
    {
        let port = free_port()?;
        let ours = Proc(
            fd_limited(&wskit.display().to_string())
                .args([
                    "turn",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--user",
                    "alice:s3cret",
                ])
                .args([
                    "--realm",
                    "example.org",
                    "--allow-loopback-peers",
                    "--min-port",
                    "40000",
                ])
                .args([
                    "--max-port",
                    "59999",
                    "--user-quota",
                    "1000000",
                    "--total-quota",
                    "1000000",
                ])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("wskit turn")?,
        );
        rows.push(measure(quick, "wskit turn", &load, &ours, port, peer_port)?);
    }

    println!();
    println!("paced (turnutils_uclient) and saturating (turn_load rtt) relayed round trips:");
    println!(
        "{:<18} {:>9} {:>9} {:>7} {:>12} {:>10} | {:>13} {:>10} | {:>9} {:>11}",
        "server",
        "uc sent",
        "uc recv",
        "uc s",
        "uc rt/s",
        "CPU us/rt",
        "load rt/s",
        "CPU us/rt",
        "allocs/s",
        "RSS B/alloc"
    );
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
    for r in &rows {
        let rts = r.t.received as f64 / r.t.secs;
        let cpu_us = r.t.cpu_secs * 1e6 / r.t.received.max(1) as f64;
        println!(
            "{:<18} {:>9} {:>9} {:>7.2} {:>12.0} {:>10.1} | {:>13} {:>10} | {:>9} {:>11}   uclient loss {}",
            r.name,
            r.t.sent,
            r.t.received,
            r.t.secs,
            rts,
            cpu_us,
            opt(r.capacity.map(|c| c.0), 0),
            opt(r.capacity.map(|c| c.1 * 1e6), 1),
            opt(r.alloc_rate, 0),
            opt(r.rss, 0),
            r.t.lost,
        );
    }
    if let [c, w] = rows.as_slice() {
        let ratio = (w.t.received as f64 / w.t.secs) / (c.t.received as f64 / c.t.secs);
        let cpu = (c.t.cpu_secs / c.t.received.max(1) as f64)
            / (w.t.cpu_secs / w.t.received.max(1) as f64);
        println!("\nwskit/coturn:");
        println!("  uclient (paced): round trips/s x{ratio:.2}, CPU efficiency x{cpu:.2}");
        if let (Some(wc), Some(cc)) = (w.capacity, c.capacity) {
            println!(
                "  turn_load (saturating): round trips/s x{:.2}, CPU efficiency x{:.2}",
                wc.0 / cc.0,
                cc.1 / wc.1
            );
        }
        if let (Some(wa), Some(ca)) = (w.alloc_rate, c.alloc_rate) {
            println!("  allocations/s x{:.2}", wa / ca);
        }
        if let (Some(wr), Some(cr)) = (w.rss, c.rss) {
            println!(
                "  memory per allocation x{:.2} (coturn's / ours)",
                cr / wr.max(1.0)
            );
        }
        println!(
            "(clients, peer and server share the machine; uclient paces its sends, so its rate is the\n \
             same for any server that keeps up; turn_load keeps the relay busy.)"
        );
    }
    Ok(area(&rows))
}

/// The figures as the benchmark page's area: wskit turn against coturn.
fn area(rows: &[Row]) -> Area {
    let mut area = Area::new(
        "turn",
        "TURN relay",
        "cargo xtask bench turn (knobs: TURN_BENCH_* environment variables)",
    );
    area.note(
        "wskit turn against coturn's turnserver with the same clients and echo peer. Paced: \
         coturn's turnutils_uclient (its rate is the same for any server that keeps up; the \
         CPU figure tells the servers apart). Saturated: stun-turn's turn_load keeps 8 \
         messages in flight on each of 64 channels. Allocations: the whole 401 / nonce / retry \
         exchange; memory: VmRSS growth per allocation held open.",
    );
    let [c, w] = rows else {
        return area;
    };
    let per_rt = |t: &Traffic| t.cpu_secs * 1e6 / t.received.max(1) as f64;
    let ours = "wskit turn";
    let peer = "coturn";
    area.rows.push(ReportRow::vs(
        "paced (uclient)",
        "round trips/s",
        Better::HigherIsBetter,
        (ours, w.t.received as f64 / w.t.secs),
        (peer, c.t.received as f64 / c.t.secs),
    ));
    area.rows.push(ReportRow::vs(
        "paced (uclient), server CPU",
        "µs/round trip",
        Better::LowerIsBetter,
        (ours, per_rt(&w.t)),
        (peer, per_rt(&c.t)),
    ));
    if let (Some(wc), Some(cc)) = (w.capacity, c.capacity) {
        area.rows.push(ReportRow::vs(
            "saturated (turn_load)",
            "round trips/s",
            Better::HigherIsBetter,
            (ours, wc.0),
            (peer, cc.0),
        ));
        area.rows.push(ReportRow::vs(
            "saturated (turn_load), server CPU",
            "µs/round trip",
            Better::LowerIsBetter,
            (ours, wc.1 * 1e6),
            (peer, cc.1 * 1e6),
        ));
    }
    if let (Some(wa), Some(ca)) = (w.alloc_rate, c.alloc_rate) {
        area.rows.push(ReportRow::vs(
            "allocations",
            "allocations/s",
            Better::HigherIsBetter,
            (ours, wa),
            (peer, ca),
        ));
    }
    if let (Some(wr), Some(cr)) = (w.rss, c.rss) {
        area.rows.push(ReportRow::vs(
            "memory per allocation",
            "B",
            Better::LowerIsBetter,
            (ours, wr),
            (peer, cr),
        ));
    }
    area
}
