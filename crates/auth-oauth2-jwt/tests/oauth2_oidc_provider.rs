//! npm oidc-provider 9.13.3 as the authorization server for this crate's OAuth2 client: client
//! credentials, and code + PKCE through the loopback listener with the provider's development
//! login and consent forms (a small cookie-keeping "browser" fills them), its RFC 9207 `iss`
//! checked. Pinned in tests/peers/node (`npm ci` when missing). A missing peer prints
//! `SKIPPED: ...` and passes, unless `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::{
    collections::BTreeMap,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use auth_oauth2_jwt::oauth2_client::{ClientSettings, OAuth2Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn peer_missing(what: &str) {
    ws_testkit::peers::missing(what, "apt-get install -y nodejs npm");
}

/// The provider process, killed when dropped.
struct Provider(Child);

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_provider(package: &Path) -> Option<(Provider, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let mut child = Command::new("node")
        .arg(package.join("oidc_provider_server.mjs"))
        .arg(port.to_string())
        .current_dir(package)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let provider = Provider(child);
    // Read until the provider listens, then keep draining its output (a closed pipe would
    // kill it at its next line).
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let ready = lines.by_ref().any(|l| l.starts_with("listening on"));
    std::thread::spawn(move || lines.for_each(drop));
    ready.then_some((provider, port))
}

/// One request; status, every header line, body.
async fn request(
    url: &str,
    method: &str,
    cookies: &BTreeMap<String, String>,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let slash = rest.find('/').unwrap_or(rest.len());
    let addr: SocketAddr = rest[..slash].parse().unwrap();
    let target = if slash == rest.len() {
        "/"
    } else {
        &rest[slash..]
    };
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let cookie = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: {cookie}\r\n"
    );
    if method == "POST" {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tcp.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .collect();
    (status, headers, body.to_owned())
}

/// `(action, fields)` of the first form of a page.
fn form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        let at = tag.find(&key)? + key.len();
        Some(tag[at..].split('"').next()?.to_owned())
    };
    let start = html.find("<form")?;
    let tag_end = html[start..].find('>')? + start;
    let action = attr(&html[start..tag_end], "action")?;
    let end = html[start..]
        .find("</form>")
        .map_or(html.len(), |e| e + start);
    let fields = html[start..end]
        .split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect();
    Some((action, fields))
}

fn enc(s: &str) -> String {
    common::enc(s)
}

/// Follows redirects and fills the provider's login (any user, any password) and consent
/// forms until the redirect to the loopback listener, which it then calls.
async fn browser(start: String, provider: String) {
    let mut cookies = BTreeMap::new();
    let (mut method, mut url, mut body) = ("GET".to_owned(), start, String::new());
    for _ in 0..20 {
        let (status, headers, page) = request(&url, &method, &cookies, &body).await;
        for (n, v) in &headers {
            if n == "set-cookie" {
                if let Some((k, val)) = v.split(';').next().and_then(|c| c.split_once('=')) {
                    cookies.insert(k.to_owned(), val.to_owned());
                }
            }
        }
        if (300..400).contains(&status) {
            let location = headers
                .iter()
                .find(|(n, _)| n == "location")
                .map(|(_, v)| v.clone())
                .unwrap();
            let next = if location.starts_with('/') {
                format!("{provider}{location}")
            } else {
                location
            };
            if !next.starts_with(&provider) {
                // The redirect to the client's loopback listener.
                request(&next, "GET", &BTreeMap::new(), "").await;
                return;
            }
            (method, url, body) = ("GET".into(), next, String::new());
            continue;
        }
        let (action, fields) =
            form(&page).unwrap_or_else(|| panic!("no form at {url} ({status}): {page}"));
        let filled: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| {
                let v = match k.as_str() {
                    "login" => "alice".to_owned(),
                    "password" => "any".to_owned(),
                    _ => v,
                };
                format!("{}={}", enc(&k), enc(&v))
            })
            .collect();
        let action = if action.starts_with('/') {
            format!("{provider}{action}")
        } else {
            action
        };
        (method, url, body) = ("POST".into(), action, filled.join("&"));
    }
    panic!("the provider's interactions did not end in a redirect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_against_oidc_provider() {
    if !Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        peer_missing("node is not installed");
        return;
    }
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/node");
    let pkg = package.clone();
    let started = tokio::task::spawn_blocking(move || {
        let installed = pkg.join("node_modules/oidc-provider").is_dir()
            || Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&pkg)
                .status()
                .is_ok_and(|s| s.success());
        if installed {
            start_provider(&pkg)
        } else {
            None
        }
    })
    .await
    .unwrap();
    let Some((_provider, port)) = started else {
        peer_missing(
            "oidc-provider could not be installed or started (npm ci in tests/peers/node)",
        );
        return;
    };
    let base = format!("http://127.0.0.1:{port}");
    let tls = ws_tls::client_config(&ws_tls::ClientTlsConfig::default()).unwrap();

    // Client credentials.
    let mut s = ClientSettings::new(format!("{base}/token"), "svc", tls.clone());
    s.client_secret = Some("svc-secret-for-the-test".into());
    s.scopes = vec!["jobs".into()];
    s.allow_loopback_http = true;
    let tokens = OAuth2Client::new(s)
        .unwrap()
        .client_credentials()
        .await
        .unwrap();
    assert!(!tokens.access_token.is_empty());
    assert_eq!(tokens.scope.as_deref(), Some("jobs"));

    // Code + PKCE through the loopback listener; the provider's iss is checked.
    let mut s = ClientSettings::new(format!("{base}/token"), "desktop", tls);
    s.auth_url = Some(format!("{base}/auth"));
    s.scopes = vec!["openid".into()];
    s.issuer = Some(base.clone());
    s.allow_loopback_http = true;
    s.redirect_timeout = Duration::from_secs(30);
    let client = Arc::new(OAuth2Client::new(s).unwrap());
    let provider = base.clone();
    let tokens = client
        .authorize_loopback(move |url| {
            tokio::spawn(browser(url, provider));
        })
        .await
        .unwrap();
    assert!(!tokens.access_token.is_empty());
}
