//! The rows the reconciliation reads beside the payments: each ledger entry with what it moved on
//! the two treasury accounts, the channel movements with their times, and the invoices (their
//! payment hashes, on-chain receipts and locked fiat amounts).

use std::collections::HashMap;

use crate::store::{Store, StoreError};

/// One ledger entry, reduced to what it moved on the treasury accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its unique reference (`pay:<id>:settle`, `wallet:<txid>`, `ln:recv:<id>`, …).
    pub reference: String,
    /// The payout it belongs to, if any.
    pub payment_id: Option<String>,
    /// When it was posted, unix seconds.
    pub created_at: u64,
    /// Its postings on `treasury:onchain`, msat.
    pub onchain_msat: i64,
    /// Its postings on `treasury:lightning`, msat.
    pub lightning_msat: i64,
    /// Its postings on `receipts:on_us` (an invoice of ours paid by a payout of ours), msat.
    pub on_us_msat: i64,
    /// How many postings it has (0: the entry is there, its amounts are not).
    pub postings: u32,
}

/// One channel movement (open, splice, close) as the node's events recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementRow {
    /// `open:<channel>`, `splice:<txid>` or `close:<channel>`.
    pub id: String,
    /// `open`, `splice` or `close`.
    pub kind: String,
    /// `pending` or `settled`.
    pub state: String,
    /// The on-chain cost its settlement booked (the first of a settlement carries it).
    pub fee_msat: Option<i64>,
    /// When the node's event was recorded.
    pub created_at: u64,
}

/// What the report needs of one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRow {
    /// `inv_…`.
    pub invoice_id: String,
    /// Its currency (`SAT`/`BTC` invoices carry no fiat value).
    pub currency: String,
    /// Its amount in that currency's minor units.
    pub amount_minor: u64,
    /// The sats it asks, locked at its quote.
    pub amount_sat: u64,
    /// Its BOLT11 payment hash.
    pub payment_hash: Option<String>,
    /// `new`, `processing`, `paid`, `underpaid` or `expired`.
    pub status: String,
    /// What it counted as received, msat.
    pub received_msat: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// On-chain receipts not yet both booked and counted (on their way to the confirmations
    /// its speed asks).
    pub receipts_on_their_way: u32,
}

/// The invoices, by id, and their on-chain receipts' invoice by outpoint.
pub type Invoices = (HashMap<String, InvoiceRow>, HashMap<String, String>);

impl Store {
    /// Every ledger entry but the FX fills (which move no bitcoin), oldest first.
    pub fn recon_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare(
            "SELECT e.reference, e.payment_id, e.created_at,
                 COALESCE(SUM(CASE WHEN p.account = 'treasury:onchain' AND p.currency = 'BTC' THEN p.amount END), 0),
                 COALESCE(SUM(CASE WHEN p.account = 'treasury:lightning' AND p.currency = 'BTC' THEN p.amount END), 0),
                 COUNT(p.entry_id),
                 COALESCE(SUM(CASE WHEN p.account = 'receipts:on_us' AND p.currency = 'BTC' THEN p.amount END), 0)
             FROM ledger_entries e LEFT JOIN ledger_postings p ON p.entry_id = e.id
             WHERE e.reference NOT LIKE 'fx:%' GROUP BY e.id ORDER BY e.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Entry {
                reference: r.get(0)?,
                payment_id: r.get(1)?,
                created_at: r.get::<_, i64>(2)? as u64,
                onchain_msat: r.get(3)?,
                lightning_msat: r.get(4)?,
                postings: r.get::<_, i64>(5)? as u32,
                on_us_msat: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every channel movement, oldest first.
    pub fn recon_movements(&self) -> Result<Vec<MovementRow>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare("SELECT id, kind, state, fee_msat, created_at FROM ln_movements ORDER BY created_at, seq")?;
        let rows = stmt.query_map([], |r| {
            Ok(MovementRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                state: r.get(2)?,
                fee_msat: r.get(3)?,
                created_at: r.get::<_, i64>(4)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every invoice, and the invoice each on-chain receipt (outpoint) paid — and each `on_us`
    /// payout of ours paid (`on_us:<payment_id>`).
    pub fn recon_invoices(&self) -> Result<Invoices, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare(
            "SELECT i.invoice_id, i.currency, i.amount_minor, i.amount_sat, i.payment_hash, i.status,
                 i.received_msat, i.created_at, (SELECT COUNT(*) FROM invoice_receipts r
                 WHERE r.invoice_id = i.invoice_id AND (r.booked = 0 OR r.counted = 0))
             FROM invoices i ORDER BY i.invoice_id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(InvoiceRow {
                invoice_id: r.get(0)?,
                currency: r.get(1)?,
                amount_minor: r.get::<_, i64>(2)? as u64,
                amount_sat: r.get::<_, i64>(3)? as u64,
                payment_hash: r.get(4)?,
                status: r.get(5)?,
                received_msat: r.get::<_, i64>(6)? as u64,
                created_at: r.get::<_, i64>(7)? as u64,
                receipts_on_their_way: r.get::<_, i64>(8)? as u32,
            })
        })?;
        let invoices = rows.map(|r| r.map(|i| (i.invoice_id.clone(), i))).collect::<Result<_, _>>()?;
        // On-chain receipts by outpoint; our own payouts to an invoice (`on_us`) as `on_us:<payment_id>`.
        let mut stmt = conn.prepare(
            "SELECT outpoint, invoice_id FROM invoice_receipts
             UNION ALL
             SELECT 'on_us:' || p.payment_id, i.invoice_id FROM payments p JOIN invoices i
                 ON i.payment_hash = p.rail_ref OR i.address = p.destination
             WHERE p.rail = 'on_us'",
        )?;
        let receipts = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok((invoices, receipts))
    }
}
