//! `cargo xtask ci [--no-autobahn] [--no-browser] [--no-fuzz] [--fuzz-secs N]`: every check CI runs, in order,
//! stopping at the first failure.

use crate::flags::Args;
use crate::util::{cargo, step};
use crate::{deps, fuzz};
use anyhow::Result;
use std::time::Instant;

pub(crate) fn main(args: &mut Args) -> Result<()> {
    let fuzz_secs = args.number("fuzz-secs", 10)?;
    let skip_fuzz = args.flag("no-fuzz");
    let skip_autobahn = args.flag("no-autobahn");
    let skip_browser = args.flag("no-browser");
    args.finish()?;
    let started = Instant::now();

    step("format", cargo().args(["fmt", "--all", "--", "--check"]))?;
    step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step("tests", cargo().args(["test", "--workspace", "--locked"]))?;
    step(
        "docs",
        cargo()
            .args(["doc", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-Dwarnings"),
    )?;
    deps::run()?;
    step(
        "benches build",
        cargo().args(["bench", "--workspace", "--no-run", "--locked"]),
    )?;
    if skip_autobahn {
        eprintln!("\n==> autobahn server: skipped (--no-autobahn)");
    } else {
        eprintln!("\n==> autobahn server (all 517 cases, about 8 minutes)");
        crate::autobahn::run(crate::autobahn::Side::Server)?;
        eprintln!("\n==> autobahn client (all 517 cases)");
        crate::autobahn::run(crate::autobahn::Side::Client)?;
    }
    if skip_browser {
        eprintln!("\n==> browser interop: skipped (--no-browser)");
    } else {
        eprintln!("\n==> browser interop (headless Chromium against wskit serve)");
        crate::interop::browser(None)?;
    }
    if skip_fuzz {
        eprintln!("\n==> fuzz smoke: skipped (--no-fuzz)");
    } else {
        fuzz::smoke(fuzz_secs)?;
    }
    eprintln!("\nci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}
