//! The crate's one mutex helper.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking the data over from a thread that panicked while holding it: every
/// critical section of this crate leaves its data consistent between statements, so a poisoned
/// lock is no reason to fail the proxy.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
