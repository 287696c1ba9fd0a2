//! Optional cookie sessions for the HTTP side (the seeds' `SessionState`, `SessionTimeOut`,
//! `SessionList`, `OnSessionStart`, `OnSessionEnd`).
//!
//! ```text
//!  Cookie: wskit_session=<22 chars: 128 random bits, base64url>
//!     known, not idle past idle_timeout --> that Session (last access updated)
//!     unknown / expired / absent         --> a new Session + Set-Cookie (HttpOnly; SameSite=Lax;
//!                                            Path=/; Secure on TLS), on_start hook
//!  Sessions::end(id)                     --> removed, on_end(Ended)
//!  expired sessions                      --> removed lazily (on lookup, and by a sweep at most
//!                                            every idle_timeout / 2 on get_or_start), on_end(Expired)
//! ```
//!
//! Besides the map of strings, a session carries typed objects, at most one per type (like
//! `http::Extensions`): [`Session::insert_extension`], [`Session::extension`]. The seed's
//! `OnCreateSession` (a custom session object) is [`Sessions::with_on_create`]: a hook that
//! builds an object for each new session, from the request that started it, and attaches it.
//!
//! Time is an argument of the `*_at` methods (the others read the clock), so expiry is
//! testable without sleeping. A store is shared by reference (`Arc<Sessions>` or a field
//! of the handler).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ws_server::session::{SessionConfig, Sessions};
//!
//! let sessions = Sessions::new(SessionConfig::default()).unwrap();
//! let now = Instant::now();
//! let (session, cookie) = sessions.start_at(false, now);
//! assert!(cookie.starts_with("wskit_session="));
//! session.set("user", "ann");
//! assert_eq!(sessions.find_at(session.id(), now).unwrap().get("user").as_deref(), Some("ann"));
//! let later = now + SessionConfig::DEFAULT_IDLE_TIMEOUT + Duration::from_secs(1);
//! assert!(sessions.find_at(session.id(), later).is_none());
//! ```
//!
//! A typed session object, built when the session is created:
//!
//! ```
//! use std::{sync::Mutex, time::Instant};
//! use ws_server::session::{SessionConfig, Sessions};
//!
//! #[derive(Default)]
//! struct Cart {
//!     items: Mutex<Vec<String>>,
//! }
//!
//! let sessions = Sessions::new(SessionConfig::default())
//!     .unwrap()
//!     .with_on_create(|_session, _request| Cart::default());
//! let (session, _cookie) = sessions.start_at(false, Instant::now());
//! let cart = session.extension::<Cart>().expect("attached by the hook");
//! cart.items.lock().unwrap().push("book".into());
//! assert_eq!(session.extension::<Cart>().unwrap().items.lock().unwrap().len(), 1);
//! ```

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use base64::Engine;

use crate::{error::Error, request::Request};

/// Settings of a [`Sessions`] store.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Cookie carrying the session id. Default: [`SessionConfig::DEFAULT_COOKIE_NAME`]
    /// (`wskit_session`).
    pub cookie_name: String,
    /// A session unused for this long ends (`SessionTimeOut`). Default:
    /// [`SessionConfig::DEFAULT_IDLE_TIMEOUT`] (30 minutes).
    pub idle_timeout: Duration,
    /// `Path` of the cookie. Default: `/`.
    pub path: String,
    /// `Secure` on the cookie: `None` sets it for requests that came over TLS, `Some(true)`
    /// always (behind a TLS-terminating proxy), `Some(false)` never. Default: `None`.
    pub secure: Option<bool>,
    /// Most live sessions; starting one more first drops the expired ones, then the least
    /// recently used (`on_end` with [`EndReason::Evicted`]). Default:
    /// [`SessionConfig::DEFAULT_MAX_SESSIONS`] (100 000).
    pub max_sessions: usize,
}

impl SessionConfig {
    /// Default of [`SessionConfig::cookie_name`].
    pub const DEFAULT_COOKIE_NAME: &str = "wskit_session";
    /// Default of [`SessionConfig::idle_timeout`].
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
    /// Default of [`SessionConfig::max_sessions`].
    pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

    fn validate(&self) -> Result<(), Error> {
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !token(&self.cookie_name) {
            return Err(Error::bad_value(
                "SessionConfig::cookie_name",
                &self.cookie_name,
                "must be an HTTP token (letters, digits and !#$%&'*+-.^_`|~)",
            ));
        }
        if self.idle_timeout.is_zero() {
            return Err(Error::Setting {
                field: "SessionConfig::idle_timeout",
                rule: "must not be zero",
            });
        }
        if !self.path.starts_with('/')
            || self
                .path
                .bytes()
                .any(|b| b < 0x20 || b == b';' || b == 0x7f)
        {
            return Err(Error::bad_value(
                "SessionConfig::path",
                &self.path,
                "must start with `/` and contain no `;` or control characters",
            ));
        }
        if self.max_sessions == 0 {
            return Err(Error::Setting {
                field: "SessionConfig::max_sessions",
                rule: "must be at least 1",
            });
        }
        Ok(())
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: Self::DEFAULT_COOKIE_NAME.to_owned(),
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            path: "/".to_owned(),
            secure: None,
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Why a session ended, for the `on_end` hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// [`Sessions::end`] was called.
    Ended,
    /// It was idle longer than [`SessionConfig::idle_timeout`].
    Expired,
    /// The store was full ([`SessionConfig::max_sessions`]) and it was the least recently used.
    Evicted,
}

struct State {
    last_access: Instant,
    data: HashMap<String, String>,
    extensions: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    ended: bool,
}

struct Inner {
    id: String,
    created: Instant,
    state: Mutex<State>,
}

/// One session: its id, a key/value map of strings and typed objects (extensions, at most one
/// per type). Cheap to clone (shared).
#[derive(Clone)]
pub struct Session(Arc<Inner>);

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The id is a credential: never printed.
        let state = self.state();
        f.debug_struct("Session")
            .field("created", &self.0.created)
            .field("keys", &state.data.len())
            .field("extensions", &state.extensions.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// The session of this request, when [`crate::ServerConfig::sessions`] is set: the one its
    /// cookie names, or the one the server started for it (the seed's `AutoStartSession`; the
    /// response then carries its `Set-Cookie`). `None` without a session store, and on
    /// WebSocket upgrade requests (no session is started for them).
    #[must_use]
    pub fn session(&self) -> Option<Session> {
        let any = self.session.clone()?;
        any.downcast::<Inner>().ok().map(Session)
    }

    /// Attaches `session` (the server does, before the handler sees the request).
    pub(crate) fn attach_session(&mut self, session: &Session) {
        self.session = Some(session.0.clone());
    }
}

impl Session {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session id (the cookie value).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// When it started.
    #[must_use]
    pub fn created(&self) -> Instant {
        self.0.created
    }

    /// When it was last found by a request.
    #[must_use]
    pub fn last_access(&self) -> Instant {
        self.state().last_access
    }

    /// Whether it ended (ended, expired or evicted); its data stays readable.
    #[must_use]
    pub fn is_ended(&self) -> bool {
        self.state().ended
    }

    /// The value stored under `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<String> {
        self.state().data.get(key).cloned()
    }

    /// Stores `value` under `key`; returns the previous value.
    pub fn set(&self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.state().data.insert(key.into(), value.into())
    }

    /// Removes `key`; returns its value.
    pub fn remove(&self, key: &str) -> Option<String> {
        self.state().data.remove(key)
    }

    /// Every key, in no particular order.
    #[must_use]
    pub fn keys(&self) -> Vec<String> {
        self.state().data.keys().cloned().collect()
    }

    /// The object of type `T` attached to this session ([`Session::insert_extension`] or the
    /// [`Sessions::with_on_create`] hook). It is shared: for a value that changes, give `T`
    /// interior mutability (a `Mutex`, atomics).
    #[must_use]
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let any = self.state().extensions.get(&TypeId::of::<T>())?.clone();
        any.downcast::<T>().ok()
    }

    /// Attaches `value` as this session's object of type `T`; returns the one it replaces.
    pub fn insert_extension<T: Send + Sync + 'static>(&self, value: T) -> Option<Arc<T>> {
        self.insert_extension_arc(Arc::new(value))
    }

    /// [`Session::insert_extension`] with a value already shared.
    pub fn insert_extension_arc<T: Send + Sync + 'static>(&self, value: Arc<T>) -> Option<Arc<T>> {
        let old = self.state().extensions.insert(TypeId::of::<T>(), value)?;
        old.downcast::<T>().ok()
    }

    /// Detaches the object of type `T`; returns it.
    pub fn remove_extension<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        let old = self.state().extensions.remove(&TypeId::of::<T>())?;
        old.downcast::<T>().ok()
    }

    fn expired(&self, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(self.state().last_access) >= timeout
    }
}

type StartHook = Box<dyn Fn(&Session) + Send + Sync>;
type EndHook = Box<dyn Fn(&Session, EndReason) + Send + Sync>;
type InvalidHook = Box<dyn Fn(&str) + Send + Sync>;
type CreateHook = Box<dyn Fn(&Session, Option<&Request>) + Send + Sync>;

struct Map {
    sessions: HashMap<String, Session>,
    last_sweep: Option<Instant>,
}

/// The session store (the seeds' `SessionList`). See the module documentation.
pub struct Sessions {
    config: SessionConfig,
    map: Mutex<Map>,
    on_start: Option<StartHook>,
    on_end: Option<EndHook>,
    on_invalid: Option<InvalidHook>,
    on_create: Option<CreateHook>,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("config", &self.config)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// The length of an id: 16 random bytes in unpadded base64url.
const ID_LEN: usize = 22;

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // The OS random source does not fail on supported systems; a session id must never
    // come from anything weaker.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn plausible_id(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Sessions {
    /// An empty store.
    ///
    /// # Errors
    /// [`Error::SettingValue`] for a cookie name that is not a token or a bad path,
    /// [`Error::Setting`] for a zero timeout or `max_sessions`.
    pub fn new(config: SessionConfig) -> Result<Self, Error> {
        config.validate()?;
        Ok(Self {
            config,
            map: Mutex::new(Map {
                sessions: HashMap::new(),
                last_sweep: None,
            }),
            on_start: None,
            on_end: None,
            on_invalid: None,
            on_create: None,
        })
    }

    /// Calls `hook` for every new session (`OnSessionStart`), before it is returned.
    #[must_use]
    pub fn with_on_start(mut self, hook: impl Fn(&Session) + Send + Sync + 'static) -> Self {
        self.on_start = Some(Box::new(hook));
        self
    }

    /// Calls `hook` for every session that ends (`OnSessionEnd`), explicitly or by timeout
    /// (noticed lazily) or eviction.
    #[must_use]
    pub fn with_on_end(
        mut self,
        hook: impl Fn(&Session, EndReason) + Send + Sync + 'static,
    ) -> Self {
        self.on_end = Some(Box::new(hook));
        self
    }

    /// Calls `hook` with the id a request's cookie named when that id is unknown or expired
    /// (`OnInvalidSession`), before [`Sessions::get_or_start_at`] starts a new session for it.
    /// A forged or stale cookie shows up here, where an application can log or count it.
    #[must_use]
    pub fn with_on_invalid(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_invalid = Some(Box::new(hook));
        self
    }

    /// Calls `hook` for every new session (`OnCreateSession`), before the `on_start` hook, and
    /// attaches what it returns as the session's object of type `T` (read it with
    /// [`Session::extension`]). The request is the one the session was started for
    /// ([`Sessions::get_or_start_at`], which the server uses; `None` from
    /// [`Sessions::start_at`]), so the object can be built from its headers, peer or user.
    /// A second call replaces the hook.
    #[must_use]
    pub fn with_on_create<T: Send + Sync + 'static>(
        mut self,
        hook: impl Fn(&Session, Option<&Request>) -> T + Send + Sync + 'static,
    ) -> Self {
        self.on_create = Some(Box::new(move |session, request| {
            session.insert_extension(hook(session, request));
        }));
        self
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    fn map(&self) -> MutexGuard<'_, Map> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live sessions (expired ones not yet noticed included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.map().sessions.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ended(&self, ended: Vec<(Session, EndReason)>) {
        for (s, reason) in ended {
            s.state().ended = true;
            if let Some(hook) = &self.on_end {
                hook(&s, reason);
            }
        }
    }

    /// The live session with this id at `now` (its last access becomes `now`); an expired one
    /// is removed (`on_end` with [`EndReason::Expired`]).
    #[must_use]
    pub fn find_at(&self, id: &str, now: Instant) -> Option<Session> {
        if !plausible_id(id) {
            return None;
        }
        let mut map = self.map();
        let session = map.sessions.get(id)?.clone();
        if session.expired(now, self.config.idle_timeout) {
            map.sessions.remove(id);
            drop(map);
            self.ended(vec![(session, EndReason::Expired)]);
            return None;
        }
        drop(map);
        let mut state = session.state();
        state.last_access = state.last_access.max(now);
        drop(state);
        Some(session)
    }

    /// The session named by the request's cookie at `now`, if it is live.
    #[must_use]
    pub fn get_at(&self, request: &Request, now: Instant) -> Option<Session> {
        self.find_at(request.cookie(&self.config.cookie_name)?, now)
    }

    /// [`Sessions::get_at`] now.
    #[must_use]
    pub fn get(&self, request: &Request) -> Option<Session> {
        self.get_at(request, Instant::now())
    }

    /// Starts a session at `now`; returns it and the value of its `Set-Cookie` header
    /// (`Secure` per [`SessionConfig::secure`], `tls` telling whether the request came over
    /// TLS).
    ///
    /// # Panics
    /// When the operating system's random source fails.
    pub fn start_at(&self, tls: bool, now: Instant) -> (Session, String) {
        self.start_for(None, tls, now)
    }

    fn start_for(&self, request: Option<&Request>, tls: bool, now: Instant) -> (Session, String) {
        let session = Session(Arc::new(Inner {
            id: new_id(),
            created: now,
            state: Mutex::new(State {
                last_access: now,
                data: HashMap::new(),
                extensions: HashMap::new(),
                ended: false,
            }),
        }));
        let mut ended = Vec::new();
        let mut map = self.map();
        if map.sessions.len() >= self.config.max_sessions {
            ended.extend(self.sweep(&mut map, now));
        }
        if map.sessions.len() >= self.config.max_sessions {
            let oldest = map
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_access())
                .map(|(id, _)| id.clone());
            if let Some(s) = oldest.and_then(|id| map.sessions.remove(&id)) {
                ended.push((s, EndReason::Evicted));
            }
        }
        map.sessions
            .insert(session.id().to_owned(), session.clone());
        drop(map);
        self.ended(ended);
        if let Some(hook) = &self.on_create {
            hook(&session, request);
        }
        if let Some(hook) = &self.on_start {
            hook(&session);
        }
        let cookie = self.set_cookie(&session, tls);
        (session, cookie)
    }

    /// The request's live session, or a new one (`AutoStartSession`); the second value is
    /// the `Set-Cookie` header value to send when the session is new. An unknown or expired
    /// id (the seeds' `OnInvalidSession`) also gets a new session. Expired sessions are swept
    /// at most every `idle_timeout / 2`.
    ///
    /// # Panics
    /// As [`Sessions::start_at`].
    pub fn get_or_start_at(&self, request: &Request, now: Instant) -> (Session, Option<String>) {
        let swept = {
            let mut map = self.map();
            let due = map
                .last_sweep
                .is_none_or(|t| now.saturating_duration_since(t) >= self.config.idle_timeout / 2);
            if due {
                self.sweep(&mut map, now)
            } else {
                Vec::new()
            }
        };
        self.ended(swept);
        let presented = request.cookie(&self.config.cookie_name);
        if let Some(s) = presented.and_then(|id| self.find_at(id, now)) {
            return (s, None);
        }
        if let (Some(id), Some(hook)) = (presented, &self.on_invalid) {
            hook(id);
        }
        let (s, cookie) = self.start_for(Some(request), request.is_tls(), now);
        (s, Some(cookie))
    }

    /// [`Sessions::get_or_start_at`] now.
    ///
    /// # Panics
    /// As [`Sessions::start_at`].
    pub fn get_or_start(&self, request: &Request) -> (Session, Option<String>) {
        self.get_or_start_at(request, Instant::now())
    }

    /// Ends the session `id` (`on_end` with [`EndReason::Ended`]). Returns whether it existed.
    /// Send [`Sessions::clear_cookie`] so the browser forgets it too.
    pub fn end(&self, id: &str) -> bool {
        let removed = self.map().sessions.remove(id);
        match removed {
            Some(s) => {
                self.ended(vec![(s, EndReason::Ended)]);
                true
            }
            None => false,
        }
    }

    /// Removes every session idle past the timeout at `now` (`on_end` with
    /// [`EndReason::Expired`]); returns how many.
    pub fn purge_expired(&self, now: Instant) -> usize {
        let ended = self.sweep(&mut self.map(), now);
        let n = ended.len();
        self.ended(ended);
        n
    }

    fn sweep(&self, map: &mut Map, now: Instant) -> Vec<(Session, EndReason)> {
        map.last_sweep = Some(now);
        let timeout = self.config.idle_timeout;
        let expired: Vec<String> = map
            .sessions
            .iter()
            .filter(|(_, s)| s.expired(now, timeout))
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|id| map.sessions.remove(&id))
            .map(|s| (s, EndReason::Expired))
            .collect()
    }

    /// The `Set-Cookie` value that carries `session`: `NAME=ID; Path=/; HttpOnly;
    /// SameSite=Lax` and `; Secure` for TLS (see [`SessionConfig::secure`]). No `Max-Age`: the
    /// browser keeps it for its session, the server enforces the idle timeout.
    #[must_use]
    pub fn set_cookie(&self, session: &Session, tls: bool) -> String {
        self.cookie(session.id(), tls, false)
    }

    /// The `Set-Cookie` value that deletes the cookie (after [`Sessions::end`]).
    #[must_use]
    pub fn clear_cookie(&self, tls: bool) -> String {
        self.cookie("", tls, true)
    }

    fn cookie(&self, value: &str, tls: bool, clear: bool) -> String {
        let c = &self.config;
        let mut s = format!(
            "{}={value}; Path={}; HttpOnly; SameSite=Lax",
            c.cookie_name, c.path
        );
        if clear {
            s.push_str("; Max-Age=0");
        }
        if c.secure.unwrap_or(tls) {
            s.push_str("; Secure");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn request(cookie: Option<&str>, tls: bool) -> Request {
        let addr = "127.0.0.1:1".parse().unwrap();
        let mut headers = ws_http::Headers::new();
        headers.push("Host", "x");
        if let Some(c) = cookie {
            headers.push("Cookie", c);
        }
        Request {
            method: "GET".into(),
            target: "/".into(),
            version: ws_http::Version::Http11,
            headers,
            peer: addr,
            local: addr,
            tls,
            user: None,
            session: None,
        }
    }

    fn id_of(cookie: &str) -> &str {
        cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("wskit_session=")
            .unwrap()
    }

    #[test]
    fn invalid_ids_are_reported_before_a_new_session_starts() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let s2 = seen.clone();
        let sessions = Sessions::new(SessionConfig {
            idle_timeout: Duration::from_secs(10),
            ..SessionConfig::default()
        })
        .unwrap()
        .with_on_invalid(move |id| s2.lock().unwrap().push(id.to_owned()));
        let t0 = Instant::now();
        let (a, _) = sessions.get_or_start_at(&request(None, false), t0);
        // A live id and no cookie at all are not invalid.
        let live = format!("wskit_session={}", a.id());
        let _ = sessions.get_or_start_at(&request(Some(&live), false), t0);
        assert!(seen.lock().unwrap().is_empty());
        // A made-up id and an expired one are.
        let _ = sessions.get_or_start_at(
            &request(Some("wskit_session=AAAAAAAAAAAAAAAAAAAAAA"), false),
            t0,
        );
        let (b, _) =
            sessions.get_or_start_at(&request(Some(&live), false), t0 + Duration::from_secs(60));
        assert_ne!(b.id(), a.id(), "the expired session was not reused");
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["AAAAAAAAAAAAAAAAAAAAAA".to_owned(), a.id().to_owned()]
        );
    }

    #[test]
    fn created_sessions_carry_the_object_the_hook_builds() {
        struct Visitor {
            tls: bool,
            from_request: bool,
            hits: AtomicUsize,
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        let (o1, o2) = (order.clone(), order.clone());
        let sessions = Sessions::new(SessionConfig::default())
            .unwrap()
            .with_on_start(move |s| {
                // on_start runs after the object is attached.
                let attached = s.extension::<Visitor>().is_some();
                o2.lock().unwrap().push(format!("start {attached}"));
            })
            .with_on_create(move |_, request| {
                o1.lock().unwrap().push("create".to_owned());
                Visitor {
                    tls: request.is_some_and(Request::is_tls),
                    from_request: request.is_some(),
                    hits: AtomicUsize::new(0),
                }
            });
        let t0 = Instant::now();
        let (a, _) = sessions.get_or_start_at(&request(None, true), t0);
        let v = a.extension::<Visitor>().expect("attached at creation");
        assert!(v.tls && v.from_request);
        v.hits.fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            *order.lock().unwrap(),
            vec!["create".to_owned(), "start true".to_owned()]
        );
        // The same object comes back with the session, shared.
        let cookie = format!("wskit_session={}", a.id());
        let (again, new) = sessions.get_or_start_at(&request(Some(&cookie), false), t0);
        assert!(new.is_none());
        let v2 = again.extension::<Visitor>().unwrap();
        assert!(Arc::ptr_eq(&v, &v2));
        assert_eq!(v2.hits.load(Ordering::Relaxed), 1);
        // Only new sessions get one; start_at has no request.
        assert_eq!(order.lock().unwrap().len(), 2);
        let (b, _) = sessions.start_at(false, t0);
        let vb = b.extension::<Visitor>().unwrap();
        assert!(!vb.from_request && !vb.tls);
        assert!(!Arc::ptr_eq(&v, &vb));
        // One object per type, next to the strings.
        assert!(b.extension::<String>().is_none());
        assert!(b.insert_extension(String::from("x")).is_none());
        assert_eq!(
            b.insert_extension(String::from("y"))
                .as_deref()
                .map(String::as_str),
            Some("x")
        );
        assert_eq!(b.extension::<String>().unwrap().as_str(), "y");
        assert_eq!(b.remove_extension::<String>().unwrap().as_str(), "y");
        assert!(b.extension::<String>().is_none());
        assert!(b.get("x").is_none());
        // Without the hook a session has no object.
        let plain = Sessions::new(SessionConfig::default()).unwrap();
        assert!(plain.start_at(false, t0).0.extension::<Visitor>().is_none());
    }

    #[test]
    fn cookies_start_and_find_sessions() {
        let started = Arc::new(AtomicUsize::new(0));
        let s2 = started.clone();
        let sessions = Sessions::new(SessionConfig::default())
            .unwrap()
            .with_on_start(move |_| {
                s2.fetch_add(1, Ordering::Relaxed);
            });
        let t0 = Instant::now();
        let (a, cookie) = sessions.get_or_start_at(&request(None, false), t0);
        let cookie = cookie.unwrap();
        assert_eq!(
            cookie,
            format!("wskit_session={}; Path=/; HttpOnly; SameSite=Lax", a.id())
        );
        let id = id_of(&cookie);
        assert_eq!(id.len(), 22);
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(id)
                .unwrap()
                .len(),
            16
        );
        a.set("k", "v");
        let header = format!("other=1; wskit_session={id}; x=y");
        let (b, again) =
            sessions.get_or_start_at(&request(Some(&header), false), t0 + Duration::from_secs(5));
        assert!(again.is_none());
        assert_eq!(b.id(), a.id());
        assert_eq!(b.get("k").as_deref(), Some("v"));
        assert_eq!(b.last_access(), t0 + Duration::from_secs(5));
        // Unknown or malformed ids start a new session.
        let (c, cookie) = sessions.get_or_start_at(
            &request(Some("wskit_session=AAAAAAAAAAAAAAAAAAAAAA"), true),
            t0,
        );
        assert_ne!(c.id(), a.id());
        assert!(cookie.unwrap().ends_with("; Secure"));
        assert!(
            sessions
                .get_at(&request(Some("wskit_session=../x"), false), t0)
                .is_none()
        );
        assert_eq!(started.load(Ordering::Relaxed), 2);
        assert_eq!(sessions.len(), 2);
        // Ids are random.
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| sessions.start_at(false, t0).0.id().to_owned())
            .collect();
        assert_eq!(ids.len(), 1000);
        assert!(!format!("{a:?}").contains(a.id()));
    }

    #[test]
    fn idle_sessions_expire_lazily() {
        let ended = Arc::new(Mutex::new(Vec::new()));
        let e2 = ended.clone();
        let config = SessionConfig {
            idle_timeout: Duration::from_secs(60),
            ..SessionConfig::default()
        };
        let sessions = Sessions::new(config)
            .unwrap()
            .with_on_end(move |s, why| e2.lock().unwrap().push((s.get("n"), why)));
        let t0 = Instant::now();
        let (a, _) = sessions.start_at(false, t0);
        a.set("n", "a");
        let (b, _) = sessions.start_at(false, t0);
        b.set("n", "b");
        // Touched at 50 s: lives until 110 s.
        assert!(
            sessions
                .find_at(a.id(), t0 + Duration::from_secs(50))
                .is_some()
        );
        assert!(
            sessions
                .find_at(b.id(), t0 + Duration::from_secs(60))
                .is_none()
        );
        assert!(b.is_ended());
        assert_eq!(
            ended.lock().unwrap().clone(),
            vec![(Some("b".into()), EndReason::Expired)]
        );
        assert!(
            sessions
                .find_at(a.id(), t0 + Duration::from_secs(109))
                .is_some()
        );
        // The sweep in get_or_start removes sessions nobody asks for.
        let (c, _) = sessions.start_at(false, t0 + Duration::from_secs(109));
        let later = t0 + Duration::from_secs(200);
        let (_, cookie) = sessions.get_or_start_at(&request(None, false), later);
        assert!(cookie.is_some());
        assert_eq!(sessions.len(), 1);
        assert!(a.is_ended() && c.is_ended());
        assert_eq!(ended.lock().unwrap().len(), 3);
        assert_eq!(sessions.purge_expired(later + Duration::from_secs(60)), 1);
        assert!(sessions.is_empty());
    }

    #[test]
    fn end_and_eviction() {
        let ended = Arc::new(Mutex::new(Vec::new()));
        let e2 = ended.clone();
        let config = SessionConfig {
            max_sessions: 2,
            cookie_name: "sid".into(),
            secure: Some(true),
            ..SessionConfig::default()
        };
        let sessions = Sessions::new(config)
            .unwrap()
            .with_on_end(move |s, why| e2.lock().unwrap().push((s.id().to_owned(), why)));
        let t0 = Instant::now();
        let (a, cookie) = sessions.start_at(false, t0);
        assert!(cookie.starts_with("sid=") && cookie.ends_with("; Secure"));
        let (b, _) = sessions.start_at(false, t0 + Duration::from_secs(1));
        assert!(
            sessions
                .find_at(a.id(), t0 + Duration::from_secs(2))
                .is_some()
        );
        // Full: the least recently used (b) goes.
        let (c, _) = sessions.start_at(false, t0 + Duration::from_secs(3));
        assert_eq!(sessions.len(), 2);
        assert!(b.is_ended());
        assert!(sessions.end(a.id()));
        assert!(!sessions.end(a.id()));
        assert_eq!(
            ended.lock().unwrap().clone(),
            vec![
                (b.id().to_owned(), EndReason::Evicted),
                (a.id().to_owned(), EndReason::Ended)
            ]
        );
        let req = request(Some(&format!("sid={}", c.id())), false);
        assert_eq!(
            sessions
                .get_at(&req, t0 + Duration::from_secs(4))
                .unwrap()
                .id(),
            c.id()
        );
        assert_eq!(
            sessions.clear_cookie(false),
            "sid=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let d = SessionConfig::default;
        for (field, config) in [
            (
                "SessionConfig::cookie_name",
                SessionConfig {
                    cookie_name: "a b".into(),
                    ..d()
                },
            ),
            (
                "SessionConfig::cookie_name",
                SessionConfig {
                    cookie_name: String::new(),
                    ..d()
                },
            ),
            (
                "SessionConfig::idle_timeout",
                SessionConfig {
                    idle_timeout: Duration::ZERO,
                    ..d()
                },
            ),
            (
                "SessionConfig::path",
                SessionConfig {
                    path: "/a;b".into(),
                    ..d()
                },
            ),
            (
                "SessionConfig::max_sessions",
                SessionConfig {
                    max_sessions: 0,
                    ..d()
                },
            ),
        ] {
            let Err(e) = Sessions::new(config) else {
                panic!("{field}: accepted");
            };
            let got = match &e {
                Error::Setting { field, .. } => *field,
                Error::SettingValue(bad) => bad.field,
                other => panic!("untyped error {other:?}"),
            };
            assert_eq!(got, field, "{e}");
        }
    }
}
