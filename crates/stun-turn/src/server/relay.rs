//! Relay I/O: Send indications from clients, data from peers, within the bandwidth buckets
//! (the workspace's `token-bucket` crate).

use super::*;

impl Server {
    pub(super) fn client_indication(
        &mut self,
        now: Instant,
        from: &FiveTuple,
        msg: &Message<'_>,
    ) -> Result<Action, DiscardReason> {
        if msg.method() != Method::SEND {
            return Err(DiscardReason::Unexpected);
        }
        let (Ok(Some(peer)), Some(payload)) =
            (msg.xor_peer_address(), msg.range_of(AttrType::DATA))
        else {
            return Err(DiscardReason::MissingAttribute);
        };
        let a = self
            .allocations
            .get_mut(from)
            .filter(|a| a.expires > now)
            .ok_or(DiscardReason::NoAllocation)?;
        if a.protocol != RelayProtocol::Udp || !a.permitted(peer.ip(), now) {
            return Err(DiscardReason::NoPermission);
        }
        if let Some(b) = &mut a.up
            && !b.try_take(payload.len() as u64, now)
        {
            return Err(DiscardReason::BandwidthExceeded);
        }
        Ok(Action::ToPeer {
            relay: a.relay,
            peer,
            payload,
        })
    }

    /// Handles a datagram from `peer` on the UDP relay `relay`. When it may be delivered, the
    /// ChannelData or Data indication is appended to `out` and the client to send it to is returned.
    pub fn handle_peer(
        &mut self,
        now: Instant,
        relay: SocketAddr,
        peer: SocketAddr,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<FiveTuple> {
        let client = *self.by_relay.get(&relay)?;
        let a = self.allocations.get_mut(&client)?;
        if a.expires <= now || !a.permitted(peer.ip(), now) {
            return None;
        }
        if let Some(b) = &mut a.down
            && !b.try_take(data.len() as u64, now)
        {
            return None;
        }
        if let Some(ch) = a
            .channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
        {
            ChannelData::encode(ch.number, data, client.transport.is_stream(), out).ok()?;
        } else {
            let tid = self.indication_tid();
            let start = out.len();
            let mut e =
                MessageEncoder::new(out, MessageType::new(Method::DATA, Class::Indication), tid);
            e.xor_peer_address(peer).data(data);
            if self.cfg.fingerprint {
                e.fingerprint();
            }
            if e.finish().is_err() {
                out.truncate(start);
                return None;
            }
        }
        Some(client)
    }

    pub(super) fn indication_tid(&mut self) -> TransactionId {
        // Indications need unique but not unpredictable ids: a counter keyed by the server start.
        self.next_id += 1;
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&self.next_id.to_be_bytes());
        b[8..].copy_from_slice(&(self.wall0 as u32).to_be_bytes());
        TransactionId(b)
    }
}
