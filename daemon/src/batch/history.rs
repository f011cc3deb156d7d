//! The feerates seen lately, for the "cheap" test: at most one sample per block interval (600 s),
//! kept for the policy's `cheap_window_secs` and at least a day and a block.
//! - The recent low ([`super::Feerates::recent_low`]) is the policy's `cheap_percentile` of the
//!   window's samples, and unknown (0) until they span half the window, so that a daemon just
//!   started does not call its first minutes' feerate cheap.
//! - Each priority's deadline cap ([`super::Feerates::deadline_caps`]) is its
//!   `deadline_cap_percentile` of the same samples, unknown (0) as long.
//! - Yesterday's fall ([`super::Feerates::cheaper_in_secs`]) reads the samples of a day ago: how
//!   long after this time of day they were `forecast_fall_percent` below their level at it. Fee
//!   markets have a daily cycle (Europe and America awake, Asia asleep), and the trough of a day
//!   is mostly the trough of the next; a cheap batch whose payouts can wait for it does.

use std::collections::VecDeque;

use super::policy::recent_level;
use super::{Policy, Priority};

/// Seconds between kept samples: a block's.
pub const SAMPLE_SECS: u64 = 600;

/// How far back yesterday's fall looks: a day.
pub const DAY_SECS: u64 = 86_400;

/// Feerate samples, `(unix seconds, sat/kvB)`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeHistory {
    samples: VecDeque<(u64, u64)>,
}

impl FeeHistory {
    /// The history of `samples` (as [`FeeHistory::record`] kept them before, oldest first) at
    /// `now`: each recorded again, so that the same rules hold (a block interval apart at least,
    /// none older than the window and a day and a block).
    pub fn from_samples(samples: impl IntoIterator<Item = (u64, u64)>, now: u64, window_secs: u64) -> FeeHistory {
        let mut history = FeeHistory::default();
        samples.into_iter().filter(|s| s.0 <= now).for_each(|(at, sat_kvb)| {
            history.record(at, sat_kvb, window_secs);
        });
        history.forget_before(now, window_secs);
        history
    }

    /// Whether a sample seen at `now` would be kept: none is, or the last is at least
    /// [`SAMPLE_SECS`] older.
    pub fn due(&self, now: u64) -> bool {
        self.samples.back().is_none_or(|s| now >= s.0.saturating_add(SAMPLE_SECS))
    }

    /// Records `sat_kvb` seen at `now` when it is [`FeeHistory::due`]; drops the samples older
    /// than `window_secs` and than a day and a block (what [`FeeHistory::cheaper_in`] reads).
    /// Whether it was kept (the daemon stores it).
    pub fn record(&mut self, now: u64, sat_kvb: u64, window_secs: u64) -> bool {
        let due = self.due(now);
        if due {
            self.samples.push_back((now, sat_kvb));
        }
        self.forget_before(now, window_secs);
        due
    }

    /// Drops the samples older than [`FeeHistory::kept_secs`] at `now`.
    fn forget_before(&mut self, now: u64, window_secs: u64) {
        let keep = FeeHistory::kept_secs(window_secs);
        while self.samples.front().is_some_and(|s| s.0.saturating_add(keep) < now) {
            self.samples.pop_front();
        }
    }

    /// The oldest and the newest sample's time, when there is one.
    pub fn span(&self) -> Option<(u64, u64)> {
        Some((self.samples.front()?.0, self.samples.back()?.0))
    }

    /// The recent low at `now`: the policy's `cheap_percentile` of the samples of its window,
    /// sat/kvB; 0 until they span half the window (or with a percentile of 0).
    pub fn recent_low(&self, now: u64, policy: &Policy) -> u64 {
        self.level(now, policy.cheap_percentile, policy.cheap_window_secs)
    }

    /// Each priority's deadline cap at `now` ([`super::Feerates::deadline_caps`]): its
    /// `deadline_cap_percentile` of the samples of the policy's `cheap_window_secs`, sat/kvB;
    /// `None` until they span half the window (or with a percentile of 0).
    pub fn deadline_caps(&self, now: u64, policy: &Policy) -> [Option<u64>; 3] {
        let cap = |p: Priority| self.level(now, policy.class(p).deadline_cap_percentile, policy.cheap_window_secs);
        Priority::ALL.map(|p| Some(cap(p)).filter(|&c| c > 0))
    }

    /// The `percentile` of the samples of the last `window_secs` at `now`, sat/kvB; 0 until
    /// they span half of it (or with a percentile of 0).
    fn level(&self, now: u64, percentile: u32, window_secs: u64) -> u64 {
        let from = now.saturating_sub(window_secs);
        let seen: Vec<u64> = self.samples.iter().filter(|s| s.0 >= from && s.0 <= now).map(|s| s.1).collect();
        let span = self.samples.front().map_or(0, |s| now.saturating_sub(s.0));
        if span < window_secs / 2 {
            return 0;
        }
        recent_level(&seen, percentile)
    }

    /// How long samples are kept with a `window_secs` window: it, and at least a day and a block.
    pub fn kept_secs(window_secs: u64) -> u64 {
        window_secs.max(DAY_SECS + SAMPLE_SECS)
    }

    /// Yesterday's fall at `now`: how many seconds after this time of day, a day ago, the
    /// feerate first stood more than `fall_percent` below its level at this time of day — each
    /// level the mean of the samples within a block interval of its time, so that one block's
    /// noise is not a trend. `None` when it never did before this time of day came round again,
    /// when nothing was seen within a block interval of this time a day ago (a daemon started
    /// less than a day ago), or with a `fall_percent` of 0 (off).
    pub fn cheaper_in(&self, now: u64, fall_percent: u32) -> Option<u64> {
        if fall_percent == 0 || fall_percent >= 100 {
            return None;
        }
        let then = now.checked_sub(DAY_SECS)?;
        let day: Vec<(u64, u64)> =
            self.samples.iter().copied().filter(|s| s.0.saturating_add(SAMPLE_SECS) >= then && s.0 < now).collect();
        // The samples are in time order: those near `t` are one slice.
        let level = |t: u64| {
            let from = day.partition_point(|s| s.0.saturating_add(SAMPLE_SECS) < t);
            let to = day.partition_point(|s| s.0 <= t.saturating_add(SAMPLE_SECS));
            let near = day.get(from..to).unwrap_or_default();
            let sum = near.iter().fold(0u64, |sum, s| sum.saturating_add(s.1));
            (!near.is_empty()).then(|| sum / near.len() as u64)
        };
        let base = level(then)?;
        let fallen = |l: u64| l.saturating_mul(100) < base.saturating_mul(u64::from(100 - fall_percent));
        day.iter().filter(|s| s.0 > then).find(|s| level(s.0).is_some_and(fallen)).map(|s| s.0 - then)
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
        assert_eq!(h.len(), 145, "a block's sample each, a day and a block's worth");
        let off = Policy { cheap_percentile: 0, ..p };
        assert_eq!(h.recent_low(T0 + 2 * 86_400, &off), 0);
    }

    #[test]
    fn the_samples_kept_resume_as_the_same_history_after_a_restart() {
        let p = Policy::from_config(&Config::default());
        let (mut h, mut stored) = (FeeHistory::default(), Vec::new());
        // Every 5 min for 2 days, a level per hour: what was kept is what the daemon stored.
        for now in (T0..T0 + 2 * DAY_SECS).step_by(300) {
            let level = 2_000 + (now / 3_600 % 24) * 500;
            if h.record(now, level, p.cheap_window_secs) {
                stored.push((now, level));
            }
        }
        assert_eq!(stored.len(), 2 * 144, "one look in two kept: a block interval apart");
        let now = T0 + 2 * DAY_SECS;
        let resumed = FeeHistory::from_samples(stored.iter().copied(), now, p.cheap_window_secs);
        assert_eq!(resumed, h, "the day and a block kept, nothing older");
        assert_eq!(resumed.len(), 145);
        assert_eq!(resumed.recent_low(now, &p), h.recent_low(now, &p));
        assert_eq!(resumed.cheaper_in(now, 20), h.cheaper_in(now, 20));
        assert!(resumed.recent_low(now, &p) > 0 && resumed.cheaper_in(now, 20).is_some());
        // Two gateways' samples a few seconds apart (one store): a block interval apart again;
        // a sample from a clock ahead is not resumed.
        let both = stored.iter().flat_map(|&(t, l)| [(t, l), (t + 5, l)]).chain([(now + 600, 1)]);
        assert_eq!(FeeHistory::from_samples(both, now, p.cheap_window_secs), h);
        assert!(!h.due(now - 1) && h.due(now), "the last sample was at now - 600 s");
        assert_eq!(FeeHistory::default().span(), None);
        assert_eq!(h.span(), Some((now - DAY_SECS - 600, now - 600)));
    }

    #[test]
    fn yesterdays_fall_is_when_a_day_ago_the_feerate_stood_lower_than_at_this_time_of_day() {
        // Two days of a daily cycle, a sample a block: 8 sat/vB from 12:00 to 20:59, then 1 sat/vB
        // less each hour to 2 sat/vB from 02:00, rising again from 03:00; one block of noise at
        // 19:00, half the level.
        let level = |t: u64| {
            let hour = (t % DAY_SECS) / 3_600;
            let rate = match hour {
                12..=20 => 8_000,
                21..=23 => 8_000 - (hour - 20) * 1_000,
                0..=2 => 5_000 - (hour + 1).min(3) * 1_000,
                _ => 2_000 + (hour - 2) * 600,
            };
            if t % DAY_SECS == 19 * 3_600 {
                rate / 2
            } else {
                rate
            }
        };
        let day_start = T0 - T0 % DAY_SECS;
        let now = day_start + DAY_SECS + 18 * 3_600;
        let mut h = FeeHistory::default();
        assert_eq!(h.cheaper_in(now, 20), None, "nothing seen");
        for t in (day_start..=now).step_by(600) {
            h.record(t, level(t), 86_400);
            if t == day_start + DAY_SECS - 1_200 {
                assert_eq!(h.cheaper_in(t, 20), None, "less than a day seen");
            }
        }
        // At 18:00 yesterday it was 8 sat/vB. The block at 19:00 is averaged with its neighbours
        // ((8 + 4 + 8) / 3 = 6.67, not more than 20 % below); at 22:00 (7 + 6 + 6) / 3 = 6.33 is.
        assert_eq!(h.cheaper_in(now, 20), Some(4 * 3_600));
        // More than 50 % below, under 4 sat/vB: at 00:50, (4 + 4 + 3) / 3.
        assert_eq!(h.cheaper_in(now, 50), Some(6 * 3_600 + 3_000));
        assert_eq!(h.cheaper_in(now, 0), None, "off");
        assert_eq!(h.cheaper_in(now, 80), None, "yesterday never fell that far");
        // At 02:30 yesterday was at its lowest: nothing ahead was cheaper.
        let night = day_start + DAY_SECS + 2 * 3_600 + 1_800;
        let mut h = FeeHistory::default();
        for t in (day_start..=night).step_by(600) {
            h.record(t, level(t), 86_400);
        }
        assert_eq!(h.cheaper_in(night, 10), None);
    }
}
