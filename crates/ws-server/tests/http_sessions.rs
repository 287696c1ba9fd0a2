//! Sessions run by the server (`ServerConfig::sessions`, the seed's AutoStartSession): a new
//! visitor gets a session and its Set-Cookie, the cookie brings the same session back to the
//! handler, an unknown cookie gets a new one, and no store means no session.

mod common;

use std::sync::Arc;

use common::{local_config, request};
use ws_server::{Body, Handler, Request, Response, Server, SessionConfig, Sessions};

/// Counts visits in the session: answers `visit N` (or `no session`).
struct Visits;
impl Handler for Visits {
    async fn on_http(&self, request: &Request, _: &mut Body<'_>) -> Response {
        let Some(session) = request.session() else {
            return Response::text(200, "no session");
        };
        let n: u32 = session.get("visits").map_or(0, |v| v.parse().unwrap()) + 1;
        session.set("visits", n.to_string());
        Response::text(200, format!("visit {n}"))
    }
}

fn get(cookie: Option<&str>) -> String {
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    format!("GET /count HTTP/1.1\r\nHost: x\r\n{cookie}\r\n")
}

#[tokio::test]
async fn the_server_starts_sessions_sends_the_cookie_and_finds_them_again() {
    let sessions = Arc::new(Sessions::new(SessionConfig::default()).unwrap());
    let mut config = local_config();
    config.sessions = Some(sessions.clone());
    let server = Server::start(config, Visits).await.unwrap();
    let addr = server.local_addrs()[0];

    let first = request(addr, &get(None)).await;
    assert_eq!(first.text(), "visit 1");
    let set = first
        .header("set-cookie")
        .expect("a new session sends its cookie");
    let pair = set.split(';').next().unwrap().to_owned();
    assert!(pair.starts_with(&format!("{}=", SessionConfig::default().cookie_name)));
    assert_eq!(sessions.len(), 1);

    let again = request(addr, &get(Some(&pair))).await;
    assert_eq!(again.text(), "visit 2");
    assert_eq!(
        again.header("set-cookie"),
        None,
        "a known session sends no cookie"
    );
    assert_eq!(sessions.len(), 1);

    // An unknown id: a fresh session.
    let name = SessionConfig::default().cookie_name;
    let stranger = request(addr, &get(Some(&format!("{name}=forged")))).await;
    assert_eq!(stranger.text(), "visit 1");
    assert!(stranger.header("set-cookie").is_some());
    assert_eq!(sessions.len(), 2);

    // Ended by the application: the old cookie starts over.
    let id = pair.split_once('=').unwrap().1;
    assert!(sessions.end(id));
    assert_eq!(request(addr, &get(Some(&pair))).await.text(), "visit 1");
    server.stop().await;

    // No store: no session, no cookie.
    let server = Server::start(local_config(), Visits).await.unwrap();
    let r = request(server.local_addrs()[0], &get(None)).await;
    assert_eq!(
        (r.text().as_str(), r.header("set-cookie")),
        ("no session", None)
    );
    server.stop().await;
}

/// The seed's OnCreateSession: the object built when the server starts a session.
struct Visitor {
    agent: String,
    pages: std::sync::atomic::AtomicU32,
}

/// Answers `AGENT page N` from the session's `Visitor` (or `no visitor`).
struct Pages;
impl Handler for Pages {
    async fn on_http(&self, request: &Request, _: &mut Body<'_>) -> Response {
        let visitor = request.session().and_then(|s| s.extension::<Visitor>());
        let Some(v) = visitor else {
            return Response::text(200, "no visitor");
        };
        let n = v.pages.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        Response::text(200, format!("{} page {n}", v.agent))
    }
}

#[tokio::test]
async fn the_on_create_hook_gives_each_new_session_its_object() {
    let sessions = Arc::new(
        Sessions::new(SessionConfig::default())
            .unwrap()
            .with_on_create(|_, request| Visitor {
                agent: request
                    .and_then(|r| r.header("user-agent"))
                    .unwrap_or("?")
                    .to_owned(),
                pages: 0.into(),
            }),
    );
    let mut config = local_config();
    config.sessions = Some(sessions.clone());
    let server = Server::start(config, Pages).await.unwrap();
    let addr = server.local_addrs()[0];
    let get = |agent: &str, cookie: Option<&str>| {
        let cookie = cookie
            .map(|c| format!("Cookie: {c}\r\n"))
            .unwrap_or_default();
        format!("GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\n{cookie}\r\n")
    };

    let first = request(addr, &get("ann", None)).await;
    assert_eq!(first.text(), "ann page 1");
    let pair = first
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // The object stays with the session; a later request does not rebuild it.
    let again = request(addr, &get("other", Some(&pair))).await;
    assert_eq!(again.text(), "ann page 2");
    // Another visitor, another object.
    assert_eq!(request(addr, &get("bob", None)).await.text(), "bob page 1");
    assert_eq!(sessions.len(), 2);
    server.stop().await;
}
