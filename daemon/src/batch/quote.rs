//! What the route shows for on-chain rails: `onchain_batch` = the feerate expected when the
//! batch leaves × (this output's weight + its share of the batch's overhead, input and change
//! given the payouts already queued), ETA = time until that batch leaves + the confirmation
//! target; and `onchain` (one transaction: one input, the output, change) for comparison.

use super::policy::{Feerates, Queued};
use super::size::{fee_sat, overhead_weight, tx_weight, vbytes, InputKind, OutputKind};
use super::Policy;

/// The price and ETA of a payout on one rail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RailQuote {
    /// The fee it is expected to pay, sats.
    pub fee_sat: u64,
    /// At this feerate, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// The weight it pays for (its output and its share), WU.
    pub weight: u64,
    /// The same in vbytes, rounded up.
    pub vbytes: u64,
    /// Seconds until it is expected to confirm.
    pub eta_secs: u64,
    /// Its confirmation target, blocks.
    pub target_blocks: u32,
}

/// `onchain`: one transaction spending one `input`, paying `output` with change of kind
/// `change`, at `feerate_sat_kvb`, confirming within `target_blocks` (141 vB for P2WPKH).
pub fn single_quote(
    output: OutputKind,
    input: InputKind,
    change: OutputKind,
    feerate_sat_kvb: u64,
    target_blocks: u32,
) -> RailQuote {
    let weight = tx_weight(&[input], 2, output.weight() + change.weight());
    RailQuote {
        fee_sat: fee_sat(weight, feerate_sat_kvb),
        feerate_sat_kvb,
        weight,
        vbytes: vbytes(weight),
        eta_secs: u64::from(target_blocks) * 600,
        target_blocks,
    }
}

/// `onchain_batch` for `new`, joining `queue` at `now`: it leaves with its priority's next batch
/// (now, if the policy would send one now; else at the earliest deadline, interval or — while the
/// feerate is cheap — cheap wait of its priority's payouts), at the feerate its target needs now, and shares one overhead, one `input`
/// and one `change` output with the payouts of its priority already queued.
pub fn batch_quote(
    queue: &[Queued],
    new: &Queued,
    now: u64,
    feerates: &Feerates,
    input: InputKind,
    change: OutputKind,
    policy: &Policy,
) -> RailQuote {
    let class = policy.class(new.priority);
    let mates: Vec<&Queued> = queue.iter().filter(|q| q.priority == new.priority).chain([new]).collect();
    let joined: Vec<Queued> = mates.iter().map(|q| (*q).clone()).collect();
    let leaves_now = super::policy::departure(&joined, now, feerates, policy)
        .is_some_and(|d| d.payouts.contains(&(joined.len() - 1)));
    let oldest = mates.iter().map(|q| q.submitted_at).min().unwrap_or(new.submitted_at);
    let interval = (class.interval_secs > 0).then(|| oldest.saturating_add(class.interval_secs));
    let cheap = feerates
        .cheap(new.priority, mates.iter().copied(), now, policy)
        .then(|| oldest.saturating_add(class.cheap_min_wait_secs));
    let deadline = mates.iter().map(|q| q.deadline(policy)).chain(interval).chain(cheap).min().unwrap_or(now);
    let wait = if leaves_now { 0 } else { deadline.saturating_sub(now) };
    let n = mates.len() as u64;
    let shared = overhead_weight(1, n + 1, input.is_segwit()) + input.weight() + change.weight();
    let weight = new.output.weight() + shared.div_ceil(n);
    let feerate_sat_kvb = feerates.of(new.priority).min(policy.max_feerate_sat_kvb);
    RailQuote {
        fee_sat: fee_sat(weight, feerate_sat_kvb),
        feerate_sat_kvb,
        weight,
        vbytes: vbytes(weight),
        eta_secs: wait + class.target_secs(),
        target_blocks: class.target_blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Priority;
    use crate::config::Config;

    const NOW: u64 = 1_800_000_000;

    fn q(priority: Priority, submitted_at: u64) -> Queued {
        Queued { priority, output: OutputKind::P2wpkh, amount_sat: 50_000, submitted_at }
    }

    #[test]
    fn one_payout_alone_is_141_vbytes() {
        let s = single_quote(OutputKind::P2wpkh, InputKind::P2wpkh, OutputKind::P2wpkh, 10_000, 6);
        assert_eq!((s.vbytes, s.fee_sat, s.eta_secs), (141, 1_410, 3_600));
    }

    #[test]
    fn a_tenth_payout_in_a_normal_batch_pays_its_output_and_a_tenth_of_the_rest() {
        let p = Policy::from_config(&Config::default());
        let mut queue: Vec<Queued> = (0..9).map(|i| q(Priority::Normal, NOW - 1_000 + i)).collect();
        queue.push(q(Priority::Low, NOW - 50_000));
        let fees = Feerates { high: 20_000, normal: 10_000, low: 4_000, ..Feerates::flat(0) };
        let b = batch_quote(&queue, &q(Priority::Normal, NOW), NOW, &fees, InputKind::P2wpkh, OutputKind::P2wpkh, &p);
        // 124 + ceil((42 + 272 + 124) / 10) = 124 + 44 = 168 WU = 42 vB at 10 sat/vB.
        assert_eq!((b.weight, b.vbytes, b.fee_sat), (168, 42, 420));
        // The oldest normal payout's deadline is 2600 s away, then 6 blocks.
        assert_eq!(b.eta_secs, 2_600 + 3_600);
        assert!(b.eta_secs <= 7_200, "within normal's ETA bound");
        let s = single_quote(OutputKind::P2wpkh, InputKind::P2wpkh, OutputKind::P2wpkh, 10_000, 6);
        assert!(b.fee_sat * 3 < s.fee_sat, "a third of one transaction each");
    }

    #[test]
    fn a_high_payout_batches_only_if_its_batch_leaves_in_time() {
        let p = Policy::from_config(&Config::default());
        let fees = Feerates { high: 20_000, normal: 10_000, low: 4_000, ..Feerates::flat(0) };
        let b = batch_quote(&[], &q(Priority::High, NOW), NOW, &fees, InputKind::P2wpkh, OutputKind::P2wpkh, &p);
        assert_eq!(b.eta_secs, 600 + 1_200, "waits at most one block, then its 2-block target");
        let cheap = Feerates { high: 1_000, normal: 1_000, low: 1_000, ..Feerates::flat(0) };
        let b = batch_quote(&[], &q(Priority::High, NOW), NOW, &cheap, InputKind::P2wpkh, OutputKind::P2wpkh, &p);
        assert_eq!(b.eta_secs, 600 + 1_200, "cheap: it still gathers until its deadline");
        let low = batch_quote(&[], &q(Priority::Low, NOW), NOW, &cheap, InputKind::P2wpkh, OutputKind::P2wpkh, &p);
        assert_eq!(low.eta_secs, 3_600 + 14_400, "cheap: it gathers for an hour, then 24 blocks");
    }
}
