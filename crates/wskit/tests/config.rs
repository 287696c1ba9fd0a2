//! wskit.toml as the binary reads it: the annotated example at the repository root loads, an
//! unknown table is an error that lists the known ones, keys are spelled like the flags.

mod cli;

use std::path::{Path, PathBuf};

use cli::{Server, fails_with};

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../wskit.toml.example")
        .to_string_lossy()
        .into_owned()
}

fn write(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wskit-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_example_loads_in_every_subcommand() {
    let example = example();
    // Each table loads; what is left to say is what the example leaves for the user to set.
    fails_with(
        &["turn", "--config", &example],
        "wskit turn needs credentials: --user NAME:PASSWORD (repeatable) or --auth-secret SECRET \
         (TURN REST API)",
    );
    fails_with(
        &["proxy", "--config", &example],
        "nothing to proxy to: give --to URL (e.g. --to tcp://127.0.0.1:5900), --route PATH=URL, \
         --token-file FILE, --http-upstream URL or --backend URL",
    );
    let serve = Server::start(&["serve", "--config", &example, "--listen", "127.0.0.1:0"]);
    let (code, _, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn an_unknown_table_is_an_error_listing_the_known_ones() {
    let path = write("typo.toml", "[sevre]\nlisten = [\"127.0.0.1:1\"]\n");
    let shown = path.display().to_string();
    fails_with(
        &["serve", "--config", &shown],
        &format!(
            "{shown}: unknown table [sevre]; known tables: [serve], [client], [proxy], [turn]"
        ),
    );
    let path = write("key.toml", "[serve]\nlisen = [\"127.0.0.1:1\"]\n");
    let r = cli::run(&["serve", "--config", &path.display().to_string()]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.first_line().contains("unknown field `lisen`"),
        "{:?}",
        r.first_line()
    );
}

#[test]
fn keys_are_spelled_like_the_flags() {
    let path = write(
        "flags.toml",
        "[serve]\nlisten = [\"localhost:0\"]\nprotocol = [\"chat\"]\norigin = [\"http://a\"]\n\
         no_test_page = true\n",
    );
    let serve = Server::start(&["serve", "--config", &path.display().to_string()]);
    let addr = serve.addrs[0];
    assert!(addr.ip().is_loopback());
    // no_test_page: / answers 404.
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let (code, _, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr}");
}

/// One file for both ends: `[serve]` offers the `chat` subprotocol on a port of its own, and
/// `[client]` asks for it. A flag on either side wins over its table; with neither, the
/// defaults (no subprotocol).
#[test]
fn flags_win_over_the_file_and_the_file_over_the_defaults() {
    let path = write(
        "layers.toml",
        "[serve]\nlisten = [\"127.0.0.1:0\"]\nprotocols = [\"chat\", \"json\"]\n\
         [client]\nprotocol = [\"chat\"]\nlinger = 0\n",
    );
    let config = path.display().to_string();
    // The file's protocols (the server's listen address from the file too).
    let serve = Server::start(&["serve", "--config", &config]);
    let url = format!("ws://{}/echo", serve.addrs[0]);
    let client = cli::run(&["client", "--config", &config, &url]);
    assert_eq!(client.code, Some(0), "{client:?}");
    assert!(
        client.stderr.contains("(protocol chat)"),
        "the file's subprotocol: {client:?}"
    );
    // The client's flag wins over its table.
    let client = cli::run(&["client", "--config", &config, "--protocol", "json", &url]);
    assert!(
        client.stderr.contains("(protocol json)"),
        "the flag's subprotocol: {client:?}"
    );
    // Without the file: no subprotocol offered.
    let client = cli::run(&["client", "--linger", "0", &url]);
    assert_eq!(client.code, Some(0), "{client:?}");
    assert!(!client.stderr.contains("(protocol"), "{client:?}");
    let (code, _, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr}");

    // The server's flag wins over its table: it speaks only `json` now, so a client offering
    // the file's `chat` is refused (a subprotocol mismatch is refused by default, as in the
    // seed), and one offering `json` gets it.
    let serve = Server::start(&["serve", "--config", &config, "--protocol", "json"]);
    let url = format!("ws://{}/echo", serve.addrs[0]);
    let client = cli::run(&["client", "--config", &config, &url]);
    assert_eq!(client.code, Some(1), "{client:?}");
    assert!(
        client.stderr.contains("this server speaks: json"),
        "{client:?}"
    );
    let client = cli::run(&["client", "--config", &config, "--protocol", "json", &url]);
    assert!(client.stderr.contains("(protocol json)"), "{client:?}");
    drop(serve);
}
