//! tus interop with Node: npm tus-js-client 4.3.1 uploads to the tus door, is interrupted (its
//! first process aborts after 1 MiB), and a second process resumes from the upload URL; our
//! `TusClient` uploads to the reference server, npm @tus/server 2.4.5 with @tus/file-store
//! 2.1.1, stops after three chunks and resumes. The stored SHA-256 must match each time.
//! Packages are pinned in tests/peers/node (installed with `npm ci` when missing). A missing
//! peer prints `SKIPPED: ...` and passes, unless `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::{
    io::BufRead as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use common::*;
use proto_files::{Config, NoHooks, TusClient};

fn peer_missing(what: &str) {
    ws_testkit::peers::missing(what, "apt-get install -y nodejs npm");
}

/// The pinned packages, installed when missing; `None` (after the skip message) without node.
async fn peers() -> Option<PathBuf> {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node {
        peer_missing("node is not installed");
        return None;
    }
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node");
    let pkg = package.clone();
    let ok = tokio::task::spawn_blocking(move || {
        pkg.join("node_modules/tus-js-client").is_dir()
            && pkg.join("node_modules/@tus/server").is_dir()
            || Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&pkg)
                .status()
                .is_ok_and(|s| s.success())
    })
    .await
    .unwrap();
    if !ok {
        peer_missing("the tus packages could not be installed (npm ci in tests/peers/node)");
        return None;
    }
    Some(package)
}

fn node(package: &Path, args: &[String]) -> Vec<String> {
    let out = Command::new("node")
        .arg(package.join("tus_js_upload.mjs"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "node failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_is_interrupted_resumes_and_the_sha256_matches() {
    let Some(package) = peers().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let (server, _files, addr) = start(Config::default(), &dir, NoHooks).await;
    let path = make_file(tmp.path(), "js-source.bin", 3_000_000 + 77, 21);
    let want = sha256_file(&path);
    let endpoint = format!("http://{addr}/files/");
    let chunk = (256 * 1024).to_string();
    let p = path.display().to_string();
    let (pk, e, pp, c) = (package.clone(), endpoint.clone(), p.clone(), chunk.clone());
    let out = tokio::task::spawn_blocking(move || {
        node(&pk, &["start".into(), e, pp, c, (1 << 20).to_string()])
    })
    .await
    .unwrap();
    let url = out[0].clone();
    let stopped: u64 = out[1].parse().unwrap();
    assert!((1 << 20..3_000_077).contains(&stopped), "{out:?}");
    assert!(!dir.join("from-tus-js.bin").exists());
    let (pk, u) = (package.clone(), url.clone());
    let out =
        tokio::task::spawn_blocking(move || node(&pk, &["resume".into(), endpoint, p, chunk, u]))
            .await
            .unwrap();
    assert_eq!(out[0], url, "the same upload resumed");
    assert_eq!(out[1], "3000077");
    let got = sha256_file(&dir.join("from-tus-js.bin"));
    eprintln!(
        "tus-js-client: stopped at {stopped}, resumed, stored sha256 {}",
        hex(&got)
    );
    assert_eq!(got, want);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_tus_client_uploads_to_tus_server_stops_resumes_and_the_sha256_matches() {
    let Some(package) = peers().await else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("tus-store");
    std::fs::create_dir_all(&store).unwrap();
    let mut child = Command::new("node")
        .arg(package.join("tus_server.mjs"))
        .arg(&store)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().strip_prefix("listening ").unwrap().to_string();
    let path = make_file(tmp.path(), "to-node.bin", 2_000_000 + 5, 31);
    let want = sha256_file(&path);
    let client = TusClient::new(&format!("http://127.0.0.1:{port}/files"), 256 * 1024).unwrap();
    let first = client.upload(&path, None, Some(3)).await;
    let second = match &first {
        Ok(r) => client.upload(&path, Some(&r.url), None).await,
        Err(e) => Err(proto_files::Error::Config(e.to_string())),
    };
    let _ = child.kill();
    let _ = child.wait();
    let first = first.unwrap();
    assert_eq!(first.offset, 3 * 256 * 1024);
    assert_eq!(first.sha256, None);
    let second = second.unwrap();
    assert_eq!(second.resumed_at, 3 * 256 * 1024);
    assert_eq!(second.offset, second.size);
    assert_eq!(second.sha256, Some(want));
    let id = second.url.rsplit('/').next().unwrap();
    let got = sha256_file(&store.join(id));
    eprintln!(
        "@tus/server: our client stopped at {}, resumed, stored sha256 {}",
        first.offset,
        hex(&got)
    );
    assert_eq!(got, want);
}

#[tokio::test]
async fn our_tus_client_uploads_to_our_tus_door() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let (server, _files, addr) = start(Config::default(), &dir, NoHooks).await;
    let path = make_file(tmp.path(), "self.bin", 700_001, 41);
    let client = TusClient::new(&format!("http://{addr}/files/"), 100_000).unwrap();
    let first = client.upload(&path, None, Some(2)).await.unwrap();
    assert_eq!(first.offset, 200_000);
    let done = client.upload(&path, Some(&first.url), None).await.unwrap();
    assert_eq!(done.resumed_at, 200_000);
    assert_eq!(done.sha256, Some(sha256_file(&path)));
    assert_eq!(sha256_file(&dir.join("self.bin")), sha256_file(&path));
    server.stop().await;
}

/// `https://`: our client uploads over TLS (a throwaway CA given with `with_tls`), resumes, and
/// the stored file matches; without trusting that CA the upload fails with a TLS error instead
/// of sending anything in the clear, and a plain `http://` client to the same port fails.
#[tokio::test]
async fn our_tus_client_uploads_over_tls() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let files = proto_files::Files::new(Config::default(), Some(dir.clone()), NoHooks).unwrap();
    let tls = ws_tls::server_config(&pki.server_config()).unwrap();
    let mut sc = server_config("127.0.0.1:0".parse().unwrap());
    sc.bindings = vec![ws_server::Binding::tls("127.0.0.1:0".parse().unwrap(), tls)];
    let server = ws_server::Server::start(sc, proto_files::FilesHandler::new(files))
        .await
        .unwrap();
    let port = server.local_addrs()[0].port();
    let path = make_file(tmp.path(), "tls.bin", 500_003, 43);
    let url = format!("https://localhost:{port}/files/");

    // The port speaks TLS only: a plain-text client gets no tus answer there, so the uploads
    // below went through TLS.
    let plain = TusClient::new(&format!("http://localhost:{port}/files/"), 100_000).unwrap();
    assert!(plain.upload(&path, None, None).await.is_err());

    let untrusted = TusClient::new(&url, 100_000).unwrap();
    let e = untrusted.upload(&path, None, None).await.unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    let client = TusClient::new(&url, 100_000)
        .unwrap()
        .with_tls(&pki.client_config())
        .unwrap();
    let first = client.upload(&path, None, Some(2)).await.unwrap();
    assert!(first.url.starts_with("https://localhost:"), "{}", first.url);
    assert_eq!(first.offset, 200_000);
    let done = client.upload(&path, Some(&first.url), None).await.unwrap();
    assert_eq!(done.resumed_at, 200_000);
    assert_eq!(sha256_file(&dir.join("tls.bin")), sha256_file(&path));
    server.stop().await;
}
