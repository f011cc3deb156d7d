//! A batch transaction's fee split across its payouts, exactly. The rule: each payout pays the
//! feerate times its own output's weight (rounded down), and the rest of the fee — overhead,
//! inputs, change and rounding — is split equally, the leftover sats one each to the
//! earliest-queued payouts. The shares sum to the fee to the sat.

use super::size::weight_fee_floor;

/// Why a fee cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A fee with no payout to carry it.
    #[error("a fee of {0} sat has no payout to carry it")]
    NoPayouts(u64),
    /// The fee is less than the payouts' own outputs cost at the feerate.
    #[error("a fee of {fee_sat} sat is below the {outputs_sat} sat the outputs alone cost at the feerate")]
    FeeBelowOutputs {
        /// The fee.
        fee_sat: u64,
        /// What the outputs cost.
        outputs_sat: u64,
    },
}

/// Each payout's share of `fee_sat`, in the order given (earliest-queued first):
/// `output_weights[i]` is payout `i`'s output weight, `feerate_sat_kvb` the transaction's
/// feerate. An empty list splits a zero fee into nothing.
pub fn split_fee(fee_sat: u64, feerate_sat_kvb: u64, output_weights: &[u64]) -> Result<Vec<u64>, SplitError> {
    if output_weights.is_empty() {
        return if fee_sat == 0 { Ok(Vec::new()) } else { Err(SplitError::NoPayouts(fee_sat)) };
    }
    let own: Vec<u64> = output_weights.iter().map(|w| weight_fee_floor(*w, feerate_sat_kvb)).collect();
    let outputs_sat: u64 = own.iter().sum();
    let shared = fee_sat.checked_sub(outputs_sat).ok_or(SplitError::FeeBelowOutputs { fee_sat, outputs_sat })?;
    let n = own.len() as u64;
    let (each, leftover) = (shared / n, shared % n);
    Ok(own.iter().enumerate().map(|(i, o)| o + each + u64::from((i as u64) < leftover)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::size::{fee_sat, tx_weight, InputKind, OutputKind};
    use rand::{Rng, SeedableRng};

    #[test]
    fn three_payouts_of_a_one_input_batch() {
        // 1 P2WPKH input, outputs P2WPKH, P2TR, P2PKH + P2WPKH change at 10 sat/vB.
        let outs = [OutputKind::P2wpkh, OutputKind::P2tr, OutputKind::P2pkh];
        let weight = tx_weight(&[InputKind::P2wpkh], 4, outs.iter().map(|o| o.weight()).sum::<u64>() + 124);
        assert_eq!(weight, 42 + 272 + 124 + 172 + 136 + 124);
        let fee = fee_sat(weight, 10_000);
        assert_eq!(fee, 2_180, "217.5 vB → 218 vB × 10 sat/vB");
        let shares = split_fee(fee, 10_000, &[124, 172, 136]).unwrap();
        // own: 310, 430, 340 = 1080; shared 1100 → 366 each, 2 left over to the first two.
        assert_eq!(shares, [677, 797, 706]);
        assert_eq!(shares.iter().sum::<u64>(), fee);
    }

    #[test]
    fn shares_always_sum_to_the_fee_and_differ_only_by_their_outputs() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2_000 {
            let n = rng.gen_range(1..=600);
            let weights: Vec<u64> = (0..n).map(|_| OutputKind::ALL[rng.gen_range(0..5)].weight()).collect();
            let inputs = vec![InputKind::P2wpkh; rng.gen_range(1..=20)];
            let rate = rng.gen_range(100..=500_000);
            let weight = tx_weight(&inputs, n as u64 + 1, weights.iter().sum::<u64>() + 124);
            let dropped_change = if rng.gen_bool(0.2) { rng.gen_range(0..300) } else { 0 };
            let fee = fee_sat(weight, rate) + dropped_change;
            let shares = split_fee(fee, rate, &weights).unwrap();
            assert_eq!(shares.iter().sum::<u64>(), fee);
            let extra: Vec<u64> = shares.iter().zip(&weights).map(|(s, w)| s - weight_fee_floor(*w, rate)).collect();
            let (lo, hi) = (extra.iter().min().unwrap(), extra.iter().max().unwrap());
            assert!(hi - lo <= 1, "shared part split equally: {lo}..{hi}");
            assert!(extra.windows(2).all(|w| w[0] >= w[1]), "leftover sats go to the earliest");
        }
    }

    #[test]
    fn an_impossible_split_is_an_error() {
        assert_eq!(split_fee(5, 1_000, &[]), Err(SplitError::NoPayouts(5)));
        assert_eq!(split_fee(0, 1_000, &[]), Ok(vec![]));
        assert_eq!(split_fee(10, 1_000, &[124]), Err(SplitError::FeeBelowOutputs { fee_sat: 10, outputs_sat: 31 }));
    }
}
