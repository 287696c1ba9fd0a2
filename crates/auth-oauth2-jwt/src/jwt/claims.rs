//! [`Claims`]: a verified token's payload, with typed accessors.

use serde_json::{Map, Value};

/// The claims of a token (its JSON payload object).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims(pub Map<String, Value>);

impl Claims {
    /// A claim by name.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// A string claim.
    #[must_use]
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// `sub`.
    #[must_use]
    pub fn sub(&self) -> Option<&str> {
        self.str("sub")
    }

    /// `iss`.
    #[must_use]
    pub fn iss(&self) -> Option<&str> {
        self.str("iss")
    }

    /// `aud` as a list (a single string becomes one entry).
    #[must_use]
    pub fn aud(&self) -> Vec<&str> {
        match self.0.get("aud") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// `exp` in Unix seconds.
    #[must_use]
    pub fn exp(&self) -> Option<u64> {
        self.0.get("exp").and_then(Value::as_u64)
    }

    /// The `scope` claim split on spaces (RFC 9068 / RFC 8693).
    #[must_use]
    pub fn scopes(&self) -> Vec<&str> {
        self.str("scope")
            .map(|s| s.split(' ').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    /// The claims as a JSON string.
    #[must_use]
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}
