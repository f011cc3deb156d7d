//! `[fx]`: pairs, sources, rate TTLs, markups, drift and conversion budgets, and their checks.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[fx]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FxConfig {
    /// Pairs quoted, `BASE/QUOTE` with bitcoin on one side (either direction is quoted).
    pub pairs: Vec<String>,
    /// Where rates come from: `static`, `kraken`, `bitstamp`, `coinbase`.
    pub sources: Vec<String>,
    /// Base URLs of the exchanges' public APIs (tests point them at a local server).
    pub source_urls: BTreeMap<String, String>,
    /// With three or more fresh sources, those further than this from the median are dropped.
    pub max_deviation_bps: u32,
    /// A source slower than this is ignored for that round.
    pub source_timeout_ms: u64,
    /// How often sources are polled.
    pub refresh_secs: u64,
    /// Fixed mid-rates (QUOTE per BASE, decimal text) per pair, for tests and dev mode, where
    /// regtest coins have no market. Dev mode fills BTC/EUR and BTC/USD when empty.
    pub static_rates: BTreeMap<String, String>,
    /// A rate older than this is not used.
    pub rate_ttl_secs: u64,
    /// How long a quote stands.
    pub quote_ttl_secs: u64,
    /// Markup moved against the client, in basis points (pairs not in `markups`).
    pub markup_bps: u32,
    /// Markup per pair and side, e.g. `"BTC/EUR" = { buy = 40, sell = 60 }`.
    pub markups: BTreeMap<String, SideMarkup>,
    /// Rate TTL per volatility class, e.g. `g10 = 120, em = 20`.
    pub ttl_classes: BTreeMap<String, u64>,
    /// Each pair's volatility class (pairs not listed use `rate_ttl_secs`).
    pub pair_classes: BTreeMap<String, String>,
    /// At execution, the locked rate applies while the market is within this many bps of it;
    /// beyond, the client must accept a new quote.
    pub allowed_drift_bps: u32,
    /// Per-transaction conversion-cost budget: a fill whose rate is further than this from the mid
    /// at execution (against the client) is refused.
    pub max_conversion_cost_bps: u32,
    /// How long past its TTL a rate may still be used to finish an execution already started.
    pub grace_secs: u64,
}

impl Default for FxConfig {
    fn default() -> Self {
        FxConfig {
            pairs: vec!["BTC/EUR".into(), "BTC/USD".into()],
            sources: vec!["static".into()],
            source_urls: [
                ("kraken", "https://api.kraken.com"),
                ("bitstamp", "https://www.bitstamp.net"),
                ("coinbase", "https://api.exchange.coinbase.com"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            max_deviation_bps: 100,
            source_timeout_ms: 3_000,
            refresh_secs: 10,
            static_rates: BTreeMap::new(),
            rate_ttl_secs: 120,
            quote_ttl_secs: 30,
            markup_bps: 50,
            markups: BTreeMap::new(),
            ttl_classes: [("g10", 120), ("em", 20)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            pair_classes: BTreeMap::new(),
            allowed_drift_bps: 20,
            max_conversion_cost_bps: 200,
            grace_secs: 30,
        }
    }
}

/// Markup for each side of a pair, in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideMarkup {
    /// The client buys BASE.
    pub buy: u32,
    /// The client sells BASE.
    pub sell: u32,
}

impl FxConfig {
    /// The markup for `pair` (as configured, `BASE/QUOTE`) and the client's side.
    pub fn markup_for(&self, pair: &str, side: crate::fx::money::Side) -> u32 {
        match (self.markups.get(pair), side) {
            (Some(m), crate::fx::money::Side::Buy) => m.buy,
            (Some(m), crate::fx::money::Side::Sell) => m.sell,
            (None, _) => self.markup_bps,
        }
    }

    /// The rate TTL of `pair`, from its volatility class.
    pub fn ttl_for(&self, pair: &str) -> u64 {
        self.pair_classes.get(pair).and_then(|c| self.ttl_classes.get(c)).copied().unwrap_or(self.rate_ttl_secs)
    }

    /// The static table, parsed and checked against `pairs`.
    pub fn static_table(&self) -> Result<Vec<(String, rust_decimal::Decimal)>, ConfigError> {
        self.static_rates
            .iter()
            .map(|(pair, text)| {
                if !self.pairs.contains(pair) {
                    return Err(ConfigError::Invalid(format!("fx.static_rates has {pair}, which is not in fx.pairs")));
                }
                match rust_decimal::Decimal::from_str(text.trim()) {
                    Ok(rate) if rate > rust_decimal::Decimal::ZERO => Ok((pair.clone(), rate)),
                    _ => Err(ConfigError::Invalid(format!(
                        "fx.static_rates.{pair} = {text:?} is not a positive decimal"
                    ))),
                }
            })
            .collect()
    }

    /// The sources to poll, checked.
    pub fn source_set(&self) -> Result<crate::fx::sources::SourceSet, ConfigError> {
        use crate::fx::sources::{Exchange, SourceSet};
        let mut exchanges = Vec::new();
        for name in &self.sources {
            if name == "static" {
                continue;
            }
            let exchange = Exchange::parse(name).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "fx.sources: unknown source {name:?}; use static, kraken, bitstamp, coinbase"
                ))
            })?;
            let url = self
                .source_urls
                .get(name)
                .ok_or_else(|| ConfigError::Invalid(format!("fx.source_urls has no {name}")))?;
            exchanges.push((exchange, url.clone()));
        }
        let statics = if self.sources.iter().any(|s| s == "static") { self.static_table()? } else { Vec::new() };
        Ok(SourceSet {
            exchanges,
            statics,
            pairs: self.pairs.clone(),
            max_deviation_bps: self.max_deviation_bps,
            timeout: std::time::Duration::from_millis(self.source_timeout_ms.max(1)),
            every: std::time::Duration::from_secs(self.refresh_secs.max(1)),
        })
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        for pair in &self.pairs {
            let known = pair.split_once('/').is_some_and(|(b, q)| {
                crate::fx::money::exponent(b).is_some()
                    && crate::fx::money::exponent(q).is_some()
                    && b != q
                    && (b == "BTC" || q == "BTC")
            });
            if !known {
                return Err(ConfigError::Invalid(format!(
                    "fx.pairs: {pair:?} is not BASE/QUOTE of known currencies with BTC on one side"
                )));
            }
        }
        self.source_set()?;
        for (pair, class) in &self.pair_classes {
            if !self.pairs.contains(pair) || !self.ttl_classes.contains_key(class) {
                return Err(ConfigError::Invalid(format!(
                    "fx.pair_classes: {pair} = {class:?} needs a pair in fx.pairs and a class in fx.ttl_classes"
                )));
            }
        }
        if let Some((pair, m)) =
            self.markups.iter().find(|(p, m)| !self.pairs.contains(p) || m.buy >= 10_000 || m.sell >= 10_000)
        {
            return Err(ConfigError::Invalid(format!(
                "fx.markups: {pair} = {m:?} needs a pair in fx.pairs and bps below 10000"
            )));
        }
        if self.ttl_classes.values().any(|t| *t == 0) {
            return Err(ConfigError::Invalid("fx.ttl_classes: a TTL must be at least 1 s".into()));
        }
        if self.quote_ttl_secs == 0 || self.rate_ttl_secs == 0 || self.refresh_secs == 0 || self.markup_bps >= 10_000 {
            return Err(ConfigError::Invalid("fx: TTLs must be at least 1 s and markup_bps below 10000".into()));
        }
        self.static_table().map(|_| ())
    }
}
