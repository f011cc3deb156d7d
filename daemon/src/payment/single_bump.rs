//! Fee bumping of single `onchain` payouts, and which transaction of a payout's family paid. A
//! payout's transaction still unconfirmed after its priority's `bump_after_blocks` (sooner near
//! its ETA bound) is replaced (RBF: the same outputs, the higher fee from its change) at what the
//! next block needs, up to the priority's ceiling ([`crate::batch::bump`]). The replacement
//! becomes the payout's `rail_ref` and stored `raw_tx`, and the replaced transaction is kept, in
//! one transaction, before the replacement is broadcast. The original and its replacements spend
//! a common input, so at most one confirms; whichever does is the payout's, and its fee is what
//! the ledger settles.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension};
use sendero_wallet::bitcoin::consensus::serialize;
use sendero_wallet::WalletError;

use super::{Change, Payment, Payments};
use crate::batch::{self, InFlight, Policy, Priority};
use crate::ledger::LedgerError;
use crate::store::{Store, StoreError};

/// A transaction of a payout that a replacement took over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacedTx {
    /// Its id.
    pub txid: String,
    /// As signed.
    pub raw_tx: Vec<u8>,
}

impl Store {
    /// The chain height at which the payout's current transaction was first seen broadcast.
    fn payout_broadcast_height(&self, payment_id: &str) -> Result<Option<u64>, StoreError> {
        let conn = self.read();
        let height = conn
            .prepare_cached("SELECT height FROM payout_broadcasts WHERE payment_id = ?1")?
            .query_row([payment_id], |r| r.get::<_, i64>(0))
            .optional()?;
        Ok(height.map(|h| h as u64))
    }

    /// Records (or moves) the height the payout's current transaction counts its blocks from.
    fn set_payout_broadcast_height(&self, payment_id: &str, height: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO payout_broadcasts (payment_id, height) VALUES (?1, ?2)
             ON CONFLICT (payment_id) DO UPDATE SET height = excluded.height",
            params![payment_id, height as i64],
        )?;
        Ok(())
    }

    /// The transactions of a payout that replacements took over.
    pub fn payout_replaced(&self, payment_id: &str) -> Result<Vec<ReplacedTx>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT txid, raw_tx FROM payout_replaced WHERE payment_id = ?1 ORDER BY replaced_at, txid",
        )?;
        let rows = stmt.query_map([payment_id], |r| Ok(ReplacedTx { txid: r.get(0)?, raw_tx: r.get(1)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keeps the payout's current transaction as replaced and makes the one `change` names its
    /// own (`rail_ref`, `raw_tx`), counting blocks from `height` — in one transaction.
    fn switch_payout_tx(&self, from: &Payment, change: &Change, height: u64, now: u64) -> Result<bool, LedgerError> {
        let (Some(txid), Some(raw)) = (from.rail_ref.as_deref(), from.raw_tx.as_deref()) else { return Ok(false) };
        let next = change.next.as_ref().and_then(|n| n.rail_ref.clone()).unwrap_or_default();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO payout_replaced (txid, payment_id, raw_tx, replaced_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (txid) DO NOTHING",
        )?
        .execute(params![txid, from.payment_id, raw, now as i64])?;
        tx.prepare_cached("DELETE FROM payout_replaced WHERE txid = ?1")?.execute([&next])?;
        tx.prepare_cached(
            "INSERT INTO payout_broadcasts (payment_id, height) VALUES (?1, ?2)
             ON CONFLICT (payment_id) DO UPDATE SET height = excluded.height",
        )?
        .execute(params![from.payment_id, height as i64])?;
        let applied = super::record::apply(&tx, from, change, now)?;
        if applied {
            tx.commit()?;
        }
        Ok(applied)
    }
}

/// The payout moved onto another transaction of its family (`txid`, `raw_tx`).
fn moved(p: &Payment, txid: String, raw_tx: Vec<u8>) -> Change {
    Change { next: Some(Payment { rail_ref: Some(txid), raw_tx: Some(raw_tx), ..p.clone() }), ..Change::default() }
}

/// A transaction a replacement took over that the wallet has (confirmed, or at all when
/// `confirmed` is false): the one that paid, or may still.
pub(super) fn family_member(ctx: &Payments, p: &Payment, confirmed: bool) -> Result<Option<ReplacedTx>, StoreError> {
    let store = Arc::clone(&ctx.store);
    let id = p.payment_id.clone();
    let replaced = tokio::task::block_in_place(|| store.payout_replaced(&id))?;
    Ok(replaced.into_iter().find(|r| {
        ctx.onchain.treasury().transaction(&r.txid).is_some_and(|t| !confirmed || t.confirmation_height.is_some())
    }))
}

/// Makes a transaction of the payout's family its own again (the one that confirmed).
pub(super) async fn adopt(ctx: &Payments, p: &Payment, member: ReplacedTx) -> Result<(), LedgerError> {
    let _spending = ctx.onchain.spending().await;
    let change = moved(p, member.txid.clone(), member.raw_tx);
    let (store, from, height) = (Arc::clone(&ctx.store), p.clone(), u64::from(ctx.onchain.treasury().synced_height()));
    if tokio::task::block_in_place(|| store.switch_payout_tx(&from, &change, height, crate::unix_now()))? {
        tracing::warn!(payment_id = %p.payment_id, txid = %member.txid, "a replaced payout transaction confirmed: it is the one that paid");
    }
    Ok(())
}

/// An unconfirmed payout's transaction: replaced when the policy says it is stuck. Returns
/// whether it was.
pub(super) async fn bump_if_stuck(ctx: &Payments, p: &Payment) -> Result<bool, WalletError> {
    let storage = |e: StoreError| WalletError::Storage(e.to_string());
    let ledger = |e: LedgerError| WalletError::Storage(e.to_string());
    let (Some(txid), store) = (p.rail_ref.clone(), Arc::clone(&ctx.store)) else { return Ok(false) };
    let tip = u64::from(ctx.onchain.treasury().synced_height());
    let id = p.payment_id.clone();
    let Some(height) = tokio::task::block_in_place(|| store.payout_broadcast_height(&id)).map_err(storage)? else {
        // First look since it left: its blocks count from here.
        tokio::task::block_in_place(|| store.set_payout_broadcast_height(&id, tip)).map_err(storage)?;
        return Ok(false);
    };
    let route = p.route_id.clone();
    let priority = tokio::task::block_in_place(|| store.route_priority(&route))
        .map_err(storage)?
        .and_then(|r| Priority::parse(&r))
        .unwrap_or(Priority::Normal);
    let policy = Policy::from_config(&ctx.config);
    // What the transaction pays now, sat/kvB: its fee over its size.
    let paying = match (ctx.onchain.treasury().transaction(&txid), p.raw_tx.as_deref()) {
        (Some(t), Some(raw)) => {
            let vsize = sendero_wallet::bitcoin::consensus::deserialize::<sendero_wallet::bitcoin::Transaction>(raw)
                .map(|tx| tx.vsize() as u64)
                .unwrap_or(u64::MAX);
            t.fee_sat.unwrap_or(0).saturating_mul(1_000) / vsize.max(1)
        }
        _ => return Ok(false),
    };
    let in_flight = InFlight {
        priority,
        feerate_sat_kvb: paying,
        blocks_unconfirmed: u32::try_from(tip.saturating_sub(height)).unwrap_or(u32::MAX),
        eta_bound: p.created_at + policy.class(priority).max_eta_secs,
    };
    if in_flight.blocks_unconfirmed == 0 {
        return Ok(false);
    }
    let next_block = ctx.onchain.estimate(1).await?.sat_per_vb.saturating_mul(1_000);
    let Some(rate) = batch::bump(&in_flight, crate::unix_now(), next_block, &policy) else { return Ok(false) };
    let rate = rate.div_ceil(1_000);
    let _spending = ctx.onchain.spending().await;
    let (tx, payout) = ctx.onchain.bump(&txid, rate).await?;
    let change = moved(p, payout.txid.to_string(), serialize(&tx));
    let from = p.clone();
    if !tokio::task::block_in_place(|| store.switch_payout_tx(&from, &change, tip, crate::unix_now()))
        .map_err(ledger)?
    {
        return Ok(false);
    }
    crate::failpoint::hit("onchain.bumped");
    tracing::info!(payment_id = %p.payment_id, replaced = %txid, txid = %payout.txid, to_sat_vb = rate,
        fee_sat = payout.fee_sat, "payout fee bumped");
    if let Err(e) = ctx.onchain.publish(tx).await {
        tracing::warn!(payment_id = %p.payment_id, error = %e, "replacement not broadcast now; the saga tries again");
    }
    Ok(true)
}
