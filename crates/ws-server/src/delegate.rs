//! Wrapping a handler: a [`Delegate`] names the handler it wraps and writes only the methods
//! it changes; every other [`Handler`] method goes to the wrapped handler unchanged.
//!
//! A wrapper (a token check in front of an application, an HTTP forwarder beside a WebSocket
//! bridge) then writes two or three methods instead of all of them, and a method added to
//! [`Handler`] later reaches the wrapped handler without each wrapper being edited.
//!
//! Every type that implements [`Delegate`] is a [`Handler`] (a blanket implementation): do
//! not implement both.
//!
//! ```
//! use ws_server::{Before, Handler, Request, Response, delegate::Delegate};
//!
//! /// Answers `/health` itself; everything else is the inner handler's.
//! struct Health<H>(H);
//!
//! impl<H: Handler> Delegate for Health<H> {
//!     type Inner = H;
//!
//!     fn inner(&self) -> &H {
//!         &self.0
//!     }
//!
//!     async fn on_before_request(&self, request: &mut Request) -> Before {
//!         if request.path() == "/health" {
//!             return Before::Respond(Response::text(200, "ok\n"));
//!         }
//!         self.0.on_before_request(request).await
//!     }
//! }
//!
//! fn is_handler(_: &impl Handler) {}
//! is_handler(&Health(ws_server::EchoHandler));
//! ```
//!
//! `on_message` is forwarded as it is: the wrapped handler's `on_message` (by default) calls
//! its own `on_text` / `on_binary`. A wrapper that wants to see text messages overrides
//! `on_message`, not `on_text`.

use std::{future::Future, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use ws_frame::{Message, Utf8Bytes};

use crate::{
    body::Body,
    error::Error,
    handle::ServerHandle,
    handler::{Before, Ctx, Decision, Disconnect, Fragment, Handler, TcpDecision},
    registry::ConnInfo,
    request::Request,
    response::Response,
};

/// A handler that wraps another: each method defaults to the wrapped handler's (see the module
/// docs). The method documentation is [`Handler`]'s.
#[allow(missing_docs)] // the methods are Handler's, documented there
pub trait Delegate: Send + Sync + 'static {
    /// The wrapped handler.
    type Inner: Handler;

    /// The wrapped handler, which gets every call this wrapper does not write itself.
    fn inner(&self) -> &Self::Inner;

    fn on_startup(&self, server: &ServerHandle) -> impl Future<Output = ()> + Send {
        self.inner().on_startup(server)
    }

    fn on_shutdown(&self, server: &ServerHandle) -> impl Future<Output = ()> + Send {
        self.inner().on_shutdown(server)
    }

    fn on_tcp_connect(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> impl Future<Output = TcpDecision> + Send {
        self.inner().on_tcp_connect(peer, local)
    }

    fn on_unknown_protocol(
        &self,
        peer: SocketAddr,
        first_bytes: &[u8],
    ) -> impl Future<Output = bool> + Send {
        self.inner().on_unknown_protocol(peer, first_bytes)
    }

    fn on_handshake(&self, request: &Request) -> impl Future<Output = Decision> + Send {
        self.inner().on_handshake(request)
    }

    fn on_before_request(&self, request: &mut Request) -> impl Future<Output = Before> + Send {
        self.inner().on_before_request(request)
    }

    fn on_http(
        &self,
        request: &Request,
        body: &mut Body<'_>,
    ) -> impl Future<Output = Response> + Send {
        self.inner().on_http(request, body)
    }

    fn on_connect(&self, ctx: &mut Ctx<'_>) -> impl Future<Output = ()> + Send {
        self.inner().on_connect(ctx)
    }

    fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) -> impl Future<Output = ()> + Send {
        self.inner().on_message(ctx, msg)
    }

    fn on_text(&self, ctx: &mut Ctx<'_>, text: Utf8Bytes) -> impl Future<Output = ()> + Send {
        self.inner().on_text(ctx, text)
    }

    fn on_binary(&self, ctx: &mut Ctx<'_>, data: Bytes) -> impl Future<Output = ()> + Send {
        self.inner().on_binary(ctx, data)
    }

    fn on_fragment(
        &self,
        ctx: &mut Ctx<'_>,
        fragment: Fragment,
    ) -> impl Future<Output = ()> + Send {
        self.inner().on_fragment(ctx, fragment)
    }

    fn on_ping(&self, ctx: &mut Ctx<'_>, payload: Bytes) -> impl Future<Output = ()> + Send {
        self.inner().on_ping(ctx, payload)
    }

    fn on_pong(&self, ctx: &mut Ctx<'_>, payload: Bytes) -> impl Future<Output = ()> + Send {
        self.inner().on_pong(ctx, payload)
    }

    fn on_before_heartbeat(&self, ctx: &mut Ctx<'_>) -> impl Future<Output = bool> + Send {
        self.inner().on_before_heartbeat(ctx)
    }

    fn on_disconnect(
        &self,
        info: &Arc<ConnInfo>,
        disconnect: Disconnect,
    ) -> impl Future<Output = ()> + Send {
        self.inner().on_disconnect(info, disconnect)
    }

    fn on_error(
        &self,
        peer: SocketAddr,
        conn: Option<&Arc<ConnInfo>>,
        error: &Error,
    ) -> impl Future<Output = ()> + Send {
        self.inner().on_error(peer, conn, error)
    }
}

impl<D: Delegate> Handler for D {
    fn on_startup(&self, server: &ServerHandle) -> impl Future<Output = ()> + Send {
        Delegate::on_startup(self, server)
    }

    fn on_shutdown(&self, server: &ServerHandle) -> impl Future<Output = ()> + Send {
        Delegate::on_shutdown(self, server)
    }

    fn on_tcp_connect(
        &self,
        peer: SocketAddr,
        local: SocketAddr,
    ) -> impl Future<Output = TcpDecision> + Send {
        Delegate::on_tcp_connect(self, peer, local)
    }

    fn on_unknown_protocol(
        &self,
        peer: SocketAddr,
        first_bytes: &[u8],
    ) -> impl Future<Output = bool> + Send {
        Delegate::on_unknown_protocol(self, peer, first_bytes)
    }

    fn on_handshake(&self, request: &Request) -> impl Future<Output = Decision> + Send {
        Delegate::on_handshake(self, request)
    }

    fn on_before_request(&self, request: &mut Request) -> impl Future<Output = Before> + Send {
        Delegate::on_before_request(self, request)
    }

    fn on_http(
        &self,
        request: &Request,
        body: &mut Body<'_>,
    ) -> impl Future<Output = Response> + Send {
        Delegate::on_http(self, request, body)
    }

    fn on_connect(&self, ctx: &mut Ctx<'_>) -> impl Future<Output = ()> + Send {
        Delegate::on_connect(self, ctx)
    }

    fn on_message(&self, ctx: &mut Ctx<'_>, msg: Message) -> impl Future<Output = ()> + Send {
        Delegate::on_message(self, ctx, msg)
    }

    fn on_text(&self, ctx: &mut Ctx<'_>, text: Utf8Bytes) -> impl Future<Output = ()> + Send {
        Delegate::on_text(self, ctx, text)
    }

    fn on_binary(&self, ctx: &mut Ctx<'_>, data: Bytes) -> impl Future<Output = ()> + Send {
        Delegate::on_binary(self, ctx, data)
    }

    fn on_fragment(
        &self,
        ctx: &mut Ctx<'_>,
        fragment: Fragment,
    ) -> impl Future<Output = ()> + Send {
        Delegate::on_fragment(self, ctx, fragment)
    }

    fn on_ping(&self, ctx: &mut Ctx<'_>, payload: Bytes) -> impl Future<Output = ()> + Send {
        Delegate::on_ping(self, ctx, payload)
    }

    fn on_pong(&self, ctx: &mut Ctx<'_>, payload: Bytes) -> impl Future<Output = ()> + Send {
        Delegate::on_pong(self, ctx, payload)
    }

    fn on_before_heartbeat(&self, ctx: &mut Ctx<'_>) -> impl Future<Output = bool> + Send {
        Delegate::on_before_heartbeat(self, ctx)
    }

    fn on_disconnect(
        &self,
        info: &Arc<ConnInfo>,
        disconnect: Disconnect,
    ) -> impl Future<Output = ()> + Send {
        Delegate::on_disconnect(self, info, disconnect)
    }

    fn on_error(
        &self,
        peer: SocketAddr,
        conn: Option<&Arc<ConnInfo>>,
        error: &Error,
    ) -> impl Future<Output = ()> + Send {
        Delegate::on_error(self, peer, conn, error)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records which of its methods ran.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<&'static str>>);

    impl Handler for Recorder {
        async fn on_tcp_connect(&self, _: SocketAddr, _: SocketAddr) -> TcpDecision {
            self.0.lock().unwrap().push("tcp");
            TcpDecision::Accept
        }

        async fn on_unknown_protocol(&self, _: SocketAddr, _: &[u8]) -> bool {
            self.0.lock().unwrap().push("unknown");
            true
        }
    }

    /// Overrides one method, forwards the rest.
    struct RefuseRawTcp(Recorder);

    impl Delegate for RefuseRawTcp {
        type Inner = Recorder;

        fn inner(&self) -> &Recorder {
            &self.0
        }

        async fn on_unknown_protocol(&self, _: SocketAddr, _: &[u8]) -> bool {
            false
        }
    }

    #[tokio::test]
    async fn unwritten_methods_reach_the_inner_handler() {
        let h = RefuseRawTcp(Recorder::default());
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(matches!(
            Handler::on_tcp_connect(&h, addr, addr).await,
            TcpDecision::Accept
        ));
        // The wrapper's own answer, and the inner handler was not asked.
        assert!(!Handler::on_unknown_protocol(&h, addr, b"x").await);
        assert_eq!(*h.0.0.lock().unwrap(), ["tcp"]);
    }
}
