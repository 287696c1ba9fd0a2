//! `cargo xtask interop browser`: Debian's Chromium (headless, driven by playwright-core) against
//! `wskit serve`, through the built-in test page.
//!
//! Checks that /usr/bin/chromium and node exist, installs xtask/interop/browser's npm dependencies
//! with `npm ci` when node_modules is missing (it never rewrites the committed package-lock.json),
//! builds `wskit` in release mode (unless a binary is given), starts
//! `wskit serve --listen 127.0.0.1:PORT --upload-dir DIR` on a free port and waits for its
//! `listening on 127.0.0.1:PORT` line, and a second one with URL authentication
//! (`--user NAME:PASSWORD --sgc-url-auth`), then runs
//! `node test.mjs PORT SCREENSHOT UPLOAD_COPY AUTH_PORT`. That script loads `/`, connects to
//! `/echo` and checks permessage-deflate, echoes a text and a binary message, waits for the SSE
//! `welcome` event, checks wskit.js's fallback from a refused WebSocket to SSE and the
//! `sgcWebSocket({host, user, password})` credentials form against the second server, uploads a
//! file through the multipart form, closes with 1000 and takes a screenshot (see its header).
//! Afterwards this module checks that a file with exactly the uploaded bytes landed under DIR.
//!
//! Work files go to target/interop/browser/ (uploads/, the screenshot test-page.png, the uploaded
//! bytes, the result line in result.json). The committed docs/test-page.png changes only with
//! `--update`, which copies this run's screenshot there.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{self, root};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The user of the server with URL authentication; the password has characters that must be
/// percent-encoded in a path (test.mjs uses the same).
const AUTH_USER: &str = "alice:s3cret/ü?";
/// The npm package that holds test.mjs, relative to the workspace root.
const PACKAGE: &str = "xtask/interop/browser";
const SCREENSHOT: &str = "docs/test-page.png";
/// How long `wskit serve` may take to print its listening line.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the whole browser run may take (test.mjs bounds every wait itself).
const TEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Kills the child when dropped, whatever happens in between.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Why the browser test cannot run here (no Chromium, node or npm), if so.
pub(crate) fn missing() -> Option<String> {
    if !Path::new(CHROMIUM).is_file() {
        return Some(format!("{CHROMIUM} not found"));
    }
    (!util::have("node") || !util::have("npm")).then(|| "node and npm not found".to_owned())
}

/// `cargo xtask interop browser [--wskit PATH] [--update]`: uses `wskit_bin` (taking `serve` flags)
/// instead of building when given; `update` copies the screenshot to docs/test-page.png.
pub(crate) fn browser(wskit_bin: Option<PathBuf>, update: bool) -> Result<()> {
    if !Path::new(CHROMIUM).is_file() {
        bail!("{CHROMIUM} not found: install Debian's Chromium with `apt-get install -y chromium`");
    }
    if !util::have("node") || !util::have("npm") {
        bail!("node and npm are needed to drive Chromium: `apt-get install -y nodejs npm`");
    }
    let package = root().join(PACKAGE);
    if !package.join("node_modules/playwright-core").is_dir() {
        util::step(
            "npm ci (playwright-core, as pinned in package-lock.json)",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&package),
        )?;
    }
    let bin = match wskit_bin {
        Some(bin) => bin,
        None => build_wskit()?,
    };
    if !bin.is_file() {
        bail!("wskit binary {} does not exist", bin.display());
    }

    let work = root().join("target/interop/browser");
    let uploads = work.join("uploads");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&uploads).with_context(|| format!("creating {}", uploads.display()))?;
    let screenshot = work.join("test-page.png");
    let upload_copy = work.join("uploaded.bin");
    let result_path = work.join("result.json");

    let (server, port) = start_server(&bin, &["--upload-dir".as_ref(), uploads.as_os_str()])?;
    let (auth_server, auth_port) = start_server(
        &bin,
        &[
            "--user".as_ref(),
            AUTH_USER.as_ref(),
            "--sgc-url-auth".as_ref(),
        ],
    )?;
    let mut node = Command::new("node");
    node.arg("test.mjs")
        .arg(port.to_string())
        .arg(&screenshot)
        .arg(&upload_copy)
        .arg(auth_port.to_string())
        .current_dir(&package)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&result_path)?);
    eprintln!(
        "\n==> Chromium against wskit serve on port {port}\n    $ {}",
        util::show(&node)
    );
    let status = wait_with_timeout(
        Proc(node.spawn().context("starting node test.mjs")?),
        TEST_TIMEOUT,
    )?;
    drop(server);
    drop(auth_server);
    let stdout = fs::read_to_string(&result_path).unwrap_or_default();
    if !status.success() {
        bail!(
            "the browser test failed ({status}); its output is above{}",
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!(", stdout:\n{stdout}")
            }
        );
    }
    let results = result_line(&stdout)?;
    println!("{results}");

    let sent = fs::read(&upload_copy)
        .with_context(|| format!("reading the uploaded bytes from {}", upload_copy.display()))?;
    let name = results
        .pointer("/upload/name")
        .and_then(serde_json::Value::as_str)
        .context("the result line has no upload.name")?;
    let saved = find_same_file(&uploads, name, &sent)?;
    eprintln!(
        "==> the upload landed as {} ({} bytes, identical)",
        saved.display(),
        sent.len()
    );

    if update {
        let docs = root().join(SCREENSHOT);
        if let Some(dir) = docs.parent() {
            fs::create_dir_all(dir)?;
        }
        fs::copy(&screenshot, &docs)
            .with_context(|| format!("copying {} to {SCREENSHOT}", screenshot.display()))?;
        eprintln!("==> wrote {SCREENSHOT} (--update)");
    } else {
        eprintln!(
            "==> screenshot in {} (`--update` copies it to {SCREENSHOT})",
            screenshot.display()
        );
    }
    eprintln!("==> browser interop passed");
    Ok(())
}

/// Builds `wskit` (release) and returns the binary.
fn build_wskit() -> Result<PathBuf> {
    util::step(
        "cargo build --release -p wskit",
        util::cargo().args(["build", "--release", "-p", "wskit"]),
    )?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root().join(p) })
        .unwrap_or_else(|| root().join("target"));
    Ok(target.join("release/wskit"))
}

/// Starts `wskit serve` with `args` on a free port and waits for `listening on 127.0.0.1:PORT`
/// on its stdout; later stdout lines are copied to stderr with a prefix.
fn start_server(bin: &Path, args: &[&std::ffi::OsStr]) -> Result<(Proc, u16)> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--listen", &listen])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    eprintln!("\n==> starting wskit serve\n    $ {}", util::show(&cmd));
    let mut child = Proc(
        cmd.spawn()
            .with_context(|| format!("starting {}", bin.display()))?,
    );
    let stdout = child.0.stdout.take().context("wskit serve: no stdout")?;
    let (tx, rx) = mpsc::channel();
    let want = format!("listening on {listen}");
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            eprintln!("    wskit serve: {line}");
            if let Some(tx) = tx.take_if(|_| line.trim() == want) {
                let _ = tx.send(());
            }
        }
    });
    let deadline = Instant::now() + LISTEN_TIMEOUT;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(()) => return Ok((child, port)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.0.wait()?;
                bail!("wskit serve exited ({status}) without printing `listening on {listen}`");
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = child.0.try_wait()? {
                    bail!("wskit serve exited early ({status})");
                }
                if Instant::now() > deadline {
                    bail!(
                        "wskit serve did not print `listening on {listen}` within {} s",
                        LISTEN_TIMEOUT.as_secs()
                    );
                }
            }
        }
    }
}

/// Waits for the child, killing it after `timeout`.
fn wait_with_timeout(mut child: Proc, timeout: Duration) -> Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.0.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            bail!(
                "the browser test did not finish within {} s (killed)",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last non-empty stdout line of test.mjs, parsed, which must say `"ok": true`.
fn result_line(stdout: &str) -> Result<serde_json::Value> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the browser test printed no result line")?;
    let value: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("the browser test's result line is not JSON: {line}"))?;
    if value.get("ok") != Some(&serde_json::Value::Bool(true)) {
        bail!("the browser test did not report ok: {line}");
    }
    Ok(value)
}

/// The file under `dir` holding exactly `bytes`: `dir/name` first, else any file below `dir` (the
/// server may add a prefix or a directory).
fn find_same_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let direct = dir.join(name);
    if direct.is_file() {
        let got = fs::read(&direct)?;
        if got == bytes {
            return Ok(direct);
        }
        bail!(
            "{} differs from what was uploaded ({} bytes saved, {} sent{})",
            direct.display(),
            got.len(),
            bytes.len(),
            first_difference(&got, bytes)
                .map(|i| format!(", first difference at byte {i}"))
                .unwrap_or_default()
        );
    }
    let mut stack = vec![dir.to_owned()];
    let mut seen = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if fs::read(&path).is_ok_and(|b| b == bytes) {
                return Ok(path);
            } else {
                seen.push(path.display().to_string());
            }
        }
    }
    bail!(
        "no file under {} holds the uploaded {} bytes of {name} (found: {})",
        dir.display(),
        bytes.len(),
        if seen.is_empty() {
            "nothing".to_owned()
        } else {
            seen.join(", ")
        }
    )
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or_else(|| (a.len() != b.len()).then(|| a.len().min(b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_line_takes_the_last_json_line_and_needs_ok() {
        let v = result_line("noise\n{\"ok\":true,\"upload\":{\"name\":\"a.bin\"}}\n\n").unwrap();
        assert_eq!(v.pointer("/upload/name").unwrap(), "a.bin");
        assert!(result_line("{\"ok\":false}\n").is_err());
        assert!(result_line("").is_err());
        assert!(result_line("not json").is_err());
    }

    #[test]
    fn first_difference_covers_lengths() {
        assert_eq!(first_difference(b"abc", b"abc"), None);
        assert_eq!(first_difference(b"abc", b"abd"), Some(2));
        assert_eq!(first_difference(b"ab", b"abc"), Some(2));
    }

    #[test]
    fn finds_the_upload_by_name_or_content() {
        let dir = std::env::temp_dir().join(format!("wskit-interop-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/1-a.bin"), b"data").unwrap();
        assert_eq!(
            find_same_file(&dir, "a.bin", b"data").unwrap(),
            dir.join("sub/1-a.bin")
        );
        fs::write(dir.join("a.bin"), b"dat4").unwrap();
        assert!(find_same_file(&dir, "a.bin", b"data").is_err());
        fs::write(dir.join("a.bin"), b"data").unwrap();
        assert_eq!(
            find_same_file(&dir, "a.bin", b"data").unwrap(),
            dir.join("a.bin")
        );
        assert!(find_same_file(&dir, "b.bin", b"other").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
