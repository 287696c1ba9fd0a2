//! The server side over ws-server: [`Files`] (receive into a save directory, `send_file`,
//! `broadcast_file`, the tus door) and [`FilesHandler`], a ready [`ws_server::Handler`].

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use bytes::Bytes;
use ws_server::{
    Body, ConnHandle, ConnId, ConnInfo, Ctx, Decision, Disconnect, Filter, Handler, Request,
    Response, ServerHandle, channel_matches, ws_frame::Message,
};

use crate::{
    config::Config,
    engine::{self, Hooks, Link, Peer, SendOptions, SendReport, Shared},
    error::Error,
    store::Store,
    tus::Tus,
    wire::SUBPROTOCOL,
};

struct Inner {
    shared: Arc<Shared>,
    peers: Mutex<HashMap<ConnId, Arc<Peer>>>,
    tus: Option<Tus>,
}

/// The files protocol on a ws-server: a cheap, cloneable handle. Use [`FilesHandler`] as the
/// server's handler, or call [`Files::on_connect`], [`Files::on_binary`],
/// [`Files::on_disconnect`] and [`Files::on_http`] from your own handler.
#[derive(Clone)]
pub struct Files {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field(
                "save_dir",
                &self.inner.shared.store.as_ref().map(Store::dir),
            )
            .finish_non_exhaustive()
    }
}

struct ConnLink(ConnHandle);

impl Link for ConnLink {
    async fn send(&self, msg: Vec<u8>) -> Result<(), Error> {
        self.0
            .send(Message::Binary(Bytes::from(msg)))
            .await
            .map_err(|e| match e {
                ws_server::Error::Closed => Error::Closed,
                e => Error::Server(e),
            })
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Values of the query parameter `name` in a request target.
pub(crate) fn query_values(url: &str, name: &str) -> Vec<String> {
    let Some((_, q)) = url.split_once('?') else {
        return Vec::new();
    };
    q.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
        .collect()
}

impl Files {
    /// The files protocol with `config`, receiving into `save_dir` (`None`: this server only
    /// sends; offers are refused), and the application's `hooks`. The tus door serves
    /// [`Config::tus_path`] when there is a save directory.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config, [`Error::Io`] when the directory cannot be
    /// created.
    pub fn new(
        config: Config,
        save_dir: Option<PathBuf>,
        hooks: impl Hooks,
    ) -> Result<Self, Error> {
        config.validate()?;
        let store = save_dir.map(Store::open).transpose()?;
        let hooks: Arc<dyn Hooks> = Arc::new(hooks);
        let tus = store
            .as_ref()
            .map(|s| Tus::new(config.clone(), s.clone(), hooks.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared::new(config, store, hooks)),
                peers: Mutex::new(HashMap::new()),
                tus,
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.shared.config
    }

    /// The save directory, if this server receives.
    #[must_use]
    pub fn save_dir(&self) -> Option<&Path> {
        self.inner.shared.store.as_ref().map(Store::dir)
    }

    fn peer(&self, id: ConnId) -> Option<Arc<Peer>> {
        self.inner.peers.lock().ok()?.get(&id).cloned()
    }

    /// A connection opened: its transfer state, its subscriptions from the `channel` query
    /// parameters of the URL (`/files?channel=news&channel=a/b`), and its timer task.
    pub async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        let id = ctx.id();
        for ch in query_values(ctx.info().url(), "channel") {
            if let Err(e) = ctx.subscribe(&ch) {
                tracing::debug!("files: channel {ch:?} refused: {e}");
            }
        }
        let peer = Arc::new(Peer::new(id.0, self.inner.shared.clone()));
        if let Ok(mut m) = self.inner.peers.lock() {
            m.insert(id, peer.clone());
        }
        let weak: Weak<Peer> = Arc::downgrade(&peer);
        let handle = ctx.handle();
        let period = (self.inner.shared.config.interval / 4)
            .clamp(Duration::from_millis(20), Duration::from_millis(500));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(peer) = weak.upgrade() else { break };
                for m in peer.tick().await {
                    if handle.send(Message::Binary(Bytes::from(m))).await.is_err() {
                        return;
                    }
                }
            }
        });
    }

    /// A binary message on connection `ctx`: routed to its transfer; replies go out at once.
    pub async fn on_binary(&self, ctx: &mut Ctx<'_>, data: Bytes) {
        let Some(peer) = self.peer(ctx.id()) else {
            return;
        };
        for reply in peer.on_message(&data).await {
            if ctx.send(Message::Binary(Bytes::from(reply))).is_err() {
                break;
            }
        }
    }

    /// A connection ended: its incoming transfers end (partial files kept for a resume unless
    /// [`Config::keep_partial_on_disconnect`] is off), its sending tasks fail with
    /// [`Error::Closed`].
    pub async fn on_disconnect(&self, info: &ConnInfo) {
        let peer = self
            .inner
            .peers
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&info.id()));
        if let Some(peer) = peer {
            peer.closed().await;
        }
    }

    /// The tus door: `Some(response)` for requests under [`Config::tus_path`] and for
    /// `GET /wskit-files.js` (the browser client, [`crate::WSKIT_FILES_JS`]), `None` for
    /// anything else.
    pub async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Option<Response> {
        if request.path() == "/wskit-files.js" && matches!(request.method(), "GET" | "HEAD") {
            return Some(
                Response::new(200)
                    .with_header("Content-Type", "text/javascript; charset=utf-8")
                    .with_header("Cache-Control", "no-cache")
                    .with_body(crate::WSKIT_FILES_JS),
            );
        }
        let tus = self.inner.tus.as_ref()?;
        tus.handle(request, body).await
    }

    /// Sends the file at `path` to one connection (`SendFile`), streaming it from disk;
    /// returns when the receiver confirmed it (or the transfer failed: a refusal, an error,
    /// the connection closing). Run it in its own task to send several files at once.
    ///
    /// # Errors
    /// [`Error::Remote`] for a refusal or the receiver's error, [`Error::Protocol`] for a
    /// timeout or a broken receiver, [`Error::Closed`], [`Error::Io`] reading the file.
    pub async fn send_file(
        &self,
        conn: &ConnHandle,
        path: impl AsRef<Path>,
        opts: &SendOptions,
    ) -> Result<SendReport, Error> {
        let peer =
            self.peer(conn.id())
                .ok_or(Error::Server(ws_server::Error::UnknownConnection(
                    conn.id().0,
                )))?;
        engine::send_file(&peer, &ConnLink(conn.clone()), path.as_ref(), opts).await
    }

    /// Sends the file to every connection `filter` selects (`BroadcastFile`: channel with
    /// `+`/`#` wildcards, include and exclude lists, protocol, path), each as its own
    /// transfer running concurrently. Returns each connection's outcome.
    pub async fn broadcast_file(
        &self,
        server: &ServerHandle,
        path: impl AsRef<Path>,
        filter: &Filter,
        opts: &SendOptions,
    ) -> Vec<(ConnId, Result<SendReport, Error>)> {
        let path = path.as_ref().to_path_buf();
        let mut tasks = Vec::new();
        for info in server.connections() {
            if !selects(filter, &info) {
                continue;
            }
            let (Some(conn), Some(peer)) = (server.get(info.id()), self.peer(info.id())) else {
                continue;
            };
            let (path, opts) = (path.clone(), opts.clone());
            tasks.push((
                info.id(),
                tokio::spawn(async move {
                    engine::send_file(&peer, &ConnLink(conn), &path, &opts).await
                }),
            ));
        }
        let mut out = Vec::new();
        for (id, t) in tasks {
            out.push((id, t.await.unwrap_or(Err(Error::Closed))));
        }
        out
    }
}

fn selects(filter: &Filter, info: &ConnInfo) -> bool {
    if let Some(include) = &filter.include
        && !include.contains(&info.id())
    {
        return false;
    }
    if filter.exclude.contains(&info.id()) {
        return false;
    }
    if let Some(p) = &filter.protocol
        && info.protocol() != Some(p.as_str())
    {
        return false;
    }
    if let Some(p) = &filter.path
        && info.path() != p
    {
        return false;
    }
    if let Some(ch) = &filter.channel {
        return info.subscriptions().iter().any(|s| channel_matches(s, ch));
    }
    true
}

/// A ws-server handler that speaks only the files protocol (and tus over HTTP): selects
/// [`SUBPROTOCOL`] when offered, receives into the save directory, and hands out [`Files`]
/// for `send_file` / `broadcast_file`.
#[derive(Clone, Debug)]
pub struct FilesHandler {
    files: Files,
}

impl FilesHandler {
    /// A handler over `files`.
    #[must_use]
    pub fn new(files: Files) -> Self {
        Self { files }
    }

    /// The files handle.
    #[must_use]
    pub fn files(&self) -> &Files {
        &self.files
    }
}

impl Handler for FilesHandler {
    async fn on_handshake(&self, request: &Request) -> Decision {
        if request.protocols().contains(&SUBPROTOCOL) {
            Decision::accept_protocol(SUBPROTOCOL)
        } else {
            Decision::accept()
        }
    }

    async fn on_http(&self, request: &Request, body: &mut Body<'_>) -> Response {
        match self.files.on_http(request, body).await {
            Some(r) => r,
            None => Response::new(404),
        }
    }

    async fn on_connect(&self, ctx: &mut Ctx<'_>) {
        self.files.on_connect(ctx).await;
    }

    async fn on_binary(&self, ctx: &mut Ctx<'_>, data: Bytes) {
        self.files.on_binary(ctx, data).await;
    }

    async fn on_disconnect(&self, info: &Arc<ConnInfo>, _disconnect: Disconnect) {
        self.files.on_disconnect(info).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_query_values_are_decoded() {
        assert_eq!(
            query_values("/files?channel=a%2Fb&x=1&channel=news", "channel"),
            vec!["a/b".to_string(), "news".to_string()]
        );
        assert!(query_values("/files", "channel").is_empty());
        assert_eq!(
            query_values("/?channel=%zz", "channel"),
            vec!["%zz".to_string()]
        );
    }
}
