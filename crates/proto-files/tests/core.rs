//! The sans-IO sender and receiver against each other on a fake clock, and against hostile
//! messages written by hand.

use std::time::{Duration, Instant};

use proto_files::{
    Code, Config, DataAction, Error, FileId, OfferInfo, Partial, QoS, Receiver, ReceiverAction,
    Sender, SenderEvent,
    wire::{self, Msg, Offer},
};
use sha2::{Digest, Sha256};

fn data(n: usize) -> Vec<u8> {
    let mut x: u32 = 12345;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

fn config(chunk: u32) -> Config {
    let mut c = Config::default();
    c.chunk = chunk;
    c.window = 4;
    c
}

/// A receiving end: the core plus a `Vec` as its disk.
struct Disk {
    r: Option<Receiver>,
    file: Vec<u8>,
    done: Option<[u8; 32]>,
    error: Option<Error>,
    partial: Option<Partial>,
    config: Config,
}

impl Disk {
    fn new(config: Config) -> Self {
        Self {
            r: None,
            file: Vec::new(),
            done: None,
            error: None,
            partial: None,
            config,
        }
    }

    fn on_message(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        let f = wire::decode(bytes).unwrap();
        if let Msg::Offer(o) = f.msg {
            match Receiver::new(&self.config, f.id, &o, self.partial.as_ref(), now) {
                Ok(mut r) => {
                    if let Some((from, to)) = r.needs_prefix() {
                        r.absorb_prefix(&self.file[from as usize..to as usize]);
                    }
                    r.accept(now);
                    self.r = Some(r);
                }
                Err(e) => {
                    out.push(proto_files::refusal(f.id, e.code(), &e.to_string()));
                    self.error = Some(e);
                    return;
                }
            }
        } else {
            let r = self.r.as_mut().unwrap();
            match r.handle(now, &f.msg) {
                Ok(ReceiverAction::Data(DataAction::Write { offset, skip })) => {
                    let Msg::Data { chunk, packet, .. } = f.msg else {
                        unreachable!()
                    };
                    let chunk = &chunk[skip..];
                    assert_eq!(offset as usize, self.file.len());
                    self.file.extend_from_slice(chunk);
                    r.written(now, packet, offset, chunk).unwrap();
                }
                Ok(ReceiverAction::Verified { sha256 }) => {
                    r.finish(sha256);
                    self.done = Some(sha256);
                }
                Ok(_) => {}
                Err(e) => self.error = Some(e),
            }
        }
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<Vec<u8>>) {
        if let Some(r) = self.r.as_mut() {
            while let Some(m) = r.poll_transmit() {
                out.push(m);
            }
        }
    }
}

/// Runs a transfer to the end; `drop_packet` loses one `data` message on the way.
fn run(
    qos: QoS,
    file: &[u8],
    disk: &mut Disk,
    chunk: u32,
    drop_packet: Option<u64>,
) -> (Vec<SenderEvent>, usize) {
    let mut now = Instant::now();
    let cfg = config(chunk);
    let mut s = Sender::new(
        &cfg,
        FileId([9; 16]),
        OfferInfo::new("f.bin", file.len() as u64, qos),
        now,
    )
    .unwrap();
    let mut events = Vec::new();
    let mut max_ahead = 0usize;
    for _round in 0..100_000 {
        // sender side: prefix, chunks, transmit
        if let Some((from, to)) = s.needs_prefix() {
            s.absorb_prefix(&file[from as usize..to as usize]);
        }
        let mut to_recv = Vec::new();
        while let Some((off, len)) = s.next_chunk() {
            s.push_chunk(now, off, &file[off as usize..off as usize + len])
                .unwrap();
            max_ahead = max_ahead.max((s.position() - s.acknowledged()) as usize);
        }
        while let Some(m) = s.poll_transmit() {
            to_recv.push(m);
        }
        let mut to_send = Vec::new();
        for m in &to_recv {
            if let (Some(p), Ok(f)) = (drop_packet, wire::decode(m))
                && matches!(f.msg, Msg::Data { packet, .. } if packet == p)
            {
                continue;
            }
            disk.on_message(now, m, &mut to_send);
        }
        for m in &to_send {
            let f = wire::decode(m).unwrap();
            s.handle(now, &f.msg);
        }
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
        if s.is_finished() {
            break;
        }
        if to_recv.is_empty() && to_send.is_empty() {
            // Nothing moved: let time pass.
            now += Duration::from_millis(500);
            s.handle_timeout(now);
            if let Some(r) = disk.r.as_mut() {
                if let Err(e) = r.handle_timeout(now) {
                    disk.error = Some(e);
                }
            }
            let mut out = Vec::new();
            disk.drain(&mut out);
            for m in &out {
                s.handle(now, &wire::decode(m).unwrap().msg);
            }
        }
    }
    (events, max_ahead)
}

fn sent(events: &[SenderEvent]) -> Option<[u8; 32]> {
    events.iter().find_map(|e| match e {
        SenderEvent::Sent { sha256 } => Some(*sha256),
        _ => None,
    })
}

#[test]
fn each_qos_delivers_the_file_byte_identical_with_its_sha256() {
    let file = data(100_003);
    let want: [u8; 32] = Sha256::digest(&file).into();
    for qos in [QoS::AtMostOnce, QoS::Acknowledged, QoS::Pulled] {
        let mut disk = Disk::new(config(1000));
        let (events, max_ahead) = run(qos, &file, &mut disk, 1000, None);
        assert!(disk.file == file, "{qos:?}: {} bytes", disk.file.len());
        assert_eq!(disk.done, Some(want));
        assert_eq!(sent(&events), Some(want), "{qos:?}: {events:?}");
        let acks = events
            .iter()
            .filter(|e| matches!(e, SenderEvent::Acknowledged { .. }))
            .count();
        match qos {
            QoS::AtMostOnce => assert_eq!(acks, 0),
            QoS::Acknowledged => {
                assert_eq!(acks, 101);
                assert!(max_ahead <= 4 * 1000, "window of 4 chunks: {max_ahead}");
            }
            QoS::Pulled => {
                assert_eq!(acks, 0);
                assert!(max_ahead <= 4 * 1000, "credit of 4 chunks: {max_ahead}");
            }
        }
    }
}

#[test]
fn a_zero_byte_file_is_offer_accept_complete() {
    for qos in [QoS::AtMostOnce, QoS::Acknowledged, QoS::Pulled] {
        let mut disk = Disk::new(config(1000));
        let (events, _) = run(qos, &[], &mut disk, 1000, None);
        let empty: [u8; 32] = Sha256::digest([]).into();
        assert_eq!(sent(&events), Some(empty), "{qos:?}");
        assert!(disk.file.is_empty());
    }
}

#[test]
fn a_receiver_with_a_partial_file_resumes_at_its_offset() {
    let file = data(50_000);
    for qos in [QoS::AtMostOnce, QoS::Acknowledged, QoS::Pulled] {
        let mut disk = Disk::new(config(1000));
        disk.file = file[..12_345].to_vec();
        disk.partial = Some(Partial::new("f.bin", 50_000, 12_345));
        let (events, _) = run(qos, &file, &mut disk, 1000, None);
        assert!(
            matches!(events[0], SenderEvent::Accepted { offset: 12_345 }),
            "{events:?}"
        );
        assert!(
            disk.file == file,
            "{qos:?}: {} bytes, {events:?}",
            disk.file.len()
        );
        assert_eq!(sent(&events), Some(Sha256::digest(&file).into()));
    }
}

#[test]
fn qos2_asks_again_for_a_lost_chunk_after_the_interval() {
    let file = data(20_000);
    let mut disk = Disk::new(config(1000));
    let (events, _) = run(QoS::Pulled, &file, &mut disk, 1000, Some(5));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SenderEvent::Rewound { offset: 4000 })),
        "{events:?}"
    );
    assert!(disk.file == file);
    assert!(sent(&events).is_some());
}

#[test]
fn a_lost_chunk_at_qos1_is_an_out_of_order_error_on_both_sides() {
    let file = data(20_000);
    let mut disk = Disk::new(config(1000));
    let (events, _) = run(QoS::Acknowledged, &file, &mut disk, 1000, Some(5));
    assert_eq!(disk.error.as_ref().unwrap().code(), Code::OutOfOrder);
    assert!(
        events.iter().any(|e| matches!(
            e,
            SenderEvent::Failed(Error::Remote {
                code: Code::OutOfOrder,
                ..
            })
        )),
        "{events:?}"
    );
}

#[test]
fn a_refused_offer_is_the_senders_error_event() {
    let mut cfg = config(1000);
    cfg.max_file_size = 10;
    let mut disk = Disk::new(cfg);
    let (events, _) = run(QoS::Acknowledged, &data(11), &mut disk, 1000, None);
    assert!(
        matches!(
            &events[..],
            [SenderEvent::Failed(Error::Remote {
                code: Code::TooLarge,
                ..
            })]
        ),
        "{events:?}"
    );
}

#[test]
fn silence_ends_transfers_with_a_timeout_on_both_sides() {
    let now = Instant::now();
    let cfg = config(1000);
    let mut s = Sender::new(
        &cfg,
        FileId([1; 16]),
        OfferInfo::new("a", 5, QoS::Pulled),
        now,
    )
    .unwrap();
    assert_eq!(s.poll_timeout(), Some(now + cfg.timeout));
    s.handle_timeout(now + cfg.timeout - Duration::from_millis(1));
    assert!(!s.is_finished());
    s.handle_timeout(now + cfg.timeout);
    assert!(matches!(
        s.poll_event(),
        Some(SenderEvent::Failed(Error::Protocol {
            code: Code::Timeout,
            ..
        }))
    ));

    let offer = Offer {
        size: 5,
        chunk: 1000,
        qos: QoS::Pulled,
        name: "a",
        channel: "",
        data: "",
    };
    let mut r = Receiver::new(&cfg, FileId([1; 16]), &offer, None, now).unwrap();
    r.accept(now);
    while r.poll_transmit().is_some() {}
    // Re-requests every interval, then gives up at the timeout.
    let mut t;
    let mut retries = 0;
    loop {
        t = r.poll_timeout().unwrap();
        match r.handle_timeout(t) {
            Ok(()) => {
                while let Some(m) = r.poll_transmit() {
                    if let Msg::Request {
                        retransmit: true, ..
                    } = wire::decode(&m).unwrap().msg
                    {
                        retries += 1;
                    }
                }
            }
            Err(e) => {
                assert_eq!(e.code(), Code::Timeout);
                break;
            }
        }
    }
    assert_eq!(t, now + cfg.timeout);
    assert_eq!(retries, 14, "every 2 s within 30 s");
    let f = r.poll_transmit().unwrap();
    assert!(matches!(
        wire::decode(&f).unwrap().msg,
        Msg::Error { code: 9, .. }
    ));
}

fn receiver(qos: QoS, size: u64) -> (Receiver, Instant) {
    let now = Instant::now();
    let offer = Offer {
        size,
        chunk: 10,
        qos,
        name: "x",
        channel: "",
        data: "",
    };
    let mut r = Receiver::new(&config(10), FileId([2; 16]), &offer, None, now).unwrap();
    r.accept(now);
    while r.poll_transmit().is_some() {}
    (r, now)
}

fn feed(r: &mut Receiver, now: Instant, offset: u64, chunk: &[u8]) -> Result<(), Error> {
    let m = Msg::Data {
        packet: 1,
        offset,
        chunk,
    };
    match r.handle(now, &m)? {
        ReceiverAction::Data(DataAction::Write { offset, skip }) => {
            r.written(now, 1, offset, &chunk[skip..])
        }
        _ => Ok(()),
    }
}

#[test]
fn hostile_chunks_are_refused_with_clear_codes() {
    // Past the size.
    let (mut r, now) = receiver(QoS::Acknowledged, 15);
    feed(&mut r, now, 0, &[0; 10]).unwrap();
    assert_eq!(
        feed(&mut r, now, 10, &[0; 6]).unwrap_err().code(),
        Code::OutOfRange
    );
    // Offset far past the size (no overflow).
    let (mut r, now) = receiver(QoS::AtMostOnce, 15);
    assert_eq!(
        feed(&mut r, now, u64::MAX - 2, &[0; 5]).unwrap_err().code(),
        Code::OutOfRange
    );
    // Out of order.
    let (mut r, now) = receiver(QoS::Acknowledged, 100);
    assert_eq!(
        feed(&mut r, now, 10, &[0; 10]).unwrap_err().code(),
        Code::OutOfOrder
    );
    // Duplicate at QoS 1.
    let (mut r, now) = receiver(QoS::Acknowledged, 100);
    feed(&mut r, now, 0, &[0; 10]).unwrap();
    assert_eq!(
        feed(&mut r, now, 0, &[0; 10]).unwrap_err().code(),
        Code::Duplicate
    );
    // Over the offered chunk size.
    let (mut r, now) = receiver(QoS::AtMostOnce, 100);
    assert_eq!(
        feed(&mut r, now, 0, &[0; 11]).unwrap_err().code(),
        Code::OutOfRange
    );
    // Complete before all bytes; a wrong SHA-256.
    let (mut r, now) = receiver(QoS::AtMostOnce, 10);
    assert_eq!(
        r.handle(now, &Msg::Complete { sha256: [0; 32] })
            .unwrap_err()
            .code(),
        Code::Violation
    );
    let (mut r, now) = receiver(QoS::AtMostOnce, 10);
    feed(&mut r, now, 0, &[1; 10]).unwrap();
    assert_eq!(
        r.handle(now, &Msg::Complete { sha256: [0; 32] })
            .unwrap_err()
            .code(),
        Code::Checksum
    );
    // After an error the sender is told.
    let m = r.poll_transmit().unwrap();
    assert!(matches!(
        wire::decode(&m).unwrap().msg,
        Msg::Error { code: 8, .. }
    ));
}

#[test]
fn hostile_offers_are_refused_before_anything_is_stored() {
    let now = Instant::now();
    let mut cfg = config(1000);
    cfg.max_file_size = 1 << 20;
    let base = Offer {
        size: 100,
        chunk: 1000,
        qos: QoS::Acknowledged,
        name: "ok.txt",
        channel: "",
        data: "",
    };
    let id = FileId([4; 16]);
    let cases: Vec<(Offer<'_>, Option<Partial>, Code)> = vec![
        (
            Offer {
                name: "../../etc/passwd",
                ..base
            },
            None,
            Code::InvalidName,
        ),
        (
            Offer {
                name: "/abs",
                ..base
            },
            None,
            Code::InvalidName,
        ),
        (Offer { name: "..", ..base }, None, Code::InvalidName),
        (
            Offer {
                size: (1 << 20) + 1,
                ..base
            },
            None,
            Code::TooLarge,
        ),
        (
            Offer {
                chunk: (1 << 20) + 1,
                ..base
            },
            None,
            Code::TooLarge,
        ),
        (Offer { chunk: 0, ..base }, None, Code::TooLarge),
        (base, Some(Partial::new("ok.txt", 99, 10)), Code::Changed),
        (
            base,
            Some(Partial::new("other.txt", 100, 10)),
            Code::Changed,
        ),
    ];
    for (offer, partial, code) in cases {
        let e = Receiver::new(&cfg, id, &offer, partial.as_ref(), now).unwrap_err();
        assert_eq!(e.code(), code, "{offer:?}: {e}");
        assert!(!e.to_string().is_empty());
    }
    // 4 GiB and more: u64 offsets.
    let big = Offer {
        size: 5 << 30,
        ..base
    };
    let mut cfg = config(1000);
    cfg.max_file_size = 8 << 30;
    let mut r = Receiver::new(
        &cfg,
        id,
        &big,
        Some(&Partial::new("ok.txt", 5 << 30, (4 << 30) + 7)),
        now,
    )
    .unwrap();
    r.accept(now);
    let m = r.poll_transmit().unwrap();
    assert_eq!(
        wire::decode(&m).unwrap().msg,
        Msg::Resume {
            offset: (4 << 30) + 7,
            window: 4
        }
    );
    assert_eq!(r.needs_prefix(), Some((0, (4 << 30) + 7)));
}

#[test]
fn a_prefix_hashed_elsewhere_replaces_absorbing_it() {
    let file = data(30_000);
    let now = Instant::now();
    let offer = Offer {
        size: 30_000,
        chunk: 1000,
        qos: QoS::Acknowledged,
        name: "f.bin",
        channel: "",
        data: "",
    };
    let partial = Partial::new("f.bin", 30_000, 10_000);
    let mut r = Receiver::new(&config(1000), FileId([3; 16]), &offer, Some(&partial), now).unwrap();
    // A hasher over the wrong length is refused.
    let mut short = proto_files::PrefixHasher::new();
    short.update(&file[..9_999]);
    assert_eq!(r.set_prefix(short).unwrap_err().code(), Code::Violation);
    let mut p = proto_files::PrefixHasher::new();
    p.update(&file[..10_000]);
    r.set_prefix(p).unwrap();
    r.accept(now);
    assert_eq!(r.needs_prefix(), None);
    for off in (10_000..30_000).step_by(1000) {
        let chunk = &file[off..off + 1000];
        let m = Msg::Data {
            packet: 1,
            offset: off as u64,
            chunk,
        };
        assert!(matches!(
            r.handle(now, &m).unwrap(),
            ReceiverAction::Data(DataAction::Write { .. })
        ));
        r.written(now, 1, off as u64, chunk).unwrap();
    }
    let want: [u8; 32] = Sha256::digest(&file).into();
    assert_eq!(
        r.handle(now, &Msg::Complete { sha256: want }).unwrap(),
        ReceiverAction::Verified { sha256: want }
    );
}

/// Both ends hash outside the cores (as the runtime's reading and writing threads do): the
/// sender's `complete` waits for its digest, the data messages built in place decode as
/// usual, and the receiver checks the digest it is given, refusing a wrong one.
#[test]
fn external_hashing_on_both_ends_checks_the_digest_it_is_given() {
    for corrupt in [false, true] {
        let file = data(25);
        let now = Instant::now();
        let cfg = config(10);
        let id = FileId([7; 16]);
        let mut s =
            Sender::new(&cfg, id, OfferInfo::new("e.bin", 25, QoS::AtMostOnce), now).unwrap();
        s.hash_externally();
        let offer_msg = s.poll_transmit().unwrap();
        let Msg::Offer(offer) = wire::decode(&offer_msg).unwrap().msg else {
            panic!("not an offer");
        };
        let mut r = Receiver::new(&cfg, id, &offer, None, now).unwrap();
        r.hash_externally();
        r.accept(now);
        while let Some(m) = r.poll_transmit() {
            s.handle(now, &wire::decode(&m).unwrap().msg);
        }
        assert!(matches!(
            s.poll_event(),
            Some(SenderEvent::Accepted { offset: 0 })
        ));
        assert_eq!(s.needs_prefix(), None);
        let mut stored = Vec::new();
        while let Some((off, len)) = s.next_chunk() {
            let mut m = vec![0u8; wire::DATA_HEADER_LEN];
            m.extend_from_slice(&file[off as usize..off as usize + len]);
            s.push_data_message(now, off, m).unwrap();
            let m = s.poll_transmit().unwrap();
            let msg = wire::decode(&m).unwrap().msg;
            let Msg::Data { chunk, packet, .. } = msg else {
                panic!("not data");
            };
            let ReceiverAction::Data(DataAction::Write { offset, skip }) =
                r.handle(now, &msg).unwrap()
            else {
                panic!("no write");
            };
            stored.extend_from_slice(&chunk[skip..]);
            r.written(now, packet, offset, &chunk[skip..]).unwrap();
        }
        assert_eq!(stored, file);
        // No `complete` before the digest is known.
        assert!(s.poll_transmit().is_none());
        let digest: [u8; 32] = Sha256::digest(&file).into();
        s.set_digest(digest);
        let complete = s.poll_transmit().unwrap();
        let action = r
            .handle(now, &wire::decode(&complete).unwrap().msg)
            .unwrap();
        assert_eq!(action, ReceiverAction::Check { sha256: digest });
        let mut mine = digest;
        if corrupt {
            mine[0] ^= 1;
        }
        match r.check(mine) {
            Ok(a) => {
                assert!(!corrupt);
                assert_eq!(a, ReceiverAction::Verified { sha256: digest });
            }
            Err(e) => {
                assert!(corrupt);
                assert_eq!(e.code(), Code::Checksum);
            }
        }
    }
}
