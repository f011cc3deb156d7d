//! What the router believes about each rail: its success rate and its latency. These are
//! statistics, so — alone in the code base — they are floats; nothing here holds an amount.
//! Until a rail has outcomes it starts from a prior (warm-up); recording outcomes comes with
//! submission.

/// Belief about one rail.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Probability that a payment on this rail settles.
    pub success_rate: f64,
    /// Typical seconds from submit to settled (`None`: use the rail's own ETA model).
    pub latency_secs: Option<f64>,
}

/// The prior for `rail`, before any outcome: on-chain payouts from a funded treasury almost
/// always confirm; Lightning payments fail more often (liquidity, offline peers); paying our own
/// invoice cannot fail.
pub fn prior(rail: &str) -> Estimate {
    match rail {
        "on_us" => Estimate { success_rate: 1.0, latency_secs: Some(0.0) },
        "onchain" => Estimate { success_rate: 0.99, latency_secs: None },
        "lightning" => Estimate { success_rate: 0.90, latency_secs: Some(5.0) },
        _ => Estimate { success_rate: 0.5, latency_secs: None },
    }
}

/// Expected cost per successful payment: what a client pays on average for one success.
pub fn cost_per_success(cost_sat: u64, success_rate: f64) -> f64 {
    cost_sat as f64 / success_rate.max(1e-6)
}

/// Whether candidate `a` (cost, success rate, eta) should be preferred to `b`: lower expected
/// cost per success, then the shorter ETA.
pub fn prefer(a: (u64, f64, u64), b: (u64, f64, u64)) -> bool {
    let (ca, cb) = (cost_per_success(a.0, a.1), cost_per_success(b.0, b.1));
    ca < cb || (ca == cb && a.2 < b.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_cost_weighs_failures() {
        // 100 sat at 50 % costs 200 per success: worse than 150 sat that always works.
        assert!(prefer((150, 1.0, 600), (100, 0.5, 5)));
        assert!(prefer((0, 0.9, 5), (1_410, 0.99, 1_200)));
        assert!(prefer((0, 1.0, 0), (0, 1.0, 5)), "equal cost: the faster one");
        assert!(!prefer((0, 1.0, 5), (0, 1.0, 5)));
        assert_eq!(prior("on_us").success_rate, 1.0);
    }
}
