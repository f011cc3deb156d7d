//! Feerate series for the simulator and for a fee source tests can steer: a step function of
//! time (the last sample at or before `t`), from a CSV of `(unix_time, sat/vB)` samples or from
//! a seeded synthetic model. Feerates are integer sat/kvB; the CSV's decimal sat/vB is parsed
//! without floats. Floats appear only inside the synthetic model, whose output is rounded.
//!
//! The model, one value per block (every `step_secs`):
//! `base × daily × weekly × exp(noise) × spike`, at least `floor`, where
//! - `daily = 1 + daily_amplitude × cos(2π (hour − peak_hour) / 24)` (UTC hour, fractional);
//! - `weekly = weekend_factor` on Saturday and Sunday (UTC), 1 otherwise;
//! - `noise` is AR(1): `x ← noise_rho × x + noise_sigma × N(0, 1)`;
//! - spikes arrive as a Poisson process (`spikes_per_week`), last 1 to `spike_max_hours`, and
//!   multiply by up to 3 to `spike_max_factor` (a jump, then a linear decay back to 1).

use rand::{Rng, SeedableRng};
use std::path::Path;

/// Why a series could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FeeSeriesError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `unix_time,sat_per_vb`.
    #[error("line {line}: {message}")]
    Line {
        /// 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// No samples.
    #[error("the series has no samples")]
    Empty,
}

/// Feerate samples, sorted by time: `(unix seconds, sat/kvB)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeSeries {
    points: Vec<(u64, u64)>,
}

impl FeeSeries {
    /// A series of `points` (sorted here; a later duplicate time wins).
    pub fn new(mut points: Vec<(u64, u64)>) -> Result<FeeSeries, FeeSeriesError> {
        if points.is_empty() {
            return Err(FeeSeriesError::Empty);
        }
        points.sort_by_key(|p| p.0);
        Ok(FeeSeries { points })
    }

    /// The feerate at `t`: the last sample at or before it (the first sample before the series
    /// starts), sat/kvB.
    pub fn at(&self, t: u64) -> u64 {
        let i = self.points.partition_point(|p| p.0 <= t);
        self.points[i.saturating_sub(1)].1
    }

    /// The samples.
    pub fn points(&self) -> &[(u64, u64)] {
        &self.points
    }

    /// The first and the last sample's time.
    pub fn span(&self) -> (u64, u64) {
        (self.points[0].0, self.points[self.points.len() - 1].0)
    }
}

/// A decimal sat/vB (`12`, `3.5`, `0.105`) as sat/kvB; digits past the third decimal round up.
pub fn parse_sat_vb(text: &str) -> Option<u64> {
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let (head, tail) = frac.split_at(frac.len().min(3));
    let milli: u64 = format!("{head:0<3}").parse().ok()?;
    let round_up = u64::from(tail.bytes().any(|b| b != b'0'));
    whole.checked_mul(1_000)?.checked_add(milli + round_up)
}

/// Reads a CSV of `unix_time,sat_per_vb` lines (a header line, blank lines and `#` comments are
/// skipped).
pub fn parse_csv(text: &str) -> Result<FeeSeries, FeeSeriesError> {
    let mut points = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: String| FeeSeriesError::Line { line: n + 1, message };
        let (time, rate) = line.split_once(',').ok_or_else(|| bad(format!("{line:?} is not unix_time,sat_per_vb")))?;
        let Ok(time) = time.trim().parse::<u64>() else {
            if points.is_empty() && !time.trim().starts_with(|c: char| c.is_ascii_digit()) {
                continue; // the header
            }
            return Err(bad(format!("{time:?} is not a Unix time")));
        };
        let rate = parse_sat_vb(rate).ok_or_else(|| bad(format!("{rate:?} is not a decimal sat/vB")))?;
        points.push((time, rate));
    }
    FeeSeries::new(points)
}

/// [`parse_csv`] of a file.
pub fn load_csv(path: &Path) -> Result<FeeSeries, FeeSeriesError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| FeeSeriesError::Read { path: path.display().to_string(), source })?;
    parse_csv(&text)
}

/// The synthetic model's parameters (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// The PRNG seed.
    pub seed: u64,
    /// First sample, Unix seconds.
    pub start: u64,
    /// How long, seconds.
    pub duration_secs: u64,
    /// Between samples, seconds.
    pub step_secs: u64,
    /// Level, sat/vB.
    pub base_sat_vb: f64,
    /// Relative swing of the daily cycle.
    pub daily_amplitude: f64,
    /// UTC hour of the daily peak.
    pub peak_hour: f64,
    /// Level on Saturday and Sunday relative to weekdays.
    pub weekend_factor: f64,
    /// AR(1) persistence of the noise, per sample.
    pub noise_rho: f64,
    /// AR(1) innovation, in log units.
    pub noise_sigma: f64,
    /// Mean spikes per week.
    pub spikes_per_week: f64,
    /// Longest spike, hours.
    pub spike_max_hours: f64,
    /// Highest spike multiplier.
    pub spike_max_factor: f64,
    /// Lowest feerate, sat/kvB.
    pub floor_sat_kvb: u64,
}

impl Synthetic {
    /// A week from `start` of a mainnet-like market: about 8 sat/vB on weekday afternoons,
    /// 2 to 3 at night and on weekends, two or three spikes of up to 8×.
    pub fn week(seed: u64, start: u64) -> Synthetic {
        Synthetic {
            seed,
            start,
            duration_secs: 7 * 86_400,
            step_secs: 600,
            base_sat_vb: 5.0,
            daily_amplitude: 0.6,
            peak_hour: 15.0,
            weekend_factor: 0.6,
            noise_rho: 0.9,
            noise_sigma: 0.12,
            spikes_per_week: 2.5,
            spike_max_hours: 6.0,
            spike_max_factor: 8.0,
            floor_sat_kvb: 1_000,
        }
    }

    /// The series the model gives.
    pub fn series(&self) -> FeeSeries {
        let (mut rng, steps, spikes) = self.spiked();
        let mut noise = 0.0f64;
        let points = (0..steps)
            .map(|k| {
                let t = self.start + k * self.step_secs;
                noise = self.noise_rho * noise + self.noise_sigma * gaussian(&mut rng);
                let rate = self.rate(t, &spikes, noise.exp());
                (t, (rate.round() as u64).max(self.floor_sat_kvb))
            })
            .collect();
        FeeSeries { points }
    }

    /// The series without its noise: `base × daily × weekly × spike` at each step, sat/kvB, the
    /// same spikes as [`Synthetic::series`] (for the simulator's online ideal, which knows
    /// everything but the noise).
    pub fn levels(&self) -> Vec<(u64, f64)> {
        let (_, steps, spikes) = self.spiked();
        (0..steps).map(|k| self.start + k * self.step_secs).map(|t| (t, self.rate(t, &spikes, 1.0))).collect()
    }

    /// The rate at `t` with the noise's factor `noise` (1 for the level), sat/kvB.
    fn rate(&self, t: u64, spikes: &[Spike], noise: f64) -> f64 {
        let hour = (t % 86_400) as f64 / 3_600.0;
        let daily = 1.0 + self.daily_amplitude * (std::f64::consts::TAU * (hour - self.peak_hour) / 24.0).cos();
        let weekday = (t / 86_400 + 4) % 7; // 1970-01-01 was a Thursday; 0 = Sunday
        let weekly = if weekday == 0 || weekday == 6 { self.weekend_factor } else { 1.0 };
        let spike = spikes.iter().map(|s| s.factor(t)).fold(1.0, f64::max);
        self.base_sat_vb * daily * weekly * noise * spike * 1_000.0
    }

    /// The seeded generator after the spikes were drawn (the noise comes next), the number of
    /// steps and the spikes.
    fn spiked(&self) -> (rand::rngs::StdRng, u64, Vec<Spike>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.seed);
        let steps = (self.duration_secs / self.step_secs.max(1)).max(1);
        let spikes = self.spikes(&mut rng, steps);
        (rng, steps, spikes)
    }

    fn spikes(&self, rng: &mut rand::rngs::StdRng, steps: u64) -> Vec<Spike> {
        let per_step = self.spikes_per_week * self.step_secs as f64 / (7.0 * 86_400.0);
        let mut spikes = Vec::new();
        for k in 0..steps {
            if rng.gen_bool(per_step.clamp(0.0, 1.0)) {
                spikes.push(Spike {
                    start: self.start + k * self.step_secs,
                    secs: rng.gen_range(1.0..=self.spike_max_hours.max(1.0)) * 3_600.0,
                    factor: rng.gen_range(3.0..=self.spike_max_factor.max(3.0)),
                });
            }
        }
        spikes
    }
}

/// A jump to `factor` at `start`, decaying linearly to 1 over `secs`.
struct Spike {
    start: u64,
    secs: f64,
    factor: f64,
}

impl Spike {
    fn factor(&self, t: u64) -> f64 {
        let into = t.saturating_sub(self.start) as f64;
        if t < self.start || into >= self.secs {
            return 1.0;
        }
        1.0 + (self.factor - 1.0) * (1.0 - into / self.secs)
    }
}

/// A standard normal draw (Box–Muller).
fn gaussian(rng: &mut rand::rngs::StdRng) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    let v: f64 = rng.gen_range(0.0..1.0);
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_sat_per_vbyte_becomes_sat_per_kvb_without_floats() {
        let cases = [("12", 12_000), ("3.5", 3_500), ("0.105", 105), (".25", 250), ("1.0001", 1_001), ("7.000", 7_000)];
        for (text, want) in cases {
            assert_eq!(parse_sat_vb(text), Some(want), "{text}");
        }
        for bad in ["", ".", "-1", "1e3", "x", "1.2.3"] {
            assert_eq!(parse_sat_vb(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_csv_is_read_and_looked_up_as_a_step_function() {
        let text = "unix_time,sat_per_vb\n# mempool.space\n1700000600, 4.5\n1700000000,12\n\n1700001200,1.25\n";
        let s = parse_csv(text).unwrap();
        assert_eq!(s.points(), [(1_700_000_000, 12_000), (1_700_000_600, 4_500), (1_700_001_200, 1_250)]);
        assert_eq!(
            (s.at(1_600_000_000), s.at(1_700_000_599), s.at(1_700_000_600), s.at(1_800_000_000)),
            (12_000, 12_000, 4_500, 1_250)
        );
        let err = parse_csv("t,r\n1700000000,12\nyesterday,3\n").unwrap_err();
        assert_eq!(err.to_string(), "line 3: \"yesterday\" is not a Unix time");
        assert!(matches!(parse_csv("t,r\n"), Err(FeeSeriesError::Empty)));
    }

    #[test]
    fn the_synthetic_week_is_seeded_with_daily_and_weekly_cycles() {
        // 2026-11-30 00:00 UTC is a Monday.
        let model = Synthetic::week(42, 1_795_996_800);
        let (a, b) = (model.series(), model.series());
        assert_eq!(a, b, "same seed, same series");
        assert_ne!(a, Synthetic { seed: 43, ..model.clone() }.series());
        assert_eq!(a.points().len(), 1_008);
        let mean = |from: u64, hours: u64| {
            let pts: Vec<u64> = (0..hours * 6).map(|k| a.at(model.start + from * 3_600 + k * 600)).collect();
            pts.iter().sum::<u64>() / pts.len() as u64
        };
        let (afternoons, nights) =
            ((0..5).map(|d| mean(d * 24 + 13, 4)).sum::<u64>(), (0..5).map(|d| mean(d * 24 + 1, 4)).sum::<u64>());
        assert!(afternoons > 2 * nights, "weekday afternoons {afternoons} vs nights {nights}");
        assert!(mean(24 * 5, 48) < mean(24, 48), "the weekend is cheaper");
        assert!(a.points().iter().all(|p| p.1 >= 1_000));
        // The noise is what separates the series from its levels: exp(AR(1)), stationary
        // deviation noise_sigma / sqrt(1 − noise_rho²) ≈ 0.28 in log units.
        let levels = model.levels();
        assert_eq!(levels.len(), 1_008);
        let logs: Vec<f64> = a.points().iter().zip(&levels).map(|(p, l)| (p.1 as f64 / l.1).ln()).collect();
        let sd = (logs.iter().map(|x| x * x).sum::<f64>() / logs.len() as f64).sqrt();
        assert!((0.1..0.5).contains(&sd), "log deviation from the levels {sd}");
    }
}
