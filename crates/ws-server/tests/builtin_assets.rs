//! The built-in test page and JavaScript client (`ServerConfig::html_files`,
//! `ServerConfig::javascript_files`): their four paths, each switch alone, the default (off),
//! precedence over the handler and under the document root.

mod common;

use common::{local_config, request};
use ws_server::{
    Body, Handler, Request, Response, Server, ServerConfig,
    assets::{TEST_PAGE_HTML, WSKIT_JS},
};

/// Answers every plain request with `handler`, to show who answered.
struct Mine;
impl Handler for Mine {
    async fn on_http(&self, _: &Request, _: &mut Body<'_>) -> Response {
        Response::text(200, "handler")
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}

async fn bodies(config: ServerConfig) -> Vec<(u16, String, Option<String>)> {
    let server = Server::start(config, Mine).await.unwrap();
    let addr = server.local_addrs()[0];
    let mut out = Vec::new();
    for path in ["/", "/sgcWebSockets.html", "/wskit.js", "/sgcWebSockets.js"] {
        let r = request(addr, &get(path)).await;
        out.push((
            r.status,
            r.text(),
            r.header("content-type").map(str::to_owned),
        ));
    }
    server.stop().await;
    out
}

fn config(html: bool, js: bool) -> ServerConfig {
    let mut c = local_config();
    c.html_files = html;
    c.javascript_files = js;
    c
}

#[tokio::test]
async fn both_switches_serve_the_page_and_client_at_all_four_paths() {
    let got = bodies(config(true, true)).await;
    let html = Some("text/html; charset=utf-8".to_owned());
    let js = Some("application/javascript".to_owned());
    assert_eq!(got[0], (200, TEST_PAGE_HTML.to_owned(), html.clone()));
    assert_eq!(got[1], (200, TEST_PAGE_HTML.to_owned(), html));
    assert_eq!(got[2], (200, WSKIT_JS.to_owned(), js.clone()));
    assert_eq!(got[3], (200, WSKIT_JS.to_owned(), js));
    // The client really is the seed's API, and the page loads it.
    assert!(WSKIT_JS.contains("sgcWebSocket"));
    assert!(TEST_PAGE_HTML.contains(r#"<script src="/wskit.js">"#));
}

#[tokio::test]
async fn each_switch_alone_and_the_default_off() {
    let handler = |(s, b, _): &(u16, String, Option<String>)| *s == 200 && b == "handler";
    let got = bodies(config(true, false)).await;
    assert_eq!(got[0].1, TEST_PAGE_HTML);
    assert_eq!(got[1].1, TEST_PAGE_HTML);
    assert!(handler(&got[2]) && handler(&got[3]), "{got:?}");

    let got = bodies(config(false, true)).await;
    assert!(handler(&got[0]) && handler(&got[1]), "{got:?}");
    assert_eq!(got[2].1, WSKIT_JS);
    assert_eq!(got[3].1, WSKIT_JS);

    let defaults = ServerConfig::default();
    assert!(!defaults.html_files && !defaults.javascript_files);
    let got = bodies(local_config()).await;
    assert!(got.iter().all(handler), "{got:?}");
}

#[tokio::test]
async fn edited_page_head_post_and_document_root_precedence() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "mine").unwrap();
    let mut c = config(true, true);
    c.test_page = bytes::Bytes::from_static(b"<p>edited</p>");
    c.document_root = Some(dir.path().to_owned());
    let server = Server::start(c, Mine).await.unwrap();
    let addr = server.local_addrs()[0];
    // The root's index.html wins at `/`; the other page path has no file there.
    assert_eq!(request(addr, &get("/")).await.text(), "mine");
    assert_eq!(
        request(addr, &get("/sgcWebSockets.html")).await.text(),
        "<p>edited</p>"
    );
    let r = request(addr, "HEAD /sgcWebSockets.js HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-length"),
        Some(WSKIT_JS.len().to_string().as_str())
    );
    let r = request(
        addr,
        "POST /wskit.js HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    server.stop().await;
}
