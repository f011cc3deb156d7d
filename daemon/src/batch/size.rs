//! Exact transaction sizes in weight units (WU): per output script type, per input type and the
//! transaction's overhead, summed exactly; vbytes = ceil(weight / 4) only at the end.

use sendero_wallet::bitcoin::Script;

/// Weight units in one virtual byte.
pub const WU_PER_VB: u64 = 4;
/// Bitcoin Core's largest standard transaction weight (`MAX_STANDARD_TX_WEIGHT`).
pub const MAX_STANDARD_TX_WEIGHT: u64 = 400_000;
/// The step a replacement raises the feerate by when bitcoind's is not known, sat/kvB: BIP125
/// rule 4 at Bitcoin Core's default incremental relay feerate before v30 (1 sat/vB; 0.1 since,
/// which the fee bumper reads from bitcoind: [`super::Policy::replacement_step_sat_kvb`]).
pub const INCREMENTAL_FEERATE_SAT_KVB: u64 = 1_000;

/// The script type of an output (a payee's address, or our change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKind {
    /// Pay to witness public key hash (`bc1q…`, 20-byte program): 22-byte script, 31 vB.
    P2wpkh,
    /// Pay to script hash (`3…`): 23-byte script, 32 vB.
    P2sh,
    /// Pay to public key hash (`1…`): 25-byte script, 34 vB.
    P2pkh,
    /// Pay to witness script hash (`bc1q…`, 32-byte program): 34-byte script, 43 vB.
    P2wsh,
    /// Pay to taproot (`bc1p…`): 34-byte script, 43 vB.
    P2tr,
}

impl OutputKind {
    /// Every kind, for tests and tables.
    pub const ALL: [OutputKind; 5] =
        [OutputKind::P2wpkh, OutputKind::P2sh, OutputKind::P2pkh, OutputKind::P2wsh, OutputKind::P2tr];

    /// Length of the script pubkey, bytes.
    pub fn script_len(self) -> u64 {
        match self {
            OutputKind::P2wpkh => 22,
            OutputKind::P2sh => 23,
            OutputKind::P2pkh => 25,
            OutputKind::P2wsh | OutputKind::P2tr => 34,
        }
    }

    /// The output's weight: (8 value + script length varint + script) × 4.
    pub fn weight(self) -> u64 {
        output_weight(self.script_len())
    }

    /// The kind of a script pubkey, or `None` for a non-standard or bare script.
    pub fn of_script(script: &Script) -> Option<OutputKind> {
        [
            (script.is_p2wpkh(), OutputKind::P2wpkh),
            (script.is_p2sh(), OutputKind::P2sh),
            (script.is_p2pkh(), OutputKind::P2pkh),
            (script.is_p2wsh(), OutputKind::P2wsh),
            (script.is_p2tr(), OutputKind::P2tr),
        ]
        .into_iter()
        .find_map(|(yes, kind)| yes.then_some(kind))
    }

    /// `p2wpkh`, `p2sh`, `p2pkh`, `p2wsh`, `p2tr`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKind::P2wpkh => "p2wpkh",
            OutputKind::P2sh => "p2sh",
            OutputKind::P2pkh => "p2pkh",
            OutputKind::P2wsh => "p2wsh",
            OutputKind::P2tr => "p2tr",
        }
    }
}

/// The type of a coin we spend, with the largest signature it is signed with (72-byte ECDSA,
/// 64-byte Schnorr with the default sighash), as BDK's coin selection counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// Native segwit v0 (BIP84): 272 WU, 68 vB.
    P2wpkh,
    /// Taproot key path (BIP86): 230 WU, 57.5 vB.
    P2trKeyPath,
    /// Nested segwit (BIP49): 364 WU, 91 vB.
    P2shP2wpkh,
    /// Legacy (BIP44): 592 WU, 148 vB (plus 1 WU for its empty witness in a segwit transaction).
    P2pkh,
}

impl InputKind {
    /// The input's weight: outpoint (36) + scriptSig with its length + sequence (4), × 4, plus
    /// its witness (item count, each item with its length).
    pub fn weight(self) -> u64 {
        let (script_sig, witness) = match self {
            InputKind::P2wpkh => (0, 1 + 1 + 72 + 1 + 33),
            InputKind::P2trKeyPath => (0, 1 + 1 + 64),
            InputKind::P2shP2wpkh => (23, 1 + 1 + 72 + 1 + 33),
            InputKind::P2pkh => (1 + 72 + 1 + 33, 0),
        };
        (36 + varint_len(script_sig) + script_sig + 4) * WU_PER_VB + witness
    }

    /// Whether it carries a witness.
    pub fn is_segwit(self) -> bool {
        self != InputKind::P2pkh
    }

    /// The input that spends an output of `kind` we own, if the wallet can sign it.
    pub fn spending(kind: OutputKind) -> Option<InputKind> {
        match kind {
            OutputKind::P2wpkh => Some(InputKind::P2wpkh),
            OutputKind::P2tr => Some(InputKind::P2trKeyPath),
            OutputKind::P2sh => Some(InputKind::P2shP2wpkh),
            OutputKind::P2pkh => Some(InputKind::P2pkh),
            OutputKind::P2wsh => None,
        }
    }
}

/// Bytes of Bitcoin's CompactSize encoding of `n`.
pub fn varint_len(n: u64) -> u64 {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Weight of an output whose script pubkey is `script_len` bytes.
pub fn output_weight(script_len: u64) -> u64 {
    (8 + varint_len(script_len) + script_len) * WU_PER_VB
}

/// Weight of what every transaction carries: version and locktime (4 + 4), the input and output
/// counts, and the segwit marker and flag (2 WU) when any input has a witness. One input, two
/// outputs, segwit: 42 WU (10.5 vB).
pub fn overhead_weight(inputs: u64, outputs: u64, segwit: bool) -> u64 {
    (4 + 4 + varint_len(inputs) + varint_len(outputs)) * WU_PER_VB + if segwit { 2 } else { 0 }
}

/// Exact weight of a transaction spending `inputs` to outputs of total weight `output_weight`
/// (`outputs` of them). A legacy input of a segwit transaction adds its empty witness (1 WU).
pub fn tx_weight(inputs: &[InputKind], outputs: u64, output_weight: u64) -> u64 {
    let segwit = inputs.iter().any(|i| i.is_segwit());
    let legacy_in_segwit = if segwit { inputs.iter().filter(|i| !i.is_segwit()).count() as u64 } else { 0 };
    let input_weight: u64 = inputs.iter().map(|i| i.weight()).sum();
    overhead_weight(inputs.len() as u64, outputs, segwit) + input_weight + legacy_in_segwit + output_weight
}

/// Virtual bytes: weight / 4, rounded up.
pub fn vbytes(weight: u64) -> u64 {
    weight.div_ceil(WU_PER_VB)
}

/// The fee of `weight` at `feerate_sat_kvb`, as Bitcoin Core computes it: vbytes × feerate /
/// 1000, rounded up.
pub fn fee_sat(weight: u64, feerate_sat_kvb: u64) -> u64 {
    vbytes(weight).saturating_mul(feerate_sat_kvb).div_ceil(1_000)
}

/// The fee of `weight` at `feerate_sat_kvb` counted in weight units without rounding the
/// vbytes: weight × feerate / 4000, rounded down (a part of a transaction's fee).
pub fn weight_fee_floor(weight: u64, feerate_sat_kvb: u64) -> u64 {
    weight.saturating_mul(feerate_sat_kvb) / (WU_PER_VB * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use sendero_wallet::bitcoin::absolute::LockTime;
    use sendero_wallet::bitcoin::transaction::Version;
    use sendero_wallet::bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

    fn script(kind: OutputKind) -> ScriptBuf {
        let bytes = match kind {
            OutputKind::P2wpkh => [vec![0x00, 0x14], vec![7; 20]].concat(),
            OutputKind::P2sh => [vec![0xa9, 0x14], vec![7; 20], vec![0x87]].concat(),
            OutputKind::P2pkh => [vec![0x76, 0xa9, 0x14], vec![7; 20], vec![0x88, 0xac]].concat(),
            OutputKind::P2wsh => [vec![0x00, 0x20], vec![7; 32]].concat(),
            OutputKind::P2tr => [vec![0x51, 0x20], vec![7; 32]].concat(),
        };
        ScriptBuf::from_bytes(bytes)
    }

    fn input(kind: InputKind) -> TxIn {
        let ecdsa = || Witness::from_slice(&[vec![0x30; 72], vec![0x02; 33]]);
        let (script_sig, witness) = match kind {
            InputKind::P2wpkh => (ScriptBuf::new(), ecdsa()),
            InputKind::P2trKeyPath => (ScriptBuf::new(), Witness::from_slice(&[vec![0x01; 64]])),
            InputKind::P2shP2wpkh => (ScriptBuf::from_bytes([vec![0x16, 0x00, 0x14], vec![7; 20]].concat()), ecdsa()),
            InputKind::P2pkh => {
                (ScriptBuf::from_bytes([vec![72], vec![0x30; 72], vec![33], vec![0x02; 33]].concat()), Witness::new())
            }
        };
        TxIn { previous_output: OutPoint::null(), script_sig, sequence: Sequence::ENABLE_RBF_NO_LOCKTIME, witness }
    }

    /// The transaction rust-bitcoin serializes, for its own weight.
    fn real_tx(inputs: &[InputKind], outputs: &[OutputKind]) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: inputs.iter().map(|k| input(*k)).collect(),
            output: outputs
                .iter()
                .map(|k| TxOut { value: Amount::from_sat(50_000), script_pubkey: script(*k) })
                .collect(),
        }
    }

    fn ours(inputs: &[InputKind], outputs: &[OutputKind]) -> u64 {
        tx_weight(inputs, outputs.len() as u64, outputs.iter().map(|o| o.weight()).sum())
    }

    #[test]
    fn output_and_input_sizes_are_the_known_figures() {
        let vb: Vec<u64> = OutputKind::ALL.iter().map(|k| vbytes(k.weight())).collect();
        assert_eq!(vb, [31, 32, 34, 43, 43]);
        assert_eq!(InputKind::P2wpkh.weight(), 272);
        assert_eq!(InputKind::P2trKeyPath.weight(), 230, "57.5 vB");
        assert_eq!(InputKind::P2shP2wpkh.weight(), 364);
        assert_eq!(InputKind::P2pkh.weight(), 592);
        assert_eq!(overhead_weight(1, 2, true), 42, "10.5 vB");
        for kind in OutputKind::ALL {
            assert_eq!(OutputKind::of_script(&script(kind)), Some(kind));
        }
    }

    #[test]
    fn a_payout_with_change_is_141_vbytes_and_153_to_taproot() {
        let p2wpkh = [InputKind::P2wpkh];
        assert_eq!(vbytes(ours(&p2wpkh, &[OutputKind::P2wpkh, OutputKind::P2wpkh])), 141);
        assert_eq!(vbytes(ours(&p2wpkh, &[OutputKind::P2tr, OutputKind::P2wpkh])), 153);
        let tx = real_tx(&p2wpkh, &[OutputKind::P2wpkh, OutputKind::P2wpkh]);
        assert_eq!(tx.vsize(), 141);
        assert_eq!(fee_sat(562, 1_000), 141, "1 sat/vB");
        assert_eq!(fee_sat(562, 1_500), 212, "211.5 rounded up");
    }

    #[test]
    fn every_shape_weighs_what_rust_bitcoin_serializes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let ins = [InputKind::P2wpkh, InputKind::P2trKeyPath, InputKind::P2shP2wpkh, InputKind::P2pkh];
        for round in 0..300 {
            let n_in = rng.gen_range(1..=if round % 10 == 0 { 300 } else { 8 });
            let n_out = rng.gen_range(1..=if round % 7 == 0 { 400 } else { 20 });
            let legacy_only = round % 5 == 0;
            let inputs: Vec<InputKind> =
                (0..n_in).map(|_| if legacy_only { InputKind::P2pkh } else { ins[rng.gen_range(0..4)] }).collect();
            let outputs: Vec<OutputKind> = (0..n_out).map(|_| OutputKind::ALL[rng.gen_range(0..5)]).collect();
            let tx = real_tx(&inputs, &outputs);
            assert_eq!(ours(&inputs, &outputs), tx.weight().to_wu(), "{n_in} inputs, {n_out} outputs");
        }
    }
}
