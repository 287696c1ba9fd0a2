//! `wskit serve --backplane`: two nodes on one redis-server act as one server, so the test
//! page's chat on `/chat` reaches the clients of both; a bad backplane setting is an error that
//! says what to fix.

mod harness;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use harness::{free_port, run, serve};
use ws_client::{ClientConfig, ws_frame::Message};

/// A redis-server on a free port, killed when dropped.
struct Redis(Child, u16);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> Option<Redis> {
    if !ws_testkit::peers::runs("redis-server", &["--version"]) {
        ws_testkit::peers::missing("redis-server", "apt-get install -y redis-server");
        return None;
    }
    let port = free_port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let redis = Redis(child, port);
    // Up to 60 s: a loaded machine can be slow to start it.
    for _ in 0..6000 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(redis);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server did not listen on {port}");
}

async fn text(ws: &mut ws_client::WebSocket) -> String {
    match tokio::time::timeout(Duration::from_secs(10), ws.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.as_str().to_owned(),
        other => panic!("expected a chat message, got {other:?}"),
    }
}

#[test]
fn chat_reaches_the_clients_of_every_node() {
    let Some(redis) = redis() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", redis.1);
    let a = serve(&["--backplane", &url, "--node-id", "a"]);
    let b = serve(&["--backplane", &url, "--node-id", "b"]);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let chat = |addr| format!("ws://{addr}/chat");
        let mut on_a = ws_client::connect(chat(a.addr).as_str(), ClientConfig::default())
            .await
            .unwrap();
        let mut on_b = ws_client::connect(chat(b.addr).as_str(), ClientConfig::default())
            .await
            .unwrap();
        // Until node b has subscribed at the engine, a's messages reach only a's clients:
        // say hello until b's client hears one.
        let mut heard = None;
        for i in 0..100 {
            on_a.send(Message::text(format!("hello {i}")))
                .await
                .unwrap();
            assert_eq!(text(&mut on_a).await, format!("hello {i}"));
            if let Ok(Some(Ok(Message::Text(t)))) =
                tokio::time::timeout(Duration::from_millis(100), on_b.recv()).await
            {
                heard = Some(t.as_str().to_owned());
                break;
            }
        }
        let heard = heard.expect("node b's chat never heard node a's");
        assert!(heard.starts_with("hello "), "{heard}");
        // And back: b's client talks, a's hears it once.
        on_b.send(Message::text("from b")).await.unwrap();
        assert_eq!(text(&mut on_b).await, "from b");
        // a's own messages never come back through the engine.
        assert_eq!(text(&mut on_a).await, "from b");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), on_a.recv())
                .await
                .is_err(),
            "a heard something twice"
        );
    });
}

#[test]
fn backplane_settings_are_checked() {
    let r = run(
        &["serve", "--listen", "127.0.0.1:0", "--node-id", "x"],
        b"",
        Duration::from_secs(20),
    );
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("need --backplane URL"), "{}", r.stderr);
    r.assert_no_backtrace();
    let r = run(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backplane",
            "kafka://h:1",
        ],
        b"",
        Duration::from_secs(20),
    );
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("redis://HOST:PORT"), "{}", r.stderr);
}
