//! Process helpers shared by the subcommands.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The workspace root (the parent of xtask/).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// `cargo` as invoked by the outer cargo (so the same toolchain), run from the workspace root.
pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Prints the step, runs the command with inherited stdio, fails on a non-zero exit.
pub(crate) fn step(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n==> {step}\n    $ {}", show(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("{step}: could not start {}", show(cmd)))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

/// Runs the command capturing stdout and stderr.
pub(crate) fn capture(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start {}", show(cmd)))
}

/// Whether an executable is on PATH (or is a cargo subcommand when it starts with `cargo-`).
pub(crate) fn have(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

/// The command line, for logs.
pub(crate) fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
