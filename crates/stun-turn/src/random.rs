//! Where the sans-IO core takes its randomness from: transaction ids, the nonce key, RFC 6062
//! connection ids and reservation tokens all come from a [`RandomSource`] the caller passes in,
//! so that a test can replay an exchange byte for byte. The runtime's default reads the operating
//! system ([`crate::net::OsRandom`], feature `runtime`).

use std::fmt;

/// A source of random bytes for [`crate::Server`] and [`crate::Client`].
///
/// Implemented for closures `FnMut(&mut [u8]) -> bool`, so a test can pass a fixed sequence:
///
/// ```
/// let mut n = 0u8;
/// let counting = move |buf: &mut [u8]| {
///     for b in buf.iter_mut() {
///         n = n.wrapping_add(1);
///         *b = n;
///     }
///     true
/// };
/// let client = stun_turn::Client::new(stun_turn::ClientConfig::default(), counting);
/// assert!(client.is_ok());
/// ```
pub trait RandomSource: Send {
    /// Fills `buf` with random bytes; `false` when the source failed (the operation that needed
    /// them then fails with [`crate::Error::Random`]).
    fn fill(&mut self, buf: &mut [u8]) -> bool;
}

impl<F: FnMut(&mut [u8]) -> bool + Send> RandomSource for F {
    fn fill(&mut self, buf: &mut [u8]) -> bool {
        self(buf)
    }
}

/// A boxed [`RandomSource`], as the cores hold it.
pub(crate) struct BoxedRandom(pub(crate) Box<dyn RandomSource>);

impl BoxedRandom {
    pub(crate) fn new(source: impl RandomSource + 'static) -> Self {
        Self(Box::new(source))
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> bool {
        self.0.fill(buf)
    }
}

impl fmt::Debug for BoxedRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RandomSource")
    }
}
