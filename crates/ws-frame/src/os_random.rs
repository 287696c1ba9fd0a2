//! The operating system's random source for client masking keys: the one place this crate
//! reads entropy, kept apart from the sans-IO core (which takes a [`crate::MaskSource`]).

use std::fmt;

use crate::mask::MaskSource;

/// Mask keys fetched from the OS per call.
const KEY_BATCH: usize = 64;

/// Masking keys from the operating system's random source (getrandom), fetched 64 at a time.
/// The source [`crate::Connection::new`] gives a client.
pub struct OsMaskSource {
    batch: [u8; KEY_BATCH * 4],
    pos: usize,
}

impl OsMaskSource {
    /// A source that reads the OS on its first key.
    #[must_use]
    pub fn new() -> Self {
        Self {
            batch: [0; KEY_BATCH * 4],
            pos: KEY_BATCH * 4,
        }
    }
}

impl Default for OsMaskSource {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for OsMaskSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OsMaskSource").finish_non_exhaustive()
    }
}

impl MaskSource for OsMaskSource {
    fn next_key(&mut self) -> Option<[u8; 4]> {
        if self.pos == self.batch.len() {
            getrandom::fill(&mut self.batch).ok()?;
            self.pos = 0;
        }
        let mut key = [0; 4];
        key.copy_from_slice(&self.batch[self.pos..self.pos + 4]);
        self.pos += 4;
        Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_across_batches() {
        let mut s = OsMaskSource::new();
        let keys: Vec<[u8; 4]> = (0..200).map(|_| s.next_key().unwrap()).collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert!(
            distinct.len() > 190,
            "random keys repeat: {}",
            distinct.len()
        );
    }
}
