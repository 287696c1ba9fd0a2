//! The OAuth2 authorization server over HTTP on a live ws-server: code + PKCE through the
//! sign-in form, client credentials, refresh rotation, introspection, revocation, metadata,
//! restart survival, and the OAuth2 items of the attack list.

mod common;

use std::time::{Duration, Instant};

use auth_oauth2_jwt::oauth2::server::s256;
use common::{Answer, enc, hidden, http, param, start};
use ws_client::{ClientConfig, connect};

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K9qaZ8kmg3gm6sS6WQdr2fRoNk";
const REDIRECT: &str = "http://127.0.0.1/cb";

/// Registers a public app (code + refresh) and a confidential one (all grants).
fn apps(run: &common::Running) -> (String, String, String) {
    let now = std::time::SystemTime::now();
    let core = run.oauth2.server();
    let (public, _) = core
        .register_app("Public app", &[REDIRECT.into()], &[], false, now)
        .unwrap();
    let grants: Vec<String> = ["authorization_code", "client_credentials", "refresh_token"]
        .map(String::from)
        .to_vec();
    let (confidential, secret) = core
        .register_app(
            "Backend",
            &["https://app.example/cb".into()],
            &grants,
            true,
            now,
        )
        .unwrap();
    (public.client_id, confidential.client_id, secret.unwrap())
}

fn authorize_url(client_id: &str, redirect: &str, challenge: Option<(&str, &str)>) -> String {
    let mut url = format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&state=xyz&scope=chat",
        enc(client_id),
        enc(redirect)
    );
    if let Some((c, m)) = challenge {
        url.push_str(&format!(
            "&code_challenge={}&code_challenge_method={m}",
            enc(c)
        ));
    }
    url
}

/// Runs the browser part: page, form post. Returns the redirect's Location.
async fn sign_in(run: &common::Running, client_id: &str, redirect: &str, password: &str) -> Answer {
    let page = http(
        run.addr,
        "GET",
        &authorize_url(client_id, redirect, Some((&s256(VERIFIER), "S256"))),
        &[],
        "",
    )
    .await;
    assert_eq!(page.status, 200, "{page:?}");
    let (id, csrf) = (hidden(&page.body, "id"), hidden(&page.body, "csrf"));
    let cookie = format!("oauth2_csrf={csrf}");
    let form = format!(
        "id={}&csrf={}&username=alice&password={}&action=allow",
        enc(&id),
        enc(&csrf),
        enc(password)
    );
    http(
        run.addr,
        "POST",
        "/oauth2/authorize",
        &[("Cookie", &cookie)],
        &form,
    )
    .await
}

async fn exchange(
    run: &common::Running,
    client_id: &str,
    code: &str,
    verifier: Option<&str>,
) -> Answer {
    let mut form = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&client_id={}",
        enc(code),
        enc("http://127.0.0.1:5555/cb"),
        enc(client_id)
    );
    if let Some(v) = verifier {
        form.push_str(&format!("&code_verifier={v}"));
    }
    http(run.addr, "POST", "/oauth2/token", &[], &form).await
}

async fn api(run: &common::Running, token: &str) -> Answer {
    http(
        run.addr,
        "GET",
        "/api",
        &[("Authorization", &format!("Bearer {token}"))],
        "",
    )
    .await
}

#[tokio::test]
async fn code_with_pkce_then_websocket_refresh_introspect_revoke() {
    let logs = common::logs();
    let run = start(None, common::config(None), "127.0.0.1:0").await;
    let (public, confidential, secret) = apps(&run);

    // The sign-in page forbids framing and sets its CSRF cookie.
    let page = http(
        run.addr,
        "GET",
        &authorize_url(
            &public,
            "http://127.0.0.1:5555/cb",
            Some((&s256(VERIFIER), "S256")),
        ),
        &[],
        "",
    )
    .await;
    assert_eq!(page.header("X-Frame-Options").as_deref(), Some("DENY"));
    assert!(
        page.header("Content-Security-Policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(
        page.header("Set-Cookie")
            .unwrap()
            .contains("HttpOnly; SameSite=Strict")
    );

    let redirect = sign_in(&run, &public, "http://127.0.0.1:5555/cb", "wonderland").await;
    assert_eq!(redirect.status, 302, "{redirect:?}");
    let location = redirect.header("Location").unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:5555/cb?code="),
        "{location}"
    );
    assert_eq!(param(&location, "state").as_deref(), Some("xyz"));
    assert_eq!(
        param(&location, "iss"),
        Some(format!("http://{}", run.addr)),
        "RFC 9207 iss"
    );
    let code = param(&location, "code").unwrap();

    let tokens = exchange(&run, &public, &code, Some(VERIFIER)).await;
    assert_eq!(tokens.status, 200, "{tokens:?}");
    assert_eq!(tokens.header("Cache-Control").as_deref(), Some("no-store"));
    let t = tokens.json();
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "chat");

    // The access token opens HTTP routes and WebSocket upgrades.
    let hello = api(&run, &access).await;
    assert!(
        hello.body.contains(&format!("hello alice via {public}")),
        "{hello:?}"
    );
    assert_eq!(http(run.addr, "GET", "/api", &[], "").await.status, 401);
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(ws_client::Auth::bearer(access.clone()));
    let mut ws = connect(format!("ws://{}/chat", run.addr).as_str(), cfg)
        .await
        .unwrap();
    assert_eq!(
        ws.recv().await.unwrap().unwrap().as_text(),
        Some("hello alice")
    );

    // Refresh rotates.
    let basic = format!("client_id={}", enc(&public));
    let r1 = http(
        run.addr,
        "POST",
        "/oauth2/token",
        &[],
        &format!(
            "grant_type=refresh_token&refresh_token={}&{basic}",
            enc(&refresh)
        ),
    )
    .await;
    assert_eq!(r1.status, 200, "{r1:?}");
    let refresh2 = r1.json()["refresh_token"].as_str().unwrap().to_owned();
    let access2 = r1.json()["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);

    // Introspection by a confidential client.
    let intro = |token: String| {
        let (c, s) = (confidential.clone(), secret.clone());
        async move {
            http(
                run.addr,
                "POST",
                "/oauth2/introspect",
                &[],
                &format!(
                    "token={}&client_id={}&client_secret={}",
                    enc(&token),
                    enc(&c),
                    enc(&s)
                ),
            )
            .await
        }
    };
    let i = intro(access2.clone()).await;
    assert_eq!(i.status, 200, "{i:?}");
    assert_eq!(i.json()["active"], true);
    assert_eq!(i.json()["sub"], "alice");
    assert_eq!(i.json()["client_id"], public.as_str());
    assert_eq!(intro("made-up".into()).await.json()["active"], false);
    let anonymous = http(
        run.addr,
        "POST",
        "/oauth2/introspect",
        &[],
        &format!("token={}", enc(&access2)),
    )
    .await;
    assert_eq!(
        anonymous.status, 401,
        "introspection needs client authentication"
    );

    // Revocation of the access token: inactive, and the route refuses it.
    let rv = http(
        run.addr,
        "POST",
        "/oauth2/revoke",
        &[],
        &format!("token={}&{basic}", enc(&access2)),
    )
    .await;
    assert_eq!(rv.status, 200);
    assert_eq!(intro(access2.clone()).await.json()["active"], false);
    assert_eq!(api(&run, &access2).await.status, 401);
    let mut cfg = ClientConfig::default();
    cfg.auth = Some(ws_client::Auth::bearer(access2.clone()));
    assert!(
        connect(format!("ws://{}/chat", run.addr).as_str(), cfg)
            .await
            .is_err()
    );

    // Revoking the refresh token revokes its family.
    http(
        run.addr,
        "POST",
        "/oauth2/revoke",
        &[],
        &format!(
            "token={}&token_type_hint=refresh_token&{basic}",
            enc(&refresh2)
        ),
    )
    .await;
    assert_eq!(
        api(&run, &access).await.status,
        401,
        "the family's first access token too"
    );

    // No token or secret in the logs.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("access token issued"),
        "logs captured: {text}"
    );
    for s in [&access, &access2, &refresh, &refresh2, &code, &secret] {
        assert!(!text.contains(s.as_str()), "a credential is in the logs");
    }
    run.server.stop().await;
}

#[tokio::test]
async fn attack_authorization_code_used_twice_revokes_what_it_issued() {
    let run = start(None, common::config(None), "127.0.0.1:0").await;
    let (public, _, _) = apps(&run);
    let location = sign_in(&run, &public, "http://127.0.0.1:5555/cb", "wonderland")
        .await
        .header("Location")
        .unwrap();
    let code = param(&location, "code").unwrap();
    let first = exchange(&run, &public, &code, Some(VERIFIER)).await;
    assert_eq!(first.status, 200);
    let access = first.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(api(&run, &access).await.status, 200);
    let second = exchange(&run, &public, &code, Some(VERIFIER)).await;
    assert_eq!(second.status, 400);
    assert_eq!(second.json()["error"], "invalid_grant");
    assert_eq!(
        api(&run, &access).await.status,
        401,
        "the first exchange's token is revoked"
    );
    run.server.stop().await;
}

#[tokio::test]
async fn attack_pkce_missing_plain_or_wrong_verifier() {
    let run = start(None, common::config(None), "127.0.0.1:0").await;
    let (public, _, _) = apps(&run);
    let cb = "http://127.0.0.1:5555/cb";
    for (challenge, expect) in [
        (None, "PKCE is required"),
        (Some((VERIFIER, "plain")), "plain is refused"),
    ] {
        let r = http(
            run.addr,
            "GET",
            &authorize_url(&public, cb, challenge),
            &[],
            "",
        )
        .await;
        assert_eq!(r.status, 302, "{r:?}");
        let location = r.header("Location").unwrap();
        assert_eq!(
            param(&location, "error").as_deref(),
            Some("invalid_request")
        );
        assert!(
            param(&location, "error_description")
                .unwrap()
                .contains(expect),
            "{location}"
        );
        assert_eq!(param(&location, "state").as_deref(), Some("xyz"));
    }
    // A wrong verifier, and none at all.
    let code = param(
        &sign_in(&run, &public, cb, "wonderland")
            .await
            .header("Location")
            .unwrap(),
        "code",
    )
    .unwrap();
    let wrong = exchange(&run, &public, &code, Some(&"x".repeat(43))).await;
    assert_eq!(wrong.json()["error"], "invalid_grant");
    let code = param(
        &sign_in(&run, &public, cb, "wonderland")
            .await
            .header("Location")
            .unwrap(),
        "code",
    )
    .unwrap();
    let none = exchange(&run, &public, &code, None).await;
    assert_eq!(none.json()["error"], "invalid_grant");
    assert!(
        none.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
    run.server.stop().await;
}

#[tokio::test]
async fn attack_redirect_uri_must_match_and_errors_never_go_to_unregistered_uris() {
    let run = start(None, common::config(None), "127.0.0.1:0").await;
    let (public, _, _) = apps(&run);
    let challenge = Some((s256(VERIFIER), "S256"));
    let c = challenge.as_ref().map(|(a, b)| (a.as_str(), *b));
    for bad in [
        "http://127.0.0.1:5555/cb/",
        "http://127.0.0.1:5555/cb?x=1",
        "http://127.0.0.2/cb",
        "https://evil.example/cb",
    ] {
        let r = http(run.addr, "GET", &authorize_url(&public, bad, c), &[], "").await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert!(r.header("Location").is_none(), "{bad}: no redirect");
    }
    // An error (wrong response_type) with an unregistered URI: shown, not redirected.
    let r = http(
        run.addr,
        "GET",
        &format!(
            "/oauth2/authorize?response_type=token&client_id={}&redirect_uri={}",
            enc(&public),
            enc("https://evil.example/")
        ),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.header("Location").is_none());
    // Unknown client: shown, not redirected.
    let r = http(
        run.addr,
        "GET",
        &authorize_url("nobody", "http://127.0.0.1/cb", c),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.header("Location").is_none());
    // The loopback port may vary (RFC 8252).
    let r = http(
        run.addr,
        "GET",
        &authorize_url(&public, "http://127.0.0.1:61000/cb", c),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    run.server.stop().await;
}

#[tokio::test]
async fn attack_refresh_token_reuse_revokes_the_family() {
    let run = start(None, common::config(None), "127.0.0.1:0").await;
    let (public, _, _) = apps(&run);
    let code = param(
        &sign_in(&run, &public, "http://127.0.0.1:5555/cb", "wonderland")
            .await
            .header("Location")
            .unwrap(),
        "code",
    )
    .unwrap();
    let t = exchange(&run, &public, &code, Some(VERIFIER)).await.json();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();
    let form = |rt: &str| {
        format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            enc(rt),
            enc(&public)
        )
    };
    let r1 = http(run.addr, "POST", "/oauth2/token", &[], &form(&refresh))
        .await
        .json();
    let (access2, refresh2) = (
        r1["access_token"].as_str().unwrap().to_owned(),
        r1["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(api(&run, &access2).await.status, 200);
    // The old refresh token again: refused, and everything of this grant is revoked.
    let reuse = http(run.addr, "POST", "/oauth2/token", &[], &form(&refresh)).await;
    assert_eq!(reuse.json()["error"], "invalid_grant");
    assert_eq!(api(&run, &access2).await.status, 401);
    let after = http(run.addr, "POST", "/oauth2/token", &[], &form(&refresh2)).await;
    assert_eq!(
        after.json()["error"],
        "invalid_grant",
        "the rotated token is revoked too"
    );
    run.server.stop().await;
}

#[tokio::test]
async fn attack_consent_form_needs_its_csrf_token_and_wrong_passwords_are_slowed_down() {
    let mut config = common::config(None);
    config.oauth2.sign_in_free_failures = 1;
    config.oauth2.sign_in_delay = Duration::from_millis(300);
    let run = start(None, config, "127.0.0.1:0").await;
    let (public, _, _) = apps(&run);
    let page = http(
        run.addr,
        "GET",
        &authorize_url(&public, REDIRECT, Some((&s256(VERIFIER), "S256"))),
        &[],
        "",
    )
    .await;
    let (id, csrf) = (hidden(&page.body, "id"), hidden(&page.body, "csrf"));
    let good_cookie = format!("oauth2_csrf={csrf}");
    let post = |csrf_field: String, cookie: String, password: &'static str| {
        let id = id.clone();
        async move {
            let form = format!(
                "id={}&csrf={}&username=alice&password={password}&action=allow",
                enc(&id),
                enc(&csrf_field)
            );
            http(
                run.addr,
                "POST",
                "/oauth2/authorize",
                &[("Cookie", &cookie)],
                &form,
            )
            .await
        }
    };
    assert_eq!(
        post(String::new(), good_cookie.clone(), "wonderland")
            .await
            .status,
        403,
        "no CSRF field"
    );
    assert_eq!(
        post("forged".into(), good_cookie.clone(), "wonderland")
            .await
            .status,
        403,
        "wrong CSRF field"
    );
    assert_eq!(
        post(csrf.clone(), String::new(), "wonderland").await.status,
        403,
        "no CSRF cookie"
    );

    // Wrong passwords: the first is answered at once, later ones wait longer and longer.
    let timed = |n| {
        let (c, k) = (csrf.clone(), good_cookie.clone());
        let post = &post;
        async move {
            let t = Instant::now();
            let r = post(c, k, "wrong").await;
            assert_eq!(r.status, 200, "attempt {n}");
            assert!(r.body.contains("Wrong user name or password"));
            t.elapsed()
        }
    };
    assert!(timed(1).await < Duration::from_millis(300));
    assert!(timed(2).await >= Duration::from_millis(300));
    assert!(timed(3).await >= Duration::from_millis(600));
    let ok = post(csrf.clone(), good_cookie, "wonderland").await;
    assert_eq!(ok.status, 302);
    run.server.stop().await;
}

#[tokio::test]
async fn client_credentials_and_constant_time_secret_check() {
    let run = start(None, common::config(None), "127.0.0.1:0").await;
    let (public, confidential, secret) = apps(&run);
    use base64::Engine as _;
    let basic = |id: &str, s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(s)))
        )
    };
    let ok = http(
        run.addr,
        "POST",
        "/oauth2/token",
        &[("Authorization", &basic(&confidential, &secret))],
        "grant_type=client_credentials&scope=jobs",
    )
    .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let access = ok.json()["access_token"].as_str().unwrap().to_owned();
    assert!(ok.json().get("refresh_token").is_none());
    let hello = api(&run, &access).await;
    assert!(
        hello
            .body
            .contains(&format!("hello {confidential} via {confidential}")),
        "{hello:?}"
    );
    let mut wrong = secret.clone();
    wrong.pop();
    wrong.push('x');
    let r = http(
        run.addr,
        "POST",
        "/oauth2/token",
        &[("Authorization", &basic(&confidential, &wrong))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    assert!(r.header("WWW-Authenticate").is_some());
    // A public client cannot use client credentials.
    let r = http(
        run.addr,
        "POST",
        "/oauth2/token",
        &[],
        &format!("grant_type=client_credentials&client_id={}", enc(&public)),
    )
    .await;
    assert_eq!(r.status, 401);
    // Repeated parameters are refused.
    let r = http(
        run.addr,
        "POST",
        "/oauth2/token",
        &[("Authorization", &basic(&confidential, &secret))],
        "grant_type=client_credentials&grant_type=password",
    )
    .await;
    assert_eq!(r.json()["error"], "invalid_request");
    // The password grant is off by default.
    let r = http(
        run.addr,
        "POST",
        "/oauth2/token",
        &[("Authorization", &basic(&confidential, &secret))],
        "grant_type=password&username=alice&password=wonderland",
    )
    .await;
    assert_eq!(r.json()["error"], "unauthorized_client");
    run.server.stop().await;
}

#[tokio::test]
async fn metadata_describes_the_endpoints() {
    let run = start(None, common::config(None), "127.0.0.1:0").await;
    let m = http(
        run.addr,
        "GET",
        "/.well-known/oauth-authorization-server",
        &[],
        "",
    )
    .await;
    assert_eq!(m.status, 200);
    let m = m.json();
    let base = format!("http://{}", run.addr);
    assert_eq!(m["issuer"], base.as_str());
    assert_eq!(m["token_endpoint"], format!("{base}/oauth2/token"));
    assert_eq!(
        m["introspection_endpoint"],
        format!("{base}/oauth2/introspect")
    );
    assert_eq!(m["revocation_endpoint"], format!("{base}/oauth2/revoke"));
    assert_eq!(
        m["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    run.server.stop().await;
}

#[tokio::test]
async fn tokens_and_apps_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("oauth2.db");
    let run = start(Some(&db), common::config(None), "127.0.0.1:0").await;
    let (public, confidential, secret) = apps(&run);
    let code = param(
        &sign_in(&run, &public, "http://127.0.0.1:5555/cb", "wonderland")
            .await
            .header("Location")
            .unwrap(),
        "code",
    )
    .unwrap();
    let t = exchange(&run, &public, &code, Some(VERIFIER)).await.json();
    let (access, refresh) = (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    );
    let addr = run.addr;
    run.server.stop().await;
    drop(run);

    // A new process, a new port; the same database.
    let run = start(Some(&db), common::config(Some(addr)), "127.0.0.1:0").await;
    assert_eq!(
        api(&run, &access).await.status,
        200,
        "the access token survived"
    );
    let r = http(
        run.addr,
        "POST",
        "/oauth2/token",
        &[],
        &format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            enc(&refresh),
            enc(&public)
        ),
    )
    .await;
    assert_eq!(r.status, 200, "the refresh token survived: {r:?}");
    let cc = http(
        run.addr,
        "POST",
        "/oauth2/token",
        &[],
        &format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            enc(&confidential),
            enc(&secret)
        ),
    )
    .await;
    assert_eq!(cc.status, 200, "the app and its secret survived");
    assert_eq!(run.oauth2.server().store().apps().unwrap().len(), 2);
    run.server.stop().await;
}

#[tokio::test]
async fn jwt_access_tokens_verify_with_the_published_jwks() {
    use auth_oauth2_jwt::{Config, Signer, Verifier, jsonwebtoken::Algorithm};
    let signer = Signer::with_private_pem(Algorithm::ES256, include_bytes!("keys/ec256.key"))
        .unwrap()
        .kid("as-1");
    let run = common::start_with(None, common::config(None), "127.0.0.1:0", Some(signer)).await;
    let (_, confidential, secret) = apps(&run);
    let form = format!(
        "grant_type=client_credentials&scope=jobs&client_id={}&client_secret={}",
        enc(&confidential),
        enc(&secret)
    );
    let answer = http(run.addr, "POST", "/oauth2/token", &[], &form).await;
    let token = answer.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT");

    let issuer = format!("http://{}", run.addr);
    let meta = http(
        run.addr,
        "GET",
        "/.well-known/oauth-authorization-server",
        &[],
        "",
    )
    .await;
    assert_eq!(meta.json()["jwks_uri"], format!("{issuer}/oauth2/jwks"));
    let mut config = Config::default();
    config.issuers = vec![issuer.clone()];
    config.audiences = vec![issuer.clone()];
    config.jwks_allow_loopback_http = true;
    let tls = ws_tls::client_config(&ws_tls::ClientTlsConfig::default()).unwrap();
    let verifier = Verifier::build(
        config,
        Vec::new(),
        Some((format!("{issuer}/oauth2/jwks"), tls)),
        None,
    )
    .unwrap();
    let v = verifier
        .verify(&token, std::time::SystemTime::now())
        .await
        .unwrap();
    assert_eq!(v.header.raw["typ"], "at+jwt");
    assert_eq!(v.header.kid.as_deref(), Some("as-1"));
    assert_eq!(v.claims.str("client_id"), Some(confidential.as_str()));
    assert_eq!(v.claims.scopes(), ["jobs"]);

    // The server itself still checks its store: a revoked JWT is refused here at once.
    assert_eq!(api(&run, &token).await.status, 200);
    let rv = format!(
        "token={}&client_id={}&client_secret={}",
        enc(&token),
        enc(&confidential),
        enc(&secret)
    );
    http(run.addr, "POST", "/oauth2/revoke", &[], &rv).await;
    assert_eq!(api(&run, &token).await.status, 401);
    run.server.stop().await;
}

/// Records what the hooks saw.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, auth_oauth2_jwt::oauth2::Issued)>>);

impl auth_oauth2_jwt::oauth2::OAuth2Hooks for Recorder {
    fn after_access_token(&self, issued: &auth_oauth2_jwt::oauth2::Issued) {
        self.0
            .lock()
            .unwrap()
            .push(("access".into(), issued.clone()));
    }

    fn after_refresh_token(&self, issued: &auth_oauth2_jwt::oauth2::Issued) {
        self.0
            .lock()
            .unwrap()
            .push(("refresh".into(), issued.clone()));
    }
}

#[test]
fn password_grant_when_enabled_and_hooks_see_what_was_issued() {
    use auth_oauth2_jwt::oauth2::{AuthServer, OsRandom, SqliteStore};
    use std::sync::Arc;
    let mut config = common::config(None);
    config.oauth2.allow_password_grant = true;
    let recorder = Arc::new(Recorder::default());
    let core = AuthServer::new(
        config,
        Arc::new(SqliteStore::memory().unwrap()),
        Arc::new(OsRandom),
    )
    .unwrap()
    .with_users(Arc::new(common::TestUsers))
    .with_hooks(recorder.clone());
    let now = std::time::SystemTime::now();
    let grants = vec!["password".to_owned(), "refresh_token".to_owned()];
    let (app, secret) = core
        .register_app("legacy", &[], &grants, true, now)
        .unwrap();
    let auth = format!(
        "client_id={}&client_secret={}",
        enc(&app.client_id),
        enc(&secret.unwrap())
    );
    let wrong = core.token(
        &format!("grant_type=password&username=alice&password=nope&{auth}"),
        None,
        now,
    );
    assert_eq!(wrong.unwrap_err().code, "invalid_grant");
    let t = core
        .token(
            &format!("grant_type=password&username=alice&password=wonderland&scope=a&{auth}"),
            None,
            now,
        )
        .unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    core.token(
        &format!("grant_type=refresh_token&refresh_token={}&{auth}", enc(rt)),
        None,
        now,
    )
    .unwrap();
    let seen = recorder.0.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (
            seen[0].0.as_str(),
            seen[0].1.grant,
            seen[0].1.subject.as_deref()
        ),
        ("access", "password", Some("alice"))
    );
    assert_eq!(
        (
            seen[1].0.as_str(),
            seen[1].1.grant,
            seen[1].1.scope.as_str()
        ),
        ("refresh", "refresh_token", "a")
    );
    assert!(seen[0].1.refresh_token);
}
