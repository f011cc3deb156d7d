//! `[batching]`: when queued `onchain_batch` payouts leave, per priority; how large a batch
//! transaction may grow; fee ceilings and bumping; UTXO consolidation. Feerates in sat per
//! 1000 vB (sat/kvB: 1 sat/vB = 1000), so that sub-sat/vB thresholds can be written.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[batching]`: the on-chain batching, fee policy and consolidation thresholds. The
/// confirmation target and the ETA bound of each priority are `[routing]`'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingConfig {
    /// Offer the `onchain_batch` rail.
    pub enabled: bool,
    /// Most payee outputs in one batch transaction; a larger batch is split.
    pub max_outputs_per_tx: u32,
    /// A `high` batch leaves once this many `high` payouts wait.
    pub high_max_count: u32,
    /// … `normal`.
    pub normal_max_count: u32,
    /// … `low`.
    pub low_max_count: u32,
    /// A batch leaves once the payouts of a priority waiting add up to this, sats (`high`).
    pub high_max_total_sat: u64,
    /// … `normal`.
    pub normal_max_total_sat: u64,
    /// … `low`.
    pub low_max_total_sat: u64,
    /// A batch leaves when the feerate for the priority's target is at or below this (`high`).
    pub high_cheap_feerate_sat_kvb: u64,
    /// … `normal`.
    pub normal_cheap_feerate_sat_kvb: u64,
    /// … `low`.
    pub low_cheap_feerate_sat_kvb: u64,
    /// The feerate is also cheap at or below this percentile of the last `cheap_window_secs` of
    /// next-block feerates (0: only the fixed levels count).
    pub cheap_percentile: u32,
    /// How far back that percentile looks, seconds.
    pub cheap_window_secs: u64,
    /// A cheap batch still waits when a day ago the feerate went on to fall more than this many
    /// percent below its level at this time of day before the time of day of the middle of its
    /// payouts' deadlines (0: off).
    pub forecast_fall_percent: u32,
    /// With a payout leaving at its deadline go the payouts of its priority due within this many
    /// seconds; the others wait for their own trigger.
    pub deadline_join_secs: u64,
    /// `high` payouts join a batch leaving for another priority when its feerate meets their
    /// target and ceiling.
    pub high_join: bool,
    /// … `normal`.
    pub normal_join: bool,
    /// … `low` (which otherwise waits for cheap fees or its deadline).
    pub low_join: bool,
    /// A cheap batch leaves only once its oldest payout of the priority has waited this long,
    /// seconds, so that payouts arriving while fees are cheap gather (`high`; its default, 600, is
    /// its whole wait: a `high` payout joins a leaving batch or leaves at its deadline).
    pub high_cheap_min_wait_secs: u64,
    /// … `normal` (its default, 3600, is its whole wait: a `normal` payout joins a leaving batch
    /// or leaves at its deadline).
    pub normal_cheap_min_wait_secs: u64,
    /// … `low`.
    pub low_cheap_min_wait_secs: u64,
    /// A batch leaves when its oldest payout of the priority has waited this long, seconds;
    /// 0: no interval (`high`).
    pub high_interval_secs: u64,
    /// … `normal`.
    pub normal_interval_secs: u64,
    /// … `low`.
    pub low_interval_secs: u64,
    /// Above this feerate payouts of the priority wait (`waiting_for_fees`) until fees fall or
    /// their deadline comes (`high`).
    pub high_max_feerate_sat_kvb: u64,
    /// … `normal`.
    pub normal_max_feerate_sat_kvb: u64,
    /// … `low`.
    pub low_max_feerate_sat_kvb: u64,
    /// A transaction still unconfirmed after this many blocks is bumped (`high`).
    pub high_bump_after_blocks: u32,
    /// … `normal`.
    pub normal_bump_after_blocks: u32,
    /// … `low`.
    pub low_bump_after_blocks: u32,
    /// Highest feerate a bump pays before the payout's ETA bound is near (`high`).
    pub high_bump_max_feerate_sat_kvb: u64,
    /// … `normal`.
    pub normal_bump_max_feerate_sat_kvb: u64,
    /// … `low`.
    pub low_bump_max_feerate_sat_kvb: u64,
    /// A payout of the priority leaving at its deadline pays at most this percentile of the last
    /// `cheap_window_secs` of next-block feerates (its target's estimate when that is lower), and
    /// its transaction is not bumped while the next block asks more, until its ETA bound is three
    /// blocks away; 0: off (`high`).
    pub high_deadline_cap_percentile: u32,
    /// … `normal`.
    pub normal_deadline_cap_percentile: u32,
    /// … `low`.
    pub low_deadline_cap_percentile: u32,
    /// Once a transaction's ETA bound is two blocks away a bump pays the next block's feerate plus
    /// this many percent, so that a market still rising does not make it late; so does a payout
    /// with a one-block target leaving at its deadline (its one block left).
    pub near_bound_margin_percent: u32,
    /// A payout with a two-block target leaving at its deadline pays its target's feerate plus
    /// this many percent: should the first block miss it, the near-bound bump has the second. A
    /// transaction whose ETA bound is three blocks away (two left) is bumped with this margin too.
    pub deadline_margin_percent: u32,
    /// At or below this feerate small UTXOs are consolidated (inside a batch, or on their own).
    pub consolidation_feerate_sat_kvb: u64,
    /// Consolidation brings the treasury down to this many UTXOs.
    pub target_utxos: u32,
    /// Most UTXOs one consolidation spends.
    pub max_consolidation_inputs: u32,
    /// The "typical" feerate a consolidation's saving is measured against.
    pub reference_feerate_sat_kvb: u64,
    /// The background check consolidates on its own at most once per this many seconds (when
    /// the feerate and the UTXO count say so); 0: only `consolidate.run`.
    pub consolidation_interval_secs: u64,
}

impl Default for BatchingConfig {
    fn default() -> Self {
        BatchingConfig {
            enabled: true,
            max_outputs_per_tx: 500,
            high_max_count: 100,
            normal_max_count: 200,
            low_max_count: 500,
            high_max_total_sat: 100_000_000,
            normal_max_total_sat: 500_000_000,
            low_max_total_sat: 1_000_000_000,
            high_cheap_feerate_sat_kvb: 1_000,
            normal_cheap_feerate_sat_kvb: 2_000,
            low_cheap_feerate_sat_kvb: 2_000,
            cheap_percentile: 20,
            cheap_window_secs: 86_400,
            forecast_fall_percent: 20,
            deadline_join_secs: 3_600,
            high_join: true,
            normal_join: true,
            low_join: false,
            high_cheap_min_wait_secs: 600,
            normal_cheap_min_wait_secs: 3_600,
            low_cheap_min_wait_secs: 3_600,
            high_interval_secs: 0,
            normal_interval_secs: 0,
            low_interval_secs: 0,
            high_max_feerate_sat_kvb: 1_000_000,
            normal_max_feerate_sat_kvb: 50_000,
            low_max_feerate_sat_kvb: 20_000,
            high_bump_after_blocks: 1,
            normal_bump_after_blocks: 3,
            low_bump_after_blocks: 6,
            high_bump_max_feerate_sat_kvb: 200_000,
            normal_bump_max_feerate_sat_kvb: 100_000,
            low_bump_max_feerate_sat_kvb: 50_000,
            high_deadline_cap_percentile: 0,
            normal_deadline_cap_percentile: 0,
            low_deadline_cap_percentile: 70,
            near_bound_margin_percent: 40,
            deadline_margin_percent: 15,
            consolidation_feerate_sat_kvb: 3_000,
            target_utxos: 50,
            max_consolidation_inputs: 200,
            reference_feerate_sat_kvb: 10_000,
            consolidation_interval_secs: 0,
        }
    }
}

impl BatchingConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !(1..=2_000).contains(&self.max_outputs_per_tx) {
            return Err(ConfigError::Invalid("batching.max_outputs_per_tx must be between 1 and 2000".into()));
        }
        if [self.high_max_count, self.normal_max_count, self.low_max_count].contains(&0) {
            return Err(ConfigError::Invalid("batching.*_max_count must be at least 1".into()));
        }
        let bumps = [self.high_bump_after_blocks, self.normal_bump_after_blocks, self.low_bump_after_blocks];
        if bumps.contains(&0) {
            return Err(ConfigError::Invalid("batching.*_bump_after_blocks must be at least 1".into()));
        }
        if self.cheap_percentile > 100 {
            return Err(ConfigError::Invalid("batching.cheap_percentile must be between 0 and 100".into()));
        }
        let caps =
            [self.high_deadline_cap_percentile, self.normal_deadline_cap_percentile, self.low_deadline_cap_percentile];
        if caps.iter().any(|&c| c > 100) {
            return Err(ConfigError::Invalid("batching.*_deadline_cap_percentile must be between 0 and 100".into()));
        }
        if self.forecast_fall_percent > 99 {
            return Err(ConfigError::Invalid("batching.forecast_fall_percent must be between 0 and 99".into()));
        }
        if self.max_consolidation_inputs < 2 || self.reference_feerate_sat_kvb == 0 {
            return Err(ConfigError::Invalid(
                "batching.max_consolidation_inputs must be at least 2 and batching.reference_feerate_sat_kvb at least 1"
                    .into(),
            ));
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
    fn a_config_without_batching_loads_its_defaults_and_keys_can_be_set() {
        let c = load("[routing]\nroute_ttl_secs = 60\n").unwrap();
        assert_eq!(c.batching, super::BatchingConfig::default());
        let c = load("[batching]\nlow_cheap_feerate_sat_kvb = 1500\n").unwrap();
        assert_eq!(c.batching.low_cheap_feerate_sat_kvb, 1_500);
        let env = [("SENDERO_BATCHING_TARGET_UTXOS".to_string(), "20".to_string())];
        assert_eq!(Config::load(None, env, &Overrides::default()).unwrap().batching.target_utxos, 20);
        assert!(load("[batching]\nmax_outputs_per_tx = 0\n").unwrap_err().to_string().contains("max_outputs_per_tx"));
        assert!(load("[batching]\nlow_cheap = 1\n").unwrap_err().to_string().contains("low_cheap"));
        let err = load("[batching]\nforecast_fall_percent = 100\n").unwrap_err().to_string();
        assert!(err.contains("forecast_fall_percent must be between 0 and 99"), "{err}");
    }
}
