//! Throwaway certificates for tests (feature `test-certs`).
//!
//! [`TestPki::generate`] makes a fresh CA, a server certificate for `localhost`, `127.0.0.1` and
//! `::1`, and a client certificate, writes them as PEM files into a new temporary directory
//! (deleted when the [`TestPki`] is dropped) and keeps the PEM text too. More certificates signed
//! by the same CA come from [`TestPki::issue`]. Keys are ECDSA P-256.
//!
//! ```
//! let pki = ws_tls::test_certs::TestPki::generate();
//! let server = ws_tls::server_config(&pki.server_config()).unwrap();
//! let client = ws_tls::client_config(&pki.client_config()).unwrap();
//! # let _ = (server, client);
//! assert!(pki.ca.cert_file.exists());
//! ```
//!
//! Never use these certificates outside tests: the CA key lives in memory and on disk unprotected.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{ClientAuth, ClientTlsConfig, ServerTlsConfig};

/// One certificate and its key, as PEM text and as files.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TestCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
    /// File holding `cert_pem`.
    pub cert_file: PathBuf,
    /// File holding `key_pem`.
    pub key_file: PathBuf,
    /// File holding the key followed by the certificate (a combined PEM).
    pub combined_file: PathBuf,
    /// The certificate, DER (to compare with what a peer presented).
    pub cert_der: Vec<u8>,
}

/// A throwaway CA with a server and a client certificate, written into a temporary directory.
pub struct TestPki {
    /// The CA certificate (self-signed). Its `key_*` fields hold the CA key.
    pub ca: TestCert,
    /// Server certificate for `localhost`, `127.0.0.1` and `::1`, signed by the CA.
    pub server: TestCert,
    /// Client certificate (common name `wskit test client`), signed by the CA.
    pub client: TestCert,
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

impl fmt::Debug for TestPki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl TestPki {
    /// Generates the CA, server and client certificates into a new temporary directory.
    ///
    /// # Panics
    ///
    /// If key generation, signing or writing the files fails (this is a test helper).
    #[must_use]
    pub fn generate() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ws-tls-test-")
            .tempdir()
            .expect("create temp dir for test certificates");
        let mut params = CertificateParams::default();
        // A distinct name per CA, so two test CAs never look like the same issuer.
        let unique = dir
            .path()
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        params
            .distinguished_name
            .push(DnType::CommonName, format!("wskit test CA {unique}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate CA key");
        let key_pem = key.serialize_pem();
        let issuer = CertifiedIssuer::self_signed(params, key).expect("self-sign CA");
        let ca = write(
            dir.path(),
            "ca",
            issuer.pem(),
            key_pem,
            issuer.der().to_vec(),
        );
        let mut pki = Self {
            server: ca.clone(),
            client: ca.clone(),
            ca,
            issuer,
            dir,
        };
        pki.server = pki.issue("server", &["localhost", "127.0.0.1", "::1"]);
        pki.client = pki.issue_client("client", "wskit test client");
        pki
    }

    /// The temporary directory holding the files.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses) signed by the CA, and
    /// writes `<file_stem>.pem`, `<file_stem>.key` and `<file_stem>-combined.pem`.
    ///
    /// # Panics
    ///
    /// If a name is invalid, or generating or writing fails.
    #[must_use]
    pub fn issue(&self, file_stem: &str, names: &[&str]) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("valid subject alt names");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("wskit test {file_stem}"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(file_stem, &params)
    }

    /// Issues a client certificate with common name `common_name`, signed by the CA; files as for
    /// [`Self::issue`].
    ///
    /// # Panics
    ///
    /// If generating or writing fails.
    #[must_use]
    pub fn issue_client(&self, file_stem: &str, common_name: &str) -> TestCert {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(file_stem, &params)
    }

    fn sign(&self, file_stem: &str, params: &CertificateParams) -> TestCert {
        let key = KeyPair::generate().expect("generate key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign certificate");
        write(
            self.dir.path(),
            file_stem,
            cert.pem(),
            key.serialize_pem(),
            cert.der().to_vec(),
        )
    }

    /// Server settings serving [`Self::server`] (separate cert and key files), defaults otherwise.
    #[must_use]
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new(&self.server.cert_file, &self.server.key_file)
    }

    /// [`Self::server_config`] that also requires client certificates issued by the CA.
    #[must_use]
    pub fn server_config_with_client_auth(&self) -> ServerTlsConfig {
        let mut config = self.server_config();
        config.client_auth = Some(ClientAuth::required(&self.ca.cert_file));
        config
    }

    /// Client settings trusting the CA only (no Mozilla roots), no client certificate.
    #[must_use]
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig {
            ca_file: Some(self.ca.cert_file.clone()),
            webpki_roots: false,
            ..ClientTlsConfig::default()
        }
    }

    /// [`Self::client_config`] that also presents [`Self::client`].
    #[must_use]
    pub fn client_config_with_cert(&self) -> ClientTlsConfig {
        ClientTlsConfig {
            cert_file: Some(self.client.cert_file.clone()),
            key_file: Some(self.client.key_file.clone()),
            ..self.client_config()
        }
    }
}

fn write(dir: &Path, stem: &str, cert_pem: String, key_pem: String, cert_der: Vec<u8>) -> TestCert {
    let cert_file = dir.join(format!("{stem}.pem"));
    let key_file = dir.join(format!("{stem}.key"));
    let combined_file = dir.join(format!("{stem}-combined.pem"));
    std::fs::write(&cert_file, &cert_pem).expect("write certificate");
    std::fs::write(&key_file, &key_pem).expect("write key");
    std::fs::write(&combined_file, format!("{key_pem}{cert_pem}")).expect("write combined PEM");
    TestCert {
        cert_pem,
        key_pem,
        cert_file,
        key_file,
        combined_file,
        cert_der,
    }
}
