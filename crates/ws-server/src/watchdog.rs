//! The server watchdog (the seed's `WatchDog` and `WatchDog.Monitor`): a task that looks at a
//! running server every [`WatchdogConfig::interval`] and restarts it
//! ([`ServerHandle::restart`]) when
//!
//! - a listener stopped accepting while the server runs ([`ServerHandle::failed_listeners`]:
//!   its accept loop ended after about 10 s of failing `accept` calls, or panicked), or
//! - with [`WatchdogConfig::monitor`], the probe fails: an internal client opens a TCP
//!   connection to the first listening address and sends a minimal WebSocket upgrade request
//!   for [`Monitor::path`]; anything but a `101` answer within [`Monitor::timeout`] is a
//!   failure. The probe is plain TCP (on a TLS binding it fails: monitor plain bindings).
//!
//! Before each restart the hook gets a [`WatchdogEvent`] and may veto it (the seed's
//! `OnBeforeWatchDog`). A failed restart (the address cannot be bound again) is tried again
//! after a backoff that doubles from [`WatchdogConfig::backoff`] up to
//! [`WatchdogConfig::max_backoff`]; a successful restart resets the backoff and the attempt
//! count. After [`WatchdogConfig::max_attempts`] restarts in a row that did not bring the
//! server back, the watchdog gives up and ends. A server stopped with [`ServerHandle::stop`]
//! is left alone.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

use crate::handle::ServerHandle;

/// Settings of a [`Watchdog`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WatchdogConfig {
    /// Time between two checks. Default: 10 s.
    pub interval: Duration,
    /// Wait before the second restart attempt after a failed one; doubles each time.
    /// Default: 1 s.
    pub backoff: Duration,
    /// Longest wait between restart attempts. Default: 60 s.
    pub max_backoff: Duration,
    /// Restart attempts in a row (without a healthy check between them) before the watchdog
    /// gives up; 0: never gives up. Default: 0.
    pub max_attempts: u32,
    /// The self-connect probe; `None`: only listener failures are watched. Default: `None`.
    pub monitor: Option<Monitor>,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_attempts: 0,
            monitor: None,
        }
    }
}

/// The self-connect probe of [`WatchdogConfig::monitor`] (the seed's `WatchDog.Monitor`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Monitor {
    /// Path of the upgrade request; the handler must accept it. Default: `/`.
    pub path: String,
    /// How long connect, request and answer may take together. Default: 5 s.
    pub timeout: Duration,
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            path: "/".to_owned(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why the watchdog wants to restart the server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trouble {
    /// This many listeners stopped accepting.
    ListenerFailed(usize),
    /// The monitor probe failed, for this reason.
    ProbeFailed(String),
    /// The previous restart attempt failed (cannot bind), with the error text.
    RestartFailed(String),
}

/// What the hook of [`Watchdog::spawn`] sees before a restart.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WatchdogEvent {
    /// What went wrong.
    pub trouble: Trouble,
    /// 1 for the first restart attempt after a healthy check, then 2, 3, ...
    pub attempt: u32,
}

/// A running watchdog; dropping it (or [`Watchdog::stop`]) ends the task.
#[derive(Debug)]
pub struct Watchdog {
    task: JoinHandle<()>,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The hook called before each restart; `false` skips that restart.
type Hook = Arc<dyn Fn(&WatchdogEvent) -> bool + Send + Sync>;

impl Watchdog {
    /// Starts watching `server`. `hook` runs before every restart attempt (return `false` to
    /// skip it; the next check looks again).
    #[must_use]
    pub fn spawn(
        server: ServerHandle,
        config: WatchdogConfig,
        hook: impl Fn(&WatchdogEvent) -> bool + Send + Sync + 'static,
    ) -> Self {
        let monitor = config.monitor.clone();
        let probe = move |addr: SocketAddr| {
            let monitor = monitor.clone();
            async move {
                match monitor {
                    Some(m) => probe(addr, &m.path, m.timeout).await,
                    None => Ok(()),
                }
            }
        };
        Self {
            task: tokio::spawn(watch(server, config, Arc::new(hook), probe)),
        }
    }

    /// Ends the watchdog (the server keeps running).
    pub fn stop(self) {
        self.task.abort();
    }

    /// Whether the watchdog task ended (it gave up after `max_attempts`).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Probes `addr` once: TCP connect, a minimal upgrade request for `path`, and a `101` status
/// line back within `timeout`.
///
/// # Errors
/// Why the probe failed, as text for logs and [`Trouble::ProbeFailed`].
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let mut tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: d2F0Y2hkb2dwcm9iZTAwMQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send the probe to {addr}: {e}"))?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head)
            .await
            .map_err(|e| format!("no answer from {addr}: {e}"))?;
        if &head != b"HTTP/1.1 101" {
            return Err(format!(
                "{addr} answered the probe with {:?}, not 101",
                String::from_utf8_lossy(&head)
            ));
        }
        // Leave politely: a masked close frame with no payload.
        let _ = tcp.write_all(&[0x88, 0x80, 0, 0, 0, 0]).await;
        Ok(())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {addr} within {timeout:?}")))
}

/// The watchdog loop, with the probe passed in (tests give a fake one).
async fn watch<P, F>(server: ServerHandle, config: WatchdogConfig, hook: Hook, probe: P)
where
    P: Fn(SocketAddr) -> F + Send + 'static,
    F: Future<Output = Result<(), String>> + Send,
{
    let mut attempt = 0u32;
    let mut backoff = config.backoff;
    let mut pending: Option<Trouble> = None;
    loop {
        let wait = if pending.is_some() {
            backoff
        } else {
            config.interval
        };
        tokio::time::sleep(wait).await;
        if server
            .inner
            .stopping
            .load(std::sync::atomic::Ordering::Acquire)
        {
            // Stopped on purpose (or in the middle of a restart): nothing to watch.
            pending = None;
            continue;
        }
        let trouble = match pending.take() {
            Some(t) => Some(t),
            None => check(&server, &probe).await,
        };
        let Some(trouble) = trouble else {
            attempt = 0;
            backoff = config.backoff;
            continue;
        };
        if config.max_attempts != 0 && attempt >= config.max_attempts {
            tracing::error!(?trouble, attempt, "watchdog gives up");
            return;
        }
        attempt += 1;
        let event = WatchdogEvent {
            trouble: trouble.clone(),
            attempt,
        };
        if !hook(&event) {
            tracing::info!(?trouble, "watchdog restart skipped by the hook");
            continue;
        }
        tracing::warn!(?trouble, attempt, "watchdog restarts the server");
        if let Err(e) = server.restart().await {
            tracing::error!(error = %e, attempt, "watchdog restart failed");
            pending = Some(Trouble::RestartFailed(e.to_string()));
            if attempt > 1 {
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

/// One check: failed listeners first, then the probe on the first address.
async fn check<P, F>(server: &ServerHandle, probe: &P) -> Option<Trouble>
where
    P: Fn(SocketAddr) -> F,
    F: Future<Output = Result<(), String>>,
{
    let failed = server.failed_listeners();
    if failed > 0 {
        return Some(Trouble::ListenerFailed(failed));
    }
    let addr = *server.local_addrs().first()?;
    probe(addr).await.err().map(Trouble::ProbeFailed)
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    use super::*;
    use crate::{Binding, Handler, NoopHandler, Server, ServerConfig, registry::lock};

    fn local() -> ServerConfig {
        ServerConfig::new(vec![Binding::plain("127.0.0.1:0".parse().unwrap())])
    }

    /// Counts `on_startup`: 1 after start, +1 per restart.
    struct Starts(Arc<AtomicUsize>);
    impl Handler for Starts {
        async fn on_startup(&self, _: &ServerHandle) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    type Events = Arc<Mutex<Vec<WatchdogEvent>>>;

    fn recorder(events: &Events, allow: bool) -> Hook {
        let events = events.clone();
        Arc::new(move |e: &WatchdogEvent| {
            events.lock().unwrap().push(e.clone());
            allow
        })
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_listener_is_restarted_and_a_healthy_server_left_alone() {
        let starts = Arc::new(AtomicUsize::new(0));
        let server = Server::start(local(), Starts(starts.clone()))
            .await
            .unwrap();
        let events = Events::default();
        let config = WatchdogConfig {
            interval: Duration::from_secs(10),
            ..WatchdogConfig::default()
        };
        let task = tokio::spawn(watch(
            server.clone(),
            config,
            recorder(&events, true),
            |_| async { Ok(()) },
        ));
        // Healthy for three checks: no restart.
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert!(events.lock().unwrap().is_empty());

        // The accept loop dies (as after persistent accept errors).
        for t in lock(&server.inner.listeners).iter() {
            t.abort();
        }
        settle().await;
        assert_eq!(server.failed_listeners(), 1);
        tokio::time::sleep(Duration::from_secs(10)).await;
        settle().await;
        assert_eq!(starts.load(Ordering::SeqCst), 2, "restarted once");
        assert_eq!(server.failed_listeners(), 0);
        let seen = events.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].trouble, Trouble::ListenerFailed(1));
        assert_eq!(seen[0].attempt, 1);
        // A stopped server is not restarted.
        server.stop().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(starts.load(Ordering::SeqCst), 2);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn failing_probes_restart_with_attempts_the_hook_can_veto_and_give_up() {
        let starts = Arc::new(AtomicUsize::new(0));
        let server = Server::start(local(), Starts(starts.clone()))
            .await
            .unwrap();
        let events = Events::default();
        let healthy = Arc::new(AtomicBool::new(false));
        let h = healthy.clone();
        let config = WatchdogConfig {
            interval: Duration::from_secs(5),
            max_attempts: 3,
            ..WatchdogConfig::default()
        };
        let task = tokio::spawn(watch(
            server.clone(),
            config.clone(),
            recorder(&events, true),
            move |_| {
                let ok = h.load(Ordering::SeqCst);
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err("refused".to_owned())
                    }
                }
            },
        ));
        tokio::time::sleep(Duration::from_secs(11)).await;
        settle().await;
        // Two checks, two restarts (the probe still fails after the first).
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        let attempts: Vec<u32> = events.lock().unwrap().iter().map(|e| e.attempt).collect();
        assert_eq!(attempts, [1, 2]);
        // Healthy again: the attempt count starts over.
        healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(5)).await;
        settle().await;
        assert_eq!(events.lock().unwrap().last().unwrap().attempt, 1);
        // Attempts 2 and 3, then it gives up.
        tokio::time::sleep(Duration::from_secs(30)).await;
        settle().await;
        assert!(task.is_finished());
        assert_eq!(events.lock().unwrap().len(), 5);
        assert_eq!(starts.load(Ordering::SeqCst), 6);

        // A hook that says no: no restart.
        let vetoed = Events::default();
        let task = tokio::spawn(watch(
            server.clone(),
            config,
            recorder(&vetoed, false),
            |_| async { Err("refused".to_owned()) },
        ));
        tokio::time::sleep(Duration::from_secs(11)).await;
        settle().await;
        assert_eq!(vetoed.lock().unwrap().len(), 2);
        assert_eq!(starts.load(Ordering::SeqCst), 6);
        task.abort();
        server.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_restart_backs_off_doubling_up_to_the_maximum() {
        // A fixed port (a restart binds the configured address again), held by another
        // listener once the accept loop died, so the restart cannot bind it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let server = Server::start(ServerConfig::new(vec![Binding::plain(addr)]), NoopHandler)
            .await
            .unwrap();
        let events = Events::default();
        let times = Arc::new(Mutex::new(Vec::new()));
        let (ev, ts) = (events.clone(), times.clone());
        let start = tokio::time::Instant::now();
        let hook: Hook = Arc::new(move |e: &WatchdogEvent| {
            ev.lock().unwrap().push(e.clone());
            ts.lock().unwrap().push(start.elapsed().as_secs());
            true
        });
        let wd = WatchdogConfig {
            interval: Duration::from_secs(10),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
            ..WatchdogConfig::default()
        };
        let task = tokio::spawn(watch(server.clone(), wd, hook, |_| async { Ok(()) }));
        // Make the listener fail and grab its port as soon as stop() frees it: abort the
        // task, then bind the address ourselves once the old socket is gone.
        for t in lock(&server.inner.listeners).iter() {
            t.abort();
        }
        settle().await;
        let held = std::net::TcpListener::bind(addr).unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        settle().await;
        let seen: Vec<Trouble> = events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.trouble.clone())
            .collect();
        assert_eq!(seen[0], Trouble::ListenerFailed(1));
        assert!(matches!(seen[1], Trouble::RestartFailed(_)), "{seen:?}");
        // Checks at 10 s, then retries after 1, 2, 4, 4, ... seconds.
        let t = times.lock().unwrap().clone();
        assert_eq!(&t[..5], &[10, 11, 13, 17, 21], "{t:?}");
        drop(held);
        task.abort();
        server.stop().await;
    }

    #[tokio::test]
    async fn the_probe_sees_an_accepting_server_a_refusing_one_and_a_closed_port() {
        let server = Server::start(local(), NoopHandler).await.unwrap();
        let addr = server.local_addrs()[0];
        let t = Duration::from_secs(5);
        assert_eq!(probe(addr, "/", t).await, Ok(()));
        struct Refuse;
        impl Handler for Refuse {
            async fn on_handshake(&self, _: &crate::Request) -> crate::Decision {
                crate::Decision::Reject(crate::Response::new(404))
            }
        }
        let refusing = Server::start(local(), Refuse).await.unwrap();
        let err = probe(refusing.local_addrs()[0], "/", t).await.unwrap_err();
        assert!(err.contains("HTTP/1.1 404"), "{err}");
        server.stop().await;
        refusing.stop().await;
        let err = probe(addr, "/", t).await.unwrap_err();
        assert!(err.contains("cannot connect"), "{err}");
    }
}
