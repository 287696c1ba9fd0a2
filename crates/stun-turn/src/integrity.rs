//! Credentials: HMAC keys for MESSAGE-INTEGRITY(-SHA256), USERHASH, TURN REST API passwords, and the
//! FINGERPRINT CRC.

use std::fmt;

use base64::Engine as _;
use md5::Digest as _;
use ring::{digest, hmac};

use crate::attr::PasswordAlgorithm;

/// XOR constant applied to the CRC-32 of FINGERPRINT ("STUN" in ASCII).
pub const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// The key of MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256.
///
/// Short-term credentials use the password itself; long-term credentials hash
/// `username ":" realm ":" password` with MD5 (RFC 5389) or SHA-256 (RFC 8489 §18.5.1).
/// Passwords are used as given (UTF-8 bytes): OpaqueString/SASLprep normalisation is left to the
/// caller, and is the identity for ASCII passwords.
#[derive(Clone)]
pub struct Key {
    raw: Vec<u8>,
    sha1: hmac::Key,
    sha256: hmac::Key,
}

impl Key {
    /// A key from raw bytes (as stored by servers that keep hashed keys, e.g. coturn's `0x...` keys).
    pub fn from_bytes(raw: &[u8]) -> Self {
        Self {
            raw: raw.to_vec(),
            sha1: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, raw),
            sha256: hmac::Key::new(hmac::HMAC_SHA256, raw),
        }
    }

    /// Short-term credential key: the password itself (RFC 8489 §9.1.1).
    pub fn short_term(password: &str) -> Self {
        Self::from_bytes(password.as_bytes())
    }

    /// Long-term credential key with MD5 (RFC 8489 §9.2.2, the RFC 5389 key).
    pub fn long_term(username: &str, realm: &str, password: &str) -> Self {
        Self::long_term_with(PasswordAlgorithm::Md5, username, realm, password)
    }

    /// Long-term credential key with the given password algorithm.
    pub fn long_term_with(
        alg: PasswordAlgorithm,
        username: &str,
        realm: &str,
        password: &str,
    ) -> Self {
        let input = [
            username.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ];
        match alg {
            PasswordAlgorithm::Md5 => {
                let mut h = md5::Md5::new();
                for part in input {
                    h.update(part);
                }
                Self::from_bytes(&h.finalize())
            }
            PasswordAlgorithm::Sha256 => {
                let mut c = digest::Context::new(&digest::SHA256);
                for part in input {
                    c.update(part);
                }
                Self::from_bytes(c.finish().as_ref())
            }
        }
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// HMAC-SHA1 over the concatenation of `parts`.
    pub(crate) fn hmac_sha1(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut c = hmac::Context::with_key(&self.sha1);
        for p in parts {
            c.update(p);
        }
        c.sign()
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub(crate) fn hmac_sha256(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut c = hmac::Context::with_key(&self.sha256);
        for p in parts {
            c.update(p);
        }
        c.sign()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.raw, &other.raw)
    }
}

impl Eq for Key {}

/// USERHASH value: SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    let mut c = digest::Context::new(&digest::SHA256);
    c.update(username.as_bytes());
    c.update(b":");
    c.update(realm.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

/// The TURN REST API password for a time-limited username: base64(HMAC-SHA1(secret, username)).
///
/// The username is `"<expiry unix seconds>:<user>"` (or just the expiry); see
/// [`rest_api_username`]. This is the scheme WebRTC applications and coturn's `--use-auth-secret` use.
pub fn rest_api_password(secret: &str, username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = hmac::sign(&key, username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// A TURN REST API username valid until `expiry_unix` (seconds since the Unix epoch).
pub fn rest_api_username(expiry_unix: u64, user: &str) -> String {
    if user.is_empty() {
        expiry_unix.to_string()
    } else {
        format!("{expiry_unix}:{user}")
    }
}

/// The expiry time encoded in a TURN REST API username (`"expiry:user"`, `"expiry"` or
/// `"user:expiry"` as some deployments use), or `None` if it has no numeric part.
pub fn rest_api_expiry(username: &str) -> Option<u64> {
    match username.split_once(':') {
        None => username.parse().ok(),
        Some((a, b)) => a.parse().ok().or_else(|| b.parse().ok()),
    }
}

/// Compares two byte strings in time independent of where they differ (`subtle`).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// CRC-32 of `parts` XOR [`FINGERPRINT_XOR`].
pub(crate) fn fingerprint(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize() ^ FINGERPRINT_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_term_md5_key_matches_rfc5769_section_2_4() {
        // Username and password after SASLprep, from RFC 5769 §2.4.
        let key = Key::long_term(
            "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}",
            "example.org",
            "TheMatrIX",
        );
        assert_eq!(key.as_bytes().len(), 16);
        let again = Key::long_term(
            "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}",
            "example.org",
            "TheMatrIX",
        );
        assert_eq!(key, again);
        assert_ne!(key, Key::long_term("x", "example.org", "TheMatrIX"));
    }

    #[test]
    fn rest_api_password_is_base64_hmac_sha1_of_username() {
        let pw = rest_api_password("secret", "1700000000:alice");
        // 20-byte HMAC-SHA1 encodes to 28 base64 characters with one '=' of padding.
        assert_eq!(pw.len(), 28);
        assert!(pw.ends_with('='));
        assert_ne!(pw, rest_api_password("secret", "1700000001:alice"));
        assert_ne!(pw, rest_api_password("other", "1700000000:alice"));
    }

    #[test]
    fn rest_api_expiry_accepts_both_orders() {
        assert_eq!(rest_api_expiry("1700000000:alice"), Some(1_700_000_000));
        assert_eq!(rest_api_expiry("alice:1700000000"), Some(1_700_000_000));
        assert_eq!(rest_api_expiry("1700000000"), Some(1_700_000_000));
        assert_eq!(rest_api_expiry("alice"), None);
        assert_eq!(rest_api_username(5, "bob"), "5:bob");
        assert_eq!(rest_api_username(5, ""), "5");
    }
}
