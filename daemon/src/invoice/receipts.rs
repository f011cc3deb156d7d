//! One on-chain payment to an invoice, followed through the chain's changes: booked once it
//! confirms (`treasury:onchain` ↔ `receivable:<key>`), counted toward the invoice once its
//! confirmations meet the invoice's speed; when a reorg takes its transaction out of the chain
//! (back to the mempool, or gone) the booking is reversed by an entry of its own and the count
//! taken back (`invoice.reorged`); mined again, it is booked afresh under a new reference, so the
//! ledger holds one booking net. Each change is one transaction with its ledger entries and
//! events, read afresh inside it: two watchers at once never book twice.

use std::collections::HashSet;

use crate::store::sql::{params, Connection, OptionalExtension};

use super::record::{apply, load, Invoice};
use super::state::{credit, debit, Next};
use super::InvoiceError;
use crate::ledger::{self, Posting};
use crate::store::{Store, StoreError};

/// What the chain shows of one output paying an invoice, or that it shows it no more.
#[derive(Debug, Clone)]
pub struct OnChain<'a> {
    /// `txid:vout`.
    pub outpoint: &'a str,
    /// The transaction.
    pub txid: &'a str,
    /// Value in sats.
    pub amount_sat: u64,
    /// Height of the confirming block, if confirmed.
    pub confirmation_height: Option<u32>,
    /// The transaction signals replaceability.
    pub signals_rbf: bool,
    /// Its confirmations meet the invoice's speed.
    pub counts: bool,
    /// The wallet still lists it (in a block or the mempool).
    pub present: bool,
}

/// A receipt as recorded.
struct Row {
    amount_sat: u64,
    booked: bool,
    bookings: u32,
    counted: bool,
    counted_late: bool,
}

fn row(tx: &Connection, outpoint: &str) -> crate::store::sql::Result<Option<(String, Row)>> {
    tx.prepare_cached(
        "SELECT invoice_id, amount_sat, booked, bookings, counted, counted_late FROM invoice_receipts
         WHERE outpoint = ?1",
    )?
    .query_row([outpoint], |r| {
        let row = Row {
            amount_sat: r.get::<_, i64>(1)? as u64,
            booked: r.get(2)?,
            bookings: r.get(3)?,
            counted: r.get(4)?,
            counted_late: r.get(5)?,
        };
        Ok((r.get(0)?, row))
    })
    .optional()
}

impl Store {
    /// Records what the watcher sees of one output paying `invoice_id`; true if anything changed.
    pub(super) fn invoice_receipt_seen(
        &self,
        invoice_id: &str,
        seen: &OnChain<'_>,
        tolerance_bps: u32,
        now: u64,
    ) -> Result<bool, InvoiceError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(inv) = load(&tx, invoice_id)? else { return Ok(false) };
        let fresh = tx.execute(
            "INSERT INTO invoice_receipts (outpoint, invoice_id, txid, amount_sat, confirmation_height, signals_rbf,
                 seen_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (outpoint) DO NOTHING",
            params![
                seen.outpoint,
                invoice_id,
                seen.txid,
                seen.amount_sat as i64,
                seen.confirmation_height,
                seen.signals_rbf,
                now as i64
            ],
        )? == 1;
        let Some((_, recorded)) = row(&tx, seen.outpoint)? else { return Ok(false) };
        let changed = settle(&tx, &inv, &recorded, seen, (true, tolerance_bps, now))?;
        tx.commit()?;
        Ok(fresh || changed)
    }

    /// Takes back what the receipt `outpoint` booked and counted: the wallet no longer lists its
    /// transaction (a reorg dropped it and it was replaced, or it left the mempool); `present`:
    /// the outpoints the wallet lists. True if anything changed.
    pub(super) fn invoice_receipt_gone(
        &self,
        outpoint: &str,
        present: &HashSet<&str>,
        tolerance_bps: u32,
        now: u64,
    ) -> Result<bool, InvoiceError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some((invoice_id, recorded)) = row(&tx, outpoint)? else { return Ok(false) };
        let Some(inv) = load(&tx, &invoice_id)? else { return Ok(false) };
        let pending = uncounted(&tx, &invoice_id)?.iter().any(|o| o != outpoint && present.contains(o.as_str()));
        let txid = outpoint.split_once(':').map_or(outpoint, |(t, _)| t);
        let gone = OnChain {
            outpoint,
            txid,
            amount_sat: recorded.amount_sat,
            confirmation_height: None,
            signals_rbf: false,
            counts: false,
            present: false,
        };
        let changed = settle(&tx, &inv, &recorded, &gone, (pending, tolerance_bps, now))?;
        tx.commit()?;
        Ok(changed)
    }

    /// The receipts whose leaving the chain or the mempool changes something (booked, counted,
    /// or keeping their invoice `processing`), of the invoices still open or seen since `since`.
    pub(super) fn invoice_receipts_live(&self, since: u64) -> Result<Vec<String>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT outpoint FROM invoice_receipts WHERE seen_at >= ?1 AND (booked = 1 OR counted = 1
                 OR invoice_id IN (SELECT invoice_id FROM invoices WHERE status = 'processing'))
             UNION SELECT r.outpoint FROM invoices i JOIN invoice_receipts r ON r.invoice_id = i.invoice_id
                 WHERE i.status IN ('new', 'processing', 'underpaid')
                 AND (r.booked = 1 OR r.counted = 1 OR i.status = 'processing')",
        )?;
        let rows = stmt.query_map([since as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Brings one receipt's booking and count in line with what the chain shows, with the invoice's
/// state and events (`pending`: another payment to it is still seen, uncounted); true if
/// anything changed.
fn settle(
    tx: &Connection,
    inv: &Invoice,
    recorded: &Row,
    seen: &OnChain<'_>,
    (pending, tolerance_bps, now): (bool, u32, u64),
) -> Result<bool, InvoiceError> {
    let confirmed = seen.confirmation_height.is_some();
    let (mut booked, mut bookings) = (recorded.booked, recorded.bookings);
    if !booked && confirmed {
        bookings += 1;
        book(tx, inv, seen, bookings, false, now)?;
        booked = true;
    } else if booked && !confirmed {
        book(tx, inv, seen, bookings, true, now)?;
        booked = false;
    }
    let msat = seen.amount_sat.saturating_mul(1_000);
    let (mut counted, mut late) = (recorded.counted, recorded.counted_late);
    if !counted && seen.counts {
        late = inv.status == "expired";
        apply(tx, inv, &credit(inv.counts(), msat, tolerance_bps), Some("onchain"), now)?;
        counted = true;
    } else if counted && !seen.counts && !confirmed {
        apply(tx, inv, &debit(inv.counts(), msat, late, pending, tolerance_bps), None, now)?;
        tracing::warn!(invoice_id = %inv.invoice_id, outpoint = seen.outpoint, "a counted invoice payment left the chain");
        (counted, late) = (false, false);
    } else if !counted && seen.present && inv.status == "new" {
        let processing = Next {
            status: "processing",
            exception: None,
            received_msat: inv.received_msat,
            paid_late_msat: inv.paid_late_msat,
            events: vec!["invoice.processing"],
        };
        apply(tx, inv, &processing, None, now)?;
    } else if !counted && !seen.present && !pending && inv.status == "processing" {
        // The payment that made it `processing` left the mempool (replaced, evicted) uncounted.
        apply(tx, inv, &debit(inv.counts(), 0, false, false, tolerance_bps), None, now)?;
        tracing::warn!(invoice_id = %inv.invoice_id, outpoint = seen.outpoint, "an invoice payment left the mempool");
        return Ok(true);
    }
    tx.execute(
        "UPDATE invoice_receipts SET confirmation_height = ?2, booked = ?3, bookings = ?4, counted = ?5,
             counted_late = ?6, updated_at = ?7 WHERE outpoint = ?1",
        params![seen.outpoint, seen.confirmation_height, booked, bookings, counted, late, now as i64],
    )?;
    let changed = booked != recorded.booked || counted != recorded.counted;
    if changed {
        tracing::info!(invoice_id = %inv.invoice_id, outpoint = seen.outpoint, booked, counted, "invoice payment on chain");
    }
    Ok(changed)
}

/// The invoice's receipts not counted (yet).
fn uncounted(tx: &Connection, invoice_id: &str) -> crate::store::sql::Result<Vec<String>> {
    let mut stmt = tx.prepare_cached("SELECT outpoint FROM invoice_receipts WHERE invoice_id = ?1 AND counted = 0")?;
    let rows = stmt.query_map([invoice_id], |r| r.get(0))?;
    rows.collect()
}

/// The ledger entry of booking `n` of one confirmed output paying `inv` (the first keeps the
/// plain reference `invoice:onchain:<outpoint>`), or, `reverse`, the entry that takes booking
/// `n` back (`invoice:reorg:<outpoint>:<n>`).
fn book(tx: &Connection, inv: &Invoice, o: &OnChain<'_>, n: u32, reverse: bool, now: u64) -> Result<(), InvoiceError> {
    let msat = i64::try_from(o.amount_sat).unwrap_or(i64::MAX / 1_000).saturating_mul(1_000);
    let msat = if reverse { -msat } else { msat };
    let postings =
        [Posting::btc("treasury:onchain", msat), Posting::btc(format!("receivable:{}", inv.api_key_id), -msat)];
    let reference = match (reverse, n) {
        (true, n) => format!("invoice:reorg:{}:{n}", o.outpoint),
        (false, 1) => format!("invoice:onchain:{}", o.outpoint),
        (false, n) => format!("invoice:onchain:{}:{n}", o.outpoint),
    };
    ledger::post(tx, "invoice", None, &reference, &postings, now)?;
    Ok(())
}
