//! When a batch leaves and how its fee is shared. A batch leaves at the first of: a payout's
//! deadline (its priority's ETA bound minus its confirmation target, so that a queued payout
//! never misses its bound), [`MAX_PAYOUTS`] waiting, or an operator's trigger. The fee is
//! shared in proportion to each payout's own output size, to the sat.

use super::batches::Queued;
use crate::config::Config;

/// How often the batcher looks at the queue, seconds.
pub const CHECK_EVERY_SECS: u64 = 2;
/// Most payouts in one batch (one transaction).
pub const MAX_PAYOUTS: usize = 500;

/// The payout's deadline to leave, Unix seconds: its ETA bound minus its confirmation target.
pub fn deadline(config: &Config, q: &Queued) -> u64 {
    let r = &config.routing;
    let (bound, target) = match q.priority.as_str() {
        "high" => (r.high_max_eta_secs, r.high_target_blocks),
        "normal" => (r.normal_max_eta_secs, r.normal_target_blocks),
        _ => (r.low_max_eta_secs, r.low_target_blocks),
    };
    q.payment.created_at + bound.saturating_sub(u64::from(target) * 600)
}

/// Why `queued` should leave at `now`, if it should.
pub fn departure(config: &Config, queued: &[Queued], now: u64) -> Option<&'static str> {
    if queued.is_empty() {
        return None;
    }
    if queued.len() >= MAX_PAYOUTS {
        return Some("count");
    }
    queued.iter().any(|q| deadline(config, q) <= now).then_some("deadline")
}

/// `fee_sat` shared across outputs whose scripts are `script_lens` bytes long: in proportion to
/// each output's size (8 bytes of amount, 1 of length, the script), rounded down, the sats left
/// over going one each to the first outputs. The shares sum to `fee_sat` exactly.
pub fn split_fee(fee_sat: u64, script_lens: &[u64]) -> Vec<u64> {
    let sizes: Vec<u128> = script_lens.iter().map(|l| u128::from(9 + l)).collect();
    let total: u128 = sizes.iter().sum::<u128>().max(1);
    let mut shares: Vec<u64> =
        sizes.iter().map(|s| u64::try_from(u128::from(fee_sat) * s / total).unwrap_or(u64::MAX)).collect();
    let mut left = fee_sat - shares.iter().sum::<u64>();
    for share in shares.iter_mut() {
        if left == 0 {
            break;
        }
        *share += 1;
        left -= 1;
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_the_fee_and_follow_output_size() {
        assert_eq!(split_fee(1_000, &[22, 22, 34]), vec![296, 295, 409]);
        for fee in [0, 1, 7, 999, 12_345, 1_000_003] {
            for lens in [&[22][..], &[22, 34], &[22, 22, 22, 34, 23, 25]] {
                assert_eq!(split_fee(fee, lens).iter().sum::<u64>(), fee, "{fee} {lens:?}");
            }
        }
    }
}
