//! JWT core (no IO, time is an argument): keys, signing, verification, claims.

pub mod claims;
pub mod keys;
pub mod sign;
pub mod verify;
