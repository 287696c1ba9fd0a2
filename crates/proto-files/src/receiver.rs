//! The receiving side of one transfer, sans-IO: checks an offer against the limits and any
//! partial file, decides where each chunk goes (or refuses it), acknowledges and grants credit,
//! re-requests after `interval`, gives up after `timeout`, and checks the SHA-256. Time is an
//! argument; the caller writes the file and moves messages.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use crate::{
    config::Config,
    error::{Code, Error},
    name::check_name,
    sender::OfferInfo,
    wire::{self, FileId, Msg, Offer, QoS},
};

/// SHA-256 of a stored prefix computed away from the [`Receiver`] (see
/// [`Receiver::set_prefix`]).
#[derive(Clone, Debug, Default)]
pub struct PrefixHasher {
    hasher: Sha256,
    len: u64,
}

impl PrefixHasher {
    /// An empty hasher.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Hashes the next bytes of the prefix.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// What a receiver already holds for a file id (from its store).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Partial {
    /// The size offered the first time.
    pub size: u64,
    /// The name offered the first time.
    pub name: String,
    /// Bytes stored.
    pub stored: u64,
}

impl Partial {
    /// A partial file of `stored` bytes out of `size`, first offered as `name`.
    #[must_use]
    pub fn new(name: impl Into<String>, size: u64, stored: u64) -> Self {
        Self {
            size,
            name: name.into(),
            stored,
        }
    }
}

/// What the caller must do with a `data` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataAction {
    /// Write the chunk's bytes from `skip` on at `offset`, then call [`Receiver::written`].
    Write {
        /// File offset of the first byte to write.
        offset: u64,
        /// Bytes of the chunk to skip (0 unless a retransmission overlaps).
        skip: usize,
    },
    /// A duplicate after a retransmit request (QoS 2): nothing to write.
    Drop,
}

/// What a message for this file asks of the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiverAction {
    /// Nothing.
    None,
    /// A chunk (see [`DataAction`]).
    Data(DataAction),
    /// The SHA-256 matches: move the file into place, then call [`Receiver::finish`].
    Verified {
        /// The digest.
        sha256: [u8; 32],
    },
    /// The whole file arrived and the receiver hashes externally (see
    /// [`Receiver::hash_externally`]): compute the digest of what was written and pass it to
    /// [`Receiver::check`].
    Check {
        /// The sender's digest.
        sha256: [u8; 32],
    },
    /// The sender ended the transfer (`error` or `cancel`); `cancelled` for `cancel`.
    Ended {
        /// The sender's code.
        code: Code,
        /// True for `cancel` (the partial file goes).
        cancelled: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Deciding,
    Receiving,
    Checking,
    Verified,
    Done,
    Failed,
}

/// One incoming transfer.
#[derive(Debug)]
pub struct Receiver {
    id: FileId,
    info: OfferInfo,
    chunk: u64,
    state: State,
    stored: u64,
    /// The partial file's length when the offer came (the prefix to hash).
    stored_at_accept: u64,
    hasher: Sha256,
    hashed: u64,
    /// The caller hashes (see [`Receiver::hash_externally`]).
    external: bool,
    /// The sender's digest while checking.
    claimed: Option<[u8; 32]>,
    window: u32,
    /// QoS 2: credit granted up to this byte.
    credit: u64,
    /// A retransmit request is outstanding: chunks below `stored` are duplicates, not errors.
    rewound: bool,
    last_data: Instant,
    /// QoS 2: the offset a gap was last re-requested at.
    gap_requested: Option<u64>,
    /// QoS 2: when to ask again if no chunk came.
    retry_at: Option<Instant>,
    interval: Duration,
    timeout: Duration,
    out: VecDeque<Vec<u8>>,
}

impl Receiver {
    /// Checks an `offer` against the limits and what the store already holds for its id.
    ///
    /// # Errors
    /// [`Error::Protocol`]: [`Code::InvalidName`], [`Code::TooLarge`] (size, chunk, strings),
    /// [`Code::Changed`] (a partial file with another size or name). The caller answers with
    /// [`refusal`] for the error.
    pub fn new(
        config: &Config,
        id: FileId,
        offer: &Offer<'_>,
        partial: Option<&Partial>,
        now: Instant,
    ) -> Result<Self, Error> {
        check_name(offer.name)?;
        if offer.size > config.max_file_size {
            return Err(Error::proto(
                Code::TooLarge,
                format!(
                    "file of {} bytes over the limit of {}",
                    offer.size, config.max_file_size
                ),
            ));
        }
        if offer.chunk == 0 || offer.chunk > config.max_chunk {
            return Err(Error::proto(
                Code::TooLarge,
                format!(
                    "chunk of {} bytes; accepted: 1 to {}",
                    offer.chunk, config.max_chunk
                ),
            ));
        }
        if offer.data.len() > config.max_data || offer.channel.len() > config.max_channel {
            return Err(Error::proto(Code::TooLarge, "data or channel too long"));
        }
        let stored = match partial {
            Some(p) if p.size != offer.size || p.name != offer.name => {
                return Err(Error::proto(
                    Code::Changed,
                    format!(
                        "file id {id} was {:?} of {} bytes, now {:?} of {}",
                        p.name, p.size, offer.name, offer.size
                    ),
                ));
            }
            Some(p) if p.stored > p.size => {
                return Err(Error::proto(
                    Code::OutOfRange,
                    "partial file longer than its size",
                ));
            }
            Some(p) => p.stored,
            None => 0,
        };
        Ok(Self {
            id,
            info: OfferInfo {
                size: offer.size,
                name: offer.name.to_string(),
                channel: offer.channel.to_string(),
                data: offer.data.to_string(),
                qos: offer.qos,
            },
            chunk: u64::from(offer.chunk),
            state: State::Deciding,
            stored,
            stored_at_accept: stored,
            hasher: Sha256::new(),
            hashed: 0,
            external: false,
            claimed: None,
            window: config.window,
            credit: stored,
            rewound: false,
            last_data: now,
            retry_at: None,
            gap_requested: None,
            interval: config.interval,
            timeout: config.timeout,
            out: VecDeque::new(),
        })
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

    /// Bytes stored.
    #[must_use]
    pub fn stored(&self) -> u64 {
        self.stored
    }

    /// True once the transfer is over.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Done | State::Failed)
    }

    /// The next message to put on the wire.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// Accepts the offer (after the authorization hook): queues `accept`, or `resume` when a
    /// partial file exists, and at QoS 2 the first credit.
    pub fn accept(&mut self, now: Instant) {
        if self.state != State::Deciding {
            return;
        }
        self.state = State::Receiving;
        self.last_data = now;
        let msg = if self.stored > 0 {
            Msg::Resume {
                offset: self.stored,
                window: self.window,
            }
        } else {
            Msg::Accept {
                window: self.window,
            }
        };
        self.out.push_back(wire::to_vec(self.id, &msg));
        if self.info.qos == QoS::Pulled {
            self.grant(false);
            self.retry_at = Some(now + self.interval);
        }
    }

    /// Refuses the offer: queues `refuse`.
    pub fn refuse(&mut self, code: Code, reason: &str) {
        if self.state != State::Deciding {
            return;
        }
        self.state = State::Failed;
        self.out.push_back(refusal(self.id, code, reason));
    }

    /// The caller hashes what it writes itself (the stored prefix first, then every written
    /// chunk in order; for example on the thread that writes the file, so that receiving,
    /// writing and hashing overlap). [`Receiver::written`] then hashes nothing,
    /// [`Receiver::needs_prefix`] is `None`, and `complete` yields [`ReceiverAction::Check`]:
    /// the caller's digest goes to [`Receiver::check`].
    pub fn hash_externally(&mut self) {
        self.external = true;
        self.hashed = self.stored;
    }

    /// The digest the caller computed of the whole stored file, after
    /// [`ReceiverAction::Check`]: compares it with the sender's.
    ///
    /// # Errors
    /// [`Error::Protocol`] with [`Code::Checksum`] when they differ (`error` is queued for
    /// the sender), [`Code::Violation`] when no check was asked for.
    pub fn check(&mut self, digest: [u8; 32]) -> Result<ReceiverAction, Error> {
        let (State::Checking, Some(claimed)) = (self.state, self.claimed) else {
            return Err(Error::proto(
                Code::Violation,
                "no checksum check is pending (caller bug)",
            ));
        };
        if digest != claimed {
            let e = Error::proto(
                Code::Checksum,
                "SHA-256 of the received file differs from the sender's",
            );
            self.fail_with(&e);
            return Err(e);
        }
        self.state = State::Verified;
        Ok(ReceiverAction::Verified { sha256: digest })
    }

    /// After a resume, the partial file's bytes `[from, to)` must be fed to
    /// [`Receiver::absorb_prefix`] (for the SHA-256) before the `complete` can be checked.
    #[must_use]
    pub fn needs_prefix(&self) -> Option<(u64, u64)> {
        (self.hashed < self.stored).then_some((self.hashed, self.stored))
    }

    /// Hands over a [`PrefixHasher`] that hashed the whole stored prefix elsewhere (another
    /// thread, while the transfer was already accepted), instead of [`Receiver::absorb_prefix`].
    ///
    /// # Errors
    /// [`Error::Protocol`] with [`Code::Violation`] when it did not hash exactly the prefix or
    /// part of the prefix was absorbed already.
    pub fn set_prefix(&mut self, prefix: PrefixHasher) -> Result<(), Error> {
        if self.hashed != 0 || prefix.len != self.stored_at_accept {
            return Err(Error::proto(
                Code::Violation,
                format!(
                    "prefix hasher over {} bytes, the stored prefix is {}",
                    prefix.len, self.stored_at_accept
                ),
            ));
        }
        self.hasher = prefix.hasher;
        self.hashed = prefix.len;
        Ok(())
    }

    /// Feeds the next bytes of the stored prefix.
    pub fn absorb_prefix(&mut self, bytes: &[u8]) {
        let room = self.stored - self.hashed;
        let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.hasher.update(&bytes[..take]);
        self.hashed += take as u64;
    }

    fn grant(&mut self, retransmit: bool) {
        let count = self.window;
        self.credit = self
            .stored
            .saturating_add(u64::from(count).saturating_mul(self.chunk));
        self.out.push_back(wire::to_vec(
            self.id,
            &Msg::Request {
                offset: self.stored,
                count,
                retransmit,
            },
        ));
    }

    /// A message for this file id from the sender.
    ///
    /// # Errors
    /// [`Error::Protocol`] for a hostile or broken sender (out of order, duplicate, past the
    /// size, over the chunk, checksum mismatch, wrong state); `error` is already queued for
    /// the sender and the transfer is over.
    pub fn handle(&mut self, now: Instant, msg: &Msg<'_>) -> Result<ReceiverAction, Error> {
        if self.is_finished() {
            return Ok(ReceiverAction::None);
        }
        match self.handle_inner(now, msg) {
            Ok(a) => Ok(a),
            Err(e) => {
                self.fail_with(&e);
                Err(e)
            }
        }
    }

    fn handle_inner(&mut self, now: Instant, msg: &Msg<'_>) -> Result<ReceiverAction, Error> {
        match (*msg, self.state) {
            (
                Msg::Data {
                    offset,
                    chunk,
                    packet: _,
                },
                State::Receiving,
            ) => {
                let len = chunk.len() as u64;
                if len > self.chunk {
                    return Err(Error::proto(
                        Code::OutOfRange,
                        format!("chunk of {len} bytes over the offered {}", self.chunk),
                    ));
                }
                let end = offset.saturating_add(len);
                if end > self.info.size {
                    return Err(Error::proto(
                        Code::OutOfRange,
                        format!("chunk [{offset}, {end}) past the size {}", self.info.size),
                    ));
                }
                if len == 0 {
                    return Err(Error::proto(Code::Violation, "empty chunk"));
                }
                if offset > self.stored && self.info.qos == QoS::Pulled {
                    // A gap (a chunk went missing): drop it and ask again from what we hold,
                    // once per gap.
                    self.last_data = now;
                    if self.gap_requested != Some(self.stored) {
                        self.gap_requested = Some(self.stored);
                        self.rewound = true;
                        self.grant(true);
                    }
                    return Ok(ReceiverAction::Data(DataAction::Drop));
                }
                if offset > self.stored {
                    return Err(Error::proto(
                        Code::OutOfOrder,
                        format!("chunk at {offset}, expected {}", self.stored),
                    ));
                }
                if self.info.qos == QoS::Pulled && end > self.credit {
                    return Err(Error::proto(
                        Code::Violation,
                        format!("chunk up to {end} beyond the credit of {}", self.credit),
                    ));
                }
                self.last_data = now;
                if self.retry_at.is_some() {
                    self.retry_at = Some(now + self.interval);
                }
                if offset < self.stored {
                    if !(self.info.qos == QoS::Pulled && self.rewound) {
                        return Err(Error::proto(
                            Code::Duplicate,
                            format!("chunk at {offset} again (have {} bytes)", self.stored),
                        ));
                    }
                    if end <= self.stored {
                        return Ok(ReceiverAction::Data(DataAction::Drop));
                    }
                    return Ok(ReceiverAction::Data(DataAction::Write {
                        offset: self.stored,
                        skip: (self.stored - offset) as usize,
                    }));
                }
                Ok(ReceiverAction::Data(DataAction::Write { offset, skip: 0 }))
            }
            (Msg::Complete { sha256 }, State::Receiving) => {
                if self.stored != self.info.size {
                    return Err(Error::proto(
                        Code::Violation,
                        format!("complete after {} of {} bytes", self.stored, self.info.size),
                    ));
                }
                if self.hashed != self.stored {
                    return Err(Error::proto(
                        Code::Violation,
                        "complete before the stored prefix was hashed (caller bug)",
                    ));
                }
                if self.external {
                    self.state = State::Checking;
                    self.claimed = Some(sha256);
                    return Ok(ReceiverAction::Check { sha256 });
                }
                let digest: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
                if digest != sha256 {
                    return Err(Error::proto(
                        Code::Checksum,
                        "SHA-256 of the received file differs from the sender's",
                    ));
                }
                self.state = State::Verified;
                Ok(ReceiverAction::Verified { sha256 })
            }
            (Msg::Error { code, .. }, _) => {
                self.state = State::Failed;
                Ok(ReceiverAction::Ended {
                    code: Code::from_u16(code),
                    cancelled: false,
                })
            }
            (Msg::Cancel { code, .. }, _) => {
                self.state = State::Failed;
                Ok(ReceiverAction::Ended {
                    code: Code::from_u16(code),
                    cancelled: true,
                })
            }
            (m, s) => Err(Error::proto(
                Code::Violation,
                format!("{:?} while {s:?}", m.method()),
            )),
        }
    }

    /// The caller wrote `bytes` at `offset` (as a [`DataAction::Write`] said): hashes them,
    /// acknowledges (QoS 1) or grants credit (QoS 2). `packet` is the `data` message's id.
    ///
    /// # Errors
    /// [`Error::Protocol`] with [`Code::Violation`] when `offset` is not the stored length.
    pub fn written(
        &mut self,
        now: Instant,
        packet: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), Error> {
        if offset != self.stored || self.hashed != self.stored {
            return Err(Error::proto(
                Code::Violation,
                "written out of order or before the prefix was hashed (caller bug)",
            ));
        }
        if !self.external {
            self.hasher.update(bytes);
        }
        self.stored += bytes.len() as u64;
        self.hashed = self.stored;
        self.last_data = now;
        match self.info.qos {
            QoS::AtMostOnce => {}
            QoS::Acknowledged => self.out.push_back(wire::to_vec(
                self.id,
                &Msg::Ack {
                    packet,
                    offset: self.stored,
                },
            )),
            QoS::Pulled => {
                let half = self.window_bytes() / 2;
                if self.stored < self.info.size && self.credit.saturating_sub(self.stored) <= half {
                    self.grant(false);
                }
            }
        }
        Ok(())
    }

    fn window_bytes(&self) -> u64 {
        u64::from(self.window).saturating_mul(self.chunk)
    }

    /// The file is in place: echoes `complete` to the sender.
    pub fn finish(&mut self, sha256: [u8; 32]) {
        if self.state == State::Verified {
            self.state = State::Done;
            self.out
                .push_back(wire::to_vec(self.id, &Msg::Complete { sha256 }));
        }
    }

    /// Ends the transfer with `error` (a storage failure, the caller's decision).
    pub fn fail(&mut self, error: &Error) {
        if !self.is_finished() {
            self.fail_with(error);
        }
    }

    fn fail_with(&mut self, error: &Error) {
        self.state = State::Failed;
        let message = error.detail();
        self.out.push_back(wire::to_vec(
            self.id,
            &Msg::Error {
                code: error.code().as_u16(),
                message: &message,
            },
        ));
    }

    /// When [`Receiver::handle_timeout`] wants to be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Deciding | State::Receiving => {
                let dead = self.last_data + self.timeout;
                Some(self.retry_at.map_or(dead, |at| at.min(dead)))
            }
            _ => None,
        }
    }

    /// The clock moved: QoS 2 asks again after `interval`; any QoS gives up after `timeout`.
    ///
    /// # Errors
    /// [`Error::Protocol`] with [`Code::Timeout`]; `error` is queued for the sender.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        if !matches!(self.state, State::Deciding | State::Receiving) {
            return Ok(());
        }
        if now >= self.last_data + self.timeout {
            let e = Error::proto(
                Code::Timeout,
                format!("no data from the sender for {:?}", self.timeout),
            );
            self.fail_with(&e);
            return Err(e);
        }
        if self.state == State::Receiving
            && self.info.qos == QoS::Pulled
            && self.retry_at.is_some_and(|at| now >= at)
            && self.stored < self.info.size
        {
            self.rewound = true;
            self.grant(true);
            self.retry_at = Some(now + self.interval);
        }
        Ok(())
    }
}

/// A `refuse` message for `id` (an offer [`Receiver::new`] rejected, or no receiver at all).
#[must_use]
pub fn refusal(id: FileId, code: Code, reason: &str) -> Vec<u8> {
    wire::to_vec(
        id,
        &Msg::Refuse {
            code: code.as_u16(),
            reason,
        },
    )
}
