//! SignalRCore's `RequestToken` flow (parity A-08) against a live ws-server: POST the user name
//! and password, get a token, open the WebSocket with it as a bearer token or in the query.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use auth_oauth2_jwt::{
    Config, JwtAuth, Key, Signer, Verifier, client::PostTokenSource, jsonwebtoken::Algorithm,
};
use ws_client::{Auth, ClientConfig, TokenSource, connect};
use ws_server::{Binding, Body, Ctx, Handler, Request, Response, Server, ServerConfig};

const SECRET: &[u8] = b"post-token-secret";

/// `/token` hands out a JWT for user alice (fields `user` and `pass`); connections are told
/// who they are.
struct App;

impl Handler for App {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let user = ctx.info().user().unwrap_or("-").to_owned();
        let _ = ctx.send(ws_server::ws_frame::Message::text(format!("user={user}")));
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        if request.path() != "/token" || request.method() != "POST" {
            return Response::new(404);
        }
        let form = body.bytes().await.unwrap_or_default();
        if form.as_ref() != b"user=alice&pass=wonder%20land" {
            return Response::text(401, "wrong user or password\n");
        }
        let token = Signer::with_secret(Algorithm::HS256, SECRET)
            .unwrap()
            .claim("sub", "alice")
            .lifetime(Duration::from_secs(300))
            .sign(SystemTime::now())
            .unwrap();
        Response::new(200)
            .with_header("Content-Type", "application/json")
            .with_body(format!("{{\"token\":\"{token}\"}}"))
    }
}

#[tokio::test]
async fn a_token_posted_for_opens_the_websocket_in_header_or_query() {
    let mut config = Config::default();
    config.public_paths = vec!["/token".into()];
    let verifier = Verifier::new(
        config,
        vec![Key::secret(SECRET, &[Algorithm::HS256]).unwrap()],
    )
    .unwrap();
    let auth = JwtAuth::new(verifier);
    let server = Server::start(
        ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]),
        auth.guard(App),
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    let tls = ws_tls::client_config(&ws_tls::ClientTlsConfig::default()).unwrap();
    let source = |password: &str| {
        PostTokenSource::new(
            format!("http://{addr}/token"),
            "alice",
            password,
            tls.clone(),
        )
        .field_names("user", "pass")
        .allow_loopback_http(true)
    };
    let url = format!("ws://{addr}/hub");

    // As a bearer token, asked for before the connection.
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(Auth::bearer_fn(source("wonder land")));
    let mut ws = connect(url.as_str(), cfg).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("user=alice")
    );

    // In the query, as SignalRCore sends it.
    let s = Arc::new(source("wonder land"));
    s.token(false).await.unwrap();
    let mut cfg = ClientConfig::default();
    cfg.request_hook = Some(s.query_hook("access_token"));
    let mut ws = connect(url.as_str(), cfg).await.unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("user=alice")
    );

    // A wrong password: the token request fails and says so; no token, no connection.
    let wrong = source("guess");
    let err = wrong.token(false).await.unwrap_err();
    assert!(err.contains("answered 401"), "{err}");
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(Auth::bearer_fn(wrong));
    assert!(connect(url.as_str(), cfg).await.is_err());
    // Without the hook's token the server refuses the upgrade.
    let err = connect(url.as_str(), ClientConfig::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ws_client::Error::Http(r) if r.status == 401),
        "{err}"
    );
    server.stop().await;
}
