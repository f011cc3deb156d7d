//! Rate sources: the public ticker APIs of Kraken, Bitstamp and Coinbase Exchange (their real
//! response shapes), and the static table. A background task polls every source for every pair,
//! ignores (and logs) any that times out, fails, or answers garbage, zero or a negative price,
//! drops outliers around the median when three or more agree, and publishes the combination.

use std::sync::Arc;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::rates::{Rate, RateCache};

/// An exchange Sendero can read a ticker from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    /// `GET /0/public/Ticker?pair=XBTEUR` → `result.<pair>.a[0]` / `.b[0]`.
    Kraken,
    /// `GET /api/v2/ticker/btceur/` → `bid` / `ask`.
    Bitstamp,
    /// Coinbase Exchange `GET /products/BTC-EUR/ticker` → `bid` / `ask`.
    Coinbase,
}

impl Exchange {
    /// By config name.
    pub fn parse(name: &str) -> Option<Exchange> {
        match name {
            "kraken" => Some(Exchange::Kraken),
            "bitstamp" => Some(Exchange::Bitstamp),
            "coinbase" => Some(Exchange::Coinbase),
            _ => None,
        }
    }

    /// Config name.
    pub fn name(self) -> &'static str {
        match self {
            Exchange::Kraken => "kraken",
            Exchange::Bitstamp => "bitstamp",
            Exchange::Coinbase => "coinbase",
        }
    }

    fn url(self, base_url: &str, base: &str, quote: &str) -> String {
        let base_url = base_url.trim_end_matches('/');
        match self {
            Exchange::Kraken => {
                let b = if base == "BTC" { "XBT" } else { base };
                format!("{base_url}/0/public/Ticker?pair={b}{quote}")
            }
            Exchange::Bitstamp => format!("{base_url}/api/v2/ticker/{}{}/", base.to_lowercase(), quote.to_lowercase()),
            Exchange::Coinbase => format!("{base_url}/products/{base}-{quote}/ticker"),
        }
    }

    /// Bid and ask from the exchange's JSON.
    fn bid_ask(self, body: &Value) -> Option<(Decimal, Decimal)> {
        let num = |v: Option<&Value>| v.and_then(Value::as_str).and_then(|s| s.parse::<Decimal>().ok());
        match self {
            Exchange::Kraken => {
                if body.get("error").and_then(Value::as_array).is_some_and(|e| !e.is_empty()) {
                    return None;
                }
                let ticker = body.get("result")?.as_object()?.values().next()?;
                Some((num(ticker.get("b")?.get(0))?, num(ticker.get("a")?.get(0))?))
            }
            Exchange::Bitstamp | Exchange::Coinbase => Some((num(body.get("bid"))?, num(body.get("ask"))?)),
        }
    }
}

/// Why a source's answer was not used.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No answer in time, or no connection.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// HTTP error status.
    #[error("HTTP {0}")]
    Status(u16),
    /// Not the exchange's ticker shape, or a price that is zero, negative or crossed.
    #[error("unusable answer: {0}")]
    Garbage(String),
}

/// The mid-price (bid + ask) / 2 of `base/quote` on `exchange`.
pub async fn fetch(
    client: &reqwest::Client,
    exchange: Exchange,
    base_url: &str,
    base: &str,
    quote: &str,
) -> Result<Decimal, SourceError> {
    let response = client
        .get(exchange.url(base_url, base, quote))
        .send()
        .await
        .map_err(|e| SourceError::Unreachable(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(SourceError::Status(status.as_u16()));
    }
    let body = response.bytes().await.map_err(|e| SourceError::Unreachable(e.to_string()))?;
    mid_price(exchange, &body)
}

/// The mid-price (bid + ask) / 2 in `exchange`'s ticker answer `body` (its raw JSON).
pub fn mid_price(exchange: Exchange, body: &[u8]) -> Result<Decimal, SourceError> {
    let body: Value = serde_json::from_slice(body).map_err(|e| SourceError::Garbage(e.to_string()))?;
    let (bid, ask) = exchange.bid_ask(&body).ok_or_else(|| SourceError::Garbage("no bid/ask".into()))?;
    if bid <= Decimal::ZERO || ask <= Decimal::ZERO || ask < bid {
        return Err(SourceError::Garbage(format!("bid {bid} ask {ask}")));
    }
    midpoint(bid, ask).ok_or_else(|| SourceError::Garbage(format!("bid {bid} ask {ask}")))
}

/// (a + b) / 2, also when their sum does not fit a Decimal (then low + (high - low) / 2); `None`
/// only when that does not fit either.
fn midpoint(a: Decimal, b: Decimal) -> Option<Decimal> {
    if let Some(sum) = a.checked_add(b) {
        return Some(sum / Decimal::TWO);
    }
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    low.checked_add(high.checked_sub(low)? / Decimal::TWO)
}

/// Combines readings: with three or more, those further than `max_bps` from the median are
/// dropped; the rest are averaged. `None` when nothing is left.
pub fn combine(mut readings: Vec<Decimal>, max_bps: u32) -> Option<Decimal> {
    if readings.len() >= 3 {
        readings.sort();
        let n = readings.len();
        let median = if n % 2 == 1 { readings[n / 2] } else { midpoint(readings[n / 2 - 1], readings[n / 2])? };
        // A limit too large for a Decimal keeps every reading.
        let limit = median.checked_mul(Decimal::from(max_bps)).map_or(Decimal::MAX, |m| m / Decimal::from(10_000));
        readings.retain(|r| r.checked_sub(median).is_some_and(|d| d.abs() <= limit));
    }
    if readings.is_empty() {
        return None;
    }
    let n = Decimal::from(readings.len());
    let mean = match readings.iter().try_fold(Decimal::ZERO, |sum, r| sum.checked_add(*r)) {
        Some(sum) => sum / n,
        // The sum does not fit a Decimal: each reading is divided first.
        None => readings.iter().try_fold(Decimal::ZERO, |sum, r| sum.checked_add(r / n))?,
    };
    // Rounding to a Decimal's 28 digits can step the mean just outside the readings' range
    // (found by the fx_ticker fuzz target): keep it inside.
    let (low, high) = (readings.iter().min()?, readings.iter().max()?);
    Some(mean.clamp(*low, *high))
}

/// What the poller needs.
#[derive(Clone)]
pub struct SourceSet {
    /// Exchanges with their base URLs.
    pub exchanges: Vec<(Exchange, String)>,
    /// Static rates by pair.
    pub statics: Vec<(String, Decimal)>,
    /// Pairs to poll, `BASE/QUOTE`.
    pub pairs: Vec<String>,
    /// Outlier limit.
    pub max_deviation_bps: u32,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Poll interval.
    pub every: Duration,
}

/// Polls every source for every pair until `cancel`, publishing combined rates into `cache`.
pub async fn run(cache: Arc<RateCache>, set: SourceSet, cancel: CancellationToken) {
    let client = match reqwest::Client::builder().timeout(set.timeout).build() {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "fx: cannot build the HTTP client; exchange sources disabled"),
    };
    loop {
        for pair in &set.pairs {
            if let Some(rate) = poll_pair(&client, &set, pair, &cache).await {
                cache.put(pair, rate);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(set.every) => {}
        }
    }
}

async fn poll_pair(client: &reqwest::Client, set: &SourceSet, pair: &str, cache: &RateCache) -> Option<Rate> {
    let (base, quote) = pair.split_once('/')?;
    let mut jobs = JoinSet::new();
    for (exchange, url) in set.exchanges.iter().cloned() {
        let (client, base, quote) = (client.clone(), base.to_owned(), quote.to_owned());
        jobs.spawn(async move { (exchange, fetch(&client, exchange, &url, &base, &quote).await) });
    }
    let mut readings: Vec<Decimal> = set.statics.iter().filter(|(p, _)| p == pair).map(|(_, r)| *r).collect();
    if !readings.is_empty() {
        cache.note_source("static", crate::unix_now(), Ok(()));
    }
    while let Some(joined) = jobs.join_next().await {
        match joined {
            Ok((exchange, Ok(mid))) => {
                crate::metrics::fx_source(exchange.name(), true);
                cache.note_source(exchange.name(), crate::unix_now(), Ok(()));
                readings.push(mid)
            }
            Ok((exchange, Err(e))) => {
                crate::metrics::fx_source(exchange.name(), false);
                cache.note_source(exchange.name(), crate::unix_now(), Err(format!("{pair}: {e}")));
                tracing::warn!(source = exchange.name(), pair, error = %e, "fx source ignored")
            }
            Err(e) => tracing::error!(pair, error = %e, "fx source task failed"),
        }
    }
    let mid = combine(readings, set.max_deviation_bps)?;
    Some(Rate { mid, as_of: crate::unix_now(), source: "combined" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(n: i64) -> Decimal {
        Decimal::from(n)
    }

    #[test]
    fn outliers_are_dropped_around_the_median() {
        assert_eq!(combine(vec![d(85_000), d(85_010), d(84_990)], 100), Some(d(85_000)));
        assert_eq!(combine(vec![d(85_000), d(85_010), d(95_000)], 100), Some(d(85_005)));
        assert_eq!(combine(vec![d(85_000), d(95_000)], 100), Some(d(90_000)), "two sources cannot outvote each other");
        assert_eq!(combine(vec![], 100), None);
    }

    #[test]
    fn prices_near_the_largest_decimal_do_not_overflow() {
        // Found while writing the fx_ticker fuzz target: bid + ask and the readings' sum
        // overflowed, a panic that ended the rate poller.
        let max = Decimal::MAX.to_string();
        let body = json!({"bid": max, "ask": max}).to_string();
        assert_eq!(mid_price(Exchange::Bitstamp, body.as_bytes()).unwrap(), Decimal::MAX);
        let big = Decimal::MAX - d(1);
        assert_eq!(combine(vec![big, big, big], 100), Some(big));
        assert!(combine(vec![big, Decimal::MAX], 100).is_some_and(|m| m >= big));
        assert!(combine(vec![Decimal::MAX, Decimal::MIN, d(1), d(2)], u32::MAX).is_some());
        let bitstamp = br#"{"bid": "84999", "ask": "85001"}"#;
        assert_eq!(mid_price(Exchange::Bitstamp, bitstamp).unwrap(), d(85_000));
        assert!(matches!(mid_price(Exchange::Coinbase, b"{"), Err(SourceError::Garbage(_))));
    }

    #[test]
    fn a_mean_rounded_to_28_digits_stays_inside_the_readings() {
        // The fx_ticker fuzz target's crash: two readings with more digits than a Decimal keeps.
        let body = br#"["57892.0666666660666666666666666", "509666666666666666", "57892.0666666660666666666666666"]"#;
        let items: Vec<String> = serde_json::from_slice(body).unwrap();
        let readings: Vec<Decimal> = items.iter().filter_map(|s| s.parse().ok()).collect();
        let (low, high) = (*readings.iter().min().unwrap(), *readings.iter().max().unwrap());
        for bps in [0, 100, 10_000, u32::MAX] {
            let mean = combine(readings.clone(), bps).unwrap();
            assert!(mean >= low && mean <= high, "{bps} bps: {mean} outside [{low}, {high}]");
        }
    }

    #[test]
    fn real_ticker_shapes_are_read() {
        let kraken = json!({"error": [], "result": {"XXBTZEUR": {"a": ["85001.0", "1", "1.000"], "b": ["84999.0", "2", "2.000"], "c": ["85000.0", "0.1"]}}});
        assert_eq!(Exchange::Kraken.bid_ask(&kraken), Some((d(84_999), d(85_001))));
        let kraken_err = json!({"error": ["EQuery:Unknown asset pair"]});
        assert_eq!(Exchange::Kraken.bid_ask(&kraken_err), None);
        let bitstamp = json!({"bid": "84999", "ask": "85001", "last": "85000", "timestamp": "1700000000"});
        assert_eq!(Exchange::Bitstamp.bid_ask(&bitstamp), Some((d(84_999), d(85_001))));
        assert_eq!(
            Exchange::Coinbase.url("https://api.exchange.coinbase.com/", "BTC", "EUR"),
            "https://api.exchange.coinbase.com/products/BTC-EUR/ticker"
        );
        assert_eq!(Exchange::Kraken.url("http://x", "BTC", "USD"), "http://x/0/public/Ticker?pair=XBTUSD");
        assert_eq!(Exchange::Bitstamp.url("http://x", "BTC", "EUR"), "http://x/api/v2/ticker/btceur/");
    }
}
