//! `cargo xtask bench files [--mib 1024] [--chunk 65536]`: proto-files over loopback.
//!
//! Builds `files-node` (proto-files' benchmark and fault-test binary) in release mode, starts
//! one receiving server on a free port with its save directory under the target directory,
//! then, one after the other on that server: raw WebSocket binary messages of the chunk size to
//! a sink (the baseline), and the same number of bytes as a file at QoS 0, 1 and 2 (each file
//! streamed from disk, written to disk, SHA-256 checked end to end). Prints MB/s, the ratio to
//! the raw baseline, and the receiving server's peak RSS (VmHWM) after each run. One run on a
//! shared machine: figures, not assertions.

use std::{
    fs,
    io::Write as _,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::proc::{Proc, kib_field, lines, target_dir};
use crate::util::{cargo, step};

fn hwm_kib(pid: u32) -> u64 {
    kib_field(&format!("/proc/{pid}/status"), "VmHWM:").unwrap_or(0)
}

pub(crate) fn run(mib: u64, chunk: u64) -> Result<()> {
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

    eprintln!("\n==> raw WebSocket binary messages, {chunk} B each");
    let raw = run_node(&[
        "raw".into(),
        format!("ws://{addr}/raw"),
        bytes.to_string(),
        chunk.to_string(),
    ])?;
    let raw_rate = mb / secs_of(&raw, 2)?;
    let mut rows = vec![format!(
        "raw binary     {raw_rate:8.1} MB/s   ratio  1.00   server peak RSS {:6} MiB",
        hwm_kib(pid) / 1024
    )];
    for qos in 0..=2 {
        eprintln!("\n==> file at QoS {qos}");
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
            "files QoS {qos}    {rate:8.1} MB/s   ratio {:5.2}   server peak RSS {:6} MiB",
            rate / raw_rate,
            hwm_kib(pid) / 1024
        ));
        // The stored copy goes, to keep the disk use at two files.
        for e in fs::read_dir(work.join("srv"))?.flatten() {
            if e.path().is_file() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    drop(server);
    let _ = fs::remove_dir_all(&work);
    println!(
        "\nproto-files, {mib} MiB over loopback, chunk {chunk} B (receiver writes to disk; raw \
         discards), server idle RSS {} MiB:",
        idle / 1024
    );
    for r in rows {
        println!("  {r}");
    }
    Ok(())
}
