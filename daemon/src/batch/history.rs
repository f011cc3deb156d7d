//! The feerates seen lately, for the recent low of the "cheap" test ([`super::Feerates::recent_low`]):
//! at most one sample per block interval (600 s), kept for the policy's `cheap_window_secs`. The
//! recent low is the policy's `cheap_percentile` of them, and unknown (0) until they span half
//! the window, so that a daemon just started does not call its first minutes' feerate cheap.

use std::collections::VecDeque;

use super::policy::recent_level;
use super::Policy;

/// Seconds between kept samples: a block's.
pub const SAMPLE_SECS: u64 = 600;

/// Feerate samples, `(unix seconds, sat/kvB)`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeHistory {
    samples: VecDeque<(u64, u64)>,
}

impl FeeHistory {
    /// Records `sat_kvb` seen at `now` when the last sample is at least [`SAMPLE_SECS`] older
    /// (or there is none); drops the samples older than `window_secs`.
    pub fn record(&mut self, now: u64, sat_kvb: u64, window_secs: u64) {
        if self.samples.back().is_none_or(|s| now >= s.0.saturating_add(SAMPLE_SECS)) {
            self.samples.push_back((now, sat_kvb));
        }
        while self.samples.front().is_some_and(|s| s.0.saturating_add(window_secs) < now) {
            self.samples.pop_front();
        }
    }

    /// The recent low at `now`: the policy's `cheap_percentile` of the samples of its window,
    /// sat/kvB; 0 until they span half the window (or with a percentile of 0).
    pub fn recent_low(&self, now: u64, policy: &Policy) -> u64 {
        let from = now.saturating_sub(policy.cheap_window_secs);
        let seen: Vec<u64> = self.samples.iter().filter(|s| s.0 >= from && s.0 <= now).map(|s| s.1).collect();
        let span = self.samples.front().map_or(0, |s| now.saturating_sub(s.0));
        if span < policy.cheap_window_secs / 2 {
            return 0;
        }
        recent_level(&seen, policy.cheap_percentile)
    }

    /// How many samples are kept.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const T0: u64 = 1_800_000_000;

    #[test]
    fn a_sample_per_block_for_a_day_and_no_recent_low_before_half_of_it() {
        let p = Policy::from_config(&Config::default());
        let mut h = FeeHistory::default();
        // Every 30 s for 2 days: 3 to 10 sat/vB, a step per block.
        for i in 0..(2 * 86_400 / 30) {
            let now = T0 + i * 30;
            h.record(now, 3_000 + (now / 600 % 8) * 1_000, p.cheap_window_secs);
            if now == T0 + 43_199 {
                assert_eq!(h.recent_low(now, &p), 0, "less than half a day seen");
            }
            if now == T0 + 43_200 {
                assert_eq!(h.recent_low(now, &p), 4_000, "its 20th percentile");
            }
        }
        assert_eq!(h.len(), 144, "a block's sample each, a day's worth");
        let off = Policy { cheap_percentile: 0, ..p };
        assert_eq!(h.recent_low(T0 + 2 * 86_400, &off), 0);
    }
}
