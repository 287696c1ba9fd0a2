//! Channel bindings and ChannelData from clients.

use super::*;

impl Server {
    pub(super) fn client_channel_data(
        &mut self,
        now: Instant,
        from: &FiveTuple,
        data: &[u8],
    ) -> Result<Action, DiscardReason> {
        let cd = ChannelData::decode(data).map_err(|_| DiscardReason::Malformed)?;
        let a = self
            .allocations
            .get_mut(from)
            .filter(|a| a.expires > now)
            .ok_or(DiscardReason::NoAllocation)?;
        let ch = a
            .channels
            .iter()
            .find(|c| c.number == cd.channel && c.expires > now)
            .ok_or(DiscardReason::UnknownChannel)?;
        let peer = ch.peer;
        if !a.permitted(peer.ip(), now) {
            return Err(DiscardReason::NoPermission);
        }
        if let Some(b) = &mut a.up
            && !b.try_take(cd.data.len() as u64, now)
        {
            return Err(DiscardReason::BandwidthExceeded);
        }
        Ok(Action::ToPeer {
            relay: a.relay,
            peer,
            payload: 4..4 + cd.data.len(),
        })
    }

    pub(super) fn channel_bind(
        &mut self,
        now: Instant,
        from: FiveTuple,
        msg: &Message<'_>,
        auth: &Auth,
        out: &mut Vec<u8>,
    ) -> Result<Option<()>, Reject> {
        let bad = || Reject::signed(ErrorCode::BAD_REQUEST);
        let number = msg.channel_number().map_err(|_| bad())?.ok_or_else(bad)?;
        let peer = msg.xor_peer_address().map_err(|_| bad())?.ok_or_else(bad)?;
        if !is_valid_channel(number) {
            return Err(bad());
        }
        let (relay, protocol) = {
            let a = self.owned_allocation(&from, auth)?;
            (a.relay, a.protocol)
        };
        if protocol != RelayProtocol::Udp {
            return Err(bad());
        }
        self.check_peer(&from, relay, peer)?;
        let (perm_until, ch_until) = (
            now + self.cfg.permission_lifetime,
            now + self.cfg.channel_lifetime,
        );
        let (max_ch, max_perm) = (self.cfg.max_channels, self.cfg.max_permissions);
        let a = self.owned_allocation(&from, auth)?;
        a.channels.retain(|c| c.expires > now);
        match a
            .channels
            .iter_mut()
            .find(|c| c.number == number || c.peer == peer)
        {
            Some(c) if c.number == number && c.peer == peer => c.expires = ch_until,
            Some(_) => return Err(bad()),
            None => {
                if a.channels.len() >= max_ch {
                    return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
                }
                a.channels.push(Channel {
                    number,
                    peer,
                    expires: ch_until,
                });
            }
        }
        if !Self::add_permission(a, peer.ip(), perm_until, now, max_perm) {
            return Err(Reject::signed(ErrorCode::INSUFFICIENT_CAPACITY));
        }
        self.success(out, msg, auth, |_| {});
        Ok(Some(()))
    }
}
