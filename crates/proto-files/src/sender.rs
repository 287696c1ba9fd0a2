//! The sending side of one transfer, sans-IO: it says which chunk to read next, turns chunks
//! into `data` messages, follows acknowledgements, credit and rewinds, hashes what it sends,
//! and owns its timeout. Time is an argument; the caller reads the file and moves messages.

use std::{collections::VecDeque, time::Instant};

use sha2::{Digest, Sha256};

use crate::{
    config::Config,
    error::{Code, Error},
    name::check_name,
    wire::{self, FileId, Msg, Offer, QoS},
};

/// What the sender proposes (the offer's fields, owned).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OfferInfo {
    /// Total size in bytes.
    pub size: u64,
    /// Bare file name the receiver stores it under.
    pub name: String,
    /// Channel (informative; may be empty).
    pub channel: String,
    /// User data (may be empty).
    pub data: String,
    /// Delivery guarantee.
    pub qos: QoS,
}

impl OfferInfo {
    /// An offer of `size` bytes named `name` at `qos`, with no channel and no data.
    #[must_use]
    pub fn new(name: impl Into<String>, size: u64, qos: QoS) -> Self {
        Self {
            size,
            name: name.into(),
            channel: String::new(),
            data: String::new(),
            qos,
        }
    }
}

/// What happened on the sending side (the seeds' sender events).
#[derive(Debug)]
#[non_exhaustive]
pub enum SenderEvent {
    /// The receiver accepted (`offset` 0) or resumes at `offset`.
    Accepted {
        /// Where sending starts.
        offset: u64,
    },
    /// A chunk was acknowledged (QoS 1; `OnFileSentAcknowledgment`).
    Acknowledged {
        /// Its packet id.
        packet: u64,
        /// Bytes the receiver holds.
        offset: u64,
    },
    /// The receiver asked to go back to `offset` (QoS 2).
    Rewound {
        /// Where sending goes on.
        offset: u64,
    },
    /// The receiver confirmed the whole file with its SHA-256 (`OnFileSent`).
    Sent {
        /// The digest both sides agree on.
        sha256: [u8; 32],
    },
    /// The transfer failed (`OnFileSentError`): refused, an error from either side, a timeout.
    Failed(Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Offered,
    Sending,
    Completing,
    Done,
    Failed,
}

/// One outgoing transfer.
#[derive(Debug)]
pub struct Sender {
    id: FileId,
    info: OfferInfo,
    chunk: u64,
    state: State,
    /// Next byte to send.
    pos: u64,
    /// Bytes the receiver confirmed (QoS 1) or holds (QoS 2 request offset).
    acked: u64,
    /// QoS 2: bytes below this may be sent.
    limit: u64,
    window: u64,
    hasher: Sha256,
    hashed: u64,
    digest: Option<[u8; 32]>,
    next_packet: u64,
    /// The caller hashes the file (see [`Sender::hash_externally`]).
    external: bool,
    last_heard: Instant,
    timeout: std::time::Duration,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<SenderEvent>,
}

impl Sender {
    /// Starts a transfer of `info` as file `id` (the caller picks ids: random for a new file,
    /// the old one to resume) and queues the `offer`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config, [`Error::Protocol`] with
    /// [`Code::InvalidName`] for a name the receiver would refuse anyway.
    pub fn new(config: &Config, id: FileId, info: OfferInfo, now: Instant) -> Result<Self, Error> {
        config.validate()?;
        check_name(&info.name)?;
        let mut s = Self {
            id,
            chunk: u64::from(config.chunk),
            state: State::Offered,
            pos: 0,
            acked: 0,
            limit: 0,
            window: 1,
            hasher: Sha256::new(),
            hashed: 0,
            digest: None,
            next_packet: 1,
            external: false,
            last_heard: now,
            timeout: config.timeout,
            out: VecDeque::new(),
            events: VecDeque::new(),
            info,
        };
        let offer = Msg::Offer(Offer {
            size: s.info.size,
            chunk: config.chunk,
            qos: s.info.qos,
            name: &s.info.name,
            channel: &s.info.channel,
            data: &s.info.data,
        });
        s.out.push_back(wire::to_vec(id, &offer));
        Ok(s)
    }

    /// The file id.
    #[must_use]
    pub fn id(&self) -> FileId {
        self.id
    }

    /// The offer.
    #[must_use]
    pub fn info(&self) -> &OfferInfo {
        &self.info
    }

    /// Bytes put on the wire so far (the position of the next chunk).
    #[must_use]
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Bytes the receiver confirmed (QoS 1 acks, QoS 2 requests, the resume offset).
    #[must_use]
    pub fn acknowledged(&self) -> u64 {
        self.acked
    }

    /// True once the transfer is over (sent or failed).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// The next message to put on the wire (one binary WebSocket message).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SenderEvent> {
        self.events.pop_front()
    }

    /// Whether [`Sender::poll_event`] or [`Sender::poll_transmit`] has something.
    #[must_use]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty() || !self.out.is_empty()
    }

    /// The caller hashes the file itself, in order and once (for example on the thread that
    /// reads it, so that reading, hashing and sending overlap) and hands the digest to
    /// [`Sender::set_digest`]; the sender then hashes nothing, [`Sender::needs_prefix`] is
    /// always `None`, and `complete` goes out once the last chunk is sent and the digest is
    /// known. Call it before the receiver answers the offer.
    pub fn hash_externally(&mut self) {
        self.external = true;
    }

    /// The SHA-256 of the whole file, computed by the caller (see
    /// [`Sender::hash_externally`]); ignored otherwise.
    pub fn set_digest(&mut self, sha256: [u8; 32]) {
        if self.external && self.digest.is_none() {
            self.digest = Some(sha256);
            self.maybe_complete();
        }
    }

    /// After a resume at offset N, the bytes `[from, to)` of the file must be fed to
    /// [`Sender::absorb_prefix`] (for the SHA-256) before chunks flow.
    #[must_use]
    pub fn needs_prefix(&self) -> Option<(u64, u64)> {
        (self.state == State::Sending && self.hashed < self.pos).then_some((self.hashed, self.pos))
    }

    /// Feeds the next bytes of the already-sent prefix (see [`Sender::needs_prefix`]).
    pub fn absorb_prefix(&mut self, bytes: &[u8]) {
        let room = self.pos.saturating_sub(self.hashed);
        let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.hasher.update(&bytes[..take]);
        self.hashed += take as u64;
        self.maybe_complete();
    }

    /// The next chunk to read and pass to [`Sender::push_chunk`]: its offset and length, or
    /// `None` while the window, the credit or the state allows none.
    #[must_use]
    pub fn next_chunk(&self) -> Option<(u64, usize)> {
        if self.state != State::Sending || self.hashed < self.pos || self.pos >= self.info.size {
            return None;
        }
        let allowed = match self.info.qos {
            QoS::AtMostOnce => true,
            QoS::Acknowledged => self.pos < self.acked + self.window * self.chunk,
            QoS::Pulled => self.pos < self.limit,
        };
        if !allowed {
            return None;
        }
        let len = (self.info.size - self.pos).min(self.chunk);
        Some((self.pos, len as usize))
    }

    /// Sends the chunk read at `offset` (as [`Sender::next_chunk`] asked): queues its `data`
    /// message and, after the last one, `complete`.
    ///
    /// # Errors
    /// [`Error::Protocol`] with [`Code::Violation`] when `offset` or the length is not what
    /// was asked (a caller bug, or the file changed under it).
    pub fn push_chunk(&mut self, now: Instant, offset: u64, bytes: &[u8]) -> Result<(), Error> {
        let len = self.check_chunk(offset, bytes.len())?;
        let packet = self.next_packet;
        self.next_packet += 1;
        self.out.push_back(wire::to_vec(
            self.id,
            &Msg::Data {
                packet,
                offset,
                chunk: bytes,
            },
        ));
        self.chunk_sent(now, offset, &bytes[..len]);
        Ok(())
    }

    /// Like [`Sender::push_chunk`] without a copy: `message` holds
    /// [`wire::DATA_HEADER_LEN`] bytes of room followed by the chunk read at `offset`; the
    /// sender writes the `data` header into the room and queues the buffer as it is.
    ///
    /// # Errors
    /// As [`Sender::push_chunk`]; also when `message` is shorter than the header.
    pub fn push_data_message(
        &mut self,
        now: Instant,
        offset: u64,
        mut message: Vec<u8>,
    ) -> Result<(), Error> {
        let Some(len) = message.len().checked_sub(wire::DATA_HEADER_LEN) else {
            return Err(Error::proto(
                Code::Violation,
                "a data message without room for its header",
            ));
        };
        self.check_chunk(offset, len)?;
        let packet = self.next_packet;
        self.next_packet += 1;
        wire::encode_data_header(
            self.id,
            packet,
            offset,
            &mut message[..wire::DATA_HEADER_LEN],
        );
        self.chunk_sent(now, offset, &message[wire::DATA_HEADER_LEN..]);
        self.out.push_back(message);
        Ok(())
    }

    fn check_chunk(&self, offset: u64, got: usize) -> Result<usize, Error> {
        let Some((want, len)) = self.next_chunk() else {
            return Err(Error::proto(Code::Violation, "no chunk is due"));
        };
        if offset != want || got != len {
            return Err(Error::proto(
                Code::Violation,
                format!(
                    "chunk at {offset} of {got} bytes, expected {len} at {want} (did the file change?)"
                ),
            ));
        }
        Ok(len)
    }

    fn chunk_sent(&mut self, now: Instant, offset: u64, bytes: &[u8]) {
        let _ = now;
        let end = offset + bytes.len() as u64;
        if end > self.hashed {
            if !self.external {
                let skip = (self.hashed - offset) as usize;
                self.hasher.update(&bytes[skip..]);
            }
            self.hashed = end;
        }
        self.pos = end;
        self.maybe_complete();
    }

    fn maybe_complete(&mut self) {
        if self.state == State::Sending
            && self.pos == self.info.size
            && self.hashed == self.info.size
            && (!self.external || self.digest.is_some())
        {
            let digest: [u8; 32] = match self.digest {
                Some(d) => d,
                None => std::mem::take(&mut self.hasher).finalize().into(),
            };
            self.digest = Some(digest);
            self.out
                .push_back(wire::to_vec(self.id, &Msg::Complete { sha256: digest }));
            self.state = State::Completing;
        }
    }

    /// A message for this file id from the receiver.
    pub fn handle(&mut self, now: Instant, msg: &Msg<'_>) {
        if self.is_finished() {
            return;
        }
        self.last_heard = now;
        if let Err(e) = self.handle_inner(msg) {
            self.fail(e);
        }
    }

    fn handle_inner(&mut self, msg: &Msg<'_>) -> Result<(), Error> {
        let violation = |what: &str| Err(Error::proto(Code::Violation, what.to_string()));
        match (*msg, self.state) {
            (Msg::Accept { window }, State::Offered) => self.start(0, window),
            (Msg::Resume { offset, window }, State::Offered) => {
                if offset > self.info.size {
                    return Err(Error::proto(
                        Code::OutOfRange,
                        format!("resume at {offset} past the size {}", self.info.size),
                    ));
                }
                self.start(offset, window)
            }
            (Msg::Refuse { code, reason }, State::Offered) => Err(Error::Remote {
                code: Code::from_u16(code),
                message: reason.to_string(),
            }),
            (Msg::Ack { packet, offset }, State::Sending | State::Completing) => {
                if self.info.qos != QoS::Acknowledged {
                    return violation("ack below QoS 1");
                }
                if offset > self.hashed.max(self.pos) || offset < self.acked {
                    return Err(Error::proto(
                        Code::OutOfRange,
                        format!(
                            "ack of {offset} bytes; sent {}, acked {}",
                            self.hashed, self.acked
                        ),
                    ));
                }
                self.acked = offset;
                self.events
                    .push_back(SenderEvent::Acknowledged { packet, offset });
                Ok(())
            }
            (
                Msg::Request {
                    offset,
                    count,
                    retransmit,
                },
                State::Sending | State::Completing,
            ) => {
                if self.info.qos != QoS::Pulled {
                    return violation("request below QoS 2");
                }
                if offset > self.hashed.max(self.pos) || offset > self.info.size {
                    return Err(Error::proto(
                        Code::OutOfRange,
                        format!("request at {offset}; only {} bytes were sent", self.hashed),
                    ));
                }
                self.acked = self.acked.max(offset);
                let end = offset.saturating_add(u64::from(count).saturating_mul(self.chunk));
                self.limit = self.limit.max(end);
                if retransmit && self.state == State::Sending && offset < self.pos {
                    self.pos = offset;
                    self.limit = end;
                    self.events.push_back(SenderEvent::Rewound { offset });
                }
                Ok(())
            }
            (Msg::Complete { sha256 }, State::Completing) => {
                if Some(sha256) != self.digest {
                    return Err(Error::proto(
                        Code::Checksum,
                        "the receiver's SHA-256 differs from the file's",
                    ));
                }
                self.state = State::Done;
                self.events.push_back(SenderEvent::Sent { sha256 });
                Ok(())
            }
            (
                Msg::Error { code, message }
                | Msg::Cancel {
                    code,
                    reason: message,
                },
                _,
            ) => {
                self.state = State::Failed;
                self.events.push_back(SenderEvent::Failed(Error::Remote {
                    code: Code::from_u16(code),
                    message: message.to_string(),
                }));
                Ok(())
            }
            (m, s) => violation(&format!("{:?} while {s:?}", m.method())),
        }
    }

    fn start(&mut self, offset: u64, window: u32) -> Result<(), Error> {
        if window == 0 {
            return Err(Error::proto(Code::Violation, "window of 0 chunks"));
        }
        self.state = State::Sending;
        self.window = u64::from(window);
        self.pos = offset;
        self.acked = offset;
        self.limit = offset;
        if self.external {
            // The caller hashes the prefix along with the rest.
            self.hashed = offset;
        }
        self.events.push_back(SenderEvent::Accepted { offset });
        self.maybe_complete();
        Ok(())
    }

    /// Ends the transfer: queues `error` to the receiver and a `Failed` event.
    pub fn fail(&mut self, error: Error) {
        if self.is_finished() {
            return;
        }
        if !matches!(error, Error::Remote { .. }) {
            let message = error.detail();
            self.out.push_back(wire::to_vec(
                self.id,
                &Msg::Error {
                    code: error.code().as_u16(),
                    message: &message,
                },
            ));
        }
        self.state = State::Failed;
        self.events.push_back(SenderEvent::Failed(error));
    }

    /// Cancels: queues `cancel` and a `Failed` event with [`Code::Cancelled`].
    pub fn cancel(&mut self, reason: &str) {
        if self.is_finished() {
            return;
        }
        self.out.push_back(wire::to_vec(
            self.id,
            &Msg::Cancel {
                code: Code::Cancelled.as_u16(),
                reason,
            },
        ));
        self.state = State::Failed;
        self.events.push_back(SenderEvent::Failed(Error::proto(
            Code::Cancelled,
            format!("cancelled: {reason}"),
        )));
    }

    /// When [`Sender::handle_timeout`] wants to be called: the peer's silence deadline while
    /// an answer is awaited (the offer's answer, acks and credit at QoS 1 and 2, the final
    /// `complete`).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let waiting = match self.state {
            State::Offered | State::Completing => true,
            State::Sending => self.info.qos != QoS::AtMostOnce && self.next_chunk().is_none(),
            State::Done | State::Failed => false,
        };
        waiting.then_some(self.last_heard + self.timeout)
    }

    /// The clock moved; fails the transfer when the peer stayed silent past the timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(at) = self.poll_timeout()
            && now >= at
        {
            self.fail(Error::proto(
                Code::Timeout,
                format!("no answer from the receiver for {:?}", self.timeout),
            ));
        }
    }

    /// The transport is ready again after silence on our side (e.g. the caller was waiting
    /// for send room); resets the silence clock without a message.
    pub fn touch(&mut self, now: Instant) {
        self.last_heard = now;
    }
}
