//! Whether a missing real peer skips a test or fails it: one policy for every interop test.
//!
//! Interop tests drive programs nobody here wrote (Autobahn, Chromium, coturn, mosquitto, Python
//! and Node clients). On a machine without one, the test prints a line starting with `SKIPPED:`
//! and passes, so that `cargo test` works anywhere; `cargo xtask ci` collects those lines and
//! ends with a summary of what did not run. With `WSKIT_REQUIRE_PEERS=1` (set by `.ci/run`,
//! which installs every peer first) a missing peer fails the test instead.
//!
//! ```
//! use std::process::Command;
//!
//! fn mosquitto() -> bool {
//!     let found = Command::new("mosquitto").arg("-h").output().is_ok();
//!     if !found {
//!         ws_testkit::peers::missing("mosquitto is not installed", "apt-get install -y mosquitto");
//!     }
//!     found
//! }
//! # if std::env::var_os("WSKIT_REQUIRE_PEERS").is_none() { let _ = mosquitto(); }
//! ```

use std::process::{Command, Stdio};

/// The variable that turns a missing peer into a failure.
pub const REQUIRE_VAR: &str = "WSKIT_REQUIRE_PEERS";

/// Whether every peer must be present (`WSKIT_REQUIRE_PEERS=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1")
}

/// Reports a missing peer, `what` saying what is missing ("mosquitto is not installed"):
/// panics under `WSKIT_REQUIRE_PEERS=1`, otherwise prints `SKIPPED: ...` (the line
/// `cargo xtask ci` collects) and returns, and the caller returns early. `install` is the command
/// that installs the peer.
///
/// # Panics
///
/// When `WSKIT_REQUIRE_PEERS=1`.
pub fn missing(what: &str, install: &str) {
    let line = skip_line(what, install);
    assert!(
        !required(),
        "{what}, and {REQUIRE_VAR}=1 makes that a failure (install: {install})"
    );
    println!("{line}");
}

/// Whether `program arg...` can be started and exits successfully (for example
/// `("python3", &["-c", "import websockets"])`); its output is discarded.
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `program` is on `PATH` (an executable file of that name in one of its directories).
pub fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

fn skip_line(what: &str, install: &str) -> String {
    format!("SKIPPED: {what} (install: {install})")
}

/// A port (TCP, and free for UDP too) for a peer process (a broker, a TURN server, a `wskit` child) to listen on: free
/// on loopback and on every interface when picked, and chosen at random below the kernel's
/// ephemeral range (32768 and up on Linux), so that the source port of an outgoing connection
/// of another test cannot take it in the moment between this pick and the peer's bind.
/// Port 0 handed to the kernel would come from that range.
#[must_use]
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let mut x = h.finish();
    for _ in 0..1000 {
        // xorshift: cheap, and seeded per process and call by RandomState.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = 20_000 + (x % 12_000) as u16;
        let free = std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok();
        if free {
            return port;
        }
    }
    // Everything tried was taken: let the kernel pick.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_bindable() {
        for _ in 0..20 {
            let p = free_port();
            assert!((20_000..32_000).contains(&p), "{p}");
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }

    use super::*;

    #[test]
    fn the_skip_line_is_the_one_ci_collects() {
        let line = skip_line("mosquitto is not installed", "apt-get install -y mosquitto");
        assert!(line.starts_with("SKIPPED: "), "{line}");
        assert!(line.contains("apt-get install -y mosquitto"), "{line}");
    }

    #[test]
    fn runs_and_on_path_tell_present_from_absent() {
        assert!(runs("sh", &["-c", "exit 0"]));
        assert!(!runs("sh", &["-c", "exit 3"]));
        assert!(!runs("wskit-no-such-program-anywhere", &[]));
        assert!(on_path("sh"));
        assert!(!on_path("wskit-no-such-program-anywhere"));
    }
}
