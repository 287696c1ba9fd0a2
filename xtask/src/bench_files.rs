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
//! Then the tus door: the same file uploaded by Python tuspy (a client neither side wrote) to a
//! fresh `files-node serve` (tus at `/files/`) and to npm @tus/server with @tus/file-store (the
//! reference server, crates/proto-files/tests/peers/node), one after the other: MB/s of each,
//! the ratio (target >= 2x), each server's peak RSS, and the stored file's SHA-256 checked
//! against the source. Skipped with a note when python3 + tuspy or node + the npm packages are
//! missing (`pip install tuspy==1.1.0`; `npm ci` in that directory). One run on a shared
//! machine: figures, not assertions.

use std::{
    fs,
    io::Write as _,
    process::{Command, Stdio},
    time::Duration,
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

/// Chunk of tuspy's PATCH requests in the tus runs (the whole request body is in tuspy's
/// memory, not the servers').
const TUS_CHUNK: u64 = 16 << 20;

fn sha256_hex(path: &std::path::Path) -> Result<String> {
    let o = Command::new("sha256sum").arg(path).output()?;
    Ok(String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// One tus run: starts `server` (it prints `listening ADDR` or `listening PORT`), uploads
/// `src` with tuspy to the URL `url_of(first line)`, returns (MB/s, peak RSS KiB) after
/// checking the stored file (the only regular file under `dir` besides metadata) matches.
fn tus_run(
    mut server: Command,
    url_of: impl Fn(&str) -> Option<String>,
    src: &std::path::Path,
    dir: &std::path::Path,
    want: &str,
) -> Result<(f64, u64)> {
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
    let o = Command::new("python3")
        .args(["-c", TUSPY, &url])
        .arg(src)
        .arg(TUS_CHUNK.to_string())
        .output()
        .context("running tuspy")?;
    let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() || !line.starts_with("tus ") {
        bail!(
            "tuspy to {url} failed: {line} {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let secs: f64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("unexpected tuspy output: {line}"))?;
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
    if got != want {
        bail!(
            "{} holds SHA-256 {got}, the source {want}",
            stored.display()
        );
    }
    let _ = fs::remove_dir_all(dir);
    let mb = fs::metadata(src)?.len() as f64 / 1e6;
    Ok((mb / secs, hwm))
}

/// The tus rows (printed, and for the benchmark page), or why there are none.
fn tus_rows(
    bin: &std::path::Path,
    work: &std::path::Path,
    src: &std::path::Path,
) -> (Vec<String>, Vec<Row>) {
    let peers = root().join("crates/proto-files/tests/peers/node");
    let have_tuspy = Command::new("python3")
        .args(["-c", "import tusclient"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_tuspy {
        return (
            vec![
                "tus rows skipped: python3 with tuspy not found (pip install tuspy==1.1.0)".into(),
            ],
            Vec::new(),
        );
    }
    let have_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        && peers.join("node_modules/@tus/server").is_dir();
    let run = || -> Result<(Vec<String>, Vec<Row>)> {
        eprintln!(
            "
==> tus upload (tuspy) to files-node"
        );
        let want = sha256_hex(src)?;
        let dir = work.join("tus-wskit");
        fs::create_dir_all(&dir)?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&dir);
        let (ours, ours_rss) = tus_run(
            cmd,
            |l| {
                l.strip_prefix("listening ")
                    .map(|a| format!("http://{a}/files/"))
            },
            src,
            &dir,
            &want,
        )?;
        let mut rows = vec![format!(
            "tus wskit      {ours:8.1} MB/s                 server peak RSS {:6} MiB",
            ours_rss / 1024
        )];
        if !have_node {
            rows.push(format!(
                "tus @tus/server skipped: node or the npm packages not found (npm ci in {})",
                peers.display()
            ));
            return Ok((rows, Vec::new()));
        }
        eprintln!(
            "
==> tus upload (tuspy) to @tus/server"
        );
        let dir = work.join("tus-node");
        fs::create_dir_all(&dir)?;
        let mut cmd = Command::new("node");
        cmd.current_dir(&peers).arg("tus_server.mjs").arg(&dir);
        let (theirs, theirs_rss) = tus_run(
            cmd,
            |l| {
                l.strip_prefix("listening ")
                    .map(|p| format!("http://127.0.0.1:{p}/files"))
            },
            src,
            &dir,
            &want,
        )?;
        rows.push(format!(
            "tus @tus/server{theirs:8.1} MB/s                 server peak RSS {:6} MiB",
            theirs_rss / 1024
        ));
        rows.push(format!(
            "tus wskit / @tus/server  {:5.2}x (target >= 2x)",
            ours / theirs
        ));
        let page = vec![
            Row::vs(
                "tus upload (tuspy)",
                "MB/s",
                Better::HigherIsBetter,
                ("files-node", ours),
                ("@tus/server", theirs),
            ),
            Row::vs(
                "tus upload (tuspy), server peak RSS",
                "MiB",
                Better::LowerIsBetter,
                ("files-node", ours_rss as f64 / 1024.0),
                ("@tus/server", theirs_rss as f64 / 1024.0),
            ),
        ];
        Ok((rows, page))
    };
    run().unwrap_or_else(|e| (vec![format!("tus rows failed: {e:#}")], Vec::new()))
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
         a sink on the same server (our own baseline: the ratio is the cost of the protocol); \
         then a tus upload by Python tuspy to files-node and to @tus/server (skipped when \
         tuspy or the npm packages are missing)."
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
