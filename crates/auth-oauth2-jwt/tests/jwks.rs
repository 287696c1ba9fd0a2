//! A JWKS fetched over TLS, cached, and fetched again on an unknown `kid` (rate-limited), so
//! that key rotation at the issuer works without a restart.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use auth_oauth2_jwt::{
    Config, Signer, TokenError, Verifier,
    jsonwebtoken::{Algorithm, EncodingKey, jwk::Jwk},
};
use ws_server::{Binding, Body, Handler, Request, Response, Server, ServerConfig};

const RSA_KEY: &[u8] = include_bytes!("keys/rsa.key");
const RSA2_KEY: &[u8] = include_bytes!("keys/rsa2.key");
const EC256_KEY: &[u8] = include_bytes!("keys/ec256.key");

struct KeyServer {
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl Handler for KeyServer {
    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        if request.path() != "/.well-known/jwks.json" {
            return Response::new(404);
        }
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let doc = self.document.lock().unwrap().clone();
        Response::new(200)
            .with_header("Content-Type", "application/jwk-set+json")
            .with_body(doc)
    }
}

fn jwk(pem: &[u8], alg: Algorithm, kid: &str) -> serde_json::Value {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(pem).unwrap(),
    };
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

fn sign(pem: &[u8], alg: Algorithm, kid: &str) -> String {
    Signer::with_private_pem(alg, pem)
        .unwrap()
        .kid(kid)
        .claim("sub", kid)
        .lifetime(Duration::from_secs(300))
        .sign(SystemTime::now())
        .unwrap()
}

#[tokio::test]
async fn jwks_over_tls_with_rotation_and_rate_limited_refresh() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let document = Arc::new(Mutex::new(
        serde_json::json!({"keys": [jwk(RSA_KEY, Algorithm::RS256, "k1")]}).to_string(),
    ));
    let fetches = Arc::new(AtomicUsize::new(0));
    let tls = ws_tls::server_config(&pki.server_config()).unwrap();
    let config = ServerConfig::new(vec![Binding::tls("127.0.0.1:0".parse().unwrap(), tls)]);
    let handler = KeyServer {
        document: document.clone(),
        fetches: fetches.clone(),
    };
    let server = Server::start(config, handler).await.unwrap();
    let url = format!(
        "https://localhost:{}/.well-known/jwks.json",
        server.local_addrs()[0].port()
    );

    let client_tls = ws_tls::client_config(&pki.client_config()).unwrap();
    let mut config = Config::default();
    config.jwks_min_refresh = Duration::from_millis(300);
    let verifier =
        Verifier::build(config, Vec::new(), Some((url.clone(), client_tls)), None).unwrap();

    // First use fetches; the next token is served from the cache.
    let v = verifier
        .verify(&sign(RSA_KEY, Algorithm::RS256, "k1"), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(v.claims.sub(), Some("k1"));
    verifier
        .verify(&sign(RSA_KEY, Algorithm::RS256, "k1"), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // The issuer rotates to k2 (RSA) and adds an EC key: an unknown kid fetches again.
    *document.lock().unwrap() = serde_json::json!({"keys": [
        jwk(RSA2_KEY, Algorithm::RS256, "k2"),
        jwk(EC256_KEY, Algorithm::ES256, "e1"),
    ]})
    .to_string();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let v = verifier
        .verify(&sign(RSA2_KEY, Algorithm::RS256, "k2"), SystemTime::now())
        .await
        .unwrap();
    assert_eq!(v.claims.sub(), Some("k2"));
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    verifier
        .verify(&sign(EC256_KEY, Algorithm::ES256, "e1"), SystemTime::now())
        .await
        .unwrap();
    // The old key is gone with the rotation.
    assert_eq!(
        verifier
            .verify(&sign(RSA_KEY, Algorithm::RS256, "k1"), SystemTime::now())
            .await,
        Err(TokenError::UnknownKid("k1".into()))
    );
    let after_rotation = fetches.load(Ordering::SeqCst);

    // A flood of made-up kids costs at most one fetch per interval.
    let started = std::time::Instant::now();
    for i in 0..50 {
        let forged = Signer::with_secret(Algorithm::HS256, b"x")
            .unwrap()
            .kid(format!("made-up-{i}"))
            .lifetime(Duration::from_secs(60))
            .sign(SystemTime::now())
            .unwrap();
        assert!(matches!(
            verifier.verify(&forged, SystemTime::now()).await,
            Err(TokenError::UnknownKid(_))
        ));
    }
    let intervals = (started.elapsed().as_millis() / 300) as usize;
    assert!(
        fetches.load(Ordering::SeqCst) <= after_rotation + 1 + intervals,
        "{fetches:?}"
    );
    assert!(
        fetches.load(Ordering::SeqCst) < after_rotation + 10,
        "{fetches:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn jwks_url_must_be_https_and_the_certificate_must_verify() {
    let pki = ws_tls::test_certs::TestPki::generate();
    let tls = ws_tls::client_config(&pki.client_config()).unwrap();
    assert!(
        Verifier::build(
            Config::default(),
            Vec::new(),
            Some(("http://example.com/jwks".into(), tls.clone())),
            None
        )
        .is_err()
    );
    // A server whose certificate the client does not trust: the fetch fails, nothing verifies.
    let other = ws_tls::test_certs::TestPki::generate();
    let server_tls = ws_tls::server_config(&other.server_config()).unwrap();
    let server = Server::start(
        ServerConfig::new(vec![Binding::tls(
            "127.0.0.1:0".parse().unwrap(),
            server_tls,
        )]),
        KeyServer {
            document: Arc::new(Mutex::new(
                serde_json::json!({"keys": [jwk(RSA_KEY, Algorithm::RS256, "k1")]}).to_string(),
            )),
            fetches: Arc::new(AtomicUsize::new(0)),
        },
    )
    .await
    .unwrap();
    let url = format!(
        "https://localhost:{}/.well-known/jwks.json",
        server.local_addrs()[0].port()
    );
    let verifier = Verifier::build(Config::default(), Vec::new(), Some((url, tls)), None).unwrap();
    let err = verifier.load_jwks().await.unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    assert!(
        verifier
            .verify(&sign(RSA_KEY, Algorithm::RS256, "k1"), SystemTime::now())
            .await
            .is_err()
    );
    server.stop().await;
}
