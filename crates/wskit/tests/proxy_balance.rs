//! `wskit proxy --backend ...` in front of three `wskit serve` processes, one killed mid-run:
//! new connections avoid it, the others keep working, the counts per backend follow round robin.

mod cli;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
};

use cli::{Server, ws_connect};

const SECRET: &str = "wskit-test-registration-secret";

/// Sends a masked text frame (mask 0) and reads one frame back: its opcode and payload.
fn echo(tcp: &mut TcpStream, text: &str) -> std::io::Result<(u8, Vec<u8>)> {
    let mut f = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap(), 0, 0, 0, 0];
    f.extend_from_slice(text.as_bytes());
    tcp.write_all(&f)?;
    let mut h = [0u8; 2];
    tcp.read_exact(&mut h)?;
    let mut payload = vec![0u8; usize::from(h[1] & 0x7f)];
    tcp.read_exact(&mut payload)?;
    Ok((h[0] & 0x0f, payload))
}

/// The registration API's listing: one `(target, state, active, total)` per backend.
fn backends(proxy: SocketAddr) -> Vec<(String, String, u64, u64)> {
    let mut tcp = TcpStream::connect(proxy).unwrap();
    write!(
        tcp,
        "GET /_wskit/backends HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let body = out.split_once("\r\n\r\n").unwrap().1;
    body.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].to_owned(),
                f[1].to_owned(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn three_serve_backends_one_killed_mid_run() {
    let serve = || Server::start(&["serve", "--listen", "127.0.0.1:0"]);
    let (a, b, c) = (serve(), serve(), serve());
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let urls: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|s| format!("ws://{}", s.addrs[0]))
        .collect();
    let proxy = Server::start(&[
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        &urls[0],
        "--backend",
        &urls[1],
        "--backend",
        &urls[2],
        "--register-secret-file",
        secret.to_str().unwrap(),
    ]);
    let addr = proxy.addrs[0];

    // Six connections to /echo: two per backend, in turn.
    let mut open: Vec<TcpStream> = (0..6)
        .map(|i| {
            let mut ws = ws_connect(addr, "/echo").expect("upgrade through the proxy");
            assert_eq!(
                echo(&mut ws, &format!("m{i}")).unwrap(),
                (1, format!("m{i}").into_bytes())
            );
            ws
        })
        .collect();
    let list = backends(addr);
    assert_eq!(list.len(), 3);
    for (i, (target, state, active, total)) in list.iter().enumerate() {
        assert!(target.contains(&b_or(&urls, i)), "{target}");
        assert_eq!((state.as_str(), *active, *total), ("up", 2, 2), "{list:?}");
    }

    // Kill B. Its two clients (the 2nd and 5th) are cut off; the other four still echo.
    drop(b);
    for (i, ws) in open.iter_mut().enumerate() {
        if i % 3 == 1 {
            let r = echo(ws, "after");
            assert!(
                !matches!(&r, Ok((1, p)) if p == b"after"),
                "a client of the killed backend still echoes: {r:?}"
            );
        } else {
            assert_eq!(echo(ws, "after").unwrap(), (1, b"after".to_vec()));
        }
    }

    // Four new connections: none fails, A and C get two each, B none.
    for i in 0..4 {
        let mut ws = ws_connect(addr, "/echo").expect("new connections avoid the killed backend");
        assert_eq!(
            echo(&mut ws, "new").unwrap(),
            (1, b"new".to_vec()),
            "connection {i}"
        );
        open.push(ws);
    }
    let list = backends(addr);
    let states: Vec<&str> = list.iter().map(|l| l.1.as_str()).collect();
    assert_eq!(states, ["up", "down", "up"], "{list:?}");
    assert_eq!((list[0].3, list[2].3), (4, 4), "{list:?}");
    assert_eq!(list[1].3, 2, "B got nothing new: {list:?}");
    drop(open);
    let (code, _, stderr) = proxy.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    drop((a, c));
}

/// The host:port of backend `i`.
fn b_or(urls: &[String], i: usize) -> String {
    urls[i].trim_start_matches("ws://").to_owned()
}
