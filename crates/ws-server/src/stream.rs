//! The stream API: connections as values you `await` on, for those who prefer
//! `while let Some(msg) = ws.next().await` to a handler.

use std::sync::Arc;

use tokio::sync::mpsc;
use ws_frame::{CloseCode, Message};

use crate::{
    config::ServerConfig,
    error::Error,
    handle::{ConnHandle, ServerHandle},
    handler::{Ctx, Disconnect, Handler},
    registry::ConnInfo,
    server::Server,
    types::ConnId,
};

/// Messages buffered per stream before the connection stops reading (backpressure).
const STREAM_BUFFER: usize = 32;

/// One connection of the stream API. Dropping it does not close the connection; call
/// [`WsStream::close`].
#[derive(Debug)]
pub struct WsStream {
    handle: ConnHandle,
    rx: mpsc::Receiver<Message>,
}

impl WsStream {
    /// The next message; `None` once the connection ended.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// Sends a message (waits while the connection's queue is full).
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection ended.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.handle.send(msg).await
    }

    /// Starts the close handshake.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection ended.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<(), Error> {
        self.handle.close(code, reason).await
    }

    /// The connection id.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.handle.id()
    }

    /// The connection's details.
    #[must_use]
    pub fn info(&self) -> &Arc<ConnInfo> {
        self.handle.info()
    }

    /// A handle for sending from other tasks.
    #[must_use]
    pub fn handle(&self) -> &ConnHandle {
        &self.handle
    }
}

/// New connections of a stream-API server.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<WsStream>,
}

impl Incoming {
    /// The next connection; `None` when the server is gone.
    pub async fn next(&mut self) -> Option<WsStream> {
        self.rx.recv().await
    }
}

struct StreamHandler {
    accept: mpsc::Sender<WsStream>,
}

struct StreamTx(mpsc::Sender<Message>);

impl Handler for StreamHandler {
    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        ctx.set_data(StreamTx(tx));
        let stream = WsStream {
            handle: ctx.handle(),
            rx,
        };
        if self.accept.send(stream).await.is_err() {
            let _ = ctx.close(CloseCode::AWAY, "");
        }
    }

    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let tx = ctx.data::<StreamTx>().map(|t| t.0.clone());
        if let Some(tx) = tx {
            // Waiting here stops the connection from reading: backpressure to the client.
            let _ = tx.send(msg).await;
        }
    }

    async fn on_disconnect(&self, _info: &Arc<ConnInfo>, _disconnect: Disconnect) {}
}

impl Server {
    /// Starts a server whose connections come out of [`Incoming`] instead of going to a
    /// handler.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub async fn start_stream(config: ServerConfig) -> Result<(ServerHandle, Incoming), Error> {
        let (accept, rx) = mpsc::channel(64);
        let handle = Self::start(config, StreamHandler { accept }).await?;
        Ok((handle, Incoming { rx }))
    }
}
