//! `cargo xtask deps`: the dependency rule of docs/architecture.md, checked with `cargo tree`.
//!
//! `cargo tree -i X` prints nothing (and exits 0) when X is not in the graph, and fails when X is not in
//! the lock file at all; both mean "does not depend", so the check tests the output, not the exit code.

use crate::util::{capture, cargo, root};
use anyhow::{Result, bail};

/// Sans-IO cores (L0) and synchronous glue (L1): never tokio, never sockets. `(crate, cargo tree args)`.
const NO_TOKIO: &[(&str, &[&str])] = &[
    ("ws-frame", &[]),
    ("ws-http", &[]),
    ("ws-tls", &[]),
    ("token-bucket", &[]),
    ("stun-turn", &["--no-default-features"]),
    ("proto-files", &["--no-default-features"]),
];

/// Runtime crates never depend on the application protocols above them.
const RUNTIMES: &[&str] = &["ws-server", "ws-client"];
const ABOVE_RUNTIMES: &[&str] = &[
    "proto-mqtt",
    "proto-files",
    "auth-oauth2-jwt",
    "stun-turn",
    "ws-proxy",
];

pub(crate) fn run() -> Result<()> {
    eprintln!("\n==> dependency rules");
    let members = members()?;
    let mut failures = Vec::new();
    let mut checked = 0;

    for (krate, extra) in NO_TOKIO {
        if !members.iter().any(|m| m == krate) {
            continue;
        }
        for banned in ["tokio", "mio", "socket2"] {
            checked += 1;
            if let Some(path) = depends_on(krate, extra, banned, "normal,build")? {
                failures.push(format!("{krate} must not depend on {banned}:\n{path}"));
            }
        }
    }
    for krate in RUNTIMES.iter().filter(|k| members.iter().any(|m| m == *k)) {
        for above in ABOVE_RUNTIMES {
            checked += 1;
            if let Some(path) = depends_on(krate, &[], above, "normal,build")? {
                failures.push(format!("{krate} must not depend on {above}:\n{path}"));
            }
        }
    }
    // ws-testkit is a dev-dependency only.
    for krate in members.iter().filter(|m| *m != "ws-testkit") {
        checked += 1;
        if let Some(path) = depends_on(krate, &[], "ws-testkit", "normal,build")? {
            failures.push(format!(
                "{krate} must use ws-testkit as a dev-dependency only:\n{path}"
            ));
        }
    }
    // Inside every crate, modules form layers: no circle of modules importing each other.
    for krate in &members {
        checked += 1;
        let graph = crate::modgraph::graph(&root().join("crates").join(krate).join("src"))?;
        let circles = crate::modgraph::circles(&graph);
        if !circles.is_empty() {
            failures.push(format!(
                "{krate}: modules import each other in a circle (move the shared types down a floor): {}",
                render(&circles)
            ));
        }
    }
    // Sans-IO cores read no clock and no entropy and use no tokio (time and randomness are
    // arguments).
    for (krate, only, skip) in CORES {
        checked += 1;
        let found = core_violations(krate, only, skip)?;
        if found.is_empty() {
            continue;
        }
        let known = CORE_READS_TO_REMOVE.iter().find(|(k, _)| k == krate);
        match known {
            Some((_, why)) => eprintln!(
                "    {krate}: known reads in the core, to move to the caller ({why}): {}",
                found.join(", ")
            ),
            None => failures.push(format!(
                "{krate}: the sans-IO core must take time and randomness as arguments and use no tokio: {}",
                found.join(", ")
            )),
        }
    }
    if !failures.is_empty() {
        bail!("dependency rules broken:\n{}", failures.join("\n"));
    }
    eprintln!("    {checked} dependency rules hold");
    Ok(())
}

/// The sans-IO core of each crate that has one: its source files and folders under src/ (an
/// empty list: all of src/), and folders left out (runtime glue).
const CORES: &[(&str, &[&str], &[&str])] = &[
    // Each keeps its one OS entropy read (a convenience default) in a module of its own; the
    // core takes the randomness from the caller (ws-frame's MaskSource, ws-http's with_key).
    ("ws-frame", &[], &["os_random.rs"]),
    ("ws-http", &[], &["handshake/os_random.rs"]),
    ("stun-turn", &[], &["net"]),
    ("token-bucket", &[], &[]),
    // The load balancer's policy: picks a backend given its state and the time.
    ("ws-proxy", &["balance.rs", "target.rs"], &[]),
    (
        "proto-mqtt",
        &["session.rs", "packet.rs", "topic.rs", "reason.rs"],
        &[],
    ),
    ("auth-oauth2-jwt", &["jwt"], &[]),
    (
        "proto-files",
        &[
            "wire.rs",
            "sender.rs",
            "receiver.rs",
            "name.rs",
            "config.rs",
            "error.rs",
        ],
        &[],
    ),
];

/// What a core must not contain (outside its test modules).
const CORE_FORBIDDEN: &[&str] = &[
    "tokio::",
    "Instant::now(",
    "SystemTime::now(",
    "getrandom::",
    "SystemRandom",
    "thread_rng(",
    "OsRng",
];

/// Cores with known reads of entropy or the clock, with what still has to move out. Every
/// other core fails `deps` on a read. Empty: stun-turn's core was the last, and takes its
/// randomness from the caller since `RandomSource`.
const CORE_READS_TO_REMOVE: &[(&str, &str)] = &[];

/// `file: pattern` for every forbidden pattern in the core of `krate`.
fn core_violations(krate: &str, only: &[&str], skip: &[&str]) -> Result<Vec<String>> {
    let src = root().join("crates").join(krate).join("src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let rel = path
                .strip_prefix(&src)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if skip
                .iter()
                .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
            {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && (only.is_empty()
                    || only
                        .iter()
                        .any(|o| rel == *o || rel.starts_with(&format!("{o}/"))))
            {
                files.push((rel, path));
            }
        }
    }
    files.sort();
    let mut found = Vec::new();
    for (rel, path) in files {
        let text = std::fs::read_to_string(&path)?;
        let code = crate::modgraph::without_test_modules(&crate::modgraph::strip(&text));
        for pattern in CORE_FORBIDDEN {
            if code.contains(pattern) {
                found.push(format!("{rel}: {pattern}"));
            }
        }
    }
    Ok(found)
}

fn render(circles: &[Vec<String>]) -> String {
    circles
        .iter()
        .map(|c| format!("{{{}}}", c.join(", ")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Workspace member package names (crates/*, xtask, benches).
fn members() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root().join("crates"))? {
        let dir = entry?.path();
        if dir.join("Cargo.toml").is_file()
            && let Some(name) = dir.file_name().and_then(|n| n.to_str())
        {
            names.push(name.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// `Some(tree)` when `krate` depends on `target` through edges of `kinds`.
fn depends_on(krate: &str, extra: &[&str], target: &str, kinds: &str) -> Result<Option<String>> {
    let out = capture(
        cargo()
            .args([
                "tree", "-q", "-p", krate, "-e", kinds, "--target", "all", "-i", target,
            ])
            .args(extra),
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // Not in the lock file at all: nothing can depend on it.
        if stderr.contains("did not match any packages") {
            return Ok(None);
        }
        bail!("cargo tree -p {krate} -i {target} failed:\n{stderr}");
    }
    Ok((!stdout.is_empty()).then_some(stdout))
}
