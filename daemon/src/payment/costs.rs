//! What on-chain payouts cost, for operators: the queue paid now as one batch against one
//! transaction per payout at the same feerate (`batch.preview`), and per rail what settled
//! payouts paid against one transaction each at the feerate of their submission
//! (`fees.report`). Sizes are exact by each destination's script type ([`crate::batch::size`]);
//! every figure is an integer (sats, msat, basis points).

use std::sync::Arc;

use crate::store::sql::params;
use sendero_wallet::WalletError;
use serde::Serialize;

use super::batch_policy;
use super::Payments;
use crate::batch::{self, InputKind, OutputKind, Policy, TxPlan};
use crate::store::{Store, StoreError};

/// Why a preview or a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// The wallet or bitcoind (feerates).
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The treasury's coins cannot pay the queue.
    #[error("the queue cannot be planned: {0}")]
    Plan(#[from] batch::PlanError),
}

/// A saving: what one transaction per payout would cost minus what was (or would be) paid, in
/// sats and in basis points of the former (negative when it cost more).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Saving {
    /// Sats.
    pub saving_sat: i64,
    /// Basis points (1/100 %) of the one-by-one fee; 0 when that is 0.
    pub saving_bps: i64,
    /// The same as a decimal percent with two places, e.g. `"61.25"`.
    pub saving_percent: String,
}

impl Saving {
    /// `one_by_one_sat − paid_sat`, and its share of `one_by_one_sat`.
    pub fn of(paid_sat: u64, one_by_one_sat: u64) -> Saving {
        let saving_sat = one_by_one_sat as i64 - paid_sat as i64;
        let saving_bps = if one_by_one_sat == 0 { 0 } else { saving_sat * 10_000 / one_by_one_sat as i64 };
        let sign = if saving_bps < 0 { "-" } else { "" };
        let abs = saving_bps.unsigned_abs();
        Saving { saving_sat, saving_bps, saving_percent: format!("{sign}{}.{:02}", abs / 100, abs % 100) }
    }
}

/// `batch.preview`: the queue as `batch.trigger` would send it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    /// Payouts it carries.
    pub payouts: usize,
    /// The feerate (the most urgent payout's target, up to the wallet's maximum), sat/kvB.
    pub feerate_sat_kvb: u64,
    /// Transactions the plan needs (more than one past `max_outputs_per_tx`).
    pub transactions: usize,
    /// Their virtual size, vB.
    pub batch_vsize: u64,
    /// The payouts' part of their fee, sats (consolidated coins apart).
    pub batch_fee_sat: u64,
    /// The fee of sweeping spare small coins in, sats (the treasury's, not the payouts').
    pub consolidation_fee_sat: u64,
    /// One transaction per payout (one input, its output, change) at the same feerate, vB.
    pub one_by_one_vsize: u64,
    /// … and its fee, sats.
    pub one_by_one_fee_sat: u64,
    /// What the batch saves.
    #[serde(flatten)]
    pub saving: Saving,
}

/// The kind of the treasury's coins and change: P2WPKH (BIP84).
const TREASURY: (InputKind, OutputKind) = (InputKind::P2wpkh, OutputKind::P2wpkh);

/// The fee and vsize of paying an output of `kind` in a transaction of its own at
/// `feerate_sat_kvb` (one treasury input and change).
fn single(kind: OutputKind, feerate_sat_kvb: u64) -> (u64, u64) {
    let q = batch::single_quote(kind, TREASURY.0, TREASURY.1, feerate_sat_kvb, 1);
    (q.fee_sat, q.vbytes)
}

/// What the queue would pay now as one batch, against one transaction each; `None` for an
/// empty queue.
pub async fn preview(ctx: &Payments) -> Result<Option<Preview>, CostError> {
    let store = Arc::clone(&ctx.store);
    let queued = tokio::task::block_in_place(|| store.queued_payouts(10_000))?;
    let seen: Vec<batch::Queued> = batch_policy::view(ctx, &queued).into_iter().map(|(_, q)| q).collect();
    let rates = batch_policy::feerates(ctx).await?;
    let policy = Policy::from_config(&ctx.config);
    let Some(departure) = batch::triggered(&seen, &rates, &policy) else { return Ok(None) };
    let leaving: Vec<batch::Queued> =
        departure.payouts.iter().take(policy.max_outputs_per_tx.max(1)).map(|&i| seen[i].clone()).collect();
    // The coins the batch would see: spendable, the ones in flight reserved.
    let (_, utxos) = tokio::task::block_in_place(|| super::consolidate::treasury_coins(ctx))?;
    let rate = departure.feerate_sat_kvb;
    let plans: Vec<TxPlan> = batch::plan_batch(&leaving, &utxos, rate, TREASURY.1, &policy)?;
    let consolidation_fee_sat: u64 = plans.iter().map(|p| p.consolidation_fee_sat).sum();
    let batch_fee_sat = plans.iter().map(|p| p.fee_sat).sum::<u64>() - consolidation_fee_sat;
    let singles: Vec<(u64, u64)> = leaving.iter().map(|q| single(q.output, rate)).collect();
    let one_by_one_fee_sat = singles.iter().map(|s| s.0).sum();
    Ok(Some(Preview {
        payouts: leaving.len(),
        feerate_sat_kvb: rate,
        transactions: plans.len(),
        batch_vsize: plans.iter().map(|p| p.vsize).sum(),
        batch_fee_sat,
        consolidation_fee_sat,
        one_by_one_vsize: singles.iter().map(|s| s.1).sum(),
        one_by_one_fee_sat,
        saving: Saving::of(batch_fee_sat, one_by_one_fee_sat),
    }))
}

/// One rail's row of `fees.report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RailCost {
    /// `onchain`, `onchain_batch`, `lightning` or `on_us`.
    pub rail: String,
    /// Payouts settled in the period.
    pub count: u64,
    /// The fees they paid, msat.
    pub fees_paid_msat: u64,
    /// The same, sats (each payout's fee rounded up, as `fee_paid_sat` shows it).
    pub fees_paid_sat: u64,
    /// On-chain rails: one transaction each at the feerate of their submission, sats (`None`
    /// for Lightning, which has no feerate to compare with).
    pub one_by_one_fee_sat: Option<u64>,
    /// What was saved against that.
    #[serde(flatten)]
    pub saving: Option<Saving>,
}

/// A settled payout as the report reads it.
struct Settled {
    final_at: u64,
    rail: String,
    destination: String,
    fee_paid_msat: u64,
    fee_rate_sat_kvb: Option<u64>,
}

impl Store {
    /// Payouts settled in `[from, to)` (Unix seconds).
    fn settled_between(&self, from: u64, to: u64) -> Result<Vec<Settled>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT final_at, rail, destination, fee_paid_msat, COALESCE(fee_rate_sat_kvb, fee_rate_sat_vb * 1000) FROM payments
             WHERE state = 'settled' AND final_at >= ?1 AND final_at < ?2 ORDER BY final_at",
        )?;
        let rows = stmt.query_map(params![from as i64, to as i64], |r| {
            Ok(Settled {
                final_at: r.get::<_, Option<i64>>(0)?.unwrap_or(0) as u64,
                rail: r.get(1)?,
                destination: r.get(2)?,
                fee_paid_msat: r.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
                fee_rate_sat_kvb: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// What the treasury itself paid in fees in a period: sweeping small coins together (standalone or
/// inside a batch) and children paying for stuck transactions (CPFP). Booked when they confirm.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TreasuryCosts {
    /// Consolidation fees, sats.
    pub consolidation_fee_sat: u64,
    /// Fees of children paying for stuck transactions, sats.
    pub cpfp_fee_sat: u64,
}

impl Store {
    /// The fees booked to `account` by entries made in `[from, to)`, msat.
    fn fees_booked_between(&self, account: &str, from: u64, to: u64) -> Result<u64, StoreError> {
        let conn = self.read();
        let msat: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(p.amount), 0) FROM ledger_postings p JOIN ledger_entries e ON e.id = p.entry_id
                 WHERE p.account = ?1 AND e.created_at >= ?2 AND e.created_at < ?3",
            )?
            .query_row(params![account, from as i64, to as i64], |r| r.get(0))?;
        Ok(msat.max(0) as u64)
    }
}

/// The treasury's own fees booked in `[from, to)`.
pub fn treasury_costs(ctx: &Payments, from: u64, to: u64) -> Result<TreasuryCosts, CostError> {
    let sat = |account: &str| ctx.store.fees_booked_between(account, from, to).map(|m| m.div_ceil(1_000));
    Ok(TreasuryCosts { consolidation_fee_sat: sat("fees:consolidation")?, cpfp_fee_sat: sat("fees:cpfp")? })
}

/// Per rail (all four, in this order), the payouts settled in `[from, to)`: how many, the fees
/// they paid and, on chain, what one transaction each at their submission's feerate would have
/// cost.
pub fn report(ctx: &Payments, from: u64, to: u64) -> Result<Vec<RailCost>, CostError> {
    let mut rails: Vec<RailCost> = ["onchain", "onchain_batch", "lightning", "on_us"]
        .into_iter()
        .map(|rail| RailCost {
            rail: rail.to_owned(),
            count: 0,
            fees_paid_msat: 0,
            fees_paid_sat: 0,
            one_by_one_fee_sat: rail.starts_with("onchain").then_some(0),
            saving: None,
        })
        .collect();
    for s in ctx.store.settled_between(from, to)? {
        let Some(row) = rails.iter_mut().find(|r| r.rail == s.rail) else { continue };
        row.count += 1;
        row.fees_paid_msat += s.fee_paid_msat;
        row.fees_paid_sat += s.fee_paid_msat.div_ceil(1_000);
        if let Some(sum) = row.one_by_one_fee_sat.as_mut() {
            *sum += alone_sat(ctx, &s);
        }
    }
    for row in &mut rails {
        row.saving = row.one_by_one_fee_sat.map(|one| Saving::of(row.fees_paid_sat, one));
    }
    Ok(rails)
}

/// What an on-chain payout would have paid in a transaction of its own at its submission's
/// feerate, sats.
fn alone_sat(ctx: &Payments, s: &Settled) -> u64 {
    let kind = ctx
        .onchain
        .treasury()
        .parse_address(&s.destination)
        .ok()
        .and_then(|a| OutputKind::of_script(&a.script_pubkey()))
        .unwrap_or(OutputKind::P2wpkh);
    single(kind, s.fee_rate_sat_kvb.unwrap_or(1_000)).0
}

/// A settled payout on the dashboard's fees plot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostPoint {
    /// When it settled, Unix seconds.
    pub at: u64,
    /// Its rail.
    pub rail: String,
    /// The fee it paid, sats (rounded up, as `fees.report` counts it).
    pub paid_sat: u64,
    /// On chain, one transaction of its own at its submission's feerate; on the other rails, what
    /// it paid (they have nothing to compare with), sats.
    pub one_by_one_sat: u64,
}

/// Every payout settled in `[from, to)`, in the order they settled, priced as [`report`] prices
/// them: the points' sums per rail are its `fees_paid_sat` and `one_by_one_fee_sat`.
pub fn timeline(ctx: &Payments, from: u64, to: u64) -> Result<Vec<CostPoint>, CostError> {
    let points = ctx.store.settled_between(from, to)?.into_iter().map(|s| {
        let paid_sat = s.fee_paid_msat.div_ceil(1_000);
        let one_by_one_sat = if s.rail.starts_with("onchain") { alone_sat(ctx, &s) } else { paid_sat };
        CostPoint { at: s.final_at, rail: s.rail, paid_sat, one_by_one_sat }
    });
    Ok(points.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savings_are_integers_of_the_one_by_one_fee() {
        assert_eq!(
            Saving::of(390, 1_410),
            Saving { saving_sat: 1_020, saving_bps: 7_234, saving_percent: "72.34".into() }
        );
        assert_eq!(Saving::of(150, 141).saving_percent, "-6.38");
        assert_eq!(Saving::of(0, 0).saving_bps, 0);
        // 141 vB at 1 sat/vB: one P2WPKH input, a P2WPKH output and change.
        assert_eq!(single(OutputKind::P2wpkh, 1_000), (141, 141));
    }
}
