//! One server-sent event and its encoding (the `text/event-stream` wire format).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use ws_frame::Message;

/// One server-sent event. `data` may span lines (each becomes a `data:` line); line breaks in
/// `event` and `id` (which would inject fields) are removed, as are NULs in `id`.
///
/// ```
/// let ev = ws_server::SseEvent::new("a\nb").with_event("tick").with_id("7");
/// assert_eq!(&ev.to_bytes()[..], b"event: tick\nid: 7\ndata: a\ndata: b\n\n");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SseEvent {
    /// Event name (`event:`); `None` is a `message` event for the browser.
    pub event: Option<String>,
    /// Event id (`id:`), echoed by a reconnecting browser in `Last-Event-ID`.
    pub id: Option<String>,
    /// Reconnection delay for the client (`retry:`, in milliseconds).
    pub retry: Option<Duration>,
    /// The data; `\r\n`, `\n` and `\r` separate its lines.
    pub data: String,
}

impl SseEvent {
    /// A `message` event with `data`.
    #[must_use]
    pub fn new(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// Sets the event name.
    #[must_use]
    pub fn with_event(mut self, name: impl Into<String>) -> Self {
        self.event = Some(name.into());
        self
    }

    /// Sets the event id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the reconnection delay.
    #[must_use]
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The event on the wire, ending with the empty line.
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.data.len() + 32);
        let clean = |s: &str| s.replace(['\r', '\n', '\0'], "");
        if let Some(e) = &self.event {
            field(&mut out, "event", &clean(e));
        }
        if let Some(id) = &self.id {
            field(&mut out, "id", &clean(id));
        }
        if let Some(r) = self.retry {
            field(&mut out, "retry", &r.as_millis().to_string());
        }
        data_lines(&mut out, &self.data);
        out.put_u8(b'\n');
        out.freeze()
    }
}

pub(crate) fn field(out: &mut BytesMut, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.put_u8(b'\n');
}

fn data_lines(out: &mut BytesMut, data: &str) {
    let normalized = data.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        field(out, "data", line);
    }
}

/// A WebSocket-style message as an SSE `message` event: text as it is, binary when it is
/// UTF-8 (other binary payloads are not delivered).
pub(crate) fn message_event(msg: &Message) -> Option<Bytes> {
    let text = match msg {
        Message::Text(t) => t.as_str(),
        Message::Binary(b) => std::str::from_utf8(b).ok()?,
    };
    let mut out = BytesMut::with_capacity(text.len() + 8);
    data_lines(&mut out, text);
    out.put_u8(b'\n');
    Some(out.freeze())
}
