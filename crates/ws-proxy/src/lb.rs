//! The load balancer's I/O: the shared [`Balancer`], the health-check task, the connection
//! guards, and the registration API. Every decision is the sans-IO [`crate::balance`]'s.

use std::sync::{Arc, Mutex};

use subtle::ConstantTimeEq as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    sync::{Notify, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_rustls::TlsConnector;
use ws_server::{Body, Request, Response, ws_http};

use crate::{
    balance::{BackendStatus, Balancer, BalancerConfig, Policy, Probe, State},
    hooks::Hooks,
    sync::lock,
    target::Target,
    upstream::HttpUpstream,
};

/// Largest registration request body (a target URL).
const MAX_API_BODY: usize = 2048;

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The balancer shared by the handler, the health checker and the API.
pub(crate) struct Lb {
    state: Mutex<Balancer>,
    /// Bumped on every change of the backends (state, connection counts, the list).
    changed: watch::Sender<u64>,
    /// Wakes the health checker (a backend was added).
    wake: Notify,
    tls: TlsConnector,
    hooks: Arc<dyn Hooks>,
}

/// Releases a backend connection when dropped.
pub(crate) struct LbGuard {
    lb: Arc<Lb>,
    target: Target,
}

impl Drop for LbGuard {
    fn drop(&mut self) {
        self.lb.with(|b| b.release(&self.target));
    }
}

impl Lb {
    pub(crate) fn new(cfg: BalancerConfig, tls: TlsConnector, hooks: Arc<dyn Hooks>) -> Self {
        let t = now();
        let backends = cfg.backends.clone();
        let mut b = Balancer::new(cfg);
        for target in backends {
            b.add(target, t);
        }
        Self {
            state: Mutex::new(b),
            changed: watch::Sender::new(0),
            wake: Notify::new(),
            tls,
            hooks,
        }
    }

    /// Runs `f` on the balancer; reports every backend whose state changed, and bumps the
    /// change counter when anything (state, counts, the list) changed.
    fn with<R>(&self, f: impl FnOnce(&mut Balancer) -> R) -> R {
        let (r, changes, bump) = {
            let mut b = lock(&self.state);
            let before = b.status();
            let r = f(&mut b);
            let after = b.status();
            let bump = before != after;
            let removed = before
                .iter()
                .filter(|p| !after.iter().any(|s| s.target == p.target))
                .map(|p| BackendStatus {
                    state: State::Removed,
                    active: 0,
                    ..p.clone()
                });
            let changes: Vec<BackendStatus> = after
                .iter()
                .filter(|s| {
                    !before
                        .iter()
                        .any(|p| p.target == s.target && p.state == s.state)
                })
                .cloned()
                .chain(removed)
                .collect();
            (r, changes, bump)
        };
        for s in &changes {
            tracing::info!(target = %s.target, state = s.state.as_str(), "backend state");
            self.hooks.on_backend_state(s);
        }
        if bump {
            self.changed.send_modify(|n| *n += 1);
        }
        r
    }

    pub(crate) fn status(&self) -> Vec<BackendStatus> {
        lock(&self.state).status()
    }

    /// A receiver that sees a new value after every change of the backends.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The key of the sticky policies for this request.
    fn key(&self, req: &Request) -> Option<String> {
        match &lock(&self.state).config().policy {
            Policy::StickyCookie(name) => req.cookie(name).map(str::to_owned),
            Policy::StickyHeader(name) => req.header(name).map(str::to_owned),
            _ => None,
        }
    }

    /// The next backend for `req`, leaving out `tried`.
    pub(crate) fn pick(&self, req: &Request, tried: &[Target]) -> Option<Target> {
        let key = self.key(req);
        lock(&self.state).pick_except(key.as_deref(), tried, now())
    }

    /// The next backend for a plain HTTP request and its HTTP upstream (`ws://` backends are
    /// reached over `http://`, `wss://` over `https://`; TCP and TLS backends take none).
    pub(crate) fn pick_http(
        &self,
        req: &Request,
        tried: &[Target],
    ) -> Option<(Target, HttpUpstream)> {
        let mut skip = tried.to_vec();
        loop {
            let t = self.pick(req, &skip)?;
            if let Target::WebSocket(url) = &t {
                let up = HttpUpstream {
                    secure: url.is_secure(),
                    host: url.host().to_owned(),
                    port: url.port(),
                    ..HttpUpstream::default()
                };
                return Some((t, up));
            }
            skip.push(t);
        }
    }

    pub(crate) fn failed(&self, target: &Target) {
        self.with(|b| b.connect_failed(target, now()));
    }

    pub(crate) fn guard(self: &Arc<Self>, target: &Target) -> LbGuard {
        self.with(|b| b.acquire(target));
        LbGuard {
            lb: self.clone(),
            target: target.clone(),
        }
    }

    pub(crate) fn add(&self, target: Target) -> bool {
        let added = self.with(|b| b.add(target, now()));
        self.wake.notify_one();
        added
    }

    pub(crate) fn drain(&self, target: &Target) -> bool {
        self.with(|b| b.drain(target))
    }

    /// Starts the health checker (nothing to do without active checks).
    pub(crate) fn spawn_checker(self: &Arc<Self>) -> Option<JoinHandle<()>> {
        let health = lock(&self.state).config().health.clone()?;
        let lb = self.clone();
        Some(tokio::spawn(async move {
            loop {
                let wake = lb.wake.notified();
                let t = now();
                while let Some(target) = lock(&lb.state).poll_check(t) {
                    let lb = lb.clone();
                    let probe = health.probe.clone();
                    tokio::spawn(async move {
                        let ok = tokio::time::timeout(health.timeout, lb.probe(&target, &probe))
                            .await
                            .unwrap_or(false);
                        tracing::debug!(%target, ok, "health check");
                        lb.with(|b| b.check_result(&target, ok, now()));
                        lb.wake.notify_one();
                    });
                }
                let next = lock(&lb.state).poll_timeout();
                match next {
                    Some(at) => {
                        let at = Instant::from_std(at);
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {}
                            () = wake => {}
                        }
                    }
                    None => wake.await,
                }
            }
        }))
    }

    /// One probe: a TCP connect, or `GET path` answered with 2xx or 3xx.
    async fn probe(&self, target: &Target, probe: &Probe) -> bool {
        let (host, port, tls) = target.address();
        let Ok(tcp) = TcpStream::connect((host.as_str(), port)).await else {
            return false;
        };
        let Probe::Http { path } = probe else {
            return true;
        };
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wskit-health\r\nConnection: close\r\n\r\n",
            ws_http::host_header(&host, port, tls)
        );
        if tls {
            let Ok(name) = rustls::pki_types::ServerName::try_from(host.clone()) else {
                return false;
            };
            match self.tls.connect(name, tcp).await {
                Ok(s) => http_ok(s, head.as_bytes()).await,
                Err(_) => false,
            }
        } else {
            http_ok(tcp, head.as_bytes()).await
        }
    }

    /// The registration API, when `req` is for it; `None` otherwise.
    pub(crate) async fn api(&self, req: &Request, body: &mut Body<'_>) -> Option<Response> {
        let reg = lock(&self.state).config().registration.clone()?;
        let path = req.path();
        let remove_path = format!("{}/remove", reg.path);
        if path != reg.path && path != remove_path {
            return None;
        }
        let token = req
            .header("authorization")
            .and_then(|h| h.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        let authorized =
            token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(reg.secret.as_bytes())));
        if !authorized {
            return Some(
                Response::text(
                    401,
                    "a registration request needs Authorization: Bearer <secret>\n",
                )
                .with_header("WWW-Authenticate", "Bearer"),
            );
        }
        let resp = match (req.method(), path == remove_path) {
            ("GET", false) => {
                let mut out = String::new();
                for s in self.status() {
                    out.push_str(&format!(
                        "{} {} {} {}\n",
                        s.target,
                        s.state.as_str(),
                        s.active,
                        s.total
                    ));
                }
                Response::text(200, out)
            }
            ("POST", false) => match read_target(body).await {
                Ok(t) => {
                    let text = format!("{t}\n");
                    if self.add(t) {
                        Response::text(201, text)
                    } else {
                        Response::text(200, text)
                    }
                }
                Err(r) => r,
            },
            ("DELETE", false) | ("POST", true) => {
                let target = if req.method() == "DELETE" {
                    match req.query_param("target").map(|t| Target::parse(&t)) {
                        Some(Ok(t)) => Ok(t),
                        Some(Err(e)) => Err(Response::text(400, format!("{e}\n"))),
                        None => Err(Response::text(400, "DELETE needs ?target=URL\n")),
                    }
                } else {
                    read_target(body).await
                };
                match target {
                    Ok(t) if self.drain(&t) => Response::text(200, format!("{t} draining\n")),
                    Ok(t) => Response::text(404, format!("{t} is not a backend\n")),
                    Err(r) => r,
                }
            }
            _ => Response::text(405, "use GET, POST or DELETE\n")
                .with_header("Allow", "GET, POST, DELETE"),
        };
        Some(resp)
    }
}

/// The target URL in a registration request's body.
async fn read_target(body: &mut Body<'_>) -> Result<Target, Response> {
    if body
        .content_length()
        .is_none_or(|n| n > MAX_API_BODY as u64)
    {
        return Err(Response::text(
            413,
            "the body is one target URL, with a Content-Length of at most 2048\n",
        ));
    }
    let bytes = body
        .bytes()
        .await
        .map_err(|e| Response::text(400, format!("cannot read the body: {e}\n")))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Response::text(400, "the body must be UTF-8\n"))?;
    Target::parse(text).map_err(|e| Response::text(400, format!("{e}\n")))
}

/// Sends `head` and reads the status line: 2xx or 3xx is healthy.
async fn http_ok<S>(mut s: S, head: &[u8]) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if s.write_all(head).await.is_err() {
        return false;
    }
    let mut buf = Vec::with_capacity(64);
    let mut byte = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 1024 {
        match s.read(&mut byte).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    let status = line
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok());
    matches!(status, Some(200..=399))
}

/// Aborts the health checker when the last [`crate::ProxyServer`] clone goes.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
