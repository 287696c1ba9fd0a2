//! `wskit oauth2 token ...`, the OAuth2 client, against `wskit serve --oauth2`, both run as
//! binaries: client credentials, authorization code + PKCE through the loopback listener (the
//! test plays the browser on the sign-in form), refresh with rotation, and the token opening a
//! WebSocket with `wskit client --bearer`, or with `wskit client --oauth2-client-id` fetching
//! it itself.

mod harness;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::SocketAddr,
    process::Stdio,
    time::Duration,
};

use harness::{TempDir, finish, free_port, http_form, pct_encode, run, server, wskit};

const LIMIT: Duration = Duration::from_secs(60);

fn header(answer: &str, name: &str) -> Option<String> {
    let head = answer.split_once("\r\n\r\n").map_or(answer, |(h, _)| h);
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Splits `http://host:port/target`.
fn split(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let slash = rest.find('/').unwrap();
    (rest[..slash].parse().unwrap(), rest[slash..].to_owned())
}

/// Plays the browser: the sign-in page, the form, then the redirect to the loopback listener.
fn browser(url: &str) {
    let (addr, target) = split(url);
    let (status, page) = http_form(addr, "GET", &target, &[], "");
    assert_eq!(status, 200, "{page}");
    let (id, csrf) = (hidden(&page, "id"), hidden(&page, "csrf"));
    let form = format!(
        "id={}&csrf={}&username=alice&password=wonderland&action=allow",
        pct_encode(&id),
        pct_encode(&csrf)
    );
    let cookie = format!("oauth2_csrf={csrf}");
    let (_, answer) = http_form(
        addr,
        "POST",
        "/oauth2/authorize",
        &[("Cookie", &cookie)],
        &form,
    );
    let location = header(&answer, "Location").unwrap_or_else(|| panic!("no redirect: {answer}"));
    let (cb, cb_target) = split(&location);
    let (_, done) = http_form(cb, "GET", &cb_target, &[], "");
    assert!(done.contains("Signed in"), "{done}");
}

/// `wskit oauth2 --db DB ARGS` (input on stdin), which must succeed; its stdout as JSON.
fn manage(db: &str, args: &[&str], input: &[u8]) -> serde_json::Value {
    let mut all = vec!["oauth2", "--db", db];
    all.extend_from_slice(args);
    let r = run(&all, input, LIMIT);
    assert_eq!(r.code, Some(0), "wskit {all:?}: {}", r.stderr);
    serde_json::from_slice(&r.stdout).unwrap_or(serde_json::Value::Null)
}

/// A successful `wskit oauth2 token ...`: its JSON.
fn tokens(r: &harness::Run) -> serde_json::Value {
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    serde_json::from_slice(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout_text()))
}

#[test]
fn client_flows_against_serve_oauth2() {
    let dir = TempDir::new("oauth2-token");
    let db = dir.join("oauth2.db");
    let svc = manage(
        &db,
        &["client", "add", "svc", "--grant", "client_credentials"],
        b"",
    );
    let desktop = manage(
        &db,
        &[
            "client",
            "add",
            "desktop",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--public",
        ],
        b"",
    );
    manage(&db, &["user", "add", "alice"], b"wonderland\n");
    let secret_file = dir.join("svc.secret");
    std::fs::write(
        &secret_file,
        format!("{}\n", svc["client_secret"].as_str().unwrap()),
    )
    .unwrap();
    let serve = server("serve", free_port(), &["--oauth2", "--oauth2-db", &db]);
    let issuer = format!("http://{}", serve.addr);
    let svc_id = svc["client_id"].as_str().unwrap();
    let desktop_id = desktop["client_id"].as_str().unwrap();

    // Client credentials; the token opens a WebSocket.
    let cc = tokens(&run(
        &[
            "oauth2",
            "token",
            "client-credentials",
            "--issuer",
            &issuer,
            "--client-id",
            svc_id,
            "--client-secret-file",
            &secret_file,
            "--scope",
            "jobs",
        ],
        b"",
        LIMIT,
    ));
    assert_eq!(cc["token_type"], "Bearer");
    assert_eq!(cc["scope"], "jobs");
    assert!(cc["expires_in"].as_u64().unwrap() > 0);
    let access = cc["access_token"].as_str().unwrap();
    let echo = format!("ws://{}/echo", serve.addr);
    let ws = run(
        &["client", "--linger", "0", "--bearer", access, &echo],
        b"hi\n",
        LIMIT,
    );
    assert_eq!(ws.code, Some(0), "{}", ws.stderr);
    assert_eq!(ws.stdout_text(), "hi\n");
    let refused = run(&["client", "--linger", "0", &echo], b"", LIMIT);
    assert_eq!(refused.code, Some(1), "no token, no WebSocket");
    // A wrong secret: the server's error, exit status 1.
    let wrong = run(
        &[
            "oauth2",
            "token",
            "client-credentials",
            "--issuer",
            &issuer,
            "--client-id",
            svc_id,
            "--client-secret",
            "wrong",
        ],
        b"",
        LIMIT,
    );
    assert_eq!(wrong.code, Some(1));
    assert!(wrong.stderr.contains("invalid_client"), "{}", wrong.stderr);
    assert!(wrong.stdout.is_empty());
    // wskit client gets its token itself: --oauth2-client-id with client credentials.
    let ws = run(
        &[
            "client",
            "--linger",
            "0",
            "--oauth2-issuer",
            &issuer,
            "--oauth2-client-id",
            svc_id,
            "--oauth2-client-secret-file",
            &secret_file,
            &echo,
        ],
        b"via oauth2\n",
        LIMIT,
    );
    assert_eq!(ws.code, Some(0), "{}", ws.stderr);
    assert_eq!(ws.stdout_text(), "via oauth2\n");
    let bad = run(
        &[
            "client",
            "--linger",
            "0",
            "--oauth2-issuer",
            &issuer,
            "--oauth2-client-id",
            desktop_id,
            "--oauth2-client-secret-file",
            &secret_file,
            &echo,
        ],
        b"",
        LIMIT,
    );
    assert_eq!(
        bad.code,
        Some(1),
        "another client's secret: no token, no WebSocket"
    );

    // Authorization code + PKCE: the URL on stderr, the test as the browser.
    let mut code = wskit()
        .args([
            "oauth2",
            "token",
            "code",
            "--issuer",
            &issuer,
            "--client-id",
            desktop_id,
            "--scope",
            "chat",
            "--redirect-timeout",
            "30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(code.stderr.take().unwrap());
    let mut said = String::new();
    let url = loop {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "no URL: {said}");
        said.push_str(&line);
        if let Some(at) = line.find(&format!("{issuer}/oauth2/authorize?")) {
            break line[at..].trim().to_owned();
        }
    };
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    browser(&url);
    code.stderr = Some(stderr.into_inner());
    let signed_in = tokens(&finish(code, LIMIT));
    assert_eq!(signed_in["scope"], "chat");
    let first_refresh = signed_in["refresh_token"].as_str().unwrap().to_owned();
    let ws = run(
        &[
            "client",
            "--linger",
            "0",
            "--bearer",
            signed_in["access_token"].as_str().unwrap(),
            &echo,
        ],
        b"signed in\n",
        LIMIT,
    );
    assert_eq!(ws.stdout_text(), "signed in\n", "{}", ws.stderr);

    // Refresh (the token on stdin): new tokens, a rotated refresh token.
    let refresh = |token: &str| {
        run(
            &[
                "oauth2",
                "token",
                "refresh",
                "--issuer",
                &issuer,
                "--client-id",
                desktop_id,
                "--refresh-token-file",
                "-",
            ],
            format!("{token}\n").as_bytes(),
            LIMIT,
        )
    };
    let renewed = tokens(&refresh(&first_refresh));
    let second_refresh = renewed["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, first_refresh, "rotated");
    assert_ne!(renewed["access_token"], signed_in["access_token"]);
    // The old refresh token again: reuse, refused (and the family revoked).
    let reused = refresh(&first_refresh);
    assert_eq!(reused.code, Some(1), "{}", reused.stdout_text());
    assert!(reused.stderr.contains("invalid_grant"), "{}", reused.stderr);
    assert_eq!(
        refresh(second_refresh).code,
        Some(1),
        "the family is revoked"
    );
    drop(serve);
}

#[test]
fn the_client_flows_need_an_endpoint_and_the_secret() {
    let no_endpoint = run(
        &["oauth2", "token", "client-credentials", "--client-id", "x"],
        b"",
        LIMIT,
    );
    assert_eq!(no_endpoint.code, Some(1));
    assert!(
        no_endpoint.stderr.contains("--client-secret-file"),
        "{}",
        no_endpoint.stderr
    );
    let no_issuer = run(
        &[
            "oauth2",
            "token",
            "refresh",
            "--client-id",
            "x",
            "--refresh-token-file",
            "-",
        ],
        b"t\n",
        LIMIT,
    );
    assert_eq!(no_issuer.code, Some(1));
    assert!(
        no_issuer.stderr.contains("--issuer URL"),
        "{}",
        no_issuer.stderr
    );
    // The client flows neither read nor create the server's database.
    let dir = TempDir::new("oauth2-token-nodb");
    let port = free_port();
    let mut c = wskit();
    c.current_dir(dir.path())
        .args([
            "oauth2",
            "token",
            "refresh",
            "--token-url",
            &format!("http://127.0.0.1:{port}/token"),
            "--client-id",
            "x",
            "--refresh-token-file",
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"t\n").unwrap();
    let r = finish(child, LIMIT);
    assert_eq!(r.code, Some(1), "nothing listens there: {}", r.stderr);
    assert!(r.stderr.contains("refresh token grant"), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
