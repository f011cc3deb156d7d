//! Speeding up the wallet's unconfirmed transactions. A transaction is weighed as a miner weighs
//! it: the feerate of its ancestor package (it and the unconfirmed transactions it spends from),
//! or better, that of a descendant that pays for it. One that nothing spends yet is replaced
//! (RBF: the same outputs, the higher fee from its change); one whose outputs another unconfirmed
//! transaction already spends is not — a replacement would evict that one — and gets a child that
//! pays for the whole package instead (CPFP), spending an unspent output of it or of its
//! descendants back to the wallet.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use bdk_wallet::bitcoin::{Amount, OutPoint, Transaction, Txid};
use bdk_wallet::chain::ChainPosition;
use bdk_wallet::KeychainKind;

use crate::treasury::{create_tx_error, Inner, Payout, Treasury};
use crate::{Feerate, WalletError};

/// The virtual size of a child paying for its parent: one P2WPKH input (a 72-byte signature at
/// most) and one P2WPKH output. 10.5 vB of overhead + 68 + 31 = 109.5, rounded up.
pub const CHILD_VSIZE: u64 = 110;

/// An output below this is dust for P2WPKH at the default relay feerate (sats).
const DUST_SAT: u64 = 294;

/// An unconfirmed transaction of the wallet, as a miner weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Its own fee, sats.
    pub fee_sat: u64,
    /// Its own virtual size, vbytes.
    pub vsize: u64,
    /// The best ancestor-package feerate among it and the wallet's unconfirmed transactions that
    /// descend from it (a child already paying for it counts), sat/kvB.
    pub effective_sat_kvb: u64,
    /// Another unconfirmed transaction of the wallet spends one of its outputs: a replacement
    /// would evict it, so this one is sped up by a child instead.
    pub has_children: bool,
    /// How many unconfirmed transactions of the wallet it spends from, directly or not (those are
    /// best sped up first).
    pub unconfirmed_ancestors: usize,
}

/// A child that pays for its unconfirmed ancestors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The signed child, not broadcast.
    pub tx: Transaction,
    /// Its fee, sats.
    pub fee_sat: u64,
    /// The output it spends (of the sped-up transaction or one of its descendants).
    pub spends: OutPoint,
    /// The feerate of the package it completes, sat/kvB.
    pub package_sat_kvb: u64,
}

/// One unconfirmed transaction of the wallet's canonical history.
struct Node {
    fee: u64,
    vsize: u64,
    parents: Vec<Txid>,
}

/// The wallet's unconfirmed transactions. An unknown fee (a coin from outside) counts as zero:
/// a package then looks cheaper than it is, never dearer.
fn unconfirmed(inner: &Inner) -> HashMap<Txid, Node> {
    let txs: Vec<_> = inner.wallet.transactions().filter(|t| t.chain_position.is_unconfirmed()).collect();
    let ids: HashSet<Txid> = txs.iter().map(|t| t.tx_node.txid).collect();
    txs.iter()
        .map(|t| {
            let tx = &t.tx_node.tx;
            let parents = tx
                .input
                .iter()
                .map(|i| i.previous_output.txid)
                .filter(|p| ids.contains(p))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let fee = inner.wallet.calculate_fee(tx).map(Amount::to_sat).unwrap_or(0);
            (t.tx_node.txid, Node { fee, vsize: tx.vsize() as u64, parents })
        })
        .collect()
}

/// `txid` and every unconfirmed transaction it depends on.
fn ancestors(pool: &HashMap<Txid, Node>, txid: Txid) -> HashSet<Txid> {
    let (mut seen, mut todo) = (HashSet::new(), vec![txid]);
    while let Some(t) = todo.pop() {
        if seen.insert(t) {
            todo.extend(pool.get(&t).map(|n| n.parents.clone()).unwrap_or_default());
        }
    }
    seen
}

/// `txid` and every unconfirmed transaction that spends from it, directly or not.
fn descendants(pool: &HashMap<Txid, Node>, txid: Txid) -> HashSet<Txid> {
    let mut seen = HashSet::from([txid]);
    loop {
        let more: Vec<Txid> = pool
            .iter()
            .filter(|(t, n)| !seen.contains(*t) && n.parents.iter().any(|p| seen.contains(p)))
            .map(|(t, _)| *t)
            .collect();
        if more.is_empty() {
            return seen;
        }
        seen.extend(more);
    }
}

/// The fee and size of a set of transactions.
fn package(pool: &HashMap<Txid, Node>, set: &HashSet<Txid>) -> (u64, u64) {
    set.iter().filter_map(|t| pool.get(t)).fold((0, 0), |(f, v), n| (f + n.fee, v + n.vsize))
}

fn rate_sat_kvb((fee, vsize): (u64, u64)) -> u64 {
    fee.saturating_mul(1_000) / vsize.max(1)
}

fn parse_txid(txid: &str) -> Result<Txid, WalletError> {
    Txid::from_str(txid).map_err(|e| WalletError::Build(format!("txid {txid}: {e}")))
}

impl Treasury {
    /// The fee `tx` pays when the wallet knows every coin it spends — also a transaction the
    /// wallet no longer counts (one a replacement took over).
    pub fn fee_of(&self, tx: &Transaction) -> Option<u64> {
        self.lock().wallet.calculate_fee(tx).ok().map(Amount::to_sat)
    }

    /// `txid` as a miner weighs it, when it is an unconfirmed transaction of the wallet whose
    /// own fee the wallet knows.
    pub fn pending(&self, txid: &str) -> Option<Pending> {
        let txid = Txid::from_str(txid).ok()?;
        let inner = self.lock();
        let own = inner.wallet.get_tx(txid)?;
        inner.wallet.calculate_fee(&own.tx_node.tx).ok()?;
        let pool = unconfirmed(&inner);
        let node = pool.get(&txid)?;
        let family = descendants(&pool, txid);
        let effective = family.iter().map(|d| rate_sat_kvb(package(&pool, &ancestors(&pool, *d)))).max().unwrap_or(0);
        Some(Pending {
            fee_sat: node.fee,
            vsize: node.vsize,
            effective_sat_kvb: effective,
            has_children: family.len() > 1,
            unconfirmed_ancestors: ancestors(&pool, txid).len() - 1,
        })
    }

    /// Whether one of `outpoints` (spent by transactions stored elsewhere) is an output of
    /// `txid` or of a wallet transaction, unconfirmed, that descends from it, and one the wallet
    /// holds unspent: a transaction spending it that the wallet does not know yet (signed and
    /// stored, not broadcast) would be invalidated by a replacement of `txid`, and a child paying
    /// for `txid` might spend the same output.
    pub fn family_spent_by(&self, txid: &str, outpoints: &[OutPoint]) -> bool {
        let Ok(txid) = Txid::from_str(txid) else { return false };
        let inner = self.lock();
        let family = descendants(&unconfirmed(&inner), txid);
        outpoints.iter().any(|o| family.contains(&o.txid) && inner.wallet.get_utxo(*o).is_some())
    }

    /// What makes `tx` unable ever to confirm, if anything: a coin it spends — or that an
    /// unconfirmed transaction it spends from spends, and so on up — spent by another transaction
    /// the wallet holds at least `depth` blocks deep (that coin and that transaction). A
    /// transaction that fell out of bitcoind's mempool and is refused now may still confirm
    /// (other nodes, or its payee, may hold it) until then.
    pub fn conflict_buried(&self, tx: &Transaction, depth: u32) -> Option<(OutPoint, Txid)> {
        let inner = self.lock();
        let tip = inner.wallet.latest_checkpoint().height();
        let graph = inner.wallet.tx_graph();
        // The wallet's history canonicalised once: the height of each confirmed transaction.
        let heights: HashMap<Txid, u32> = inner
            .wallet
            .transactions()
            .filter_map(|t| match t.chain_position {
                ChainPosition::Confirmed { anchor, .. } => Some((t.tx_node.txid, anchor.block_id.height)),
                ChainPosition::Unconfirmed { .. } => None,
            })
            .collect();
        let buried = |txid: Txid| heights.get(&txid).is_some_and(|&h| tip + 1 >= h + depth);
        let confirmed = |txid: Txid| heights.contains_key(&txid);
        let mut todo = vec![(tx.compute_txid(), tx.clone())];
        let mut seen = HashSet::new();
        while let Some((txid, t)) = todo.pop() {
            for o in t.input.iter().map(|i| i.previous_output) {
                if let Some(by) = graph.outspends(o).iter().copied().find(|&by| by != txid && buried(by)) {
                    return Some((o, by));
                }
                if !confirmed(o.txid) && seen.insert(o.txid) {
                    if let Some(parent) = graph.get_tx(o.txid) {
                        todo.push((o.txid, (*parent).clone()));
                    }
                }
            }
        }
        None
    }

    /// A replacement (RBF) of the wallet's unconfirmed `txid` paying `feerate`, or the least a
    /// replacement must pay when that is more (`replacement_fee`: BIP125's rule that it pays
    /// the original's fee plus `step`, bitcoind's incremental relay feerate, on its own size):
    /// the same outputs, the higher fee taken from its change (BDK's fee bump, given the fee,
    /// not a feerate, which BDK would want 1 sat/vB over the original's whatever the node
    /// relays; any extra input is a confirmed one, never one of `avoid`), signed, not broadcast
    /// ([`Treasury::publish`] sends it). Its [`Payout::feerate`] is `feerate`, or what it pays
    /// when the step asked more (its fee over its size). Refused when another unconfirmed
    /// transaction spends from it (it would be evicted: use [`Treasury::prepare_child`]).
    pub fn bump(
        &self,
        txid: &str,
        feerate: Feerate,
        step: Feerate,
        avoid: &[OutPoint],
    ) -> Result<(Transaction, Payout), WalletError> {
        let id = parse_txid(txid)?;
        feerate.fee_rate()?;
        let mut inner = self.lock();
        if descendants(&unconfirmed(&inner), id).len() > 1 {
            return Err(WalletError::Build(format!("{txid} has unconfirmed children: a replacement would evict them")));
        }
        let original = inner.wallet.get_tx(id).map(|t| t.tx_node.tx.clone());
        let fee = original.as_ref().and_then(|t| inner.wallet.calculate_fee(t).ok());
        let (Some(original), Some(old_fee)) = (original, fee) else {
            return Err(WalletError::Build(format!("{txid} is not a transaction of the wallet with a known fee")));
        };
        // Priced on the original's size (the same outputs), then again on what was built when
        // that is larger (an extra input, a longer signature) and the fee falls short of it.
        let mut vsize = original.vsize() as u64;
        for _ in 0..3 {
            let fee = replacement_fee(old_fee.to_sat(), vsize, feerate, step);
            let mut builder =
                inner.wallet.build_fee_bump(id).map_err(|e| WalletError::Build(format!("fee bump: {e}")))?;
            builder.fee_absolute(Amount::from_sat(fee)).unspendable(avoid.to_vec());
            let psbt = builder.finish().map_err(create_tx_error)?;
            let (tx, fee_sat) = inner.sign(psbt)?;
            let built = tx.vsize() as u64;
            if fee_sat >= replacement_fee(old_fee.to_sat(), built, feerate, step) {
                let paid = Feerate::from_sat_per_kvb(fee_sat * 1_000 / built.max(1));
                let payout = Payout { txid: tx.compute_txid(), fee_sat, vsize: built, feerate: feerate.max(paid) };
                return Ok((tx, payout));
            }
            inner.wallet.cancel_tx(&tx);
            vsize = built + 1;
        }
        Err(WalletError::Build(format!("{txid}: no replacement of a stable size could be built")))
    }

    /// Whether `tx`, a transaction of the wallet's, can be bid again ([`Treasury::rebid`]): the
    /// wallet no longer counts it (out of bitcoind's mempool), every coin it spends is one the
    /// wallet holds unspent, and no transaction the wallet knows spends an output of it. Not when
    /// it is counted, replaced by another the wallet counts, or a parent of others.
    pub fn left_behind(&self, tx: &Transaction) -> bool {
        let txid = tx.compute_txid();
        let inner = self.lock();
        if inner.wallet.get_tx(txid).is_some() {
            return false;
        }
        let graph = inner.wallet.tx_graph();
        if (0..tx.output.len()).any(|vout| !graph.outspends(OutPoint::new(txid, vout as u32)).is_empty()) {
            return false;
        }
        let unspent: HashSet<OutPoint> = inner.wallet.list_unspent().map(|u| u.outpoint).collect();
        tx.input.iter().all(|i| unspent.contains(&i.previous_output))
    }

    /// `tx`, a transaction of the wallet's that it no longer counts — out of bitcoind's mempool
    /// and refused when offered again (a floor that rose in a fee spike, a bitcoind restarted
    /// with a higher `minrelaytxfee`) — bid again at `feerate`: the same inputs and the same
    /// outputs but its change, the fee from its change (and from other confirmed coins, never
    /// one of `avoid`, when the change cannot pay it); signed, not broadcast. It spends every coin
    /// `tx` spends, so at most one of them confirms. Refused while the wallet counts `tx` (it is
    /// bumped, [`Treasury::bump`]), when a coin it spends is not one the wallet holds unspent (a
    /// parent gone too, or spent by another), and when a transaction the wallet knows spends an
    /// output of `tx` (that one would be orphaned).
    pub fn rebid(
        &self,
        tx: &Transaction,
        feerate: Feerate,
        avoid: &[OutPoint],
    ) -> Result<(Transaction, Payout), WalletError> {
        let fee_rate = feerate.fee_rate()?;
        let txid = tx.compute_txid();
        if !self.left_behind(tx) {
            return Err(WalletError::Build(format!(
                "{txid} cannot be bid again: the wallet counts it or another spending its coins, or a transaction spends from it"
            )));
        }
        let mut inner = self.lock();
        let change = tx.output.iter().position(|o| {
            matches!(inner.wallet.derivation_of_spk(o.script_pubkey.clone()), Some((KeychainKind::Internal, _)))
        });
        let coins: Vec<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
        // Any other coin it takes is a confirmed one, never one a stored transaction signed away.
        let mut unspendable: Vec<OutPoint> = avoid.iter().filter(|o| !coins.contains(o)).copied().collect();
        let unconfirmed = inner.wallet.list_unspent().filter(|u| !u.chain_position.is_confirmed());
        unspendable.extend(unconfirmed.map(|u| u.outpoint).filter(|o| !coins.contains(o)));
        let mut builder = inner.wallet.build_tx();
        builder.add_utxos(&coins).map_err(|e| WalletError::Build(format!("the coins of {txid}: {e}")))?;
        for (i, o) in tx.output.iter().enumerate() {
            if Some(i) == change {
                builder.drain_to(o.script_pubkey.clone());
            } else {
                builder.add_recipient(o.script_pubkey.clone(), o.value);
            }
        }
        builder.fee_rate(fee_rate).unspendable(unspendable);
        let psbt = builder.finish().map_err(create_tx_error)?;
        let (tx, fee_sat) = inner.sign(psbt)?;
        let payout = Payout { txid: tx.compute_txid(), fee_sat, vsize: tx.vsize() as u64, feerate };
        Ok((tx, payout))
    }

    /// A child (CPFP) that lifts the unconfirmed `txid` to `feerate`: it spends the largest
    /// unspent output of `txid` or of its unconfirmed descendants back to a new change address,
    /// paying what brings that output's ancestor package, itself included, to the feerate.
    /// Signed, not broadcast ([`Treasury::publish`] sends it).
    pub fn prepare_child(&self, txid: &str, feerate: Feerate) -> Result<Child, WalletError> {
        let id = parse_txid(txid)?;
        feerate.fee_rate()?;
        let mut inner = self.lock();
        let pool = unconfirmed(&inner);
        if !pool.contains_key(&id) {
            return Err(WalletError::Build(format!("{txid} is not an unconfirmed transaction of the wallet")));
        }
        let family = descendants(&pool, id);
        let coin = inner
            .wallet
            .list_unspent()
            .filter(|u| family.contains(&u.outpoint.txid))
            .max_by_key(|u| u.txout.value)
            .ok_or_else(|| WalletError::Build(format!("no output of {txid} or its children is left to spend")))?;
        let (pkg_fee, pkg_vsize) = package(&pool, &ancestors(&pool, coin.outpoint.txid));
        let wanted = feerate.fee_sat(pkg_vsize + CHILD_VSIZE);
        let fee = wanted.saturating_sub(pkg_fee).max(CHILD_VSIZE);
        let value = coin.txout.value.to_sat();
        if value < fee + DUST_SAT {
            return Err(WalletError::InsufficientFunds { needed_sat: fee + DUST_SAT, available_sat: value });
        }
        let into = inner.wallet.reveal_next_address(KeychainKind::Internal).address;
        inner.persist()?;
        let mut builder = inner.wallet.build_tx();
        builder.add_utxo(coin.outpoint).map_err(|e| WalletError::Build(format!("child input: {e}")))?;
        builder.manually_selected_only().drain_to(into.script_pubkey()).fee_absolute(Amount::from_sat(fee));
        let psbt = builder.finish().map_err(create_tx_error)?;
        let (tx, fee_sat) = inner.sign(psbt)?;
        let package_sat_kvb = rate_sat_kvb((pkg_fee + fee_sat, pkg_vsize + tx.vsize() as u64));
        Ok(Child { tx, fee_sat, spends: coin.outpoint, package_sat_kvb })
    }
}

/// The fee a replacement of `vsize` vbytes pays for `feerate` when the transaction it replaces
/// paid `old_fee_sat`: what `feerate` asks of it, and at least BIP125's rule 4, the old fee plus
/// `step` (bitcoind's incremental relay feerate, `getnetworkinfo`'s `incrementalfee`: 1 sat/vB
/// before v30, 0.1 since) on the replacement's own size, rounded up as bitcoind rounds it.
pub(crate) fn replacement_fee(old_fee_sat: u64, vsize: u64, feerate: Feerate, step: Feerate) -> u64 {
    let on = |rate: Feerate| (rate.sat_per_kvb().saturating_mul(vsize)).div_ceil(1_000);
    on(feerate).max(old_fee_sat.saturating_add(on(step)))
}

/// Whether another transaction the wallet counts spends an input of `tx` (`tx` replaces it).
pub(crate) fn replaces(inner: &Inner, tx: &Transaction) -> bool {
    !replaced(inner, tx).is_empty()
}

/// The transactions the wallet counts, other than `tx`, that spend an input of `tx`: those `tx`
/// replaces once broadcast.
pub(crate) fn replaced(inner: &Inner, tx: &Transaction) -> Vec<Txid> {
    let txid = tx.compute_txid();
    let spent: HashSet<OutPoint> = tx.input.iter().map(|i| i.previous_output).collect();
    inner
        .wallet
        .transactions()
        .filter(|t| t.tx_node.txid != txid && t.tx_node.tx.input.iter().any(|i| spent.contains(&i.previous_output)))
        .map(|t| t.tx_node.txid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bdk_wallet::bitcoin::Network;
    use bip39::Mnemonic;

    #[test]
    fn a_replacement_pays_what_its_feerate_asks_and_at_least_the_old_fee_plus_the_relay_step() {
        let (tenth, one) = (Feerate::from_sat_per_kvb(100), Feerate::from_sat_per_vb(1));
        // 141 vB paying 330 sat (2.340 sat/vB): at 2.345 sat/vB asked, 331 sat would be the
        // feerate's; bitcoind wants 330 + 14.1 → 345 (0.1 sat/vB since v30), 330 + 141 before.
        let asked = Feerate::from_sat_per_kvb(2_345);
        assert_eq!(replacement_fee(330, 141, asked, tenth), 345);
        assert_eq!(replacement_fee(330, 141, asked, one), 471);
        // Asking well over the old fee: the feerate's fee, rounded up.
        assert_eq!(replacement_fee(330, 141, Feerate::from_sat_per_kvb(5_001), tenth), 706);
        for vsize in (100..3_000u64).step_by(7) {
            for fee in (vsize / 10..vsize * 20).step_by(37) {
                let paid = replacement_fee(fee, vsize, Feerate::from_sat_per_kvb(fee * 1_000 / vsize), tenth);
                assert!((paid - fee) * 10 >= vsize, "BIP125 rule 4: {fee} sat, {vsize} vB → {paid}");
                assert!((paid - fee) * 10 < vsize + 10, "no more than the step asks: {fee} sat, {vsize} vB → {paid}");
            }
        }
    }

    #[test]
    fn only_the_wallets_unconfirmed_transactions_can_be_sped_up() {
        let dir = tempfile::tempdir().unwrap();
        let m = Mnemonic::from_str(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .unwrap();
        let t = Treasury::open(&dir.path().join("wallet.sqlite"), &m, Network::Regtest).unwrap();
        let unknown = "4078d7a47b14b89125c36591b6d788d6af3a6c54a1d3148a8dd951447224b99d";
        assert_eq!(t.pending(unknown), None);
        assert_eq!(t.pending("not a txid"), None);
        assert!(matches!(t.prepare_child(unknown, Feerate::from_sat_per_kvb(0)), Err(WalletError::InvalidFeerate(_))));
        let err = t.prepare_child(unknown, Feerate::from_sat_per_vb(5)).unwrap_err();
        assert!(matches!(err, WalletError::Build(ref why) if why.contains("not an unconfirmed transaction")), "{err}");
        let step = Feerate::from_sat_per_kvb(100);
        assert!(matches!(t.bump("nonsense", Feerate::from_sat_per_vb(5), step, &[]), Err(WalletError::Build(_))));
        // A transaction spending a coin the wallet does not hold is not one it can bid again.
        let stranger = Transaction {
            version: bdk_wallet::bitcoin::transaction::Version::TWO,
            lock_time: bdk_wallet::bitcoin::absolute::LockTime::ZERO,
            input: vec![bdk_wallet::bitcoin::TxIn::default()],
            output: vec![bdk_wallet::bitcoin::TxOut {
                value: Amount::from_sat(1_000),
                script_pubkey: Default::default(),
            }],
        };
        assert!(!t.left_behind(&stranger));
        let err = t.rebid(&stranger, Feerate::from_sat_per_vb(5), &[]).unwrap_err();
        assert!(matches!(err, WalletError::Build(ref why) if why.contains("cannot be bid again")), "{err}");
        assert!(t.transactions().is_empty(), "nothing recorded");
    }
}
