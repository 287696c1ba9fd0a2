//! `wskit jwt sign` and `wskit jwt verify`, run as the binary; `wskit serve --jwt-secret`.

mod harness;

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command, Output, Stdio},
};

fn wskit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wskit"))
        .args(args)
        .output()
        .expect("run wskit")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn key(name: &str) -> String {
    let p: PathBuf = [
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

fn sign(args: &[&str]) -> String {
    let o = wskit(&[&["jwt", "sign"], args].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let token = stdout(&o);
    assert_eq!(token.split('.').count(), 3, "{token}");
    token
}

#[test]
fn sign_then_verify_prints_the_claims() {
    let token = sign(&[
        "--alg",
        "HS256",
        "--secret",
        "S",
        "--claim",
        "sub=alice",
        "--claim",
        "admin=true",
        "--exp",
        "1h",
    ]);
    let o = wskit(&["jwt", "verify", &token, "--secret", "S"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let claims: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["admin"], true);
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 3600);
    // The token from standard input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wskit"))
        .args(["jwt", "verify", "-", "--secret", "S"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{token}\n").as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains("\"alice\""));
}

#[test]
fn verify_says_why_a_token_is_refused() {
    let token = sign(&[
        "--secret", "S", "--claim", "sub=a", "--exp", "1h", "--claim", "iss=me",
    ]);
    let cases: [(&[&str], &str); 4] = [
        (&["--secret", "wrong"], "invalid signature"),
        (&["--secret", "S", "--iss", "someone-else"], "wrong issuer"),
        (
            &["--secret", "S", "--require", "scope"],
            "missing claim scope",
        ),
        (&["--secret", "S", "--alg", "HS512"], "not allowed"),
    ];
    for (args, reason) in cases {
        let o = wskit(&[&["jwt", "verify", token.as_str()], args].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(reason), "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
    let expired = sign(&["--secret", "S", "--exp", "0s"]);
    let o = wskit(&["jwt", "verify", &expired, "--secret", "S", "--leeway", "0s"]);
    assert!(stderr(&o).contains("expired"), "{}", stderr(&o));
    let later = sign(&["--secret", "S", "--exp", "2h", "--nbf", "1h"]);
    let o = wskit(&["jwt", "verify", &later, "--secret", "S"]);
    assert!(stderr(&o).contains("not valid before"), "{}", stderr(&o));
}

#[test]
fn rsa_keys_and_the_attacks_from_the_command_line() {
    let token = sign(&[
        "--alg",
        "RS256",
        "--key",
        &key("rsa.key"),
        "--claim",
        "sub=r",
        "--exp",
        "10m",
        "--kid",
        "k1",
    ]);
    let o = wskit(&["jwt", "verify", &token, "--key", &key("rsa.pub")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Algorithm confusion: HS256 with the public key's PEM as the secret.
    let forged = sign(&[
        "--alg",
        "HS256",
        "--secret-file",
        &key("rsa.pub"),
        "--claim",
        "sub=admin",
        "--exp",
        "10m",
    ]);
    let o = wskit(&["jwt", "verify", &forged, "--key", &key("rsa.pub")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("HS256 is not allowed"),
        "{}",
        stderr(&o)
    );
    // alg none.
    use base64::Engine as _;
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let none = format!(
        "{}.{}.",
        b(r#"{"alg":"none"}"#),
        b(r#"{"sub":"admin","exp":4000000000}"#)
    );
    let o = wskit(&["jwt", "verify", &none, "--secret", "S"]);
    assert!(stderr(&o).contains("alg none"), "{}", stderr(&o));
    // ES512 is refused with a reason.
    let o = wskit(&["jwt", "sign", "--alg", "ES512", "--key", &key("ec521.key")]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ES512 is not supported"),
        "{}",
        stderr(&o)
    );
}

/// One HTTP/1.1 GET with `Connection: close`; the status.
fn get(addr: std::net::SocketAddr, target: &str, headers: &[(&str, &str)]) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out);
    out.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn serve_with_a_jwt_secret_guards_every_route() {
    let serve = harness::serve(&["--jwt-secret", "S", "--public", "/wskit.js"]);
    let token = sign(&["--secret", "S", "--claim", "sub=alice", "--exp", "10m"]);
    let bearer = format!("Bearer {token}");
    assert_eq!(get(serve.addr, "/", &[]), 401);
    assert_eq!(get(serve.addr, "/", &[("Authorization", &bearer)]), 200);
    assert_eq!(
        get(serve.addr, &format!("/?access_token={token}"), &[]),
        200
    );
    assert_eq!(
        get(
            serve.addr,
            "/",
            &[("Cookie", &format!("access_token={token}"))]
        ),
        200
    );
    assert_eq!(get(serve.addr, "/wskit.js", &[]), 200, "public path");
    let other = sign(&["--secret", "T", "--claim", "sub=alice", "--exp", "10m"]);
    assert_eq!(
        get(
            serve.addr,
            "/",
            &[("Authorization", &format!("Bearer {other}"))]
        ),
        401
    );
    let forged = sign(&[
        "--alg",
        "HS256",
        "--secret-file",
        &key("rsa.pub"),
        "--exp",
        "10m",
    ]);
    assert_eq!(
        get(
            serve.addr,
            "/",
            &[("Authorization", &format!("Bearer {forged}"))]
        ),
        401
    );
    // Oversized tokens: refused by the verifier's limit or, larger, by the server's head limits.
    for len in [8200, 9000, 40_000] {
        let big = format!("Bearer {}", "a".repeat(len));
        let status = get(serve.addr, "/", &[("Authorization", &big)]);
        assert!(matches!(status, 401 | 431), "{len}: {status}");
    }
    // The RSA key: algorithm confusion refused.
    let serve = harness::serve(&["--jwt-key", &key("rsa.pub")]);
    let rs = sign(&["--alg", "RS256", "--key", &key("rsa.key"), "--exp", "10m"]);
    assert_eq!(
        get(
            serve.addr,
            "/",
            &[("Authorization", &format!("Bearer {rs}"))]
        ),
        200
    );
    assert_eq!(
        get(
            serve.addr,
            "/",
            &[("Authorization", &format!("Bearer {forged}"))]
        ),
        401
    );
}
