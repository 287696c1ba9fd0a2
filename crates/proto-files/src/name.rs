//! File-name rules: a received name is a bare file name or it is refused.

use crate::error::{Code, Error};

/// Longest accepted name, in bytes.
pub const MAX_NAME: usize = 255;

/// Checks that `name` is a bare file name that stays inside a directory: not empty, at most
/// 255 bytes, no `/`, `\`, NUL or control characters, not `.` or `..`, not a Windows drive
/// (`C:`) or device-looking name with a colon.
///
/// # Errors
/// [`Error::Protocol`] with [`Code::InvalidName`], saying what is wrong.
pub fn check_name(name: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error::proto(
            Code::InvalidName,
            format!("file name {name:?} {why}"),
        ))
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME {
        return bad("is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("is a directory reference");
    }
    if name.contains(['/', '\\']) {
        return bad("contains a path separator");
    }
    if name.contains(':') {
        return bad("contains a colon");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if name.trim() != name || name.ends_with('.') {
        return bad("begins or ends with a space or ends with a dot");
    }
    Ok(())
}

/// The `n`-th alternative of `name`: `report (2).pdf` for `report.pdf` and 2.
#[must_use]
pub fn numbered(name: &str, n: u32) -> String {
    match name.rfind('.') {
        Some(dot) if dot > 0 => format!("{} ({n}){}", &name[..dot], &name[dot..]),
        _ => format!("{name} ({n})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_odd_names_are_refused() {
        for n in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "/etc/passwd",
            "C:x",
            "a\0b",
            "a\nb",
            " a",
            "a ",
            "a.",
            "..\\..\\x",
        ] {
            let e = check_name(n).unwrap_err();
            assert_eq!(e.code(), Code::InvalidName, "{n:?}");
        }
        assert!(check_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn ordinary_names_pass() {
        for n in [
            "a",
            "report.pdf",
            ".hidden",
            "a..b",
            "été 2026.txt",
            &"a".repeat(255),
        ] {
            check_name(n).unwrap();
        }
    }

    #[test]
    fn numbering_keeps_the_extension() {
        assert_eq!(numbered("report.pdf", 2), "report (2).pdf");
        assert_eq!(numbered("README", 3), "README (3)");
        assert_eq!(numbered(".hidden", 1), ".hidden (1)");
    }
}
