//! npm oauth4webapi 3.8.9 (strict about metadata, PKCE and RFC 9207) as a client of the OAuth2
//! server: discovery, code + PKCE, the authorization response's `iss` and `state`, refresh
//! rotation, client credentials, introspection, revocation. Its package is pinned in
//! tests/peers/node (installed with `npm ci` when missing). A missing peer prints
//! `SKIPPED: ...` and passes, unless `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::{path::Path, process::Command, time::SystemTime};

fn peer_missing(what: &str) {
    ws_testkit::peers::missing(what, "apt-get install -y nodejs npm");
}

fn installed(package: &Path) -> bool {
    if package.join("node_modules/oauth4webapi").is_dir() {
        return true;
    }
    Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(package)
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth4webapi_runs_every_flow_against_the_server() {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        peer_missing("node is not installed");
        return;
    }
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node");
    let pkg = package.clone();
    if !tokio::task::spawn_blocking(move || installed(&pkg))
        .await
        .unwrap()
    {
        peer_missing("oauth4webapi could not be installed (npm ci in tests/peers/node)");
        return;
    }
    let run = common::start(None, common::config(None), "127.0.0.1:0").await;
    let now = SystemTime::now();
    let core = run.oauth2.server();
    let (public, _) = core
        .register_app(
            "oauth4webapi app",
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
    let args = vec![
        package
            .join("oauth4webapi_client.mjs")
            .to_string_lossy()
            .into_owned(),
        format!("http://{}", run.addr),
        public.client_id.clone(),
        backend.client_id.clone(),
        secret.unwrap(),
    ];
    let out =
        tokio::task::spawn_blocking(move || Command::new("node").args(args).output().unwrap())
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "oauth4webapi failed:\n{stdout}\n{stderr}"
    );
    run.server.stop().await;
}
