//! API keys in front of a live ws-server: a ws-client connects with its key in the header or
//! the query; no key, a wrong key, a revoked or removed key get 401 before any upgrade.

use std::{sync::Arc, time::SystemTime};

use auth_oauth2_jwt::{
    ApiKeyConfig, ApiKeyGuard, ApiKeys,
    oauth2::{OsRandom, SqliteStore},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_client::{ClientConfig, connect};
use ws_server::{Binding, Body, Ctx, Handler, Request, Response, Server, ServerConfig};

/// Tells each connection and request who it is.
struct App;

impl Handler for App {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let user = ctx.info().user().unwrap_or("-").to_owned();
        let _ = ctx.send(ws_server::ws_frame::Message::text(format!("user={user}")));
    }

    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        Response::text(200, format!("hello {}\n", request.user().unwrap_or("-")))
    }
}

async fn http(addr: std::net::SocketAddr, target: &str, headers: &[(&str, &str)]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn status(err: &ws_client::Error) -> Option<u16> {
    match err {
        ws_client::Error::Http(r) => Some(r.status),
        _ => None,
    }
}

#[tokio::test]
async fn header_and_query_keys_open_the_server_bad_and_removed_ones_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ApiKeys::new(Arc::new(
        SqliteStore::open(&dir.path().join("keys.db")).unwrap(),
    ));
    let (record, key) = keys.create("robot", &OsRandom, SystemTime::now()).unwrap();
    let (other, other_key) = keys.create("old", &OsRandom, SystemTime::now()).unwrap();
    let mut cfg = ApiKeyConfig::default();
    cfg.public_paths = vec!["/health".into()];
    let config = ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]);
    let server = Server::start(config, ApiKeyGuard::new(App, keys.clone(), cfg))
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let url = format!("ws://{addr}/ws");

    // Header form.
    let mut c = ClientConfig::default();
    c.headers = vec![("X-API-Key".into(), key.clone())];
    let mut ws = connect(url.as_str(), c).await.unwrap();
    let hello = ws.recv().await.unwrap().unwrap();
    assert_eq!(hello.as_text(), Some("user=apikey:robot"));

    // Query form.
    let mut ws = connect(
        format!("{url}?api_key={key}").as_str(),
        ClientConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("user=apikey:robot")
    );

    // No key, a wrong key: 401 before the upgrade, saying where a key goes.
    let err = connect(url.as_str(), ClientConfig::default())
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(401), "{err}");
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('x') { 'y' } else { 'x' });
    let mut c = ClientConfig::default();
    c.headers = vec![("X-API-Key".into(), wrong)];
    let err = connect(url.as_str(), c).await.unwrap_err();
    assert_eq!(status(&err), Some(401), "{err}");
    let missing = http(addr, "/api", &[]).await;
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    assert!(
        missing.contains(
            "API key required: send it in the X-API-Key header or the api_key query parameter"
        ),
        "{missing}"
    );
    let ok = http(addr, "/api", &[("x-api-key", &key)]).await;
    assert!(ok.contains("hello apikey:robot"), "{ok}");
    // A public path needs no key.
    assert!(http(addr, "/health", &[]).await.contains("hello -"));

    // Removed and revoked keys stop working at once (the store is read per request).
    assert!(keys.remove(&record.id).unwrap());
    let mut c = ClientConfig::default();
    c.headers = vec![("X-API-Key".into(), key.clone())];
    let err = connect(url.as_str(), c).await.unwrap_err();
    assert_eq!(status(&err), Some(401), "{err}");
    let mut c = ClientConfig::default();
    c.headers = vec![("X-API-Key".into(), other_key.clone())];
    connect(url.as_str(), c.clone()).await.unwrap();
    assert!(keys.revoke(&other.id).unwrap());
    let err = connect(url.as_str(), c).await.unwrap_err();
    assert_eq!(status(&err), Some(401), "{err}");
    let bad = http(addr, "/api", &[("X-API-Key", &other_key)]).await;
    assert!(
        bad.contains("API key not valid: unknown, revoked or altered"),
        "{bad}"
    );
    server.stop().await;
}
