//! `cargo xtask ci [--no-autobahn] [--no-browser] [--no-fuzz] [--no-quickstart] [--no-tree-check]
//! [--fuzz-secs N]`: every check CI runs, in order, stopping at the first failure.
//!
//! `--no-tree-check` is for a working tree that others edit during the run (their edits would
//! count as changes made by the run); CI runs in a clone of its own and keeps the check.
//!
//! Two checks frame the run: it ends with a summary of what was skipped (tests whose real peer is
//! missing print a line starting with `SKIPPED:`, which this module collects from the test output,
//! and the steps turned off by a flag or skipped for a missing tool: Autobahn without Python 2.7,
//! the browser test without Chromium or node, the fuzz smoke run without cargo-fuzz; under
//! `WSKIT_REQUIRE_PEERS=1` these fail instead) with the one command that installs the peers, and it fails when the run changed the working tree (`git status --porcelain`): run
//! artefacts belong in target/, committed copies change only through an explicit `--update`.

use crate::flags::Args;
use crate::util::{cargo, root, show, step};
use crate::{deps, fuzz};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The command that installs every peer the tests and steps use, then runs this.
pub(crate) const INSTALL_PEERS: &str = "bash .ci/run";

/// How long each group of steps took, printed at the end so that a slow step shows.
#[derive(Debug)]
struct Laps {
    mark: Instant,
    laps: Vec<(&'static str, std::time::Duration)>,
}

impl Laps {
    fn new() -> Self {
        Self {
            mark: Instant::now(),
            laps: Vec::new(),
        }
    }

    /// Ends the current lap under `name`.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.laps.push((name, now - self.mark));
        self.mark = now;
    }

    fn render(&self) -> String {
        let mut s = String::from("ci: time per step");
        for (name, took) in &self.laps {
            s.push_str(&format!("\n  {:>5} s  {name}", took.as_secs()));
        }
        s
    }
}

/// What the run did not check, for the final summary.
#[derive(Debug, Default)]
pub(crate) struct Skips {
    /// `test name: reason` from the tests' `SKIPPED:` lines.
    pub(crate) tests: Vec<String>,
    /// Whole steps not run, with the reason.
    pub(crate) steps: Vec<String>,
}

impl Skips {
    /// The summary printed at the end of `cargo xtask ci`.
    pub(crate) fn render(&self) -> String {
        if self.tests.is_empty() && self.steps.is_empty() {
            return "ci: nothing skipped".to_owned();
        }
        let mut s = String::from("ci: skipped\n");
        if !self.tests.is_empty() {
            s.push_str(&format!(
                "  {} test(s), a real peer is missing:\n",
                self.tests.len()
            ));
            for t in &self.tests {
                s.push_str(&format!("    {t}\n"));
            }
        }
        for st in &self.steps {
            s.push_str(&format!("  step {st}\n"));
        }
        s.push_str(&format!(
            "to install the missing peers and run everything: {INSTALL_PEERS}"
        ));
        s
    }
}

pub(crate) fn main(args: &mut Args) -> Result<()> {
    let fuzz_secs = args.number("fuzz-secs", 10)?;
    let skip_fuzz = args.flag("no-fuzz");
    let skip_autobahn = args.flag("no-autobahn");
    let skip_browser = args.flag("no-browser");
    let skip_quickstart = args.flag("no-quickstart");
    let skip_tree_check = args.flag("no-tree-check");
    args.finish()?;
    let started = Instant::now();
    let tree_before = tree_state()?;
    let mut skips = Skips::default();
    let mut laps = Laps::new();
    let result = run_steps(
        &mut skips,
        &mut laps,
        fuzz_secs,
        skip_fuzz,
        skip_autobahn,
        skip_browser,
        skip_quickstart,
    );
    eprintln!("\n{}", laps.render());
    eprintln!("\n{}", skips.render());
    result?;
    if skip_tree_check {
        eprintln!("\n==> git status check: skipped (--no-tree-check)");
    } else {
        eprintln!("\n==> git status: did the run change the working tree?");
        check_tree(&tree_before)?;
        eprintln!("    no: the working tree is as the run found it");
    }
    eprintln!("\nci: all checks passed in {:.0?}", started.elapsed());
    Ok(())
}

fn run_steps(
    skips: &mut Skips,
    laps: &mut Laps,
    fuzz_secs: u64,
    skip_fuzz: bool,
    skip_autobahn: bool,
    skip_browser: bool,
    skip_quickstart: bool,
) -> Result<()> {
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
    laps.lap("format and clippy");
    skips.tests = tests(cargo().args(["test", "--workspace", "--locked", "--", "--show-output"]))?;
    // The second deflate engine (ws-frame's `deflate-zlib-rs` feature): the default build tests
    // miniz_oxide only.
    step(
        "ws-frame tests on the zlib-rs deflate engine",
        cargo().args([
            "test",
            "-p",
            "ws-frame",
            "--no-default-features",
            "--features",
            "deflate-zlib-rs",
            "--locked",
        ]),
    )?;
    laps.lap("tests (build and run)");
    if skip_quickstart {
        eprintln!("\n==> README quick start: skipped (--no-quickstart)");
        skips
            .steps
            .push("README quick start: --no-quickstart".into());
    } else {
        crate::quickstart::run(None)?;
    }
    laps.lap("README quick start");
    skips.steps.extend(crate::examples::run()?);
    laps.lap("examples");
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
    laps.lap("docs, dependency rule, benches build");
    let require = require_peers();
    let autobahn_missing = crate::autobahn::missing().filter(|_| !require);
    if skip_autobahn {
        eprintln!("\n==> autobahn server: skipped (--no-autobahn)");
        skips
            .steps
            .push("autobahn server and client: --no-autobahn".into());
    } else if let Some(why) = autobahn_missing {
        eprintln!("\n==> autobahn server and client: skipped, {why}");
        skips
            .steps
            .push(format!("autobahn server and client: {why}"));
    } else {
        eprintln!("\n==> autobahn server and client (all 517 cases each, side by side)");
        crate::autobahn::run_both()?;
    }
    laps.lap("Autobahn");
    let browser_missing = crate::interop::missing().filter(|_| !require);
    if skip_browser {
        eprintln!("\n==> browser interop: skipped (--no-browser)");
        skips.steps.push("browser interop: --no-browser".into());
    } else if let Some(why) = browser_missing {
        eprintln!("\n==> browser interop: skipped, {why}");
        skips.steps.push(format!("browser interop: {why}"));
    } else {
        eprintln!("\n==> browser interop (headless Chromium against wskit serve)");
        crate::interop::browser(None, false)?;
    }
    laps.lap("browser interop");
    if skip_fuzz {
        eprintln!("\n==> fuzz smoke: skipped (--no-fuzz)");
        skips.steps.push("fuzz smoke: --no-fuzz".into());
    } else if require && !crate::util::have("cargo-fuzz") {
        bail!("WSKIT_REQUIRE_PEERS=1 but cargo-fuzz is not installed (cargo install cargo-fuzz)");
    } else if !fuzz::smoke(fuzz_secs)? {
        skips
            .steps
            .push("fuzz smoke: cargo-fuzz is not installed".into());
    }
    laps.lap("fuzz smoke");
    Ok(())
}

/// Whether every peer must be there (`WSKIT_REQUIRE_PEERS=1`, as `.ci/run` sets): then a missing
/// one fails the run instead of being skipped, in the tests and here.
fn require_peers() -> bool {
    std::env::var("WSKIT_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Runs `cargo test ... -- --show-output`, passing its output through except the captured output
/// of passing tests, of which only the `SKIPPED:` lines are kept (returned as `test: reason`).
fn tests(cmd: &mut Command) -> Result<Vec<String>> {
    eprintln!("\n==> tests\n    $ {}", show(cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("tests: could not start {}", show(cmd)))?;
    let stdout = child.stdout.take().context("tests: no stdout")?;
    let mut filter = SkipFilter::default();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the test output")?;
        if filter.line(&line) {
            let _ = writeln!(out, "{line}");
        }
    }
    drop(out);
    let status = child.wait()?;
    if !status.success() {
        bail!("tests failed ({status})");
    }
    Ok(filter.skipped)
}

/// Reads libtest output line by line: inside a `successes:` section (what `--show-output` adds)
/// it hides the captured output and keeps the `SKIPPED:` lines with their test's name.
#[derive(Debug, Default)]
struct SkipFilter {
    in_successes: bool,
    test: String,
    skipped: Vec<String>,
}

impl SkipFilter {
    /// Whether the line is to be shown.
    fn line(&mut self, line: &str) -> bool {
        if line == "successes:" {
            self.in_successes = true;
            return false;
        }
        if line.starts_with("test result:") || line == "failures:" {
            self.in_successes = false;
            return true;
        }
        if !self.in_successes {
            return true;
        }
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|l| l.strip_suffix(" stdout ----"))
        {
            name.clone_into(&mut self.test);
        } else if let Some(why) = ["SKIPPED:", "skipping:"]
            .iter()
            .find_map(|p| line.trim_start().strip_prefix(p))
        {
            let entry = format!("{}: {}", self.test, why.trim());
            println!("SKIPPED {entry}");
            self.skipped.push(entry);
        }
        false
    }
}

/// Paths listed by `git status --porcelain`, with a digest of what each holds now.
type TreeState = BTreeMap<String, Option<u64>>;

fn tree_state() -> Result<TreeState> {
    let out = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=all"])
        .current_dir(root())
        .output()
        .context("running git status")?;
    if !out.status.success() {
        bail!(
            "git status failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut state = TreeState::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(path) = line.get(3..) else { continue };
        // `R  old -> new`: the new path is the one on disk.
        let path = path.rsplit(" -> ").next().unwrap_or(path).to_owned();
        let digest = std::fs::read(root().join(&path)).ok().map(|bytes| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            bytes.hash(&mut h);
            h.finish()
        });
        state.insert(path, digest);
    }
    Ok(state)
}

/// Fails naming the files the run changed. A clean tree must stay clean; a tree with uncommitted
/// work (a developer's run) must keep that work as it was.
fn check_tree(before: &TreeState) -> Result<()> {
    let after = tree_state()?;
    let changed = changed_paths(before, &after);
    if changed.is_empty() {
        return Ok(());
    }
    bail!(
        "the run changed the working tree (`git status --porcelain`{}):\n  {}\n\
         run artefacts belong in target/; committed copies change only with `--update` \
         (`cargo xtask autobahn server --update`, `cargo xtask interop browser --update`)",
        if before.is_empty() {
            " was empty before"
        } else {
            "; entries already there before the run count only when the run changed them"
        },
        changed.join("\n  ")
    )
}

fn changed_paths(before: &TreeState, after: &TreeState) -> Vec<String> {
    after
        .iter()
        .filter(|(path, digest)| before.get(*path) != Some(*digest))
        .map(|(path, _)| path.clone())
        .chain(
            before
                .keys()
                .filter(|p| !after.contains_key(*p))
                .map(|p| format!("{p} (restored or deleted)")),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_lines_are_collected_and_captured_output_hidden() {
        let output = "\
running 2 tests
test a ... ok
test b ... ok

successes:

---- a stdout ----
some log
SKIPPED: python3 websockets not installed

---- b stdout ----
noise


successes:
    a
    b

test result: ok. 2 passed; 0 failed
";
        let mut f = SkipFilter::default();
        let shown: Vec<&str> = output.lines().filter(|l| f.line(l)).collect();
        assert_eq!(
            f.skipped,
            ["a: python3 websockets not installed".to_owned()]
        );
        assert!(
            !shown
                .iter()
                .any(|l| l.contains("noise") || l.contains("log"))
        );
        assert!(shown.contains(&"test a ... ok"));
        assert!(shown.iter().any(|l| l.starts_with("test result:")));
    }

    #[test]
    fn the_summary_names_skips_and_the_install_command() {
        assert_eq!(Skips::default().render(), "ci: nothing skipped");
        let s = Skips {
            tests: vec!["t: no coturn".into()],
            steps: vec!["fuzz smoke: cargo-fuzz is not installed".into()],
        }
        .render();
        assert!(s.contains("1 test(s)") && s.contains("t: no coturn"));
        assert!(s.ends_with(INSTALL_PEERS), "{s}");
    }

    #[test]
    fn tree_changes_are_named() {
        let mut before = TreeState::new();
        before.insert("dirty.rs".into(), Some(1));
        before.insert("gone.rs".into(), Some(2));
        let mut after = TreeState::new();
        after.insert("dirty.rs".into(), Some(1));
        after.insert("docs/test-page.png".into(), Some(3));
        assert_eq!(
            changed_paths(&before, &after),
            [
                "docs/test-page.png".to_owned(),
                "gone.rs (restored or deleted)".to_owned()
            ]
        );
        assert!(changed_paths(&after, &after).is_empty());
    }
}
