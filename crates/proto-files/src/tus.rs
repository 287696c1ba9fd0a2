//! tus 1.0.0 resumable uploads over HTTP into the same store: core protocol (HEAD, PATCH),
//! OPTIONS discovery, and the creation, creation-with-upload, checksum (sha1, sha256),
//! termination and expiration extensions, with CORS. Uploads live in `SAVE_DIR/.tus/` until
//! their last byte arrives, then move into the save directory under their `filename`.
//!
//! The server's [`ws_server::HttpLimits::max_body`] bounds one PATCH body (16 MiB by default):
//! raise it to the largest chunk clients send (tuspy sends a whole file in one PATCH unless
//! told otherwise).

use std::{
    collections::{HashMap, HashSet},
    io::SeekFrom,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use base64::Engine as _;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use ws_server::{Body, Request, Response};

use crate::{
    config::Config,
    engine::{Appender, DIRECT_BLOCK, EventKind, FileEvent, Hooks, unix_now},
    error::Code,
    meta::{Area, Meta},
    name::check_name,
    sender::OfferInfo,
    store::Store,
    wire::{FileId, QoS},
};

const VERSION: &str = "1.0.0";
const EXTENSIONS: &str = "creation,creation-with-upload,termination,checksum,expiration";
const EXPOSE: &str = "Upload-Offset, Location, Upload-Length, Tus-Version, Tus-Resumable, \
    Tus-Max-Size, Tus-Extension, Upload-Metadata, Upload-Defer-Length, Upload-Concat, \
    Upload-Expires, Upload-Checksum";
const ALLOW_HEADERS: &str = "Authorization, Origin, X-Requested-With, X-Request-ID, \
    X-HTTP-Method-Override, Content-Type, Upload-Length, Upload-Offset, Tus-Resumable, \
    Upload-Metadata, Upload-Defer-Length, Upload-Concat, Upload-Checksum";
const OCTETS: &str = "application/offset+octet-stream";

/// Parses `Upload-Metadata`: comma-separated `key base64value` pairs (value optional).
/// Returns `None` for a malformed header.
#[must_use]
pub(crate) fn parse_metadata(header: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for pair in header.split(',') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let mut it = pair.splitn(2, ' ');
        let key = it.next()?;
        if key.is_empty() || !key.is_ascii() || key.contains(' ') {
            return None;
        }
        let value = match it.next() {
            Some(v) => base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()?,
            None => Vec::new(),
        };
        out.push((key.to_string(), value));
    }
    Some(out)
}

/// An `Upload-Checksum` header: algorithm and digest.
#[derive(Debug, PartialEq, Eq)]
enum Checksum {
    Sha1(Vec<u8>),
    Sha256(Vec<u8>),
}

fn parse_checksum(header: &str) -> Result<Checksum, &'static str> {
    let (alg, b64) = header
        .trim()
        .split_once(' ')
        .ok_or("malformed Upload-Checksum")?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| "Upload-Checksum is not base64")?;
    match alg {
        "sha1" if digest.len() == 20 => Ok(Checksum::Sha1(digest)),
        "sha256" if digest.len() == 32 => Ok(Checksum::Sha256(digest)),
        "sha1" | "sha256" => Err("Upload-Checksum digest has the wrong length"),
        _ => Err("unsupported checksum algorithm"),
    }
}

/// An HTTP date (RFC 9110 IMF-fixdate) for `secs` since the Unix epoch.
#[must_use]
pub(crate) fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm), days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

pub(crate) struct Tus {
    config: Config,
    store: Store,
    hooks: Arc<dyn Hooks>,
    busy: Mutex<HashSet<FileId>>,
    /// The SHA-256 of each upload's stored prefix, carried from one PATCH to the next (for the
    /// received event's digest without reading the file again); after a restart the next
    /// PATCH hashes the prefix first.
    hashes: Mutex<HashMap<FileId, (u64, Sha256)>>,
    /// Unix time of the next sweep of expired uploads: at most one a minute (a sweep looks at
    /// every upload's metadata, finished ones included); an expired upload a request names is
    /// refused and removed at once.
    next_sweep: AtomicU64,
}

/// What a PATCH's writing thread reports.
struct Written {
    file: std::fs::File,
    /// Bytes appended.
    len: u64,
    /// The whole file's SHA-256 up to the end of what was appended.
    whole: Sha256,
    sha1: Sha1,
    sha256: Sha256,
    error: Option<std::io::Error>,
}

/// The body of a PATCH's writing thread: hashes the stored prefix when no running hash was
/// kept, then appends every body chunk, hashing it for the whole file and for the request's
/// `Upload-Checksum`, until the channel closes or a write fails.
fn write_loop(
    mut file: std::fs::File,
    direct: Option<&Path>,
    offset: u64,
    whole: Option<Sha256>,
    want: Option<&'static str>,
    rx: &mut tokio::sync::mpsc::Receiver<Vec<bytes::Bytes>>,
) -> Written {
    use std::io::{Read as _, Seek as _};
    let mut w = Written {
        len: 0,
        whole: Sha256::new(),
        sha1: Sha1::new(),
        sha256: Sha256::new(),
        error: None,
        file: match file.try_clone() {
            Ok(f) => f,
            Err(e) => {
                return Written {
                    file,
                    len: 0,
                    whole: Sha256::new(),
                    sha1: Sha1::new(),
                    sha256: Sha256::new(),
                    error: Some(e),
                };
            }
        },
    };
    let run = || -> std::io::Result<()> {
        match whole {
            Some(h) => w.whole = h,
            None => {
                file.seek(SeekFrom::Start(0))?;
                let mut buf = vec![0u8; 256 * 1024];
                let mut done = 0u64;
                while done < offset {
                    let want = buf
                        .len()
                        .min(usize::try_from(offset - done).unwrap_or(usize::MAX));
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the partial upload shrank",
                        ));
                    }
                    w.whole.update(&buf[..n]);
                    done += n as u64;
                }
            }
        }
        // Appended as the WebSocket door's receiver does (direct writes of whole aligned
        // blocks by a second thread where `direct` names the file and the file system takes
        // them, the rest through the page cache); everything appended is on the file when
        // `flush` returns, also when the body was cut.
        let file = &file;
        std::thread::scope(|scope| {
            let mut out = Appender::new(scope, file, direct, offset);
            let mut appended = Ok(());
            'recv: while let Some(batch) = rx.blocking_recv() {
                // In slices of WRITE_SLICE bytes, each hashed at once while it is still in the
                // core's cache: a whole batch written first and hashed after was read from
                // memory twice.
                for chunk in &batch {
                    for slice in chunk.chunks(WRITE_SLICE) {
                        if let Err(e) = out.append(slice) {
                            appended = Err(e);
                            break 'recv;
                        }
                        w.whole.update(slice);
                        match want {
                            Some("sha1") => w.sha1.update(slice),
                            Some(_) => w.sha256.update(slice),
                            None => {}
                        }
                    }
                    w.len += chunk.len() as u64;
                }
            }
            let flushed = out.flush();
            appended.and(flushed)
        })
    };
    if let Err(e) = run() {
        w.error = Some(e);
    }
    w
}

/// `sync_data` on a blocking thread: an fsync can take tens of milliseconds (52-73 ms for the
/// last PATCH of 1 GiB), which the runtime's threads must not spend waiting.
async fn sync_data(file: std::fs::File) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || file.sync_data())
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
}

/// Bytes per write call of the writing thread (see `write_loop`).
const WRITE_SLICE: usize = 64 * 1024;

/// Body bytes gathered before they go to the writing thread in one message: a hand-over per
/// read cost a thread wake-up each.
const BATCH_BYTES: usize = 1 << 20;

struct BusyGuard<'a>(&'a Mutex<HashSet<FileId>>, FileId);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&self.1);
        }
    }
}

fn header<'a>(r: &'a Request, name: &str) -> Option<&'a str> {
    r.header(name)
}

impl Tus {
    pub(crate) fn new(config: Config, store: Store, hooks: Arc<dyn Hooks>) -> Self {
        Self {
            config,
            store,
            hooks,
            busy: Mutex::new(HashSet::new()),
            hashes: Mutex::new(HashMap::new()),
            next_sweep: AtomicU64::new(0),
        }
    }

    fn base(&self, request: &Request, status: u16) -> Response {
        let mut r = Response::new(status).with_header("Tus-Resumable", VERSION);
        if let Some(origin) = header(request, "Origin") {
            r = r
                .with_header("Access-Control-Allow-Origin", origin)
                .with_header("Vary", "Origin")
                .with_header("Access-Control-Expose-Headers", EXPOSE);
        }
        r
    }

    fn text(&self, request: &Request, status: u16, text: &str) -> Response {
        self.base(request, status)
            .with_header("Content-Type", "text/plain; charset=utf-8")
            .with_body(text.to_string())
    }

    /// A request under the tus path, or `None`.
    pub(crate) async fn handle(&self, request: &Request, body: &mut Body<'_>) -> Option<Response> {
        let path = request.path();
        let prefix = self.config.tus_path.as_str();
        let bare = prefix.trim_end_matches('/');
        let rest = if path == bare {
            ""
        } else {
            path.strip_prefix(prefix)?
        };
        let method = match (request.method(), header(request, "X-HTTP-Method-Override")) {
            ("POST", Some(m)) => m.to_ascii_uppercase(),
            (m, _) => m.to_string(),
        };
        if method == "OPTIONS" {
            return Some(self.options(request));
        }
        if header(request, "Tus-Resumable") != Some(VERSION) {
            return Some(
                self.text(request, 412, "Tus-Resumable 1.0.0 required")
                    .with_header("Tus-Version", VERSION),
            );
        }
        self.sweep_expired();
        Some(match (method.as_str(), rest) {
            ("POST", "") => self.create(request, body).await,
            (_, "") => self.text(request, 405, "method not allowed"),
            (m, id) => {
                let Some(id) = FileId::from_hex(id) else {
                    return Some(self.text(request, 404, "no such upload"));
                };
                match m {
                    "HEAD" => self.head(request, id),
                    "PATCH" => self.patch(request, body, id).await,
                    "DELETE" => self.delete(request, id),
                    _ => self.text(request, 405, "method not allowed"),
                }
            }
        })
    }

    fn options(&self, request: &Request) -> Response {
        let mut r = self
            .base(request, 204)
            .with_header("Tus-Version", VERSION)
            .with_header("Tus-Extension", EXTENSIONS)
            .with_header("Tus-Max-Size", self.config.max_file_size.to_string())
            .with_header("Tus-Checksum-Algorithm", "sha1,sha256");
        if header(request, "Origin").is_some() {
            r = r
                .with_header(
                    "Access-Control-Allow-Methods",
                    "POST, HEAD, PATCH, DELETE, OPTIONS",
                )
                .with_header("Access-Control-Allow-Headers", ALLOW_HEADERS)
                .with_header("Access-Control-Max-Age", "86400");
        }
        r
    }

    fn lock(&self, id: FileId) -> Option<BusyGuard<'_>> {
        let mut s = self.busy.lock().ok()?;
        s.insert(id).then(|| BusyGuard(&self.busy, id))
    }

    fn sweep_expired(&self) {
        let now = unix_now();
        let next = self.next_sweep.load(Ordering::Relaxed);
        let every = self.config.tus_expiry.as_secs().clamp(1, 60);
        if now < next
            || self
                .next_sweep
                .compare_exchange(next, now + every, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        for id in self.store.ids_in(Area::Tus) {
            if let Ok(Some((meta, _))) = self.store.lookup_in(Area::Tus, id)
                && meta.expires.is_some_and(|e| e <= now)
                && let Some(_g) = self.lock(id)
            {
                self.store.remove_in(Area::Tus, id);
            }
        }
    }

    fn event(&self, kind: EventKind, id: FileId, meta: &Meta, position: u64) -> FileEvent {
        FileEvent {
            kind,
            conn: 0,
            file_id: id,
            info: meta.info.clone(),
            position,
            packet: 0,
            path: None,
            sha256: None,
            error: None,
            code: None,
        }
    }

    async fn create(&self, request: &Request, body: &mut Body<'_>) -> Response {
        if header(request, "Upload-Defer-Length").is_some() {
            return self.text(request, 400, "Upload-Defer-Length is not supported");
        }
        let Some(length) =
            header(request, "Upload-Length").and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return self.text(request, 400, "Upload-Length required");
        };
        if length > self.config.max_file_size {
            return self.text(request, 413, "upload larger than Tus-Max-Size");
        }
        let raw_meta = header(request, "Upload-Metadata").unwrap_or("").to_string();
        let Some(pairs) = parse_metadata(&raw_meta) else {
            return self.text(request, 400, "malformed Upload-Metadata");
        };
        let mut id = [0u8; 16];
        if getrandom::fill(&mut id).is_err() {
            return self.text(request, 500, "no randomness");
        }
        let id = FileId(id);
        let name = pairs
            .iter()
            .find(|(k, _)| k == "filename" || k == "name")
            .and_then(|(_, v)| String::from_utf8(v.clone()).ok())
            .unwrap_or_else(|| format!("upload-{}", id.to_hex()));
        if let Err(e) = check_name(&name) {
            return self.text(request, 400, &e.to_string());
        }
        let info = OfferInfo {
            size: length,
            name,
            channel: String::new(),
            data: String::new(),
            qos: QoS::Acknowledged,
        };
        if let Err((code, reason)) = self.hooks.authorize(0, &info) {
            let status = if code == Code::TooLarge { 413 } else { 403 };
            return self.text(request, status, &reason);
        }
        let now = unix_now();
        let meta = Meta {
            info,
            chunk: 0,
            created: now,
            expires: Some(now + self.config.tus_expiry.as_secs()),
            tus_metadata: Some(raw_meta),
            done: false,
        };
        if let Err(e) = self.store.create_in(Area::Tus, id, &meta) {
            return self.text(request, 500, &format!("storage: {e}"));
        }
        self.hooks
            .on_event(&self.event(EventKind::ReceivedAuthorization, id, &meta, 0));
        let location = format!("{}{}", self.config.tus_path, id.to_hex());
        let with_upload = header(request, "Content-Type") == Some(OCTETS);
        let mut resp = if with_upload {
            let Some(guard) = self.lock(id) else {
                return self.text(request, 409, "upload busy");
            };
            let r = self.write_body(request, body, id, &meta, 0).await;
            drop(guard);
            match r {
                Ok(offset) => self
                    .base(request, 201)
                    .with_header("Upload-Offset", offset.to_string()),
                Err(resp) => return resp,
            }
        } else {
            self.base(request, 201)
        };
        resp = resp.with_header("Location", location);
        if let Some(e) = meta.expires {
            resp = resp.with_header("Upload-Expires", http_date(e));
        }
        resp
    }

    /// Whether the upload expired (then it is removed, unless a request holds it).
    fn expired(&self, id: FileId, meta: &Meta, locked: bool) -> bool {
        if meta.expires.is_none_or(|e| e > unix_now()) {
            return false;
        }
        if locked {
            self.store.remove_in(Area::Tus, id);
        } else if let Some(_g) = self.lock(id) {
            self.store.remove_in(Area::Tus, id);
        }
        true
    }

    fn head(&self, request: &Request, id: FileId) -> Response {
        match self.store.lookup_in(Area::Tus, id) {
            Ok(Some((meta, partial))) if !self.expired(id, &meta, false) => {
                let mut r = self
                    .base(request, 200)
                    .with_header("Upload-Offset", partial.stored.to_string())
                    .with_header("Upload-Length", meta.info.size.to_string())
                    .with_header("Cache-Control", "no-store");
                if let Some(m) = meta.tus_metadata.as_deref().filter(|m| !m.is_empty()) {
                    r = r.with_header("Upload-Metadata", m);
                }
                if let Some(e) = meta.expires {
                    r = r.with_header("Upload-Expires", http_date(e));
                }
                r
            }
            _ => self
                .base(request, 404)
                .with_header("Cache-Control", "no-store"),
        }
    }

    fn delete(&self, request: &Request, id: FileId) -> Response {
        let Some(_g) = self.lock(id) else {
            return self.text(request, 409, "upload busy");
        };
        match self.store.lookup_in(Area::Tus, id) {
            Ok(Some(_)) => {
                self.store.remove_in(Area::Tus, id);
                self.base(request, 204)
            }
            _ => self.text(request, 404, "no such upload"),
        }
    }

    async fn patch(&self, request: &Request, body: &mut Body<'_>, id: FileId) -> Response {
        if header(request, "Content-Type") != Some(OCTETS) {
            return self.text(
                request,
                415,
                "Content-Type must be application/offset+octet-stream",
            );
        }
        let Some(offset) =
            header(request, "Upload-Offset").and_then(|v| v.trim().parse::<u64>().ok())
        else {
            return self.text(request, 400, "Upload-Offset required");
        };
        let Some(_guard) = self.lock(id) else {
            return self.text(request, 409, "upload busy");
        };
        let Ok(Some((meta, partial))) = self.store.lookup_in(Area::Tus, id) else {
            return self.text(request, 404, "no such upload");
        };
        if self.expired(id, &meta, true) {
            return self.text(request, 404, "no such upload");
        }
        if offset != partial.stored {
            return self.text(
                request,
                409,
                &format!(
                    "Upload-Offset {offset}, the upload is at {}",
                    partial.stored
                ),
            );
        }
        match self.write_body(request, body, id, &meta, offset).await {
            Ok(offset) => {
                let mut r = self
                    .base(request, 204)
                    .with_header("Upload-Offset", offset.to_string());
                if offset < meta.info.size
                    && let Some(e) = meta.expires
                {
                    r = r.with_header("Upload-Expires", http_date(e));
                }
                r
            }
            Err(r) => r,
        }
    }

    /// Appends the body at `offset` (bounded memory), checks `Upload-Checksum`, finishes the
    /// upload at its last byte. Returns the new offset or the error response.
    async fn write_body(
        &self,
        request: &Request,
        body: &mut Body<'_>,
        id: FileId,
        meta: &Meta,
        offset: u64,
    ) -> Result<u64, Response> {
        let checksum = match header(request, "Upload-Checksum").map(parse_checksum) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(why)) => return Err(self.text(request, 400, why)),
        };
        let part = self.store.part_in(Area::Tus, id);
        let storage = |e: std::io::Error| self.text(request, 500, &format!("storage: {e}"));
        if body
            .content_length()
            .is_some_and(|n| offset.saturating_add(n) > meta.info.size)
        {
            return Err(self.text(request, 413, "body goes past Upload-Length"));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&part)
            .map_err(storage)?;
        let whole = self
            .hashes
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&id))
            .and_then(|(len, h)| (len == offset).then_some(h));
        let want = match checksum {
            Some(Checksum::Sha1(_)) => Some("sha1"),
            Some(Checksum::Sha256(_)) => Some("sha256"),
            None => None,
        };
        // Writing and hashing on a blocking thread, the body read here: they overlap, and the
        // bounded channel keeps memory flat (at most 4 batches of about BATCH_BYTES queued, a
        // few MiB per upload in flight; a queue of 2 stalled the reader more and cost more CPU).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<bytes::Bytes>>(4);
        // Direct writes pay for a few blocks or more (as on the WebSocket door).
        let direct = self.config.direct_io
            && body
                .content_length()
                .unwrap_or(meta.info.size - offset.min(meta.info.size))
                >= 4 * DIRECT_BLOCK as u64;
        let writer = tokio::task::spawn_blocking(move || {
            write_loop(
                file,
                direct.then_some(part.as_path()),
                offset,
                whole,
                want,
                &mut rx,
            )
        });
        let mut at = offset;
        // Err(true): the body was cut (keep what arrived); Err(false): refuse the request.
        let mut failure: Option<(bool, Response)> = None;
        let mut batch: Vec<bytes::Bytes> = Vec::new();
        let mut batched = 0usize;
        loop {
            let chunk = match body.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    failure = Some((true, self.text(request, 400, &format!("body: {e}"))));
                    break;
                }
            };
            if at + chunk.len() as u64 > meta.info.size {
                failure = Some((
                    false,
                    self.text(request, 413, "body goes past Upload-Length"),
                ));
                break;
            }
            at += chunk.len() as u64;
            batched += chunk.len();
            batch.push(chunk);
            if batched >= BATCH_BYTES {
                batched = 0;
                if tx.send(std::mem::take(&mut batch)).await.is_err() {
                    // The thread stopped on a write error: reported below.
                    break;
                }
            }
        }
        // What arrived before a cut stays (a refused body is truncated below anyway).
        if !batch.is_empty() {
            let _ = tx.send(batch).await;
        }
        drop(tx);
        let w = writer
            .await
            .map_err(|e| storage(std::io::Error::other(e.to_string())))?;
        if let Some(e) = w.error {
            let _ = w.file.set_len(offset);
            return Err(storage(e));
        }
        let at = offset + w.len;
        let file = w.file;
        let verified = match &checksum {
            None => true,
            Some(Checksum::Sha1(want)) => w.sha1.finalize().as_slice() == want.as_slice(),
            Some(Checksum::Sha256(want)) => w.sha256.finalize().as_slice() == want.as_slice(),
        };
        match failure {
            // A cut body without a checksum: keep the bytes that arrived; the client asks HEAD
            // and resumes from there.
            Some((true, resp)) if checksum.is_none() => {
                let _ = sync_data(file).await;
                if let Ok(mut m) = self.hashes.lock() {
                    m.insert(id, (at, w.whole));
                }
                return Err(resp);
            }
            Some((_, resp)) => {
                let _ = file.set_len(offset);
                return Err(resp);
            }
            None if !verified => {
                let _ = file.set_len(offset);
                return Err(self
                    .base(request, 460)
                    .with_header("Content-Type", "text/plain; charset=utf-8")
                    .with_body("Upload-Checksum mismatch"));
            }
            None => {}
        }
        // Synced once, when the upload is complete (before it moves into place), not after
        // every PATCH: an fsync per request stalled the client for the disk's write-back of the
        // whole request body. After a crash, the offset HEAD reports is what reached the disk.
        // A failed sync is the request's error: the upload is not reported complete when its
        // bytes may not be on the disk.
        if at == meta.info.size {
            sync_data(file).await.map_err(storage)?;
        } else {
            drop(file);
        }
        let whole = w.whole;
        let mut ev = self.event(EventKind::ReceivedFragment, id, meta, at);
        ev.packet = 0;
        self.hooks.on_event(&ev);
        if at == meta.info.size {
            self.finish(id, meta, whole.finalize().into())
                .map_err(|e| self.text(request, 500, &e))?;
        } else if let Ok(mut m) = self.hashes.lock() {
            m.insert(id, (at, whole));
        }
        Ok(at)
    }

    /// `digest`: the SHA-256 of the whole file, hashed while it was written (tus has no
    /// end-to-end digest of its own; the received event carries it).
    fn finish(&self, id: FileId, meta: &Meta, digest: [u8; 32]) -> Result<(), String> {
        // Keep the metadata as a tombstone: HEAD answers with the full offset afterwards.
        let path = self
            .store
            .finish_kept(Area::Tus, id, &meta.info.name, self.config.overwrite)
            .map_err(|e| e.to_string())?;
        let mut ev = self.event(EventKind::Received, id, meta, meta.info.size);
        ev.path = Some(path);
        ev.sha256 = Some(digest);
        self.hooks.on_event(&ev);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_header_parses_and_refuses_garbage() {
        let m = parse_metadata("filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential")
            .unwrap();
        assert_eq!(
            m[0],
            ("filename".into(), b"world_domination_plan.pdf".to_vec())
        );
        assert_eq!(m[1], ("is_confidential".into(), Vec::new()));
        assert!(parse_metadata("filename !!!").is_none());
        assert_eq!(parse_metadata("").unwrap(), vec![]);
    }

    #[test]
    fn checksum_header_parses() {
        assert_eq!(
            parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Ok(Checksum::Sha1(
                base64::engine::general_purpose::STANDARD
                    .decode("Kq5sNclPz7QV2+lfQIuc6R7oRu0=")
                    .unwrap()
            ))
        );
        assert!(parse_checksum("md5 AAAA").is_err());
        assert!(parse_checksum("sha1 AAAA").is_err());
        assert!(parse_checksum("sha1").is_err());
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    }
}
