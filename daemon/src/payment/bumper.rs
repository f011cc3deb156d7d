//! Fee bumping: batches and single `onchain` payouts whose transaction is still unconfirmed after
//! their priority's `bump_after_blocks` (sooner near their ETA bound) are lifted to what the next
//! block needs, up to the priority's ceiling ([`crate::batch::bump`]), weighing a transaction as a
//! miner does (its ancestor package, or a descendant paying for it). One that nothing spends yet
//! is replaced (RBF: the same outputs, the higher fee from its change); one that other
//! unconfirmed transactions already spend from gets a child paying for the package instead
//! ([`super::cpfp`]): a replacement would evict them. The oldest are looked at first.
//!
//! A batch's replacement, every payout's new output and fee share, and the replaced transaction
//! are stored before the replacement is broadcast (a single payout's: [`super::payout_bump`]).
//! The original and its replacements spend a common input, so at most one confirms; whichever
//! does is adopted, and the ledger settles each payout with its share of *that* fee. A batch that
//! consolidated keeps its extra coins in the replacement; their part of the fee is scaled with
//! the feerate (rounded down), the payouts share the rest.

use std::sync::Arc;
use std::time::Duration;

use sendero_wallet::bitcoin::consensus::deserialize;
use sendero_wallet::bitcoin::{ScriptBuf, Transaction};
use sendero_wallet::{Feerate, Payout, WalletError};

use super::batch_tx::places;
use super::batches::{BatchPayout, BatchRow, Queued, Replaced};
use super::payout_bump::{Fate, Standing};
use super::{payout_bump, Change, Payment, Payments, Rail, State};
use crate::batch::{self, InFlight, Policy, Priority};
use crate::store::StoreError;
use tokio_util::sync::CancellationToken;

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

/// How often stuck transactions are looked for.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// Most single payouts looked at per round.
const SENT_READ: usize = 10_000;

/// Looks for stuck transactions every 2 s until cancelled.
pub async fn run(ctx: Arc<Payments>, cancel: CancellationToken) {
    loop {
        bump_stuck(&ctx).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

/// A transaction that may be stuck, and what it carries.
pub(super) enum Stuck {
    /// A batch's transaction.
    Batch(BatchRow),
    /// A single `onchain` payout's.
    Payout(Payment),
}

impl Stuck {
    fn created_at(&self) -> u64 {
        match self {
            Stuck::Batch(b) => b.created_at,
            Stuck::Payout(p) => p.created_at,
        }
    }

    /// Its transaction's id.
    pub(super) fn txid(&self) -> &str {
        match self {
            Stuck::Batch(b) => &b.txid,
            Stuck::Payout(p) => p.rail_ref.as_deref().unwrap_or_default(),
        }
    }
}

/// Stored children broadcast again, then every unconfirmed batch and single payout the policy
/// says is stuck sped up; logs what it did.
pub async fn bump_stuck(ctx: &Payments) {
    super::cpfp::resend(ctx).await;
    let policy = Policy::from_config(&ctx.config);
    let waiting = match waiting(ctx, &policy) {
        Ok(w) if w.is_empty() => return,
        Ok(w) => w,
        Err(e) => return tracing::error!(error = %e, "reading unconfirmed payouts"),
    };
    // A replacement steps up by what bitcoind asks (0.1 sat/vB since v30), not more. A child
    // (for a transaction others already spend from) adds its own bytes to lift the package: it
    // still waits for a step of 1 sat/vB, as before.
    let step = ctx.onchain.replacement_step().await;
    let replaced = Policy { replacement_step_sat_kvb: step, ..policy.clone() };
    let next_block = match ctx.onchain.estimate(1).await {
        Ok(f) => f.feerate.sat_per_kvb(),
        Err(e) => return tracing::warn!(error = %e, "no feerate to bump transactions with"),
    };
    let now = crate::unix_now();
    // Each priority's deadline cap: a transaction waits out a spike above it until its last blocks.
    let caps = super::batch_policy::history(ctx).deadline_caps(now, &policy);
    let mut waits_out = Vec::new();
    for (stuck, in_flight, Standing { gone, has_children, .. }) in waiting {
        let cap = caps[in_flight.priority as usize];
        let policy = if has_children { &policy } else { &replaced };
        match batch::bump(&in_flight, now, next_block, cap, policy) {
            Some(rate) if gone => rebid(ctx, &stuck, Feerate::from_sat_per_kvb(rate)).await,
            Some(rate) => speed_up(ctx, &stuck, in_flight.feerate_sat_kvb, Feerate::from_sat_per_kvb(rate)).await,
            None if batch::bump(&in_flight, now, next_block, None, policy).is_some() => {
                waits_out.push((stuck.txid().to_owned(), cap, in_flight.eta_bound.saturating_sub(now)));
            }
            None => {}
        }
    }
    // Said once when a transaction starts waiting out high fees, not every round.
    let mut said = ctx.waiting_out.lock().unwrap_or_else(|e| e.into_inner());
    // (`rebid:`, `held:` and `refused:` entries are said once per transaction, and kept.)
    said.retain(|txid| txid.contains(':') || waits_out.iter().any(|w| &w.0 == txid));
    for (txid, cap, left) in waits_out {
        if said.insert(txid.clone()) {
            tracing::info!(%txid, next_block_sat_kvb = next_block, deadline_cap_sat_kvb = cap, secs_to_eta_bound = left,
                "stuck transaction waits out high fees: the next block asks more than its priority's deadline cap; it is bumped in its last blocks at the latest");
        }
    }
}

/// Unconfirmed batches and single payouts that have waited a block or more, as the policy
/// weighs them; and how each stands (gone from bitcoind's mempool, to be bid again: [`rebid`]).
fn waiting(ctx: &Payments, policy: &Policy) -> Result<Vec<(Stuck, InFlight, Standing)>, StoreError> {
    let tip = u64::from(ctx.onchain.treasury().synced_height());
    let mut found = Vec::new();
    for b in ctx.store.unconfirmed_batches()? {
        let Some(height) = b.broadcast_height else { continue };
        let Some(standing) = payout_bump::standing(ctx, &b.txid, &b.raw_tx) else { continue };
        let priority = Priority::parse(&b.priority).unwrap_or(Priority::Normal);
        // The bound its payouts were promised (from their submission), as the simulator weighs
        // it: a batch leaves at its first payout's deadline, so its own time comes later.
        let bounds = [Priority::High, Priority::Normal, Priority::Low].map(|p| policy.class(p).max_eta_secs);
        let promised = ctx.store.batch_eta_bound(&b.batch_id, bounds)?;
        let in_flight = InFlight {
            priority,
            feerate_sat_kvb: standing.feerate_sat_kvb,
            blocks_unconfirmed: u32::try_from(tip.saturating_sub(height)).unwrap_or(u32::MAX),
            eta_bound: promised.unwrap_or(b.created_at + policy.class(priority).max_eta_secs),
        };
        found.push((Stuck::Batch(b), in_flight, standing));
    }
    for p in ctx.store.payments(None, &[State::Sent], None, SENT_READ)? {
        if p.rail == Rail::Onchain {
            if let Some((in_flight, standing)) = payout_bump::in_flight(ctx, &p, policy)? {
                found.push((Stuck::Payout(p), in_flight, standing));
            }
        }
    }
    found.retain(|(_, f, _)| f.blocks_unconfirmed >= 1);
    // A transaction is looked at after those it spends from, so that a child lifting a parent
    // also counts for the parent's other descendants; then the oldest first.
    found.sort_by_key(|(s, f, p)| (p.unconfirmed_ancestors, std::cmp::Reverse(f.blocks_unconfirmed), s.created_at()));
    Ok(found)
}

/// Bids `stuck`, gone from bitcoind's mempool and refused when offered again (its floor rose in
/// a fee spike, or a restarted bitcoind asks more), again at `rate` — at least what bitcoind's
/// mempool takes now: the same coins and outputs, the fee from its change
/// ([`crate::rails::onchain::Onchain::rebid`]); stored as the batch's or payout's transaction
/// before it is broadcast, the one it replaces kept with its family (should that one confirm
/// after all, from another node's mempool, it is adopted). Said once per transaction when it
/// cannot be.
async fn rebid(ctx: &Payments, stuck: &Stuck, rate: Feerate) {
    let _spending = ctx.onchain.spending().await;
    let raw = match stuck {
        Stuck::Batch(b) => &b.raw_tx,
        Stuck::Payout(p) => p.raw_tx.as_deref().unwrap_or_default(),
    };
    let txid = stuck.txid().to_owned();
    // Looked at again under the lock: the saga may have offered it again meanwhile.
    let still_gone = payout_bump::standing(ctx, &txid, raw).is_some_and(|s| s.gone);
    let (true, Ok(tx)) = (still_gone, deserialize::<Transaction>(raw)) else { return };
    let result = match ctx.onchain.rebid(&ctx.store, tx, rate).await {
        Ok((tx, payout)) => {
            tracing::info!(%txid, rebid = %payout.txid, to = %payout.feerate, fee_sat = payout.fee_sat,
                "a transaction gone from bitcoind's mempool, and refused there, bid again");
            match stuck {
                Stuck::Batch(b) => store_replacement(ctx, b, (&tx, &payout)).await.map(|_| ()),
                Stuck::Payout(p) => {
                    payout_bump::store_replacement(ctx, p, (&tx, &payout)).await.map(|_| ()).map_err(BumpError::from)
                }
            }
        }
        Err(e) => Err(e.into()),
    };
    let mut said = ctx.waiting_out.lock().unwrap_or_else(|e| e.into_inner());
    match result {
        Ok(()) => {
            said.remove(&format!("rebid:{txid}"));
        }
        Err(e) if said.insert(format!("rebid:{txid}")) => {
            tracing::warn!(%txid, error = %e, "a transaction gone from the mempool could not be bid again; tried again each round")
        }
        Err(_) => {}
    }
}

/// Lifts `stuck` to `rate` ([`lift`]), and says what it did.
async fn speed_up(ctx: &Payments, stuck: &Stuck, from_sat_kvb: u64, rate: Feerate) {
    let _spending = ctx.onchain.spending().await;
    let txid = stuck.txid().to_owned();
    let (from, to) = (Feerate::from_sat_per_kvb(from_sat_kvb), rate);
    match lift(ctx, stuck, rate).await {
        Ok(Lifted::Child { txid: child, fee_sat }) => tracing::info!(parent = %txid, %child, fee_sat, %from, %to,
            "stuck transaction lifted by a child (it has children: a replacement would evict them)"),
        Ok(Lifted::Replaced { txid: next, fee_sat }) => {
            if let Stuck::Batch(b) = stuck {
                tracing::info!(batch_id = %b.batch_id, replaced = %txid, txid = %next, %from, %to, fee_sat,
                    "batch fee bumped");
            }
        }
        Err(NotLifted::Held) => {
            if ctx.waiting_out.lock().unwrap_or_else(|e| e.into_inner()).insert(format!("held:{txid}")) {
                tracing::info!(%txid,
                    "stuck transaction left for now: a payout signed and not yet broadcast (or out of the mempool) spends from it");
            }
        }
        Err(NotLifted::Failed(e)) => match stuck {
            _ if e.by_child => tracing::warn!(%txid, error = %e.error, "no child could pay for a stuck transaction"),
            Stuck::Batch(b) => tracing::warn!(batch_id = %b.batch_id, error = %e.error, "batch could not be bumped"),
            Stuck::Payout(p) => {
                tracing::warn!(payment_id = %p.payment_id, error = %e.error, "payout could not be bumped")
            }
        },
        Err(NotLifted::Unreadable(e)) => {
            tracing::warn!(%txid, error = %e, "reading stored transactions; not bumping now")
        }
        Err(NotLifted::NotPending | NotLifted::AlreadyPays(_) | NotLifted::Moved) => {}
    }
}

/// What [`lift`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lifted {
    /// Replaced (stored, then broadcast): the new transaction and its fee.
    Replaced { txid: String, fee_sat: u64 },
    /// A child pays for it (stored, then broadcast): the child and its fee.
    Child { txid: String, fee_sat: u64 },
}

/// Why [`lift`] did nothing.
#[derive(Debug)]
pub(super) enum NotLifted {
    /// The wallet does not count it as unconfirmed: confirmed, or gone from bitcoind's mempool.
    NotPending,
    /// It already pays this much (with what pays for it), sat/kvB: at least what was asked.
    AlreadyPays(u64),
    /// A payout signed and stored, not yet broadcast (or out of bitcoind's mempool), spends from
    /// it: a replacement would make that payout invalid, and a child could spend the same
    /// output. It can be lifted once that payout is out.
    Held,
    /// The payout moved meanwhile (nothing was broadcast).
    Moved,
    /// The stored transactions could not be read.
    Unreadable(StoreError),
    /// Building, storing or broadcasting failed.
    Failed(LiftError),
}

/// A failed lift, and whether it was a child's.
#[derive(Debug)]
pub(super) struct LiftError {
    pub error: BumpError,
    pub by_child: bool,
}

/// Lifts `stuck` to `rate`: replaced when nothing spends it yet, otherwise a child pays for it (a
/// replacement would evict the transactions that spend it). The caller holds
/// [`crate::rails::onchain::Onchain::spending`].
pub(super) async fn lift(ctx: &Payments, stuck: &Stuck, rate: Feerate) -> Result<Lifted, NotLifted> {
    let txid = stuck.txid().to_owned();
    // Weighed again under the lock: a payout may have spent from it meanwhile, or a child lifted
    // it this round.
    let pending = ctx.onchain.treasury().pending(&txid).ok_or(NotLifted::NotPending)?;
    if pending.effective_sat_kvb >= rate.sat_per_kvb() {
        return Err(NotLifted::AlreadyPays(pending.effective_sat_kvb));
    }
    let held = ctx.store.signed_away().map_err(NotLifted::Unreadable)?;
    if ctx.onchain.treasury().family_spent_by(&txid, &held) {
        return Err(NotLifted::Held);
    }
    let failed = |by_child| move |error: BumpError| NotLifted::Failed(LiftError { error, by_child });
    if pending.has_children {
        let c = super::cpfp::pay_for(ctx, &txid, rate).await.map_err(|e| failed(true)(e.into()))?;
        return Ok(Lifted::Child { txid: c.txid, fee_sat: c.fee_sat });
    }
    match stuck {
        Stuck::Batch(b) => {
            let next = replace(ctx, b, rate).await.map_err(failed(false))?;
            Ok(Lifted::Replaced { txid: next.txid, fee_sat: next.fee_sat })
        }
        Stuck::Payout(p) => {
            let next = payout_bump::replace(ctx, p, rate).await.map_err(|e| failed(false)(e.into()))?;
            let (txid, fee_sat) = next.ok_or(NotLifted::Moved)?;
            Ok(Lifted::Replaced { txid, fee_sat })
        }
    }
}

/// Replaces `b`'s transaction at `rate`: stored, then broadcast. The caller holds
/// [`crate::rails::onchain::Onchain::spending`].
async fn replace(ctx: &Payments, b: &BatchRow, rate: Feerate) -> Result<BatchRow, BumpError> {
    let (tx, payout) = ctx.onchain.bump(&ctx.store, &b.txid, rate).await?;
    store_replacement(ctx, b, (&tx, &payout)).await
}

/// Makes `tx` (built as `payout`: the same coins and outputs, a higher fee) `b`'s transaction,
/// stored, then broadcast. The caller holds [`crate::rails::onchain::Onchain::spending`].
async fn store_replacement(
    ctx: &Payments,
    b: &BatchRow,
    (tx, payout): (&Transaction, &Payout),
) -> Result<BatchRow, BumpError> {
    let tip = u64::from(ctx.onchain.treasury().synced_height());
    let next = BatchRow { broadcast_height: Some(tip), ..b.on_same_coins(tx, payout) };
    switch(ctx, b, &next, tx)?;
    crate::failpoint::hit("batch.bumped");
    if let Err(e) = ctx.onchain.publish(tx.clone()).await {
        // Stored: the saga broadcasts it again (or adopts the original, should that confirm).
        tracing::warn!(batch_id = %b.batch_id, error = %e, "replacement not broadcast now");
    }
    Ok(next)
}

/// Makes `tx` (the row `next`) the batch's transaction: each payout's output and fee share read
/// from it, each payout's `rail_ref` moved to it.
pub(super) fn switch(ctx: &Payments, current: &BatchRow, next: &BatchRow, tx: &Transaction) -> Result<(), BumpError> {
    let store = Arc::clone(&ctx.store);
    let (_, payouts) = tokio::task::block_in_place(|| store.batch(&current.batch_id))?
        .ok_or_else(|| BumpError::Unreadable(current.batch_id.clone()))?;
    let payments = payouts
        .iter()
        .map(|bp| store.payment(&bp.payment_id)?.ok_or(StoreError::Sql(crate::store::sql::Error::QueryReturnedNoRows)))
        .collect::<Result<Vec<Payment>, StoreError>>()?;
    let queued: Vec<Queued> =
        payments.iter().map(|p| Queued { payment: p.clone(), priority: current.priority.clone() }).collect();
    let scripts = payments
        .iter()
        .map(|p| Ok(ctx.onchain.treasury().parse_address(&p.destination)?.script_pubkey()))
        .collect::<Result<Vec<ScriptBuf>, WalletError>>()?;
    let payouts_fee = next.fee_sat.saturating_sub(next.consolidation_fee_sat);
    let placed = places(tx, &queued, &scripts, (payouts_fee, next.feerate_sat_kvb))?;
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

/// Puts a batch whose family can never confirm — every transaction of it spends a coin another
/// transaction spent [`payout_bump::CONFLICT_BURIED`] blocks deep — in a new one: its payouts
/// built again from other coins (without consolidation) at what its most urgent, earliest due
/// payout pays leaving now, made the batch's transaction with every payout's new output and fee
/// share (the dead one kept as replaced), its blocks counted from now; broadcast by the next look.
/// True when it was (or another step did it meanwhile). Built under
/// [`crate::rails::onchain::Onchain::spending`], taken here unless the caller `held` it.
pub(super) async fn renew(ctx: &Payments, b: &BatchRow, held: bool) -> Result<bool, BumpError> {
    let store = Arc::clone(&ctx.store);
    let replaced: Vec<Replaced> = tokio::task::block_in_place(|| store.replaced(&b.batch_id))?;
    let current: Transaction = deserialize(&b.raw_tx).map_err(|_| BumpError::Unreadable(b.batch_id.clone()))?;
    let (coin, by) = match payout_bump::family_fate(ctx, &current, replaced.iter().map(|r| r.raw_tx.as_slice())) {
        Fate::Dead(coin, by) => (coin, by),
        Fate::Another(i) => return adopt(ctx, b, &replaced[i], held).await,
        Fate::MayConfirm => return Ok(false),
    };
    let _spending = if held { None } else { Some(ctx.onchain.spending().await) };
    let id = b.batch_id.clone();
    let Some((current, payouts)) = tokio::task::block_in_place(|| store.batch(&id))? else { return Ok(false) };
    if current.txid != b.txid {
        return Ok(true);
    }
    let payments = tokio::task::block_in_place(|| {
        payouts.iter().map(|bp| store.payment(&bp.payment_id)).collect::<Result<Vec<_>, StoreError>>()
    })?;
    let payments: Vec<Payment> = payments.into_iter().flatten().collect();
    let earliest = crate::batch::Queued {
        priority: Priority::parse(&b.priority).unwrap_or(Priority::Normal),
        output: crate::batch::OutputKind::P2wpkh,
        amount_sat: 0,
        submitted_at: payments.iter().map(|p| p.created_at).min().unwrap_or_else(crate::unix_now),
    };
    let rate = super::fee_holds::leaving_now(ctx, &earliest).await.map_err(WalletError::Chain)?;
    let payees = payments.iter().map(|p| super::saga::payee(ctx, p)).collect::<Result<Vec<_>, _>>()?;
    let (tx, payout, _) = ctx.onchain.prepare_with(&ctx.store, payees, rate, vec![]).await?;
    let next = BatchRow {
        broadcast_height: Some(u64::from(ctx.onchain.treasury().synced_height())),
        consolidated_inputs: 0,
        consolidation_fee_sat: 0,
        ..current.on(&tx, &payout)
    };
    switch(ctx, &current, &next, &tx)?;
    tracing::warn!(batch_id = %b.batch_id, dead = %b.txid, %coin, %by, txid = %next.txid, feerate = %rate,
        fee_sat = next.fee_sat, "the batch's transaction can never confirm; built again in a new family");
    crate::failpoint::hit("batch.renewed");
    ctx.wake.notify_one();
    Ok(true)
}

/// Makes another transaction of the batch's family its own again when that one is paying
/// instead: it confirmed; or, when the wallet does not hold the batch's own (`ours_held` false),
/// the wallet holds it and other transactions already spend from it (broadcasting the batch's own
/// would evict them), or holds it at all when `any_held` (the batch's own was refused). True when
/// it did. Under [`crate::rails::onchain::Onchain::spending`], taken here unless the caller `held`
/// it.
pub(super) async fn adopt_paying(
    ctx: &Payments,
    b: &BatchRow,
    (ours_held, any_held): (bool, bool),
    held: bool,
) -> Result<bool, BumpError> {
    let store = Arc::clone(&ctx.store);
    let replaced: Vec<Replaced> = tokio::task::block_in_place(|| store.replaced(&b.batch_id))?;
    let pays = |r: &&Replaced| payout_bump::pays_instead(ctx, &r.txid, ours_held, any_held);
    match replaced.iter().find(pays) {
        Some(r) => adopt(ctx, b, r, held).await,
        None => Ok(false),
    }
}

/// Makes `r`, another transaction of the batch's family, its own again (true; also when another
/// step did meanwhile). Under [`crate::rails::onchain::Onchain::spending`], taken here unless the
/// caller `held` it.
async fn adopt(ctx: &Payments, b: &BatchRow, r: &Replaced, held: bool) -> Result<bool, BumpError> {
    let store = Arc::clone(&ctx.store);
    let _spending = if held { None } else { Some(ctx.onchain.spending().await) };
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
        feerate_sat_kvb: r.feerate_sat_kvb,
        feerate_sat_vb: r.feerate_sat_vb,
        vsize: tx.vsize() as u64,
        consolidation_fee_sat: r.consolidation_fee_sat,
        ..current.clone()
    };
    switch(ctx, &current, &next, &tx)?;
    tracing::warn!(batch_id = %b.batch_id, txid = %r.txid, replaced_by = %current.txid,
        "the batch is back on another transaction of its family");
    Ok(true)
}
