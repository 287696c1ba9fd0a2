//! Interop against mosquitto 2.0 and paho-mqtt: every transport, both protocol versions,
//! QoS 0/1/2 both ways, retained messages, will, session present, ACL denial, the broker's
//! `max_inflight_messages`, v5 features.
//!
//! Each test starts its own broker on free ports. Without mosquitto (or paho-mqtt) a test
//! prints `SKIPPED: ...` and passes, unless `WSKIT_REQUIRE_PEERS=1` makes it fail.

mod common;

use std::{io::BufRead as _, time::Duration};

use bytes::Bytes;
use common::{Mosquitto, Opts};
use proto_mqtt::{
    Client, Error, Event, Events, QoS, ReasonCode, Version, Will,
    packet::{Publish, SubscribeProperties, subscribe_filter},
    session::publish_properties,
};

const T: Duration = Duration::from_secs(10);

async fn next_publish(events: &mut Events) -> Publish {
    loop {
        match tokio::time::timeout(T, events.recv()).await {
            Ok(Some(Event::Publish(p))) => return p,
            Ok(Some(_)) => {}
            Ok(None) => panic!("client ended"),
            Err(_) => panic!("no message within {T:?}"),
        }
    }
}

async fn no_publish(events: &mut Events, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => return,
            Ok(Some(Event::Publish(p))) => panic!("unexpected message on {}", p.topic),
            Ok(Some(_)) => {}
            Ok(None) => return,
        }
    }
}

fn qos_of(p: &Publish) -> u8 {
    p.qos as u8
}

#[tokio::test]
async fn every_transport_and_version_carries_qos_0_1_2_both_ways() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    let urls = [
        format!("mqtt://127.0.0.1:{}", broker.tcp),
        format!("ws://127.0.0.1:{}/mqtt", broker.ws),
        format!("mqtts://localhost:{}", broker.tls),
        format!("wss://127.0.0.1:{}/", broker.wss),
    ];
    for url in &urls {
        for version in [Version::V311, Version::V5] {
            let topic = format!("t/{}/{version:?}", url.split(':').next().unwrap());
            let (sub, mut sub_events) = Client::connect(url, broker.config(version))
                .await
                .unwrap_or_else(|e| panic!("{url} {version:?}: {e}"));
            let ack = sub
                .subscribe(format!("{topic}/#"), QoS::ExactlyOnce)
                .await
                .unwrap();
            assert_eq!(ack.codes, vec![ReasonCode::GRANTED_QOS_2], "{url}");
            let (publ, _pe) = Client::connect(url, broker.config(version)).await.unwrap();
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let mut p = proto_mqtt::packet::publish(
                    format!("{topic}/{}", qos as u8),
                    qos,
                    Bytes::from(format!("{url} {qos:?}")),
                );
                p.retain = false;
                let ack = publ.publish_and_wait(p, T).await.unwrap();
                assert!(ack.reason.is_success(), "{url} {qos:?}: {ack:?}");
                let got = next_publish(&mut sub_events).await;
                assert_eq!(got.topic, format!("{topic}/{}", qos as u8));
                assert_eq!(&got.payload[..], format!("{url} {qos:?}").as_bytes());
                assert_eq!(qos_of(&got), qos as u8, "{url} {version:?}");
            }
            publ.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
            sub.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        }
    }
}

#[tokio::test]
async fn retained_messages_are_set_and_cleared() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    for version in [Version::V311, Version::V5] {
        let topic = format!("retained/{version:?}");
        let (c, _e) = Client::connect(&broker.url(), broker.config(version))
            .await
            .unwrap();
        let mut p = proto_mqtt::packet::publish(topic.clone(), QoS::AtLeastOnce, "kept");
        p.retain = true;
        c.publish_and_wait(p, T).await.unwrap();

        let (late, mut le) = Client::connect(&broker.url(), broker.config(version))
            .await
            .unwrap();
        late.subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .unwrap();
        let got = next_publish(&mut le).await;
        assert!(got.retain, "retained flag set for a retained message");
        assert_eq!(&got.payload[..], b"kept");

        c.clear_retained(topic.clone()).await.unwrap();
        // A QoS 1 round trip after the clear makes sure the broker processed it.
        c.publish_and_wait(proto_mqtt::packet::publish("sync", QoS::AtLeastOnce, ""), T)
            .await
            .unwrap();
        let (later, mut le2) = Client::connect(&broker.url(), broker.config(version))
            .await
            .unwrap();
        later
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .unwrap();
        no_publish(&mut le2, Duration::from_millis(400)).await;
        for x in [c, late, later] {
            x.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        }
    }
}

#[tokio::test]
async fn the_will_is_delivered_on_an_abrupt_close() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    for version in [Version::V311, Version::V5] {
        let relay = common::relay::Relay::start(broker.tcp).await;
        let topic = format!("will/{version:?}");
        let (watcher, mut we) = Client::connect(&broker.url(), broker.config(version))
            .await
            .unwrap();
        watcher
            .subscribe(topic.clone(), QoS::AtLeastOnce)
            .await
            .unwrap();

        let mut config = broker.config(version);
        let mut will = Will::new(topic.clone(), "gone");
        will.qos = QoS::AtLeastOnce;
        config.will = Some(will);
        config.reconnect = None;
        let (dying, _de) = Client::connect(&relay.url(), config).await.unwrap();
        assert!(dying.is_connected());
        relay.drop_all();
        let got = next_publish(&mut we).await;
        assert_eq!(&got.payload[..], b"gone");

        // A normal DISCONNECT sends no will.
        let mut config = broker.config(version);
        config.will = Some(Will::new(topic.clone(), "not sent"));
        let (polite, _pe) = Client::connect(&broker.url(), config).await.unwrap();
        polite.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        no_publish(&mut we, Duration::from_millis(400)).await;
        watcher.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
    }
}

#[tokio::test]
async fn session_present_after_reconnect_without_clean_session() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    for version in [Version::V311, Version::V5] {
        let id = format!("resume-{version:?}");
        let topic = format!("resume/{version:?}");
        let mut config = broker.config(version);
        config.client_id = Some(id.clone());
        config.clean_start = false;
        config.session_expiry = 300;
        let (c, mut e) = Client::connect(&broker.url(), config.clone())
            .await
            .unwrap();
        match tokio::time::timeout(T, e.recv()).await.unwrap() {
            Some(Event::Connected(ack)) => assert!(ack.code.is_success()),
            other => panic!("{other:?}"),
        }
        c.subscribe(topic.clone(), QoS::AtLeastOnce).await.unwrap();
        c.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        drop(e);

        let (p, _pe) = Client::connect(&broker.url(), broker.config(version))
            .await
            .unwrap();
        p.publish_and_wait(
            proto_mqtt::packet::publish(topic.clone(), QoS::AtLeastOnce, "while away"),
            T,
        )
        .await
        .unwrap();

        let (c, mut e) = Client::connect(&broker.url(), config).await.unwrap();
        match tokio::time::timeout(T, e.recv()).await.unwrap() {
            Some(Event::Connected(ack)) => assert!(ack.session_present, "{version:?}"),
            other => panic!("{other:?}"),
        }
        let got = next_publish(&mut e).await;
        assert_eq!(&got.payload[..], b"while away");
        c.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        p.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
    }
}

#[tokio::test]
async fn password_file_and_acl_denial_reach_the_caller() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    let url = format!("mqtt://127.0.0.1:{}", broker.auth);
    for version in [Version::V311, Version::V5] {
        // Wrong password: refused, no retry.
        let mut bad = broker.config(version);
        bad.credentials = Some(("alice".into(), "nope".into()));
        match Client::connect(&url, bad).await {
            Err(Error::Refused(code)) => assert!(!code.is_success(), "{code}"),
            other => panic!("{version:?}: {other:?}"),
        }
        // Credentials in the URL.
        let (c, _e) = Client::connect(
            &format!("mqtt://alice:wonderland@127.0.0.1:{}", broker.auth),
            broker.config(version),
        )
        .await
        .unwrap();
        let ok = c.subscribe("public/x", QoS::AtLeastOnce).await.unwrap();
        assert_eq!(ok.codes, vec![ReasonCode::GRANTED_QOS_1]);
        let denied = c.subscribe("secret/x", QoS::AtLeastOnce).await.unwrap();
        let expected = match version {
            Version::V311 => ReasonCode(0x80),
            Version::V5 => ReasonCode::NOT_AUTHORIZED,
        };
        assert_eq!(denied.codes, vec![expected], "{version:?}");
        if version == Version::V5 {
            // A denied PUBLISH: PUBACK with 0x87 reaches publish_and_wait.
            let ack = c
                .publish_and_wait(
                    proto_mqtt::packet::publish("secret/x", QoS::AtLeastOnce, "no"),
                    T,
                )
                .await
                .unwrap();
            assert_eq!(ack.reason, ReasonCode::NOT_AUTHORIZED);
        }
        c.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
    }
}

#[tokio::test]
async fn the_client_never_exceeds_the_brokers_receive_maximum() {
    let Some(broker) = Mosquitto::start(Opts {
        max_inflight: Some(2),
        ..Opts::default()
    }) else {
        return;
    };
    let (sub, mut se) = Client::connect(&broker.url(), broker.config(Version::V5))
        .await
        .unwrap();
    sub.subscribe("window/#", QoS::ExactlyOnce).await.unwrap();
    let (c, mut ce) = Client::connect(&broker.url(), broker.config(Version::V5))
        .await
        .unwrap();
    match ce.recv().await {
        Some(Event::Connected(ack)) => {
            let rm = ack.properties.as_ref().and_then(|p| p.receive_max);
            assert_eq!(
                rm,
                Some(2),
                "mosquitto announces max_inflight_messages as Receive Maximum"
            );
        }
        other => panic!("{other:?}"),
    }
    let n = 100;
    let mut waits = Vec::new();
    for i in 0..n {
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        let c = c.clone();
        waits.push(tokio::spawn(async move {
            c.publish_and_wait(
                proto_mqtt::packet::publish(format!("window/{i}"), qos, format!("{i}")),
                T,
            )
            .await
        }));
    }
    for w in waits {
        let ack = w.await.unwrap().unwrap();
        assert!(ack.reason.is_success());
    }
    assert_eq!(c.inflight_peak(), 2, "a full window of 2, never more");
    let mut got = std::collections::HashSet::new();
    while got.len() < n {
        got.insert(next_publish(&mut se).await.topic);
    }
    // No DISCONNECT 0x93 (Receive Maximum exceeded) from the broker.
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(100), ce.recv()).await {
        assert!(!matches!(ev, Event::Disconnected(_)), "{ev:?}");
    }
    assert_eq!(c.connections(), 1);
}

#[tokio::test]
async fn v5_features_against_mosquitto() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    let cfg = broker.config(Version::V5);
    let (a, mut ae) = Client::connect(&broker.url(), cfg.clone()).await.unwrap();
    let (b, mut be) = Client::connect(&broker.url(), cfg).await.unwrap();

    // Subscription identifier and user properties come back on the message.
    let props = SubscribeProperties {
        id: Some(42),
        user_properties: vec![],
    };
    let mut f = subscribe_filter("v5/props", QoS::AtLeastOnce);
    f.nolocal = true;
    a.subscribe_many(vec![f], Some(props)).await.unwrap();
    let mut p = proto_mqtt::packet::publish("v5/props", QoS::AtLeastOnce, "hello");
    let mut pp = publish_properties();
    pp.user_properties.push(("k".into(), "v".into()));
    pp.content_type = Some("text/plain".into());
    p.properties = Some(pp);
    b.publish_and_wait(p, T).await.unwrap();
    let got = next_publish(&mut ae).await;
    let gp = got.properties.unwrap();
    assert_eq!(gp.subscription_identifiers, vec![42]);
    assert_eq!(gp.user_properties, vec![("k".to_string(), "v".to_string())]);
    assert_eq!(gp.content_type.as_deref(), Some("text/plain"));

    // No Local: a's own message is not delivered back to it.
    a.publish_and_wait(
        proto_mqtt::packet::publish("v5/props", QoS::AtLeastOnce, "mine"),
        T,
    )
    .await
    .unwrap();
    no_publish(&mut ae, Duration::from_millis(300)).await;

    // Outgoing topic aliases (mosquitto allows 10): many messages to one topic arrive whole.
    b.subscribe("v5/alias", QoS::AtMostOnce).await.unwrap();
    for i in 0..5 {
        a.publish_and_wait(
            proto_mqtt::packet::publish("v5/alias", QoS::AtLeastOnce, format!("{i}")),
            T,
        )
        .await
        .unwrap();
    }
    for i in 0..5 {
        let got = next_publish(&mut be).await;
        assert_eq!(got.topic, "v5/alias");
        assert_eq!(got.payload, Bytes::from(format!("{i}")));
    }

    // Request / response: b answers on the response topic with the correlation data.
    b.subscribe("v5/req", QoS::AtLeastOnce).await.unwrap();
    a.subscribe("v5/resp/a", QoS::AtLeastOnce).await.unwrap();
    let responder = {
        let b = b.clone();
        tokio::spawn(async move {
            let req = next_publish(&mut be).await;
            let rp = req.properties.unwrap();
            let mut answer = proto_mqtt::packet::publish(
                rp.response_topic.unwrap(),
                QoS::AtLeastOnce,
                format!("re: {}", String::from_utf8_lossy(&req.payload)),
            );
            let mut props = publish_properties();
            props.correlation_data = rp.correlation_data;
            answer.properties = Some(props);
            b.publish_and_wait(answer, T).await.unwrap();
        })
    };
    let reply = a
        .request(
            proto_mqtt::packet::publish("v5/req", QoS::AtLeastOnce, "ping"),
            "v5/resp/a",
            T,
        )
        .await
        .unwrap();
    assert_eq!(&reply.payload[..], b"re: ping");
    responder.await.unwrap();

    // Disconnect with a reason: the broker publishes the will on 0x04.
    a.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
    b.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
}

#[tokio::test]
async fn paho_receives_what_we_publish_at_every_qos() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    if !common::have_paho() {
        return;
    }
    for v5 in [false, true] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let topic = format!("paho/in/{v5}/{}", qos as u8);
            let n = 20;
            let mut child = common::paho_subscriber(broker.tcp, v5, &topic, qos as u8, n);
            let stdout = child.stdout.take().unwrap();
            let mut lines = std::io::BufReader::new(stdout).lines();
            assert_eq!(lines.next().unwrap().unwrap(), "READY");
            let version = if v5 { Version::V5 } else { Version::V311 };
            let (c, _e) = Client::connect(&broker.url(), broker.config(version))
                .await
                .unwrap();
            for i in 0..n {
                c.publish_and_wait(
                    proto_mqtt::packet::publish(topic.clone(), qos, format!("{i}")),
                    T,
                )
                .await
                .unwrap();
            }
            let got: Vec<String> =
                tokio::task::spawn_blocking(move || lines.take(n).map(Result::unwrap).collect())
                    .await
                    .unwrap();
            let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            assert_eq!(got, want, "v5={v5} qos={qos:?}");
            assert!(child.wait().unwrap().success());
            c.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        }
    }
}

#[tokio::test]
async fn we_receive_what_paho_publishes_at_every_qos() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    if !common::have_paho() {
        return;
    }
    for v5 in [false, true] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let topic = format!("paho/out/{v5}/{}", qos as u8);
            let version = if v5 { Version::V5 } else { Version::V311 };
            let (c, mut e) = Client::connect(&broker.url(), broker.config(version))
                .await
                .unwrap();
            c.subscribe(topic.clone(), qos).await.unwrap();
            let n = 20;
            let port = broker.tcp;
            let t2 = topic.clone();
            tokio::task::spawn_blocking(move || common::paho_publish(port, v5, &t2, qos as u8, n))
                .await
                .unwrap();
            for i in 0..n {
                let got = next_publish(&mut e).await;
                assert_eq!(
                    got.payload,
                    Bytes::from(i.to_string()),
                    "v5={v5} qos={qos:?}"
                );
                assert_eq!(qos_of(&got), qos as u8);
            }
            no_publish(&mut e, Duration::from_millis(200)).await;
            c.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        }
    }
}

/// A minimal HTTP CONNECT proxy (test helper): one tunnel per connection.
async fn connect_proxy() -> (
    u16,
    tokio::task::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&tunnels);
    let h = tokio::spawn(async move {
        while let Ok((mut down, _)) = l.accept().await {
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if down.read(&mut b).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(b[0]);
                }
                let text = String::from_utf8_lossy(&head);
                let target = text
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                assert!(text.starts_with("CONNECT "), "{text}");
                let Ok(mut up) = tokio::net::TcpStream::connect(target).await else {
                    let _ = down.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = down
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    (port, h, tunnels)
}

#[tokio::test]
async fn mqtt_through_an_http_connect_proxy() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    let (proxy_port, proxy, tunnels) = connect_proxy().await;
    let mut config = broker.config(Version::V5);
    config.transport.proxy = Some(ws_client::Proxy::new(
        ws_client::ProxyKind::Http,
        "127.0.0.1",
        proxy_port,
    ));
    let (c, mut e) = Client::connect(&broker.url(), config).await.unwrap();
    c.subscribe("proxied", QoS::AtLeastOnce).await.unwrap();
    c.publish_and_wait(
        proto_mqtt::packet::publish("proxied", QoS::AtLeastOnce, "via CONNECT"),
        T,
    )
    .await
    .unwrap();
    assert_eq!(&next_publish(&mut e).await.payload[..], b"via CONNECT");
    assert_eq!(
        tunnels.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "went through the proxy"
    );
    c.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
    proxy.abort();
}

#[tokio::test]
async fn websocket_with_permessage_deflate_offered() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    let url = format!("ws://127.0.0.1:{}/mqtt", broker.ws);
    let mut config = broker.config(Version::V311);
    config.transport.deflate = Some(Default::default());
    let (c, mut e) = Client::connect(&url, config).await.unwrap();
    c.subscribe("deflate", QoS::ExactlyOnce).await.unwrap();
    let big = "compressible ".repeat(2000);
    c.publish_and_wait(
        proto_mqtt::packet::publish("deflate", QoS::ExactlyOnce, big.clone()),
        T,
    )
    .await
    .unwrap();
    assert_eq!(next_publish(&mut e).await.payload, Bytes::from(big));
    c.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
}
