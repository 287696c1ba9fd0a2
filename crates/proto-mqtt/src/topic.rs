//! Topic names and filters: local validation (MQTT 5 section 4.7) and matching.
//!
//! ```
//! use proto_mqtt::topic::{matches, validate_filter};
//! assert!(validate_filter("sport/+/player1").is_ok());
//! assert!(validate_filter("sport/tennis#").is_err());
//! assert!(matches("sport/#", "sport/tennis/player1"));
//! assert!(matches("+/+", "/finance"));
//! assert!(!matches("#", "$SYS/broker/uptime"));
//! ```

use crate::error::Error;

/// Longest topic name or filter the protocol can carry (a two-byte length).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Checks a topic name for PUBLISH: not empty, no `+` or `#`, no NUL, at most
/// [`MAX_TOPIC_LEN`] bytes.
///
/// # Errors
/// [`Error::InvalidTopic`] saying what is wrong.
pub fn validate_topic(topic: &str) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::InvalidTopic {
            topic: topic.to_owned(),
            why,
        })
    };
    if topic.is_empty() {
        return bad("empty");
    }
    if topic.len() > MAX_TOPIC_LEN {
        return bad("longer than 65535 bytes");
    }
    if topic.contains(['+', '#']) {
        return bad("wildcards are not allowed in topic names");
    }
    if topic.contains('\0') {
        return bad("contains NUL");
    }
    Ok(())
}

/// Checks a topic filter for SUBSCRIBE/UNSUBSCRIBE: not empty, `+` alone in its level, `#`
/// alone in the last level, no NUL; a shared subscription `$share/NAME/FILTER` needs a name
/// without wildcards and a valid filter.
///
/// # Errors
/// [`Error::InvalidFilter`] saying what is wrong.
pub fn validate_filter(filter: &str) -> Result<(), Error> {
    let bad = |why| {
        Err(Error::InvalidFilter {
            filter: filter.to_owned(),
            why,
        })
    };
    if filter.is_empty() {
        return bad("empty");
    }
    if filter.len() > MAX_TOPIC_LEN {
        return bad("longer than 65535 bytes");
    }
    if filter.contains('\0') {
        return bad("contains NUL");
    }
    let body = if let Some(rest) = filter.strip_prefix("$share/") {
        let Some((name, f)) = rest.split_once('/') else {
            return bad("a shared subscription needs $share/NAME/FILTER");
        };
        if name.is_empty() || name.contains(['+', '#']) {
            return bad("invalid share name");
        }
        if f.is_empty() {
            return bad("a shared subscription needs a filter");
        }
        f
    } else {
        filter
    };
    let mut levels = body.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return bad("'#' must be alone in the last level");
        }
        if level.contains('+') && level != "+" {
            return bad("'+' must be alone in its level");
        }
    }
    Ok(())
}

/// Whether `filter` has a wildcard.
#[must_use]
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Whether `filter` is a shared subscription (`$share/...`).
#[must_use]
pub fn is_shared(filter: &str) -> bool {
    filter.starts_with("$share/")
}

/// Whether `topic` matches `filter` (both assumed valid). Wildcards at the first level do not
/// match topics starting with `$` (MQTT 5 section 4.7.2). For a shared subscription, the
/// filter after `$share/NAME/` is matched.
#[must_use]
pub fn matches(filter: &str, topic: &str) -> bool {
    let filter = match filter.strip_prefix("$share/") {
        Some(rest) => rest.split_once('/').map_or(rest, |(_, f)| f),
        None => filter,
    };
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "a/b",
            "a/+/c",
            "a/#",
            "+/+",
            "/",
            "$share/g/a/#",
            "a b/c",
        ] {
            assert!(validate_filter(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a/b#",
            "a/#/c",
            "a+/b",
            "$share/g",
            "$share//a",
            "$share/g+/a",
            "a\0",
        ] {
            assert!(validate_filter(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topics() {
        assert!(validate_topic("a/b c").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("a/+").is_err());
        assert!(validate_topic("a/#").is_err());
        assert!(validate_topic(&"x".repeat(70_000)).is_err());
    }

    #[test]
    fn matching() {
        assert!(matches("a/b", "a/b"));
        assert!(!matches("a/b", "a/c"));
        assert!(matches("a/+", "a/c"));
        assert!(!matches("a/+", "a/c/d"));
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(matches("+/b", "/b"));
        assert!(!matches("+", "$SYS"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("$share/g/a/+", "a/b"));
        assert!(!matches("a/b/c", "a/b"));
    }
}
