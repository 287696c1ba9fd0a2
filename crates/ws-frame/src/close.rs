//! Close status codes (RFC 6455 section 7.4 and the IANA registry).

use std::fmt;

/// A close status code. A `u16` newtype with named constants, so codes nobody named yet still
/// round-trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: going away (server shutdown, page navigated away).
    pub const AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL: Self = Self(1002);
    /// 1003: received a data type it cannot accept.
    pub const UNSUPPORTED: Self = Self(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: closed without a Close frame (never sent on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: payload data inconsistent with the message type (e.g. invalid UTF-8).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation.
    pub const POLICY: Self = Self(1008);
    /// 1009: message too big to process.
    pub const TOO_BIG: Self = Self(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const EXTENSION: Self = Self(1010);
    /// 1011: unexpected condition inside the server.
    pub const INTERNAL: Self = Self(1011);
    /// 1012: service restart (IANA registry).
    pub const RESTART: Self = Self(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN: Self = Self(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: Self = Self(1014);
    /// 1015: TLS handshake failure (never sent on the wire).
    pub const TLS: Self = Self(1015);

    /// Wraps a raw code without checking it; see [`CloseCode::is_sendable`].
    #[must_use]
    pub const fn from_u16(code: u16) -> Self {
        Self(code)
    }

    /// The raw value.
    #[must_use]
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this code may appear in a Close frame: 1000-1003, 1007-1014 and 3000-4999.
    ///
    /// 1004 is reserved, 1005, 1006 and 1015 are only for reporting, 1016-2999 are unassigned
    /// and everything else is outside the ranges RFC 6455 section 7.4.2 allows.
    #[must_use]
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether a Close frame carrying this code is acceptable; the same set as
    /// [`CloseCode::is_sendable`]. Any other code in a received Close frame is a protocol error.
    #[must_use]
    pub const fn is_valid_received(self) -> bool {
        self.is_sendable()
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_table() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ];
        let invalid = [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for code in valid {
            assert!(CloseCode::from(code).is_valid_received(), "{code}");
            assert!(CloseCode::from(code).is_sendable(), "{code}");
        }
        for code in invalid {
            assert!(!CloseCode::from(code).is_valid_received(), "{code}");
            assert!(!CloseCode::from(code).is_sendable(), "{code}");
        }
    }

    #[test]
    fn constants_have_registry_values() {
        assert_eq!(CloseCode::NORMAL.as_u16(), 1000);
        assert_eq!(CloseCode::PROTOCOL.as_u16(), 1002);
        assert_eq!(CloseCode::NO_STATUS.as_u16(), 1005);
        assert_eq!(CloseCode::ABNORMAL.as_u16(), 1006);
        assert_eq!(CloseCode::INVALID_PAYLOAD.as_u16(), 1007);
        assert_eq!(CloseCode::TOO_BIG.as_u16(), 1009);
        assert_eq!(CloseCode::INTERNAL.as_u16(), 1011);
        assert_eq!(CloseCode::BAD_GATEWAY.as_u16(), 1014);
        assert_eq!(CloseCode::TLS.as_u16(), 1015);
        assert_eq!(CloseCode::TOO_BIG.to_string(), "1009");
    }
}
