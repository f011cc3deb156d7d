//! A batch's transaction read against its payouts: which output pays which payout, and each
//! payout's share of the fee.

use sendero_wallet::bitcoin::{ScriptBuf, Transaction};
use sendero_wallet::WalletError;

use super::batches::{BatchPayout, Queued};

/// Each payout's output in `tx` (matched by script and amount, each output used once) and its
/// share of the fee ([`crate::batch::split_fee`]: its own output at the feerate, plus an equal
/// share of the rest, the sats left over going to the earliest-queued).
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
