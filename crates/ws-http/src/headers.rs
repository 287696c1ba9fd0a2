//! Owned header fields with case-insensitive lookup and list helpers, plus the RFC 9110
//! character classes the parsers and builders share.

/// Header fields in arrival order. Names keep the case they were sent with; every lookup is
/// ASCII case-insensitive. Values are trimmed of surrounding whitespace.
///
/// ```
/// let mut h = ws_http::Headers::new();
/// h.push("Connection", "keep-alive, Upgrade");
/// h.push("connection", "x-other");
/// assert_eq!(h.get("CONNECTION"), Some("keep-alive, Upgrade"));
/// assert!(h.has_token("connection", "upgrade"));
/// assert_eq!(h.tokens("Connection").collect::<Vec<_>>(), ["keep-alive", "Upgrade", "x-other"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    fields: Vec<(String, String)>,
}

impl Headers {
    /// No fields.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a field (no validation: the builders check names and values when writing).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields.push((name.into(), value.into()));
    }

    /// Number of field lines.
    #[must_use]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// All fields as `(name, value)` in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The value of the first field named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The values of every field named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a field named `name` is present.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// How many field lines are named `name`.
    #[must_use]
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// The elements of the comma-separated list formed by every field named `name` (RFC 9110
    /// section 5.3: several lines are one list), trimmed, empty elements skipped. Meant for token
    /// lists such as `Connection`, `Upgrade`, `Transfer-Encoding`, `Sec-WebSocket-Protocol`;
    /// it does not understand quoted strings.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Whether the list in the fields named `name` contains `token` (ASCII case-insensitive).
    #[must_use]
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.tokens(name).any(|t| t.eq_ignore_ascii_case(token))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<T: IntoIterator<Item = (N, V)>>(iter: T) -> Self {
        Self {
            fields: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

/// RFC 9110 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 9110 `token`: one or more `tchar`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// A field value that can be written: visible ASCII, obs-text, SP and HTAB; no CR, LF, NUL or
/// other controls.
pub(crate) fn is_field_value(s: &str) -> bool {
    s.bytes()
        .all(|b| b == b'\t' || b == b' ' || (b >= 0x21 && b != 0x7f))
}

/// Fields as they were received (already checked by the parser).
pub(crate) fn from_fields(fields: Vec<(String, String)>) -> Headers {
    Headers { fields }
}
