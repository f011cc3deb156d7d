//! Invoices: what a customer is asked to pay — a fiat or bitcoin amount, locked in sats at an FX
//! quote for the invoice's life, payable to a fresh treasury address or a BOLT11 invoice of the
//! node — and what was received against it. Knows nothing of HTTP; takes the store and the FX
//! objects it uses.

pub mod onchain;
pub mod receipts;
pub mod record;
pub mod refund;
pub mod state;

use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::config::FxConfig;
use crate::fx::money::Side;
use crate::fx::{self, FxError, QuoteRequest, RateCache};
use crate::ledger::LedgerError;
use crate::store::{Store, StoreError};

/// The most an invoice may ask for: every bitcoin there will be (21 million), in sats.
pub const MAX_AMOUNT_SAT: u64 = 21_000_000 * 100_000_000;
/// The longest life an invoice may ask for (30 days).
pub const MAX_EXPIRY_SECS: u64 = 30 * 24 * 3600;
/// The shortest life an invoice may ask for.
pub const MIN_EXPIRY_SECS: u64 = 10;
/// An invoice's life when the request names none.
pub const DEFAULT_EXPIRY_SECS: u64 = 3600;

/// How many confirmations an on-chain payment needs (BTCPay's speed policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// 0 confirmations unless the transaction signals RBF.
    High,
    /// 1 confirmation.
    Medium,
    /// 6 confirmations.
    Low,
}

impl Speed {
    /// Parses `high`, `medium` or `low`.
    pub fn parse(text: &str) -> Option<Speed> {
        match text {
            "high" => Some(Speed::High),
            "medium" => Some(Speed::Medium),
            "low" => Some(Speed::Low),
            _ => None,
        }
    }

    /// The speed's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Speed::High => "high",
            Speed::Medium => "medium",
            Speed::Low => "low",
        }
    }
}

/// An invoice request, as parsed at the edge.
#[derive(Debug, Clone)]
pub struct NewInvoice {
    /// `EUR`, `USD`, … or `BTC` / `SAT` (both counted in sats).
    pub currency: String,
    /// The amount in the currency's minor units (sats for `BTC` / `SAT`).
    pub amount_minor: u64,
    /// Shown to the payer (in the BOLT11 invoice too).
    pub description: String,
    /// Seconds until the invoice expires.
    pub expiry_secs: u64,
    /// The merchant's own data, kept and shown back as it came.
    pub metadata: Option<Value>,
    /// The on-chain confirmation policy.
    pub speed: Speed,
}

/// An invoice priced in sats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Priced {
    /// What the payer pays.
    pub amount_sat: u64,
    /// The quote that locked the rate (fiat invoices).
    pub fx_quote_id: Option<String>,
    /// Sats per one unit of the currency, as the quote showed it (fiat invoices).
    pub rate: Option<String>,
}

/// Why an invoice was not made. Each has a stable code.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    /// The fiat amount could not be priced.
    #[error(transparent)]
    Fx(#[from] FxError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger refused an entry.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<crate::store::sql::Error> for InvoiceError {
    fn from(e: crate::store::sql::Error) -> Self {
        InvoiceError::Store(StoreError::Sql(e))
    }
}

/// Prices `req` in sats: a bitcoin amount as it is, a fiat amount through a fresh quote of
/// `<CUR>/BTC` on the buy side (the payer buys the fiat value with bitcoin: the markup is on the
/// gateway's side, the payer pays at least the mid-rate's sats).
pub fn price(
    (config, cache, store): (&FxConfig, &RateCache, &Store),
    key_id: &str,
    req: &NewInvoice,
    now: u64,
) -> Result<Priced, InvoiceError> {
    if req.currency == "BTC" || req.currency == "SAT" {
        return Ok(Priced { amount_sat: req.amount_minor, fx_quote_id: None, rate: None });
    }
    let q = QuoteRequest {
        base: req.currency.clone(),
        quote: "BTC".into(),
        side: Side::Buy,
        amount_minor: req.amount_minor,
    };
    let quote = fx::quote(config, cache, store, key_id, &q, now, "api")?;
    Ok(Priced { amount_sat: quote.amount_sat, fx_quote_id: Some(quote.quote_id), rate: Some(quote.rate.to_string()) })
}

/// The BIP21 URI of an invoice: one QR for both rails.
pub fn bip21(address: &str, amount_sat: u64, bolt11: Option<&str>) -> String {
    let btc = Decimal::new(i64::try_from(amount_sat).unwrap_or(i64::MAX), 8).normalize();
    match bolt11 {
        Some(b) => format!("bitcoin:{address}?amount={btc}&lightning={b}"),
        None => format!("bitcoin:{address}?amount={btc}"),
    }
}

/// How an amount received compares with the amount asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Within the tolerance.
    Exact,
    /// Less than asked, beyond the tolerance.
    Underpaid,
    /// More than asked, beyond the tolerance.
    Overpaid,
}

/// Judges `received_msat` against `amount_sat`, `tolerance_bps` either way (`[invoices]`).
pub fn judge(amount_sat: u64, received_msat: u64, tolerance_bps: u32) -> Judgement {
    let asked = u128::from(amount_sat) * 1_000;
    let slack = asked * u128::from(tolerance_bps) / 10_000;
    let got = u128::from(received_msat);
    if got + slack < asked {
        Judgement::Underpaid
    } else if got > asked + slack {
        Judgement::Overpaid
    } else {
        Judgement::Exact
    }
}

/// The invoice's status, exception and events once `received_msat` arrived in all.
pub fn outcome(
    amount_sat: u64,
    received_msat: u64,
    tolerance_bps: u32,
) -> (&'static str, Option<&'static str>, Vec<&'static str>) {
    match judge(amount_sat, received_msat, tolerance_bps) {
        Judgement::Exact => ("paid", None, vec!["invoice.paid"]),
        Judgement::Overpaid => ("paid", Some("overpaid"), vec!["invoice.paid", "invoice.overpaid"]),
        Judgement::Underpaid => ("underpaid", Some("underpaid"), vec!["invoice.underpaid"]),
    }
}

/// Records a Lightning payment the node received, if it pays one of the invoices: the invoice's
/// amount and state, its ledger entry (`ln:recv:<payment_id>`, the reference the rail's import
/// would use: never booked twice) and its events, in one transaction. Returns whether it paid
/// an invoice now (false for a payment that is no invoice's, or already counted).
pub fn lightning_received(
    (store, tolerance_bps): (&Store, u32),
    payment_hash: &str,
    payment_id: &str,
    amount_msat: u64,
    now: u64,
) -> Result<bool, InvoiceError> {
    let Some(inv) = store.invoice_by_hash(payment_hash)? else { return Ok(false) };
    let paid = store.invoice_receive_lightning(&inv.invoice_id, payment_id, (amount_msat, tolerance_bps), now)?;
    if paid {
        tracing::info!(invoice_id = %inv.invoice_id, amount_msat, "invoice paid over lightning");
    }
    Ok(paid)
}

/// What `received_msat` is worth in the invoice's currency at its locked rate (minor units,
/// rounded down): `amount_minor × received / asked`.
pub fn fiat_value(amount_minor: u64, amount_sat: u64, received_msat: u64) -> u64 {
    let asked = u128::from(amount_sat) * 1_000;
    if asked == 0 {
        return 0;
    }
    u64::try_from(u128::from(amount_minor) * u128::from(received_msat) / asked).unwrap_or(u64::MAX)
}

/// An invoice as the API and the webhooks show it.
pub fn view(inv: &record::Invoice) -> Value {
    let metadata = inv.metadata.as_deref().and_then(|m| serde_json::from_str::<Value>(m).ok());
    let asked = inv.amount_sat.saturating_mul(1_000);
    json!({
        "invoice_id": inv.invoice_id,
        "status": state::public_status(&inv.status, inv.paid_late_msat),
        "exception": inv.exception,
        "amount": { "minor_units": inv.amount_minor, "currency": inv.currency },
        "amount_sat": inv.amount_sat,
        "fx_quote_id": inv.fx_quote_id,
        "rate": inv.rate,
        "description": inv.description,
        "metadata": metadata,
        "speed": inv.speed,
        "address": inv.address,
        "bolt11": inv.bolt11,
        "payment_hash": inv.payment_hash,
        "bip21": bip21(&inv.address, inv.amount_sat, inv.bolt11.as_deref()),
        "received_msat": inv.received_msat,
        "received_minor_units": fiat_value(inv.amount_minor, inv.amount_sat, inv.received_msat),
        "due_msat": asked.saturating_sub(inv.received_msat),
        "overpaid_msat": inv.received_msat.saturating_sub(asked),
        "paid_late_msat": inv.paid_late_msat,
        "paid_via": inv.paid_via,
        "expires_at": crate::rfc3339(inv.expires_at),
        "created_at": crate::rfc3339(inv.created_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_judged_against_the_tolerance() {
        assert_eq!(judge(100_000, 100_000_000, 10), Judgement::Exact);
        assert_eq!(judge(100_000, 99_900_000, 10), Judgement::Exact, "10 bps short is within");
        assert_eq!(judge(100_000, 99_899_999, 10), Judgement::Underpaid);
        assert_eq!(judge(100_000, 100_100_001, 10), Judgement::Overpaid);
        assert_eq!(judge(100_000, 99_999_999, 0), Judgement::Underpaid, "no tolerance: one msat short");
        assert_eq!(outcome(100_000, 150_000_000, 10).1, Some("overpaid"));
        assert_eq!(outcome(100_000, 1_000, 10).0, "underpaid");
        assert_eq!(fiat_value(1_000, 11_823, 11_823_000), 1_000);
        assert_eq!(fiat_value(1_000, 11_823, 5_911_500), 500);
    }

    #[test]
    fn bip21_carries_both_rails() {
        assert_eq!(bip21("bcrt1qx", 150_000, None), "bitcoin:bcrt1qx?amount=0.0015");
        assert_eq!(bip21("bcrt1qx", 100_000_000, Some("lnbcrt1")), "bitcoin:bcrt1qx?amount=1&lightning=lnbcrt1");
    }
}
