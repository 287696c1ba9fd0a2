//! RFC 6062 TCP relays: Connect, peer connections, ConnectionBind.

use super::*;

pub(super) enum PeerConnState {
    /// Connect sent by the client; waiting for the runtime's TCP connect.
    Connecting {
        tid: TransactionId,
        fingerprint: bool,
    },
    /// Connected (actively or passively); waiting for ConnectionBind until the deadline.
    Ready { deadline: Instant },
    /// Piped to a client data connection.
    Bound,
}

pub(super) struct PeerConn {
    pub(super) alloc: FiveTuple,
    pub(super) peer: SocketAddr,
    pub(super) state: PeerConnState,
}

impl Server {
    pub(super) fn connect(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
    ) -> Result<Option<()>, Reject> {
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        let peer = msg.xor_peer_address().map_err(|_| bad())?.ok_or_else(bad)?;
        let (relay, protocol) = {
            let a = self.owned_allocation(&from, auth)?;
            (a.relay, a.protocol)
        };
        if protocol != RelayProtocol::Tcp {
            return Err(bad());
        }
        self.check_peer(&from, relay, peer)?;
        if self
            .peer_conns
            .values()
            .any(|c| c.alloc == from && c.peer == peer)
        {
            return Err(Reject::signed(ErrorCode::CONNECTION_ALREADY_EXISTS));
        }
        if !self
            .allocations
            .get(&from)
            .is_some_and(|a| a.permitted(peer.ip(), now))
        {
            return Err(Reject::signed(ErrorCode::FORBIDDEN));
        }
        let id = self.new_connection_id();
        self.peer_conns.insert(
            id,
            PeerConn {
                alloc: from,
                peer,
                state: PeerConnState::Connecting {
                    tid: msg.transaction_id(),
                    fingerprint: msg.has_fingerprint(),
                },
            },
        );
        if let Some(a) = self.allocations.get_mut(&from) {
            a.connections.push(id);
        }
        self.pending_keys.insert((from, msg.transaction_id()), 0);
        self.events.push_back(ServerEvent::ConnectPeer {
            connection_id: id,
            relay,
            peer,
        });
        Ok(None)
    }

    pub(super) fn new_connection_id(&mut self) -> u32 {
        loop {
            let id = self.random_u32();
            if id != 0 && !self.peer_conns.contains_key(&id) {
                return id;
            }
        }
    }

    pub(super) fn connect_result(&mut self, now: Instant, id: u32, ok: bool) {
        let Some(c) = self.peer_conns.get_mut(&id) else {
            self.events
                .push_back(ServerEvent::ClosePeerConnection { connection_id: id });
            return;
        };
        let PeerConnState::Connecting { tid, fingerprint } = c.state else {
            return;
        };
        let alloc = c.alloc;
        self.pending_keys.remove(&(alloc, tid));
        let Some(a) = self.allocations.get(&alloc) else {
            return;
        };
        let mut out = Vec::new();
        let class = if ok { Class::Success } else { Class::Error };
        let mut e = MessageEncoder::new(&mut out, MessageType::new(Method::CONNECT, class), tid);
        if ok {
            e.connection_id(id);
        } else {
            e.error_code(ErrorCode::CONNECTION_TIMEOUT_OR_FAILURE);
        }
        self.finish_response(&mut e, Some(&a.auth), fingerprint);
        let good = e.finish().is_ok();
        if ok {
            if let Some(c) = self.peer_conns.get_mut(&id) {
                c.state = PeerConnState::Ready {
                    deadline: now + self.cfg.connection_bind_timeout,
                };
            }
        } else {
            self.drop_peer_conn(id, false);
        }
        if good {
            self.cache_response(now, alloc, tid, &out);
            self.transmits.push_back((alloc, out));
        }
    }

    /// RFC 6062: the TCP connection for [`ServerEvent::ConnectPeer`] `connection_id` is up.
    pub fn peer_connected(&mut self, now: Instant, connection_id: u32) {
        self.connect_result(now, connection_id, true);
    }

    /// RFC 6062: the TCP connection for `connection_id` failed: the client gets 447.
    pub fn peer_connect_failed(&mut self, now: Instant, connection_id: u32) {
        self.connect_result(now, connection_id, false);
    }

    /// RFC 6062: a peer connected to the TCP relay `relay`. Returns the connection id to hold the
    /// socket under (a ConnectionAttempt indication is queued for the client), or `None` when the
    /// peer has no permission: close the socket.
    pub fn handle_peer_tcp_connection(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
    ) -> Option<u32> {
        let client = *self.by_relay.get(&relay)?;
        let a = self.allocations.get(&client)?;
        if a.protocol != RelayProtocol::Tcp
            || !a.permitted(peer.ip(), now)
            || !self.peer_allowed(peer.ip())
        {
            return None;
        }
        if self
            .peer_conns
            .values()
            .any(|c| c.alloc == client && c.peer == peer)
        {
            return None;
        }
        let id = self.new_connection_id();
        let tid = TransactionId::from_random(&mut *self.rng.0).ok()?;
        let mut out = Vec::new();
        let mut e = MessageEncoder::new(
            &mut out,
            MessageType::new(Method::CONNECTION_ATTEMPT, Class::Indication),
            tid,
        );
        e.xor_peer_address(peer).connection_id(id);
        self.finish_response(&mut e, None, false);
        e.finish().ok()?;
        self.peer_conns.insert(
            id,
            PeerConn {
                alloc: client,
                peer,
                state: PeerConnState::Ready {
                    deadline: now + self.cfg.connection_bind_timeout,
                },
            },
        );
        if let Some(a) = self.allocations.get_mut(&client) {
            a.connections.push(id);
        }
        self.transmits.push_back((client, out));
        Some(id)
    }

    /// RFC 6062: the peer connection `connection_id` closed (either side); forget it.
    pub fn peer_connection_closed(&mut self, connection_id: u32) {
        self.drop_peer_conn(connection_id, false);
    }

    pub(super) fn connection_bind(
        &mut self,
        _now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, Reject> {
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        if !from.transport.is_stream() || self.allocations.contains_key(&from) {
            return Err(bad());
        }
        let id = msg.connection_id().map_err(|_| bad())?.ok_or_else(bad)?;
        let c = self.peer_conns.get_mut(&id).ok_or_else(bad)?;
        if !matches!(c.state, PeerConnState::Ready { .. }) {
            return Err(bad());
        }
        let owner = self
            .allocations
            .get(&c.alloc)
            .map(|a| a.auth.username.as_str());
        if owner != Some(auth.username.as_str()) {
            return Err(Reject::signed(ErrorCode::WRONG_CREDENTIALS));
        }
        c.state = PeerConnState::Bound;
        self.success(out, msg, auth, |_| {});
        self.events.push_back(ServerEvent::PipeConnection {
            connection_id: id,
            client: from,
        });
        Ok(Some(()))
    }

    pub(super) fn drop_peer_conn(&mut self, id: u32, notify: bool) {
        if let Some(c) = self.peer_conns.remove(&id) {
            if let PeerConnState::Connecting { tid, .. } = c.state {
                self.pending_keys.remove(&(c.alloc, tid));
            }
            if let Some(a) = self.allocations.get_mut(&c.alloc) {
                a.connections.retain(|x| *x != id);
            }
            if notify {
                self.events
                    .push_back(ServerEvent::ClosePeerConnection { connection_id: id });
            }
        }
    }
}
