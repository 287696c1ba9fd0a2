//! `multipart/form-data` uploads (RFC 7578), streamed to disk with bounded memory (the seeds'
//! `HTTPUploadFiles` with `pstFileStream` + `RemoveBoundaries`, and its
//! `OnHTTPUploadBeforeSaveFile` / `OnHTTPUploadReadInput` events).
//!
//! ```text
//!  Content-Type: multipart/form-data; boundary=B   --> boundary()          (415 / 400)
//!  Body::chunk() pieces (any split) --> ws_http's Parser::feed / poll (sans-IO, bounded; the
//!                                       part, field, file and body limits: 400 / 413)
//!     Event::Part(headers)  file part  --> hook(FileInfo): Save | SaveAs | Memory | Disk
//!                                          | Skip | Reject
//!                                          --> in memory while within memory_threshold
//!                                              (Memory: always), else (or past it)
//!                                          --> DIR/.wskit-upload-<random>.part (create_new)
//!                           field part --> collected in memory (max_field_bytes)
//!     Event::Data(bytes)    --> written / appended (a memory file past the threshold is
//!                               written to a temporary file and goes on there)
//!     Event::PartEnd        --> temp file linked to DIR/NAME (NAME-1, NAME-2 ... when taken;
//!                               never overwrites), temp name removed; or kept in memory
//!     Event::End            --> Upload { files, in_memory, fields }
//!  any failure: the partial file and the files already saved by this request are removed
//! ```
//!
//! Use it from [`crate::Handler::on_http`]:
//!
//! ```no_run
//! use ws_server::{Body, Handler, Request, Response, multipart};
//!
//! struct App {
//!     uploads: multipart::UploadConfig,
//! }
//!
//! impl Handler for App {
//!     async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
//!         if request.method() != "POST" || request.path() != "/upload" {
//!             return Response::new(404);
//!         }
//!         let hook = |file: &multipart::FileInfo| match file.field.as_str() {
//!             "avatar" => multipart::FileDecision::SaveAs(format!("avatar-{}", file.file_name)),
//!             _ => multipart::FileDecision::Reject(403),
//!         };
//!         match multipart::save(request, body, &self.uploads, hook).await {
//!             Ok(upload) => Response::text(200, format!("{} files\n", upload.files.len())),
//!             Err(e) => e.response(),
//!         }
//!     }
//! }
//! ```
//!
//! The parser itself ([`Parser`], from `ws_http::multipart`) knows nothing of sockets or
//! files: feed it bytes in any pieces and poll [`Event`]s. Every failure is a
//! [`crate::Error`] whose [`crate::Error::status`] is the answer (415, 400, 413, the hook's
//! status, 500), and [`crate::Error::response`] writes it.

use std::{
    io,
    path::{Path, PathBuf},
};

use tokio::io::AsyncWriteExt;
pub use ws_http::multipart::{Event, Parser, PartHeaders, boundary};

use crate::{Error, body::Body, request::Request, response::Response};

/// Limits and destination of [`save`]. Every limit answers 413 when exceeded (400 for part
/// headers, which are malformed rather than large); [`UploadConfig::limits`] hands them to
/// the parser.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadConfig {
    /// Directory the files are saved in; created (with its parents) when missing. Default:
    /// `uploads` (relative to the working directory; the seeds' empty `SaveDirectory`, the
    /// application folder, is never used).
    pub dir: PathBuf,
    /// Largest single file in bytes. Default: [`UploadConfig::DEFAULT_MAX_FILE_SIZE`] (64 MiB).
    pub max_file_size: u64,
    /// Largest request body in bytes, multipart framing included (the server's
    /// [`crate::HttpLimits::max_body`] applies as well). Default:
    /// [`UploadConfig::DEFAULT_MAX_TOTAL_SIZE`] (64 MiB).
    pub max_total_size: u64,
    /// Most parts (files and fields) in one request. Default:
    /// [`UploadConfig::DEFAULT_MAX_PARTS`] (100).
    pub max_parts: usize,
    /// Largest value of one form field (a part without `filename`), kept in memory. Default:
    /// [`UploadConfig::DEFAULT_MAX_FIELD_BYTES`] (64 KiB).
    pub max_field_bytes: usize,
    /// Largest header block of one part in bytes. Default:
    /// [`UploadConfig::DEFAULT_MAX_PART_HEADER_BYTES`] (8 KiB).
    pub max_part_header_bytes: usize,
    /// Most header fields of one part. Default: [`UploadConfig::DEFAULT_MAX_PART_HEADERS`] (16).
    pub max_part_headers: usize,
    /// Files of at most this many bytes stay in memory ([`Upload::in_memory`]) instead of
    /// being saved (the seeds' `HTTPUploadFiles.StreamType` with `MinSize`): a file is kept
    /// in memory while it is within the threshold, and written to a temporary file (then
    /// saved as usual) as soon as it grows past it, so memory per upload stays bounded by it.
    /// 0 saves every file to disk. The hook can choose per file ([`FileDecision::Memory`],
    /// [`FileDecision::Disk`]). Default: 0.
    pub memory_threshold: u64,
}

impl UploadConfig {
    /// Default of [`UploadConfig::max_file_size`].
    pub const DEFAULT_MAX_FILE_SIZE: u64 = 64 << 20;
    /// Default of [`UploadConfig::max_total_size`].
    pub const DEFAULT_MAX_TOTAL_SIZE: u64 = 64 << 20;
    /// Default of [`UploadConfig::max_parts`].
    pub const DEFAULT_MAX_PARTS: usize = 100;
    /// Default of [`UploadConfig::max_field_bytes`].
    pub const DEFAULT_MAX_FIELD_BYTES: usize = 64 << 10;
    /// Default of [`UploadConfig::max_part_header_bytes`].
    pub const DEFAULT_MAX_PART_HEADER_BYTES: usize = 8 << 10;
    /// Default of [`UploadConfig::max_part_headers`].
    pub const DEFAULT_MAX_PART_HEADERS: usize = 16;

    /// The default limits, saving into `dir`.
    #[must_use]
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            ..Self::default()
        }
    }
}

impl UploadConfig {
    /// The parser limits of this configuration: `max_total_size` as `max_body`, the part
    /// limits under their names, `max_file_size` as `max_file_bytes`.
    #[must_use]
    pub fn limits(&self) -> ws_http::Limits {
        let mut limits = ws_http::Limits::default();
        limits.max_body = self.max_total_size;
        limits.max_parts = self.max_parts;
        limits.max_part_header_bytes = self.max_part_header_bytes;
        limits.max_part_headers = self.max_part_headers;
        limits.max_file_bytes = self.max_file_size;
        limits.max_field_bytes = self.max_field_bytes as u64;
        limits
    }
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("uploads"),
            max_file_size: Self::DEFAULT_MAX_FILE_SIZE,
            max_total_size: Self::DEFAULT_MAX_TOTAL_SIZE,
            max_parts: Self::DEFAULT_MAX_PARTS,
            max_field_bytes: Self::DEFAULT_MAX_FIELD_BYTES,
            max_part_header_bytes: Self::DEFAULT_MAX_PART_HEADER_BYTES,
            max_part_headers: Self::DEFAULT_MAX_PART_HEADERS,
            memory_threshold: 0,
        }
    }
}

/// What [`save`] fails with: the crate's error type (it was an enum of its own).
#[deprecated(note = "multipart::save returns ws_server::Error; use that type")]
pub type UploadError = Error;

impl Error {
    /// A `text/plain` response with [`Error::status`] and the reason; server-side failures
    /// (I/O, 5xx) are not detailed, so no path or OS message reaches the client.
    #[must_use]
    pub fn response(&self) -> Response {
        let status = self.status();
        let text = if status >= 500 {
            "the request could not be completed".to_owned()
        } else {
            self.to_string()
        };
        Response::text(status, format!("{text}\n"))
    }
}

/// A file part about to be saved, for the hook of [`save`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileInfo {
    /// The form field name.
    pub field: String,
    /// The file name as the client sent it (untrusted).
    pub original_name: String,
    /// The sanitised name it will be saved under (before a collision suffix).
    pub file_name: String,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// An upper bound of the file's size, when one is known: the part's own
    /// `Content-Length` field, else what is left of the request body's `Content-Length`
    /// (counted from the start of the piece of body in which the part's headers ended).
    /// `None` for a chunked body (the size shows only as the content arrives).
    pub size_hint: Option<u64>,
}

/// The hook's verdict on a file (the seeds' `OnHTTPUploadBeforeSaveFile`, which can rename,
/// and `OnHTTPUploadBeforeCreatePostStream`, which picks memory or a file).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileDecision {
    /// Save it under [`FileInfo::file_name`], or keep it in memory when it stays within
    /// [`UploadConfig::memory_threshold`].
    Save,
    /// As [`FileDecision::Save`], under this name (sanitised again; an unusable name becomes
    /// `upload`).
    SaveAs(String),
    /// Keep it in memory ([`Upload::in_memory`]) whatever its size, up to
    /// [`UploadConfig::max_file_size`].
    Memory,
    /// Save it to disk under [`FileInfo::file_name`] even when it is small enough for memory.
    Disk,
    /// Skip this file (its content is read and dropped) and go on with the others.
    Skip,
    /// Fail the whole upload with this status (403, 415, ...); nothing is kept.
    Reject(u16),
}

/// A hook that saves every file.
#[must_use]
pub fn save_all(_: &FileInfo) -> FileDecision {
    FileDecision::Save
}

/// A file written by [`save`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SavedFile {
    /// The form field name.
    pub field: String,
    /// The file name as the client sent it (untrusted).
    pub original_name: String,
    /// Where it was saved ([`UploadConfig::dir`] joined with the final name).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
}

impl SavedFile {
    /// The final file name (sanitised, with a collision suffix when one was needed).
    #[must_use]
    pub fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    }
}

/// A file [`save`] kept in memory ([`UploadConfig::memory_threshold`],
/// [`FileDecision::Memory`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryFile {
    /// The form field name.
    pub field: String,
    /// The file name as the client sent it (untrusted).
    pub original_name: String,
    /// The sanitised name ([`FileInfo::file_name`], or the hook's).
    pub file_name: String,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The content.
    pub data: bytes::Bytes,
}

/// What [`save`] stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upload {
    /// Saved files in the order of the body.
    pub files: Vec<SavedFile>,
    /// Files kept in memory, in the order of the body.
    pub in_memory: Vec<MemoryFile>,
    /// Form fields without a file name (`OnHTTPUploadReadInput`), in order; values are UTF-8
    /// (invalid sequences replaced).
    pub fields: Vec<(String, String)>,
}

impl Upload {
    /// The first field named `name`.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Longest sanitised file name in bytes (collision suffixes come on top, below 255).
pub const MAX_FILE_NAME: usize = 200;
/// The name used when nothing usable is left of a file name.
pub const FALLBACK_NAME: &str = "upload";

/// A file name safe to create in a directory, or `None` when nothing usable is left: only
/// the last path component (`/` or `\`), without control characters, bidirectional
/// overrides or `<>:"|?*`, without leading dots or spaces (no hidden files, no `..`) and
/// trailing dots or spaces, not a Windows device name, at most [`MAX_FILE_NAME`] bytes
/// (keeping a short extension).
///
/// ```
/// use ws_server::multipart::sanitize_file_name as s;
/// assert_eq!(s("../../etc/passwd").as_deref(), Some("passwd"));
/// assert_eq!(s("C:\\Users\\x\\report.pdf").as_deref(), Some("report.pdf"));
/// assert_eq!(s(".htaccess").as_deref(), Some("htaccess"));
/// assert_eq!(s(".."), None);
/// ```
#[must_use]
pub fn sanitize_file_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|&c| {
            !c.is_control()
                && !matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
        .map(|c| if "<>:\"|?*".contains(c) { '_' } else { c })
        .collect();
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if trimmed.is_empty() {
        return None;
    }
    let mut name = trimmed.to_owned();
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    const DEVICES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];
    let device = DEVICES.iter().any(|d| stem.eq_ignore_ascii_case(d))
        || (stem.len() == 4
            && (stem[..3].eq_ignore_ascii_case("COM") || stem[..3].eq_ignore_ascii_case("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    if device {
        name.insert(0, '_');
    }
    if name.len() > MAX_FILE_NAME {
        let ext = name
            .rfind('.')
            .map(|i| &name[i..])
            .filter(|e| e.len() <= 16)
            .unwrap_or("")
            .to_owned();
        let mut cut = MAX_FILE_NAME - ext.len();
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
        let stem_end = name.trim_end_matches(['.', ' ']).len();
        name.truncate(stem_end);
        name.push_str(&ext);
    }
    Some(name)
}

/// `name` with `-n` before its extension (`a.tar.gz` becomes `a-1.tar.gz`).
fn with_suffix(name: &str, n: u32) -> String {
    match name.find('.') {
        Some(i) if i > 0 => format!("{}-{n}{}", &name[..i], &name[i..]),
        _ => format!("{name}-{n}"),
    }
}

/// Links the finished temporary file to a free name in `dir` (never replacing a file) and
/// removes the temporary name.
async fn commit(temp: &Path, dir: &Path, name: &str) -> io::Result<PathBuf> {
    for n in 0..10_000 {
        let candidate = if n == 0 {
            name.to_owned()
        } else {
            with_suffix(name, n)
        };
        let path = dir.join(&candidate);
        match tokio::fs::hard_link(temp, &path).await {
            Ok(()) => {
                tokio::fs::remove_file(temp).await?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(_) => {
                // No hard links here: reserve the name, then move the file onto it.
                match tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .await
                {
                    Ok(_) => {
                        tokio::fs::rename(temp, &path).await?;
                        return Ok(path);
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Err(io::Error::other(format!("no free name for {name}")))
}

/// Removes what a failed or abandoned upload left: the partial file always, the files already
/// saved unless the upload succeeded.
#[derive(Debug, Default)]
struct Cleanup {
    temp: Option<PathBuf>,
    saved: Vec<PathBuf>,
    committed: bool,
    /// [`UploadConfig::dir`] was created (it is, only when a file goes to disk).
    dir_ready: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = std::fs::remove_file(t);
        }
        if !self.committed {
            for p in self.saved.drain(..) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn temp_name() -> Result<String, Error> {
    let mut r = [0u8; 12];
    getrandom::fill(&mut r).map_err(|e| io::Error::other(e.to_string()))?;
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(".wskit-upload-{hex}.part"))
}

/// What is known of a file part besides its content.
struct FileMeta {
    name: String,
    field: String,
    original_name: String,
    content_type: Option<String>,
}

enum Current {
    None,
    Skip,
    Field {
        name: String,
        value: Vec<u8>,
    },
    File {
        out: Box<tokio::io::BufWriter<tokio::fs::File>>,
        temp: PathBuf,
        meta: FileMeta,
        size: u64,
    },
    Memory {
        data: Vec<u8>,
        /// Moved to a temporary file when it would grow past this (`None`: stays).
        spill_at: Option<u64>,
        meta: FileMeta,
    },
}

/// Reads a `multipart/form-data` body and saves its files in [`UploadConfig::dir`]: each
/// one streamed to a temporary `.wskit-upload-*.part` file (created exclusively), then given
/// its sanitised name ([`sanitize_file_name`]; `NAME-1`, `NAME-2`, ... when taken, never
/// overwriting). Files within [`UploadConfig::memory_threshold`] are kept in memory instead
/// ([`Upload::in_memory`]). `hook` sees every file before anything is written and may rename,
/// skip or refuse it, or choose memory or disk for it ([`FileDecision`]; the part's field
/// name, type and [`FileInfo::size_hint`] are there to decide by). A file input with no file chosen (`filename=""`) is skipped.
/// On any error nothing is kept: the partial file and the files already saved by this
/// request are removed (answer with [`Error::response`]).
///
/// # Errors
/// [`Error::Upload`] with ws-http's reason: 415 when the body is not multipart, 400 when it is
/// malformed or cut short, 413 when a limit of `config` is exceeded; [`Error::Http`] when
/// reading the body fails (a limit or timeout of the server) or a part is not a named
/// form-data part (400); [`Error::UploadRefused`] with the hook's status when it refuses a
/// file; [`Error::Io`] (500) when the file cannot be written.
pub async fn save<F>(
    request: &Request,
    body: &mut Body<'_>,
    config: &UploadConfig,
    mut hook: F,
) -> Result<Upload, Error>
where
    F: FnMut(&FileInfo) -> FileDecision,
{
    let content_type = request
        .header("content-type")
        .ok_or(Error::Upload(ws_http::MultipartError::NotMultipart.into()))?;
    let boundary = boundary(content_type).map_err(Error::Upload)?;
    if body
        .content_length()
        .is_some_and(|n| n > config.max_total_size)
    {
        return Err(Error::Upload(ws_http::Error::BodyTooLarge {
            max: config.max_total_size,
        }));
    }
    let mut parser = Parser::new(&boundary, &config.limits()).map_err(Error::Upload)?;
    let mut upload = Upload::default();
    let mut cleanup = Cleanup::default();
    let mut consumed = 0u64;
    let mut current = Current::None;
    while !parser.is_done() {
        let Some(chunk) = body.chunk().await? else {
            parser.finish().map_err(Error::Upload)?;
            break;
        };
        let mut rest = &chunk[..];
        while !rest.is_empty() && !parser.is_done() {
            // From the piece a part's headers end in, at most this much can be its content.
            let left = body.content_length().map(|l| l.saturating_sub(consumed));
            let n = parser.feed(rest);
            rest = &rest[n..];
            consumed += n as u64;
            while let Some(event) = parser.poll().map_err(Error::Upload)? {
                handle_event(
                    event,
                    config,
                    &mut hook,
                    &mut current,
                    &mut cleanup,
                    &mut upload,
                    left,
                )
                .await?;
            }
        }
        // The epilogue is left to the server, which discards it.
    }
    cleanup.committed = true;
    Ok(upload)
}

/// Acts on one parser event: opens, writes and commits files, collects fields.
async fn handle_event<F>(
    event: Event,
    config: &UploadConfig,
    hook: &mut F,
    current: &mut Current,
    cleanup: &mut Cleanup,
    upload: &mut Upload,
    left: Option<u64>,
) -> Result<(), Error>
where
    F: FnMut(&FileInfo) -> FileDecision,
{
    match event {
        Event::Part(h) => *current = start_part(h, config, hook, cleanup, left).await?,
        // The parser enforces max_file_size and max_field_bytes.
        Event::Data(data) => match current {
            Current::File { out, size, .. } => {
                *size += data.len() as u64;
                out.write_all(&data).await?;
            }
            Current::Memory {
                data: held,
                spill_at,
                ..
            } if spill_at.is_none_or(|max| (held.len() + data.len()) as u64 <= max) => {
                held.extend_from_slice(&data);
            }
            Current::Memory { .. } => {
                // Past the threshold: what is held goes to a temporary file, and so does the
                // rest of the part.
                let Current::Memory {
                    data: held, meta, ..
                } = std::mem::replace(current, Current::None)
                else {
                    unreachable!("matched above");
                };
                let (file, temp) = open_temp(config, cleanup).await?;
                let mut out = Box::new(tokio::io::BufWriter::with_capacity(64 << 10, file));
                out.write_all(&held).await?;
                out.write_all(&data).await?;
                *current = Current::File {
                    out,
                    temp,
                    meta,
                    size: (held.len() + data.len()) as u64,
                };
            }
            Current::Field { value, .. } => value.extend_from_slice(&data),
            Current::Skip | Current::None => {}
        },
        Event::PartEnd => match std::mem::replace(current, Current::None) {
            Current::File {
                mut out,
                temp,
                meta,
                size,
            } => {
                out.flush().await?;
                out.get_ref().sync_all().await?;
                let path = commit(&temp, &config.dir, &meta.name).await?;
                cleanup.temp = None;
                cleanup.saved.push(path.clone());
                upload.files.push(SavedFile {
                    field: meta.field,
                    original_name: meta.original_name,
                    path,
                    size,
                    content_type: meta.content_type,
                });
            }
            Current::Memory { data, meta, .. } => upload.in_memory.push(MemoryFile {
                field: meta.field,
                original_name: meta.original_name,
                file_name: meta.name,
                content_type: meta.content_type,
                data: data.into(),
            }),
            Current::Field { name, value } => {
                let value = match String::from_utf8(value) {
                    Ok(s) => s,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                };
                upload.fields.push((name, value));
            }
            Current::Skip | Current::None => {}
        },
        // `Event` is non-exhaustive; End is seen through `Parser::is_done`.
        _ => {}
    }
    Ok(())
}

async fn start_part<F>(
    h: PartHeaders,
    config: &UploadConfig,
    hook: &mut F,
    cleanup: &mut Cleanup,
    left: Option<u64>,
) -> Result<Current, Error>
where
    F: FnMut(&FileInfo) -> FileDecision,
{
    if !h.form_data {
        return Err(Error::Http {
            status: 400,
            reason: "part without Content-Disposition: form-data".into(),
        });
    }
    let field = h.name.ok_or_else(|| Error::Http {
        status: 400,
        reason: "form-data part without a name".into(),
    })?;
    let Some(original_name) = h.filename else {
        return Ok(Current::Field {
            name: field,
            value: Vec::new(),
        });
    };
    if original_name.is_empty() {
        return Ok(Current::Skip);
    }
    let info = FileInfo {
        file_name: sanitize_file_name(&original_name).unwrap_or_else(|| FALLBACK_NAME.into()),
        field,
        original_name,
        content_type: h.content_type,
        size_hint: h
            .headers
            .get("content-length")
            .and_then(|v| v.trim().parse().ok())
            .or(left),
    };
    let threshold = config.memory_threshold;
    let (name, spill_at) = match hook(&info) {
        FileDecision::Save => (info.file_name, Some(threshold)),
        FileDecision::SaveAs(n) => (
            sanitize_file_name(&n).unwrap_or_else(|| FALLBACK_NAME.into()),
            Some(threshold),
        ),
        FileDecision::Memory => (info.file_name, None),
        FileDecision::Disk => (info.file_name, Some(0)),
        FileDecision::Skip => return Ok(Current::Skip),
        FileDecision::Reject(status) => return Err(Error::UploadRefused { status }),
    };
    let meta = FileMeta {
        name,
        field: info.field,
        original_name: info.original_name,
        content_type: info.content_type,
    };
    if spill_at != Some(0) {
        return Ok(Current::Memory {
            data: Vec::new(),
            spill_at,
            meta,
        });
    }
    let (file, temp) = open_temp(config, cleanup).await?;
    Ok(Current::File {
        out: Box::new(tokio::io::BufWriter::with_capacity(64 << 10, file)),
        temp,
        meta,
        size: 0,
    })
}

/// Creates a temporary file for a part in [`UploadConfig::dir`] (the directory too, the
/// first time), exclusively, and records it for removal on failure.
async fn open_temp(
    config: &UploadConfig,
    cleanup: &mut Cleanup,
) -> Result<(tokio::fs::File, PathBuf), Error> {
    if !cleanup.dir_ready {
        tokio::fs::create_dir_all(&config.dir).await?;
        cleanup.dir_ready = true;
    }
    let (file, temp) = loop {
        let temp = config.dir.join(temp_name()?);
        match tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
        {
            Ok(f) => break (f, temp),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
    };
    cleanup.temp = Some(temp.clone());
    Ok((file, temp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_file_names() {
        let s = sanitize_file_name;
        assert_eq!(s("../../etc/passwd").as_deref(), Some("passwd"));
        assert_eq!(s("..\\..\\boot.ini").as_deref(), Some("boot.ini"));
        assert_eq!(s("C:\\x").as_deref(), Some("x"));
        assert_eq!(s("C:x").as_deref(), Some("C_x"));
        assert_eq!(s(".htaccess").as_deref(), Some("htaccess"));
        assert_eq!(s("...").as_deref(), None);
        assert_eq!(s("..").as_deref(), None);
        assert_eq!(s("/").as_deref(), None);
        assert_eq!(s("a\0b.txt").as_deref(), Some("ab.txt"));
        assert_eq!(s("a\r\nb\x7f.txt").as_deref(), Some("ab.txt"));
        assert_eq!(s("evil\u{202e}txt.exe").as_deref(), Some("eviltxt.exe"));
        assert_eq!(s("name. . ").as_deref(), Some("name"));
        assert_eq!(s("CON.txt").as_deref(), Some("_CON.txt"));
        assert_eq!(s("lpt1").as_deref(), Some("_lpt1"));
        assert_eq!(s("console.txt").as_deref(), Some("console.txt"));
        assert_eq!(s("a<b>|?*\".txt").as_deref(), Some("a_b_____.txt"));
        let long = format!("{}.tar.gz", "é".repeat(300));
        let cut = s(&long).unwrap();
        assert!(cut.len() <= MAX_FILE_NAME, "{}", cut.len());
        assert!(cut.ends_with(".gz"));
        assert!(cut.starts_with('é'));
        assert_eq!(with_suffix("a.tar.gz", 2), "a-2.tar.gz");
        assert_eq!(with_suffix("noext", 1), "noext-1");
    }

    #[test]
    fn errors_map_to_statuses() {
        let up = |m: ws_http::MultipartError| Error::Upload(m.into());
        assert_eq!(up(ws_http::MultipartError::NotMultipart).status(), 415);
        assert_eq!(up(ws_http::MultipartError::Truncated).status(), 400);
        assert_eq!(
            up(ws_http::MultipartError::FileTooLarge { max: 1 }).status(),
            413
        );
        assert_eq!(Error::UploadRefused { status: 403 }.status(), 403);
        let r = Error::Io(io::Error::other("/secret/path")).response();
        assert_eq!(r.status, 500);
        assert!(!String::from_utf8_lossy(&r.body).contains("secret"));
        let r = up(ws_http::MultipartError::TooManyParts { max: 3 }).response();
        assert_eq!(r.status, 413);
        assert!(String::from_utf8_lossy(&r.body).contains("more than 3 parts"));
    }

    #[test]
    fn upload_config_limits_reach_the_parser() {
        let mut c = UploadConfig::new("x");
        c.max_field_bytes = 3;
        c.max_parts = 1;
        let mut p = Parser::new("B", &c.limits()).unwrap();
        p.feed(b"--B\r\nContent-Disposition: form-data; name=a\r\n\r\n1234\r\n--B--");
        assert!(matches!(p.poll(), Ok(Some(Event::Part(_)))));
        assert!(matches!(
            p.poll(),
            Err(ws_http::Error::Multipart(
                ws_http::MultipartError::FieldTooLarge { max: 3 }
            ))
        ));
    }
}
