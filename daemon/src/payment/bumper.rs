//! Fee bumping of batches, and which transaction of a batch's family paid. A batch still
//! unconfirmed after its priority's `bump_after_blocks` (sooner near its ETA bound) is replaced
//! (RBF: the same outputs, the higher fee from its change) at what the next block needs, up to
//! the priority's ceiling ([`crate::batch::bump`]). The replacement, every payout's new output
//! and fee share, and the replaced transaction are stored before the replacement is broadcast.
//! The original and its replacements spend a common input, so at most one confirms; whichever
//! does is adopted, and the ledger settles each payout with its share of *that* fee. A batch that
//! consolidated keeps its extra coins in the replacement; their part of the fee is scaled with
//! the feerate (rounded down), the payouts share the rest.

use std::sync::Arc;

use sendero_wallet::bitcoin::consensus::{deserialize, serialize};
use sendero_wallet::bitcoin::{ScriptBuf, Transaction};
use sendero_wallet::WalletError;

use super::batch_tx::places;
use super::batches::{BatchPayout, BatchRow, Queued, Replaced};
use super::{Change, Payment, Payments};
use crate::batch::{self, InFlight, Policy, Priority};
use crate::store::StoreError;

/// Why a bump or an adoption did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BumpError {
    /// The treasury refused.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the switch failed.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// A stored transaction could not be read.
    #[error("stored transaction of batch {0} is unreadable")]
    Unreadable(String),
}

/// Replaces every unconfirmed batch the policy says is stuck; logs what it did.
pub async fn bump_stuck(ctx: &Payments) {
    let store = Arc::clone(&ctx.store);
    let batches = match tokio::task::block_in_place(|| store.unconfirmed_batches()) {
        Ok(b) if b.is_empty() => return,
        Ok(b) => b,
        Err(e) => return tracing::error!(error = %e, "reading unconfirmed batches"),
    };
    let next_block = match ctx.onchain.estimate(1).await {
        Ok(f) => f.sat_per_vb.saturating_mul(1_000),
        Err(e) => return tracing::warn!(error = %e, "no feerate to bump batches with"),
    };
    let (policy, tip, now) =
        (Policy::from_config(&ctx.config), u64::from(ctx.onchain.treasury().synced_height()), crate::unix_now());
    for b in batches {
        let Some(height) = b.broadcast_height else { continue };
        if ctx.onchain.treasury().transaction(&b.txid).is_some_and(|t| t.confirmation_height.is_some()) {
            continue;
        }
        let priority = Priority::parse(&b.priority).unwrap_or(Priority::Normal);
        let in_flight = InFlight {
            priority,
            feerate_sat_kvb: b.feerate_sat_vb.saturating_mul(1_000),
            blocks_unconfirmed: u32::try_from(tip.saturating_sub(height)).unwrap_or(u32::MAX),
            eta_bound: b.created_at + policy.class(priority).max_eta_secs,
        };
        let Some(rate) = batch::bump(&in_flight, now, next_block, &policy) else { continue };
        let rate_vb = rate.div_ceil(1_000);
        match replace(ctx, &b, rate_vb).await {
            Ok(next) => tracing::info!(batch_id = %b.batch_id, replaced = %b.txid, txid = %next.txid,
                from_sat_vb = b.feerate_sat_vb, to_sat_vb = rate_vb, fee_sat = next.fee_sat, "batch fee bumped"),
            Err(e) => tracing::warn!(batch_id = %b.batch_id, error = %e, "batch could not be bumped"),
        }
    }
}

/// Replaces `b`'s transaction at `rate` sat/vB: stored, then broadcast.
async fn replace(ctx: &Payments, b: &BatchRow, rate: u64) -> Result<BatchRow, BumpError> {
    let _spending = ctx.onchain.spending().await;
    let (tx, payout) = ctx.onchain.bump(&b.txid, rate).await?;
    let tip = u64::from(ctx.onchain.treasury().synced_height());
    let next = BatchRow {
        txid: payout.txid.to_string(),
        raw_tx: serialize(&tx),
        fee_sat: payout.fee_sat,
        feerate_sat_vb: rate,
        vsize: payout.vsize,
        broadcast_height: Some(tip),
        // The same coins, at the new feerate.
        consolidation_fee_sat: b.consolidation_fee_sat * rate / b.feerate_sat_vb.max(1),
        ..b.clone()
    };
    switch(ctx, b, &next, &tx)?;
    crate::failpoint::hit("batch.bumped");
    if let Err(e) = ctx.onchain.publish(tx).await {
        // Stored: the saga broadcasts it again (or adopts the original, should that confirm).
        tracing::warn!(batch_id = %b.batch_id, error = %e, "replacement not broadcast now");
    }
    Ok(next)
}

/// Makes `tx` (the row `next`) the batch's transaction: each payout's output and fee share read
/// from it, each payout's `rail_ref` moved to it.
fn switch(ctx: &Payments, current: &BatchRow, next: &BatchRow, tx: &Transaction) -> Result<(), BumpError> {
    let store = Arc::clone(&ctx.store);
    let (_, payouts) = tokio::task::block_in_place(|| store.batch(&current.batch_id))?
        .ok_or_else(|| BumpError::Unreadable(current.batch_id.clone()))?;
    let payments = payouts
        .iter()
        .map(|bp| store.payment(&bp.payment_id)?.ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows)))
        .collect::<Result<Vec<Payment>, StoreError>>()?;
    let queued: Vec<Queued> =
        payments.iter().map(|p| Queued { payment: p.clone(), priority: current.priority.clone() }).collect();
    let scripts = payments
        .iter()
        .map(|p| Ok(ctx.onchain.treasury().parse_address(&p.destination)?.script_pubkey()))
        .collect::<Result<Vec<ScriptBuf>, WalletError>>()?;
    let payouts_fee = next.fee_sat.saturating_sub(next.consolidation_fee_sat);
    let placed = places(tx, &queued, &scripts, (payouts_fee, next.feerate_sat_vb * 1_000))?;
    let steps: Vec<(BatchPayout, &Payment, Change)> = placed
        .into_iter()
        .zip(&payments)
        .map(|(place, p)| {
            let moved = Payment { rail_ref: Some(format!("{}:{}", next.txid, place.vout)), ..p.clone() };
            (place, p, Change { next: Some(moved), ..Change::default() })
        })
        .collect();
    tokio::task::block_in_place(|| store.switch_batch_tx(current, next, &steps, crate::unix_now()))?;
    Ok(())
}

/// When a transaction a replacement took over confirmed after all, makes it the batch's again
/// (its fee, its outputs); true when it did.
pub(super) async fn adopt_confirmed(ctx: &Payments, b: &BatchRow) -> Result<bool, BumpError> {
    let store = Arc::clone(&ctx.store);
    let replaced: Vec<Replaced> = tokio::task::block_in_place(|| store.replaced(&b.batch_id))?;
    let confirmed = replaced
        .into_iter()
        .find(|r| ctx.onchain.treasury().transaction(&r.txid).is_some_and(|t| t.confirmation_height.is_some()));
    let Some(r) = confirmed else { return Ok(false) };
    let _spending = ctx.onchain.spending().await;
    // Another step may have adopted it meanwhile.
    let id = b.batch_id.clone();
    let Some((current, _)) = tokio::task::block_in_place(|| store.batch(&id))? else { return Ok(false) };
    if current.txid == r.txid {
        return Ok(true);
    }
    let tx: Transaction = deserialize(&r.raw_tx).map_err(|_| BumpError::Unreadable(b.batch_id.clone()))?;
    let next = BatchRow {
        txid: r.txid.clone(),
        raw_tx: r.raw_tx.clone(),
        fee_sat: r.fee_sat,
        feerate_sat_vb: r.feerate_sat_vb,
        vsize: tx.vsize() as u64,
        consolidation_fee_sat: r.consolidation_fee_sat,
        ..current.clone()
    };
    switch(ctx, &current, &next, &tx)?;
    tracing::warn!(batch_id = %b.batch_id, txid = %r.txid, replaced_by = %current.txid,
        "a replaced batch transaction confirmed: it is the one that paid");
    Ok(true)
}
