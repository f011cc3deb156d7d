//! The batcher: payouts on the `onchain_batch` rail wait in the queue (debited, as every payout
//! is at submit) until the departure policy says a batch leaves; then one transaction pays them
//! all. Under the treasury's spend lock it is built and signed, written with every payout's
//! output and fee share and each payout's step to `sending` — all before anything is broadcast
//! — then broadcast once, and every payout steps to `sent`. After a crash the saga finds the
//! payouts `sending` and broadcasts the stored transaction again, as is; a payout never joins a
//! second transaction while its first can still confirm.

use std::sync::Arc;
use std::time::Duration;

use sendero_wallet::bitcoin::consensus::{deserialize, serialize};
use sendero_wallet::bitcoin::{ScriptBuf, Transaction};
use sendero_wallet::{Feerate, Payee, WalletError};
use tokio_util::sync::CancellationToken;

use super::batch_policy;
use super::batch_tx::places;
use super::batches::{BatchPayout, BatchRow, Queued, BATCH_CONSOLIDATION};
use super::bumper;
use super::steps::{complete, settle};
use super::{Change, Payment, Payments, State, MAX_REBUILDS};
use crate::batch::Priority;
use crate::ledger::{LedgerError, Posting};
use crate::store::StoreError;

/// Why a batch could not leave now.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The queue is empty.
    #[error("no payout is waiting for a batch")]
    Empty,
    /// The treasury refused to build it (funds, bitcoind).
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the batch failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The policy keeps the queue waiting.
    #[error("no batch is due")]
    NotDue,
    /// A payout of the queue moved meanwhile; the next round takes the queue again.
    #[error("the queue changed while the batch was built; nothing was sent")]
    Raced,
}

/// A batch that left.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Departed {
    /// The batch as stored.
    #[serde(flatten)]
    pub batch: BatchRow,
    /// Whether bitcoind accepted it now (else the saga broadcasts it again).
    pub broadcast: bool,
}

/// How often the batcher looks at the queue and the feerates.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Most payouts read from the queue at once.
const QUEUE_READ: usize = 10_000;

/// Looks at the queue every 2 s, or when woken (a payout was queued), and sends a
/// batch when the policy says one leaves (again at once while more are due); takes a feerate
/// sample each block interval, queue or not.
pub async fn run(ctx: Arc<Payments>, cancel: CancellationToken) {
    loop {
        let rates = batch_policy::RoundRates::default();
        if let Err(e) = super::fee_holds::refresh(&ctx, &rates).await {
            tracing::warn!(error = %e, "payouts waiting for fees not recorded; tried again");
        }
        match depart(&ctx, false, &rates).await {
            Ok(d) => {
                tracing::info!(batch_id = %d.batch.batch_id, txid = %d.batch.txid, payouts = d.batch.payouts,
                    fee_sat = d.batch.fee_sat, feerate = %Feerate::from_sat_per_kvb(d.batch.feerate_sat_kvb), reason = %d.batch.reason,
                    consolidated_inputs = d.batch.consolidated_inputs, consolidation_fee_sat = d.batch.consolidation_fee_sat,
                    "batch left");
                continue;
            }
            Err(BatchError::Empty | BatchError::NotDue | BatchError::Raced) => {}
            Err(e) => tracing::warn!(error = %e, "batch could not leave; it is tried again"),
        }
        batch_policy::sample(&ctx, &rates).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ctx.batch_wake.notified() => {}
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

/// Builds, stores and broadcasts one batch when the policy says it leaves — or, for an
/// `operator`, the whole queue now (at most `batching.max_outputs_per_tx` payouts).
pub async fn depart(ctx: &Payments, operator: bool, rates: &batch_policy::RoundRates) -> Result<Departed, BatchError> {
    let store = Arc::clone(&ctx.store);
    let all = tokio::task::block_in_place(|| store.queued_payouts(QUEUE_READ))?;
    if all.is_empty() {
        return Err(BatchError::Empty);
    }
    // Decided without the treasury's lock (it asks bitcoind for feerates); built under it, from
    // the payouts still queued then.
    let Some(departure) = batch_policy::decide(ctx, &all, (crate::unix_now(), operator), rates).await? else {
        return Err(BatchError::NotDue);
    };
    // Coins stored transactions signed away (a single payout whose broadcast is not recorded yet,
    // a replacement) are left alone by the build (`Store::signed_away`).
    let _spending = ctx.onchain.spending().await;
    let leaving: std::collections::HashSet<&str> =
        departure.payouts.iter().map(|&i| all[i].payment.payment_id.as_str()).collect();
    let now_queued = tokio::task::block_in_place(|| store.queued_payouts(QUEUE_READ))?;
    let queued: Vec<Queued> =
        now_queued.into_iter().filter(|q| leaving.contains(q.payment.payment_id.as_str())).collect();
    if queued.is_empty() {
        return Err(BatchError::Raced);
    }
    let (tx, batch, places) = build(ctx, &queued, &departure).await?;
    let now = batch.created_at;
    let steps: Vec<(BatchPayout, &Payment, Change)> = places
        .into_iter()
        .zip(&queued)
        .map(|(place, q)| {
            let rail_ref = format!("{}:{}", batch.txid, place.vout);
            let next = Payment { state: State::Sending, rail_ref: Some(rail_ref), ..q.payment.clone() };
            let mut change = Change { next: Some(next), ..Change::default() };
            complete(ctx, &q.payment, &mut change);
            (place, &q.payment, change)
        })
        .collect();
    let store = Arc::clone(&ctx.store);
    if !tokio::task::block_in_place(|| store.record_batch(&batch, &steps, now))? {
        return Err(BatchError::Raced);
    }
    ctx.webhooks_wake.notify_one();
    crate::failpoint::hit("batch.signed");
    let sending: Vec<Payment> = steps.into_iter().filter_map(|(_, _, c)| c.next).collect();
    let rate = Feerate::from_sat_per_kvb(batch.feerate_sat_kvb.max(1));
    let (batch, broadcast) = offer(ctx, (batch, tx, sending), &queued, rate).await;
    Ok(Departed { batch, broadcast })
}

/// Offers a batch just built and stored to bitcoind; the batch as it left and whether bitcoind
/// took it. Refused at this first offer it never left: when a coin it spends is already spent —
/// by a transaction of ours the wallet has not seen yet (one broadcast just before a restart, a
/// replacement the wallet has not caught up with) — it is built again at the same feerate from
/// other coins (without consolidation), made the batch's transaction (the refused one kept as
/// replaced: it can never be broadcast, nobody else has it), and offered again, up to
/// [`MAX_REBUILDS`] times; refused for a fee under bitcoind's floor, it is bid again from the
/// same coins over that floor ([`crate::rails::onchain::Onchain::rebid`]) the same way. The
/// caller holds [`crate::rails::onchain::Onchain::spending`].
async fn offer(
    ctx: &Payments,
    (mut batch, mut tx, mut sending): (BatchRow, Transaction, Vec<Payment>),
    queued: &[Queued],
    rate: Feerate,
) -> (BatchRow, bool) {
    for rebuilds in 0..=MAX_REBUILDS {
        let reason = match ctx.onchain.publish(tx.clone()).await {
            Ok(()) => {
                record_sent(ctx, &batch, &sending);
                return (batch, true);
            }
            Err(WalletError::Broadcast(reason)) if rebuilds < MAX_REBUILDS => reason,
            Err(e) => {
                tracing::warn!(batch_id = %batch.batch_id, error = %e, "batch not broadcast now; the saga tries again");
                break;
            }
        };
        match rebuild(ctx, &batch, (tx.clone(), &reason), queued, rate).await {
            Ok(Some((next, next_tx, moved))) => {
                let how = match sendero_wallet::below_floor(&reason) {
                    true => "its fee under bitcoind's floor: bid again over it from the same coins",
                    false => "coins it spent were already spent; built again from others",
                };
                tracing::warn!(batch_id = %batch.batch_id, refused = %batch.txid, %reason, txid = %next.txid,
                    fee_sat = next.fee_sat, feerate_sat_kvb = next.feerate_sat_kvb, "batch refused before it left: {how}");
                (batch, tx, sending) = (next, next_tx, moved);
            }
            Ok(None) => {
                tracing::warn!(batch_id = %batch.batch_id, %reason, "batch refused; the saga tries again");
                break;
            }
            Err(e) => {
                tracing::warn!(batch_id = %batch.batch_id, %reason, error = %e,
                    "batch refused and not built again; the saga tries again");
                break;
            }
        }
    }
    ctx.wake.notify_one();
    (batch, false)
}

/// The batch built again — from other coins than those of `refused` bitcoind says are spent, or
/// (refused for its fee: `reason`) from the same coins over bitcoind's floor — and stored as the
/// batch's transaction: its row, its transaction and its payouts as moved to it; `None` when
/// none of its coins is spent and its fee was not what bitcoind refused.
async fn rebuild(
    ctx: &Payments,
    batch: &BatchRow,
    (refused, reason): (Transaction, &str),
    queued: &[Queued],
    rate: Feerate,
) -> Result<Option<(BatchRow, Transaction, Vec<Payment>)>, String> {
    let (next, tx) = if sendero_wallet::below_floor(reason) {
        // Its fee under what bitcoind takes now: the same coins bid over that floor.
        let (tx, payout) = ctx.onchain.rebid(&ctx.store, refused, rate).await.map_err(|e| e.to_string())?;
        (batch.on_same_coins(&tx, &payout), tx)
    } else {
        if ctx.onchain.note_spent(refused).await.map_err(|e| e.to_string())?.is_empty() {
            return Ok(None);
        }
        let payees = payees(ctx, queued).map_err(|e| e.to_string())?;
        let (tx, payout, _) =
            ctx.onchain.prepare_with(&ctx.store, payees, rate, vec![]).await.map_err(|e| e.to_string())?;
        (BatchRow { consolidated_inputs: 0, consolidation_fee_sat: 0, ..batch.on(&tx, &payout) }, tx)
    };
    bumper::switch(ctx, batch, &next, &tx).map_err(|e| e.to_string())?;
    let store = Arc::clone(&ctx.store);
    let moved = tokio::task::block_in_place(|| {
        queued.iter().map(|q| store.payment(&q.payment.payment_id)).collect::<Result<Vec<_>, StoreError>>()
    })
    .map_err(|e| e.to_string())?;
    Ok(Some((next, tx, moved.into_iter().flatten().collect())))
}

/// The batch's transaction, built and signed (not stored, not sent), its row and each payout's
/// output and fee share.
async fn build(
    ctx: &Payments,
    queued: &[Queued],
    departure: &crate::batch::Departure,
) -> Result<(Transaction, BatchRow, Vec<BatchPayout>), BatchError> {
    let payees = payees(ctx, queued)?;
    // To the sat/kvB, as estimated: a market at 2.4 sat/vB is paid 2.4, not 3.
    let rate = Feerate::from_sat_per_kvb(departure.feerate_sat_kvb.max(1));
    let scripts: Vec<ScriptBuf> = payees.iter().map(|p| p.address.script_pubkey()).collect();
    let extra = tokio::task::block_in_place(|| super::batch_tx::extras(ctx, queued, rate.sat_per_kvb()))?;
    let (tx, payout, swept) = ctx.onchain.prepare_with(&ctx.store, payees, rate, extra).await?;
    let now = crate::unix_now();
    let batch = BatchRow {
        batch_id: crate::secret::sortable_id("bt_"),
        txid: payout.txid.to_string(),
        raw_tx: serialize(&tx),
        fee_sat: payout.fee_sat,
        feerate_sat_kvb: rate.sat_per_kvb(),
        feerate_sat_vb: rate.sat_per_vb_ceil(),
        vsize: payout.vsize,
        payouts: queued.len() as u64,
        reason: departure.reason.as_str().to_owned(),
        state: "signed".into(),
        created_at: now,
        priority: urgent(queued).as_str().to_owned(),
        broadcast_height: None,
        consolidated_inputs: swept.inputs.len() as u64,
        consolidation_fee_sat: swept.fee_sat,
    };
    let places = places(&tx, queued, &scripts, (payout.fee_sat.saturating_sub(swept.fee_sat), rate.sat_per_kvb()))?;
    if !swept.inputs.is_empty() {
        tracing::info!(batch_id = %batch.batch_id, txid = %batch.txid, inputs = swept.inputs.len(),
            input_sat = swept.input_sat, consolidation_fee_sat = swept.fee_sat, fee_sat = batch.fee_sat,
            "the batch consolidates small coins");
    }
    Ok((tx, batch, places))
}

/// Each queued payout's output.
fn payees(ctx: &Payments, queued: &[Queued]) -> Result<Vec<Payee>, WalletError> {
    queued.iter().map(|q| super::saga::payee(ctx, &q.payment)).collect()
}

/// The most urgent priority among `queued`.
fn urgent(queued: &[Queued]) -> Priority {
    queued.iter().filter_map(|q| Priority::parse(&q.priority)).min().unwrap_or(Priority::Normal)
}

/// A batch bitcoind took: its payouts step to `sent`.
fn record_sent(ctx: &Payments, batch: &BatchRow, sending: &[Payment]) {
    crate::failpoint::hit("batch.broadcast");
    let steps: Vec<(&Payment, Change)> = sending
        .iter()
        .map(|p| {
            let mut change = Change { next: Some(Payment { state: State::Sent, ..p.clone() }), ..Change::default() };
            complete(ctx, p, &mut change);
            (p, change)
        })
        .collect();
    let store = Arc::clone(&ctx.store);
    let at = (crate::unix_now(), u64::from(ctx.onchain.treasury().synced_height()));
    if let Err(e) = tokio::task::block_in_place(|| store.batch_broadcast(&batch.batch_id, &steps, at)) {
        tracing::error!(batch_id = %batch.batch_id, error = %e, "batch broadcast but not recorded; the saga records it");
    }
    ctx.webhooks_wake.notify_one();
    ctx.wake.notify_one();
}

/// `sending` (the batcher's broadcast did not happen or was not recorded): broadcasts the stored
/// transaction again, as is — or, refused because its family can never confirm, the one it is
/// built again as ([`bumper::renew`]) — and marks the batch `broadcast`; the payout's step to
/// `sent`, or why to retry. Refused otherwise, it may have left before a crash: it is `broadcast`
/// and `sent` too, so that the bumper bids it again if it stays out (a later look offers it
/// again). `held`: the caller holds [`crate::rails::onchain::Onchain::spending`].
pub(super) async fn publish_batch(ctx: &Payments, p: &Payment, held: bool) -> Result<Change, String> {
    let store = Arc::clone(&ctx.store);
    let id = p.payment_id.clone();
    let mut renewed = false;
    let batch_id = loop {
        let (batch, _) = match tokio::task::block_in_place(|| store.batch_of(&id)) {
            Ok(Some(found)) => found,
            Ok(None) => return Err(format!("payout {id} is sending but belongs to no batch")),
            Err(e) => return Err(e.to_string()),
        };
        let tx: Transaction = deserialize(&batch.raw_tx).map_err(|e| format!("stored batch unreadable: {e}"))?;
        match ctx.onchain.publish(tx).await {
            Ok(()) => break batch.batch_id,
            // Refused, and the wallet does not have it: built again when its family can never
            // confirm; otherwise it may have left before a crash, and counts as out from here —
            // offered again, and bid again by the bumper if it stays out.
            Err(WalletError::Broadcast(reason)) if ctx.onchain.treasury().transaction(&batch.txid).is_none() => {
                if !renewed && bumper::renew(ctx, &batch, held).await.map_err(|e| e.to_string())? {
                    renewed = true;
                    continue;
                }
                if ctx.waiting_out.lock().unwrap_or_else(|e| e.into_inner()).insert(format!("refused:{}", batch.txid)) {
                    tracing::warn!(batch_id = %batch.batch_id, txid = %batch.txid, %reason,
                        "bitcoind refuses the stored batch now; it may have left before, so it counts as out: offered again, and bid again if it stays out");
                }
                break batch.batch_id;
            }
            Err(WalletError::Broadcast(_)) => break batch.batch_id,
            Err(e) => return Err(e.to_string()),
        }
    };
    // The batch is out (a crash came before the batcher recorded it): the bumper weighs it.
    let at = (crate::unix_now(), u64::from(ctx.onchain.treasury().synced_height()));
    tokio::task::block_in_place(|| store.batch_broadcast(&batch_id, &[], at)).map_err(|e| e.to_string())?;
    let mut change = Change { next: Some(Payment { state: State::Sent, ..p.clone() }), ..Change::default() };
    complete(ctx, p, &mut change);
    Ok(change)
}

/// `sent`: settled with its fee share once its batch has the confirmations asked for (`None`
/// while it waits); a batch gone from the wallet (evicted) is broadcast again, or built again
/// when its family can never confirm ([`bumper::renew`]; `held` as for [`publish_batch`]).
pub(super) async fn batch_outcome(ctx: &Payments, p: &Payment, held: bool) -> Result<Option<Change>, String> {
    let store = Arc::clone(&ctx.store);
    let id = p.payment_id.clone();
    let read = || match tokio::task::block_in_place(|| store.batch_of(&id)) {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(format!("payout {id} was sent but belongs to no batch")),
        Err(e) => Err(e.to_string()),
    };
    let (mut batch, mut place) = read()?;
    let ours = ctx.onchain.treasury().transaction(&batch.txid);
    // Another transaction of its family may be the one that confirmed (or the one to keep).
    if ours.as_ref().is_none_or(|t| t.confirmation_height.is_none())
        && bumper::adopt_paying(ctx, &batch, (ours.is_some(), false), held).await.map_err(|e| e.to_string())?
    {
        (batch, place) = read()?;
    }
    let Some(tx) = ctx.onchain.treasury().transaction(&batch.txid) else {
        let tx: Transaction = deserialize(&batch.raw_tx).map_err(|e| format!("stored batch unreadable: {e}"))?;
        return match ctx.onchain.publish(tx).await {
            Ok(()) => Ok(None),
            // A replacement refused while the transaction it replaces still counts: that one is
            // the batch's again.
            // Or, when its family can never confirm, it is built again.
            Err(e @ WalletError::Broadcast(_)) => {
                let moved = match bumper::adopt_paying(ctx, &batch, (false, true), held).await {
                    Ok(false) => bumper::renew(ctx, &batch, held).await,
                    adopted => adopted,
                };
                match moved {
                    Ok(true) => Ok(None),
                    Ok(false) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        };
    };
    let needed = ctx.config.routing.onchain_confirmations.max(1);
    let tip = ctx.onchain.treasury().synced_height();
    match tx.confirmation_height {
        Some(h) if tip + 1 >= h + needed => {
            if let Err(e) = ctx.store.batch_confirmed(&batch.batch_id, crate::unix_now()) {
                tracing::error!(batch_id = %batch.batch_id, error = %e, "recording a batch confirmed");
            }
            book_consolidation(ctx, &batch).map_err(|e| e.to_string())?;
            let rail_ref = format!("{}:{}", batch.txid, place.vout);
            let mut change = settle(p, place.fee_share_sat * 1_000, Some(rail_ref));
            complete(ctx, p, &mut change);
            Ok(Some(change))
        }
        _ => Ok(None),
    }
}

/// Books what a confirmed batch's consolidated coins cost (`fees:consolidation`, as a standalone
/// consolidation's fee), once per transaction, before its first payout settles.
fn book_consolidation(ctx: &Payments, batch: &BatchRow) -> Result<(), LedgerError> {
    if batch.consolidation_fee_sat == 0 {
        return Ok(());
    }
    let msat = i64::try_from(batch.consolidation_fee_sat * 1_000).unwrap_or(i64::MAX);
    let postings = [Posting::btc("treasury:onchain", -msat), Posting::btc("fees:consolidation", msat)];
    let reference = format!("consolidation:{}", batch.txid);
    ctx.store.ledger_post(BATCH_CONSOLIDATION, &reference, &postings, crate::unix_now())?;
    Ok(())
}
