//! Password hashes for the sign-in page's users: argon2id in PHC string form.

use std::sync::OnceLock;

use argon2::password_hash::SaltString;
use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
};

use crate::{error::Error, random::Random};

/// Hashes `password` with argon2id and the crate's default cost (19 MiB, 2 passes: the
/// OWASP minimum), with a 16-byte salt from `random`.
///
/// # Errors
/// [`Error::Random`], or [`Error::PasswordHash`] when hashing fails.
pub fn hash(password: &str, random: &dyn Random) -> Result<String, Error> {
    hash_with_cost(
        password,
        Params::DEFAULT_M_COST,
        Params::DEFAULT_T_COST,
        random,
    )
}

/// [`hash`] with a memory cost in KiB and a number of passes (lower costs are for tests).
///
/// # Errors
/// As [`hash`].
pub fn hash_with_cost(
    password: &str,
    m_kib: u32,
    t: u32,
    random: &dyn Random,
) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    random.fill(&mut salt)?;
    let failed = |e: argon2::password_hash::Error| Error::PasswordHash {
        reason: e.to_string(),
    };
    let salt = SaltString::encode_b64(&salt).map_err(failed)?;
    let params = Params::new(m_kib, t, 1, None).map_err(|e| Error::PasswordHash {
        reason: e.to_string(),
    })?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(failed)
}

/// Whether `password` matches the PHC string `hash` (its own parameters are used).
#[must_use]
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash to verify against for unknown user names (same cost as a real check).
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash("not a password", &crate::random::OsRandom).unwrap_or_default())
}
