//! What payouts do to invoices, inside the payout's own transaction, keyed by its payment id so
//! that nothing is booked twice: a refund (a payout recorded in `invoice_refunds` with the
//! transaction that accepts it) is capped at what its invoice received less the refunds not
//! failed, and once it settles moves its amount from `payouts:<rail>` back to the key's
//! receivable (`invoice:refund:<payment_id>`); an `on_us` payout that pays one of the gateway's
//! invoices (its BOLT11 or its address) credits it (`invoice:on_us:<payment_id>`: `receipts:on_us`
//! ↔ `receivable:<key>`), with its state and `invoice.*` events.

use crate::store::sql::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use super::fiat_value;
use super::record::{apply, load, Invoice};
use super::state::credit;
use crate::ledger::{self, LedgerError, Posting};
use crate::store::{Store, StoreError};

/// How much a refund gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAmount {
    /// Every sat the invoice received and no refund has given back yet: its fiat value at the
    /// invoice's own locked rate (an overpayment included).
    RateThen,
    /// The fiat value of what is left to refund (at the invoice's rate), paid at a fresh
    /// sell-side quote now. Refused when that needs more sats than are left.
    CurrentRate,
    /// An explicit amount: sats (`SAT` / `BTC`), or fiat at a fresh sell-side quote now.
    Exact {
        /// Minor units of `currency`.
        minor_units: u64,
        /// `SAT`, `BTC` or a fiat currency.
        currency: String,
    },
}

impl RefundAmount {
    /// The mode as stored: `rate_then`, `current_rate` or `amount`.
    pub fn mode(&self) -> &'static str {
        match self {
            RefundAmount::RateThen => "rate_then",
            RefundAmount::CurrentRate => "current_rate",
            RefundAmount::Exact { .. } => "amount",
        }
    }

    /// What to route for invoice `inv` with `left_msat` still refundable: `(minor units,
    /// currency)` — sats for `rate_then` (and for a bitcoin-priced invoice at `current_rate`),
    /// the invoice's fiat for `current_rate`.
    pub fn to_route(&self, inv: &Invoice, left_msat: u64) -> (u64, String) {
        let bitcoin = matches!(inv.currency.as_str(), "SAT" | "BTC");
        match self {
            RefundAmount::RateThen => (left_msat / 1_000, "SAT".into()),
            RefundAmount::CurrentRate if bitcoin => (left_msat / 1_000, "SAT".into()),
            RefundAmount::CurrentRate => {
                (fiat_value(inv.amount_minor, inv.amount_sat, left_msat), inv.currency.clone())
            }
            RefundAmount::Exact { minor_units, currency } => (*minor_units, currency.clone()),
        }
    }
}

/// What invoice `invoice_id` may still refund, msat, as transaction `conn` sees it: what it
/// received less its refunds not failed.
pub fn refundable_msat(conn: &Connection, invoice_id: &str) -> crate::store::sql::Result<u64> {
    let received: i64 = conn
        .prepare_cached("SELECT received_msat FROM invoices WHERE invoice_id = ?1")?
        .query_row([invoice_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let refunded: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(p.amount_msat), 0) FROM invoice_refunds r JOIN payments p USING (payment_id)
             WHERE r.invoice_id = ?1 AND p.state != 'failed'",
        )?
        .query_row([invoice_id], |r| r.get(0))?;
    Ok((received.max(0) as u64).saturating_sub(refunded.max(0) as u64))
}

/// Records payout `payment_id` as a refund of `invoice_id` (in the transaction that accepts it).
pub fn record(
    conn: &Connection,
    payment_id: &str,
    invoice_id: &str,
    mode: &str,
    now: u64,
) -> crate::store::sql::Result<()> {
    conn.prepare_cached(
        "INSERT INTO invoice_refunds (payment_id, invoice_id, mode, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![payment_id, invoice_id, mode, now as i64])?;
    Ok(())
}

/// A payout that reached a final state, as the invoices see it.
#[derive(Debug, Clone, Copy)]
pub struct FinalPayout<'a> {
    /// `pay_…`.
    pub payment_id: &'a str,
    /// Its rail's name.
    pub rail: &'a str,
    /// Settled (else failed).
    pub settled: bool,
    /// What the payee received, msat.
    pub amount_msat: u64,
    /// What the rail paid: an invoice, or an address.
    pub destination: &'a str,
    /// The rail's reference: the payment hash of a BOLT11 invoice, or the address of an `on_us`
    /// payment to an invoice's address.
    pub rail_ref: Option<&'a str>,
}

/// Books what a settled payout does to invoices, in its own transaction `tx`: credits the
/// gateway's invoice an `on_us` payout paid, and books a refund against its invoice.
pub fn payout_final(tx: &Connection, p: FinalPayout<'_>, tolerance_bps: u32, now: u64) -> Result<(), LedgerError> {
    if !p.settled {
        return Ok(());
    }
    if p.rail == "on_us" {
        credit_on_us(tx, p, tolerance_bps, now)?;
    }
    book_refund(tx, p, now)
}

/// The gateway's invoice an `on_us` payout pays: by the BOLT11 invoice's payment hash, else by
/// the address.
fn own_invoice(tx: &Connection, p: FinalPayout<'_>) -> crate::store::sql::Result<Option<Invoice>> {
    let by = |column: &str, value: &str| -> crate::store::sql::Result<Option<String>> {
        tx.prepare_cached(&format!("SELECT invoice_id FROM invoices WHERE {column} = ?1 ORDER BY invoice_id LIMIT 1"))?
            .query_row([value], |r| r.get(0))
            .optional()
    };
    let mut id = match p.rail_ref {
        Some(hash) => by("payment_hash", hash)?,
        None => None,
    };
    if id.is_none() {
        id = by("address", p.destination)?;
    }
    match id {
        Some(id) => load(tx, &id),
        None => Ok(None),
    }
}

fn credit_on_us(tx: &Connection, p: FinalPayout<'_>, tolerance_bps: u32, now: u64) -> Result<(), LedgerError> {
    let Some(inv) = own_invoice(tx, p)? else { return Ok(()) };
    let msat = i64::try_from(p.amount_msat).unwrap_or(i64::MAX);
    let postings =
        [Posting::btc("receipts:on_us", msat), Posting::btc(format!("receivable:{}", inv.api_key_id), -msat)];
    if !ledger::post(tx, "invoice", None, &format!("invoice:on_us:{}", p.payment_id), &postings, now)? {
        return Ok(());
    }
    apply(tx, &inv, &credit(inv.counts(), p.amount_msat, tolerance_bps), Some("on_us"), now)?;
    tracing::info!(invoice_id = %inv.invoice_id, payment_id = %p.payment_id, amount_msat = p.amount_msat,
        "invoice paid on_us");
    Ok(())
}

fn book_refund(tx: &Connection, p: FinalPayout<'_>, now: u64) -> Result<(), LedgerError> {
    let key: Option<String> = tx
        .prepare_cached(
            "SELECT i.api_key_id FROM invoice_refunds r JOIN invoices i USING (invoice_id) WHERE r.payment_id = ?1",
        )?
        .query_row([p.payment_id], |r| r.get(0))
        .optional()?;
    let Some(key) = key else { return Ok(()) };
    let msat = i64::try_from(p.amount_msat).unwrap_or(i64::MAX);
    let postings =
        [Posting::btc(format!("receivable:{key}"), msat), Posting::btc(format!("payouts:{}", p.rail), -msat)];
    ledger::post(tx, "invoice", None, &format!("invoice:refund:{}", p.payment_id), &postings, now)?;
    Ok(())
}

/// One refund of an invoice, as `GET /v1/invoices/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// The payout.
    pub payment_id: String,
    /// What the customer receives, msat.
    pub amount_msat: u64,
    /// The payout's client status (`SUBMITTED`, `PENDING`, `SETTLED`, `FAILED`), from its state.
    pub state: String,
    /// `rate_then`, `current_rate` or `amount`.
    pub mode: String,
    /// The payout's rail.
    pub rail: String,
}

impl Store {
    /// The refunds of `invoice_id`, oldest first.
    pub fn invoice_refunds(&self, invoice_id: &str) -> Result<Vec<Refund>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT r.payment_id, p.amount_msat, p.state, r.mode, p.rail FROM invoice_refunds r
             JOIN payments p USING (payment_id) WHERE r.invoice_id = ?1 ORDER BY r.payment_id",
        )?;
        let rows = stmt.query_map([invoice_id], |r| {
            Ok(Refund {
                payment_id: r.get(0)?,
                amount_msat: r.get::<_, i64>(1)? as u64,
                state: r.get(2)?,
                mode: r.get(3)?,
                rail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What `invoice_id` may still refund, msat.
    pub fn invoice_refundable_msat(&self, invoice_id: &str) -> Result<u64, StoreError> {
        Ok(refundable_msat(&self.read(), invoice_id)?)
    }

    /// The invoice whose address is `address`, if any (an `on_us` payout to it pays it).
    pub fn invoice_by_address(&self, address: &str) -> Result<Option<Invoice>, StoreError> {
        let id: Option<String> = self
            .read()
            .prepare_cached("SELECT invoice_id FROM invoices WHERE address = ?1 ORDER BY invoice_id LIMIT 1")?
            .query_row([address], |r| r.get(0))
            .optional()?;
        match id {
            Some(id) => self.invoice(&id),
            None => Ok(None),
        }
    }
}

/// The refunds of an invoice as the API shows them, with `refunded_sat` (what the refunds not
/// failed give back).
pub fn refunds_view(refunds: &[Refund]) -> (Value, u64) {
    let status = |state: &str| match state {
        "submitted" | "debited" => "SUBMITTED",
        "sending" | "sent" => "PENDING",
        "settled" => "SETTLED",
        _ => "FAILED",
    };
    let list: Vec<Value> = refunds
        .iter()
        .map(|r| {
            json!({"payment_id": r.payment_id, "amount_sat": r.amount_msat.div_ceil(1_000), "amount_msat": r.amount_msat,
                   "status": status(&r.state), "mode": r.mode, "rail": r.rail})
        })
        .collect();
    let refunded: u64 = refunds.iter().filter(|r| r.state != "failed").map(|r| r.amount_msat).sum();
    (Value::Array(list), refunded / 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice(currency: &str, amount_minor: u64, amount_sat: u64) -> Invoice {
        let req = super::super::NewInvoice {
            currency: currency.into(),
            amount_minor,
            description: String::new(),
            expiry_secs: 60,
            metadata: None,
            speed: super::super::Speed::Medium,
        };
        let priced = super::super::Priced { amount_sat, fx_quote_id: None, rate: None };
        super::super::record::new_row("key", &req, priced, "bcrt1q".into(), None, 1)
    }

    #[test]
    fn each_mode_routes_what_is_left() {
        let eur = invoice("EUR", 1_000, 11_824);
        assert_eq!(RefundAmount::RateThen.to_route(&eur, 11_824_000), (11_824, "SAT".into()));
        assert_eq!(RefundAmount::CurrentRate.to_route(&eur, 11_824_000), (1_000, "EUR".into()));
        assert_eq!(
            RefundAmount::CurrentRate.to_route(&eur, 5_912_000),
            (500, "EUR".into()),
            "half left: half the fiat"
        );
        let sat = invoice("SAT", 5_000, 5_000);
        assert_eq!(RefundAmount::CurrentRate.to_route(&sat, 5_000_999), (5_000, "SAT".into()));
        let exact = RefundAmount::Exact { minor_units: 300, currency: "EUR".into() };
        assert_eq!((exact.to_route(&eur, 1), exact.mode()), ((300, "EUR".into()), "amount"));
    }
}
