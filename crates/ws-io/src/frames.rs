//! The frame and message log (the seed's `LogFile`): one `tracing` event per frame written and
//! per message or control frame read, on the target [`TARGET`] at level `TRACE`.
//!
//! Fields: `conn` (the driver's [`crate::Driver::log_id`]), `dir` (`out` or `in`), `op`
//! (`text`, `binary`, `cont`, `close`, `ping`, `pong`), `fin`, `len` (payload bytes) and, only
//! when [`set_payload_limit`] asked for it, `payload`: the first bytes of the payload,
//! unmasked (text as an escaped string, anything else as hex), followed by `...(+N)` when cut.
//!
//! Off by default and free when off: nothing is formatted unless a subscriber enables the
//! target (`tracing::enabled!` is checked first, once per batch of frames).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ws_frame::{Event, Header, Message};

/// The `tracing` target of the frame and message log.
pub const TARGET: &str = "wskit::frames";

/// Payload bytes logged plus one; 0: payloads are not logged.
static PAYLOAD: AtomicUsize = AtomicUsize::new(0);
/// The next connection id handed out by [`next_id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Logs payloads (unmasked) in the frame log, at most `limit` bytes each; `None` (the default):
/// lengths only. Process-wide, like the subscriber that writes the log.
pub fn set_payload_limit(limit: Option<usize>) {
    PAYLOAD.store(limit.map_or(0, |n| n.saturating_add(1)), Ordering::Relaxed);
}

/// The payload limit set by [`set_payload_limit`].
#[must_use]
pub fn payload_limit() -> Option<usize> {
    PAYLOAD.load(Ordering::Relaxed).checked_sub(1)
}

/// A process-wide unique connection id for the log (runtimes may set their own with
/// [`crate::Driver::set_log_id`]).
pub(crate) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Whether a subscriber wants the frame log.
#[inline]
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::TRACE)
}

fn op_name(opcode: u8) -> &'static str {
    match opcode {
        0 => "cont",
        1 => "text",
        2 => "binary",
        8 => "close",
        9 => "ping",
        10 => "pong",
        _ => "other",
    }
}

/// `shown` (a prefix of a payload of `len` bytes) as logged: text as an escaped string,
/// a close as its code then its reason, anything else as hex, then `...(+N)` for the bytes
/// left out.
fn render(text: bool, close: bool, shown: &[u8], len: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(2 * shown.len() + 16);
    if close && shown.len() >= 2 {
        let _ = write!(out, "{} ", u16::from_be_bytes([shown[0], shown[1]]));
        for c in String::from_utf8_lossy(&shown[2..]).chars() {
            out.extend(c.escape_debug());
        }
    } else if text {
        for c in String::from_utf8_lossy(shown).chars() {
            out.extend(c.escape_debug());
        }
    } else {
        for b in shown {
            let _ = write!(out, "{b:02x}");
        }
    }
    if shown.len() < len {
        let _ = write!(out, "...(+{})", len - shown.len());
    }
    out
}

/// One log line; `shown` is the (unmasked) prefix to log, `None` when payloads are off. A
/// compressed frame (RSV1, permessage-deflate) says so, and its payload is shown as hex.
fn emit(conn: u64, dir: &str, opcode: u8, fin: bool, len: usize, shown: Option<&[u8]>) {
    let compressed = opcode & 0x40 != 0;
    let opcode = opcode & 0x0f;
    let op = op_name(opcode);
    match (shown, compressed) {
        (Some(shown), _) => {
            let payload = render(opcode == 1 && !compressed, opcode == 8, shown, len);
            if compressed {
                tracing::trace!(target: TARGET, conn, dir, op, fin, len, compressed, payload = %payload, "frame");
            } else {
                tracing::trace!(target: TARGET, conn, dir, op, fin, len, payload = %payload, "frame");
            }
        }
        (None, true) => {
            tracing::trace!(target: TARGET, conn, dir, op, fin, len, compressed, "frame")
        }
        (None, false) => tracing::trace!(target: TARGET, conn, dir, op, fin, len, "frame"),
    }
}

/// Logs a plain (unmasked) payload.
fn emit_plain(conn: u64, dir: &str, opcode: u8, fin: bool, payload: &[u8]) {
    let shown = payload_limit().map(|limit| &payload[..payload.len().min(limit)]);
    emit(conn, dir, opcode, fin, payload.len(), shown);
}

/// Logs one frame written by a server: its header bytes and its (unmasked) payload.
pub(crate) fn log_out_frame(conn: u64, head: &[u8], payload: &[u8]) {
    emit_plain(conn, "out", head[0] & 0x4f, head[0] & 0x80 != 0, payload);
}

/// Logs the whole frames in `wire` (a client's masked frames, as encoded), unmasking only the
/// part of the payload that is logged.
pub(crate) fn log_out_wire(conn: u64, mut wire: &[u8]) {
    while let Ok(Some((header, used))) = ws_frame::parse_header(wire) {
        let Ok(len) = usize::try_from(header.payload_len) else {
            return;
        };
        let Some(end) = used.checked_add(len).filter(|&e| e <= wire.len()) else {
            return;
        };
        let body = &wire[used..end];
        log_masked(conn, &header, body);
        wire = &wire[end..];
    }
}

/// The opcode with RSV1 (compressed) in bit 0x40, as in the first header byte.
fn opcode_bits(header: &Header) -> u8 {
    header.opcode | if header.rsv1 { 0x40 } else { 0 }
}

fn log_masked(conn: u64, header: &Header, body: &[u8]) {
    let Some(key) = header.mask else {
        return emit_plain(conn, "out", opcode_bits(header), header.fin, body);
    };
    let plain: Option<Vec<u8>> = payload_limit().map(|limit| {
        body[..body.len().min(limit)]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect()
    });
    emit(
        conn,
        "out",
        opcode_bits(header),
        header.fin,
        body.len(),
        plain.as_deref(),
    );
}

/// Logs an event read from the peer: a message, a fragment, a ping, a pong or the close.
pub(crate) fn log_in(conn: u64, event: &Event) {
    match event {
        Event::Message(m) => {
            let op = if matches!(m, Message::Text(_)) { 1 } else { 2 };
            emit_plain(conn, "in", op, true, m.as_bytes());
        }
        Event::Fragment {
            text,
            payload,
            first,
            fin,
        } => {
            let op = match (first, text) {
                (false, _) => 0,
                (true, true) => 1,
                (true, false) => 2,
            };
            emit_plain(conn, "in", op, *fin, payload);
        }
        Event::Ping(p) => emit_plain(conn, "in", 9, true, p),
        Event::Pong(p) => emit_plain(conn, "in", 10, true, p),
        Event::Closed { code, reason, .. } => {
            let mut body = Vec::new();
            if *code != ws_frame::CloseCode::NO_STATUS {
                body.extend_from_slice(&code.as_u16().to_be_bytes());
                body.extend_from_slice(reason.as_bytes());
            }
            emit_plain(conn, "in", 8, true, &body);
        }
    }
}
