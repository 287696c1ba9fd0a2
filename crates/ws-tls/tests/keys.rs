//! Private-key formats: PKCS#8, SEC1, PKCS#1 (RSA), encrypted PKCS#8 (openssl-made fixtures and
//! keys encrypted in the test), and the encryptions that are refused with a way out.

mod common;

use std::path::{Path, PathBuf};

use common::{connect, served_cert};
use pkcs8::der::pem::LineEnding;
use rustls_pki_types::PrivateKeyDer;
use ws_tls::test_certs::TestPki;
use ws_tls::{Error, KeyPassword, ServerTlsConfig, client_config, load_private_key, server_config};

const PASSWORD: &str = "wskit-test";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn password() -> KeyPassword {
    KeyPassword::new(PASSWORD)
}

/// Serves a self-signed certificate made for `key_der`, with the key read from `key_file`.
fn handshake_with_key_file(pki: &TestPki, key_der: &PrivateKeyDer<'_>, key_file: &Path) {
    let key_pair = rcgen::KeyPair::try_from(key_der).expect("rcgen reads the key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key_pair)
        .unwrap();
    let cert_file = pki.dir().join("for-fixture.pem");
    std::fs::write(&cert_file, cert.pem()).unwrap();

    let mut scfg = ServerTlsConfig::new(&cert_file, key_file);
    scfg.key_password = Some(password());
    let server = server_config(&scfg).unwrap();
    let mut ccfg = pki.client_config();
    ccfg.ca_file = Some(cert_file);
    let client = client_config(&ccfg).unwrap();
    let pair = connect(&client, &server, "localhost").unwrap();
    assert_eq!(served_cert(&pair), cert.der().to_vec());
}

#[test]
fn openssl_pbes2_aes256_key_decrypts_and_serves_a_handshake() {
    let pki = TestPki::generate();
    let path = fixture("pbes2-aes256-p256.key");
    let key = load_private_key(&path, Some(&password())).unwrap();
    assert!(matches!(key, PrivateKeyDer::Pkcs8(_)));
    handshake_with_key_file(&pki, &key, &path);
}

#[test]
fn openssl_pbes2_scrypt_key_decrypts() {
    let key = load_private_key(&fixture("pbes2-scrypt-p256.key"), Some(&password())).unwrap();
    assert!(
        ws_tls::crypto_provider()
            .key_provider
            .load_private_key(key)
            .is_ok()
    );
}

#[test]
fn key_encrypted_in_test_decrypts_and_wrong_password_is_reported() {
    let pki = TestPki::generate();
    let plain = load_private_key(&pki.server.key_file, None).unwrap();
    let info = pkcs8::PrivateKeyInfo::try_from(plain.secret_der()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, b"saltsalt", &[7u8; 16])
            .unwrap();
    let encrypted = info.encrypt_with_params(params, PASSWORD).unwrap();
    let pem = encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .unwrap();
    let key_file = pki.dir().join("server-encrypted.key");
    std::fs::write(&key_file, pem.as_bytes()).unwrap();

    let decrypted = load_private_key(&key_file, Some(&password())).unwrap();
    assert_eq!(decrypted.secret_der(), plain.secret_der());

    // The same file as a server key, next to the CA-signed certificate.
    let mut scfg = ServerTlsConfig::new(&pki.server.cert_file, &key_file);
    scfg.key_password = Some(password());
    let server = server_config(&scfg).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    assert_eq!(
        served_cert(&connect(&client, &server, "localhost").unwrap()),
        pki.server.cert_der
    );

    scfg.key_password = Some(KeyPassword::new("not the password"));
    let err = server_config(&scfg).unwrap_err();
    assert!(
        matches!(&err, Error::EncryptedKey { path, reason } if *path == key_file && reason.contains("wrong password")),
        "{err}"
    );
}

#[test]
fn encrypted_key_without_password_says_so_and_names_the_file() {
    let path = fixture("pbes2-aes256-p256.key");
    let err = load_private_key(&path, None).unwrap_err();
    assert!(matches!(err, Error::EncryptedKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("pbes2-aes256-p256.key") && msg.contains("no key password"),
        "{msg}"
    );
}

#[test]
fn pbes1_encryption_is_refused_with_openssl_instructions() {
    let err = load_private_key(&fixture("pbes1-3des-p256.key"), Some(&password())).unwrap_err();
    assert!(matches!(err, Error::EncryptedKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("openssl pkey") && msg.contains("pbes1-3des-p256.key"),
        "{msg}"
    );
}

#[test]
fn legacy_openssl_encrypted_pem_is_refused_with_openssl_instructions() {
    let err =
        load_private_key(&fixture("legacy-encrypted-p256.key"), Some(&password())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::EncryptedKey { .. }), "{err:?}");
    assert!(
        msg.contains("Proc-Type") && msg.contains("openssl pkcs8"),
        "{msg}"
    );
}

#[test]
fn pkcs8_sec1_and_pkcs1_keys_are_read_and_usable() {
    let pki = TestPki::generate();
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let p8 = pki.dir().join("p384.key");
    std::fs::write(&p8, p384.serialize_pem()).unwrap();

    let cases = [
        (p8, "PKCS#8"),
        (fixture("sec1-p256.key"), "SEC1"),
        (fixture("rsa2048-pkcs1.key"), "PKCS#1"),
    ];
    for (path, form) in cases {
        let key = load_private_key(&path, None).unwrap();
        let got = match &key {
            PrivateKeyDer::Pkcs8(_) => "PKCS#8",
            PrivateKeyDer::Sec1(_) => "SEC1",
            PrivateKeyDer::Pkcs1(_) => "PKCS#1",
            _ => "other",
        };
        assert_eq!(got, form, "{}", path.display());
        assert!(
            ws_tls::crypto_provider()
                .key_provider
                .load_private_key(key)
                .is_ok(),
            "{form} key not usable"
        );
    }
}
