//! `wskit mqtt sub|pub` against a mosquitto started on a free port (skipped without mosquitto,
//! a failure instead under `WSKIT_REQUIRE_PEERS=1`).

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn wskit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wskit"))
}

struct Broker(
    std::process::Child,
    u16,
    #[allow(dead_code)] tempfile::TempDir,
);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn broker() -> Option<Broker> {
    if Command::new("mosquitto").arg("-h").output().is_err() {
        ws_testkit::peers::missing("mosquitto is not installed", "apt-get install -y mosquitto");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Broker(child, port, dir))
}

#[test]
fn sub_prints_what_pub_sends_with_mosquitto_flags() {
    let Some(b) = broker() else { return };
    let url = format!("mqtt://127.0.0.1:{}", b.1);
    for version in ["311", "5"] {
        // -W bounds the run (a lost message fails the test instead of hanging it); -d says on
        // stderr when the broker has acknowledged the subscription, which is when publishing
        // can start (a fixed sleep lost the race on a loaded machine and hung CI).
        let mut sub = wskit()
            .args([
                "mqtt", "sub", &url, "-t", "cli/#", "-q", "2", "-C", "3", "-v", "-V", version,
                "-W", "120", "-d",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(sub.stderr.take().unwrap());
        let mut said = String::new();
        err.read_line(&mut said).unwrap();
        assert!(
            said.starts_with("Subscribed: cli/#"),
            "-V {version}: {said:?}"
        );
        let st = wskit()
            .args([
                "mqtt", "pub", &url, "-t", "cli/one", "-m", "hello", "-q", "1", "-V", version,
            ])
            .status()
            .unwrap();
        assert!(st.success());
        let mut lines = wskit()
            .args([
                "mqtt",
                "pub",
                &url,
                "-t",
                "cli/lines",
                "-l",
                "-q",
                "2",
                "-V",
                version,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        lines
            .stdin
            .take()
            .unwrap()
            .write_all(b"first\nsecond\n")
            .unwrap();
        assert!(lines.wait().unwrap().success());
        let out: Vec<String> = BufReader::new(sub.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap)
            .collect();
        assert!(sub.wait().unwrap().success());
        assert_eq!(
            out,
            ["cli/one hello", "cli/lines first", "cli/lines second"],
            "-V {version}"
        );
    }
    // A broker that is not there: an error and exit status 1.
    drop(b);
    let out = wskit()
        .args(["mqtt", "pub", &url, "-t", "x", "-m", "y"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("connecting to"));
}
