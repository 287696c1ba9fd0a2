//! `--config wskit.toml`: one struct per subcommand, filled by clap and by the file.
//!
//! Each subcommand that reads a file (`serve`, `client`, `proxy`, `turn`) declares its flags
//! once, as one struct that derives both `clap::Args` and `serde::Deserialize`, wrapped in
//! `layered!`. The same field is the flag and the key of its
//! table: `--max-message` is `max_message`; a repeatable flag's field is plural and its singular
//! flag name is a serde alias (`protocols`, also `protocol`), like clap's other aliases.
//!
//! How the two meet:
//! - Every field says "not given" by itself: `Option<T>`, an empty `Vec<T>`, a `false` switch.
//!   No field has a clap default value: defaults are applied by the subcommand after merging
//!   (`unwrap_or(DEFAULT)`), and documented in the flag's help (`Default: ...`). A clap default
//!   would look like a flag given on the command line and hide the file's value.
//! - The struct is read twice: clap parses the command line into it, and serde reads the
//!   subcommand's table into another value of the same type (`#[serde(default,
//!   deny_unknown_fields)]`, so a misspelt key is an error).
//! - [`Layer::over`] merges them field by field, command line over file: an `Option` given on
//!   the command line wins, a repeatable flag given at least once replaces the file's whole
//!   list, a switch is on when either turns it on (a file's `true` cannot be turned off by a
//!   flag; there are no `--no-no-...` flags). `layered!` writes `over` from the field list, so
//!   there is no second list of fields to keep in step.
//! - Fields only the command line has (`config` itself, `client`'s URL) are `#[serde(skip)]`;
//!   keys only the file has (`serve`'s `test_page`) are `#[arg(skip)]`.
//!
//! So the order is: command line, then the file's table, then the defaults in the code.

use std::path::Path;

use anyhow::Context as _;

/// The tables a wskit.toml may hold, one per subcommand that reads `--config`.
pub(crate) const TABLES: &[&str] = &["serve", "client", "proxy", "turn"];

/// Two values of one settings struct, merged: `self` (the command line) over `lower` (the
/// file).
pub(crate) trait Layer: Sized {
    /// `self` where it was given, `lower` elsewhere.
    #[must_use]
    fn over(self, lower: Self) -> Self;
}

impl<T> Layer for Option<T> {
    fn over(self, lower: Self) -> Self {
        self.or(lower)
    }
}

/// A repeatable flag: given at least once, its values replace the file's list.
impl<T> Layer for Vec<T> {
    fn over(self, lower: Self) -> Self {
        if self.is_empty() { lower } else { self }
    }
}

/// A switch: on when either turns it on.
impl Layer for bool {
    fn over(self, lower: Self) -> Self {
        self || lower
    }
}

/// A required positional argument (the file has none): the command line's.
impl Layer for String {
    fn over(self, lower: Self) -> Self {
        if self.is_empty() { lower } else { self }
    }
}

/// Declares a settings struct (with its derives and attributes, written as usual) and
/// implements [`Layer`] for it from its field list: each field merged with its type's `Layer`.
macro_rules! layered {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $field_vis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $(
                $(#[$field_meta])*
                $field_vis $field: $ty,
            )*
        }

        impl $crate::cmd::config::Layer for $name {
            fn over(self, lower: Self) -> Self {
                Self {
                    $( $field: $crate::cmd::config::Layer::over(self.$field, lower.$field), )*
                }
            }
        }
    };
}
pub(crate) use layered;

/// The command line's settings over the `[table]` of the file `config` names (the command line
/// alone without one).
///
/// # Errors
/// The file cannot be read, is not TOML, holds a table no subcommand reads, or a key `A` does
/// not know.
pub(crate) fn merged<A>(flags: A, config: Option<&Path>, table: &str) -> anyhow::Result<A>
where
    A: Layer + serde::de::DeserializeOwned,
{
    match config {
        Some(path) => Ok(flags.over(read_table(path, table)?)),
        None => Ok(flags),
    }
}

/// Reads the `[name]` table of a wskit.toml into `T` (an empty table when the file has none);
/// other subcommands own the other tables. A table (or top-level key) that no subcommand reads is
/// an error listing the known tables, so that a misspelt `[sevre]` is not silently ignored.
pub(crate) fn read_table<T: serde::de::DeserializeOwned>(
    path: &Path,
    name: &str,
) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: toml::Table = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
    if let Some(unknown) = value.keys().find(|k| !TABLES.contains(&k.as_str())) {
        let known = TABLES
            .iter()
            .map(|t| format!("[{t}]"))
            .collect::<Vec<_>>()
            .join(", ");
        anyhow::bail!(
            "{}: unknown table [{unknown}]; known tables: {known}",
            path.display()
        );
    }
    let table = value
        .get(name)
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    table.try_into().map_err(|e: toml::de::Error| {
        anyhow::anyhow!("[{name}] in {}: {}", path.display(), e.message())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    layered! {
        #[derive(Debug, Default, PartialEq, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Demo {
            /// A value.
            n: Option<u32>,
            #[serde(alias = "item")]
            items: Vec<String>,
            on: bool,
            #[serde(skip)]
            url: String,
        }
    }

    #[test]
    fn the_command_line_wins_field_by_field() {
        let file = Demo {
            n: Some(1),
            items: vec!["file".into()],
            on: true,
            url: String::new(),
        };
        let flags = Demo {
            n: Some(2),
            url: "ws://h/".into(),
            ..Demo::default()
        };
        assert_eq!(
            flags.over(file),
            Demo {
                n: Some(2),
                items: vec!["file".into()],
                on: true,
                url: "ws://h/".into(),
            }
        );
        let flags = Demo {
            items: vec!["a".into(), "b".into()],
            ..Demo::default()
        };
        let merged = flags.over(Demo {
            items: vec!["file".into()],
            ..Demo::default()
        });
        assert_eq!(merged.items, ["a", "b"]);
        assert_eq!(merged.n, None);
        assert!(!merged.on);
    }
}
