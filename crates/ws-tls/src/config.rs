//! The configuration structs: file paths and options, plain data with documented defaults.
//!
//! With the `serde` feature they derive `serde::Deserialize`: missing fields take their defaults,
//! unknown fields are an error, paths are plain strings and [`TlsVersion`] is `"1.2"` or `"1.3"`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;

/// Default of [`ServerTlsConfig::alpn`]: the server speaks HTTP/1.1 (WebSocket upgrades included).
pub const DEFAULT_SERVER_ALPN: &[&str] = &["http/1.1"];
/// Default of [`ServerTlsConfig::min_version`] and [`ClientTlsConfig::min_version`].
pub const DEFAULT_MIN_VERSION: TlsVersion = TlsVersion::Tls12;
/// Default of [`ClientAuth::required`].
pub const DEFAULT_CLIENT_CERT_REQUIRED: bool = true;
/// Default of [`ClientTlsConfig::webpki_roots`].
pub const DEFAULT_WEBPKI_ROOTS: bool = true;
/// Default of [`ClientTlsConfig::enable_sni`].
pub const DEFAULT_ENABLE_SNI: bool = true;
/// Default of [`ClientTlsConfig::danger_accept_invalid_certs`].
pub const DEFAULT_DANGER_ACCEPT_INVALID_CERTS: bool = false;

/// Lowest TLS protocol version accepted. rustls speaks TLS 1.2 and 1.3 only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3 (`"1.2"`).
    #[default]
    #[cfg_attr(feature = "serde", serde(rename = "1.2"))]
    Tls12,
    /// TLS 1.3 only (`"1.3"`).
    #[cfg_attr(feature = "serde", serde(rename = "1.3"))]
    Tls13,
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

impl TlsVersion {
    pub(crate) fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        match self {
            Self::Tls12 => rustls::ALL_VERSIONS,
            Self::Tls13 => TLS13_ONLY,
        }
    }
}

/// A private-key password. Its `Debug` output never shows the password.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize), serde(transparent))]
pub struct KeyPassword(String);

impl KeyPassword {
    /// Wraps a password.
    #[must_use]
    pub fn new(password: impl Into<String>) -> Self {
        Self(password.into())
    }

    /// The password itself.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeyPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPassword(<redacted>)")
    }
}

impl From<&str> for KeyPassword {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for KeyPassword {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// TLS server settings: where the certificate and key are, which clients to accept, ALPN.
///
/// Build the rustls configuration with [`crate::ReloadableServerConfig::new`] (certificates can
/// then be reloaded) or [`crate::server_config`].
///
/// PEM files may hold the key and the certificates together (a "combined PEM"): leave
/// [`Self::key_file`] empty and the key is read from [`Self::cert_file`]. Private keys may be
/// PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or encrypted
/// PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2 with PBKDF2 or scrypt and AES-CBC, which is what
/// `openssl pkcs8 -topk8` and `openssl genpkey -aes256` write) with [`Self::key_password`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ServerTlsConfig {
    /// PEM file with the default certificate chain, end-entity certificate first (and the key,
    /// when [`Self::key_file`] is empty). It is served to clients whose SNI name matches no
    /// [`Self::sni`] entry, or that send no SNI (connections by IP address). Empty: no default,
    /// such clients are refused (at least one [`Self::sni`] entry is then required).
    /// Default: empty.
    pub cert_file: PathBuf,
    /// PEM file with the private key of [`Self::cert_file`]. Default: none (the key is in
    /// `cert_file`).
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted private key. Default: none.
    pub key_password: Option<KeyPassword>,
    /// More certificates, chosen by the host name the client sends in SNI. Default: empty.
    pub sni: Vec<SniCert>,
    /// Ask clients for a certificate and verify it. Default: none (no client certificates).
    pub client_auth: Option<ClientAuth>,
    /// ALPN protocols, most preferred first. A client that offers ALPN but none of these is
    /// refused; a client that offers no ALPN is accepted. Empty: no ALPN.
    /// Default: [`DEFAULT_SERVER_ALPN`] (`["http/1.1"]`).
    pub alpn: Vec<String>,
    /// Lowest TLS version accepted. Default: [`DEFAULT_MIN_VERSION`] (TLS 1.2).
    pub min_version: TlsVersion,
    /// Cipher suites offered, most preferred first, by their IANA names
    /// (`TLS13_AES_256_GCM_SHA384`, `TLS13_CHACHA20_POLY1305_SHA256`,
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, ...; ASCII case-insensitive). Empty: the
    /// provider's list. Default: empty.
    pub cipher_suites: Vec<String>,
    /// Key-exchange groups, most preferred first (`X25519`, `secp256r1`, `secp384r1`; ASCII
    /// case-insensitive). Empty: the provider's list. Default: empty.
    pub kx_groups: Vec<String>,
}

impl Default for ServerTlsConfig {
    fn default() -> Self {
        Self {
            cert_file: PathBuf::new(),
            key_file: None,
            key_password: None,
            sni: Vec::new(),
            client_auth: None,
            alpn: DEFAULT_SERVER_ALPN
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            min_version: DEFAULT_MIN_VERSION,
            cipher_suites: Vec::new(),
            kx_groups: Vec::new(),
        }
    }
}

impl ServerTlsConfig {
    /// A configuration serving the chain in `cert_file` with the key in `key_file`; everything
    /// else at its default.
    #[must_use]
    pub fn new(cert_file: impl AsRef<Path>, key_file: impl AsRef<Path>) -> Self {
        Self {
            cert_file: cert_file.as_ref().to_path_buf(),
            key_file: Some(key_file.as_ref().to_path_buf()),
            ..Self::default()
        }
    }

    /// A configuration serving a combined PEM file (key and certificate chain in one file);
    /// everything else at its default.
    #[must_use]
    pub fn combined(pem_file: impl AsRef<Path>) -> Self {
        Self {
            cert_file: pem_file.as_ref().to_path_buf(),
            ..Self::default()
        }
    }
}

/// A certificate served to clients that ask for `host` in SNI.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct SniCert {
    /// The DNS name clients send (exact match, case-insensitive; the certificate must be valid
    /// for it, a wildcard certificate is fine). Required, no default.
    pub host: String,
    /// PEM file with the certificate chain (and the key, when [`Self::key_file`] is empty).
    /// Required, no default.
    pub cert_file: PathBuf,
    /// PEM file with the private key. Default: none (the key is in `cert_file`).
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted private key. Default: none.
    pub key_password: Option<KeyPassword>,
}

impl SniCert {
    /// An SNI entry for `host`: the chain in `cert_file`, the key in `key_file`.
    #[must_use]
    pub fn new(
        host: impl Into<String>,
        cert_file: impl AsRef<Path>,
        key_file: impl AsRef<Path>,
    ) -> Self {
        Self {
            host: host.into(),
            cert_file: cert_file.as_ref().to_path_buf(),
            key_file: Some(key_file.as_ref().to_path_buf()),
            key_password: None,
        }
    }

    /// An SNI entry for `host` from a combined PEM file (key and certificate chain together).
    #[must_use]
    pub fn combined(host: impl Into<String>, pem_file: impl AsRef<Path>) -> Self {
        Self {
            host: host.into(),
            cert_file: pem_file.as_ref().to_path_buf(),
            key_file: None,
            key_password: None,
        }
    }
}

/// Client-certificate verification on a server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ClientAuth {
    /// PEM file with the CA certificates client certificates must chain to. Required, no
    /// default.
    pub ca_file: PathBuf,
    /// `true`: a client without a certificate is refused. `false`: such a client is accepted
    /// (one that presents a certificate must still present a valid one).
    /// Default: [`DEFAULT_CLIENT_CERT_REQUIRED`] (`true`).
    #[cfg_attr(feature = "serde", serde(default = "default_client_cert_required"))]
    pub required: bool,
    /// The application's own check of a client certificate (`OnSSLVerifyPeer`), run after the
    /// chain verified against `ca_file`; a `false` refuses the handshake. Not read from a
    /// configuration file. Default: none.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub verify: Option<VerifyClient>,
}

/// The check of [`ClientAuth::verify`]: gets the client's end-entity certificate and the
/// intermediates it sent (DER), once they chained to a trusted CA, and returns whether to
/// accept the client.
///
/// ```
/// use ws_tls::{ClientAuth, VerifyClient};
/// let mut auth = ClientAuth::required("clients-ca.pem");
/// auth.verify = Some(VerifyClient::new(|end_entity, _intermediates| end_entity.len() < 16_384));
/// ```
#[derive(Clone)]
#[allow(clippy::type_complexity)]
pub struct VerifyClient(
    pub(crate) Arc<dyn Fn(&CertificateDer<'_>, &[CertificateDer<'_>]) -> bool + Send + Sync>,
);

impl VerifyClient {
    /// Wraps `check`.
    pub fn new(
        check: impl Fn(&CertificateDer<'_>, &[CertificateDer<'_>]) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(check))
    }
}

impl fmt::Debug for VerifyClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerifyClient(..)")
    }
}

/// Two checks are equal when they are the same closure (clones of one `VerifyClient`).
impl PartialEq for VerifyClient {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for VerifyClient {}

#[cfg(feature = "serde")]
fn default_client_cert_required() -> bool {
    DEFAULT_CLIENT_CERT_REQUIRED
}

impl ClientAuth {
    /// Clients must present a certificate issued by a CA in `ca_file`.
    #[must_use]
    pub fn required(ca_file: impl AsRef<Path>) -> Self {
        Self {
            ca_file: ca_file.as_ref().to_path_buf(),
            required: true,
            verify: None,
        }
    }

    /// Clients may present a certificate; if they do, it must be issued by a CA in `ca_file`.
    #[must_use]
    pub fn optional(ca_file: impl AsRef<Path>) -> Self {
        Self {
            ca_file: ca_file.as_ref().to_path_buf(),
            required: false,
            verify: None,
        }
    }
}

/// TLS client settings: whom to trust, which certificate to present, ALPN.
///
/// Build the rustls configuration with [`crate::client_config`]. The server name to verify (and
/// send in SNI) is given per connection by the runtime, from the URL's host.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
#[non_exhaustive]
pub struct ClientTlsConfig {
    /// PEM file with CA certificates to trust (a private CA, or a CA bundle). Default: none.
    pub ca_file: Option<PathBuf>,
    /// Also trust Mozilla's root certificates (built in, from the `webpki-roots` crate). Set it
    /// to `false` to trust [`Self::ca_file`] alone. Default: [`DEFAULT_WEBPKI_ROOTS`] (`true`).
    pub webpki_roots: bool,
    /// PEM file with a client certificate chain to present when the server asks (and the key,
    /// when [`Self::key_file`] is empty). Default: none (no client certificate).
    pub cert_file: Option<PathBuf>,
    /// PEM file with the client certificate's private key. Default: none (the key is in
    /// `cert_file`).
    pub key_file: Option<PathBuf>,
    /// Password of an encrypted private key. Default: none.
    pub key_password: Option<KeyPassword>,
    /// ALPN protocols to offer, most preferred first. Empty: no ALPN extension. Default: empty.
    pub alpn: Vec<String>,
    /// Lowest TLS version accepted. Default: [`DEFAULT_MIN_VERSION`] (TLS 1.2).
    pub min_version: TlsVersion,
    /// Send the server name in SNI (never sent for IP addresses). Default: [`DEFAULT_ENABLE_SNI`]
    /// (`true`).
    pub enable_sni: bool,
    /// DANGEROUS, for development only: accept any server certificate (self-signed, expired,
    /// wrong name, unknown CA). The connection is still encrypted but anyone on the path can
    /// impersonate the server. Handshake signatures are still checked.
    /// Default: [`DEFAULT_DANGER_ACCEPT_INVALID_CERTS`] (`false`).
    pub danger_accept_invalid_certs: bool,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            webpki_roots: DEFAULT_WEBPKI_ROOTS,
            cert_file: None,
            key_file: None,
            key_password: None,
            alpn: Vec::new(),
            min_version: DEFAULT_MIN_VERSION,
            enable_sni: DEFAULT_ENABLE_SNI,
            danger_accept_invalid_certs: DEFAULT_DANGER_ACCEPT_INVALID_CERTS,
        }
    }
}

/// Checks and converts an ALPN list.
pub(crate) fn alpn_bytes(alpn: &[String]) -> Result<Vec<Vec<u8>>, crate::Error> {
    alpn.iter()
        .map(|p| {
            if p.is_empty() || p.len() > 255 {
                Err(crate::Error::BadAlpn {
                    protocol: p.clone(),
                })
            } else {
                Ok(p.as_bytes().to_vec())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_password_debug_is_redacted() {
        let p = KeyPassword::from("hunter2");
        let cfg = ServerTlsConfig {
            key_password: Some(p.clone()),
            ..ServerTlsConfig::default()
        };
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert_eq!(p.expose(), "hunter2");
    }

    #[test]
    fn alpn_entries_must_be_1_to_255_bytes() {
        assert_eq!(
            alpn_bytes(&["h2".into(), "http/1.1".into()]).unwrap(),
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert!(alpn_bytes(&[String::new()]).is_err());
        assert!(alpn_bytes(&["x".repeat(256)]).is_err());
        assert!(alpn_bytes(&["x".repeat(255)]).is_ok());
    }

    #[test]
    fn defaults_match_the_named_constants() {
        let s = ServerTlsConfig::default();
        assert_eq!(s.alpn, vec!["http/1.1".to_owned()]);
        assert_eq!(s.min_version, DEFAULT_MIN_VERSION);
        let c = ClientTlsConfig::default();
        assert_eq!(c.webpki_roots, DEFAULT_WEBPKI_ROOTS);
        assert_eq!(c.enable_sni, DEFAULT_ENABLE_SNI);
        assert_eq!(
            c.danger_accept_invalid_certs,
            DEFAULT_DANGER_ACCEPT_INVALID_CERTS
        );
        assert!(ClientAuth::required("ca.pem").required);
        assert!(!ClientAuth::optional("ca.pem").required);
        assert_eq!(TlsVersion::Tls13.versions().len(), 1);
        assert_eq!(TlsVersion::Tls12.versions().len(), 2);
    }
}
