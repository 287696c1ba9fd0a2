//! `--log-frames FILE [--log-payload BYTES]` of `wskit serve` and `wskit client`: the frame and
//! message log written to a file, lengths always, payloads only when asked and cut.

mod harness;

use std::time::{Duration, Instant};

use harness::*;

const LIMIT: Duration = Duration::from_secs(30);

/// The file's text once it has a line containing `want` (the server writes as frames pass).
fn wait_for(path: &std::path::Path, want: &str) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(want) || start.elapsed() > LIMIT {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn has(log: &str, parts: &[&str]) -> bool {
    log.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

#[test]
fn serve_and_client_write_the_frame_log_to_a_file() {
    let dir = TempDir::new("frame-log");
    let server_log = dir.path().join("server.log");
    let client_log = dir.path().join("client.log");
    let s = serve(&[
        "--log-frames",
        server_log.to_str().unwrap(),
        "--log-payload",
        "4",
    ]);
    let url = format!("ws://{}/echo", s.addr);
    let r = run(
        &["client", "--log-frames", client_log.to_str().unwrap(), &url],
        b"hello there\n",
        LIMIT,
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout_text(), "hello there\n");

    // The server: the text in (11 bytes, cut to 4), the echo out (compressed when
    // permessage-deflate was negotiated: a frame's length is on the wire), the close both ways.
    let log = wait_for(&server_log, "op=\"close\"");
    assert!(
        has(
            &log,
            &[
                "dir=\"in\"",
                "op=\"text\"",
                "fin=true",
                "len=11",
                "payload=hell...(+7)"
            ]
        ),
        "{log}"
    );
    assert!(
        has(
            &log,
            &["dir=\"out\"", "op=\"text\"", "fin=true", "payload="]
        ),
        "{log}"
    );
    assert!(
        has(&log, &["dir=\"in\"", "op=\"close\"", "payload=1000"]),
        "{log}"
    );
    assert!(!log.contains("TRACE ws_"), "only the frame target: {log}");

    // The client: no --log-payload, so lengths only.
    let log = std::fs::read_to_string(&client_log).unwrap();
    assert!(
        has(&log, &["dir=\"out\"", "op=\"text\"", "fin=true"]),
        "{log}"
    );
    assert!(has(&log, &["dir=\"in\"", "op=\"text\"", "len=11"]), "{log}");
    assert!(!log.contains("payload"), "{log}");
}

#[test]
fn log_payload_needs_log_frames() {
    let r = run(
        &["client", "--log-payload", "4", "ws://127.0.0.1:1/"],
        b"",
        LIMIT,
    );
    assert_eq!(r.code, Some(2), "clap refuses it: {r:?}");
}
