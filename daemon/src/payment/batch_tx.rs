//! A batch's transaction read against its payouts: which output pays which payout, and each
//! payout's share of the fee; and the extra small coins a batch sweeps in when fees are low.

use std::str::FromStr;

use sendero_wallet::bitcoin::{OutPoint, ScriptBuf, Transaction};
use sendero_wallet::WalletError;

use super::batches::{BatchPayout, Queued};
use super::{batch_policy, consolidate, Payments};
use crate::batch::{self, OutputKind, Policy};
use crate::store::StoreError;

/// The extra coins a batch of `queued` leaving at `feerate_sat_kvb` also spends (consolidation
/// inside the batch), as [`crate::batch::plan_batch`] plans them: only at or below `[batching]
/// consolidation_feerate_sat_kvb`, only while the treasury holds more than `target_utxos`
/// spendable coins; the smallest free coins worth more than their own spending at the feerate,
/// as many as bring the count down to the target, at most `max_consolidation_inputs`, never
/// past the standard weight, never a coin a batch or payout in flight has signed away. None when
/// the batch would take more than one transaction.
pub(super) fn extras(ctx: &Payments, queued: &[Queued], feerate_sat_kvb: u64) -> Result<Vec<OutPoint>, StoreError> {
    let policy = Policy::from_config(&ctx.config);
    if feerate_sat_kvb > policy.consolidation_feerate_sat_kvb {
        return Ok(Vec::new());
    }
    let (coins, utxos) = consolidate::treasury_coins(ctx)?;
    if utxos.len() <= policy.target_utxos {
        return Ok(Vec::new());
    }
    let payouts: Vec<batch::Queued> = batch_policy::view(ctx, queued).into_iter().map(|(_, q)| q).collect();
    let plan = match batch::plan_batch(&payouts, &utxos, feerate_sat_kvb, OutputKind::P2wpkh, &policy) {
        Ok(plans) if plans.len() == 1 => plans.into_iter().next(),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(error = %e, "no consolidation planned inside the batch");
            None
        }
    };
    let Some(plan) = plan else { return Ok(Vec::new()) };
    let swept = &plan.inputs[plan.inputs.len() - plan.consolidated..];
    Ok(swept.iter().filter_map(|&i| OutPoint::from_str(&coins[i].outpoint).ok()).collect())
}

/// Each payout's output in `tx` (matched by script and amount, each output used once) and its
/// share of `fee_sat` — the transaction's fee less what its consolidated coins cost —
/// ([`crate::batch::split_fee`]: its own output at the feerate, plus an equal share of the rest,
/// the sats left over going to the earliest-queued).
pub(super) fn places(
    tx: &Transaction,
    queued: &[Queued],
    scripts: &[ScriptBuf],
    (fee_sat, feerate_sat_kvb): (u64, u64),
) -> Result<Vec<BatchPayout>, WalletError> {
    let mut taken = vec![false; tx.output.len()];
    let mut vouts = Vec::with_capacity(queued.len());
    for (q, script) in queued.iter().zip(scripts) {
        let amount = q.payment.amount_msat.div_ceil(1_000);
        let found = tx
            .output
            .iter()
            .enumerate()
            .position(|(i, o)| !taken[i] && o.script_pubkey == *script && o.value.to_sat() == amount);
        let Some(vout) = found else {
            let why = format!("payout {} has no output in the built transaction", q.payment.payment_id);
            return Err(WalletError::Storage(why));
        };
        taken[vout] = true;
        vouts.push((vout, tx.output[vout].weight().to_wu(), amount));
    }
    let weights: Vec<u64> = vouts.iter().map(|v| v.1).collect();
    let shares =
        crate::batch::split_fee(fee_sat, feerate_sat_kvb, &weights).map_err(|e| WalletError::Build(e.to_string()))?;
    Ok(queued
        .iter()
        .zip(vouts)
        .zip(shares)
        .map(|((q, (vout, _, amount_sat)), fee_share_sat)| BatchPayout {
            payment_id: q.payment.payment_id.clone(),
            vout: vout as u32,
            amount_sat,
            fee_share_sat,
        })
        .collect())
}
