//! Faults, with sequence-numbered messages checked at the far end:
//! - the broker (persistence on) is stopped and restarted in the middle of a QoS 1 and a QoS 2
//!   stream: nothing is lost and no QoS 2 message arrives twice;
//! - a TCP relay between client and broker stalls, then drops the connections: the client
//!   notices (keep-alive), reconnects with backoff, resends, and resubscribes (clean session);
//! - the publishing process is killed with SIGKILL and restarted on its store: the messages it
//!   had accepted are delivered.
//!
//! Without mosquitto a test prints `SKIPPED: ...` and passes, unless `WSKIT_REQUIRE_PEERS=1`.

mod common;

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use common::{Mosquitto, Opts, relay::Relay};
use proto_mqtt::{Backoff, Client, Config, Event, Events, QoS, ReasonCode, Version};

const T: Duration = Duration::from_secs(20);

fn fast_reconnect(c: &mut Config) {
    let mut b = Backoff::default();
    b.initial = Duration::from_millis(50);
    b.max = Duration::from_millis(500);
    c.reconnect = Some(b);
}

/// Collects `seq` numbers per topic until `done` says stop (or the deadline passes).
async fn collect(
    events: &mut Events,
    counts: &mut HashMap<String, HashMap<u32, u32>>,
    done: impl Fn(&HashMap<String, HashMap<u32, u32>>) -> bool,
) {
    let deadline = tokio::time::Instant::now() + T;
    while !done(counts) {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Publish(p))) => {
                let seq: u32 = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
                *counts
                    .entry(p.topic.clone())
                    .or_default()
                    .entry(seq)
                    .or_default() += 1;
            }
            Ok(Some(_)) => {}
            Ok(None) => panic!("subscriber ended"),
            Err(_) => return,
        }
    }
}

fn complete(counts: &HashMap<String, HashMap<u32, u32>>, topic: &str, n: u32) -> bool {
    counts
        .get(topic)
        .is_some_and(|m| (0..n).all(|i| m.contains_key(&i)))
}

fn missing(counts: &HashMap<String, HashMap<u32, u32>>, topic: &str, n: u32) -> Vec<u32> {
    (0..n)
        .filter(|i| !counts.get(topic).is_some_and(|m| m.contains_key(i)))
        .collect()
}

fn duplicates(counts: &HashMap<String, HashMap<u32, u32>>, topic: &str) -> Vec<u32> {
    let mut d: Vec<u32> = counts
        .get(topic)
        .map(|m| m.iter().filter(|(_, c)| **c > 1).map(|(s, _)| *s).collect())
        .unwrap_or_default();
    d.sort_unstable();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing_and_duplicates_no_qos2() {
    let Some(mut broker) = Mosquitto::start(Opts {
        persistence: true,
        ..Opts::default()
    }) else {
        return;
    };
    for version in [Version::V311, Version::V5] {
        let mut sc = broker.config(version);
        sc.client_id = Some(format!("restart-sub-{version:?}"));
        sc.clean_start = false;
        sc.session_expiry = 3600;
        fast_reconnect(&mut sc);
        let (sub, mut se) = Client::connect(&broker.url(), sc).await.unwrap();
        let q1 = format!("restart/{version:?}/q1");
        let q2 = format!("restart/{version:?}/q2");
        sub.subscribe(q1.clone(), QoS::AtLeastOnce).await.unwrap();
        sub.subscribe(q2.clone(), QoS::ExactlyOnce).await.unwrap();

        let mut pc = broker.config(version);
        pc.client_id = Some(format!("restart-pub-{version:?}"));
        pc.clean_start = false;
        pc.session_expiry = 3600;
        fast_reconnect(&mut pc);
        let (publ, mut pe) = Client::connect(&broker.url(), pc).await.unwrap();
        let acks = tokio::spawn(async move {
            let (mut a, mut c) = (0u32, 0u32);
            while let Some(ev) = pe.recv().await {
                match ev {
                    Event::PubAck(_) => a += 1,
                    Event::PubComp(_) => c += 1,
                    _ => {}
                }
            }
            (a, c)
        });

        let n: u32 = 300;
        let producer = {
            let publ = publ.clone();
            let (q1, q2) = (q1.clone(), q2.clone());
            tokio::spawn(async move {
                for i in 0..n {
                    publ.publish(q1.clone(), i.to_string(), QoS::AtLeastOnce, false)
                        .await
                        .unwrap();
                    publ.publish(q2.clone(), i.to_string(), QoS::ExactlyOnce, false)
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let mut counts = HashMap::new();
        // Restart once the subscriber has seen a quarter of the QoS 2 stream.
        collect(&mut se, &mut counts, |c| {
            c.get(&q2).is_some_and(|m| m.len() >= (n / 4) as usize)
        })
        .await;
        let b = &mut broker;
        tokio::task::block_in_place(|| b.restart());
        producer.await.unwrap();
        collect(&mut se, &mut counts, |c| {
            complete(c, &q1, n) && complete(c, &q2, n)
        })
        .await;
        if !missing(&counts, &q1, n).is_empty() || !missing(&counts, &q2, n).is_empty() {
            for l in broker.log().lines().filter(|l| !l.contains("PING")) {
                eprintln!("broker: {l}");
            }
        }
        assert!(
            missing(&counts, &q1, n).is_empty(),
            "{version:?} QoS 1 lost {:?}",
            missing(&counts, &q1, n)
        );
        assert!(
            missing(&counts, &q2, n).is_empty(),
            "{version:?} QoS 2 lost {:?}",
            missing(&counts, &q2, n)
        );
        assert_eq!(
            duplicates(&counts, &q2),
            Vec::<u32>::new(),
            "{version:?} QoS 2 duplicates"
        );
        // Let straggling duplicates arrive, then check again.
        let _ = tokio::time::timeout(
            Duration::from_millis(300),
            collect(&mut se, &mut counts, |_| false),
        )
        .await;
        assert_eq!(
            duplicates(&counts, &q2),
            Vec::<u32>::new(),
            "{version:?} QoS 2 duplicates"
        );
        assert!(
            publ.connections() >= 2 && sub.connections() >= 2,
            "both reconnected"
        );
        eprintln!(
            "{version:?}: broker restart after {} QoS 2 messages; QoS 1 duplicates: {}; reconnects: pub {} sub {}",
            n / 4,
            duplicates(&counts, &q1).len(),
            publ.connections() - 1,
            sub.connections() - 1
        );
        publ.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        sub.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
        assert_eq!(
            acks.await.unwrap(),
            (n, n),
            "every message acknowledged by the broker"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_stall_then_drop_reconnects_with_backoff_and_resubscribes() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    let relay = Relay::start(broker.tcp).await;
    let version = Version::V5;
    let via_relay = |id: &str| {
        let mut c = broker.config(version);
        c.client_id = Some(id.into());
        c.keep_alive = Duration::from_secs(1);
        c.ping_timeout = Duration::from_millis(700);
        c.connect_timeout = Duration::from_secs(1);
        fast_reconnect(&mut c);
        c
    };
    // The far end: a direct subscriber with a persistent session.
    let mut bc = broker.config(version);
    bc.client_id = Some("far-end".into());
    let (far, mut fe) = Client::connect(&broker.url(), bc).await.unwrap();
    far.subscribe("relay/seq", QoS::AtLeastOnce).await.unwrap();

    let (publ, mut pe) = Client::connect(&relay.url(), via_relay("relay-pub"))
        .await
        .unwrap();
    let (listener, mut le) = Client::connect(&relay.url(), via_relay("relay-sub"))
        .await
        .unwrap();
    listener
        .subscribe("relay/marker", QoS::AtLeastOnce)
        .await
        .unwrap();

    let n: u32 = 200;
    let producer = {
        let publ = publ.clone();
        tokio::spawn(async move {
            for i in 0..n {
                publ.publish("relay/seq", i.to_string(), QoS::AtLeastOnce, false)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.stall(true);
    // Keep-alive (1 s) + ping timeout (0.7 s) find the dead path; reconnect attempts then
    // time out against the stalled relay until it drops everything.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    relay.drop_all();
    relay.stall(false);
    producer.await.unwrap();

    let mut counts = HashMap::new();
    collect(&mut fe, &mut counts, |c| complete(c, "relay/seq", n)).await;
    assert!(
        missing(&counts, "relay/seq", n).is_empty(),
        "lost {:?}",
        missing(&counts, "relay/seq", n)
    );
    assert!(publ.connections() >= 2, "the publisher reconnected");

    // The listener's clean session was lost on the broker: it must have subscribed again.
    let deadline = tokio::time::Instant::now() + T;
    while listener.connections() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Wait for its SUBACK (events: Connected, SubAck).
    loop {
        match tokio::time::timeout(T, le.recv()).await.unwrap().unwrap() {
            Event::SubAck(_) if listener.connections() >= 2 => break,
            _ => {}
        }
    }
    far.publish_and_wait(
        proto_mqtt::packet::publish("relay/marker", QoS::AtLeastOnce, "after"),
        T,
    )
    .await
    .unwrap();
    loop {
        if let Event::Publish(p) = tokio::time::timeout(T, le.recv()).await.unwrap().unwrap() {
            assert_eq!(&p.payload[..], b"after");
            break;
        }
    }
    // The publisher saw the keep-alive failure.
    let mut saw_keepalive = false;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(50), pe.recv()).await {
        if let Event::Disconnected(d) = ev {
            saw_keepalive |= d.reason == ReasonCode::KEEP_ALIVE_TIMEOUT;
        }
    }
    assert!(saw_keepalive, "the stall was detected by keep-alive");
    eprintln!(
        "relay stall+drop: publisher connections {}, listener connections {}, QoS 1 duplicates {}",
        publ.connections(),
        listener.connections(),
        duplicates(&counts, "relay/seq").len()
    );
    for c in [publ, listener, far] {
        c.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
    }
}

/// The child process of [`killed_publisher_delivers_its_stored_messages_after_restart`]:
/// runs only when `PROTO_MQTT_CHILD` is set.
#[tokio::test]
#[ignore = "helper process for the kill -9 test"]
async fn child_publisher() {
    let Ok(mode) = std::env::var("PROTO_MQTT_CHILD") else {
        return;
    };
    let url = std::env::var("PROTO_MQTT_URL").unwrap();
    let mut c = Config::default();
    c.client_id = Some("killed-publisher".into());
    c.clean_start = false;
    c.session_expiry = 3600;
    c.store = Some(std::env::var("PROTO_MQTT_STORE").unwrap().into());
    fast_reconnect(&mut c);
    let (client, _events) = Client::connect(&url, c).await.unwrap();
    if mode == "publish" {
        for i in 0u32.. {
            let qos = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            client
                .publish(format!("kill/q{}", qos as u8), i.to_string(), qos, false)
                .await
                .unwrap();
            println!("ACCEPTED {i}");
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    } else {
        println!("RESTORED {}", client.pending());
        let deadline = tokio::time::Instant::now() + T;
        while client.pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("PENDING {}", client.pending());
        client.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_publisher_delivers_its_stored_messages_after_restart() {
    let Some(broker) = Mosquitto::start(Opts::default()) else {
        return;
    };
    let relay = Relay::start(broker.tcp).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("publisher.db");

    let mut sc = broker.config(Version::V5);
    sc.client_id = Some("kill-far-end".into());
    let (far, mut fe) = Client::connect(&broker.url(), sc).await.unwrap();
    far.subscribe("kill/#", QoS::ExactlyOnce).await.unwrap();

    let child = |mode: &str, url: String| {
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_publisher",
                "--ignored",
                "--nocapture",
                "--quiet",
            ])
            .env("PROTO_MQTT_CHILD", mode)
            .env("PROTO_MQTT_URL", url)
            .env("PROTO_MQTT_STORE", &store)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = child("publish", relay.url());
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let mut accepted: Option<u32> = None;
    let mut read_accepted = |k: u32, lines: &mut std::io::Lines<BufReader<_>>| {
        for _ in 0..k {
            let l = lines.next().unwrap().unwrap();
            if let Some(i) = l.strip_prefix("ACCEPTED ") {
                accepted = Some(i.parse().unwrap());
            }
        }
    };
    tokio::task::block_in_place(|| read_accepted(60, &mut lines));
    // Hold the path so that the next messages stay unacknowledged, then kill -9.
    relay.stall(true);
    tokio::task::block_in_place(|| read_accepted(40, &mut lines));
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    // Anything printed before the kill but not yet read still counts as accepted.
    tokio::task::block_in_place(|| {
        for l in lines.map_while(Result::ok) {
            if let Some(i) = l.strip_prefix("ACCEPTED ") {
                accepted = Some(i.parse().unwrap());
            }
        }
    });
    relay.drop_all();
    let last = accepted.unwrap();

    let mut second = child("resume", broker.url());
    let out = tokio::task::spawn_blocking(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(second.stdout.as_mut().unwrap(), &mut s).unwrap();
        second.wait().unwrap();
        s
    })
    .await
    .unwrap();
    assert!(
        out.contains("PENDING 0"),
        "the restarted process drained its store: {out}"
    );
    let restored: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("RESTORED "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(restored > 0, "messages were in flight at the kill");

    let mut counts = HashMap::new();
    let n = last + 1;
    collect(&mut fe, &mut counts, |c| {
        (0..n).all(|i| {
            let t = if i % 2 == 0 { "kill/q1" } else { "kill/q2" };
            c.get(t).is_some_and(|m| m.contains_key(&i))
        })
    })
    .await;
    let lost: Vec<u32> = (0..n)
        .filter(|i| {
            let t = if i % 2 == 0 { "kill/q1" } else { "kill/q2" };
            !counts.get(t).is_some_and(|m| m.contains_key(i))
        })
        .collect();
    assert!(lost.is_empty(), "accepted 0..={last}, lost {lost:?}");
    assert_eq!(
        duplicates(&counts, "kill/q2"),
        Vec::<u32>::new(),
        "QoS 2 duplicates"
    );
    eprintln!(
        "kill -9: accepted 0..={last}, {restored} restored from the store, all delivered, QoS 1 duplicates {}",
        duplicates(&counts, "kill/q1").len()
    );
    far.disconnect(ReasonCode::SUCCESS, None).await.unwrap();
}
