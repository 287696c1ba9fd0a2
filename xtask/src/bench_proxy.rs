//! `cargo xtask bench proxy [--secs 5]`: the WebSocket-to-TCP bridge against the bridges users
//! run today, websockify (Python, Debian's package) and websocat (Rust).
//!
//! It builds release binaries (`wskit` and ws-proxy's example `proxy_load`), picks a backend
//! port, and starts three bridges in front of it on free loopback ports, all at once:
//!
//! ```text
//! wskit proxy --listen 127.0.0.1:P1 --to tcp://127.0.0.1:B
//! websockify 127.0.0.1:P2 127.0.0.1:B                 (forks one process per connection)
//! websocat --binary --exit-on-eof ws-l:127.0.0.1:P3 tcp:127.0.0.1:B
//! ```
//!
//! (`--exit-on-eof`: an EOF on one side closes the other, as the other two bridges do; without
//! it websocat warns that serving many clients leaks sockets.)
//!
//! Memory first, on the fresh bridges: a backend here accepts and holds TCP connections on B,
//! and `wskit bench --idle --conns 1000` opens 1,000 idle WebSocket connections through each
//! bridge in turn (each with its backend connection, which is waited for). The figure is the
//! growth of the bridge's memory divided by 1,000. websockify forks a process per connection,
//! so its figure covers the whole process tree: the sum of VmRSS (which counts the pages the
//! children share with the parent once per process) and the sum of Pss (proportional set size,
//! which divides shared pages between the processes that share them: the honest figure). Its
//! single-process mode, `--libserver` (a thread per connection), is measured as a fourth row.
//!
//! Then load: ws-proxy's example `proxy_load` is the client and the echo backend (it listens on
//! B), both kept cheap (raw-socket WebSocket client with frames masked once up front; a
//! read-then-write echo; each on its own single-threaded runtime), and runs, through each
//! bridge in turn, one process per test:
//!
//! - bulk, 1 and 4 connections: each sends 64 KiB binary messages for `--secs` while reading
//!   the echo; MB/s = bytes echoed back (one way) per second;
//! - round trips, 1 and 64 connections: each keeps one 64-byte message in flight (send, wait
//!   for the echo, again) for `--secs`; total round trips per second. One connection is the
//!   latency figure, 64 the throughput one.
//!
//! The bridge's CPU time (its process tree: utime + stime, reaped children included) is
//! sampled when every connection of a test is open and again when its last echo arrived
//! (proxy_load `--sync` waits for the go-ahead on stdin), so handshakes and teardown (and
//! websockify's forks) are not counted. It is shown per GB relayed (both directions: twice
//! the bytes echoed) and per 1,000 round trips, next to the CPU share of the bridge and of the
//! driver (proxy_load's own CPU time in the same window), which tells who was the limit.
//!
//! Per round trip (and per MB relayed in bulk) the bridge's context switches are counted too
//! (voluntary: it waited for the next event; involuntary: it was preempted, on a loopback
//! mostly by the peer its own send woke), from the `ctxt_switches` lines of
//! `/proc/PID/task/*/status` of its process tree, in the same window. With
//! `WSKIT_BENCH_SYSCALLS=1` and a working `perf`, its system calls are counted as well (`perf
//! stat -e raw_syscalls:sys_enter` attached to the tree for the window; off by default, as
//! counting costs the bridges a little on every call). Both are per-unit figures that the load
//! of a shared machine hardly moves, where the rates do.
//!
//! Needs `apt-get install -y websockify` and `cargo install websocat --locked` (on PATH or in
//! `~/.cargo/bin`). `WSKIT_BIN=PATH` uses a prebuilt `wskit`. Logs of the bridges go to
//! `target/bench/proxy/`. Every process is stopped by its pid.

use std::{
    fs,
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::proc::{
    Proc, field, free_port, idle_client, kib_field, lines, target_dir, tree, tree_cpu,
    wait_listening, with_nofile,
};
use crate::report::{Area, Better, Row};
use crate::util::{cargo, step};

/// Idle connections opened through each bridge for the memory figure.
const IDLE_CONNS: u64 = 1000;
/// Connections of the concurrent round-trip test.
const RT_CONNS: u64 = 64;
/// Connections of the parallel bulk test.
const BULK_CONNS: u64 = 4;

/// One load test: bulk or round trips, over how many connections.
#[derive(Clone, Copy, Debug)]
struct Test {
    bulk: bool,
    conns: u64,
}

const TESTS: [Test; 4] = [
    Test {
        bulk: true,
        conns: 1,
    },
    Test {
        bulk: true,
        conns: BULK_CONNS,
    },
    Test {
        bulk: false,
        conns: 1,
    },
    Test {
        bulk: false,
        conns: RT_CONNS,
    },
];

impl Test {
    fn label(self) -> String {
        let what = if self.bulk { "bulk" } else { "round trips" };
        let s = if self.conns == 1 { "" } else { "s" };
        format!("{what}, {} conn{s}", self.conns)
    }
}

pub(crate) fn run(secs: u64) -> Result<Area> {
    if secs == 0 {
        bail!("--secs must be at least 1");
    }
    let websockify = find("websockify").context(
        "websockify not found: apt-get install -y websockify (the Python WebSocket-to-TCP bridge)",
    )?;
    let websocat =
        find("websocat").context("websocat not found: cargo install websocat --locked")?;
    let (wskit, proxy_load) = build()?;
    let logs = target_dir().join("bench/proxy");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;

    let backend = free_port()?;
    let to = format!("127.0.0.1:{backend}");
    let wskit_args = |port: u16| {
        vec![
            "proxy".to_owned(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--to".into(),
            format!("tcp://{to}"),
            // The proxy logs every connection at info; the figures are taken without that
            // (as they were before it did).
            "--log".into(),
            "warn".into(),
        ]
    };
    let websockify_args = |port: u16| vec![format!("127.0.0.1:{port}"), to.clone()];
    let websocat_args = |port: u16| {
        vec![
            "--binary".to_owned(),
            "--exit-on-eof".into(),
            format!("ws-l:127.0.0.1:{port}"),
            format!("tcp:{to}"),
        ]
    };
    eprintln!("\n==> starting the bridges in front of 127.0.0.1:{backend}");
    let mut bridges = [
        Bridge::start("wskit proxy", &wskit, &wskit_args, &logs)?,
        Bridge::start("websockify", &websockify, &websockify_args, &logs)?,
        Bridge::start("websocat", &websocat, &websocat_args, &logs)?,
    ];

    // Memory per idle bridged connection, on the fresh bridges.
    let mut mem = Vec::new();
    {
        let holder = Holder::start(backend)?;
        for b in &bridges {
            eprintln!("==> {}: {IDLE_CONNS} idle connections", b.name);
            let m = idle_memory(&wskit, b, &holder)
                .with_context(|| format!("{} with {IDLE_CONNS} idle connections", b.name))?;
            mem.push(m);
        }
        // websockify's single-process mode, for comparison.
        let libserver_args = |port: u16| {
            vec![
                "--libserver".to_owned(),
                format!("127.0.0.1:{port}"),
                to.clone(),
            ]
        };
        let lib = Bridge::start(
            "websockify --libserver",
            &websockify,
            &libserver_args,
            &logs,
        )?;
        eprintln!("==> {}: {IDLE_CONNS} idle connections", lib.name);
        let m = idle_memory(&wskit, &lib, &holder)
            .with_context(|| format!("{} with {IDLE_CONNS} idle connections", lib.name))?;
        mem.push(m);
    }

    // Load, proxy_load being the client and the echo backend.
    let mut load: Vec<(&'static str, Vec<LoadRow>)> = Vec::new();
    for b in &mut bridges {
        let mut runs = Vec::new();
        for test in TESTS {
            eprintln!("==> {}: {} for {secs} s", b.name, test.label());
            if let Ok(Some(status)) = b.proc.child.try_wait() {
                eprintln!("    {} exited ({status}); restarting it", b.name);
                *b = b.restart(&logs)?;
            }
            match run_load(&proxy_load, b, backend, test, secs) {
                Ok(r) => {
                    eprintln!(
                        "    {}, bridge CPU {:.2} s, driver CPU {:.2} s; bridge {}",
                        r.show_rate(),
                        r.bridge_cpu,
                        r.driver_cpu,
                        r.show_counts()
                    );
                    runs.push(Ok(r));
                }
                Err(e) => {
                    eprintln!("    proxy_load through {} failed: {e:#}", b.name);
                    runs.push(Err(format!("{e:#}")));
                }
            }
        }
        load.push((b.name, runs));
    }
    drop(bridges);

    print_tables(secs, &load, &mem);
    Ok(area(secs, &load, &mem))
}

// ---------------------------------------------------------------------------------------------
// Binaries and processes.
// ---------------------------------------------------------------------------------------------

/// `program` on PATH, or in cargo's bin directory.
fn find(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Builds `wskit` (unless `WSKIT_BIN` is set) and the `proxy_load` example, in release mode.
fn build() -> Result<(PathBuf, PathBuf)> {
    let wskit = crate::proc::release_wskit()?;
    step(
        "build ws-proxy's proxy_load example (release)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "ws-proxy",
            "--example",
            "proxy_load",
        ]),
    )?;
    let release = target_dir().join("release");
    Ok((wskit, release.join("examples/proxy_load")))
}

/// A bridge under test.
#[derive(Debug)]
struct Bridge {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    port: u16,
    proc: Proc,
    log: PathBuf,
}

impl Bridge {
    /// Starts `program args(port)` on a free port (retried when the port was taken
    /// meanwhile) and waits until it accepts TCP connections.
    fn start(
        name: &'static str,
        program: &Path,
        args: &dyn Fn(u16) -> Vec<String>,
        logs: &Path,
    ) -> Result<Self> {
        for _ in 0..3 {
            let port = free_port()?;
            if let Some(b) = Self::spawn(name, program, args(port), port, logs)? {
                return Ok(b);
            }
        }
        bail!("{name} did not start (log in {})", logs.display())
    }

    /// The same command again (same port), after it exited.
    fn restart(&self, logs: &Path) -> Result<Self> {
        Self::spawn(self.name, &self.program, self.args.clone(), self.port, logs)?
            .with_context(|| format!("restarting {}", self.name))
    }

    /// Starts the command; `None` when it exited before listening.
    fn spawn(
        name: &'static str,
        program: &Path,
        args: Vec<String>,
        port: u16,
        logs: &Path,
    ) -> Result<Option<Self>> {
        let log = logs.join(format!("{}.log", name.replace([' ', '-'], "_")));
        {
            let out = fs::File::create(&log)?;
            let mut cmd = with_nofile(program, &args);
            cmd.stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out);
            eprintln!("    $ {} {}", program.display(), args.join(" "));
            let mut proc = Proc::graceful(cmd.spawn().with_context(|| format!("starting {name}"))?);
            let exited = wait_listening(&mut proc, port, Duration::from_secs(20))
                .with_context(|| format!("{name} (log: {})", log.display()))?;
            if exited.is_some() {
                return Ok(None);
            }
            Ok(Some(Self {
                name,
                program: program.to_owned(),
                args,
                port,
                proc,
                log,
            }))
        }
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings.
// ---------------------------------------------------------------------------------------------

/// Memory of a process tree: processes, sum of VmRSS and sum of Pss (KiB).
#[derive(Debug, Clone, Copy, PartialEq)]
struct TreeMem {
    procs: usize,
    rss: u64,
    pss: u64,
}

fn tree_mem(pid: u32) -> TreeMem {
    let pids = tree(pid);
    let mut m = TreeMem {
        procs: 0,
        rss: 0,
        pss: 0,
    };
    for p in pids {
        let Some(rss) = kib_field(&format!("/proc/{p}/status"), "VmRSS:") else {
            continue;
        };
        m.procs += 1;
        m.rss += rss;
        m.pss += kib_field(&format!("/proc/{p}/smaps_rollup"), "Pss:").unwrap_or(rss);
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Idle connections.
// ---------------------------------------------------------------------------------------------

/// A backend that accepts TCP connections on a port and holds them without reading.
#[derive(Debug)]
struct Holder {
    port: u16,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Holder {
    fn start(port: u16) -> Result<Self> {
        let l = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("binding the backend port {port}"))?;
        let held = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (held.clone(), stop.clone());
        // A blocking accept, so that the backlog (128) is drained at once: with SYN cookies, a
        // connection whose final ACK met a full queue is lost for good when the client then
        // stays silent, as an idle bridge does.
        let thread = std::thread::spawn(move || {
            for c in l.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = c {
                    h.lock().unwrap().push(c);
                }
            }
        });
        Ok(Self {
            port,
            held,
            stop,
            thread: Some(thread),
        })
    }

    fn count(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// Held connections the bridge has not closed (a peek does not see EOF).
    fn live(&self) -> usize {
        let held = self.held.lock().unwrap();
        held.iter()
            .filter(|c| {
                let _ = c.set_nonblocking(true);
                let mut b = [0u8; 1];
                let alive = match c.peek(&mut b) {
                    Ok(n) => n > 0,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                };
                let _ = c.set_nonblocking(false);
                alive
            })
            .count()
    }

    /// Closes every held connection.
    fn clear(&self) {
        self.held.lock().unwrap().clear();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocking accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What 1,000 idle connections cost a bridge.
#[derive(Debug)]
struct Mem {
    name: &'static str,
    before: TreeMem,
    after: TreeMem,
    /// Bridged connections still open when measured (websockify's default mode loses some).
    live: usize,
}

impl Mem {
    fn rss_per_conn(&self) -> f64 {
        self.after.rss.saturating_sub(self.before.rss) as f64 * 1024.0 / self.live.max(1) as f64
    }

    fn pss_per_conn(&self) -> f64 {
        self.after.pss.saturating_sub(self.before.pss) as f64 * 1024.0 / self.live.max(1) as f64
    }
}

fn idle_memory(wskit: &Path, bridge: &Bridge, holder: &Holder) -> Result<Mem> {
    holder.clear();
    // Let the start-up probe's child (websockify) finish.
    std::thread::sleep(Duration::from_millis(1500));
    let before = tree_mem(bridge.pid());
    // One handshake at a time: the backend (std's listen backlog of 128) must not be hit by a
    // burst it drops.
    let client = idle_client(
        wskit,
        &format!("ws://127.0.0.1:{}/", bridge.port),
        IDLE_CONNS,
        &["--connect-parallel", "1"],
    )
    .with_context(|| format!("bridge log: {}", bridge.log.display()))?;
    // Every WebSocket has its backend connection (wait until the count stops growing: a
    // bridge may drop some, see `live` below).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (holder.count(), Instant::now());
    while (holder.count() as u64) < IDLE_CONNS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = holder.count();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() > Duration::from_secs(15) {
            break;
        }
    }
    if (holder.count() as u64) < IDLE_CONNS {
        eprintln!(
            "    only {} of {IDLE_CONNS} backend connections arrived",
            holder.count()
        );
    }
    // Then wait until the memory is stable.
    let mut after = tree_mem(bridge.pid());
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let now = tree_mem(bridge.pid());
        if now == after {
            break;
        }
        after = now;
    }
    let live = holder.live();
    eprintln!(
        "    {} process(es): VmRSS {} -> {} KiB, Pss {} -> {} KiB; {live} of {IDLE_CONNS} \
         bridged connections still open",
        after.procs, before.rss, after.rss, before.pss, after.pss
    );
    drop(client);
    holder.clear();
    // websockify's children exit when their connections are closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while tree(bridge.pid()).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(Mem {
        name: bridge.name,
        before,
        after,
        live,
    })
}

// ---------------------------------------------------------------------------------------------
// Throughput.
// ---------------------------------------------------------------------------------------------

/// The figures of one load run.
#[derive(Debug)]
struct Run {
    test: Test,
    /// Length of the measured window, seconds.
    secs: f64,
    /// Bytes echoed back (bulk).
    bytes: f64,
    /// Round trips.
    trips: f64,
    /// MB/s one way (bulk) or round trips per second.
    rate: f64,
    /// CPU seconds of the bridge's process tree in the window.
    bridge_cpu: f64,
    /// CPU seconds of proxy_load (client and backend) in the window.
    driver_cpu: f64,
    /// The bridge's context switches in the window: (voluntary, involuntary).
    switches: (f64, f64),
    /// The bridge's system calls in the window (`WSKIT_BENCH_SYSCALLS=1`).
    syscalls: Option<f64>,
}

impl Run {
    /// Bridge CPU seconds per GB relayed (both directions) or per 1,000 round trips.
    fn cpu_per_unit(&self) -> f64 {
        let units = if self.test.bulk {
            2.0 * self.bytes / 1e9
        } else {
            self.trips / 1e3
        };
        if units > 0.0 {
            self.bridge_cpu / units
        } else {
            f64::NAN
        }
    }

    /// Per round trip, or per MB relayed (both directions) in bulk.
    fn per_event(&self, count: f64) -> f64 {
        let units = if self.test.bulk {
            2.0 * self.bytes / 1e6
        } else {
            self.trips
        };
        if units > 0.0 { count / units } else { f64::NAN }
    }

    /// Context switches and system calls per round trip (per MB in bulk).
    fn show_counts(&self) -> String {
        let per = if self.test.bulk { "MB" } else { "trip" };
        let (vol, invol) = self.switches;
        let mut s = format!(
            "context switches/{per} {:.2} ({:.2} voluntary, {:.2} involuntary)",
            self.per_event(vol + invol),
            self.per_event(vol),
            self.per_event(invol)
        );
        if let Some(n) = self.syscalls {
            s.push_str(&format!(", syscalls/{per} {:.2}", self.per_event(n)));
        }
        s
    }

    fn show_rate(&self) -> String {
        if self.test.bulk {
            format!("{:.0} MB/s", self.rate)
        } else {
            format!("{:.0} round trips/s", self.rate)
        }
    }
}

/// A load run's figures, or why it failed.
type LoadRow = std::result::Result<Run, String>;

/// The next line of `lines` that starts with `prefix`, within `limit`; `None` when the process
/// ended (or stayed silent) first.
fn next_line(lines: &mpsc::Receiver<String>, prefix: &str, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match lines.recv_timeout(left) {
            Ok(line) if line.starts_with(prefix) => return Some(line),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// `proxy_load URL B TEST CONNS SECS --sync` through one bridge, the bridge's CPU time sampled
/// when proxy_load has its connections open and when it has its result.
fn run_load(
    proxy_load: &Path,
    bridge: &Bridge,
    backend: u16,
    test: Test,
    secs: u64,
) -> Result<Run> {
    let mut cmd = Command::new(proxy_load);
    cmd.args([
        format!("ws://127.0.0.1:{}/", bridge.port),
        backend.to_string(),
        (if test.bulk { "bulk" } else { "rt" }).to_owned(),
        test.conns.to_string(),
        secs.to_string(),
        "--sync".to_owned(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = Proc::new(cmd.spawn().context("starting proxy_load")?);
    let mut stdin = child.child.stdin.take().context("stdin")?;
    let stdout = child.child.stdout.take().context("stdout")?;
    let mut stderr = child.child.stderr.take().context("stderr")?;
    let lines = lines(stdout);
    let errors = std::thread::spawn(move || {
        let mut v = String::new();
        let _ = stderr.read_to_string(&mut v);
        v
    });
    let fail = |child: Proc, what: &str| {
        drop(child);
        let text = errors.join().unwrap_or_default();
        anyhow::anyhow!("{what}:\n{text}(bridge log: {})", bridge.log.display())
    };
    let Some(_) = next_line(&lines, "ready", Duration::from_secs(120)) else {
        return Err(fail(child, "proxy_load did not open its connections"));
    };
    let syscalls = SyscallCount::start(bridge.pid());
    let cpu0 = tree_cpu(bridge.pid());
    let sw0 = tree_switches(bridge.pid());
    let _ = writeln!(stdin);
    let Some(result) = next_line(&lines, "result:", Duration::from_secs(secs + 90)) else {
        return Err(fail(child, "proxy_load did not finish its test"));
    };
    let bridge_cpu = tree_cpu(bridge.pid()) - cpu0;
    let sw1 = tree_switches(bridge.pid());
    let syscalls = syscalls.and_then(SyscallCount::stop);
    let _ = writeln!(stdin);
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            return Err(fail(child, "proxy_load did not exit"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        return Err(fail(child, &format!("proxy_load failed ({status})")));
    }
    // websockify's children end with their connections: wait, so that the next run starts
    // from one process.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tree(bridge.pid()).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let get = |key: &str| {
        field(&result, key).with_context(|| format!("no {key} in proxy_load's `{result}`"))
    };
    Ok(Run {
        test,
        secs: get("secs")?,
        bytes: get("bytes")?,
        trips: get("trips")?,
        rate: get("rate")?,
        bridge_cpu,
        driver_cpu: get("driver_cpu")?,
        switches: (
            sw1.0.saturating_sub(sw0.0) as f64,
            sw1.1.saturating_sub(sw0.1) as f64,
        ),
        syscalls,
    })
}

/// Context switches of the threads of a process tree: (voluntary, involuntary). Threads that
/// end meanwhile take theirs with them (none of the bridges ends one during a run).
fn tree_switches(pid: u32) -> (u64, u64) {
    let mut sum = (0, 0);
    for p in tree(pid) {
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let Ok(status) = fs::read_to_string(t.path().join("status")) else {
                continue;
            };
            for line in status.lines() {
                let count = |v: &str| v.trim().parse::<u64>().unwrap_or(0);
                if let Some(v) = line.strip_prefix("voluntary_ctxt_switches:") {
                    sum.0 += count(v);
                } else if let Some(v) = line.strip_prefix("nonvoluntary_ctxt_switches:") {
                    sum.1 += count(v);
                }
            }
        }
    }
    sum
}

/// `perf stat` counting the system calls of a bridge's process tree, when
/// `WSKIT_BENCH_SYSCALLS=1` and perf can attach.
struct SyscallCount {
    perf: Proc,
    out: PathBuf,
}

impl SyscallCount {
    fn start(pid: u32) -> Option<Self> {
        if std::env::var_os("WSKIT_BENCH_SYSCALLS").is_none_or(|v| v != "1") {
            return None;
        }
        let pids: Vec<String> = tree(pid).iter().map(u32::to_string).collect();
        let out = target_dir().join(format!("bench/proxy/perf-stat-{pid}.txt"));
        let _ = fs::remove_file(&out);
        let child = Command::new("perf")
            .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p"])
            .arg(pids.join(","))
            .arg("-o")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => {
                // Attached before the window opens (an idle bridge makes next to no calls).
                std::thread::sleep(Duration::from_millis(300));
                Some(Self {
                    perf: Proc::new(c),
                    out,
                })
            }
            Err(e) => {
                eprintln!("    perf stat did not start ({e}): no system call counts");
                None
            }
        }
    }

    /// Stops perf (SIGINT: it writes its counts) and reads the count.
    fn stop(mut self) -> Option<f64> {
        let _ = Command::new("kill")
            .args(["-INT", &self.perf.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.perf.child.try_wait().ok()?.is_none() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = fs::read_to_string(&self.out).ok()?;
        let _ = fs::remove_file(&self.out);
        // CSV: `count,unit,event,...`.
        text.lines()
            .find(|l| l.contains("raw_syscalls:sys_enter"))?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------------------------

fn ratio(a: f64, b: f64) -> String {
    if !(a.is_finite() && b.is_finite() && b > 0.0) {
        return "-".into();
    }
    let r = a / b;
    if r < 0.1 {
        format!("{r:.4}x")
    } else {
        format!("{r:.2}x")
    }
}

/// The bridges in the order of the table's columns: ours first, then the peers.
const COLUMNS: [&str; 3] = ["wskit proxy", "websockify", "websocat"];

/// The figures of the tables as the benchmark page's area: wskit proxy against each peer.
fn area(secs: u64, load: &[(&'static str, Vec<LoadRow>)], mem: &[Mem]) -> Area {
    let mut area = Area::new(
        "proxy",
        "WebSocket-to-TCP bridge",
        &format!("cargo xtask bench proxy --secs {secs}"),
    );
    area.note(format!(
        "wskit proxy against websockify and websocat in front of the same echo backend, \
         proxy_load driving each in turn. Bulk: 64 KiB binary messages for {secs} s, MB/s one \
         way; round trips: one 64 B message in flight per connection for {secs} s. Bridge CPU: \
         its process tree per GB relayed or per 1,000 round trips. Memory: growth per open \
         bridged connection with {IDLE_CONNS} idle connections (Pss: shared pages divided \
         between websockify's forked processes). A failed run of a bridge leaves its row out."
    ));
    let run_of = |name: &str, i: usize| {
        load.iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, runs)| runs.get(i)?.as_ref().ok())
    };
    let ours = COLUMNS[0];
    for (i, test) in TESTS.iter().enumerate() {
        let (unit, cpu_unit) = if test.bulk {
            ("MB/s", "bridge CPU s/GB")
        } else {
            ("round trips/s", "bridge CPU s/1k trips")
        };
        for peer in &COLUMNS[1..] {
            if let (Some(a), Some(b)) = (run_of(ours, i), run_of(peer, i)) {
                area.rows.push(Row::vs(
                    test.label(),
                    unit,
                    Better::HigherIsBetter,
                    (ours, a.rate),
                    (peer, b.rate),
                ));
                area.rows.push(Row::vs(
                    format!("{} CPU", test.label()),
                    cpu_unit,
                    Better::LowerIsBetter,
                    (ours, a.cpu_per_unit()),
                    (peer, b.cpu_per_unit()),
                ));
            }
        }
    }
    if let Some(w) = mem.iter().find(|m| m.name == ours) {
        for m in mem.iter().filter(|m| m.name != ours) {
            area.rows.push(Row::vs(
                "idle connection, Pss",
                "KiB/conn",
                Better::LowerIsBetter,
                (ours, w.pss_per_conn() / 1024.0),
                (m.name, m.pss_per_conn() / 1024.0),
            ));
        }
    }
    area
}

fn print_tables(secs: u64, load: &[(&'static str, Vec<LoadRow>)], mem: &[Mem]) {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let run_of = |name: &str, i: usize| {
        load.iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, runs)| runs.get(i)?.as_ref().ok())
    };
    let mem_of = |name: &str| mem.iter().find(|m| m.name == name);
    println!();
    println!(
        "WebSocket-to-TCP bridges on loopback, {cores} cores shared by the bridge and the driver \
         (proxy_load: raw-socket client + echo backend), one run each. Bulk: each connection \
         sends 64 KiB binary messages for {secs} s while reading the echo, MB/s one way. Round \
         trips: each connection keeps one 64 B message in flight for {secs} s. Bridge CPU: \
         its process tree, per GB relayed (both directions) or per 1,000 round trips (lower is \
         better). Memory: growth per open bridged connection with {IDLE_CONNS} idle connections \
         (each with its backend connection); websockify forks per connection: its whole process \
         tree, VmRSS summed and Pss summed. Ratios are wskit / peer."
    );
    println!();
    println!(
        "| figure | {} | wskit/websockify | wskit/websocat |",
        COLUMNS.join(" | ")
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |label: String, values: [f64; 3], fmt: &dyn Fn(f64) -> String| {
        let cells: Vec<String> = values
            .iter()
            .map(|v| if v.is_finite() { fmt(*v) } else { "-".into() })
            .collect();
        println!(
            "| {label} | {} | {} | {} |",
            cells.join(" | "),
            ratio(values[0], values[1]),
            ratio(values[0], values[2])
        );
    };
    for (i, test) in TESTS.iter().enumerate() {
        let rate = COLUMNS.map(|n| run_of(n, i).map_or(f64::NAN, |r| r.rate));
        let cpu = COLUMNS.map(|n| run_of(n, i).map_or(f64::NAN, Run::cpu_per_unit));
        if test.bulk {
            row(format!("{}: MB/s", test.label()), rate, &|v| {
                format!("{v:.0}")
            });
            row(format!("{}: bridge CPU s/GB", test.label()), cpu, &|v| {
                format!("{v:.2}")
            });
        } else {
            row(format!("{}: round trips/s", test.label()), rate, &|v| {
                format!("{v:.0}")
            });
            row(
                format!("{}: bridge CPU s/1k trips", test.label()),
                cpu,
                &|v| format!("{v:.4}"),
            );
        }
        let per = if test.bulk { "MB" } else { "trip" };
        let switches = COLUMNS
            .map(|n| run_of(n, i).map_or(f64::NAN, |r| r.per_event(r.switches.0 + r.switches.1)));
        row(
            format!("{}: bridge context switches/{per}", test.label()),
            switches,
            &|v| format!("{v:.2}"),
        );
        let syscalls = COLUMNS.map(|n| {
            run_of(n, i)
                .and_then(|r| r.syscalls.map(|c| r.per_event(c)))
                .unwrap_or(f64::NAN)
        });
        if syscalls.iter().any(|v| v.is_finite()) {
            row(
                format!("{}: bridge syscalls/{per}", test.label()),
                syscalls,
                &|v| format!("{v:.2}"),
            );
        }
    }
    let live = COLUMNS.map(|n| mem_of(n).map_or(f64::NAN, |m| m.live as f64));
    row(
        format!("idle: bridged conns open (of {IDLE_CONNS})"),
        live,
        &|v| format!("{v:.0}"),
    );
    let rss = COLUMNS.map(|n| mem_of(n).map_or(f64::NAN, |m| m.rss_per_conn() / 1024.0));
    row("idle: VmRSS/conn KiB".into(), rss, &|v| format!("{v:.1}"));
    let pss = COLUMNS.map(|n| mem_of(n).map_or(f64::NAN, |m| m.pss_per_conn() / 1024.0));
    row("idle: Pss/conn KiB".into(), pss, &|v| format!("{v:.1}"));

    println!();
    println!(
        "CPU busy during each run, bridge / driver (share of one core; {cores} cores): a bridge \
         near 100% per core it can use, or a driver near 100%, is the limit of that run."
    );
    println!();
    println!("| run | {} |", COLUMNS.join(" | "));
    println!("|---|---:|---:|---:|");
    for (i, test) in TESTS.iter().enumerate() {
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|n| {
                run_of(n, i).map_or_else(
                    || "failed".to_owned(),
                    |r| {
                        format!(
                            "{:.0}% / {:.0}%",
                            100.0 * r.bridge_cpu / r.secs,
                            100.0 * r.driver_cpu / r.secs
                        )
                    },
                )
            })
            .collect();
        println!("| {} | {} |", test.label(), cells.join(" | "));
    }
    for (name, runs) in load {
        for (test, r) in TESTS.iter().zip(runs) {
            if let Err(e) = r {
                println!();
                println!("{name}, {}: proxy_load failed: {e}", test.label());
            }
        }
    }
    println!();
    println!("Raw memory readings (KiB, before -> after opening {IDLE_CONNS} idle connections):");
    println!();
    println!("| bridge | processes | VmRSS | Pss | open |");
    println!("|---|---:|---:|---:|---:|");
    for m in mem {
        println!(
            "| {} | {} -> {} | {} -> {} | {} -> {} | {} |",
            m.name,
            m.before.procs,
            m.after.procs,
            m.before.rss,
            m.after.rss,
            m.before.pss,
            m.after.pss,
            m.live
        );
    }
}
