//! The online ideal: what a strategy that cannot see the future could at best pay for its payee
//! outputs on the synthetic market, a row of the table. Its outputs are a floor for any real
//! policy's (in expectation); its batching is not the best there is, so its total is not a floor:
//! [`least_overhead`] adds the overhead no strategy escapes, and with the ideal's outputs gives
//! one.
//!
//! It is given everything but the noise: the model's levels (daily and weekly cycles and every
//! spike, ahead of time: [`Synthetic::levels`]), the noise's AR(1) law (`noise_rho`,
//! `noise_sigma`) and, after each block, the noise that block had. For each payout on its own,
//! before each block of its window (submission to ETA bound) it bids the feerate that minimises
//! its expected fee, by backward induction over a grid of the noise (a dynamic programme): it
//! confirms in the first block whose clearing feerate is at or below its bid and pays its bid;
//! in the window's last block it bids the 99.9th percentile of that block's feerate. Payouts
//! confirming in the same block share one transaction (one input, change), its overhead paid at
//! their lowest bid — batching like the lower bound's, one transaction per block. It never
//! overpays a block for lack of knowing the levels, so a policy that must learn them can expect
//! its outputs to cost more.

use std::collections::BTreeMap;

use sendero::batch::feeseries::Synthetic;
use sendero::batch::size::{tx_weight, weight_fee_floor, InputKind};
use sendero::batch::{Policy, Queued};

use super::{Chain, Totals};

/// Points of the noise's grid.
const GRID: usize = 61;
/// The grid spans this many stationary deviations each side.
const SPAN: f64 = 5.0;
/// The last block's bid: this many deviations of its innovation above the expected noise
/// (the 99.9th percentile).
const LAST_Z: f64 = 3.09;

/// The market as the online ideal knows it.
pub struct Market {
    /// The noiseless level of block k (mined at `start + k × BLOCK`), sat/kvB.
    levels: Vec<f64>,
    rho: f64,
    sigma: f64,
    floor: f64,
    /// The grid's points.
    points: Vec<f64>,
    /// exp of the upper edge of each grid cell (the last one capped half a step above its point):
    /// bidding `level × up[j]` confirms when the noise falls in cells 0..=j.
    up: Vec<f64>,
    /// `cdf[i][j]`: the chance the next noise falls in cells below j, from grid point i.
    cdf: Vec<Vec<f64>>,
}

impl Market {
    /// The market of `model`, whose first sample is block 0.
    pub fn new(model: &Synthetic) -> Market {
        let levels: Vec<f64> = model.levels().into_iter().map(|(_, l)| l).collect();
        let (rho, sigma) = (model.noise_rho, model.noise_sigma);
        let half = SPAN * sigma / (1.0 - rho * rho).max(1e-9).sqrt();
        let points: Vec<f64> = (0..GRID).map(|i| -half + 2.0 * half * i as f64 / (GRID - 1) as f64).collect();
        let step = points[1] - points[0];
        let mut edges = vec![f64::NEG_INFINITY];
        edges.extend(points.iter().map(|x| x + step / 2.0));
        let up = edges[1..].iter().map(|e| e.exp()).collect();
        edges[GRID] = f64::INFINITY;
        let cdf = points.iter().map(|x| edges.iter().map(|e| normal_cdf((e - rho * x) / sigma)).collect()).collect();
        Market { levels, rho, sigma, floor: model.floor_sat_kvb as f64, points, up, cdf }
    }

    fn level(&self, k: u64) -> f64 {
        let last = self.levels.len().saturating_sub(1);
        self.levels[(k as usize).min(last)]
    }

    /// The grid point nearest the noise block `k` had (its clearing over its level, in logs).
    fn noise_point(&self, chain: &Chain, k: u64) -> usize {
        let n = (chain.clearing(k) as f64 / self.level(k)).ln();
        let step = self.points[1] - self.points[0];
        (((n - self.points[0]) / step).round().max(0.0) as usize).min(GRID - 1)
    }

    /// The bid before each block of `first..=last` for each grid point of the previous block's
    /// noise: `bids[k − first][i]`, sat/kvB.
    fn bids(&self, first: u64, last: u64) -> Vec<Vec<f64>> {
        let mut bids = vec![vec![0.0; GRID]; (last - first + 1) as usize];
        // The expected fee from the block after, for each grid point of this block's noise.
        let mut after: Vec<f64> = self
            .points
            .iter()
            .map(|&x| self.floor.max(self.level(last) * (self.rho * x + LAST_Z * self.sigma).exp()))
            .collect();
        bids[(last - first) as usize] = after.clone();
        for k in (first..last).rev() {
            let level = self.level(k);
            let mut now = vec![0.0; GRID];
            for (i, cdf) in self.cdf.iter().enumerate() {
                // Bidding at the upper edge of cell j confirms in cells 0..=j.
                let mut tail = 0.0; // Σ over cells above j of P(cell) × fee after
                let mut best = (f64::INFINITY, 0.0);
                for j in (0..GRID).rev() {
                    let bid = self.floor.max(level * self.up[j]);
                    let cost = cdf[j + 1] * bid + tail;
                    if cost < best.0 {
                        best = (cost, bid);
                    }
                    tail += (cdf[j + 1] - cdf[j]) * after[j];
                }
                now[i] = best.0;
                bids[(k - first) as usize][i] = best.1;
            }
            after = now;
        }
        bids
    }
}

/// Φ, the standard normal distribution function (Abramowitz and Stegun 7.1.26, error < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-x * x).exp();
    if z >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Every payout placed by its own optimal bids, then the blocks' transactions.
pub fn online_ideal(chain: &Chain, market: &Market, policy: &Policy, payouts: &[Queued]) -> Totals {
    // Per block: (output weight, bid) of the payouts confirming in it.
    let mut blocks: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut t = Totals { paid: payouts.len(), ..Totals::default() };
    // Payouts come in submission order: those of one window in a row share its bids.
    let mut plan: ((u64, u64), Vec<Vec<f64>>) = ((0, 0), vec![]);
    for p in payouts {
        let (first, last) = chain.window(p, policy);
        if plan.0 != (first, last) {
            plan = ((first, last), market.bids(first, last));
        }
        let bids = &plan.1;
        let placed = (first..=last).find_map(|k| {
            let bid = bids[(k - first) as usize][market.noise_point(chain, k - 1)].ceil() as u64;
            (chain.clearing(k) <= bid).then_some((k, bid))
        });
        // Not in by its bound (its last bid missed, about one in a thousand): the next block.
        let (k, bid) = placed.unwrap_or_else(|| {
            t.misses += 1;
            (last + 1, chain.clearing(last + 1))
        });
        blocks.entry(k).or_default().push((p.output.weight(), bid));
        let r = &mut t.rates[p.priority as usize];
        (r.0, r.1) = (r.0 + 1, r.1 + bid);
    }
    for outputs in blocks.values() {
        for chunk in outputs.chunks(policy.max_outputs_per_tx) {
            let weights: u64 = chunk.iter().map(|o| o.0).sum();
            let overhead = tx_weight(&[InputKind::P2wpkh], chunk.len() as u64 + 1, weights + 124) - weights;
            let lowest = chunk.iter().map(|o| o.1).min().unwrap_or(0);
            let outputs: u64 = chunk.iter().map(|(w, bid)| w * bid).sum();
            t.fees += (outputs + overhead * lowest).div_ceil(4_000);
            t.output_wu_kvb += outputs;
            t.txs += 1;
        }
    }
    t
}

/// The least overhead any strategy pays, sat. Payouts whose windows (submission to ETA bound)
/// share no block cannot share a transaction, since a transaction confirms in one block; each
/// transaction carries at least its version, locktime, counts, segwit marker and one P2WPKH input
/// (78.5 vB) at no less than the lowest clearing feerate of its payout's window. The largest such
/// sum over sets of pairwise disjoint windows (weighted interval scheduling) is a floor under any
/// strategy's overhead, foresight or not. With the online ideal's outputs it bounds from below
/// what a strategy that cannot see the noise ahead can expect to pay.
pub fn least_overhead(chain: &Chain, policy: &Policy, payouts: &[Queued]) -> u64 {
    let bare = tx_weight(&[InputKind::P2wpkh], 1, 0);
    // (first block, last block, the least overhead of a transaction in that window).
    let mut windows: Vec<(u64, u64, u64)> = payouts
        .iter()
        .map(|p| {
            let (first, last) = chain.window(p, policy);
            let low = (first..=last).map(|k| chain.clearing(k)).min().unwrap_or(0);
            (first, last, weight_fee_floor(bare, low))
        })
        .collect();
    windows.sort_by_key(|w| w.1);
    // best[i]: the most from the first i windows (by last block).
    let mut best = vec![0u64; windows.len() + 1];
    for (i, &(first, _, fee)) in windows.iter().enumerate() {
        let before = windows[..i].partition_point(|w| w.1 < first);
        best[i + 1] = best[i].max(best[before] + fee);
    }
    best[windows.len()]
}
