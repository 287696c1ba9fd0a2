//! Python authlib + requests (and `websockets`) as a client of the OAuth2 server: code + PKCE
//! through the sign-in form, refresh with rotation, client credentials, introspection, a
//! WebSocket with the token, revocation. A missing peer prints `SKIPPED: ...` and passes,
//! unless `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::process::Command;

fn peer_missing(what: &str) {
    ws_testkit::peers::missing(
        &format!("{what} is not installed"),
        "python3 -m pip install authlib==1.9.10 requests websockets",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_drives_every_endpoint_and_a_websocket() {
    let probe = Command::new("python3")
        .args(["-c", "import authlib, requests, websockets.sync.client"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        peer_missing("Python authlib / requests / websockets");
        return;
    }
    let run = common::start(None, common::config(None), "127.0.0.1:0").await;
    let now = std::time::SystemTime::now();
    let core = run.oauth2.server();
    let (public, _) = core
        .register_app(
            "authlib app",
            &["http://127.0.0.1/cb".into()],
            &[],
            false,
            now,
        )
        .unwrap();
    let grants = vec!["client_credentials".to_owned()];
    let (backend, secret) = core
        .register_app("backend", &[], &grants, true, now)
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/authlib_client.py");
    let base = format!("http://{}", run.addr);
    let args: Vec<String> = vec![
        script.into(),
        base,
        public.client_id.clone(),
        backend.client_id.clone(),
        secret.unwrap(),
    ];
    let out =
        tokio::task::spawn_blocking(move || Command::new("python3").args(args).output().unwrap())
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "authlib client failed:\n{stdout}\n{stderr}"
    );
    run.server.stop().await;
}
