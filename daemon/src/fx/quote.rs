//! Quotes: `amount_minor` of BASE priced in QUOTE at the cached mid-rate moved against the client
//! by the markup, valid until `expires_at`, persisted. Knows nothing of HTTP.

use rust_decimal::Decimal;

use super::money::{self, Side};
use super::rates::RateCache;
use crate::config::FxConfig;
use crate::fx::quotes::QuoteRow;
use crate::store::{Store, StoreError};

/// A quote request, as parsed at the edge.
#[derive(Debug, Clone)]
pub struct QuoteRequest {
    /// BASE currency code.
    pub base: String,
    /// QUOTE currency code.
    pub quote: String,
    /// The client's side of BASE.
    pub side: Side,
    /// Amount of BASE in its minor units.
    pub amount_minor: u64,
}

/// A priced quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// `q_…`.
    pub quote_id: String,
    /// `BASE/QUOTE`.
    pub pair: String,
    /// QUOTE per one BASE, markup included (display precision).
    pub rate: Decimal,
    /// Markup applied.
    pub markup_bps: u32,
    /// Unix seconds.
    pub expires_at: u64,
    /// Amount of BASE, minor units.
    pub amount_minor: u64,
    /// Amount of QUOTE, minor units, rounded in the gateway's favour.
    pub quote_amount_minor: u64,
    /// The bitcoin leg in sats.
    pub amount_sat: u64,
}

/// Why no quote.
#[derive(Debug, thiserror::Error)]
pub enum FxError {
    /// A currency Sendero does not price.
    #[error("unsupported currency {0:?}")]
    UnsupportedCurrency(String),
    /// The pair is not configured (or is not a bitcoin pair).
    #[error("pair {0} is not quoted by this gateway")]
    UnsupportedPair(String),
    /// Zero or too large.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// No fresh rate for the pair: the gateway never invents one.
    #[error("no fresh rate for {0}")]
    RateUnavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Prices `req` for API key `key_id` from `cache` and records the quote.
#[tracing::instrument(name = "fx.quote", skip_all, fields(base = %req.base, quote = %req.quote))]
pub fn quote(
    config: &FxConfig,
    cache: &RateCache,
    store: &Store,
    key_id: &str,
    req: &QuoteRequest,
    now: u64,
    origin: &'static str,
) -> Result<Quote, FxError> {
    let base_exp = money::exponent(&req.base).ok_or_else(|| FxError::UnsupportedCurrency(req.base.clone()))?;
    let quote_exp = money::exponent(&req.quote).ok_or_else(|| FxError::UnsupportedCurrency(req.quote.clone()))?;
    let pair = format!("{}/{}", req.base, req.quote);
    let (configured, inverted) =
        configured_pair(config, &req.base, &req.quote).ok_or_else(|| FxError::UnsupportedPair(pair.clone()))?;
    if req.amount_minor == 0 {
        return Err(FxError::InvalidAmount("amount_minor must be at least 1".into()));
    }
    let rate = cache.fresh(&configured, now);
    crate::metrics::rate_lookup(rate.is_some());
    let rate = rate.ok_or_else(|| FxError::RateUnavailable(configured.clone()))?;
    let mid = oriented(rate.mid, inverted);
    let marked = mid
        .and_then(|m| money::marked_up(m, config.markup_for(&configured, req.side), req.side))
        .ok_or_else(|| FxError::RateUnavailable(configured.clone()))?;
    let quote_amount_minor = money::convert(req.amount_minor, base_exp, quote_exp, marked, req.side)
        .ok_or_else(|| FxError::InvalidAmount(format!("{} is too large to price", req.amount_minor)))?;
    let amount_sat = if req.base == "BTC" { req.amount_minor } else { quote_amount_minor };
    let quote = Quote {
        quote_id: crate::secret::sortable_id("q_"),
        pair,
        rate: money::display_rate(marked, req.side),
        markup_bps: config.markup_for(&configured, req.side),
        expires_at: now + config.quote_ttl_secs,
        amount_minor: req.amount_minor,
        quote_amount_minor,
        amount_sat,
    };
    store.record_quote(
        QuoteRow {
            quote_id: quote.quote_id.clone(),
            api_key_id: key_id.to_owned(),
            pair: quote.pair.clone(),
            side: req.side.as_str(),
            rate: marked.to_string(),
            markup_bps: quote.markup_bps,
            amount_minor: quote.amount_minor,
            quote_amount_minor,
            amount_sat,
            expires_at: quote.expires_at,
            origin,
        },
        now,
    );
    Ok(quote)
}

/// What `amount_minor` of `currency` is worth in sats at the mid-rate (no markup), rounded down:
/// for limits set in a fiat currency. `SAT` and `BTC` amounts are sats already.
pub fn mid_sats(
    config: &FxConfig,
    cache: &RateCache,
    currency: &str,
    amount_minor: u64,
    now: u64,
) -> Result<u64, FxError> {
    if matches!(currency, "SAT" | "BTC") {
        return Ok(amount_minor);
    }
    let exp = money::exponent(currency).ok_or_else(|| FxError::UnsupportedCurrency(currency.to_owned()))?;
    let (configured, inverted) =
        configured_pair(config, currency, "BTC").ok_or_else(|| FxError::UnsupportedPair(format!("{currency}/BTC")))?;
    let rate = cache.fresh(&configured, now);
    crate::metrics::rate_lookup(rate.is_some());
    let rate = rate.ok_or_else(|| FxError::RateUnavailable(configured.clone()))?;
    let mid = oriented(rate.mid, inverted).ok_or_else(|| FxError::RateUnavailable(configured.clone()))?;
    money::convert(amount_minor, exp, 8, mid, Side::Sell)
        .ok_or_else(|| FxError::InvalidAmount(format!("{amount_minor} is too large to price")))
}

/// The configured pair's mid-rate seen from the request's side: inverted when the request is
/// the pair's inverse.
pub(crate) fn oriented(rate_mid: Decimal, inverted: bool) -> Option<Decimal> {
    if inverted {
        Decimal::ONE.checked_div(rate_mid)
    } else {
        Some(rate_mid)
    }
}

/// The configured pair that covers `base`/`quote` and whether the request is its inverse. Only
/// pairs with bitcoin on one side are quoted.
pub(crate) fn configured_pair(config: &FxConfig, base: &str, quote: &str) -> Option<(String, bool)> {
    if base != "BTC" && quote != "BTC" {
        return None;
    }
    config.pairs.iter().find_map(|p| match p.split_once('/') {
        Some((b, q)) if b == base && q == quote => Some((p.clone(), false)),
        Some((b, q)) if b == quote && q == base => Some((p.clone(), true)),
        _ => None,
    })
}
