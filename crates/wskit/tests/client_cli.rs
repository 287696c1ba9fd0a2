//! `wskit client` as a user meets it: replies after the input ends, the close printed once,
//! line endings, binary output, exit statuses, `--reconnect` on a failed first connect, and
//! error messages without repetition or backtrace (the scheme-mismatch hints are in
//! `cert_cli.rs`, which has certificates at hand).

mod harness;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, Stdio},
    time::Duration,
};

use harness::*;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn replies_after_the_input_ends_are_printed_and_the_close_once() {
    let s = serve(&[]);
    let url = format!("ws://{}/echo", s.addr);
    let r = run(&["client", &url], b"one\ntwo\nthree\n", LIMIT);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout_text(), "one\ntwo\nthree\n");
    assert_eq!(r.first_err_line(), format!("connected to {url}"));
    assert_eq!(r.err_lines("closed:"), ["closed: 1000 normal, by us"]);
}

#[test]
fn an_echo_server_that_answers_close_at_once_still_gets_its_replies_printed() {
    let Some(python) = python_websockets() else {
        return;
    };
    let port = free_port();
    let script = format!(
        "import asyncio, websockets\n\
         async def echo(ws):\n    async for m in ws:\n        await ws.send(m)\n\
         async def main():\n    async with websockets.serve(echo, '127.0.0.1', {port}):\n        \
         await asyncio.Future()\n\
         asyncio.run(main())\n"
    );
    let child = Command::new(python)
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut py = Proc {
        child,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    };
    wait_listening(&mut py, "python websockets echo");
    let url = format!("ws://127.0.0.1:{port}/");
    // Several runs: the old client lost the replies only when its Close overtook them.
    for _ in 0..3 {
        let r = run(
            &["client", "--linger", "0.5", &url],
            b"one\ntwo\nthree\n",
            LIMIT,
        );
        assert_eq!(r.code, Some(0), "{r:?}");
        assert_eq!(r.stdout_text(), "one\ntwo\nthree\n", "{r:?}");
        assert_eq!(r.err_lines("closed:"), ["closed: 1000 normal, by us"]);
    }
}

#[test]
fn newline_and_crlf_are_appended_when_sending() {
    let s = serve(&[]);
    let url = format!("ws://{}/echo", s.addr);
    let r = run(&["client", "--newline", &url], b"one\n", LIMIT);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout_text(), "one\n\n");
    let r = run(&["client", "--crlf", &url], b"one\n", LIMIT);
    assert_eq!(r.stdout_text(), "one\r\n\n");
    let r = run(&["client", "--crlf", "--newline", &url], b"", LIMIT);
    assert_eq!(r.code, Some(2), "clap refuses both: {r:?}");
}

#[test]
fn binary_replies_as_hex_or_raw_with_a_separator() {
    let s = serve(&[]);
    let url = format!("ws://{}/echo", s.addr);
    let r = run(
        &["client", "--binary", "--binary-output", "hex", &url],
        b"one\ntwo\n",
        LIMIT,
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout_text(), "6f6e65\n74776f\n");
    let r = run(
        &["client", "--binary", "--separator", "|", &url],
        b"one\ntwo\n",
        LIMIT,
    );
    assert_eq!(r.stdout_text(), "one|two|");
    let r = run(&["client", "--binary", &url], b"one\ntwo\n", LIMIT);
    assert_eq!(
        r.stdout_text(),
        "onetwo",
        "raw without separator by default"
    );
    // Binary input lines may hold any bytes; text ones must be UTF-8.
    let r = run(&["client", "--binary", &url], b"\xff\xfe\r\n", LIMIT);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout, b"\xff\xfe");
    let r = run(&["client", &url], b"\xff\n", LIMIT);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.err_lines("error: "),
        ["error: an input line is not UTF-8 text; send such input with --binary"]
    );
    let r = run(
        &[
            "client",
            "--binary",
            "--binary-output",
            "hex",
            "--separator",
            "\\t",
            &url,
        ],
        b"a\n",
        LIMIT,
    );
    assert_eq!(r.stdout_text(), "61\t");
}

#[test]
fn a_server_close_shows_code_and_reason_and_1011_exits_non_zero() {
    // The proxy closes with 1011 and its reason when the backend refuses.
    let backend = free_port();
    let p = server(
        "proxy",
        free_port(),
        &["--to", &format!("tcp://127.0.0.1:{backend}")],
    );
    let url = format!("ws://{}/", p.addr);
    let mut client = wskit()
        .args(["client", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep stdin open: the server closes first.
    let stdin = client.stdin.take().unwrap();
    let r = finish(client, LIMIT);
    drop(stdin);
    assert_eq!(r.code, Some(1), "{r:?}");
    let closed = r.err_lines("closed:");
    assert_eq!(closed.len(), 1, "{r:?}");
    assert!(
        closed[0].starts_with(
            "closed: 1011 internal error, by the server: backend unavailable: Connection refused"
        ),
        "{}",
        closed[0]
    );
    r.assert_no_backtrace();
}

#[test]
fn a_lost_connection_is_1006_and_exits_non_zero() {
    let mut s = serve(&[]);
    let url = format!("ws://{}/echo", s.addr);
    let mut client = wskit()
        .args(["client", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"ping\n").unwrap();
    // Wait for the echo, so the connection is up, then kill the server (no Close frame).
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ping\n");
    let _ = s.child.kill();
    let _ = s.child.wait();
    client.stdout = None;
    let mut err = String::new();
    std::io::Read::read_to_string(client.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = client.wait().unwrap();
    drop(stdin);
    assert_eq!(status.code(), Some(1), "{err}");
    let closed: Vec<&str> = err.lines().filter(|l| l.starts_with("closed:")).collect();
    assert_eq!(closed.len(), 1, "{err}");
    assert_eq!(
        closed[0],
        "closed: 1006 abnormal closure, the connection ended without a Close frame"
    );
}

#[test]
fn a_refused_handshake_exits_non_zero_with_the_status() {
    let s = serve(&[]);
    let url = format!("ws://{}/no-such-path", s.addr);
    let r = run(&["client", &url], b"", LIMIT);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.first_err_line(), format!("error: connecting to {url}"));
    // The status and the server's short text answer, on one line.
    let causes = r.err_lines("caused by: ");
    assert_eq!(causes.len(), 1, "{}", r.stderr);
    assert!(
        causes[0].starts_with("caused by: server answered HTTP 404 Not Found: "),
        "{}",
        r.stderr
    );
    r.assert_no_backtrace();
}

#[test]
fn a_refused_connection_is_two_lines_without_backtrace() {
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let r = run(&["client", &url], b"", LIMIT);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr,
        format!("error: connecting to {url}\ncaused by: connection refused by 127.0.0.1:{port}\n")
    );
    assert!(r.stdout.is_empty());
}

#[test]
fn reconnect_retries_a_failed_first_connect_and_a_lost_connection() {
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/echo");
    let mut client = wskit()
        .args(["client", "--reconnect", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    let mut out = BufReader::new(client.stdout.take().unwrap());
    let mut err = BufReader::new(client.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert_eq!(line, format!("{url} did not answer; retrying\n"));
    // Reads stderr up to the next "connected to" line; only failed attempts may come before.
    let wait_connected = |err: &mut BufReader<_>| loop {
        let mut line = String::new();
        assert!(err.read_line(&mut line).unwrap() > 0, "client ended");
        if line.starts_with("connected to") {
            assert!(
                line.starts_with(&format!("connected to {url} (attempt ")),
                "{line}"
            );
            break;
        }
        assert!(line.starts_with("attempt "), "{line}");
    };
    // Now the server comes up; the client connects on one of its next attempts.
    let mut server1 = server("serve", port, &[]);
    wait_connected(&mut err);
    stdin.write_all(b"after the retry\n").unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "after the retry\n");
    // The server dies without a Close: the client says so and reconnects to the next one.
    let _ = server1.child.kill();
    let _ = server1.child.wait();
    line.clear();
    err.read_line(&mut line).unwrap();
    assert_eq!(
        line,
        "disconnected: 1006 abnormal closure, the connection ended without a Close frame; \
         reconnecting\n"
    );
    let _server2 = server("serve", port, &[]);
    wait_connected(&mut err);
    stdin.write_all(b"after the reconnect\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "after the reconnect\n");
    rest.clear();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert_eq!(rest, "closed: 1000 normal, by us\n");
    assert_eq!(client.wait().unwrap().code(), Some(0));
}

#[test]
fn reconnect_gives_up_after_max_attempts() {
    let port = free_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let mut child = wskit()
        .args(["client", "--reconnect", "--max-attempts", "1", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let r = finish(child, LIMIT);
    drop(stdin);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(&format!(
            "error: gave up reconnecting\ncaused by: connection refused by 127.0.0.1:{port}"
        )),
        "{}",
        r.stderr
    );
    r.assert_no_backtrace();
}
