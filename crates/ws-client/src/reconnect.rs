//! The reconnect watchdog: a connection that comes back after unexpected disconnects.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, watch};
use ws_frame::{CloseCode, Message};
use ws_http::WsUrl as Url;

use crate::{
    config::{ClientConfig, Reconnect, ReconnectDecision},
    conn::CloseInfo,
    connect::connect_url,
    error::Error,
    socket::{WebSocket, WsWriter},
    url::IntoUrl,
};

/// What a [`ReconnectingWebSocket`] reports.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A message arrived.
    Message(Message),
    /// The connection was re-established (after `attempt` attempts since the disconnect).
    Reconnected {
        /// The URL now connected to.
        url: Url,
        /// Attempts it took (1: the first retry worked).
        attempt: u32,
    },
    /// The connection ended. Unless the application closed it, reconnecting starts.
    Disconnected {
        /// How it ended.
        info: Option<CloseInfo>,
        /// The failure, if it was one (protocol error, dead peer, reset ...).
        error: Option<Arc<Error>>,
    },
    /// A reconnect attempt failed; another one follows unless the limit is reached.
    AttemptFailed {
        /// Attempt number (1-based).
        attempt: u32,
        /// Why it failed.
        error: Arc<Error>,
    },
    /// No more attempts: the limit was reached (with the last error), or the hook cancelled
    /// ([`Error::Cancelled`]).
    GaveUp(Arc<Error>),
}

type Current = Arc<Mutex<Option<WsWriter>>>;

/// A WebSocket client that reconnects after unexpected disconnects (the seeds' `WatchDog`),
/// following [`ClientConfig::reconnect`]: jittered exponential backoff, a maximum number of
/// attempts (0: forever), and a hook before each attempt that can change the URL or cancel.
/// After [`ReconnectingWebSocket::close`] it never reconnects.
///
/// Messages and connection changes arrive through [`ReconnectingWebSocket::next_event`]. Sends
/// go to the current connection and fail with [`Error::Closed`] while there is none.
#[derive(Debug)]
pub struct ReconnectingWebSocket {
    events: mpsc::Receiver<ClientEvent>,
    current: Current,
    stop: watch::Sender<bool>,
    url: Url,
}

fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    #[allow(clippy::cast_precision_loss)]
    let r = (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64;
    r
}

impl ReconnectingWebSocket {
    /// Connects, then keeps the connection up in a background task.
    ///
    /// # Errors
    /// The first connection's error, unless [`Reconnect::retry_initial`] is set (then attempts
    /// go on in the background and only URL and configuration errors are returned here).
    pub async fn connect(url: impl IntoUrl, config: ClientConfig) -> Result<Self, Error> {
        let url = url.into_url()?;
        config.validate()?;
        let policy = config.reconnect.clone().unwrap_or_default();
        let first = match connect_url(url.clone(), &config).await {
            Ok(ws) => Some(ws),
            Err(e) if policy.retry_initial && e.is_transient() => {
                tracing::debug!(%url, error = %e, "initial connect failed; retrying");
                None
            }
            Err(e) => return Err(e),
        };
        let (tx, events) = mpsc::channel(config.recv_queue);
        let current: Current = Arc::new(Mutex::new(None));
        let (stop, stop_rx) = watch::channel(false);
        let sup = Supervisor {
            url: url.clone(),
            config,
            policy,
            tx,
            current: current.clone(),
            stop: stop_rx,
        };
        if let Some(ws) = &first {
            *current.lock().unwrap_or_else(PoisonError::into_inner) = Some(ws.writer());
        }
        tokio::spawn(sup.run(first));
        Ok(Self {
            events,
            current,
            stop,
            url,
        })
    }

    /// The next event; `None` once the watchdog stopped (closed or gave up) and everything was
    /// read.
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// The next message, skipping connection events. `None` once the watchdog stopped.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            match self.events.recv().await? {
                ClientEvent::Message(m) => return Some(m),
                ClientEvent::GaveUp(_) => return None,
                _ => {}
            }
        }
    }

    fn writer(&self) -> Result<WsWriter, Error> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or(Error::Closed)
    }

    /// Sends on the current connection.
    ///
    /// # Errors
    /// [`Error::Closed`] while disconnected or closing.
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), Error> {
        self.writer()?.send(msg).await
    }

    /// Whether a connection is up right now.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.writer().is_ok_and(|w| !w.is_closed())
    }

    /// The URL given to [`ReconnectingWebSocket::connect`].
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Closes the current connection (if any) and stops reconnecting for good.
    ///
    /// # Errors
    /// As [`WebSocket::close`]; [`Error::Closed`] when no connection was up.
    pub async fn close(&self, code: CloseCode, reason: &str) -> Result<CloseInfo, Error> {
        let _ = self.stop.send(true);
        let writer = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match writer {
            Some(w) => w.close(code, reason).await,
            None => Err(Error::Closed),
        }
    }
}

struct Supervisor {
    url: Url,
    config: ClientConfig,
    policy: Reconnect,
    tx: mpsc::Sender<ClientEvent>,
    current: Current,
    stop: watch::Receiver<bool>,
}

impl Supervisor {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn set_current(&self, w: Option<WsWriter>) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = w;
    }

    async fn run(mut self, first: Option<WebSocket>) {
        let mut ws = first;
        // The URLs taken in turn by the attempts (the first is the one given to connect).
        let rotation: Vec<Url> = std::iter::once(self.url.clone())
            .chain(self.policy.urls.iter().cloned())
            .collect();
        let mut turn = 0usize;
        let mut last_error: Option<Arc<Error>> = None;
        loop {
            if let Some(conn) = ws.take() {
                let (mut reader, writer) = conn.split();
                if self.stopped() {
                    let _ = writer.close(CloseCode::NORMAL, "").await;
                    return;
                }
                self.set_current(Some(writer));
                let mut error = None;
                loop {
                    match reader.recv().await {
                        Some(Ok(m)) => {
                            if self.tx.send(ClientEvent::Message(m)).await.is_err() {
                                // Nobody listens any more: dropping the halves closes.
                                self.set_current(None);
                                return;
                            }
                        }
                        Some(Err(e)) => error = Some(Arc::new(e)),
                        None => break,
                    }
                }
                self.set_current(None);
                let info = reader.close_info();
                let local = self.stopped()
                    || info
                        .as_ref()
                        .is_some_and(|i| i.by == ws_frame::Initiator::User);
                last_error.clone_from(&error);
                if self
                    .tx
                    .send(ClientEvent::Disconnected { info, error })
                    .await
                    .is_err()
                    || local
                {
                    return;
                }
            }
            // Reconnect.
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                if self.policy.max_attempts != 0 && attempt > self.policy.max_attempts {
                    let e = last_error.unwrap_or_else(|| Arc::new(Error::Closed));
                    let _ = self.tx.send(ClientEvent::GaveUp(e)).await;
                    return;
                }
                let delay = self.policy.delay(attempt, random_unit());
                let mut stop = self.stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                if rotation.len() > 1 {
                    turn = (turn + 1) % rotation.len();
                    self.url = rotation[turn].clone();
                }
                if let Some(hook) = &self.policy.hook {
                    match hook(attempt, &self.url, last_error.as_deref()) {
                        ReconnectDecision::Proceed => {}
                        ReconnectDecision::ChangeUrl(u) => self.url = u,
                        ReconnectDecision::Cancel => {
                            let e = Arc::new(Error::Cancelled);
                            let _ = self.tx.send(ClientEvent::GaveUp(e)).await;
                            return;
                        }
                    }
                }
                match connect_url(self.url.clone(), &self.config).await {
                    Ok(conn) => {
                        // Sends work as soon as the application hears of the new connection.
                        self.set_current(Some(conn.writer()));
                        if self
                            .tx
                            .send(ClientEvent::Reconnected {
                                url: self.url.clone(),
                                attempt,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                        ws = Some(conn);
                        break;
                    }
                    Err(e) => {
                        let e = Arc::new(e);
                        last_error = Some(e.clone());
                        if self
                            .tx
                            .send(ClientEvent::AttemptFailed { attempt, error: e })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
    }
}
