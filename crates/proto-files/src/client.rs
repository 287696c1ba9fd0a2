//! The client side over ws-client: [`FilesClient`] sends files to the server it is connected
//! to and receives the files the server sends (into its own save directory).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use ws_client::{ClientConfig, IntoUrl, Message, WsWriter};

use crate::{
    config::Config,
    engine::{self, Hooks, Link, Peer, SendOptions, SendReport, Shared},
    error::Error,
    store::Store,
    wire::SUBPROTOCOL,
};

struct WriterLink(WsWriter);

impl Link for WriterLink {
    async fn send(&self, msg: Vec<u8>) -> Result<(), Error> {
        self.0
            .send(Message::Binary(Bytes::from(msg)))
            .await
            .map_err(|_| Error::Closed)
    }
}

/// A files-protocol connection to a server.
pub struct FilesClient {
    peer: Arc<Peer>,
    writer: WsWriter,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FilesClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesClient").finish_non_exhaustive()
    }
}

impl FilesClient {
    /// Connects to `url` (offering [`SUBPROTOCOL`] besides what `client` offers), receiving
    /// into `save_dir` (`None`: offers from the server are refused).
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::Io`] for the save directory, [`Error::Client`] for the
    /// connection.
    pub async fn connect(
        url: impl IntoUrl,
        mut client: ClientConfig,
        config: Config,
        save_dir: Option<PathBuf>,
        hooks: impl Hooks,
    ) -> Result<Self, Error> {
        config.validate()?;
        let store = save_dir.map(Store::open).transpose()?;
        if !client.protocols.iter().any(|p| p == SUBPROTOCOL) {
            client.protocols.push(SUBPROTOCOL.to_string());
        }
        let ws = ws_client::connect(url, client).await?;
        let period =
            (config.interval / 4).clamp(Duration::from_millis(20), Duration::from_millis(500));
        let shared = Arc::new(Shared::new(config, store, Arc::new(hooks)));
        let peer = Arc::new(Peer::new(0, shared));
        let (mut reader, writer) = ws.split();
        let (p, w) = (peer.clone(), writer.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    m = reader.recv() => match m {
                        Some(Ok(Message::Binary(b))) => {
                            for reply in p.on_message(&b).await {
                                if w.send(Message::Binary(Bytes::from(reply))).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(_)) | None => break,
                    },
                    _ = tick.tick() => {
                        for m in p.tick().await {
                            let _ = w.send(Message::Binary(Bytes::from(m))).await;
                        }
                    }
                }
            }
            p.closed().await;
        });
        Ok(Self { peer, writer, task })
    }

    /// Sends the file at `path` to the server, streaming it from disk; returns when the server
    /// confirmed it or the transfer failed. With the same file id (the default id is derived
    /// from the path, size and modification time) a later call resumes where the server's
    /// partial file ends.
    ///
    /// # Errors
    /// As [`crate::Files::send_file`].
    pub async fn send_file(
        &self,
        path: impl AsRef<Path>,
        opts: &SendOptions,
    ) -> Result<SendReport, Error> {
        engine::send_file(
            &self.peer,
            &WriterLink(self.writer.clone()),
            path.as_ref(),
            opts,
        )
        .await
    }

    /// Whether the connection is closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits until the connection ends (the server closed it, or it broke).
    pub async fn closed(&mut self) {
        let _ = (&mut self.task).await;
    }

    /// Closes the connection (normal closure) and waits for the end.
    pub async fn close(mut self) {
        let _ = self.writer.close(ws_client::CloseCode::NORMAL, "").await;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}
