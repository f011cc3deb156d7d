//! Standalone consolidation: when the feerate is at or below the threshold and the treasury holds
//! more than its target of UTXOs, the smallest coins worth spending are swept into one output
//! (bounded per run, never a reserved coin), with what that spends now and saves against
//! spending the same coins later at the reference feerate.

use super::plan::{dust_sat, Utxo};
use super::size::{fee_sat, tx_weight, vbytes, weight_fee_floor, InputKind, OutputKind};
use super::Policy;

/// A planned sweep (`consolidate.preview`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consolidation {
    /// The coins it spends: positions in the UTXOs given, smallest first.
    pub inputs: Vec<usize>,
    /// What they hold, sats.
    pub input_sat: u64,
    /// The one output, sats.
    pub output_sat: u64,
    /// Exact weight, WU.
    pub weight: u64,
    /// Virtual size, vB.
    pub vsize: u64,
    /// Its feerate, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// Its fee, sats.
    pub fee_sat: u64,
    /// What spending the same inputs would cost at the reference feerate, sats.
    pub later_cost_sat: u64,
    /// `later_cost_sat − fee_sat` (negative: it costs more now than it saves).
    pub saving_sat: i64,
    /// UTXOs before and after.
    pub utxos_before: usize,
    /// …
    pub utxos_after: usize,
}

/// Why there is nothing to consolidate now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoConsolidation {
    /// The feerate is above the threshold.
    #[error("feerate {feerate_sat_kvb} sat/kvB is above the consolidation threshold {threshold_sat_kvb} sat/kvB")]
    Feerate {
        /// Now.
        feerate_sat_kvb: u64,
        /// The threshold.
        threshold_sat_kvb: u64,
    },
    /// The treasury holds no more than its target.
    #[error("{utxos} UTXOs, target {target}")]
    AtTarget {
        /// UTXOs held.
        utxos: usize,
        /// The target.
        target: usize,
    },
    /// Fewer than two coins are free and worth spending.
    #[error("fewer than two coins are free and worth spending")]
    TooFewCoins,
}

/// The sweep to run now, into one output of kind `into`, at `feerate_sat_kvb`.
pub fn plan_consolidation(
    utxos: &[Utxo],
    feerate_sat_kvb: u64,
    into: OutputKind,
    policy: &Policy,
) -> Result<Consolidation, NoConsolidation> {
    if feerate_sat_kvb > policy.consolidation_feerate_sat_kvb {
        let threshold_sat_kvb = policy.consolidation_feerate_sat_kvb;
        return Err(NoConsolidation::Feerate { feerate_sat_kvb, threshold_sat_kvb });
    }
    if utxos.len() <= policy.target_utxos {
        return Err(NoConsolidation::AtTarget { utxos: utxos.len(), target: policy.target_utxos });
    }
    let worth = |u: &Utxo| !u.reserved && u.value_sat > weight_fee_floor(u.kind.weight(), feerate_sat_kvb);
    let mut coins: Vec<usize> = (0..utxos.len()).filter(|&i| worth(&utxos[i])).collect();
    coins.sort_by_key(|&i| utxos[i].value_sat);
    // Sweeping n coins into one takes the count down by n − 1.
    coins.truncate((utxos.len() - policy.target_utxos + 1).min(policy.max_consolidation_inputs));
    loop {
        if coins.len() < 2 {
            return Err(NoConsolidation::TooFewCoins);
        }
        let kinds: Vec<InputKind> = coins.iter().map(|&i| utxos[i].kind).collect();
        let weight = tx_weight(&kinds, 1, into.weight());
        let fee = fee_sat(weight, feerate_sat_kvb);
        let input_sat: u64 = coins.iter().map(|&i| utxos[i].value_sat).sum();
        if input_sat >= fee + dust_sat(into) {
            let later_cost_sat: u64 =
                kinds.iter().map(|k| weight_fee_floor(k.weight(), policy.reference_feerate_sat_kvb)).sum();
            return Ok(Consolidation {
                utxos_before: utxos.len(),
                utxos_after: utxos.len() - coins.len() + 1,
                inputs: coins,
                input_sat,
                output_sat: input_sat - fee,
                weight,
                vsize: vbytes(weight),
                feerate_sat_kvb,
                fee_sat: fee,
                later_cost_sat,
                saving_sat: later_cost_sat as i64 - fee as i64,
            });
        }
        // Too little to pay for itself: drop the smallest and try again.
        coins.remove(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn coin(value_sat: u64) -> Utxo {
        Utxo { value_sat, kind: InputKind::P2wpkh, reserved: false }
    }

    #[test]
    fn a_hundred_small_coins_are_swept_at_a_low_feerate_and_reserved_ones_stay() {
        let mut p = Policy::from_config(&Config::default());
        p.target_utxos = 10;
        let mut utxos: Vec<Utxo> = (0..120).map(|i| coin(10_000 + i * 100)).collect();
        for u in utxos.iter_mut().take(5) {
            u.reserved = true;
        }
        let c = plan_consolidation(&utxos, 2_000, OutputKind::P2wpkh, &p).unwrap();
        assert_eq!(c.inputs.len(), 111, "120 − 10 + 1");
        assert_eq!(c.inputs[0], 5, "the smallest free coin first");
        assert!(c.inputs.iter().all(|&i| !utxos[i].reserved));
        assert_eq!((c.utxos_before, c.utxos_after), (120, 10));
        // 111 inputs (varint 1 byte): 42 + 111 × 272 + 124 = 30358 WU → 7590 vB × 2 sat/vB.
        assert_eq!((c.weight, c.vsize, c.fee_sat), (30_358, 7_590, 15_180));
        assert_eq!(c.output_sat, c.input_sat - c.fee_sat);
        assert_eq!(c.later_cost_sat, 111 * 680, "68 vB each at 10 sat/vB");
        assert_eq!(c.saving_sat, 111 * 680 - 15_180);
    }

    #[test]
    fn nothing_to_do_says_why() {
        let p = Policy::from_config(&Config::default());
        let utxos: Vec<Utxo> = (0..60).map(|_| coin(50_000)).collect();
        assert!(matches!(
            plan_consolidation(&utxos, 3_001, OutputKind::P2wpkh, &p),
            Err(NoConsolidation::Feerate { .. })
        ));
        assert_eq!(
            plan_consolidation(&utxos[..50], 1_000, OutputKind::P2wpkh, &p),
            Err(NoConsolidation::AtTarget { utxos: 50, target: 50 })
        );
        let dust: Vec<Utxo> = (0..60).map(|_| coin(60)).collect();
        assert_eq!(plan_consolidation(&dust, 1_000, OutputKind::P2wpkh, &p), Err(NoConsolidation::TooFewCoins));
        let c = plan_consolidation(&utxos, 1_000, OutputKind::P2wpkh, &p).unwrap();
        assert_eq!((c.inputs.len(), c.utxos_after), (11, 50));
    }
}
