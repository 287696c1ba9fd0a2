//! `wskit apikey` and `wskit serve --api-keys`, run as binaries: a key added on the command
//! line opens a WebSocket (header or query), the test page needs one too, a public path does
//! not, and a key removed while the server runs is refused at the next connection.

mod harness;

use std::time::Duration;

use harness::{TempDir, free_port, run, server};
use ws_client::{ClientConfig, connect, ws_frame::Message};

fn status(err: &ws_client::Error) -> Option<u16> {
    match err {
        ws_client::Error::Http(r) => Some(r.status),
        _ => None,
    }
}

#[test]
fn a_key_from_wskit_apikey_add_opens_wskit_serve_api_keys() {
    let dir = TempDir::new("apikey-cli");
    let db = dir.join("keys.db");
    let limit = Duration::from_secs(60);
    let add = run(&["apikey", "add", "robot", "--db", &db], b"", limit);
    assert_eq!(add.code, Some(0), "{}", add.stderr);
    let out: serde_json::Value = serde_json::from_slice(&add.stdout).unwrap();
    let (id, key) = (
        out["id"].as_str().unwrap().to_owned(),
        out["key"].as_str().unwrap().to_owned(),
    );
    let list = run(&["apikey", "list", "--db", &db], b"", limit);
    let listed = list.stdout_text();
    assert!(listed.contains(&id) && listed.contains("robot"), "{listed}");
    assert!(
        !listed.contains(&key),
        "the key is shown once only: {listed}"
    );

    let port = free_port();
    let serve = server("serve", port, &["--api-keys", &db, "--public", "/wskit.js"]);
    let addr = serve.addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("ws://{addr}/echo");
        let mut cfg = ClientConfig::default();
        cfg.headers = vec![("X-API-Key".into(), key.clone())];
        let mut ws = connect(url.as_str(), cfg.clone()).await.unwrap();
        ws.send(Message::text("hi")).await.unwrap();
        let echo = ws.recv().await.unwrap().unwrap();
        assert_eq!(echo.as_text(), Some("hi"));

        let mut ws = connect(
            format!("{url}?api_key={key}").as_str(),
            ClientConfig::default(),
        )
        .await
        .unwrap();
        ws.send(Message::text("q")).await.unwrap();
        assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("q"));

        let err = connect(url.as_str(), ClientConfig::default())
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(401), "{err}");

        // Plain HTTP: the test page needs a key, the public script does not.
        let page = http_status(addr, "/").await;
        assert_eq!(page, 401);
        assert_eq!(http_status(addr, "/wskit.js").await, 200);

        // Removed on the command line while the server runs.
        let rm = run(&["apikey", "remove", &id, "--db", &db], b"", limit);
        assert_eq!(rm.code, Some(0), "{}", rm.stderr);
        let err = connect(url.as_str(), cfg).await.unwrap_err();
        assert_eq!(status(&err), Some(401), "{err}");
    });
    let again = run(&["apikey", "remove", &id, "--db", &db], b"", limit);
    assert_ne!(again.code, Some(0));
    assert!(
        again.stderr.contains("no API key with id"),
        "{}",
        again.stderr
    );
    drop(serve);
}

async fn http_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
