//! Server side: certificate resolver (default + SNI, hot reload) and `rustls::ServerConfig`.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::RootCertStore;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{
    ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, DnsName, UnixTime};

use crate::config::alpn_bytes;
use crate::pem;
use crate::{ClientAuth, Error, ServerTlsConfig};

/// Builds a `rustls::ServerConfig` from `config` (certificates fixed for its lifetime).
///
/// Use [`ReloadableServerConfig`] to be able to swap certificates later.
///
/// # Errors
///
/// See [`ReloadableServerConfig::new`].
pub fn server_config(config: &ServerTlsConfig) -> Result<Arc<rustls::ServerConfig>, Error> {
    Ok(ReloadableServerConfig::new(config.clone())?.server_config())
}

/// A `rustls::ServerConfig` whose certificates can be replaced while it is in use.
///
/// [`Self::server_config`] is built once; its certificate resolver is a [`CertResolver`] shared
/// with this value. [`Self::reload`] re-reads the certificate and key files named in the
/// [`ServerTlsConfig`] and swaps them in atomically: handshakes that start afterwards use the new
/// certificates, connections already established are not touched. Nothing watches the files;
/// the caller decides when to reload (a signal, a file watcher, an admin endpoint).
///
/// ALPN, client-certificate settings and the TLS version are fixed when the value is built; to
/// change those, build a new one.
#[derive(Debug, Clone)]
pub struct ReloadableServerConfig {
    config: Arc<rustls::ServerConfig>,
    resolver: Arc<CertResolver>,
    source: ServerTlsConfig,
}

impl ReloadableServerConfig {
    /// Reads every file named in `config` and builds the rustls configuration.
    ///
    /// # Errors
    ///
    /// - file errors from [`crate::load_certified_key`] (missing or unreadable file, bad PEM, no
    ///   certificate, no key, key mismatch, encrypted key problems), for the default certificate
    ///   and each SNI entry;
    /// - [`Error::NoCertificateConfigured`]: no certificate at all (empty `cert_file` and no SNI entry);
    ///   [`Error::SniHostNotDnsName`], [`Error::SniHostTwice`]: an SNI host that is not a DNS
    ///   name or given twice; [`Error::BadAlpn`]: an empty or too long ALPN entry;
    /// - [`Error::CertificateNotForHost`]: an SNI certificate not valid for its host;
    /// - [`Error::BadCertificate`]: an unparsable certificate, or a client CA file without a
    ///   usable certificate;
    /// - [`Error::UnknownCipherSuite`] / [`Error::UnknownKxGroup`]: a name in
    ///   [`ServerTlsConfig::cipher_suites`] or [`ServerTlsConfig::kx_groups`] the provider lacks;
    /// - [`Error::Verifier`] / [`Error::Rustls`]: rustls refused the resulting configuration.
    pub fn new(config: ServerTlsConfig) -> Result<Self, Error> {
        let resolver = Arc::new(CertResolver::load(&config)?);
        let provider = crate::restricted_provider(&config.cipher_suites, &config.kx_groups)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(config.min_version.versions())?;
        let builder = match &config.client_auth {
            None => builder.with_no_client_auth(),
            Some(auth) => builder.with_client_cert_verifier(client_verifier(auth, provider)?),
        };
        let mut server = builder.with_cert_resolver(resolver.clone());
        server.alpn_protocols = alpn_bytes(&config.alpn)?;
        Ok(Self {
            config: Arc::new(server),
            resolver,
            source: config,
        })
    }

    /// The rustls configuration, to hand to the runtime's TLS acceptor. Every clone shares the
    /// same certificate resolver, so a [`Self::reload`] affects all of them.
    #[must_use]
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// The certificate resolver inside [`Self::server_config`].
    #[must_use]
    pub fn resolver(&self) -> &Arc<CertResolver> {
        &self.resolver
    }

    /// Re-reads the certificate and key files and swaps them in for new handshakes.
    ///
    /// All files are read and checked first; on any error nothing changes and the previous
    /// certificates stay in service.
    ///
    /// # Errors
    ///
    /// The certificate and key errors of [`Self::new`].
    pub fn reload(&self) -> Result<(), Error> {
        self.resolver.replace(&self.source)
    }
}

fn client_verifier(
    auth: &ClientAuth,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in pem::load_certs(&auth.ca_file)? {
        roots.add(cert).map_err(|source| Error::BadCertificate {
            path: auth.ca_file.clone(),
            source,
        })?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = if auth.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let verifier = builder.build()?;
    Ok(match &auth.verify {
        None => verifier,
        Some(check) => Arc::new(CheckedClientVerifier {
            inner: verifier,
            check: check.clone(),
        }),
    })
}

/// The CA check, then the application's [`crate::VerifyClient`].
#[derive(Debug)]
struct CheckedClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    check: crate::VerifyClient,
}

impl ClientCertVerifier for CheckedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if (self.check.0)(end_entity, intermediates) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The certificates a server presents: a default one and one per SNI host name, swappable as a
/// whole. Implements rustls's [`ResolvesServerCert`].
///
/// A client that sends an SNI name with an entry gets that entry's certificate; any other client
/// (unknown name, no SNI) gets the default certificate, or is refused when there is none.
pub struct CertResolver {
    current: RwLock<Arc<CertSet>>,
}

struct CertSet {
    default: Option<Arc<CertifiedKey>>,
    by_name: ResolvesServerCertUsingSni,
    hosts: Vec<String>,
}

impl CertResolver {
    /// Reads the default certificate and the SNI certificates named in `config`.
    ///
    /// # Errors
    ///
    /// The certificate and key errors of [`ReloadableServerConfig::new`].
    pub fn load(config: &ServerTlsConfig) -> Result<Self, Error> {
        Ok(Self {
            current: RwLock::new(Arc::new(CertSet::load(config)?)),
        })
    }

    /// Reads the certificates named in `config` and, if all of them load, makes them the ones
    /// served from now on. On error the current certificates stay.
    ///
    /// # Errors
    ///
    /// The certificate and key errors of [`ReloadableServerConfig::new`].
    pub fn replace(&self, config: &ServerTlsConfig) -> Result<(), Error> {
        let fresh = Arc::new(CertSet::load(config)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The end-entity certificate served by default (no SNI match), if any.
    #[must_use]
    pub fn default_certificate(&self) -> Option<CertificateDer<'static>> {
        self.snapshot()
            .default
            .as_ref()
            .and_then(|ck| ck.cert.first().cloned())
    }

    fn snapshot(&self) -> Arc<CertSet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl CertSet {
    fn load(config: &ServerTlsConfig) -> Result<Self, Error> {
        let default = if config.cert_file.as_os_str().is_empty() {
            if config.sni.is_empty() {
                return Err(Error::NoCertificateConfigured);
            }
            None
        } else {
            Some(Arc::new(pem::load_certified_key(
                &config.cert_file,
                config.key_file.as_deref(),
                config.key_password.as_ref(),
            )?))
        };
        let mut by_name = ResolvesServerCertUsingSni::new();
        let mut hosts: Vec<String> = Vec::with_capacity(config.sni.len());
        for entry in &config.sni {
            let host = DnsName::try_from(entry.host.as_str())
                .map_err(|_| Error::SniHostNotDnsName {
                    host: entry.host.clone(),
                })?
                .to_lowercase_owned();
            let host = host.as_ref().to_owned();
            if hosts.contains(&host) {
                return Err(Error::SniHostTwice { host });
            }
            let ck = pem::load_certified_key(
                &entry.cert_file,
                entry.key_file.as_deref(),
                entry.key_password.as_ref(),
            )?;
            by_name.add(&host, ck).map_err(|source| match source {
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                ) => Error::CertificateNotForHost {
                    path: entry.cert_file.clone(),
                    host: host.clone(),
                },
                source => Error::BadCertificate {
                    path: entry.cert_file.clone(),
                    source,
                },
            })?;
            hosts.push(host);
        }
        Ok(Self {
            default,
            by_name,
            hosts,
        })
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.snapshot();
        set.by_name
            .resolve(client_hello)
            .or_else(|| set.default.clone())
    }
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.snapshot();
        f.debug_struct("CertResolver")
            .field("has_default", &set.default.is_some())
            .field("sni_hosts", &set.hosts)
            .finish()
    }
}
