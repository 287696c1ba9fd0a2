//! `cargo xtask fuzz [--secs N]`: runs every cargo-fuzz target for N seconds.
//!
//! cargo-fuzz passes nightly-only `-Z` flags to rustc; `RUSTC_BOOTSTRAP=1` lets the stable toolchain
//! accept them, so no nightly toolchain is needed.

use crate::flags::Args;
use crate::util::{cargo, have, show, step};
use anyhow::{Context, Result, bail};
use std::process::Stdio;

pub(crate) fn main(args: &mut Args) -> Result<()> {
    let secs = args.number("secs", 10)?;
    let only = args.value("target")?;
    args.finish()?;
    if !have("cargo-fuzz") {
        bail!("cargo-fuzz is not installed: cargo install cargo-fuzz --locked");
    }
    run_targets(secs, only.as_deref())
}

/// The fuzz smoke run of `cargo xtask ci`: skipped with a notice when cargo-fuzz is missing
/// (returns whether it ran).
pub(crate) fn smoke(secs: u64) -> Result<bool> {
    if !have("cargo-fuzz") {
        eprintln!(
            "\n==> fuzz smoke: skipped, cargo-fuzz is not installed (cargo install cargo-fuzz)"
        );
        return Ok(false);
    }
    run_targets(secs, None)?;
    Ok(true)
}

fn targets() -> Result<Vec<String>> {
    let out = cargo()
        .args(["fuzz", "list"])
        .current_dir(crate::util::root().join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .context("cargo fuzz list")?;
    if !out.status.success() {
        bail!(
            "cargo fuzz list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

fn run_targets(secs: u64, only: Option<&str>) -> Result<()> {
    let fuzz_dir = crate::util::root().join("fuzz");
    let mut build = cargo();
    build
        .args(["fuzz", "build", "-O"])
        .current_dir(&fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1");
    step("fuzz build", &mut build)?;
    let mut summary = Vec::new();
    for target in targets()? {
        if only.is_some_and(|o| o != target) {
            continue;
        }
        let corpus = fuzz_dir.join("corpus").join(&target);
        std::fs::create_dir_all(&corpus)?;
        let seeds = fuzz_dir.join("seeds").join(&target);
        let mut cmd = cargo();
        cmd.args(["fuzz", "run", "-O", &target])
            .arg(&corpus)
            .args(seeds.is_dir().then_some(&seeds))
            .args([
                "--",
                &format!("-max_total_time={secs}"),
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ])
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        eprintln!("\n==> fuzz {target} ({secs} s)\n    $ {}", show(&cmd));
        let out = cmd
            .output()
            .with_context(|| format!("running fuzz target {target}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("fuzz target {target} failed:\n{}", tail.join("\n"));
        }
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map_or_else(|| "?".to_owned(), |n| n.trim().to_owned());
        eprintln!("    {target}: {runs} executions, no crash");
        summary.push(format!("{target}: {runs} executions in {secs} s"));
    }
    eprintln!("\nfuzz summary:\n  {}", summary.join("\n  "));
    Ok(())
}
