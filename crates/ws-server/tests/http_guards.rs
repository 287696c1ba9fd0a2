//! The server's guards (allowed origins, then authentication) apply to every route kind the
//! same way: WebSocket upgrades, server-sent event streams, static files and the handler's HTTP
//! routes (uploads included), with explicit public paths.

mod common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{connect_with, local_config, request};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use ws_server::{AuthConfig, Before, Body, Handler, Request, Response, Server, ServerHandle};

/// `u:p` in Basic form.
const CREDS: &str = "Authorization: Basic dTpw\r\n";

#[derive(Default)]
struct App {
    /// Calls of `on_http`: a refused request must never reach the handler.
    routed: Arc<AtomicUsize>,
}

impl Handler for App {
    async fn on_before_request(&self, request: &mut Request) -> Before {
        // A handler-level login (a session cookie, say) counts as authenticated.
        if request.cookie("session") == Some("trusted") {
            request.set_user(Some("cookie-user".into()));
        }
        Before::Continue
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        self.routed.fetch_add(1, Ordering::SeqCst);
        match request.path() {
            "/upload" => match body.bytes().await {
                Ok(b) => Response::text(200, format!("saved {} bytes", b.len())),
                Err(_) => Response::new(500),
            },
            "/open" => Response::text(200, "open"),
            "/whoami" => Response::text(200, format!("{:?}", request.user())),
            _ => Response::new(404),
        }
    }
}

struct Fixture {
    server: ServerHandle,
    routed: Arc<AtomicUsize>,
    _root: tempfile::TempDir,
}

async fn start(origins: &[&str]) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.path().join("secret.txt"), "secret").unwrap();
    std::fs::create_dir(root.path().join("static")).unwrap();
    std::fs::write(root.path().join("static/app.js"), "console.log(1)").unwrap();
    let mut config = local_config();
    config.document_root = Some(root.path().to_owned());
    config.sse.enabled = true;
    config.sse.paths = vec!["/sse".into()];
    config.allowed_origins = origins.iter().map(|o| (*o).to_owned()).collect();
    config.auth = Some(
        AuthConfig::basic(vec![("u".into(), "p".into())])
            .with_public("/open")
            .with_public("/static/*"),
    );
    let app = App::default();
    let routed = app.routed.clone();
    Fixture {
        server: Server::start(config, app).await.unwrap(),
        routed,
        _root: root,
    }
}

fn addr(f: &Fixture) -> SocketAddr {
    f.server.local_addrs()[0]
}

/// The status line and the head of an SSE request (the stream stays open; only the head is
/// read).
async fn sse_head(addr: SocketAddr, extra: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /sse HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !out.ends_with(b"\r\n\r\n") {
            if tcp.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            out.push(byte[0]);
        }
    })
    .await
    .expect("SSE head");
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn every_route_kind_asks_for_credentials() {
    let f = start(&[]).await;
    let a = addr(&f);

    let r = request(a, "GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 401, "static file");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic realm=")),
        "a challenge comes with the 401"
    );
    let r = request(a, "GET /secret.txt HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 401, "static file");
    assert!(!r.text().contains("secret\n") && r.text() != "secret");

    let r = request(
        a,
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert_eq!(r.status, 401, "upload route");
    let r = request(a, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 401, "handler route");
    assert_eq!(
        f.routed.load(Ordering::SeqCst),
        0,
        "refused requests never reach on_http"
    );

    let head = sse_head(a, "Accept: text/event-stream\r\n").await;
    assert!(head.starts_with("HTTP/1.1 401"), "SSE: {head}");

    let refused = connect_with(a, "/", &[], ws_frame::Config::default())
        .await
        .expect_err("upgrade without credentials");
    assert!(refused.starts_with("HTTP/1.1 401"), "upgrade: {refused}");
}

#[tokio::test]
async fn credentials_open_every_route_kind() {
    let f = start(&[]).await;
    let a = addr(&f);

    let r = request(
        a,
        &format!("GET /index.html HTTP/1.1\r\nHost: x\r\n{CREDS}\r\n"),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>home</h1>"));
    let r = request(
        a,
        &format!("POST /upload HTTP/1.1\r\nHost: x\r\n{CREDS}Content-Length: 5\r\n\r\nhello"),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "saved 5 bytes"));
    let r = request(
        a,
        &format!("GET /whoami HTTP/1.1\r\nHost: x\r\n{CREDS}\r\n"),
    )
    .await;
    assert_eq!((r.status, r.text().as_str()), (200, "Some(\"u\")"));

    let head = sse_head(a, &format!("Accept: text/event-stream\r\n{CREDS}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "SSE: {head}");
    assert!(head.to_ascii_lowercase().contains("text/event-stream"));

    let client = connect_with(
        a,
        "/",
        &[("Authorization", "Basic dTpw")],
        ws_frame::Config::default(),
    )
    .await;
    assert!(client.is_ok(), "upgrade with credentials");

    // Wrong password: 401 again.
    let r = request(
        a,
        "GET /index.html HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dTp4\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn public_paths_need_no_credentials_and_cannot_be_walked_out_of() {
    let f = start(&[]).await;
    let a = addr(&f);
    let r = request(a, "GET /open HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((r.status, r.text().as_str()), (200, "open"));
    let r = request(a, "GET /static/app.js HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!((r.status, r.text().as_str()), (200, "console.log(1)"));
    for sneaky in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/open/../secret.txt",
    ] {
        let r = request(a, &format!("GET {sneaky} HTTP/1.1\r\nHost: x\r\n\r\n")).await;
        assert_eq!(r.status, 401, "{sneaky} must not be public");
    }
    // A user recorded by on_before_request counts as authenticated.
    let r = request(
        a,
        "GET /whoami HTTP/1.1\r\nHost: x\r\nCookie: session=trusted\r\n\r\n",
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "Some(\"cookie-user\")")
    );
}

#[tokio::test]
async fn allowed_origins_guard_every_route_kind() {
    let f = start(&["http://good.example"]).await;
    let a = addr(&f);
    let evil = "Origin: http://evil.example\r\n";
    let r = request(a, &format!("GET /open HTTP/1.1\r\nHost: x\r\n{evil}\r\n")).await;
    assert_eq!(r.status, 403, "public route, foreign origin");
    let r = request(
        a,
        &format!("GET /index.html HTTP/1.1\r\nHost: x\r\n{evil}{CREDS}\r\n"),
    )
    .await;
    assert_eq!(
        r.status, 403,
        "static file, foreign origin, good credentials"
    );
    let head = sse_head(a, &format!("Accept: text/event-stream\r\n{evil}{CREDS}")).await;
    assert!(head.starts_with("HTTP/1.1 403"), "SSE: {head}");
    let refused = connect_with(
        a,
        "/",
        &[
            ("Authorization", "Basic dTpw"),
            ("Origin", "http://evil.example"),
        ],
        ws_frame::Config::default(),
    )
    .await
    .expect_err("upgrade from a foreign origin");
    assert!(refused.starts_with("HTTP/1.1 403"), "upgrade: {refused}");

    let good = "Origin: http://good.example\r\n";
    let r = request(a, &format!("GET /open HTTP/1.1\r\nHost: x\r\n{good}\r\n")).await;
    assert_eq!(r.status, 200);
    let head = sse_head(a, &format!("Accept: text/event-stream\r\n{good}{CREDS}")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "SSE: {head}");
    assert_eq!(
        f.routed.load(Ordering::SeqCst),
        1,
        "only the allowed request was routed"
    );
}

#[tokio::test]
async fn sse_paths_answer_the_stream_to_any_client_that_takes_it() {
    let f = start(&[]).await;
    let a = addr(&f);
    // curl's `Accept: */*`, and no Accept field at all, get the stream.
    for accept in ["Accept: */*\r\n", "", "Accept: text/*\r\n"] {
        let head = sse_head(a, &format!("{accept}{CREDS}")).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{accept:?}: {head}");
        assert!(head.to_ascii_lowercase().contains("text/event-stream"));
    }
    // A client that refuses the type goes to the handler (here: 404).
    let r = request(
        a,
        &format!("GET /sse HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n{CREDS}\r\n"),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = request(
        a,
        &format!(
            "GET /sse HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream;q=0, */*;q=0\r\n{CREDS}\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 404);
}
