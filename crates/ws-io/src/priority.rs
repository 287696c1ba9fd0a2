//! The send-queue level shared by ws-server and ws-client.

/// A send-queue level (the seeds' `QueueOptions` qmLevel1..3): messages queued behind a full
/// write backlog go out highest level first, each level in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Level 1: before everything else.
    High,
    /// Level 2 (the default).
    #[default]
    Normal,
    /// Level 3: after everything else.
    Low,
}

impl Priority {
    /// The queue index of the level: 0 (High), 1 (Normal) or 2 (Low).
    #[must_use]
    pub fn index(self) -> usize {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
        }
    }
}
