//! The SQLite store on its own: migrations, one-time redemption, families, users, pending
//! sign-ins (and one that survives a restart of the server between its page and its form).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use auth_oauth2_jwt::{
    Config,
    oauth2::{
        App, AuthServer, OsRandom, PendingSignIn, SqliteStore, Store, TokenKind, TokenRecord,
        password, server::AuthorizeAnswer,
    },
};

fn record(hash: &str, family: &str) -> TokenRecord {
    TokenRecord {
        hash: hash.into(),
        kind: TokenKind::Refresh,
        client_id: "c".into(),
        subject: Some("alice".into()),
        scope: "a b".into(),
        family: family.into(),
        issued_at: 10,
        expires_at: 100,
        revoked: false,
        used: false,
        extra: String::new(),
    }
}

#[test]
fn reopening_keeps_everything_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.put_app(&App {
            client_id: "c".into(),
            name: "App".into(),
            secret_hash: Some("ab".into()),
            redirect_uris: vec!["https://a/cb".into()],
            grants: vec!["authorization_code".into()],
            access_ttl: Some(60),
            created_at: 1,
        })
        .unwrap();
        s.put_token(&record("h1", "f")).unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    let app = s.app("c").unwrap().unwrap();
    assert_eq!((app.redirect_uris.len(), app.access_ttl), (1, Some(60)));
    assert!(
        !format!("{app:?}").contains("ab\""),
        "the secret digest is not printed"
    );
    assert_eq!(s.token("h1").unwrap().unwrap(), record("h1", "f"));
    assert!(s.remove_app("c").unwrap());
    assert!(
        s.token("h1").unwrap().is_none(),
        "an app's tokens go with it"
    );
}

#[test]
fn a_token_is_marked_used_once_and_families_are_revoked_together() {
    let s = SqliteStore::memory().unwrap();
    s.put_token(&record("h1", "f")).unwrap();
    s.put_token(&record("h2", "f")).unwrap();
    s.put_token(&record("h3", "g")).unwrap();
    assert!(s.mark_used("h1").unwrap());
    assert!(!s.mark_used("h1").unwrap(), "the second redemption loses");
    assert_eq!(s.revoke_family("f").unwrap(), 2);
    assert!(s.token("h2").unwrap().unwrap().revoked);
    assert!(!s.token("h3").unwrap().unwrap().revoked);
    assert_eq!(s.purge_expired(101).unwrap(), 3);
}

#[test]
fn users_have_argon2_hashes() {
    let s = SqliteStore::memory().unwrap();
    let hash = password::hash_with_cost("wonderland", 64, 1, &OsRandom).unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("wonderland"));
    s.put_user("alice", &hash).unwrap();
    let stored = s.user("alice").unwrap().unwrap();
    assert!(password::verify("wonderland", &stored));
    assert!(!password::verify("Wonderland", &stored));
    assert!(s.remove_user("alice").unwrap());
    assert!(s.user("alice").unwrap().is_none());
}

fn pending(id_hash: &str, expires_at: u64) -> PendingSignIn {
    PendingSignIn {
        id_hash: id_hash.into(),
        client_id: "c".into(),
        redirect_uri: "http://127.0.0.1/callback".into(),
        scope: "chat".into(),
        state: Some("s".into()),
        challenge: "x".repeat(43),
        csrf_hash: "ab".into(),
        expires_at,
    }
}

#[test]
fn pending_sign_ins_expire_are_removed_once_and_are_capped() {
    let s = SqliteStore::memory().unwrap();
    assert!(s.put_pending(&pending("p1", 100), 10, 2).unwrap());
    assert!(s.put_pending(&pending("p2", 50), 10, 2).unwrap());
    assert!(
        !s.put_pending(&pending("p3", 100), 10, 2).unwrap(),
        "the cap: two unexpired already"
    );
    assert_eq!(s.pending("p1", 10).unwrap().unwrap(), pending("p1", 100));
    assert!(s.pending("p3", 10).unwrap().is_none());
    assert!(s.pending("p2", 50).unwrap().is_none(), "expired at 50");
    // p2 expired: room again.
    assert!(s.put_pending(&pending("p3", 100), 60, 2).unwrap());
    assert!(s.remove_pending("p1").unwrap());
    assert!(!s.remove_pending("p1").unwrap(), "removed once");
    assert!(!format!("{:?}", pending("secretdigest", 1)).contains("secretdigest"));
    assert_eq!(s.purge_expired(100).unwrap(), 1, "p3 expires at 100");
}

#[test]
fn a_sign_in_survives_a_restart_between_page_and_form() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let now = SystemTime::now();
    let server = |path: &std::path::Path| {
        AuthServer::new(
            Config::default(),
            Arc::new(SqliteStore::open(path).unwrap()),
            Arc::new(OsRandom),
        )
        .unwrap()
    };
    let first = server(&path);
    let (app, _) = first
        .register_app(
            "desktop",
            &["http://127.0.0.1/callback".into()],
            &[],
            false,
            now,
        )
        .unwrap();
    let hash = password::hash_with_cost("wonderland", 64, 1, &OsRandom).unwrap();
    SqliteStore::open(&path)
        .unwrap()
        .put_user("alice", &hash)
        .unwrap();
    let query = format!(
        "response_type=code&client_id={}&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback\
         &code_challenge={}&code_challenge_method=S256&state=s1&scope=chat",
        app.client_id, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    let AuthorizeAnswer::Page { page, .. } = first.authorize(&query, now) else {
        panic!("no sign-in page");
    };
    drop(first);

    // A new server on the same database takes the form.
    let second = server(&path);
    let form: HashMap<String, String> = [
        ("id", page.id.as_str()),
        ("csrf", page.csrf.as_str()),
        ("username", "alice"),
        ("password", "wonderland"),
        ("action", "allow"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    // A wrong CSRF cookie is still refused.
    let AuthorizeAnswer::Error { status: 403, .. } =
        second.sign_in(&form, Some("not-the-token"), now)
    else {
        panic!("the CSRF cookie is checked against the stored digest");
    };
    match second.sign_in(&form, Some(&page.csrf), now + Duration::from_secs(1)) {
        AuthorizeAnswer::Redirect(to) => {
            assert!(
                to.starts_with("http://127.0.0.1:5000/callback?code="),
                "{to}"
            );
            assert!(to.contains("state=s1"), "{to}");
        }
        other => panic!("no redirect with a code: {other:?}"),
    }
    // Completed once: the same form again finds nothing.
    let AuthorizeAnswer::Error { status: 400, .. } = second.sign_in(&form, Some(&page.csrf), now)
    else {
        panic!("a completed sign-in cannot be completed again");
    };
    // The page's id expires with pending_ttl (600 s), after a restart too.
    let AuthorizeAnswer::Page { page, .. } = second.authorize(&query, now) else {
        panic!("no sign-in page");
    };
    let mut form = form;
    form.insert("id".into(), page.id.clone());
    form.insert("csrf".into(), page.csrf.clone());
    let later = now + Duration::from_secs(601);
    let AuthorizeAnswer::Error { status: 400, .. } =
        server(&path).sign_in(&form, Some(&page.csrf), later)
    else {
        panic!("an expired sign-in is refused");
    };
}
