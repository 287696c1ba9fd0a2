//! Processes of the benchmarks (`bench`, `bench proxy`): starting servers under a raised
//! descriptor limit, stopping them by pid, waiting for their port, reading their CPU time and
//! memory from /proc, running the load clients that report `start:` / `result:` lines, and
//! the `wskit bench --idle` client that holds connections open.

use std::{
    collections::HashMap,
    fs,
    io::{BufRead, BufReader, Read},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::util::{cargo, root, step};

/// Cargo's target directory (`CARGO_TARGET_DIR`, relative to the workspace root, or `target`).
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Quotes a word for `sh -c`.
pub(crate) fn sh_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `sh -c 'ulimit -n 65536 (or the hard limit); exec PROGRAM ARGS'`: the same pid as the
/// program, with room for thousands of sockets.
pub(crate) fn with_nofile(program: &Path, args: &[String]) -> Command {
    let mut line = String::from(
        "ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\" 2>/dev/null; exec",
    );
    for word in std::iter::once(program.to_string_lossy().into_owned()).chain(args.iter().cloned())
    {
        line.push(' ');
        line.push_str(&sh_quote(&word));
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(line);
    cmd
}

/// A child process, stopped by its pid and reaped when dropped: at once ([`Proc::new`]), or
/// SIGTERM first and SIGKILL after 3 s ([`Proc::graceful`]: websockify then terminates its
/// per-connection children).
#[derive(Debug)]
pub(crate) struct Proc {
    pub(crate) child: Child,
    term_first: bool,
}

impl Proc {
    pub(crate) fn new(child: Child) -> Self {
        Self {
            child,
            term_first: false,
        }
    }

    pub(crate) fn graceful(child: Child) -> Self {
        Self {
            child,
            term_first: true,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.term_first {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts TCP connections on the loopback `port`: `None` then, or the
/// exit status of `proc` when it ended first. Fails after `limit`.
pub(crate) fn wait_listening(
    proc: &mut Proc,
    port: u16,
    limit: Duration,
) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = proc.child.try_wait()? {
            return Ok(Some(status));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(None);
        }
        if Instant::now() > deadline {
            bail!("nothing listens on port {port} after {} s", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The process and its descendants.
pub(crate) fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // After the `(comm)`: state, then ppid.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Some(c) = children.get(&all[i]) {
            all.extend(c);
        }
        i += 1;
    }
    all
}

/// CPU seconds of a process from /proc/PID/stat (USER_HZ is 100 on Linux): utime + stime,
/// plus cutime + cstime (its reaped children) when `children` is set.
fn stat_cpu(pid: u32, children: bool) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // Fields 14..17 of the file (utime, stime, cutime, cstime) are 11..15 after the name.
    let end = if children { 15 } else { 13 };
    let ticks = fields
        .get(11..end)?
        .iter()
        .map(|s| s.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks as f64 / 100.0)
}

/// utime + stime of one process, in seconds.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    stat_cpu(pid, false)
}

/// CPU seconds of a process tree, reaped children included. Children that exited but are not
/// reaped yet are not counted (their time moves to the parent's cutime once reaped).
pub(crate) fn tree_cpu(pid: u32) -> f64 {
    tree(pid)
        .into_iter()
        .filter_map(|p| stat_cpu(p, true))
        .sum()
}

/// A `Key:   N kB` line of a /proc file, in KiB.
pub(crate) fn kib_field(path: &str, key: &str) -> Option<u64> {
    fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// VmRSS of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
        .with_context(|| format!("no VmRSS for process {pid}"))
}

/// The number after `key=` in a line of `key=value` words (`summary: msgs_per_sec=12 ...`).
pub(crate) fn field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// The lines of a child's output, read by a thread of their own (the channel ends with it).
pub(crate) fn lines(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Where a load client is when [`run_load_client`] calls back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// It printed `start:`: the measured phase begins.
    Start,
    /// It printed its `result:` line and has not closed its connections yet.
    Result,
}

/// The `result: key=value ...` line of a load client.
#[derive(Debug)]
pub(crate) struct LoadResult(pub(crate) String);

impl LoadResult {
    /// The number after `key=`.
    pub(crate) fn get(&self, key: &str) -> Result<f64> {
        field(&self.0, key).with_context(|| format!("no {key} in `{}`", self.0))
    }
}

/// Runs a load client that prints `start:` when its measured phase begins and
/// `result: key=value ...` at the end (ws-backplane's `cluster_load`), under the raised
/// descriptor limit. `at` is called at each of the two lines, as it reads them (so that the
/// servers' CPU time can be sampled around the measured phase, before the client's teardown),
/// then the client must exit successfully. Fails when it ends without a result or runs over
/// `limit`.
pub(crate) fn run_load_client(
    program: &Path,
    args: &[String],
    limit: Duration,
    mut at: impl FnMut(Mark),
) -> Result<LoadResult> {
    let mut client = Proc::new(
        with_nofile(program, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the load client")?,
    );
    let out = lines(client.child.stdout.take().context("client stdout")?);
    let deadline = Instant::now() + limit;
    let result = loop {
        match out.recv_timeout(Duration::from_millis(200)) {
            Ok(l) if l.starts_with("start:") => at(Mark::Start),
            Ok(l) if l.starts_with("result:") => break l,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!(
                    "the load client gave no result within {} s",
                    limit.as_secs()
                )
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = client.child.wait()?;
                bail!("the load client ended without a result ({status})")
            }
        }
    };
    at(Mark::Result);
    let status = client.child.wait()?;
    if !status.success() {
        bail!("the load client failed ({status})");
    }
    Ok(LoadResult(result))
}

/// Starts `wskit bench URL --conns N --idle --secs 600 --threads 1 EXTRA...` and returns once
/// it reports every connection open (`connected:`, echoed to stderr), within 300 s. Dropping
/// the process closes them.
pub(crate) fn idle_client(wskit: &Path, url: &str, conns: u64, extra: &[&str]) -> Result<Proc> {
    let mut args: Vec<String> = vec![
        "bench".into(),
        url.into(),
        "--conns".into(),
        conns.to_string(),
        "--idle".into(),
        "--secs".into(),
        "600".into(),
        "--threads".into(),
        "1".into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut client = Proc::new(
        with_nofile(wskit, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting wskit bench --idle")?,
    );
    let stdout = client.child.stdout.take().context("client stdout")?;
    let rx = lines(stdout);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.starts_with("connected:") => {
                eprintln!("    {line}");
                return Ok(client);
            }
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = client.child.wait()?;
                bail!("wskit bench --idle stopped before connecting everything ({status})");
            }
        }
        if Instant::now() > deadline {
            bail!("opening {conns} connections took over 300 s");
        }
    }
}

/// The `wskit` binary a benchmark runs: `WSKIT_BIN` when set (a prebuilt one, not rebuilt),
/// else a release build of the workspace's.
pub(crate) fn release_wskit() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("WSKIT_BIN") {
        return Ok(PathBuf::from(p));
    }
    step(
        "build wskit (release)",
        cargo().args(["build", "--release", "-p", "wskit"]),
    )?;
    Ok(target_dir().join("release").join("wskit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_by_name() {
        let line =
            "summary: msgs_per_sec=181934 conns=100 size=20 secs=10.00 messages=1819340 errors=0";
        assert_eq!(field(line, "msgs_per_sec"), Some(181_934.0));
        assert_eq!(field(line, "secs"), Some(10.0));
        assert_eq!(field(line, "messages"), Some(1_819_340.0));
        assert_eq!(field(line, "missing"), None);
    }

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(sh_quote("plain"), "'plain'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn own_cpu_time_is_read() {
        let me = std::process::id();
        assert!(cpu_secs(me).is_some());
        assert!(tree_cpu(me) >= cpu_secs(me).unwrap_or(0.0));
        assert!(rss_kib(me).unwrap() > 0);
    }
}
