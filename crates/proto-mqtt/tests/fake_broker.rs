//! The client against a scripted broker of our own (a test double, not a real broker): hostile
//! and unusual server behaviour that mosquitto never shows, and MQTT 5 enhanced
//! authentication, which mosquitto does not offer without plugins.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proto_mqtt::{
    Authenticator, Backoff, Client, Config, Error, Event, Initiator, QoS, ReasonCode, Version,
    packet::{
        Auth, AuthProperties, Codec, ConnAck, Disconnect, DisconnectProperties, Packet, publish,
    },
    session::{connect_properties, publish_properties},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

const T: Duration = Duration::from_secs(10);

/// One accepted connection of the fake broker.
struct Conn {
    s: TcpStream,
    codec: Codec,
    rx: BytesMut,
}

impl Conn {
    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = self.codec.decode(&mut self.rx).unwrap() {
                return Some(p);
            }
            let n = tokio::time::timeout(T, self.s.read_buf(&mut self.rx))
                .await
                .expect("client silent")
                .unwrap();
            if n == 0 {
                return None;
            }
        }
    }
    async fn send(&mut self, p: Packet) {
        let mut b = BytesMut::new();
        self.codec.encode(&p, &mut b).unwrap();
        self.s.write_all(&b).await.unwrap();
    }
    async fn connack(&mut self) {
        self.send(Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::SUCCESS,
            properties: None,
        }))
        .await;
    }
}

async fn listen() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("mqtt://{}", l.local_addr().unwrap());
    (l, url)
}

async fn accept(l: &TcpListener) -> Conn {
    let (s, _) = tokio::time::timeout(T, l.accept()).await.unwrap().unwrap();
    let mut c = Conn {
        s,
        codec: Codec::new(Version::V5, 1 << 20),
        rx: BytesMut::new(),
    };
    assert!(matches!(c.recv().await, Some(Packet::Connect(_))));
    c
}

fn config() -> Config {
    let mut c = Config::default();
    let mut b = Backoff::default();
    b.initial = Duration::from_millis(20);
    c.reconnect = Some(b);
    c
}

async fn disconnected(events: &mut proto_mqtt::Events) -> proto_mqtt::session::DisconnectInfo {
    loop {
        if let Event::Disconnected(d) = tokio::time::timeout(T, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            return d;
        }
    }
}

#[tokio::test]
async fn an_unknown_topic_alias_closes_with_protocol_error_then_reconnects() {
    let (l, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut c = accept(&l).await;
        c.connack().await;
        let mut p = publish("", QoS::AtMostOnce, "x");
        let mut props = publish_properties();
        props.topic_alias = Some(5);
        p.properties = Some(props);
        c.send(Packet::Publish(p)).await;
        let reason = match c.recv().await {
            Some(Packet::Disconnect(d)) => d.reason,
            other => panic!("{other:?}"),
        };
        // The client comes back.
        let mut c2 = accept(&l).await;
        c2.connack().await;
        (reason, c2)
    });
    let (client, mut events) = Client::connect(&url, config()).await.unwrap();
    let d = disconnected(&mut events).await;
    assert_eq!(d.reason, ReasonCode::PROTOCOL_ERROR);
    assert_eq!(d.by, Initiator::Local);
    let (reason, _c2) = server.await.unwrap();
    assert_eq!(reason, ReasonCode::PROTOCOL_ERROR);
    let deadline = tokio::time::Instant::now() + T;
    while client.connections() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_oversized_packet_closes_with_packet_too_large() {
    let (l, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut c = accept(&l).await;
        c.connack().await;
        c.send(Packet::Publish(publish(
            "big",
            QoS::AtMostOnce,
            vec![7u8; 4000],
        )))
        .await;
        match c.recv().await {
            Some(Packet::Disconnect(d)) => d.reason,
            other => panic!("{other:?}"),
        }
    });
    let mut cfg = config();
    cfg.max_incoming_packet = 1024;
    cfg.reconnect = None;
    let (_client, mut events) = Client::connect(&url, cfg).await.unwrap();
    assert_eq!(
        disconnected(&mut events).await.reason,
        ReasonCode::PACKET_TOO_LARGE
    );
    assert_eq!(server.await.unwrap(), ReasonCode::PACKET_TOO_LARGE);
}

#[tokio::test]
async fn hostile_bytes_never_crash_the_client() {
    // Random garbage after CONNACK: the client closes (malformed) and stays usable as a
    // handle; nothing panics.
    for seed in 0..20u64 {
        let (l, url) = listen().await;
        let server = tokio::spawn(async move {
            let mut c = accept(&l).await;
            c.connack().await;
            let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let junk: Vec<u8> = (0..512)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let _ = c.s.write_all(&junk).await;
            let _ = tokio::time::timeout(Duration::from_millis(500), c.recv()).await;
        });
        let mut cfg = config();
        cfg.reconnect = None;
        let (client, mut events) = Client::connect(&url, cfg).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(2), disconnected(&mut events)).await;
        let _ = client.publish("a", "b", QoS::AtMostOnce, false).await;
        server.await.unwrap();
    }
}

#[tokio::test]
async fn server_disconnect_with_a_server_reference_is_an_event() {
    let (l, url) = listen().await;
    tokio::spawn(async move {
        let mut c = accept(&l).await;
        c.connack().await;
        c.send(Packet::Disconnect(Disconnect {
            reason: ReasonCode::SERVER_MOVED,
            properties: Some(DisconnectProperties {
                server_reference: Some("mqtt://other.example:1883".into()),
                reason_string: Some("maintenance".into()),
                ..DisconnectProperties::default()
            }),
        }))
        .await;
        let _ = c.recv().await;
    });
    let mut cfg = config();
    cfg.reconnect = None;
    let (_client, mut events) = Client::connect(&url, cfg).await.unwrap();
    let d = disconnected(&mut events).await;
    assert_eq!(d.reason, ReasonCode::SERVER_MOVED);
    assert_eq!(d.by, Initiator::Remote);
    let p = d.properties.unwrap();
    assert_eq!(
        p.server_reference.as_deref(),
        Some("mqtt://other.example:1883")
    );
    assert_eq!(p.reason_string.as_deref(), Some("maintenance"));
}

/// The test double's challenge/response: the client must answer `nonce` with
/// `nonce + ":" + secret`.
fn expected(nonce: &[u8], secret: &str) -> Vec<u8> {
    [nonce, b":", secret.as_bytes()].concat()
}

#[tokio::test]
async fn enhanced_authentication_and_reauthentication() {
    let (l, url) = listen().await;
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut c = Conn {
            s,
            codec: Codec::new(Version::V5, 1 << 20),
            rx: BytesMut::new(),
        };
        let Some(Packet::Connect(connect)) = c.recv().await else {
            panic!()
        };
        let props = connect.properties.unwrap();
        assert_eq!(
            props.authentication_method.as_deref(),
            Some("TEST-CHALLENGE")
        );
        assert_eq!(props.authentication_data.as_deref(), Some(&b"hello"[..]));
        let mut rounds = Vec::new();
        for (i, nonce) in [&b"n1"[..], &b"n2"[..]].into_iter().enumerate() {
            if i == 1 {
                // Re-authentication, started by the client.
                let Some(Packet::Auth(a)) = c.recv().await else {
                    panic!()
                };
                assert_eq!(a.reason, ReasonCode::REAUTHENTICATE);
            }
            c.send(Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: Some(AuthProperties {
                    method: Some("TEST-CHALLENGE".into()),
                    data: Some(Bytes::copy_from_slice(nonce)),
                    ..AuthProperties::default()
                }),
            }))
            .await;
            let Some(Packet::Auth(answer)) = c.recv().await else {
                panic!()
            };
            assert_eq!(answer.reason, ReasonCode::CONTINUE_AUTHENTICATION);
            let data = answer.properties.unwrap().data.unwrap();
            rounds.push(data == expected(nonce, "s3cret"));
            if i == 0 {
                c.connack().await;
            } else {
                c.send(Packet::Auth(Auth {
                    reason: ReasonCode::SUCCESS,
                    properties: None,
                }))
                .await;
            }
        }
        let _ = c.recv().await;
        rounds
    });
    let mut cfg = config();
    let mut props = connect_properties();
    props.authentication_method = Some("TEST-CHALLENGE".into());
    props.authentication_data = Some(Bytes::from_static(b"hello"));
    cfg.connect_properties = Some(props);
    cfg.authenticator = Some(Authenticator::new(|method, data| {
        assert_eq!(method, "TEST-CHALLENGE");
        Ok(Some(Bytes::from(expected(
            data.unwrap_or_default(),
            "s3cret",
        ))))
    }));
    let (client, mut events) = Client::connect(&url, cfg).await.unwrap();
    client
        .auth(
            ReasonCode::REAUTHENTICATE,
            AuthProperties {
                method: Some("TEST-CHALLENGE".into()),
                ..AuthProperties::default()
            },
        )
        .await
        .unwrap();
    // Events: the first challenge, the re-authentication challenge, the final success.
    let mut auths = Vec::new();
    while auths.len() < 3 {
        if let Event::Auth(a) = tokio::time::timeout(T, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            auths.push(a.reason);
        }
    }
    assert_eq!(
        auths,
        vec![
            ReasonCode::CONTINUE_AUTHENTICATION,
            ReasonCode::CONTINUE_AUTHENTICATION,
            ReasonCode::SUCCESS
        ]
    );
    client.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
    assert_eq!(server.await.unwrap(), vec![true, true]);
}

#[tokio::test]
async fn a_refused_connack_is_an_error_and_not_retried() {
    let (l, url) = listen().await;
    let server = tokio::spawn(async move {
        let mut c = accept(&l).await;
        c.send(Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            properties: None,
        }))
        .await;
        // No second attempt arrives.
        assert!(
            tokio::time::timeout(Duration::from_millis(300), l.accept())
                .await
                .is_err()
        );
    });
    match Client::connect(&url, config()).await {
        Err(Error::Refused(code)) => assert_eq!(code, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        other => panic!("{other:?}"),
    }
    server.await.unwrap();
}
