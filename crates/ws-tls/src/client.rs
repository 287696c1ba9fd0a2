//! Client side: trust roots, client certificate, ALPN, and the dangerous "accept anything" mode.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::sign::SingleCertAndKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::alpn_bytes;
use crate::{ClientTlsConfig, Error, pem};

/// Builds a `rustls::ClientConfig` from `config`.
///
/// Trust roots are the certificates of [`ClientTlsConfig::ca_file`] plus, when
/// [`ClientTlsConfig::webpki_roots`] is set, Mozilla's roots. With
/// [`ClientTlsConfig::danger_accept_invalid_certs`] no roots are loaded and any server
/// certificate is accepted.
///
/// # Errors
///
/// - file errors of [`crate::load_certs`] for `ca_file`, and of [`crate::load_certified_key`] for
///   the client certificate and key;
/// - [`Error::BadCertificate`]: a CA file of which no certificate is usable as a trust anchor;
/// - [`Error::NoTrustRoots`]: no trust roots at all (`webpki_roots = false`, no `ca_file`, not
///   dangerous); [`Error::ClientKeyWithoutCertificate`]: `key_file` or `key_password` without
///   `cert_file`; [`Error::BadAlpn`]: an empty or too long ALPN entry;
/// - [`Error::Rustls`]: rustls refused the resulting configuration.
pub fn client_config(config: &ClientTlsConfig) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = crate::crypto_provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(config.min_version.versions())?;
    let builder = if config.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
    } else {
        builder.with_root_certificates(roots(config)?)
    };
    let mut client = match &config.cert_file {
        Some(cert_file) => {
            let ck = pem::load_certified_key(
                cert_file,
                config.key_file.as_deref(),
                config.key_password.as_ref(),
            )?;
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(ck)))
        }
        None if config.key_file.is_some() || config.key_password.is_some() => {
            return Err(Error::ClientKeyWithoutCertificate);
        }
        None => builder.with_no_client_auth(),
    };
    client.alpn_protocols = alpn_bytes(&config.alpn)?;
    client.enable_sni = config.enable_sni;
    Ok(Arc::new(client))
}

fn roots(config: &ClientTlsConfig) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    if config.webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = &config.ca_file {
        let certs = pem::load_certs(path)?;
        // Bundles may carry certificates webpki cannot use as anchors; skip those, but a file
        // of which none is usable is a mistake.
        let (added, _ignored) = roots.add_parsable_certificates(certs.iter().cloned());
        if added == 0 {
            let source = roots
                .add(certs[0].clone())
                .err()
                .unwrap_or(rustls::Error::General("no usable certificate".to_owned()));
            return Err(Error::BadCertificate {
                path: path.clone(),
                source,
            });
        }
    }
    if roots.is_empty() {
        return Err(Error::NoTrustRoots);
    }
    Ok(roots)
}

/// Accepts every server certificate; still checks that the server holds the certificate's key
/// (handshake signatures), so the session keys are not trivially forged by a passive party.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
