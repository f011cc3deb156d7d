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

/// The treasury policy: the checked `[treasury]` section (see `config.example.toml` for each
/// key's meaning), or what `treasury.policy.set` made of it.
pub type TreasuryPolicy = TreasuryConfig;

impl TreasuryConfig {
    /// The policy of a checked `[treasury]` section.
    pub fn from_config(c: &TreasuryConfig) -> TreasuryPolicy {
        c.clone()
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
