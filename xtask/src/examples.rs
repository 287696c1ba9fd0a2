//! `cargo xtask examples`: build every crate's examples once, then run each for a moment, the
//! servers paired with the clients that talk to them.
//!
//! ```text
//!  ws-frame  duplex            alone (client and server over an in-memory pipe)
//!  ws-http   upgrade           alone (a listener and a client thread over loopback TCP)
//!  ws-server echo              + ws-client through_proxy (directly, and through tinyproxy given
//!                                by --proxy and by WS_PROXY)
//!            echo, twice       + ws-client reconnect (connects, loses it, reconnects)
//!            chat              + two through_proxy clients (one hears the other)
//!            static_sse        + a raw HTTP GET of the page and of the event stream
//!            token_auth        + through_proxy with the right token and with a wrong one (401)
//!  ws-proxy  wss_bridge        alone (TLS bridge, TCP service and wss client in one process)
//!            proxy_load self   alone, one short round-trip test
//!  stun-turn stun_and_turn     against its own server, and against coturn
//!            turn_load alloc   against coturn
//!  proto-mqtt scram            alone (in-process test-double broker)
//!            tcp, ws, tls, wss against mosquitto (tls and wss with a certificate from openssl)
//! ```
//!
//! Servers get a free port (`--listen`) and `--for SECONDS`, so they stop by themselves and
//! their exit status counts too. A run fails on a non-zero exit, a panic message, a time limit,
//! or output that lacks what the pairing must show. Pairings whose peer (tinyproxy, coturn,
//! mosquitto) is not installed are skipped and reported; under `WSKIT_REQUIRE_PEERS=1` they
//! fail. Not run here: ws-client's `autobahn_client` (it needs Autobahn's fuzzingserver; the
//! `autobahn client` step runs it) and the benches crate's `mqtt_load` (a benchmark driver).
//! Output of every run: target/examples-run/.

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::proc::{Proc, free_port, target_dir, wait_listening};
use crate::util::{capture, cargo, have, step};

/// Longest any one example may run.
const LIMIT: Duration = Duration::from_secs(20);

/// Builds and runs the examples; returns the pairings skipped for a missing peer.
pub(crate) fn run() -> Result<Vec<String>> {
    step(
        "examples build",
        cargo().args(["build", "--workspace", "--examples", "--locked"]),
    )?;
    eprintln!("\n==> examples: run each for a moment");
    let started = Instant::now();
    let out = target_dir().join("examples-run");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut r = Runner {
        bins: target_dir().join("debug").join("examples"),
        out,
        failures: Vec::new(),
        skipped: Vec::new(),
        require: std::env::var("WSKIT_REQUIRE_PEERS").is_ok_and(|v| v == "1"),
    };
    let scenarios: [(&str, Scenario); 13] = [
        ("ws-frame duplex", |r| {
            r.alone("duplex", &[], "both ends closed cleanly")
        }),
        ("ws-http upgrade", |r| {
            r.alone("upgrade", &[], "plain GET got 426")
        }),
        ("ws-server echo + ws-client through_proxy", echo),
        ("ws-server echo + ws-client reconnect", reconnect),
        ("ws-server chat + two clients", chat),
        ("ws-server static_sse + HTTP GETs", static_sse),
        ("ws-server token_auth + through_proxy", token_auth),
        ("ws-proxy wss_bridge", |r| {
            let port = free_port()?.to_string();
            let args = ["--listen", &format!("127.0.0.1:{port}"), "--for", "0.2"];
            r.alone("wss_bridge", &args, "through the bridge: HELLO")
        }),
        ("ws-proxy proxy_load self", |r| {
            r.alone(
                "proxy_load",
                &["self", "0", "rt", "4", "0.5"],
                "result: test=rt",
            )
        }),
        ("stun-turn stun_and_turn", |r| {
            r.alone("stun_and_turn", &[], "turn: released")
        }),
        ("stun-turn examples + coturn", coturn),
        ("proto-mqtt scram", |r| r.alone("scram", &[], "")),
        ("proto-mqtt tcp, ws, tls, wss + mosquitto", mosquitto),
    ];
    for (name, scenario) in scenarios {
        let t = Instant::now();
        match scenario(&mut r) {
            Ok(()) => eprintln!("    ok   {name} ({:.1} s)", t.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("    FAIL {name}: {e:#}");
                r.failures.push(format!("{name}: {e:#}"));
            }
        }
    }
    eprintln!(
        "    examples ran in {:.1} s; output in {}",
        started.elapsed().as_secs_f64(),
        r.out.display()
    );
    if !r.failures.is_empty() {
        bail!("examples failed:\n  {}", r.failures.join("\n  "));
    }
    Ok(r.skipped)
}

/// One pairing: starts what it needs, checks the output, stops everything it started.
type Scenario = fn(&mut Runner) -> Result<()>;

struct Runner {
    bins: PathBuf,
    out: PathBuf,
    failures: Vec<String>,
    skipped: Vec<String>,
    require: bool,
}

/// A started example (or peer) whose stdout and stderr go to files.
struct Running {
    label: String,
    proc: Proc,
    stdout: PathBuf,
    stderr: PathBuf,
}

/// What a finished run printed.
struct Output {
    stdout: String,
    stderr: String,
}

impl Runner {
    /// Starts `program` (an example's name, or a peer's on PATH) with its output in files.
    fn spawn(&self, label: &str, program: &str, args: &[&str]) -> Result<Running> {
        self.spawn_env(label, program, args, &[])
    }

    /// [`Runner::spawn`] with extra environment variables.
    fn spawn_env(
        &self,
        label: &str,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Running> {
        let example = self.bins.join(program);
        let path = if example.is_file() {
            example
        } else {
            PathBuf::from(program) // a peer, found on PATH
        };
        let stdout = self.out.join(format!("{label}.out"));
        let stderr = self.out.join(format!("{label}.err"));
        let child = Command::new(&path)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout)?)
            .stderr(fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("{label}: could not start {}", path.display()))?;
        Ok(Running {
            label: label.to_owned(),
            proc: Proc::new(child),
            stdout,
            stderr,
        })
    }

    /// Waits for `run` to exit by itself; fails on a non-zero exit, a panic or the time limit.
    fn finish(&self, mut run: Running) -> Result<Output> {
        let deadline = Instant::now() + LIMIT;
        let status = loop {
            if let Some(status) = run.proc.child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                bail!("{} still running after {} s", run.label, LIMIT.as_secs());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = Output {
            stdout: fs::read_to_string(&run.stdout).unwrap_or_default(),
            stderr: fs::read_to_string(&run.stderr).unwrap_or_default(),
        };
        if !status.success() || out.stderr.contains("panicked") {
            bail!("{} exited with {status}:\n{}", run.label, tail(&out.stderr));
        }
        Ok(out)
    }

    fn run(&self, label: &str, program: &str, args: &[&str]) -> Result<Output> {
        self.finish(self.spawn(label, program, args)?)
    }

    /// Runs an example that needs nobody else and checks its stdout.
    fn alone(&mut self, name: &str, args: &[&str], expect: &str) -> Result<()> {
        let out = self.run(name, name, args)?;
        contains(name, &out.stdout, expect)
    }

    /// Starts a server example on a free port for `secs` and waits until it listens.
    fn server(
        &self,
        label: &str,
        name: &str,
        secs: &str,
        extra: &[&str],
    ) -> Result<(Running, u16)> {
        let port = free_port()?;
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["--listen", listen.as_str(), "--for", secs];
        args.extend_from_slice(extra);
        let mut run = self.spawn(label, name, &args)?;
        if let Some(status) = wait_listening(&mut run.proc, port, Duration::from_secs(10))? {
            let err = fs::read_to_string(&run.stderr).unwrap_or_default();
            bail!(
                "{label} exited with {status} before listening:\n{}",
                tail(&err)
            );
        }
        Ok((run, port))
    }

    /// Whether `peer` is installed; records the skip (or, under WSKIT_REQUIRE_PEERS=1, fails).
    fn peer(&mut self, peer: &str, what: &str) -> Result<bool> {
        if have(peer) {
            return Ok(true);
        }
        if self.require {
            bail!("WSKIT_REQUIRE_PEERS=1 but {peer} is not installed");
        }
        eprintln!("    skip {what}: {peer} is not installed");
        self.skipped
            .push(format!("examples {what}: {peer} is not installed"));
        Ok(false)
    }
}

fn contains(label: &str, text: &str, expect: &str) -> Result<()> {
    if !text.contains(expect) {
        bail!(
            "{label}: expected {expect:?} in its output, got:\n{}",
            tail(text)
        );
    }
    Ok(())
}

/// The last lines of an output, for error messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// echo + through_proxy, directly and through tinyproxy (HTTP CONNECT).
fn echo(r: &mut Runner) -> Result<()> {
    let (server, port) = r.server("echo", "echo", "2", &[])?;
    let url = format!("ws://127.0.0.1:{port}/");
    let out = r.run(
        "through_proxy-direct",
        "through_proxy",
        &[&url, "one", "two"],
    )?;
    contains("through_proxy", &out.stdout, "one\ntwo\n")?;
    if r.peer("tinyproxy", "ws-client through_proxy via tinyproxy")? {
        let proxy_port = free_port()?;
        let conf = r.out.join("tinyproxy.conf");
        fs::write(
            &conf,
            format!("Port {proxy_port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\n"),
        )?;
        let conf = conf.display().to_string();
        let mut tinyproxy = r.spawn("tinyproxy", "tinyproxy", &["-d", "-c", &conf])?;
        if let Some(status) =
            wait_listening(&mut tinyproxy.proc, proxy_port, Duration::from_secs(5))?
        {
            bail!("tinyproxy exited with {status}");
        }
        let proxy = format!("http://127.0.0.1:{proxy_port}");
        let out = r.run(
            "through_proxy-tinyproxy",
            "through_proxy",
            &["--proxy", &proxy, &url, "via tinyproxy"],
        )?;
        contains("through_proxy", &out.stdout, "via tinyproxy")?;
        contains("through_proxy", &out.stderr, "through http://")?;
        // The same proxy from the environment.
        let out = r.finish(r.spawn_env(
            "through_proxy-env",
            "through_proxy",
            &[&url, "via WS_PROXY"],
            &[("WS_PROXY", &proxy)],
        )?)?;
        contains(
            "through_proxy with WS_PROXY",
            &out.stderr,
            "through http://",
        )?;
    }
    r.finish(server)?;
    Ok(())
}

/// reconnect keeps sending while an echo server comes up, goes away and comes back.
fn reconnect(r: &mut Runner) -> Result<()> {
    let port = free_port()?;
    let url = format!("ws://127.0.0.1:{port}/");
    let listen = format!("127.0.0.1:{port}");
    let client = r.spawn("reconnect", "reconnect", &[&url, "--for", "4"])?;
    std::thread::sleep(Duration::from_millis(400)); // the first attempts fail: nobody listens
    r.run("echo-first", "echo", &["--listen", &listen, "--for", "1.2"])?;
    std::thread::sleep(Duration::from_millis(300));
    r.run(
        "echo-second",
        "echo",
        &["--listen", &listen, "--for", "1.5"],
    )?;
    let out = r.finish(client)?;
    let connects = out.stderr.matches("reconnect: connected to").count();
    if connects < 2 || !out.stdout.contains("tick") {
        bail!(
            "reconnect: expected two connections and echoed ticks, got:\n{}",
            tail(&out.stderr)
        );
    }
    Ok(())
}

/// Two clients in one room: bob lingers and hears alice.
fn chat(r: &mut Runner) -> Result<()> {
    let (server, port) = r.server("chat", "chat", "2", &[])?;
    let url = format!("ws://127.0.0.1:{port}/lobby");
    let bob = r.spawn(
        "chat-bob",
        "through_proxy",
        &["--linger", "1", &url, "hi from bob"],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let alice = r.run("chat-alice", "through_proxy", &[&url, "hi from alice"])?;
    contains("chat alice", &alice.stdout, "hi from alice")?;
    let bob = r.finish(bob)?;
    contains("chat bob", &bob.stdout, "hi from bob")?;
    contains("chat bob", &bob.stdout, "hi from alice")?;
    r.finish(server)?;
    Ok(())
}

/// The page from the document root, and a tick on the event stream.
fn static_sse(r: &mut Runner) -> Result<()> {
    let (server, port) = r.server("static_sse", "static_sse", "2", &[])?;
    let page = http(
        port,
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "</script>",
    )?;
    contains("static_sse GET /", &page, "HTTP/1.1 200")?;
    let events = http(
        port,
        "GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
        "data: tick 1\n",
    )?;
    contains("static_sse GET /events", &events, "event: tick")?;
    r.finish(server)?;
    Ok(())
}

/// The right token gets in (as alice), a wrong one gets 401, /health is public.
fn token_auth(r: &mut Runner) -> Result<()> {
    let (server, port) = r.server("token_auth", "token_auth", "1.5", &[])?;
    let good = format!("ws://127.0.0.1:{port}/?token=let-me-in");
    let out = r.run("token_auth-good", "through_proxy", &[&good, "hello"])?;
    contains("token_auth", &out.stdout, "alice said: hello")?;
    let bad = format!("ws://127.0.0.1:{port}/?token=wrong");
    match r.run("token_auth-bad", "through_proxy", &[&bad, "hello"]) {
        Ok(_) => bail!("token_auth: a wrong token was let in"),
        Err(e) => contains("token_auth with a wrong token", &format!("{e:#}"), "401")?,
    }
    let health = http(
        port,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "ok\n",
    )?;
    contains("token_auth GET /health", &health, "HTTP/1.1 200")?;
    r.finish(server)?;
    Ok(())
}

/// stun_and_turn and turn_load against coturn.
fn coturn(r: &mut Runner) -> Result<()> {
    if !r.peer("turnserver", "stun-turn against coturn")? {
        return Ok(());
    }
    let port = free_port()?;
    let port_s = port.to_string();
    let mut coturn = r.spawn(
        "coturn",
        "turnserver",
        &[
            "-n",
            "--listening-ip",
            "127.0.0.1",
            "--relay-ip",
            "127.0.0.1",
            "--listening-port",
            &port_s,
            "--user",
            "alice:secret",
            "--realm",
            "wskit",
            "--lt-cred-mech",
            "--allow-loopback-peers",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
        ],
    )?;
    if let Some(status) = wait_listening(&mut coturn.proc, port, Duration::from_secs(5))? {
        bail!("coturn exited with {status}");
    }
    let server = format!("127.0.0.1:{port}");
    let out = r.run(
        "stun_and_turn-coturn",
        "stun_and_turn",
        &["--server", &server, "--user", "alice:secret"],
    )?;
    contains(
        "stun_and_turn against coturn",
        &out.stdout,
        "turn: released",
    )?;
    let out = r.run(
        "turn_load-coturn",
        "turn_load",
        &["alloc", &server, "alice:secret", "20", "4"],
    )?;
    contains("turn_load against coturn", &out.stdout, "allocations: 20")?;
    Ok(())
}

/// proto-mqtt's tcp and ws examples against mosquitto; tls and wss too when openssl is there
/// to make the broker a self-signed certificate (the command of docs/tls-development.md).
fn mosquitto(r: &mut Runner) -> Result<()> {
    if !r.peer(
        "mosquitto",
        "proto-mqtt tcp, ws, tls and wss against mosquitto",
    )? {
        return Ok(());
    }
    let (tcp, ws, tls, wss) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let mut conf = format!(
        "per_listener_settings true\npersistence false\n\
         listener {tcp} 127.0.0.1\nprotocol mqtt\nallow_anonymous true\n\
         listener {ws} 127.0.0.1\nprotocol websockets\nallow_anonymous true\n"
    );
    let (cert, key) = (r.out.join("mqtt-cert.pem"), r.out.join("mqtt-key.pem"));
    let with_tls = r.peer(
        "openssl",
        "proto-mqtt tls and wss (a certificate for mosquitto)",
    )? && self_signed(&cert, &key)?;
    if with_tls {
        let (cert, key) = (cert.display(), key.display());
        conf.push_str(&format!(
            "listener {tls} 127.0.0.1\nprotocol mqtt\nallow_anonymous true\n\
             certfile {cert}\nkeyfile {key}\n\
             listener {wss} 127.0.0.1\nprotocol websockets\nallow_anonymous true\n\
             certfile {cert}\nkeyfile {key}\n"
        ));
    }
    let conf_file = r.out.join("mosquitto.conf");
    fs::write(&conf_file, conf)?;
    let conf_file = conf_file.display().to_string();
    let mut broker = r.spawn("mosquitto", "mosquitto", &["-c", &conf_file])?;
    let ports: &[u16] = if with_tls {
        &[tcp, ws, tls, wss]
    } else {
        &[tcp, ws]
    };
    for &port in ports {
        if let Some(status) = wait_listening(&mut broker.proc, port, Duration::from_secs(5))? {
            bail!("mosquitto exited with {status}");
        }
    }
    let out = r.run("mqtt-tcp", "tcp", &[&format!("mqtt://127.0.0.1:{tcp}")])?;
    contains("proto-mqtt tcp", &out.stdout, "wskit/example/tcp hello")?;
    let out = r.run("mqtt-ws", "ws", &[&format!("ws://127.0.0.1:{ws}/mqtt")])?;
    contains("proto-mqtt ws", &out.stdout, "wskit/example/ws hello")?;
    if with_tls {
        let cert = cert.display().to_string();
        let url = format!("mqtts://localhost:{tls}");
        let out = r.run("mqtt-tls", "tls", &[&url, &cert])?;
        contains("proto-mqtt tls", &out.stdout, "wskit/example/tls hello")?;
        let url = format!("wss://localhost:{wss}/mqtt");
        let out = r.run("mqtt-wss", "wss", &[&url, &cert])?;
        contains("proto-mqtt wss", &out.stdout, "wskit/example/wss hello")?;
    }
    Ok(())
}

/// A self-signed end-entity certificate for localhost, readable by mosquitto (which drops root
/// privileges); false when openssl fails.
fn self_signed(cert: &Path, key: &Path) -> Result<bool> {
    let out = capture(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
            ])
            .arg("-keyout")
            .arg(key)
            .arg("-out")
            .arg(cert),
    )?;
    if !out.status.success() {
        eprintln!(
            "    openssl failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return Ok(false);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(key, fs::Permissions::from_mode(0o644))?;
    }
    Ok(true)
}

/// Sends a raw HTTP request and reads until `until` appears (or 5 s pass).
fn http(port: u16, request: &str, until: &str) -> Result<String> {
    let mut sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    sock.write_all(request.as_bytes())?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
        if String::from_utf8_lossy(&got).contains(until) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    if !text.contains(until) {
        bail!(
            "GET on port {port}: no {until:?} within 5 s, got:\n{}",
            tail(&text)
        );
    }
    Ok(text)
}
