//! Invoices as persisted, and what was received against them: the row, its ledger entry and its
//! outbox events written in one transaction.

use crate::store::sql::{params, Connection, OptionalExtension, Row};

use super::state::{credit, Counts, Next};
use super::{InvoiceError, NewInvoice, Priced};
use crate::ledger::{self, Posting};
use crate::store::{Store, StoreError};

/// An invoice as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// `inv_…`, sortable by creation.
    pub invoice_id: String,
    /// The API key that created it (and alone sees it).
    pub api_key_id: String,
    /// `new`, `processing`, `paid`, `underpaid` or `expired` (shown as `paid_late` once it
    /// received after it expired).
    pub status: String,
    /// `underpaid` / `overpaid`, if the amount received missed the amount asked.
    pub exception: Option<String>,
    /// The invoice's currency (`BTC` / `SAT` amounts are sats).
    pub currency: String,
    /// Its amount in the currency's minor units.
    pub amount_minor: u64,
    /// What the payer pays, sats.
    pub amount_sat: u64,
    /// The quote that locked the rate (fiat invoices).
    pub fx_quote_id: Option<String>,
    /// The locked rate (fiat invoices).
    pub rate: Option<String>,
    /// Shown to the payer.
    pub description: String,
    /// The merchant's data, JSON.
    pub metadata: Option<String>,
    /// `high`, `medium` or `low`.
    pub speed: String,
    /// The treasury address for an on-chain payment.
    pub address: String,
    /// The node's BOLT11 invoice, when Lightning ran.
    pub bolt11: Option<String>,
    /// The BOLT11 invoice's payment hash.
    pub payment_hash: Option<String>,
    /// Received so far, msat.
    pub received_msat: u64,
    /// What of it was credited after the invoice expired, msat.
    pub paid_late_msat: u64,
    /// `lightning`, `onchain` or `on_us`, once paid.
    pub paid_via: Option<String>,
    /// Unix seconds.
    pub expires_at: u64,
    /// Unix seconds.
    pub created_at: u64,
}

impl Invoice {
    /// What its next state depends on.
    pub fn counts(&self) -> Counts<'_> {
        Counts {
            status: &self.status,
            amount_sat: self.amount_sat,
            received_msat: self.received_msat,
            paid_late_msat: self.paid_late_msat,
        }
    }
}

const COLUMNS: &str = "invoice_id, api_key_id, status, exception, currency, amount_minor, amount_sat, fx_quote_id,
    rate, description, metadata, speed, address, bolt11, payment_hash, received_msat, paid_via, expires_at, created_at,
    paid_late_msat";

fn invoice_row(r: &Row<'_>) -> crate::store::sql::Result<Invoice> {
    Ok(Invoice {
        invoice_id: r.get(0)?,
        api_key_id: r.get(1)?,
        status: r.get(2)?,
        exception: r.get(3)?,
        currency: r.get(4)?,
        amount_minor: r.get::<_, i64>(5)? as u64,
        amount_sat: r.get::<_, i64>(6)? as u64,
        fx_quote_id: r.get(7)?,
        rate: r.get(8)?,
        description: r.get(9)?,
        metadata: r.get(10)?,
        speed: r.get(11)?,
        address: r.get(12)?,
        bolt11: r.get(13)?,
        payment_hash: r.get(14)?,
        received_msat: r.get::<_, i64>(15)? as u64,
        paid_via: r.get(16)?,
        expires_at: r.get::<_, i64>(17)? as u64,
        created_at: r.get::<_, i64>(18)? as u64,
        paid_late_msat: r.get::<_, i64>(19)? as u64,
    })
}

/// Builds the row of a new invoice from its request, price and payment details.
pub fn new_row(
    key_id: &str,
    req: &NewInvoice,
    priced: Priced,
    address: String,
    lightning: Option<(String, String)>,
    now: u64,
) -> Invoice {
    let (bolt11, payment_hash) = lightning.map_or((None, None), |(b, h)| (Some(b), Some(h)));
    Invoice {
        invoice_id: crate::secret::sortable_id("inv_"),
        api_key_id: key_id.to_owned(),
        status: "new".into(),
        exception: None,
        currency: req.currency.clone(),
        amount_minor: req.amount_minor,
        amount_sat: priced.amount_sat,
        fx_quote_id: priced.fx_quote_id,
        rate: priced.rate,
        description: req.description.clone(),
        metadata: req.metadata.as_ref().map(|m| m.to_string()),
        speed: req.speed.as_str().into(),
        address,
        bolt11,
        payment_hash,
        received_msat: 0,
        paid_late_msat: 0,
        paid_via: None,
        expires_at: now + req.expiry_secs,
        created_at: now,
    }
}

/// The invoice `invoice_id` as the transaction `tx` sees it.
pub(super) fn load(tx: &Connection, invoice_id: &str) -> crate::store::sql::Result<Option<Invoice>> {
    let sql = format!("SELECT {COLUMNS} FROM invoices WHERE invoice_id = ?1");
    tx.prepare_cached(&sql)?.query_row([invoice_id], invoice_row).optional()
}

/// Sets the invoice's status, exception and amounts as `next` says (`via` the rail that paid, if
/// one did), and queues `next`'s events with the invoice as it is now; returns it.
pub(super) fn apply(
    tx: &Connection,
    inv: &Invoice,
    next: &Next,
    via: Option<&str>,
    now: u64,
) -> crate::store::sql::Result<Invoice> {
    let via = via.map(str::to_owned).or_else(|| inv.paid_via.clone());
    let Next { status, exception, received_msat, paid_late_msat, ref events } = *next;
    tx.execute(
        "UPDATE invoices SET status = ?2, exception = ?3, received_msat = ?4, paid_via = ?5,
             paid_at = CASE WHEN ?2 = 'paid' THEN COALESCE(paid_at, ?6) ELSE paid_at END, updated_at = ?6,
             paid_late_msat = ?7
         WHERE invoice_id = ?1",
        params![inv.invoice_id, status, exception, received_msat as i64, via, now as i64, paid_late_msat as i64],
    )?;
    let after = Invoice {
        status: status.into(),
        exception: exception.map(str::to_owned),
        received_msat,
        paid_late_msat,
        paid_via: via,
        ..inv.clone()
    };
    for event in events {
        outbox(tx, &after, event, now)?;
    }
    Ok(after)
}

fn outbox(tx: &Connection, inv: &Invoice, event_type: &str, now: u64) -> crate::store::sql::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO outbox (event_id, event_type, payment_id, api_key_id, payload, created_at)
         VALUES (?1, ?2, NULL, ?3, ?4, ?5)",
    )?
    .execute(params![
        crate::secret::sortable_id("evt_"),
        event_type,
        inv.api_key_id,
        super::view(inv).to_string(),
        now as i64
    ])
}

impl Store {
    /// The invoice whose amount quote `quote_id` locks, if any (such a quote is never executed).
    pub fn invoice_of_quote(&self, quote_id: &str) -> Result<Option<String>, StoreError> {
        let conn = self.read();
        let invoice = conn
            .prepare_cached("SELECT invoice_id FROM invoices WHERE fx_quote_id = ?1")?
            .query_row([quote_id], |r| r.get(0))
            .optional()?;
        Ok(invoice)
    }

    /// Writes a new invoice and the idempotent answer of the request that made it, together.
    pub fn record_invoice(&self, inv: &Invoice, idem: (&str, &str), answer: &[u8], now: u64) -> Result<(), StoreError> {
        let written = (|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            tx.execute(
                &format!(
                    "INSERT INTO invoices ({COLUMNS}, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                     ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?19)"
                ),
                params![
                    inv.invoice_id,
                    inv.api_key_id,
                    inv.status,
                    inv.exception,
                    inv.currency,
                    inv.amount_minor as i64,
                    inv.amount_sat as i64,
                    inv.fx_quote_id,
                    inv.rate,
                    inv.description,
                    inv.metadata,
                    inv.speed,
                    inv.address,
                    inv.bolt11,
                    inv.payment_hash,
                    inv.received_msat as i64,
                    inv.paid_via,
                    inv.expires_at as i64,
                    inv.created_at as i64,
                    inv.paid_late_msat as i64
                ],
            )?;
            self.idempotency_answer(&tx, idem, 201, answer, now)?;
            tx.commit()?;
            Ok(())
        })();
        self.idempotency_release(idem.0, idem.1);
        written
    }

    /// The invoice `invoice_id`, if any.
    pub fn invoice(&self, invoice_id: &str) -> Result<Option<Invoice>, StoreError> {
        let conn = self.read();
        let sql = format!("SELECT {COLUMNS} FROM invoices WHERE invoice_id = ?1");
        let row = conn.prepare_cached(&sql)?.query_row([invoice_id], invoice_row).optional()?;
        Ok(row)
    }

    /// The invoice whose BOLT11 invoice has `payment_hash`, if any.
    pub fn invoice_by_hash(&self, payment_hash: &str) -> Result<Option<Invoice>, StoreError> {
        let conn = self.read();
        let sql = format!("SELECT {COLUMNS} FROM invoices WHERE payment_hash = ?1");
        let row = conn.prepare_cached(&sql)?.query_row([payment_hash], invoice_row).optional()?;
        Ok(row)
    }

    /// Every invoice's payment hash: the Lightning payments that are invoices' and not the
    /// rail's to import.
    pub fn invoice_payment_hashes(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached("SELECT payment_hash FROM invoices WHERE payment_hash IS NOT NULL")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A key's invoices, newest first, before the cursor, optionally of one status as the API
    /// shows it (`paid_late`: expired with a late payment; `expired`: without).
    pub fn invoices(
        &self,
        api_key_id: &str,
        status: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Invoice>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM invoices WHERE api_key_id = ?1
             AND (CAST(?2 AS TEXT) IS NULL OR (?2 = 'paid_late' AND status = 'expired' AND paid_late_msat > 0)
                  OR (?2 = 'expired' AND status = 'expired' AND paid_late_msat = 0)
                  OR (?2 NOT IN ('expired', 'paid_late') AND status = ?2))
             AND (CAST(?3 AS TEXT) IS NULL OR invoice_id < ?3) ORDER BY invoice_id DESC LIMIT ?4"
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![api_key_id, status, before, limit as i64], invoice_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts a Lightning payment against `invoice_id`: its amount and state, the ledger entry
    /// (`treasury:lightning` ↔ `receivable:<key>`) and the events, once per node payment.
    pub fn invoice_receive_lightning(
        &self,
        invoice_id: &str,
        payment_id: &str,
        (amount_msat, tolerance_bps): (u64, u32),
        now: u64,
    ) -> Result<bool, InvoiceError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(inv) = load(&tx, invoice_id)? else { return Ok(false) };
        let msat = i64::try_from(amount_msat).unwrap_or(i64::MAX);
        let account = format!("receivable:{}", inv.api_key_id);
        let postings = [Posting::btc("treasury:lightning", msat), Posting::btc(account, -msat)];
        if !ledger::post(&tx, "invoice", None, &format!("ln:recv:{payment_id}"), &postings, now)? {
            return Ok(false);
        }
        apply(&tx, &inv, &credit(inv.counts(), amount_msat, tolerance_bps), Some("lightning"), now)?;
        tx.commit()?;
        Ok(true)
    }
}
