//! `cargo xtask autobahn server|client`: Autobahn|Testsuite against wskit, both roles.
//!
//! `server`: installs wstest when missing (Python 2.7 under pyenv), builds `wskit` in release
//! mode, starts `wskit serve` on a free port with permessage-deflate and runs the fuzzing client
//! (every case) against `/echo`.
//!
//! `client`: starts wstest's fuzzing server on a free port and runs ws-client's
//! `autobahn_client` example (release) against it; the example echoes every case with
//! permessage-deflate offered and asks for the reports with agent `wskit`.
//!
//! Either way the run fails on any case whose `behavior` is not OK / NON-STRICT / INFORMATIONAL
//! or whose `behaviorClose` is not OK / INFORMATIONAL; the counts go to
//! target/autobahn/{server,client}/summary.md, and each case is compared with
//! docs/conformance/autobahn-{server,client}-expected.json so that regressions show.
//!
//! A run leaves the tracked files alone. `--update` (full suite only) copies the summary to
//! docs/conformance/autobahn-{server,client}.md and writes the expected-results file when it is
//! missing (or, with `WSKIT_AUTOBAHN_BLESS=1`, rewrites it from this run). The summary holds no
//! timing, so an update with unchanged results changes nothing.
//!
//! Environment:
//! - `WSKIT_AUTOBAHN_CASES=1.*,9.1.1` runs a subset (`--update` is then refused);
//! - `WSKIT_AUTOBAHN_BLESS=1` with `--update` rewrites the expected-results file from this run;
//! - `WSKIT_AUTOBAHN_BIN=PATH` uses that binary (taking `serve` flags) instead of building.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

const AUTOBAHN_VERSION: &str = "25.10.1";

/// Which side of wskit is under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// `wskit serve` against wstest's fuzzing client.
    Server,
    /// ws-client's `autobahn_client` example against wstest's fuzzing server.
    Client,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
        }
    }

    fn summary(self) -> String {
        format!("docs/conformance/autobahn-{}.md", self.name())
    }

    fn expected(self) -> String {
        format!("docs/conformance/autobahn-{}-expected.json", self.name())
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")
}

/// `PYTHONUSERBASE` of the wstest install.
fn user_base() -> Result<PathBuf> {
    Ok(home()?.join(".cache/wskit/ab"))
}

/// Why the suite cannot run here (no wstest and no Python 2.7 to install it with), if so.
pub(crate) fn missing() -> Option<String> {
    let (Ok(base), Ok(home)) = (user_base(), home()) else {
        return Some("HOME is not set".into());
    };
    let pip = home.join(".pyenv/versions/2.7.18/bin/pip");
    (!base.join("bin/wstest").is_file() && !pip.is_file()).then(|| {
        "Autobahn|Testsuite needs Python 2.7 (pyenv's CPython 2.7.18) to install wstest".into()
    })
}

/// Installs wstest if needed and returns its path.
fn wstest() -> Result<PathBuf> {
    let base = user_base()?;
    let bin = base.join("bin/wstest");
    if bin.is_file() {
        return Ok(bin);
    }
    let pip = home()?.join(".pyenv/versions/2.7.18/bin/pip");
    if !pip.is_file() {
        bail!(
            "Autobahn|Testsuite needs Python 2.7, expected at {} (pyenv's CPython 2.7.18); \
             install it with `pyenv install 2.7.18` or put wstest at {}",
            pip.display(),
            bin.display()
        );
    }
    eprintln!("==> installing autobahntestsuite {AUTOBAHN_VERSION} (about 40 s)");
    let status = Command::new(&pip)
        .args([
            "install",
            "--user",
            "--quiet",
            &format!("autobahntestsuite=={AUTOBAHN_VERSION}"),
        ])
        .env("PYTHONUSERBASE", &base)
        .status()
        .with_context(|| format!("running {}", pip.display()))?;
    if !status.success() || !bin.is_file() {
        bail!("pip install autobahntestsuite failed ({status})");
    }
    Ok(bin)
}

/// Builds `wskit` (release) and returns the binary.
fn wskit_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("WSKIT_AUTOBAHN_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("==> cargo build --release -p wskit");
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["build", "--release", "-p", "wskit"])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p wskit failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"));
    Ok(target.join("release/wskit"))
}

/// Kills the server when dropped, whatever happens in between.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(bin: &Path) -> Result<(Server, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = Command::new(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut server = Server(child);
    wait_listening(&mut server, port, "wskit serve")?;
    Ok((server, port))
}

/// Waits until `what` (the child in `server`) accepts connections on `port`.
fn wait_listening(server: &mut Server, port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = server.0.try_wait()? {
            bail!("{what} exited early ({status})");
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on port {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `cargo xtask autobahn server|client [--update]`.
pub(crate) fn run(side: Side, update: bool) -> Result<()> {
    let wstest = wstest()?;
    let (work, case_list) = prepare(side, update)?;
    suite(side, &wstest, &work, &case_list)?;
    judge(side, &work, update)
}

/// Both roles at once, as `cargo xtask ci` runs them: each suite is a single-threaded Python
/// process (wstest) driving one wskit process, so on two cores the pair takes about as long as
/// the slower one alone. The binaries are built first, one after the other, and the reports are
/// judged after both suites have finished, so the output of the two does not interleave.
pub(crate) fn run_both() -> Result<()> {
    let wstest = wstest()?;
    let server_bin = wskit_binary()?;
    build_client_example()?;
    let (server_work, server_cases) = prepare(Side::Server, false)?;
    let (client_work, client_cases) = prepare(Side::Client, false)?;
    eprintln!("==> Autobahn server and client suites, side by side");
    let (server, client) = std::thread::scope(|scope| {
        let server = scope.spawn(|| {
            let started = Instant::now();
            run_server_side(&wstest, &server_bin, &server_work, &server_cases)
                .map(|()| started.elapsed())
        });
        let client = scope.spawn(|| {
            let started = Instant::now();
            run_client_side(&wstest, &client_work, &client_cases).map(|()| started.elapsed())
        });
        (join(server), join(client))
    });
    let server_took = server.context("Autobahn server suite")?;
    let client_took = client.context("Autobahn client suite")?;
    eprintln!(
        "==> Autobahn suites ran side by side: server {} s, client {} s",
        server_took.as_secs(),
        client_took.as_secs()
    );
    let server_verdict = judge(Side::Server, &server_work, false);
    let client_verdict = judge(Side::Client, &client_work, false);
    server_verdict.and(client_verdict)
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the suite's thread panicked")))
}

/// Clears the side's report directory and returns its work directory and the case list.
fn prepare(side: Side, update: bool) -> Result<(PathBuf, String)> {
    let cases: Vec<String> = match std::env::var("WSKIT_AUTOBAHN_CASES") {
        Ok(list) if !list.trim().is_empty() => {
            list.split(',').map(|c| c.trim().to_owned()).collect()
        }
        _ => vec!["*".to_owned()],
    };
    let full = cases == ["*"];
    if update && !full {
        bail!("--update records the full suite: unset WSKIT_AUTOBAHN_CASES");
    }
    let work = root().join("target/autobahn").join(side.name());
    let report = work.join("report");
    let _ = std::fs::remove_dir_all(&report);
    std::fs::create_dir_all(&report).with_context(|| format!("creating {}", report.display()))?;
    let case_list = cases
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((work, case_list))
}

/// Builds what the side needs and runs its suite.
fn suite(side: Side, wstest: &Path, work: &Path, case_list: &str) -> Result<()> {
    let started = Instant::now();
    match side {
        Side::Server => run_server_side(wstest, &wskit_binary()?, work, case_list)?,
        Side::Client => {
            build_client_example()?;
            run_client_side(wstest, work, case_list)?;
        }
    }
    eprintln!(
        "==> Autobahn {} suite ran in {} s",
        side.name(),
        started.elapsed().as_secs()
    );
    Ok(())
}

fn run_server_side(wstest: &Path, bin: &Path, work: &Path, case_list: &str) -> Result<()> {
    let report = work.join("report");
    let (server, port) = start_server(bin)?;
    let spec = format!(
        "{{\"outdir\": \"{}\", \"servers\": [{{\"agent\": \"wskit\", \"url\": \"ws://127.0.0.1:{port}/echo\"}}], \
         \"cases\": [{case_list}], \"exclude-cases\": [], \"exclude-agent-cases\": {{}}}}\n",
        report.display()
    );
    let spec_path = work.join("fuzzingclient.json");
    std::fs::write(&spec_path, spec)?;
    eprintln!("==> wstest -m fuzzingclient against ws://127.0.0.1:{port}/echo (cases {case_list})");
    let status = Command::new(wstest)
        .args(["-m", "fuzzingclient", "-s"])
        .arg(&spec_path)
        .current_dir(work)
        .env("PYTHONUSERBASE", user_base()?)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {}", wstest.display()))?;
    drop(server);
    if !status.success() {
        bail!("wstest failed ({status})");
    }
    Ok(())
}

/// Builds ws-client's `autobahn_client` example (release).
fn build_client_example() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("==> cargo build --release -p ws-client --example autobahn_client");
    let status = Command::new(&cargo)
        .current_dir(root())
        .args([
            "build",
            "--release",
            "-p",
            "ws-client",
            "--example",
            "autobahn_client",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("building the autobahn_client example failed ({status})");
    }
    Ok(())
}

fn run_client_side(wstest: &Path, work: &Path, case_list: &str) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let report = work.join("report");
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let spec = format!(
        "{{\"url\": \"ws://127.0.0.1:{port}\", \"outdir\": \"{}\", \"cases\": [{case_list}], \
         \"exclude-cases\": [], \"exclude-agent-cases\": {{}}}}\n",
        report.display()
    );
    let spec_path = work.join("fuzzingserver.json");
    std::fs::write(&spec_path, spec)?;
    eprintln!("==> wstest -m fuzzingserver on ws://127.0.0.1:{port} (cases {case_list})");
    let child = Command::new(wstest)
        // `--webport 0`: no report web server on port 8080 (it may be taken).
        .args(["-m", "fuzzingserver", "--webport", "0", "-s"])
        .arg(&spec_path)
        .current_dir(work)
        .env("PYTHONUSERBASE", user_base()?)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", wstest.display()))?;
    let mut fuzzing_server = Server(child);
    wait_listening(&mut fuzzing_server, port, "wstest -m fuzzingserver")?;
    let status = Command::new(&cargo)
        .current_dir(root())
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "ws-client",
            "--example",
            "autobahn_client",
            "--",
        ])
        .arg(format!("ws://127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .status()
        .context("running the autobahn_client example")?;
    drop(fuzzing_server);
    if !status.success() {
        bail!("the autobahn_client example failed ({status})");
    }
    Ok(())
}

/// Whether `got` is no worse than the expected result `want`: the same, or `OK` where
/// `NON-STRICT` is expected (with the same close behaviour). `NON-STRICT` marks cases whose
/// outcome depends on timing, such as 3.2 to 3.4 against the client: whether the echo of a
/// message goes out before the invalid frame that follows it is read depends on how the
/// suite's writes and the driver's read interleave. Such a case is recorded as `NON-STRICT`
/// once seen, so that both outcomes pass and anything worse is still a regression.
fn as_good_as(got: &(String, String), want: &(String, String)) -> bool {
    got == want || (want.0 == "NON-STRICT" && got.0 == "OK" && got.1 == want.1)
}

fn judge(side: Side, work: &Path, update: bool) -> Result<()> {
    let report = work.join("report");
    let (summary_file, expected_file) = (side.summary(), side.expected());
    let index = std::fs::read_to_string(report.join("index.json"))
        .context("reading the Autobahn report index.json")?;
    let results = parse_index(&index)?;
    if results.is_empty() {
        bail!("the Autobahn report lists no cases");
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut close_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (case, (behavior, close)) in &results {
        *counts.entry(behavior.clone()).or_default() += 1;
        *close_counts.entry(close.clone()).or_default() += 1;
        let ok = matches!(behavior.as_str(), "OK" | "NON-STRICT" | "INFORMATIONAL")
            && matches!(close.as_str(), "OK" | "INFORMATIONAL");
        if !ok {
            failures.push(format!("{case}: behavior {behavior}, close {close}"));
        }
    }
    let summary = render_summary(side, &results, &counts, &close_counts);
    println!("{summary}");
    let run_summary = work.join("summary.md");
    std::fs::write(&run_summary, &summary)
        .with_context(|| format!("writing {}", run_summary.display()))?;
    eprintln!("==> wrote {}", run_summary.display());

    let expected_path = root().join(&expected_file);
    let mut regressions = Vec::new();
    if update {
        std::fs::create_dir_all(root().join("docs/conformance"))?;
        std::fs::write(root().join(&summary_file), &summary)?;
        eprintln!("==> wrote {summary_file} (--update)");
        let bless = std::env::var("WSKIT_AUTOBAHN_BLESS").is_ok_and(|v| v == "1");
        if bless || !expected_path.is_file() {
            std::fs::write(&expected_path, render_expected(&results))?;
            eprintln!("==> wrote {expected_file} (--update)");
        }
    } else if !expected_path.is_file() {
        eprintln!(
            "==> {expected_file} is missing: nothing to compare with \
             (`cargo xtask autobahn {} --update` writes it)",
            side.name()
        );
    }
    if expected_path.is_file() {
        let text = std::fs::read_to_string(&expected_path)?;
        let expected = parse_expected(&text)?;
        for (case, got) in &results {
            match expected.get(case) {
                Some(want) if !as_good_as(got, want) => regressions.push(format!(
                    "{case}: expected {} / {}, got {} / {}",
                    want.0, want.1, got.0, got.1
                )),
                None => regressions.push(format!("{case}: not in {expected_file}")),
                Some(_) => {}
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} Autobahn case(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    if !regressions.is_empty() {
        bail!(
            "{} case(s) differ from {expected_file} (rerun with WSKIT_AUTOBAHN_BLESS=1 if the change \
             is intended):\n  {}",
            regressions.len(),
            regressions.join("\n  ")
        );
    }
    eprintln!(
        "==> Autobahn {} suite passed ({} cases)",
        side.name(),
        results.len()
    );
    Ok(())
}

type Results = BTreeMap<String, (String, String)>;

/// Case ids sort numerically (2.10 after 2.9).
fn case_key(case: &str) -> Vec<u32> {
    case.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn sorted(results: &Results) -> Vec<(&String, &(String, String))> {
    let mut v: Vec<_> = results.iter().collect();
    v.sort_by_key(|(c, _)| case_key(c));
    v
}

fn render_summary(
    side: Side,
    results: &Results,
    counts: &BTreeMap<String, usize>,
    close_counts: &BTreeMap<String, usize>,
) -> String {
    let mut s = String::new();
    let (title, how) = match side {
        Side::Server => ("wskit serve (fuzzingclient)", "target `/echo`"),
        Side::Client => (
            "ws-client (fuzzingserver)",
            "driver `cargo run --release -p ws-client --example autobahn_client`",
        ),
    };
    let _ = writeln!(s, "# Autobahn|Testsuite: {title}\n");
    let _ = writeln!(
        s,
        "Generated by `cargo xtask autobahn {} --update` (autobahntestsuite {AUTOBAHN_VERSION}, \
         all cases, permessage-deflate enabled, {how}). {} cases.\n",
        side.name(),
        results.len(),
    );
    let _ = writeln!(s, "| behavior | cases |\n|---|---|");
    for (b, n) in counts {
        let _ = writeln!(s, "| {b} | {n} |");
    }
    let _ = writeln!(s, "\n| behaviorClose | cases |\n|---|---|");
    for (b, n) in close_counts {
        let _ = writeln!(s, "| {b} | {n} |");
    }
    let others: Vec<String> = sorted(results)
        .into_iter()
        .filter(|(_, (b, c))| b != "OK" || c != "OK")
        .map(|(case, (b, c))| format!("| {case} | {b} | {c} |"))
        .collect();
    if !others.is_empty() {
        let _ = writeln!(
            s,
            "\nCases not OK/OK (NON-STRICT and INFORMATIONAL are passes):\n\n| case | behavior | \
             behaviorClose |\n|---|---|---|"
        );
        for line in others {
            let _ = writeln!(s, "{line}");
        }
    }
    s
}

fn render_expected(results: &Results) -> String {
    let mut s = String::from("{\n");
    let rows: Vec<String> = sorted(results)
        .into_iter()
        .map(|(case, (b, c))| {
            format!("  \"{case}\": {{\"behavior\": \"{b}\", \"behaviorClose\": \"{c}\"}}")
        })
        .collect();
    s.push_str(&rows.join(",\n"));
    s.push_str("\n}\n");
    s
}

/// `{agent: {case: {behavior, behaviorClose, ...}}}` from wstest's index.json.
fn parse_index(text: &str) -> Result<Results> {
    let value: serde_json::Value = serde_json::from_str(text).context("index.json")?;
    let agents = value
        .as_object()
        .context("index.json: expected an object")?;
    let cases = agents
        .get("wskit")
        .or_else(|| agents.values().next())
        .context("index.json: no agent")?;
    case_table(cases)
}

fn parse_expected(text: &str) -> Result<Results> {
    case_table(&serde_json::from_str(text).context("expected-results file")?)
}

fn case_table(value: &serde_json::Value) -> Result<Results> {
    let mut out = Results::new();
    for (case, entry) in value.as_object().context("expected an object of cases")? {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .with_context(|| format!("case {case}: no {name}"))
        };
        out.insert(case.clone(), (field("behavior")?, field("behaviorClose")?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_file_round_trips_in_case_order() {
        let mut r = Results::new();
        r.insert("2.10".into(), ("OK".into(), "OK".into()));
        r.insert("2.9".into(), ("NON-STRICT".into(), "OK".into()));
        let text = render_expected(&r);
        assert!(text.find("\"2.9\"").unwrap() < text.find("\"2.10\"").unwrap());
        assert_eq!(parse_expected(&text).unwrap(), r);
    }

    #[test]
    fn ok_passes_where_non_strict_is_expected_but_nothing_worse_does() {
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert!(as_good_as(&pair("OK", "OK"), &pair("OK", "OK")));
        assert!(as_good_as(&pair("OK", "OK"), &pair("NON-STRICT", "OK")));
        assert!(!as_good_as(&pair("NON-STRICT", "OK"), &pair("OK", "OK")));
        assert!(!as_good_as(
            &pair("OK", "FAILED"),
            &pair("NON-STRICT", "OK")
        ));
        assert!(!as_good_as(
            &pair("FAILED", "OK"),
            &pair("NON-STRICT", "OK")
        ));
        assert!(!as_good_as(&pair("INFORMATIONAL", "OK"), &pair("OK", "OK")));
    }
}
