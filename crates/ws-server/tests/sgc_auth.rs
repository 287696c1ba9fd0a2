//! The seed's credentials-in-the-path authentication (`SgcAuth`): URL mode and session tokens,
//! off by default, the credentials cut from what the handler sees.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{connect_with, local_config, request};
use ws_frame::{Config, Message};
use ws_server::{AuthConfig, Ctx, Handler, Server, ServerHandle, SgcAuth};

/// Echoes, prefixed with the path and user the connection was accepted with.
#[derive(Default, Clone)]
struct Seen {
    urls: Arc<Mutex<Vec<String>>>,
}

impl Handler for Seen {
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let info = ctx.info();
        let line = format!("{} {:?}", info.url(), info.user());
        self.urls.lock().unwrap().push(line.clone());
        let _ = ctx.send(Message::text(format!(
            "{line}: {}",
            msg.as_text().unwrap_or("")
        )));
    }
}

async fn start(sgc: SgcAuth) -> (ServerHandle, Seen) {
    let mut config = local_config();
    let mut auth = AuthConfig::basic(vec![("admin".into(), "p w/1".into())]);
    auth.sgc = sgc;
    config.auth = Some(auth);
    let seen = Seen::default();
    (Server::start(config, seen.clone()).await.unwrap(), seen)
}

async fn echo_through(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    let mut client = connect_with(addr, path, &[], Config::default()).await?;
    client.send(Message::text("hi")).await;
    let reply = client.message().await.expect("a reply");
    Ok(reply.as_text().unwrap().to_owned())
}

#[tokio::test]
async fn url_mode_accepts_the_password_in_the_path_and_hides_it() {
    let (server, seen) = start(SgcAuth::default().with_url()).await;
    let addr = server.local_addrs()[0];
    // The seed's plain form, and the form wskit.js builds for a page at /chat.
    let reply = echo_through(addr, "/sgc/auth/url/admin/p%20w%2F1")
        .await
        .unwrap();
    assert_eq!(reply, "/ Some(\"admin\"): hi");
    let reply = echo_through(addr, "/chat/sgc/auth/url/admin/p%20w%2F1?room=2")
        .await
        .unwrap();
    assert_eq!(reply, "/chat?room=2 Some(\"admin\"): hi");
    assert!(
        seen.urls
            .lock()
            .unwrap()
            .iter()
            .all(|u| !u.contains("p%20w")),
        "the password reached the handler"
    );

    let wrong = echo_through(addr, "/sgc/auth/url/admin/nope")
        .await
        .unwrap_err();
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    // The session mode is off: no tokens are handed out.
    let r = request(
        addr,
        "GET /sgc/req/auth/session/admin/p%20w%2F1 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn off_by_default() {
    let (server, _) = start(SgcAuth::default()).await;
    let addr = server.local_addrs()[0];
    let refused = echo_through(addr, "/sgc/auth/url/admin/p%20w%2F1")
        .await
        .unwrap_err();
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    server.stop().await;
}

#[tokio::test]
async fn session_tokens_are_handed_out_for_good_passwords_and_work_once() {
    let (server, _) = start(SgcAuth::default().with_sessions(Duration::from_secs(30))).await;
    let addr = server.local_addrs()[0];
    let bad = request(
        addr,
        "GET /sgc/req/auth/session/admin/wrong HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(bad.status, 401);
    let r = request(
        addr,
        "GET /sgc/req/auth/session/admin/p%20w%2F1 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let token = r.text();
    assert_eq!(token.len(), 32, "{token}");

    let reply = echo_through(addr, &format!("/echo/sgc/auth/session/{token}"))
        .await
        .unwrap();
    assert_eq!(reply, "/echo Some(\"admin\"): hi");
    let again = echo_through(addr, &format!("/sgc/auth/session/{token}"))
        .await
        .unwrap_err();
    assert!(
        again.starts_with("HTTP/1.1 401"),
        "a token works once: {again}"
    );
    let made_up = echo_through(addr, "/sgc/auth/session/00000000000000000000000000000000")
        .await
        .unwrap_err();
    assert!(made_up.starts_with("HTTP/1.1 401"), "{made_up}");
    // The URL mode is off here.
    let url = echo_through(addr, "/sgc/auth/url/admin/p%20w%2F1")
        .await
        .unwrap_err();
    assert!(url.starts_with("HTTP/1.1 401"), "{url}");
    server.stop().await;
}
