//! Channel names and wildcard subscriptions.
//!
//! Channel names are `/`-separated levels (`weather/usa/california`). A subscription may use
//! `+` for exactly one level and `#` (last level only) for any number of remaining levels,
//! including none: `weather/#` matches `weather`, `weather/usa` and `weather/usa/ca`.

use std::collections::{HashMap, HashSet};

use crate::{error::Error, types::ConnId};

/// Checks a channel name or subscription pattern: not empty, `#` only as the last level, and
/// `+`/`#` only as whole levels.
///
/// # Errors
/// [`Error::InvalidChannel`] describing the problem.
pub fn validate_channel(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::InvalidChannel("empty channel name".into()));
    }
    let levels: Vec<&str> = name.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(Error::InvalidChannel(format!(
                "{name:?}: '#' must be the whole last level"
            )));
        }
        if level.contains('+') && *level != "+" {
            return Err(Error::InvalidChannel(format!(
                "{name:?}: '+' must be a whole level"
            )));
        }
    }
    Ok(())
}

/// Whether a subscription `pattern` matches the channel `name`. Wildcards in `name` (a
/// broadcast to `sensors/+`) match symmetrically, so a broadcast to a pattern reaches every
/// subscription it overlaps.
#[must_use]
pub fn channel_matches(pattern: &str, name: &str) -> bool {
    let mut p = pattern.split('/');
    let mut n = name.split('/');
    loop {
        match (p.next(), n.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some(a), Some(b)) => {
                if a != b && a != "+" && b != "+" {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// What a change to the index did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing (already subscribed, or not subscribed).
    None,
    /// The connection was added to (removed from) a pattern that has other subscribers.
    Changed,
    /// The pattern got its first subscriber (lost its last one): a backplane subscribes
    /// (unsubscribes) this node.
    Edge,
}

impl Change {
    /// Whether the connection's subscription changed.
    pub(crate) fn changed(self) -> bool {
        self != Self::None
    }
}

/// Index from subscription pattern to subscribed connections.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    by_pattern: HashMap<String, HashSet<ConnId>>,
}

impl Channels {
    pub(crate) fn subscribe(&mut self, id: ConnId, pattern: &str) -> Change {
        let set = self.by_pattern.entry(pattern.to_owned()).or_default();
        let first = set.is_empty();
        match (set.insert(id), first) {
            (false, _) => Change::None,
            (true, false) => Change::Changed,
            (true, true) => Change::Edge,
        }
    }

    pub(crate) fn unsubscribe(&mut self, id: ConnId, pattern: &str) -> Change {
        let Some(set) = self.by_pattern.get_mut(pattern) else {
            return Change::None;
        };
        if !set.remove(&id) {
            return Change::None;
        }
        if set.is_empty() {
            self.by_pattern.remove(pattern);
            return Change::Edge;
        }
        Change::Changed
    }

    /// Every connection with a subscription matching `channel`.
    pub(crate) fn subscribers(&self, channel: &str) -> HashSet<ConnId> {
        let mut out = HashSet::new();
        for (pattern, ids) in &self.by_pattern {
            if channel_matches(pattern, channel) {
                out.extend(ids.iter().copied());
            }
        }
        out
    }

    /// Connections subscribed with exactly `pattern`.
    pub(crate) fn count(&self, pattern: &str) -> usize {
        self.by_pattern.get(pattern).map_or(0, HashSet::len)
    }

    /// Active channel patterns with their subscriber counts.
    pub(crate) fn counts(&self) -> Vec<(String, usize)> {
        self.by_pattern
            .iter()
            .map(|(p, ids)| (p.clone(), ids.len()))
            .collect()
    }

    /// Active channel patterns.
    pub(crate) fn patterns(&self) -> Vec<String> {
        self.by_pattern.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_topics() {
        assert!(channel_matches("a/b/c", "a/b/c"));
        assert!(!channel_matches("a/b/c", "a/b"));
        assert!(!channel_matches("a/b", "a/b/c"));
        assert!(channel_matches("a/+/c", "a/x/c"));
        assert!(!channel_matches("a/+/c", "a/x/y/c"));
        assert!(channel_matches("a/#", "a"));
        assert!(channel_matches("a/#", "a/x/y/z"));
        assert!(!channel_matches("a/#", "b/x"));
        assert!(channel_matches("#", "anything/at/all"));
        assert!(channel_matches("+", "one"));
        assert!(!channel_matches("+", "one/two"));
        // A broadcast to a pattern reaches overlapping subscriptions.
        assert!(channel_matches("a/b", "a/+"));
        assert!(channel_matches("a/b/c", "a/#"));
    }

    #[test]
    fn channel_names_are_validated() {
        validate_channel("a/+/c").unwrap();
        validate_channel("a/#").unwrap();
        assert!(validate_channel("").is_err());
        assert!(validate_channel("a/#/c").is_err());
        assert!(validate_channel("a/b#").is_err());
        assert!(validate_channel("a/x+").is_err());
    }

    #[test]
    fn index_finds_subscribers_and_forgets_empty_patterns() {
        let mut ch = Channels::default();
        assert_eq!(ch.subscribe(ConnId(1), "news/#"), Change::Edge);
        assert_eq!(ch.subscribe(ConnId(2), "news/sport"), Change::Edge);
        assert_eq!(ch.subscribe(ConnId(3), "weather/+"), Change::Edge);
        assert_eq!(ch.subscribe(ConnId(1), "news/#"), Change::None);
        assert_eq!(ch.subscribe(ConnId(4), "news/#"), Change::Changed);
        let subs = ch.subscribers("news/sport");
        assert_eq!(
            subs,
            [ConnId(1), ConnId(2), ConnId(4)].into_iter().collect()
        );
        assert_eq!(ch.subscribers("weather/rain").len(), 1);
        assert_eq!(ch.unsubscribe(ConnId(3), "weather/+"), Change::Edge);
        assert_eq!(ch.unsubscribe(ConnId(3), "weather/+"), Change::None);
        assert!(ch.subscribers("weather/rain").is_empty());
        assert_eq!(ch.unsubscribe(ConnId(4), "news/#"), Change::Changed);
        assert_eq!(ch.patterns().len(), 2);
    }
}
