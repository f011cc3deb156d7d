//! Batches in the store: the payouts queued for the next batch, a batch written with its signed
//! transaction and every payout's output and fee share before anything is broadcast, and read
//! back to rebroadcast it as is, to settle each payout with its share, and for operators.

use std::collections::HashMap;

use crate::store::sql::{params, OptionalExtension, Row};
use serde::Serialize;

use super::record::{apply, payment_row, COLUMNS};
use super::{Change, Payment};
use crate::ledger::LedgerError;
use crate::store::{Store, StoreError};

/// A batch as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchRow {
    /// `bt_…`.
    pub batch_id: String,
    /// Its transaction.
    pub txid: String,
    /// The signed transaction, as broadcast (and broadcast again after a restart).
    #[serde(skip)]
    pub raw_tx: Vec<u8>,
    /// The transaction's fee.
    pub fee_sat: u64,
    /// The feerate it was built at, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// The same rounded up to whole sat/vB, for display.
    pub feerate_sat_vb: u64,
    /// Its virtual size.
    pub vsize: u64,
    /// How many payouts it carries.
    pub payouts: u64,
    /// Why it left: `deadline`, `count`, `total`, `cheap`, `interval` or `operator`.
    pub reason: String,
    /// `signed`, `broadcast` or `confirmed`.
    pub state: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The most urgent priority among its payouts (picks when it is bumped).
    pub priority: String,
    /// The chain height when its transaction (or its last replacement) was broadcast.
    pub broadcast_height: Option<u64>,
    /// Extra small coins its transaction swept in (consolidation inside the batch).
    pub consolidated_inputs: u64,
    /// The part of `fee_sat` those coins cost, sats: the treasury's (`fees:consolidation`), not
    /// the payouts'; the payouts' shares sum to `fee_sat − consolidation_fee_sat`.
    pub consolidation_fee_sat: u64,
}

impl BatchRow {
    /// This batch with `tx` — built as `payout` — as its transaction: its id, bytes, fee, size
    /// and the feerate it was built at.
    pub(super) fn on(&self, tx: &sendero_wallet::bitcoin::Transaction, payout: &sendero_wallet::Payout) -> BatchRow {
        BatchRow {
            txid: payout.txid.to_string(),
            raw_tx: sendero_wallet::bitcoin::consensus::serialize(tx),
            fee_sat: payout.fee_sat,
            feerate_sat_kvb: payout.feerate.sat_per_kvb(),
            feerate_sat_vb: payout.feerate.sat_per_vb_ceil(),
            vsize: payout.vsize,
            ..self.clone()
        }
    }

    /// [`BatchRow::on`] for `tx` built from this batch's own coins (a fee bump, a bid over
    /// bitcoind's floor): the small coins it swept in cost their part at the new feerate.
    pub(super) fn on_same_coins(
        &self,
        tx: &sendero_wallet::bitcoin::Transaction,
        payout: &sendero_wallet::Payout,
    ) -> BatchRow {
        let swept = self.consolidation_fee_sat * payout.feerate.sat_per_kvb() / self.feerate_sat_kvb.max(1);
        BatchRow { consolidation_fee_sat: swept, ..self.on(tx, payout) }
    }
}

/// A transaction of a batch that a replacement took over (kept: if it confirms after all, it is
/// the one that paid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replaced {
    /// Its id.
    pub txid: String,
    /// As signed.
    #[serde(skip)]
    pub raw_tx: Vec<u8>,
    /// Its fee.
    pub fee_sat: u64,
    /// Its feerate, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// The same rounded up to whole sat/vB, for display.
    pub feerate_sat_vb: u64,
    /// The part of its fee the consolidated coins cost.
    pub consolidation_fee_sat: u64,
}

/// One payout's place in a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchPayout {
    /// The payment.
    pub payment_id: String,
    /// Its output in the batch's transaction.
    pub vout: u32,
    /// What it pays.
    pub amount_sat: u64,
    /// Its share of the transaction's fee (the shares sum to the fee less its consolidation part).
    pub fee_share_sat: u64,
}

/// A payout waiting in the queue, with what the departure policy reads of it.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The payment (`onchain_batch`, `debited`).
    pub payment: Payment,
    /// Its route's priority: `high`, `normal` or `low`.
    pub priority: String,
}

/// The ledger entry kind of a batch's consolidation fee (`consolidation:<txid>`).
pub const BATCH_CONSOLIDATION: &str = "batch_consolidation";

const BATCH_COLUMNS: &str = "batch_id, txid, raw_tx, fee_sat, feerate_sat_vb, vsize, payouts, reason, state, \
     created_at, priority, broadcast_height, consolidated_inputs, consolidation_fee_sat, feerate_sat_kvb";

/// How many columns [`BATCH_COLUMNS`] names.
const BATCH_FIELDS: usize = 15;

fn batch_row(r: &Row<'_>) -> crate::store::sql::Result<BatchRow> {
    Ok(BatchRow {
        batch_id: r.get(0)?,
        txid: r.get(1)?,
        raw_tx: r.get(2)?,
        fee_sat: r.get::<_, i64>(3)? as u64,
        feerate_sat_vb: r.get::<_, i64>(4)? as u64,
        vsize: r.get::<_, i64>(5)? as u64,
        payouts: r.get::<_, i64>(6)? as u64,
        reason: r.get(7)?,
        state: r.get(8)?,
        created_at: r.get::<_, i64>(9)? as u64,
        priority: r.get(10)?,
        broadcast_height: r.get::<_, Option<i64>>(11)?.map(|h| h as u64),
        consolidated_inputs: r.get::<_, i64>(12)? as u64,
        consolidation_fee_sat: r.get::<_, i64>(13)? as u64,
        feerate_sat_kvb: r.get::<_, i64>(14)? as u64,
    })
}

impl Store {
    /// The payouts waiting for a batch, oldest first, at most `limit`.
    pub fn queued_payouts(&self, limit: usize) -> Result<Vec<Queued>, StoreError> {
        let cols = COLUMNS.split(',').map(|c| format!("p.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {cols}, r.priority FROM payments p JOIN routes r ON r.route_id = p.route_id
             WHERE p.rail = 'onchain_batch' AND p.state = 'debited' ORDER BY p.created_at, p.payment_id LIMIT ?1"
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let priority = COLUMNS.split(',').count();
        let rows =
            stmt.query_map([limit as i64], |r| Ok(Queued { payment: payment_row(r)?, priority: r.get(priority)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Writes a signed batch, its payouts' outputs and shares, and each payout's step to
    /// `sending` (with its ledger entry and event) in one transaction; false when a payout was
    /// moved meanwhile (nothing is written then).
    pub fn record_batch(
        &self,
        batch: &BatchRow,
        payouts: &[(BatchPayout, &Payment, Change)],
        now: u64,
    ) -> Result<bool, LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached(&format!(
            "INSERT INTO batches ({BATCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, NULL, ?12, ?13, ?14)"
        ))?
        .execute(params![
            batch.batch_id,
            batch.txid,
            batch.raw_tx,
            batch.fee_sat as i64,
            batch.feerate_sat_vb as i64,
            batch.vsize as i64,
            batch.payouts as i64,
            batch.reason,
            batch.state,
            batch.created_at as i64,
            batch.priority,
            batch.consolidated_inputs as i64,
            batch.consolidation_fee_sat as i64,
            batch.feerate_sat_kvb as i64
        ])?;
        for (b, from, change) in payouts {
            tx.prepare_cached(
                "INSERT INTO batch_payouts (payment_id, batch_id, vout, amount_sat, fee_share_sat)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                b.payment_id,
                batch.batch_id,
                b.vout,
                b.amount_sat as i64,
                b.fee_share_sat as i64
            ])?;
            if !apply(&tx, from, change, now)? {
                return Ok(false); // rolled back as `tx` drops
            }
        }
        tx.commit()?;
        Ok(true)
    }

    /// Marks a batch broadcast and applies its payouts' steps to `sent`, in one transaction.
    pub fn batch_broadcast(
        &self,
        batch_id: &str,
        steps: &[(&Payment, Change)],
        (now, height): (u64, u64),
    ) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "UPDATE batches SET state = 'broadcast', broadcast_at = ?2, broadcast_height = COALESCE(broadcast_height, ?3)
             WHERE batch_id = ?1 AND state = 'signed'",
        )?
        .execute(params![batch_id, now as i64, height as i64])?;
        for (from, change) in steps {
            apply(&tx, from, change, now)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks a batch confirmed (its payouts settle one by one in the saga).
    pub fn batch_confirmed(&self, batch_id: &str, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE batches SET state = 'confirmed', confirmed_at = ?2 WHERE batch_id = ?1 AND state != 'confirmed'",
            params![batch_id, now as i64],
        )?;
        Ok(())
    }

    /// The batch a payout belongs to, with its place in it.
    pub fn batch_of(&self, payment_id: &str) -> Result<Option<(BatchRow, BatchPayout)>, StoreError> {
        let cols = BATCH_COLUMNS.split(',').map(|c| format!("b.{}", c.trim())).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "SELECT {cols}, bp.vout, bp.amount_sat, bp.fee_share_sat FROM batch_payouts bp
             JOIN batches b ON b.batch_id = bp.batch_id WHERE bp.payment_id = ?1"
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let row = stmt.query_row([payment_id], |r| {
            let payout = BatchPayout {
                payment_id: payment_id.to_owned(),
                vout: r.get(BATCH_FIELDS)?,
                amount_sat: r.get::<_, i64>(BATCH_FIELDS + 1)? as u64,
                fee_share_sat: r.get::<_, i64>(BATCH_FIELDS + 2)? as u64,
            };
            Ok((batch_row(r)?, payout))
        });
        Ok(row.optional()?)
    }

    /// Batches, newest first, at most `limit`.
    pub fn batches(&self, limit: usize) -> Result<Vec<BatchRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches ORDER BY created_at DESC, batch_id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], batch_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One batch and its payouts (by output).
    pub fn batch(&self, batch_id: &str) -> Result<Option<(BatchRow, Vec<BatchPayout>)>, StoreError> {
        let conn = self.read();
        let batch = conn
            .prepare_cached(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE batch_id = ?1"))?
            .query_row([batch_id], batch_row)
            .optional()?;
        let Some(batch) = batch else { return Ok(None) };
        let mut stmt = conn.prepare_cached(
            "SELECT payment_id, vout, amount_sat, fee_share_sat FROM batch_payouts WHERE batch_id = ?1 ORDER BY vout",
        )?;
        let payouts = stmt
            .query_map([batch_id], |r| {
                Ok(BatchPayout {
                    payment_id: r.get(0)?,
                    vout: r.get(1)?,
                    amount_sat: r.get::<_, i64>(2)? as u64,
                    fee_share_sat: r.get::<_, i64>(3)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some((batch, payouts)))
    }

    /// When the first ETA bound of a batch's payouts runs out, Unix seconds: each payout's
    /// submission plus its priority's bound (`bounds`: high, normal, low), the earliest.
    pub fn batch_eta_bound(&self, batch_id: &str, bounds: [u64; 3]) -> Result<Option<u64>, StoreError> {
        let at: Option<i64> = self.read().query_row(
            "SELECT MIN(p.created_at + CASE r.priority WHEN 'high' THEN CAST(?2 AS INTEGER) WHEN 'normal' THEN CAST(?3 AS INTEGER) ELSE CAST(?4 AS INTEGER) END)
             FROM batch_payouts b JOIN payments p ON p.payment_id = b.payment_id
             JOIN routes r ON r.route_id = p.route_id WHERE b.batch_id = ?1",
            params![batch_id, bounds[0] as i64, bounds[1] as i64, bounds[2] as i64],
            |r| r.get(0),
        )?;
        Ok(at.map(|v| v as u64))
    }

    /// Batches broadcast and not yet confirmed, oldest first.
    pub fn unconfirmed_batches(&self) -> Result<Vec<BatchRow>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE state = 'broadcast' ORDER BY created_at, batch_id"
        ))?;
        let rows = stmt.query_map([], batch_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// What the ledger booked as batches' consolidation fees, msat by the txid booked.
    pub fn batch_consolidations_booked(&self) -> Result<HashMap<String, i64>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT e.reference, p.amount FROM ledger_entries e JOIN ledger_postings p ON p.entry_id = e.id
             WHERE e.kind = ?1 AND p.account = 'fees:consolidation'",
        )?;
        let rows = stmt.query_map([BATCH_CONSOLIDATION], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut booked = HashMap::new();
        for row in rows {
            let (reference, msat) = row?;
            if let Some(txid) = reference.strip_prefix("consolidation:") {
                booked.insert(txid.to_owned(), msat);
            }
        }
        Ok(booked)
    }

    /// The transactions of `batch_id` that replacements took over, oldest first.
    pub fn replaced(&self, batch_id: &str) -> Result<Vec<Replaced>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT txid, raw_tx, fee_sat, feerate_sat_vb, consolidation_fee_sat, feerate_sat_kvb FROM batch_replaced
             WHERE batch_id = ?1 ORDER BY replaced_at, txid",
        )?;
        let rows = stmt.query_map([batch_id], |r| {
            Ok(Replaced {
                txid: r.get(0)?,
                raw_tx: r.get(1)?,
                fee_sat: r.get::<_, i64>(2)? as u64,
                feerate_sat_vb: r.get::<_, i64>(3)? as u64,
                consolidation_fee_sat: r.get::<_, i64>(4)? as u64,
                feerate_sat_kvb: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes `next` the batch's transaction — a replacement, or a replaced one that confirmed after
    /// all — in one transaction: the current one is kept as replaced (and `next` no longer is),
    /// every payout's output and fee share, and every payout's `rail_ref` follow.
    pub fn switch_batch_tx(
        &self,
        current: &BatchRow,
        next: &BatchRow,
        payouts: &[(BatchPayout, &Payment, Change)],
        now: u64,
    ) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO batch_replaced (txid, batch_id, raw_tx, fee_sat, feerate_sat_vb, replaced_at, consolidation_fee_sat,
             feerate_sat_kvb) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (txid) DO NOTHING",
        )?
        .execute(params![
            current.txid,
            current.batch_id,
            current.raw_tx,
            current.fee_sat as i64,
            current.feerate_sat_vb as i64,
            now as i64,
            current.consolidation_fee_sat as i64,
            current.feerate_sat_kvb as i64
        ])?;
        tx.prepare_cached("DELETE FROM batch_replaced WHERE txid = ?1")?.execute([&next.txid])?;
        tx.prepare_cached(
            "UPDATE batches SET txid = ?2, raw_tx = ?3, fee_sat = ?4, feerate_sat_vb = ?5, vsize = ?6,
             broadcast_height = ?7, consolidation_fee_sat = ?8, feerate_sat_kvb = ?9, consolidated_inputs = ?10
             WHERE batch_id = ?1",
        )?
        .execute(params![
            current.batch_id,
            next.txid,
            next.raw_tx,
            next.fee_sat as i64,
            next.feerate_sat_vb as i64,
            next.vsize as i64,
            next.broadcast_height.map(|h| h as i64),
            next.consolidation_fee_sat as i64,
            next.feerate_sat_kvb as i64,
            next.consolidated_inputs as i64
        ])?;
        // Out of the way first: two payouts may swap outputs.
        tx.prepare_cached("UPDATE batch_payouts SET vout = -1 - vout WHERE batch_id = ?1")?
            .execute([&current.batch_id])?;
        for (b, from, change) in payouts {
            tx.prepare_cached("UPDATE batch_payouts SET vout = ?2, fee_share_sat = ?3 WHERE payment_id = ?1")?
                .execute(params![b.payment_id, b.vout, b.fee_share_sat as i64])?;
            apply(&tx, from, change, now)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_count_matches_the_columns() {
        assert_eq!(BATCH_COLUMNS.split(',').count(), BATCH_FIELDS);
    }
}
