//! `cargo xtask bench files [--mib 1024] [--chunk 65536]`: proto-files over loopback.
//!
//! Builds `files-node` (proto-files' benchmark and fault-test binary) in release mode, starts
//! one receiving server on a free port with its save directory under the target directory,
//! then, one after the other on that server: raw WebSocket binary messages of the chunk size to
//! a sink (the baseline), the same messages appended to a file by the server and synced (the
//! disk's share, no protocol, no hashing), and the same number of bytes as a file at QoS 0, 1
//! and 2 (each file streamed from disk, written to disk, SHA-256 checked end to end). Prints
//! MB/s, the ratio to the raw baseline, the receiving server's peak RSS (VmHWM) after each run,
//! the CPU seconds per GiB of the server and of the sending client, and the load average.
//!
//! Then the tus door: the same file uploaded to a fresh `files-node serve` (tus at `/files/`)
//! and to a fresh npm @tus/server with @tus/file-store (the reference server,
//! crates/proto-files/tests/peers/node), by three clients neither side wrote: Python tuspy in
//! 16 MiB PATCH requests (the issue's client), and curl (an independent, fast generator) in one
//! PATCH and in 16 MiB PATCHes on one connection. For each: MB/s, the server's CPU seconds per
//! GiB (utime + stime from /proc during the upload; the server-side figure when the client is
//! the bound), the client's CPU, the ratios (target >= 2x), the servers' peak RSS, and the
//! stored file's SHA-256 checked against the source. Rows are skipped with a note when
//! python3 + tuspy, curl, or node + the npm packages are missing (`pip install tuspy==1.1.0`;
//! `npm ci` in that directory). One run on a shared machine: figures, not assertions.

use std::{
    fs,
    io::Write as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::proc::{Proc, cpu_secs, kib_field, lines, target_dir};
use crate::report::{Area, Better, Row};
use crate::util::{cargo, root, step};

/// tuspy uploading FILE to URL in CHUNK-byte PATCH requests; prints the seconds it took.
const TUSPY: &str = r#"
import sys, time
from tusclient import client
c = client.TusClient(sys.argv[1])
u = c.uploader(sys.argv[2], chunk_size=int(sys.argv[3]), metadata={"filename": "tus.bin"})
t = time.time()
u.upload()
print("tus", time.time() - t, u.url)
"#;

/// Chunk of the chunked tus runs' PATCH requests (tuspy keeps a whole request body in memory,
/// the servers do not).
const TUS_CHUNK: u64 = 16 << 20;

/// Runs a client under `sh`, which prints its own /proc stat line to stderr after the client
/// exits: its cutime + cstime are the client's CPU seconds (the process and its children).
const CPU_WRAP: &str =
    r#""$@"; rc=$?; read -r s < /proc/$$/stat; echo "cpu-stat $s" >&2; exit $rc"#;

fn sha256_hex(path: &std::path::Path) -> Result<String> {
    let o = Command::new("sha256sum").arg(path).output()?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// The tus clients of the runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TusClient {
    /// Python tuspy 1.1.0 (the client the issue names), 16 MiB PATCH requests.
    Tuspy,
    /// curl: the whole file in one PATCH request (streamed from the file).
    CurlOne,
    /// curl: 16 MiB PATCH requests on one kept-alive connection (one curl process, `--next`).
    CurlChunks,
}

impl TusClient {
    fn label(self) -> &'static str {
        match self {
            Self::Tuspy => "tuspy, 16 MiB PATCHes",
            Self::CurlOne => "curl, one PATCH",
            Self::CurlChunks => "curl, 16 MiB PATCHes",
        }
    }
}

/// What one tus run measured.
#[derive(Clone, Copy, Debug)]
struct TusFigures {
    /// Source bytes / wall seconds of the upload, in MB/s.
    mbps: f64,
    /// Server CPU seconds (utime + stime) during the upload, per GiB uploaded.
    server_cpu: f64,
    /// Client CPU seconds (its processes) per GiB uploaded.
    client_cpu: f64,
    /// The server's peak RSS (VmHWM) after the upload, KiB.
    hwm_kib: u64,
}

/// CPU seconds of the reaped children (cutime + cstime) in a `cpu-stat` line of [`CPU_WRAP`].
fn wrapped_cpu(stderr: &str) -> Option<f64> {
    let line = stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("cpu-stat "))?;
    let fields: Vec<&str> = line.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields
        .get(13..15)?
        .iter()
        .map(|s| s.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks as f64 / 100.0)
}

/// Creates an upload of `size` bytes at `url` with curl; returns its absolute URL.
fn curl_create(url: &str, size: u64) -> Result<String> {
    let o = Command::new("curl")
        .args(["-s", "-i", "-X", "POST", "-H", "Tus-Resumable: 1.0.0"])
        .args(["-H", &format!("Upload-Length: {size}")])
        .args(["-H", "Upload-Metadata: filename dHVzLmJpbg==", url])
        .output()
        .context("running curl")?;
    let head = String::from_utf8_lossy(&o.stdout);
    let loc = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .with_context(|| format!("creation at {url} gave no Location: {head}"))?;
    if loc.starts_with("http") {
        return Ok(loc);
    }
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    Ok(format!("http://{authority}{loc}"))
}

/// The curl arguments of PATCH requests uploading `parts` (files, in order) to `loc`, one
/// process, `--next` between requests; each prints its status code.
fn curl_patches(loc: &str, parts: &[std::path::PathBuf]) -> Result<Vec<String>> {
    let mut args = Vec::new();
    let mut offset = 0u64;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            args.push("--next".to_string());
        }
        for a in [
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}\\n",
            "-X",
            "PATCH",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Content-Type: application/offset+octet-stream",
            "-H",
            "Expect:",
        ] {
            args.push(a.to_string());
        }
        args.push("-H".into());
        args.push(format!("Upload-Offset: {offset}"));
        args.push("-T".into());
        args.push(p.display().to_string());
        args.push(loc.to_string());
        offset += fs::metadata(p)?.len();
    }
    Ok(args)
}

/// One tus run: starts `server` (it prints `listening ADDR` or `listening PORT`), uploads
/// `src` with `client` to the URL `url_of(first line)`, checks that the stored file (the
/// largest regular file under `dir`) matches `want`, and returns the figures. `parts`: `src`
/// in [`TUS_CHUNK`] pieces (for [`TusClient::CurlChunks`]).
fn tus_run(
    mut server: Command,
    url_of: impl Fn(&str) -> Option<String>,
    client: TusClient,
    src: &std::path::Path,
    parts: &[std::path::PathBuf],
    dir: &std::path::Path,
    want: &str,
) -> Result<TusFigures> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let mut server = Proc::new(
        server
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the tus server")?,
    );
    let out = lines(server.child.stdout.take().context("server stdout")?);
    let first = out
        .recv_timeout(Duration::from_secs(30))
        .context("the tus server did not start")?;
    let url = url_of(&first).with_context(|| format!("unexpected server output: {first}"))?;
    let pid = server.pid();
    let size = fs::metadata(src)?.len();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", CPU_WRAP, "sh"]);
    match client {
        TusClient::Tuspy => {
            cmd.args(["python3", "-c", TUSPY, &url])
                .arg(src)
                .arg(TUS_CHUNK.to_string());
        }
        TusClient::CurlOne => {
            let loc = curl_create(&url, size)?;
            cmd.arg("curl").args(curl_patches(
                &loc,
                std::slice::from_ref(&src.to_path_buf()),
            )?);
        }
        TusClient::CurlChunks => {
            let loc = curl_create(&url, size)?;
            cmd.arg("curl").args(curl_patches(&loc, parts)?);
        }
    }
    let cpu0 = cpu_secs(pid).unwrap_or(0.0);
    let t = Instant::now();
    let o = cmd.output().context("running the tus client")?;
    let secs = t.elapsed().as_secs_f64();
    let server_cpu = cpu_secs(pid).unwrap_or(0.0) - cpu0;
    let stdout = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let ok = match client {
        TusClient::Tuspy => stdout.starts_with("tus "),
        _ => !stdout.is_empty() && stdout.lines().all(|l| l == "204"),
    };
    if !o.status.success() || !ok {
        bail!("{} to {url} failed: {stdout} {stderr}", client.label());
    }
    let client_cpu = wrapped_cpu(&stderr).context("no client CPU figure")?;
    let hwm = hwm_kib(pid);
    drop(server);
    // The stored upload: the largest regular file under dir, wherever the server keeps it.
    let mut biggest: Option<(u64, std::path::PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)?.flatten() {
            let p = e.path();
            let m = e.metadata()?;
            if m.is_dir() {
                stack.push(p);
            } else if biggest.as_ref().is_none_or(|(n, _)| m.len() > *n) {
                biggest = Some((m.len(), p));
            }
        }
    }
    let (_, stored) = biggest.context("the tus server stored nothing")?;
    let got = sha256_hex(&stored)?;
    let _ = fs::remove_dir_all(dir);
    if got != want {
        bail!(
            "{}: {} held SHA-256 {got}, the source {want}",
            client.label(),
            stored.display()
        );
    }
    let gib = size as f64 / f64::from(1u32 << 30);
    Ok(TusFigures {
        mbps: size as f64 / 1e6 / secs,
        server_cpu: server_cpu / gib,
        client_cpu: client_cpu / gib,
        hwm_kib: hwm,
    })
}

/// The tus rows (printed, and for the benchmark page), or why there are none: each client
/// (tuspy, curl in one PATCH, curl in 16 MiB PATCHes) uploads `src` to a fresh files-node and
/// to a fresh @tus/server; MB/s, server CPU seconds per GiB, client CPU, peak RSS.
fn tus_rows(
    bin: &std::path::Path,
    work: &std::path::Path,
    src: &std::path::Path,
) -> (Vec<String>, Vec<Row>) {
    let peers = root().join("crates/proto-files/tests/peers/node");
    let have = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut clients = Vec::new();
    let mut skipped = Vec::new();
    if have("python3", &["-c", "import tusclient"]) {
        clients.push(TusClient::Tuspy);
    } else {
        skipped.push(
            "tus tuspy rows skipped: python3 with tuspy not found (pip install tuspy==1.1.0)"
                .to_string(),
        );
    }
    if have("curl", &["--version"]) {
        clients.extend([TusClient::CurlOne, TusClient::CurlChunks]);
    } else {
        skipped.push("tus curl rows skipped: curl not found".to_string());
    }
    let have_node = have("node", &["--version"]) && peers.join("node_modules/@tus/server").is_dir();
    if !have_node {
        skipped.push(format!(
            "tus @tus/server rows skipped: node or the npm packages not found (npm ci in {})",
            peers.display()
        ));
    }
    let run = || -> Result<(Vec<String>, Vec<Row>)> {
        let want = sha256_hex(src)?;
        let parts_dir = work.join("tus-parts");
        let _ = fs::remove_dir_all(&parts_dir);
        fs::create_dir_all(&parts_dir)?;
        let mut parts = Vec::new();
        if clients.contains(&TusClient::CurlChunks) {
            let st = Command::new("split")
                .args(["-b", &TUS_CHUNK.to_string(), "-d", "-a", "5"])
                .arg(src)
                .arg(parts_dir.join("p"))
                .status()
                .context("running split")?;
            if !st.success() {
                bail!("split failed");
            }
            parts = fs::read_dir(&parts_dir)?
                .flatten()
                .map(|e| e.path())
                .collect();
            parts.sort();
        }
        let mut rows = skipped.clone();
        let mut page = Vec::new();
        let (mut ours_hwm, mut theirs_hwm) = (0u64, 0u64);
        for &client in &clients {
            eprintln!("\n==> tus upload ({}) to files-node", client.label());
            let mut cmd = Command::new(bin);
            let dir = work.join("tus-wskit");
            cmd.arg("serve").arg(&dir);
            let ours = tus_run(
                cmd,
                |l| {
                    l.strip_prefix("listening ")
                        .map(|a| format!("http://{a}/files/"))
                },
                client,
                src,
                &parts,
                &dir,
                &want,
            )?;
            ours_hwm = ours_hwm.max(ours.hwm_kib);
            rows.push(format!(
                "tus {:<22} wskit       {:7.1} MB/s  server {:5.2} CPU s/GiB  client {:5.2} CPU s/GiB",
                client.label(),
                ours.mbps,
                ours.server_cpu,
                ours.client_cpu
            ));
            if !have_node {
                page.push(Row::alone(
                    format!("tus upload ({})", client.label()),
                    "MB/s",
                    Better::HigherIsBetter,
                    ("files-node", ours.mbps),
                ));
                continue;
            }
            eprintln!("\n==> tus upload ({}) to @tus/server", client.label());
            let dir = work.join("tus-node");
            let mut cmd = Command::new("node");
            cmd.current_dir(&peers).arg("tus_server.mjs").arg(&dir);
            let theirs = tus_run(
                cmd,
                |l| {
                    l.strip_prefix("listening ")
                        .map(|p| format!("http://127.0.0.1:{p}/files"))
                },
                client,
                src,
                &parts,
                &dir,
                &want,
            )?;
            theirs_hwm = theirs_hwm.max(theirs.hwm_kib);
            rows.push(format!(
                "tus {:<22} @tus/server {:7.1} MB/s  server {:5.2} CPU s/GiB  client {:5.2} CPU s/GiB",
                client.label(),
                theirs.mbps,
                theirs.server_cpu,
                theirs.client_cpu
            ));
            rows.push(format!(
                "tus {:<22} wskit / @tus/server: {:5.2}x MB/s (target >= 2x), {:5.2}x less server CPU per byte",
                client.label(),
                ours.mbps / theirs.mbps,
                theirs.server_cpu / ours.server_cpu
            ));
            page.push(Row::vs(
                format!("tus upload ({})", client.label()),
                "MB/s",
                Better::HigherIsBetter,
                ("files-node", ours.mbps),
                ("@tus/server", theirs.mbps),
            ));
            page.push(Row::vs(
                format!("tus upload ({}), server CPU", client.label()),
                "CPU s/GiB",
                Better::LowerIsBetter,
                ("files-node", ours.server_cpu),
                ("@tus/server", theirs.server_cpu),
            ));
        }
        let _ = fs::remove_dir_all(&parts_dir);
        if !clients.is_empty() {
            rows.push(format!(
                "tus server peak RSS (largest of the runs): wskit {} MiB{}",
                ours_hwm / 1024,
                if have_node {
                    format!(", @tus/server {} MiB", theirs_hwm / 1024)
                } else {
                    String::new()
                }
            ));
            page.push(if have_node {
                Row::vs(
                    "tus upload, server peak RSS",
                    "MiB",
                    Better::LowerIsBetter,
                    ("files-node", ours_hwm as f64 / 1024.0),
                    ("@tus/server", theirs_hwm as f64 / 1024.0),
                )
            } else {
                Row::alone(
                    "tus upload, server peak RSS",
                    "MiB",
                    Better::LowerIsBetter,
                    ("files-node", ours_hwm as f64 / 1024.0),
                )
            });
        }
        Ok((rows, page))
    };
    run().unwrap_or_else(|e| {
        let _ = fs::remove_dir_all(work.join("tus-parts"));
        (vec![format!("tus rows failed: {e:#}")], Vec::new())
    })
}

/// User and system CPU seconds of this process's waited-for children (`cutime` + `cstime`).
fn children_cpu_secs() -> f64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name's closing parenthesis start at field 3 (state).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    // cutime and cstime are fields 16 and 17, in clock ticks (100 per second on Linux).
    f.get(13).copied().unwrap_or(0.0) / 100.0 + f.get(14).copied().unwrap_or(0.0) / 100.0
}

/// The one-minute load average.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn hwm_kib(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), "VmHWM:").unwrap_or(0)
}

pub(crate) fn run(mib: u64, chunk: u64) -> Result<Area> {
    step(
        "build files-node (release)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "proto-files",
            "--bin",
            "files-node",
        ]),
    )?;
    let bin = target_dir().join("release").join("files-node");
    let work = target_dir().join("bench-files");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(work.join("srv"))?;
    let src = work.join("bench.bin");
    let bytes = mib << 20;
    {
        eprintln!("\n==> writing a {mib} MiB source file");
        let mut f = fs::File::create(&src)?;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = vec![0u8; 1 << 20];
        for _ in 0..mib {
            for b in block.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
            }
            f.write_all(&block)?;
        }
    }
    let mut server = Proc::new(
        Command::new(&bin)
            .arg("serve")
            .arg(work.join("srv"))
            .stdout(Stdio::piped())
            .spawn()
            .context("starting files-node serve")?,
    );
    let out = lines(server.child.stdout.take().context("server stdout")?);
    let first = out
        .recv_timeout(Duration::from_secs(30))
        .context("the server did not start")?;
    let addr = first
        .strip_prefix("listening ")
        .context("unexpected server output")?
        .to_string();
    let pid = server.pid();
    let idle = hwm_kib(pid);

    // CPU seconds of the server, and of the waited-for children (the sending client), so far.
    let cpu_now = || (cpu_secs(pid).unwrap_or(0.0), children_cpu_secs());
    let run_node = |args: &[String]| -> Result<String> {
        let o = Command::new(&bin)
            .args(args)
            .output()
            .context("running files-node")?;
        let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if !o.status.success() || s.is_empty() {
            bail!(
                "files-node {} failed: {s} {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        Ok(s)
    };
    let secs_of = |line: &str, idx: usize| -> Result<f64> {
        line.split_whitespace()
            .nth(idx)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("unexpected output: {line}"))
    };
    let mb = bytes as f64 / 1e6;

    let gib = bytes as f64 / f64::from(1u32 << 30);
    // "server/client CPU s per GiB, load average" of a run that started at `before`.
    let cpu_since = |before: (f64, f64)| {
        let (s, c) = cpu_now();
        format!(
            "cpu s/GiB server {:4.2} client {:4.2}   load {}",
            (s - before.0) / gib,
            (c - before.1) / gib,
            load_average()
        )
    };

    eprintln!("\n==> raw WebSocket binary messages, {chunk} B each");
    let before = cpu_now();
    let raw = run_node(&[
        "raw".into(),
        format!("ws://{addr}/raw"),
        bytes.to_string(),
        chunk.to_string(),
    ])?;
    let raw_rate = mb / secs_of(&raw, 2)?;
    let mut rows = vec![format!(
        "raw binary     {raw_rate:8.1} MB/s   ratio  1.00   server peak RSS {:6} MiB   {}",
        hwm_kib(pid) / 1024,
        cpu_since(before)
    )];
    // The same messages appended to a file on the server and synced: what a file transfer
    // costs without its protocol and its SHA-256 (the disk's share of the gap).
    eprintln!("\n==> raw WebSocket binary messages written to disk, {chunk} B each");
    let before = cpu_now();
    let disk = run_node(&[
        "raw".into(),
        format!("ws://{addr}/rawdisk"),
        bytes.to_string(),
        chunk.to_string(),
    ])?;
    let disk_rate = mb / secs_of(&disk, 2)?;
    rows.push(format!(
        "raw to disk    {disk_rate:8.1} MB/s   ratio {:5.2}   server peak RSS {:6} MiB   {}",
        disk_rate / raw_rate,
        hwm_kib(pid) / 1024,
        cpu_since(before)
    ));
    let _ = fs::remove_file(work.join("srv").join("rawdisk.bin"));
    let mut area = Area::new(
        "files",
        "File transfer (proto-files, tus)",
        &format!("cargo xtask bench files --mib {mib} --chunk {chunk}"),
    );
    area.note(format!(
        "{mib} MiB over loopback in {chunk} B chunks. proto-files at QoS 0, 1 and 2 (streamed \
         from disk, written to disk, SHA-256 checked) against raw WebSocket binary messages to \
         a sink on the same server (our own baseline: the ratio is the cost of the protocol) \
         and to a file on the server (raw to disk); then tus uploads to files-node and to \
         @tus/server by three clients neither side wrote: Python tuspy in 16 MiB PATCHes, \
         curl in one PATCH and curl in 16 MiB PATCHes (each skipped when its client or the \
         npm packages are missing), with each server's CPU seconds per GiB."
    ));
    for qos in 0..=2 {
        eprintln!("\n==> file at QoS {qos}");
        let before = cpu_now();
        let line = run_node(&[
            "send".into(),
            format!("ws://{addr}/files"),
            src.display().to_string(),
            qos.to_string(),
            chunk.to_string(),
        ])?;
        if !line.starts_with("sent ") {
            bail!("QoS {qos}: {line}");
        }
        let rate = mb / secs_of(&line, 2)?;
        rows.push(format!(
            "files QoS {qos}    {rate:8.1} MB/s   ratio {:5.2}   server peak RSS {:6} MiB   {}   \
             {:4.2}x raw to disk",
            rate / raw_rate,
            hwm_kib(pid) / 1024,
            cpu_since(before),
            rate / disk_rate
        ));
        area.rows.push(Row::vs(
            format!("file at QoS {qos}"),
            "MB/s",
            Better::HigherIsBetter,
            ("proto-files", rate),
            ("raw messages (baseline)", raw_rate),
        ));
        // The stored copy goes, to keep the disk use at two files.
        // (not the metadata database the server holds open)
        for e in fs::read_dir(work.join("srv"))?.flatten() {
            if e.path().is_file() && !e.file_name().to_string_lossy().starts_with('.') {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    drop(server);
    let (tus_lines, tus_page) = tus_rows(&bin, &work, &src);
    rows.extend(tus_lines);
    area.rows.extend(tus_page);
    let _ = fs::remove_dir_all(&work);
    println!(
        "\nproto-files, {mib} MiB over loopback, chunk {chunk} B (receiver writes to disk; raw \
         discards), server idle RSS {} MiB:",
        idle / 1024
    );
    for r in rows {
        println!("  {r}");
    }
    Ok(area)
}
