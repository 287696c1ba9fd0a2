//! Randomness: the cores take a [`Random`]; [`OsRandom`] is the operating system's CSPRNG.

use crate::error::Error;

/// A source of random bytes.
pub trait Random: Send + Sync + 'static {
    /// Fills `buf`.
    ///
    /// # Errors
    /// [`Error::Random`] when the source fails.
    fn fill(&self, buf: &mut [u8]) -> Result<(), Error>;
}

/// The operating system's CSPRNG, through `getrandom`.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(buf).map_err(|e| Error::Random(e.to_string()))
    }
}
