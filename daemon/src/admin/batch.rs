//! `batch.list {limit?}`, `batch.get {batch_id}`, `batch.trigger`: the batches of the
//! `onchain_batch` rail, and sending the queue now.

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::payment::batcher::{self, BatchError};
use crate::state::AppState;

/// `batch.list`: newest first (50 unless `limit`), and how many payouts wait in the queue.
pub(crate) async fn list(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["limit"])?;
    let limit = params.optional_positive_integer("limit", "invalid_limit")?.unwrap_or(50).min(1_000);
    let batches = ctx.store.batches(limit as usize)?;
    let queued = ctx.store.queued_payouts(usize::MAX >> 1)?;
    let waiting: Vec<Value> = queued
        .iter()
        .map(|q| json!({"payment_id": q.payment.payment_id, "priority": q.priority, "amount_sat": q.payment.amount_msat.div_ceil(1_000)}))
        .collect();
    Ok(json!({ "batches": batches, "queued": waiting }))
}

/// `batch.get {batch_id}`: the batch and every payout's output and fee share.
pub(crate) async fn get(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["batch_id"])?;
    let id = params.string("batch_id")?;
    let (batch, payouts) = ctx
        .store
        .batch(&id)?
        .ok_or_else(|| AdminError::new(rpc_code::INVALID_PARAMS, "batch_not_found", format!("no batch {id}")))?;
    let mut v = json!(batch);
    v["payouts_detail"] = json!(payouts);
    v["fee_shares_sum_sat"] = json!(payouts.iter().map(|p| p.fee_share_sat).sum::<u64>());
    v["replaced"] = json!(ctx.store.replaced(&id)?);
    Ok(v)
}

/// `batch.trigger`: the queue leaves now, as one batch (audited).
pub(crate) async fn trigger(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let departed = batcher::depart(&ctx.payments, true, &Default::default()).await.map_err(|e| match e {
        BatchError::Empty => AdminError::new(rpc_code::REFUSED, "batch_queue_empty", e.to_string()),
        BatchError::Raced => AdminError::new(rpc_code::UNAVAILABLE, "batch_raced", e.to_string()),
        BatchError::Wallet(w) => AdminError::from(w),
        e => AdminError::internal(e.to_string()),
    })?;
    let details =
        json!({"batch_id": departed.batch.batch_id, "txid": departed.batch.txid, "payouts": departed.batch.payouts});
    super::audit::after(ctx, "batch.trigger", &details);
    Ok(json!(departed))
}
