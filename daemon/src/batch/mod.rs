//! On-chain cost, the pure core: exact sizes, the fee split, the departure and fee policy of
//! queued `onchain_batch` payouts, batch and consolidation plans, route prices, and feerate
//! series for the simulator. No I/O: the daemon and the simulator call it with what they hold.

pub mod consolidate;
pub mod feeseries;
pub mod history;
pub mod plan;
pub mod policy;
pub mod quote;
pub mod size;
pub mod split;

pub use consolidate::{plan_consolidation, Consolidation, NoConsolidation};
pub use history::FeeHistory;
pub use plan::{dust_sat, plan_batch, PlanError, TxPlan, Utxo};
pub use policy::{bump, departure, held_for_fees, next_departure, recent_level, triggered};
pub use policy::{Departure, Feerates, Held, InFlight, Queued, Reason};
pub use quote::{batch_quote, single_quote, RailQuote};
pub use size::{InputKind, OutputKind};
pub use split::{split_fee, SplitError};

use crate::config::{BatchingConfig, Config, RoutingConfig};

/// How urgent a payout is, named as the route API names it (`high`, `normal`, `low`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Next blocks.
    High,
    /// Within hours.
    Normal,
    /// Whenever it is cheap.
    Low,
}

impl Priority {
    /// The three, most urgent first.
    pub const ALL: [Priority; 3] = [Priority::High, Priority::Normal, Priority::Low];

    /// `high`, `normal`, `low`.
    pub fn parse(text: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Its on-chain confirmation target, blocks (`[routing] *_target_blocks`).
    pub fn target_blocks(self, c: &RoutingConfig) -> u16 {
        match self {
            Priority::High => c.high_target_blocks,
            Priority::Normal => c.normal_target_blocks,
            Priority::Low => c.low_target_blocks,
        }
    }

    /// How long a queued payout of this priority may wait and still confirm within its ETA
    /// bound: the bound minus its confirmation target's time, seconds.
    pub fn max_wait_secs(self, c: &RoutingConfig) -> u64 {
        self.max_eta_secs(c).saturating_sub(u64::from(self.target_blocks(c)) * 600)
    }

    /// Its ETA bound, seconds (`[routing] *_max_eta_secs`).
    pub fn max_eta_secs(self, c: &RoutingConfig) -> u64 {
        match self {
            Priority::High => c.high_max_eta_secs,
            Priority::Normal => c.normal_max_eta_secs,
            Priority::Low => c.low_max_eta_secs,
        }
    }
}

/// One priority's thresholds, from `[routing]` (target, ETA bound) and `[batching]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// Confirmation target, blocks.
    pub target_blocks: u32,
    /// Longest time from submission to confirmation, seconds.
    pub max_eta_secs: u64,
    /// Payouts waiting that make a batch leave.
    pub max_count: u32,
    /// Sats waiting that make a batch leave.
    pub max_total_sat: u64,
    /// Feerate at or below which a batch leaves, sat/kvB.
    pub cheap_feerate_sat_kvb: u64,
    /// Joins batches leaving for other priorities.
    pub joins: bool,
    /// Shortest wait of the oldest payout before a cheap batch leaves, seconds.
    pub cheap_min_wait_secs: u64,
    /// Longest wait of the oldest payout before a batch leaves, seconds (0: none).
    pub interval_secs: u64,
    /// Above this feerate the payouts wait for fees, sat/kvB.
    pub max_feerate_sat_kvb: u64,
    /// Blocks unconfirmed before a bump.
    pub bump_after_blocks: u32,
    /// Highest feerate a bump pays before the ETA bound is near, sat/kvB.
    pub bump_max_feerate_sat_kvb: u64,
    /// Percentile of the recent next-block feerates a payout leaving at its deadline pays at
    /// most, and above which its transaction waits for its last blocks to be bumped (0: none).
    pub deadline_cap_percentile: u32,
}

impl Class {
    /// Seconds the confirmation target is expected to take (a block per 600 s).
    pub fn target_secs(&self) -> u64 {
        u64::from(self.target_blocks) * 600
    }

    /// How long a payout may wait in the queue: its ETA bound minus its target's time.
    pub fn max_wait_secs(&self) -> u64 {
        self.max_eta_secs.saturating_sub(self.target_secs())
    }
}

/// The whole policy: the three classes, the batch limits, consolidation and the wallet's
/// highest feerate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `high`, `normal`, `low`.
    pub classes: [Class; 3],
    /// Most payee outputs per transaction.
    pub max_outputs_per_tx: usize,
    /// Percentile of the recent next-block feerates that also counts as cheap (0: off).
    pub cheap_percentile: u32,
    /// How far back it looks, seconds.
    pub cheap_window_secs: u64,
    /// A cheap batch waits when yesterday fell more than this many percent before the time of
    /// day of the middle of its payouts' deadlines (0: off).
    pub forecast_fall_percent: u32,
    /// With a due payout go the others of its priority due within this many seconds.
    pub deadline_join_secs: u64,
    /// Extra percent a bump pays once the ETA bound is two blocks away.
    pub near_bound_margin_percent: u32,
    /// Extra percent a payout with a two-block target pays when it leaves at its deadline, and a
    /// bump once the ETA bound is three blocks away (two blocks left).
    pub deadline_margin_percent: u32,
    /// Consolidate at or below this feerate, sat/kvB.
    pub consolidation_feerate_sat_kvb: u64,
    /// Consolidate down to this many UTXOs.
    pub target_utxos: usize,
    /// Most inputs one consolidation spends.
    pub max_consolidation_inputs: usize,
    /// Feerate a consolidation's saving is measured against, sat/kvB.
    pub reference_feerate_sat_kvb: u64,
    /// `wallet.max_feerate_sat_vb`, sat/kvB: nothing ever pays more.
    pub max_feerate_sat_kvb: u64,
    /// The least a bump raises a transaction's feerate by, sat/kvB: for a replacement, bitcoind's
    /// incremental relay feerate, which the fee bumper reads from it (0.1 sat/vB since v30); 1
    /// sat/vB ([`size::INCREMENTAL_FEERATE_SAT_KVB`], the default before v30) otherwise, and for
    /// a child paying for its parent (it adds its own bytes).
    pub replacement_step_sat_kvb: u64,
}

impl Policy {
    /// The policy of a loaded configuration.
    pub fn from_config(config: &Config) -> Policy {
        Policy::new(&config.routing, &config.batching, config.wallet.max_feerate_sat_vb)
    }

    /// The policy of `[routing]`, `[batching]` and `wallet.max_feerate_sat_vb`.
    pub fn new(r: &RoutingConfig, b: &BatchingConfig, wallet_max_feerate_sat_vb: u64) -> Policy {
        Policy {
            classes: Priority::ALL.map(|p| class_of(r, b, p)),
            max_outputs_per_tx: b.max_outputs_per_tx as usize,
            cheap_percentile: b.cheap_percentile,
            cheap_window_secs: b.cheap_window_secs,
            forecast_fall_percent: b.forecast_fall_percent,
            deadline_join_secs: b.deadline_join_secs,
            near_bound_margin_percent: b.near_bound_margin_percent,
            deadline_margin_percent: b.deadline_margin_percent,
            consolidation_feerate_sat_kvb: b.consolidation_feerate_sat_kvb,
            target_utxos: b.target_utxos as usize,
            max_consolidation_inputs: b.max_consolidation_inputs as usize,
            reference_feerate_sat_kvb: b.reference_feerate_sat_kvb,
            max_feerate_sat_kvb: wallet_max_feerate_sat_vb.saturating_mul(1_000),
            replacement_step_sat_kvb: size::INCREMENTAL_FEERATE_SAT_KVB,
        }
    }

    /// A priority's thresholds.
    pub fn class(&self, p: Priority) -> &Class {
        &self.classes[p.index()]
    }

    /// `p`'s feerate estimate when one of its payouts leaves at its deadline, sat/kvB: its
    /// target's blocks are all it has left, so a one-block target adds the near-bound margin
    /// (its last block) and a two-block target the deadline margin (a miss in the first is
    /// bumped with the near-bound margin for the second); a longer target adds nothing.
    pub fn at_deadline(&self, p: Priority, estimate_sat_kvb: u64) -> u64 {
        let margin = match self.class(p).target_blocks {
            0 | 1 => self.near_bound_margin_percent,
            2 => self.deadline_margin_percent,
            _ => 0,
        };
        (estimate_sat_kvb.saturating_mul(100 + u64::from(margin)) / 100).min(self.max_feerate_sat_kvb)
    }
}

/// Priority `p`'s keys of `[routing]` and `[batching]`.
fn class_of(r: &RoutingConfig, b: &BatchingConfig, p: Priority) -> Class {
    let (target, eta) = match p {
        Priority::High => (r.high_target_blocks, r.high_max_eta_secs),
        Priority::Normal => (r.normal_target_blocks, r.normal_max_eta_secs),
        Priority::Low => (r.low_target_blocks, r.low_max_eta_secs),
    };
    let pick = |high: u64, normal: u64, low: u64| match p {
        Priority::High => high,
        Priority::Normal => normal,
        Priority::Low => low,
    };
    let blocks = |high: u32, normal: u32, low: u32| pick(high.into(), normal.into(), low.into()) as u32;
    Class {
        target_blocks: u32::from(target),
        max_eta_secs: eta,
        max_count: blocks(b.high_max_count, b.normal_max_count, b.low_max_count),
        max_total_sat: pick(b.high_max_total_sat, b.normal_max_total_sat, b.low_max_total_sat),
        cheap_feerate_sat_kvb: pick(
            b.high_cheap_feerate_sat_kvb,
            b.normal_cheap_feerate_sat_kvb,
            b.low_cheap_feerate_sat_kvb,
        ),
        joins: [b.high_join, b.normal_join, b.low_join][p as usize],
        cheap_min_wait_secs: pick(b.high_cheap_min_wait_secs, b.normal_cheap_min_wait_secs, b.low_cheap_min_wait_secs),
        interval_secs: pick(b.high_interval_secs, b.normal_interval_secs, b.low_interval_secs),
        max_feerate_sat_kvb: pick(b.high_max_feerate_sat_kvb, b.normal_max_feerate_sat_kvb, b.low_max_feerate_sat_kvb),
        bump_after_blocks: blocks(b.high_bump_after_blocks, b.normal_bump_after_blocks, b.low_bump_after_blocks),
        bump_max_feerate_sat_kvb: pick(
            b.high_bump_max_feerate_sat_kvb,
            b.normal_bump_max_feerate_sat_kvb,
            b.low_bump_max_feerate_sat_kvb,
        ),
        deadline_cap_percentile: [
            b.high_deadline_cap_percentile,
            b.normal_deadline_cap_percentile,
            b.low_deadline_cap_percentile,
        ][p as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_waits_within_each_eta_bound() {
        let p = Policy::from_config(&Config::default());
        let waits: Vec<u64> = Priority::ALL.iter().map(|c| p.class(*c).max_wait_secs()).collect();
        // 1800 − 2 × 600, 7200 − 6 × 600, 86400 − 24 × 600.
        assert_eq!(waits, [600, 3_600, 72_000]);
        assert_eq!(p.max_feerate_sat_kvb, 1_000_000);
        assert_eq!(Priority::parse("normal"), Some(Priority::Normal));
        assert_eq!(Priority::parse("urgent"), None);
    }

    #[test]
    fn a_payout_leaving_at_its_deadline_adds_a_margin_for_the_blocks_it_has_left() {
        let mut p = Policy::from_config(&Config::default());
        // high: 2 blocks (+15 %); normal: 6 blocks (none); low with a 1-block target (+40 %).
        p.classes[2].target_blocks = 1;
        let paid: Vec<u64> = Priority::ALL.iter().map(|c| p.at_deadline(*c, 10_000)).collect();
        assert_eq!(paid, [11_500, 10_000, 14_000]);
        assert_eq!(p.at_deadline(Priority::High, 990_000), 1_000_000, "never above the wallet's maximum");
    }
}
