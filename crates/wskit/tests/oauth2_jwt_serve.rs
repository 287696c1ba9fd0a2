//! `wskit serve --oauth2 --jwt-secret S`: the seed's OAuth2 and JWT attachments on one server.
//! The OAuth2 server's access tokens and JWTs signed with the secret both open every route;
//! a JWT signed with another secret and no token do not.

mod harness;

use std::time::{Duration, SystemTime};

use auth_oauth2_jwt::{Signer, jsonwebtoken::Algorithm};
use harness::{TempDir, free_port, http_form, run, server};

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
    let (status, answer) = http_form(addr, "POST", "/oauth2/token", &[], &form);
    assert_eq!(status, 200, "{answer}");
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let access: serde_json::Value = serde_json::from_str(body).unwrap();
    let access = access["access_token"].as_str().unwrap().to_owned();

    assert_eq!(
        http_form(
            addr,
            "GET",
            "/",
            &[("Authorization", &format!("Bearer {access}"))],
            ""
        )
        .0,
        200,
        "OAuth2 token"
    );
    assert_eq!(
        http_form(
            addr,
            "GET",
            "/",
            &[(
                "Authorization",
                &format!("Bearer {}", jwt(b"partner-secret"))
            )],
            ""
        )
        .0,
        200,
        "JWT"
    );
    assert_eq!(
        http_form(
            addr,
            "GET",
            "/",
            &[(
                "Authorization",
                &format!("Bearer {}", jwt(b"another-secret"))
            )],
            ""
        )
        .0,
        401
    );
    assert_eq!(http_form(addr, "GET", "/", &[], "").0, 401);
    drop(serve);
}
