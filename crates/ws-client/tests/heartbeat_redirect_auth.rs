//! Heartbeat (pings, dead-peer detection through a half-open relay, only-if-idle), redirects
//! and authentication.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use tokio::time::Instant;
use ws_client::{Auth, ClientConfig, Error, Heartbeat, connect};
use ws_server::{
    AuthConfig, AuthOutcome, Authenticator, BoxFuture, Ctx, Decision, Handler, Request, Response,
};

use common::*;

#[derive(Clone, Default)]
struct PingCounter(Arc<AtomicUsize>);

impl Handler for PingCounter {
    async fn on_ping(&self, _ctx: &mut Ctx<'_>, _p: Bytes) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: ws_frame::Message) {
        let _ = ctx.send(msg);
    }
}

// On tokio's paused clock: the sleeps and the connection's timers take no real time.
#[tokio::test(start_paused = true)]
async fn heartbeat_pings_at_the_interval() {
    let counter = PingCounter::default();
    let (server, addr) = start(local(), counter.clone()).await;
    let mut config = ClientConfig::default();
    config.heartbeat = Some(Heartbeat::new(
        Duration::from_millis(100),
        Some(Duration::from_secs(1)),
    ));
    let ws = connect(ws_url(addr, "/"), config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(550)).await;
    let n = counter.0.load(Ordering::SeqCst);
    assert!((3..=6).contains(&n), "{n} pings in 550 ms at 100 ms");
    drop(ws);
    server.stop().await;
}

// On tokio's paused clock: the sleeps and the connection's timers take no real time.
#[tokio::test(start_paused = true)]
async fn only_if_idle_skips_pings_while_traffic_flows() {
    let counter = PingCounter::default();
    let (server, addr) = start(local(), counter.clone()).await;
    let mut config = ClientConfig::default();
    let mut hb = Heartbeat::new(Duration::from_millis(150), Some(Duration::from_secs(1)));
    hb.only_if_idle = true;
    config.heartbeat = Some(hb);
    let mut ws = connect(ws_url(addr, "/"), config).await.unwrap();
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        ws.send_text("busy").await.unwrap();
        ws.recv().await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    // Idle now: pings resume.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(counter.0.load(Ordering::SeqCst) >= 1);
    server.stop().await;
}

// On tokio's paused clock: the sleeps and the connection's timers take no real time.
#[tokio::test(start_paused = true)]
async fn half_open_path_is_detected_by_the_pong_timeout() {
    let (server, addr) = echo().await;
    let (relay_addr, stop) = relay(addr).await;
    let mut config = ClientConfig::default();
    config.heartbeat = Some(Heartbeat::new(
        Duration::from_millis(100),
        Some(Duration::from_millis(200)),
    ));
    let mut ws = connect(ws_url(relay_addr, "/"), config).await.unwrap();
    ws.send_text("alive").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("alive"));
    // Stays up while pongs come back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!ws.is_closed());
    stop.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(3), ws.recv())
        .await
        .expect("dead peer detected in time");
    assert!(
        matches!(r, Some(Err(Error::PeerDead(d))) if d == Duration::from_millis(200)),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(ws.recv().await.is_none());
    assert!(matches!(ws.send_text("x").await, Err(Error::Closed)));
    server.stop().await;
}

/// Redirects `/old` to `/echo`, `/loop` to itself, `/abs` to an absolute URL in the query.
struct Redirector(Seen);

impl Handler for Redirector {
    async fn on_handshake(&self, r: &Request) -> Decision {
        self.0.0.lock().unwrap().push((
            r.url().to_owned(),
            r.headers()
                .iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect::<Vec<(String, String)>>(),
        ));
        match r.path() {
            "/old" => Decision::Reject(Response::new(301).with_header("Location", "/echo?moved=1")),
            "/a/b" => Decision::Reject(Response::new(307).with_header("Location", "../c")),
            "/loop" => Decision::Reject(Response::new(302).with_header("Location", "/loop")),
            "/abs" => Decision::Reject(
                Response::new(308).with_header("Location", r.query_param("to").unwrap()),
            ),
            "/nolocation" => Decision::Reject(Response::new(303)),
            _ => Decision::accept(),
        }
    }
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: ws_frame::Message) {
        let _ = ctx.send(msg);
    }
}

#[tokio::test]
async fn relative_redirects_are_followed() {
    let seen = Seen::default();
    let (server, addr) = start(local(), Redirector(seen.clone())).await;
    let mut ws = connect(ws_url(addr, "/old"), ClientConfig::default())
        .await
        .unwrap();
    assert_eq!(ws.url().target(), "/echo?moved=1");
    ws.send_text("moved").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("moved"));
    let ws = connect(ws_url(addr, "/a/b"), ClientConfig::default())
        .await
        .unwrap();
    assert_eq!(ws.url().target(), "/c");
    assert_eq!(seen.last().0, "/c");
    server.stop().await;
}

#[tokio::test]
async fn credentials_follow_same_host_redirects_only() {
    let (seen_a, seen_b) = (Seen::default(), Seen::default());
    let (a, addr_a) = start(local(), Redirector(seen_a.clone())).await;
    let (b, addr_b) = start(local(), Redirector(seen_b.clone())).await;
    let mut config = ClientConfig::default();
    config.auth = Some(Auth::basic("alice", "wonder"));
    // Same host and port: the credentials go along.
    connect(ws_url(addr_a, "/old"), config.clone())
        .await
        .unwrap();
    assert!(seen_a.header("authorization").is_some());
    // Another port: the redirect target sees no credentials at all.
    let to_b = format!("ws://127.0.0.1:{}/echo", addr_b.port());
    connect(ws_url(addr_a, &format!("/abs?to={to_b}")), config.clone())
        .await
        .unwrap();
    assert_eq!(seen_b.header("authorization"), None);
    config.auth = Some(Auth::query_token("token", "t0ps3cret"));
    connect(ws_url(addr_a, &format!("/abs?to={to_b}")), config)
        .await
        .unwrap();
    assert_eq!(seen_b.last().0, "/echo");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn redirect_limit_and_missing_location() {
    let (server, addr) = start(local(), Redirector(Seen::default())).await;
    let mut config = ClientConfig::default();
    config.max_redirects = 3;
    assert!(matches!(
        connect(ws_url(addr, "/loop"), config.clone()).await,
        Err(Error::TooManyRedirects { limit: 3 })
    ));
    config.max_redirects = 0;
    assert!(matches!(
        connect(ws_url(addr, "/old"), config).await,
        Err(Error::TooManyRedirects { limit: 0 })
    ));
    assert!(matches!(
        connect(ws_url(addr, "/nolocation"), ClientConfig::default()).await,
        Err(Error::Handshake(ws_client::HandshakeError::BadRedirect))
    ));
    server.stop().await;
}

#[tokio::test]
async fn redirect_from_ws_to_wss_and_back() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let rustls = ws_tls::server_config(&pki.server_config()).unwrap();
    let tls_cfg = ws_server::ServerConfig::new(vec![ws_server::Binding::tls(
        "127.0.0.1:0".parse().unwrap(),
        rustls,
    )]);
    let (tls_server, tls_addr) = start(tls_cfg, Redirector(Seen::default())).await;
    let (plain_server, plain_addr) = start(local(), Redirector(Seen::default())).await;
    let mut config = ClientConfig::default();
    config.tls = pki.client_config();
    let to_wss = format!("wss://localhost:{}/echo", tls_addr.port());
    let ws = connect(
        ws_url(plain_addr, &format!("/abs?to={to_wss}")),
        config.clone(),
    )
    .await
    .unwrap();
    assert!(ws.url().is_secure());
    let to_ws = format!("ws://127.0.0.1:{}/echo", plain_addr.port());
    let mut ws = connect(
        format!("wss://localhost:{}/abs?to={to_ws}", tls_addr.port()),
        config,
    )
    .await
    .unwrap();
    assert!(!ws.url().is_secure());
    ws.send_text("down").await.unwrap();
    assert_eq!(ws.recv().await.unwrap().unwrap().as_text(), Some("down"));
    tls_server.stop().await;
    plain_server.stop().await;
}

fn users() -> AuthConfig {
    AuthConfig::basic(vec![("alice".into(), "wonder".into())])
}

#[tokio::test]
async fn basic_auth_from_config_or_url() {
    let mut sc = local();
    sc.auth = Some(users());
    let (server, addr) = start(sc, ws_server::EchoHandler).await;
    let mut config = ClientConfig::default();
    config.auth = Some(Auth::basic("alice", "wonder"));
    connect(ws_url(addr, "/"), config.clone()).await.unwrap();
    config.auth = Some(Auth::basic("alice", "wrong"));
    match connect(ws_url(addr, "/"), config).await {
        Err(Error::Http(r)) => {
            assert_eq!(r.status, 401);
            assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
        }
        other => panic!("expected 401, got {other:?}"),
    }
    connect(
        format!("ws://alice:wonder@127.0.0.1:{}/", addr.port()),
        ClientConfig::default(),
    )
    .await
    .unwrap();
    assert!(
        connect(ws_url(addr, "/"), ClientConfig::default())
            .await
            .is_err()
    );
    server.stop().await;
}

/// Accepts bearer tokens and query tokens equal to "good".
struct Tokens;

impl Authenticator for Tokens {
    fn scheme<'a>(
        &'a self,
        _r: &'a Request,
        scheme: &'a str,
        data: &'a str,
    ) -> BoxFuture<'a, AuthOutcome> {
        let ok = scheme.eq_ignore_ascii_case("bearer") && data == "good";
        Box::pin(async move {
            if ok {
                AuthOutcome::allow("token-user")
            } else {
                AuthOutcome::Unauthorized
            }
        })
    }
    fn token<'a>(&'a self, _r: &'a Request, token: &'a str) -> BoxFuture<'a, AuthOutcome> {
        let ok = token == "good";
        Box::pin(async move {
            if ok {
                AuthOutcome::allow("query-user")
            } else {
                AuthOutcome::Unauthorized
            }
        })
    }
}

async fn token_server() -> (ws_server::ServerHandle, std::net::SocketAddr) {
    let mut sc = local();
    let mut auth = AuthConfig::with_authenticator(Arc::new(Tokens));
    auth.query_param = Some("access_token".into());
    sc.auth = Some(auth);
    start(sc, ws_server::EchoHandler).await
}

#[tokio::test]
async fn bearer_static_and_query_token() {
    let (server, addr) = token_server().await;
    let mut config = ClientConfig::default();
    config.auth = Some(Auth::bearer("good"));
    connect(ws_url(addr, "/"), config.clone()).await.unwrap();
    config.auth = Some(Auth::bearer("bad"));
    assert_eq!(
        connect(ws_url(addr, "/"), config.clone())
            .await
            .unwrap_err()
            .status(),
        Some(401)
    );
    config.auth = Some(Auth::query_token("access_token", "good"));
    let ws = connect(ws_url(addr, "/p?x=1"), config.clone())
        .await
        .unwrap();
    // The URL the application asked for is kept; the token only goes on the wire.
    assert_eq!(ws.url().target(), "/p?x=1");
    config.auth = Some(Auth::query_token("access_token", "nope"));
    assert!(connect(ws_url(addr, "/"), config).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn bearer_callback_refreshes_after_401() {
    let (server, addr) = token_server().await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let mut config = ClientConfig::default();
    config.auth = Some(Auth::bearer_fn(move |refresh: bool| {
        log.lock().unwrap().push(refresh);
        async move {
            Ok::<_, String>(if refresh {
                "good".to_owned()
            } else {
                "stale".to_owned()
            })
        }
    }));
    connect(ws_url(addr, "/"), config).await.unwrap();
    assert_eq!(*calls.lock().unwrap(), vec![false, true]);

    let mut config = ClientConfig::default();
    config.auth = Some(Auth::bearer_fn(|_refresh: bool| async {
        Err::<String, _>("token endpoint down".to_owned())
    }));
    assert!(matches!(
        connect(ws_url(addr, "/"), config).await,
        Err(Error::Auth(m)) if m.contains("token endpoint down")
    ));
    server.stop().await;
}
