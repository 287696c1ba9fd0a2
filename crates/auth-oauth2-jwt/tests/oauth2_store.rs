//! The SQLite store on its own: migrations, one-time redemption, families, users.

use auth_oauth2_jwt::oauth2::{
    App, OsRandom, SqliteStore, Store, TokenKind, TokenRecord, password,
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
