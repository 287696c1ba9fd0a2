//! `wskit serve --oauth2 --jwt-secret S`: the seed's OAuth2 and JWT attachments on one server.
//! The OAuth2 server's access tokens and JWTs signed with the secret both open every route;
//! a JWT signed with another secret and no token do not.

mod harness;

use std::{
    io::{Read as _, Write as _},
    net::SocketAddr,
    time::{Duration, SystemTime},
};

use auth_oauth2_jwt::{Signer, jsonwebtoken::Algorithm};
use harness::{TempDir, free_port, run, server};

fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = auth {
        req.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tcp.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, out)
}

fn jwt(secret: &[u8]) -> String {
    Signer::with_secret(Algorithm::HS256, secret)
        .unwrap()
        .claim("sub", "carol")
        .lifetime(Duration::from_secs(300))
        .sign(SystemTime::now())
        .unwrap()
}

#[test]
fn oauth2_and_jwt_tokens_both_open_the_server() {
    let dir = TempDir::new("oauth2-jwt-serve");
    let db = dir.join("oauth2.db");
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
        Duration::from_secs(60),
    );
    assert_eq!(add.code, Some(0), "{}", add.stderr);
    let creds: serde_json::Value = serde_json::from_slice(&add.stdout).unwrap();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        creds["client_id"].as_str().unwrap(),
        creds["client_secret"].as_str().unwrap()
    );
    let serve = server(
        "serve",
        free_port(),
        &[
            "--oauth2",
            "--oauth2-db",
            &db,
            "--jwt-secret",
            "partner-secret",
        ],
    );
    let addr = serve.addr;
    let (status, answer) = http(addr, "POST", "/oauth2/token", None, &form);
    assert_eq!(status, 200, "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let access: serde_json::Value = serde_json::from_str(body).unwrap();
    let access = access["access_token"].as_str().unwrap().to_owned();

    assert_eq!(
        http(addr, "GET", "/", Some(&access), "").0,
        200,
        "OAuth2 token"
    );
    assert_eq!(
        http(addr, "GET", "/", Some(&jwt(b"partner-secret")), "").0,
        200,
        "JWT"
    );
    assert_eq!(
        http(addr, "GET", "/", Some(&jwt(b"another-secret")), "").0,
        401
    );
    assert_eq!(http(addr, "GET", "/", None, "").0, 401);
    drop(serve);
}
