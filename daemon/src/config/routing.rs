//! `[routing]`: route lifetimes, confirmation targets and ETA bounds per priority, the saga's
//! pace and the learner's tuning.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[routing]`: how payouts pick a rail, and how they are carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// How long a route (and the costs it shows) may be submitted, seconds.
    pub route_ttl_secs: u64,
    /// Confirmation target of an on-chain payout with priority `high`, blocks.
    pub high_target_blocks: u16,
    /// … with priority `normal`.
    pub normal_target_blocks: u16,
    /// … with priority `low`.
    pub low_target_blocks: u16,
    /// Longest ETA a rail may have to be recommended for priority `high`, seconds.
    pub high_max_eta_secs: u64,
    /// … for priority `normal`.
    pub normal_max_eta_secs: u64,
    /// … for priority `low`.
    pub low_max_eta_secs: u64,
    /// Confirmations after which an on-chain payout is settled.
    pub onchain_confirmations: u32,
    /// How often the payment saga looks at open payments when nothing wakes it (a submit, a
    /// Lightning payment event, a retry falling due), milliseconds.
    pub saga_interval_ms: u64,
    /// How long a Lightning payout waits for usable outbound liquidity (channels reconnecting
    /// after a restart, a peer briefly offline) before it fails, seconds.
    pub lightning_wait_secs: u64,
    /// What a failed attempt costs, sats, when rails are compared (a retry, a late payout).
    pub failure_penalty_sat: u64,
    /// Failures in a row after which a rail is not recommended for a while.
    pub breaker_failures: u32,
    /// How long, seconds.
    pub breaker_cooldown_secs: u64,
    /// Exploration weight of rails with few recent outcomes (UCB), thousandths.
    pub explore_permille: u32,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            route_ttl_secs: 120,
            high_target_blocks: 2,
            normal_target_blocks: 6,
            low_target_blocks: 24,
            high_max_eta_secs: 1_800,
            normal_max_eta_secs: 7_200,
            low_max_eta_secs: 86_400,
            onchain_confirmations: 1,
            saga_interval_ms: 500,
            lightning_wait_secs: 60,
            failure_penalty_sat: 500,
            breaker_failures: 3,
            breaker_cooldown_secs: 300,
            explore_permille: 50,
        }
    }
}

impl RoutingConfig {
    /// The learner's tuning.
    pub fn tuning(&self) -> crate::route::learn::Tuning {
        crate::route::learn::Tuning {
            failure_penalty_sat: self.failure_penalty_sat,
            breaker_failures: self.breaker_failures,
            breaker_cooldown_secs: self.breaker_cooldown_secs,
            explore_permille: self.explore_permille,
        }
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.breaker_failures == 0 || self.explore_permille > 10_000 {
            return Err(ConfigError::Invalid(
                "routing.breaker_failures must be at least 1 and routing.explore_permille at most 10000".into(),
            ));
        }
        let targets = [self.high_target_blocks, self.normal_target_blocks, self.low_target_blocks];
        if targets.iter().any(|&t| t == 0 || t > 1008) {
            return Err(ConfigError::Invalid("routing.*_target_blocks must be between 1 and 1008".into()));
        }
        if self.route_ttl_secs == 0 {
            return Err(ConfigError::Invalid("routing.route_ttl_secs must be at least 1".into()));
        }
        if self.onchain_confirmations == 0 || self.onchain_confirmations > 100 {
            return Err(ConfigError::Invalid("routing.onchain_confirmations must be between 1 and 100".into()));
        }
        if !(50..=60_000).contains(&self.saga_interval_ms) {
            return Err(ConfigError::Invalid("routing.saga_interval_ms must be between 50 and 60000".into()));
        }
        Ok(())
    }
}
