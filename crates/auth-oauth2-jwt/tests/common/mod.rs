//! Helpers shared by the OAuth2 tests: a server with the endpoints in front of a small app,
//! a raw HTTP/1.1 client, log capture.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::Write,
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex, OnceLock},
};

use auth_oauth2_jwt::{
    Config,
    guard::JwtAuth,
    oauth2::{AuthServer, OAuth2, OsRandom, SqliteStore, Store, Users},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_server::{
    Binding, Body, Ctx, Handler, Request, Response, Server, ServerConfig, ServerHandle,
};

/// Users with plain passwords (tests only).
pub struct TestUsers;

impl Users for TestUsers {
    fn verify(&self, user: &str, password: &str) -> bool {
        user == "alice" && password == "wonderland"
    }
}

/// Greets with the user and the token's client id.
pub struct App {
    pub auth: JwtAuth,
}

impl Handler for App {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let user = ctx.info().user().unwrap_or("-").to_owned();
        let _ = ctx.send(ws_server::ws_frame::Message::text(format!("hello {user}")));
    }

    async fn on_http(&self, request: &Request, _body: &mut Body<'_>) -> Response {
        let client = self
            .auth
            .claims(request)
            .ok()
            .and_then(|c| c.str("client_id").map(str::to_owned))
            .unwrap_or_default();
        Response::text(
            200,
            format!("hello {} via {client}\n", request.user().unwrap_or("-")),
        )
    }
}

pub struct Running {
    pub server: ServerHandle,
    pub addr: SocketAddr,
    pub oauth2: OAuth2,
}

pub fn config(addr: Option<SocketAddr>) -> Config {
    let mut config = Config::default();
    if let Some(addr) = addr {
        config.oauth2.issuer = format!("http://{addr}");
    }
    config
}

/// Starts a server on `addr` (port 0: any) over the store at `db` (in memory when `None`).
pub async fn start(db: Option<&Path>, config: Config, addr: &str) -> Running {
    start_with(db, config, addr, None).await
}

/// [`start`], issuing JWT access tokens signed by `jwt` when given.
pub async fn start_with(
    db: Option<&Path>,
    mut config: Config,
    addr: &str,
    jwt: Option<auth_oauth2_jwt::Signer>,
) -> Running {
    let store: Arc<dyn Store> = match db {
        Some(p) => Arc::new(SqliteStore::open(p).unwrap()),
        None => Arc::new(SqliteStore::memory().unwrap()),
    };
    // Bind first to learn the port, so that the issuer names it.
    let listener = std::net::TcpListener::bind(addr).unwrap();
    let local = listener.local_addr().unwrap();
    drop(listener);
    if config.oauth2.issuer == Config::default().oauth2.issuer {
        config.oauth2.issuer = format!("http://{local}");
    }
    let mut core = AuthServer::new(config, store, Arc::new(OsRandom))
        .unwrap()
        .with_users(Arc::new(TestUsers));
    if let Some(signer) = jwt {
        core = core.with_jwt_access_tokens(signer).unwrap();
    }
    let oauth2 = OAuth2::new(core);
    let app = App {
        auth: oauth2.auth(),
    };
    let server = Server::start(
        ServerConfig::new(vec![Binding::plain(local)]),
        oauth2.wrap(app),
    )
    .await
    .unwrap();
    Running {
        addr: server.local_addrs()[0],
        server,
        oauth2,
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
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
    tcp.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query parameter of a URL, percent-decoded.
pub fn param(url: &str, name: &str) -> Option<String> {
    auth_oauth2_jwt::source::query_param(url, name)
}

/// The value of a hidden input in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Everything logged by the test binary (captured once, shared by its tests).
pub fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
