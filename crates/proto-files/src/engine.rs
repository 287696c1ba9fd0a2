//! The tokio glue both ends share: a per-connection [`Peer`] that routes incoming protocol
//! messages to receivers (written to the [`Store`] chunk by chunk) and to sending tasks, the
//! sending task itself (streams the file from disk), and the events.

use std::{
    collections::HashMap,
    future::Future,
    io::{Read as _, Seek as _, SeekFrom, Write as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::{
    config::Config,
    error::{Code, Error},
    receiver::{DataAction, PrefixHasher, Receiver, ReceiverAction, refusal},
    sender::{OfferInfo, Sender, SenderEvent},
    store::{Meta, Store},
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
    /// Written with blocking calls from the connection's task: a chunk goes to the page cache
    /// in microseconds, and a hop to tokio's blocking pool per chunk cost more than the write.
    file: std::fs::File,
    /// The SHA-256 of the stored prefix, being computed (a resume).
    prefix: Option<tokio::task::JoinHandle<std::io::Result<PrefixHasher>>>,
}

/// Hashes the first `len` bytes of the file at `path`.
fn hash_prefix(path: &Path, len: u64) -> std::io::Result<PrefixHasher> {
    let mut file = std::fs::File::open(path)?;
    let mut h = PrefixHasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    while h.len() < len {
        let want = buf
            .len()
            .min(usize::try_from(len - h.len()).unwrap_or(usize::MAX));
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the partial file shrank",
            ));
        }
        h.update(&buf[..n]);
    }
    Ok(h)
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
    pub(crate) async fn on_message(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
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
        let result = match t.prefix.take() {
            Some(task) => match task.await {
                Ok(Ok(p)) => t.receiver.set_prefix(p),
                Ok(Err(e)) => Err(Error::proto(
                    Code::Storage,
                    format!("reading the partial file: {e}"),
                )),
                Err(e) => Err(Error::proto(
                    Code::Storage,
                    format!("hashing the partial file: {e}"),
                )),
            },
            None => Ok(()),
        };
        let result = match result {
            // (the clock again: awaiting the prefix may have taken a while)
            Ok(()) => {
                self.on_transfer_message(t, Instant::now(), &frame.msg)
                    .await
            }
            Err(e) => {
                t.receiver.fail(&e);
                Err(e)
            }
        };
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
        let opened = async {
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
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(store.part_path(id))?;
            file.seek(SeekFrom::Start(receiver.stored()))?;
            Ok::<_, Error>(file)
        }
        .await;
        let file = match opened {
            Ok(f) => f,
            Err(e) => {
                receiver.refuse(Code::Storage, &e.detail());
                return receiver.poll_transmit().into_iter().collect();
            }
        };
        // The SHA-256 of what is already stored, on the blocking pool while the sender (told
        // `resume` at once) hashes its own copy of the prefix.
        let prefix = receiver.needs_prefix().map(|(_, to)| {
            let path = store.part_path(id);
            tokio::task::spawn_blocking(move || hash_prefix(&path, to))
        });
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
        incoming.insert(
            id,
            InTransfer {
                receiver,
                file,
                prefix,
            },
        );
        out
    }

    async fn on_transfer_message(
        &self,
        t: &mut InTransfer,
        now: Instant,
        msg: &Msg<'_>,
    ) -> Result<(), Error> {
        let id = t.receiver.id();
        match t.receiver.handle(now, msg)? {
            ReceiverAction::Data(DataAction::Write { offset, skip }) => {
                let Msg::Data { chunk, packet, .. } = *msg else {
                    return Ok(());
                };
                let bytes = &chunk[skip..];
                // Written before the ack: an ack (and a later resume's offset) covers bytes
                // the OS has.
                if let Err(e) = t.file.write_all(bytes) {
                    let e = Error::proto(Code::Storage, format!("writing the file: {e}"));
                    t.receiver.fail(&e);
                    return Err(e);
                }
                t.receiver.written(now, packet, offset, bytes)?;
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
                let finished = async {
                    t.file.sync_all()?;
                    store.finish(id, &t.receiver.info().name, self.shared.config.overwrite)
                }
                .await;
                match finished {
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
            ReceiverAction::Data(DataAction::Drop) | ReceiverAction::None => {}
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
        let Some(t) = incoming.remove(&id) else {
            return;
        };
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
        let file = t.file;
        if last && (always_remove || cancelled || !self.shared.config.keep_partial_on_error) {
            drop(file);
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
    let result = drive_sender(peer, link, &mut file, &mut sender, &mut rx, &info).await;
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

async fn drive_sender(
    peer: &Peer,
    link: &impl Link,
    file: &mut std::fs::File,
    sender: &mut Sender,
    rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    info: &OfferInfo,
) -> Result<SendReport, Error> {
    let id = sender.id();
    let conn = peer.conn;
    peer.hooks()
        .on_event(&event(EventKind::BeforeSent, conn, id, info, 0));
    let chunk_cap = peer.shared.config.chunk.max(1 << 16) as usize;
    let mut buf = vec![0u8; chunk_cap];
    let mut file_pos: u64 = 0;
    let mut resumed_at = 0;
    loop {
        while let Some(m) = sender.poll_transmit() {
            link.send(m).await?;
        }
        while let Some(ev) = sender.poll_event() {
            match ev {
                SenderEvent::Accepted { offset } => resumed_at = offset,
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
                Err(mpsc::error::TryRecvError::Disconnected) => return Err(Error::Closed),
            }
        }
        if sender.has_events() {
            continue;
        }
        if let Some((from, to)) = sender.needs_prefix() {
            if file_pos != from {
                file.seek(SeekFrom::Start(from))?;
            }
            let want = buf
                .len()
                .min(usize::try_from(to - from).unwrap_or(usize::MAX));
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(Error::proto(
                    Code::Violation,
                    "the file shrank while being sent",
                ));
            }
            sender.absorb_prefix(&buf[..n]);
            // Hashing what the receiver already has is progress, not silence.
            sender.touch(Instant::now());
            file_pos = from + n as u64;
            continue;
        }
        if let Some((off, len)) = sender.next_chunk() {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            if file_pos != off {
                file.seek(SeekFrom::Start(off))?;
            }
            file.read_exact(&mut buf[..len])?;
            file_pos = off + len as u64;
            let now = Instant::now();
            sender.push_chunk(now, off, &buf[..len])?;
            sender.touch(now);
            let mut ev = event(EventKind::SentFragment, conn, id, info, file_pos);
            ev.packet = 0;
            peer.hooks().on_event(&ev);
            continue;
        }
        // Nothing to do until the receiver speaks or the deadline passes.
        let deadline = sender
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            m = rx.recv() => match m {
                Some(m) => {
                    if let Ok(f) = wire::decode(&m) {
                        sender.handle(Instant::now(), &f.msg);
                    }
                }
                None => return Err(Error::Closed),
            },
            () = tokio::time::sleep_until(deadline.into()) => sender.handle_timeout(Instant::now()),
        }
    }
}
