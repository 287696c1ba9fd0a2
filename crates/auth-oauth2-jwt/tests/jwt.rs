//! JWT signing and verification, the algorithm list, the claim checks and the JWT items of
//! the attack list (each test fails when its defence is removed).

use std::time::{Duration, SystemTime};

use auth_oauth2_jwt::{Config, Key, KeySet, Signer, TokenError, jsonwebtoken::Algorithm};
use base64::Engine as _;

const RSA_KEY: &[u8] = include_bytes!("keys/rsa.key");
const RSA_PUB: &[u8] = include_bytes!("keys/rsa.pub");
const EC256_KEY: &[u8] = include_bytes!("keys/ec256.key");
const EC256_PUB: &[u8] = include_bytes!("keys/ec256.pub");
const EC384_KEY: &[u8] = include_bytes!("keys/ec384.key");
const EC384_PUB: &[u8] = include_bytes!("keys/ec384.pub");
const EC521_PUB: &[u8] = include_bytes!("keys/ec521.pub");
const ED_KEY: &[u8] = include_bytes!("keys/ed25519.key");
const ED_PUB: &[u8] = include_bytes!("keys/ed25519.pub");

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with any header, payload and signature bytes.
fn forge(header: &str, payload: &str, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(payload.as_bytes()),
        b64(signature)
    )
}

fn hs_keys(secret: &[u8]) -> KeySet {
    let mut keys = KeySet::new();
    keys.push(Key::secret(secret, &[Algorithm::HS256]).unwrap());
    keys
}

fn hs_signer() -> Signer {
    Signer::with_secret(Algorithm::HS256, b"secret-for-tests")
        .unwrap()
        .claim("sub", "alice")
        .lifetime(Duration::from_secs(600))
}

#[test]
fn every_supported_algorithm_signs_and_verifies() {
    let cases: Vec<(Algorithm, Signer, Key)> = vec![
        (
            Algorithm::HS256,
            Signer::with_secret(Algorithm::HS256, b"k").unwrap(),
            Key::secret(b"k", &[Algorithm::HS256]).unwrap(),
        ),
        (
            Algorithm::HS384,
            Signer::with_secret(Algorithm::HS384, b"k").unwrap(),
            Key::secret(b"k", &[Algorithm::HS384]).unwrap(),
        ),
        (
            Algorithm::HS512,
            Signer::with_secret(Algorithm::HS512, b"k").unwrap(),
            Key::secret(b"k", &[Algorithm::HS512]).unwrap(),
        ),
        (
            Algorithm::RS256,
            Signer::with_private_pem(Algorithm::RS256, RSA_KEY).unwrap(),
            Key::public_pem(RSA_PUB, &[Algorithm::RS256]).unwrap(),
        ),
        (
            Algorithm::RS384,
            Signer::with_private_pem(Algorithm::RS384, RSA_KEY).unwrap(),
            Key::public_pem(RSA_PUB, &[Algorithm::RS384]).unwrap(),
        ),
        (
            Algorithm::RS512,
            Signer::with_private_pem(Algorithm::RS512, RSA_KEY).unwrap(),
            Key::public_pem(RSA_PUB, &[Algorithm::RS512]).unwrap(),
        ),
        (
            Algorithm::PS256,
            Signer::with_private_pem(Algorithm::PS256, RSA_KEY).unwrap(),
            Key::public_pem(RSA_PUB, &[Algorithm::PS256]).unwrap(),
        ),
        (
            Algorithm::PS384,
            Signer::with_private_pem(Algorithm::PS384, RSA_KEY).unwrap(),
            Key::public_pem(RSA_PUB, &[Algorithm::PS384]).unwrap(),
        ),
        (
            Algorithm::PS512,
            Signer::with_private_pem(Algorithm::PS512, RSA_KEY).unwrap(),
            Key::public_pem(RSA_PUB, &[Algorithm::PS512]).unwrap(),
        ),
        (
            Algorithm::ES256,
            Signer::with_private_pem(Algorithm::ES256, EC256_KEY).unwrap(),
            Key::public_pem(EC256_PUB, &[]).unwrap(),
        ),
        (
            Algorithm::ES384,
            Signer::with_private_pem(Algorithm::ES384, EC384_KEY).unwrap(),
            Key::public_pem(EC384_PUB, &[]).unwrap(),
        ),
        (
            Algorithm::EdDSA,
            Signer::with_private_pem(Algorithm::EdDSA, ED_KEY).unwrap(),
            Key::public_pem(ED_PUB, &[]).unwrap(),
        ),
    ];
    for (alg, signer, key) in cases {
        let token = signer
            .claim("sub", "bob")
            .lifetime(Duration::from_secs(60))
            .sign(now())
            .unwrap();
        let mut keys = KeySet::new();
        keys.push(key);
        let v = keys
            .verify(&token, &Config::default(), now())
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(v.header.alg, alg);
        assert_eq!(v.claims.sub(), Some("bob"));
        // A flipped signature byte fails.
        let mut bad = token.clone().into_bytes();
        let i = bad.len() - 5;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).unwrap();
        assert!(
            keys.verify(&bad, &Config::default(), now()).is_err(),
            "{alg:?}"
        );
    }
}

#[test]
fn public_key_algorithm_is_inferred_from_the_key() {
    assert_eq!(
        Key::public_pem(RSA_PUB, &[]).unwrap().algorithms(),
        [Algorithm::RS256]
    );
    assert_eq!(
        Key::public_pem(EC256_PUB, &[]).unwrap().algorithms(),
        [Algorithm::ES256]
    );
    assert_eq!(
        Key::public_pem(EC384_PUB, &[]).unwrap().algorithms(),
        [Algorithm::ES384]
    );
    assert_eq!(
        Key::public_pem(ED_PUB, &[]).unwrap().algorithms(),
        [Algorithm::EdDSA]
    );
    assert!(
        Key::public_pem(RSA_KEY, &[]).is_err(),
        "a private key is not a verification key"
    );
    assert!(
        Key::public_pem(RSA_PUB, &[Algorithm::HS256]).is_err(),
        "HMAC does not take a PEM key"
    );
    assert!(Key::public_pem(RSA_PUB, &[Algorithm::RS256, Algorithm::ES256]).is_err());
}

#[test]
fn es512_is_refused_with_a_reason() {
    assert!(Key::public_pem(EC521_PUB, &[]).is_err());
    let token = forge(
        r#"{"alg":"ES512","typ":"JWT"}"#,
        r#"{"sub":"x","exp":1900000000}"#,
        &[1; 132],
    );
    let mut keys = KeySet::new();
    keys.push(Key::public_pem(EC256_PUB, &[]).unwrap());
    assert_eq!(
        keys.verify(&token, &Config::default(), now()),
        Err(TokenError::UnsupportedAlgorithm("ES512".into()))
    );
}

#[test]
fn attack_alg_none_is_refused() {
    let keys = hs_keys(b"secret-for-tests");
    for alg in ["none", "None", "NONE"] {
        let token = forge(
            &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            r#"{"sub":"admin","exp":1900000000}"#,
            b"",
        );
        assert_eq!(
            keys.verify(&token, &Config::default(), now()),
            Err(TokenError::AlgNone),
            "{alg}"
        );
    }
    // Without the trailing dot too.
    let bare = format!(
        "{}.{}",
        b64(br#"{"alg":"none"}"#),
        b64(br#"{"sub":"admin"}"#)
    );
    assert!(keys.verify(&bare, &Config::default(), now()).is_err());
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key_is_refused() {
    // The attacker knows the server's RSA public key and uses its PEM bytes as an HMAC secret.
    let forged = Signer::with_secret(Algorithm::HS256, RSA_PUB)
        .unwrap()
        .claim("sub", "admin")
        .lifetime(Duration::from_secs(600))
        .sign(now())
        .unwrap();
    let mut keys = KeySet::new();
    keys.push(Key::public_pem(RSA_PUB, &[Algorithm::RS256]).unwrap());
    assert_eq!(
        keys.verify(&forged, &Config::default(), now()),
        Err(TokenError::AlgorithmNotAllowed {
            alg: "HS256".into()
        })
    );
    // The genuine RS256 token passes, so the refusal is about the algorithm.
    let genuine = Signer::with_private_pem(Algorithm::RS256, RSA_KEY)
        .unwrap()
        .claim("sub", "alice")
        .lifetime(Duration::from_secs(600))
        .sign(now())
        .unwrap();
    assert!(keys.verify(&genuine, &Config::default(), now()).is_ok());
}

#[test]
fn attack_expired_token_is_refused() {
    let keys = hs_keys(b"secret-for-tests");
    let token = hs_signer().sign(now()).unwrap();
    let config = Config::default();
    // Within exp + leeway: accepted; one second past: refused.
    assert!(
        keys.verify(&token, &config, now() + Duration::from_secs(600 + 59))
            .is_ok()
    );
    assert!(matches!(
        keys.verify(&token, &config, now() + Duration::from_secs(600 + 60)),
        Err(TokenError::Expired { exp, .. }) if exp == 1_800_000_600
    ));
    let mut strict = Config::default();
    strict.leeway = Duration::ZERO;
    assert!(matches!(
        keys.verify(&token, &strict, now() + Duration::from_secs(600)),
        Err(TokenError::Expired { .. })
    ));
}

#[test]
fn attack_not_yet_valid_token_is_refused() {
    let keys = hs_keys(b"secret-for-tests");
    let token = hs_signer()
        .claim("nbf", 1_800_000_000u64 + 3600)
        .sign(now())
        .unwrap();
    assert!(matches!(
        keys.verify(&token, &Config::default(), now()),
        Err(TokenError::NotYetValid { nbf, .. }) if nbf == 1_800_003_600
    ));
    // An iat in the future is refused too.
    let future = Signer::with_secret(Algorithm::HS256, b"secret-for-tests")
        .unwrap()
        .claim("exp", 1_900_000_000u64)
        .claim("iat", 1_800_000_000u64 + 3600)
        .sign(now())
        .unwrap();
    assert!(matches!(
        keys.verify(&future, &Config::default(), now()),
        Err(TokenError::BadIssuedAt { .. })
    ));
}

#[test]
fn attack_wrong_issuer_is_refused() {
    let keys = hs_keys(b"secret-for-tests");
    let mut config = Config::default();
    config.issuers = vec!["https://issuer.example".into()];
    let good = hs_signer()
        .claim("iss", "https://issuer.example")
        .sign(now())
        .unwrap();
    let bad = hs_signer()
        .claim("iss", "https://evil.example")
        .sign(now())
        .unwrap();
    let none = hs_signer().sign(now()).unwrap();
    assert!(keys.verify(&good, &config, now()).is_ok());
    assert_eq!(
        keys.verify(&bad, &config, now()),
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(
        keys.verify(&none, &config, now()),
        Err(TokenError::WrongIssuer)
    );
}

#[test]
fn attack_wrong_audience_is_refused() {
    let keys = hs_keys(b"secret-for-tests");
    let mut config = Config::default();
    config.audiences = vec!["api".into()];
    let good = hs_signer()
        .claim("aud", serde_json::json!(["other", "api"]))
        .sign(now())
        .unwrap();
    let bad = hs_signer().claim("aud", "other").sign(now()).unwrap();
    let none = hs_signer().sign(now()).unwrap();
    assert!(keys.verify(&good, &config, now()).is_ok());
    assert_eq!(
        keys.verify(&bad, &config, now()),
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        keys.verify(&none, &config, now()),
        Err(TokenError::WrongAudience)
    );
    // A token for some audience is refused by a verifier that names none (RFC 7519 4.1.3).
    assert_eq!(
        keys.verify(&bad, &Config::default(), now()),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn attack_unknown_kid_is_refused() {
    let mut keys = KeySet::new();
    keys.push(
        Key::secret(b"one", &[Algorithm::HS256])
            .unwrap()
            .with_kid("k1"),
    );
    keys.push(
        Key::secret(b"two", &[Algorithm::HS256])
            .unwrap()
            .with_kid("k2"),
    );
    let signer = |secret: &[u8], kid: &str| {
        Signer::with_secret(Algorithm::HS256, secret)
            .unwrap()
            .kid(kid)
            .lifetime(Duration::from_secs(60))
            .sign(now())
            .unwrap()
    };
    assert!(
        keys.verify(&signer(b"two", "k2"), &Config::default(), now())
            .is_ok()
    );
    assert_eq!(
        keys.verify(&signer(b"two", "k3"), &Config::default(), now()),
        Err(TokenError::UnknownKid("k3".into()))
    );
    // A kid selects its key only: k2's secret under k1's id fails.
    assert_eq!(
        keys.verify(&signer(b"two", "k1"), &Config::default(), now()),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn attack_oversized_token_is_refused_before_decoding() {
    let keys = hs_keys(b"secret-for-tests");
    let big = "x".repeat(5000);
    let token = hs_signer().claim("pad", big.as_str()).sign(now()).unwrap();
    let mut config = Config::default();
    config.max_token_len = 4096;
    assert!(matches!(
        keys.verify(&token, &config, now()),
        Err(TokenError::TooLarge { max: 4096, .. })
    ));
    // Not even decoded: garbage of the same size gives the same answer.
    assert!(matches!(
        keys.verify(&"!".repeat(9000), &Config::default(), now()),
        Err(TokenError::TooLarge { .. })
    ));
    config.max_token_len = 16 * 1024;
    assert!(keys.verify(&token, &config, now()).is_ok());
}

#[test]
fn required_claims_and_crit_headers() {
    let keys = hs_keys(b"secret-for-tests");
    let no_exp = Signer::with_secret(Algorithm::HS256, b"secret-for-tests")
        .unwrap()
        .claim("sub", "a")
        .sign(now())
        .unwrap();
    assert_eq!(
        keys.verify(&no_exp, &Config::default(), now()),
        Err(TokenError::MissingClaim("exp".into()))
    );
    let mut config = Config::default();
    config.required_claims = vec!["exp".into(), "scope".into()];
    let token = hs_signer().sign(now()).unwrap();
    assert_eq!(
        keys.verify(&token, &config, now()),
        Err(TokenError::MissingClaim("scope".into()))
    );
    let crit = Signer::with_secret(Algorithm::HS256, b"secret-for-tests")
        .unwrap()
        .header("crit", serde_json::json!(["exp"]))
        .lifetime(Duration::from_secs(60))
        .sign(now())
        .unwrap();
    assert_eq!(
        keys.verify(&crit, &Config::default(), now()),
        Err(TokenError::CriticalHeader)
    );
    let mut config = Config::default();
    config.max_age = Some(Duration::from_secs(60));
    assert!(matches!(
        keys.verify(&token, &config, now() + Duration::from_secs(300)),
        Err(TokenError::BadIssuedAt { .. })
    ));
}

#[test]
fn signer_reuses_its_token_until_refresh_after() {
    let signer = hs_signer().refresh_after(Duration::from_secs(40 * 60));
    let first = signer.token(now(), false).unwrap();
    assert_eq!(
        signer
            .token(now() + Duration::from_secs(39 * 60), false)
            .unwrap(),
        first
    );
    let second = signer
        .token(now() + Duration::from_secs(40 * 60), false)
        .unwrap();
    assert_ne!(second, first);
    assert_ne!(
        signer
            .token(now() + Duration::from_secs(40 * 60 + 1), true)
            .unwrap(),
        second
    );
    // Custom header and payload keys reach the token.
    let token = hs_signer()
        .header("x5t", "thumb")
        .claim("jti", "id-1")
        .sign(now())
        .unwrap();
    let v = hs_keys(b"secret-for-tests")
        .verify(&token, &Config::default(), now())
        .unwrap();
    assert_eq!(
        v.header.raw.get("x5t").and_then(|v| v.as_str()),
        Some("thumb")
    );
    assert_eq!(v.claims.str("jti"), Some("id-1"));
    assert_eq!(
        v.claims.get("iat").and_then(|v| v.as_u64()),
        Some(1_800_000_000)
    );
}

#[test]
fn secrets_are_not_in_debug_output() {
    let signer = Signer::with_secret(Algorithm::HS256, b"super-secret-value").unwrap();
    let key = Key::secret(b"super-secret-value", &[Algorithm::HS256]).unwrap();
    let text = format!("{signer:?} {key:?} {:?}", hs_keys(b"super-secret-value"));
    assert!(!text.contains("super-secret-value"), "{text}");
    assert!(
        !text.contains(&format!("{:?}", b"super-secret-value")),
        "{text}"
    );
}
