//! One verifier guards WebSocket upgrades and every HTTP route of a ws-server; the claims
//! reach the handler; ws-client's token hooks carry a signer's token.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use auth_oauth2_jwt::{
    Config, GuardHooks, JwtAuth, Key, Signer, Verifier, client, jsonwebtoken::Algorithm,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_client::{ClientConfig, connect};
use ws_server::{
    Binding, Body, Ctx, Handler, Request, Response, Server, ServerConfig, ServerHandle,
};

const SECRET: &[u8] = b"guard-test-secret";

/// Tells each connection who it is, and each HTTP request what the claims say.
struct App {
    auth: JwtAuth,
}

impl Handler for App {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let sub = self
            .auth
            .claims_of_conn(ctx.info())
            .map(|c| c.str("role").unwrap_or("-").to_owned())
            .unwrap_or_else(|e| format!("error {e}"));
        let user = ctx.info().user().unwrap_or("-").to_owned();
        let _ = ctx.send(ws_server::ws_frame::Message::text(format!(
            "user={user} role={sub}"
        )));
    }

    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        let role = self
            .auth
            .claims(request)
            .ok()
            .and_then(|c| c.str("role").map(str::to_owned))
            .unwrap_or_else(|| "-".into());
        Response::text(
            200,
            format!("hello {} role={role}\n", request.user().unwrap_or("-")),
        )
    }
}

fn signer() -> Signer {
    Signer::with_secret(Algorithm::HS256, SECRET)
        .unwrap()
        .claim("sub", "alice")
        .claim("role", "admin")
        .lifetime(Duration::from_secs(300))
}

fn token() -> String {
    signer().sign(SystemTime::now()).unwrap()
}

fn auth(config: Config) -> JwtAuth {
    let verifier = Verifier::new(
        config,
        vec![Key::secret(SECRET, &[Algorithm::HS256]).unwrap()],
    )
    .unwrap();
    JwtAuth::new(verifier)
}

async fn start(auth: JwtAuth) -> (ServerHandle, std::net::SocketAddr) {
    let config = ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]);
    let app = App { auth: auth.clone() };
    let server = Server::start(config, auth.guard(app)).await.unwrap();
    let addr = server.local_addrs()[0];
    (server, addr)
}

/// One HTTP/1.1 request with `Connection: close`; the whole answer.
async fn http(addr: std::net::SocketAddr, target: &str, headers: &[(&str, &str)]) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn options(addr: std::net::SocketAddr, target: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "OPTIONS {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: http://a\r\nAccess-Control-Request-Method: GET\r\n\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn http_routes_need_a_valid_token_in_any_configured_place() {
    let (server, addr) = start(auth(Config::default())).await;
    let t = token();
    let bearer = format!("Bearer {t}");
    let ok = http(addr, "/api", &[("Authorization", &bearer)]).await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("hello alice role=admin"), "{ok}");
    let q = http(addr, &format!("/api?access_token={t}"), &[]).await;
    assert!(q.contains("hello alice role=admin"), "{q}");
    let cookie = format!("x=1; access_token={t}");
    let c = http(addr, "/api", &[("Cookie", &cookie)]).await;
    assert!(c.contains("hello alice role=admin"), "{c}");

    let missing = http(addr, "/api", &[]).await;
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    assert!(
        missing.contains("WWW-Authenticate: Bearer realm=\"wskit\"\r\n"),
        "{missing}"
    );
    let bad = http(addr, "/api", &[("Authorization", "Bearer a.b.c")]).await;
    assert!(bad.starts_with("HTTP/1.1 401"), "{bad}");
    assert!(bad.contains("error=\"invalid_token\""), "{bad}");
    server.stop().await;
}

#[tokio::test]
async fn expired_token_is_refused_on_http_and_upgrade() {
    let (server, addr) = start(auth(Config::default())).await;
    let old = signer()
        .sign(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let bearer = format!("Bearer {old}");
    let r = http(addr, "/api", &[("Authorization", &bearer)]).await;
    assert!(
        r.starts_with("HTTP/1.1 401") && r.contains("expired"),
        "{r}"
    );
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(ws_client::Auth::bearer(old));
    let err = connect(format!("ws://{addr}/ws").as_str(), cfg)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ws_client::Error::Http(r) if r.status == 401),
        "{err}"
    );
    server.stop().await;
}

#[tokio::test]
async fn websocket_upgrade_carries_user_and_claims() {
    let (server, addr) = start(auth(Config::default())).await;
    let url = format!("ws://{addr}/ws");

    let mut cfg = ClientConfig::default();
    cfg.auth = Some(client::bearer_auth(Arc::new(
        signer().refresh_after(Duration::from_secs(60)),
    )));
    let mut ws = connect(url.as_str(), cfg).await.unwrap();
    let hello = ws.recv().await.unwrap().unwrap();
    assert_eq!(hello.as_text(), Some("user=alice role=admin"));

    // Query parameter, from a request hook.
    let mut cfg = ClientConfig::default();
    cfg.request_hook = Some(client::query_hook(Arc::new(signer()), "access_token"));
    let mut ws = connect(url.as_str(), cfg).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("user=alice role=admin")
    );

    // Browsers: the token as a subprotocol entry, echoed when it is the only one offered.
    let mut cfg = ClientConfig::default();
    cfg.protocols = vec![format!("bearer.{}", token())];
    let mut ws = connect(url.as_str(), cfg).await.unwrap();
    assert!(ws.protocol().is_some_and(|p| p.starts_with("bearer.")));
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("user=alice role=admin")
    );

    // No token: 401 before the upgrade.
    let err = connect(url.as_str(), ClientConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ws_client::Error::Http(r) if r.status == 401),
        "{err}"
    );
    server.stop().await;
}

struct Hooks;

impl GuardHooks for Hooks {
    fn bypass(&self, request: &Request) -> bool {
        request.path() == "/open-by-hook"
    }

    fn after_validation(
        &self,
        _request: &Request,
        claims: &auth_oauth2_jwt::Claims,
    ) -> Result<String, String> {
        if claims.str("role") == Some("admin") {
            Ok(format!("admin:{}", claims.sub().unwrap_or("?")))
        } else {
            Err("admins only".into())
        }
    }
}

#[tokio::test]
async fn public_paths_preflight_and_hooks() {
    let mut config = Config::default();
    config.public_paths = vec!["/health".into(), "/static/*".into()];
    config.allow_cors_preflight = true;
    let (server, addr) = start(auth(config).with_hooks(Hooks)).await;
    assert!(http(addr, "/health", &[]).await.contains("hello - role=-"));
    assert!(
        http(addr, "/static/app.js", &[])
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert!(
        http(addr, "/static/../secret", &[])
            .await
            .starts_with("HTTP/1.1 401")
    );
    assert!(
        http(addr, "/open-by-hook", &[])
            .await
            .starts_with("HTTP/1.1 200")
    );
    let pre = http(addr, "/api", &[("Access-Control-Request-Method", "GET")]).await;
    assert!(
        pre.starts_with("HTTP/1.1 401"),
        "a GET is not a preflight: {pre}"
    );
    let pre = options(addr, "/api").await;
    assert!(pre.starts_with("HTTP/1.1 200"), "{pre}");
    let bearer = format!("Bearer {}", token());
    assert!(
        http(addr, "/api", &[("Authorization", &bearer)])
            .await
            .contains("hello admin:alice")
    );
    let user = Signer::with_secret(Algorithm::HS256, SECRET)
        .unwrap()
        .claim("sub", "bob")
        .lifetime(Duration::from_secs(60))
        .sign(SystemTime::now())
        .unwrap();
    let r = http(
        addr,
        "/api",
        &[("Authorization", &format!("Bearer {user}"))],
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 403") && r.contains("insufficient_scope"),
        "{r}"
    );
    server.stop().await;
}

#[tokio::test]
async fn authenticator_plugs_into_ws_server_auth_config() {
    let auth = auth(Config::default());
    let mut config = ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]);
    config.auth = Some(auth.auth_config().with_public("/health"));
    let server = Server::start(config, App { auth: auth.clone() })
        .await
        .unwrap();
    let addr = server.local_addrs()[0];
    let bearer = format!("Bearer {}", token());
    assert!(
        http(addr, "/api", &[("Authorization", &bearer)])
            .await
            .contains("hello alice role=admin")
    );
    assert!(
        http(addr, &format!("/api?access_token={}", token()), &[])
            .await
            .contains("hello alice")
    );
    let r = http(addr, "/api", &[]).await;
    assert!(
        r.starts_with("HTTP/1.1 401") && r.contains("WWW-Authenticate: Bearer"),
        "{r}"
    );
    assert!(http(addr, "/health", &[]).await.starts_with("HTTP/1.1 200"));
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(client::bearer_auth(Arc::new(signer())));
    let mut ws = connect(format!("ws://{addr}/ws").as_str(), cfg)
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("user=alice role=admin")
    );
    server.stop().await;
}
