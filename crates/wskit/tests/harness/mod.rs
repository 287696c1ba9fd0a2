//! Running the `wskit` binary in tests: commands with a deadline, servers that are killed when
//! dropped, free ports, temporary directories, and the peer-skip policy.
//!
//! Every command runs with `RUST_BACKTRACE=1`, so a test that reads stderr also checks that
//! ordinary errors print no backtrace.

#![allow(dead_code)]

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// The binary under test.
pub(crate) fn wskit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wskit"));
    c.env("RUST_BACKTRACE", "1").env_remove("RUST_LOG");
    c
}

/// What a finished command left.
#[derive(Debug)]
pub(crate) struct Run {
    /// Exit code (`None`: killed by a signal).
    pub(crate) code: Option<i32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The first line of stderr.
    pub(crate) fn first_err_line(&self) -> &str {
        self.stderr.lines().next().unwrap_or("")
    }

    /// The lines of stderr starting with `prefix`.
    pub(crate) fn err_lines(&self, prefix: &str) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }

    /// Panics (showing everything) unless stderr has no backtrace.
    pub(crate) fn assert_no_backtrace(&self) {
        assert!(
            !self.stderr.contains("backtrace") && !self.stderr.contains("Backtrace"),
            "backtrace printed:\n{}",
            self.stderr
        );
    }
}

/// Runs `args` with `input` on stdin, killing the process after `limit`.
pub(crate) fn run(args: &[&str], input: &[u8], limit: Duration) -> Run {
    let mut child = wskit()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wskit");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    finish(child, limit)
}

/// Waits for `child` (killing it after `limit`) and collects its output.
pub(crate) fn finish(mut child: Child, limit: Duration) -> Run {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let (otx, orx) = mpsc::channel();
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        let _ = otx.send(b);
    });
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        let _ = etx.send(b);
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let s = child.wait().unwrap();
            let stderr = String::from_utf8_lossy(&erx.recv().unwrap_or_default()).into_owned();
            panic!("wskit ran longer than {limit:?} ({s}); stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: orx.recv().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&erx.recv().unwrap_or_default()).into_owned(),
    }
}

/// A long-running `wskit` (a server, or a client whose stdin stays open), killed when dropped.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    pub(crate) fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin piped")
    }
}

/// A TCP port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    ws_testkit::peers::free_port()
}

/// Waits until `addr` accepts TCP connections.
pub(crate) fn wait_listening(p: &mut Proc, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(p.addr).is_err() {
        if let Ok(Some(status)) = p.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = p.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("{what} exited early: {status}\n{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not listen on {}",
            p.addr
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `wskit SUBCOMMAND --listen 127.0.0.1:PORT ARGS...` and waits until it listens.
pub(crate) fn server(subcommand: &str, port: u16, args: &[&str]) -> Proc {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = wskit()
        .args([subcommand, "--listen", &addr.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start wskit {subcommand}: {e}"));
    let mut p = Proc { child, addr };
    wait_listening(&mut p, subcommand);
    p
}

/// `wskit serve` on a free port (it echoes on /echo).
pub(crate) fn serve(args: &[&str]) -> Proc {
    server("serve", free_port(), args)
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wskit-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    pub(crate) fn join(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `Some(python3)` when Python with the `websockets` package is installed; otherwise skips or
/// fails as `ws_testkit::peers` decides and returns `None`.
pub(crate) fn python_websockets() -> Option<&'static str> {
    if ws_testkit::peers::runs("python3", &["-c", "import websockets"]) {
        return Some("python3");
    }
    ws_testkit::peers::missing(
        "python3 with the websockets package is not installed",
        "python3 -m pip install websockets",
    );
    None
}

/// `Some(openssl)` when the openssl command is installed (same policy as
/// [`python_websockets`]).
pub(crate) fn openssl() -> Option<&'static str> {
    if ws_testkit::peers::runs("openssl", &["version"]) {
        return Some("openssl");
    }
    ws_testkit::peers::missing(
        "the openssl command is not installed",
        "apt-get install -y openssl",
    );
    None
}

/// One HTTP/1.1 request on a new connection (`Connection: close`; a POST body is sent as an
/// `application/x-www-form-urlencoded` form): the status (0 when there is none) and the whole answer.
pub(crate) fn http_form(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tcp.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters (for form and query values).
pub(crate) fn pct_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
