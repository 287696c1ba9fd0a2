//! The tokio glue both ends share: a per-connection [`Peer`] that routes incoming protocol
//! messages to receivers (written to the [`Store`] chunk by chunk) and to sending tasks, the
//! sending task itself (streams the file from disk), and the events.

use std::{
    collections::HashMap,
    future::Future,
    io::{Read as _, Seek as _, SeekFrom},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::{
    config::Config,
    error::{Code, Error},
    meta::Meta,
    receiver::{DataAction, Receiver, ReceiverAction, refusal},
    sender::{OfferInfo, Sender, SenderEvent},
    store::Store,
    wire::{self, FileId, Msg, QoS},
};

/// Which of the seeds' nine events (`OnFileBeforeSent` ... `OnFileReceivedError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The offer is about to go out (`OnFileBeforeSent`).
    BeforeSent,
    /// A chunk was put on the wire (`OnFileSentFragment`).
    SentFragment,
    /// The receiver acknowledged a chunk, QoS 1 (`OnFileSentAcknowledgment`).
    SentAcknowledgment,
    /// The receiver confirmed the whole file (`OnFileSent`).
    Sent,
    /// Sending failed (`OnFileSentError`), a refusal included.
    SentError,
    /// An offer arrived and was accepted by the authorization hook
    /// (`OnFileReceivedAuthorization`; the decision itself is [`Hooks::authorize`]).
    ReceivedAuthorization,
    /// A chunk was written (`OnFileReceivedFragment`).
    ReceivedFragment,
    /// The file is complete, checked and in place (`OnFileReceived`).
    Received,
    /// Receiving failed (`OnFileReceivedError`).
    ReceivedError,
}

/// One event with the file's progress (the seeds' `TsgcWSMessageFile`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FileEvent {
    /// What happened.
    pub kind: EventKind,
    /// The connection (server side: its id; client side: 0).
    pub conn: u64,
    /// The file id.
    pub file_id: FileId,
    /// Name, size, QoS, channel, user data.
    pub info: OfferInfo,
    /// Bytes sent or stored so far (`FilePosition`).
    pub position: u64,
    /// Packet id, for fragment and acknowledgement events.
    pub packet: u64,
    /// Where the received file was stored ([`EventKind::Received`]).
    pub path: Option<PathBuf>,
    /// The SHA-256 ([`EventKind::Sent`], [`EventKind::Received`]).
    pub sha256: Option<[u8; 32]>,
    /// The error text of the error events.
    pub error: Option<String>,
    /// The error code of the error events.
    pub code: Option<Code>,
}

/// The application's say: authorization of incoming files and the events.
pub trait Hooks: Send + Sync + 'static {
    /// May this file be received (`OnFileReceivedAuthorization`)? `Err((code, reason))`
    /// refuses it; the sender gets the reason. Default: accept.
    fn authorize(&self, conn: u64, info: &OfferInfo) -> Result<(), (Code, String)> {
        let _ = (conn, info);
        Ok(())
    }

    /// An event (called inline: keep it short). Default: nothing.
    fn on_event(&self, event: &FileEvent) {
        let _ = event;
    }
}

/// Hooks that accept everything and ignore events.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// Hooks that forward every event to a channel (fragment events included: use a bounded
/// channel's receiver promptly, or events are dropped when it is full).
#[derive(Debug, Clone)]
pub struct ChannelHooks {
    tx: mpsc::Sender<FileEvent>,
}

impl ChannelHooks {
    /// Hooks and the receiving end of their events; `capacity` events wait at most.
    #[must_use]
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<FileEvent>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx }, rx)
    }
}

impl Hooks for ChannelHooks {
    fn on_event(&self, event: &FileEvent) {
        let _ = self.tx.try_send(event.clone());
    }
}

/// Options of one outgoing file.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SendOptions {
    /// Delivery guarantee. Default QoS 0.
    pub qos: QoS,
    /// Chunk size; `None` uses [`Config::chunk`].
    pub chunk: Option<u32>,
    /// Channel (informative for the receiver; the server's broadcast selects by it).
    pub channel: String,
    /// User data.
    pub data: String,
    /// The file id; `None` derives one from the file's path, size and modification time, so
    /// that sending the same unchanged file again resumes it.
    pub file_id: Option<FileId>,
    /// The name the receiver stores it under; `None` uses the path's file name.
    pub name: Option<String>,
}

impl SendOptions {
    /// Options at `qos`, everything else default.
    #[must_use]
    pub fn qos(qos: QoS) -> Self {
        Self {
            qos,
            ..Self::default()
        }
    }
}

/// How a finished outgoing file went.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SendReport {
    /// The file id (reuse it to resume after an error).
    pub file_id: FileId,
    /// Bytes in the file.
    pub size: u64,
    /// Where sending started (non-zero after a resume).
    pub resumed_at: u64,
    /// The SHA-256 both sides agree on.
    pub sha256: [u8; 32],
}

/// Seconds since the Unix epoch (the glue's clock read, for metadata only).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The default file id: SHA-256 of the canonical path, size and modification time.
pub(crate) fn derive_id(path: &Path, meta: &std::fs::Metadata) -> FileId {
    let mut h = Sha256::new();
    let canon = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    h.update(canon.to_string_lossy().as_bytes());
    h.update(meta.len().to_be_bytes());
    if let Ok(m) = meta.modified()
        && let Ok(d) = m.duration_since(UNIX_EPOCH)
    {
        h.update(d.as_nanos().to_be_bytes());
    }
    let d = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&d[..16]);
    FileId(id)
}

struct InTransfer {
    receiver: Receiver,
    /// The thread that writes and hashes this file.
    writer: Writer,
}

/// What the connection's task hands to a transfer's writing thread.
enum Job {
    /// Append these bytes to the partial file and hash them.
    Write(Bytes),
    /// Sync the file and report the SHA-256 of all of it.
    Finish,
}

/// The writing side of an incoming transfer: a blocking task (tokio's blocking pool) that owns
/// the partial file, hashes the stored prefix on a resume, then appends and hashes every chunk
/// it gets through a bounded channel. The connection's task only routes: receiving, writing
/// and hashing overlap, and a slow disk slows the sender through the channel and TCP.
struct Writer {
    tx: Option<mpsc::Sender<Job>>,
    done: Option<tokio::sync::oneshot::Receiver<std::io::Result<Option<[u8; 32]>>>>,
}

/// Chunks queued for a transfer's reading or writing thread (bounded: memory stays flat).
const PIPELINE_DEPTH: usize = 8;

impl Writer {
    /// Starts the thread over `file` (opened for reading and writing, at `path`) whose first
    /// `prefix` bytes of `size` are stored already. Direct I/O (when `direct_io`) only pays
    /// for a few blocks or more: a smaller rest goes through the page cache (no second thread,
    /// no buffers).
    fn start(file: std::fs::File, path: PathBuf, prefix: u64, size: u64, direct_io: bool) -> Self {
        let direct = direct_io && size.saturating_sub(prefix) >= 4 * DIRECT_BLOCK as u64;
        let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        tokio::task::spawn_blocking(move || {
            let path = direct.then_some(path.as_path());
            let _ = done_tx.send(write_loop(file, path, prefix, rx));
        });
        Self {
            tx: Some(tx),
            done: Some(done),
        }
    }

    /// The thread's outcome; it has ended when this returns.
    async fn outcome(&mut self) -> std::io::Result<Option<[u8; 32]>> {
        self.tx = None;
        match self.done.take() {
            Some(d) => d
                .await
                .unwrap_or_else(|_| Err(std::io::Error::other("the writing thread ended early"))),
            None => Ok(None),
        }
    }

    /// Queues bytes to append. An error is the thread's (a full disk).
    async fn write(&mut self, bytes: Bytes) -> Result<(), Error> {
        let sent = match &self.tx {
            Some(tx) => tx.send(Job::Write(bytes)).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        let e = match self.outcome().await {
            Err(e) => e.to_string(),
            Ok(_) => "the writing thread ended early".into(),
        };
        Err(Error::proto(
            Code::Storage,
            format!("writing the file: {e}"),
        ))
    }

    /// Syncs the file and returns the SHA-256 of all of it.
    async fn finish(&mut self) -> Result<[u8; 32], Error> {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Job::Finish).await;
        }
        match self.outcome().await {
            Ok(Some(d)) => Ok(d),
            Ok(None) => Err(Error::proto(
                Code::Storage,
                "writing the file: the writing thread ended early",
            )),
            Err(e) => Err(Error::proto(
                Code::Storage,
                format!("writing the file: {e}"),
            )),
        }
    }
}

/// The body of a [`Writer`]'s thread: `Ok(None)` when the transfer ended without `Finish`.
/// `path` (the file's) lets it reopen the file for direct I/O (see [`Appender`]).
fn write_loop(
    mut file: std::fs::File,
    path: Option<&Path>,
    prefix: u64,
    mut rx: mpsc::Receiver<Job>,
) -> std::io::Result<Option<[u8; 32]>> {
    let mut h = Sha256::new();
    if prefix > 0 {
        file.seek(SeekFrom::Start(0))?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut done = 0u64;
        while done < prefix {
            let want = buf
                .len()
                .min(usize::try_from(prefix - done).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the partial file shrank",
                ));
            }
            h.update(&buf[..n]);
            done += n as u64;
        }
    }
    let file = &file;
    // Through the page cache, every WRITEBACK_STEP bytes a second thread asks the kernel to
    // put what is written so far on the disk (`sync_data` on the same open file), while this
    // one goes on writing: the disk works during the transfer instead of all of it in the final
    // `sync_all`, which then has only the tail left. Its error (the kernel reports a writeback
    // error once per open file) is the transfer's.
    std::thread::scope(|scope| {
        let mut syncer: Option<(
            std::sync::mpsc::SyncSender<()>,
            std::thread::ScopedJoinHandle<'_, std::io::Result<()>>,
        )> = None;
        let mut out = Appender::new(scope, file, path, prefix);
        let mut unsynced = 0u64;
        let mut outcome = Ok(None);
        while let Some(job) = rx.blocking_recv() {
            match job {
                Job::Write(b) => {
                    if let Err(e) = out.append(&b) {
                        outcome = Err(e);
                        break;
                    }
                    h.update(&b);
                    unsynced += b.len() as u64;
                    if unsynced >= WRITEBACK_STEP && !out.is_direct() {
                        unsynced = 0;
                        if syncer.is_none() {
                            syncer = start_syncer(scope, file);
                        }
                        if let Some((tx, _)) = &syncer {
                            // Full: a sync is running and one is queued; it covers these bytes.
                            let _ = tx.try_send(());
                        }
                    }
                }
                Job::Finish => {
                    outcome = out
                        .flush()
                        .and_then(|()| file.sync_all())
                        .map(|()| Some(h.finalize().into()));
                    break;
                }
            }
        }
        if let Ok(None) = outcome {
            // Ended early: what was queued is stored all the same (a resume starts there).
            outcome = out.flush().map(|()| None);
        }
        if let Some((tx, handle)) = syncer {
            drop(tx);
            let synced = handle
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the syncing thread panicked")));
            if let (Err(e), Ok(_)) = (synced, &outcome) {
                outcome = Err(e);
            }
        }
        outcome
    })
}

/// `O_DIRECT`, where the platform has it (std has no constant for it).
#[cfg(target_os = "linux")]
const O_DIRECT: Option<i32> = Some(libc::O_DIRECT);
#[cfg(not(target_os = "linux"))]
const O_DIRECT: Option<i32> = None;

/// Alignment of direct writes: their memory, file offset and length.
const DIRECT_ALIGN: usize = 4096;
/// Bytes collected before one direct write.
pub(crate) const DIRECT_BLOCK: usize = 1 << 20;
/// Blocks of a transfer in memory: one filling, the others being written.
const DIRECT_BUFFERS: usize = 2;

/// A direct block's aligned bytes inside its buffer.
fn aligned(buf: &[u8]) -> std::ops::Range<usize> {
    let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
    start..start + DIRECT_BLOCK
}

/// Appends a transfer's bytes to its partial file. Where the platform has direct I/O and the
/// file system takes it, whole aligned blocks of [`DIRECT_BLOCK`] bytes go to the disk without
/// the page cache, written by a second thread while this one fills the next block (an
/// unaligned head of a resume and the last partial block go through the page cache): copying
/// every received byte into fresh page-cache pages was most of the receiving server's CPU, and
/// all of the data still had to reach the disk in the final sync. Otherwise (and after the
/// first refused direct write) every byte goes through the page cache.
pub(crate) struct Appender<'f> {
    file: &'f std::fs::File,
    /// File offset of the filling block's first byte (the end of what is queued).
    pos: u64,
    /// The filling block and its length.
    cur: Vec<u8>,
    len: usize,
    disk: Option<Disk>,
}

/// The direct-writing thread's ends: full blocks to it, emptied buffers (or its error) back.
struct Disk {
    to: std::sync::mpsc::SyncSender<(Vec<u8>, u64)>,
    back: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    free: Vec<Vec<u8>>,
    out: usize,
}

impl<'f> Appender<'f> {
    pub(crate) fn new<'s>(
        scope: &'s std::thread::Scope<'s, '_>,
        file: &'f std::fs::File,
        path: Option<&Path>,
        pos: u64,
    ) -> Self
    where
        'f: 's,
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut me = Self {
            file,
            pos,
            cur: Vec::new(),
            len: 0,
            disk: None,
        };
        let direct = match (path, O_DIRECT) {
            (Some(p), Some(flag)) => std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(flag)
                .open(p)
                .ok(),
            _ => None,
        };
        let Some(direct) = direct else {
            return me;
        };
        let (to, rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, u64)>(DIRECT_BUFFERS);
        let (tx, back) = std::sync::mpsc::sync_channel(DIRECT_BUFFERS);
        let started = std::thread::Builder::new()
            .name("files-disk".into())
            .spawn_scoped(scope, move || disk_loop(file, direct, &rx, &tx));
        if started.is_ok() {
            let new_buf = || vec![0u8; DIRECT_BLOCK + DIRECT_ALIGN];
            me.cur = new_buf();
            me.disk = Some(Disk {
                to,
                back,
                free: (1..DIRECT_BUFFERS).map(|_| new_buf()).collect(),
                out: 0,
            });
        }
        me
    }

    fn is_direct(&self) -> bool {
        self.disk.is_some()
    }

    pub(crate) fn append(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let Some(disk) = &mut self.disk else {
            self.file.write_all_at(bytes, self.pos)?;
            self.pos += bytes.len() as u64;
            return Ok(());
        };
        if self.len == 0 {
            // An unaligned start (a resume): up to the next aligned offset through the cache.
            let misaligned = (self.pos % DIRECT_ALIGN as u64) as usize;
            if misaligned != 0 {
                let head = (DIRECT_ALIGN - misaligned).min(bytes.len());
                self.file.write_all_at(&bytes[..head], self.pos)?;
                self.pos += head as u64;
                bytes = &bytes[head..];
            }
        }
        while !bytes.is_empty() {
            let take = (DIRECT_BLOCK - self.len).min(bytes.len());
            let at = aligned(&self.cur).start + self.len;
            self.cur[at..at + take].copy_from_slice(&bytes[..take]);
            self.len += take;
            bytes = &bytes[take..];
            if self.len == DIRECT_BLOCK {
                let next = match disk.free.pop() {
                    Some(b) => b,
                    None => {
                        disk.out -= 1;
                        disk.back
                            .recv()
                            .map_err(|_| std::io::Error::other("the disk thread ended early"))??
                    }
                };
                let full = std::mem::replace(&mut self.cur, next);
                disk.to
                    .send((full, self.pos))
                    .map_err(|_| std::io::Error::other("the disk thread ended early"))?;
                disk.out += 1;
                self.pos += DIRECT_BLOCK as u64;
                self.len = 0;
            }
        }
        Ok(())
    }

    /// Waits for the blocks being written, then writes the partial one through the cache.
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt as _;
        let mut first_error = None;
        if let Some(disk) = &mut self.disk {
            while disk.out > 0 {
                disk.out -= 1;
                match disk.back.recv() {
                    Ok(Ok(b)) => disk.free.push(b),
                    Ok(Err(e)) => {
                        first_error.get_or_insert(e);
                    }
                    Err(_) => {
                        first_error
                            .get_or_insert(std::io::Error::other("the disk thread ended early"));
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if self.len > 0 {
            let r = aligned(&self.cur);
            self.file
                .write_all_at(&self.cur[r.start..r.start + self.len], self.pos)?;
            self.pos += self.len as u64;
            self.len = 0;
        }
        Ok(())
    }
}

/// The direct-writing thread: writes each block at its offset, through the cache once a direct
/// write was refused, and hands the buffer (or the error) back.
fn disk_loop(
    file: &std::fs::File,
    direct: std::fs::File,
    rx: &std::sync::mpsc::Receiver<(Vec<u8>, u64)>,
    tx: &std::sync::mpsc::SyncSender<std::io::Result<Vec<u8>>>,
) {
    use std::os::unix::fs::FileExt as _;
    let mut direct = Some(direct);
    while let Ok((buf, pos)) = rx.recv() {
        let data = &buf[aligned(&buf)];
        let written = match &direct {
            Some(d) => match d.write_all_at(data, pos) {
                Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    direct = None;
                    file.write_all_at(data, pos)
                }
                r => r,
            },
            None => file.write_all_at(data, pos),
        };
        if tx.send(written.map(|()| buf)).is_err() {
            return;
        }
    }
}

/// Bytes a receiving transfer writes through the page cache between two early `sync_data`
/// calls.
const WRITEBACK_STEP: u64 = 32 << 20;

/// A thread that calls `sync_data` on (a handle to the same open file as) `file` each time it is
/// told to; `None` when it could not be started (the final `sync_all` then does all the work).
fn start_syncer<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    file: &std::fs::File,
) -> Option<(
    std::sync::mpsc::SyncSender<()>,
    std::thread::ScopedJoinHandle<'scope, std::io::Result<()>>,
)> {
    let file = file.try_clone().ok()?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
    let handle = std::thread::Builder::new()
        .name("files-sync".into())
        .spawn_scoped(scope, move || {
            while rx.recv().is_ok() {
                file.sync_data()?;
            }
            Ok(())
        })
        .ok()?;
    Some((tx, handle))
}

/// The shared state of one end: configuration, store, hooks.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) store: Option<Store>,
    pub(crate) hooks: Arc<dyn Hooks>,
    /// Incoming transfers per file id across all connections of this end: a partial file is
    /// removed only when no other connection is receiving it (a sender that reconnected before
    /// its old, half-open connection ended).
    pub(crate) active: Mutex<HashMap<FileId, usize>>,
}

impl Shared {
    pub(crate) fn new(config: Config, store: Option<Store>, hooks: Arc<dyn Hooks>) -> Self {
        Self {
            config,
            store,
            hooks,
            active: Mutex::new(HashMap::new()),
        }
    }

    fn enter(&self, id: FileId) {
        if let Ok(mut m) = self.active.lock() {
            *m.entry(id).or_insert(0) += 1;
        }
    }

    /// Leaves; true when no other connection receives `id`.
    fn leave(&self, id: FileId) -> bool {
        let Ok(mut m) = self.active.lock() else {
            return true;
        };
        match m.get_mut(&id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                m.remove(&id);
                true
            }
        }
    }
}

/// One connection's transfers.
pub(crate) struct Peer {
    pub(crate) conn: u64,
    shared: Arc<Shared>,
    incoming: tokio::sync::Mutex<HashMap<FileId, InTransfer>>,
    outgoing: Mutex<HashMap<FileId, mpsc::UnboundedSender<Vec<u8>>>>,
}

fn event(kind: EventKind, conn: u64, id: FileId, info: &OfferInfo, position: u64) -> FileEvent {
    FileEvent {
        kind,
        conn,
        file_id: id,
        info: info.clone(),
        position,
        packet: 0,
        path: None,
        sha256: None,
        error: None,
        code: None,
    }
}

fn error_event(
    kind: EventKind,
    conn: u64,
    id: FileId,
    info: &OfferInfo,
    position: u64,
    e: &Error,
) -> FileEvent {
    let mut ev = event(kind, conn, id, info, position);
    ev.error = Some(e.to_string());
    ev.code = Some(e.code());
    ev
}

impl Peer {
    pub(crate) fn new(conn: u64, shared: Arc<Shared>) -> Self {
        Self {
            conn,
            shared,
            incoming: tokio::sync::Mutex::new(HashMap::new()),
            outgoing: Mutex::new(HashMap::new()),
        }
    }

    fn hooks(&self) -> &dyn Hooks {
        &*self.shared.hooks
    }

    /// One binary message from the peer. Replies to send come back (the caller sends them in
    /// order on the same connection).
    pub(crate) async fn on_message(&self, bytes: &Bytes) -> Vec<Vec<u8>> {
        let now = Instant::now();
        let frame = match wire::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!("files: dropped a malformed message: {e}");
                if bytes.len() >= wire::HEADER_LEN {
                    let mut id = [0u8; 16];
                    id.copy_from_slice(&bytes[2..18]);
                    let msg = e.detail();
                    return vec![wire::to_vec(
                        FileId(id),
                        &Msg::Error {
                            code: e.code().as_u16(),
                            message: &msg,
                        },
                    )];
                }
                return Vec::new();
            }
        };
        // A sending task of ours?
        if !matches!(frame.msg, Msg::Offer(_) | Msg::Data { .. }) {
            let tx = self
                .outgoing
                .lock()
                .ok()
                .and_then(|m| m.get(&frame.id).cloned());
            if let Some(tx) = tx {
                let _ = tx.send(bytes.to_vec());
                return Vec::new();
            }
        }
        let mut incoming = self.incoming.lock().await;
        if let Msg::Offer(offer) = frame.msg {
            return self.on_offer(&mut incoming, now, frame.id, &offer).await;
        }
        let Some(t) = incoming.get_mut(&frame.id) else {
            if matches!(
                frame.msg,
                Msg::Error { .. } | Msg::Cancel { .. } | Msg::Complete { .. }
            ) {
                return Vec::new();
            }
            return vec![wire::to_vec(
                frame.id,
                &Msg::Error {
                    code: Code::UnknownFile.as_u16(),
                    message: "unknown file id",
                },
            )];
        };
        let result = self.on_transfer_message(t, now, &frame.msg, bytes).await;
        let mut out = Vec::new();
        while let Some(m) = t.receiver.poll_transmit() {
            out.push(m);
        }
        if let Err(e) = result {
            self.end_incoming(
                &mut incoming,
                frame.id,
                &e,
                matches!(e.code(), Code::Checksum | Code::Cancelled),
            )
            .await;
        } else if t.receiver.is_finished() {
            incoming.remove(&frame.id);
            self.shared.leave(frame.id);
        }
        out
    }

    async fn on_offer(
        &self,
        incoming: &mut HashMap<FileId, InTransfer>,
        now: Instant,
        id: FileId,
        offer: &wire::Offer<'_>,
    ) -> Vec<Vec<u8>> {
        let config = &self.shared.config;
        let Some(store) = self.shared.store.as_ref() else {
            return vec![refusal(
                id,
                Code::Refused,
                "this end does not receive files",
            )];
        };
        if incoming.contains_key(&id) {
            return vec![refusal(
                id,
                Code::Violation,
                "this file id is already being received",
            )];
        }
        if incoming.len() >= config.max_transfers {
            return vec![refusal(
                id,
                Code::Busy,
                "too many transfers on this connection",
            )];
        }
        let existing = match store.lookup(id) {
            Ok(e) => e,
            Err(e) => return vec![refusal(id, Code::Storage, &e.to_string())],
        };
        let mut receiver =
            match Receiver::new(config, id, offer, existing.as_ref().map(|(_, p)| p), now) {
                Ok(r) => r,
                Err(e) => {
                    let info = OfferInfo {
                        size: offer.size,
                        name: offer.name.to_string(),
                        channel: offer.channel.to_string(),
                        data: offer.data.to_string(),
                        qos: offer.qos,
                    };
                    self.hooks().on_event(&error_event(
                        EventKind::ReceivedError,
                        self.conn,
                        id,
                        &info,
                        0,
                        &e,
                    ));
                    return vec![refusal(id, e.code(), &e.detail())];
                }
            };
        let info = receiver.info().clone();
        if let Err((code, reason)) = self.hooks().authorize(self.conn, &info) {
            let e = Error::proto(code, reason.clone());
            self.hooks().on_event(&error_event(
                EventKind::ReceivedError,
                self.conn,
                id,
                &info,
                0,
                &e,
            ));
            receiver.refuse(code, &reason);
            return receiver.poll_transmit().into_iter().collect();
        }
        let opened = (|| {
            if existing.is_none() {
                store.create(
                    id,
                    &Meta {
                        info: info.clone(),
                        chunk: offer.chunk,
                        created: unix_now(),
                        expires: None,
                        tus_metadata: None,
                        done: false,
                    },
                )?;
            }
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(store.part_path(id))?;
            Ok::<_, Error>(file)
        })();
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                receiver.refuse(Code::Storage, &e.detail());
                return receiver.poll_transmit().into_iter().collect();
            }
        };
        // The writing thread hashes what is already stored while the sender (told `resume`
        // at once) hashes its own copy of the prefix.
        receiver.hash_externally();
        let writer = Writer::start(
            file,
            store.part_path(id),
            receiver.stored(),
            info.size,
            self.shared.config.direct_io,
        );
        receiver.accept(now);
        self.hooks().on_event(&event(
            EventKind::ReceivedAuthorization,
            self.conn,
            id,
            &info,
            receiver.stored(),
        ));
        let mut out = Vec::new();
        while let Some(m) = receiver.poll_transmit() {
            out.push(m);
        }
        self.shared.enter(id);
        incoming.insert(id, InTransfer { receiver, writer });
        out
    }

    async fn on_transfer_message(
        &self,
        t: &mut InTransfer,
        now: Instant,
        msg: &Msg<'_>,
        raw: &Bytes,
    ) -> Result<(), Error> {
        let id = t.receiver.id();
        let action = match t.receiver.handle(now, msg)? {
            ReceiverAction::Check { .. } => {
                let digest = match t.writer.finish().await {
                    Ok(d) => d,
                    Err(e) => {
                        t.receiver.fail(&e);
                        return Err(e);
                    }
                };
                t.receiver.check(digest)?
            }
            a => a,
        };
        match action {
            ReceiverAction::Data(DataAction::Write { offset, skip }) => {
                let Msg::Data { chunk, packet, .. } = *msg else {
                    return Ok(());
                };
                let bytes = raw.slice_ref(&chunk[skip..]);
                let len = bytes.len();
                // Queued to the writing thread, which appends in order; a write error comes
                // back at the next chunk or at `complete`, and a resume's offset is what
                // reached the disk.
                if let Err(e) = t.writer.write(bytes).await {
                    t.receiver.fail(&e);
                    return Err(e);
                }
                t.receiver
                    .written(now, packet, offset, &chunk[skip..skip + len])?;
                let mut ev = event(
                    EventKind::ReceivedFragment,
                    self.conn,
                    id,
                    t.receiver.info(),
                    t.receiver.stored(),
                );
                ev.packet = packet;
                self.hooks().on_event(&ev);
            }
            ReceiverAction::Verified { sha256 } => {
                let store = self.shared.store.as_ref().ok_or(Error::Closed)?;
                match store.finish(id, &t.receiver.info().name, self.shared.config.overwrite) {
                    Ok(path) => {
                        t.receiver.finish(sha256);
                        let mut ev = event(
                            EventKind::Received,
                            self.conn,
                            id,
                            t.receiver.info(),
                            t.receiver.stored(),
                        );
                        ev.path = Some(path);
                        ev.sha256 = Some(sha256);
                        self.hooks().on_event(&ev);
                    }
                    Err(e) => {
                        let e = Error::proto(Code::Storage, format!("storing the file: {e}"));
                        t.receiver.fail(&e);
                        return Err(e);
                    }
                }
            }
            ReceiverAction::Ended { code, cancelled } => {
                let e = Error::Remote {
                    code,
                    message: "the sender ended the transfer".into(),
                };
                let _ = cancelled;
                return Err(e);
            }
            ReceiverAction::Check { .. }
            | ReceiverAction::Data(DataAction::Drop)
            | ReceiverAction::None => {}
        }
        Ok(())
    }

    /// An incoming transfer ended with an error: event, and the partial file kept or removed.
    async fn end_incoming(
        &self,
        incoming: &mut HashMap<FileId, InTransfer>,
        id: FileId,
        e: &Error,
        always_remove: bool,
    ) {
        let Some(mut t) = incoming.remove(&id) else {
            return;
        };
        // The writing thread finishes what it has queued before anyone may reopen the file.
        let _ = t.writer.outcome().await;
        let last = self.shared.leave(id);
        self.hooks().on_event(&error_event(
            EventKind::ReceivedError,
            self.conn,
            id,
            t.receiver.info(),
            t.receiver.stored(),
            e,
        ));
        let cancelled = matches!(
            e,
            Error::Remote {
                code: Code::Cancelled,
                ..
            }
        );
        if last && (always_remove || cancelled || !self.shared.config.keep_partial_on_error) {
            if let Some(store) = &self.shared.store {
                store.remove(id);
            }
        }
    }

    /// Timers of the incoming transfers: QoS 2 re-requests and timeouts. Returns messages to
    /// send.
    pub(crate) async fn tick(&self) -> Vec<Vec<u8>> {
        let now = Instant::now();
        let mut incoming = self.incoming.lock().await;
        let mut out = Vec::new();
        let mut failed = Vec::new();
        for (id, t) in incoming.iter_mut() {
            if t.receiver.poll_timeout().is_some_and(|at| at <= now)
                && let Err(e) = t.receiver.handle_timeout(now)
            {
                failed.push((*id, e));
            }
            while let Some(m) = t.receiver.poll_transmit() {
                out.push(m);
            }
        }
        for (id, e) in failed {
            self.end_incoming(&mut incoming, id, &e, false).await;
        }
        out
    }

    /// The connection ended: incoming transfers end (partial files kept or removed as
    /// configured), sending tasks learn it from their closed channel.
    pub(crate) async fn closed(&self) {
        let mut incoming = self.incoming.lock().await;
        let ids: Vec<FileId> = incoming.keys().copied().collect();
        for id in ids {
            let remove = !self.shared.config.keep_partial_on_disconnect;
            self.end_incoming(&mut incoming, id, &Error::Closed, remove)
                .await;
        }
        if let Ok(mut m) = self.outgoing.lock() {
            m.clear();
        }
    }

    fn register(&self, id: FileId) -> Result<mpsc::UnboundedReceiver<Vec<u8>>, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut m = self
            .outgoing
            .lock()
            .map_err(|_| Error::Config("poisoned".into()))?;
        if m.contains_key(&id) {
            return Err(Error::proto(
                Code::Violation,
                "this file id is already being sent",
            ));
        }
        m.insert(id, tx);
        Ok(rx)
    }

    fn unregister(&self, id: FileId) {
        if let Ok(mut m) = self.outgoing.lock() {
            m.remove(&id);
        }
    }
}

/// Where a sending task puts its messages.
pub(crate) trait Link: Send + Sync {
    fn send(&self, msg: Vec<u8>) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Sends `path` to the peer over `link`, streaming it from disk; returns when the receiver
/// confirmed it or the transfer failed.
pub(crate) async fn send_file(
    peer: &Peer,
    link: &impl Link,
    path: &Path,
    opts: &SendOptions,
) -> Result<SendReport, Error> {
    let config = &peer.shared.config;
    let mut file = std::fs::File::open(path)?;
    let fmeta = file.metadata()?;
    if !fmeta.is_file() {
        return Err(Error::Config(format!("{} is not a file", path.display())));
    }
    let size = fmeta.len();
    let name = match &opts.name {
        Some(n) => n.clone(),
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Config("the path has no file name".into()))?
            .to_string(),
    };
    let id = opts.file_id.unwrap_or_else(|| derive_id(path, &fmeta));
    let mut cfg = config.clone();
    if let Some(c) = opts.chunk {
        cfg.chunk = c;
    }
    let info = OfferInfo {
        size,
        name,
        channel: opts.channel.clone(),
        data: opts.data.clone(),
        qos: opts.qos,
    };
    let mut sender = Sender::new(&cfg, id, info.clone(), Instant::now())?;
    let mut rx = peer.register(id)?;
    sender.hash_externally();
    let chunk = cfg.chunk as usize;
    let result = drive_sender(
        peer,
        link,
        path,
        chunk,
        &mut file,
        &mut sender,
        &mut rx,
        &info,
    )
    .await;
    peer.unregister(id);
    match result {
        Ok(r) => Ok(r),
        Err(e) => {
            // Tell the receiver when it is still there.
            if !matches!(e, Error::Remote { .. } | Error::Closed) {
                sender.fail(Error::proto(e.code(), e.detail()));
                while let Some(m) = sender.poll_transmit() {
                    let _ = link.send(m).await;
                }
            }
            peer.hooks().on_event(&error_event(
                EventKind::SentError,
                peer.conn,
                id,
                &info,
                sender.position(),
                &e,
            ));
            Err(e)
        }
    }
}

/// What a transfer's reading thread hands to the connection's side.
enum Prepared {
    /// The `data` message for the chunk at this offset: [`wire::DATA_HEADER_LEN`] bytes of
    /// room, then the chunk.
    Chunk(u64, Vec<u8>),
    /// The prefix (a resume) is hashed up to here: progress, not silence.
    Prefix,
    /// The SHA-256 of the whole file.
    Digest([u8; 32]),
}

/// The body of a transfer's reading thread: hashes `[0, start)`, then reads every chunk from
/// `start` on straight into its message buffer, hashes it and queues it (bounded, so it runs
/// at most [`PIPELINE_DEPTH`] chunks ahead), then the digest.
fn read_loop(
    path: &Path,
    start: u64,
    size: u64,
    chunk: usize,
    tx: &mpsc::Sender<std::io::Result<Prepared>>,
) -> std::io::Result<()> {
    let shrank = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank");
    let mut file = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    if start > 0 {
        let mut buf = vec![0u8; 256 * 1024];
        let mut done = 0u64;
        while done < start {
            let want = buf
                .len()
                .min(usize::try_from(start - done).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(shrank());
            }
            h.update(&buf[..n]);
            done += n as u64;
            if tx.blocking_send(Ok(Prepared::Prefix)).is_err() {
                return Ok(());
            }
        }
    }
    let mut off = start;
    while off < size {
        let len = usize::try_from(size - off).unwrap_or(usize::MAX).min(chunk);
        // One read call for the chunk (`read_to_end` would read it in growing pieces, four
        // calls for 64 KiB); zeroing the buffer first costs less than the calls it saves.
        let mut m = vec![0; wire::DATA_HEADER_LEN + len];
        match file.read_exact(&mut m[wire::DATA_HEADER_LEN..]) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(shrank()),
            r => r?,
        }
        h.update(&m[wire::DATA_HEADER_LEN..]);
        if tx.blocking_send(Ok(Prepared::Chunk(off, m))).is_err() {
            return Ok(());
        }
        off += len as u64;
    }
    let _ = tx.blocking_send(Ok(Prepared::Digest(h.finalize().into())));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn drive_sender(
    peer: &Peer,
    link: &impl Link,
    path: &Path,
    chunk: usize,
    file: &mut std::fs::File,
    sender: &mut Sender,
    rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    info: &OfferInfo,
) -> Result<SendReport, Error> {
    let id = sender.id();
    let conn = peer.conn;
    peer.hooks()
        .on_event(&event(EventKind::BeforeSent, conn, id, info, 0));
    let mut resumed_at = 0;
    // The reading thread (from the answer to the offer on), and the chunk taken from it that
    // is not due yet.
    let mut reader: Option<mpsc::Receiver<std::io::Result<Prepared>>> = None;
    let mut ahead: Option<(u64, Vec<u8>)> = None;
    let mut reread = Vec::new();
    loop {
        while let Some(m) = sender.poll_transmit() {
            link.send(m).await?;
        }
        while let Some(ev) = sender.poll_event() {
            match ev {
                SenderEvent::Accepted { offset } => {
                    resumed_at = offset;
                    let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
                    let (path, size) = (path.to_path_buf(), info.size);
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = read_loop(&path, offset, size, chunk, &tx) {
                            let _ = tx.blocking_send(Err(e));
                        }
                    });
                    reader = Some(rx);
                }
                SenderEvent::Acknowledged { packet, offset } => {
                    let mut ev = event(EventKind::SentAcknowledgment, conn, id, info, offset);
                    ev.packet = packet;
                    peer.hooks().on_event(&ev);
                }
                SenderEvent::Rewound { .. } => {}
                SenderEvent::Sent { sha256 } => {
                    let mut ev = event(EventKind::Sent, conn, id, info, info.size);
                    ev.sha256 = Some(sha256);
                    peer.hooks().on_event(&ev);
                    return Ok(SendReport {
                        file_id: id,
                        size: info.size,
                        resumed_at,
                        sha256,
                    });
                }
                SenderEvent::Failed(e) => return Err(e),
            }
        }
        // Messages from the receiver that are already here.
        loop {
            match rx.try_recv() {
                Ok(m) => {
                    if let Ok(f) = wire::decode(&m) {
                        sender.handle(Instant::now(), &f.msg);
                    }
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                // The connection ended, but what came before its end counts: the receiver's
                // `complete` may be the last message it sent before closing.
                Err(mpsc::error::TryRecvError::Disconnected) if sender.has_events() => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(Error::Closed),
            }
        }
        if sender.has_events() {
            continue;
        }
        if let Some((off, len)) = sender.next_chunk() {
            if ahead.as_ref().is_some_and(|(a, _)| *a < off) {
                ahead = None;
            }
            let now = Instant::now();
            match ahead.take() {
                Some((a, m)) if a == off => {
                    if m.len() != wire::DATA_HEADER_LEN + len {
                        return Err(Error::proto(
                            Code::Violation,
                            "the file changed while being sent",
                        ));
                    }
                    sender.push_data_message(now, off, m)?;
                }
                held if held.is_some() || reader.is_none() => {
                    // Rewound (QoS 2 asked again for what it lacks) behind what the reading
                    // thread delivered: read it here, rarely.
                    ahead = held;
                    reread.resize(len, 0);
                    file.seek(SeekFrom::Start(off))?;
                    file.read_exact(&mut reread)?;
                    sender.push_chunk(now, off, &reread)?;
                }
                _ => {}
            }
            if sender.has_events() {
                sender.touch(now);
                let mut ev = event(EventKind::SentFragment, conn, id, info, off + len as u64);
                ev.packet = 0;
                peer.hooks().on_event(&ev);
                continue;
            }
        }
        // Wait for the receiver, the reading thread (when nothing of it is held) or the
        // deadline.
        let deadline = sender
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let pull = ahead.is_none() && reader.is_some();
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    if let Ok(f) = wire::decode(&m) {
                        sender.handle(Instant::now(), &f.msg);
                    }
                }
                None => return Err(Error::Closed),
            },
            p = async { reader.as_mut()?.recv().await }, if pull => match p {
                Some(Ok(Prepared::Chunk(off, m))) => ahead = Some((off, m)),
                Some(Ok(Prepared::Prefix)) => sender.touch(Instant::now()),
                Some(Ok(Prepared::Digest(d))) => {
                    sender.set_digest(d);
                    reader = None;
                }
                Some(Err(e)) => {
                    return Err(Error::proto(
                        Code::Storage,
                        format!("reading the file: {e}"),
                    ));
                }
                None => {
                    return Err(Error::proto(
                        Code::Storage,
                        "reading the file: the reading thread ended early",
                    ));
                }
            },
            () = tokio::time::sleep_until(deadline.into()) => sender.handle_timeout(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receiving transfer longer than a few writeback steps, resumed after a stored prefix:
    /// the writing thread (with its early-sync thread) stores every byte in order and reports
    /// the SHA-256 of the whole file.
    #[test]
    fn the_writing_thread_stores_and_hashes_across_writeback_steps() {
        let step = usize::try_from(WRITEBACK_STEP).unwrap();
        let total = 2 * step + step / 2 + 12_345;
        let data: Vec<u8> = (0..total).map(|i| (i * 7 + i / 251) as u8).collect();
        // Through the page cache, and directly where the file system allows it; resumed at
        // an unaligned offset, chunks that straddle the direct blocks, a tail of odd length.
        for direct in [false, true] {
            writes_and_hashes(&data, 100_003, direct);
        }
    }

    fn writes_and_hashes(data: &[u8], prefix: usize, direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let data = data.to_vec();
        std::fs::write(&path, &data[..prefix]).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
        let chunks: Vec<Bytes> = data[prefix..]
            .chunks(65_537)
            .map(Bytes::copy_from_slice)
            .collect();
        let feeder = std::thread::spawn(move || {
            for c in chunks {
                tx.blocking_send(Job::Write(c)).unwrap();
            }
            tx.blocking_send(Job::Finish).unwrap();
        });
        let digest = write_loop(file, direct.then_some(&*path), prefix as u64, rx)
            .unwrap()
            .unwrap();
        feeder.join().unwrap();
        let want: [u8; 32] = Sha256::digest(&data).into();
        assert_eq!(digest, want);
        assert!(
            std::fs::read(&path).unwrap() == data,
            "the stored bytes differ"
        );
    }

    /// Without `Finish` (the transfer ended early) there is no digest, and what was queued is
    /// stored.
    #[test]
    fn the_writing_thread_without_finish_reports_no_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part");
        let file = std::fs::File::create(&path).unwrap();
        let (tx, rx) = mpsc::channel(PIPELINE_DEPTH);
        let step = usize::try_from(WRITEBACK_STEP).unwrap();
        let feeder = std::thread::spawn(move || {
            for _ in 0..(step / 65_536 + 3) {
                tx.blocking_send(Job::Write(Bytes::from(vec![9u8; 65_536])))
                    .unwrap();
            }
        });
        assert!(write_loop(file, Some(&path), 0, rx).unwrap().is_none());
        feeder.join().unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            (step / 65_536 + 3) as u64 * 65_536
        );
    }

    /// A receiver that the link plays: it takes the file, and the moment the sender's
    /// `complete` goes out it answers with its own `complete` and the connection ends, before
    /// the sending task looks at its queue again (a browser page closing once it has its file).
    /// The answer that came before the end counts: the send is a success.
    struct ClosingReceiver<'a> {
        peer: &'a Peer,
    }

    impl Link for ClosingReceiver<'_> {
        async fn send(&self, msg: Vec<u8>) -> Result<(), Error> {
            let f = wire::decode(&msg).unwrap();
            let reply = match f.msg {
                Msg::Offer(_) => wire::to_vec(f.id, &Msg::Accept { window: 1000 }),
                Msg::Complete { sha256 } => wire::to_vec(f.id, &Msg::Complete { sha256 }),
                _ => return Ok(()),
            };
            assert!(self.peer.on_message(&Bytes::from(reply)).await.is_empty());
            if matches!(f.msg, Msg::Complete { .. }) {
                self.peer.closed().await;
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_complete_answered_just_before_the_connection_ends_is_a_sent_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("src");
        let data: Vec<u8> = (0..300_001u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let shared = Arc::new(Shared::new(Config::default(), None, Arc::new(NoHooks)));
        let peer = Peer::new(1, shared);
        let link = ClosingReceiver { peer: &peer };
        let report = send_file(&peer, &link, &path, &SendOptions::qos(QoS::AtMostOnce))
            .await
            .expect("the receiver confirmed the file before the end");
        assert_eq!(report.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
    }

    /// The reading thread queues every chunk of the file with its offset and the digest of the
    /// whole file; a file shorter than the offered size ends it with "the file shrank".
    #[test]
    fn the_reading_thread_reads_whole_chunks_and_notices_a_shorter_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("src");
        let data: Vec<u8> = (0..200_003u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let run = |size: u64| {
            let (tx, mut rx) = mpsc::channel(PIPELINE_DEPTH);
            let p = path.clone();
            let reader = std::thread::spawn(move || read_loop(&p, 0, size, 65_536, &tx));
            let mut got = Vec::new();
            let mut digest = None;
            while let Some(item) = rx.blocking_recv() {
                match item.unwrap() {
                    Prepared::Chunk(off, m) => {
                        assert_eq!(off, got.len() as u64);
                        got.extend_from_slice(&m[wire::DATA_HEADER_LEN..]);
                    }
                    Prepared::Prefix => {}
                    Prepared::Digest(d) => digest = Some(d),
                }
            }
            (reader.join().unwrap(), got, digest)
        };
        let (r, got, digest) = run(data.len() as u64);
        r.unwrap();
        assert!(got == data, "the chunks differ from the file");
        assert_eq!(digest, Some(Sha256::digest(&data).into()));
        let (r, got, digest) = run(data.len() as u64 + 10);
        let e = r.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(e.to_string(), "the file shrank");
        assert_eq!(got.len(), 3 * 65_536);
        assert_eq!(digest, None);
    }
}
