//! MQTT over WebSocket over TLS: subscribe, publish at QoS 1, print what comes back.
//!
//! `cargo run -p proto-mqtt --example wss -- [URL] [CA_FILE]` (default URL: wss://localhost:8081/mqtt);
//! CA_FILE is a PEM file of certificates to trust instead of the built-in roots.

use std::time::Duration;

use proto_mqtt::{Client, Config, Event, QoS, ReasonCode};

#[tokio::main]
async fn main() -> Result<(), proto_mqtt::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "wss://localhost:8081/mqtt".into());
    let mut config = Config::default();
    if let Some(ca) = args.next() {
        config.transport.tls.ca_file = Some(ca.into());
        config.transport.tls.webpki_roots = false;
    }
    let (client, mut events) = Client::connect(&url, config).await?;
    println!("connected to {url} as {}", client.client_id());
    let ack = client
        .subscribe("wskit/example/#", QoS::AtLeastOnce)
        .await?;
    println!("SUBACK {:?}", ack.codes);
    let done = client
        .publish_and_wait(
            proto_mqtt::packet::publish("wskit/example/wss", QoS::AtLeastOnce, "hello"),
            Duration::from_secs(10),
        )
        .await?;
    println!("PUBACK {}", done.reason);
    while let Some(event) = events.recv().await {
        if let Event::Publish(p) = event {
            println!("{} {}", p.topic, String::from_utf8_lossy(&p.payload));
            break;
        }
    }
    client.disconnect(ReasonCode::SUCCESS, None).await
}
