//! Drops envelopes that arrive twice (a node subscribed to overlapping patterns gets a message
//! once per matching subscription) and counts the ones that never arrived (gaps in a
//! publisher's sequence numbers). Sans-IO: sequence numbers in, verdicts out.

use std::collections::HashMap;

/// How many sequence numbers below the highest seen are remembered per (publisher, subject).
/// A copy arriving later than that is taken for a duplicate.
pub(crate) const WINDOW: u64 = 4096;

/// Most (publisher, subject) pairs tracked; past it the oldest state is forgotten (a fresh start,
/// which can let one late duplicate through but never drops a new message).
pub(crate) const MAX_TRACKED: usize = 65_536;

/// What to do with an arriving envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Deliver it; `missed` envelopes before it were skipped (a gap in the sequence).
    Deliver {
        /// Sequence numbers jumped over (0 when in order).
        missed: u64,
        /// It fills an earlier gap (it was counted as missed and came late after all).
        late: bool,
    },
    /// Seen already: drop it.
    Duplicate,
}

#[derive(Debug)]
struct Track {
    epoch: u64,
    /// Highest sequence number seen.
    max: u64,
    /// Bit i: `max - i` was seen (bit 0 is `max` itself).
    seen: Box<[u64; (WINDOW / 64) as usize]>,
}

impl Track {
    fn new(epoch: u64, seq: u64) -> Self {
        let mut t = Self {
            epoch,
            max: seq,
            seen: Box::new([0; (WINDOW / 64) as usize]),
        };
        t.seen[0] = 1;
        t
    }

    fn bit(&self, back: u64) -> bool {
        let (w, b) = ((back / 64) as usize, back % 64);
        self.seen[w] >> b & 1 == 1
    }

    fn set(&mut self, back: u64) {
        let (w, b) = ((back / 64) as usize, back % 64);
        self.seen[w] |= 1 << b;
    }

    /// Moves the window up by `by` sequence numbers.
    fn shift(&mut self, by: u64) {
        if by >= WINDOW {
            self.seen.fill(0);
            return;
        }
        let (words, bits) = ((by / 64) as usize, by % 64);
        let n = self.seen.len();
        for i in (0..n).rev() {
            let lo = i.checked_sub(words).map_or(0, |j| self.seen[j]);
            let carry = if bits == 0 {
                0
            } else {
                i.checked_sub(words + 1)
                    .map_or(0, |j| self.seen[j] >> (64 - bits))
            };
            self.seen[i] = lo << bits | carry;
        }
    }
}

/// Per publisher and subject: the sequence numbers seen.
#[derive(Debug, Default)]
pub(crate) struct Dedupe {
    tracks: HashMap<String, HashMap<String, Track>>,
    tracked: usize,
}

impl Dedupe {
    /// Judges envelope `seq` of `origin`'s run `epoch` on `subject`.
    pub(crate) fn check(&mut self, origin: &str, subject: &str, epoch: u64, seq: u64) -> Verdict {
        let fresh = Verdict::Deliver {
            missed: 0,
            late: false,
        };
        let Some(track) = self
            .tracks
            .get_mut(origin)
            .and_then(|by_subject| by_subject.get_mut(subject))
        else {
            if self.tracked >= MAX_TRACKED {
                self.tracks.clear();
                self.tracked = 0;
            }
            self.tracks
                .entry(origin.to_owned())
                .or_default()
                .insert(subject.to_owned(), Track::new(epoch, seq));
            self.tracked += 1;
            return fresh;
        };
        if track.epoch != epoch {
            *track = Track::new(epoch, seq);
            return fresh;
        }
        if seq > track.max {
            let missed = seq - track.max - 1;
            track.shift(seq - track.max);
            track.max = seq;
            track.set(0);
            return Verdict::Deliver {
                missed,
                late: false,
            };
        }
        let back = track.max - seq;
        if back >= WINDOW || track.bit(back) {
            return Verdict::Duplicate;
        }
        track.set(back);
        Verdict::Deliver {
            missed: 0,
            late: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IN_ORDER: Verdict = Verdict::Deliver {
        missed: 0,
        late: false,
    };

    #[test]
    fn duplicates_are_dropped_and_gaps_counted() {
        let mut d = Dedupe::default();
        assert_eq!(d.check("a", "s", 7, 1), IN_ORDER);
        assert_eq!(d.check("a", "s", 7, 1), Verdict::Duplicate);
        assert_eq!(d.check("a", "s", 7, 2), IN_ORDER);
        // Another subject and another origin have their own numbering.
        assert_eq!(d.check("a", "t", 7, 1), IN_ORDER);
        assert_eq!(d.check("b", "s", 7, 1), IN_ORDER);
        // 3..=5 skipped, then 4 comes late (through a lagging subscription), then again.
        assert_eq!(
            d.check("a", "s", 7, 6),
            Verdict::Deliver {
                missed: 3,
                late: false
            }
        );
        assert_eq!(
            d.check("a", "s", 7, 4),
            Verdict::Deliver {
                missed: 0,
                late: true
            }
        );
        assert_eq!(d.check("a", "s", 7, 4), Verdict::Duplicate);
        assert_eq!(d.check("a", "s", 7, 6), Verdict::Duplicate);
        // A restarted publisher (new epoch) starts over.
        assert_eq!(d.check("a", "s", 8, 1), IN_ORDER);
    }

    #[test]
    fn window_slides_across_word_boundaries() {
        let mut d = Dedupe::default();
        let mut seen = Vec::new();
        // A pseudo-random walk of jumps, checking every number ever seen is still a duplicate
        // while inside the window and every unseen one inside the window is fresh.
        let mut seq = 1u64;
        let mut x = 12345u64;
        for _ in 0..2000 {
            assert!(matches!(d.check("o", "s", 1, seq), Verdict::Deliver { .. }));
            seen.push(seq);
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seq += 1 + (x >> 33) % 130;
        }
        let max = *seen.last().unwrap();
        for &s in &seen {
            if max - s < WINDOW {
                assert_eq!(d.check("o", "s", 1, s), Verdict::Duplicate, "seq {s}");
            }
        }
        let unseen = (max - WINDOW + 1..max).find(|s| !seen.contains(s)).unwrap();
        assert!(matches!(
            d.check("o", "s", 1, unseen),
            Verdict::Deliver { late: true, .. }
        ));
        // Older than the window: taken for a duplicate.
        assert_eq!(d.check("o", "s", 1, max - WINDOW), Verdict::Duplicate);
    }
}
