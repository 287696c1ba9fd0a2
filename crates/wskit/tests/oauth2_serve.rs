//! `wskit oauth2` and `wskit serve --oauth2`, run as binaries: apps and users in the
//! database, tokens from the token endpoint guard every route, and tokens and apps survive a
//! `wskit serve` restart.

mod harness;

use std::{
    io::{Read as _, Write as _},
    time::Duration,
};

use harness::{TempDir, free_port, http_form, pct_encode, run, server};

fn body_json(answer: &str) -> serde_json::Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

#[test]
fn serve_oauth2_guards_every_route_and_survives_a_restart() {
    let dir = TempDir::new("oauth2-serve");
    let db = dir.join("oauth2.db");
    let limit = Duration::from_secs(60);
    let add = run(
        &[
            "oauth2",
            "--db",
            &db,
            "client",
            "add",
            "backend",
            "--grant",
            "client_credentials",
        ],
        b"",
        limit,
    );
    assert_eq!(add.code, Some(0), "{}", add.stderr);
    let creds: serde_json::Value = serde_json::from_slice(&add.stdout).unwrap();
    let (id, secret) = (
        creds["client_id"].as_str().unwrap().to_owned(),
        creds["client_secret"].as_str().unwrap().to_owned(),
    );
    let list = run(&["oauth2", "--db", &db, "client", "list"], b"", limit);
    assert!(
        list.stdout_text().contains(&id) && !list.stdout_text().contains(&secret),
        "{}",
        list.stdout_text()
    );
    let user = run(
        &["oauth2", "--db", &db, "user", "add", "alice"],
        b"wonderland\n",
        limit,
    );
    assert_eq!(user.code, Some(0), "{}", user.stderr);

    let port = free_port();
    let serve = server(
        "serve",
        port,
        &["--oauth2", "--oauth2-db", &db, "--public", "/health"],
    );
    let addr = serve.addr;
    let meta = http_form(
        addr,
        "GET",
        "/.well-known/oauth-authorization-server",
        &[],
        "",
    );
    assert_eq!(body_json(&meta.1)["issuer"], format!("http://{addr}"));
    assert_eq!(
        http_form(addr, "GET", "/", &[], "").0,
        401,
        "the test page needs a token"
    );
    assert_ne!(
        http_form(addr, "GET", "/health", &[], "").0,
        401,
        "a public path does not"
    );
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        pct_encode(&id),
        pct_encode(&secret)
    );
    let (status, answer) = http_form(addr, "POST", "/oauth2/token", &[], &form);
    assert_eq!(status, 200, "{answer}");
    let token = body_json(&answer)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bearer = format!("Bearer {token}");
    assert_eq!(
        http_form(addr, "GET", "/", &[("Authorization", &bearer)], "").0,
        200
    );
    let upgrade = [
        ("Authorization", bearer.as_str()),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut req = "GET /echo HTTP/1.1\r\nHost: x\r\n".to_owned();
    for (n, v) in upgrade {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).unwrap();
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    drop(tcp);
    drop(serve);

    // A new process on the same database: the token and the app still work.
    let serve = server("serve", free_port(), &["--oauth2", "--oauth2-db", &db]);
    assert_eq!(
        http_form(serve.addr, "GET", "/", &[("Authorization", &bearer)], "").0,
        200,
        "the token survived"
    );
    let (status, _) = http_form(serve.addr, "POST", "/oauth2/token", &[], &form);
    assert_eq!(status, 200, "the app survived");
    drop(serve);

    let rm = run(
        &["oauth2", "--db", &db, "client", "remove", &id],
        b"",
        limit,
    );
    assert_eq!(rm.code, Some(0), "{}", rm.stderr);
    let serve = server("serve", free_port(), &["--oauth2", "--oauth2-db", &db]);
    assert_eq!(
        http_form(serve.addr, "GET", "/", &[("Authorization", &bearer)], "").0,
        401,
        "removing the app removed its tokens"
    );
}

fn key(name: &str) -> String {
    let p: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "auth-oauth2-jwt",
        "tests",
        "keys",
        name,
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

#[test]
fn serve_oauth2_issues_jwt_access_tokens_that_wskit_jwt_verify_accepts() {
    let dir = TempDir::new("oauth2-jwt");
    let db = dir.join("oauth2.db");
    let limit = Duration::from_secs(60);
    let add = run(
        &[
            "oauth2",
            "--db",
            &db,
            "client",
            "add",
            "svc",
            "--grant",
            "client_credentials",
        ],
        b"",
        limit,
    );
    let creds: serde_json::Value = serde_json::from_slice(&add.stdout).unwrap();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        pct_encode(creds["client_id"].as_str().unwrap()),
        pct_encode(creds["client_secret"].as_str().unwrap())
    );
    let serve = server(
        "serve",
        free_port(),
        &[
            "--oauth2",
            "--oauth2-db",
            &db,
            "--oauth2-jwt-key",
            &key("ec256.key"),
            "--oauth2-jwt-alg",
            "ES256",
        ],
    );
    let (status, answer) = http_form(serve.addr, "POST", "/oauth2/token", &[], &form);
    assert_eq!(status, 200, "{answer}");
    let token = body_json(&answer)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token.split('.').count(), 3);
    let (status, jwks) = http_form(serve.addr, "GET", "/oauth2/jwks", &[], "");
    assert_eq!(status, 200);
    assert_eq!(body_json(&jwks)["keys"][0]["crv"], "P-256");
    let issuer = format!("http://{}", serve.addr);
    let verify = run(
        &[
            "jwt",
            "verify",
            &token,
            "--key",
            &key("ec256.pub"),
            "--iss",
            &issuer,
            "--aud",
            &issuer,
        ],
        b"",
        limit,
    );
    assert_eq!(verify.code, Some(0), "{}", verify.stderr);
    assert!(
        verify
            .stdout_text()
            .contains(creds["client_id"].as_str().unwrap())
    );
    let bearer = format!("Bearer {token}");
    assert_eq!(
        http_form(serve.addr, "GET", "/", &[("Authorization", &bearer)], "").0,
        200
    );
}
