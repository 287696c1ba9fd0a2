//! The errors and output a user meets on the command line: errors name flags (not the library's
//! fields) on one first line, an address in use names the address, `stun-client` says when
//! nothing answered, `--listen` takes a host name, servers say `listening` once, logs carry no
//! colour codes when stderr is not a terminal, and SIGTERM stops a server like Ctrl-C.

mod cli;

use std::net::{TcpListener, UdpSocket};

use cli::{Server, fails_with, free_port, read_close, run, ws_connect};

#[test]
fn proxy_errors_name_the_flags() {
    fails_with(
        &["proxy"],
        "nothing to proxy to: give --to URL (e.g. --to tcp://127.0.0.1:5900), --route PATH=URL, \
         --token-file FILE, --http-upstream URL or --backend URL",
    );
    fails_with(
        &["proxy", "--to", "http://x:1"],
        "--to \"http://x:1\": expected tcp://, tls://, ws:// or wss://",
    );
    fails_with(&["proxy", "--to", "x"], "--to \"x\": missing port");
    fails_with(
        &["proxy", "--route", "novalue"],
        "--route expects PATH=URL (e.g. /vnc=tcp://127.0.0.1:5900), got \"novalue\"",
    );
    fails_with(
        &["proxy", "--route", "/a=foo"],
        "--route \"/a=foo\": missing port",
    );
    fails_with(
        &["proxy", "--route", "a=x:1"],
        "--route \"a=x:1\": the path must start with '/'",
    );
    fails_with(
        &["proxy", "--token-file", "/nonexistent/tokens"],
        "--token-file /nonexistent/tokens: No such file or directory (os error 2)",
    );
    fails_with(
        &["proxy", "--to", "x:1", "--http-upstream", "ws://x:1"],
        "--http-upstream \"ws://x:1\": expected http:// or https://",
    );
    fails_with(
        &["proxy", "--to", "x:1", "--http-timeout", "5"],
        "--http-timeout needs --http-upstream",
    );
    fails_with(
        &["proxy", "--to", "x:1", "--proxy-protocol", "v3"],
        "--proxy-protocol expects v1 or v2, got \"v3\"",
    );
    fails_with(
        &["proxy", "--to", "x:1", "--connect-timeout", "0"],
        "--connect-timeout must be at least 1 second",
    );
}

#[test]
fn turn_errors_name_the_flags() {
    fails_with(
        &["turn"],
        "wskit turn needs credentials: --user NAME:PASSWORD (repeatable) or --auth-secret SECRET \
         (TURN REST API)",
    );
    fails_with(
        &["turn", "--user", "nocolon"],
        "--user expects NAME:PASSWORD, got \"nocolon\"",
    );
    fails_with(
        &["turn", "--auth-secret", ""],
        "--auth-secret must not be empty",
    );
    fails_with(
        &[
            "turn",
            "--user",
            "a:b",
            "--min-port",
            "60000",
            "--max-port",
            "50000",
        ],
        "--min-port 60000 is above --max-port 50000: the relay port range is empty",
    );
    fails_with(
        &["turn", "--user", "a:b", "--min-port", "0"],
        "--min-port must be at least 1",
    );
    fails_with(
        &["turn", "--user", "a:b", "--listen", "0.0.0.0:0"],
        "--relay-ip is needed when --listen is a wildcard address (0.0.0.0): give the address of \
         this host that peers can reach",
    );
    // 192.0.2.0/24 is TEST-NET-1: never an address of this host.
    let r = run(&["turn", "--user", "a:b", "--relay-ip", "192.0.2.1"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.first_line()
            .starts_with("--relay-ip 192.0.2.1: cannot bind a relay socket there"),
        "{r:?}"
    );
    fails_with(
        &["turn", "--user", "a:b", "--allow-peer", "10/99"],
        "--allow-peer \"10/99\": expected a network as ADDRESS/BITS, e.g. 10.0.0.0/8",
    );
    fails_with(
        &["turn", "--user", "a:b", "--lifetime", "7200"],
        "--lifetime 7200 is above --max-lifetime 3600",
    );
    fails_with(
        &["turn", "--user", "a:b", "--no-udp", "--no-tcp"],
        "--no-udp and --no-tcp together leave nothing to listen on",
    );
}

#[test]
fn library_limits_are_reported_with_the_flags() {
    fails_with(
        &["serve", "--listen", "127.0.0.1:0", "--max-frame", "0"],
        "--max-frame must be at least 125",
    );
    fails_with(
        &["serve", "--listen", "127.0.0.1:0", "--send-queue", "0"],
        "--send-queue must be at least 1",
    );
    fails_with(
        &["proxy", "--to", "x:1", "--idle-timeout", "0"],
        "--idle-timeout must not be zero",
    );
    fails_with(
        &["turn", "--user", "a:b", "--threads", "100"],
        "--threads must be at most 64",
    );
}

#[test]
fn an_address_in_use_is_named_by_every_server() {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = tcp.local_addr().unwrap().to_string();
    let in_use = format!("cannot listen on {taken}: Address already in use (os error 98)");
    fails_with(&["serve", "--listen", &taken], &in_use);
    fails_with(&["proxy", "--to", "x:1", "--listen", &taken], &in_use);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let taken = udp.local_addr().unwrap().to_string();
    let in_use = format!("cannot listen on udp {taken}: Address already in use (os error 98)");
    fails_with(&["turn", "--user", "a:b", "--listen", &taken], &in_use);
    fails_with(&["stun", "--listen", &taken], &in_use);
}

#[test]
fn stun_client_takes_stun_uris_and_says_when_nothing_answered() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_wskit"))
        .args(["stun", "--listen", &listen])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let uri = format!("stun:{listen}");
    // The server may take a while to bind on a loaded machine (5 s was once not enough).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut answer = run(&["stun-client", &uri]);
    while answer.code != Some(0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        answer = run(&["stun-client", &uri]);
    }
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(answer.code, Some(0), "{answer:?}");
    assert!(answer.stdout.trim().starts_with("127.0.0.1:"), "{answer:?}");

    // A socket that takes the request and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let r = run(&["stun-client", &silent_addr, "--timeout", "1"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.first_line(),
        format!(
            "no answer from {silent_addr} over UDP within 1 s: is a STUN server running there \
             (`wskit stun` starts one)? Try --tcp if UDP is filtered."
        ),
    );
    drop(silent);

    // Nothing listens on that port any more.
    let r = run(&["stun-client", &uri, "--timeout", "2"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.first_line()
            .starts_with(&format!("no answer from {listen} over UDP")),
        "{r:?}"
    );
}

#[test]
fn serve_resolves_listen_names_says_listening_once_without_colours_and_stops_on_sigterm() {
    let server = Server::start(&["serve", "--listen", "localhost:0"]);
    assert_eq!(server.addrs.len(), 1);
    assert!(server.addrs[0].ip().is_loopback());
    let mut ws = ws_connect(server.addrs[0], "/echo").expect("upgrade");
    let (code, stdout, stderr) = server.terminate();
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(
        read_close(&mut ws),
        (1001, String::new()),
        "SIGTERM closes connections with 1001"
    );
    let listening: Vec<&String> = stdout.iter().filter(|l| l.contains("listening")).collect();
    assert_eq!(listening.len(), 1, "stdout: {stdout:?}");
    assert!(
        !stderr.contains("listening"),
        "the address is said once, on stdout; stderr: {stderr}"
    );
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
}

#[test]
fn proxy_logs_backend_failures_and_connections_at_info_and_stops_on_sigterm() {
    // A port nothing listens on.
    let backend = format!("tcp://127.0.0.1:{}", free_port());
    let proxy = Server::start(&["proxy", "--listen", "127.0.0.1:0", "--to", &backend]);
    let mut ws = ws_connect(proxy.addrs[0], "/").expect("upgrade");
    let (code, reason) = read_close(&mut ws);
    assert_eq!(code, 1011);
    assert!(reason.starts_with("backend unavailable"), "{reason}");
    let (exit, _, stderr) = proxy.terminate();
    assert_eq!(exit, Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("backend unavailable"))
        .unwrap_or_else(|| panic!("no backend failure in the log: {stderr}"));
    assert!(line.contains("INFO"), "{line}");
    assert!(stderr.contains("SIGTERM: stopping"), "{stderr}");
}

#[test]
fn turn_logs_a_refused_peer_once_per_allocation_with_the_flag_that_allows_it() {
    use std::io::Read as _;
    let listen = format!("127.0.0.1:{}", free_port());
    let mut turn = cli::wskit()
        .args(["turn", "--user", "alice:pw", "--listen", &listen])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let server = format!("turn:{listen}");
    let check = [
        "turn-client",
        &server,
        "--user",
        "alice:pw",
        "--peer",
        "127.0.0.1:9",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut r = run(&check);
    while !r.stdout.contains("allocate:") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        r = run(&check);
    }
    assert_eq!(r.code, Some(1), "the permission is refused: {r:?}");
    let second = run(&check);
    assert_eq!(second.code, Some(1), "{second:?}");
    cli::signal(&turn, "-TERM");
    let status = turn.wait().unwrap();
    let mut stderr = String::new();
    turn.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refused peer 127.0.0.1:9"))
        .collect();
    assert_eq!(refused.len(), 2, "one line per allocation: {stderr}");
    for line in refused {
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("--allow-loopback-peers"), "{line}");
    }
}
