//! When queued `onchain_batch` payouts leave, at what feerate, which wait for fees, and when an
//! unconfirmed transaction is bumped. Pure functions of the queue, the time and the feerates.
//!
//! A batch leaves at the first of: a payout's deadline (its submission + its priority's ETA
//! bound − its confirmation target's time, so a queued payout never misses its bound), a
//! priority's count or total, its feerate at or below its "cheap" level (once its oldest payout
//! has waited the priority's `cheap_min_wait_secs`, so that cheap hours still gather batches), its
//! interval, or an operator's trigger. The payouts of the priorities that triggered leave (and with
//! a due payout those of its priority due within `deadline_join_secs`), at the highest feerate
//! their targets need; payouts of priorities
//! that join (`*_join`) go too when that feerate meets their target and ceiling; the others wait
//! for their own trigger. Cheap is a priority's fixed level or, whatever the market's level, the
//! recent low ([`Feerates::recent_low`], a percentile of the last day's feerates), unless
//! yesterday's feerates went on to fall further before the time of day of the middle of its
//! payouts' deadlines ([`Feerates::cheaper_in_secs`]): the batch then waits for that trough, and
//! those due sooner leave at their deadlines. Above a
//! priority's ceiling its payouts wait for fees, except those whose deadline has come: they pay
//! what their target needs (plus a margin when that target is two blocks or fewer:
//! [`Policy::at_deadline`]), up to the wallet's maximum — and at most their priority's deadline
//! cap, a percentile of the last day's next-block feerates ([`Feerates::at_deadline`]; `low`'s
//! 70th by default): with many blocks left, a spike is waited out, and [`bump`] lifts the
//! transaction in its last blocks at the latest.

use super::size::OutputKind;
use super::{Policy, Priority};

/// A payout waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Its priority.
    pub priority: Priority,
    /// Its output's script type.
    pub output: OutputKind,
    /// What it pays, sats.
    pub amount_sat: u64,
    /// When it was submitted, Unix seconds.
    pub submitted_at: u64,
}

impl Queued {
    /// The latest it may leave and still confirm within its ETA bound, Unix seconds.
    pub fn deadline(&self, policy: &Policy) -> u64 {
        self.submitted_at.saturating_add(policy.class(self.priority).max_wait_secs())
    }

    /// When its ETA bound runs out, Unix seconds.
    pub fn eta_bound(&self, policy: &Policy) -> u64 {
        self.submitted_at.saturating_add(policy.class(self.priority).max_eta_secs)
    }
}

/// The feerate estimate for each priority's confirmation target, sat/kvB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feerates {
    /// For `high`'s target.
    pub high: u64,
    /// For `normal`'s target.
    pub normal: u64,
    /// For `low`'s target.
    pub low: u64,
    /// A low level of the recent market: the policy's `cheap_percentile` of the next-block
    /// feerates of its `cheap_window_secs` ([`recent_level`]); 0 when unknown. At or below it
    /// the feerate is cheap for every priority, whatever their fixed levels.
    pub recent_low: u64,
    /// Yesterday's fall ([`super::FeeHistory::cheaper_in`]): how many seconds after this time of
    /// day, a day ago, the feerate first stood more than the policy's `forecast_fall_percent`
    /// below its level at this time of day; `None` when it did not (or nobody knows). A cheap
    /// batch the middle of whose deadlines comes no sooner than that waits for it.
    pub cheaper_in_secs: Option<u64>,
    /// Each priority's deadline cap (`high`, `normal`, `low`): its `deadline_cap_percentile` of
    /// the same next-block feerates ([`super::FeeHistory::deadline_caps`]); `None` when off or
    /// unknown. A payout leaving at its deadline pays no more ([`Feerates::at_deadline`]), and
    /// its transaction is not bumped while the next block asks more, until its last blocks
    /// ([`bump`]): a target of many blocks has time to wait a spike out.
    pub deadline_caps: [Option<u64>; 3],
}

impl Feerates {
    /// The same feerate for every target.
    pub fn flat(sat_kvb: u64) -> Feerates {
        Feerates {
            high: sat_kvb,
            normal: sat_kvb,
            low: sat_kvb,
            recent_low: 0,
            cheaper_in_secs: None,
            deadline_caps: [None; 3],
        }
    }

    /// Whether `payouts` (queued, of priority `p`) may leave now for a cheap feerate: the feerate
    /// for `p`'s target is at or below its fixed cheap level or the recent low, and yesterday does
    /// not say it falls further before the middle of their deadlines ([`middle_deadline`],
    /// [`Feerates::cheaper_in_secs`]; those are sorted only when it matters).
    pub fn cheap<'a>(&self, p: Priority, payouts: impl Iterator<Item = &'a Queued>, now: u64, policy: &Policy) -> bool {
        let cheap = self.of(p) <= policy.class(p).cheap_feerate_sat_kvb.max(self.recent_low);
        cheap
            && self.cheaper_in_secs.is_none_or(|secs| {
                let middle = middle_deadline(payouts, policy).unwrap_or(now);
                now.saturating_add(secs) > middle
            })
    }

    /// The estimate for `p`'s target.
    pub fn of(&self, p: Priority) -> u64 {
        match p {
            Priority::High => self.high,
            Priority::Normal => self.normal,
            Priority::Low => self.low,
        }
    }

    /// `p`'s deadline cap, when it has one.
    pub fn deadline_cap(&self, p: Priority) -> Option<u64> {
        self.deadline_caps[p.index()]
    }

    /// `rate` for a payout of `p` leaving at or near its deadline: at most `p`'s deadline cap.
    pub fn capped(&self, p: Priority, rate: u64) -> u64 {
        self.deadline_cap(p).map_or(rate, |cap| rate.min(cap))
    }

    /// What a payout of `p` pays leaving at its deadline: [`Policy::at_deadline`] of its
    /// target's estimate, at most its deadline cap.
    pub fn at_deadline(&self, p: Priority, policy: &Policy) -> u64 {
        self.capped(p, policy.at_deadline(p, self.of(p)))
    }
}

/// Why a batch leaves (the first that holds, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// A payout's deadline came.
    Deadline,
    /// A priority's count was reached.
    Count,
    /// A priority's total was reached.
    Total,
    /// The feerate fell to a priority's cheap level.
    Cheap,
    /// A priority's oldest payout waited its interval.
    Interval,
    /// An operator's `batch.trigger`.
    Operator,
}

impl Reason {
    /// `deadline`, `count`, `total`, `cheap`, `interval`, `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Deadline => "deadline",
            Reason::Count => "count",
            Reason::Total => "total",
            Reason::Cheap => "cheap",
            Reason::Interval => "interval",
            Reason::Operator => "operator",
        }
    }
}

/// A batch that leaves now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    /// Why.
    pub reason: Reason,
    /// The feerate it pays, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// The payouts that leave: positions in the queue given, in queue order.
    pub payouts: Vec<usize>,
}

/// A payout waiting for fees (`waiting_for_fees`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// It leaves once its target's feerate is at or below this, sat/kvB.
    pub waits_for_sat_kvb: u64,
    /// … or at this time whatever the feerate (its deadline), Unix seconds.
    pub until: u64,
}

/// Whether `q` waits for fees now, and for what.
pub fn held_for_fees(q: &Queued, now: u64, feerates: &Feerates, policy: &Policy) -> Option<Held> {
    let ceiling = policy.class(q.priority).max_feerate_sat_kvb;
    let until = q.deadline(policy);
    (now < until && feerates.of(q.priority) > ceiling).then_some(Held { waits_for_sat_kvb: ceiling, until })
}

/// The `percentile` (0–100) of `samples` (recent next-block feerates, sat/kvB), for
/// [`Feerates::recent_low`]; 0 for no samples or a percentile of 0.
pub fn recent_level(samples: &[u64], percentile: u32) -> u64 {
    if samples.is_empty() || percentile == 0 {
        return 0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[(sorted.len() - 1) * percentile.min(100) as usize / 100]
}

/// The middle of `payouts`' deadlines (the lower of the two middle ones for an even count);
/// `None` for none. A cheap batch waits for yesterday's trough when it comes before this: most of
/// its payouts can wait for it, and those due sooner leave at their deadlines.
pub fn middle_deadline<'a>(payouts: impl Iterator<Item = &'a Queued>, policy: &Policy) -> Option<u64> {
    let mut deadlines: Vec<u64> = payouts.map(|q| q.deadline(policy)).collect();
    deadlines.sort_unstable();
    deadlines.get(deadlines.len().checked_sub(1)? / 2).copied()
}

/// Why priority `p`'s payouts would make a batch leave now (its deadlines aside).
fn class_reason(queue: &[Queued], p: Priority, now: u64, feerates: &Feerates, policy: &Policy) -> Option<Reason> {
    let c = policy.class(p);
    let rate = feerates.of(p);
    let members = queue.iter().filter(|q| q.priority == p);
    let (count, total, oldest) = members
        .fold((0u64, 0u64, u64::MAX), |(n, t, o), q| (n + 1, t.saturating_add(q.amount_sat), o.min(q.submitted_at)));
    if count == 0 || rate > c.max_feerate_sat_kvb {
        return None;
    }
    let cheap = feerates.cheap(p, queue.iter().filter(|q| q.priority == p), now, policy);
    [
        (count >= u64::from(c.max_count), Reason::Count),
        (total >= c.max_total_sat, Reason::Total),
        (cheap && now.saturating_sub(oldest) >= c.cheap_min_wait_secs, Reason::Cheap),
        (c.interval_secs > 0 && now.saturating_sub(oldest) >= c.interval_secs, Reason::Interval),
    ]
    .into_iter()
    .find_map(|(yes, reason)| yes.then_some(reason))
}

/// The batch that leaves now, if one does.
pub fn departure(queue: &[Queued], now: u64, feerates: &Feerates, policy: &Policy) -> Option<Departure> {
    let due = |q: &Queued| q.deadline(policy) <= now;
    let reasons: Vec<(Priority, Reason)> = Priority::ALL
        .into_iter()
        .filter_map(|p| class_reason(queue, p, now, feerates, policy).map(|r| (p, r)))
        .collect();
    let any_due = queue.iter().any(due);
    let reason = if any_due { Reason::Deadline } else { reasons.iter().map(|(_, r)| *r).min()? };
    // Whole priorities leave when they triggered. With a due payout go the others of its
    // priority due within `deadline_join_secs` (unless it waits for fees): the rest keep their
    // chance of a cheaper feerate.
    let leaving: Vec<Priority> = Priority::ALL.into_iter().filter(|p| reasons.iter().any(|(r, _)| r == p)).collect();
    let soon = |q: &Queued| {
        let p = q.priority;
        q.deadline(policy) <= now.saturating_add(policy.deadline_join_secs)
            && queue.iter().any(|d| d.priority == p && due(d))
            && feerates.of(p) <= policy.class(p).max_feerate_sat_kvb
    };
    // A payout leaving at its deadline has just its target's blocks left (`Policy::at_deadline`),
    // no more than its deadline cap; so do those leaving with it, sooner.
    let due_rates = queue.iter().filter(|q| due(q)).map(|q| feerates.at_deadline(q.priority, policy));
    let soon_rates = queue.iter().filter(|q| soon(q)).map(|q| feerates.capped(q.priority, feerates.of(q.priority)));
    let rate = leaving.iter().map(|p| feerates.of(*p)).chain(due_rates).chain(soon_rates).max()?;
    let rate = rate.min(policy.max_feerate_sat_kvb);
    let joins = |p: Priority| {
        let c = policy.class(p);
        c.joins && feerates.of(p) <= rate && rate <= c.max_feerate_sat_kvb
    };
    let payouts = (0..queue.len())
        .filter(|&i| {
            due(&queue[i]) || soon(&queue[i]) || leaving.contains(&queue[i].priority) || joins(queue[i].priority)
        })
        .collect();
    Some(Departure { reason, feerate_sat_kvb: rate, payouts })
}

/// An operator's `batch.trigger`: every queued payout leaves now, at the feerate the most urgent
/// of them needs (up to the wallet's maximum). `None` for an empty queue.
pub fn triggered(queue: &[Queued], feerates: &Feerates, policy: &Policy) -> Option<Departure> {
    let rate = queue.iter().map(|q| feerates.of(q.priority)).max()?.min(policy.max_feerate_sat_kvb);
    Some(Departure { reason: Reason::Operator, feerate_sat_kvb: rate, payouts: (0..queue.len()).collect() })
}

/// The next time a batch is sure to leave whatever the feerate (a deadline or an interval),
/// Unix seconds; `None` for an empty queue. A scheduler sleeps until then (or a new feerate).
pub fn next_departure(queue: &[Queued], policy: &Policy) -> Option<u64> {
    let deadlines = queue.iter().map(|q| q.deadline(policy));
    let intervals = queue.iter().filter_map(|q| {
        let i = policy.class(q.priority).interval_secs;
        (i > 0).then(|| q.submitted_at.saturating_add(i))
    });
    deadlines.chain(intervals).min()
}

/// A broadcast transaction not yet confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// The most urgent priority among its payouts.
    pub priority: Priority,
    /// The feerate it pays, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// Blocks found since it (or its last replacement) was broadcast.
    pub blocks_unconfirmed: u32,
    /// The earliest ETA bound among its payouts, Unix seconds.
    pub eta_bound: u64,
}

/// The feerate to replace `tx` with now, if it should be bumped: after its priority's
/// `bump_after_blocks`, to what the next block needs (`next_block_sat_kvb`), at most the
/// priority's bump ceiling. Sooner, once a block has passed, as its ETA bound comes: three
/// blocks away (two blocks left) to the next block's feerate plus `deadline_margin_percent`, as a
/// payout with a two-block target pays leaving at its deadline; two blocks away (its last) to the
/// next block's feerate plus `near_bound_margin_percent`, up to the wallet's maximum. Always at
/// least the relay step above its own feerate (`replacement_step_sat_kvb`: bitcoind's
/// incremental relay feerate).
///
/// `None` when the next block's feerate is not above its own, and, before its last blocks, when
/// it is above but below the least a replacement pays (its own plus the relay step): the
/// replacement would pay more than the market asks, and the market may come back to it. On the
/// simulator's eleven weeks the wait took Sendero from 1.394 to 1.388 of the lower bound on
/// average, the three-block bump to 1.382 (cheaper on ten of them) with one late payout fewer.
///
/// `None` too, before its last blocks, while the next block asks more than its priority's
/// deadline cap (`deadline_cap_sat_kvb`, [`Feerates::deadline_cap`]): a spike is waited out for
/// as long as its bound allows, and the last blocks' bumps still keep the bound. With `low`'s
/// cap (and its deadline departures capped) the eleven weeks went from 1.382 to 1.373.
pub fn bump(
    tx: &InFlight,
    now: u64,
    next_block_sat_kvb: u64,
    deadline_cap_sat_kvb: Option<u64>,
    policy: &Policy,
) -> Option<u64> {
    let c = policy.class(tx.priority);
    let left = tx.eta_bound.saturating_sub(now);
    // Its last two blocks (`closing`), the last of them (`near`).
    let (closing, near) = (left <= 3 * 600, left <= 2 * 600);
    let waited = tx.blocks_unconfirmed >= c.bump_after_blocks || (closing && tx.blocks_unconfirmed >= 1);
    if !waited || next_block_sat_kvb <= tx.feerate_sat_kvb {
        return None;
    }
    if !closing && deadline_cap_sat_kvb.is_some_and(|cap| next_block_sat_kvb > cap) {
        return None;
    }
    let cap =
        if near { policy.max_feerate_sat_kvb } else { c.bump_max_feerate_sat_kvb.min(policy.max_feerate_sat_kvb) };
    let floor = tx.feerate_sat_kvb.saturating_add(policy.replacement_step_sat_kvb);
    let margin = if near {
        policy.near_bound_margin_percent
    } else if closing {
        policy.deadline_margin_percent
    } else {
        0
    };
    let next_block = next_block_sat_kvb.saturating_mul(100 + u64::from(margin)) / 100;
    if !closing && next_block < floor {
        return None;
    }
    let want = next_block.max(floor).min(cap);
    (want >= floor).then_some(want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::batch_quote;
    use crate::batch::size::InputKind;
    use crate::config::Config;

    const T0: u64 = 1_800_000_000;

    fn q(priority: Priority, amount_sat: u64, submitted_at: u64) -> Queued {
        Queued { priority, output: OutputKind::P2wpkh, amount_sat, submitted_at }
    }

    fn policy() -> Policy {
        Policy::from_config(&Config::default())
    }

    #[test]
    fn a_normal_payout_leaves_at_its_deadline_at_the_feerate_its_target_needs() {
        let p = policy();
        let queue = [q(Priority::Normal, 50_000, T0), q(Priority::Low, 70_000, T0 + 10)];
        let fees = Feerates { high: 9_000, normal: 5_000, low: 4_000, ..Feerates::flat(0) };
        assert_eq!(queue[0].deadline(&p), T0 + 3_600, "7200 s bound − 6 blocks × 600 s");
        assert_eq!(departure(&queue, T0 + 3_599, &fees, &p), None);
        let d = departure(&queue, T0 + 3_600, &fees, &p).unwrap();
        assert_eq!(d, Departure { reason: Reason::Deadline, feerate_sat_kvb: 5_000, payouts: vec![0] });
        assert_eq!(next_departure(&queue, &p), Some(T0 + 3_600));
    }

    #[test]
    fn count_total_cheap_and_interval_each_make_a_batch_leave() {
        let mut p = policy();
        let fees = Feerates { high: 9_000, normal: 5_000, low: 4_000, ..Feerates::flat(0) };
        let many: Vec<Queued> = (0..200).map(|i| q(Priority::Normal, 1_000, T0 + i)).collect();
        assert_eq!(departure(&many, T0 + 300, &fees, &p).unwrap().reason, Reason::Count);
        let big = [q(Priority::Normal, 500_000_000, T0)];
        assert_eq!(departure(&big, T0, &fees, &p).unwrap().reason, Reason::Total);
        let lows = [q(Priority::Low, 10_000, T0), q(Priority::Normal, 10_000, T0 + 1_000)];
        let cheap = Feerates { high: 3_000, normal: 2_500, low: 2_000, ..Feerates::flat(0) };
        assert_eq!(departure(&lows, T0 + 3_599, &cheap, &p), None, "a cheap batch gathers for an hour");
        let d = departure(&lows, T0 + 3_600, &cheap, &p).unwrap();
        assert_eq!((d.reason, d.feerate_sat_kvb, d.payouts), (Reason::Cheap, 2_000, vec![0]), "normal waits");
        p.classes[2].interval_secs = 3_600;
        assert_eq!(departure(&lows[..1], T0 + 3_599, &fees, &p), None);
        assert_eq!(departure(&lows[..1], T0 + 3_600, &fees, &p).unwrap().reason, Reason::Interval);
        let d = triggered(&lows, &fees, &p).unwrap();
        assert_eq!((d.reason, d.feerate_sat_kvb, d.payouts), (Reason::Operator, 5_000, vec![0, 1]));
    }

    #[test]
    fn in_a_fee_spike_low_payouts_wait_until_fees_fall_or_their_deadline() {
        let p = policy();
        let queue: Vec<Queued> = (0..600).map(|i| q(Priority::Low, 10_000, T0 + i)).collect();
        let spike = Feerates { high: 80_000, normal: 60_000, low: 30_000, ..Feerates::flat(0) };
        let held = held_for_fees(&queue[0], T0 + 1_000, &spike, &p).unwrap();
        assert_eq!(held, Held { waits_for_sat_kvb: 20_000, until: T0 + 72_000 });
        assert_eq!(departure(&queue, T0 + 1_000, &spike, &p), None, "600 ≥ max count, yet held");
        let calmer = Feerates { high: 30_000, normal: 25_000, low: 20_000, ..Feerates::flat(0) };
        assert_eq!(held_for_fees(&queue[0], T0 + 1_000, &calmer, &p), None);
        assert_eq!(departure(&queue, T0 + 1_000, &calmer, &p).unwrap().reason, Reason::Count);
        let d = departure(&queue, T0 + 72_000, &spike, &p).unwrap();
        assert_eq!((d.reason, d.feerate_sat_kvb, d.payouts), (Reason::Deadline, 30_000, vec![0]), "only the due one");
        let absurd = Feerates { high: 5_000_000, normal: 5_000_000, low: 5_000_000, ..Feerates::flat(0) };
        assert_eq!(departure(&queue, T0 + 72_000, &absurd, &p).unwrap().feerate_sat_kvb, 1_000_000, "wallet max");
    }

    #[test]
    fn at_a_deadline_in_a_spike_only_the_payouts_due_within_the_hour_leave() {
        let p = policy();
        assert_eq!(p.deadline_join_secs, 3_600);
        // Low payouts submitted over the day; the first is due (20 h later) while fees are high.
        let queue: Vec<Queued> = (0..20).map(|i| q(Priority::Low, 10_000, T0 + i * 1_200)).collect();
        let spike = Feerates { high: 19_000, normal: 19_000, low: 18_000, recent_low: 3_000, ..Feerates::flat(0) };
        let d = departure(&queue, T0 + 72_000, &spike, &p).unwrap();
        assert_eq!((d.reason, d.feerate_sat_kvb), (Reason::Deadline, 18_000));
        assert_eq!(d.payouts, [0, 1, 2, 3], "due now, and within 3600 s (1200, 2400, 3600)");
        let d = departure(&queue, T0 + 72_000, &Feerates { recent_low: 18_000, ..spike }, &p).unwrap();
        assert_eq!(d.payouts.len(), 20, "cheap for all of them: they all go");
    }

    #[test]
    fn a_low_payout_due_in_a_spike_pays_at_most_its_deadline_cap() {
        let p = policy();
        assert_eq!(p.class(Priority::Low).deadline_cap_percentile, 70);
        let queue: Vec<Queued> = (0..20).map(|i| q(Priority::Low, 10_000, T0 + i * 1_200)).collect();
        let spike = Feerates { deadline_caps: [None, None, Some(6_000)], ..Feerates::flat(18_000) };
        let d = departure(&queue, T0 + 72_000, &spike, &p).unwrap();
        assert_eq!((d.reason, d.feerate_sat_kvb, d.payouts), (Reason::Deadline, 6_000, vec![0, 1, 2, 3]));
        assert_eq!(spike.at_deadline(Priority::Low, &p), 6_000);
        let calm = Feerates { deadline_caps: [None, None, Some(6_000)], ..Feerates::flat(4_000) };
        assert_eq!(
            departure(&queue, T0 + 72_000, &calm, &p).unwrap().feerate_sat_kvb,
            4_000,
            "under the cap: the estimate"
        );
        // A due `high` payout is not capped: the batch pays what it needs.
        let mut both = queue.clone();
        both.push(q(Priority::High, 10_000, T0 + 72_000 - 600));
        let d = departure(&both, T0 + 72_000, &spike, &p).unwrap();
        assert_eq!((d.feerate_sat_kvb, d.payouts.len()), (20_700, 5), "18,000 + 15 %");
    }

    #[test]
    fn a_transaction_over_its_deadline_cap_waits_out_a_spike_until_its_last_blocks() {
        let p = policy();
        let tx =
            InFlight { priority: Priority::Low, feerate_sat_kvb: 3_000, blocks_unconfirmed: 6, eta_bound: T0 + 86_400 };
        assert_eq!(bump(&tx, T0, 9_000, None, &p), Some(9_000), "no cap: the next block's feerate");
        assert_eq!(bump(&tx, T0, 9_000, Some(5_000), &p), None, "the next block asks more than the cap");
        assert_eq!(bump(&tx, T0, 5_000, Some(5_000), &p), Some(5_000), "up to the cap, bumped as before");
        let closing = InFlight { blocks_unconfirmed: 1, ..tx };
        assert_eq!(bump(&closing, T0 + 84_600, 9_000, Some(5_000), &p), Some(10_350), "two blocks left: + 15 %");
        assert_eq!(bump(&closing, T0 + 85_200, 9_000, Some(5_000), &p), Some(12_600), "its last: + 40 %");
    }

    #[test]
    fn normal_payouts_join_a_leaving_high_batch_and_a_recent_low_is_cheap() {
        let p = policy();
        let queue =
            [q(Priority::Normal, 10_000, T0), q(Priority::High, 20_000, T0 + 100), q(Priority::Low, 30_000, T0)];
        let d = departure(&queue, T0 + 700, &Feerates::flat(6_000), &p).unwrap();
        assert_eq!((d.reason, d.payouts), (Reason::Deadline, vec![0, 1]), "low waits for cheap fees");
        assert_eq!(d.feerate_sat_kvb, 6_900, "high's 2-block target at its deadline: +15 %");
        // A day of 3 to 10 sat/vB: its 20th percentile is 4 sat/vB, cheap for every priority.
        let day: Vec<u64> = (0..144).map(|i| 3_000 + (i % 8) * 1_000).collect();
        assert_eq!(recent_level(&day, 20), 4_000);
        assert_eq!(departure(&queue[2..], T0 + 3_600, &Feerates::flat(4_000), &p), None, "above the fixed 2 sat/vB");
        let fees = Feerates { recent_low: recent_level(&day, 20), ..Feerates::flat(4_000) };
        assert_eq!(departure(&queue[2..], T0 + 3_600, &fees, &p).unwrap().reason, Reason::Cheap);
    }

    #[test]
    fn a_cheap_batch_waits_when_yesterday_fell_further_before_the_middle_of_its_deadlines() {
        let p = policy();
        // Two low payouts: the first due at T0 + 72,000 (a 24 h bound less 24 blocks).
        let queue = [q(Priority::Low, 10_000, T0), q(Priority::Low, 20_000, T0 + 3_000)];
        assert_eq!(queue[0].deadline(&p), T0 + 72_000);
        let now = T0 + 36_000;
        let cheap = Feerates::flat(1_800);
        let d = departure(&queue, now, &cheap, &p).unwrap();
        assert_eq!((d.reason, d.payouts), (Reason::Cheap, vec![0, 1]), "cheap, and nothing known of yesterday");
        // Yesterday it went on falling 20 % more three hours later, long before the deadline.
        let falls = Feerates { cheaper_in_secs: Some(10_800), ..cheap };
        assert_eq!(departure(&queue, now, &falls, &p), None, "waits for yesterday's trough");
        let quote = batch_quote(&queue[..1], &queue[1], now, &falls, InputKind::P2wpkh, OutputKind::P2wpkh, &p);
        assert_eq!(quote.eta_secs, 72_000 - 36_000 + 24 * 600, "its ETA: the first deadline, then its target");
        // Yesterday's trough came after the middle deadline (of two, the first): no reason to wait.
        let late = Feerates { cheaper_in_secs: Some(72_000 - 36_000 + 600), ..cheap };
        assert_eq!(departure(&queue, now, &late, &p).unwrap().reason, Reason::Cheap);
        // A deadline never waits for it (the second, due within deadline_join_secs, goes too).
        let d = departure(&queue, T0 + 72_000, &falls, &p).unwrap();
        assert_eq!((d.reason, d.payouts), (Reason::Deadline, vec![0, 1]));
        // Yesterday's trough after the first deadline but before the middle one (of three): the
        // batch waits.
        let three = [queue[0].clone(), q(Priority::Low, 10_000, T0 + 30_000), q(Priority::Low, 10_000, T0 + 31_000)];
        assert_eq!(middle_deadline(three.iter(), &p), Some(T0 + 102_000));
        let later = Feerates { cheaper_in_secs: Some(40_000), ..cheap };
        assert_eq!(departure(&three, now, &later, &p), None, "most of them can wait for it");
        // At the first deadline the trough is 3 hours ahead: the first leaves alone.
        let d = departure(&three, T0 + 72_000, &falls, &p).unwrap();
        assert_eq!((d.reason, d.payouts), (Reason::Deadline, vec![0]));
        assert_eq!(middle_deadline([].iter(), &p), None);
        // Off: the policy's forecast_fall_percent of 0 gives no fall.
        let mut h = super::super::FeeHistory::default();
        for i in 0..=150 {
            h.record(T0 + i * 600, 10_000 - i * 40, 86_400);
        }
        let off = Policy { forecast_fall_percent: 0, ..p.clone() };
        assert!(h.cheaper_in(T0 + 90_000, p.forecast_fall_percent).is_some());
        assert_eq!(h.cheaper_in(T0 + 90_000, off.forecast_fall_percent), None);
    }

    #[test]
    fn with_bitcoinds_step_of_a_tenth_a_stuck_transaction_is_lifted_to_what_the_next_block_asks() {
        let (old, p) = (policy(), Policy { replacement_step_sat_kvb: 100, ..policy() });
        let tx = InFlight {
            priority: Priority::Normal,
            feerate_sat_kvb: 5_000,
            blocks_unconfirmed: 3,
            eta_bound: T0 + 7_200,
        };
        assert_eq!(bump(&tx, T0, 5_500, None, &old), None, "a 1 sat/vB step: it waits");
        assert_eq!(bump(&tx, T0, 5_500, None, &p), Some(5_500), "0.1 sat/vB: what the next block asks");
        assert_eq!(bump(&tx, T0, 5_100, None, &p), Some(5_100));
        assert_eq!(bump(&tx, T0, 5_050, None, &p), None, "less than a replacement must pay");
        let closing = InFlight { blocks_unconfirmed: 1, ..tx };
        assert_eq!(bump(&closing, T0 + 5_400, 5_200, None, &old), Some(6_000), "5,980 wanted, 6,000 the least");
        assert_eq!(bump(&closing, T0 + 5_400, 5_200, None, &p), Some(5_980), "the next block's + 15 %");
        assert_eq!(bump(&closing, T0 + 5_400, 4_900, None, &p), None, "already enough for the next block");
    }

    #[test]
    fn a_stuck_transaction_is_bumped_after_its_blocks_up_to_its_ceiling() {
        let p = policy();
        let tx = InFlight {
            priority: Priority::Normal,
            feerate_sat_kvb: 5_000,
            blocks_unconfirmed: 2,
            eta_bound: T0 + 7_200,
        };
        assert_eq!(bump(&tx, T0, 9_000, None, &p), None, "3 blocks for normal");
        let tx = InFlight { blocks_unconfirmed: 3, ..tx };
        assert_eq!(bump(&tx, T0, 9_000, None, &p), Some(9_000));
        assert_eq!(bump(&tx, T0, 6_200, None, &p), Some(6_200));
        assert_eq!(bump(&tx, T0, 6_000, None, &p), Some(6_000), "the least a replacement pays: +1 sat/vB");
        assert_eq!(bump(&tx, T0, 5_500, None, &p), None, "a replacement would pay more than the next block asks");
        assert_eq!(bump(&tx, T0, 4_000, None, &p), None, "already enough for the next block");
        assert_eq!(bump(&tx, T0, 300_000, None, &p), Some(100_000), "normal's bump ceiling");
        let near = InFlight { blocks_unconfirmed: 1, ..tx };
        assert_eq!(
            bump(&near, T0 + 6_000, 300_000, None, &p),
            Some(420_000),
            "ETA bound 2 blocks away: +40 %, wallet max"
        );
        let close = InFlight { feerate_sat_kvb: 5_000, ..near };
        assert_eq!(bump(&close, T0 + 6_000, 4_000, None, &p), None, "already enough for the next block");
        assert_eq!(bump(&close, T0 + 6_000, 5_200, None, &p), Some(7_280), "near its bound: the next block's + 40 %");
        assert_eq!(bump(&close, T0 + 6_000, 5_100, None, &p), Some(7_140));
        // Three blocks from its bound, after a block: the next block's + 15 %, at least + 1 sat/vB.
        let closing = InFlight { blocks_unconfirmed: 1, ..close };
        assert_eq!(bump(&closing, T0 + 5_400, 6_000, None, &p), Some(6_900));
        assert_eq!(bump(&closing, T0 + 5_400, 5_200, None, &p), Some(6_000), "5,980 wanted");
        assert_eq!(bump(&closing, T0 + 5_400, 5_000, None, &p), None, "already enough for the next block");
        assert_eq!(bump(&closing, T0 + 5_399 - 600, 6_000, None, &p), None, "four blocks away: after 3 blocks");
    }
}
