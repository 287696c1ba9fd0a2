//! Real TLS handshakes (in memory) between configs built by ws-tls.

mod common;

use common::{connect, served_cert};
use rustls::{CertificateError, Error as TlsError};
use ws_tls::test_certs::TestPki;
use ws_tls::{
    ClientAuth, ClientTlsConfig, ServerTlsConfig, SniCert, TlsVersion, client_config, server_config,
};

#[test]
fn pem_files_give_a_working_session_by_host_name() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    let pair = connect(&client, &server, "localhost").unwrap();
    assert_eq!(served_cert(&pair), pki.server.cert_der);
    assert_eq!(
        pair.client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(pair.server.server_name(), Some("localhost"));
}

#[test]
fn client_connects_by_ip_address_without_sni() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    let pair = connect(&client, &server, "127.0.0.1").unwrap();
    assert_eq!(pair.server.server_name(), None);
    assert_eq!(served_cert(&pair), pki.server.cert_der);
}

#[test]
fn client_trusting_another_ca_rejects_the_server() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap();
    let client = client_config(&other.client_config()).unwrap();
    let err = connect(&client, &server, "localhost").unwrap_err();
    assert!(
        matches!(
            err.client(),
            Some(TlsError::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
}

#[test]
fn default_client_with_mozilla_roots_rejects_a_private_ca() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap();
    let client = client_config(&ClientTlsConfig::default()).unwrap();
    let err = connect(&client, &server, "localhost").unwrap_err();
    assert!(
        matches!(
            err.client(),
            Some(TlsError::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
}

#[test]
fn client_rejects_a_certificate_for_another_name() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    let err = connect(&client, &server, "example.com").unwrap_err();
    assert!(
        matches!(
            err.client(),
            Some(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{err:?}"
    );
}

#[test]
fn ca_file_and_mozilla_roots_together_trust_the_private_ca() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap();
    let mut cfg = pki.client_config();
    cfg.webpki_roots = true;
    let client = client_config(&cfg).unwrap();
    assert!(connect(&client, &server, "localhost").is_ok());
}

#[test]
fn sni_picks_the_certificate_for_each_host_name() {
    let pki = TestPki::generate();
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["b.test"]);
    let mut cfg = pki.server_config();
    cfg.sni = vec![
        SniCert::new("a.test", &a.cert_file, &a.key_file),
        SniCert::combined("B.Test", &b.combined_file),
    ];
    let server = server_config(&cfg).unwrap();
    let client = client_config(&pki.client_config()).unwrap();

    let pair = connect(&client, &server, "a.test").unwrap();
    assert_eq!(served_cert(&pair), a.cert_der);
    let pair = connect(&client, &server, "b.test").unwrap();
    assert_eq!(served_cert(&pair), b.cert_der);
    // Host names compare case-insensitively.
    let pair = connect(&client, &server, "A.TEST").unwrap();
    assert_eq!(served_cert(&pair), a.cert_der);
    // Unknown name and no SNI at all: the default certificate.
    let pair = connect(&client, &server, "localhost").unwrap();
    assert_eq!(served_cert(&pair), pki.server.cert_der);
    let pair = connect(&client, &server, "127.0.0.1").unwrap();
    assert_eq!(served_cert(&pair), pki.server.cert_der);
}

#[test]
fn sni_without_default_certificate_refuses_unknown_names() {
    let pki = TestPki::generate();
    let a = pki.issue("a", &["a.test"]);
    let mut cfg = ServerTlsConfig::default();
    cfg.sni = vec![SniCert::new("a.test", &a.cert_file, &a.key_file)];
    let server = server_config(&cfg).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    assert_eq!(
        served_cert(&connect(&client, &server, "a.test").unwrap()),
        a.cert_der
    );
    let err = connect(&client, &server, "127.0.0.1").unwrap_err();
    assert!(err.server().is_some(), "{err:?}");
}

#[test]
fn alpn_negotiates_the_common_protocol() {
    let pki = TestPki::generate();
    let mut scfg = pki.server_config();
    scfg.alpn = vec!["h2".into(), "http/1.1".into()];
    let server = server_config(&scfg).unwrap();
    let mut ccfg = pki.client_config();
    ccfg.alpn = vec!["mqtt".into(), "http/1.1".into()];
    let client = client_config(&ccfg).unwrap();
    let pair = connect(&client, &server, "localhost").unwrap();
    assert_eq!(pair.client.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(pair.server.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn alpn_without_overlap_fails_and_no_alpn_from_client_is_accepted() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap(); // offers http/1.1
    let mut ccfg = pki.client_config();
    ccfg.alpn = vec!["mqtt".into()];
    let err = connect(&client_config(&ccfg).unwrap(), &server, "localhost").unwrap_err();
    assert!(
        matches!(err.server(), Some(TlsError::NoApplicationProtocol)),
        "{err:?}"
    );
    let pair = connect(
        &client_config(&pki.client_config()).unwrap(),
        &server,
        "localhost",
    )
    .unwrap();
    assert_eq!(pair.server.alpn_protocol(), None);
}

#[test]
fn required_client_certificate_missing_fails() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config_with_client_auth()).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    let err = connect(&client, &server, "localhost").unwrap_err();
    assert!(
        matches!(err.server(), Some(TlsError::NoCertificatesPresented)),
        "{err:?}"
    );
}

#[test]
fn required_client_certificate_present_is_verified_and_visible_to_the_server() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config_with_client_auth()).unwrap();
    let client = client_config(&pki.client_config_with_cert()).unwrap();
    let pair = connect(&client, &server, "localhost").unwrap();
    let presented = pair.server.peer_certificates().expect("client certificate");
    assert_eq!(presented[0].as_ref(), pki.client.cert_der.as_slice());
}

#[test]
fn client_certificate_from_another_ca_is_rejected() {
    let pki = TestPki::generate();
    let other = TestPki::generate();
    let server = server_config(&pki.server_config_with_client_auth()).unwrap();
    let mut ccfg = pki.client_config();
    ccfg.cert_file = Some(other.client.combined_file.clone());
    let client = client_config(&ccfg).unwrap();
    let err = connect(&client, &server, "localhost").unwrap_err();
    assert!(
        matches!(
            err.server(),
            Some(TlsError::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ),
        "{err:?}"
    );
}

#[test]
fn optional_client_certificate_accepts_clients_with_and_without_one() {
    let pki = TestPki::generate();
    let mut scfg = pki.server_config();
    scfg.client_auth = Some(ClientAuth::optional(&pki.ca.cert_file));
    let server = server_config(&scfg).unwrap();

    let anonymous = client_config(&pki.client_config()).unwrap();
    let pair = connect(&anonymous, &server, "localhost").unwrap();
    assert!(pair.server.peer_certificates().is_none());

    let with_cert = client_config(&pki.client_config_with_cert()).unwrap();
    let pair = connect(&with_cert, &server, "localhost").unwrap();
    assert!(pair.server.peer_certificates().is_some());
}

#[test]
fn danger_accept_invalid_certs_accepts_a_self_signed_certificate() {
    let pki = TestPki::generate();
    let ck = rcgen::generate_simple_self_signed(vec!["dev.local".to_owned()]).unwrap();
    let combined = pki.dir().join("self-signed.pem");
    std::fs::write(
        &combined,
        format!("{}{}", ck.cert.pem(), ck.signing_key.serialize_pem()),
    )
    .unwrap();
    let server = server_config(&ServerTlsConfig::combined(&combined)).unwrap();

    let strict = client_config(&pki.client_config()).unwrap();
    assert!(connect(&strict, &server, "localhost").is_err());

    let mut ccfg = ClientTlsConfig::default();
    ccfg.danger_accept_invalid_certs = true;
    let dangerous = client_config(&ccfg).unwrap();
    // Wrong name and unknown issuer: accepted anyway.
    let pair = connect(&dangerous, &server, "localhost").unwrap();
    assert_eq!(served_cert(&pair), ck.cert.der().to_vec());
}

#[test]
fn combined_pem_files_work_on_both_sides() {
    let pki = TestPki::generate();
    let mut scfg = ServerTlsConfig::combined(&pki.server.combined_file);
    scfg.client_auth = Some(ClientAuth::required(&pki.ca.cert_file));
    let server = server_config(&scfg).unwrap();
    let mut ccfg = pki.client_config();
    ccfg.cert_file = Some(pki.client.combined_file.clone());
    let client = client_config(&ccfg).unwrap();
    let pair = connect(&client, &server, "localhost").unwrap();
    assert_eq!(served_cert(&pair), pki.server.cert_der);
    assert!(pair.server.peer_certificates().is_some());
}

#[test]
fn chain_file_with_intermediate_is_served_whole() {
    // A combined PEM in the common "key, leaf, CA" order: the whole chain goes on the wire.
    let pki = TestPki::generate();
    let chain = pki.dir().join("chain.pem");
    std::fs::write(
        &chain,
        format!(
            "{}{}{}",
            pki.server.key_pem, pki.server.cert_pem, pki.ca.cert_pem
        ),
    )
    .unwrap();
    let server = server_config(&ServerTlsConfig::combined(&chain)).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    let pair = connect(&client, &server, "localhost").unwrap();
    let presented = pair.client.peer_certificates().unwrap();
    assert_eq!(presented.len(), 2);
    assert_eq!(presented[1].as_ref(), pki.ca.cert_der.as_slice());
}

#[test]
fn tls13_minimum_refuses_a_tls12_only_peer() {
    let pki = TestPki::generate();
    let mut scfg = pki.server_config();
    scfg.min_version = TlsVersion::Tls13;
    let server = server_config(&scfg).unwrap();

    // A TLS 1.2-only client, built directly with rustls on the same provider.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.cert_der.clone().into()).unwrap();
    let tls12_client = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(ws_tls::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    assert!(connect(&tls12_client, &server, "localhost").is_err());

    // The default server (minimum 1.2) accepts it and negotiates 1.2.
    let server12 = server_config(&pki.server_config()).unwrap();
    let pair = connect(&tls12_client, &server12, "localhost").unwrap();
    assert_eq!(
        pair.server.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
}

#[test]
fn disabled_sni_sends_no_server_name() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap();
    let mut ccfg = pki.client_config();
    ccfg.enable_sni = false;
    let pair = connect(&client_config(&ccfg).unwrap(), &server, "localhost").unwrap();
    assert_eq!(pair.server.server_name(), None);
}

#[test]
fn second_connection_resumes_the_session() {
    let pki = TestPki::generate();
    let server = server_config(&pki.server_config()).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    let first = common::connect_as_is(&client, &server, "localhost").unwrap();
    assert_eq!(
        first.client.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    let second = common::connect_as_is(&client, &server, "localhost").unwrap();
    assert_eq!(
        second.client.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
}

#[test]
fn cipher_suite_and_group_lists_restrict_the_server() {
    let pki = TestPki::generate();
    let mut scfg = pki.server_config();
    scfg.cipher_suites = vec!["tls13_chacha20_poly1305_sha256".into()];
    scfg.kx_groups = vec!["secp384r1".into()];
    let server = server_config(&scfg).unwrap();
    let client = client_config(&pki.client_config()).unwrap();
    let pair = connect(&client, &server, "localhost").unwrap();
    assert_eq!(
        pair.server.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    );
    assert_eq!(
        pair.server.negotiated_key_exchange_group().unwrap().name(),
        rustls::NamedGroup::secp384r1
    );

    // A client without that suite finds nothing in common.
    let mut aes_only = (*ws_tls::crypto_provider()).clone();
    aes_only
        .cipher_suites
        .retain(|s| format!("{:?}", s.suite()).contains("AES"));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.cert_der.clone().into()).unwrap();
    let aes_client = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(aes_only))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    assert!(connect(&aes_client, &server, "localhost").is_err());
    // The unrestricted server still takes it.
    let open = server_config(&pki.server_config()).unwrap();
    connect(&aes_client, &open, "localhost").unwrap();

    // Unknown names are refused, and the message lists what exists.
    scfg.cipher_suites = vec!["TLS_RSA_WITH_RC4_128_MD5".into()];
    let e = server_config(&scfg).unwrap_err();
    assert!(
        matches!(&e, ws_tls::Error::UnknownCipherSuite { name, .. } if name == "TLS_RSA_WITH_RC4_128_MD5"),
        "{e:?}"
    );
    assert!(e.to_string().contains("TLS13_AES_128_GCM_SHA256"), "{e}");
    scfg.cipher_suites.clear();
    scfg.kx_groups = vec!["ffdhe9999".into()];
    let e = server_config(&scfg).unwrap_err();
    assert!(e.to_string().contains("X25519"), "{e}");
}

#[test]
fn verify_callback_accepts_or_refuses_a_chain_the_ca_accepted() {
    let pki = TestPki::generate();
    let client = client_config(&pki.client_config_with_cert()).unwrap();
    let expected = pki.client.cert_der.clone();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut scfg = pki.server_config_with_client_auth();
    let log = seen.clone();
    let auth = scfg.client_auth.as_mut().unwrap();
    auth.verify = Some(ws_tls::VerifyClient::new(move |end_entity, _| {
        log.lock().unwrap().push(end_entity.to_vec());
        end_entity.as_ref() == expected.as_slice()
    }));
    let server = server_config(&scfg).unwrap();
    connect(&client, &server, "localhost").unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);

    // The same chain refused by the application's check.
    let auth = scfg.client_auth.as_mut().unwrap();
    auth.verify = Some(ws_tls::VerifyClient::new(|_, _| false));
    let server = server_config(&scfg).unwrap();
    let err = connect(&client, &server, "localhost").unwrap_err();
    assert!(
        matches!(
            err.server(),
            Some(TlsError::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure
            ))
        ),
        "{err:?}"
    );
}
