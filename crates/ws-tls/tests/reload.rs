//! Certificate reload without restart: files replaced on disk, `reload()`, new handshakes see the
//! new certificate; a failed reload keeps the old one.

mod common;

use common::{connect, served_cert};
use ws_tls::test_certs::TestPki;
use ws_tls::{ReloadableServerConfig, ServerTlsConfig, SniCert, client_config};

#[test]
fn reload_swaps_the_certificate_for_new_handshakes() {
    let pki = TestPki::generate();
    let cert_file = pki.dir().join("live.pem");
    let key_file = pki.dir().join("live.key");
    std::fs::write(&cert_file, &pki.server.cert_pem).unwrap();
    std::fs::write(&key_file, &pki.server.key_pem).unwrap();

    let reloadable =
        ReloadableServerConfig::new(ServerTlsConfig::new(&cert_file, &key_file)).unwrap();
    let server = reloadable.server_config();
    let client = client_config(&pki.client_config()).unwrap();

    // A connection established before the reload.
    let mut before = connect(&client, &server, "localhost").unwrap();
    assert_eq!(served_cert(&before), pki.server.cert_der);

    let renewed = pki.issue("renewed", &["localhost", "127.0.0.1"]);
    std::fs::write(&cert_file, &renewed.cert_pem).unwrap();
    std::fs::write(&key_file, &renewed.key_pem).unwrap();
    // Not reloaded yet: still the old certificate.
    assert_eq!(
        served_cert(&connect(&client, &server, "localhost").unwrap()),
        pki.server.cert_der
    );

    reloadable.reload().unwrap();
    // The same Arc<ServerConfig> (as held by a running acceptor) now serves the new one.
    assert_eq!(
        served_cert(&connect(&client, &server, "localhost").unwrap()),
        renewed.cert_der
    );
    assert_eq!(
        reloadable
            .resolver()
            .default_certificate()
            .unwrap()
            .as_ref(),
        renewed.cert_der.as_slice()
    );
    // The old connection keeps working.
    use std::io::{Read, Write};
    before.client.writer().write_all(b"still here").unwrap();
    common::pump(&mut before).unwrap();
    let mut buf = [0u8; 10];
    before.server.reader().read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");
}

#[test]
fn failed_reload_keeps_serving_the_previous_certificate() {
    let pki = TestPki::generate();
    let cert_file = pki.dir().join("live.pem");
    let key_file = pki.dir().join("live.key");
    std::fs::write(&cert_file, &pki.server.cert_pem).unwrap();
    std::fs::write(&key_file, &pki.server.key_pem).unwrap();
    let reloadable =
        ReloadableServerConfig::new(ServerTlsConfig::new(&cert_file, &key_file)).unwrap();
    let server = reloadable.server_config();
    let client = client_config(&pki.client_config()).unwrap();

    // Half-finished rotation: new certificate written, key still the old one.
    let renewed = pki.issue("renewed", &["localhost"]);
    std::fs::write(&cert_file, &renewed.cert_pem).unwrap();
    let err = reloadable.reload().unwrap_err();
    assert!(matches!(err, ws_tls::Error::KeyMismatch { .. }), "{err:?}");
    assert_eq!(
        served_cert(&connect(&client, &server, "localhost").unwrap()),
        pki.server.cert_der
    );

    // Key file gone: still the previous certificate.
    std::fs::remove_file(&key_file).unwrap();
    assert!(matches!(
        reloadable.reload().unwrap_err(),
        ws_tls::Error::Read { .. }
    ));
    assert_eq!(
        served_cert(&connect(&client, &server, "localhost").unwrap()),
        pki.server.cert_der
    );

    // Rotation completed: the reload goes through.
    std::fs::write(&key_file, &renewed.key_pem).unwrap();
    reloadable.reload().unwrap();
    assert_eq!(
        served_cert(&connect(&client, &server, "localhost").unwrap()),
        renewed.cert_der
    );
}

#[test]
fn reload_also_swaps_sni_certificates() {
    let pki = TestPki::generate();
    let a_file = pki.dir().join("a-live.pem");
    let a1 = pki.issue("a1", &["a.test"]);
    std::fs::write(&a_file, std::fs::read(&a1.combined_file).unwrap()).unwrap();
    let mut cfg = pki.server_config();
    cfg.sni = vec![SniCert::combined("a.test", &a_file)];
    let reloadable = ReloadableServerConfig::new(cfg).unwrap();
    let server = reloadable.server_config();
    let client = client_config(&pki.client_config()).unwrap();
    assert_eq!(
        served_cert(&connect(&client, &server, "a.test").unwrap()),
        a1.cert_der
    );

    let a2 = pki.issue("a2", &["a.test"]);
    std::fs::write(&a_file, std::fs::read(&a2.combined_file).unwrap()).unwrap();
    reloadable.reload().unwrap();
    assert_eq!(
        served_cert(&connect(&client, &server, "a.test").unwrap()),
        a2.cert_der
    );
    assert_eq!(
        served_cert(&connect(&client, &server, "localhost").unwrap()),
        pki.server.cert_der
    );
}

#[test]
fn reload_from_another_thread_while_handshaking() {
    // The resolver is shared across threads (acceptor tasks); swapping it concurrently with
    // handshakes never yields a failed or mixed handshake.
    let pki = TestPki::generate();
    let cert_file = pki.dir().join("live.pem");
    std::fs::write(
        &cert_file,
        std::fs::read(&pki.server.combined_file).unwrap(),
    )
    .unwrap();
    let reloadable = ReloadableServerConfig::new(ServerTlsConfig::combined(&cert_file)).unwrap();
    let server = reloadable.server_config();
    let client = client_config(&pki.client_config()).unwrap();
    let renewed = pki.issue("renewed", &["localhost"]);
    let known = [pki.server.cert_der.clone(), renewed.cert_der.clone()];

    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..20 {
                let src = if i % 2 == 0 { &renewed } else { &pki.server };
                // Write to a side file and rename: the swap on disk is atomic too.
                let tmp = pki.dir().join("live.pem.tmp");
                std::fs::write(&tmp, std::fs::read(&src.combined_file).unwrap()).unwrap();
                std::fs::rename(&tmp, &cert_file).unwrap();
                reloadable.reload().unwrap();
            }
        });
        for _ in 0..20 {
            let got = served_cert(&connect(&client, &server, "localhost").unwrap());
            assert!(known.contains(&got));
        }
    });
}
