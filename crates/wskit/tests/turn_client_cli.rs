//! `wskit turn-client` against `wskit turn`: every step printed, and refusals that say what to
//! check.

mod harness;

use std::{net::UdpSocket, time::Duration};

use harness::*;

const LIMIT: Duration = Duration::from_secs(60);

/// A UDP echo peer on loopback; answers until the test ends.
fn udp_echo() -> std::net::SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    });
    addr
}

/// A port free for both UDP and TCP right now.
fn free_udp_tcp_port() -> u16 {
    loop {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn turn(args: &[&str]) -> Proc {
    let mut all = vec!["--user", "alice:secret"];
    all.extend(args);
    server("turn", free_udp_tcp_port(), &all)
}

#[test]
fn every_step_is_printed_over_udp_and_tcp() {
    let t = turn(&["--allow-loopback-peers"]);
    let peer = udp_echo();
    for transport in ["udp", "tcp"] {
        let url = format!("turn:{}?transport={transport}", t.addr);
        let r = run(
            &[
                "turn-client",
                &url,
                "--user",
                "alice:secret",
                "--peer",
                &peer.to_string(),
                "--data",
                "hello",
            ],
            b"",
            LIMIT,
        );
        assert_eq!(r.code, Some(0), "{r:?}");
        let out = r.stdout_text();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 7, "{out}");
        assert!(
            lines[0].starts_with(&format!(
                "server: {} over {transport}, from 127.0.0.1:",
                t.addr
            )),
            "{out}"
        );
        assert!(
            lines[1].starts_with("allocate: relayed address 127.0.0.1:"),
            "{out}"
        );
        assert_eq!(lines[2], "permission: 127.0.0.1 may send to the relay");
        assert_eq!(lines[3], format!("send: 5 bytes to {peer}"));
        assert_eq!(lines[4], format!("receive: 5 bytes from {peer}: \"hello\""));
        assert_eq!(lines[5], "refresh: lifetime 600 s");
        assert_eq!(lines[6], "release: done");
    }
}

#[test]
fn a_silent_peer_is_reported_not_fatal() {
    let t = turn(&["--allow-loopback-peers"]);
    // Bound but never answering.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer = silent.local_addr().unwrap().to_string();
    let url = format!("turn:{}", t.addr);
    let r = run(
        &[
            "turn-client",
            &url,
            "--user",
            "alice:secret",
            "--peer",
            &peer,
            "--timeout",
            "1",
        ],
        b"",
        LIMIT,
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout_text().contains(&format!(
            "receive: nothing from {peer} within 1 s (the peer may not answer)"
        )),
        "{r:?}"
    );
}

#[test]
fn wrong_credentials_say_to_check_user() {
    let t = turn(&["--allow-loopback-peers"]);
    let url = format!("turn:{}", t.addr);
    let r = run(
        &[
            "turn-client",
            &url,
            "--user",
            "alice:wrong",
            "--peer",
            "127.0.0.1:9",
        ],
        b"",
        LIMIT,
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    let first = r.first_err_line();
    assert!(
        first.starts_with("error: allocate failed: server answered 401")
            && first.ends_with(
                "(check --user NAME:PASSWORD against the server's users (or its --auth-secret))"
            ),
        "{first}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    r.assert_no_backtrace();
}

#[test]
fn a_refused_peer_names_the_servers_flag() {
    let t = turn(&[]);
    let url = format!("turn:{}", t.addr);
    let r = run(
        &[
            "turn-client",
            &url,
            "--user",
            "alice:secret",
            "--peer",
            "127.0.0.1:9",
        ],
        b"",
        LIMIT,
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stdout_text().starts_with("server: "), "{r:?}");
    let first = r.first_err_line();
    assert!(
        first.starts_with("error: permission failed: server answered 403")
            && first.contains("--allow-loopback-peers"),
        "{first}"
    );
}

#[test]
fn no_server_is_a_timeout_that_says_so() {
    let port = free_udp_tcp_port();
    let url = format!("turn:127.0.0.1:{port}");
    let r = run(
        &[
            "turn-client",
            &url,
            "--user",
            "a:b",
            "--peer",
            "127.0.0.1:9",
            "--timeout",
            "1",
        ],
        b"",
        LIMIT,
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    let first = r.first_err_line();
    assert!(
        first.starts_with("error: allocate failed: ")
            && first.ends_with("(is a TURN server listening there?)"),
        "{first}"
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}
