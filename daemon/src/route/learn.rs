//! What the router learns about each rail from outcomes: its success rate, its latency, and
//! whether it is failing right now. These are statistics, so — alone in the code base — they are
//! floats; nothing here holds an amount (costs come in and go out as whole sats).
//!
//! - **Estimate.** A Beta belief with exponential forgetting: each outcome multiplies the
//!   pseudo-counts by [`DECAY`] before adding itself, so the last handful of outcomes weigh most.
//!   A rail starts from its prior worth [`PRIOR_WEIGHT`] outcomes (warm-up): a new rail is
//!   neither trusted nor condemned on one result.
//! - **Choice.** Expected cost per success, `(cost + penalty × (1 − p)) / p`: the fee paid per
//!   attempt and, for every failed attempt, the configured price of a failure (a retry, a late
//!   payout). `p` is the UCB-optimistic rate `p̂ + c·√(ln N / n)`: a rail with few recent outcomes
//!   gets the benefit of the doubt in proportion to how little is known.
//! - **Fast stop.** After `breaker_failures` failures in a row a rail is not recommended for
//!   `breaker_cooldown_secs`; then it may win again, and one success clears it.
//! - **Operators** can pin a rail (recommended whenever feasible) or disable one (never offered).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// Weight kept by past outcomes at each new one.
pub const DECAY: f64 = 0.8;
/// How many outcomes a rail's prior is worth.
pub const PRIOR_WEIGHT: f64 = 4.0;

/// Prior belief about one rail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    /// Probability that a payment on this rail settles.
    pub success_rate: f64,
    /// Typical seconds from submit to settled (`None`: use the rail's own ETA model).
    pub latency_secs: Option<f64>,
}

/// The prior for `rail`, before any outcome: on-chain payouts from a funded treasury almost
/// always confirm; Lightning payments fail more often (liquidity, offline peers); paying our own
/// invoice cannot fail.
pub fn prior(rail: &str) -> Prior {
    match rail {
        "on_us" => Prior { success_rate: 1.0, latency_secs: Some(0.0) },
        "onchain" | "onchain_batch" => Prior { success_rate: 0.99, latency_secs: None },
        "lightning" => Prior { success_rate: 0.90, latency_secs: Some(5.0) },
        _ => Prior { success_rate: 0.5, latency_secs: None },
    }
}

/// What is known of one rail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RailStats {
    /// Decayed successes (prior included).
    pub alpha: f64,
    /// Decayed failures (prior included).
    pub beta: f64,
    /// Outcomes ever seen.
    pub outcomes: u64,
    /// Failures in a row, up to now.
    pub consecutive_failures: u32,
    /// Not recommended before this unix second (fast stop).
    pub tripped_until: u64,
    /// Smoothed seconds from submit to settlement.
    pub latency_secs: Option<f64>,
    /// Failures by code.
    pub failures: BTreeMap<String, u64>,
}

impl RailStats {
    fn new(rail: &str) -> Self {
        let p = prior(rail);
        RailStats {
            alpha: p.success_rate * PRIOR_WEIGHT,
            beta: (1.0 - p.success_rate) * PRIOR_WEIGHT,
            outcomes: 0,
            consecutive_failures: 0,
            tripped_until: 0,
            latency_secs: p.latency_secs,
            failures: BTreeMap::new(),
        }
    }

    /// The estimated success rate.
    pub fn success_rate(&self) -> f64 {
        self.alpha / (self.alpha + self.beta).max(1e-9)
    }
}

/// One outcome of a payment on a rail.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The rail.
    pub rail: String,
    /// Settled?
    pub success: bool,
    /// The failure's code.
    pub code: Option<String>,
    /// Seconds from submit to final.
    pub latency_secs: u64,
    /// When (unix seconds).
    pub at: u64,
}

/// The tuning from `[routing]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Price of a failed attempt, sats.
    pub failure_penalty_sat: u64,
    /// Failures in a row that stop recommending a rail.
    pub breaker_failures: u32,
    /// How long, seconds.
    pub breaker_cooldown_secs: u64,
    /// UCB exploration weight, thousandths.
    pub explore_permille: u32,
}

/// The router's beliefs and the operator's rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Learner {
    /// Per rail.
    pub rails: BTreeMap<String, RailStats>,
    /// The operator's pinned rail.
    pub pinned: Option<String>,
    /// Rails the operator disabled.
    pub disabled: Vec<String>,
}

impl Learner {
    /// What is known of `rail` (its prior when nothing is).
    pub fn stats(&self, rail: &str) -> RailStats {
        self.rails.get(rail).cloned().unwrap_or_else(|| RailStats::new(rail))
    }

    /// Learns from one outcome.
    pub fn record(&mut self, o: &Outcome, tuning: &Tuning) {
        let s = self.rails.entry(o.rail.clone()).or_insert_with(|| RailStats::new(&o.rail));
        s.alpha = s.alpha * DECAY + if o.success { 1.0 } else { 0.0 };
        s.beta = s.beta * DECAY + if o.success { 0.0 } else { 1.0 };
        s.outcomes += 1;
        if o.success {
            s.consecutive_failures = 0;
            s.tripped_until = 0;
            let l = o.latency_secs as f64;
            s.latency_secs = Some(s.latency_secs.map_or(l, |old| old * DECAY + l * (1.0 - DECAY)));
        } else {
            s.consecutive_failures += 1;
            *s.failures.entry(o.code.clone().unwrap_or_default()).or_default() += 1;
            if s.consecutive_failures >= tuning.breaker_failures {
                s.tripped_until = o.at + tuning.breaker_cooldown_secs;
            }
        }
    }

    /// Whether the operator disabled `rail`.
    pub fn is_disabled(&self, rail: &str) -> bool {
        self.disabled.iter().any(|d| d == rail)
    }

    /// The optimistic (UCB) success rate of `rail` among rails with `total` outcomes.
    fn optimistic(&self, rail: &str, total: u64, tuning: &Tuning) -> f64 {
        let s = self.stats(rail);
        let n = s.alpha + s.beta;
        let bonus = f64::from(tuning.explore_permille) / 1_000.0 * ((total as f64 + 1.0).ln() / n.max(1e-9)).sqrt();
        (s.success_rate() + bonus).min(1.0)
    }

    /// Expected cost per success of `cost_sat` on `rail`, whole sats (rounded up).
    pub fn expected_cost(&self, rail: &str, cost_sat: u64, total: u64, tuning: &Tuning) -> u64 {
        let p = self.optimistic(rail, total, tuning).max(1e-6);
        let sats = (cost_sat as f64 + tuning.failure_penalty_sat as f64 * (1.0 - p)) / p;
        if sats >= u64::MAX as f64 {
            u64::MAX
        } else {
            sats.ceil() as u64
        }
    }

    /// Whether `rail` is in its fast stop at `now`.
    pub fn tripped(&self, rail: &str, now: u64) -> bool {
        self.stats(rail).tripped_until > now
    }

    /// Outcomes seen across rails.
    pub fn total_outcomes(&self) -> u64 {
        self.rails.values().map(|s| s.outcomes).sum()
    }

    /// The rail to recommend among `(rail, cost_sat, eta_sec)`: the pinned one when feasible;
    /// else the lowest expected cost per success among rails within `bound` seconds and not
    /// stopped (ties to the faster); else the best among all.
    pub fn recommend(
        &self,
        candidates: &[(&'static str, u64, u64)],
        bound: u64,
        now: u64,
        tuning: &Tuning,
    ) -> Option<&'static str> {
        if let Some(pinned) = candidates.iter().find(|c| self.pinned.as_deref() == Some(c.0)) {
            return Some(pinned.0);
        }
        let total = self.total_outcomes();
        let best = |keep: &dyn Fn(&(&'static str, u64, u64)) -> bool| {
            candidates
                .iter()
                .filter(|c| keep(c))
                .min_by_key(|c| (self.expected_cost(c.0, c.1, total, tuning), c.2))
                .map(|c| c.0)
        };
        best(&|c| c.2 <= bound && !self.tripped(c.0, now))
            .or_else(|| best(&|c| !self.tripped(c.0, now)))
            .or_else(|| best(&|_| true))
    }
}

/// The learner shared by the router (which reads it) and the saga (which records outcomes).
#[derive(Debug, Clone, Default)]
pub struct SharedLearner(Arc<Mutex<Learner>>);

impl SharedLearner {
    /// The learner, locked (a panic elsewhere does not poison it for good).
    pub fn lock(&self) -> MutexGuard<'_, Learner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TUNING: Tuning =
        Tuning { failure_penalty_sat: 500, breaker_failures: 3, breaker_cooldown_secs: 60, explore_permille: 0 };

    fn outcome(rail: &str, success: bool, at: u64) -> Outcome {
        Outcome { rail: rail.into(), success, code: (!success).then(|| "x".into()), latency_secs: 3, at }
    }

    #[test]
    fn expected_cost_weighs_failures() {
        let l = Learner::default();
        // Free Lightning at 90 % (500 sat per failure) beats 282 sat on-chain at 99 %.
        assert!(l.expected_cost("lightning", 0, 0, &TUNING) < l.expected_cost("onchain", 282, 0, &TUNING));
        // 100 sat at 50 % costs more per success than 150 sat that always works.
        assert!(
            Learner::default().expected_cost("coin_flip", 100, 0, &TUNING)
                > Learner::default().expected_cost("on_us", 150, 0, &TUNING)
        );
        assert_eq!(prior("on_us").success_rate, 1.0);
    }

    #[test]
    fn a_degrading_rail_loses_the_recommendation_fast_and_wins_it_back() {
        let mut l = Learner::default();
        let both = [("lightning", 0, 5), ("onchain", 282, 3_600)];
        assert_eq!(l.recommend(&both, 7_200, 0, &TUNING), Some("lightning"));
        let mut lost_after = None;
        for i in 1..=10 {
            l.record(&outcome("lightning", false, 100), &TUNING);
            if l.recommend(&both, 7_200, 100, &TUNING) == Some("onchain") {
                lost_after = Some(i);
                break;
            }
        }
        assert_eq!(lost_after, Some(2), "{:?}", l.stats("lightning"));
        l.record(&outcome("lightning", false, 100), &TUNING);
        assert!(l.tripped("lightning", 100) && !l.tripped("lightning", 161), "stopped for the cooldown");
        // Successes (clients choosing Lightning anyway) bring it back within a few outcomes.
        let mut won_after = None;
        for i in 1..=10 {
            l.record(&outcome("lightning", true, 200), &TUNING);
            if l.recommend(&both, 7_200, 200, &TUNING) == Some("lightning") {
                won_after = Some(i);
                break;
            }
        }
        assert!(won_after.is_some_and(|n| n <= 4), "{won_after:?} {:?}", l.stats("lightning"));
    }

    #[test]
    fn warm_up_exploration_and_operator_rules() {
        let mut l = Learner::default();
        let both = [("lightning", 300, 5), ("onchain", 282, 3_600)];
        assert_eq!(l.recommend(&both, 7_200, 0, &TUNING), Some("onchain"));
        // One failure does not condemn a rail with a good prior; the prior still counts.
        l.record(&outcome("onchain", false, 1), &TUNING);
        assert!(l.stats("onchain").success_rate() > 0.7);
        // Exploration favours the rail with fewer outcomes.
        let explore = Tuning { explore_permille: 300, ..TUNING };
        for t in 0..20 {
            l.record(&outcome("onchain", true, t), &explore);
        }
        assert!(
            l.expected_cost("lightning", 300, l.total_outcomes(), &explore)
                < l.expected_cost("lightning", 300, l.total_outcomes(), &TUNING)
        );
        // Outside the ETA bound, on-chain loses; pinned, it wins anyway.
        assert_eq!(l.recommend(&both, 60, 0, &TUNING), Some("lightning"));
        l.pinned = Some("onchain".into());
        assert_eq!(l.recommend(&both, 60, 0, &TUNING), Some("onchain"));
        assert_eq!(l.recommend(&both[..1], 60, 0, &TUNING), Some("lightning"), "a pin applies only when feasible");
        assert_eq!(l.recommend(&[], 60, 0, &TUNING), None);
    }
}
