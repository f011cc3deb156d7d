//! A feerate in sat/kvB (satoshis per 1,000 virtual bytes): bitcoind's own resolution
//! (`estimatesmartfee` answers in BTC/kvB), so that a market at 2.4 sat/vB is paid 2.4 sat/vB,
//! not 3. Every transaction the treasury builds takes one; whole sat/vB (the operator's
//! settings, the admin calls) convert exactly.

use bdk_wallet::bitcoin::FeeRate;

use crate::WalletError;

/// A feerate, sat/kvB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Feerate(u64);

impl Feerate {
    /// `sat_kvb` sat/kvB.
    pub const fn from_sat_per_kvb(sat_kvb: u64) -> Feerate {
        Feerate(sat_kvb)
    }

    /// `sat_vb` whole sat/vB.
    pub const fn from_sat_per_vb(sat_vb: u64) -> Feerate {
        Feerate(sat_vb.saturating_mul(1_000))
    }

    /// In sat/kvB.
    pub const fn sat_per_kvb(self) -> u64 {
        self.0
    }

    /// In whole sat/vB, rounded up (for display beside [`Feerate::sat_per_kvb`]).
    pub const fn sat_per_vb_ceil(self) -> u64 {
        self.0.div_ceil(1_000)
    }

    /// The fee of `vsize` vbytes at this feerate, rounded up to the sat.
    pub const fn fee_sat(self, vsize: u64) -> u64 {
        self.0.saturating_mul(vsize).div_ceil(1_000)
    }

    /// As BDK builds with it (sat per 1,000 weight units, rounded up: never below this one);
    /// refused at 0.
    pub(crate) fn fee_rate(self) -> Result<FeeRate, WalletError> {
        if self.0 == 0 {
            return Err(WalletError::InvalidFeerate("0 sat/vB".into()));
        }
        Ok(FeeRate::from_sat_per_kwu(self.0.div_ceil(4)))
    }
}

impl std::fmt::Display for Feerate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:03} sat/vB", self.0 / 1_000, self.0 % 1_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bdk_wallet::bitcoin::Weight;

    #[test]
    fn whole_and_fractional_feerates_convert_exactly_and_round_fees_up() {
        let r = Feerate::from_sat_per_kvb(2_345);
        assert_eq!((r.sat_per_kvb(), r.sat_per_vb_ceil(), r.to_string()), (2_345, 3, "2.345 sat/vB".to_owned()));
        assert_eq!(Feerate::from_sat_per_vb(7), Feerate::from_sat_per_kvb(7_000));
        assert_eq!(r.fee_sat(141), 331, "330.6 rounds up");
        assert_eq!(Feerate::from_sat_per_vb(1).fee_sat(141), 141);
        // What BDK charges for 141 vB (564 wu) is at least what was asked.
        let charged = r.fee_rate().unwrap().fee_wu(Weight::from_wu(564)).unwrap().to_sat();
        assert!(charged >= r.fee_sat(141) && charged <= r.fee_sat(141) + 1, "{charged}");
        assert_eq!(Feerate::from_sat_per_vb(5).fee_rate().unwrap(), FeeRate::from_sat_per_vb_u32(5));
        assert!(matches!(Feerate::default().fee_rate(), Err(WalletError::InvalidFeerate(_))));
        assert_eq!(Feerate::from_sat_per_kvb(100).to_string(), "0.100 sat/vB");
    }
}
