//! The saga runner: one task that carries every open payment forward, one persisted step at a
//! time, and after a restart resumes each from its last state. The rail call is keyed by the
//! payment: an on-chain payout's signed transaction is stored before it is broadcast (a resumed
//! saga broadcasts the same one), a BOLT11 invoice is paid under its payment hash, a BOLT12
//! offer under the payment id as payer note, and a keysend with a preimage derived from the
//! payment id (so under one payment hash); a resumed saga finds the node's payment first. Only
//! passing failures (bitcoind or the node unreachable) are retried, with backoff; when an outcome
//! is unclear, the rail's own record — the wallet's transaction, the node's payment — decides.

use std::sync::Arc;
use std::time::Duration;

use sendero_wallet::bitcoin::consensus::{deserialize, serialize};
use sendero_wallet::bitcoin::Transaction;
use sendero_wallet::{Feerate, Payee, WalletError};
use tokio_util::sync::CancellationToken;

use super::payout_bump::Fate;
use super::steps::{complete, fail, first_step, log_step, settle};
use super::{batcher, payout_bump, Change, Payment, Payments, Rail, State, MAX_REBUILDS};
use crate::route::learn::Outcome;

mod lightning;

/// Longest wait between two retries of a step, seconds.
const MAX_BACKOFF_SECS: u64 = 60;
/// Wait before looking again at a step that waits for something transient, seconds.
const SOON_SECS: u64 = 1;

/// A single payout signed by this process and not yet offered to bitcoind.
#[derive(Debug, Clone)]
pub struct Unoffered {
    /// Its transaction.
    txid: String,
    /// The feerate it was built at.
    feerate: Feerate,
    /// How many times it was built again after bitcoind refused an earlier one.
    rebuilds: usize,
}

/// Runs until `cancel`, advancing the payments that are due: at once when something can move
/// one (a submit, a payment event of the Lightning node), when the earliest step waiting to be
/// retried is due, and otherwise every `routing.saga_interval_ms`.
pub async fn run(ctx: Arc<Payments>, cancel: CancellationToken) {
    let tick = Duration::from_millis(ctx.config.routing.saga_interval_ms.max(50));
    let mut resumed = false;
    loop {
        let due = {
            let store = Arc::clone(&ctx.store);
            tokio::task::spawn_blocking(move || store.due_payments(crate::unix_now(), 256)).await
        };
        match due {
            Ok(Ok(due)) => {
                if !resumed {
                    resumed = true;
                    if !due.is_empty() {
                        tracing::info!(open = due.len(), "resuming open payments");
                    }
                }
                // Ordered by the store: payments already on their way go first (an on-chain payout
                // signed before a crash is broadcast before a new one picks coins).
                for payment in due {
                    if cancel.is_cancelled() {
                        return;
                    }
                    advance(&ctx, payment).await;
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "reading open payments"),
            Err(e) => tracing::error!(error = %e, "payment task failed"),
        }
        let wait = until_next_retry(&ctx).await.map_or(tick, |w| w.min(tick));
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = ctx.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long until the earliest step waiting to be retried is due; `None` when none waits.
async fn until_next_retry(ctx: &Payments) -> Option<Duration> {
    let store = Arc::clone(&ctx.store);
    let at = match tokio::task::spawn_blocking(move || store.next_retry_at(crate::unix_now())).await {
        Ok(Ok(at)) => at?,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reading when open payments retry");
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "payment task failed");
            return None;
        }
    };
    let due = std::time::UNIX_EPOCH + Duration::from_secs(at);
    Some(due.duration_since(std::time::SystemTime::now()).unwrap_or_default())
}

/// What one step decided.
enum Step {
    /// Persist this change and continue with the next step.
    Next(Box<Change>),
    /// Nothing to do until the rail moves (look again next tick).
    Wait,
    /// A passing failure: try this step again later, waiting longer each time.
    Retry(String),
    /// Something that clears by itself within seconds (the node starting, channels
    /// reconnecting): look again shortly, without backing off.
    RetrySoon(String),
}

impl Step {
    fn next(change: Change) -> Step {
        Step::Next(Box::new(change))
    }
}

/// What follows a recorded step: the router learns, webhooks are woken for a final state, the
/// step is logged.
fn after_step(ctx: &Payments, from: &Payment, next: &Payment, outcome: Option<&Outcome>) {
    if let Some(o) = outcome {
        ctx.learner.lock().record(o, &ctx.config.routing.tuning());
    }
    if next.state != from.state && next.state.is_final() {
        ctx.webhooks_wake.notify_one();
    }
    log_step(from, next);
}

/// Carries `p` as far as it goes now, inside a `payment` span that continues the trace it was
/// submitted under.
async fn advance(ctx: &Payments, p: Payment) {
    let trace_id = ctx.store.trace_of(&p.payment_id).ok().flatten().unwrap_or_default();
    let span = tracing::info_span!("payment", trace_id = %trace_id, payment_id = %p.payment_id,
        route_id = %p.route_id, rail = p.rail.as_str(), fx_quote_id = ?p.fx_quote_id);
    crate::telemetry::continue_trace(&span, &trace_id);
    tracing::Instrument::instrument(advance_traced(ctx, p), span).await
}

/// Moves `p` forward until it waits, retries or is final.
async fn advance_traced(ctx: &Payments, mut p: Payment) {
    // An on-chain payout holds the treasury from signing its transaction to broadcasting it.
    let _spending = match (p.rail, p.state) {
        (Rail::Onchain, State::Debited | State::Sending) | (Rail::OnchainBatch, State::Sending) => {
            Some(ctx.onchain.spending().await)
        }
        _ => None,
    };
    let held = _spending.is_some();
    loop {
        let Some(step) = step(ctx, &p, held).await else { return };
        let now = crate::unix_now();
        match step {
            Step::Next(mut change) => {
                if let Some(next) = change.next.as_mut().filter(|n| n.state != p.state) {
                    // A new step starts with a clean retry count.
                    (next.attempts, next.next_attempt_at) = (0, 0);
                }
                complete(ctx, &p, &mut change);
                let next = change.next.clone().unwrap_or_else(|| p.clone());
                let outcome = change.outcome.clone();
                let store = Arc::clone(&ctx.store);
                let from = p.clone();
                match tokio::task::spawn_blocking(move || store.change_payment(&from, &change, now)).await {
                    Ok(Ok(true)) => {
                        after_step(ctx, &p, &next, outcome.as_ref());
                        p = next;
                    }
                    Ok(Ok(false)) => return,
                    Ok(Err(e)) => {
                        return tracing::error!(payment_id = %p.payment_id, error = %e, "payment step not recorded")
                    }
                    Err(e) => return tracing::error!(payment_id = %p.payment_id, error = %e, "payment task failed"),
                }
            }
            Step::Wait => return,
            Step::Retry(ref reason) | Step::RetrySoon(ref reason) => {
                let attempts = p.attempts + 1;
                let delay = if matches!(step, Step::RetrySoon(_)) {
                    SOON_SECS
                } else {
                    (1_u64 << attempts.min(6)).min(MAX_BACKOFF_SECS)
                };
                tracing::warn!(payment_id = %p.payment_id, state = p.state.as_str(), attempts, retry_in_s = delay, %reason,
                    "payment step will be retried");
                let next = Payment { attempts, next_attempt_at: now + delay, ..p.clone() };
                let change = Change { next: Some(next), ..Change::default() };
                if let Err(e) = ctx.store.change_payment(&p, &change, now) {
                    tracing::error!(payment_id = %p.payment_id, error = %e, "payment retry not recorded");
                }
                return;
            }
        }
    }
}

/// What the payment's state asks next; `None` once it is final. The rail's own steps run in a
/// `rail.submit` span. `held`: this saga holds [`crate::rails::onchain::Onchain::spending`].
async fn step(ctx: &Payments, p: &Payment, held: bool) -> Option<Step> {
    use tracing::Instrument;
    Some(match p.state {
        State::Submitted => Step::next(first_step(p)),
        State::Debited => start(ctx, p).instrument(tracing::info_span!("rail.submit", step = "prepare")).await,
        State::Sending => resume(ctx, p, held).instrument(tracing::info_span!("rail.submit", step = "send")).await,
        State::Sent => outcome(ctx, p, held).await,
        State::Settled | State::Failed => return None,
    })
}

/// `debited →`: hand the payment to its rail.
async fn start(ctx: &Payments, p: &Payment) -> Step {
    tracing::debug!(rail = p.rail.as_str(), "handing the payout to its rail");
    match p.rail {
        Rail::OnUs => Step::next(settle(p, 0, None)),
        Rail::Onchain => prepare_onchain(ctx, p).await,
        // Queued: the batcher takes it from here.
        Rail::OnchainBatch => Step::Wait,
        Rail::Lightning => {
            Step::next(Change { next: Some(Payment { state: State::Sending, ..p.clone() }), ..Change::default() })
        }
    }
}

/// `sending`: the rail call, or its resumption.
async fn resume(ctx: &Payments, p: &Payment, held: bool) -> Step {
    tracing::debug!(rail = p.rail.as_str(), "sending the payout on its rail");
    match p.rail {
        Rail::Onchain => {
            crate::failpoint::hit("onchain.signed");
            publish_onchain(ctx, p, held).await
        }
        Rail::OnchainBatch => match batcher::publish_batch(ctx, p, held).await {
            Ok(change) => Step::next(change),
            Err(why) => Step::Retry(why),
        },
        Rail::Lightning => lightning::send(ctx, p).await,
        Rail::OnUs => Step::next(settle(p, 0, None)),
    }
}

/// Builds and signs the payout, and stores it (`sending`) before anything is broadcast.
async fn prepare_onchain(ctx: &Payments, p: &Payment) -> Step {
    let payee = match payee(ctx, p) {
        Ok(payee) => payee,
        Err(e) => return Step::next(fail(p, "invalid_destination", e.to_string())),
    };
    // Above its priority's ceiling it waits for fees (or its deadline).
    let rate = match super::fee_holds::single_fee(ctx, p).await {
        Ok(super::fee_holds::SingleFee::Pay(rate)) => rate,
        Ok(super::fee_holds::SingleFee::Wait) => return Step::Wait,
        Err(e) => return Step::Retry(e),
    };
    match ctx.onchain.prepare(&ctx.store, vec![payee.clone()], rate).await {
        Ok((tx, payout)) => Step::next(signed(ctx, p, &tx, &payout.txid.to_string(), rate, 0)),
        Err(e) => unbuilt(ctx, p, (payee, rate), e, ("onchain_failed", "")).await,
    }
}

/// A payout's transaction could not be built (`e`) for `payee` at `rate`: tried again when that
/// passes, failed otherwise (`code` unless the treasury is short; the message says `why` it was
/// built, when there is more to say than the error).
async fn unbuilt(
    ctx: &Payments,
    p: &Payment,
    (payee, rate): (Payee, Feerate),
    e: WalletError,
    (code, why): (&str, &str),
) -> Step {
    let message = |e: &WalletError| if why.is_empty() { e.to_string() } else { format!("{why}; built again: {e}") };
    match e {
        WalletError::Chain(_) | WalletError::Storage(_) => Step::Retry(e.to_string()),
        // Short only of coins a stored transaction signed away (the treasury could pay it with
        // them): they come back as its change once it is broadcast, or free if it fails.
        WalletError::InsufficientFunds { .. } => match ctx.onchain.payout_vsize(vec![payee], rate).await {
            Ok(_) => Step::Retry(format!("{e} beside stored transactions not yet broadcast; waiting for their change")),
            Err(_) => Step::next(fail(p, "insufficient_funds", message(&e))),
        },
        e => Step::next(fail(p, code, message(&e))),
    }
}

/// The output paying `p`.
pub(super) fn payee(ctx: &Payments, p: &Payment) -> Result<Payee, WalletError> {
    let address = ctx.onchain.treasury().parse_address(&p.destination)?;
    Ok(Payee { address, amount_sat: p.amount_msat.div_ceil(1_000) })
}

/// `sending` with `tx`, signed at `rate` (built again `rebuilds` times): stored before it is
/// broadcast, and known to this process as not yet offered to bitcoind.
fn signed(ctx: &Payments, p: &Payment, tx: &Transaction, txid: &str, rate: Feerate, rebuilds: usize) -> Change {
    unoffered(ctx, p, txid, rate, rebuilds);
    let next =
        Payment { state: State::Sending, rail_ref: Some(txid.to_owned()), raw_tx: Some(serialize(tx)), ..p.clone() };
    Change { next: Some(next), ..Change::default() }
}

/// Notes the payout's `txid`, signed at `rate` (built again `rebuilds` times), as not yet offered
/// to bitcoind by this process.
fn unoffered(ctx: &Payments, p: &Payment, txid: &str, rate: Feerate, rebuilds: usize) {
    let fresh = Unoffered { txid: txid.to_owned(), feerate: rate, rebuilds };
    ctx.unoffered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(p.payment_id.clone(), fresh);
}

/// Broadcasts the stored transaction (again, after a restart) and records it in the wallet.
async fn publish_onchain(ctx: &Payments, p: &Payment, held: bool) -> Step {
    let Some(tx) = p.raw_tx.as_deref().and_then(|raw| deserialize::<Transaction>(raw).ok()) else {
        return Step::next(fail(p, "internal", "the stored transaction is missing or unreadable".into()));
    };
    // Offered now: from here on bitcoind may have it, unless it refuses it at this first offer.
    let fresh = ctx.unoffered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&p.payment_id);
    let fresh = fresh.filter(|f| p.rail_ref.as_deref() == Some(f.txid.as_str()));
    match ctx.onchain.publish(tx.clone()).await {
        Ok(()) => {
            payout_bump::left(ctx, p);
            to_sent(p)
        }
        // Refused for good: unless the wallet already has it (a conflict with itself), it never
        // left, and nothing was paid.
        Err(WalletError::Broadcast(reason)) => {
            match p.rail_ref.as_deref().and_then(|t| ctx.onchain.treasury().transaction(t)) {
                Some(_) => to_sent(p),
                // A replacement refused while another transaction of its family still counts
                // (the original, or one that confirmed): that one is the payout's.
                None => match payout_bump::paying_member(ctx, p, false, true) {
                    Ok(Some(member)) => adopt(ctx, p, member),
                    Ok(None) => match fresh {
                        Some(fresh) => build_again(ctx, p, tx, fresh, reason).await,
                        None => offered_before(ctx, p, &tx, reason, held).await,
                    },
                    Err(e) => Step::Retry(e.to_string()),
                },
            }
        }
        Err(e) => Step::Retry(e.to_string()),
    }
}

/// The payout's step to `sent`: its transaction is out.
fn to_sent(p: &Payment) -> Step {
    Step::next(Change { next: Some(Payment { state: State::Sent, ..p.clone() }), ..Change::default() })
}

/// A payout offered before — it may have left: a crash or bitcoind cut the answer, or it was
/// out and fell from bitcoind's mempool (a restart, a floor that rose in a fee spike) — that
/// bitcoind refuses now (`reason`). Other nodes, or its payee, may still hold it, so it stays as
/// it is — `sent` (one still `sending`, stored before a crash, moves there: the bumper bids it
/// again if it stays out) — and is offered again, backing off, until it can never confirm (a
/// coin it spends spent by another transaction [`payout_bump::CONFLICT_BURIED`] blocks deep).
/// Then it goes back to another transaction of its family that may; when none may, it is built
/// again in a new family ([`payout_bump::renew`]), failed (credited back) only when that cannot
/// be built.
async fn offered_before(ctx: &Payments, p: &Payment, tx: &Transaction, reason: String, held: bool) -> Step {
    let family = match tokio::task::block_in_place(|| ctx.store.payout_replaced(&p.payment_id)) {
        Ok(family) => family,
        Err(e) => return Step::Retry(e.to_string()),
    };
    let (coin, by) = match payout_bump::family_fate(ctx, tx, family.iter().map(|r| r.raw_tx.as_slice())) {
        Fate::Dead(coin, by) => (coin, by),
        Fate::Another(i) => return adopt(ctx, p, family[i].clone()),
        Fate::MayConfirm => {
            let why = format!(
                "bitcoind refuses its transaction now ({reason}); it may have left and may still confirm, so it is kept and offered again"
            );
            if p.state != State::Sending {
                return Step::Retry(why);
            }
            // Stored before a crash, refused since: it counts as out from here, so that it is bid
            // again (the same coins, a fee bitcoind takes) if it stays out.
            tracing::warn!(payment_id = %p.payment_id, txid = ?p.rail_ref, "{why}; it counts as out from here");
            payout_bump::left(ctx, p);
            return to_sent(p);
        }
    };
    let why = format!("{reason}; its coin {coin} is spent by {by}, buried");
    let rate = async { super::fee_holds::leaving_now(ctx, &super::fee_holds::single_queued(ctx, p)?).await };
    let (to, rate) = match (payee(ctx, p), rate.await) {
        (Ok(to), Ok(rate)) => (to, rate),
        (Err(e), _) => return Step::next(fail(p, "invalid_destination", e.to_string())),
        (_, Err(e)) => return Step::Retry(e),
    };
    match payout_bump::renew(ctx, p, (to.clone(), rate), &why, held).await {
        Ok(Some(txid)) => {
            unoffered(ctx, p, &txid, rate, 0);
            ctx.wake.notify_one();
            Step::Wait
        }
        Ok(None) => Step::Wait,
        Err(e) => unbuilt(ctx, p, (to, rate), e, ("broadcast_rejected", &why)).await,
    }
}

/// A payout bitcoind refused at its first offer (`reason`): it never left. Refused for a fee
/// under bitcoind's floor, it is bid again from the same coins at 1 % over that floor
/// ([`crate::rails::onchain::Onchain::rebid`]; failed above `wallet.max_feerate_sat_vb`). When
/// coins it spends are already spent — by a transaction of ours the wallet has not seen yet
/// (one broadcast just before a restart, a replacement the wallet has not caught up with) — it
/// is built again at the same feerate from other coins, stored, and offered again, up to
/// [`MAX_REBUILDS`] times; otherwise it fails `broadcast_rejected`.
async fn build_again(ctx: &Payments, p: &Payment, tx: Transaction, fresh: Unoffered, reason: String) -> Step {
    let refused = || Step::next(fail(p, "broadcast_rejected", reason.clone()));
    if fresh.rebuilds >= MAX_REBUILDS {
        return refused();
    }
    if sendero_wallet::below_floor(&reason) {
        // Its fee is under what bitcoind takes now (a floor that rose, a bitcoind restarted with
        // a higher one): bid again from the same coins over that floor, within the ceiling.
        return match ctx.onchain.rebid(&ctx.store, tx, fresh.feerate).await {
            Ok((tx, payout)) => {
                let txid = payout.txid.to_string();
                tracing::warn!(payment_id = %p.payment_id, refused = ?p.rail_ref, %reason, txid, fee_sat = payout.fee_sat,
                    feerate_sat_kvb = payout.feerate.sat_per_kvb(), "payout refused before it left for its fee: bid again over bitcoind's floor");
                Step::next(signed(ctx, p, &tx, &txid, payout.feerate, fresh.rebuilds + 1))
            }
            Err(e) => Step::next(fail(p, "broadcast_rejected", format!("{reason}; not bid again: {e}"))),
        };
    }
    let spent = match ctx.onchain.note_spent(tx).await {
        Ok(spent) if spent.is_empty() => return refused(),
        Ok(spent) => spent,
        Err(e) => {
            tracing::warn!(payment_id = %p.payment_id, error = %e, "could not ask bitcoind which coins are spent");
            return refused();
        }
    };
    let Ok(payee) = payee(ctx, p) else { return refused() };
    let rate = fresh.feerate;
    match ctx.onchain.prepare(&ctx.store, vec![payee], rate).await {
        Ok((tx, payout)) => {
            let txid = payout.txid.to_string();
            tracing::warn!(payment_id = %p.payment_id, refused = ?p.rail_ref, %reason, spent = ?spent, txid,
                "payout refused before it left: coins it spent were already spent; built again from others");
            Step::next(signed(ctx, p, &tx, &txid, rate, fresh.rebuilds + 1))
        }
        Err(e) => {
            tracing::warn!(payment_id = %p.payment_id, error = %e, "payout refused and could not be built again");
            refused()
        }
    }
}

/// `sent` on chain: settled once its transaction — or the one of its family (replacements) that
/// confirmed instead — is deep enough, with that transaction's fee.
async fn onchain_outcome(ctx: &Payments, p: &Payment, rail_ref: &str, held: bool) -> Step {
    let tx = ctx.onchain.treasury().transaction(rail_ref);
    if tx.as_ref().is_none_or(|t| t.confirmation_height.is_none()) {
        match payout_bump::paying_member(ctx, p, tx.is_some(), false) {
            Ok(Some(member)) => return adopt(ctx, p, member),
            Ok(None) => {}
            Err(e) => return Step::Retry(e.to_string()),
        }
    }
    let Some(tx) = tx else {
        // Evicted from the mempool (or bitcoind restarted without it): broadcast again.
        return publish_onchain(ctx, p, held).await;
    };
    let needed = ctx.config.routing.onchain_confirmations.max(1);
    let tip = ctx.onchain.treasury().synced_height();
    match tx.confirmation_height {
        Some(h) if tip + 1 >= h + needed => Step::next(settle(p, tx.fee_sat.unwrap_or_default() * 1_000, None)),
        _ => Step::Wait,
    }
}

/// The payout goes back to another transaction of its family; the next look starts from the
/// stored payout (a retry written from `p` would undo the move).
fn adopt(ctx: &Payments, p: &Payment, member: payout_bump::ReplacedTx) -> Step {
    match payout_bump::adopt(ctx, p, member) {
        Ok(()) => Step::Wait,
        Err(e) => Step::Retry(e.to_string()),
    }
}

/// `sent`: what the rail says now.
async fn outcome(ctx: &Payments, p: &Payment, held: bool) -> Step {
    let Some(rail_ref) = p.rail_ref.clone() else {
        return Step::next(fail(p, "internal", "a sent payment without a rail reference".into()));
    };
    match p.rail {
        Rail::Onchain => onchain_outcome(ctx, p, &rail_ref, held).await,
        Rail::OnchainBatch => match batcher::batch_outcome(ctx, p, held).await {
            Ok(Some(change)) => Step::next(change),
            Ok(None) => Step::Wait,
            Err(why) => Step::Retry(why),
        },
        Rail::Lightning => lightning::outcome(ctx, p, &rail_ref).await,
        Rail::OnUs => Step::next(settle(p, 0, None)),
    }
}

/// Retries a step whose failure may pass, until the payment is `routing.lightning_wait_secs`
/// old; then fails it.
fn retry_or_fail(ctx: &Payments, p: &Payment, code: &str, why: String) -> Step {
    if crate::unix_now() < p.created_at + ctx.config.routing.lightning_wait_secs {
        Step::RetrySoon(why)
    } else {
        Step::next(fail(p, code, why))
    }
}
