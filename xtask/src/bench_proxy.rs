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
//! Then throughput: `proxy_load WS_URL B 256 SECS` through each bridge in turn; proxy_load is
//! the echo backend itself (it listens on B) and measures bulk MB/s (256 MiB each way in 64 KiB
//! binary messages, reading the echo while sending) and round trips per second (one 64-byte
//! message in flight) for `--secs`. The CPU seconds the bridge (tree) used during the run are
//! shown too.
//!
//! Needs `apt-get install -y websockify` and `cargo install websocat --locked` (on PATH or in
//! `~/.cargo/bin`). `WSKIT_BIN=PATH` uses a prebuilt `wskit`. Logs of the bridges go to
//! `target/bench/proxy/`. Every process is stopped by its pid.

use std::{
    collections::HashMap,
    fs,
    io::{BufRead, BufReader},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::util::{cargo, root, step};

/// Idle connections opened through each bridge for the memory figure.
const IDLE_CONNS: u64 = 1000;
/// MiB sent each way in the bulk test.
const BULK_MIB: u64 = 256;

pub(crate) fn run(secs: u64) -> Result<()> {
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

    // Throughput, proxy_load being the echo backend.
    let mut load = Vec::new();
    for b in &mut bridges {
        eprintln!(
            "==> {}: proxy_load {BULK_MIB} MiB bulk, {secs} s round trips",
            b.name
        );
        if let Ok(Some(status)) = b.proc.0.try_wait() {
            eprintln!(
                "    {} exited ({status}) before the load run; restarting it",
                b.name
            );
            *b = b.restart(&logs)?;
        }
        match throughput(&proxy_load, b, backend, secs) {
            Ok(l) => {
                eprintln!(
                    "    {:.1} MB/s, {:.0} round trips/s, bridge CPU {:.1} s",
                    l.mbps, l.rtps, l.cpu
                );
                load.push(Ok(l));
            }
            Err(e) => {
                eprintln!("    proxy_load through {} failed: {e:#}", b.name);
                load.push(Err((b.name, format!("{e:#}"))));
            }
        }
    }
    drop(bridges);

    print_tables(secs, &load, &mem);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Binaries and processes.
// ---------------------------------------------------------------------------------------------

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

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
    let prebuilt = std::env::var_os("WSKIT_BIN").map(PathBuf::from);
    if prebuilt.is_none() {
        step(
            "build wskit (release)",
            cargo().args(["build", "--release", "-p", "wskit"]),
        )?;
    }
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
    Ok((
        prebuilt.unwrap_or_else(|| release.join("wskit")),
        release.join("examples/proxy_load"),
    ))
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Quotes a word for `sh -c`.
fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `sh -c 'ulimit -n 65536 (or the hard limit); exec PROGRAM ARGS'`: the same pid as the
/// program, with room for thousands of sockets.
fn with_nofile(program: &Path, args: &[String]) -> Command {
    let mut line = String::from(
        "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec",
    );
    for word in std::iter::once(program.to_string_lossy().into_owned()).chain(args.iter().cloned())
    {
        line.push(' ');
        line.push_str(&sh_quote(&word));
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(line);
    cmd
}

/// A child process, stopped by its pid when dropped: SIGTERM first (websockify then
/// terminates its per-connection children), SIGKILL after 3 s.
#[derive(Debug)]
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.0.id();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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
            let mut proc = Proc(cmd.spawn().with_context(|| format!("starting {name}"))?);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if proc.0.try_wait()?.is_some() {
                    return Ok(None);
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(Some(Self {
                        name,
                        program: program.to_owned(),
                        args,
                        port,
                        proc,
                        log,
                    }));
                }
                if Instant::now() > deadline {
                    bail!("{name} does not listen after 20 s (log: {})", log.display());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn pid(&self) -> u32 {
        self.proc.0.id()
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings.
// ---------------------------------------------------------------------------------------------

/// The process and its descendants.
fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // After the `(comm)`: state, then ppid.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Some(c) = children.get(&all[i]) {
            all.extend(c);
        }
        i += 1;
    }
    all
}

/// A `Key:   N kB` line of a /proc file, in KiB.
fn kib_field(path: &str, key: &str) -> Option<u64> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

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

/// utime + stime of a process tree, in seconds (USER_HZ is 100 on Linux). Children that
/// already exited are not counted (their time is in the parent's cutime once reaped).
fn tree_cpu(pid: u32) -> f64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| {
            let stat = fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            let rest = stat.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            // Fields 14..17 of stat (utime, stime, cutime, cstime) are 12..15 after `)`.
            let t: u64 = f
                .get(11..15)?
                .iter()
                .filter_map(|s| s.parse::<u64>().ok())
                .sum();
            Some(t as f64 / 100.0)
        })
        .sum()
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
    let args = vec![
        "bench".to_owned(),
        format!("ws://127.0.0.1:{}/", bridge.port),
        "--conns".into(),
        IDLE_CONNS.to_string(),
        "--idle".into(),
        "--secs".into(),
        "600".into(),
        "--threads".into(),
        "1".into(),
        // One handshake at a time: the backend (std's listen backlog of 128) must not be hit by
        // a burst it drops.
        "--connect-parallel".into(),
        "1".into(),
    ];
    let mut client = Proc(
        with_nofile(wskit, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting wskit bench --idle")?,
    );
    let stdout = client.0.stdout.take().context("client stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with("connected:") => {
                eprintln!("    {line}");
                break;
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = client.0.wait()?;
                bail!(
                    "wskit bench --idle stopped before connecting everything ({status}; bridge \
                     log: {})",
                    bridge.log.display()
                );
            }
        }
        if Instant::now() > deadline {
            bail!("opening {IDLE_CONNS} connections took over 300 s");
        }
    }
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

#[derive(Debug)]
struct Load {
    name: &'static str,
    mbps: f64,
    rtps: f64,
    cpu: f64,
}

/// The number after `=` on the line starting with `prefix` (`... = 123.4 MB/s`).
fn figure(out: &str, prefix: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.starts_with(prefix))?
        .rsplit_once('=')?
        .1
        .trim()
        .trim_end_matches("MB/s")
        .trim_end_matches("/s")
        .trim()
        .parse()
        .ok()
}

fn throughput(proxy_load: &Path, bridge: &Bridge, backend: u16, secs: u64) -> Result<Load> {
    let cpu0 = tree_cpu(bridge.pid());
    let mut cmd = Command::new(proxy_load);
    cmd.args([
        format!("ws://127.0.0.1:{}/", bridge.port),
        backend.to_string(),
        BULK_MIB.to_string(),
        secs.to_string(),
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = Proc(cmd.spawn().context("starting proxy_load")?);
    let limit = Duration::from_secs(120 + secs);
    let out = wait_output(child, limit)?;
    let cpu = tree_cpu(bridge.pid()) - cpu0;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "proxy_load failed ({}):\n{text}(bridge log: {})",
            out.status,
            bridge.log.display()
        );
    }
    let (Some(mbps), Some(rtps)) = (figure(&text, "bulk:"), figure(&text, "round trips:")) else {
        bail!("unexpected proxy_load output:\n{text}");
    };
    Ok(Load {
        name: bridge.name,
        mbps,
        rtps,
        cpu,
    })
}

/// Waits for a child's output, killing it (by pid, through `Proc`) after `limit`.
fn wait_output(mut child: Proc, limit: Duration) -> Result<std::process::Output> {
    let mut stdout = child.0.stdout.take().context("stdout")?;
    let mut stderr = child.0.stderr.take().context("stderr")?;
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.0.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            drop(child);
            bail!("did not finish within {} s (killed)", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Ok(std::process::Output {
        status,
        stdout: out_t.join().unwrap_or_default(),
        stderr: err_t.join().unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------------------------

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

/// A load run's figures, or why it failed.
type LoadRow = std::result::Result<Load, (&'static str, String)>;

fn print_tables(secs: u64, load: &[LoadRow], mem: &[Mem]) {
    let mem_of = |name: &str| mem.iter().find(|m| m.name == name);
    let kib = |v: f64| format!("{:.1}", v / 1024.0);
    println!();
    println!(
        "WebSocket-to-TCP bridges, loopback, one run. proxy_load: bulk = {BULK_MIB} MiB each way \
         in 64 KiB binary messages; round trips = one 64 B message in flight for {secs} s. \
         Memory = growth per open bridged connection with {IDLE_CONNS} idle connections opened \
         (each with its backend connection); websockify forks per connection: its whole process \
         tree, VmRSS summed and Pss summed."
    );
    println!();
    println!(
        "| bridge | bulk MB/s | round trips/s | bridge CPU s | open conns | VmRSS/conn KiB | Pss/conn KiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut names: Vec<&str> = load
        .iter()
        .map(|l| match l {
            Ok(l) => l.name,
            Err((n, _)) => n,
        })
        .collect();
    for m in mem {
        if !names.contains(&m.name) {
            names.push(m.name);
        }
    }
    for name in names {
        let l = load.iter().find(|l| match l {
            Ok(l) => l.name == name,
            Err((n, _)) => *n == name,
        });
        let (mbps, rtps, cpu) = match l {
            Some(Ok(l)) => (
                format!("{:.1}", l.mbps),
                format!("{:.0}", l.rtps),
                format!("{:.1}", l.cpu),
            ),
            Some(Err(_)) => ("failed".into(), "failed".into(), "-".into()),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let (live, rss, pss) = mem_of(name).map_or(("-".into(), "-".into(), "-".into()), |m| {
            (
                format!("{} of {IDLE_CONNS}", m.live),
                kib(m.rss_per_conn()),
                kib(m.pss_per_conn()),
            )
        });
        println!("| {name} | {mbps} | {rtps} | {cpu} | {live} | {rss} | {pss} |");
    }
    let ok = |name: &str| {
        load.iter().find_map(|l| match l {
            Ok(l) if l.name == name => Some(l),
            _ => None,
        })
    };
    for peer in ["websockify", "websocat"] {
        let (bulk, rt) = match (ok("wskit proxy"), ok(peer)) {
            (Some(w), Some(p)) => (ratio(w.mbps, p.mbps), ratio(w.rtps, p.rtps)),
            _ => ("-".into(), "-".into()),
        };
        // Memory: how many times less wskit needs per connection (Pss).
        let memr = match (mem_of("wskit proxy"), mem_of(peer)) {
            (Some(a), Some(b)) if a.pss_per_conn() > 0.0 => {
                format!("{:.1}x less", b.pss_per_conn() / a.pss_per_conn())
            }
            _ => "-".into(),
        };
        println!("| wskit/{peer} | {bulk} | {rt} | | | | {memr} |");
    }
    for l in load {
        if let Err((name, e)) = l {
            println!();
            println!("{name}: proxy_load failed: {e}");
        }
    }
    println!();
    println!("Raw memory readings (KiB, before -> after opening {IDLE_CONNS} idle connections):");
    println!();
    println!("| bridge | processes | VmRSS | Pss |");
    println!("|---|---:|---:|---:|");
    for m in mem {
        println!(
            "| {} | {} -> {} | {} -> {} | {} -> {} |",
            m.name,
            m.before.procs,
            m.after.procs,
            m.before.rss,
            m.after.rss,
            m.before.pss,
            m.after.pss
        );
    }
}
