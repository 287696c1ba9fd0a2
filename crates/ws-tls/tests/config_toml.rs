//! The config structs read from TOML (feature `serde`), as the binary's wskit.toml will.

use std::path::PathBuf;

use ws_tls::{ClientTlsConfig, KeyPassword, ServerTlsConfig, TlsVersion};

#[test]
fn server_config_reads_from_toml_with_defaults_for_missing_fields() {
    let cfg: ServerTlsConfig = toml::from_str(
        r#"
        cert_file = "server.pem"
        key_file = "server.key"
        key_password = "s3cret"
        min_version = "1.3"

        [client_auth]
        ca_file = "clients-ca.pem"

        [[sni]]
        host = "a.example"
        cert_file = "a.pem"
        "#,
    )
    .unwrap();
    assert_eq!(cfg.cert_file, PathBuf::from("server.pem"));
    assert_eq!(cfg.key_file, Some(PathBuf::from("server.key")));
    assert_eq!(cfg.key_password, Some(KeyPassword::new("s3cret")));
    assert_eq!(cfg.min_version, TlsVersion::Tls13);
    let auth = cfg.client_auth.as_ref().unwrap();
    assert_eq!(auth.ca_file, PathBuf::from("clients-ca.pem"));
    assert!(
        auth.required,
        "client certificates are required unless said otherwise"
    );
    assert_eq!(cfg.sni.len(), 1);
    assert_eq!(cfg.sni[0].key_file, None);
    assert_eq!(cfg.alpn, ServerTlsConfig::default().alpn);
    assert!(!format!("{cfg:?}").contains("s3cret"));
}

#[test]
fn client_config_reads_from_toml_and_empty_table_is_the_default() {
    let empty: ClientTlsConfig = toml::from_str("").unwrap();
    assert_eq!(empty, ClientTlsConfig::default());
    let cfg: ClientTlsConfig = toml::from_str(
        r#"
        ca_file = "ca.pem"
        webpki_roots = false
        alpn = ["http/1.1"]
        danger_accept_invalid_certs = true
        "#,
    )
    .unwrap();
    assert_eq!(cfg.ca_file, Some(PathBuf::from("ca.pem")));
    assert!(!cfg.webpki_roots && cfg.danger_accept_invalid_certs && cfg.enable_sni);
    assert_eq!(cfg.alpn, vec!["http/1.1".to_owned()]);
}

#[test]
fn unknown_fields_and_versions_are_rejected() {
    assert!(toml::from_str::<ServerTlsConfig>("cert = \"x.pem\"").is_err());
    assert!(toml::from_str::<ClientTlsConfig>("min_version = \"1.1\"").is_err());
    assert!(toml::from_str::<ServerTlsConfig>("[client_auth]\nrequired = false").is_err());
}
