//! The load balancer with three real ws-server backends: round robin with one backend killed
//! mid-run, least connections, sticky headers, draining and registration over the API, and
//! active health checks.

mod common;

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_client::{Message, WebSocket};
use ws_proxy::{
    BalancerConfig, HealthCheck, Policy, Probe, ProxyServer, Registration, Target,
    balance::State,
    ws_server::{self, Binding, Body, Ctx, Handler, Request, Response, ServerConfig, ServerHandle},
};

const SECRET: &str = "0123456789abcdef-secret";

/// A backend: greets every WebSocket with its name, then echoes; answers HTTP with its name.
struct Named(&'static str);

impl Handler for Named {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let _ = ctx.send(Message::text(self.0));
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }

    async fn on_http(&self, _request: &Request, _body: &mut Body<'_>) -> Response {
        Response::text(200, self.0)
    }
}

/// A backend whose every HTTP answer (its health check included) is 503.
struct Sick;

impl Handler for Sick {
    async fn on_http(&self, _request: &Request, _body: &mut Body<'_>) -> Response {
        Response::text(503, "sick")
    }
}

async fn backend(name: &'static str) -> (ServerHandle, Target) {
    let mut cfg = ServerConfig::default();
    cfg.bindings = vec![Binding::plain("127.0.0.1:0".parse().unwrap())];
    let server = ws_server::Server::start(cfg, Named(name)).await.unwrap();
    let target = Target::parse(&format!("ws://{}", server.local_addrs()[0])).unwrap();
    (server, target)
}

async fn proxy(policy: Policy, backends: &[&Target]) -> (ProxyServer, SocketAddr) {
    let mut c = config(None);
    let mut b = BalancerConfig::new(policy);
    b.backends = backends.iter().map(|t| (*t).clone()).collect();
    b.registration = Some(Registration::new(SECRET));
    c.balance = Some(b);
    start(c).await
}

/// Opens a WebSocket through the proxy and returns it with the backend's greeting.
async fn connect(addr: SocketAddr, headers: &[(&str, &str)]) -> (WebSocket, String) {
    let mut cfg = client(&[]);
    for (n, v) in headers {
        cfg.headers.push(((*n).to_owned(), (*v).to_owned()));
    }
    let mut ws = tokio::time::timeout(T, ws_client::connect(format!("ws://{addr}/app"), cfg))
        .await
        .expect("connect in time")
        .expect("connect through the balancer");
    let name = recv_text(&mut ws).await;
    (ws, name)
}

async fn recv_text(ws: &mut WebSocket) -> String {
    let m = tokio::time::timeout(T, ws.recv())
        .await
        .expect("a message in time")
        .expect("open")
        .expect("a message");
    String::from_utf8(m.as_bytes().to_vec()).unwrap()
}

async fn echoes(ws: &mut WebSocket, text: &str) {
    ws.send_text(text.to_owned()).await.unwrap();
    assert_eq!(recv_text(ws).await, text);
}

/// A raw HTTP/1.1 request through the proxy: status and body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: lb.test\r\nConnection: close\r\n");
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: Bearer {a}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body);
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(T, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // Chunked bodies: keep only the data lines.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n")
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, l)| l)
            .collect()
    } else {
        body.to_owned()
    };
    (status, body)
}

fn tally(names: &[String]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for n in names {
        *m.entry(n.clone()).or_default() += 1;
    }
    m
}

/// Waits until the balancer's state satisfies `f` (woken by its change notifications).
async fn until(
    proxy: &ProxyServer,
    mut f: impl FnMut(&[ws_proxy::balance::BackendStatus]) -> bool,
) {
    let mut rx = proxy.backend_changes().unwrap();
    tokio::time::timeout(T, async {
        while !f(&proxy.backends()) {
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("balancer state reached in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_over_three_backends_one_killed_mid_run() {
    let (a, ta) = backend("A").await;
    let (b, tb) = backend("B").await;
    let (c, tc) = backend("C").await;
    let (proxy, addr) = proxy(Policy::RoundRobin, &[&ta, &tb, &tc]).await;

    let mut open = Vec::new();
    for _ in 0..9 {
        open.push(connect(addr, &[]).await);
    }
    let names: Vec<String> = open.iter().map(|(_, n)| n.clone()).collect();
    assert_eq!(names[..3], ["A", "B", "C"], "in turn");
    assert_eq!(
        tally(&names),
        HashMap::from([("A".into(), 3), ("B".into(), 3), ("C".into(), 3)])
    );
    // Plain HTTP goes round too, to the same backends.
    let mut got = Vec::new();
    for _ in 0..3 {
        let (status, body) = http(addr, "GET", "/page", None, "").await;
        assert_eq!(status, 200);
        got.push(body);
    }
    assert_eq!(tally(&got).len(), 3, "{got:?}");
    until(&proxy, |s| s.iter().all(|b| b.active == 3)).await;

    // Kill B mid-run.
    b.stop().await;
    for (ws, name) in &mut open {
        if name == "B" {
            // Its clients are closed (the backend went away); nothing else is.
            let end =
                tokio::time::timeout(T, async { while let Some(Ok(_)) = ws.recv().await {} }).await;
            assert!(end.is_ok(), "B's clients are closed");
        } else {
            echoes(ws, "still here").await;
        }
    }

    // New connections avoid B: none fails, A and C share them.
    let failed_before = proxy.failed_connects();
    let mut names = Vec::new();
    for _ in 0..6 {
        let (mut ws, name) = connect(addr, &[]).await;
        echoes(&mut ws, "new").await;
        names.push(name);
        open.push((ws, String::new()));
    }
    assert_eq!(
        tally(&names),
        HashMap::from([("A".into(), 3), ("C".into(), 3)])
    );
    assert!(
        proxy.failed_connects() - failed_before <= 1,
        "B is tried at most once"
    );
    let states: Vec<State> = proxy.backends().iter().map(|s| s.state).collect();
    assert_eq!(states, [State::Up, State::Down, State::Up]);
    for _ in 0..4 {
        let (status, body) = http(addr, "GET", "/", None, "").await;
        assert_eq!(status, 200);
        assert_ne!(body, "B");
    }
    drop(open);
    proxy.stop().await;
    a.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_fills_the_emptiest_backend() {
    let (_a, ta) = backend("A").await;
    let (_b, tb) = backend("B").await;
    let (_c, tc) = backend("C").await;
    let (proxy, addr) = proxy(Policy::LeastConnections, &[&ta, &tb, &tc]).await;
    let mut open = HashMap::new();
    for _ in 0..3 {
        let (ws, name) = connect(addr, &[]).await;
        open.insert(name, ws);
    }
    assert_eq!(open.len(), 3, "one each");
    // B's client leaves: B has the fewest connections, so the next one goes there.
    let gone = open.remove("B").unwrap();
    gone.close(ws_client::CloseCode::NORMAL, "").await.unwrap();
    until(&proxy, |s| s[1].active == 0).await;
    let (_ws, name) = connect(addr, &[]).await;
    assert_eq!(name, "B");
    let statuses = proxy.backends();
    assert_eq!(
        statuses.iter().map(|s| s.active).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_header_keeps_each_user_on_one_backend() {
    let (_a, ta) = backend("A").await;
    let (_b, tb) = backend("B").await;
    let (_c, tc) = backend("C").await;
    let (proxy, addr) = proxy(Policy::StickyHeader("x-user".into()), &[&ta, &tb, &tc]).await;
    let mut seen = HashMap::new();
    for round in 0..3 {
        for user in ["ann", "bob", "cid", "dan", "eve", "fay"] {
            let (_ws, name) = connect(addr, &[("X-User", user)]).await;
            let first = seen.entry(user).or_insert_with(|| name.clone());
            assert_eq!(*first, name, "{user} moved in round {round}");
        }
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_keeps_each_session_on_one_backend() {
    let (_a, ta) = backend("A").await;
    let (_b, tb) = backend("B").await;
    let (_c, tc) = backend("C").await;
    let (proxy, addr) = proxy(Policy::StickyCookie("sid".into()), &[&ta, &tb, &tc]).await;
    let mut seen = HashMap::new();
    for _ in 0..3 {
        for sid in ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"] {
            let cookie = format!("theme=dark; sid={sid}");
            let (_ws, name) = connect(addr, &[("Cookie", &cookie)]).await;
            assert_eq!(
                *seen.entry(sid).or_insert_with(|| name.clone()),
                name,
                "{sid}"
            );
        }
    }
    assert!(
        tally(&seen.values().cloned().collect::<Vec<_>>()).len() > 1,
        "8 sessions spread over more than one backend: {seen:?}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_check_takes_out_a_backend_that_answers_503() {
    let (_a, ta) = backend("A").await;
    let mut cfg = ServerConfig::default();
    cfg.bindings = vec![Binding::plain("127.0.0.1:0".parse().unwrap())];
    let sick = ws_server::Server::start(cfg, Sick).await.unwrap();
    let ts = Target::parse(&format!("ws://{}", sick.local_addrs()[0])).unwrap();
    let mut c = config(None);
    let mut bal = BalancerConfig::new(Policy::RoundRobin);
    bal.backends = vec![ta.clone(), ts.clone()];
    bal.health = Some({
        let mut h = HealthCheck::default();
        h.probe = Probe::Http {
            path: "/health".into(),
        };
        h.interval = Duration::from_millis(20);
        h.unhealthy_threshold = 1;
        h
    });
    c.balance = Some(bal);
    let (proxy, addr) = start(c).await;
    // The sick backend accepts TCP, but its health check fails.
    until(&proxy, |s| s[1].state == State::Down).await;
    assert_eq!(proxy.backends()[0].state, State::Up, "A answers 200");
    for _ in 0..4 {
        assert_eq!(connect(addr, &[]).await.1, "A");
        assert_eq!(
            http(addr, "GET", "/", None, "").await,
            (200, "A".to_owned())
        );
    }
    proxy.stop().await;
    sick.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_register_drain_and_deregister_over_the_api() {
    let (_a, ta) = backend("A").await;
    let (_b, tb) = backend("B").await;
    let (_d, td) = backend("D").await;
    let (proxy, addr) = proxy(Policy::RoundRobin, &[&ta, &tb]).await;
    let path = Registration::DEFAULT_PATH;

    // Without the secret, or with a wrong one: 401, and nothing changes.
    assert_eq!(http(addr, "POST", path, None, &td.to_string()).await.0, 401);
    assert_eq!(
        http(
            addr,
            "POST",
            path,
            Some("0123456789abcdef-wrong!"),
            &td.to_string()
        )
        .await
        .0,
        401
    );
    assert_eq!(http(addr, "GET", path, Some("x"), "").await.0, 401);
    assert_eq!(proxy.backends().len(), 2);

    // Register D: it takes its share.
    let (status, _) = http(addr, "POST", path, Some(SECRET), &td.to_string()).await;
    assert_eq!(status, 201);
    assert_eq!(
        http(addr, "POST", path, Some(SECRET), &td.to_string())
            .await
            .0,
        200,
        "known"
    );
    assert_eq!(
        http(addr, "POST", path, Some(SECRET), "ftp://x").await.0,
        400
    );
    let mut names = Vec::new();
    let mut held = Vec::new();
    for _ in 0..3 {
        let (ws, name) = connect(addr, &[]).await;
        names.push(name.clone());
        held.push((ws, name));
    }
    assert_eq!(tally(&names).len(), 3, "{names:?}");
    let (status, list) = http(addr, "GET", path, Some(SECRET), "").await;
    assert_eq!(status, 200);
    assert!(list.contains(&format!("{td} up 1 1")), "{list}");

    // Drain A (DELETE): no new connections, its open one goes on; removed when it ends.
    let q = format!(
        "{path}?target={}",
        ta.to_string().replace(':', "%3A").replace('/', "%2F")
    );
    assert_eq!(http(addr, "DELETE", &q, Some(SECRET), "").await.0, 200);
    assert_eq!(proxy.backends()[0].state, State::Draining);
    for _ in 0..4 {
        let (_ws, name) = connect(addr, &[]).await;
        assert_ne!(name, "A");
    }
    let (ws_a, _) = held.iter_mut().find(|(_, n)| n == "A").unwrap();
    echoes(ws_a, "draining still works").await;
    ws_a.close(ws_client::CloseCode::NORMAL, "").await.unwrap();
    until(&proxy, |s| s.iter().all(|b| b.target != ta)).await;
    // Deregister B with POST .../remove; unknown targets: 404.
    let remove = format!("{path}/remove");
    assert_eq!(
        http(addr, "POST", &remove, Some(SECRET), &tb.to_string())
            .await
            .0,
        200
    );
    assert_eq!(
        http(addr, "POST", &remove, Some(SECRET), &ta.to_string())
            .await
            .0,
        404
    );
    for _ in 0..3 {
        let (_ws, name) = connect(addr, &[]).await;
        assert_eq!(name, "D");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_dead_backend_out_and_bring_it_back() {
    let (_a, ta) = backend("A").await;
    // B: a plain listener the test opens and closes (a TCP probe needs only accept).
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_addr = l.local_addr().unwrap();
    let tb = Target::parse(&format!("ws://{b_addr}")).unwrap();
    let mut c = config(None);
    let mut bal = BalancerConfig::new(Policy::RoundRobin);
    bal.backends = vec![ta.clone(), tb.clone()];
    bal.health = Some({
        let mut h = HealthCheck::default();
        h.probe = Probe::Tcp;
        h.interval = Duration::from_millis(20);
        h.timeout = Duration::from_secs(2);
        h.healthy_threshold = 2;
        h.unhealthy_threshold = 2;
        h
    });
    c.balance = Some(bal);
    let (proxy, addr) = start(c).await;
    let accept = tokio::spawn(async move {
        loop {
            let _ = l.accept().await;
        }
    });
    until(&proxy, |s| s.iter().all(|b| b.state == State::Up)).await;
    accept.abort();
    let _ = accept.await;
    // Closed: two failed probes in a row take it out, with no client involved.
    until(&proxy, |s| s[1].state == State::Down).await;
    assert_eq!(proxy.failed_connects(), 0);
    for _ in 0..3 {
        assert_eq!(connect(addr, &[]).await.1, "A");
    }
    // Back: a backend (the real one this time) on the same address comes back up.
    let mut cfg = ServerConfig::default();
    cfg.bindings = vec![Binding::plain(b_addr)];
    let b = ws_server::Server::start(cfg, Named("B")).await.unwrap();
    until(&proxy, |s| s[1].state == State::Up).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(connect(addr, &[]).await.1);
    }
    assert_eq!(
        tally(&names),
        HashMap::from([("A".into(), 2), ("B".into(), 2)])
    );
    proxy.stop().await;
    b.stop().await;
}

/// Records the balancer's backend events.
struct States(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl ws_proxy::Hooks for States {
    fn on_backend_state(&self, status: &ws_proxy::balance::BackendStatus) {
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {}", status.target, status.state.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_and_drain_from_the_api_of_proxy_server_with_state_hooks() {
    let (_a, ta) = backend("A").await;
    let (b, tb) = backend("B").await;
    let mut c = config(None);
    let mut bal = BalancerConfig::new(Policy::RoundRobin);
    bal.backends = vec![ta.clone()];
    c.balance = Some(bal);
    let events = std::sync::Arc::default();
    let proxy = ProxyServer::start_with_hooks(c, States(std::sync::Arc::clone(&events)))
        .await
        .unwrap();
    let addr = proxy.local_addrs()[0];
    assert!(proxy.add_backend(tb.clone()).unwrap());
    assert!(!proxy.add_backend(tb.clone()).unwrap(), "known already");
    let names: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(connect(addr, &[]).await.1);
        }
        v
    };
    assert_eq!(
        tally(&names),
        HashMap::from([("A".into(), 2), ("B".into(), 2)])
    );
    // No connection left on A: draining removes it at once.
    until(&proxy, |s| s.iter().all(|b| b.active == 0)).await;
    assert!(proxy.drain_backend(&ta).unwrap());
    assert_eq!(proxy.backends().len(), 1);
    for _ in 0..2 {
        assert_eq!(connect(addr, &[]).await.1, "B");
    }
    // B fails a connect: down (reported), and with A draining nothing is left: 503.
    b.stop().await;
    let refused = ws_client::connect(format!("ws://{addr}/app"), client(&[])).await;
    assert!(
        matches!(&refused, Err(ws_client::Error::Http(r)) if r.status == 502),
        "{refused:?}"
    );
    let refused = ws_client::connect(format!("ws://{addr}/app"), client(&[])).await;
    assert!(
        matches!(&refused, Err(ws_client::Error::Http(r)) if r.status == 503),
        "{refused:?}"
    );
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            format!("{tb} up"),
            format!("{ta} removed"),
            format!("{tb} down"),
        ]
    );
    // Without a balancer these are configuration errors.
    let plain = ProxyServer::start(config(Some(tcp_target(closed_port().await))))
        .await
        .unwrap();
    assert!(plain.add_backend(ta.clone()).is_err());
    assert!(plain.backends().is_empty());
    plain.stop().await;
    proxy.stop().await;
}
