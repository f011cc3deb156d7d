//! The rate cache: the latest normalised mid-rate per pair with its `as_of`, served only while
//! fresh. The source poller (`sources.rs`) writes into it in the background, with what each
//! source last did (the dashboard's rate sources' health).

use std::collections::{BTreeMap, HashMap};
use std::sync::{PoisonError, RwLock};

use rust_decimal::Decimal;

/// A normalised mid-rate: QUOTE per one BASE of `pair` (`BASE/QUOTE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// Mid-rate.
    pub mid: Decimal,
    /// When the source reported it, unix seconds.
    pub as_of: u64,
    /// Which source (`static`, …).
    pub source: &'static str,
}

/// What a source last did, Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceHealth {
    /// When it last gave a reading.
    pub last_ok: Option<u64>,
    /// When it last failed, and why.
    pub last_error: Option<(u64, String)>,
}

/// Hot rates by pair, with a freshness limit.
pub struct RateCache {
    rates: RwLock<HashMap<String, Rate>>,
    sources: RwLock<BTreeMap<&'static str, SourceHealth>>,
    ttl_secs: u64,
    ttl_by_pair: HashMap<String, u64>,
}

impl RateCache {
    /// An empty cache whose rates are fresh for `ttl_secs`.
    pub fn new(ttl_secs: u64) -> Self {
        Self::with_ttls(ttl_secs, HashMap::new())
    }

    /// A cache with a TTL per pair (its volatility class's), `ttl_secs` for the others.
    pub fn with_ttls(ttl_secs: u64, ttl_by_pair: HashMap<String, u64>) -> Self {
        RateCache { rates: RwLock::new(HashMap::new()), sources: RwLock::default(), ttl_secs, ttl_by_pair }
    }

    fn ttl(&self, pair: &str) -> u64 {
        self.ttl_by_pair.get(pair).copied().unwrap_or(self.ttl_secs)
    }

    /// Stores the latest rate of `pair`.
    pub fn put(&self, pair: &str, rate: Rate) {
        self.rates.write().unwrap_or_else(PoisonError::into_inner).insert(pair.to_owned(), rate);
    }

    /// The rate of `pair` if it is no older than the TTL plus `grace_secs` at `now`: a slightly
    /// stale rate may still finish an intent already started, never start a new one.
    pub fn within_grace(&self, pair: &str, now: u64, grace_secs: u64) -> Option<Rate> {
        let rates = self.rates.read().unwrap_or_else(PoisonError::into_inner);
        rates.get(pair).filter(|r| now.saturating_sub(r.as_of) <= self.ttl(pair) + grace_secs).cloned()
    }

    /// `source` gave a reading at `at` (`Ok`) or failed (`Err` with why).
    pub fn note_source(&self, source: &'static str, at: u64, outcome: Result<(), String>) {
        let mut sources = self.sources.write().unwrap_or_else(PoisonError::into_inner);
        let health = sources.entry(source).or_default();
        match outcome {
            Ok(()) => health.last_ok = Some(at),
            Err(why) => health.last_error = Some((at, why)),
        }
    }

    /// What each source last did, by name.
    pub fn source_health(&self) -> Vec<(&'static str, SourceHealth)> {
        let sources = self.sources.read().unwrap_or_else(PoisonError::into_inner);
        sources.iter().map(|(name, h)| (*name, h.clone())).collect()
    }

    /// Every pair's latest rate (fresh or not), by pair.
    pub fn snapshot(&self) -> Vec<(String, Rate)> {
        let rates = self.rates.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<(String, Rate)> = rates.iter().map(|(p, r)| (p.clone(), r.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The rate of `pair` if it is no older than the TTL at `now`.
    pub fn fresh(&self, pair: &str, now: u64) -> Option<Rate> {
        let rates = self.rates.read().unwrap_or_else(PoisonError::into_inner);
        rates.get(pair).filter(|r| now.saturating_sub(r.as_of) <= self.ttl(pair)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_rates_are_not_served() {
        let cache = RateCache::new(60);
        cache.put("BTC/EUR", Rate { mid: Decimal::from(85_000), as_of: 1_000, source: "static" });
        assert!(cache.fresh("BTC/EUR", 1_060).is_some());
        assert!(cache.fresh("BTC/EUR", 1_061).is_none());
        assert!(cache.fresh("BTC/USD", 1_000).is_none());
        assert!(cache.within_grace("BTC/EUR", 1_090, 30).is_some());
        assert!(cache.within_grace("BTC/EUR", 1_091, 30).is_none());
        let classed = RateCache::with_ttls(60, [("BTC/ARS".to_owned(), 20)].into_iter().collect());
        classed.put("BTC/ARS", Rate { mid: Decimal::from(90_000_000), as_of: 1_000, source: "static" });
        assert!(classed.fresh("BTC/ARS", 1_020).is_some() && classed.fresh("BTC/ARS", 1_021).is_none());
    }
}
