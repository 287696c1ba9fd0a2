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
         --token-file FILE or --http-upstream URL",
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
        &format!("{shown}: unknown table [sevre]; known tables: [serve], [proxy], [turn]"),
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
