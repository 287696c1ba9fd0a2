//! `cargo xtask quickstart [--wskit PATH]`: the newcomer check. Every ```sh block of README.md's
//! `## Quick start` section runs, as written (ports included), against the built `wskit`.
//!
//! The binary is the debug build (`cargo build -p wskit`) unless `--wskit` names one; a directory
//! holding a `wskit` link to it goes first on PATH. Each block runs as `bash -e -o pipefail` in its
//! own process group and its own directory under target/quickstart/, with a time limit; afterwards
//! the whole group is stopped (SIGTERM, then SIGKILL), so servers a block leaves in the background
//! never outlive it and the next block finds its ports free. A block fails when it exits non-zero
//! or runs out of time; the run fails naming every such block (its `###` heading and README line)
//! with the end of its output (the full output is in target/quickstart/N/output.log).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{cargo, root, step};

/// Time one block may take.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// Time the block's leftover processes get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// One ```sh block of the quick start.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// The `###` heading above it.
    pub(crate) name: String,
    /// README line of the opening fence (1-based).
    pub(crate) line: usize,
    pub(crate) script: String,
}

/// The ```sh / ```bash blocks between `## Quick start` and the next `## ` heading.
pub(crate) fn blocks(readme: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut in_section = false;
    let mut name = String::new();
    let mut current: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        if let Some(block) = &mut current {
            if line.trim_start().starts_with("```") {
                out.extend(current.take());
            } else {
                block.script.push_str(line);
                block.script.push('\n');
            }
            continue;
        }
        if let Some(title) = line.strip_prefix("## ") {
            in_section = title.trim().eq_ignore_ascii_case("quick start");
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some(title) = line.strip_prefix("### ") {
            title.trim().clone_into(&mut name);
        } else if let Some(lang) = line.trim_start().strip_prefix("```")
            && matches!(lang.trim(), "sh" | "bash")
        {
            current = Some(Block {
                name: name.clone(),
                line: i + 1,
                script: String::new(),
            });
        }
    }
    out
}

/// Builds (or takes) the binary and runs every block; fails naming the blocks that broke.
pub(crate) fn run(bin: Option<PathBuf>) -> Result<()> {
    let readme = fs::read_to_string(root().join("README.md")).context("reading README.md")?;
    let blocks = blocks(&readme);
    if blocks.is_empty() {
        bail!("README.md has no ```sh block under `## Quick start`");
    }
    let bin = match bin {
        Some(bin) => bin,
        None => {
            step(
                "README quick start: cargo build -p wskit",
                cargo().args(["build", "-p", "wskit", "--locked"]),
            )?;
            crate::proc::target_dir().join("debug/wskit")
        }
    };
    let bin = fs::canonicalize(&bin).with_context(|| format!("no binary at {}", bin.display()))?;
    let work = crate::proc::target_dir().join("quickstart");
    let _ = fs::remove_dir_all(&work);
    let bin_dir = work.join("bin");
    fs::create_dir_all(&bin_dir)?;
    std::os::unix::fs::symlink(&bin, bin_dir.join("wskit"))
        .with_context(|| format!("linking {}", bin.display()))?;
    let path = match std::env::var_os("PATH") {
        Some(p) => {
            let mut dirs = vec![bin_dir.clone()];
            dirs.extend(std::env::split_paths(&p));
            std::env::join_paths(dirs)?
        }
        None => bin_dir.clone().into_os_string(),
    };
    eprintln!(
        "\n==> README quick start: {} blocks against {}",
        blocks.len(),
        bin.display()
    );
    let mut failed = Vec::new();
    for (n, block) in blocks.iter().enumerate() {
        let dir = work.join((n + 1).to_string());
        fs::create_dir_all(&dir)?;
        let started = Instant::now();
        match run_block(block, &dir, &path) {
            Ok(()) => eprintln!(
                "    ok   {} (README.md:{}, {:.1} s)",
                block.name,
                block.line,
                started.elapsed().as_secs_f64()
            ),
            Err(e) => {
                let log = fs::read_to_string(dir.join("output.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                eprintln!(
                    "    FAIL {} (README.md:{}): {e:#}\n      {}",
                    block.name,
                    block.line,
                    tail.join("\n      ")
                );
                failed.push(format!(
                    "\"{}\" (README.md:{}): {e:#}",
                    block.name, block.line
                ));
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} README quick-start block(s) broke:\n  {}\n(output under {})",
            failed.len(),
            failed.join("\n  "),
            work.display()
        );
    }
    eprintln!("==> README quick start: every block ran");
    Ok(())
}

/// Runs one block in its own process group and stops whatever it left behind.
fn run_block(block: &Block, dir: &Path, path: &std::ffi::OsStr) -> Result<()> {
    use std::os::unix::process::CommandExt as _;
    let script = dir.join("block.sh");
    fs::write(&script, &block.script)?;
    let log = fs::File::create(dir.join("output.log"))?;
    let mut child = Command::new("bash")
        .args(["-e", "-o", "pipefail"])
        .arg(&script)
        .current_dir(dir)
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting bash")?;
    let group = child.id();
    let deadline = Instant::now() + BLOCK_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stop_group(group);
    let _ = child.wait();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => bail!("exited with {s}"),
        None => bail!("still running after {} s", BLOCK_TIMEOUT.as_secs()),
    }
}

/// SIGTERM to the process group, SIGKILL to what is left after [`STOP_GRACE`].
fn stop_group(group: u32) {
    let target = format!("-{group}");
    let signal = |sig: &str| {
        Command::new("kill")
            .args([sig, "--", &target])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !signal("-TERM") {
        return;
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !group_alive(group) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal("-KILL");
    // Give the kernel a moment to release the ports.
    std::thread::sleep(Duration::from_millis(200));
}

/// Whether a process of the group still runs (zombies, which an init that does not reap may leave
/// behind, do not count: they hold no port).
fn group_alive(group: u32) -> bool {
    let Ok(dir) = fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(Result::ok).any(|entry| {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1);
        state != Some("Z") && pgrp == Some(group.to_string().as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_from_the_quick_start_section_only() {
        let readme = "\
# x

```sh
cargo xtask ci
```

## Quick start

### Echo

```sh
wskit serve &
kill %1
```

```text
not run
```

### Chat
```bash
echo hi
```

## Next
```sh
not run either
```
";
        let b = blocks(readme);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].name, "Echo");
        assert_eq!(b[0].line, 11);
        assert_eq!(b[0].script, "wskit serve &\nkill %1\n");
        assert_eq!(b[1].name, "Chat");
        assert_eq!(b[1].script, "echo hi\n");
    }
}
