//! `cargo xtask bench turn`: `wskit turn` against coturn's `turnserver`, driven by coturn's own
//! `turnutils_uclient` through `turnutils_peer` (a UDP echo peer), in one run.
//!
//! Measures per server: relayed round trips per second and loss (`-m 50 -n 2000 -l 200 -c -z 0`),
//! server CPU time per round trip, Allocate requests per second (many one-message sessions), and
//! resident memory per allocation (sessions kept open with `-h`). Environment knobs:
//! `TURN_BENCH_SESSIONS` (50), `TURN_BENCH_MESSAGES` (2000), `TURN_BENCH_ALLOCS` (10000),
//! `TURN_BENCH_ALLOC_RATE_SESSIONS` (500), and `WSKIT_BIN` (a prebuilt `wskit` instead of
//! `cargo build --release -p wskit`).

use std::fs;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

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

/// Allocations per second: many sessions with one message each (allocate, permission/channel,
/// one round trip); the figure is sessions / wall time, so it includes those extra steps.
fn allocate_rate(port: u16, peer: u16, sessions: u64) -> Result<f64> {
    let t0 = Instant::now();
    let m = sessions.to_string();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 65536 2>/dev/null; exec turnutils_uclient -u alice -w s3cret -p {port} -e 127.0.0.1 -r {peer} \
             -X -c -m {m} -n 1 -z 0 127.0.0.1"
        ))
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!(
            "uclient -m {m} failed: {}",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(sessions as f64 / t0.elapsed().as_secs_f64())
}

/// Resident memory per allocation: `allocs` sessions kept open (`-h`) until RSS settles.
fn rss_per_allocation(pid: u32, port: u16, peer: u16, allocs: u64) -> Result<f64> {
    let before = rss_kib(pid)?;
    let hold = Proc(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n 65536 2>/dev/null; exec turnutils_uclient -u alice -w s3cret -p {port} -e 127.0.0.1 \
                 -r {peer} -X -c -m {allocs} -n 1 -z 0 -h 127.0.0.1"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = 0;
    let mut stable = 0;
    while Instant::now() < deadline && stable < 4 {
        std::thread::sleep(Duration::from_millis(750));
        let now = rss_kib(pid)?;
        stable = if now == last && now > before {
            stable + 1
        } else {
            0
        };
        last = now;
    }
    drop(hold);
    Ok((last.saturating_sub(before)) as f64 * 1024.0 / allocs as f64)
}

struct Row {
    name: &'static str,
    t: Traffic,
    alloc_rate: Option<f64>,
    rss: Option<f64>,
}

fn measure(name: &'static str, server: &Proc, port: u16, peer: u16) -> Result<Row> {
    let pid = server.0.id();
    wait_stun(port)?;
    let sessions = env_num("TURN_BENCH_SESSIONS", 50);
    let messages = env_num("TURN_BENCH_MESSAGES", 2000);
    eprintln!("==> {name}: {sessions} sessions x {messages} messages of 200 bytes");
    let t = traffic(pid, port, peer, sessions, messages)?;
    let rate_sessions = env_num("TURN_BENCH_ALLOC_RATE_SESSIONS", 500);
    eprintln!("==> {name}: Allocate rate with {rate_sessions} sessions");
    let alloc_rate = allocate_rate(port, peer, rate_sessions)
        .map_err(|e| eprintln!("    {e:#}"))
        .ok();
    let allocs = env_num("TURN_BENCH_ALLOCS", 10_000);
    eprintln!("==> {name}: RSS with {allocs} allocations held open");
    let rss = rss_per_allocation(pid, port, peer, allocs)
        .map_err(|e| eprintln!("    {e:#}"))
        .ok();
    Ok(Row {
        name,
        t,
        alloc_rate,
        rss,
    })
}

/// Runs the comparison and prints a table.
pub(crate) fn bench() -> Result<()> {
    for tool in ["turnserver", "turnutils_uclient", "turnutils_peer"] {
        if !have(tool) {
            bail!("{tool} not found: install coturn (apt-get install -y coturn)");
        }
    }
    let wskit = match std::env::var_os("WSKIT_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(&cargo)
                .current_dir(root())
                .args(["build", "--release", "-p", "wskit"])
                .status()
                .context("cargo build")?;
            if !status.success() {
                bail!("building wskit failed");
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root().join("target"), PathBuf::from);
            target.join("release").join("wskit")
        }
    };
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
            Command::new("turnserver")
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
        rows.push(measure("coturn turnserver", &coturn, port, peer_port)?);
    }
    {
        let port = free_port()?;
        let ours = Proc(
            Command::new(&wskit)
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
        rows.push(measure("wskit turn", &ours, port, peer_port)?);
    }

    println!();
    println!(
        "{:<18} {:>10} {:>10} {:>9} {:>14} {:>12} {:>14} {:>14}",
        "server",
        "sent",
        "received",
        "wall s",
        "round trips/s",
        "CPU us/rt",
        "sessions/s",
        "RSS B/alloc"
    );
    for r in &rows {
        let rts = r.t.received as f64 / r.t.secs;
        let cpu_us = r.t.cpu_secs * 1e6 / r.t.received.max(1) as f64;
        println!(
            "{:<18} {:>10} {:>10} {:>9.2} {:>14.0} {:>12.1} {:>14} {:>14}   loss {}",
            r.name,
            r.t.sent,
            r.t.received,
            r.t.secs,
            rts,
            cpu_us,
            r.alloc_rate.map_or("-".into(), |v| format!("{v:.0}")),
            r.rss.map_or("-".into(), |v| format!("{v:.0}")),
            r.t.lost,
        );
    }
    if let [c, w] = rows.as_slice() {
        let ratio = (w.t.received as f64 / w.t.secs) / (c.t.received as f64 / c.t.secs);
        let cpu = (c.t.cpu_secs / c.t.received.max(1) as f64)
            / (w.t.cpu_secs / w.t.received.max(1) as f64);
        println!("\nwskit/coturn: round trips/s x{ratio:.2}, CPU efficiency x{cpu:.2}");
        println!(
            "(uclient, the peer and the server share the machine: round trips/s is often client-bound;"
        );
        println!(" CPU per round trip is the server's own cost.)");
    }
    Ok(())
}
