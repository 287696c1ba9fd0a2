//! `cargo xtask bench [NAME]`: benchmarks.
//!
//! ```text
//! cargo xtask bench [micro] [--filter F]   criterion micro-benchmarks (wskit-benches)
//! cargo xtask bench echo [--secs 5] [--client-threads 1]
//!                                          wskit serve vs fastwebsockets vs tokio-tungstenite,
//!                                          with wskit bench and load-tungstenite, pinned
//! cargo xtask bench rss [--conns 10000]    server RSS per idle WebSocket connection
//! cargo xtask bench mqtt [--rate 1000] [--clients 1000]
//!                                          proto-mqtt vs rumqttc against mosquitto
//! cargo xtask bench files [--mib 1024] [--chunk 65536]
//!                                          proto-files at QoS 0/1/2 vs raw binary messages
//! cargo xtask bench cluster [--subscribers 10000] [--messages 100]
//!                                          three nodes on Redis / NATS vs Socket.IO 4 on Redis
//! cargo xtask bench all [--quick] [--only echo,rss]
//!                                          all of them in one go: target/bench/results.json,
//!                                          docs/benchmarks.md and docs/benchmarks/*.svg
//! cargo xtask bench report [--from FILE]   the page again from target/bench/results.json
//! ```
//!
//! `echo` builds release binaries, starts `wskit serve --threads 1` and the two peer echo
//! servers of the benches package (each on one current_thread runtime) on free loopback ports,
//! and drives each in turn with two load generators over the matrix 100x20 B, 10x1 KiB,
//! 200x16 KiB and 500x16 KiB: `wskit bench` (ours, the uWebSockets load_test protocol) and
//! `load-tungstenite` (tokio-tungstenite's client, one current_thread runtime: a client we did
//! not write, so that our generator cannot flatter our server). Both keep one masked binary
//! message in flight per connection. With taskset and two CPUs, every server is pinned to CPU 0
//! and the generator to CPU 1. It prints messages per second, the ratios of wskit to each peer
//! for each generator, and the CPU time each server and the generator used per message, so a
//! run where the generator saturated its CPU shows as such (and is named in the area's notes).
//!
//! `rss` opens `--conns` idle connections (`wskit bench --idle`) to each server and reports the
//! growth of the server's VmRSS divided by the connection count. Both sides run under
//! `ulimit -n 65536` (or the hard limit when lower).
//!
//! `WSKIT_BIN=PATH` uses a prebuilt `wskit` instead of building it. Every process is stopped by
//! its pid.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

#[path = "bench_all.rs"]
mod bench_all;
#[path = "bench_cluster.rs"]
mod bench_cluster;
#[path = "bench_files.rs"]
mod bench_files;

use crate::flags::Args;
use crate::proc::{
    Proc, cpu_secs, field as summary_field, free_port, idle_client, lines, rss_kib, target_dir,
    wait_listening, with_nofile,
};
use crate::report::{Area, Better, Row};
use crate::util::{cargo, have, step};
use anyhow::{Context, Result, bail};

pub(crate) fn main(args: &mut Args) -> Result<()> {
    let name = args.next_positional();
    match name.as_deref() {
        None | Some("micro") => {
            let filter = args.value("filter")?;
            args.finish()?;
            let mut cmd = cargo();
            cmd.args(["bench", "-p", "wskit-benches"]);
            if let Some(f) = filter {
                cmd.args(["--", &f]);
            }
            step("criterion benchmarks", &mut cmd)
        }
        Some("echo") => {
            let secs = args.number("secs", 5)?;
            let client_threads = args.number("client-threads", 1)?;
            args.finish()?;
            echo(secs, client_threads).map(drop)
        }
        Some("rss") => {
            let conns = args.number("conns", 10_000)?;
            args.finish()?;
            rss(conns).map(drop)
        }
        Some("http") => {
            let secs = args.number("secs", 5)?;
            let conns = args.number("conns", 50)?;
            args.finish()?;
            http(secs, conns).map(drop)
        }
        Some("proxy") => {
            let secs = args.number("secs", 5)?;
            args.finish()?;
            crate::bench_proxy::run(secs).map(drop)
        }
        Some("turn") => {
            args.finish()?;
            crate::turn::bench(false).map(drop)
        }
        Some("mqtt") => {
            let rate = args.number("rate", 1000)?;
            let clients = args.number("clients", 1000)?;
            args.finish()?;
            crate::bench_mqtt::run(rate, clients, false).map(drop)
        }
        Some("files") => {
            let mib = args.number("mib", 1024)?;
            let chunk = args.number("chunk", 65536)?;
            args.finish()?;
            bench_files::run(mib, chunk).map(drop)
        }
        Some("cluster") => bench_cluster::main(args),
        Some("broadcast") => crate::bench_broadcast::main(args),
        Some("all") => bench_all::all(args),
        Some("report") => bench_all::report(args),
        Some(other) => {
            bail!(
                "unknown benchmark `{other}` (known: micro, echo, rss, http, proxy, turn, mqtt, files, cluster, broadcast; all, report)"
            )
        }
    }
}

/// The `(connections, message size)` cells of the echo comparison.
const MATRIX: [(u64, u64); 4] = [(100, 20), (10, 1024), (200, 16 * 1024), (500, 16 * 1024)];

/// A server under test: a name and its command line, `{addr}` standing for `IP:PORT`.
struct ServerSpec {
    name: &'static str,
    program: PathBuf,
    args: Vec<&'static str>,
}

struct Binaries {
    wskit: PathBuf,
    servers: Vec<ServerSpec>,
}

/// Builds the release binaries (unless `WSKIT_BIN` names a prebuilt `wskit`; the peer servers
/// are always built) and checks that `wskit bench` exists.
fn binaries() -> Result<Binaries> {
    let prebuilt = std::env::var_os("WSKIT_BIN").map(PathBuf::from);
    let mut build = cargo();
    build.args(["build", "--release", "-p", "wskit-benches", "--bins"]);
    if prebuilt.is_none() {
        build.args(["-p", "wskit"]);
    }
    step("build release binaries", &mut build)?;
    let release = target_dir().join("release");
    let wskit = prebuilt.unwrap_or_else(|| release.join("wskit"));
    let help = Command::new(&wskit)
        .args(["bench", "--help"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", wskit.display()))?;
    if !help.status.success() {
        bail!("`wskit bench` is not available in {}", wskit.display());
    }
    let servers = vec![
        ServerSpec {
            name: "wskit",
            program: wskit.clone(),
            args: vec!["serve", "--threads", "1", "--listen", "{addr}"],
        },
        ServerSpec {
            name: "fastwebsockets",
            program: release.join("echo-fastwebsockets"),
            args: vec!["--listen", "{addr}"],
        },
        ServerSpec {
            name: "tungstenite",
            program: release.join("echo-tungstenite"),
            args: vec!["--listen", "{addr}"],
        },
    ];
    Ok(Binaries { wskit, servers })
}

/// Starts a server on a free port and waits until it accepts TCP connections.
fn start(spec: &ServerSpec) -> Result<(Proc, u16)> {
    let args: Vec<String> = spec.args.iter().map(|a| (*a).to_owned()).collect();
    start_args(spec.name, &spec.program, &args)
}

/// One cell of the echo matrix against one server.
struct Cell {
    msgs_per_sec: f64,
    server_us_per_msg: Option<f64>,
    server_cpu_share: Option<f64>,
    client_cpu_share: Option<f64>,
}

/// The load generator of a cell: `wskit bench` (with its thread count), or one of the
/// single-threaded client generators of the benches crate (`load-wsclient`, `load-tungstenite`),
/// which take the same flags and print the same summary line.
enum Generator<'a> {
    WskitBench { wskit: &'a Path, threads: u64 },
    Load(&'a Path),
}

impl Generator<'_> {
    /// The generator's name in tables and row labels.
    fn name(&self) -> String {
        match self {
            Self::WskitBench { .. } => "wskit bench".to_owned(),
            Self::Load(program) => program
                .file_name()
                .map_or_else(|| "load".to_owned(), |n| n.to_string_lossy().into_owned()),
        }
    }
}

/// The CPU every server under test is pinned to, and the one the load generator is pinned to
/// (`taskset -c`), so that neither takes the other's core.
const SERVER_CPU: &str = "0";
const GENERATOR_CPU: &str = "1";

/// Whether servers and generators are pinned: taskset is there and the machine has two CPUs.
fn pinning() -> bool {
    have("taskset") && std::thread::available_parallelism().map_or(0, usize::from) >= 2
}

/// `program args` under `taskset -c CPU` when `cpu` is given. taskset executes the program in
/// its own process, so the pid (CPU time, RSS) is the program's.
fn pinned(cpu: Option<&str>, program: &Path, args: Vec<String>) -> (PathBuf, Vec<String>) {
    match cpu {
        Some(cpu) => {
            let mut line = vec![
                "-c".to_owned(),
                cpu.to_owned(),
                program.to_string_lossy().into_owned(),
            ];
            line.extend(args);
            (PathBuf::from("taskset"), line)
        }
        None => (program.to_path_buf(), args),
    }
}

/// Starts a server (on [`SERVER_CPU`] when `pin`) on a free port and waits until it accepts TCP
/// connections.
fn start_pinned(spec: &ServerSpec, pin: bool) -> Result<(Proc, u16)> {
    let args: Vec<String> = spec.args.iter().map(|a| (*a).to_owned()).collect();
    let (program, args) = pinned(pin.then_some(SERVER_CPU), &spec.program, args);
    start_args(spec.name, &program, &args)
}

/// The 1-minute load average (`uptime`), for the record of a noisy run.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// Runs one cell: the generator (on `cpu` when given) against the server on `port`.
fn run_cell(
    generator: &Generator<'_>,
    server: &Proc,
    port: u16,
    (conns, size): (u64, u64),
    secs: u64,
    cpu: Option<&str>,
) -> Result<Cell> {
    let mut args: Vec<String> = vec![
        format!("ws://127.0.0.1:{port}/echo"),
        "--conns".into(),
        conns.to_string(),
        "--size".into(),
        size.to_string(),
        "--secs".into(),
        secs.to_string(),
    ];
    let (program, client_threads) = match generator {
        Generator::WskitBench { wskit, threads } => {
            args.splice(0..0, ["bench".to_owned()]);
            args.extend([
                "--interval".into(),
                secs.to_string(),
                "--threads".into(),
                threads.to_string(),
            ]);
            (*wskit, *threads)
        }
        Generator::Load(program) => (*program, 1),
    };
    // Pinned to one CPU, the generator's threads share it: its busy share is of that CPU.
    let client_cpus = if cpu.is_some() { 1 } else { client_threads };
    let (program, args) = pinned(cpu, program, args);
    let server_cpu = cpu_secs(server.pid());
    let mut client = Proc::new(
        with_nofile(&program, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?,
    );
    let stdout = client.child.stdout.take().context("client stdout")?;
    let lines_rx = lines(stdout);
    // Sample the generator's CPU time while it runs (it is gone once it has printed).
    let mut client_cpu = None;
    let mut measuring_since = None;
    let mut server_since = server_cpu;
    let mut summary = None;
    let deadline = Instant::now() + Duration::from_secs(secs + 120);
    while summary.is_none() {
        match lines_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.starts_with("connected:") => {
                measuring_since = cpu_secs(client.pid());
                // The server's CPU from here on: the measured echoes, not the handshakes.
                server_since = cpu_secs(server.pid());
            }
            Ok(line) if line.starts_with("summary:") => summary = Some(line),
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() > deadline {
                    bail!("the generator did not finish within {} s", secs + 120);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if summary.is_none()
            && let Some(now) = cpu_secs(client.pid())
        {
            client_cpu = Some(now);
        }
    }
    let server_cpu = server_since.zip(cpu_secs(server.pid())).map(|(a, b)| b - a);
    let status = client.child.wait()?;
    let Some(summary) = summary else {
        bail!("the generator printed no summary ({status})");
    };
    if !status.success() {
        bail!("the generator failed ({status}): {summary}");
    }
    let msgs_per_sec = summary_field(&summary, "msgs_per_sec").context("msgs_per_sec")?;
    let messages = summary_field(&summary, "messages").unwrap_or(0.0);
    let run_secs = summary_field(&summary, "secs").unwrap_or(secs as f64);
    Ok(Cell {
        msgs_per_sec,
        server_us_per_msg: server_cpu
            .filter(|_| messages > 0.0)
            .map(|c| c * 1e6 / messages),
        server_cpu_share: server_cpu.map(|c| c / run_secs),
        client_cpu_share: client_cpu
            .zip(measuring_since)
            .map(|(end, start)| (end - start) / run_secs / client_cpus as f64),
    })
}

fn label((conns, size): (u64, u64)) -> String {
    if size >= 1024 && size % 1024 == 0 {
        format!("{conns}x{}KiB", size / 1024)
    } else {
        format!("{conns}x{size}B")
    }
}

/// The row label of a cell measured with generator number `g` (0: `wskit bench`, whose rows
/// keep the plain cell label of earlier runs).
fn case_label(g: usize, name: &str, cell: (u64, u64)) -> String {
    if g == 0 {
        label(cell)
    } else {
        format!("{} ({name})", label(cell))
    }
}

/// A generator busier than this (of its CPU) may be what limits a cell.
const GENERATOR_SATURATED: f64 = 0.9;

fn echo(secs: u64, client_threads: u64) -> Result<Vec<Area>> {
    if secs == 0 || client_threads == 0 {
        bail!("--secs and --client-threads must be at least 1");
    }
    let bins = binaries()?;
    let load_tungstenite = target_dir().join("release").join("load-tungstenite");
    // Ours, and an independent one: a client we did not write (tokio-tungstenite's).
    let generators = [
        Generator::WskitBench {
            wskit: &bins.wskit,
            threads: client_threads,
        },
        Generator::Load(&load_tungstenite),
    ];
    let gen_names: Vec<String> = generators.iter().map(Generator::name).collect();
    let pin = pinning();
    let cpu = pin.then_some(GENERATOR_CPU);
    let load_before = load_average();
    eprintln!(
        "==> echo: load average {load_before}; {}",
        if pin {
            "servers pinned to CPU 0, generators to CPU 1"
        } else {
            "not pinned (no taskset or one CPU)"
        }
    );
    // Every server runs for the whole matrix (idle while another is measured); the cells are
    // interleaved (cell, generator, server) so that a change in the machine's load falls on
    // every server alike.
    let mut servers = Vec::new();
    for spec in &bins.servers {
        servers.push(start_pinned(spec, pin)?);
    }
    // results[generator][server][cell]
    let mut results: Vec<Vec<Vec<Cell>>> = generators
        .iter()
        .map(|_| bins.servers.iter().map(|_| Vec::new()).collect())
        .collect();
    for cell in MATRIX {
        for (g, generator) in generators.iter().enumerate() {
            for (s, spec) in bins.servers.iter().enumerate() {
                let (server, port) = &servers[s];
                eprintln!(
                    "==> {} {} with {} for {secs} s",
                    spec.name,
                    label(cell),
                    gen_names[g]
                );
                let r = run_cell(generator, server, *port, cell, secs, cpu).with_context(|| {
                    format!("{} {} with {}", spec.name, label(cell), gen_names[g])
                })?;
                eprintln!("    {:.0} msgs/s", r.msgs_per_sec);
                results[g][s].push(r);
            }
        }
    }
    drop(servers);
    let load_after = load_average();

    let names: Vec<&str> = bins.servers.iter().map(|s| s.name).collect();
    let mut area = Area::new(
        "echo",
        "WebSocket echo server",
        &format!("cargo xtask bench echo --secs {secs} --client-threads {client_threads}"),
    );
    let pinning_note = if pin {
        "every server pinned to CPU 0 and the generator to CPU 1 (taskset)"
    } else {
        "not pinned (no taskset, or one CPU)"
    };
    area.note(format!(
        "Messages per second with two load generators, each keeping one masked binary message \
         in flight per connection: `wskit bench` (ours; {client_threads} thread(s)) and \
         `load-tungstenite` (tokio-tungstenite's client on one current_thread runtime, a \
         client we did not write; its rows carry its name). {secs} s per cell, cells \
         interleaved across servers; every server on one current_thread runtime; \
         {pinning_note}. Server CPU is the server's CPU time per echoed message, counted once \
         every connection is open. Load average {load_before} before, {load_after} after."
    ));
    let mut saturated = Vec::new();
    for (g, gen_rows) in results.iter().enumerate() {
        for (s, row) in gen_rows.iter().enumerate() {
            for (i, c) in row.iter().enumerate() {
                if c.client_cpu_share.is_some_and(|b| b > GENERATOR_SATURATED) {
                    saturated.push(format!(
                        "{} against {} ({:.0}%)",
                        case_label(g, &gen_names[g], MATRIX[i]),
                        names[s],
                        c.client_cpu_share.unwrap_or(0.0) * 100.0
                    ));
                }
            }
        }
    }
    if saturated.is_empty() {
        area.note(format!(
            "No generator was busier than {:.0}% of its CPU in any cell: the servers, not the \
             generators, set the rates.",
            GENERATOR_SATURATED * 100.0
        ));
    } else {
        area.note(format!(
            "Generator busier than {:.0}% of its CPU (the rate may understate the server): {}.",
            GENERATOR_SATURATED * 100.0,
            saturated.join(", ")
        ));
    }
    for (g, gen_rows) in results.iter().enumerate() {
        for (i, cell) in MATRIX.iter().enumerate() {
            for (p, peer) in names.iter().enumerate().skip(1) {
                area.rows.push(Row::vs(
                    case_label(g, &gen_names[g], *cell),
                    "msgs/s",
                    Better::HigherIsBetter,
                    ("wskit", gen_rows[0][i].msgs_per_sec),
                    (peer, gen_rows[p][i].msgs_per_sec),
                ));
            }
        }
    }
    for (g, gen_rows) in results.iter().enumerate() {
        for (i, cell) in MATRIX.iter().enumerate() {
            for (p, peer) in names.iter().enumerate().skip(1) {
                if let (Some(ours), Some(theirs)) = (
                    gen_rows[0][i].server_us_per_msg,
                    gen_rows[p][i].server_us_per_msg,
                ) {
                    area.rows.push(Row::vs(
                        format!("{} server CPU", case_label(g, &gen_names[g], *cell)),
                        "µs/msg",
                        Better::LowerIsBetter,
                        ("wskit", ours),
                        (peer, theirs),
                    ));
                }
            }
        }
    }
    for (g, gen_rows) in results.iter().enumerate() {
        print_echo_tables(&gen_names[g], &names, gen_rows, secs);
    }
    println!();
    println!(
        "({pinning_note}; load average {load_before} before, {load_after} after. A server near \
         100% busy is the limit of its cell; when the generator is near 100% busy instead, \
         msgs/s understates that server, and CPU per message compares the implementations \
         either way)"
    );
    for s in &saturated {
        println!("generator saturated: {s}");
    }
    let clients = clients(&bins, secs, pin)?;
    Ok(vec![area, clients])
}

/// The throughput and CPU tables of one generator (`rows[server][cell]`, wskit first).
fn print_echo_tables(generator: &str, names: &[&str], rows: &[Vec<Cell>], secs: u64) {
    println!();
    println!(
        "Echo throughput with {generator}, messages per second ({secs} s per cell; every server \
         on one thread)"
    );
    println!();
    let peers: Vec<String> = names.iter().skip(1).map(|p| format!("wskit/{p}")).collect();
    println!(
        "| conns x size | {} | {} |",
        names.join(" | "),
        peers.join(" | ")
    );
    println!(
        "|---|{}{}",
        "---:|".repeat(names.len()),
        "---:|".repeat(peers.len())
    );
    for (i, cell) in MATRIX.iter().enumerate() {
        let rates: Vec<f64> = rows.iter().map(|row| row[i].msgs_per_sec).collect();
        let cols: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        let ratios: Vec<String> = rates
            .iter()
            .skip(1)
            .map(|r| format!("{:.2}", rates[0] / r))
            .collect();
        println!(
            "| {} | {} | {} |",
            label(*cell),
            cols.join(" | "),
            ratios.join(" | ")
        );
    }
    println!();
    println!(
        "Server CPU time per message (us) with {generator}; CPU use of each server (its one \
         thread) and of the generator, in server order"
    );
    println!();
    println!(
        "| conns x size | {} | servers busy | generator busy |",
        names.join(" | ")
    );
    println!("|---|{}---|---|", "---:|".repeat(names.len()));
    let fmt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or_else(|| "-".to_owned(), f);
    let pct = |v: f64| format!("{:.0}%", v * 100.0);
    for (i, cell) in MATRIX.iter().enumerate() {
        let cols: Vec<String> = rows
            .iter()
            .map(|row| fmt(row[i].server_us_per_msg, &|v| format!("{v:.2}")))
            .collect();
        let server_busy: Vec<String> = rows
            .iter()
            .map(|row| fmt(row[i].server_cpu_share, &pct))
            .collect();
        let client_busy: Vec<String> = rows
            .iter()
            .map(|row| fmt(row[i].client_cpu_share, &pct))
            .collect();
        println!(
            "| {} | {} | {} | {} |",
            label(*cell),
            cols.join(" | "),
            server_busy.join(" / "),
            client_busy.join(" / ")
        );
    }
}

/// The same load driven through ws-client and through tokio-tungstenite's client against
/// `wskit serve` (one thread): the client side of the comparison.
fn clients(bins: &Binaries, secs: u64, pin: bool) -> Result<Area> {
    let release = target_dir().join("release");
    let generators = [
        ("ws-client", release.join("load-wsclient")),
        ("tungstenite", release.join("load-tungstenite")),
    ];
    let (server, port) = start_pinned(&bins.servers[0], pin)?;
    let cpu = pin.then_some(GENERATOR_CPU);
    let mut rows: Vec<Vec<Cell>> = generators.iter().map(|_| Vec::new()).collect();
    // Interleaved, as in the server comparison.
    for cell in MATRIX {
        for (g, (name, program)) in generators.iter().enumerate() {
            eprintln!("==> client {name} {} for {secs} s", label(cell));
            let r = run_cell(&Generator::Load(program), &server, port, cell, secs, cpu)
                .with_context(|| format!("client {name} {}", label(cell)))?;
            eprintln!("    {:.0} msgs/s", r.msgs_per_sec);
            rows[g].push(r);
        }
    }
    drop(server);
    let mut area = Area::new(
        "client",
        "WebSocket client",
        &format!("cargo xtask bench echo --secs {secs}"),
    );
    area.note(format!(
        "Messages per second through ws-client and through tokio-tungstenite's client against \
         `wskit serve` (one thread), each generator on one thread with the same driver around \
         each client; {secs} s per cell{}.",
        if pin {
            "; the server pinned to CPU 0, the generator to CPU 1"
        } else {
            ""
        }
    ));
    for (i, cell) in MATRIX.iter().enumerate() {
        area.rows.push(Row::vs(
            label(*cell),
            "msgs/s",
            Better::HigherIsBetter,
            ("ws-client", rows[0][i].msgs_per_sec),
            ("tungstenite client", rows[1][i].msgs_per_sec),
        ));
    }
    println!();
    println!(
        "Client throughput against wskit serve (one thread), messages per second ({secs} s per \
         cell; each generator on one thread, the same driver around each client)"
    );
    println!();
    println!("| conns x size | ws-client | tungstenite | ws-client/tungstenite | generator busy |");
    println!("|---|---:|---:|---:|---|");
    for (i, cell) in MATRIX.iter().enumerate() {
        let (a, b) = (&rows[0][i], &rows[1][i]);
        let busy = |c: &Cell| {
            c.client_cpu_share
                .map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0))
        };
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {} / {} |",
            label(*cell),
            a.msgs_per_sec,
            b.msgs_per_sec,
            a.msgs_per_sec / b.msgs_per_sec,
            busy(a),
            busy(b)
        );
    }
    Ok(area)
}

/// Opens `conns` idle connections to the server and returns the RSS growth per connection.
fn rss_of(wskit: &Path, server: &Proc, port: u16, conns: u64) -> Result<(u64, u64, f64)> {
    std::thread::sleep(Duration::from_millis(500));
    let before = rss_kib(server.pid())?;
    let client = idle_client(wskit, &format!("ws://127.0.0.1:{port}/echo"), conns, &[])?;
    // Let the server finish any per-connection work, then read until RSS is stable.
    let mut after = rss_kib(server.pid())?;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(500));
        let now = rss_kib(server.pid())?;
        if now == after {
            break;
        }
        after = now;
    }
    drop(client);
    Ok((
        before,
        after,
        after.saturating_sub(before) as f64 * 1024.0 / conns as f64,
    ))
}

fn rss(conns: u64) -> Result<Area> {
    if conns == 0 {
        bail!("--conns must be at least 1");
    }
    let bins = binaries()?;
    let mut rows = Vec::new();
    for spec in &bins.servers {
        eprintln!("==> {}: {conns} idle connections", spec.name);
        let (server, port) = start(spec)?;
        let row = rss_of(&bins.wskit, &server, port, conns)
            .with_context(|| format!("{} with {conns} connections", spec.name))?;
        drop(server);
        rows.push((spec.name, row));
    }
    println!();
    println!(
        "Server RSS with {conns} idle WebSocket connections (VmRSS; every server on one thread)"
    );
    println!();
    println!("| server | RSS before (KiB) | RSS after (KiB) | bytes per connection |");
    println!("|---|---:|---:|---:|");
    for (name, (before, after, per)) in &rows {
        println!("| {name} | {before} | {after} | {per:.0} |");
    }
    let mut area = Area::new(
        "rss",
        "Memory per idle WebSocket connection",
        &format!("cargo xtask bench rss --conns {conns}"),
    );
    area.note(format!(
        "Growth of the server's VmRSS with {conns} idle WebSocket connections, divided by \
         {conns}; every server on one thread."
    ));
    let case = format!("{conns} idle connections");
    if let Some((_, (_, _, ours))) = rows.first() {
        for (name, (_, _, theirs)) in rows.iter().skip(1) {
            area.rows.push(Row::vs(
                case.clone(),
                "B/conn",
                Better::LowerIsBetter,
                ("wskit", *ours),
                (name, *theirs),
            ));
        }
    }
    Ok(area)
}

/// The static files both HTTP servers serve: `(name, size)`.
const HTTP_FILES: [(&str, usize); 3] = [
    ("index.html", 612),
    ("small.bin", 16 * 1024),
    ("large.bin", 1 << 20),
];

/// `cargo xtask bench http`: static-file requests per second with `wrk`, wskit serve --root
/// against nginx on the same directory, both on one worker thread, keep-alive on.
fn http(secs: u64, conns: u64) -> Result<Area> {
    for tool in ["wrk", "nginx"] {
        let found = have(tool) || Path::new("/usr/sbin").join(tool).is_file();
        if !found {
            bail!("{tool} not found: apt-get install -y wrk nginx");
        }
    }
    if secs == 0 || conns == 0 {
        bail!("--secs and --conns must be at least 1");
    }
    let bins = binaries()?;
    let work = target_dir().join("bench-http");
    let docroot = work.join("root");
    fs::create_dir_all(&docroot)?;
    for (name, size) in HTTP_FILES {
        let body: Vec<u8> = (0..size).map(|i| b"wskit static file\n"[i % 18]).collect();
        fs::write(docroot.join(name), body)?;
    }
    let wskit_args: Vec<String> = ["serve", "--threads", "1", "--listen", "{addr}", "--root"]
        .into_iter()
        .map(str::to_owned)
        .chain([docroot.to_string_lossy().into_owned()])
        .collect();
    // Rounds alternate which server goes first; each figure is the median of its rounds, so
    // that a burst of load on the shared machine moves one round, not the result. The CPU
    // time each server used per request (utime + stime over all rounds) does not depend on
    // how fast wrk, on its one thread, could ask.
    const ROUNDS: usize = 3;
    let (wskit_proc, wskit_port) = start_args("wskit", &bins.wskit, &wskit_args)?;
    let (nginx_proc, nginx_port) = start_nginx(&work, &docroot)?;
    let servers = [(&wskit_proc, wskit_port), (&nginx_proc, nginx_port)];
    // Per file and server: the rounds' req/s, then CPU seconds and requests in all.
    let mut rate: Vec<[Vec<f64>; 2]> = HTTP_FILES.iter().map(|_| Default::default()).collect();
    let mut cpu = [[(0f64, 0f64); 2]; HTTP_FILES.len()];
    for round in 0..ROUNDS {
        for (f, (name, _)) in HTTP_FILES.iter().enumerate() {
            for k in 0..2 {
                let s = if round % 2 == 0 { k } else { 1 - k };
                let (proc, port) = servers[s];
                let before = cpu_secs(proc.pid());
                let rps = wrk(port, name, secs, conns)?;
                if let Some((a, b)) = before.zip(cpu_secs(proc.pid())) {
                    cpu[f][s].0 += b - a;
                    cpu[f][s].1 += rps * secs as f64;
                }
                rate[f][s].push(rps);
            }
        }
    }
    drop(wskit_proc);
    drop(nginx_proc);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let us_per_req = |(secs, reqs): (f64, f64)| (reqs > 0.0).then(|| secs / reqs * 1e6);
    println!();
    println!(
        "Static files, requests per second (wrk -t1 -c{conns} -d{secs}s, keep-alive, median of \
         {ROUNDS} rounds; each server on one worker thread, the same directory), and each \
         server's CPU time per request"
    );
    println!();
    println!("| file | wskit | nginx | wskit/nginx | wskit CPU/req | nginx CPU/req |");
    println!("|---|---:|---:|---:|---:|---:|");
    let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} us"));
    for (f, (name, _)) in HTTP_FILES.iter().enumerate() {
        let (a, b) = (median(&rate[f][0]), median(&rate[f][1]));
        println!(
            "| {name} | {a:.0} | {b:.0} | {:.2} | {} | {} |",
            a / b,
            us(us_per_req(cpu[f][0])),
            us(us_per_req(cpu[f][1]))
        );
    }
    let mut area = Area::new(
        "http",
        "Static files over HTTP/1.1",
        &format!("cargo xtask bench http --secs {secs} --conns {conns}"),
    );
    area.note(format!(
        "Requests per second, `wrk -t1 -c{conns} -d{secs}s` with keep-alive, the median of \
         {ROUNDS} rounds that alternate which server goes first; `wskit serve --root` and nginx \
         (sendfile on, no access log) each on one worker thread, serving the same directory. \
         wrk on its one thread is usually the limit for the small files: the CPU time each \
         server used per request (utime + stime over all rounds, lower is better) is the \
         figure the machine's load moves least."
    ));
    for (f, (name, size)) in HTTP_FILES.iter().enumerate() {
        let case = format!("{name} ({})", human(*size as u64));
        area.rows.push(Row::vs(
            case.clone(),
            "req/s",
            Better::HigherIsBetter,
            ("wskit", median(&rate[f][0])),
            ("nginx", median(&rate[f][1])),
        ));
        if let (Some(a), Some(b)) = (us_per_req(cpu[f][0]), us_per_req(cpu[f][1])) {
            area.rows.push(Row::vs(
                format!("{case} CPU"),
                "us/req",
                Better::LowerIsBetter,
                ("wskit", a),
                ("nginx", b),
            ));
        }
    }
    Ok(area)
}

/// A byte count as `612 B`, `16 KiB`, `1 MiB`.
fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// Starts `program args...` (with `{addr}` replaced) on a free port.
fn start_args(name: &str, program: &Path, args: &[String]) -> Result<(Proc, u16)> {
    let port = free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let args: Vec<String> = args.iter().map(|a| a.replace("{addr}", &addr)).collect();
    let child = with_nofile(program, &args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    wait_port(Proc::new(child), port, name)
}

fn wait_port(mut server: Proc, port: u16, name: &str) -> Result<(Proc, u16)> {
    match wait_listening(&mut server, port, Duration::from_secs(30))
        .with_context(|| format!("{name} did not start"))?
    {
        None => Ok((server, port)),
        Some(status) => bail!("{name} exited early ({status})"),
    }
}

/// nginx in the foreground as one process (no master, so that killing it leaves no worker
/// behind), no access log, sendfile on.
fn start_nginx(work: &Path, docroot: &Path) -> Result<(Proc, u16)> {
    let port = free_port()?;
    let prefix = work.join("nginx");
    fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\n\
             pid {pid};\nerror_log stderr warn;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n  \
             keepalive_requests 1000000;\n  default_type application/octet-stream;\n  \
             client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n  \
             fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  \
             scgi_temp_path {tmp}/scgi;\n  \
             server {{ listen 127.0.0.1:{port}; root {root}; }}\n}}\n",
            pid = prefix.join("nginx.pid").display(),
            tmp = prefix.display(),
            root = docroot.display(),
        ),
    )?;
    let program = if have("nginx") {
        PathBuf::from("nginx")
    } else {
        PathBuf::from("/usr/sbin/nginx")
    };
    let child = Command::new(&program)
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting nginx")?;
    wait_port(Proc::new(child), port, "nginx")
}

/// `wrk` against one URL; its `Requests/sec:` figure.
fn wrk(port: u16, file: &str, secs: u64, conns: u64) -> Result<f64> {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s")])
        .arg(format!("http://127.0.0.1:{port}/{file}"))
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}");
    }
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk saw errors against port {port}/{file}:\n{text}");
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output:\n{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_labels() {
        assert_eq!(label((100, 20)), "100x20B");
        assert_eq!(label((200, 16 * 1024)), "200x16KiB");
    }
}
