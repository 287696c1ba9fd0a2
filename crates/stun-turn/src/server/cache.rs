//! The transaction cache: a retransmitted request gets the same response.

use super::*;

impl Server {
    pub(super) fn cache_response(
        &mut self,
        now: Instant,
        client: FiveTuple,
        tid: TransactionId,
        bytes: &[u8],
    ) {
        if self.cache.len() >= self.cfg.transaction_cache_size {
            self.purge_cache(now, true);
        }
        self.cache.insert((client, tid), bytes.to_vec());
        self.cache_order
            .push_back((now + self.cfg.transaction_cache_lifetime, client, tid));
    }

    pub(super) fn purge_cache(&mut self, now: Instant, force_one: bool) {
        let mut forced = !force_one;
        while let Some(&(exp, c, t)) = self.cache_order.front() {
            if exp > now && forced {
                break;
            }
            forced = true;
            self.cache_order.pop_front();
            self.cache.remove(&(c, t));
        }
    }
}
