//! What a fiat-priced payout pays in sats: the client's own live quote (`fx_quote_id`, the
//! seed's flow: quote first, then route and submit with it) or a fresh one. A payout converts
//! the fiat amount into bitcoin for the payee, so it is priced on the sell side of `<FIAT>/BTC`:
//! the markup moves against the client and the payee receives fewer sats than the mid-rate
//! gives, never more.

use crate::config::FxConfig;
use crate::fx::money::Side;
use crate::fx::quotes::QuoteRow;
use crate::fx::{self, FxError, QuoteRequest, RateCache};
use crate::store::{Store, StoreError};

/// Why the client's quote cannot price this payout. Each has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum QuoteUseError {
    /// No such quote for this API key.
    #[error("no quote {0} for this API key")]
    NotFound(String),
    /// Past its expiry.
    #[error("quote {0} has expired; ask for a new one")]
    Expired(String),
    /// Another pair, amount or currency than the payout's.
    #[error("{0}")]
    Mismatch(String),
    /// A buy-side quote: a payout converts on the sell side.
    #[error(
        "quote {0} is a buy quote; a payout converts fiat into bitcoin for the payee: ask GET /v1/fx/quote with side=sell"
    )]
    WrongSide(String),
    /// Already filled through `/v1/fx/execute`.
    #[error("quote {0} is already filled")]
    AlreadyFilled(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QuoteUseError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            QuoteUseError::NotFound(_) => "quote_not_found",
            QuoteUseError::Expired(_) => "quote_expired",
            QuoteUseError::Mismatch(_) => "quote_mismatch",
            QuoteUseError::WrongSide(_) => "quote_side_mismatch",
            QuoteUseError::AlreadyFilled(_) => "quote_already_filled",
            QuoteUseError::Store(_) => "internal",
        }
    }
}

/// The sats `amount_minor` of `currency` pays out, and the quote that priced it: `given` when
/// the client named one (it must be this key's, live, unfilled, a sell quote of
/// `<currency>/BTC` for exactly this amount), else a fresh sell-side quote.
pub(crate) fn price(
    (config, cache, store): (&FxConfig, &RateCache, &Store),
    key_id: &str,
    currency: &str,
    amount_minor: u64,
    given: Option<&str>,
    now: u64,
) -> Result<(u64, String), PriceError> {
    let Some(quote_id) = given else {
        let req = QuoteRequest { base: currency.to_owned(), quote: "BTC".into(), side: Side::Sell, amount_minor };
        let q = fx::quote(config, cache, store, key_id, &req, now, "api")?;
        return Ok((q.amount_sat, q.quote_id));
    };
    let q = store.quote(quote_id)?.filter(|q| q.api_key_id == key_id);
    let q = q.ok_or_else(|| QuoteUseError::NotFound(quote_id.to_owned()))?;
    check(&q, currency, amount_minor, now)?;
    if store.quote_filled(&q.quote_id)? {
        return Err(QuoteUseError::AlreadyFilled(q.quote_id).into());
    }
    Ok((q.amount_sat, q.quote_id))
}

fn check(q: &QuoteRow, currency: &str, amount_minor: u64, now: u64) -> Result<(), QuoteUseError> {
    let pair = format!("{currency}/BTC");
    if q.pair != pair {
        return Err(QuoteUseError::Mismatch(format!(
            "quote {} is for {}, but this payout needs {pair} (base = the payout's currency, quote = BTC)",
            q.quote_id, q.pair
        )));
    }
    if q.amount_minor != amount_minor {
        return Err(QuoteUseError::Mismatch(format!(
            "quote {} is for {} minor units, the payout for {amount_minor}",
            q.quote_id, q.amount_minor
        )));
    }
    if q.expires_at <= now {
        return Err(QuoteUseError::Expired(q.quote_id.clone()));
    }
    if q.side != "sell" {
        return Err(QuoteUseError::WrongSide(q.quote_id.clone()));
    }
    Ok(())
}

/// Why a fiat amount could not be priced.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// A fresh quote could not be made.
    #[error(transparent)]
    Fx(#[from] FxError),
    /// The client's quote does not fit.
    #[error(transparent)]
    Quote(#[from] QuoteUseError),
}

impl From<StoreError> for PriceError {
    fn from(e: StoreError) -> Self {
        PriceError::Quote(QuoteUseError::Store(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(side: &'static str) -> QuoteRow {
        QuoteRow {
            quote_id: "q_1".into(),
            api_key_id: "k".into(),
            pair: "EUR/BTC".into(),
            side,
            rate: "0.0000117".into(),
            markup_bps: 50,
            amount_minor: 1_000,
            quote_amount_minor: 11_706,
            amount_sat: 11_706,
            expires_at: 100,
            origin: "api",
        }
    }

    #[test]
    fn the_clients_quote_must_fit_the_payout() {
        assert!(check(&row("sell"), "EUR", 1_000, 99).is_ok());
        assert_eq!(check(&row("sell"), "USD", 1_000, 99).unwrap_err().code(), "quote_mismatch");
        assert_eq!(check(&row("sell"), "EUR", 999, 99).unwrap_err().code(), "quote_mismatch");
        assert_eq!(check(&row("sell"), "EUR", 1_000, 100).unwrap_err().code(), "quote_expired");
        assert_eq!(check(&row("buy"), "EUR", 1_000, 99).unwrap_err().code(), "quote_side_mismatch");
    }
}
