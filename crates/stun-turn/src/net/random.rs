//! The operating system's random source: the one place this crate reads entropy, kept apart from
//! the sans-IO core (which takes a [`crate::RandomSource`]).

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

use crate::random::RandomSource;

/// Random bytes from the operating system (ring's `SystemRandom`, getrandom underneath). The
/// source [`crate::net::TurnServer`] and [`crate::net::TurnClient`] give their cores.
#[derive(Clone)]
pub struct OsRandom(SystemRandom);

impl OsRandom {
    /// The operating system's source.
    #[must_use]
    pub fn new() -> Self {
        Self(SystemRandom::new())
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OsRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OsRandom")
    }
}

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) -> bool {
        self.0.fill(buf).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_draws_differ() {
        let mut r = OsRandom::new();
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        assert!(r.fill(&mut a) && r.fill(&mut b));
        assert_ne!(a, b, "16 random bytes twice in a row are equal");
    }
}
