//! Server-sent events (`text/event-stream`): a send-only connection in the same registry as
//! WebSocket ones ([`Transport::Sse`]), so `write_to`, `broadcast` and channels reach it.
//!
//! ```text
//!  GET /events  Accept: text/event-stream  -->  200, text/event-stream, close-delimited body
//!                                               retry: 3000            (SseConfig::retry)
//!  Ctx::send / write_to / broadcast(text)  -->  data: line 1\ndata: line 2\n\n
//!  send_event(SseEvent{event, id, retry})  -->  event: x\nid: 7\ndata: ...\n\n
//!  every SseConfig::heartbeat              -->  :\n\n    (a comment; write errors end it)
//!  client closes (read gives 0 / error)    -->  on_disconnect, out of the registry
//! ```

use std::{
    any::Any,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{Notify, mpsc};
use ws_frame::{CloseCode, Initiator};
use ws_io::TxQueue;

use crate::{
    channels::validate_channel,
    conn::LINGER,
    event::{field, message_event},
    handle::{AdmitGuard, ServerHandle},
    handler::{Ctx, Disconnect, Handler, Sink},
    io::Io,
    registry::{Command, ConnInfo, KILL_NONE},
    request::Request,
    types::Transport,
};

/// The response head of an SSE stream; the body lasts until the connection closes.
fn response_head(server_name: &str, retry: Option<Duration>) -> Bytes {
    let mut out = BytesMut::with_capacity(192);
    let mut fields: Vec<(&str, &str)> = vec![
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("X-Accel-Buffering", "no"),
        ("Connection", "close"),
    ];
    if !server_name.is_empty() {
        fields.push(("Server", server_name));
    }
    if ws_http::write_response_head(&mut out, 200, None, &fields).is_err() {
        out.clear();
        fields.pop();
        let _ = ws_http::write_response_head(&mut out, 200, None, &fields);
    }
    if let Some(r) = retry {
        field(&mut out, "retry", &r.as_millis().to_string());
        out.put_u8(b'\n');
    }
    out.freeze()
}

enum Wake {
    Kill,
    Wrote(std::io::Result<usize>),
    Read(std::io::Result<usize>),
    Cmd(Option<Command>),
    Heartbeat,
}

/// Runs one SSE connection to its end.
pub(crate) async fn run<H: Handler>(
    server: ServerHandle,
    handler: Arc<H>,
    mut io: Io,
    request: Request,
    _guard: AdmitGuard,
) {
    let inner = server.inner.clone();
    let config = &inner.config;
    let (sender, mut cmds) = mpsc::channel(config.send_queue);
    let info = Arc::new(ConnInfo {
        id: inner.registry.next_id(),
        peer: request.peer,
        local: request.local,
        tls: request.tls,
        transport: Transport::Sse,
        url: request.target,
        headers: if config.keep_request_headers {
            request.headers.clone()
        } else {
            ws_http::Headers::new()
        },
        response_headers: ws_http::Headers::new(),
        protocol: None,
        extensions: None,
        user: request.user,
        connected_at: SystemTime::now(),
        rx_bytes: AtomicU64::new(0),
        tx_bytes: AtomicU64::new(0),
        subscriptions: Mutex::new(Vec::new()),
        tx: sender,
        kill: Notify::new(),
        kill_code: AtomicU16::new(KILL_NONE),
        read_paused: AtomicBool::new(false),
    });
    // The path acts as a channel (sgc's `Broadcast(text, "/sse.html")`).
    if validate_channel(info.path()).is_ok() {
        inner.registry.subscribe(&info, info.path());
    }
    inner.registry.insert(info.clone());
    let mut tx = TxQueue::default();
    tx.push_bytes(response_head(&config.server_name, config.sse.retry));
    let mut data: Option<Box<dyn Any + Send + Sync>> = None;
    let mut closing = false;
    let mut disconnect = Disconnect::new(CloseCode::NORMAL, String::new(), Initiator::Remote);

    macro_rules! ctx {
        () => {
            Ctx {
                sink: Sink::Raw {
                    tx: &mut tx,
                    closing: &mut closing,
                    sse: true,
                    delimiter: None,
                },
                info: &info,
                server: &server,
                data: &mut data,
            }
        };
    }

    Box::pin(handler.on_connect(&mut ctx!())).await;
    let kill = info.kill.notified();
    tokio::pin!(kill);
    let beat = config.sse.heartbeat.unwrap_or(Duration::from_secs(86_400));
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let beating = config.sse.heartbeat.is_some();
    let mut sink = BytesMut::new();
    loop {
        if closing && tx.is_empty() && !io.wants_flush() {
            disconnect.by = Initiator::User;
            break;
        }
        let room = tx.len() < config.write_buffer_limit;
        let can_write = !tx.is_empty() || io.wants_flush();
        let (reader, writer) = io.halves();
        let wake = tokio::select! {
            biased;
            () = &mut kill => Wake::Kill,
            r = writer.write(&mut tx), if can_write => Wake::Wrote(r),
            r = reader.read(&mut sink) => Wake::Read(r),
            c = cmds.recv(), if room && !closing => Wake::Cmd(c),
            _ = heartbeat.tick(), if beating && !closing => Wake::Heartbeat,
        };
        match wake {
            Wake::Kill => {
                disconnect = Disconnect::new(
                    CloseCode::from_u16(info.kill_requested().unwrap_or(1000)),
                    "closed by the server",
                    Initiator::User,
                );
                break;
            }
            Wake::Wrote(Ok(n)) => {
                info.tx_bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Wake::Wrote(Err(e)) | Wake::Read(Err(e)) => {
                disconnect = Disconnect::new(CloseCode::ABNORMAL, e.to_string(), Initiator::Remote);
                break;
            }
            // The client went away: SSE clients never send after the request.
            Wake::Read(Ok(0)) => {
                disconnect.code = CloseCode::ABNORMAL;
                break;
            }
            Wake::Read(Ok(n)) => {
                info.rx_bytes.fetch_add(n as u64, Ordering::Relaxed);
                sink.clear();
            }
            Wake::Cmd(Some(cmd)) => match cmd {
                Command::Send(msg) => {
                    if let Some(b) = message_event(&msg) {
                        tx.push_bytes(b);
                    }
                }
                Command::Prepared(p) => {
                    if let Some(b) = message_event(p.message()) {
                        tx.push_bytes(b);
                    }
                }
                // SSE has one queue: levels do not apply.
                Command::SendAt(b) => {
                    if let Some(b) = message_event(&b.0) {
                        tx.push_bytes(b);
                    }
                }
                Command::SendWith(b) => {
                    if let Some(b) = message_event(&b.0) {
                        tx.push_bytes(b);
                    }
                }
                Command::Event(ev) => tx.push_bytes(ev.to_bytes()),
                Command::Ping(_) => tx.push_bytes(Bytes::from_static(b":\n\n")),
                Command::Close(_) => closing = true,
                Command::Wake => {
                    if info.kill_requested().is_some() {
                        // Close codes mean nothing to SSE: end the stream after what is queued.
                        closing = true;
                    }
                }
            },
            Wake::Cmd(None) => {}
            Wake::Heartbeat => tx.push_bytes(Bytes::from_static(b":\n\n")),
        }
    }
    let _ = tokio::time::timeout(LINGER, io.shutdown()).await;
    drop(io);
    inner.unregister(&info);
    handler.on_disconnect(&info, disconnect).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SseEvent;
    use ws_frame::Message;

    #[test]
    fn events_are_framed() {
        let ev = SseEvent::new("one\r\ntwo\rthree\n")
            .with_event("a\nb")
            .with_id("1\0")
            .with_retry(Duration::from_millis(1500));
        assert_eq!(
            &ev.to_bytes()[..],
            b"event: ab\nid: 1\nretry: 1500\ndata: one\ndata: two\ndata: three\ndata: \n\n"
        );
        assert_eq!(
            message_event(&Message::text("hi")).unwrap(),
            Bytes::from_static(b"data: hi\n\n")
        );
        assert!(message_event(&Message::binary(vec![0xff])).is_none());
        let head = response_head("x", Some(Duration::from_secs(3)));
        assert!(head.ends_with(b"\r\n\r\nretry: 3000\n\n"));
    }
}
