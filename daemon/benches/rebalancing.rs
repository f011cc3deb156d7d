//! `cargo bench -p sendero --bench rebalancing [-- --seeds 1,2,3] [--days 30] [--treasury-sat N]
//! [--receipts N]`: the channel rebalancing simulator (seeds 1 to 10 by default). It replays
//! weeks of Lightning payouts and receipts against simulated channels, a simulated on-chain
//! treasury and a simulated chain, once per strategy and seed, and prints one table: the share of Lightning payouts that found outbound liquidity, the rebalancing fees
//! as a share of the Lightning payout volume, and the number of splices.
//!
//! The model, all seeded (floats only in the random model; every balance, amount and fee is an
//! integer msat / sat):
//! - **Clock**: a tick every 60 s; a block every 600 s. A 7-day warm-up (same for every strategy,
//!   so that the forecast has history, as it would in a running gateway) precedes the `--days`
//!   measured; only the measured days count.
//! - **Feerates**: `batch::feeseries::Synthetic::week`'s model (daily and weekly cycles, AR(1)
//!   noise, 2.5 spikes a week of up to 8×) over the whole span. A splice pays the current
//!   next-block feerate (the series now), confirms in the next block whose feerate is at or below
//!   it, and takes effect `SPLICE_DEPTH` blocks after it confirmed (both peers' `splice_locked`).
//! - **Channels**: four, of 5, 10, 15 and 20 M sat, half ours at the start; each side keeps a
//!   1 % channel reserve it cannot spend. A splice-in adds to our balance and the capacity when it
//!   takes effect; a splice-out takes its amount and fee from our balance at once and from the
//!   capacity when it takes effect. Splices never fail. One splice per channel in flight.
//! - **Treasury**: 3 BTC on chain, `treasury.onchain_reserve_sat` kept by every strategy; a
//!   splice-in takes its amount and fee at broadcast, a splice-out's amount arrives when it takes
//!   effect.
//! - **Payouts** (Lightning, ours to pay): a Poisson stream of 400 a day, its rate following a
//!   daily cycle (± 50 %, peak 14:00 UTC), amounts log-uniform 1,000 to 500,000 sat; plus bursts
//!   (payroll, exchange withdrawals), 0.7 a day, each 50 to 300 payouts of 5,000 to 200,000 sat
//!   within 15 to 60 minutes. About 38 M sat a day.
//! - **Receipts** (customers paying our invoices): 800 a day (± 50 %, peak 19:00 UTC), 1,000 to
//!   200,000 sat; bursts (a sale) 0.3 a day of 100 to 400 receipts within an hour. About 33 M sat
//!   a day: the channels drain slowly on top of the bursts.
//! - **Routing**: a payment first tries one channel, its peer picked at random with fixed weights
//!   that differ by direction: payouts 1 : 1 : 3 : 5 (the large peers are where payees' liquidity
//!   is), receipts 5 : 3 : 1 : 1 (where customers' wallets are), so some channels drain while others
//!   fill and a splice cannot be avoided by the payments themselves. If that channel cannot carry
//!   it, it is split over the channels with the most room (MPP); if all of them together cannot,
//!   the payout is not served (the receipt refused).
//!
//! Strategies, every 600 s (each block):
//! - **none**: no rebalancing.
//! - **band 25→75** (CLBOSS-like): a channel below 25 % outbound is spliced into up to 75 %
//!   (CLBOSS's EarningsRebalancer fills a depleted channel to 75 %), and, the mirror image, one
//!   above 75 % spliced out to 25 %; at the current feerate, whatever it is.
//! - **band →50** (Boltz autoswap-like): the same band, back to its middle both ways.
//! - **sendero**: `rebalance::decide` with the configured `[treasury]` policy (the defaults, or
//!   `SENDERO_TREASURY_*` variables over them) and `rebalance::forecast` over the payout records.
//!
//! The band strategies keep the same on-chain reserve and the same smallest splice as Sendero;
//! they have no fee ceiling, budget or cap.
//!
//! What splicing does to a share band: a splice-out takes capacity, not only balance, and creates
//! no inbound; a splice-in adds outbound and leaves the inbound as it is. So "above 75 % → 25 %"
//! cuts a channel at 80 % to 27 % of its capacity, and "below 25 % → 75 %" adds twice the
//! channel's inbound. After a receipt-heavy stretch the band strategies can cut every channel down
//! until the amounts they ask for (proportional to the channel) fall under `min_splice_sat`, and
//! then stay there (seeds 7 and 8). Sendero's splice-outs keep what the rail needs.
//!
//! Every run checks its books at the end: the channels, the treasury and the splices in flight
//! hold what they started with, plus receipts, minus payouts and fees, to the msat.

mod support;

use rand::{Rng, SeedableRng};
use sendero::batch::feeseries::{FeeSeries, Synthetic};
use sendero::config::{Config, Overrides};
use sendero::rebalance::{self, decide, forecast, history_start, splice_fee_sat, Action, SpliceKind, TreasuryPolicy};

const TICK: u64 = 60;
const BLOCK: u64 = 600;
const DAY: u64 = 86_400;
const WARMUP_DAYS: u64 = 7;
const MEASURE_FROM: u64 = START + WARMUP_DAYS * DAY;
/// Blocks after its confirmation before a splice takes effect.
const SPLICE_DEPTH: u64 = 6;
/// Monday 2026-11-30 00:00 UTC.
const START: u64 = 1_795_996_800;
const CAPACITIES_SAT: [u64; 4] = [5_000_000, 10_000_000, 15_000_000, 20_000_000];
/// Which peer a payout's first attempt goes to (exchanges, LSPs: most of our payees' liquidity)…
const PAYOUT_PEERS: [u64; 4] = [1, 1, 3, 5];
/// … and a receipt's (where our customers' wallets are).
const RECEIPT_PEERS: [u64; 4] = [5, 3, 1, 1];

struct Args {
    seeds: Vec<u64>,
    days: u64,
    treasury_sat: u64,
    receipts_per_day: f64,
}

fn args() -> Args {
    let mut a = Args { seeds: (1..=10).collect(), days: 30, treasury_sat: 300_000_000, receipts_per_day: 900.0 };
    let argv: Vec<String> = std::env::args().collect();
    for (i, arg) in argv.iter().enumerate() {
        let next = || argv.get(i + 1).cloned().unwrap_or_default();
        match arg.as_str() {
            "--seeds" => a.seeds = next().split(',').map(|s| s.trim().parse().expect("--seeds 1,2,3")).collect(),
            "--days" => a.days = next().parse().expect("--days N"),
            "--treasury-sat" => a.treasury_sat = next().parse().expect("--treasury-sat N"),
            "--receipts" => a.receipts_per_day = next().parse().expect("--receipts N (a day)"),
            _ => {}
        }
    }
    a
}

/// One Lightning payment: when, how much, and whether it is ours to pay.
#[derive(Clone, Copy)]
struct Payment {
    at: u64,
    msat: u64,
    payout: bool,
    /// The random draw that picks its first channel, in [0, 1).
    pick: f64,
}

/// Payments of one kind: ours to pay or to receive, log-uniform between `lo` and `hi` sat.
#[derive(Clone, Copy)]
struct Kind {
    payout: bool,
    lo: f64,
    hi: f64,
}

impl Kind {
    fn draw(self, rng: &mut rand::rngs::StdRng, at: u64) -> Payment {
        let msat = (self.lo * (self.hi / self.lo).powf(rng.gen::<f64>()) * 1_000.0) as u64;
        Payment { at, msat, payout: self.payout, pick: rng.gen() }
    }
}

/// A Poisson stream of `per_day` on average, its rate × (1 + 0.5 cos(2π (hour − `peak`) / 24)).
fn stream(rng: &mut rand::rngs::StdRng, span: u64, per_day: f64, peak: f64, kind: Kind) -> Vec<Payment> {
    let mut out = Vec::new();
    let per_tick = per_day * TICK as f64 / DAY as f64;
    for k in 0..span / TICK {
        let t = START + k * TICK;
        let hour = (t % DAY) as f64 / 3_600.0;
        let rate = per_tick * (1.0 + 0.5 * (std::f64::consts::TAU * (hour - peak) / 24.0).cos());
        // Poisson arrivals in one tick, by inversion (the rate per tick is well below 1).
        let (mut n, mut p, u) = (0, (-rate).exp(), rng.gen::<f64>());
        let mut cdf = p;
        while u > cdf && n < 50 {
            n += 1;
            p *= rate / n as f64;
            cdf += p;
        }
        for _ in 0..n {
            let at = t + rng.gen_range(0..TICK);
            out.push(kind.draw(rng, at));
        }
    }
    out
}

/// Bursts: `per_day` on average, each of `count` payments within `secs`.
fn bursts(
    rng: &mut rand::rngs::StdRng,
    span: u64,
    per_day: f64,
    count: (u32, u32),
    secs: (u64, u64),
    kind: Kind,
) -> Vec<Payment> {
    let mut out = Vec::new();
    let per_tick = per_day * TICK as f64 / DAY as f64;
    for k in 0..span / TICK {
        if !rng.gen_bool(per_tick) {
            continue;
        }
        let (n, len) = (rng.gen_range(count.0..=count.1), rng.gen_range(secs.0..=secs.1));
        for _ in 0..n {
            let at = START + k * TICK + rng.gen_range(0..len);
            out.push(kind.draw(rng, at));
        }
    }
    out
}

fn workload(seed: u64, span: u64, receipts_per_day: f64) -> Vec<Payment> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let payout = |lo, hi| Kind { payout: true, lo, hi };
    let receipt = |lo, hi| Kind { payout: false, lo, hi };
    let mut all = stream(&mut rng, span, 400.0, 14.0, payout(1_000.0, 500_000.0));
    all.extend(bursts(&mut rng, span, 0.7, (50, 300), (900, 3_600), payout(5_000.0, 200_000.0)));
    all.extend(stream(&mut rng, span, receipts_per_day, 19.0, receipt(1_000.0, 200_000.0)));
    all.extend(bursts(&mut rng, span, 0.3, (100, 400), (3_600, 3_600), receipt(1_000.0, 200_000.0)));
    all.sort_by_key(|p| p.at);
    all
}

#[derive(Clone, Copy, PartialEq)]
enum Strategy {
    None,
    /// Below 25 % splice in to `to_in` %, above 75 % splice out to `to_out` %.
    Band {
        to_in: u64,
        to_out: u64,
    },
    Sendero,
}

impl Strategy {
    fn name(self) -> String {
        match self {
            Strategy::None => "none".into(),
            Strategy::Band { to_in: 75, .. } => "band 25→75".into(),
            Strategy::Band { to_in, .. } => format!("band →{to_in}"),
            Strategy::Sendero => "sendero".into(),
        }
    }
}

struct Chan {
    capacity_sat: u64,
    /// Our balance, msat.
    ours_msat: u64,
    /// A splice-out's amount and fee, gone from our balance and not yet from the capacity.
    leaving_msat: u64,
    in_flight: bool,
}

impl Chan {
    fn reserve_msat(&self) -> u64 {
        self.capacity_sat * 10
    }
    /// What we can send.
    fn outbound(&self) -> u64 {
        self.ours_msat.saturating_sub(self.reserve_msat())
    }
    /// What we can receive.
    fn inbound(&self) -> u64 {
        (self.capacity_sat * 1_000 - self.leaving_msat)
            .saturating_sub(self.ours_msat)
            .saturating_sub(self.reserve_msat())
    }
}

/// A splice broadcast and not yet in effect.
struct Pending {
    channel: usize,
    kind: SpliceKind,
    amount_sat: u64,
    fee_sat: u64,
    feerate: u64,
    confirmed_at: Option<u64>,
}

#[derive(Default, Clone)]
struct Totals {
    payouts: u64,
    served: u64,
    payout_msat: u64,
    receipts: u64,
    refused: u64,
    fees_sat: u64,
    splice_in: u64,
    splice_out: u64,
    /// Σ over ticks of the Lightning outbound, msat (for the mean).
    outbound_sum: u128,
    ticks: u64,
}

struct Run<'a> {
    strategy: Strategy,
    policy: &'a TreasuryPolicy,
    series: &'a FeeSeries,
    chans: Vec<Chan>,
    treasury_sat: u64,
    pending: Vec<Pending>,
    /// `(time, fee)` of every splice, for the rolling budget.
    spent: Vec<(u64, u64)>,
    /// `(time, msat)` of every payout asked for, for the forecast.
    history: Vec<(u64, u64)>,
    /// Receipts in minus payouts out, msat, and every fee paid, sat (the books, checked at the end).
    net_msat: i128,
    all_fees_sat: u64,
    t: Totals,
}

impl<'a> Run<'a> {
    fn new(strategy: Strategy, policy: &'a TreasuryPolicy, series: &'a FeeSeries, a: &Args) -> Run<'a> {
        let chans =
            CAPACITIES_SAT.map(|c| Chan { capacity_sat: c, ours_msat: c * 500, leaving_msat: 0, in_flight: false });
        Run {
            strategy,
            policy,
            series,
            chans: chans.into(),
            treasury_sat: a.treasury_sat,
            pending: vec![],
            spent: vec![],
            history: vec![],
            net_msat: 0,
            all_fees_sat: 0,
            t: Totals::default(),
        }
    }

    fn run(mut self, work: &[Payment], end: u64, a_treasury_sat: u64) -> Totals {
        let mut next = 0;
        let mut now = START;
        while now < end {
            while next < work.len() && work[next].at < now + TICK {
                self.pay(&work[next]);
                next += 1;
            }
            if (now - START) % DAY == 0 && std::env::var("SIM_DEBUG").is_ok() {
                self.print_day(now);
            }
            if (now - START) % BLOCK == 0 {
                self.mine(now);
                self.rebalance(now);
            }
            if now >= MEASURE_FROM {
                self.t.outbound_sum += self.chans.iter().map(|c| u128::from(c.outbound())).sum::<u128>();
                self.t.ticks += 1;
            }
            now += TICK;
        }
        self.check_books(a_treasury_sat);
        self.t
    }

    /// `SIM_DEBUG`: each channel's capacity and outbound share, and the treasury.
    fn print_day(&self, now: u64) {
        let share = |c: &Chan| 100 * c.outbound() / (c.outbound() + c.inbound()).max(1);
        let chans: Vec<String> =
            self.chans.iter().map(|c| format!("{}M {}%", c.capacity_sat / 1_000_000, share(c))).collect();
        let (name, day, treasury) = (self.strategy.name(), (now - START) / DAY, self.treasury_sat / 1_000_000);
        eprintln!("{name} day {day} treasury {treasury} M: {}", chans.join(", "));
    }

    /// Every sat is accounted for: the treasury, the channels and the splice-ins in flight hold
    /// what they started with, plus receipts, minus payouts and fees.
    fn check_books(&self, initial_treasury_sat: u64) {
        let initial: i128 = CAPACITIES_SAT.iter().map(|&c| i128::from(c) * 500).sum::<i128>()
            + i128::from(initial_treasury_sat) * 1_000;
        let held: i128 = self.chans.iter().map(|c| i128::from(c.ours_msat)).sum::<i128>()
            + i128::from(self.treasury_sat) * 1_000
            // A splice's amount is in neither place until it takes effect (its fee is paid).
            + self.pending.iter().map(|p| i128::from(p.amount_sat) * 1_000).sum::<i128>();
        assert_eq!(held, initial + self.net_msat - i128::from(self.all_fees_sat) * 1_000, "the books balance");
    }

    /// A payment: its peer's channel first, else split over the channels with the most room.
    fn pay(&mut self, p: &Payment) {
        let measured = p.at >= MEASURE_FROM;
        let before: u64 = self.chans.iter().map(|c| c.ours_msat).sum();
        if p.payout {
            self.history.push((p.at, p.msat));
        }
        let room = |c: &Chan| if p.payout { c.outbound() } else { c.inbound() };
        let peers = if p.payout { PAYOUT_PEERS } else { RECEIPT_PEERS };
        let pick = (p.pick * peers.iter().sum::<u64>() as f64) as u64;
        let first = (0..peers.len()).find(|&i| pick < peers[..=i].iter().sum::<u64>()).unwrap_or(0);
        let ok = if room(&self.chans[first]) >= p.msat {
            self.shift(first, p.msat, p.payout);
            true
        } else if self.chans.iter().map(room).sum::<u64>() >= p.msat {
            let mut order: Vec<usize> = (0..self.chans.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(room(&self.chans[i])));
            let mut left = p.msat;
            for i in order {
                let part = left.min(room(&self.chans[i]));
                self.shift(i, part, p.payout);
                left -= part;
            }
            true
        } else {
            false
        };
        let after: u64 = self.chans.iter().map(|c| c.ours_msat).sum();
        self.net_msat += i128::from(after) - i128::from(before);
        if measured && p.payout {
            self.t.payouts += 1;
            self.t.payout_msat += p.msat;
            self.t.served += u64::from(ok);
        } else if measured {
            self.t.receipts += 1;
            self.t.refused += u64::from(!ok);
        }
    }

    fn shift(&mut self, i: usize, msat: u64, payout: bool) {
        let c = &mut self.chans[i];
        c.ours_msat = if payout { c.ours_msat - msat } else { c.ours_msat + msat };
    }

    /// A block: splices confirm at its feerate, and take effect `SPLICE_DEPTH` blocks later.
    fn mine(&mut self, now: u64) {
        let clearing = self.series.at(now);
        for p in &mut self.pending {
            if p.confirmed_at.is_none() && p.feerate >= clearing {
                p.confirmed_at = Some(now);
            }
        }
        let (done, left): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.confirmed_at.is_some_and(|at| now >= at + SPLICE_DEPTH * BLOCK));
        self.pending = left;
        for p in done {
            let c = &mut self.chans[p.channel];
            c.in_flight = false;
            match p.kind {
                SpliceKind::In => {
                    c.capacity_sat += p.amount_sat;
                    c.ours_msat += p.amount_sat * 1_000;
                }
                SpliceKind::Out => {
                    c.capacity_sat -= p.amount_sat + p.fee_sat;
                    c.leaving_msat = 0;
                    self.treasury_sat += p.amount_sat;
                }
            }
        }
    }

    fn rebalance(&mut self, now: u64) {
        let feerate = self.series.at(now);
        let splices: Vec<(usize, SpliceKind, u64)> = match self.strategy {
            Strategy::None => vec![],
            Strategy::Band { .. } => self.band(feerate),
            Strategy::Sendero => self.sendero(now, feerate),
        };
        for (i, kind, amount_sat) in splices {
            let fee_sat = splice_fee_sat(kind, feerate);
            let c = &mut self.chans[i];
            c.in_flight = true;
            match kind {
                SpliceKind::In => self.treasury_sat -= amount_sat + fee_sat,
                SpliceKind::Out => {
                    c.ours_msat -= (amount_sat + fee_sat) * 1_000;
                    c.leaving_msat = (amount_sat + fee_sat) * 1_000;
                }
            }
            self.pending.push(Pending { channel: i, kind, amount_sat, fee_sat, feerate, confirmed_at: None });
            self.spent.push((now, fee_sat));
            self.all_fees_sat += fee_sat;
            if now >= MEASURE_FROM {
                self.t.fees_sat += fee_sat;
                *if kind == SpliceKind::In { &mut self.t.splice_in } else { &mut self.t.splice_out } += 1;
            }
        }
    }

    /// The fixed band: below 25 % in to `to_in` %, above 75 % out to `to_out` %, at any
    /// feerate, keeping the on-chain reserve and the smallest splice.
    fn band(&self, feerate: u64) -> Vec<(usize, SpliceKind, u64)> {
        let Strategy::Band { to_in, to_out } = self.strategy else { return vec![] };
        let (low, high) = (25, 75);
        let mut free = self.treasury_sat.saturating_sub(self.policy.onchain_reserve_sat);
        let mut out = vec![];
        for (i, c) in self.chans.iter().enumerate().filter(|(_, c)| !c.in_flight) {
            let (o, both) = (c.outbound(), c.outbound() + c.inbound());
            let (kind, msat) = if o * 100 < low * both {
                (SpliceKind::In, (to_in * both / 100).saturating_sub(o) * 100 / (100 - to_in))
            } else if o * 100 > high * both {
                (SpliceKind::Out, o.saturating_sub(to_out * both / 100) * 100 / (100 - to_out))
            } else {
                continue;
            };
            let fee = splice_fee_sat(kind, feerate);
            let mut sat = msat / 1_000;
            if kind == SpliceKind::In {
                sat = sat.min(free.saturating_sub(fee));
                free = free.saturating_sub(sat + fee);
            } else {
                sat = sat.min((o / 1_000).saturating_sub(fee));
            }
            if sat >= self.policy.min_splice_sat {
                out.push((i, kind, sat));
            }
        }
        out
    }

    /// Sendero: the daemon's own policy code.
    fn sendero(&mut self, now: u64, feerate: u64) -> Vec<(usize, SpliceKind, u64)> {
        let p = self.policy;
        let from = self.history.partition_point(|r| r.0 <= history_start(now, p));
        let f = forecast(&self.history[from..], now, p);
        let since = now.saturating_sub(p.fee_budget_period_secs);
        let spent_sat = self.spent.iter().filter(|s| s.0 > since).map(|s| s.1).sum();
        let situation = rebalance::Situation {
            now,
            onchain_sat: self.treasury_sat,
            onchain_reserved_sat: 0,
            feerate_sat_kvb: feerate,
            spent_sat,
            forecast: f,
        };
        let channels: Vec<rebalance::Channel> = self
            .chans
            .iter()
            .enumerate()
            .map(|(i, c)| rebalance::Channel {
                id: i.to_string(),
                capacity_sat: c.capacity_sat,
                outbound_msat: c.outbound(),
                inbound_msat: c.inbound(),
                in_flight: c.in_flight,
                ..Default::default()
            })
            .collect();
        let decisions = decide(&channels, &situation, p);
        if std::env::var("SIM_DEBUG").is_ok() {
            for d in decisions.iter().filter(|d| !matches!(d.action, Action::Nothing { .. })) {
                eprintln!(
                    "day {:.2} ch {} {}: {}",
                    (now - START) as f64 / 86_400.0,
                    d.channel_id,
                    d.action.code(),
                    d.action.reason()
                );
            }
        }
        decisions
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match &d.action {
                Action::SpliceIn(s) => Some((i, SpliceKind::In, s.amount_sat)),
                Action::SpliceOut(s) => Some((i, SpliceKind::Out, s.amount_sat)),
                Action::Nothing { .. } => None,
            })
            .collect()
    }
}

fn main() {
    let a = args();
    // The defaults, or SENDERO_TREASURY_* variables over them.
    let config = Config::load(None, std::env::vars(), &Overrides::default()).expect("the configuration");
    let mut treasury = config.treasury.clone();
    // The simulated merchant keeps a hot minimum of 0.01 BTC on chain and on Lightning (the
    // daemon's defaults keep none), unless SENDERO_TREASURY_* says otherwise.
    for (var, field) in [
        ("SENDERO_TREASURY_ONCHAIN_RESERVE_SAT", &mut treasury.onchain_reserve_sat),
        ("SENDERO_TREASURY_LIGHTNING_RESERVE_SAT", &mut treasury.lightning_reserve_sat),
    ] {
        if std::env::var_os(var).is_none() {
            *field = 1_000_000;
        }
    }
    let policy = TreasuryPolicy::from_config(&treasury);
    let span = (WARMUP_DAYS + a.days) * DAY;
    let strategies = [
        Strategy::None,
        Strategy::Band { to_in: 75, to_out: 25 },
        Strategy::Band { to_in: 50, to_out: 50 },
        Strategy::Sendero,
    ];
    print_header(&a, &policy);
    let began = std::time::Instant::now();
    for &seed in &a.seeds {
        let series = Synthetic { duration_secs: span + DAY, ..Synthetic::week(seed, START) }.series();
        let work = workload(seed, span, a.receipts_per_day);
        for s in strategies {
            let t = Run::new(s, &policy, &series, &a).run(&work, START + span, a.treasury_sat);
            print_row(seed, s, &t);
        }
    }
    println!("simulated in {:.2} s; peak RSS {} kB (VmHWM)", began.elapsed().as_secs_f64(), support::rss_kb("self"));
}

fn print_header(a: &Args, p: &TreasuryPolicy) {
    println!(
        "\n{} measured days after a {WARMUP_DAYS}-day warm-up; channels {:?} M sat; treasury {} sat; {} receipts \
         a day; policy: band {}–{} %, forecast {} h at p{} of {} days, ceiling {} sat/kvB, budget {} sat per {} s, \
         cap {} sat / {} ppm",
        a.days,
        CAPACITIES_SAT.map(|c| c / 1_000_000),
        a.treasury_sat,
        a.receipts_per_day,
        p.band_low_percent,
        p.band_high_percent,
        p.forecast_hours,
        p.forecast_percentile,
        p.forecast_days,
        p.max_feerate_sat_kvb,
        p.fee_budget_sat,
        p.fee_budget_period_secs,
        p.max_fee_sat,
        p.max_fee_ppm
    );
    println!(
        "seed strategy      payouts  served % unserved  LN vol sat   fees sat    fees %     ins    outs  refused % \
         mean out sat"
    );
}

fn print_row(seed: u64, s: Strategy, t: &Totals) {
    let volume_sat = t.payout_msat / 1_000;
    println!(
        "{:>4} {:<12} {:>8} {:>9.3} {:>8} {:>11} {:>10} {:>9.4} {:>7} {:>7} {:>10.3} {:>12}",
        seed,
        s.name(),
        t.payouts,
        100.0 * t.served as f64 / t.payouts.max(1) as f64,
        t.payouts - t.served,
        volume_sat,
        t.fees_sat,
        100.0 * t.fees_sat as f64 / volume_sat.max(1) as f64,
        t.splice_in,
        t.splice_out,
        100.0 * t.refused as f64 / t.receipts.max(1) as f64,
        (t.outbound_sum / u128::from(t.ticks.max(1)) / 1_000) as u64
    );
}
