//! `[treasury]`: reserves per rail, the channels' target band, the payout forecast and the
//! rebalancer's guards (fee budget, per-operation cap, feerate ceiling, backoff, dry run).
//! Amounts in sats, feerates in sat per 1000 vB (sat/kvB: 1 sat/vB = 1000).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[treasury]`: what each rail must keep, and how channels are rebalanced by splicing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TreasuryConfig {
    /// The on-chain treasury's hot minimum, sats: below it (after what payouts in flight reserve)
    /// the `onchain` and `onchain_batch` rails take no new payouts, and no splice-in takes from it.
    pub onchain_reserve_sat: u64,
    /// Lightning outbound the node keeps in total, sats: below it the `lightning` rail takes no
    /// new payouts.
    pub lightning_reserve_sat: u64,
    /// Outbound each channel keeps at least, sats.
    pub channel_reserve_sat: u64,
    /// A channel whose outbound share (outbound / (outbound + inbound)) falls below this percent
    /// is spliced into.
    pub band_low_percent: u32,
    /// … rises above this percent is spliced out of.
    pub band_high_percent: u32,
    /// The forecast looks this many hours ahead.
    pub forecast_hours: u32,
    /// … from the payouts of this many recent days.
    pub forecast_days: u32,
    /// … at this percentile of their per-window totals.
    pub forecast_percentile: u32,
    /// Splice fees the rebalancer may spend per budget period, sats.
    pub fee_budget_sat: u64,
    /// The budget period, seconds.
    pub fee_budget_period_secs: u64,
    /// Most one splice may pay in fees, sats.
    pub max_fee_sat: u64,
    /// … and in parts per million of the amount it moves.
    pub max_fee_ppm: u64,
    /// Above this feerate the rebalancer waits for cheaper blocks, unless a channel would run
    /// dry first, sat/kvB.
    pub max_feerate_sat_kvb: u64,
    /// How long fees are expected to stay above the ceiling, seconds: a channel whose runway is
    /// shorter is spliced into anyway.
    pub fee_wait_secs: u64,
    /// After a failed splice the channel waits this long, doubled at each further failure in a
    /// row (up to 64 times), seconds.
    pub backoff_secs: u64,
    /// The smallest splice worth its fee, sats.
    pub min_splice_sat: u64,
    /// How often the rebalancer looks at the channels, seconds (0: never on its own).
    pub rebalance_interval_secs: u64,
    /// Decide and report, never splice.
    pub dry_run: bool,
}

impl Default for TreasuryConfig {
    fn default() -> Self {
        TreasuryConfig {
            onchain_reserve_sat: 0,
            lightning_reserve_sat: 0,
            channel_reserve_sat: 100_000,
            band_low_percent: 25,
            band_high_percent: 75,
            forecast_hours: 24,
            forecast_days: 7,
            forecast_percentile: 90,
            fee_budget_sat: 50_000,
            fee_budget_period_secs: 86_400,
            max_fee_sat: 10_000,
            max_fee_ppm: 2_000,
            max_feerate_sat_kvb: 20_000,
            fee_wait_secs: 21_600,
            backoff_secs: 600,
            min_splice_sat: 1_000_000,
            rebalance_interval_secs: 0,
            dry_run: false,
        }
    }
}

impl TreasuryConfig {
    /// Checks the values together (also what `treasury.policy.set` is given).
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("treasury.{m}")));
        let (low, high) = (self.band_low_percent, self.band_high_percent);
        if low >= high || high > 100 {
            return bad(&format!(
                "band_low_percent ({low}) must be below band_high_percent ({high}), and that at most 100"
            ));
        }
        if self.forecast_hours == 0 || self.forecast_hours > 24 * 31 {
            return bad("forecast_hours must be between 1 and 744");
        }
        if self.forecast_days == 0 || self.forecast_days > 90 {
            return bad("forecast_days must be between 1 and 90");
        }
        if !(1..=100).contains(&self.forecast_percentile) {
            return bad("forecast_percentile must be between 1 and 100");
        }
        if self.fee_budget_period_secs == 0 {
            return bad("fee_budget_period_secs must be at least 1");
        }
        if self.max_fee_ppm > 1_000_000 {
            return bad("max_fee_ppm must be at most 1000000 (the whole amount)");
        }
        if self.max_feerate_sat_kvb < 1_000 {
            return bad("max_feerate_sat_kvb must be at least 1000 (1 sat/vB, the minimum relay feerate)");
        }
        if self.backoff_secs == 0 {
            return bad("backoff_secs must be at least 1");
        }
        if self.min_splice_sat == 0 {
            return bad("min_splice_sat must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Overrides};

    fn load(text: &str) -> Result<Config, super::ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), [], &Overrides::default())
    }

    #[test]
    fn a_config_without_treasury_loads_its_defaults_and_keys_can_be_set() {
        let c = load("").unwrap();
        assert_eq!(c.treasury, super::TreasuryConfig::default());
        assert_eq!((c.treasury.band_low_percent, c.treasury.band_high_percent), (25, 75));
        let c = load("[treasury]\nonchain_reserve_sat = 5000000\ndry_run = true\n").unwrap();
        assert_eq!((c.treasury.onchain_reserve_sat, c.treasury.dry_run), (5_000_000, true));
        let env = [("SENDERO_TREASURY_MAX_FEE_PPM".to_string(), "500".to_string())];
        assert_eq!(Config::load(None, env, &Overrides::default()).unwrap().treasury.max_fee_ppm, 500);
        assert!(load("[treasury]\nreserve = 1\n").unwrap_err().to_string().contains("reserve"));
    }

    #[test]
    fn bad_treasury_values_are_refused_with_the_key_named() {
        let cases = [
            ("band_low_percent = 80", "band_low_percent (80) must be below band_high_percent (75)"),
            ("band_high_percent = 101", "at most 100"),
            ("forecast_hours = 0", "treasury.forecast_hours"),
            ("forecast_days = 0", "treasury.forecast_days"),
            ("forecast_percentile = 101", "treasury.forecast_percentile"),
            ("fee_budget_period_secs = 0", "treasury.fee_budget_period_secs"),
            ("max_fee_ppm = 1000001", "treasury.max_fee_ppm"),
            ("max_feerate_sat_kvb = 999", "treasury.max_feerate_sat_kvb"),
            ("backoff_secs = 0", "treasury.backoff_secs"),
            ("min_splice_sat = 0", "treasury.min_splice_sat"),
        ];
        for (line, want) in cases {
            let err = load(&format!("[treasury]\n{line}\n")).unwrap_err().to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
    }
}
