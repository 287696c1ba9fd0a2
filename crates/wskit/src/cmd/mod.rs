//! One module per subcommand: each turns flags (and `--config wskit.toml` where offered) into a
//! library `Config` and calls the library.

pub(crate) mod bench;
pub(crate) mod client;
pub(crate) mod proxy;
pub(crate) mod serve;
pub(crate) mod stun;
pub(crate) mod stun_client;
pub(crate) mod turn;

/// Reads the `[name]` table of a wskit.toml into `T` (an empty table when the file has none);
/// other subcommands own the other tables.
pub(crate) fn read_table<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    name: &str,
) -> anyhow::Result<T> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: toml::Value =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let table = value
        .get(name)
        .cloned()
        .unwrap_or(toml::Value::Table(Default::default()));
    table
        .try_into()
        .with_context(|| format!("[{name}] in {}", path.display()))
}

/// The flag's values when it was given, else the file's.
pub(crate) fn or_vec<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
    if flag.is_empty() { file } else { flag }
}
