//! The seed's OAuth2 and JWT attachments on one server (parity A-17): the OAuth2 server's own
//! access tokens and JWTs from another issuer both open the guarded routes and WebSocket
//! upgrades; a JWT with the wrong key, a revoked OAuth2 token and no token do not.

mod common;

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use auth_oauth2_jwt::{
    Config, Key, Signer, Verifier,
    jsonwebtoken::Algorithm,
    oauth2::{AuthServer, OAuth2, OsRandom, SqliteStore},
};
use common::{App, enc, http};
use ws_client::{Auth, ClientConfig, connect};
use ws_server::{Binding, Server, ServerConfig};

const PARTNER: &[u8] = b"partner-issuer-secret";

fn partner_jwt(secret: &[u8], sub: &str) -> String {
    Signer::with_secret(Algorithm::HS256, secret)
        .unwrap()
        .claim("sub", sub)
        .claim("iss", "https://partner.example")
        .lifetime(Duration::from_secs(300))
        .sign(SystemTime::now())
        .unwrap()
}

#[tokio::test]
async fn oauth2_tokens_and_jwts_from_another_issuer_both_open_the_server() {
    let config = Config::default();
    let core = AuthServer::new(
        config.clone(),
        Arc::new(SqliteStore::memory().unwrap()),
        Arc::new(OsRandom),
    )
    .unwrap();
    let grants = vec!["client_credentials".to_owned()];
    let (app, secret) = core
        .register_app("backend", &[], &grants, true, SystemTime::now())
        .unwrap();
    let secret = secret.unwrap();
    let mut jwt_config = Config::default();
    jwt_config.issuers = vec!["https://partner.example".into()];
    let verifier = Verifier::new(
        jwt_config,
        vec![Key::secret(PARTNER, &[Algorithm::HS256]).unwrap()],
    )
    .unwrap();
    let oauth2 = OAuth2::new(core).with_also_accepted(Arc::new(verifier));
    let server = Server::start(
        ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())]),
        oauth2.wrap(App {
            auth: oauth2.auth(),
        }),
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];

    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}",
        enc(&app.client_id),
        enc(&secret)
    );
    let issued = http(addr, "POST", "/oauth2/token", &[], &form).await;
    assert_eq!(issued.status, 200, "{issued:?}");
    let access = issued.json()["access_token"].as_str().unwrap().to_owned();

    // The OAuth2 server's token, on HTTP and on an upgrade.
    let bearer = format!("Bearer {access}");
    let r = http(addr, "GET", "/api", &[("Authorization", &bearer)], "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(Auth::bearer(access.clone()));
    let mut ws = connect(format!("ws://{addr}/ws").as_str(), cfg)
        .await
        .unwrap();
    let hello = ws.recv().await.unwrap().unwrap();
    assert_eq!(
        hello.as_text(),
        Some(format!("hello {}", app.client_id).as_str())
    );

    // A JWT from the partner issuer, on HTTP and on an upgrade.
    let jwt = partner_jwt(PARTNER, "carol");
    let bearer = format!("Bearer {jwt}");
    let r = http(addr, "GET", "/api", &[("Authorization", &bearer)], "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("hello carol"), "{r:?}");
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(Auth::bearer(jwt));
    let mut ws = connect(format!("ws://{addr}/ws").as_str(), cfg)
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("hello carol")
    );

    // A JWT signed with another key: refused, and the reason is the signature.
    let forged = format!("Bearer {}", partner_jwt(b"not-the-partner", "mallory"));
    let r = http(addr, "GET", "/api", &[("Authorization", &forged)], "").await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("invalid signature"), "{r:?}");
    // No token; a revoked OAuth2 token.
    assert_eq!(http(addr, "GET", "/api", &[], "").await.status, 401);
    let revoke = format!(
        "token={}&client_id={}&client_secret={}",
        enc(&access),
        enc(&app.client_id),
        enc(&secret)
    );
    let r = http(addr, "POST", "/oauth2/revoke", &[], &revoke).await;
    assert_eq!(r.status, 200, "{r:?}");
    let bearer = format!("Bearer {access}");
    let r = http(addr, "GET", "/api", &[("Authorization", &bearer)], "").await;
    assert_eq!(r.status, 401, "{r:?}");
    server.stop().await;
}
