//! `wskit cert` and TLS as a developer meets it: the certificate it writes is served by
//! `wskit serve` and trusted by `wskit client --ca-file`; the openssl recipe of the docs works
//! too; certificate errors and scheme mismatches are one sentence each that says what to do.

mod harness;

use std::time::Duration;

use harness::*;

const LIMIT: Duration = Duration::from_secs(30);

/// `wskit cert` into a new directory; returns it with cert.pem and key.pem.
fn cert(hosts: &[&str]) -> TempDir {
    let dir = TempDir::new("cert");
    let mut args = vec!["cert", "--out", dir.path().to_str().unwrap()];
    for h in hosts {
        args.extend(["--host", h]);
    }
    let r = run(&args, b"", LIMIT);
    assert_eq!(r.code, Some(0), "{r:?}");
    dir
}

fn tls_serve(dir: &TempDir) -> Proc {
    serve(&[
        "--tls-cert",
        &dir.join("cert.pem"),
        "--tls-key",
        &dir.join("key.pem"),
    ])
}

/// Runs the client against `url` with `args` and one line of input.
fn client(args: &[&str], url: &str) -> Run {
    let mut all = vec!["client", "--linger", "0.2"];
    all.extend(args);
    all.push(url);
    run(&all, b"over tls\n", LIMIT)
}

/// The `caused by:` line of a failed client run (there is exactly one).
fn cause(r: &Run) -> String {
    let lines = r.err_lines("caused by: ");
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    lines[0].trim_start_matches("caused by: ").to_owned()
}

#[test]
fn cert_output_is_served_and_trusted_with_ca_file() {
    let dir = cert(&["localhost", "127.0.0.1"]);
    let s = tls_serve(&dir);
    let ca = dir.join("cert.pem");
    for host in ["localhost", "127.0.0.1"] {
        let url = format!("wss://{host}:{}/echo", s.addr.port());
        let r = client(&["--ca-file", &ca], &url);
        assert_eq!(r.code, Some(0), "{r:?}");
        assert_eq!(r.stdout_text(), "over tls\n");
        assert_eq!(r.first_err_line(), format!("connected to {url}"));
    }
}

#[test]
fn cert_says_what_it_wrote_and_keeps_existing_files() {
    let dir = TempDir::new("cert-out");
    let out = dir.join("sub");
    let r = run(&["cert", "--host", "localhost", "--out", &out], b"", LIMIT);
    assert_eq!(r.code, Some(0), "{r:?}");
    let text = r.stdout_text();
    assert!(
        text.starts_with(&format!(
            "wrote {out}/cert.pem (self-signed, for localhost;"
        )),
        "{text}"
    );
    assert!(text.contains("--ca-file"), "{text}");
    let key = std::fs::read_to_string(format!("{out}/key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(format!("{out}/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "key readable by others: {mode:o}");
    }
    let again = run(&["cert", "--host", "localhost", "--out", &out], b"", LIMIT);
    assert_eq!(again.code, Some(1));
    assert_eq!(
        again.first_err_line(),
        format!("error: {out}/cert.pem exists; pass --force to replace it")
    );
    let forced = run(
        &["cert", "--host", "localhost", "--out", &out, "--force"],
        b"",
        LIMIT,
    );
    assert_eq!(forced.code, Some(0), "{forced:?}");
    let missing = run(&["cert"], b"", LIMIT);
    assert_eq!(missing.code, Some(2), "--host is required");
}

#[test]
fn the_openssl_recipe_of_the_docs_works() {
    let Some(openssl) = openssl() else {
        return;
    };
    let dir = TempDir::new("openssl");
    let status = std::process::Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "365",
            "-keyout",
        ])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let s = tls_serve(&dir);
    let url = format!("wss://localhost:{}/echo", s.addr.port());
    let r = client(&["--ca-file", &dir.join("cert.pem")], &url);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout_text(), "over tls\n");
}

#[test]
fn unknown_issuer_says_to_trust_the_certificate() {
    let dir = cert(&["localhost"]);
    let s = tls_serve(&dir);
    let url = format!("wss://localhost:{}/echo", s.addr.port());
    let r = client(&[], &url);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.first_err_line(), format!("error: connecting to {url}"));
    assert_eq!(
        cause(&r),
        "TLS handshake failed: the server's certificate is not signed by a trusted certificate \
         authority (unknown issuer): trust the CA that issued it, or the self-signed certificate \
         itself, with a CA file (`--ca-file FILE` for `wskit client`)"
    );
    r.assert_no_backtrace();
}

#[test]
fn name_mismatch_names_both_names() {
    let dir = cert(&["example.org"]);
    let s = tls_serve(&dir);
    let url = format!("wss://localhost:{}/echo", s.addr.port());
    let r = client(&["--ca-file", &dir.join("cert.pem")], &url);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        cause(&r),
        "TLS handshake failed: the server's certificate is not valid for localhost (it is for \
         example.org): connect with a name the certificate lists, or make a certificate for \
         localhost (`wskit cert --host localhost`)"
    );
}

/// Writes a self-signed certificate made with `params` as cert.pem and key.pem.
fn write_rcgen(dir: &TempDir, params: &rcgen::CertificateParams) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

#[test]
fn a_ca_certificate_served_as_the_servers_own_says_to_use_an_end_entity_one() {
    let dir = TempDir::new("ca-as-ee");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    write_rcgen(&dir, &params);
    let s = tls_serve(&dir);
    let url = format!("wss://localhost:{}/echo", s.addr.port());
    let r = client(&["--ca-file", &dir.join("cert.pem")], &url);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        cause(&r),
        "TLS handshake failed: the server presents a CA certificate (basic constraints CA:TRUE) \
         as its own, which TLS clients refuse: give the server an end-entity certificate \
         (CA:FALSE), for example one made by `wskit cert`, and trust that certificate or the CA \
         that issued it"
    );
}

#[test]
fn an_expired_certificate_says_when_it_expired() {
    let dir = TempDir::new("expired");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    write_rcgen(&dir, &params);
    let s = tls_serve(&dir);
    let url = format!("wss://localhost:{}/echo", s.addr.port());
    let r = client(&["--ca-file", &dir.join("cert.pem")], &url);
    assert_eq!(r.code, Some(1), "{r:?}");
    let c = cause(&r);
    assert!(
        c.starts_with(
            "TLS handshake failed: the server's certificate expired on 2021-01-01 00:00:00 UTC ("
        ) && c.ends_with(" days ago): renew it, or check this machine's clock"),
        "{c}"
    );
}

#[test]
fn wss_to_a_plain_port_says_try_ws() {
    let s = serve(&[]);
    let url = format!("wss://{}/echo", s.addr);
    let r = client(&["--insecure"], &url);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "error: connecting to {url}\ncaused by: the server did not answer TLS (it closed the \
             connection without a TLS reply); try ws://\n"
        )
    );
}

#[test]
fn ws_to_a_tls_port_says_try_wss() {
    let dir = cert(&["localhost"]);
    let s = tls_serve(&dir);
    let url = format!("ws://{}/echo", s.addr);
    let r = client(&[], &url);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "error: connecting to {url}\ncaused by: handshake: the server answered with TLS where \
             an HTTP status line was expected: this looks like TLS; try wss://\n"
        )
    );
}
