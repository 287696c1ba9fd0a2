//! RFC 7692 permessage-deflate negotiation through the handshake: the section 5 and 7 examples,
//! several offers, parameters with and without values, declines.

use bytes::BytesMut;
use ws_frame::deflate::{DeflateConfig, DeflateParams};
use ws_http::{
    Accept, ClientConfig, ClientHandshake, Error, HandshakeError, Limits, Parsed, UpgradeRequest,
    parse_request, parse_response,
};

fn upgrade(offers: &str) -> UpgradeRequest {
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offers}\r\n\r\n"
    );
    let Parsed::Complete(req, _) = parse_request(raw.as_bytes(), &Limits::default()).unwrap()
    else {
        panic!()
    };
    UpgradeRequest::from_request(&req).unwrap()
}

/// The `Sec-WebSocket-Extensions` value the server answers `offers` with (None: declined).
fn answer(offers: &str, server: &DeflateConfig) -> Option<String> {
    let up = upgrade(offers);
    let params = up.negotiate_deflate(server);
    let mut out = BytesMut::new();
    up.write_accept(&Accept::new().deflate(params), &mut out)
        .unwrap();
    let Parsed::Complete(resp, _) = parse_response(&out, &Limits::default()).unwrap() else {
        panic!()
    };
    resp.header("sec-websocket-extensions").map(str::to_owned)
}

fn server() -> DeflateConfig {
    DeflateConfig::default()
}

#[test]
fn plain_offer_is_accepted_without_parameters() {
    assert_eq!(
        answer("permessage-deflate", &server()).as_deref(),
        Some("permessage-deflate")
    );
    // Extension names are case-insensitive; other extensions are ignored.
    assert_eq!(
        answer("x-webkit-deflate-frame, PerMessage-Deflate", &server()).as_deref(),
        Some("permessage-deflate")
    );
}

#[test]
fn section_7_1_1_context_takeover() {
    // 7.1.1.1: the client asks the server not to take over context; the server must confirm.
    assert_eq!(
        answer("permessage-deflate; server_no_context_takeover", &server()).as_deref(),
        Some("permessage-deflate; server_no_context_takeover")
    );
    // 7.1.1.2: client_no_context_takeover in the offer is a hint; the server may include it
    // even when not offered.
    let mut s = server();
    s.client_no_context_takeover = true;
    assert_eq!(
        answer("permessage-deflate", &s).as_deref(),
        Some("permessage-deflate; client_no_context_takeover")
    );
    assert_eq!(
        answer("permessage-deflate; client_no_context_takeover", &server()).as_deref(),
        Some("permessage-deflate; client_no_context_takeover")
    );
}

#[test]
fn section_7_1_2_window_bits() {
    // 7.1.2.1: server_max_window_bits=10 limits the server's window; the answer confirms it.
    assert_eq!(
        answer("permessage-deflate; server_max_window_bits=10", &server()).as_deref(),
        Some("permessage-deflate; server_max_window_bits=10")
    );
    // A quoted value is the same (RFC 6455 section 9.1 allows quoted tokens).
    assert_eq!(
        answer(
            "permessage-deflate; server_max_window_bits=\"10\"",
            &server()
        )
        .as_deref(),
        Some("permessage-deflate; server_max_window_bits=10")
    );
    // A server that wants a smaller window than the client allows says so.
    let mut s = server();
    s.server_max_window_bits = 9;
    assert_eq!(
        answer("permessage-deflate; server_max_window_bits=12", &s).as_deref(),
        Some("permessage-deflate; server_max_window_bits=9")
    );
    // 7.1.2.2: client_max_window_bits without a value says the client accepts a limit.
    let mut s = server();
    s.client_max_window_bits = 10;
    assert_eq!(
        answer("permessage-deflate; client_max_window_bits", &s).as_deref(),
        Some("permessage-deflate; client_max_window_bits=10")
    );
    // ... without it the server cannot impose one (its decompressor takes any window).
    assert_eq!(
        answer("permessage-deflate", &s).as_deref(),
        Some("permessage-deflate")
    );
    // A client hint below the server's wish stands; nothing to announce.
    assert_eq!(
        answer("permessage-deflate; client_max_window_bits=9", &s).as_deref(),
        Some("permessage-deflate")
    );
}

#[test]
fn several_offers_first_acceptable_wins() {
    // RFC 7692 section 5.2's example: a restrictive offer, then a fallback.
    let offers = "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                  permessage-deflate; client_max_window_bits";
    assert_eq!(
        answer(offers, &server()).as_deref(),
        Some("permessage-deflate; server_max_window_bits=10")
    );
    // A server that will not compress with a 1 KiB window declines the first.
    let mut s = server();
    s.min_window_bits = 12;
    assert_eq!(answer(offers, &s).as_deref(), Some("permessage-deflate"));
    // Offers in two header fields form one list.
    let up = upgrade("permessage-deflate; server_max_window_bits=8");
    assert_eq!(up.extensions().len(), 1);
    assert!(up.negotiate_deflate(&s).is_none());
}

#[test]
fn malformed_offers_are_declined() {
    for offer in [
        "permessage-deflate; unknown",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_max_window_bits=abc",
    ] {
        assert_eq!(answer(offer, &server()), None, "{offer}");
        // ... and the next offer is tried.
        assert_eq!(
            answer(&format!("{offer}, permessage-deflate"), &server()).as_deref(),
            Some("permessage-deflate"),
            "{offer}"
        );
    }
    assert_eq!(answer("x-other", &server()), None);
}

/// Runs the whole handshake: client offer from `client`, server answer from `server`.
fn negotiate(
    client: &DeflateConfig,
    server: &DeflateConfig,
) -> Option<(DeflateParams, DeflateParams)> {
    let mut config = ClientConfig::default();
    config.deflate = Some(client.clone());
    let mut wire = BytesMut::new();
    let mut hs = ClientHandshake::with_key(&config, "h", "/", [9; 16], &mut wire).unwrap();
    let Parsed::Complete(req, _) = parse_request(&wire, &Limits::default()).unwrap() else {
        panic!()
    };
    let up = UpgradeRequest::from_request(&req).unwrap();
    let server_params = up.negotiate_deflate(server);
    let mut out = BytesMut::new();
    up.write_accept(&Accept::new().deflate(server_params.clone()), &mut out)
        .unwrap();
    let upgraded = hs.handle_response(&mut out).unwrap().unwrap();
    match (upgraded.deflate(), server_params) {
        (Some(c), Some(s)) => Some((c.clone(), s)),
        (None, None) => None,
        other => panic!("sides disagree: {other:?}"),
    }
}

#[test]
fn both_sides_agree_on_every_parameter_combination() {
    for snct in [false, true] {
        for cnct in [false, true] {
            for sbits in [8, 10, 15] {
                for cbits in [9, 15] {
                    let mut client = DeflateConfig::default();
                    client.server_no_context_takeover = snct;
                    client.client_no_context_takeover = cnct;
                    client.server_max_window_bits = sbits;
                    client.client_max_window_bits = cbits;
                    let mut server = DeflateConfig::default();
                    server.client_max_window_bits = 12;
                    let (c, s) = negotiate(&client, &server).expect("accepted");
                    assert_eq!(
                        c.server_no_context_takeover(),
                        s.server_no_context_takeover()
                    );
                    assert_eq!(
                        c.client_no_context_takeover(),
                        s.client_no_context_takeover()
                    );
                    assert_eq!(c.server_max_window_bits(), s.server_max_window_bits());
                    assert_eq!(c.client_max_window_bits(), s.client_max_window_bits());
                    assert_eq!(c.server_max_window_bits(), sbits);
                    assert_eq!(c.client_max_window_bits(), cbits.min(12));
                    assert_eq!(c.server_no_context_takeover(), snct);
                }
            }
        }
    }
    // The server declines a window it will not use: no extension on either side.
    let mut client = DeflateConfig::default();
    client.server_max_window_bits = 9;
    let mut server = DeflateConfig::default();
    server.min_window_bits = 10;
    assert_eq!(negotiate(&client, &server), None);
}

#[test]
fn client_refuses_answers_that_do_not_fit_its_offer() {
    let mut deflate = DeflateConfig::default();
    deflate.server_max_window_bits = 10;
    deflate.server_no_context_takeover = true;
    let mut config = ClientConfig::default();
    config.deflate = Some(deflate);
    for bad in [
        // Missing the requested confirmation.
        "permessage-deflate; server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover",
        // A larger window than asked.
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
        // client_max_window_bits in a response needs a value.
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; x=1",
    ] {
        let mut wire = BytesMut::new();
        let mut hs = ClientHandshake::with_key(&config, "h", "/", [3; 16], &mut wire).unwrap();
        let mut rx = BytesMut::from(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: {bad}\r\n\r\n",
                hs.expected_accept()
            )
            .as_bytes(),
        );
        let e = hs.handle_response(&mut rx).unwrap_err();
        assert!(
            matches!(e, Error::Handshake(HandshakeError::Deflate(_))),
            "{bad}: {e}"
        );
        assert_eq!(e.status(), 502);
    }
}
