//! Static files: safe path resolution under a root, content types, validators (`ETag`,
//! `Last-Modified`), conditional requests and single byte ranges.
//!
//! ```text
//!  request path --percent-decode (no %2F, %5C, %00)--> segments (no "..", no "\")
//!       --> root.join(segments) --canonicalize--> must start with canonical root (symlinks)
//!       --> directory: "/" appended by redirect, then index.html (checked the same way)
//!       --> If-None-Match / If-Modified-Since: 304;  Range: 206 | 416;  else 200
//! ```
//!
//! The lookup, the open and (for files up to 64 KiB) the read happen in one trip to the
//! blocking pool; small files are then kept in a bounded [`FileCache`] by request path and
//! answered from memory until `ServerConfig::file_cache` (1 s) has passed since the file was
//! last looked at.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::request::Request;

/// Index file served for a directory.
pub(crate) const INDEX: &str = "index.html";

/// What a request path maps to under the document root.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// A regular file (canonical path, inside the root).
    File(PathBuf),
    /// A directory requested without the trailing slash: redirect here.
    Redirect(String),
    /// Nothing there.
    NotFound,
    /// A path that tries to leave the root or cannot be decoded: answer with this status.
    Refused(u16),
}

/// Percent-decodes a path, refusing encoded separators and NULs; `None` for bad escapes,
/// encoded `/` or `\`, NUL, or non-UTF-8 results.
fn decode_path(path: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let v = hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?;
            if matches!(v, b'/' | b'\\' | 0) {
                return None;
            }
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The relative path for a request path: `None` when it must be refused.
pub(crate) fn relative(path: &str) -> Option<PathBuf> {
    if !path.starts_with('/') {
        return None;
    }
    let decoded = decode_path(path)?;
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s if s.contains(['\\', '\0', ':']) => return None,
            s => rel.push(s),
        }
    }
    Some(rel)
}

/// Files up to this size are read whole while they are opened (one trip to the blocking
/// pool for the lookup, the open and the read), written with the response head, and kept in
/// the [`FileCache`].
pub(crate) const SMALL_FILE: u64 = 64 * 1024;
/// Most entries in the [`FileCache`].
const CACHE_ENTRIES: usize = 1024;
/// Most bytes of content in the [`FileCache`].
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A file opened (or found in the cache) for a response, with what its answer needs.
pub(crate) struct Opened {
    pub(crate) content_type: &'static str,
    pub(crate) len: u64,
    /// Formatted when the file was opened, so that a cached file's answers do not format
    /// them again.
    pub(crate) validators: Validators,
    pub(crate) data: FileData,
}

/// The bytes of an [`Opened`] file.
pub(crate) enum FileData {
    /// All of it, read when the file was opened (at most [`SMALL_FILE`] bytes).
    Whole(bytes::Bytes),
    /// The open file, streamed in chunks.
    Open(std::fs::File),
}

/// Opens `path` as a regular file; with `read_small`, a file of at most [`SMALL_FILE`] bytes
/// is read whole (and closed). Blocking: runs on the blocking pool.
pub(crate) fn open_blocking(path: &Path, read_small: bool) -> Option<Opened> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let opened = |data| Opened {
        content_type: content_type(path),
        len: meta.len(),
        validators: Validators::new(meta.len(), meta.modified().ok()),
        data,
    };
    if read_small && meta.len() <= SMALL_FILE {
        let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        // One byte over the size seen: a file that grew meanwhile is streamed instead.
        (&file).take(SMALL_FILE + 1).read_to_end(&mut buf).ok()?;
        if buf.len() as u64 == meta.len() {
            return Some(opened(FileData::Whole(bytes::Bytes::from(buf))));
        }
        use std::io::Seek as _;
        (&file).rewind().ok()?;
    }
    Some(opened(FileData::Open(file)))
}

impl Opened {
    /// A copy for the cache, when the content was read whole.
    fn share(&self) -> Option<Self> {
        match &self.data {
            FileData::Whole(b) => Some(Self {
                content_type: self.content_type,
                len: self.len,
                validators: self.validators.clone(),
                data: FileData::Whole(b.clone()),
            }),
            FileData::Open(_) => None,
        }
    }

    /// Bytes held in memory.
    fn held(&self) -> usize {
        match &self.data {
            FileData::Whole(b) => b.len(),
            FileData::Open(_) => 0,
        }
    }
}

/// What [`FileCache::lookup`] found.
pub(crate) enum Found {
    /// A regular file, opened or cached.
    File(Box<Opened>),
    /// A directory requested without the trailing slash: redirect here.
    Redirect(String),
    /// Nothing there.
    Missing,
    /// Refused with this status.
    Refused(u16),
}

/// Small static files kept in memory by request path, each answered from memory for at most
/// `ttl` after the file was last looked at ([`crate::ServerConfig::file_cache`]). Bounded:
/// [`CACHE_ENTRIES`] entries and [`CACHE_BYTES`] bytes; when full, new files are served
/// without being kept until entries expire.
pub(crate) struct FileCache {
    ttl: Duration,
    state: std::sync::Mutex<CacheState>,
}

#[derive(Default)]
struct CacheState {
    map: std::collections::HashMap<String, (Opened, std::time::Instant)>,
    bytes: usize,
}

impl FileCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            state: std::sync::Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Maps `url_path` to a file under `root` (already canonical) and opens it, from memory
    /// when a fresh entry exists, else in one trip to the blocking pool; `read_small` as for
    /// [`open_blocking`] (a file read whole is kept).
    pub(crate) async fn lookup(&self, root: &Path, url_path: &str, read_small: bool) -> Found {
        if self.ttl.is_zero() {
            return Self::lookup_blocking(root, url_path, read_small).await;
        }
        let now = std::time::Instant::now();
        if let Some((o, at)) = self.state().map.get(url_path)
            && now.duration_since(*at) < self.ttl
            && let Some(o) = o.share()
        {
            return Found::File(Box::new(o));
        }
        let found = Self::lookup_blocking(root, url_path, read_small).await;
        let mut st = self.state();
        if let Some((old, _)) = st.map.remove(url_path) {
            st.bytes -= old.held();
        }
        if let Found::File(o) = &found
            && let Some(shared) = o.share()
        {
            let size = shared.held();
            if st.map.len() >= CACHE_ENTRIES || st.bytes + size > CACHE_BYTES {
                let ttl = self.ttl;
                st.map.retain(|_, (_, at)| now.duration_since(*at) < ttl);
                st.bytes = st.map.values().map(|(o, _)| o.held()).sum();
            }
            if st.map.len() < CACHE_ENTRIES && st.bytes + size <= CACHE_BYTES {
                st.bytes += size;
                st.map.insert(url_path.to_owned(), (shared, now));
            }
        }
        found
    }

    async fn lookup_blocking(root: &Path, url_path: &str, read_small: bool) -> Found {
        let (root, url_path) = (root.to_owned(), url_path.to_owned());
        tokio::task::spawn_blocking(move || match resolve(&root, &url_path) {
            Lookup::File(path) => match open_blocking(&path, read_small) {
                Some(o) => Found::File(Box::new(o)),
                None => Found::Missing,
            },
            Lookup::Redirect(to) => Found::Redirect(to),
            Lookup::NotFound => Found::Missing,
            Lookup::Refused(s) => Found::Refused(s),
        })
        .await
        .unwrap_or(Found::Missing)
    }
}

/// Maps `url_path` to a file under `root` (already canonical). Blocking.
pub(crate) fn resolve(root: &Path, url_path: &str) -> Lookup {
    let Some(rel) = relative(url_path) else {
        return Lookup::Refused(if decode_path(url_path).is_none() {
            400
        } else {
            403
        });
    };
    let Ok(real) = std::fs::canonicalize(root.join(&rel)) else {
        return Lookup::NotFound;
    };
    if !real.starts_with(root) {
        return Lookup::Refused(403);
    }
    let Ok(meta) = std::fs::metadata(&real) else {
        return Lookup::NotFound;
    };
    if meta.is_file() {
        return Lookup::File(real);
    }
    if !meta.is_dir() {
        return Lookup::NotFound;
    }
    if !url_path.ends_with('/') {
        return Lookup::Redirect(format!("{url_path}/"));
    }
    let Ok(index) = std::fs::canonicalize(real.join(INDEX)) else {
        return Lookup::NotFound;
    };
    if !index.starts_with(root) {
        return Lookup::Refused(403);
    }
    match std::fs::metadata(&index) {
        Ok(m) if m.is_file() => Lookup::File(index),
        _ => Lookup::NotFound,
    }
}

/// Content type by file extension.
pub(crate) fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "log" | "md" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "bmp" => "image/bmp",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wav",
        "m4a" => "audio/mp4",
        _ => "application/octet-stream",
    }
}

/// Validators of a file version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Validators {
    /// Strong entity tag from length and modification time (quoted).
    pub(crate) etag: String,
    /// Modification time, whole seconds since the epoch.
    pub(crate) modified: Option<u64>,
    /// `modified` as an IMF-fixdate, the `Last-Modified` value.
    pub(crate) last_modified: Option<String>,
}

impl Validators {
    pub(crate) fn new(len: u64, modified: Option<SystemTime>) -> Self {
        let since = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok());
        let (secs, nanos) = since.map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()));
        Self {
            etag: format!("\"{len:x}-{secs:x}{nanos:08x}\""),
            modified: since.map(|d| d.as_secs()),
            last_modified: since.map(|d| http_date(UNIX_EPOCH + Duration::from_secs(d.as_secs()))),
        }
    }
}

/// Whether an `If-None-Match` list matches `etag` (weak comparison, RFC 9110 section 13.1.2).
pub(crate) fn none_match(header: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = strip(etag);
    header.split(',').any(|t| {
        let theirs = strip(t);
        // The tag of a compressed variant (super::compress::variant_etag) names the same file.
        t.trim() == "*" || theirs == ours || super::compress::plain_etag(&theirs) == ours
    })
}

/// A requested byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RangeSpec {
    /// Serve the whole representation (no Range, or an unusable one).
    Full,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Several disjoint ranges `(start, end)`, in ascending order, for a `multipart/byteranges`
    /// answer.
    Multi(Vec<(u64, u64)>),
    /// No byte of the range exists: 416.
    Unsatisfiable,
}

/// Most ranges honoured in one request; more are answered with the whole body (RFC 9110
/// section 14.2 lets a server ignore a Range field it finds too costly).
pub(crate) const MAX_RANGES: usize = 16;

/// Most bytes served in a `multipart/byteranges` answer; past it the whole body is sent.
pub(crate) const MAX_MULTI_BYTES: u64 = 1 << 20;

/// Parses a `Range` value for a representation of `len` bytes (RFC 9110 section 14.1.2).
/// Unsatisfiable ranges are left out; overlapping or adjacent ones are merged (section 14.2
/// warns about clients that ask for the same bytes many times); more than [`MAX_RANGES`]
/// ranges, or a malformed one, give the whole body.
pub(crate) fn range(header: &str, len: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Full;
    };
    let items: Vec<&str> = spec.split(',').map(str::trim).collect();
    if items.len() > MAX_RANGES {
        return RangeSpec::Full;
    }
    let mut ranges = Vec::with_capacity(items.len());
    for item in items {
        match one_range(item, len) {
            Some(Some(r)) => ranges.push(r),
            Some(None) => {}
            None => return RangeSpec::Full,
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    match merged.as_slice() {
        [] => RangeSpec::Unsatisfiable,
        [(start, end)] => RangeSpec::Part(*start, *end),
        _ => RangeSpec::Multi(merged),
    }
}

/// One `first-last`, `first-` or `-suffix` item: `None` when malformed, `Some(None)` when
/// unsatisfiable for `len` bytes.
fn one_range(item: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let (a, b) = item.split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    if a.trim().is_empty() {
        // bytes=-N: the last N bytes.
        let n = num(b)?;
        return Some((n > 0 && len > 0).then(|| (len.saturating_sub(n), len - 1)));
    }
    let start = num(a)?;
    let end = if b.trim().is_empty() {
        None
    } else {
        Some(num(b)?)
    };
    if end.is_some_and(|e| e < start) {
        return None;
    }
    if start >= len {
        return Some(None);
    }
    Some(Some((start, end.map_or(len - 1, |e| e.min(len - 1)))))
}

/// The head of each part of a `multipart/byteranges` body and the closing delimiter: what
/// goes before the bytes of each range, and what ends the body.
pub(crate) fn multipart_heads(
    boundary: &str,
    content_type: &str,
    ranges: &[(u64, u64)],
    len: u64,
) -> (Vec<String>, String) {
    let heads = ranges
        .iter()
        .enumerate()
        .map(|(i, (start, end))| {
            let lead = if i == 0 { "" } else { "\r\n" };
            format!(
                "{lead}--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {start}-{end}/{len}\r\n\r\n"
            )
        })
        .collect();
    (heads, format!("\r\n--{boundary}--\r\n"))
}

/// What to send for a file request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    /// Byte range of the file to send (`start`, `len`); `None`: no body.
    pub(crate) body: Option<(u64, u64)>,
    /// For a `multipart/byteranges` answer (206 with several ranges, `body` unused): the
    /// ranges `(start, end)`, in order. The caller picks the boundary and sets the
    /// `Content-Type`.
    pub(crate) ranges: Vec<(u64, u64)>,
}

/// Decides status, headers and byte range for a file of `len` bytes (RFC 9110 section 13.2.2
/// order: `If-None-Match`, else `If-Modified-Since`; then `Range` with `If-Range`).
pub(crate) fn plan(request: &Request, len: u64, v: &Validators, content_type: &str) -> Plan {
    let mut headers = vec![("ETag".to_owned(), v.etag.clone())];
    if let Some(m) = &v.last_modified {
        headers.push(("Last-Modified".to_owned(), m.clone()));
    }
    let get_or_head = matches!(request.method(), "GET" | "HEAD");
    let not_modified = match request.header("if-none-match") {
        Some(inm) => none_match(inm, &v.etag),
        None => request
            .header("if-modified-since")
            .and_then(parse_http_date)
            .zip(v.modified)
            .is_some_and(|(since, m)| m <= since),
    };
    if get_or_head && not_modified {
        return Plan {
            status: 304,
            headers,
            body: None,
            ranges: Vec::new(),
        };
    }
    headers.push(("Accept-Ranges".to_owned(), "bytes".to_owned()));
    let range_applies = request.method() == "GET"
        && request.header("if-range").is_none_or(|ir| {
            let ir = ir.trim();
            if ir.starts_with('"') {
                ir == v.etag
            } else {
                parse_http_date(ir).is_some_and(|d| Some(d) == v.modified)
            }
        });
    let spec = match request.header("range") {
        Some(r) if range_applies => range(r, len),
        _ => RangeSpec::Full,
    };
    match spec {
        RangeSpec::Full => {
            headers.push(("Content-Type".to_owned(), content_type.to_owned()));
            Plan {
                status: 200,
                headers,
                body: Some((0, len)),
                ranges: Vec::new(),
            }
        }
        RangeSpec::Part(start, end) => {
            headers.push(("Content-Type".to_owned(), content_type.to_owned()));
            headers.push((
                "Content-Range".to_owned(),
                format!("bytes {start}-{end}/{len}"),
            ));
            Plan {
                status: 206,
                headers,
                body: Some((start, end - start + 1)),
                ranges: Vec::new(),
            }
        }
        RangeSpec::Multi(ranges) => {
            let total: u64 = ranges.iter().map(|(a, b)| b - a + 1).sum();
            if total > MAX_MULTI_BYTES {
                headers.push(("Content-Type".to_owned(), content_type.to_owned()));
                return Plan {
                    status: 200,
                    headers,
                    body: Some((0, len)),
                    ranges: Vec::new(),
                };
            }
            Plan {
                status: 206,
                headers,
                body: Some((0, 0)),
                ranges,
            }
        }
        RangeSpec::Unsatisfiable => {
            headers.push(("Content-Range".to_owned(), format!("bytes */{len}")));
            Plan {
                status: 416,
                headers,
                body: None,
                ranges: Vec::new(),
            }
        }
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .min(253_402_300_799); // 9999-12-31
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The `Date` field for now: formatted once a second per thread.
pub(crate) fn date_now() -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST.with(|cell| {
        let mut last = cell.borrow_mut();
        if last.0 != secs {
            *last = (secs, http_date(now));
        }
        last.1.clone()
    })
}

/// Parses an IMF-fixdate into seconds since the epoch (other date formats are ignored).
pub(crate) fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    let rest = s.get(5..)?; // "Sun, "
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month_name = parts.next()?;
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || day == 0 || day > 31 || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(parse_http_date(&http_date(now)), Some(secs));
    }

    #[test]
    fn paths_never_leave_the_root() {
        assert_eq!(relative("/a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(relative("/a/./b//c"), Some(PathBuf::from("a/b/c")));
        assert_eq!(relative("/%61.txt"), Some(PathBuf::from("a.txt")));
        for bad in [
            "/../etc/passwd",
            "/a/../../b",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc",
            "/a%2fb",
            "/a%5cb",
            "/a\\..\\b",
            "/a%00b",
            "/%zz",
            "relative",
            "/c:/x",
        ] {
            assert_eq!(relative(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=0-9", 100), RangeSpec::Part(0, 9));
        assert_eq!(range("bytes=90-", 100), RangeSpec::Part(90, 99));
        assert_eq!(range("bytes=-10", 100), RangeSpec::Part(90, 99));
        assert_eq!(range("bytes=-1000", 100), RangeSpec::Part(0, 99));
        assert_eq!(range("bytes=50-1000", 100), RangeSpec::Part(50, 99));
        assert_eq!(range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(
            range("bytes=0-1,5-6", 100),
            RangeSpec::Multi(vec![(0, 1), (5, 6)])
        );
        // Sorted, overlapping and adjacent ones merged, unsatisfiable ones left out.
        assert_eq!(
            range("bytes=50-59, 0-9, 5-12, 13-14, 200-300, -5", 100),
            RangeSpec::Multi(vec![(0, 14), (50, 59), (95, 99)])
        );
        assert_eq!(range("bytes=0-9, 5-20", 100), RangeSpec::Part(0, 20));
        assert_eq!(range("bytes=200-, 300-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(range("bytes=0-1, x-2", 100), RangeSpec::Full);
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(range(&many, 100), RangeSpec::Full);
        assert_eq!(range("bytes=9-1", 100), RangeSpec::Full);
        assert_eq!(range("items=0-1", 100), RangeSpec::Full);
        assert_eq!(range("bytes=x-1", 100), RangeSpec::Full);
    }

    #[test]
    fn validators_carry_the_formatted_modification_time() {
        let t = UNIX_EPOCH + Duration::from_millis(784_111_777_250);
        let v = Validators::new(5, Some(t));
        assert_eq!(v.modified, Some(784_111_777));
        assert_eq!(
            v.last_modified.as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(Validators::new(5, None).last_modified, None);
    }

    #[test]
    fn etags_compare_weakly_for_if_none_match() {
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"b\""));
        assert!(!none_match("\"c\"", "\"b\""));
    }
}
