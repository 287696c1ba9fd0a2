//! Configuration errors name the file and the problem.

use std::path::{Path, PathBuf};

use ws_tls::test_certs::TestPki;
use ws_tls::{
    ClientAuth, ClientTlsConfig, Error, ServerTlsConfig, SniCert, client_config, load_certs,
    server_config,
};

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn assert_names(err: &Error, path: &Path) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn missing_certificate_file_is_a_read_error_naming_it() {
    let pki = TestPki::generate();
    let missing = pki.dir().join("nope.pem");
    let err = server_config(&ServerTlsConfig::new(&missing, &pki.server.key_file)).unwrap_err();
    assert!(
        matches!(&err, Error::Read { path, .. } if *path == missing),
        "{err:?}"
    );
    assert_names(&err, &missing);
}

#[test]
fn missing_key_file_is_a_read_error_naming_it() {
    let pki = TestPki::generate();
    let missing = pki.dir().join("nope.key");
    let err = server_config(&ServerTlsConfig::new(&pki.server.cert_file, &missing)).unwrap_err();
    assert!(
        matches!(&err, Error::Read { path, .. } if *path == missing),
        "{err:?}"
    );
}

#[test]
fn file_without_certificate_says_so() {
    let pki = TestPki::generate();
    // A key file given as the certificate.
    let err = server_config(&ServerTlsConfig::new(
        &pki.server.key_file,
        &pki.server.key_file,
    ))
    .unwrap_err();
    assert!(
        matches!(&err, Error::NoCertificate { path } if *path == pki.server.key_file),
        "{err:?}"
    );
    assert!(err.to_string().contains("no certificate found"), "{err}");
    // A DER or text file.
    let text = write(pki.dir(), "notes.txt", "hello\n");
    assert!(matches!(
        load_certs(&text),
        Err(Error::NoCertificate { .. })
    ));
}

#[test]
fn file_without_key_says_so() {
    let pki = TestPki::generate();
    // Certificate-only file used as a combined PEM.
    let err = server_config(&ServerTlsConfig::combined(&pki.server.cert_file)).unwrap_err();
    assert!(
        matches!(&err, Error::NoPrivateKey { path } if *path == pki.server.cert_file),
        "{err:?}"
    );
    assert!(err.to_string().contains("no private key found"), "{err}");
}

#[test]
fn two_keys_in_one_file_are_ambiguous() {
    let pki = TestPki::generate();
    let both = write(
        pki.dir(),
        "two-keys.pem",
        &format!(
            "{}{}{}",
            pki.server.key_pem, pki.client.key_pem, pki.server.cert_pem
        ),
    );
    let err = server_config(&ServerTlsConfig::combined(&both)).unwrap_err();
    assert!(
        matches!(err, Error::MultiplePrivateKeys { count: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn key_of_another_certificate_is_a_mismatch_naming_both_files() {
    let pki = TestPki::generate();
    let err = server_config(&ServerTlsConfig::new(
        &pki.server.cert_file,
        &pki.client.key_file,
    ))
    .unwrap_err();
    assert!(
        matches!(&err, Error::KeyMismatch { cert, key } if *cert == pki.server.cert_file && *key == pki.client.key_file),
        "{err:?}"
    );
    assert_names(&err, &pki.server.cert_file);
    assert_names(&err, &pki.client.key_file);
}

#[test]
fn truncated_pem_is_bad_pem() {
    let pki = TestPki::generate();
    let cut = &pki.server.cert_pem[..pki.server.cert_pem.len() / 2];
    let path = write(pki.dir(), "truncated.pem", cut);
    let err = load_certs(&path).unwrap_err();
    assert!(matches!(err, Error::BadPem { .. }), "{err:?}");
    assert_names(&err, &path);
    assert!(
        err.to_string().contains("\"CERTIFICATE\" has no END line"),
        "{err}"
    );
}

#[test]
fn corrupt_base64_is_bad_pem() {
    let pki = TestPki::generate();
    let path = write(
        pki.dir(),
        "corrupt.pem",
        "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
    );
    assert!(matches!(load_certs(&path), Err(Error::BadPem { .. })));
}

#[test]
fn garbage_inside_a_certificate_section_is_a_bad_certificate() {
    let pki = TestPki::generate();
    // Valid PEM, but the DER is not a certificate: caught when the CA file is loaded.
    let path = write(
        pki.dir(),
        "garbage-ca.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let mut ccfg = pki.client_config();
    ccfg.ca_file = Some(path.clone());
    let err = client_config(&ccfg).unwrap_err();
    assert!(
        matches!(&err, Error::BadCertificate { path: p, .. } if *p == path),
        "{err:?}"
    );

    let mut scfg = pki.server_config();
    scfg.client_auth = Some(ClientAuth::required(&path));
    let err = server_config(&scfg).unwrap_err();
    assert!(
        matches!(&err, Error::BadCertificate { path: p, .. } if *p == path),
        "{err:?}"
    );
}

#[test]
fn no_certificate_configured_is_invalid() {
    let err = server_config(&ServerTlsConfig::default()).unwrap_err();
    assert!(matches!(err, Error::NoCertificateConfigured), "{err:?}");
}

#[test]
fn sni_entry_must_be_a_dns_name_covered_by_its_certificate() {
    let pki = TestPki::generate();
    let a = pki.issue("a", &["a.test"]);

    let mut cfg = pki.server_config();
    cfg.sni = vec![SniCert::new("not a host!", &a.cert_file, &a.key_file)];
    assert!(matches!(
        server_config(&cfg),
        Err(Error::SniHostNotDnsName { host }) if host == "not a host!"
    ));

    cfg.sni = vec![SniCert::new("b.test", &a.cert_file, &a.key_file)];
    let err = server_config(&cfg).unwrap_err();
    assert!(
        matches!(&err, Error::CertificateNotForHost { path, host } if *path == a.cert_file && host == "b.test"),
        "{err:?}"
    );

    cfg.sni = vec![
        SniCert::new("a.test", &a.cert_file, &a.key_file),
        SniCert::combined("A.TEST", &a.combined_file),
    ];
    assert!(matches!(
        server_config(&cfg),
        Err(Error::SniHostTwice { host }) if host == "a.test"
    ));
}

#[test]
fn empty_alpn_entry_is_invalid_on_both_sides() {
    let pki = TestPki::generate();
    let mut scfg = pki.server_config();
    scfg.alpn = vec![String::new()];
    assert!(
        matches!(server_config(&scfg), Err(Error::BadAlpn { protocol }) if protocol.is_empty())
    );
    let mut ccfg = pki.client_config();
    ccfg.alpn = vec!["x".repeat(256)];
    assert!(
        matches!(client_config(&ccfg), Err(Error::BadAlpn { protocol }) if protocol.len() == 256)
    );
}

#[test]
fn client_without_any_trust_root_is_invalid() {
    let mut ccfg = ClientTlsConfig::default();
    ccfg.webpki_roots = false;
    let err = client_config(&ccfg).unwrap_err();
    assert!(err.to_string().contains("no trust roots"), "{err}");
}

#[test]
fn client_key_without_client_certificate_is_invalid() {
    let pki = TestPki::generate();
    let mut ccfg = pki.client_config();
    ccfg.key_file = Some(pki.client.key_file.clone());
    assert!(matches!(
        client_config(&ccfg),
        Err(Error::ClientKeyWithoutCertificate)
    ));
}

#[test]
fn client_certificate_with_wrong_key_is_a_mismatch() {
    let pki = TestPki::generate();
    let mut ccfg = pki.client_config_with_cert();
    ccfg.key_file = Some(pki.server.key_file.clone());
    assert!(matches!(
        client_config(&ccfg),
        Err(Error::KeyMismatch { .. })
    ));
}

#[test]
fn missing_client_ca_file_is_a_read_error() {
    let pki = TestPki::generate();
    let missing = pki.dir().join("no-ca.pem");
    let mut scfg = pki.server_config();
    scfg.client_auth = Some(ClientAuth::required(&missing));
    assert!(matches!(server_config(&scfg), Err(Error::Read { path, .. }) if path == missing));
    let mut ccfg = pki.client_config();
    ccfg.ca_file = Some(missing.clone());
    assert!(matches!(client_config(&ccfg), Err(Error::Read { path, .. }) if path == missing));
}
