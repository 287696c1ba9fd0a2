//! One module per subcommand: each turns flags (and `--config wskit.toml` where offered) into a
//! library `Config` and calls the library.

pub(crate) mod apikey;
pub(crate) mod backplane;
pub(crate) mod bench;
pub(crate) mod cert;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod jwt;
pub(crate) mod mqtt;
pub(crate) mod oauth2;
pub(crate) mod oauth2_client;
pub(crate) mod proxy;
pub(crate) mod serve;
pub(crate) mod stun;
pub(crate) mod stun_client;
pub(crate) mod turn;
pub(crate) mod turn_client;

#[cfg(test)]
use config::{TABLES, read_table};

/// A library's configuration error in the words of the command line: the snake_case field names
/// that are flags of `A` written as the flags (`max_frame` becomes `--max-frame`), and the
/// wrapping "invalid ... configuration:" left out.
pub(crate) fn in_flag_terms<A: clap::Args>(text: &str) -> String {
    let command = A::augment_args(clap::Command::new("wskit"));
    let flags: Vec<&str> = command
        .get_arguments()
        .filter_map(clap::Arg::get_long)
        .collect();
    let mut text = text;
    while let Some(rest) = [
        "invalid server configuration: ",
        "invalid proxy configuration: ",
        "invalid configuration: ",
        "websocket limits: ",
    ]
    .iter()
    .find_map(|p| text.strip_prefix(p))
    {
        text = rest;
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let flag = word.replace('_', "-");
        if word.contains('_') && flags.contains(&flag.as_str()) {
            out.push_str("--");
            out.push_str(&flag);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// `HOST:PORT` for `--listen`: an IP address, or a name resolved now (its first IPv4 address,
/// else its first address), so that `--listen localhost:8081` works.
pub(crate) fn listen_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    if s.rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(format!(
            "expected HOST:PORT (e.g. 127.0.0.1:8080), got {s:?}"
        ));
    }
    let addrs: Vec<_> = s
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// `listen = [...]` in wskit.toml, resolved like the flag.
pub(crate) fn de_listen<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<std::net::SocketAddr>, D::Error> {
    let names: Vec<String> = serde::Deserialize::deserialize(d)?;
    names
        .iter()
        .map(|s| listen_addr(s).map_err(serde::de::Error::custom))
        .collect()
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM, whichever comes first, and says which: servers stop the
/// same way for both (WebSocket connections get a Close with 1001, going away).
///
/// # Errors
/// When a signal handler cannot be installed.
pub(crate) async fn shutdown_signal() -> anyhow::Result<()> {
    use anyhow::Context as _;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let which = tokio::select! {
        r = tokio::signal::ctrl_c() => {
            r.context("installing the Ctrl-C handler")?;
            "Ctrl-C"
        }
        _ = term.recv() => "SIGTERM",
    };
    tracing::info!("{which}: stopping");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// The annotated example at the repository root.
    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wskit.toml.example")
    }

    /// The keys of a subcommand's table: the ids of its named flags (the struct's field
    /// names), but `--config`.
    fn flag_keys<A: clap::Args>() -> Vec<String> {
        A::augment_args(clap::Command::new("wskit"))
            .get_arguments()
            .filter(|a| a.get_long().is_some() && a.get_id() != "config")
            .map(|a| a.get_id().to_string())
            .collect()
    }

    /// The keys of `[table]`, active or written as `#key = value`, and the names quoted in its
    /// comments (aliases).
    fn keys_of(text: &str, table: &str) -> Vec<String> {
        let mut inside = false;
        let mut keys = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('[') {
                inside = name.trim_end_matches(']') == table;
                continue;
            }
            if !inside {
                continue;
            }
            // Aliases are documented in the comments: "(also `user`)".
            if line.starts_with("# ") {
                keys.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
                continue;
            }
            let line = line.strip_prefix('#').unwrap_or(line);
            if inside
                && let Some((key, _)) = line.split_once(" = ")
                && !key.contains(' ')
            {
                keys.push(key.to_owned());
            }
        }
        keys
    }

    /// Loads `[table]` of `text` with the binary's loader.
    fn load<T: serde::de::DeserializeOwned>(
        text: &str,
        table: &str,
        name: &str,
    ) -> Result<T, String> {
        let dir = std::env::temp_dir().join(format!("wskit-example-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wskit.toml");
        std::fs::write(&path, text).unwrap();
        let r = read_table::<T>(&path, table).map_err(|e| format!("{e:#}"));
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    fn check<T: serde::de::DeserializeOwned + clap::Args>(
        text: &str,
        uncommented: &str,
        table: &str,
    ) {
        load::<T>(text, table, "as-is").unwrap_or_else(|e| panic!("[{table}] as written: {e}"));
        load::<T>(uncommented, table, "all")
            .unwrap_or_else(|e| panic!("[{table}] with every #key turned on: {e}"));
        let keys = keys_of(text, table);
        for field in flag_keys::<T>() {
            assert!(
                keys.contains(&field),
                "wskit.toml.example: [{table}] does not document `{field}`"
            );
        }
    }

    #[test]
    fn the_example_documents_every_key_and_loads() {
        let text = std::fs::read_to_string(example()).unwrap();
        // `#key = value` lines are settings to turn on: they must load too.
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        check::<serve::Args>(&text, &uncommented, "serve");
        check::<client::Args>(&text, &uncommented, "client");
        check::<proxy::Args>(&text, &uncommented, "proxy");
        check::<turn::Args>(&text, &uncommented, "turn");
        let tables: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix('[')?.strip_suffix(']'))
            .collect();
        assert_eq!(
            tables, TABLES,
            "one table per subcommand that reads --config"
        );
    }

    #[test]
    fn unknown_tables_are_errors_that_list_the_known_ones() {
        let e = load::<toml::Table>("[sevre]\nlisten = []\n", "serve", "unknown").unwrap_err();
        assert!(
            e.ends_with("unknown table [sevre]; known tables: [serve], [client], [proxy], [turn]"),
            "{e}"
        );
        // Another subcommand's table is fine.
        load::<toml::Table>("[proxy]\nto = \"x:1\"\n", "serve", "other").unwrap();
    }

    #[test]
    fn singular_keys_and_no_test_page_are_accepted() {
        let f: serve::Args = load(
            "[serve]\nprotocol = [\"chat\"]\norigin = [\"http://a\"]\nuser = [\"a:b\"]\n\
             no_test_page = true\nlisten = [\"localhost:8081\"]\n",
            "serve",
            "aliases",
        )
        .unwrap();
        let s = format!("{f:?}");
        for want in [
            "\"chat\"",
            "\"http://a\"",
            "\"a:b\"",
            "no_test_page: true",
            "127.0.0.1:8081",
        ] {
            assert!(s.contains(want), "{want} in {s}");
        }
    }

    #[test]
    fn library_field_names_become_flags() {
        assert_eq!(
            in_flag_terms::<serve::Args>(
                "invalid server configuration: websocket limits: max_frame exceeds max_message"
            ),
            "--max-frame exceeds --max-message"
        );
        assert_eq!(
            in_flag_terms::<serve::Args>(
                "invalid server configuration: send_queue must be at least 1"
            ),
            "--send-queue must be at least 1"
        );
        // Words that are not snake_case field names of a flag stay as they are.
        assert_eq!(
            in_flag_terms::<serve::Args>("root and write_buffer_limit"),
            "root and write_buffer_limit"
        );
    }

    #[test]
    fn listen_resolves_names() {
        assert_eq!(
            listen_addr("127.0.0.1:1").unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(listen_addr("localhost:8081").unwrap().port(), 8081);
        assert!(listen_addr("localhost").unwrap_err().contains("HOST:PORT"));
        assert!(listen_addr("no.such.host.invalid:80").is_err());
    }
}
