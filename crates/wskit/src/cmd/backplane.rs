//! `wskit serve --backplane redis://HOST:PORT | nats://HOST:PORT [--node-id ID]`: several
//! nodes behind a load balancer act as one server. Broadcasts (the `/chat` of the test page,
//! channel broadcasts) reach the subscribers of every node through the engine; see
//! docs/scale-out.md for the guarantees and the outage policy.

use std::sync::Arc;

use anyhow::{Context, Result};
use ws_server::ServerHandle;

super::config::layered! {
/// Scale-out flags of `wskit serve`, and their keys in its `[serve]` table (flattened into
/// `serve::Args`: no `deny_unknown_fields` here, `serve` has it).
#[derive(Clone, Debug, Default, clap::Args, serde::Deserialize)]
#[serde(default)]
pub(crate) struct BackplaneArgs {
    /// Relay broadcasts and channel subscriptions through this pub/sub engine so that several
    /// `wskit serve` nodes act as one: redis://HOST:PORT (Redis pub/sub) or nats://HOST:PORT
    /// (core NATS). Default: none (a single server).
    #[arg(long, value_name = "URL")]
    pub(crate) backplane: Option<String>,
    /// This node's id in the cluster, unique among the nodes. Default: a random id.
    #[arg(long, value_name = "ID")]
    pub(crate) node_id: Option<String>,
    /// Broadcasts held for the other nodes while the engine is unreachable, replayed once it is
    /// back; past it they are dropped and counted. Default: 10000.
    #[arg(long, value_name = "N")]
    pub(crate) backplane_buffer: Option<usize>,
    /// Prefix of the engine's channels or subjects, so that clusters can share an engine.
    /// Default: wskit.
    #[arg(long, value_name = "NAME")]
    pub(crate) backplane_prefix: Option<String>,
}
}

impl BackplaneArgs {
    /// Starts the link to the engine (it connects in the background: a node starts and serves
    /// its own clients while the engine is down). `None` without `--backplane`.
    ///
    /// # Errors
    /// A malformed URL or setting, and `--node-id`/`--backplane-buffer` without `--backplane`.
    pub(crate) fn connect(&self) -> Result<Option<Arc<ws_backplane::Link>>> {
        let Some(url) = &self.backplane else {
            anyhow::ensure!(
                self.node_id.is_none()
                    && self.backplane_buffer.is_none()
                    && self.backplane_prefix.is_none(),
                "--node-id, --backplane-buffer and --backplane-prefix need --backplane URL"
            );
            return Ok(None);
        };
        let mut config =
            ws_backplane::Config::new(url.clone(), self.node_id.clone().unwrap_or_default());
        if let Some(n) = self.backplane_buffer {
            config.outage_buffer = n;
        }
        if let Some(p) = &self.backplane_prefix {
            config.prefix.clone_from(p);
        }
        ws_backplane::connect(config)
            .map(Some)
            .context("--backplane")
    }
}

/// Joins `server` to the cluster through `link`.
pub(crate) fn attach(server: &ServerHandle, link: Option<Arc<ws_backplane::Link>>) {
    if let Some(link) = link {
        use ws_server::Backplane as _;
        tracing::info!(node = link.node_id(), "backplane: joined the cluster");
        server.attach_backplane(link);
    }
}
