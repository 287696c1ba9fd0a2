//! Reading certificates and private keys from PEM files.

use std::path::Path;
use std::sync::Arc;

use pkcs8::der::Decode as _;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use crate::{Error, KeyPassword};

const ENCRYPTED_BEGIN: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &[u8] = b"-----END ENCRYPTED PRIVATE KEY-----";
const LEGACY_ENCRYPTED: &[u8] = b"Proc-Type: 4,ENCRYPTED";
const DECRYPT_HINT: &str = "decrypt it with `openssl pkey -in KEY -out KEY.plain` (keep the \
                            plain file private) or re-encrypt it as PBES2 with \
                            `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8`";

/// Reads every certificate (`CERTIFICATE` PEM section) of `path`, in file order. Other sections
/// (keys, for a combined PEM) and text outside sections are skipped.
///
/// # Errors
///
/// [`Error::Read`] if the file cannot be read, [`Error::BadPem`] if it is not well-formed PEM,
/// [`Error::NoCertificate`] if it holds no certificate.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    certs_from(path, &read(path)?)
}

/// Reads the one private key of `path`: PKCS#8, PKCS#1 (RSA), SEC1 (EC), or encrypted PKCS#8
/// (decrypted with `password`). Certificates in the file (a combined PEM) are skipped.
///
/// Encrypted PKCS#8 keys are supported for PBES2 with PBKDF2 (HMAC-SHA-2) or scrypt and AES-CBC,
/// which is what current OpenSSL writes. Legacy OpenSSL encryption (`Proc-Type: 4,ENCRYPTED`
/// inside an `RSA PRIVATE KEY` or `EC PRIVATE KEY` section) and PBES1 are refused with a message
/// saying how to convert the key with openssl.
///
/// # Errors
///
/// [`Error::Read`], [`Error::BadPem`], [`Error::NoPrivateKey`], [`Error::MultiplePrivateKeys`],
/// or [`Error::EncryptedKey`] (no password, wrong password, unsupported encryption).
pub fn load_private_key(
    path: &Path,
    password: Option<&KeyPassword>,
) -> Result<PrivateKeyDer<'static>, Error> {
    key_from(path, &read(path)?, password)
}

/// Reads a certificate chain and its private key and checks that they belong together.
///
/// `key_file: None` reads the key from `cert_file` (a combined PEM). The key is loaded by the
/// workspace's crypto provider ([`crate::crypto_provider`]).
///
/// # Errors
///
/// Everything [`load_certs`] and [`load_private_key`] return, [`Error::BadKey`] if the provider
/// cannot use the key, and [`Error::KeyMismatch`] if the key is not the end-entity
/// certificate's.
pub fn load_certified_key(
    cert_file: &Path,
    key_file: Option<&Path>,
    password: Option<&KeyPassword>,
) -> Result<CertifiedKey, Error> {
    let cert_bytes = read(cert_file)?;
    let chain = certs_from(cert_file, &cert_bytes)?;
    let key_path = key_file.unwrap_or(cert_file);
    let key = match key_file {
        Some(path) => key_from(path, &read(path)?, password)?,
        None => key_from(cert_file, &cert_bytes, password)?,
    };
    let signing_key: Arc<dyn rustls::sign::SigningKey> = crate::crypto_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|source| Error::BadKey {
            path: key_path.to_path_buf(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // The provider cannot tell for this key type: accept, as rustls itself does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(Error::KeyMismatch {
            cert: cert_file.to_path_buf(),
            key: key_path.to_path_buf(),
        }),
        Err(source) => Err(Error::BadCertificate {
            path: cert_file.to_path_buf(),
            source,
        }),
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// All PEM sections rustls-pki-types knows. Unknown labels (such as `ENCRYPTED PRIVATE KEY`)
/// are skipped by the parser and handled separately.
fn sections(path: &Path, bytes: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, Error> {
    if find(bytes, LEGACY_ENCRYPTED).is_some() {
        return Err(Error::EncryptedKey {
            path: path.to_path_buf(),
            reason: format!(
                "legacy OpenSSL encryption (Proc-Type: 4,ENCRYPTED) is not supported; {DECRYPT_HINT}"
            ),
        });
    }
    <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::BadPem {
            path: path.to_path_buf(),
            source,
        })
}

pub(crate) fn certs_from(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<_> = sections(path, bytes)?
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn key_from(
    path: &Path,
    bytes: &[u8],
    password: Option<&KeyPassword>,
) -> Result<PrivateKeyDer<'static>, Error> {
    let mut keys: Vec<PrivateKeyDer<'static>> = sections(path, bytes)?
        .into_iter()
        .filter_map(|(kind, der)| match kind {
            SectionKind::PrivateKey => Some(PrivatePkcs8KeyDer::from(der).into()),
            SectionKind::RsaPrivateKey => Some(PrivatePkcs1KeyDer::from(der).into()),
            SectionKind::EcPrivateKey => Some(PrivateSec1KeyDer::from(der).into()),
            _ => None,
        })
        .collect();
    let encrypted = encrypted_blocks(bytes);
    match keys.len() + encrypted.len() {
        0 => Err(Error::NoPrivateKey {
            path: path.to_path_buf(),
        }),
        1 => match encrypted.first() {
            Some(block) => decrypt(path, block, password),
            None => Ok(keys.remove(0)),
        },
        count => Err(Error::MultiplePrivateKeys {
            path: path.to_path_buf(),
            count,
        }),
    }
}

/// The `ENCRYPTED PRIVATE KEY` sections of `bytes`, BEGIN and END lines included.
fn encrypted_blocks(mut bytes: &[u8]) -> Vec<&[u8]> {
    let mut blocks = Vec::new();
    while let Some(start) = find(bytes, ENCRYPTED_BEGIN) {
        let rest = &bytes[start..];
        let Some(end) = find(rest, ENCRYPTED_END) else {
            // No END line: keep the truncated block so decoding reports it.
            blocks.push(rest);
            break;
        };
        let end = end + ENCRYPTED_END.len();
        blocks.push(&rest[..end]);
        bytes = &rest[end..];
    }
    blocks
}

fn decrypt(
    path: &Path,
    block: &[u8],
    password: Option<&KeyPassword>,
) -> Result<PrivateKeyDer<'static>, Error> {
    let fail = |reason: String| Error::EncryptedKey {
        path: path.to_path_buf(),
        reason,
    };
    let Some(password) = password else {
        return Err(fail(
            "the key is encrypted but no key password is configured".to_owned(),
        ));
    };
    let (_, der) = pkcs8::der::pem::decode_vec(block)
        .map_err(|e| fail(format!("bad PEM in the ENCRYPTED PRIVATE KEY section: {e}")))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der).map_err(|e| {
        fail(format!(
            "unsupported or malformed encryption ({e}); {DECRYPT_HINT}"
        ))
    })?;
    match info.decrypt(password.expose().as_bytes()) {
        Ok(doc) => Ok(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec()).into()),
        // A wrong key usually breaks the CBC padding (which pkcs5 0.7 reports as
        // `EncryptFailed`, even when decrypting), rarely only the DER inside.
        Err(pkcs8::Error::EncryptedPrivateKey(
            pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
        ))
        | Err(pkcs8::Error::Asn1(_)) => Err(fail("wrong password (or corrupt key)".to_owned())),
        Err(e) => Err(fail(format!("{e}; {DECRYPT_HINT}"))),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_blocks_are_found_with_their_markers() {
        let text = b"junk\n-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n\
                     -----BEGIN ENCRYPTED PRIVATE KEY-----\nBBBB\n-----END ENCRYPTED PRIVATE KEY-----";
        let blocks = encrypted_blocks(text);
        assert_eq!(blocks.len(), 2);
        assert!(blocks[0].starts_with(ENCRYPTED_BEGIN) && blocks[0].ends_with(ENCRYPTED_END));
        assert!(blocks[1].windows(4).any(|w| w == b"BBBB"));
        assert!(encrypted_blocks(b"-----BEGIN PRIVATE KEY-----").is_empty());
    }

    #[test]
    fn text_without_sections_has_no_certificate_and_no_key() {
        let p = Path::new("plain.txt");
        assert!(matches!(
            certs_from(p, b"hello\n"),
            Err(Error::NoCertificate { .. })
        ));
        assert!(matches!(
            key_from(p, b"hello\n", None),
            Err(Error::NoPrivateKey { .. })
        ));
    }

    #[test]
    fn encrypted_key_without_password_names_the_problem() {
        let text =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = key_from(Path::new("k.pem"), text, None).unwrap_err();
        assert!(err.to_string().contains("no key password"), "{err}");
    }
}
