//! The payout forecast of a rail: how much it will pay out over the next `forecast_hours`, from the
//! `(unix_time, amount_msat)` records of its recent payouts, and the runway its funds give.
//!
//! Payouts are summed in hour buckets counted back from `now` (bucket `b` holds the records with
//! `now − t` in `[b × 3600, (b + 1) × 3600)`). A *window* is `forecast_hours` consecutive buckets;
//! there is one ending at each of the last `forecast_days × 24` hours, so a burst counts in every
//! window that covers it. The need is the `forecast_percentile` (nearest rank) of those windows'
//! totals: with the defaults, the 24 h outflow that 90 % of the last week's 168 day-long windows
//! stayed within. The rate is the mean hourly outflow over the last `forecast_days` days.

use super::TreasuryPolicy;

/// A rail's forecast at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Forecast {
    /// How far it looks ahead, seconds.
    pub horizon_secs: u64,
    /// The payouts expected over that horizon (the percentile of the recent windows), msat.
    pub need_msat: u64,
    /// The mean payout rate over the recent days, msat per hour.
    pub rate_msat_per_hour: u64,
}

/// How far back [`forecast`] reads at `now`: only records after this time count (`forecast_days`
/// days plus one horizon less an hour, so that the oldest window is whole).
pub fn history_start(now: u64, p: &TreasuryPolicy) -> u64 {
    now.saturating_sub(u64::from(p.forecast_days) * 86_400 + p.horizon_secs() - 3_600)
}

/// The forecast at `now` from the rail's payout records (any order; records after `now`, or at or
/// before [`history_start`], are ignored).
pub fn forecast(records: &[(u64, u64)], now: u64, p: &TreasuryPolicy) -> Forecast {
    let hours = p.forecast_hours as usize;
    let windows = p.forecast_days as usize * 24;
    if hours == 0 || windows == 0 {
        return Forecast { horizon_secs: p.horizon_secs(), ..Forecast::default() };
    }
    let mut buckets = vec![0u64; windows + hours - 1];
    for &(t, amount) in records {
        if t > now {
            continue;
        }
        if let Some(b) = usize::try_from((now - t) / 3_600).ok().filter(|&b| b < buckets.len()) {
            buckets[b] = buckets[b].saturating_add(amount);
        }
    }
    let mut totals: Vec<u64> = Vec::with_capacity(windows);
    let mut sum: u64 = buckets[..hours].iter().fold(0, |a, b| a.saturating_add(*b));
    for k in 0..windows {
        totals.push(sum);
        if let Some(next) = buckets.get(k + hours) {
            sum = sum.saturating_sub(buckets[k]).saturating_add(*next);
        }
    }
    totals.sort_unstable();
    let recent: u64 = buckets[..windows].iter().fold(0, |a, b| a.saturating_add(*b));
    Forecast {
        horizon_secs: p.horizon_secs(),
        need_msat: nearest_rank(&totals, p.forecast_percentile),
        rate_msat_per_hour: recent / windows.max(1) as u64,
    }
}

/// The `percentile`-th value of `sorted` by nearest rank (`⌈p × n / 100⌉`-th smallest); 0 if empty.
pub fn nearest_rank(sorted: &[u64], percentile: u32) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (u64::from(percentile.min(100)) * sorted.len() as u64).div_ceil(100).max(1);
    sorted[rank as usize - 1]
}

/// Hours until `free_msat` falls to `reserve_msat` at `rate_msat_per_hour` (rounded down; 0 at or
/// below the reserve), or `None` when nothing is being paid out.
pub fn runway_hours(free_msat: u64, reserve_msat: u64, rate_msat_per_hour: u64) -> Option<u64> {
    if free_msat <= reserve_msat {
        return Some(0);
    }
    (rate_msat_per_hour > 0).then(|| (free_msat - reserve_msat) / rate_msat_per_hour)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const H: u64 = 3_600;

    fn policy(hours: u32, days: u32, pct: u32) -> TreasuryPolicy {
        TreasuryPolicy { forecast_hours: hours, forecast_days: days, forecast_percentile: pct, ..Default::default() }
    }

    #[test]
    fn a_steady_flow_forecasts_its_own_daily_total() {
        // 1,000 sat every hour for two weeks: every day-long window holds 24 of them.
        let records: Vec<(u64, u64)> = (0..14 * 24).map(|k| (NOW - k * H, 1_000_000)).collect();
        let f = forecast(&records, NOW, &policy(24, 7, 90));
        assert_eq!(f, Forecast { horizon_secs: 86_400, need_msat: 24_000_000, rate_msat_per_hour: 1_000_000 });
    }

    #[test]
    fn the_need_is_the_percentile_of_sliding_windows_not_the_mean() {
        // Quiet, then one 50,000 sat burst 30 hours ago, in a 7-day, 6-hour-window forecast:
        // 6 of the 168 windows hold the burst (3.6 %), so p90 ignores it and p97 sees it.
        let mut records = vec![(NOW - 30 * H, 50_000_000)];
        records.extend((0..7 * 24 + 6).map(|k| (NOW - k * H, 100_000)));
        let p90 = forecast(&records, NOW, &policy(6, 7, 90));
        assert_eq!(p90.need_msat, 600_000);
        let p97 = forecast(&records, NOW, &policy(6, 7, 97));
        assert_eq!(p97.need_msat, 50_600_000);
        // The mean rate spreads it: (168 × 0.1 + 50) / 168 thousand sat per hour.
        assert_eq!(p90.rate_msat_per_hour, (168 * 100_000 + 50_000_000) / 168);
    }

    #[test]
    fn records_outside_the_history_or_in_the_future_do_not_count() {
        let p = policy(24, 7, 100);
        let records = [
            (NOW + 10, 9_000_000),
            (history_start(NOW, &p), 9_000_000),
            (history_start(NOW, &p) + 1, 7_000),
            (NOW, 5_000),
        ];
        let f = forecast(&records, NOW, &p);
        assert_eq!(f.need_msat, 7_000, "the oldest bucket still counts in the oldest window");
        assert_eq!(f.rate_msat_per_hour, 5_000 / 168);
        assert_eq!(forecast(&[], NOW, &p), Forecast { horizon_secs: 86_400, ..Forecast::default() });
    }

    #[test]
    fn nearest_rank_and_runway() {
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!([50, 90, 91, 100, 1].map(|p| nearest_rank(&ten, p)), [5, 9, 10, 10, 1]);
        assert_eq!(nearest_rank(&[], 90), 0);
        assert_eq!(runway_hours(10_000, 4_000, 1_000), Some(6));
        assert_eq!(runway_hours(3_000, 4_000, 1_000), Some(0));
        assert_eq!(runway_hours(10_000, 4_000, 0), None);
    }
}
