//! The OAuth2 client (the `oauth2` crate over this crate's HTTP client) against the OAuth2
//! server: client credentials, code + PKCE with the loopback listener and the RFC 9207 `iss`
//! check, refresh, and the token source that feeds ws-client.

mod common;

use std::{net::SocketAddr, sync::Arc, time::SystemTime};

use auth_oauth2_jwt::{
    Error,
    oauth2_client::{ClientSettings, OAuth2Client, OAuth2TokenSource},
};
use common::{enc, hidden, http};
use ws_client::{ClientConfig, connect};

fn tls() -> Arc<rustls::ClientConfig> {
    ws_tls::client_config(&ws_tls::ClientTlsConfig::default()).unwrap()
}

fn settings(run: &common::Running, client_id: &str) -> ClientSettings {
    let base = format!("http://{}", run.addr);
    let mut s = ClientSettings::new(format!("{base}/oauth2/token"), client_id, tls());
    s.auth_url = Some(format!("{base}/oauth2/authorize"));
    s.allow_loopback_http = true;
    s.issuer = Some(base);
    s
}

/// Splits `http://host:port/target`.
fn split(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let slash = rest.find('/').unwrap();
    (rest[..slash].parse().unwrap(), rest[slash..].to_owned())
}

/// Plays the browser: the sign-in page, the form, then the redirect to the loopback listener.
async fn browser(url: String) {
    let (addr, target) = split(&url);
    let page = http(addr, "GET", &target, &[], "").await;
    assert_eq!(page.status, 200, "{page:?}");
    let (id, csrf) = (hidden(&page.body, "id"), hidden(&page.body, "csrf"));
    let form = format!(
        "id={}&csrf={}&username=alice&password=wonderland&action=allow",
        enc(&id),
        enc(&csrf)
    );
    let cookie = format!("oauth2_csrf={csrf}");
    let answer = http(
        addr,
        "POST",
        "/oauth2/authorize",
        &[("Cookie", &cookie)],
        &form,
    )
    .await;
    let location = answer.header("Location").expect("a redirect");
    let (cb, cb_target) = split(&location);
    let done = http(cb, "GET", &cb_target, &[], "").await;
    assert!(done.body.contains("Signed in"), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_feed_ws_client() {
    let run = common::start(None, common::config(None), "127.0.0.1:0").await;
    let grants = vec!["client_credentials".to_owned()];
    let (app, secret) = run
        .oauth2
        .server()
        .register_app("svc", &[], &grants, true, SystemTime::now())
        .unwrap();
    let mut s = settings(&run, &app.client_id);
    s.client_secret = secret;
    s.scopes = vec!["jobs".into()];
    let client = Arc::new(OAuth2Client::new(s).unwrap());
    let tokens = client.client_credentials().await.unwrap();
    assert_eq!(tokens.scope.as_deref(), Some("jobs"));
    assert!(!format!("{tokens:?}").contains(&tokens.access_token));

    let source = OAuth2TokenSource::new(client.clone(), None);
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(ws_client::Auth::bearer_fn(source));
    let mut ws = connect(format!("ws://{}/chat", run.addr).as_str(), cfg)
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some(format!("hello {}", app.client_id).as_str())
    );

    // A wrong secret is the server's invalid_client.
    let mut bad = settings(&run, &app.client_id);
    bad.client_secret = Some("wrong".into());
    let err = OAuth2Client::new(bad)
        .unwrap()
        .client_credentials()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::OAuth(e) if e.code == "invalid_client"),
        "{err}"
    );
    run.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_with_pkce_through_the_loopback_listener_then_refresh() {
    let run = common::start(None, common::config(None), "127.0.0.1:0").await;
    let (app, _) = run
        .oauth2
        .server()
        .register_app(
            "desktop",
            &["http://127.0.0.1/callback".into()],
            &[],
            false,
            SystemTime::now(),
        )
        .unwrap();
    let mut s = settings(&run, &app.client_id);
    s.scopes = vec!["chat".into()];
    let client = Arc::new(OAuth2Client::new(s).unwrap());
    let tokens = client
        .authorize_loopback(|url| {
            tokio::spawn(browser(url));
        })
        .await
        .unwrap();
    assert!(tokens.refresh_token.is_some());
    let hello = http(
        run.addr,
        "GET",
        "/api",
        &[("Authorization", &format!("Bearer {}", tokens.access_token))],
        "",
    )
    .await;
    assert!(hello.body.contains("hello alice"), "{hello:?}");

    // The token source renews with the (rotating) refresh token when asked to.
    let source = OAuth2TokenSource::new(client.clone(), Some(tokens.clone()));
    assert_eq!(
        source.access_token(false).await.unwrap(),
        tokens.access_token
    );
    let renewed = source.access_token(true).await.unwrap();
    assert_ne!(renewed, tokens.access_token);
    let hello = http(
        run.addr,
        "GET",
        "/api",
        &[("Authorization", &format!("Bearer {renewed}"))],
        "",
    )
    .await;
    assert_eq!(hello.status, 200);

    // A client expecting another issuer refuses the redirect (RFC 9207 mix-up defence).
    let mut other = settings(&run, &app.client_id);
    other.issuer = Some("https://other.example".into());
    let err = OAuth2Client::new(other)
        .unwrap()
        .authorize_loopback(|url| {
            tokio::spawn(browser(url));
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("RFC 9207"), "{err}");
    run.server.stop().await;
}
