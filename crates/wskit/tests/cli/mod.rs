//! Runs the `wskit` binary the way a user does, for errors.rs and config.rs: exit codes, the
//! first line of stderr, servers started on free ports that say `listening on ADDR`, stopped by
//! SIGTERM (or killed when dropped), raw WebSocket handshakes and close frames.

#![allow(dead_code, unreachable_pub)] // each test file uses part of it

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

/// What a finished run left.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The first line of stderr, without the `error: ` prefix the binary puts on errors.
    pub fn first_line(&self) -> &str {
        let line = self.stderr.lines().next().unwrap_or("");
        line.strip_prefix("error: ")
            .or_else(|| line.strip_prefix("Error: "))
            .unwrap_or(line)
    }
}

pub fn wskit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wskit"));
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

/// Runs `wskit ARGS` to the end (20 s at most, then it is killed and the test fails).
pub fn run(args: &[&str]) -> Run {
    let mut child = wskit()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wskit");
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || read_all(out));
    let err = std::thread::spawn(move || read_all(err));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wskit {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// Asserts exit code 1 and the first line of stderr.
#[track_caller]
pub fn fails_with(args: &[&str], first_line: &str) -> Run {
    let r = run(args);
    assert_eq!(r.code, Some(1), "wskit {args:?}: {r:?}");
    assert_eq!(r.first_line(), first_line, "wskit {args:?}: {r:?}");
    r
}

pub fn free_port() -> u16 {
    ws_testkit::peers::free_port()
}

/// A server started by a test: stdout lines and stderr collected; killed when dropped.
pub struct Server {
    pub child: Child,
    pub addrs: Vec<SocketAddr>,
    stdout: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
    stdout_lines: Vec<String>,
}

impl Server {
    /// Starts `wskit ARGS` and waits for its `listening on ADDR` lines on stdout.
    pub fn start(args: &[&str]) -> Self {
        let mut child = wskit()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wskit");
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || read_all(err));
        let mut s = Self {
            child,
            addrs: Vec::new(),
            stdout: rx,
            stderr: Some(stderr),
            stdout_lines: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.addrs.is_empty() {
            match s.stdout.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => s.take_line(line),
                Err(_) => {
                    if let Some(status) = s.child.try_wait().unwrap() {
                        let err = s.stderr.take().unwrap().join().unwrap();
                        panic!("wskit {args:?} exited early ({status}): {err}");
                    }
                    assert!(Instant::now() < deadline, "wskit {args:?} did not listen");
                }
            }
        }
        // Other addresses follow at once.
        while let Ok(line) = s.stdout.recv_timeout(Duration::from_millis(200)) {
            s.take_line(line);
        }
        s
    }

    fn take_line(&mut self, line: String) {
        if let Some(a) = line.strip_prefix("listening on ") {
            self.addrs.push(a.parse().unwrap());
        }
        self.stdout_lines.push(line);
    }

    /// Sends SIGTERM and waits for the exit (10 s at most); returns the exit code, the stdout
    /// lines and stderr.
    pub fn terminate(mut self) -> (Option<i32>, Vec<String>, String) {
        signal(&self.child, "-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap();
        let mut lines = std::mem::take(&mut self.stdout_lines);
        while let Ok(line) = self.stdout.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        (status.code(), lines, stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kill SIG PID` for a child of the test.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {}", child.id());
}

/// Opens a WebSocket to `addr` with a raw handshake; returns the stream after the 101, or the
/// status line when the upgrade was refused.
pub fn ws_connect(addr: SocketAddr, path: &str) -> Result<TcpStream, String> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("HTTP/1.1 101") {
        Ok(tcp)
    } else {
        Err(head.lines().next().unwrap_or("").to_owned())
    }
}

/// Reads frames until a Close; returns its code and reason.
pub fn read_close(tcp: &mut TcpStream) -> (u16, String) {
    loop {
        let mut h = [0u8; 2];
        tcp.read_exact(&mut h).expect("a frame");
        let mut len = u64::from(h[1] & 0x7f);
        if len == 126 {
            let mut b = [0u8; 2];
            tcp.read_exact(&mut b).unwrap();
            len = u64::from(u16::from_be_bytes(b));
        } else if len == 127 {
            let mut b = [0u8; 8];
            tcp.read_exact(&mut b).unwrap();
            len = u64::from_be_bytes(b);
        }
        let mut payload = vec![0u8; usize::try_from(len).unwrap()];
        tcp.read_exact(&mut payload).unwrap();
        if h[0] & 0x0f == 0x8 {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
}
