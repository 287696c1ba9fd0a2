//! The peer policy (denied, loopback and special-purpose addresses) and permissions.

use super::*;

impl Server {
    pub(super) fn peer_allowed(&self, ip: IpAddr) -> bool {
        self.peer_refusal(ip).is_none()
    }

    /// Why the policy refuses `ip`, if it does.
    pub(super) fn peer_refusal(&self, ip: IpAddr) -> Option<PeerRefusal> {
        if self.cfg.denied_peers.iter().any(|c| c.contains(ip)) {
            return Some(PeerRefusal::Denied);
        }
        if self.cfg.allowed_peers.iter().any(|c| c.contains(ip)) {
            return None;
        }
        if is_loopback(ip) {
            return (!self.cfg.allow_loopback_peers).then_some(PeerRefusal::Loopback);
        }
        is_special(ip).then_some(PeerRefusal::Special)
    }

    pub(super) fn check_peer(
        &mut self,
        from: &FiveTuple,
        relay: SocketAddr,
        peer: SocketAddr,
    ) -> Result<(), Reject> {
        if peer.is_ipv4() != relay.is_ipv4() {
            return Err(Reject::signed(ErrorCode::PEER_ADDRESS_FAMILY_MISMATCH));
        }
        if let Some(reason) = self.peer_refusal(peer.ip()) {
            if let Some(a) = self.allocations.get_mut(from)
                && !a.refusal_reported
            {
                a.refusal_reported = true;
                self.events.push_back(ServerEvent::PeerRefused {
                    relay,
                    peer,
                    reason,
                });
            }
            return Err(Reject::signed(ErrorCode::FORBIDDEN));
        }
        Ok(())
    }

    pub(super) fn add_permission(
        a: &mut Allocation,
        ip: IpAddr,
        until: Instant,
        now: Instant,
        max: usize,
    ) -> bool {
        if let Some(p) = a.permissions.iter_mut().find(|(p, _)| *p == ip) {
            p.1 = until;
            return true;
        }
        a.permissions.retain(|(_, exp)| *exp > now);
        if a.permissions.len() >= max {
            return false;
        }
        a.permissions.push((ip, until));
        true
    }

    pub(super) fn create_permission(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, Reject> {
        let peers = msg
            .xor_peer_addresses()
            .map_err(|_| Reject::signed(ErrorCode::BAD_REQUEST))?;
        if peers.is_empty() {
            return Err(Reject::signed(ErrorCode::BAD_REQUEST));
        }
        let relay = self.owned_allocation(&from, auth)?.relay;
        for p in &peers {
            self.check_peer(&from, relay, *p)?;
        }
        let until = now + self.cfg.permission_lifetime;
        let max = self.cfg.max_permissions;
        let a = self.owned_allocation(&from, auth)?;
        for p in &peers {
            if !Self::add_permission(a, p.ip(), until, now, max) {
                return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
            }
        }
        self.success(out, msg, auth, |_| {});
        Ok(Some(()))
    }
}
