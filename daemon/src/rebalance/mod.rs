//! Treasury policy and channel rebalancing, the pure core: reserves per rail and whether a rail
//! takes new payouts, the payout forecast and runway, splice fees from exact sizes, and per
//! channel the decision to splice in, splice out or wait (and why). No I/O: the daemon and the
//! simulator call it with what they hold.
//!
//! The daemon's side (a loop every `treasury.rebalance_interval_secs`, `rebalance.preview`,
//! `treasury.status`) gathers a [`Situation`] and the [`Channel`]s, calls [`decide()`] and carries
//! out the splices it returns (none in dry run); routes call [`rail_status`] for each rail.

pub mod decide;
pub mod fee;
pub mod forecast;
pub mod reserve;

pub use decide::{decide, Action, Channel, Decision, Situation, Skip, Why};
pub use fee::{splice_fee_sat, splice_weight, SpliceKind};
pub use forecast::{forecast, history_start, Forecast};
pub use reserve::{crossing, rail_status, Crossing, Rail, RailFunds, RailStatus, Unavailable};

use crate::config::TreasuryConfig;

/// The treasury policy of `[treasury]` (see `config.example.toml` for each key's meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreasuryPolicy {
    /// The on-chain treasury's hot minimum, sats.
    pub onchain_reserve_sat: u64,
    /// Lightning outbound kept in total, sats.
    pub lightning_reserve_sat: u64,
    /// Outbound each channel keeps at least, sats.
    pub channel_reserve_sat: u64,
    /// Below this outbound share, percent, a channel is spliced into.
    pub band_low_percent: u32,
    /// Above it, spliced out of.
    pub band_high_percent: u32,
    /// How far the forecast looks ahead, hours.
    pub forecast_hours: u32,
    /// How many recent days it learns from.
    pub forecast_days: u32,
    /// The percentile of the per-window totals it takes.
    pub forecast_percentile: u32,
    /// Splice fees per budget period, sats.
    pub fee_budget_sat: u64,
    /// The budget period, seconds.
    pub fee_budget_period_secs: u64,
    /// Most fee one splice pays, sats.
    pub max_fee_sat: u64,
    /// … parts per million of its amount.
    pub max_fee_ppm: u64,
    /// The feerate ceiling, sat/kvB.
    pub max_feerate_sat_kvb: u64,
    /// How long fees are expected to stay above the ceiling, seconds.
    pub fee_wait_secs: u64,
    /// The wait after a failure, seconds (doubled per further failure in a row, up to 64×).
    pub backoff_secs: u64,
    /// The smallest splice, sats.
    pub min_splice_sat: u64,
    /// Decide, never splice.
    pub dry_run: bool,
}

impl TreasuryPolicy {
    /// The policy of a checked `[treasury]` section.
    pub fn from_config(c: &TreasuryConfig) -> TreasuryPolicy {
        TreasuryPolicy {
            onchain_reserve_sat: c.onchain_reserve_sat,
            lightning_reserve_sat: c.lightning_reserve_sat,
            channel_reserve_sat: c.channel_reserve_sat,
            band_low_percent: c.band_low_percent,
            band_high_percent: c.band_high_percent,
            forecast_hours: c.forecast_hours,
            forecast_days: c.forecast_days,
            forecast_percentile: c.forecast_percentile,
            fee_budget_sat: c.fee_budget_sat,
            fee_budget_period_secs: c.fee_budget_period_secs,
            max_fee_sat: c.max_fee_sat,
            max_fee_ppm: c.max_fee_ppm,
            max_feerate_sat_kvb: c.max_feerate_sat_kvb,
            fee_wait_secs: c.fee_wait_secs,
            backoff_secs: c.backoff_secs,
            min_splice_sat: c.min_splice_sat,
            dry_run: c.dry_run,
        }
    }

    /// The band's middle, basis points of outbound share (50 % = 5000).
    pub fn middle_bp(&self) -> u64 {
        u64::from(self.band_low_percent + self.band_high_percent) * 50
    }

    /// How far the forecast looks ahead, seconds.
    pub fn horizon_secs(&self) -> u64 {
        u64::from(self.forecast_hours) * 3_600
    }

    /// The wait before a channel with `failures` failed splices in a row may try again, seconds:
    /// `backoff_secs × 2^(failures − 1)`, at most 64 × `backoff_secs`; 0 without failures.
    pub fn backoff_after(&self, failures: u32) -> u64 {
        match failures {
            0 => 0,
            n => self.backoff_secs.saturating_mul(1 << (n - 1).min(6)),
        }
    }
}

impl Default for TreasuryPolicy {
    fn default() -> Self {
        TreasuryPolicy::from_config(&TreasuryConfig::default())
    }
}

/// `value × numerator / denominator`, rounded down, without overflow (0 when the denominator is 0).
pub(crate) fn scale(value: u64, numerator: u64, denominator: u64) -> u64 {
    if denominator == 0 {
        return 0;
    }
    u64::try_from(u128::from(value) * u128::from(numerator) / u128::from(denominator)).unwrap_or(u64::MAX)
}

/// Basis points as a percent with two decimals (`2512` → `25.12 %`).
pub(crate) fn percent(bp: u64) -> String {
    format!("{}.{:02} %", bp / 100, bp % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_the_documented_one() {
        let p = TreasuryPolicy::default();
        assert_eq!((p.band_low_percent, p.band_high_percent, p.middle_bp()), (25, 75, 5_000));
        assert_eq!((p.forecast_hours, p.forecast_percentile, p.horizon_secs()), (24, 90, 86_400));
        assert!(!p.dry_run);
    }

    #[test]
    fn backoff_doubles_per_failure_in_a_row_up_to_sixty_four_times() {
        let p = TreasuryPolicy { backoff_secs: 600, ..TreasuryPolicy::default() };
        let waits: Vec<u64> = [0, 1, 2, 3, 7, 8, 40].iter().map(|&n| p.backoff_after(n)).collect();
        assert_eq!(waits, [0, 600, 1_200, 2_400, 38_400, 38_400, 38_400]);
    }

    #[test]
    fn scale_and_percent_are_exact() {
        assert_eq!(scale(u64::MAX, 3, 4), u64::MAX / 4 * 3 + 2);
        assert_eq!(scale(7, 1, 0), 0);
        assert_eq!(percent(2_512), "25.12 %");
        assert_eq!(percent(5), "0.05 %");
    }
}
