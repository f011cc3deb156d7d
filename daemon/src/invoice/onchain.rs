//! On-chain payments to invoices: the treasury's receive outputs matched to the invoices'
//! addresses. A payment seen makes its invoice `processing`; it counts toward `paid` once its
//! confirmations meet the invoice's speed (high: 0 unless it signals RBF, medium: 1, low: 6);
//! it is booked (`treasury:onchain` ↔ `receivable:<key>`, `invoice:onchain:<outpoint>`) once
//! confirmed, whatever the speed, since the wallet's books count confirmed coins. Unpaid invoices
//! past their expiry become `expired`. Every change is one transaction with its events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::params;
use sendero_wallet::{Received, Treasury};
use tokio_util::sync::CancellationToken;

use super::record::{apply, load, Invoice};
use super::{next_state, InvoiceError, Speed};
use crate::ledger::{self, Posting};
use crate::store::{Store, StoreError};

/// Confirmations a payment needs to count at `speed`.
pub fn required_confirmations(speed: Speed, signals_rbf: bool) -> u32 {
    match speed {
        Speed::High if signals_rbf => 1,
        Speed::High => 0,
        Speed::Medium => 1,
        Speed::Low => 6,
    }
}

/// A receipt as the watcher sees it this time.
struct Seen<'a> {
    output: &'a Received,
    confirmations: u32,
    counts: bool,
    tolerance_bps: u32,
}

/// Matches `received` (the treasury's receive outputs, at wallet height `tip`) to the invoices'
/// addresses and moves each invoice on; then expires the unpaid ones. Returns how many changes.
pub fn watch(
    (store, tolerance_bps): (&Store, u32),
    received: &[Received],
    tip: u32,
    now: u64,
) -> Result<usize, InvoiceError> {
    let addresses = store.invoice_addresses()?;
    let mut changed = 0;
    for output in received {
        let Some((invoice_id, speed)) = addresses.get(&output.address) else { continue };
        let confirmations = output.confirmation_height.map_or(0, |h| tip.saturating_sub(h) + 1);
        let counts = confirmations >= required_confirmations(*speed, output.signals_rbf);
        if store.invoice_observe(invoice_id, &Seen { output, confirmations, counts, tolerance_bps }, now)? {
            changed += 1;
        }
    }
    changed += store.invoices_expire(now)?;
    Ok(changed)
}

/// Watches every `interval` until `cancel`.
pub async fn run(
    (store, treasury, tolerance_bps): (Arc<Store>, Arc<Treasury>, u32),
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        let (s, t) = (Arc::clone(&store), Arc::clone(&treasury));
        let watched = tokio::task::spawn_blocking(move || {
            watch((&s, tolerance_bps), &t.received(), t.synced_height(), crate::unix_now())
        });
        match watched.await {
            Ok(Ok(n)) if n > 0 => tracing::debug!(changes = n, "invoices watched"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "watching invoices' on-chain payments failed"),
            Err(e) => tracing::error!(error = %e, "invoice watcher task failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

fn speed_of(inv_speed: &str) -> Speed {
    Speed::parse(inv_speed).unwrap_or(Speed::Low)
}

impl Store {
    /// Every invoice's address → (invoice id, speed).
    pub fn invoice_addresses(&self) -> Result<HashMap<String, (String, Speed)>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached("SELECT address, invoice_id, speed FROM invoices")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, speed_of(&r.get::<_, String>(2)?)))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What invoice receipts booked, sats by transaction (not the wallet's outside movements).
    pub fn invoice_booked_by_txid(&self) -> Result<HashMap<String, u64>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached("SELECT txid, SUM(amount_sat) FROM invoice_receipts WHERE booked = 1 GROUP BY txid")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records what the watcher sees of one output paying `invoice_id`; true if anything changed.
    fn invoice_observe(&self, invoice_id: &str, seen: &Seen<'_>, now: u64) -> Result<bool, InvoiceError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let Some(inv) = load(&tx, invoice_id)? else { return Ok(false) };
        let o = seen.output;
        let fresh = tx.execute(
            "INSERT INTO invoice_receipts (outpoint, invoice_id, txid, amount_sat, confirmation_height, signals_rbf,
                 seen_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) ON CONFLICT (outpoint) DO NOTHING",
            params![
                o.outpoint,
                invoice_id,
                o.txid,
                o.amount_sat as i64,
                o.confirmation_height,
                o.signals_rbf,
                now as i64
            ],
        )? == 1;
        let (booked, counted): (bool, bool) =
            tx.query_row("SELECT booked, counted FROM invoice_receipts WHERE outpoint = ?1", [&o.outpoint], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let book = !booked && seen.confirmations >= 1;
        let count = !counted && seen.counts;
        if book {
            book_receipt(&tx, &inv, o, now)?;
        }
        if count {
            let received = inv.received_msat.saturating_add(o.amount_sat.saturating_mul(1_000));
            let (status, exception, events) = next_state(&inv, received, seen.tolerance_bps);
            apply(&tx, &inv, (status, exception, received, Some("onchain")), &events, now)?;
        } else if fresh && inv.status == "new" {
            apply(&tx, &inv, ("processing", None, inv.received_msat, None), &["invoice.processing"], now)?;
        }
        tx.execute(
            "UPDATE invoice_receipts SET confirmation_height = ?2, booked = booked OR ?3, counted = counted OR ?4,
                 updated_at = ?5 WHERE outpoint = ?1",
            params![o.outpoint, o.confirmation_height, book, count, now as i64],
        )?;
        tx.commit()?;
        if count || fresh {
            tracing::info!(invoice_id, outpoint = %o.outpoint, confirmations = seen.confirmations, counted = count, "invoice payment on chain");
        }
        Ok(fresh || book || count)
    }

    /// Expires the invoices still `new` past their expiry, each with its event; returns how many.
    fn invoices_expire(&self, now: u64) -> Result<usize, InvoiceError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids: Vec<String> = {
            let mut stmt =
                tx.prepare_cached("SELECT invoice_id FROM invoices WHERE status = 'new' AND expires_at <= ?1")?;
            let rows = stmt.query_map([now as i64], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in &ids {
            if let Some(inv) = load(&tx, id)? {
                apply(&tx, &inv, ("expired", None, inv.received_msat, None), &["invoice.expired"], now)?;
                tracing::info!(invoice_id = %id, "invoice expired");
            }
        }
        tx.commit()?;
        Ok(ids.len())
    }
}

/// The ledger entry of one confirmed output paying `inv`.
fn book_receipt(tx: &rusqlite::Connection, inv: &Invoice, o: &Received, now: u64) -> Result<(), InvoiceError> {
    let msat = i64::try_from(o.amount_sat).unwrap_or(i64::MAX / 1_000).saturating_mul(1_000);
    let postings =
        [Posting::btc("treasury:onchain", msat), Posting::btc(format!("receivable:{}", inv.api_key_id), -msat)];
    ledger::post(tx, "invoice", None, &format!("invoice:onchain:{}", o.outpoint), &postings, now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_follow_the_speed_policy() {
        assert_eq!(required_confirmations(Speed::High, false), 0);
        assert_eq!(required_confirmations(Speed::High, true), 1, "an RBF-signalling payment may be replaced");
        assert_eq!(required_confirmations(Speed::Medium, false), 1);
        assert_eq!(required_confirmations(Speed::Low, true), 6);
    }
}
