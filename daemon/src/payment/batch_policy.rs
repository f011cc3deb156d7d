//! The daemon's side of the batching policy of [`crate::batch`]: the queue as the policy reads it
//! (priority, output type, amount, submission), the feerates it needs (bitcoind's estimate for
//! each priority's confirmation target, or the operator's override), and the departure it
//! decides — or, on `batch.trigger`, the whole queue at the rate its most urgent payout needs.

use sendero_wallet::WalletError;

use super::batches::Queued as Stored;
use super::Payments;
use crate::batch::size::OutputKind;
use crate::batch::{self, Departure, FeeHistory, Feerates, Policy, Priority};
use crate::config::Config;
use crate::store::sql::params;
use crate::store::{Store, StoreError};

/// The queue as the policy reads it; payouts whose address cannot be read are left out (the
/// submit checked it: they cannot occur).
pub fn view(ctx: &Payments, queued: &[Stored]) -> Vec<(usize, batch::Queued)> {
    queued
        .iter()
        .enumerate()
        .filter_map(|(i, q)| {
            let address = ctx.onchain.treasury().parse_address(&q.payment.destination).ok()?;
            let output = OutputKind::of_script(&address.script_pubkey())?;
            let priority = Priority::parse(&q.priority).unwrap_or(Priority::Normal);
            let amount_sat = q.payment.amount_msat.div_ceil(1_000);
            Some((i, batch::Queued { priority, output, amount_sat, submitted_at: q.payment.created_at }))
        })
        .collect()
}

/// The estimate for each priority's target, sat/kvB; the recent low (the policy's percentile of
/// the estimates for `high`'s target, the nearest the next block, seen over its window); each
/// priority's deadline cap (its own percentile of them); and yesterday's fall in those estimates.
/// Each look is recorded in [`Payments::fee_history`] (a sample per block interval at most).
pub async fn feerates(ctx: &Payments) -> Result<Feerates, WalletError> {
    let r = &ctx.config.routing;
    let rate = |target: u16| {
        let onchain = &ctx.onchain;
        async move { onchain.estimate(target).await.map(|f| f.feerate.sat_per_kvb()) }
    };
    let (high, normal, low) =
        (rate(r.high_target_blocks).await?, rate(r.normal_target_blocks).await?, rate(r.low_target_blocks).await?);
    let policy = Policy::from_config(&ctx.config);
    let now = crate::unix_now();
    let (kept, recent_low, cheaper_in_secs, deadline_caps) = {
        let mut history = history(ctx);
        let kept = history.record(now, high, policy.cheap_window_secs);
        let fall = history.cheaper_in(now, policy.forecast_fall_percent);
        (kept, history.recent_low(now, &policy), fall, history.deadline_caps(now, &policy))
    };
    if kept {
        let forget = now.saturating_sub(FeeHistory::kept_secs(policy.cheap_window_secs));
        let store = &ctx.store;
        if let Err(e) = tokio::task::block_in_place(|| store.record_fee_sample(now, high, forget)) {
            // The sample is kept in memory: only a restart before the next one loses it.
            tracing::warn!(error = %e, "a feerate sample was not stored");
        }
    }
    log_fall_ahead(ctx, cheaper_in_secs, policy.forecast_fall_percent);
    Ok(Feerates { high, normal, low, recent_low, cheaper_in_secs, deadline_caps })
}

/// The feerates seen lately. A poisoned lock only means a panic elsewhere mid-record: the
/// samples are still usable.
pub fn history(ctx: &Payments) -> std::sync::MutexGuard<'_, FeeHistory> {
    ctx.fee_history.lock().unwrap_or_else(|e| e.into_inner())
}

/// The history a starting daemon resumes: the samples the store kept (those of the policy's
/// window, and of a day and a block at least); none, said in the log, when they cannot be read
/// (the samples only inform the "cheap" test: no reason not to start).
pub fn stored_history(store: &Store, config: &Config) -> FeeHistory {
    let window = Policy::from_config(config).cheap_window_secs;
    let now = crate::unix_now();
    match store.fee_samples(now.saturating_sub(FeeHistory::kept_secs(window))) {
        Ok(samples) => FeeHistory::from_samples(samples, now, window),
        Err(e) => {
            tracing::warn!(error = %e, "the stored feerate samples could not be read: the recent low and yesterday's fall start unknown");
            FeeHistory::default()
        }
    }
}

/// Takes a feerate sample when one is due (a block interval after the last), whether or not a
/// payout waits: the recent low and yesterday's fall need the quiet hours too. Run by the
/// batcher each round; a failed look is tried again the next round.
pub async fn sample(ctx: &Payments, rates: &RoundRates) {
    // While bitcoind is unreachable (the follower's breaker), nothing is asked of it.
    if !history(ctx).due(crate::unix_now()) || ctx.chain.borrow().outage().is_some() {
        return;
    }
    if let Err(e) = rates.get(ctx).await {
        tracing::debug!(error = %e, "no feerate sample now; tried again");
    }
}

/// Logs when yesterday's fall comes into view or passes, for the operator: why cheap batches
/// wait. It can change only with a new sample, at most once a block interval; mostly twice a day.
fn log_fall_ahead(ctx: &Payments, cheaper_in_secs: Option<u64>, fall_percent: u32) {
    let ahead = cheaper_in_secs.is_some();
    if ctx.fall_ahead.swap(ahead, std::sync::atomic::Ordering::Relaxed) == ahead {
        return;
    }
    match cheaper_in_secs {
        Some(in_secs) => tracing::info!(in_secs, fall_percent,
            "a day ago the feerate went on to fall further from this time of day: cheap batches most of whose payouts are due later wait for it"),
        None => tracing::info!(fall_percent, "yesterday's fall has passed: cheap batches leave while the feerate is cheap"),
    }
}

/// The feerates of one look at the queue, asked of bitcoind at most once (and only when a payout
/// waits): the fee holds and the departure read the same figures.
#[derive(Debug, Default)]
pub struct RoundRates(tokio::sync::OnceCell<Feerates>);

impl RoundRates {
    /// The round's feerates.
    pub async fn get(&self, ctx: &Payments) -> Result<Feerates, WalletError> {
        self.0.get_or_try_init(|| feerates(ctx)).await.copied()
    }
}

/// Which payouts of `queued` leave now and at what feerate: by the policy, or all of them when
/// an operator asks (`operator`); positions are in `queued`, at most `max_outputs_per_tx`.
pub async fn decide(
    ctx: &Payments,
    queued: &[Stored],
    (now, operator): (u64, bool),
    rates: &RoundRates,
) -> Result<Option<Departure>, WalletError> {
    let seen = view(ctx, queued);
    if seen.is_empty() {
        return Ok(None);
    }
    let policy = Policy::from_config(&ctx.config);
    let rates = rates.get(ctx).await?;
    let queue: Vec<batch::Queued> = seen.iter().map(|(_, q)| q.clone()).collect();
    let decided = if operator {
        batch::triggered(&queue, &rates, &policy)
    } else {
        batch::departure(&queue, now, &rates, &policy)
    };
    let max = ctx.config.batching.max_outputs_per_tx.max(1) as usize;
    Ok(decided.map(|mut d| {
        d.payouts = d.payouts.into_iter().map(|i| seen[i].0).take(max).collect();
        d
    }))
}

impl Store {
    /// The feerate samples stored since `from` (unix seconds), `(at, sat/kvB)`, oldest first.
    pub fn fee_samples(&self, from: u64) -> Result<Vec<(u64, u64)>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached("SELECT at, sat_kvb FROM fee_samples WHERE at >= ?1 ORDER BY at")?;
        let rows = stmt.query_map([from as i64], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Stores the sample `sat_kvb` seen at `at` (one already stored for that second stays) and
    /// forgets those before `forget_before`, in one transaction.
    pub fn record_fee_sample(&self, at: u64, sat_kvb: u64, forget_before: u64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.prepare_cached("INSERT INTO fee_samples (at, sat_kvb) VALUES (?1, ?2) ON CONFLICT (at) DO NOTHING")?
            .execute(params![at as i64, sat_kvb as i64])?;
        tx.prepare_cached("DELETE FROM fee_samples WHERE at < ?1")?.execute([forget_before as i64])?;
        tx.commit()?;
        Ok(())
    }
}
