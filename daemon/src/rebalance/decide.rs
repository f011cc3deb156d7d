//! The rebalancer's decision, per channel: splice in, splice out, or nothing — each with a stable
//! code and a reason a person can read.
//!
//! For each channel, with `share` = outbound / (outbound + inbound):
//! - its **part** of a rail-wide figure goes by its capacity (`capacity / Σ capacity`); its
//!   **floor** is its part of `lightning_reserve_sat` + the forecast need, and at least
//!   `channel_reserve_sat`; its **runway** is how long its outbound above `channel_reserve_sat`
//!   lasts at its part of the forecast's rate (need / horizon);
//! - **splice in** when the share is below the band or the outbound below the floor: the larger
//!   of "back to the band's middle" and the forecast's: the channel's part of the forecast need
//!   plus whatever it lacks below its floor (so that one splice covers the next horizon's
//!   payouts on top of the floor);
//! - **splice out** when the share is above the band: back to the middle, but never below the
//!   floor plus its part of the forecast need (what the next splice-in would put back), and never
//!   more than the whole rail holds beyond every channel's floor plus part (a payout can use any
//!   channel's outbound, and a splice-out creates no inbound: outbound the rail needs stays);
//!   one that cannot take the channel at least halfway from the band's top back to its middle
//!   (62.5 % by default) is not made, so that a channel at the band's edge is not spliced out of
//!   again and again by small amounts;
//! - the amount is then capped so that the on-chain treasury keeps `onchain_reserve_sat` after
//!   what payouts in flight reserve and the fee (`reserve_would_break` when what is left is
//!   under `min_splice_sat`), and a splice-out leaves the floor plus its part after its fee;
//! - then the guards, in this order: `feerate_above_ceiling` (above `max_feerate_sat_kvb` a
//!   splice-out always waits; a splice-in waits unless the channel's runway is shorter than
//!   `fee_wait_secs`, the time fees are expected to take to fall back — it would run dry first),
//!   `fee_above_cap` (`max_fee_sat`, `max_fee_ppm` of the amount), `budget_spent` (the fees
//!   already spent in the rolling period plus this one over `fee_budget_sat`).
//!
//! Before all that a channel with a splice `in_flight`, or in `backoff` after a failure, is left
//! alone. Channels are considered most urgent first (shortest runway, then lowest share), so that
//! the budget and the treasury go first to the channels about to run dry; each splice decided
//! counts against the budget and the treasury of the next.

use super::fee::{splice_fee_sat, SpliceKind};
use super::forecast::Forecast;
use super::{percent, scale, TreasuryPolicy};

/// A channel as the rebalancer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Channel {
    /// Channel id.
    pub id: String,
    /// Capacity, sats.
    pub capacity_sat: u64,
    /// What we can send, msat.
    pub outbound_msat: u64,
    /// What we can receive, msat.
    pub inbound_msat: u64,
    /// A splice of it is planned or running.
    pub in_flight: bool,
    /// Failed splices in a row (0 after a success).
    pub failures: u32,
    /// When the last one failed, Unix seconds.
    pub last_failure_at: Option<u64>,
}

/// Everything else the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Situation {
    /// Unix seconds.
    pub now: u64,
    /// The on-chain treasury's balance, sats.
    pub onchain_sat: u64,
    /// What on-chain payouts in flight reserve of it, sats.
    pub onchain_reserved_sat: u64,
    /// The feerate a splice would pay now, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// Splice fees spent in the last `fee_budget_period_secs`, sats.
    pub spent_sat: u64,
    /// The Lightning rail's forecast.
    pub forecast: Forecast,
}

/// Why a channel is left alone (stable codes: [`Skip::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// Its share is inside the band and its outbound above its floor.
    InBand,
    /// A splice of it is already planned or running.
    InFlight,
    /// It failed recently and waits.
    Backoff,
    /// Above the band, but the forecast needs its outbound.
    ForecastNeedsIt,
    /// What it would move is under `min_splice_sat`.
    TooSmall,
    /// The treasury cannot fund it without going below its reserve.
    ReserveWouldBreak,
    /// Fees are above the ceiling and the channel will not run dry before they fall.
    FeerateAboveCeiling,
    /// The fee is above the per-operation cap.
    FeeAboveCap,
    /// The period's fee budget would be exceeded.
    BudgetSpent,
    /// Neither side has a balance (not usable).
    NoBalance,
}

impl Skip {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Skip::InBand => "in_band",
            Skip::InFlight => "in_flight",
            Skip::Backoff => "backoff",
            Skip::ForecastNeedsIt => "forecast_needs_it",
            Skip::TooSmall => "too_small",
            Skip::ReserveWouldBreak => "reserve_would_break",
            Skip::FeerateAboveCeiling => "feerate_above_ceiling",
            Skip::FeeAboveCap => "fee_above_cap",
            Skip::BudgetSpent => "budget_spent",
            Skip::NoBalance => "no_balance",
        }
    }
}

/// Why a splice is made (stable codes: [`Why::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// The outbound share is below the band.
    BelowBand,
    /// The outbound is below the channel's floor (reserve + forecast).
    BelowFloor,
    /// The outbound share is above the band.
    AboveBand,
}

impl Why {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            Why::BelowBand => "below_band",
            Why::BelowFloor => "below_floor",
            Why::AboveBand => "above_band",
        }
    }
}

/// A splice to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Splice {
    /// What it moves, sats.
    pub amount_sat: u64,
    /// Its estimated fee at the current feerate, sats.
    pub fee_sat: u64,
    /// Why.
    pub why: Why,
    /// For a person.
    pub reason: String,
}

/// What to do with one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing, and why.
    Nothing {
        /// The stable reason.
        skip: Skip,
        /// For a person.
        reason: String,
    },
    /// Splice from the treasury into the channel.
    SpliceIn(Splice),
    /// Splice from the channel to the treasury.
    SpliceOut(Splice),
}

impl Action {
    /// `splice_in`, `splice_out`, or the code of why nothing is done.
    pub fn code(&self) -> &'static str {
        match self {
            Action::Nothing { skip, .. } => skip.code(),
            Action::SpliceIn(_) => SpliceKind::In.as_str(),
            Action::SpliceOut(_) => SpliceKind::Out.as_str(),
        }
    }

    /// The reason, for a person.
    pub fn reason(&self) -> &str {
        match self {
            Action::Nothing { reason, .. } => reason,
            Action::SpliceIn(s) | Action::SpliceOut(s) => &s.reason,
        }
    }
}

/// The decision for one channel, with the figures it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The channel.
    pub channel_id: String,
    /// Its outbound share, basis points (2500 = 25 %).
    pub share_bp: u64,
    /// Its floor: its part of the Lightning reserve and the forecast need, msat.
    pub floor_msat: u64,
    /// How long its outbound above its reserve lasts at its part of the forecast's rate, seconds
    /// (`None`: no payouts forecast).
    pub runway_secs: Option<u64>,
    /// What to do.
    pub action: Action,
}

/// The decisions for `channels` (in their order).
pub fn decide(channels: &[Channel], s: &Situation, p: &TreasuryPolicy) -> Vec<Decision> {
    let total_capacity: u64 = channels.iter().map(|c| c.capacity_sat).sum();
    let views: Vec<View> = channels.iter().map(|c| View::of(c, total_capacity, &s.forecast, p)).collect();
    let mut order: Vec<usize> = (0..channels.len()).collect();
    order.sort_by_key(|&i| (views[i].runway_secs.unwrap_or(u64::MAX), views[i].share_bp));
    // What the rail holds beyond what every channel's floor and next horizon need: all that
    // splice-outs may take, since a payout can use any channel's outbound (MPP).
    let outbound: u64 = channels.iter().map(|c| c.outbound_msat).sum();
    let kept: u64 = views.iter().map(|v| v.floor_msat + v.need_part_msat).sum();
    let mut purse = Purse {
        spent_sat: s.spent_sat,
        treasury_free_sat: s.onchain_sat.saturating_sub(s.onchain_reserved_sat),
        rail_excess_sat: outbound.saturating_sub(kept) / 1_000,
    };
    let mut actions: Vec<Option<Action>> = vec![None; channels.len()];
    for i in order {
        actions[i] = Some(one(&channels[i], &views[i], s, p, &mut purse));
    }
    channels
        .iter()
        .zip(views)
        .zip(actions)
        .map(|((c, v), a)| Decision {
            channel_id: c.id.clone(),
            share_bp: v.share_bp,
            floor_msat: v.floor_msat,
            runway_secs: v.runway_secs,
            action: a.unwrap_or_else(|| nothing(Skip::InBand, String::new())),
        })
        .collect()
}

/// A channel's figures.
struct View {
    share_bp: u64,
    floor_msat: u64,
    need_part_msat: u64,
    runway_secs: Option<u64>,
}

impl View {
    fn of(c: &Channel, total_capacity: u64, f: &Forecast, p: &TreasuryPolicy) -> View {
        let both = c.outbound_msat.saturating_add(c.inbound_msat);
        let share_bp = scale(c.outbound_msat, 10_000, both);
        let need_part_msat = scale(f.need_msat, c.capacity_sat, total_capacity);
        let reserve_part = scale(p.lightning_reserve_sat.saturating_mul(1_000), c.capacity_sat, total_capacity);
        let floor_msat = (reserve_part + need_part_msat).max(p.channel_reserve_sat.saturating_mul(1_000));
        let above = c.outbound_msat.saturating_sub(p.channel_reserve_sat.saturating_mul(1_000));
        let runway_secs = (need_part_msat > 0).then(|| scale(above, f.horizon_secs, need_part_msat));
        View { share_bp, floor_msat, need_part_msat, runway_secs }
    }
}

/// What the splices decided so far have left.
struct Purse {
    spent_sat: u64,
    treasury_free_sat: u64,
    rail_excess_sat: u64,
}

fn nothing(skip: Skip, reason: String) -> Action {
    Action::Nothing { skip, reason }
}

/// One channel's action.
fn one(c: &Channel, v: &View, s: &Situation, p: &TreasuryPolicy, purse: &mut Purse) -> Action {
    if c.in_flight {
        return nothing(Skip::InFlight, "a splice of this channel is already planned or running".into());
    }
    let wait = p.backoff_after(c.failures);
    if let Some(at) = c.last_failure_at.filter(|at| c.failures > 0 && s.now < at.saturating_add(wait)) {
        return nothing(
            Skip::Backoff,
            format!("its last splice failed ({} in a row); it waits until {}", c.failures, at + wait),
        );
    }
    if c.outbound_msat.saturating_add(c.inbound_msat) == 0 {
        return nothing(Skip::NoBalance, "neither side of the channel has a balance".into());
    }
    let want = match want(c, v, p) {
        Ok(w) => w,
        Err(a) => return a,
    };
    let want = match size(want, c, v, s, p, purse) {
        Ok(w) => w,
        Err(a) => return a,
    };
    price(want, v, s, p, purse)
}

/// A splice before its guards.
struct Want {
    kind: SpliceKind,
    amount_sat: u64,
    /// Less than this is not worth it: a splice-out must take the channel at least halfway from
    /// the band's top back to its middle.
    least_sat: u64,
    fee_sat: u64,
    why: Why,
    reason: String,
}

/// What the band and the forecast ask for.
fn want(c: &Channel, v: &View, p: &TreasuryPolicy) -> Result<Want, Action> {
    let (out, both, mid) = (c.outbound_msat, c.outbound_msat + c.inbound_msat, p.middle_bp());
    let share = percent(v.share_bp);
    if out < v.floor_msat || v.share_bp < u64::from(p.band_low_percent) * 100 {
        // (out + a) / (both + a) = mid  ⇔  a = (mid × both − out) / (1 − mid).
        let to_middle = scale(scale(both, mid, 10_000).saturating_sub(out), 10_000, 10_000u64.saturating_sub(mid));
        let fill = v.floor_msat.saturating_sub(out) + v.need_part_msat;
        let amount_msat = to_middle.max(fill);
        let (why, reason) = if out < v.floor_msat {
            (
                Why::BelowFloor,
                format!("outbound {} sat is below its floor of {} sat", out / 1_000, v.floor_msat / 1_000),
            )
        } else {
            (Why::BelowBand, format!("outbound share {share} is below the band's {} %", p.band_low_percent))
        };
        let how = if fill > to_middle { "the forecast's need" } else { "the band's middle" };
        let reason = format!("{reason}: splice in for {how}");
        let amount_sat = amount_msat.div_ceil(1_000);
        return Ok(Want { kind: SpliceKind::In, amount_sat, least_sat: 0, fee_sat: 0, why, reason });
    }
    if v.share_bp <= u64::from(p.band_high_percent) * 100 {
        return Err(nothing(Skip::InBand, format!("outbound share {share} is inside the band")));
    }
    // (out − a) / (both − a) = m  ⇔  a = (out − m × both) / (1 − m), to the middle and to halfway.
    let to = |m: u64| scale(out.saturating_sub(scale(both, m, 10_000)), 10_000, 10_000u64.saturating_sub(m));
    let (to_middle, least) = (to(mid), to((mid + u64::from(p.band_high_percent) * 100) / 2));
    let keep = v.floor_msat + v.need_part_msat;
    let amount_msat = to_middle.min(out.saturating_sub(keep));
    let reason = format!("outbound share {share} is above the band's {} %", p.band_high_percent);
    if amount_msat < least {
        let kept = format!("the forecast needs {} sat of its outbound", keep / 1_000);
        return Err(nothing(Skip::ForecastNeedsIt, format!("{reason}, but {kept}")));
    }
    let reason = format!("{reason}: splice out to the treasury");
    let amount_sat = amount_msat / 1_000;
    Ok(Want {
        kind: SpliceKind::Out,
        amount_sat,
        least_sat: least.div_ceil(1_000),
        fee_sat: 0,
        why: Why::AboveBand,
        reason,
    })
}

/// The amount capped by the treasury's reserve (in) or the floor after the fee (out).
fn size(mut w: Want, c: &Channel, v: &View, s: &Situation, p: &TreasuryPolicy, purse: &Purse) -> Result<Want, Action> {
    w.fee_sat = splice_fee_sat(w.kind, s.feerate_sat_kvb);
    match w.kind {
        SpliceKind::In => {
            let available = purse.treasury_free_sat.saturating_sub(p.onchain_reserve_sat).saturating_sub(w.fee_sat);
            if w.amount_sat > available {
                if available < p.min_splice_sat {
                    let why = format!(
                        "{}, but the treasury has {} sat free above its reserve of {} sat after the fee",
                        w.reason, available, p.onchain_reserve_sat
                    );
                    return Err(nothing(Skip::ReserveWouldBreak, why));
                }
                w.reason = format!("{} (capped from {} sat by the on-chain reserve)", w.reason, w.amount_sat);
                w.amount_sat = available;
            }
        }
        SpliceKind::Out => {
            let keep_sat = (v.floor_msat + v.need_part_msat).div_ceil(1_000);
            let room = (c.outbound_msat / 1_000).saturating_sub(keep_sat).saturating_sub(w.fee_sat);
            let rail = purse.rail_excess_sat.saturating_sub(w.fee_sat);
            if rail < w.amount_sat.min(room) && rail < p.min_splice_sat.max(w.least_sat) {
                let why = format!(
                    "{}, but the Lightning rail holds only {} sat beyond what its channels' floors and the \
                     forecast need",
                    w.reason, purse.rail_excess_sat
                );
                return Err(nothing(Skip::ForecastNeedsIt, why));
            }
            w.amount_sat = w.amount_sat.min(room).min(rail);
            if w.amount_sat < w.least_sat {
                let why = format!(
                    "{}, but only {} sat may leave after what the forecast needs, short of the {} sat that take \
                     it halfway back to the middle",
                    w.reason, w.amount_sat, w.least_sat
                );
                return Err(nothing(Skip::ForecastNeedsIt, why));
            }
        }
    }
    if w.amount_sat < p.min_splice_sat {
        let why = format!("{}, but {} sat is below min_splice_sat ({})", w.reason, w.amount_sat, p.min_splice_sat);
        return Err(nothing(Skip::TooSmall, why));
    }
    Ok(w)
}

/// The fee guards; a splice that passes them is counted against the purse.
fn price(w: Want, v: &View, s: &Situation, p: &TreasuryPolicy, purse: &mut Purse) -> Action {
    let (rate, ceiling) = (s.feerate_sat_kvb, p.max_feerate_sat_kvb);
    let dry_first = v.runway_secs.is_some_and(|r| r < p.fee_wait_secs);
    if rate > ceiling && (w.kind == SpliceKind::Out || !dry_first) {
        let runway = v.runway_secs.map_or("no payouts forecast".into(), |r| format!("runway {} h", r / 3_600));
        let why = format!(
            "{}, but the feerate {rate} sat/kvB is above the ceiling {ceiling}; it waits ({runway}, fees expected \
             back within {} h)",
            w.reason,
            p.fee_wait_secs / 3_600
        );
        return nothing(Skip::FeerateAboveCeiling, why);
    }
    let ppm_cap = scale(w.amount_sat, p.max_fee_ppm, 1_000_000);
    if w.fee_sat > p.max_fee_sat || w.fee_sat > ppm_cap {
        let why = format!(
            "{}, but its fee of {} sat is over the cap (max_fee_sat {}, {} ppm of {} sat = {} sat)",
            w.reason, w.fee_sat, p.max_fee_sat, p.max_fee_ppm, w.amount_sat, ppm_cap
        );
        return nothing(Skip::FeeAboveCap, why);
    }
    if purse.spent_sat.saturating_add(w.fee_sat) > p.fee_budget_sat {
        let why = format!(
            "{}, but {} sat of the period's {} sat fee budget is spent and this one costs {} sat",
            w.reason, purse.spent_sat, p.fee_budget_sat, w.fee_sat
        );
        return nothing(Skip::BudgetSpent, why);
    }
    purse.spent_sat += w.fee_sat;
    let reason = if rate > ceiling {
        format!("{} now although the feerate is above the ceiling: it would run dry first", w.reason)
    } else {
        w.reason
    };
    let splice = Splice { amount_sat: w.amount_sat, fee_sat: w.fee_sat, why: w.why, reason };
    match w.kind {
        SpliceKind::In => {
            purse.treasury_free_sat = purse.treasury_free_sat.saturating_sub(splice.amount_sat + splice.fee_sat);
            Action::SpliceIn(splice)
        }
        SpliceKind::Out => {
            purse.rail_excess_sat = purse.rail_excess_sat.saturating_sub(splice.amount_sat + splice.fee_sat);
            Action::SpliceOut(splice)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;

    fn policy() -> TreasuryPolicy {
        TreasuryPolicy {
            onchain_reserve_sat: 1_000_000,
            lightning_reserve_sat: 0,
            channel_reserve_sat: 10_000,
            min_splice_sat: 10_000,
            fee_budget_sat: 1_000_000,
            max_fee_sat: 10_000,
            max_fee_ppm: 10_000,
            max_feerate_sat_kvb: 20_000,
            fee_wait_secs: 6 * 3_600,
            backoff_secs: 600,
            ..TreasuryPolicy::default()
        }
    }

    /// A 1,000,000 sat channel with `out` sat outbound and the rest inbound.
    fn channel(id: &str, out: u64) -> Channel {
        Channel {
            id: id.into(),
            capacity_sat: 1_000_000,
            outbound_msat: out * 1_000,
            inbound_msat: (1_000_000 - out) * 1_000,
            ..Channel::default()
        }
    }

    /// 2 sat/vB, 10 BTC on chain, no forecast.
    fn situation() -> Situation {
        Situation {
            now: NOW,
            onchain_sat: 1_000_000_000,
            feerate_sat_kvb: 2_000,
            forecast: Forecast { horizon_secs: DAY, ..Forecast::default() },
            ..Situation::default()
        }
    }

    fn with_need(need_sat: u64) -> Situation {
        let s = situation();
        Situation { forecast: Forecast { need_msat: need_sat * 1_000, ..s.forecast }, ..s }
    }

    fn one_action(c: &Channel, s: &Situation, p: &TreasuryPolicy) -> Action {
        decide(std::slice::from_ref(c), s, p).remove(0).action
    }

    fn splice_in(a: &Action) -> &Splice {
        match a {
            Action::SpliceIn(s) => s,
            other => panic!("not a splice-in: {other:?}"),
        }
    }

    fn skipped(a: &Action) -> Skip {
        match a {
            Action::Nothing { skip, .. } => *skip,
            other => panic!("not skipped: {other:?}"),
        }
    }

    #[test]
    fn inside_the_band_nothing_is_done() {
        for out in [250_000, 500_000, 750_000] {
            let a = one_action(&channel("c", out), &situation(), &policy());
            assert_eq!((a.code(), skipped(&a)), ("in_band", Skip::InBand), "{out}");
            assert!(a.reason().contains("inside the band"), "{}", a.reason());
        }
    }

    #[test]
    fn below_the_band_it_splices_in_back_to_the_middle() {
        let d = decide(&[channel("c", 200_000)], &situation(), &policy()).remove(0);
        assert_eq!((d.channel_id.as_str(), d.share_bp), ("c", 2_000));
        let s = splice_in(&d.action);
        // (200 k + 600 k) / (1 M + 600 k) = 50 %; 249 vB at 2 sat/vB.
        assert_eq!((s.amount_sat, s.fee_sat, s.why.code()), (600_000, 498, "below_band"));
        assert!(s.reason.contains("below the band's 25 %") && s.reason.contains("middle"), "{}", s.reason);
    }

    #[test]
    fn above_the_band_it_splices_out_back_to_the_middle() {
        let a = one_action(&channel("c", 900_000), &situation(), &policy());
        let Action::SpliceOut(s) = a else { panic!("{a:?}") };
        // (900 k − 800 k) / (1 M − 800 k) = 50 %; 181 vB at 2 sat/vB.
        assert_eq!((s.amount_sat, s.fee_sat, s.why), (800_000, 362, Why::AboveBand));
    }

    #[test]
    fn the_forecast_need_sizes_a_splice_in_and_triggers_it_inside_the_band() {
        // 60 % outbound is inside the band, but the next 24 h need 2 M sat: below its floor.
        let d = decide(&[channel("c", 600_000)], &with_need(2_000_000), &policy()).remove(0);
        assert_eq!(d.floor_msat, 2_000_000_000);
        let s = splice_in(&d.action);
        // Up to the floor (1.4 M) plus one more horizon (2 M): larger than back to the middle (0).
        assert_eq!((s.amount_sat, s.why), (3_400_000, Why::BelowFloor));
        assert!(s.reason.contains("forecast"), "{}", s.reason);
        // Below the band with a small forecast: the middle is larger, and wins.
        let s = one_action(&channel("c", 200_000), &with_need(100_000), &policy());
        assert_eq!(splice_in(&s).amount_sat, 600_000);
        // Below the band with a larger one: the forecast's part wins over the middle.
        let s = one_action(&channel("c", 200_000), &with_need(700_000), &policy());
        assert_eq!(splice_in(&s).amount_sat, 500_000 + 700_000);
    }

    #[test]
    fn the_forecast_is_split_among_channels_by_capacity() {
        let big = Channel { capacity_sat: 3_000_000, ..channel("big", 600_000) };
        let ds = decide(&[channel("small", 600_000), big], &with_need(2_000_000), &policy());
        assert_eq!((ds[0].floor_msat, ds[1].floor_msat), (500_000_000, 1_500_000_000));
        assert_eq!(ds[0].action.code(), "in_band");
        assert_eq!(splice_in(&ds[1].action).amount_sat, 900_000 + 1_500_000);
    }

    #[test]
    fn a_splice_out_never_takes_what_the_forecast_needs() {
        // 90 % outbound; the forecast needs 450 k sat a day: it keeps 450 k + one more horizon.
        let a = one_action(&channel("c", 900_000), &with_need(450_000), &policy());
        assert_eq!(skipped(&a), Skip::ForecastNeedsIt, "{}", a.reason());
        // 50 k a day: it keeps 100 k, and the rest goes back to the middle (800 k) less the fee.
        let a = one_action(&channel("c", 900_000), &with_need(50_000), &policy());
        let Action::SpliceOut(s) = a else { panic!("{a:?}") };
        assert_eq!(s.amount_sat, 800_000 - 362);
        // 80 k a day: it keeps 160 k; 740 k less the fee still takes it past 62.5 % (733,334).
        let a = one_action(&channel("c", 900_000), &with_need(80_000), &policy());
        let Action::SpliceOut(s) = a else { panic!("{a:?}") };
        assert_eq!(s.amount_sat, 740_000 - 362);
        // 90 k a day: 720 k does not; it stays.
        let a = one_action(&channel("c", 900_000), &with_need(90_000), &policy());
        assert_eq!(skipped(&a), Skip::ForecastNeedsIt);
        assert!(a.reason().contains("the forecast needs 180000 sat"), "{}", a.reason());
        // 83.3 k a day: 733,400 would, but not once the fee is paid from it.
        let a = one_action(&channel("c", 900_000), &with_need(83_300), &policy());
        assert_eq!(skipped(&a), Skip::ForecastNeedsIt);
        assert!(a.reason().contains("short of the 733334 sat that take it halfway"), "{}", a.reason());
    }

    #[test]
    fn a_splice_out_takes_only_what_the_whole_rail_holds_beyond_its_needs() {
        // Each channel keeps 100 k (floor 50 k + its part of the need); "full" alone could give
        // 800 k, but the rail holds 950 k against the 200 k its channels keep: 750 k may leave.
        let ds = decide(&[channel("full", 900_000), channel("dry", 50_000)], &with_need(100_000), &policy());
        assert_eq!(ds[1].action.code(), "splice_in");
        let Action::SpliceOut(s) = &ds[0].action else { panic!("{:?}", ds[0].action) };
        assert_eq!(s.amount_sat, 750_000 - 362);
        // With 150 k a day the rail has 650 k beyond its needs, short of halfway: nothing leaves.
        let ds = decide(&[channel("full", 900_000), channel("dry", 50_000)], &with_need(150_000), &policy());
        assert_eq!(skipped(&ds[0].action), Skip::ForecastNeedsIt, "{}", ds[0].action.reason());
        assert!(
            ds[0].action.reason().contains("the Lightning rail holds only 650000 sat"),
            "{}",
            ds[0].action.reason()
        );
    }

    #[test]
    fn one_splice_in_flight_per_channel() {
        let c = Channel { in_flight: true, ..channel("c", 100_000) };
        assert_eq!(skipped(&one_action(&c, &situation(), &policy())), Skip::InFlight);
    }

    #[test]
    fn after_a_failure_the_channel_backs_off_longer_each_time() {
        let failed = |n, ago| Channel { failures: n, last_failure_at: Some(NOW - ago), ..channel("c", 100_000) };
        let p = policy();
        assert_eq!(skipped(&one_action(&failed(1, 300), &situation(), &p)), Skip::Backoff);
        assert_eq!(one_action(&failed(1, 660), &situation(), &p).code(), "splice_in");
        assert_eq!(skipped(&one_action(&failed(2, 660), &situation(), &p)), Skip::Backoff);
        assert_eq!(one_action(&failed(0, 1), &situation(), &p).code(), "splice_in", "no failure in a row");
    }

    #[test]
    fn a_splice_in_keeps_the_onchain_reserve() {
        let p = policy();
        // 1.3 M sat on chain, 100 k reserved by payouts in flight: 200 k above the reserve.
        let s = Situation { onchain_sat: 1_300_000, onchain_reserved_sat: 100_000, ..situation() };
        let a = one_action(&channel("c", 200_000), &s, &p);
        assert_eq!(splice_in(&a).amount_sat, 200_000 - 498);
        assert!(a.reason().contains("capped from 600000 sat"), "{}", a.reason());
        let s = Situation { onchain_reserved_sat: 295_000, ..s };
        let a = one_action(&channel("c", 200_000), &s, &p);
        assert_eq!(skipped(&a), Skip::ReserveWouldBreak, "{}", a.reason());
    }

    #[test]
    fn splices_share_the_treasury_and_the_budget_most_urgent_first() {
        let p = TreasuryPolicy { fee_budget_sat: 600, ..policy() };
        // Both below the band; "dry" has the shorter runway though it comes second.
        let ds = decide(&[channel("low", 200_000), channel("dry", 50_000)], &with_need(400_000), &p);
        assert_eq!(ds[1].action.code(), "splice_in");
        assert_eq!(skipped(&ds[0].action), Skip::BudgetSpent, "{}", ds[0].action.reason());
        assert!(ds[0].runway_secs > ds[1].runway_secs);
        // The treasury: 1.5 M above its reserve, the first takes 900 k + fee, the next the rest.
        let s = Situation { onchain_sat: 2_500_000, ..with_need(400_000) };
        let ds = decide(&[channel("low", 200_000), channel("dry", 50_000)], &s, &policy());
        let (first, second) = (splice_in(&ds[1].action), splice_in(&ds[0].action));
        assert_eq!(first.amount_sat, 900_000);
        assert_eq!(second.amount_sat, 1_500_000 - 900_000 - 498 - 498);
    }

    #[test]
    fn too_small_a_splice_is_not_made() {
        let p = TreasuryPolicy { min_splice_sat: 700_000, ..policy() };
        let a = one_action(&channel("c", 200_000), &situation(), &p);
        assert_eq!(skipped(&a), Skip::TooSmall, "{}", a.reason());
    }

    #[test]
    fn above_the_feerate_ceiling_it_waits_unless_the_channel_runs_dry_first() {
        let p = policy();
        let spike = |need| Situation { feerate_sat_kvb: 40_000, ..with_need(need) };
        // 150 k out: at 100 k sat a day the runway is 33 h, longer than the 6 h a spike lasts.
        let a = one_action(&channel("c", 150_000), &spike(100_000), &p);
        assert_eq!(skipped(&a), Skip::FeerateAboveCeiling, "{}", a.reason());
        assert_eq!(skipped(&one_action(&channel("c", 150_000), &spike(0), &p)), Skip::FeerateAboveCeiling);
        // At 1 M sat a day: 140 k above its reserve last 3.4 h, so it splices in now.
        let d = decide(&[channel("c", 150_000)], &spike(1_000_000), &p).remove(0);
        assert_eq!(d.runway_secs, Some(12_096));
        let s = splice_in(&d.action);
        assert_eq!(s.fee_sat, 9_960);
        assert!(s.reason.contains("run dry first"), "{}", s.reason);
        // A splice-out never runs anything dry: it waits.
        assert_eq!(skipped(&one_action(&channel("c", 900_000), &spike(0), &p)), Skip::FeerateAboveCeiling);
        // At the ceiling it goes ahead.
        let at = Situation { feerate_sat_kvb: 20_000, ..situation() };
        assert_eq!(one_action(&channel("c", 150_000), &at, &p).code(), "splice_in");
    }

    #[test]
    fn the_per_operation_cap_holds_in_sats_and_in_ppm() {
        // 600 k at 10 sat/vB: 2,490 sat = 4,150 ppm.
        let s = Situation { feerate_sat_kvb: 10_000, ..situation() };
        let c = channel("c", 200_000);
        assert_eq!(one_action(&c, &s, &policy()).code(), "splice_in");
        let by_sat = TreasuryPolicy { max_fee_sat: 2_489, ..policy() };
        assert_eq!(skipped(&one_action(&c, &s, &by_sat)), Skip::FeeAboveCap);
        let by_ppm = TreasuryPolicy { max_fee_ppm: 4_149, ..policy() };
        let a = one_action(&c, &s, &by_ppm);
        assert_eq!(skipped(&a), Skip::FeeAboveCap, "{}", a.reason());
        assert_eq!(one_action(&c, &s, &TreasuryPolicy { max_fee_ppm: 4_150, ..policy() }).code(), "splice_in");
    }

    #[test]
    fn a_spent_budget_stops_every_splice() {
        let s = Situation { spent_sat: 999_600, ..situation() };
        let a = one_action(&channel("c", 200_000), &s, &policy());
        assert_eq!((a.code(), skipped(&a)), ("budget_spent", Skip::BudgetSpent));
        assert!(a.reason().contains("999600 sat of the period's 1000000 sat"), "{}", a.reason());
        let s = Situation { spent_sat: 999_502, ..situation() };
        assert_eq!(one_action(&channel("c", 200_000), &s, &policy()).code(), "splice_in");
    }

    #[test]
    fn an_empty_channel_is_left_alone() {
        let c = Channel { id: "c".into(), capacity_sat: 1_000_000, ..Channel::default() };
        assert_eq!(skipped(&one_action(&c, &situation(), &policy())), Skip::NoBalance);
    }
}
