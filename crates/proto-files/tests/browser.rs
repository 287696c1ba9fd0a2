//! Headless Chromium speaks the files protocol through wskit-files.js (served by the server at
//! /wskit-files.js): the page sends a file at QoS 2 and receives one the server sends back at
//! QoS 1; sizes and SHA-256s must match on both sides. Chromium is driven by the playwright-core
//! pinned in xtask/interop/browser (installed with `npm ci` when missing). A missing peer prints
//! `SKIPPED: ...` and passes, unless `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::{
    path::Path,
    process::Command,
    sync::{Arc, OnceLock},
};

use common::*;
use proto_files::{Config, EventKind, FileEvent, Files, FilesHandler, Hooks, QoS, SendOptions};
use ws_server::{Body, Request, Response, Server, ServerHandle};

fn peer_missing(what: &str) {
    ws_testkit::peers::missing(what, "apt-get install -y chromium nodejs npm");
}

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

/// When the browser's file arrives, the server sends `reply` back to that connection.
struct SendBack {
    reply: std::path::PathBuf,
    files: Arc<OnceLock<(Files, ServerHandle)>>,
}

impl Hooks for SendBack {
    fn on_event(&self, e: &FileEvent) {
        if e.kind != EventKind::Received {
            return;
        }
        let Some((files, server)) = self.files.get().cloned() else {
            return;
        };
        let (conn, reply) = (e.conn, self.reply.clone());
        tokio::spawn(async move {
            let Some(c) = server.connections().into_iter().find(|c| c.id().0 == conn) else {
                return;
            };
            let Some(handle) = server.get(c.id()) else {
                return;
            };
            let r = files
                .send_file(&handle, &reply, &SendOptions::qos(QoS::Acknowledged))
                .await;
            eprintln!("server -> browser: {r:?}");
        });
    }
}

/// The files handler plus a page that loads /wskit-files.js.
struct WithPage(FilesHandler);

impl ws_server::Handler for WithPage {
    async fn on_handshake(&self, request: &Request) -> ws_server::Decision {
        self.0.on_handshake(request).await
    }
    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        if request.path() == "/" {
            return Response::new(200)
                .with_header("Content-Type", "text/html; charset=utf-8")
                .with_body("<!doctype html><script src=\"/wskit-files.js\"></script>");
        }
        self.0.on_http(request, body).await
    }
    async fn on_connect(&self, ctx: &mut ws_server::Ctx<'_>) {
        self.0.on_connect(ctx).await;
    }
    async fn on_binary(&self, ctx: &mut ws_server::Ctx<'_>, data: bytes::Bytes) {
        self.0.on_binary(ctx, data).await;
    }
    async fn on_disconnect(&self, info: &Arc<ws_server::ConnInfo>, d: ws_server::Disconnect) {
        self.0.on_disconnect(info, d).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_sends_and_receives_files_through_wskit_files_js() {
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let reply = make_file(tmp.path(), "to-browser.bin", 777_777, 3);
    let slot = Arc::new(OnceLock::new());
    let files = Files::new(
        Config::default(),
        Some(dir.clone()),
        SendBack {
            reply: reply.clone(),
            files: slot.clone(),
        },
    )
    .unwrap();
    let server = Server::start(
        server_config("127.0.0.1:0".parse().unwrap()),
        WithPage(FilesHandler::new(files.clone())),
    )
    .await
    .unwrap();
    let _ = slot.set((files, server.clone()));
    let addr = server.local_addrs()[0];
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/browser_files.mjs");
    let url = format!("http://{addr}/");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args([script, playwright.as_str(), url.as_str()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "browser failed:\n{stdout}\n{stderr}");
    eprintln!("browser: {stdout}");
    let stored = sha256_file(&dir.join("from-browser.bin"));
    assert!(
        stdout.contains(&format!("\"sha256\":\"{}\"", hex(&stored))),
        "the page's SHA-256 of what it sent: {stdout}"
    );
    assert_eq!(
        std::fs::metadata(dir.join("from-browser.bin"))
            .unwrap()
            .len(),
        1_000_003
    );
    let back = hex(&sha256_file(&reply));
    assert!(
        stdout.contains(&format!("\"blobSha\":\"{back}\"")),
        "the page's SHA-256 of what it received: {stdout}"
    );
    assert!(stdout.contains("\"size\":777777"), "{stdout}");
    server.stop().await;
}
