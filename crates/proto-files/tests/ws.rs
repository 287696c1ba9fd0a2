//! The files protocol between a ws-server and ws-client on loopback: each QoS both ways,
//! broadcast to a channel, a refused file, hostile messages from a raw client.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt as _;
use proto_files::{
    ChannelHooks, Code, Config, Error, EventKind, FileId, FilesClient, Hooks, NoHooks, OfferInfo,
    QoS, SUBPROTOCOL, SendOptions,
    wire::{self, Msg, Offer},
};
use ws_client::{ClientConfig, Message};
use ws_server::Filter;

fn config() -> Config {
    let mut c = Config::default();
    c.chunk = 16 * 1024;
    c
}

#[tokio::test]
async fn a_client_sends_at_each_qos_and_the_server_stores_it_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let (server_dir, src) = (tmp.path().join("in"), tmp.path().join("src"));
    std::fs::create_dir_all(&src).unwrap();
    let (hooks, mut events) = ChannelHooks::new(10_000);
    let (server, _files, addr) = start(config(), &server_dir, hooks).await;
    for (i, qos) in [QoS::AtMostOnce, QoS::Acknowledged, QoS::Pulled]
        .into_iter()
        .enumerate()
    {
        let name = format!("q{i}.bin");
        let path = make_file(&src, &name, 1_000_003, i as u32 + 1);
        let (chooks, mut cevents) = ChannelHooks::new(10_000);
        let client = FilesClient::connect(
            format!("ws://{addr}/files").as_str(),
            ClientConfig::default(),
            config(),
            None,
            chooks,
        )
        .await
        .unwrap();
        let report = client
            .send_file(&path, &SendOptions::qos(qos))
            .await
            .unwrap();
        assert_eq!(report.sha256, sha256_file(&path));
        assert_eq!(report.resumed_at, 0);
        let stored = server_dir.join(&name);
        assert_eq!(sha256_file(&stored), sha256_file(&path), "{qos:?}");
        // The sender's events: before sent, fragments, acks at QoS 1 only, sent.
        let mut kinds = Vec::new();
        while let Ok(e) = cevents.try_recv() {
            kinds.push(e.kind);
        }
        let count = |k| kinds.iter().filter(|x| **x == k).count();
        assert_eq!(count(EventKind::BeforeSent), 1);
        assert_eq!(count(EventKind::SentFragment), 62, "1,000,003 / 16 KiB");
        assert_eq!(
            count(EventKind::SentAcknowledgment),
            if qos == QoS::Acknowledged { 62 } else { 0 }
        );
        assert_eq!(count(EventKind::Sent), 1);
        client.close().await;
    }
    // The receiver's events.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut received = Vec::new();
    while let Ok(e) = events.try_recv() {
        if e.kind == EventKind::Received {
            received.push((e.info.name.clone(), e.path.clone(), e.sha256));
        }
    }
    assert_eq!(received.len(), 3, "{received:?}");
    // No partial files left behind.
    assert_eq!(
        std::fs::read_dir(server_dir.join(".partial"))
            .unwrap()
            .count(),
        0
    );
    server.stop().await;
}

#[tokio::test]
async fn the_server_sends_to_one_client_and_broadcasts_to_a_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let (server, files, addr) = start(config(), &tmp.path().join("srv"), NoHooks).await;
    let mut clients = Vec::new();
    for (i, url) in [
        format!("ws://{addr}/f?channel=news"),
        format!("ws://{addr}/f?channel=news/%2B"),
        format!("ws://{addr}/f?channel=sport"),
    ]
    .iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("c{i}"));
        clients.push((
            FilesClient::connect(
                url.as_str(),
                ClientConfig::default(),
                config(),
                Some(dir.clone()),
                NoHooks,
            )
            .await
            .unwrap(),
            dir,
        ));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let path = make_file(&src, "bulletin.txt", 300_000, 7);
    let want = sha256_file(&path);
    // One connection.
    let first = server
        .connections()
        .into_iter()
        .find(|c| c.url().contains("channel=sport"))
        .unwrap();
    let conn = server.get(first.id()).unwrap();
    let r = files
        .send_file(&conn, &path, &SendOptions::qos(QoS::Pulled))
        .await
        .unwrap();
    assert_eq!(r.sha256, want);
    assert_eq!(sha256_file(&clients[2].1.join("bulletin.txt")), want);
    // Broadcast to channel news/today: reaches the subscribers of news/+ only... and not news.
    let out = files
        .broadcast_file(
            &server,
            &path,
            &Filter::channel("news/today"),
            &SendOptions::qos(QoS::Acknowledged),
        )
        .await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].1.is_ok());
    assert_eq!(sha256_file(&clients[1].1.join("bulletin.txt")), want);
    assert!(!clients[0].1.join("bulletin.txt").exists());
    // Broadcast to news: the first client.
    let out = files
        .broadcast_file(
            &server,
            &path,
            &Filter::channel("news"),
            &SendOptions::default(),
        )
        .await;
    assert_eq!(out.len(), 1);
    assert_eq!(sha256_file(&clients[0].1.join("bulletin.txt")), want);
    for (c, _) in clients {
        c.close().await;
    }
    server.stop().await;
}

struct Refuse;
impl Hooks for Refuse {
    fn authorize(&self, _conn: u64, info: &OfferInfo) -> Result<(), (Code, String)> {
        if info.name.ends_with(".exe") {
            Err((Code::Refused, "no executables".into()))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_refused_file_is_the_senders_error_event() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, _files, addr) = start(config(), &tmp.path().join("srv"), Refuse).await;
    let path = make_file(tmp.path(), "setup.exe", 1000, 1);
    let (hooks, mut events) = ChannelHooks::new(100);
    let client = FilesClient::connect(
        format!("ws://{addr}/").as_str(),
        ClientConfig::default(),
        config(),
        None,
        hooks,
    )
    .await
    .unwrap();
    let err = client
        .send_file(&path, &SendOptions::qos(QoS::Acknowledged))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Remote { code: Code::Refused, message } if message == "no executables"),
        "{err:?}"
    );
    let mut saw = false;
    while let Ok(e) = events.try_recv() {
        if e.kind == EventKind::SentError {
            assert_eq!(e.code, Some(Code::Refused));
            assert!(e.error.unwrap().contains("no executables"));
            saw = true;
        }
    }
    assert!(saw, "no SentError event");
    assert!(!tmp.path().join("srv/setup.exe").exists());
    client.close().await;
    server.stop().await;
}

/// A raw client speaking the wire format by hand.
async fn raw(addr: std::net::SocketAddr) -> ws_client::WebSocket {
    let mut cfg = ClientConfig::default();
    cfg.protocols = vec![SUBPROTOCOL.into()];
    let ws = ws_client::connect(format!("ws://{addr}/").as_str(), cfg)
        .await
        .unwrap();
    assert_eq!(ws.protocol(), Some(SUBPROTOCOL));
    ws
}

async fn reply(ws: &mut ws_client::WebSocket) -> Vec<u8> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Binary(b) => return b.to_vec(),
            _ => continue,
        }
    }
}

fn offer(name: &str, size: u64, qos: QoS) -> Offer<'_> {
    Offer {
        size,
        chunk: 1000,
        qos,
        name,
        channel: "",
        data: "",
    }
}

async fn send(ws: &ws_client::WebSocket, id: FileId, msg: Msg<'_>) {
    ws.send(Message::Binary(Bytes::from(wire::to_vec(id, &msg))))
        .await
        .unwrap();
}

#[tokio::test]
async fn hostile_messages_are_refused_with_clear_codes_and_nothing_leaves_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let (server, _files, addr) = start(config(), &dir, NoHooks).await;
    let mut ws = raw(addr).await;
    // Path traversal in names.
    for (i, name) in ["../escape.txt", "/tmp/abs.txt", "..", "a/../../b", "c:\\x"]
        .iter()
        .enumerate()
    {
        let id = FileId([i as u8 + 1; 16]);
        send(&ws, id, Msg::Offer(offer(name, 10, QoS::Acknowledged))).await;
        let r = reply(&mut ws).await;
        let f = wire::decode(&r).unwrap();
        assert_eq!(f.id, id);
        assert!(
            matches!(f.msg, Msg::Refuse { code: 2, reason } if reason.contains("file name")),
            "{name}: {:?}",
            f.msg
        );
    }
    assert!(!tmp.path().join("escape.txt").exists());
    // An offset past the size.
    let id = FileId([20; 16]);
    send(&ws, id, Msg::Offer(offer("ok.bin", 10, QoS::Acknowledged))).await;
    assert!(matches!(
        wire::decode(&reply(&mut ws).await).unwrap().msg,
        Msg::Accept { .. }
    ));
    send(
        &ws,
        id,
        Msg::Data {
            packet: 1,
            offset: 8,
            chunk: b"abcd",
        },
    )
    .await;
    let r = reply(&mut ws).await;
    assert!(
        matches!(wire::decode(&r).unwrap().msg, Msg::Error { code: 4, .. }),
        "{:?}",
        wire::decode(&r)
    );
    // Out of order, then a duplicate (QoS 1).
    let id = FileId([21; 16]);
    send(
        &ws,
        id,
        Msg::Offer(offer("ooo.bin", 3000, QoS::Acknowledged)),
    )
    .await;
    reply(&mut ws).await;
    send(
        &ws,
        id,
        Msg::Data {
            packet: 1,
            offset: 1000,
            chunk: &[0; 1000],
        },
    )
    .await;
    assert!(matches!(
        wire::decode(&reply(&mut ws).await).unwrap().msg,
        Msg::Error { code: 5, .. }
    ));
    let id = FileId([22; 16]);
    send(
        &ws,
        id,
        Msg::Offer(offer("dup.bin", 3000, QoS::Acknowledged)),
    )
    .await;
    reply(&mut ws).await;
    send(
        &ws,
        id,
        Msg::Data {
            packet: 1,
            offset: 0,
            chunk: &[0; 1000],
        },
    )
    .await;
    assert!(matches!(
        wire::decode(&reply(&mut ws).await).unwrap().msg,
        Msg::Ack { offset: 1000, .. }
    ));
    send(
        &ws,
        id,
        Msg::Data {
            packet: 2,
            offset: 0,
            chunk: &[0; 1000],
        },
    )
    .await;
    assert!(matches!(
        wire::decode(&reply(&mut ws).await).unwrap().msg,
        Msg::Error { code: 6, .. }
    ));
    // A size that changes for a known file id (its partial file was kept after the error).
    send(
        &ws,
        id,
        Msg::Offer(offer("dup.bin", 4000, QoS::Acknowledged)),
    )
    .await;
    assert!(matches!(
        wire::decode(&reply(&mut ws).await).unwrap().msg,
        Msg::Refuse { code: 7, .. }
    ));
    // The same size resumes at 1000.
    send(
        &ws,
        id,
        Msg::Offer(offer("dup.bin", 3000, QoS::Acknowledged)),
    )
    .await;
    assert_eq!(
        wire::decode(&reply(&mut ws).await).unwrap().msg,
        Msg::Resume {
            offset: 1000,
            window: 16
        }
    );
    // Too large.
    let mut small = config();
    small.max_file_size = 1 << 20;
    let id = FileId([23; 16]);
    send(
        &ws,
        id,
        Msg::Offer(offer("big.bin", 1 << 40, QoS::AtMostOnce)),
    )
    .await;
    // (the default limit is 64 GiB)
    assert!(matches!(
        wire::decode(&reply(&mut ws).await).unwrap().msg,
        Msg::Refuse { code: 3, .. }
    ));
    // A zero-byte file.
    let id = FileId([24; 16]);
    send(&ws, id, Msg::Offer(offer("empty.txt", 0, QoS::Pulled))).await;
    assert!(matches!(
        wire::decode(&reply(&mut ws).await).unwrap().msg,
        Msg::Accept { .. }
    ));
    let empty: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest([]).into();
    send(&ws, id, Msg::Complete { sha256: empty }).await;
    loop {
        let r = reply(&mut ws).await;
        match wire::decode(&r).unwrap().msg {
            Msg::Request { .. } => continue,
            Msg::Complete { sha256 } => {
                assert_eq!(sha256, empty);
                break;
            }
            m => panic!("{m:?}"),
        }
    }
    assert_eq!(std::fs::read(dir.join("empty.txt")).unwrap(), b"");
    // Garbage.
    ws.send(Message::Binary(Bytes::from_static(&[1, 99, 0, 0])))
        .await
        .unwrap();
    // Nothing outside the directory, only the expected files inside.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![".partial", ".tus", ".wskit-files.db", "empty.txt"]
    );
    let mut outside: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    assert_eq!(outside, vec!["srv"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_resumes_past_4_gib() {
    // Sparse files: 4 GiB of zeros then 100,000 bytes of data; the receiver already holds the
    // zeros (a partial file of exactly 4 GiB), so the transfer resumes at offset 2^32.
    use std::io::{Seek as _, SeekFrom, Write as _};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("srv");
    let four = 1u64 << 32;
    let src = tmp.path().join("huge.bin");
    let tail: Vec<u8> = (0..100_000u32).map(|i| (i * 31 % 253) as u8).collect();
    {
        let mut f = std::fs::File::create(&src).unwrap();
        f.set_len(four + tail.len() as u64).unwrap();
        f.seek(SeekFrom::Start(four)).unwrap();
        f.write_all(&tail).unwrap();
    }
    let id = FileId([0x44; 16]);
    let store = proto_files::Store::open(&dir).unwrap();
    let info = OfferInfo::new("huge.bin", four + tail.len() as u64, QoS::Acknowledged);
    let meta = proto_files::Meta::new(info, 16 * 1024, 0);
    store.create(id, &meta).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(store.part_path(id))
        .unwrap()
        .set_len(four)
        .unwrap();
    // Both sides hash the 4 GiB they already have before data flows (seconds, longer on a
    // loaded machine): a timeout well above that.
    let mut cfg = config();
    cfg.max_file_size = 8 << 30;
    cfg.timeout = Duration::from_secs(300);
    let (server, _files, addr) = start(cfg.clone(), &dir, NoHooks).await;
    let client = FilesClient::connect(
        format!("ws://{addr}/").as_str(),
        ClientConfig::default(),
        cfg,
        None,
        NoHooks,
    )
    .await
    .unwrap();
    let mut opts = SendOptions::qos(QoS::Acknowledged);
    opts.file_id = Some(id);
    let r = client.send_file(&src, &opts).await.unwrap();
    assert_eq!(r.resumed_at, four);
    assert_eq!(r.size, four + 100_000);
    let stored = dir.join("huge.bin");
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), four + 100_000);
    let mut f = std::fs::File::open(&stored).unwrap();
    f.seek(SeekFrom::Start(four)).unwrap();
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut back).unwrap();
    assert!(back == tail, "the bytes past 4 GiB differ");
    client.close().await;
    server.stop().await;
}

/// A receiver that answers the last chunks and the `complete` and closes at once (as a browser
/// page does when it has its file): the server's `send_file` reports the file sent, it does not
/// take the end of the connection that follows for a failure.
#[tokio::test]
async fn a_receiver_that_closes_right_after_its_complete_leaves_the_send_a_success() {
    use sha2::Digest as _;
    for qos in [QoS::Acknowledged, QoS::Pulled] {
        let tmp = tempfile::tempdir().unwrap();
        let (server, files, addr) = start(config(), &tmp.path().join("srv"), NoHooks).await;
        let path = make_file(tmp.path(), "short-lived.bin", 300_001, 3);
        let want = sha256_file(&path);
        let mut ws = raw(addr).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let conn = server.get(server.connections()[0].id()).unwrap();
        let sending = tokio::spawn({
            let files = files.clone();
            let path = path.clone();
            async move { files.send_file(&conn, &path, &SendOptions::qos(qos)).await }
        });
        let f = reply(&mut ws).await;
        let f = wire::decode(&f).unwrap();
        let (id, size) = match f.msg {
            Msg::Offer(o) => (f.id, o.size),
            m => panic!("{m:?}"),
        };
        // A window past the whole file: every chunk comes without further credit.
        send(&ws, id, Msg::Accept { window: 1000 }).await;
        if qos == QoS::Pulled {
            let credit = Msg::Request {
                offset: 0,
                count: 1000,
                retransmit: false,
            };
            send(&ws, id, credit).await;
        }
        let mut h = sha2::Sha256::new();
        let mut packets = Vec::new();
        let mut stored = 0u64;
        let digest = loop {
            let m = reply(&mut ws).await;
            let f = wire::decode(&m).unwrap();
            match f.msg {
                Msg::Data {
                    packet,
                    offset,
                    chunk,
                } => {
                    assert_eq!(offset, stored);
                    h.update(chunk);
                    stored += chunk.len() as u64;
                    packets.push((packet, stored));
                }
                Msg::Complete { sha256 } => break sha256,
                m => panic!("{m:?}"),
            }
        };
        assert_eq!(stored, size);
        assert_eq!(<[u8; 32]>::from(h.finalize()), digest);
        // Every answer and the close, back to back.
        if qos == QoS::Acknowledged {
            for (packet, offset) in packets {
                send(&ws, id, Msg::Ack { packet, offset }).await;
            }
        }
        send(&ws, id, Msg::Complete { sha256: digest }).await;
        let _ = ws.close(ws_client::CloseCode::NORMAL, "").await;
        let sent = tokio::time::timeout(Duration::from_secs(10), sending)
            .await
            .unwrap()
            .unwrap()
            .unwrap_or_else(|e| panic!("{qos:?}: the server's send: {e:?}"));
        assert_eq!(sent.sha256, want);
        server.stop().await;
    }
}
