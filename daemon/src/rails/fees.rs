//! Feerates the operator steers, for regtest, signet and simulators (never mainnet): an override
//! set through the admin RPC (`fees.set`), else a schedule file read at startup
//! (`wallet.fee_schedule_file`), else bitcoind's `estimatesmartfee` as always.

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use sendero_wallet::bitcoin::Network;
use sendero_wallet::{FeeSource, Feerate};

/// Confirmation targets are 1..=1008 blocks, as bitcoind's `estimatesmartfee` takes them.
pub const MAX_TARGET_BLOCKS: u16 = 1008;

/// Why a feerate could not be set or a schedule read.
#[derive(Debug, thiserror::Error)]
pub enum FeesError {
    /// The gateway runs on mainnet, where only bitcoind's market says what a block costs.
    #[error("feerate overrides and schedules are refused on mainnet: fees come from bitcoind's estimatesmartfee")]
    Mainnet,
    /// A feerate or a confirmation target outside what the wallet accepts.
    #[error("{0}")]
    Invalid(String),
    /// The schedule file could not be read.
    #[error("cannot read fee schedule {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the schedule file is not `unix_time,sat_per_vb`.
    #[error("fee schedule line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// A feerate the operator set: `sat_per_vb` for every confirmation target, except the targets
/// up to a step's `max_target_blocks`, which pay that step's feerate (the first step that covers
/// the target, steps sorted by target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeOverride {
    /// Feerate for targets no step covers, in sat/vB.
    pub sat_per_vb: u64,
    /// `(max_target_blocks, sat_per_vb)`, sorted by target, each target once.
    pub steps: Vec<(u16, u64)>,
}

impl FeeOverride {
    /// Checks every feerate is within `1..=max_sat_vb` and every target within 1..=1008, and
    /// sorts the steps; refuses a target named twice.
    pub fn new(sat_per_vb: u64, mut steps: Vec<(u16, u64)>, max_sat_vb: u64) -> Result<FeeOverride, FeesError> {
        let rates = std::iter::once(sat_per_vb).chain(steps.iter().map(|s| s.1));
        if let Some(bad) = rates.into_iter().find(|r| *r == 0 || *r > max_sat_vb) {
            return Err(FeesError::Invalid(format!(
                "{bad} sat/vB is outside 1..={max_sat_vb} (wallet.max_feerate_sat_vb)"
            )));
        }
        if let Some((bad, _)) = steps.iter().find(|(t, _)| *t == 0 || *t > MAX_TARGET_BLOCKS) {
            return Err(FeesError::Invalid(format!("target {bad} is outside 1..={MAX_TARGET_BLOCKS} blocks")));
        }
        steps.sort_unstable();
        if let Some(w) = steps.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(FeesError::Invalid(format!("target {} is named twice", w[0].0)));
        }
        Ok(FeeOverride { sat_per_vb, steps })
    }

    /// The feerate for confirmation within `target_blocks`.
    pub fn rate_for(&self, target_blocks: u16) -> u64 {
        self.steps.iter().find(|(max, _)| target_blocks <= *max).map_or(self.sat_per_vb, |s| s.1)
    }
}

/// Feerates over time: the one in force at `t` is the last sample at or before `t`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// `(unix_time, millisat_per_vb)`, times strictly increasing.
    samples: Vec<(u64, u64)>,
    /// Where it was read from (empty for one parsed from text).
    path: PathBuf,
}

impl Schedule {
    /// Reads `path` (see [`Schedule::parse`]).
    pub fn load(path: &Path) -> Result<Schedule, FeesError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| FeesError::Read { path: path.to_path_buf(), source })?;
        Ok(Schedule { path: path.to_path_buf(), ..Schedule::parse(&text)? })
    }

    /// A CSV of `unix_time,sat_per_vb` lines, times strictly increasing; feerates are whole or
    /// decimal with up to 3 places (read as integers of millisat/vB, never floats) and above zero.
    /// `#` starts a comment; blank lines and a `unix_time,sat_per_vb` header are skipped.
    pub fn parse(text: &str) -> Result<Schedule, FeesError> {
        let mut samples: Vec<(u64, u64)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default().trim();
            if line.is_empty() || line.replace(' ', "") == "unix_time,sat_per_vb" {
                continue;
            }
            let err = |message: String| FeesError::Parse { line: i + 1, message };
            let (time, rate) = line.split_once(',').ok_or_else(|| err("expected unix_time,sat_per_vb".into()))?;
            let time: u64 = time.trim().parse().map_err(|_| err(format!("{:?} is not a unix time", time.trim())))?;
            let rate = parse_millis(rate.trim()).map_err(err)?;
            if samples.last().is_some_and(|(last, _)| *last >= time) {
                return Err(err(format!("time {time} is not after the line before")));
            }
            samples.push((time, rate));
        }
        if samples.is_empty() {
            return Err(FeesError::Invalid("the fee schedule has no samples".into()));
        }
        Ok(Schedule { samples, path: PathBuf::new() })
    }

    /// The feerate in force at `now`, to the millisat/vB (sat/kvB); `None` before the first
    /// sample.
    pub fn at(&self, now: u64) -> Option<Feerate> {
        let i = self.samples.partition_point(|(t, _)| *t <= now);
        i.checked_sub(1).map(|i| Feerate::from_sat_per_kvb(self.samples[i].1))
    }

    /// How many samples it holds.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `12`, `12.5` or `12.345` sat/vB as millisat/vB; more places, signs or zero are refused.
fn parse_millis(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a feerate in sat/vB (a number above 0 with up to 3 decimals)");
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole)
        || frac.len() > 3
        || (!frac.is_empty() && !digits(frac))
        || (text.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| bad())?;
    let millis = whole.checked_mul(1_000).and_then(|w| w.checked_add(frac)).ok_or_else(bad)?;
    if millis == 0 {
        return Err(bad());
    }
    Ok(millis)
}

/// Refuses operator feerates on mainnet.
pub fn check_network(network: Network) -> Result<(), FeesError> {
    if network == Network::Bitcoin {
        return Err(FeesError::Mainnet);
    }
    Ok(())
}

/// What the operator set: an override (changed at run time) over a schedule (fixed at startup).
#[derive(Debug)]
pub struct Fees {
    network: Network,
    over: RwLock<Option<FeeOverride>>,
    schedule: Option<Schedule>,
}

impl Fees {
    /// Nothing set: bitcoind decides.
    pub fn new(network: Network) -> Fees {
        Fees { network, over: RwLock::new(None), schedule: None }
    }

    /// With `schedule` in force under any override; refused on mainnet.
    pub fn with_schedule(self, schedule: Schedule) -> Result<Fees, FeesError> {
        check_network(self.network)?;
        Ok(Fees { schedule: Some(schedule), ..self })
    }

    /// Whether the operator may set feerates here (not on mainnet).
    pub fn check_allowed(&self) -> Result<(), FeesError> {
        check_network(self.network)
    }

    /// Puts `over` in force (refused on mainnet, changing nothing); returns the one it replaced.
    pub fn set(&self, over: FeeOverride) -> Result<Option<FeeOverride>, FeesError> {
        self.check_allowed()?;
        Ok(self.over.write().unwrap_or_else(PoisonError::into_inner).replace(over))
    }

    /// Removes the override (refused on mainnet); returns it.
    pub fn clear(&self) -> Result<Option<FeeOverride>, FeesError> {
        self.check_allowed()?;
        Ok(self.over.write().unwrap_or_else(PoisonError::into_inner).take())
    }

    /// The override in force, if any.
    pub fn current(&self) -> Option<FeeOverride> {
        self.over.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The schedule read at startup, if any.
    pub fn schedule(&self) -> Option<&Schedule> {
        self.schedule.as_ref()
    }

    /// The operator's feerate for `target_blocks` at `now` and where it came from, or `None` when
    /// bitcoind decides.
    pub fn operator_rate(&self, target_blocks: u16, now: u64) -> Option<(Feerate, FeeSource)> {
        if let Some(over) = self.over.read().unwrap_or_else(PoisonError::into_inner).as_ref() {
            return Some((Feerate::from_sat_per_vb(over.rate_for(target_blocks)), FeeSource::Override));
        }
        let rate = self.schedule.as_ref()?.at(now)?;
        Some((rate, FeeSource::Schedule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_checked_and_step_by_target() {
        let over = FeeOverride::new(5, vec![(6, 20), (1, 50)], 1_000).unwrap();
        let rates: Vec<u64> = [1, 2, 6, 7, 144].iter().map(|t| over.rate_for(*t)).collect();
        assert_eq!(rates, [50, 20, 20, 5, 5]);
        for (rate, steps) in [(0, vec![]), (1_001, vec![]), (5, vec![(3, 0)]), (5, vec![(0, 9)]), (5, vec![(1009, 9)])]
        {
            assert!(matches!(FeeOverride::new(rate, steps, 1_000), Err(FeesError::Invalid(_))));
        }
        assert!(FeeOverride::new(5, vec![(3, 9), (3, 8)], 1_000).is_err());
    }

    #[test]
    fn mainnet_refuses_every_change_and_keeps_bitcoinds_estimates() {
        let fees = Fees::new(Network::Bitcoin);
        let over = FeeOverride::new(40, vec![], 1_000).unwrap();
        assert!(matches!(fees.set(over), Err(FeesError::Mainnet)));
        assert!(matches!(fees.clear(), Err(FeesError::Mainnet)));
        assert_eq!((fees.current(), fees.operator_rate(6, 0)), (None, None));
        let schedule = Schedule::parse("0,7\n").unwrap();
        assert!(matches!(Fees::new(Network::Bitcoin).with_schedule(schedule), Err(FeesError::Mainnet)));
        for network in [Network::Regtest, Network::Signet, Network::Testnet, Network::Testnet4] {
            assert!(check_network(network).is_ok());
        }
    }

    #[test]
    fn the_override_wins_over_the_schedule_until_cleared() {
        let schedule = Schedule::parse("100,7\n200,30\n").unwrap();
        let fees = Fees::new(Network::Regtest).with_schedule(schedule).unwrap();
        assert_eq!(fees.operator_rate(6, 99), None, "before the first sample bitcoind decides");
        let vb = Feerate::from_sat_per_vb;
        assert_eq!(fees.operator_rate(6, 150), Some((vb(7), FeeSource::Schedule)));
        assert_eq!(fees.set(FeeOverride::new(40, vec![], 1_000).unwrap()).unwrap(), None);
        assert_eq!(fees.operator_rate(6, 250), Some((vb(40), FeeSource::Override)));
        assert_eq!(fees.clear().unwrap().map(|o| o.sat_per_vb), Some(40));
        assert_eq!(fees.operator_rate(6, 250), Some((vb(30), FeeSource::Schedule)));
    }

    #[test]
    fn schedules_parse_decimals_as_integers_and_take_the_last_sample() {
        let text = "# simulated\nunix_time,sat_per_vb\n10, 1.5\n20,2.001 # spike\n\n30,12\n";
        let s = Schedule::parse(text).unwrap();
        assert_eq!(s.len(), 3);
        let at: Vec<Option<u64>> =
            [9, 10, 19, 20, 29, 30, 1_000].iter().map(|t| s.at(*t).map(Feerate::sat_per_kvb)).collect();
        assert_eq!(at, [None, Some(1_500), Some(1_500), Some(2_001), Some(2_001), Some(12_000), Some(12_000)]);
        assert_eq!(parse_millis("0.001"), Ok(1));
        assert_eq!(parse_millis("7.25"), Ok(7_250));
        for bad in ["0", "0.000", "1.2345", "-1", "1e3", "", ".5", "5.", "1,5", "x", "99999999999999999999"] {
            assert!(parse_millis(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "# only\n", "10,5\n10,6\n", "10,5\n5,6\n", "ten,5\n", "10\n", "10,0\n"] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
        let err = Schedule::parse("10,5\nx,1\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
