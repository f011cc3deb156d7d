//! What a splice costs: the exact weight of a splice transaction and its fee at a feerate.
//!
//! A splice spends the channel's current funding output (the *shared input*, a 2-of-2 P2WSH) and
//! creates its new funding output (P2WSH, 43 vB). Counted the way `batch::size` counts:
//! - overhead: version 4 + locktime 4 + input count 1 + output count 1 bytes (× 4) + segwit
//!   marker and flag 2 WU = 42 WU;
//! - the shared input: outpoint 36 + empty scriptSig 1 + sequence 4 bytes (× 4 = 164 WU) and its
//!   witness, LDK's `FUNDING_TRANSACTION_WITNESS_WEIGHT`: item count 1 + the multisig dummy 1 +
//!   two signatures of 1 + 72 + the witness script's length 1 + the script 71
//!   (`2 <33> <33> 2 CHECKMULTISIG`) = 220 WU, so 384 WU;
//! - the new funding output: P2WSH, 172 WU.
//!
//! A **splice-in** adds one P2WPKH input of the node's wallet (272 WU) and a P2WPKH change output
//! (124 WU): 994 WU, 249 vB. A **splice-out** adds the output to the treasury's P2WPKH address
//! (124 WU): 722 WU, 181 vB. We initiate and the peer adds nothing, so we pay the whole fee (the
//! splice-in from the wallet, the splice-out from the channel's balance). A wallet that needs more
//! than one input pays 272 WU more for each ([`splice_weight`] takes the count).

use crate::batch::size::{fee_sat, overhead_weight, InputKind, OutputKind, WU_PER_VB};

/// Weight of the signed 2-of-2 P2WSH funding input a splice spends, WU.
pub const SHARED_INPUT_WEIGHT: u64 = (36 + 1 + 4) * WU_PER_VB + (1 + 1 + (1 + 72) * 2 + 1 + 71);

/// Which way a splice moves money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpliceKind {
    /// From the treasury into the channel (our outbound grows).
    In,
    /// From the channel to the treasury (our outbound shrinks).
    Out,
}

impl SpliceKind {
    /// `splice_in` or `splice_out`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpliceKind::In => "splice_in",
            SpliceKind::Out => "splice_out",
        }
    }
}

/// Exact weight of a splice transaction, WU: the shared input, the new funding output, and for a
/// splice-in `wallet_inputs` P2WPKH inputs and a change output, for a splice-out the output to the
/// treasury (`wallet_inputs` ignored).
pub fn splice_weight(kind: SpliceKind, wallet_inputs: u64) -> u64 {
    let funding = OutputKind::P2wsh.weight();
    let ours = OutputKind::P2wpkh.weight();
    match kind {
        SpliceKind::In => {
            let inputs = 1 + wallet_inputs;
            overhead_weight(inputs, 2, true)
                + SHARED_INPUT_WEIGHT
                + wallet_inputs * InputKind::P2wpkh.weight()
                + funding
                + ours
        }
        SpliceKind::Out => overhead_weight(1, 2, true) + SHARED_INPUT_WEIGHT + funding + ours,
    }
}

/// The fee of a splice with one wallet input at `feerate_sat_kvb`, sats (vbytes rounded up, then
/// the fee rounded up, as Bitcoin Core does).
pub fn splice_fee_sat(kind: SpliceKind, feerate_sat_kvb: u64) -> u64 {
    fee_sat(splice_weight(kind, 1), feerate_sat_kvb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::size::vbytes;

    #[test]
    fn splice_sizes_are_the_documented_ones() {
        assert_eq!(SHARED_INPUT_WEIGHT, 384);
        assert_eq!((splice_weight(SpliceKind::In, 1), vbytes(splice_weight(SpliceKind::In, 1))), (994, 249));
        assert_eq!((splice_weight(SpliceKind::Out, 0), vbytes(splice_weight(SpliceKind::Out, 0))), (722, 181));
        assert_eq!(splice_weight(SpliceKind::In, 3) - splice_weight(SpliceKind::In, 1), 2 * 272);
    }

    #[test]
    fn splice_fees_follow_the_feerate_rounded_up() {
        assert_eq!(splice_fee_sat(SpliceKind::In, 1_000), 249);
        assert_eq!(splice_fee_sat(SpliceKind::In, 10_000), 2_490);
        assert_eq!(splice_fee_sat(SpliceKind::Out, 1_500), 272); // 181 × 1.5 = 271.5
        assert_eq!(splice_fee_sat(SpliceKind::Out, 0), 0);
    }
}
