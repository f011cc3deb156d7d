//! Batch and consolidation plans: which coins a batch spends, its outputs, change, fee and each
//! payout's share, split before any standardness limit; and the standalone sweep of small coins.
//!
//! Coin selection is largest-first over the coins not reserved (the daemon lets BDK choose the
//! real coins and compares its result with this plan). When the feerate is at or below the
//! consolidation threshold and the treasury holds more than its target of UTXOs, the last
//! transaction also spends the smallest spare coins worth spending (consolidation inside the
//! batch); that part of the fee — the transaction's fee less the fee the same transaction pays
//! without them — is the treasury's, not the payouts': they share exactly what they would have
//! paid without the consolidation.

use super::policy::Queued;
use super::size::{fee_sat, tx_weight, vbytes, weight_fee_floor, InputKind, OutputKind, MAX_STANDARD_TX_WEIGHT};
use super::split::{split_fee, SplitError};
use super::Policy;

/// A coin the treasury holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utxo {
    /// Its value, sats.
    pub value_sat: u64,
    /// How it is spent.
    pub kind: InputKind,
    /// Reserved by a batch or payout in flight (or not spendable yet): never chosen.
    pub reserved: bool,
}

/// One planned transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPlan {
    /// Its payouts: positions in the payouts given, in queue order.
    pub payouts: Vec<usize>,
    /// Each payout's share of the fee, sats (same order); they sum to `fee_sat −
    /// consolidation_fee_sat`.
    pub shares_sat: Vec<u64>,
    /// The coins it spends: positions in the UTXOs given; the last `consolidated` of them are the
    /// extra small coins swept in.
    pub inputs: Vec<usize>,
    /// How many of the inputs are consolidation.
    pub consolidated: usize,
    /// The change output, sats (`None`: the leftover was below dust and went to the fee).
    pub change_sat: Option<u64>,
    /// Exact weight, WU.
    pub weight: u64,
    /// Virtual size, vB.
    pub vsize: u64,
    /// Its feerate, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// Its fee, sats.
    pub fee_sat: u64,
    /// The part of the fee that spends the consolidated coins, sats (the treasury's).
    pub consolidation_fee_sat: u64,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Nothing to pay.
    #[error("no payouts to plan")]
    NoPayouts,
    /// A payout below its output's dust limit.
    #[error("payout {index} of {amount_sat} sat is below the {dust_sat} sat dust limit")]
    Dust {
        /// Its position.
        index: usize,
        /// Its amount.
        amount_sat: u64,
        /// The limit.
        dust_sat: u64,
    },
    /// The coins not reserved cannot pay the payouts and the fee.
    #[error("{needed_sat} sat needed, {available_sat} sat available")]
    InsufficientFunds {
        /// Outputs and fee.
        needed_sat: u64,
        /// Coins not reserved (not yet used by the plan's other transactions).
        available_sat: u64,
    },
    /// More inputs than a standard transaction can carry.
    #[error("the inputs needed would make a transaction over {MAX_STANDARD_TX_WEIGHT} WU")]
    TooHeavy,
    /// The fee could not be split.
    #[error(transparent)]
    Split(#[from] SplitError),
}

/// Bitcoin Core's dust limit for an output of `kind` (at its 3 sat/vB dust relay feerate).
pub fn dust_sat(kind: OutputKind) -> u64 {
    let spend = if kind == OutputKind::P2pkh || kind == OutputKind::P2sh { 148 } else { 67 };
    (vbytes(kind.weight()) + spend) * 3
}

/// The weight budget of a transaction's outputs: half the standard limit, the rest for inputs.
const OUTPUT_WEIGHT_BUDGET: u64 = MAX_STANDARD_TX_WEIGHT / 2;

/// The payouts in groups of at most `max_outputs_per_tx` outputs and the output weight budget.
fn chunks(payouts: &[Queued], max: usize) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut weight = 0;
    for (i, p) in payouts.iter().enumerate() {
        let w = p.output.weight();
        match out.last_mut() {
            Some(last) if last.len() < max && weight + w <= OUTPUT_WEIGHT_BUDGET => last.push(i),
            _ => {
                out.push(vec![i]);
                weight = 0;
            }
        }
        weight += w;
    }
    out
}

/// What one transaction is being built from.
struct Shape<'a> {
    utxos: &'a [Utxo],
    out_sat: u64,
    out_weight: u64,
    outputs: u64,
    change: OutputKind,
    feerate: u64,
}

impl Shape<'_> {
    fn weight(&self, inputs: &[usize], with_change: bool) -> u64 {
        let kinds: Vec<InputKind> = inputs.iter().map(|&i| self.utxos[i].kind).collect();
        let (n, w) = if with_change { (1, self.change.weight()) } else { (0, 0) };
        tx_weight(&kinds, self.outputs + n, self.out_weight + w)
    }

    fn in_sat(&self, inputs: &[usize]) -> u64 {
        inputs.iter().map(|&i| self.utxos[i].value_sat).sum()
    }

    /// `(change, fee)` if `inputs` pay the outputs and the fee, change only above dust.
    fn settle(&self, inputs: &[usize]) -> Option<(Option<u64>, u64)> {
        let spare = self.in_sat(inputs).checked_sub(self.out_sat)?;
        let with = fee_sat(self.weight(inputs, true), self.feerate);
        if spare >= with + dust_sat(self.change) {
            return Some((Some(spare - with), with));
        }
        (spare >= fee_sat(self.weight(inputs, false), self.feerate)).then_some((None, spare))
    }
}

/// Largest-first: takes coins from the front of `free` until they pay.
fn select(shape: &Shape, free: &mut Vec<usize>) -> Result<Vec<usize>, PlanError> {
    let mut inputs = Vec::new();
    while shape.settle(&inputs).is_none() {
        if free.is_empty() {
            let needed_sat = shape.out_sat + fee_sat(shape.weight(&inputs, true), shape.feerate);
            return Err(PlanError::InsufficientFunds { needed_sat, available_sat: shape.in_sat(&inputs) });
        }
        inputs.push(free.remove(0));
        if shape.weight(&inputs, true) > MAX_STANDARD_TX_WEIGHT {
            return Err(PlanError::TooHeavy);
        }
    }
    Ok(inputs)
}

/// Plans the transactions that pay `payouts` (the leaving batch, in queue order) from `utxos` at
/// `feerate_sat_kvb`, with change of kind `change`: one transaction per `max_outputs_per_tx`
/// payouts, consolidating spare small coins into the last when the feerate allows.
pub fn plan_batch(
    payouts: &[Queued],
    utxos: &[Utxo],
    feerate_sat_kvb: u64,
    change: OutputKind,
    policy: &Policy,
) -> Result<Vec<TxPlan>, PlanError> {
    if payouts.is_empty() {
        return Err(PlanError::NoPayouts);
    }
    if let Some((index, p)) = payouts.iter().enumerate().find(|(_, p)| p.amount_sat < dust_sat(p.output)) {
        return Err(PlanError::Dust { index, amount_sat: p.amount_sat, dust_sat: dust_sat(p.output) });
    }
    let mut free: Vec<usize> = (0..utxos.len()).filter(|&i| !utxos[i].reserved).collect();
    free.sort_by_key(|&i| std::cmp::Reverse(utxos[i].value_sat));
    let groups = chunks(payouts, policy.max_outputs_per_tx.max(1));
    let mut chosen = Vec::with_capacity(groups.len());
    for group in groups {
        let shape = Shape {
            utxos,
            out_sat: group.iter().map(|&i| payouts[i].amount_sat).sum(),
            out_weight: group.iter().map(|&i| payouts[i].output.weight()).sum(),
            outputs: group.len() as u64,
            change,
            feerate: feerate_sat_kvb,
        };
        let inputs = select(&shape, &mut free)?;
        chosen.push((group, inputs));
    }
    let extra = consolidation_extras(utxos, &free, chosen.len(), feerate_sat_kvb, policy);
    let last = chosen.len() - 1;
    let mut plans = Vec::with_capacity(chosen.len());
    for (n, (group, inputs)) in chosen.into_iter().enumerate() {
        let extra: &[usize] = if n == last { &extra } else { &[] };
        plans.push(finish(payouts, utxos, group, inputs, extra, feerate_sat_kvb, change)?);
    }
    Ok(plans)
}

/// The spare coins to sweep into a batch: the smallest worth spending at the feerate, down to
/// the target UTXO count, when the feerate is at or below the consolidation threshold.
fn consolidation_extras(utxos: &[Utxo], free: &[usize], txs: usize, feerate: u64, policy: &Policy) -> Vec<usize> {
    if feerate > policy.consolidation_feerate_sat_kvb {
        return Vec::new();
    }
    // The coins left: the reserved ones, the free ones, and (at most) one change per transaction.
    let after = utxos.iter().filter(|u| u.reserved).count() + free.len() + txs;
    let excess = after.saturating_sub(policy.target_utxos);
    let mut spare: Vec<usize> = free
        .iter()
        .copied()
        .filter(|&i| utxos[i].value_sat > weight_fee_floor(utxos[i].kind.weight(), feerate))
        .collect();
    spare.sort_by_key(|&i| utxos[i].value_sat);
    spare.truncate(excess.min(policy.max_consolidation_inputs));
    spare
}

/// The finished plan of one transaction: change, fee, the consolidation part and the shares.
fn finish(
    payouts: &[Queued],
    utxos: &[Utxo],
    group: Vec<usize>,
    mut inputs: Vec<usize>,
    extra: &[usize],
    feerate: u64,
    change: OutputKind,
) -> Result<TxPlan, PlanError> {
    let weights: Vec<u64> = group.iter().map(|&i| payouts[i].output.weight()).collect();
    let shape = Shape {
        utxos,
        out_sat: group.iter().map(|&i| payouts[i].amount_sat).sum(),
        out_weight: weights.iter().sum(),
        outputs: group.len() as u64,
        change,
        feerate,
    };
    let mut extra = extra.to_vec();
    while !extra.is_empty() && shape.weight(&[inputs.clone(), extra.clone()].concat(), true) > MAX_STANDARD_TX_WEIGHT {
        extra.pop();
    }
    let base_fee = shape.settle(&inputs).map_or(0, |(_, fee)| fee);
    inputs.extend_from_slice(&extra);
    let (change_sat, fee) = shape.settle(&inputs).ok_or(PlanError::TooHeavy)?;
    let weight = shape.weight(&inputs, change_sat.is_some());
    // What the extra coins add: the fee less the fee without them (never below zero).
    let consolidation_fee_sat = if extra.is_empty() { 0 } else { fee.saturating_sub(base_fee) };
    let shares_sat = split_fee(fee - consolidation_fee_sat, feerate, &weights)?;
    Ok(TxPlan {
        payouts: group,
        shares_sat,
        inputs,
        consolidated: extra.len(),
        change_sat,
        weight,
        vsize: vbytes(weight),
        feerate_sat_kvb: feerate,
        fee_sat: fee,
        consolidation_fee_sat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Priority;
    use crate::config::Config;
    use rand::{Rng, SeedableRng};

    fn payout(amount_sat: u64, output: OutputKind) -> Queued {
        Queued { priority: Priority::Normal, output, amount_sat, submitted_at: 0 }
    }

    fn coin(value_sat: u64, reserved: bool) -> Utxo {
        Utxo { value_sat, kind: InputKind::P2wpkh, reserved }
    }

    #[test]
    fn fifty_payouts_are_one_transaction_with_change_and_exact_shares() {
        let p = Policy::from_config(&Config::default());
        let payouts: Vec<Queued> = (0..50).map(|i| payout(100_000 + i, OutputKind::P2wpkh)).collect();
        let utxos = [coin(50_000_000, true), coin(10_000_000, false), coin(2_000_000, false)];
        let plans = plan_batch(&payouts, &utxos, 5_000, OutputKind::P2wpkh, &p).unwrap();
        assert_eq!(plans.len(), 1);
        let t = &plans[0];
        assert_eq!(t.inputs, [1], "largest free coin; the reserved one is never chosen");
        // 42 + 272 + 51 × 124 = 6638 WU → 1660 vB (1659.5 rounded up) × 5 sat/vB.
        assert_eq!((t.weight, t.vsize, t.fee_sat), (6_638, 1_660, 8_300));
        let paid: u64 = payouts.iter().map(|q| q.amount_sat).sum();
        assert_eq!(t.change_sat, Some(10_000_000 - paid - 8_300));
        assert_eq!(t.shares_sat.iter().sum::<u64>(), t.fee_sat);
        assert_eq!(t.shares_sat[0], 166, "155 for its output + 11 of the shared 550 (1 of the 0 left)");
        assert_eq!(fee_sat(tx_weight(&[InputKind::P2wpkh], 2, 248), 5_000), 705, "one by one: 141 vB each");
    }

    #[test]
    fn a_big_batch_is_split_and_a_cheap_one_consolidates() {
        let mut p = Policy::from_config(&Config::default());
        p.target_utxos = 5;
        let payouts: Vec<Queued> = (0..1_200).map(|_| payout(20_000, OutputKind::P2tr)).collect();
        let mut utxos = vec![coin(100_000_000, false); 3];
        utxos.extend((0..30).map(|i| coin(5_000 + i, false)));
        let plans = plan_batch(&payouts, &utxos, 2_000, OutputKind::P2wpkh, &p).unwrap();
        assert_eq!(plans.iter().map(|t| t.payouts.len()).collect::<Vec<_>>(), [500, 500, 200]);
        assert!(plans.iter().all(|t| t.weight <= MAX_STANDARD_TX_WEIGHT));
        let last = &plans[2];
        assert_eq!(last.consolidated, 28, "33 coins − 3 spent + 3 changes = 33, down to 5");
        assert_eq!(last.inputs[last.inputs.len() - 28], 3, "the smallest spare coin");
        assert_eq!(last.consolidation_fee_sat, 28 * 136, "272 WU each at 2 sat/vB");
        assert_eq!(last.shares_sat.iter().sum::<u64>() + last.consolidation_fee_sat, last.fee_sat);
        let dear = plan_batch(&payouts, &utxos, 3_001, OutputKind::P2wpkh, &p).unwrap();
        assert!(dear.iter().all(|t| t.consolidated == 0), "above the consolidation threshold");
    }

    #[test]
    fn random_batches_balance_to_the_sat() {
        let p = Policy::from_config(&Config::default());
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut planned = 0;
        for _ in 0..300 {
            let payouts: Vec<Queued> = (0..rng.gen_range(1..800))
                .map(|_| payout(rng.gen_range(1_000..5_000_000), OutputKind::ALL[rng.gen_range(0..5)]))
                .collect();
            let utxos: Vec<Utxo> = (0..rng.gen_range(1..400))
                .map(|_| coin(rng.gen_range(1_000..200_000_000), rng.gen_bool(0.1)))
                .collect();
            let rate = rng.gen_range(1_000..60_000);
            let Ok(plans) = plan_batch(&payouts, &utxos, rate, OutputKind::P2wpkh, &p) else { continue };
            planned += 1;
            let mut used = std::collections::BTreeSet::new();
            for t in &plans {
                let in_sat: u64 = t.inputs.iter().map(|&i| utxos[i].value_sat).sum();
                let out_sat: u64 = t.payouts.iter().map(|&i| payouts[i].amount_sat).sum();
                assert_eq!(in_sat, out_sat + t.change_sat.unwrap_or(0) + t.fee_sat);
                assert!(t.fee_sat >= fee_sat(t.weight, rate));
                assert_eq!(t.shares_sat.iter().sum::<u64>() + t.consolidation_fee_sat, t.fee_sat);
                assert!(t.inputs.iter().all(|&i| !utxos[i].reserved && used.insert(i)));
            }
            assert_eq!(plans.iter().map(|t| t.payouts.len()).sum::<usize>(), payouts.len());
        }
        assert!(planned > 150, "only {planned} of 300 random batches could be paid");
    }

    #[test]
    fn too_little_money_or_a_dust_payout_is_refused() {
        let p = Policy::from_config(&Config::default());
        let one = [payout(100_000, OutputKind::P2wpkh)];
        let err = plan_batch(&one, &[coin(100_000, false), coin(9_000_000, true)], 1_000, OutputKind::P2wpkh, &p);
        assert_eq!(err, Err(PlanError::InsufficientFunds { needed_sat: 100_141, available_sat: 100_000 }));
        let dust = [payout(293, OutputKind::P2wpkh)];
        assert!(matches!(
            plan_batch(&dust, &[coin(9_000, false)], 1_000, OutputKind::P2wpkh, &p),
            Err(PlanError::Dust { .. })
        ));
    }
}
