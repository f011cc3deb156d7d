//! Execution: a quote is filled at its locked rate while the market stays within the allowed
//! drift of it, and within the conversion-cost budget; beyond the drift the client gets a fresh
//! quote to accept; after expiry, nothing. One fill per quote.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::money::{self, Side};
use super::quote::{oriented, quote, FxError, Quote, QuoteRequest};
use super::rates::RateCache;
use super::record::FillRow;
use crate::config::FxConfig;
use crate::fx::quotes::QuoteRow;
use crate::store::Store;

/// An execution request.
#[derive(Debug, Clone)]
pub struct ExecuteRequest {
    /// The quote to fill.
    pub quote_id: String,
    /// Must be the quote's amount.
    pub amount_minor: u64,
    /// Must be the quote's pair.
    pub pair: String,
}

/// Why no fill.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// No such quote for this key.
    #[error("no quote {0} for this API key")]
    UnknownQuote(String),
    /// Pair or amount differ from the quote's.
    #[error("{0}")]
    Mismatch(String),
    /// Past `expires_at`.
    #[error("quote {0} has expired")]
    Expired(String),
    /// The quote was filled already (under another idempotency key).
    #[error("quote {0} is already filled")]
    AlreadyFilled(String),
    /// The market moved beyond the allowed drift: here is a fresh quote.
    #[error("the market moved {drift_bps} bps from the quote; accept the new quote")]
    Requote {
        /// How far it moved.
        drift_bps: u64,
        /// The fresh quote.
        quote: Box<Quote>,
    },
    /// The fill would cost more than the per-transaction budget.
    #[error("conversion would cost {cost_bps} bps, over the {max_bps} bps budget")]
    OverBudget {
        /// Cost against the mid.
        cost_bps: u64,
        /// Budget.
        max_bps: u32,
    },
    /// Quote lookup or requote failed.
    #[error(transparent)]
    Fx(#[from] FxError),
}

/// Checks `req` against its quote and the market; returns the fill to record.
pub fn execute(
    config: &FxConfig,
    cache: &RateCache,
    store: &Store,
    key_id: &str,
    req: &ExecuteRequest,
    now: u64,
) -> Result<FillRow, ExecuteError> {
    let q = fillable(store, key_id, req, now)?;
    let (base, quote_ccy) = q.pair.split_once('/').ok_or_else(|| FxError::UnsupportedPair(q.pair.clone()))?;
    let (configured, inverted) = super::quote::configured_pair(config, base, quote_ccy)
        .ok_or_else(|| FxError::UnsupportedPair(q.pair.clone()))?;
    let unavailable = || FxError::RateUnavailable(configured.clone());
    let rate = cache.within_grace(&configured, now, config.grace_secs).ok_or_else(unavailable)?;
    let side = if q.side == "sell" { Side::Sell } else { Side::Buy };
    let mid = oriented(rate.mid, inverted).ok_or_else(unavailable)?;
    let locked: Decimal =
        q.rate.parse().map_err(|_| FxError::RateUnavailable(format!("quote {} has no rate", q.quote_id)))?;
    let current = money::marked_up(mid, q.markup_bps, side).ok_or_else(unavailable)?;
    let drift_bps = bps((current - locked).abs(), locked);
    if drift_bps > u64::from(config.allowed_drift_bps) {
        let fresh = requote((config, cache, store), key_id, &q, side, now)?;
        return Err(ExecuteError::Requote { drift_bps, quote: Box::new(fresh) });
    }
    // What the client gives up against the mid, in bps: positive when the locked rate is worse
    // for them than the market.
    let against_client = match side {
        Side::Buy => locked - mid,
        Side::Sell => mid - locked,
    };
    let cost_bps = if against_client > Decimal::ZERO { bps(against_client, mid) } else { 0 };
    if cost_bps > u64::from(config.max_conversion_cost_bps) {
        return Err(ExecuteError::OverBudget { cost_bps, max_bps: config.max_conversion_cost_bps });
    }
    Ok(FillRow {
        fx_entry_id: crate::secret::sortable_id("fx_"),
        api_key_id: key_id.to_owned(),
        side: side.as_str(),
        mid_at_fill: mid.normalize().to_string(),
        spread_minor: spread_minor(&q, mid).unwrap_or_default(),
        quote_id: q.quote_id,
        pair: q.pair,
        rate: q.rate,
        amount_minor: q.amount_minor,
        quote_amount_minor: q.quote_amount_minor,
        amount_sat: q.amount_sat,
    })
}

/// The key's quote that `req` names, if it matches the request, is live and unfilled.
fn fillable(store: &Store, key_id: &str, req: &ExecuteRequest, now: u64) -> Result<QuoteRow, ExecuteError> {
    let q = store
        .quote(&req.quote_id)
        .map_err(FxError::Store)?
        .filter(|q| q.api_key_id == key_id)
        .ok_or_else(|| ExecuteError::UnknownQuote(req.quote_id.clone()))?;
    if q.pair != req.pair {
        return Err(ExecuteError::Mismatch(format!("quote {} is for {}, not {}", q.quote_id, q.pair, req.pair)));
    }
    if q.amount_minor != req.amount_minor {
        return Err(ExecuteError::Mismatch(format!(
            "quote {} is for {} minor units, not {}",
            q.quote_id, q.amount_minor, req.amount_minor
        )));
    }
    if now > q.expires_at {
        return Err(ExecuteError::Expired(q.quote_id));
    }
    if store.quote_filled(&q.quote_id).map_err(FxError::Store)? {
        return Err(ExecuteError::AlreadyFilled(q.quote_id));
    }
    Ok(q)
}

/// A fresh quote replacing `old` beyond the drift, recorded with what honouring `old` at today's
/// market would have given away.
fn requote(
    (config, cache, store): (&FxConfig, &RateCache, &Store),
    key_id: &str,
    old: &QuoteRow,
    side: Side,
    now: u64,
) -> Result<Quote, ExecuteError> {
    let (base, quote_ccy) = old.pair.split_once('/').ok_or_else(|| FxError::UnsupportedPair(old.pair.clone()))?;
    let req = QuoteRequest { base: base.to_owned(), quote: quote_ccy.to_owned(), side, amount_minor: old.amount_minor };
    let fresh = quote(config, cache, store, key_id, &req, now, "requote")?;
    let given_away = match side {
        Side::Buy => fresh.quote_amount_minor as i64 - old.quote_amount_minor as i64,
        Side::Sell => old.quote_amount_minor as i64 - fresh.quote_amount_minor as i64,
    };
    store.record_requote(&fresh.quote_id, &old.quote_id, given_away.max(0)).map_err(FxError::Store)?;
    Ok(fresh)
}

/// The spread a quote earns against `mid` (QUOTE per BASE) in QUOTE minor units, truncated
/// toward zero: what the client pays above the mid on a buy, receives below it on a sell.
fn spread_minor(q: &QuoteRow, mid: Decimal) -> Option<i64> {
    let (base, quote_ccy) = q.pair.split_once('/')?;
    let scale = |cur: &str| money::exponent(cur).map(|e| Decimal::from(10u64.pow(e)));
    let at_mid =
        Decimal::from(q.amount_minor).checked_div(scale(base)?)?.checked_mul(mid)?.checked_mul(scale(quote_ccy)?)?;
    let spread = match q.side {
        "sell" => at_mid - Decimal::from(q.quote_amount_minor),
        _ => Decimal::from(q.quote_amount_minor) - at_mid,
    };
    spread.trunc().to_i64()
}

/// The fill of a payout's quote, made when the payout settles: the locked rate applies (the
/// payout paid exactly the quoted sats) and the spread is counted against the quote's own mid
/// (its rate without the markup).
pub fn payout_fill(q: &QuoteRow) -> Option<FillRow> {
    let locked: Decimal = q.rate.parse().ok()?;
    let factor = Decimal::from(q.markup_bps).checked_div(Decimal::from(10_000))?;
    let mid = match q.side {
        "sell" => locked.checked_div(Decimal::ONE - factor)?,
        _ => locked.checked_div(Decimal::ONE + factor)?,
    };
    Some(FillRow {
        fx_entry_id: crate::secret::sortable_id("fx_"),
        quote_id: q.quote_id.clone(),
        api_key_id: q.api_key_id.clone(),
        pair: q.pair.clone(),
        side: q.side,
        rate: q.rate.clone(),
        mid_at_fill: mid.normalize().to_string(),
        amount_minor: q.amount_minor,
        quote_amount_minor: q.quote_amount_minor,
        amount_sat: q.amount_sat,
        spread_minor: spread_minor(q, mid)?,
    })
}

/// `part / whole` in basis points, rounded up.
fn bps(part: Decimal, whole: Decimal) -> u64 {
    if whole <= Decimal::ZERO {
        return u64::MAX;
    }
    (part * Decimal::from(10_000) / whole).ceil().to_u64().unwrap_or(u64::MAX)
}
