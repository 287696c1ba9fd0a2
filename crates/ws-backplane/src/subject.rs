//! Channel names and patterns (ws-server's `/`-separated levels with `+` and `#`) as engine
//! subjects: Redis pub/sub channels and glob patterns, NATS subjects with `*` and `>`.
//!
//! Every channel broadcast goes to one engine subject per channel; a broadcast to every
//! connection, or to a wildcard channel (which may overlap any subscription), goes to the
//! prefix's `all` subject, which every node listens to. Engine patterns may match more than
//! the channel pattern (Redis's `*` crosses levels); the receiving node's registry selects
//! its subscribers by the channel itself, so the excess is never delivered.

/// Whether a channel name holds a wildcard level.
pub(crate) fn is_wildcard(channel: &str) -> bool {
    channel.split('/').any(|l| l == "+" || l == "#")
}

/// Redis keys.
pub(crate) mod redis {
    /// The subject of broadcasts without a plain channel.
    pub(crate) fn all(prefix: &str) -> String {
        format!("{prefix}:all")
    }

    /// The pub/sub channel of `channel` (no wildcards).
    pub(crate) fn channel(prefix: &str, channel: &str) -> String {
        format!("{prefix}:c:{channel}")
    }

    /// The channel of direct envelopes for node `node`, and the pattern that matches it alone.
    pub(crate) fn node(prefix: &str, node: &str) -> (String, String) {
        let mut pattern = String::new();
        escape_glob(&mut pattern, prefix);
        pattern.push_str(":n:");
        escape_glob(&mut pattern, node);
        (format!("{prefix}:n:{node}"), pattern)
    }

    fn escape_glob(out: &mut String, literal: &str) {
        for c in literal.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
    }

    /// The glob patterns (for PSUBSCRIBE) covering the channel pattern `pattern`.
    pub(crate) fn patterns(prefix: &str, pattern: &str) -> Vec<String> {
        let mut base = String::new();
        escape_glob(&mut base, prefix);
        base.push_str(":c:");
        let levels: Vec<&str> = pattern.split('/').collect();
        let mut out = base;
        for (i, level) in levels.iter().enumerate() {
            match *level {
                "#" => {
                    // `a/#` matches `a` itself and everything below it.
                    return if i == 0 {
                        vec![format!("{out}*")]
                    } else {
                        let parent = out[..out.len() - 1].to_owned();
                        vec![parent, format!("{out}*")]
                    };
                }
                "+" => out.push('*'),
                literal => escape_glob(&mut out, literal),
            }
            if i + 1 < levels.len() {
                out.push('/');
            }
        }
        vec![out]
    }
}

/// NATS subjects: `PREFIX.all` and `PREFIX.c.LEVEL.LEVEL...`, each level escaped so that it is
/// one valid token.
pub(crate) mod nats {
    use std::fmt::Write;

    /// The subject of broadcasts without a plain channel.
    pub(crate) fn all(prefix: &str) -> String {
        format!("{prefix}.all")
    }

    /// One channel level as a NATS token: `[A-Za-z0-9_-]` stay, every other byte becomes
    /// `~HH`; an empty level is `~`.
    fn token(out: &mut String, level: &str) {
        if level.is_empty() {
            out.push('~');
            return;
        }
        for b in level.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "~{b:02X}");
            }
        }
    }

    /// The subject of direct envelopes for node `node`.
    pub(crate) fn node(prefix: &str, node: &str) -> String {
        let mut out = format!("{prefix}.n.");
        token(&mut out, node);
        out
    }

    /// The subject of `channel` (no wildcards).
    pub(crate) fn channel(prefix: &str, channel: &str) -> String {
        let mut out = format!("{prefix}.c");
        for level in channel.split('/') {
            out.push('.');
            token(&mut out, level);
        }
        out
    }

    /// The subjects (for SUB) covering the channel pattern `pattern`.
    pub(crate) fn patterns(prefix: &str, pattern: &str) -> Vec<String> {
        let mut out = format!("{prefix}.c");
        for level in pattern.split('/') {
            match level {
                "#" => {
                    // `a/#` matches `a` itself too; `>` needs at least one more token.
                    let parent = out.clone();
                    out.push_str(".>");
                    return if parent == format!("{prefix}.c") {
                        vec![out]
                    } else {
                        vec![parent, out]
                    };
                }
                "+" => out.push_str(".*"),
                literal => {
                    out.push('.');
                    token(&mut out, literal);
                }
            }
        }
        vec![out]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_patterns_cover_channel_patterns() {
        assert_eq!(redis::channel("w", "room/a"), "w:c:room/a");
        assert_eq!(redis::patterns("w", "room/a"), ["w:c:room/a"]);
        assert_eq!(redis::patterns("w", "room/+/x"), ["w:c:room/*/x"]);
        assert_eq!(redis::patterns("w", "room/#"), ["w:c:room", "w:c:room/*"]);
        assert_eq!(redis::patterns("w", "#"), ["w:c:*"]);
        assert_eq!(redis::patterns("w", "a*b/[c]"), ["w:c:a\\*b/\\[c\\]"]);
        assert_eq!(
            redis::node("w", "n*1"),
            ("w:n:n*1".to_owned(), "w:n:n\\*1".to_owned())
        );
    }

    #[test]
    fn nats_subjects_are_escaped_tokens() {
        assert_eq!(nats::channel("w", "room/a"), "w.c.room.a");
        assert_eq!(nats::channel("w", "a.b/ /"), "w.c.a~2Eb.~20.~");
        assert_eq!(nats::channel("w", "x*>"), "w.c.x~2A~3E");
        assert_eq!(nats::patterns("w", "room/+"), ["w.c.room.*"]);
        assert_eq!(nats::patterns("w", "room/#"), ["w.c.room", "w.c.room.>"]);
        assert_eq!(nats::patterns("w", "#"), ["w.c.>"]);
        assert_eq!(nats::patterns("w", "a.b/c"), ["w.c.a~2Eb.c"]);
        assert_eq!(nats::node("w", "web-1.eu"), "w.n.web-1~2Eeu");
    }

    #[test]
    fn wildcard_channels_are_recognised() {
        assert!(is_wildcard("a/+"));
        assert!(is_wildcard("#"));
        assert!(!is_wildcard("a/b+c"));
        assert!(!is_wildcard("a/b"));
    }
}
