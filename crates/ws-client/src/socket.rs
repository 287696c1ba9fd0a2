//! The application-facing handles: [`WebSocket`], and its halves [`WsReader`] and [`WsWriter`].

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, atomic::Ordering},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};
use ws_frame::{CloseCode, Message, SendOptions, Utf8Bytes, deflate::DeflateParams};
use ws_http::WsUrl as Url;

use crate::{
    conn::{CloseInfo, Command, Incoming, Item, Shared},
    error::Error,
    handshake::HandshakeResponse,
};

/// Facts about an established connection.
#[derive(Debug)]
pub(crate) struct Info {
    pub(crate) url: Url,
    pub(crate) peer: SocketAddr,
    pub(crate) protocol: Option<String>,
    pub(crate) deflate: Option<DeflateParams>,
    pub(crate) alpn: Option<Vec<u8>>,
    pub(crate) response: Option<HandshakeResponse>,
    pub(crate) close_timeout: Duration,
}

/// The receiving half: a stream of messages.
///
/// The stream ends (`None`) after a clean close, by either side; after a failure (protocol
/// error, dead peer, reset, end of stream without a close handshake) it yields one `Err` first.
/// [`WsReader::close_info`] then tells how the connection ended. `recv` is cancel-safe.
#[derive(Debug)]
pub struct WsReader {
    rx: mpsc::Receiver<Item>,
    shared: Arc<Shared>,
    info: Arc<Info>,
}

/// The sending half; cheap to clone, usable from any number of tasks.
///
/// Sends are queued for the connection task (bounded by
/// [`crate::ClientConfig::send_queue`]; a full queue makes senders wait) and written in
/// batches. Every method is cancel-safe: a cancelled send queued nothing.
#[derive(Clone, Debug)]
pub struct WsWriter {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    info: Arc<Info>,
}

/// A client connection: send with the `send_*` methods, receive with [`WebSocket::recv`] or
/// as a [`Stream`], split into halves for two tasks with [`WebSocket::split`].
///
/// Dropping every handle (the `WebSocket`, or both halves and all writer clones) closes the
/// connection with 1000.
#[derive(Debug)]
pub struct WebSocket {
    reader: WsReader,
    writer: WsWriter,
}

impl WebSocket {
    pub(crate) fn new(
        tx: mpsc::Sender<Command>,
        rx: mpsc::Receiver<Item>,
        shared: Arc<Shared>,
        info: Info,
    ) -> Self {
        let info = Arc::new(info);
        Self {
            reader: WsReader {
                rx,
                shared: shared.clone(),
                info: info.clone(),
            },
            writer: WsWriter { tx, shared, info },
        }
    }

    /// Splits into a receiving and a sending half, usable from two tasks at once.
    #[must_use]
    pub fn split(self) -> (WsReader, WsWriter) {
        (self.reader, self.writer)
    }

    /// Puts halves from [`WebSocket::split`] back together.
    #[must_use]
    pub fn reunite(reader: WsReader, writer: WsWriter) -> Self {
        Self { reader, writer }
    }

    /// A sending handle for another task (the connection stays owned by this value).
    #[must_use]
    pub fn writer(&self) -> WsWriter {
        self.writer.clone()
    }

    /// Queues a text message.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send_text(&self, text: impl Into<Utf8Bytes>) -> Result<(), Error> {
        self.writer.send_text(text).await
    }

    /// Queues a binary message.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.writer.send_binary(data).await
    }

    /// Queues a message.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.writer.send(msg).await
    }

    /// Queues a message split into frames of at most `fragment_size` payload bytes (the
    /// seeds' `WriteData(stream, size)`).
    ///
    /// # Errors
    /// [`Error::ZeroFragmentSize`] for a size of 0; [`Error::Closed`] once closing.
    pub async fn send_fragmented(
        &self,
        msg: impl Into<Message>,
        fragment_size: usize,
    ) -> Result<(), Error> {
        self.writer.send_fragmented(msg, fragment_size).await
    }

    /// Queues a message with explicit options (fragment size, compression).
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send_with(&self, msg: Message, opts: SendOptions) -> Result<(), Error> {
        self.writer.send_with(msg, opts).await
    }

    /// Queues a ping (at most 125 bytes of payload).
    ///
    /// # Errors
    /// [`Error::PingTooLong`] above 125 bytes; [`Error::Closed`] once closing.
    pub async fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.writer.ping(payload).await
    }

    /// See [`WsWriter::send_with_priority`].
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send_with_priority(
        &self,
        msg: impl Into<Message>,
        priority: crate::Priority,
    ) -> Result<(), Error> {
        self.writer.send_with_priority(msg, priority).await
    }

    /// See [`WsWriter::ping_and_wait`].
    ///
    /// # Errors
    /// As [`WsWriter::ping_and_wait`].
    pub async fn ping_and_wait(
        &self,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Duration, Error> {
        self.writer.ping_and_wait(payload, timeout).await
    }

    /// See [`WsWriter::abort`].
    pub async fn abort(&self) {
        self.writer.abort().await;
    }

    /// Starts the close handshake and waits for it to complete (at most
    /// [`ws_frame::Config::close_timeout`]). Messages still arriving meanwhile stay readable.
    ///
    /// # Errors
    /// [`Error::ReplyTimeout`] when the server does not answer in time (the transport is
    /// dropped); [`Error::Protocol`] for an unsendable code or a reason over 123 bytes;
    /// [`Error::Closed`] when the connection failed meanwhile.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<CloseInfo, Error> {
        self.writer.close(code, reason).await
    }

    /// The next message, skipping pings, pongs and fragments. `None` after a clean close.
    /// Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        self.reader.recv().await
    }

    /// The next message, fragment, ping or pong. Cancel-safe.
    pub async fn recv_incoming(&mut self) -> Option<Result<Incoming, Error>> {
        self.reader.recv_incoming().await
    }

    /// Sends `msg` and waits up to `timeout` for the next message (the seeds'
    /// `WriteAndWaitData`). Messages are not correlated: whatever arrives next is returned.
    ///
    /// # Errors
    /// [`Error::ReplyTimeout`] when nothing arrives in time; [`Error::Closed`] when the
    /// connection closes first; errors of the send and of the connection.
    pub async fn request(
        &mut self,
        msg: impl Into<Message>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        self.writer.send(msg).await?;
        match tokio::time::timeout(timeout, self.reader.recv()).await {
            Err(_) => Err(Error::ReplyTimeout(timeout)),
            Ok(None) => Err(Error::Closed),
            Ok(Some(r)) => r,
        }
    }

    /// How the connection ended, once it has.
    #[must_use]
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.reader.close_info()
    }

    /// Whether a Close was sent or received, or the connection ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.writer.is_closed()
    }

    /// The URL connected to (after redirects).
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.reader.info.url
    }

    /// The address connected to (the proxy's when a proxy is used).
    #[must_use]
    pub fn peer_addr(&self) -> SocketAddr {
        self.reader.info.peer
    }

    /// The subprotocol the server selected.
    #[must_use]
    pub fn protocol(&self) -> Option<&str> {
        self.reader.info.protocol.as_deref()
    }

    /// The permessage-deflate parameters in use, if negotiated.
    #[must_use]
    pub fn deflate(&self) -> Option<&DeflateParams> {
        self.reader.info.deflate.as_ref()
    }

    /// The ALPN protocol TLS negotiated.
    #[must_use]
    pub fn alpn(&self) -> Option<&[u8]> {
        self.reader.info.alpn.as_deref()
    }

    /// The 101 response (`None` for `tcp://`).
    #[must_use]
    pub fn response(&self) -> Option<&HandshakeResponse> {
        self.reader.info.response.as_ref()
    }
}

impl Stream for WebSocket {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.reader).poll_next(cx)
    }
}

impl WsReader {
    /// The next message, skipping pings, pongs and fragments. `None` after a clean close (and
    /// after the error of a failed connection). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Result<Message, Error>> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// The next message, fragment, ping or pong. Cancel-safe.
    pub async fn recv_incoming(&mut self) -> Option<Result<Incoming, Error>> {
        self.rx.recv().await
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(Incoming::Message(m)))) => return Poll::Ready(Some(Ok(m))),
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// How the connection ended, once it has.
    #[must_use]
    pub fn close_info(&self) -> Option<CloseInfo> {
        self.shared.close_info()
    }

    /// The URL connected to (after redirects).
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.info.url
    }
}

impl Stream for WsReader {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_message(cx)
    }
}

impl WsWriter {
    fn check(&self) -> Result<(), Error> {
        if self.shared.closing.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    async fn command(&self, cmd: Command) -> Result<(), Error> {
        self.check()?;
        self.tx.send(cmd).await.map_err(|_| Error::Closed)
    }

    /// Queues a text message.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send_text(&self, text: impl Into<Utf8Bytes>) -> Result<(), Error> {
        self.send(Message::Text(text.into())).await
    }

    /// Queues a binary message.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send(Message::Binary(data.into())).await
    }

    /// Queues a message.
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.command(Command::Send(msg.into(), SendOptions::default(), None))
            .await
    }

    /// Queues a message split into frames of at most `fragment_size` payload bytes.
    ///
    /// # Errors
    /// [`Error::ZeroFragmentSize`] for a size of 0; [`Error::Closed`] once closing.
    pub async fn send_fragmented(
        &self,
        msg: impl Into<Message>,
        fragment_size: usize,
    ) -> Result<(), Error> {
        if fragment_size == 0 {
            return Err(Error::ZeroFragmentSize);
        }
        self.command(Command::Send(
            msg.into(),
            SendOptions::fragmented(fragment_size),
            None,
        ))
        .await
    }

    /// Queues a message with explicit options.
    ///
    /// # Errors
    /// [`Error::ZeroFragmentSize`] for a fragment size of 0; [`Error::Closed`] once closing.
    pub async fn send_with(&self, msg: Message, opts: SendOptions) -> Result<(), Error> {
        if opts.fragment_size == Some(0) {
            return Err(Error::ZeroFragmentSize);
        }
        self.command(Command::Send(msg, opts, None)).await
    }

    /// Queues a ping.
    ///
    /// # Errors
    /// [`Error::PingTooLong`] above 125 bytes; [`Error::Closed`] once closing.
    pub async fn ping(&self, payload: impl Into<Bytes>) -> Result<(), Error> {
        let payload = payload.into();
        if payload.len() > 125 {
            return Err(Error::PingTooLong {
                len: payload.len(),
                max: 125,
            });
        }
        self.command(Command::Ping(payload)).await
    }

    /// Queues a message at send-queue level `priority`, ahead of (or behind) what waits at
    /// other levels (see [`crate::ClientConfig::priorities`]).
    ///
    /// # Errors
    /// [`Error::Closed`] once the connection is closing or closed.
    pub async fn send_with_priority(
        &self,
        msg: impl Into<Message>,
        priority: crate::Priority,
    ) -> Result<(), Error> {
        self.command(Command::Send(
            msg.into(),
            SendOptions::default(),
            Some(priority),
        ))
        .await
    }

    /// Sends a ping and waits for a pong (the seeds' `Ping(timeout)`); returns the round-trip
    /// time. When no pong comes within `timeout` the connection is dropped (no Close frame:
    /// the peer is taken for dead) and the reader gets [`Error::PeerDead`].
    ///
    /// # Errors
    /// [`Error::PeerDead`] when no pong came in time; [`Error::PingTooLong`] above 125 bytes;
    /// [`Error::RawTcp`] on a `tcp://` connection; [`Error::Closed`] once closing.
    pub async fn ping_and_wait(
        &self,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Duration, Error> {
        let payload = payload.into();
        if payload.len() > 125 {
            return Err(Error::PingTooLong {
                len: payload.len(),
                max: 125,
            });
        }
        let (reply, wait) = oneshot::channel();
        self.command(Command::PingWait(payload, timeout, reply))
            .await?;
        wait.await.unwrap_or(Err(Error::Closed))
    }

    /// Drops the connection at once, without a Close frame (the seeds'
    /// `Connection.Disconnect`): what is queued is not sent, the server sees the TCP
    /// connection end (1006 on its side). The reader's stream ends without an error and
    /// [`WsReader::close_info`] says 1006, by [`ws_frame::Initiator::User`].
    pub async fn abort(&self) {
        let _ = self.tx.send(Command::Abort).await;
    }

    /// Starts the close handshake and waits for it to complete; see [`WebSocket::close`].
    ///
    /// # Errors
    /// As [`WebSocket::close`].
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<CloseInfo, Error> {
        let (reply, wait) = oneshot::channel();
        if self
            .tx
            .send(Command::Close(code, reason.to_owned(), Some(reply)))
            .await
            .is_err()
        {
            return self.shared.close_info().ok_or(Error::Closed);
        }
        let limit = self.info.close_timeout + Duration::from_secs(1);
        match tokio::time::timeout(limit, wait).await {
            Err(_) => Err(Error::ReplyTimeout(self.info.close_timeout)),
            Ok(Err(_)) => self.shared.close_info().ok_or(Error::Closed),
            Ok(Ok(r)) => r,
        }
    }

    /// Whether a Close was sent or received, or the connection ended.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }
}
