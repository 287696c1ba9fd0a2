//! MQTT 5 enhanced authentication with SCRAM-SHA-256 (RFC 5802, RFC 7677).
//!
//! mosquitto offers no SCRAM without plugins, so this program starts a **test double** of a
//! broker in-process (it speaks just enough MQTT 5 to run the AUTH exchange, then answers
//! CONNACK with the server's final message) and connects the client to it:
//!
//! ```text
//! CONNECT  method SCRAM-SHA-256, data client-first  (n,,n=user,r=cnonce)
//! AUTH 18  data server-first                        (r=cnonce+snonce,s=salt,i=4096)
//! AUTH 18  data client-final                        (c=biws,r=...,p=proof)
//! CONNACK  data server-final                        (v=server signature; checked here)
//! ```
//!
//! `cargo run -p proto-mqtt --example scram`

use std::sync::{Arc, Mutex};

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use bytes::{Bytes, BytesMut};
use proto_mqtt::{
    Authenticator, Client, Config, Error, Event, ReasonCode, Version,
    packet::{Auth, AuthProperties, Codec, ConnAck, ConnAckProperties, Packet},
    session::connect_properties,
};
use ring::{digest, hmac, pbkdf2};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

const METHOD: &str = "SCRAM-SHA-256";
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";
const ITERATIONS: u32 = 4096;

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(iterations).unwrap_or(std::num::NonZeroU32::MIN),
        salt,
        password.as_bytes(),
        &mut out,
    );
    out
}

fn nonce() -> String {
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).expect("entropy");
    B64.encode(b)
}

/// `key=value` attributes of a SCRAM message.
fn attr<'a>(msg: &'a str, key: &str) -> Option<&'a str> {
    msg.split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// The client side: a state machine behind [`Authenticator`].
struct ScramClient {
    cnonce: String,
    first_bare: String,
    expected_server_signature: Mutex<Option<Vec<u8>>>,
}

impl ScramClient {
    fn new() -> Self {
        let cnonce = nonce();
        Self {
            first_bare: format!("n={USER},r={cnonce}"),
            cnonce,
            expected_server_signature: Mutex::new(None),
        }
    }

    fn client_first(&self) -> Bytes {
        Bytes::from(format!("n,,{}", self.first_bare))
    }

    /// Answers server-first with client-final.
    fn respond(&self, server_first: &[u8]) -> Result<Bytes, String> {
        let sf = std::str::from_utf8(server_first).map_err(|e| e.to_string())?;
        let r = attr(sf, "r").ok_or("no nonce")?;
        if !r.starts_with(&self.cnonce) {
            return Err("server nonce does not extend ours".into());
        }
        let salt = B64
            .decode(attr(sf, "s").ok_or("no salt")?)
            .map_err(|e| e.to_string())?;
        let i: u32 = attr(sf, "i")
            .ok_or("no iterations")?
            .parse()
            .map_err(|_| "bad i")?;
        let salted = salted_password(PASSWORD, &salt, i);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, &client_key);
        let without_proof = format!("c={},r={r}", B64.encode("n,,"));
        let auth_message = format!("{},{sf},{without_proof}", self.first_bare);
        let signature = hmac_sha256(stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac_sha256(&salted, b"Server Key");
        *self.expected_server_signature.lock().unwrap() =
            Some(hmac_sha256(&server_key, auth_message.as_bytes()));
        Ok(Bytes::from(format!(
            "{without_proof},p={}",
            B64.encode(proof)
        )))
    }

    fn check_server_final(&self, data: &[u8]) -> bool {
        let expected = self.expected_server_signature.lock().unwrap().clone();
        let got = std::str::from_utf8(data)
            .ok()
            .and_then(|s| attr(s, "v"))
            .and_then(|v| B64.decode(v).ok());
        expected.is_some() && got == expected
    }
}

/// The test double: accepts one connection and runs the server side of SCRAM-SHA-256.
async fn broker(listener: TcpListener) -> Result<(), String> {
    let (mut sock, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let codec = Codec::new(Version::V5, 1 << 16);
    let mut rx = BytesMut::new();
    let mut recv = async |sock: &mut tokio::net::TcpStream| -> Result<Packet, String> {
        loop {
            if let Some(p) = codec.decode(&mut rx).map_err(|e| e.to_string())? {
                return Ok(p);
            }
            if sock.read_buf(&mut rx).await.map_err(|e| e.to_string())? == 0 {
                return Err("client left".into());
            }
        }
    };
    let Packet::Connect(connect) = recv(&mut sock).await? else {
        return Err("expected CONNECT".into());
    };
    let props = connect.properties.ok_or("no properties")?;
    if props.authentication_method.as_deref() != Some(METHOD) {
        return Err("not SCRAM-SHA-256".into());
    }
    let client_first = String::from_utf8(props.authentication_data.ok_or("no data")?.to_vec())
        .map_err(|e| e.to_string())?;
    let first_bare = client_first
        .strip_prefix("n,,")
        .ok_or("bad gs2 header")?
        .to_owned();
    if attr(&first_bare, "n") != Some(USER) {
        return Err("unknown user".into());
    }
    let nonce = format!("{}{}", attr(&first_bare, "r").ok_or("no nonce")?, nonce());
    let salt = b"wskit-test-salt!";
    let server_first = format!("r={nonce},s={},i={ITERATIONS}", B64.encode(salt));
    let mut out = BytesMut::new();
    let send = |p: Packet, out: &mut BytesMut| codec.encode(&p, out).map_err(|e| e.to_string());
    send(
        Packet::Auth(Auth {
            reason: ReasonCode::CONTINUE_AUTHENTICATION,
            properties: Some(AuthProperties {
                method: Some(METHOD.into()),
                data: Some(Bytes::from(server_first.clone())),
                ..AuthProperties::default()
            }),
        }),
        &mut out,
    )?;
    sock.write_all(&out).await.map_err(|e| e.to_string())?;
    out.clear();
    let Packet::Auth(answer) = recv(&mut sock).await? else {
        return Err("expected AUTH".into());
    };
    let client_final = String::from_utf8(
        answer
            .properties
            .and_then(|p| p.data)
            .ok_or("no data")?
            .to_vec(),
    )
    .map_err(|e| e.to_string())?;
    let (without_proof, proof) = client_final.rsplit_once(",p=").ok_or("no proof")?;
    let salted = salted_password(PASSWORD, salt, ITERATIONS);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, &client_key);
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac_sha256(stored_key.as_ref(), auth_message.as_bytes());
    let proof = B64.decode(proof).map_err(|e| e.to_string())?;
    let recovered: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    let ok = digest::digest(&digest::SHA256, &recovered).as_ref() == stored_key.as_ref();
    let mut props = ConnAckProperties::new();
    props.authentication_method = Some(METHOD.into());
    if ok {
        let server_key = hmac_sha256(&salted, b"Server Key");
        let v = hmac_sha256(&server_key, auth_message.as_bytes());
        props.authentication_data = Some(Bytes::from(format!("v={}", B64.encode(v))));
    }
    send(
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: if ok {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NOT_AUTHORIZED
            },
            properties: Some(props),
        }),
        &mut out,
    )?;
    sock.write_all(&out).await.map_err(|e| e.to_string())?;
    let _ = recv(&mut sock).await; // DISCONNECT
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("mqtt://{}", listener.local_addr()?);
    let server = tokio::spawn(broker(listener));

    let scram = Arc::new(ScramClient::new());
    let mut config = Config::default();
    let mut props = connect_properties();
    props.authentication_method = Some(METHOD.into());
    props.authentication_data = Some(scram.client_first());
    config.connect_properties = Some(props);
    let s = Arc::clone(&scram);
    config.authenticator = Some(Authenticator::new(move |method, data| {
        if method != METHOD {
            return Err(format!("unexpected method {method}"));
        }
        s.respond(data.unwrap_or_default()).map(Some)
    }));
    config.reconnect = None;

    let (client, mut events) = Client::connect(&url, config).await?;
    while let Some(ev) = events.recv().await {
        if let Event::Connected(ack) = ev {
            let data = ack
                .properties
                .and_then(|p| p.authentication_data)
                .unwrap_or_default();
            let verified = scram.check_server_final(&data);
            println!(
                "CONNACK {}; server signature verified: {verified}",
                ack.code
            );
            assert!(ack.code.is_success() && verified);
            break;
        }
    }
    client.disconnect(ReasonCode::SUCCESS, None).await?;
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => panic!("test double broker: {e}"),
        Err(e) => panic!("{e}"),
    }
}
