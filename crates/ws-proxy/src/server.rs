//! Starting and stopping the proxy, and what it offers at run time: the downstream clients
//! (write, ping, broadcast, disconnect), the upstream (changed live or with a restart), the
//! balanced backends.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, atomic::Ordering},
};

use bytes::Bytes;
use tokio_rustls::TlsConnector;
use ws_server::{
    ConnId, Filter, Server, ServerHandle, SlowReaderPolicy,
    ws_frame::{CloseCode, Message},
};

use crate::{
    balance::BackendStatus,
    bridge::{Proxy, Stats},
    config::ProxyConfig,
    error::Error,
    hooks::{Hooks, NoHooks},
    http_forward::HttpSide,
    lb::{AbortOnDrop, Lb},
    sync::lock,
    target::Target,
    tokens::TokenFile,
    upstream::HttpUpstream,
};

/// A running proxy: a ws-server whose connections are bridged to their backends.
#[derive(Clone)]
pub struct ProxyServer {
    server: ServerHandle,
    stats: Arc<Stats>,
    hooks: Arc<dyn Hooks>,
    target: Arc<Mutex<Option<Target>>>,
    http: Arc<HttpSide>,
    lb: Option<Arc<Lb>>,
    checker: Arc<Mutex<Option<AbortOnDrop>>>,
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer")
            .field("server", &self.server)
            .field("stats", &self.stats)
            .field("target", &self.target)
            .field("balanced", &self.lb.is_some())
            .finish_non_exhaustive()
    }
}

impl ProxyServer {
    /// Validates `config`, reads the token file, builds the backend TLS configurations, binds
    /// the listeners and starts accepting on the current tokio runtime (and the health
    /// checks of balanced backends).
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Client`], [`Error::Server`] for invalid
    /// settings (an HTTP upstream's TLS server name included) or addresses that cannot be
    /// bound, [`Error::TokenFile`] when the token
    /// file cannot be read, [`Error::Tls`] for unusable backend TLS settings.
    pub async fn start(config: ProxyConfig) -> Result<Self, Error> {
        Self::start_with_hooks(config, NoHooks).await
    }

    /// [`ProxyServer::start`] with application hooks.
    ///
    /// # Errors
    /// As [`ProxyServer::start`].
    pub async fn start_with_hooks<H: Hooks>(
        mut config: ProxyConfig,
        hooks: H,
    ) -> Result<Self, Error> {
        config.server.slow_reader = SlowReaderPolicy::Backpressure;
        config.validate()?;
        let tokens = config
            .token_file
            .as_deref()
            .map(TokenFile::open)
            .transpose()?;
        let tls = TlsConnector::from(ws_tls::client_config(&config.backend_tls)?);
        let mut upstream = config.upstream_ws.clone();
        upstream.connect_timeout = config.connect_timeout;
        if upstream.rustls.is_none() {
            upstream.rustls = Some(ws_tls::client_config(&upstream.tls)?);
        }
        let server_config = config.server.clone();
        let http = Arc::new(HttpSide::new(&config, tls.clone())?);
        let hooks = Arc::new(hooks);
        let dyn_hooks: Arc<dyn Hooks> = hooks.clone();
        let lb = config
            .balance
            .clone()
            .map(|b| Arc::new(Lb::new(b, tls.clone(), dyn_hooks.clone())));
        let proxy = Proxy::new(
            config,
            hooks,
            tokens,
            tls,
            upstream,
            lb.clone(),
            http.clone(),
        );
        let stats = proxy.stats.clone();
        let target = proxy.target.clone();
        let server = Server::start(server_config, proxy).await?;
        let checker = lb.as_ref().and_then(Lb::spawn_checker).map(AbortOnDrop);
        dyn_hooks.on_startup(&server.local_addrs());
        Ok(Self {
            server,
            stats,
            hooks: dyn_hooks,
            target,
            http,
            lb,
            checker: Arc::new(Mutex::new(checker)),
        })
    }

    /// Addresses the listeners are bound to (with the real port when port 0 was asked).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.server.local_addrs()
    }

    /// The underlying server: connection registry, channels, everything not offered here.
    #[must_use]
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// Browser connections open now.
    #[must_use]
    pub fn count(&self) -> usize {
        self.server.count()
    }

    /// Sends `msg` to one browser connection (`WriteData`), as if its backend had sent it.
    ///
    /// # Errors
    /// As [`ServerHandle::write_to`]: the connection is unknown or closed.
    pub async fn write_to(&self, id: ConnId, msg: impl Into<Message>) -> Result<(), Error> {
        Ok(self.server.write_to(id, msg).await?)
    }

    /// Sends `msg` to every browser connection that `filter` selects (`Broadcast`); returns
    /// how many got it.
    pub async fn broadcast(&self, msg: impl Into<Message>, filter: &Filter) -> usize {
        self.server.broadcast(msg, filter).await
    }

    /// Pings every browser connection (`Ping`); returns how many were pinged. With the
    /// server's heartbeat configured, a connection whose pong does not come is closed.
    #[must_use = "the count tells how many connections were pinged"]
    pub fn ping_all(&self) -> usize {
        self.server.ping_all()
    }

    /// Pings one browser connection with `payload`.
    ///
    /// # Errors
    /// [`Error::Server`] with [`ws_server::Error::UnknownConnection`] when `id` is not open,
    /// or as [`ws_server::ConnHandle::ping`] when it closed meanwhile.
    pub async fn ping(&self, id: ConnId, payload: Bytes) -> Result<(), Error> {
        match self.server.get(id) {
            Some(conn) => Ok(conn.ping(payload).await?),
            None => Err(ws_server::Error::UnknownConnection(id.0).into()),
        }
    }

    /// Closes every browser connection with `code` (`DisconnectAll`); each one's backend
    /// connection follows (FIN after the queued data, drain timeout). The listeners keep
    /// running.
    pub fn disconnect_all(&self, code: CloseCode) {
        self.server.disconnect_all(code);
    }

    /// The fixed target ([`ProxyConfig::target`]) now.
    #[must_use]
    pub fn target(&self) -> Option<Target> {
        lock(&self.target).clone()
    }

    /// Changes the fixed target: new connections go there; open ones stay with their
    /// backend (call [`ProxyServer::restart`] or [`ProxyServer::disconnect_all`] to move
    /// them).
    pub fn set_target(&self, target: Option<Target>) {
        *lock(&self.target) = target;
    }

    /// Changes the fixed HTTP upstream ([`ProxyConfig::http_upstream`]) for the next
    /// requests.
    ///
    /// # Errors
    /// As [`HttpUpstream::validate`].
    pub fn set_http_upstream(&self, upstream: Option<HttpUpstream>) -> Result<(), Error> {
        if let Some(up) = &upstream {
            up.validate()?;
        }
        *lock(&self.http.fixed) = upstream;
        Ok(())
    }

    /// Stops (as [`ProxyServer::stop`]) and binds the listeners again (`ReStart`), with the
    /// target and HTTP upstream set by then ([`ProxyServer::set_target`]).
    ///
    /// # Errors
    /// [`Error::Server`] when an address cannot be bound again.
    pub async fn restart(&self) -> Result<(), Error> {
        self.hooks.on_shutdown();
        self.server.restart().await?;
        self.hooks.on_startup(&self.server.local_addrs());
        Ok(())
    }

    /// The balanced backends and their state (empty without [`ProxyConfig::balance`]).
    #[must_use]
    pub fn backends(&self) -> Vec<BackendStatus> {
        self.lb.as_ref().map(|lb| lb.status()).unwrap_or_default()
    }

    /// Adds a balanced backend (or makes a draining one usable again); true when it is new.
    ///
    /// # Errors
    /// [`Error::Config`] without [`ProxyConfig::balance`].
    pub fn add_backend(&self, target: Target) -> Result<bool, Error> {
        Ok(self.balancer()?.add(target))
    }

    /// Drains a balanced backend: no new connections, removed once its open ones ended.
    /// False when it is not a backend.
    ///
    /// # Errors
    /// [`Error::Config`] without [`ProxyConfig::balance`].
    pub fn drain_backend(&self, target: &Target) -> Result<bool, Error> {
        Ok(self.balancer()?.drain(target))
    }

    /// A receiver whose value changes whenever a balanced backend changes state, opens or
    /// closes a connection, or is added or removed (await `changed()`, then read [`ProxyServer::backends`]).
    ///
    /// # Errors
    /// [`Error::Config`] without [`ProxyConfig::balance`].
    pub fn backend_changes(&self) -> Result<tokio::sync::watch::Receiver<u64>, Error> {
        Ok(self.balancer()?.subscribe())
    }

    fn balancer(&self) -> Result<&Arc<Lb>, Error> {
        self.lb.as_ref().ok_or(Error::Config {
            field: "balance",
            rule: "is not set: start the proxy with ProxyConfig::balance",
        })
    }

    /// Backend connections open right now (a bridge counts until its backend side is torn
    /// down, which may be up to [`ProxyConfig::drain_timeout`] after the WebSocket closed).
    #[must_use]
    pub fn active_bridges(&self) -> usize {
        self.stats.active.load(Ordering::Acquire)
    }

    /// Bridges established since start.
    #[must_use]
    pub fn total_bridges(&self) -> u64 {
        self.stats.total.load(Ordering::Relaxed)
    }

    /// Backend connection attempts that failed since start.
    #[must_use]
    pub fn failed_connects(&self) -> u64 {
        self.stats.failed.load(Ordering::Relaxed)
    }

    /// Stops accepting and closes every WebSocket with 1001; each backend connection is then
    /// shut down (FIN, drain timeout). Health checks stop.
    pub async fn stop(&self) {
        self.hooks.on_shutdown();
        drop(lock(&self.checker).take());
        self.server.stop().await;
    }
}
