//! The seed's credentials-in-the-path authentication end to end: `wskit serve --user ...
//! --sgc-url-auth --sgc-session-auth SECS` against `wskit client --sgc-url-auth` and
//! `--sgc-session`, and what a wrong password or a server without the modes answers.

mod harness;

use std::time::Duration;

use harness::*;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn url_and_session_modes_let_the_client_in_with_the_right_password_only() {
    let s = serve(&[
        "--user",
        "admin:s3cret",
        "--sgc-url-auth",
        "--sgc-session-auth",
        "30",
    ]);
    let url = format!("ws://{}/echo", s.addr);
    for mode in ["--sgc-url-auth", "--sgc-session"] {
        let r = run(&["client", mode, "admin:s3cret", &url], b"hello\n", LIMIT);
        assert_eq!(r.code, Some(0), "{mode}: {r:?}");
        assert_eq!(r.stdout_text(), "hello\n", "{mode}");
        let r = run(&["client", mode, "admin:wrong", &url], b"hello\n", LIMIT);
        assert_ne!(r.code, Some(0), "{mode} with a wrong password: {r:?}");
        assert!(r.stderr.contains("401"), "{mode}: {r:?}");
    }
    // Without credentials the server still asks for them.
    let r = run(&["client", &url], b"hello\n", LIMIT);
    assert!(r.stderr.contains("401"), "{r:?}");
}

#[test]
fn the_modes_are_off_unless_asked_for_and_need_users() {
    let s = serve(&["--user", "admin:s3cret"]);
    let url = format!("ws://{}/echo", s.addr);
    let r = run(
        &["client", "--sgc-url-auth", "admin:s3cret", &url],
        b"hello\n",
        LIMIT,
    );
    assert_ne!(r.code, Some(0), "URL mode is off by default: {r:?}");
    let r = run(&["serve", "--sgc-url-auth"], b"", LIMIT);
    assert_ne!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("give at least one --user"), "{r:?}");
}
