//! The handler trait (the seeds' component events) and what its methods receive and return.

use std::{any::Any, future::Future, net::SocketAddr, sync::Arc, time::Instant};

use bytes::Bytes;
use ws_frame::{CloseCode, Message, SendOptions, Utf8Bytes};
use ws_io::TxQueue;

use crate::{
    body::Body,
    config::{Delimiter, DelimiterScan},
    error::Error,
    event::SseEvent,
    handle::{ConnHandle, ServerHandle},
    registry::ConnInfo,
    request::Request,
    response::Response,
    types::ConnId,
};

/// The verdict of [`Handler::on_before_request`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Before {
    /// Go on: upgrade, SSE, static file or [`Handler::on_http`].
    Continue,
    /// Answer with this response instead (401 with a challenge, a redirect, ...).
    Respond(Response),
}

/// What to do with a freshly accepted TCP connection (the seeds' `OnTCPConnect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TcpDecision {
    /// Go on with TLS (if any) and the HTTP handshake.
    Accept,
    /// Treat it as a plain TCP connection at once, without waiting for client bytes
    /// (`Transport = trpTCP`).
    RawTcp,
    /// Close it.
    Reject,
}

/// The answer to an upgrade request ([`Handler::on_handshake`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Decision {
    /// Upgrade.
    Accept {
        /// Subprotocol to select; it must be one the client offered. `None` keeps the server's
        /// choice from [`crate::ServerConfig::protocols`].
        protocol: Option<String>,
        /// Extra headers for the 101 response.
        headers: Vec<(String, String)>,
    },
    /// Refuse with this response.
    Reject(Response),
}

impl Decision {
    /// Accept with the server's subprotocol choice and no extra headers.
    #[must_use]
    pub fn accept() -> Self {
        Self::Accept {
            protocol: None,
            headers: Vec::new(),
        }
    }

    /// Accept with `protocol`.
    #[must_use]
    pub fn accept_protocol(protocol: impl Into<String>) -> Self {
        Self::Accept {
            protocol: Some(protocol.into()),
            headers: Vec::new(),
        }
    }

    /// Reject with `status` and an empty body.
    #[must_use]
    pub fn reject(status: u16) -> Self {
        Self::Reject(Response::new(status))
    }
}

/// One fragment of a fragmented message ([`ws_frame::FragmentMode::Deliver`] and
/// [`ws_frame::FragmentMode::Both`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Fragment {
    /// Whether the message is text.
    pub text: bool,
    /// This fragment's data (inflated).
    pub payload: Bytes,
    /// First fragment of the message.
    pub first: bool,
    /// Last fragment of the message.
    pub fin: bool,
    /// With [`crate::ServerConfig::fragments_so_far`]: the data of the message from its
    /// first fragment up to and including this one (the seeds' `frgAll`). `None` otherwise.
    pub so_far: Option<Bytes>,
}

/// How a connection ended, for [`Handler::on_disconnect`]: ws-frame's
/// [`ws_frame::CloseInfo`], the workspace's one close-reason type.
pub use ws_frame::CloseInfo as Disconnect;

/// Where [`Ctx::send`] puts bytes.
pub(crate) enum Sink<'a> {
    Ws(&'a mut ws_frame::Connection),
    /// Plain TCP (bytes as they are) or SSE (`sse`: messages become events).
    Raw {
        tx: &'a mut TxQueue,
        closing: &'a mut bool,
        sse: bool,
        /// The connection's delimiter and whether the handler changed it (plain TCP only).
        delimiter: Option<&'a mut (Delimiter, bool)>,
    },
}

/// Per-connection context handed to handler methods: send on this connection without a queue
/// hop, subscribe to channels, read the connection's details, keep per-connection data.
pub struct Ctx<'a> {
    pub(crate) sink: Sink<'a>,
    pub(crate) info: &'a Arc<ConnInfo>,
    pub(crate) server: &'a ServerHandle,
    pub(crate) data: &'a mut Option<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("info", self.info)
            .finish_non_exhaustive()
    }
}

impl Ctx<'_> {
    /// The connection id.
    #[must_use]
    pub fn id(&self) -> ConnId {
        self.info.id
    }

    /// The connection's details.
    #[must_use]
    pub fn info(&self) -> &Arc<ConnInfo> {
        self.info
    }

    /// The server, for broadcasts and addressing other connections.
    #[must_use]
    pub fn server(&self) -> &ServerHandle {
        self.server
    }

    /// A cloneable handle to this connection, for sending from other tasks.
    #[must_use]
    pub fn handle(&self) -> ConnHandle {
        ConnHandle::new(self.info.clone(), self.server.clone())
    }

    /// Queues a message on this connection (written when the handler returns). On a plain TCP
    /// connection the payload bytes are written as they are.
    ///
    /// # Errors
    /// [`Error::WebSocket`] when the connection is closing.
    pub fn send(&mut self, msg: impl Into<Message>) -> Result<(), Error> {
        self.send_with(msg.into(), SendOptions::default())
    }

    /// Queues a message with options (fragment size, compression).
    ///
    /// # Errors
    /// As [`Ctx::send`].
    pub fn send_with(&mut self, msg: Message, opts: SendOptions) -> Result<(), Error> {
        match &mut self.sink {
            Sink::Ws(ws) => Ok(ws.send_with(msg, opts)?),
            Sink::Raw {
                tx, closing, sse, ..
            } => {
                if **closing {
                    return Err(Error::Closed);
                }
                if *sse {
                    if let Some(bytes) = crate::event::message_event(&msg) {
                        tx.push_bytes(bytes);
                    }
                } else {
                    tx.push_bytes(msg.into_payload());
                }
                Ok(())
            }
        }
    }

    /// Queues a server-sent event: on an SSE connection with its name, id and retry; on a
    /// WebSocket connection its data as a text message; on plain TCP its data bytes.
    ///
    /// # Errors
    /// As [`Ctx::send`].
    pub fn send_event(&mut self, event: &SseEvent) -> Result<(), Error> {
        match &mut self.sink {
            Sink::Raw {
                tx,
                closing,
                sse: true,
                ..
            } => {
                if **closing {
                    return Err(Error::Closed);
                }
                tx.push_bytes(event.to_bytes());
                Ok(())
            }
            _ => self.send(Message::text(event.data.clone())),
        }
    }

    /// Queues one fragment of a message streamed without reassembly.
    ///
    /// # Errors
    /// [`Error::WebSocket`] on a fragment out of order or when closing; [`Error::Closed`] on
    /// plain TCP connections.
    pub fn send_fragment(
        &mut self,
        text: bool,
        payload: Bytes,
        first: bool,
        fin: bool,
    ) -> Result<(), Error> {
        match &mut self.sink {
            Sink::Ws(ws) => Ok(ws.send_fragment(text, payload, first, fin)?),
            Sink::Raw { .. } => Err(Error::Closed),
        }
    }

    /// Sets how this plain-TCP connection splits its input into messages for
    /// [`Handler::on_binary`]: one or several delimiter sequences and a scan mode
    /// ([`Delimiter`]). It applies to every byte not yet delivered, including those already
    /// read and cut by the old setting, so a protocol can switch framing after any message.
    /// Until then the connection uses the server's ([`crate::RawTcp::delimiter`],
    /// [`crate::RawTcp::scan`]). Call it in [`Handler::on_connect`] to set it from the start,
    /// or later, for a protocol that changes framing (a text greeting, then NUL-ended
    /// frames).
    ///
    /// ```no_run
    /// use ws_server::{Ctx, Delimiter, DelimiterScan, Handler};
    /// struct Lines;
    /// impl Handler for Lines {
    ///     async fn on_connect(&self, ctx: &mut Ctx<'_>) {
    ///         // Plain TCP clients only; WebSocket connections answer with an error.
    ///         let _ = ctx.set_delimiter(Delimiter::new(DelimiterScan::All, [&b"\r\n"[..], b"\n"]));
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    /// [`Error::Setting`] when the connection is not plain TCP (WebSocket, SSE), or when a
    /// scan mode other than [`DelimiterScan::None`] comes without a sequence.
    pub fn set_delimiter(&mut self, delimiter: Delimiter) -> Result<(), Error> {
        let Sink::Raw {
            delimiter: Some(current),
            ..
        } = &mut self.sink
        else {
            return Err(Error::Setting {
                field: "delimiter",
                rule: "can be set on plain TCP connections only",
            });
        };
        if delimiter.scan != DelimiterScan::None && delimiter.sequences.iter().all(Vec::is_empty) {
            return Err(Error::Setting {
                field: "delimiter",
                rule: "needs a sequence with a delimiter scan",
            });
        }
        **current = (delimiter, true);
        Ok(())
    }

    /// Queues a ping.
    ///
    /// # Errors
    /// [`Error::WebSocket`] for payloads over 125 bytes or when closing.
    pub fn ping(&mut self, payload: Bytes) -> Result<(), Error> {
        match &mut self.sink {
            Sink::Ws(ws) => Ok(ws.ping(payload)?),
            Sink::Raw { tx, sse: true, .. } => {
                tx.push_bytes(Bytes::from_static(b":\n\n"));
                Ok(())
            }
            Sink::Raw { .. } => Ok(()),
        }
    }

    /// Starts the close handshake (plain TCP: closes after pending output).
    ///
    /// # Errors
    /// [`Error::WebSocket`] for unsendable codes, long reasons, or when already closing.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        match &mut self.sink {
            Sink::Ws(ws) => Ok(ws.close(code, reason, Instant::now())?),
            Sink::Raw { closing, .. } => {
                **closing = true;
                Ok(())
            }
        }
    }

    /// Drops the connection without a Close frame (an abort; the seed's `Disconnect` from
    /// inside a handler): the socket is closed once this handler call returns, frames still
    /// queued are discarded, and [`Handler::on_disconnect`] follows as for any end. For a
    /// polite end use [`Ctx::close`].
    pub fn abort(&self) {
        self.info.kill(crate::registry::KILL_DROP);
    }

    /// Stops reading from this connection's socket (read flow control), for a handler that
    /// cannot take more input right now: a bridge whose upstream buffer is full, a consumer
    /// that fell behind. Returns at once, unlike waiting inside the handler method.
    ///
    /// From the next step on, the connection neither reads its socket nor delivers messages
    /// it already read (no `on_message`, `on_fragment`, `on_ping`... until resumed), so TCP
    /// flow control stops the peer once the kernel buffers are full. Everything else goes on:
    /// queued and newly sent frames are written, commands from [`ConnHandle`]s and
    /// [`ServerHandle`] are taken, heartbeat pings are sent (without expecting the pong while
    /// paused), and a connection whose close handshake has started reads again, so that the
    /// peer's Close frame can complete it. Paused time does not count as idle.
    ///
    /// Undo with [`Ctx::resume_reading`] or, from any task, [`ConnHandle::resume_reading`]
    /// (take [`Ctx::handle`] before returning). No effect on SSE connections (they are
    /// send-only).
    pub fn pause_reading(&self) {
        self.info.set_reading_paused(true);
    }

    /// Reads again after [`Ctx::pause_reading`] (a no-op when reading is not paused).
    pub fn resume_reading(&self) {
        self.info.set_reading_paused(false);
    }

    /// Whether reading is paused.
    #[must_use]
    pub fn is_reading_paused(&self) -> bool {
        self.info.is_reading_paused()
    }

    /// Subscribes this connection to a channel or wildcard pattern. Returns false when it
    /// was subscribed already.
    ///
    /// # Errors
    /// [`Error::InvalidChannel`] for malformed names.
    pub fn subscribe(&self, channel: &str) -> Result<bool, Error> {
        self.server.subscribe(self.info, channel)
    }

    /// Removes a subscription. Returns false when there was none.
    pub fn unsubscribe(&self, channel: &str) -> bool {
        self.server.unsubscribe(self.info, channel)
    }

    /// Stores per-connection data (replacing what was there).
    pub fn set_data<T: Any + Send + Sync>(&mut self, value: T) {
        *self.data = Some(Box::new(value));
    }

    /// The per-connection data, if it has type `T`.
    pub fn data<T: Any + Send + Sync>(&mut self) -> Option<&mut T> {
        self.data.as_mut()?.downcast_mut()
    }
}

/// The server's event handler: every method has a default, override what you need. Methods of
/// one connection run on that connection's task, one at a time, in order; while one runs, the
/// connection does nothing else (no reading, no writing, no commands).
///
/// # Flow control
///
/// Do not wait inside a method for something that depends on this connection's progress:
/// while the method waits, frames queued for this connection (by [`ConnHandle::send`] from
/// other tasks) are not written either. To stop taking input, call [`Ctx::pause_reading`]
/// and return; later, [`ConnHandle::resume_reading`] (from the task that frees room) lets the
/// data flow again. A paused connection keeps writing, taking commands and answering its
/// timers; only its socket is not read, so TCP flow control pushes back on the peer.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use ws_server::{ConnHandle, Ctx, Handler, ws_frame::Message};
///
/// /// Hands messages to a worker; at most 64 wait, beyond that the client is not read.
/// struct Bounded(Arc<Mutex<(Vec<Message>, Option<ConnHandle>)>>);
///
/// impl Handler for Bounded {
///     async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
///         let mut q = self.0.lock().unwrap();
///         q.0.push(msg);
///         if q.0.len() >= 64 {
///             // The worker calls q.1.take().unwrap().resume_reading() once it drained q.0
///             // (under the same lock, so that a resume never overtakes this pause).
///             q.1 = Some(ctx.handle());
///             ctx.pause_reading();
///         }
///     }
/// }
/// ```
///
/// Futures must be `Send`; write the methods as `async fn` (native async fn in traits).
pub trait Handler: Send + Sync + 'static {
    /// The server is listening (`OnStartup`): [`crate::Server::start`] calls it once every
    /// listener is bound, before it returns, and [`ServerHandle::restart`] again after binding
    /// them anew. A panic here is caught and logged. Default: nothing.
    fn on_startup(&self, server: &ServerHandle) -> impl Future<Output = ()> + Send {
        let _ = server;
        async {}
    }

    /// The server stopped (`OnShutdown`): [`ServerHandle::stop`] (and `restart`) calls it once
    /// the listeners are closed and every connection is gone (or dropped at
    /// [`crate::ServerConfig::stop_timeout`]), before it returns and before
    /// [`ServerHandle::stopped`] wakes; only for a server that was running. A panic here is
    /// caught and logged. Default: nothing.
    fn on_shutdown(&self, server: &ServerHandle) -> impl Future<Output = ()> + Send {
        let _ = server;
        async {}
    }

    /// A TCP connection was accepted (`OnTCPConnect`). Default: [`TcpDecision::Accept`].
    fn on_tcp_connect(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> impl Future<Output = TcpDecision> + Send {
        let _ = (peer, local);
        async { TcpDecision::Accept }
    }

    /// The first bytes are not HTTP (`OnUnknownProtocol`); only asked when
    /// [`crate::RawTcp::enabled`]. Return true to keep the connection as plain TCP (its data
    /// then goes to [`Handler::on_binary`]). Default: false (close).
    fn on_unknown_protocol(
        &self,
        peer: SocketAddr,
        first_bytes: &[u8],
    ) -> impl Future<Output = bool> + Send {
        let _ = (peer, first_bytes);
        async { false }
    }

    /// An upgrade request passed the protocol checks, origin check and authentication
    /// (`OnHandshake`). Default: [`Decision::accept`].
    fn on_handshake(&self, request: &Request) -> impl Future<Output = Decision> + Send {
        let _ = request;
        async { Decision::accept() }
    }

    /// Runs first for every request, upgrades and SSE included (`OnBeforeCommand`): authorize
    /// (record the user with [`Request::set_user`]), rewrite nothing, or answer at once with
    /// [`Before::Respond`]. Default: [`Before::Continue`].
    fn on_before_request(&self, request: &mut Request) -> impl Future<Output = Before> + Send {
        let _ = request;
        async { Before::Continue }
    }

    /// A request that is not a WebSocket upgrade, an SSE connection or a static file
    /// (`OnCommandGet` / `OnCommandOther`, any method). Read the body through `body` (streamed,
    /// bounded by [`crate::HttpLimits::max_body`]); an unread body is discarded after the
    /// response. Default: 404 with an empty body.
    fn on_http(
        &self,
        request: &Request,
        body: &mut Body<'_>,
    ) -> impl Future<Output = Response> + Send {
        let _ = (request, body);
        async { Response::new(404) }
    }

    /// The connection is established (`OnConnect`).
    fn on_connect(&self, ctx: &mut Ctx<'_>) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }

    /// A complete message. Default: calls [`Handler::on_text`] or [`Handler::on_binary`].
    fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) -> impl Future<Output = ()> + Send {
        async move {
            match msg {
                Message::Text(t) => self.on_text(ctx, t).await,
                Message::Binary(b) => self.on_binary(ctx, b).await,
            }
        }
    }

    /// A text message (`OnMessage`).
    fn on_text(&self, ctx: &mut Ctx<'_>, text: Utf8Bytes) -> impl Future<Output = ()> + Send {
        let _ = (ctx, text);
        async {}
    }

    /// A binary message (`OnBinary`); on plain TCP connections, the data read.
    fn on_binary(&self, ctx: &mut Ctx<'_>, data: Bytes) -> impl Future<Output = ()> + Send {
        let _ = (ctx, data);
        async {}
    }

    /// A fragment (`OnFragmented`), when [`ws_frame::Config::fragment_mode`] delivers them.
    fn on_fragment(
        &self,
        ctx: &mut Ctx<'_>,
        fragment: Fragment,
    ) -> impl Future<Output = ()> + Send {
        let _ = (ctx, fragment);
        async {}
    }

    /// A ping arrived (the pong is sent automatically).
    fn on_ping(&self, ctx: &mut Ctx<'_>, payload: Bytes) -> impl Future<Output = ()> + Send {
        let _ = (ctx, payload);
        async {}
    }

    /// A pong arrived.
    fn on_pong(&self, ctx: &mut Ctx<'_>, payload: Bytes) -> impl Future<Output = ()> + Send {
        let _ = (ctx, payload);
        async {}
    }

    /// A heartbeat is due (`OnBeforeHeartBeat`). Return true when you kept the connection
    /// alive yourself (no ping is sent and no pong awaited). Default: false.
    fn on_before_heartbeat(&self, ctx: &mut Ctx<'_>) -> impl Future<Output = bool> + Send {
        let _ = ctx;
        async { false }
    }

    /// The connection ended (`OnDisconnect`); it is already out of the registry.
    fn on_disconnect(
        &self,
        info: &Arc<ConnInfo>,
        disconnect: Disconnect,
    ) -> impl Future<Output = ()> + Send {
        let _ = (info, disconnect);
        async {}
    }

    /// Something failed (`OnError`): a bad handshake (`conn` is `None`), a protocol error
    /// (including an unfinished fragmented message past its deadline), a socket error, or a
    /// panic in another method of this handler ([`Error::HandlerPanicked`]: that connection is
    /// being closed with 1011 and gets no further calls but `on_disconnect`).
    fn on_error(
        &self,
        peer: SocketAddr,
        conn: Option<&Arc<ConnInfo>>,
        error: &Error,
    ) -> impl Future<Output = ()> + Send {
        let _ = (peer, conn, error);
        async {}
    }
}

/// A handler that does nothing (every default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopHandler;

impl Handler for NoopHandler {}

/// A handler that echoes every message back, on every path.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoHandler;

impl Handler for EchoHandler {
    async fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) {
        let _ = ctx.send(msg);
    }
}
