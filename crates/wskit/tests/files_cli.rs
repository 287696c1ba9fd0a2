//! `wskit files send|receive` and `wskit serve --files-dir` as a user meets them: files sent at
//! each QoS land byte-identical in the server's directory, `--broadcast --channel` reaches a
//! `wskit files receive --channel` client, the tus door and /wskit-files.js are mounted, output
//! without a terminal is one plain line per file, and a server without `--files-dir` is a clear
//! error.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn serve(args: &[&str]) -> (Proc, SocketAddr) {
    let addr = free_addr();
    let child = Command::new(env!("CARGO_BIN_EXE_wskit"))
        .args(["serve", "--listen", &addr.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wskit serve");
    let mut p = Proc(child);
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = p.0.try_wait() {
            panic!("wskit serve exited early: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (p, addr)
}

fn make_file(dir: &Path, name: &str, len: usize, seed: u8) -> PathBuf {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn sha(p: &Path) -> String {
    Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn wskit(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wskit"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn files_sent_at_each_qos_land_byte_identical_in_the_files_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inbox");
    let (_serve, addr) = serve(&["--files-dir", dir.to_str().unwrap()]);
    let url = format!("ws://{addr}/files");
    for qos in ["0", "1", "2"] {
        let a = make_file(tmp.path(), &format!("a{qos}.bin"), 300_001, 1);
        let b = make_file(tmp.path(), &format!("b{qos}.bin"), 0, 2);
        let out = wskit(&[
            "files",
            "send",
            &url,
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--qos",
            qos,
            "--chunk",
            "16K",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !stdout.contains('\u{1b}'),
            "no progress bars without a terminal: {stdout:?}"
        );
        for f in [&a, &b] {
            let name = f.file_name().unwrap().to_str().unwrap();
            let line = stdout
                .lines()
                .find(|l| l.starts_with("sent ") && l.contains(name))
                .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
            assert!(line.ends_with(&sha(f)), "{line}");
            assert_eq!(sha(&dir.join(name)), sha(f), "QoS {qos}");
        }
    }
}

#[test]
fn broadcast_reaches_a_receiver_subscribed_to_the_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inbox");
    let got = tmp.path().join("got");
    let other = tmp.path().join("other");
    let (_serve, addr) = serve(&["--files-dir", dir.to_str().unwrap()]);
    let url = format!("ws://{addr}/files");
    let spawn_receiver = |into: &Path, channel: &str| {
        Proc(
            Command::new(env!("CARGO_BIN_EXE_wskit"))
                .args(["files", "receive", &url, "--dir", into.to_str().unwrap()])
                .args(["--channel", channel])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let mut receiver = spawn_receiver(&got, "news");
    let _other = spawn_receiver(&other, "sport");
    std::thread::sleep(Duration::from_millis(700));
    let c = make_file(tmp.path(), "bulletin.txt", 123_457, 3);
    let out = wskit(&[
        "files",
        "send",
        &url,
        c.to_str().unwrap(),
        "--broadcast",
        "--channel",
        "news",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    while !got.join("bulletin.txt").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the broadcast never arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sha(&got.join("bulletin.txt")), sha(&c));
    assert!(!other.join("bulletin.txt").exists(), "sport is not news");
    let _ = receiver.0.kill();
    let mut stdout = String::new();
    receiver
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        stdout.contains("received ") && stdout.contains(&sha(&c)),
        "{stdout}"
    );
}

#[test]
fn serve_mounts_the_tus_door_and_the_browser_client() {
    let tmp = tempfile::tempdir().unwrap();
    let (_serve, addr) = serve(&["--files-dir", tmp.path().to_str().unwrap()]);
    let ask = |head: &str| {
        let mut t = TcpStream::connect(addr).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        t.write_all(head.as_bytes()).unwrap();
        let mut buf = vec![0u8; 65536];
        let n = t.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
    };
    let options = ask("OPTIONS /files/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(options.starts_with("http/1.1 204"), "{options}");
    assert!(options.contains("tus-version: 1.0.0"), "{options}");
    let js = ask("GET /wskit-files.js HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        js.starts_with("http/1.1 200") && js.contains("wskitfiles"),
        "{}",
        &js[..200.min(js.len())]
    );
}

#[test]
fn sending_to_a_server_without_files_dir_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (_serve, addr) = serve(&[]);
    let f = make_file(tmp.path(), "x.bin", 10, 4);
    let out = wskit(&[
        "files",
        "send",
        &format!("ws://{addr}/files"),
        f.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("404") || stderr.contains("files"),
        "{stderr}"
    );
}
