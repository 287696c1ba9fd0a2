//! The operating system's random source for the client handshake key: the one place this
//! crate reads entropy, kept apart from the sans-IO handshake (which takes the key as an
//! argument: [`super::ClientHandshake::with_key`]).

use crate::error::Error;

/// A fresh 16-byte `Sec-WebSocket-Key` nonce from the OS.
pub(super) fn handshake_key() -> Result<[u8; 16], Error> {
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|_| Error::Random)?;
    Ok(key)
}
