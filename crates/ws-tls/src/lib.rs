//! Synchronous rustls glue for wskit: TLS server and client configurations built from PEM files.
//!
//! This crate reads certificates and keys, checks them, and hands back ready
//! [`rustls::ServerConfig`] / [`rustls::ClientConfig`] values. It does no IO besides reading the
//! files it is told about, and has no async runtime: the server and client runtimes wrap its output
//! in their TLS acceptor/connector.
//!
//! ```text
//!  ServerTlsConfig (paths, options)          ClientTlsConfig (paths, options)
//!        |                                          |
//!        v  read PEM, decrypt PKCS#8,               v  CA file and/or Mozilla roots,
//!        |  match key to cert, SNI map              |  client cert, ALPN, SNI flag
//!  ReloadableServerConfig                     client_config()
//!        |  CertResolver (ResolvesServerCert)       |
//!        |    <- reload(): re-read files, swap      |
//!        v                                          v
//!  Arc<rustls::ServerConfig>                  Arc<rustls::ClientConfig>
//!        |                                          |
//!        +------> runtime TLS acceptor / connector <+
//! ```
//!
//! One crypto provider serves the whole workspace: `ring`, passed explicitly to every rustls
//! builder (see [`crypto_provider`]), so no second provider is ever linked or picked implicitly.
//!
//! # Example
//!
//! ```
//! # fn main() -> Result<(), ws_tls::Error> {
//! # let dir = std::env::temp_dir().join(format!("ws-tls-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
//! # let (cert_path, key_path) = (dir.join("server.pem"), dir.join("server.key"));
//! # std::fs::write(&cert_path, ck.cert.pem()).unwrap();
//! # std::fs::write(&key_path, ck.signing_key.serialize_pem()).unwrap();
//! use ws_tls::{ClientTlsConfig, ReloadableServerConfig, ServerTlsConfig};
//!
//! // Server: certificate chain + key, ALPN "http/1.1" by default.
//! let server = ReloadableServerConfig::new(ServerTlsConfig::new(&cert_path, &key_path))?;
//! let rustls_server: std::sync::Arc<rustls::ServerConfig> = server.server_config();
//! assert_eq!(rustls_server.alpn_protocols, vec![b"http/1.1".to_vec()]);
//!
//! // Client: trust exactly that certificate (it is self-signed, so it is its own CA).
//! let mut client = ClientTlsConfig::default();
//! client.ca_file = Some(cert_path.clone());
//! client.webpki_roots = false;
//! let rustls_client = ws_tls::client_config(&client)?;
//! assert!(rustls_client.alpn_protocols.is_empty());
//!
//! // Later, after the files were replaced on disk: new handshakes use the new certificate.
//! server.reload()?;
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `serde`: derives `serde::Deserialize` for [`ServerTlsConfig`], [`ClientTlsConfig`] and their
//!   parts (missing fields take their defaults, unknown fields are rejected).
//! - `test-certs`: the `test_certs` module, which generates a throwaway CA, server and client
//!   certificate into a temporary directory, for other crates' tests.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

mod client;
mod config;
mod describe;
mod pem;
mod server;
#[cfg(feature = "test-certs")]
pub mod test_certs;

pub use client::client_config;
pub use config::{
    ClientAuth, ClientTlsConfig, DEFAULT_CLIENT_CERT_REQUIRED, DEFAULT_DANGER_ACCEPT_INVALID_CERTS,
    DEFAULT_ENABLE_SNI, DEFAULT_MIN_VERSION, DEFAULT_SERVER_ALPN, DEFAULT_WEBPKI_ROOTS,
    KeyPassword, ServerTlsConfig, SniCert, TlsVersion, VerifyClient,
};
pub use describe::describe_error;
pub use pem::{load_certified_key, load_certs, load_private_key};
pub use server::{CertResolver, ReloadableServerConfig, server_config};

/// Everything that can go wrong while building a TLS configuration.
///
/// Variants about files name the file; their `Display` says what is wrong and, where it helps, how
/// to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read (missing, no permission, ...).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not well-formed PEM (a section without its END line, bad base64, ...).
    #[error("{}: bad PEM: {}", path.display(), describe_pem_error(.source))]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A file that should hold certificates has no `CERTIFICATE` PEM section.
    #[error(
        "{}: no certificate found (expected a '-----BEGIN CERTIFICATE-----' section; a DER file can be \
         converted with `openssl x509 -inform der -in FILE -out FILE.pem`)",
        path.display()
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A file that should hold a private key has none.
    #[error(
        "{}: no private key found (expected a '-----BEGIN PRIVATE KEY-----', 'RSA PRIVATE KEY', \
         'EC PRIVATE KEY' or 'ENCRYPTED PRIVATE KEY' section)",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A file holds more than one private key, so which one to use is ambiguous.
    #[error("{}: {count} private keys found, expected exactly one", path.display())]
    MultiplePrivateKeys {
        /// The file.
        path: PathBuf,
        /// How many keys it holds.
        count: usize,
    },
    /// An encrypted private key could not be decrypted: no password, wrong password, or an
    /// encryption scheme that is not supported (the message says how to decrypt it with openssl).
    #[error("{}: encrypted private key: {reason}", path.display())]
    EncryptedKey {
        /// The file.
        path: PathBuf,
        /// What went wrong and what to do.
        reason: String,
    },
    /// The private key was read but the crypto provider cannot use it (unsupported type or curve,
    /// corrupt key).
    #[error("{}: unusable private key: {source}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The private key does not belong to the first (end-entity) certificate of the chain.
    #[error(
        "private key in {} does not match the certificate in {} (the first certificate of the chain \
         must be the one the key was issued for)",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A certificate could not be used: unparsable, or (for an SNI entry) not valid for its host.
    #[error("{}: bad certificate: {source}", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// An SNI entry's certificate does not cover the entry's host name.
    #[error("{}: certificate is not valid for SNI host {host:?}", path.display())]
    CertificateNotForHost {
        /// The certificate file.
        path: PathBuf,
        /// The SNI host of the entry.
        host: String,
    },
    /// A server configuration without any certificate.
    #[error("no certificate configured: set cert_file, or add sni entries")]
    NoCertificateConfigured,
    /// An SNI entry whose host is not a DNS name.
    #[error("SNI host {host:?} is not a DNS name")]
    SniHostNotDnsName {
        /// The host of the entry.
        host: String,
    },
    /// Two SNI entries for the same host (compared case-insensitively).
    #[error("SNI host {host:?} is configured twice")]
    SniHostTwice {
        /// The host, lowercased.
        host: String,
    },
    /// An ALPN protocol name that is empty or longer than 255 bytes.
    #[error("ALPN protocol {protocol:?} must be 1 to 255 bytes long")]
    BadAlpn {
        /// The name given.
        protocol: String,
    },
    /// A client configuration that trusts nothing.
    #[error("no trust roots: set ca_file, or enable webpki_roots")]
    NoTrustRoots,
    /// A client key (or its password) without the client certificate.
    #[error("key_file or key_password is set but cert_file (the client certificate) is not")]
    ClientKeyWithoutCertificate,
    /// A name in [`ServerTlsConfig::cipher_suites`] that the crypto provider does not have.
    #[error("unknown cipher suite {name:?}; available: {available}")]
    UnknownCipherSuite {
        /// The name given.
        name: String,
        /// The provider's suites, comma-separated.
        available: String,
    },
    /// A name in [`ServerTlsConfig::kx_groups`] that the crypto provider does not have.
    #[error("unknown key-exchange group {name:?}; available: {available}")]
    UnknownKxGroup {
        /// The name given.
        name: String,
        /// The provider's groups, comma-separated.
        available: String,
    },
    /// rustls refused to build the configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn describe_pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as P;
    match e {
        P::MissingSectionEnd { end_marker } => format!(
            "section {:?} has no END line (truncated file?)",
            String::from_utf8_lossy(end_marker)
        ),
        P::IllegalSectionStart { line } => format!(
            "malformed BEGIN line {:?}",
            String::from_utf8_lossy(line).trim_end()
        ),
        other => other.to_string(),
    }
}

/// The crypto provider used by every configuration this crate builds: rustls's `ring` provider.
///
/// The same `Arc` is returned on every call. Other crates of the workspace that build rustls
/// configurations themselves should pass it to `builder_with_provider` too.
#[must_use]
pub fn crypto_provider() -> Arc<CryptoProvider> {
    shared_provider()
}

/// [`crypto_provider`] restricted to `suites` and `groups` (by name, in that order of
/// preference); the shared provider itself when both are empty.
pub(crate) fn restricted_provider(
    suites: &[String],
    groups: &[String],
) -> Result<Arc<CryptoProvider>, Error> {
    let base = shared_provider();
    if suites.is_empty() && groups.is_empty() {
        return Ok(base);
    }
    let mut provider = (*base).clone();
    if !suites.is_empty() {
        let name_of = |s: &rustls::SupportedCipherSuite| format!("{:?}", s.suite());
        provider.cipher_suites = suites
            .iter()
            .map(|name| {
                base.cipher_suites
                    .iter()
                    .find(|s| name_of(s).eq_ignore_ascii_case(name))
                    .copied()
                    .ok_or_else(|| Error::UnknownCipherSuite {
                        name: name.clone(),
                        available: base
                            .cipher_suites
                            .iter()
                            .map(name_of)
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            })
            .collect::<Result<_, _>>()?;
    }
    if !groups.is_empty() {
        let name_of = |g: &&'static dyn rustls::crypto::SupportedKxGroup| format!("{:?}", g.name());
        provider.kx_groups = groups
            .iter()
            .map(|name| {
                base.kx_groups
                    .iter()
                    .find(|g| name_of(g).eq_ignore_ascii_case(name))
                    .copied()
                    .ok_or_else(|| Error::UnknownKxGroup {
                        name: name.clone(),
                        available: base
                            .kx_groups
                            .iter()
                            .map(name_of)
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(Arc::new(provider))
}

fn shared_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
