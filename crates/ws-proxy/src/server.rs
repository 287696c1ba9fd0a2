//! Starting and stopping the proxy.

use std::{net::SocketAddr, sync::Arc, sync::atomic::Ordering};

use tokio_rustls::TlsConnector;
use ws_server::{Server, ServerHandle, SlowReaderPolicy};

use crate::{
    bridge::{Proxy, Stats},
    config::ProxyConfig,
    error::Error,
    hooks::{Hooks, NoHooks},
    http_forward::{Forwarder, WithHttp},
    tokens::TokenFile,
};

/// A running proxy: a ws-server whose connections are bridged to their backends.
#[derive(Debug, Clone)]
pub struct ProxyServer {
    server: ServerHandle,
    stats: Arc<Stats>,
}

impl ProxyServer {
    /// Validates `config`, reads the token file, builds the backend TLS configurations, binds
    /// the listeners and starts accepting on the current tokio runtime.
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
        let http = match config.http_upstream.clone() {
            Some(up) => Some(Forwarder::new(up, &config, tls.clone())?),
            None => None,
        };
        let proxy = Proxy::new(config, hooks, tokens, tls, upstream);
        let stats = proxy.stats.clone();
        let server = match http {
            Some(fwd) => Server::start(server_config, WithHttp::new(proxy, fwd)).await?,
            None => Server::start(server_config, proxy).await?,
        };
        Ok(Self { server, stats })
    }

    /// Addresses the listeners are bound to (with the real port when port 0 was asked).
    #[must_use]
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.server.local_addrs()
    }

    /// The underlying server: connection registry, `write_to`, `broadcast`, `ping_all`,
    /// `disconnect_all` (each backend connection follows its WebSocket), `restart`.
    #[must_use]
    pub fn server(&self) -> &ServerHandle {
        &self.server
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
    /// shut down (FIN, drain timeout).
    pub async fn stop(&self) {
        self.server.stop().await;
    }
}
