//! Listeners and the accept path (TLS, request head, admission, the drivers).

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use tokio_rustls::TlsAcceptor;

use crate::{
    config::ServerConfig,
    conn,
    error::Error,
    handle::{AdmitGuard, Inner, ServerHandle},
    handler::{Handler, TcpDecision},
    http::files::FileCache,
    http::{self, Accepted, Next},
    io::Io,
    raw,
    registry::{Registry, lock},
    sse,
};

/// Starts servers.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Validates `config`, binds every listener and starts accepting on the current tokio
    /// runtime. Connections are served by `handler`.
    ///
    /// # Errors
    /// [`Error::Setting`], [`Error::SettingValue`] and the other configuration variants for an
    /// invalid configuration, [`Error::Bind`] when an address cannot
    /// be bound.
    pub async fn start<H: Handler>(
        config: ServerConfig,
        handler: H,
    ) -> Result<ServerHandle, Error> {
        config.validate()?;
        let root = match &config.document_root {
            Some(dir) => Some(std::fs::canonicalize(dir).map_err(|source| {
                Error::DocumentRootUnreadable {
                    path: dir.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let handler = Arc::new(handler);
        let (up, down) = (handler.clone(), handler.clone());
        let inner = Arc::new(Inner {
            on_startup: Box::new(move |server| {
                let h = up.clone();
                Box::pin(async move {
                    let call = std::pin::pin!(h.on_startup(&server));
                    if let Err(panic) = conn::CatchUnwind(call).await {
                        tracing::error!(%panic, "Handler::on_startup panicked");
                    }
                })
            }),
            on_shutdown: Box::new(move |server| {
                let h = down.clone();
                Box::pin(async move {
                    let call = std::pin::pin!(h.on_shutdown(&server));
                    if let Err(panic) = conn::CatchUnwind(call).await {
                        tracing::error!(%panic, "Handler::on_shutdown panicked");
                    }
                })
            }),
            root,
            file_cache: FileCache::new(config.file_cache),
            stop_signal: Notify::new(),
            config,
            registry: Registry::default(),
            listeners: Mutex::new(Vec::new()),
            local_addrs: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            stopped: Notify::new(),
            spawner: Mutex::new(None),
        });
        let handle = ServerHandle { inner };
        let spawner = move |server: &ServerHandle| spawn_listeners(server, &handler);
        spawner(&handle)?;
        *lock(&handle.inner.spawner) = Some(Box::new(spawner));
        handle.run_hook(&handle.inner.on_startup).await;
        Ok(handle)
    }
}

/// Turns TCP keep-alive on for `tcp` with `k`'s idle time, interval and probe count.
fn set_keepalive(tcp: &TcpStream, k: crate::config::TcpKeepAlive) -> std::io::Result<()> {
    let params = socket2::TcpKeepalive::new()
        .with_time(k.idle)
        .with_interval(k.interval)
        .with_retries(k.count);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&params)
}

fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    let err = |source| Error::Bind { addr, source };
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        .map_err(err)?;
    if addr.is_ipv6() {
        // [::] and 0.0.0.0 can then be bound side by side.
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.set_reuse_address(true).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

fn spawn_listeners<H: Handler>(server: &ServerHandle, handler: &Arc<H>) -> Result<(), Error> {
    let mut listeners = Vec::new();
    for binding in &server.inner.config.bindings {
        let listener = bind(binding.addr)?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            addr: binding.addr,
            source,
        })?;
        let tls = binding.tls.clone().map(|config| {
            Arc::new(TlsSide {
                acceptor: TlsAcceptor::from(config.clone()),
                config,
                alpn_select: binding.alpn_select.clone(),
            })
        });
        listeners.push((listener, local, tls));
    }
    let mut addrs = lock(&server.inner.local_addrs);
    let mut tasks = lock(&server.inner.listeners);
    addrs.clear();
    for (listener, local, tls) in listeners {
        addrs.push(local);
        tasks.push(tokio::spawn(accept_loop(
            server.clone(),
            handler.clone(),
            listener,
            tls,
        )));
    }
    // Debug: the binary prints its own `listening on ADDR` line (scripts read it), once.
    tracing::debug!(addrs = ?*addrs, "listening");
    Ok(())
}

/// The TLS side of a binding.
struct TlsSide {
    acceptor: TlsAcceptor,
    config: Arc<rustls::ServerConfig>,
    alpn_select: Option<crate::config::AlpnSelect>,
}

impl TlsSide {
    /// The TLS handshake; with an ALPN callback, the configuration is chosen after reading
    /// the ClientHello, with the callback's protocol as the only one.
    async fn accept(
        &self,
        tcp: TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        let Some(select) = &self.alpn_select else {
            return self.acceptor.accept(tcp).await;
        };
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp).await?;
        let hello = start.client_hello();
        let offered: Vec<&[u8]> = hello.alpn().map(Iterator::collect).unwrap_or_default();
        let chosen = if offered.is_empty() {
            None
        } else {
            select(&offered)
        };
        let mut config = (*self.config).clone();
        config.alpn_protocols = chosen.into_iter().collect();
        start.into_stream(Arc::new(config)).await
    }
}

/// Wait after a failed `accept` (out of descriptors or memory: let connections close).
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(50);
/// Consecutive failed `accept` calls (about 10 s of them) after which a listener gives up.
const ACCEPT_GIVE_UP: u32 = 200;

async fn accept_loop<H: Handler>(
    server: ServerHandle,
    handler: Arc<H>,
    listener: TcpListener,
    tls: Option<Arc<TlsSide>>,
) {
    let mut failures = 0u32;
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                let server = server.clone();
                let handler = handler.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    // WebSocket handlers are guarded call by call (conn.rs); this catches the
                    // rest (plain TCP, SSE, HTTP) so that no panic ends a task unreported.
                    let task = std::pin::pin!(serve(server, handler, tcp, peer, tls));
                    if let Err(panic) = conn::CatchUnwind(task).await {
                        tracing::error!(%peer, %panic, "connection task panicked");
                    }
                });
            }
            Err(e) => {
                failures += 1;
                if failures >= ACCEPT_GIVE_UP {
                    // Not a passing shortage any more: the listener is broken. Ending the
                    // task shows in `ServerHandle::failed_listeners`, for the watchdog.
                    tracing::error!(error = %e, failures, "listener failed: accept keeps failing");
                    return;
                }
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        }
        failures = 0;
    }
}

/// Serves one accepted TCP connection from TLS through the HTTP phase to its end. The accept
/// phase runs in its own boxed future, so its buffers and state do not stay in the (long-lived)
/// connection task.
async fn serve<H: Handler>(
    server: ServerHandle,
    handler: Arc<H>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsSide>>,
) {
    let next = Box::pin(accept(&server, &handler, tcp, peer, tls)).await;
    match next {
        Some(Next::Ws(est)) => conn::run(server, handler, est).await,
        Some(Next::Raw {
            io,
            peer,
            local,
            tls,
            first,
            guard,
        }) => {
            Box::pin(raw::run(
                server, handler, io, peer, local, tls, first, guard,
            ))
            .await
        }
        Some(Next::Sse { io, request, guard }) => {
            Box::pin(sse::run(server, handler, io, *request, guard)).await
        }
        None => {}
    }
}

/// Admission, `on_tcp_connect`, TLS, then the HTTP phase (requests, upgrade, SSE).
async fn accept<H: Handler>(
    server: &ServerHandle,
    handler: &Arc<H>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<Arc<TlsSide>>,
) -> Option<Next> {
    let inner = server.inner.clone();
    let config = &inner.config;
    let admitted = inner.registry.admitted.fetch_add(1, Ordering::AcqRel) + 1;
    let guard = AdmitGuard(inner.clone());
    let over_limit = config.max_connections != 0 && admitted > config.max_connections;
    let Ok(local) = tcp.local_addr() else {
        return None;
    };
    let decision = handler.on_tcp_connect(peer, local).await;
    if decision == TcpDecision::Reject {
        return None;
    }
    if config.nodelay {
        let _ = tcp.set_nodelay(true);
    }
    if let Some(k) = config.tcp_keepalive {
        if let Err(e) = set_keepalive(&tcp, k) {
            tracing::debug!(%peer, error = %e, "cannot set TCP keep-alive");
        }
    }
    let deadline = tokio::time::Instant::now() + config.handshake_timeout;
    let is_tls = tls.is_some();
    let io = match tls {
        None => Io::Plain(tcp),
        Some(side) => match tokio::time::timeout_at(deadline, side.accept(tcp)).await {
            Ok(Ok(s)) => Io::tls(s),
            Ok(Err(e)) => {
                handler.on_error(peer, None, &Error::Tls(e)).await;
                return None;
            }
            Err(_) => {
                handler.on_error(peer, None, &Error::HandshakeTimeout).await;
                return None;
            }
        },
    };
    if decision == TcpDecision::RawTcp {
        return Some(Next::Raw {
            io,
            peer,
            local,
            tls: is_tls,
            first: Bytes::new(),
            guard,
        });
    }
    let accepted = Accepted {
        io,
        peer,
        local,
        tls: is_tls,
        deadline,
        guard,
        over_limit,
    };
    http::serve(server, handler, accepted).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn keepalive_settings_reach_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let k = crate::config::TcpKeepAlive::new(Duration::from_secs(7), Duration::from_secs(3), 4);
        set_keepalive(&tcp, k).unwrap();
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(
            sock.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);
    }
}
