//! Faults: a TCP relay that cuts the connection after N bytes, for several N, at each QoS (the
//! sender reconnects and resumes until the file is whole); a receiving server stopped mid-file
//! and started again on the same directory; the receiver's silence ending a transfer.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::*;
use proto_files::{
    Config, Error, EventKind, FileEvent, FileId, FilesClient, Hooks, NoHooks, QoS, SendOptions,
};
use tokio::sync::Notify;
use ws_client::ClientConfig;

fn config() -> Config {
    let mut c = Config::default();
    c.chunk = 16 * 1024;
    c.window = 8;
    c
}

/// Sends `path` through `relay` until it arrives; returns the number of attempts and the
/// offsets the attempts resumed at.
async fn send_until_done(
    url: &str,
    path: &std::path::Path,
    qos: QoS,
    id: FileId,
) -> (usize, Vec<u64>) {
    let mut resumed = Vec::new();
    for attempt in 1..=400 {
        let Ok(client) =
            FilesClient::connect(url, ClientConfig::default(), config(), None, NoHooks).await
        else {
            continue;
        };
        let mut opts = SendOptions::qos(qos);
        opts.file_id = Some(id);
        match client.send_file(path, &opts).await {
            Ok(r) => {
                resumed.push(r.resumed_at);
                client.close().await;
                return (attempt, resumed);
            }
            Err(Error::Closed | Error::Client(_)) => {}
            Err(e) => panic!("attempt {attempt}: {e}"),
        }
    }
    panic!("no success in 400 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_resume_to_a_byte_identical_file_at_each_qos() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let (server, _files, addr) = start(config(), &dir, NoHooks).await;
    let path = make_file(tmp.path(), "payload.bin", 1_048_576 + 17, 3);
    let want = sha256_file(&path);
    let mut n = 0u8;
    for qos in [QoS::AtMostOnce, QoS::Acknowledged, QoS::Pulled] {
        for cut in [40_000u64, 150_000, 600_000] {
            n += 1;
            let relay = Relay::start(addr, Some(cut)).await;
            let url = format!("ws://{}/files", relay.addr);
            let id = FileId([n; 16]);
            let (attempts, _) = send_until_done(&url, &path, qos, id).await;
            let name = if n == 1 {
                "payload.bin".to_string()
            } else {
                format!("payload ({n}).bin")
            };
            let got = sha256_file(&dir.join(&name));
            eprintln!(
                "{qos:?} cut after {cut} B: {attempts} connections, sha256 {}",
                hex(&got)
            );
            assert_eq!(got, want, "{qos:?} cut {cut}");
            // Every attempt but the last was cut: more than one for a file larger than the cut.
            assert!(attempts > 1, "{qos:?} {cut}: the relay never cut");
            assert!(
                relay.connections.load(Ordering::SeqCst) >= attempts,
                "connections through the relay"
            );
        }
    }
    assert_eq!(std::fs::read_dir(dir.join(".partial")).unwrap().count(), 0);
    server.stop().await;
}

/// Signals once the receiver holds `at` bytes.
struct HalfWay {
    at: u64,
    hit: AtomicBool,
    notify: Arc<Notify>,
}

impl Hooks for HalfWay {
    fn on_event(&self, e: &FileEvent) {
        if e.kind == EventKind::ReceivedFragment && e.position >= self.at {
            if !self.hit.swap(true, Ordering::SeqCst) {
                self.notify.notify_one();
            }
            // From here on the receiver crawls (the hook runs inline on its connection), so
            // the file cannot finish before the server is stopped.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_restarted_mid_file_resumes_from_its_partial_file() {
    for qos in [QoS::AtMostOnce, QoS::Acknowledged, QoS::Pulled] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("srv");
        let path = make_file(tmp.path(), "big.bin", 4_000_000, 9);
        let want = sha256_file(&path);
        let notify = Arc::new(Notify::new());
        let hooks = HalfWay {
            at: 1_000_000,
            hit: AtomicBool::new(false),
            notify: notify.clone(),
        };
        let files = proto_files::Files::new(config(), Some(dir.clone()), hooks).unwrap();
        let mut sc = server_config("127.0.0.1:0".parse().unwrap());
        sc.stop_timeout = Duration::from_millis(500);
        let server = ws_server::Server::start(sc, proto_files::FilesHandler::new(files))
            .await
            .unwrap();
        let addr = server.local_addrs()[0];
        let url = format!("ws://{addr}/files");
        let client = FilesClient::connect(
            url.as_str(),
            ClientConfig::default(),
            config(),
            None,
            NoHooks,
        )
        .await
        .unwrap();
        let p = path.clone();
        let sending = tokio::spawn(async move {
            let r = client.send_file(&p, &SendOptions::qos(qos)).await;
            (client, r)
        });
        notify.notified().await;
        server.stop().await;
        let (client, first) = sending.await.unwrap();
        assert!(
            first.is_err(),
            "{qos:?}: the first attempt should not finish"
        );
        drop(client);
        let partial_len: u64 = std::fs::read_dir(dir.join(".partial"))
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                e.file_name()
                    .to_string_lossy()
                    .ends_with(".part")
                    .then(|| e.metadata().unwrap().len())
            })
            .sum();
        assert!(
            partial_len >= 1_000_000,
            "{qos:?}: partial of {partial_len} bytes"
        );
        // A new server process on the same directory.
        let (server, _files, addr) = start(config(), &dir, NoHooks).await;
        let client = FilesClient::connect(
            format!("ws://{addr}/files").as_str(),
            ClientConfig::default(),
            config(),
            None,
            NoHooks,
        )
        .await
        .unwrap();
        let r = client
            .send_file(&path, &SendOptions::qos(qos))
            .await
            .unwrap();
        eprintln!(
            "{qos:?}: restarted receiver resumed at {} of 4000000, sha256 {}",
            r.resumed_at,
            hex(&r.sha256)
        );
        assert!(
            r.resumed_at >= 1_000_000 && r.resumed_at <= partial_len,
            "{qos:?}: {r:?}"
        );
        assert_eq!(r.sha256, want);
        assert_eq!(sha256_file(&dir.join("big.bin")), want);
        client.close().await;
        server.stop().await;
    }
}

#[tokio::test]
async fn without_keep_partial_on_disconnect_a_cut_transfer_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let mut cfg = config();
    cfg.keep_partial_on_disconnect = false;
    let (server, _files, addr) = start(cfg, &dir, NoHooks).await;
    let path = make_file(tmp.path(), "x.bin", 500_000, 4);
    let relay = Relay::start(addr, Some(200_000)).await;
    let client = FilesClient::connect(
        format!("ws://{}/", relay.addr).as_str(),
        ClientConfig::default(),
        config(),
        None,
        NoHooks,
    )
    .await
    .unwrap();
    let mut opts = SendOptions::qos(QoS::Acknowledged);
    opts.file_id = Some(FileId([7; 16]));
    assert!(client.send_file(&path, &opts).await.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(std::fs::read_dir(dir.join(".partial")).unwrap().count(), 0);
    drop(relay);
    let client = FilesClient::connect(
        format!("ws://{addr}/").as_str(),
        ClientConfig::default(),
        config(),
        None,
        NoHooks,
    )
    .await
    .unwrap();
    let r = client.send_file(&path, &opts).await.unwrap();
    assert_eq!(r.resumed_at, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_full_disk_on_the_receiver_is_a_clear_error_for_the_sender() {
    use std::io::BufRead as _;
    let bin = env!("CARGO_BIN_EXE_files-node");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    std::fs::create_dir_all(&dir).unwrap();
    // RLIMIT_FSIZE of about 1 MB on the server process; SIGXFSZ ignored (inherited through
    // exec), so a write past the limit fails with EFBIG instead of killing the process.
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 2048; exec '{}' serve '{}'",
            bin,
            dir.display()
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().strip_prefix("listening ").unwrap().to_string();
    let path = make_file(tmp.path(), "huge.bin", 3_000_000, 5);
    let client = FilesClient::connect(
        format!("ws://{addr}/files").as_str(),
        ClientConfig::default(),
        config(),
        None,
        NoHooks,
    )
    .await
    .unwrap();
    let err = client
        .send_file(&path, &SendOptions::qos(QoS::Acknowledged))
        .await
        .unwrap_err();
    eprintln!("disk full: {err}");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        matches!(&err, Error::Remote { code: proto_files::Code::Storage, message } if message.contains("large")),
        "{err:?}"
    );
    // The partial file is kept for a later resume (keep_partial_on_error), within the limit.
    let kept: Vec<u64> = std::fs::read_dir(dir.join(".partial"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_name()
                .to_string_lossy()
                .ends_with(".part")
                .then(|| e.metadata().unwrap().len())
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0] > 0 && kept[0] <= 2048 * 1024, "{kept:?}");
}

#[tokio::test]
async fn a_half_open_connection_ending_does_not_remove_the_file_a_new_one_is_receiving() {
    // keep_partial_on_disconnect off: the first connection's end would remove the partial file,
    // but a second connection is receiving the same file id by then.
    use bytes::Bytes;
    use proto_files::wire::{self, Msg, Offer};
    use ws_client::Message;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let mut cfg = config();
    cfg.keep_partial_on_disconnect = false;
    let (server, _files, addr) = start(cfg, &dir, NoHooks).await;
    let id = FileId([9; 16]);
    let offer = Offer {
        size: 3000,
        chunk: 1000,
        qos: QoS::AtMostOnce,
        name: "same.bin",
        channel: "",
        data: "",
    };
    let mut conns = Vec::new();
    for _ in 0..2 {
        let mut cc = ClientConfig::default();
        cc.protocols = vec![proto_files::SUBPROTOCOL.into()];
        let mut ws = ws_client::connect(format!("ws://{addr}/").as_str(), cc)
            .await
            .unwrap();
        ws.send(Message::Binary(Bytes::from(wire::to_vec(
            id,
            &Msg::Offer(offer),
        ))))
        .await
        .unwrap();
        let Message::Binary(answer) = ws.recv().await.unwrap().unwrap() else {
            panic!("a text answer")
        };
        assert!(matches!(
            wire::decode(&answer).unwrap().msg,
            Msg::Accept { .. }
        ));
        conns.push(ws);
    }
    // The first connection goes away; the second goes on and finishes.
    let first = conns.remove(0);
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ws = conns.remove(0);
    let data = vec![7u8; 3000];
    for off in [0usize, 1000, 2000] {
        ws.send(Message::Binary(Bytes::from(wire::to_vec(
            id,
            &Msg::Data {
                packet: 1,
                offset: off as u64,
                chunk: &data[off..off + 1000],
            },
        ))))
        .await
        .unwrap();
    }
    let sha: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&data).into();
    ws.send(Message::Binary(Bytes::from(wire::to_vec(
        id,
        &Msg::Complete { sha256: sha },
    ))))
    .await
    .unwrap();
    let mut ws = ws;
    let Message::Binary(echo) = ws.recv().await.unwrap().unwrap() else {
        panic!("a text answer")
    };
    assert_eq!(
        wire::decode(&echo).unwrap().msg,
        Msg::Complete { sha256: sha }
    );
    assert_eq!(std::fs::read(dir.join("same.bin")).unwrap(), data);
    server.stop().await;
}

/// The metadata of a partial file lives in SQLite in the save directory: a server started on a
/// directory a previous process left resumes from it; a corrupt row refuses the file with a
/// clear error (the partial file untouched), and a missing row starts over, never a resume on
/// a guess.
#[tokio::test]
async fn partial_metadata_in_sqlite_resumes_refuses_when_corrupt_and_starts_over_when_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let path = make_file(tmp.path(), "half.bin", 300_000, 4);
    let want = sha256_file(&path);
    let bytes = std::fs::read(&path).unwrap();
    let id = FileId([0x42; 16]);
    let db = dir.join(proto_files::Store::DB_FILE);
    // What an earlier process left: the first 100000 bytes and their metadata.
    let leave_partial = || {
        let store = proto_files::Store::open(&dir).unwrap();
        let info = proto_files::OfferInfo::new("half.bin", 300_000, QoS::Acknowledged);
        store
            .create(id, &proto_files::Meta::new(info, 16 * 1024, 1))
            .unwrap();
        std::fs::write(store.part_path(id), &bytes[..100_000]).unwrap();
    };
    let send = |addr: std::net::SocketAddr| {
        let path = path.clone();
        async move {
            let client = FilesClient::connect(
                format!("ws://{addr}/files").as_str(),
                ClientConfig::default(),
                config(),
                None,
                NoHooks,
            )
            .await
            .unwrap();
            let mut opts = SendOptions::qos(QoS::Acknowledged);
            opts.file_id = Some(id);
            let r = client.send_file(&path, &opts).await;
            client.close().await;
            r
        }
    };

    leave_partial();
    let (server, _files, addr) = start(config(), &dir, NoHooks).await;
    let r = send(addr).await.unwrap();
    assert_eq!(r.resumed_at, 100_000, "{r:?}");
    assert_eq!(sha256_file(&dir.join("half.bin")), want);
    server.stop().await;
    std::fs::remove_file(dir.join("half.bin")).unwrap();

    // A damaged row: refused with a text naming the file id and what to do.
    leave_partial();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("UPDATE files_partial SET qos = 7")
        .unwrap();
    let (server, _files, addr) = start(config(), &dir, NoHooks).await;
    let e = send(addr).await.unwrap_err();
    assert!(
        matches!(&e, Error::Remote { code: proto_files::Code::Storage, message }
            if message.contains("corrupt") && message.contains(&id.to_hex())),
        "{e:?}"
    );
    let store = proto_files::Store::open(&dir).unwrap();
    assert_eq!(
        std::fs::metadata(store.part_path(id)).unwrap().len(),
        100_000
    );
    assert!(!dir.join("half.bin").exists());
    server.stop().await;

    // No row at all: the partial file is not trusted, the transfer starts over.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DELETE FROM files_partial")
        .unwrap();
    let (server, _files, addr) = start(config(), &dir, NoHooks).await;
    let r = send(addr).await.unwrap();
    assert_eq!(r.resumed_at, 0, "{r:?}");
    assert_eq!(sha256_file(&dir.join("half.bin")), want);
    server.stop().await;
}
