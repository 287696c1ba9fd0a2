//! The allocation table: allocate, relay sockets, refresh, reservations, removal.

use super::*;

pub(super) struct Channel {
    pub(super) number: u16,
    pub(super) peer: SocketAddr,
    pub(super) expires: Instant,
}

pub(super) struct Allocation {
    pub(super) relay: SocketAddr,
    pub(super) protocol: RelayProtocol,
    pub(super) auth: Auth,
    pub(super) expires: Instant,
    pub(super) permissions: Vec<(IpAddr, Instant)>,
    pub(super) channels: Vec<Channel>,
    pub(super) up: Option<TokenBucket>,
    pub(super) down: Option<TokenBucket>,
    pub(super) connections: Vec<u32>,
    /// A [`ServerEvent::PeerRefused`] was raised for this allocation.
    pub(super) refusal_reported: bool,
}

impl Allocation {
    pub(super) fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|(p, exp)| *p == ip && *exp > now)
    }
}

pub(super) struct PendingAllocation {
    pub(super) client: FiveTuple,
    pub(super) tid: TransactionId,
    pub(super) auth: Auth,
    pub(super) lifetime: Duration,
    pub(super) protocol: RelayProtocol,
    pub(super) reserve_next: bool,
    pub(super) fingerprint: bool,
    pub(super) family_error: bool,
}

pub(super) struct Reservation {
    pub(super) addr: SocketAddr,
    pub(super) expires: Instant,
}

impl Server {
    pub(super) fn clamp_lifetime(&self, requested: Option<u32>) -> Duration {
        match requested {
            Some(s) if Duration::from_secs(u64::from(s)) > self.cfg.default_lifetime => {
                Duration::from_secs(u64::from(s)).min(self.cfg.max_lifetime)
            }
            _ => self.cfg.default_lifetime,
        }
    }

    pub(super) fn allocate(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
    ) -> Result<Option<()>, Reject> {
        if self.allocations.contains_key(&from) {
            return Err(Reject::signed(ErrorCode::ALLOCATION_MISMATCH));
        }
        if self.cfg.alternate_server.is_some() {
            return Err(Reject::signed(ErrorCode::TRY_ALTERNATE));
        }
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        let proto = msg
            .requested_transport()
            .map_err(|_| bad())?
            .ok_or_else(bad)?;
        let protocol = RelayProtocol::from_code(proto)
            .ok_or(Reject::signed(ErrorCode::UNSUPPORTED_TRANSPORT))?;
        let even = msg.even_port().map_err(|_| bad())?;
        let token = msg.reservation_token().map_err(|_| bad())?;
        let family_code = msg.requested_address_family().map_err(|_| bad())?;
        if protocol == RelayProtocol::Tcp
            && (!from.transport.is_stream()
                || even.is_some()
                || token.is_some()
                || msg.has(AttrType::DONT_FRAGMENT))
        {
            return Err(bad());
        }
        if token.is_some() && (even.is_some() || family_code.is_some()) {
            return Err(bad());
        }
        let family = match family_code {
            None => AddressFamily::of(from.client.ip()),
            Some(c) => AddressFamily::from_code(c)
                .ok_or(Reject::signed(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED))?,
        };
        let family_error = msg.has(AttrType::ADDITIONAL_ADDRESS_FAMILY);
        let reserved = match token {
            None => None,
            Some(t) => match self.reservations.remove(&t) {
                Some(r) if r.expires > now => Some(r.addr),
                Some(r) => {
                    self.events
                        .push_back(ServerEvent::ReleaseReservation { addr: r.addr });
                    return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
                }
                None => return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY)),
            },
        };
        let used = self.per_user.get(&auth.username).copied().unwrap_or(0)
            + self
                .pending
                .values()
                .filter(|p| p.auth.username == auth.username)
                .count();
        if used >= self.cfg.user_quota {
            return Err(Reject::signed(ErrorCode::ALLOCATION_QUOTA_REACHED));
        }
        if self.allocations.len() + self.pending.len() >= self.cfg.total_quota {
            return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            PendingAllocation {
                client: from,
                tid: msg.transaction_id(),
                auth: auth.clone(),
                lifetime: self.clamp_lifetime(msg.lifetime().map_err(|_| bad())?),
                protocol,
                reserve_next: even == Some(true),
                fingerprint: msg.has_fingerprint(),
                family_error,
            },
        );
        self.pending_keys.insert((from, msg.transaction_id()), id);
        self.events.push_back(ServerEvent::BindRelay {
            id,
            family,
            protocol,
            even_port: even,
            reserved,
        });
        Ok(None)
    }

    /// The runtime bound a relay socket for [`ServerEvent::BindRelay`] `id` at `relay`; with
    /// `reserved`, it also holds the next port (EVEN-PORT with R bit) at that address.
    /// The success response is queued for [`Server::poll_transmit`].
    pub fn relay_bound(
        &mut self,
        now: Instant,
        id: u64,
        relay: SocketAddr,
        reserved: Option<SocketAddr>,
    ) {
        let Some(p) = self.pending.remove(&id) else {
            self.events.push_back(ServerEvent::ReleaseRelay { relay });
            if let Some(addr) = reserved {
                self.events
                    .push_back(ServerEvent::ReleaseReservation { addr });
            }
            return;
        };
        self.pending_keys.remove(&(p.client, p.tid));
        if !self
            .hooks()
            .before_allocate(&p.client, &p.auth.username, relay)
        {
            self.events.push_back(ServerEvent::ReleaseRelay { relay });
            if let Some(addr) = reserved {
                self.events
                    .push_back(ServerEvent::ReleaseReservation { addr });
            }
            self.allocate_error(now, &p, ErrorCode::FORBIDDEN);
            return;
        }
        let token = match (p.reserve_next, reserved) {
            (true, Some(addr)) => {
                let mut t = [0u8; 8];
                let _ = self.rng.fill(&mut t);
                self.reservations.insert(
                    t,
                    Reservation {
                        addr,
                        expires: now + self.cfg.reservation_lifetime,
                    },
                );
                Some(t)
            }
            (_, Some(addr)) => {
                self.events
                    .push_back(ServerEvent::ReleaseReservation { addr });
                None
            }
            _ => None,
        };
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::ALLOCATE, Class::Success),
            p.tid,
        );
        e.xor_relayed_address(relay)
            .xor_mapped_address(p.client.client)
            .lifetime(p.lifetime.as_secs() as u32);
        if let Some(t) = &token {
            e.reservation_token(t);
        }
        if p.family_error {
            let mut v = vec![2u8, 0, 4, 40];
            v.extend_from_slice(ErrorCode::ADDRESS_FAMILY_NOT_SUPPORTED.reason().as_bytes());
            e.attr(AttrType::ADDRESS_ERROR_CODE, &v);
        }
        self.finish_response(&mut e, Some(&p.auth), p.fingerprint);
        if e.finish().is_err() {
            return;
        }
        self.hooks()
            .allocation_created(&p.client, &p.auth.username, relay, p.lifetime);
        self.hooks().request_succeeded(&p.client, Method::ALLOCATE);
        *self.per_user.entry(p.auth.username.clone()).or_insert(0) += 1;
        let rate = self.cfg.bandwidth_limit;
        self.allocations.insert(
            p.client,
            Allocation {
                relay,
                protocol: p.protocol,
                auth: p.auth,
                expires: now + p.lifetime,
                permissions: Vec::new(),
                channels: Vec::new(),
                up: rate.map(|r| TokenBucket::new(r, now)),
                down: rate.map(|r| TokenBucket::new(r, now)),
                connections: Vec::new(),
                refusal_reported: false,
            },
        );
        self.by_relay.insert(relay, p.client);
        self.cache_response(now, p.client, p.tid, &out);
        self.transmits.push_back((p.client, out));
    }

    /// The runtime could not bind a relay socket for `id`: the client gets 508.
    pub fn relay_failed(&mut self, now: Instant, id: u64) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        self.pending_keys.remove(&(p.client, p.tid));
        self.allocate_error(now, &p, ErrorCode::INSUFFICIENT_CAPACITY);
    }

    /// Answers the pending Allocate `p` with `code`.
    fn allocate_error(&mut self, now: Instant, p: &PendingAllocation, code: ErrorCode) {
        self.hooks()
            .request_failed(&p.client, Method::ALLOCATE, code);
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::ALLOCATE, Class::Error),
            p.tid,
        );
        e.error_code(code);
        self.finish_response(&mut e, Some(&p.auth), p.fingerprint);
        if e.finish().is_ok() {
            self.cache_response(now, p.client, p.tid, &out);
            self.transmits.push_back((p.client, out));
        }
    }

    pub(super) fn owned_allocation(
        &mut self,
        from: &FiveTuple,
        auth: &Auth,
    ) -> Result<&mut Allocation, Reject> {
        let a = self
            .allocations
            .get_mut(from)
            .ok_or(Reject::signed(ErrorCode::ALLOCATION_MISMATCH))?;
        if a.auth.username != auth.username {
            return Err(Reject::signed(ErrorCode::WRONG_CREDENTIALS));
        }
        Ok(a)
    }

    pub(super) fn refresh(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, Reject> {
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        let requested = msg.lifetime().map_err(|_| bad())?;
        let family = msg.requested_address_family().map_err(|_| bad())?;
        let lifetime = if requested == Some(0) {
            Duration::ZERO
        } else {
            self.clamp_lifetime(requested)
        };
        let a = self.owned_allocation(&from, auth)?;
        if let Some(f) = family
            && Some(AddressFamily::of(a.relay.ip())) != AddressFamily::from_code(f)
        {
            return Err(Reject::signed(ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH));
        }
        if lifetime.is_zero() {
            self.remove_allocation(&from, DeleteReason::Refreshed);
        } else {
            a.expires = now + lifetime;
        }
        let secs = lifetime.as_secs() as u32;
        self.success(out, msg, auth, |e| {
            e.lifetime(secs);
        });
        Ok(Some(()))
    }

    pub(super) fn remove_allocation(&mut self, client: &FiveTuple, reason: DeleteReason) {
        let Some(a) = self.allocations.remove(client) else {
            return;
        };
        self.hooks().allocation_deleted(client, a.relay, reason);
        self.by_relay.remove(&a.relay);
        if let Some(n) = self.per_user.get_mut(&a.auth.username) {
            *n -= 1;
            if *n == 0 {
                self.per_user.remove(&a.auth.username);
            }
        }
        for id in a.connections {
            self.peer_conns.remove(&id);
            self.events
                .push_back(ServerEvent::ClosePeerConnection { connection_id: id });
        }
        self.events
            .push_back(ServerEvent::ReleaseRelay { relay: a.relay });
    }
}
