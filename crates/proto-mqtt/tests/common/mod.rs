//! Test helpers: a mosquitto broker started per test on free ports (TCP, WebSocket, TLS, WSS,
//! and a TCP listener with a password file and an ACL), stopped by pid on drop;
//! paho-mqtt scripts. A missing peer skips or fails as `ws_testkit::peers` decides.

#![allow(dead_code, unreachable_pub)]

pub mod relay;

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use proto_mqtt::{Config, Version};
use ws_tls::test_certs::TestPki;

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A free TCP port on 127.0.0.1 (and on every interface, for mosquitto's WebSocket listener).
pub fn free_port() -> u16 {
    ws_testkit::peers::free_port()
}

/// mosquitto's dynamic-security plugin as the Debian package installs it.
pub const DYNSEC: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";

/// Broker options.
#[derive(Clone, Debug, Default)]
pub struct Opts {
    /// `persistence true` with a database in the broker's directory.
    pub persistence: bool,
    /// `max_inflight_messages N`.
    pub max_inflight: Option<u16>,
}

/// A running mosquitto.
pub struct Mosquitto {
    child: Option<Child>,
    /// Plain MQTT, anonymous.
    pub tcp: u16,
    /// WebSocket, anonymous.
    pub ws: u16,
    /// MQTT over TLS, anonymous.
    pub tls: u16,
    /// WebSocket over TLS, anonymous.
    pub wss: u16,
    /// Plain MQTT with dynamic security: user alice / wonderland may subscribe and publish
    /// to `public/#` and nothing else.
    pub auth: u16,
    /// The certificates (the server's is for localhost and 127.0.0.1).
    pub pki: TestPki,
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl Mosquitto {
    /// Starts a broker, or returns `None` (after [`missing`]) when mosquitto is not installed.
    pub fn start(opts: Opts) -> Option<Self> {
        if !have("mosquitto", "-h")
            || !have("mosquitto_ctrl", "--help")
            || !Path::new(DYNSEC).exists()
        {
            ws_testkit::peers::missing(
                "mosquitto is not installed",
                "apt-get install -y mosquitto",
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("proto-mqtt-broker-")
            .tempdir()
            .unwrap();
        // mosquitto started as root drops to the `mosquitto` user before it writes its log and
        // persistence database: let it write there.
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        let pki = TestPki::generate();
        let d = dir.path();
        // The auth listener uses mosquitto's dynamic-security plugin (its acl_file denies at
        // delivery, never at SUBSCRIBE): alice / wonderland may use public/#, nothing else.
        let dynsec = d.join("dynsec.json");
        let st = Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&dynsec)
            .args(["admin", "adminpw"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "mosquitto_ctrl dynsec init failed");
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dynsec, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        let cert = pki.server.cert_file.display().to_string();
        let key = pki.server.key_file.display().to_string();
        let d = d.to_path_buf();
        let mut m = Self {
            child: None,
            tcp: 0,
            ws: 0,
            tls: 0,
            wss: 0,
            auth: 0,
            pki,
            dir,
            conf: d.join("mosquitto.conf"),
        };
        // A port picked free can be taken by another process before the broker binds it
        // (tests run in parallel): the broker then exits; pick new ports and start again.
        let mut attempts = 0;
        loop {
            let (tcp, ws, tls, wss, auth) = (
                free_port(),
                free_port(),
                free_port(),
                free_port(),
                free_port(),
            );
            (m.tcp, m.ws, m.tls, m.wss, m.auth) = (tcp, ws, tls, wss, auth);
            let mut conf = String::new();
            conf.push_str("per_listener_settings true\n");
            if opts.persistence {
                conf.push_str(&format!(
                    "persistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 0\n",
                    d.display()
                ));
            } else {
                conf.push_str("persistence false\n");
            }
            if let Some(n) = opts.max_inflight {
                conf.push_str(&format!("max_inflight_messages {n}\n"));
            }
            conf.push_str(&format!(
                "log_dest file {}/mosquitto.log\nlog_type all\n",
                d.display()
            ));
            conf.push_str(&format!(
                "listener {tcp} 127.0.0.1\nprotocol mqtt\nallow_anonymous true\n\
                 listener {ws} 127.0.0.1\nprotocol websockets\nallow_anonymous true\n\
                 listener {tls} 127.0.0.1\nprotocol mqtt\nallow_anonymous true\ncertfile {cert}\nkeyfile {key}\n\
                 listener {wss} 127.0.0.1\nprotocol websockets\nallow_anonymous true\ncertfile {cert}\nkeyfile {key}\n\
                 listener {auth} 127.0.0.1\nprotocol mqtt\nallow_anonymous false\n\
                 plugin {DYNSEC}\nplugin_opt_config_file {}\n",
                dynsec.display()
            ));
            std::fs::write(&m.conf, conf).unwrap();
            if m.try_spawn() {
                break;
            }
            attempts += 1;
            assert!(attempts < 5, "mosquitto did not start; log:\n{}", m.log());
        }
        let auth = m.auth;
        let ctrl = |args: &[&str]| {
            let st = Command::new("mosquitto_ctrl")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &auth.to_string(),
                    "-u",
                    "admin",
                    "-P",
                    "adminpw",
                    "dynsec",
                ])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success(), "mosquitto_ctrl dynsec {args:?}");
        };
        ctrl(&["createClient", "alice", "-p", "wonderland"]);
        ctrl(&["createRole", "public"]);
        ctrl(&[
            "addRoleACL",
            "public",
            "subscribePattern",
            "public/#",
            "allow",
            "5",
        ]);
        ctrl(&[
            "addRoleACL",
            "public",
            "publishClientSend",
            "public/#",
            "allow",
            "5",
        ]);
        ctrl(&["addClientRole", "alice", "public", "5"]);
        Some(m)
    }

    fn spawn(&mut self) {
        assert!(
            self.try_spawn(),
            "mosquitto did not listen on its ports; log:\n{}",
            self.log()
        );
    }

    /// Starts the broker and waits until every listener answers: false when it exits first
    /// (a port it could not bind) or does not listen within 10 s.
    fn try_spawn(&mut self) -> bool {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [self.tcp, self.ws, self.tls, self.wss, self.auth] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                let exited = self
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited || Instant::now() >= deadline {
                    if let Some(mut c) = self.child.take() {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        true
    }

    /// The broker's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// The broker's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the broker with SIGTERM (it saves its persistence database) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the broker again on the same ports with the same configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `mqtt://127.0.0.1:PORT` of the anonymous TCP listener.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.tcp)
    }

    /// A client configuration trusting the test CA.
    pub fn config(&self, version: Version) -> Config {
        let mut c = Config::default();
        c.version = version;
        c.transport.tls = self.pki.client_config();
        c.keep_alive = Duration::from_secs(30);
        c
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether python3 with paho-mqtt is available (else [`missing`]).
pub fn have_paho() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import paho.mqtt.client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        ws_testkit::peers::missing(
            "python3 with paho-mqtt is not installed",
            "python3 -m pip install paho-mqtt==2.2.0",
        );
    }
    ok
}

/// A paho-mqtt subscriber: prints `READY` once subscribed, then one payload per line, and
/// exits after `count` messages.
pub fn paho_subscriber(port: u16, v5: bool, topic: &str, qos: u8, count: usize) -> Child {
    let script = format!(
        r#"
import sys, paho.mqtt.client as mqtt
proto = mqtt.MQTTv5 if {v5} else mqtt.MQTTv311
n = 0
def on_connect(c, u, f, rc, p=None):
    c.subscribe("{topic}", {qos})
def on_subscribe(c, u, mid, rc, p=None):
    print("READY", flush=True)
def on_message(c, u, m):
    global n
    print(m.payload.decode(), flush=True)
    n += 1
    if n >= {count}:
        c.disconnect()
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-sub", protocol=proto)
c.on_connect = on_connect
c.on_subscribe = on_subscribe
c.on_message = on_message
c.connect("127.0.0.1", {port})
c.loop_forever()
"#,
        v5 = if v5 { "True" } else { "False" }
    );
    Command::new("python3")
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3")
}

/// Runs a paho-mqtt publisher of `count` messages `0..count` at `qos`, waiting for each.
pub fn paho_publish(port: u16, v5: bool, topic: &str, qos: u8, count: usize) {
    let script = format!(
        r#"
import paho.mqtt.client as mqtt
proto = mqtt.MQTTv5 if {v5} else mqtt.MQTTv311
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-pub", protocol=proto)
c.connect("127.0.0.1", {port})
c.loop_start()
for i in range({count}):
    c.publish("{topic}", str(i), qos={qos}).wait_for_publish(10)
c.disconnect()
c.loop_stop()
"#,
        v5 = if v5 { "True" } else { "False" }
    );
    let st = Command::new("python3")
        .args(["-c", &script])
        .status()
        .expect("python3");
    assert!(st.success(), "paho publisher failed");
}
