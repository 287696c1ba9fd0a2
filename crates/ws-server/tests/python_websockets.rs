//! Interop with a WebSocket client nobody here wrote: Python `websockets`, over ws:// and wss://
//! (certificate generated in the test), covering subprotocols, permessage-deflate, large and
//! fragmented messages, pings and close codes. Skips (with a message) when python3 or the
//! `websockets` package is missing, unless `WSKIT_REQUIRE_PEERS=1`.

use std::{
    path::Path,
    process::Command,
    sync::{Arc, Mutex},
};

use ws_frame::{CloseCode, deflate::DeflateConfig};
use ws_server::{Binding, ConnInfo, Ctx, Disconnect, Handler, Server, ServerConfig};

fn python_websockets_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import websockets.asyncio.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        ws_testkit::peers::missing(
            "python3 with the `websockets` package (>= 13) is not installed",
            "python3 -m pip install websockets",
        );
    }
    found
}

#[derive(Default, Clone)]
struct Peer {
    closes: Arc<Mutex<Vec<(u16, String)>>>,
}

impl Handler for Peer {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        if ctx.info().path() == "/close" {
            ctx.close(CloseCode::from_u16(4001), "server bye").unwrap();
        }
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: ws_frame::Message) {
        let _ = ctx.send(msg);
    }

    async fn on_disconnect(&self, _info: &Arc<ConnInfo>, d: Disconnect) {
        self.closes
            .lock()
            .unwrap()
            .push((d.code.as_u16(), d.reason.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client_over_ws_and_wss() {
    if !python_websockets_available() {
        return;
    }
    let pki = ws_tls::test_certs::TestPki::generate();
    let tls = ws_tls::server_config(&pki.server_config()).unwrap();
    let mut config = ServerConfig::new(vec![
        Binding::plain("127.0.0.1:0".parse().unwrap()),
        Binding::tls("127.0.0.1:0".parse().unwrap(), tls),
    ]);
    config.deflate = Some(DeflateConfig::default());
    config.protocols = vec!["superchat".into(), "chat".into()];
    let peer = Peer::default();
    let server = Server::start(config, peer.clone()).await.unwrap();
    let addrs = server.local_addrs();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/websockets_client.py");
    let plain = format!("ws://127.0.0.1:{}", addrs[0].port());
    let secure = format!("wss://localhost:{}", addrs[1].port());
    let ca = pki.ca.cert_file.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(plain)
            .arg(secure)
            .arg(ca)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{stderr}"
    );
    for check in ["echo", "deflate", "subprotocols", "close codes"] {
        for scheme in ["ws", "wss"] {
            assert!(
                stdout.contains(&format!("ok {scheme} {check}\n")),
                "missing check {scheme} {check}:\n{stdout}"
            );
        }
    }
    // The server saw the client's close code and reason, and the 1007 it sent itself.
    while server.count() > 0 {
        tokio::task::yield_now().await;
    }
    let closes = peer.closes.lock().unwrap().clone();
    assert!(
        closes.contains(&(4000, "client bye".to_owned())),
        "{closes:?}"
    );
    assert!(closes.iter().any(|(code, _)| *code == 1007), "{closes:?}");
    assert!(
        closes.contains(&(4001, "server bye".to_owned())),
        "{closes:?}"
    );
}
