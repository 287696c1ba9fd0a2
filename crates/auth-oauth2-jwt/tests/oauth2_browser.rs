//! Headless Chromium through the whole browser flow: the sign-in page, consent, the redirect
//! with the code, then a WebSocket from the page with the token (as a `bearer.<token>`
//! subprotocol, since browsers cannot set headers on a WebSocket). Uses Debian's Chromium and
//! the playwright-core pinned in xtask/interop/browser (installed there with `npm ci` when
//! missing, as `cargo xtask interop browser` does). A missing peer prints `SKIPPED: ...` and
//! passes, unless `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::{path::Path, process::Command, sync::Arc, time::SystemTime};

use auth_oauth2_jwt::oauth2::{AuthServer, OAuth2, OsRandom, SqliteStore, server::s256};
use ws_server::{Binding, Body, Ctx, Handler, Request, Response, Server, ServerConfig};

const VERIFIER: &str = "browser-flow-verifier-0123456789-abcdefghijklmnopq";

struct Page {
    client_id: String,
}

impl Handler for Page {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let user = ctx.info().user().unwrap_or("-").to_owned();
        let _ = ctx.send(ws_server::ws_frame::Message::text(format!("hello {user}")));
    }

    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        if request.path() != "/callback" {
            return Response::new(404);
        }
        let script = format!(
            r#"(async () => {{
  const p = new URLSearchParams(location.search);
  const body = new URLSearchParams({{grant_type: 'authorization_code', code: p.get('code'),
    redirect_uri: location.origin + '/callback', client_id: '{}', code_verifier: '{VERIFIER}'}});
  const t = await (await fetch('/oauth2/token', {{method: 'POST', body}})).json();
  if (!t.access_token) throw new Error(JSON.stringify(t));
  const ws = new WebSocket('ws://' + location.host + '/chat', ['bearer.' + t.access_token]);
  ws.onmessage = (e) => {{ document.getElementById('result').textContent = e.data + ' iss=' + p.get('iss'); }};
  ws.onerror = () => {{ document.getElementById('result').textContent = 'websocket error'; }};
}})().catch((e) => {{ document.getElementById('result').textContent = 'error ' + e; }});"#,
            self.client_id
        );
        Response::new(200)
            .with_header("Content-Type", "text/html; charset=utf-8")
            .with_body(format!(
                "<!doctype html><pre id=\"result\">working</pre><script>{script}</script>"
            ))
    }
}

fn peer_missing(what: &str) {
    ws_testkit::peers::missing(what, "apt-get install -y chromium nodejs npm");
}

/// playwright-core's ESM entry, installed with `npm ci` from the committed lock file if needed.
fn playwright() -> Option<String> {
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../xtask/interop/browser");
    let entry = package.join("node_modules/playwright-core/index.mjs");
    if !entry.is_file() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&package)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
    }
    entry
        .is_file()
        .then(|| entry.to_string_lossy().into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_and_opens_a_websocket_with_the_token() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !Path::new(&chromium).is_file() || !node {
        peer_missing("Chromium or node is not installed");
        return;
    }
    let Some(playwright) = tokio::task::spawn_blocking(playwright).await.unwrap() else {
        peer_missing("playwright-core could not be installed (npm ci in xtask/interop/browser)");
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = common::config(Some(addr));
    config.public_paths = vec!["/callback".into()];
    let core = AuthServer::new(
        config,
        Arc::new(SqliteStore::memory().unwrap()),
        Arc::new(OsRandom),
    )
    .unwrap()
    .with_users(Arc::new(common::TestUsers));
    let (app, _) = core
        .register_app(
            "browser app",
            &["http://127.0.0.1/callback".into()],
            &[],
            false,
            SystemTime::now(),
        )
        .unwrap();
    let oauth2 = OAuth2::new(core);
    let page = Page {
        client_id: app.client_id.clone(),
    };
    let server = Server::start(
        ServerConfig::new(vec![Binding::plain(addr)]),
        oauth2.wrap(page),
    )
    .await
    .unwrap();
    let start = format!(
        "http://{addr}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&state=s1&code_challenge={}&code_challenge_method=S256",
        common::enc(&app.client_id),
        common::enc(&format!("http://{addr}/callback")),
        s256(VERIFIER)
    );
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/browser_oauth2.mjs"
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args([script, playwright.as_str(), start.as_str()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser flow failed:\n{stdout}\n{stderr}"
    );
    assert_eq!(
        stdout.trim(),
        format!("hello alice iss=http://{addr}"),
        "{stderr}"
    );
    server.stop().await;
}
