//! The treasury wallet: BIP84 keys from the gateway's mnemonic, BDK state in SQLite.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bdk_bitcoind_rpc::{BlockEvent, MempoolEvent};
use bdk_wallet::bitcoin::address::NetworkUnchecked;
use bdk_wallet::bitcoin::{Address, Amount, Block, Network, OutPoint, Transaction, Txid};
use bdk_wallet::chain::{ChainPosition, CheckPoint};
use bdk_wallet::coin_selection::{InsufficientFunds, LargestFirstCoinSelection};
use bdk_wallet::error::CreateTxError;
use bdk_wallet::rusqlite::Connection;
use bdk_wallet::{KeychainKind, PersistedWallet, SignOptions, Wallet};
use bip39::Mnemonic;
use serde::Serialize;

use crate::keys::treasury_descriptors;
use crate::{ChainSource, Feerate, WalletError};

/// The wallet's balance, split as BDK sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Balances {
    /// Confirmed and spendable.
    pub confirmed_sat: u64,
    /// Unconfirmed, from the wallet's own transactions (change).
    pub trusted_pending_sat: u64,
    /// Unconfirmed, received from others.
    pub untrusted_pending_sat: u64,
    /// Coinbase outputs not yet 100 blocks deep.
    pub immature_sat: u64,
}

/// One unspent output of the wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Utxo {
    /// `txid:vout`.
    pub outpoint: String,
    /// Value in sats.
    pub amount_sat: u64,
    /// The address it pays.
    pub address: String,
    /// `receive` or `change`.
    pub keychain: &'static str,
    /// Height of the confirming block, if confirmed.
    pub confirmation_height: Option<u32>,
    /// `p2wpkh`, `p2tr`, `p2sh`, `p2pkh` or `other`.
    pub script_type: &'static str,
    /// Confirmed, and mature when it is a coinbase output: it can be spent now.
    pub spendable: bool,
}

/// One transaction that touches the wallet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxRecord {
    /// Transaction id.
    pub txid: String,
    /// Sats paid to the wallet's own outputs.
    pub received_sat: u64,
    /// Sats taken from the wallet's own outputs.
    pub sent_sat: u64,
    /// Fee, when all inputs are known.
    pub fee_sat: Option<u64>,
    /// Height of the confirming block, if confirmed.
    pub confirmation_height: Option<u32>,
    /// Time of the confirming block, if confirmed (unix seconds).
    pub confirmation_time: Option<u64>,
    /// When the wallet first saw it unconfirmed (unix seconds).
    pub first_seen: Option<u64>,
}

/// One output of a payout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payee {
    /// Destination, already checked for the wallet's network.
    pub address: Address,
    /// Amount in sats.
    pub amount_sat: u64,
}

/// A broadcast payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payout {
    /// Transaction id.
    pub txid: Txid,
    /// Fee paid, in sats.
    pub fee_sat: u64,
    /// Virtual size in vbytes.
    pub vsize: u64,
    /// Feerate asked for (for a consolidation: its fee over its vsize).
    #[serde(rename = "feerate_sat_kvb")]
    pub feerate: Feerate,
}

/// The extra coins a payout swept in besides the ones coin selection chose for it
/// ([`Treasury::prepare_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    /// The coins, in the order asked for.
    pub inputs: Vec<OutPoint>,
    /// What they held, sats.
    pub input_sat: u64,
    /// What they added to the fee, sats: the payout's fee less the fee the same payout pays
    /// without them (same feerate, the coins coin selection chose, the same outputs and change),
    /// 0 when that would be negative.
    pub fee_sat: u64,
}

pub(crate) struct Inner {
    pub(crate) wallet: PersistedWallet<Connection>,
    db: Connection,
}

/// The gateway's on-chain wallet. Cheap to share behind an `Arc`; every call locks briefly.
pub struct Treasury {
    inner: Mutex<Inner>,
    network: Network,
    /// Opened from public descriptors: it signs nothing ([`Treasury::open_watch_only`]).
    watch_only: bool,
}

/// The weight a P2WPKH input's witness adds once signed: the item count, a 71-byte signature
/// with its sighash byte (BDK grinds for a low R) and a 33-byte key, each with its length.
const P2WPKH_WITNESS_WEIGHT: u64 = 1 + 1 + 71 + 1 + 33;

impl Treasury {
    /// Opens the wallet database at `db_path`, creating the wallet on first use.
    pub fn open(db_path: &Path, mnemonic: &Mnemonic, network: Network) -> Result<Arc<Self>, WalletError> {
        let (external, internal) = treasury_descriptors(mnemonic, network)?;
        Self::open_descriptors(db_path, external, internal, network, true)
    }

    /// Opens a watch-only copy of the treasury from its public descriptors
    /// ([`crate::keys::treasury_public_descriptors`]) at `db_path`: it follows the chain, knows
    /// the coins and prices spends, and signs nothing.
    pub fn open_watch_only(
        db_path: &Path,
        external: String,
        internal: String,
        network: Network,
    ) -> Result<Arc<Self>, WalletError> {
        Self::open_descriptors(db_path, external, internal, network, false)
    }

    fn open_descriptors(
        db_path: &Path,
        external: String,
        internal: String,
        network: Network,
        private: bool,
    ) -> Result<Arc<Self>, WalletError> {
        let mut db = Connection::open(db_path)?;
        let load = Wallet::load()
            .descriptor(KeychainKind::External, Some(external.clone()))
            .descriptor(KeychainKind::Internal, Some(internal.clone()))
            .check_network(network);
        let loaded = if private { load.extract_keys() } else { load }
            .load_wallet(&mut db)
            .map_err(|e| WalletError::Storage(format!("load wallet: {e}")))?;
        let wallet = match loaded {
            Some(wallet) => wallet,
            None => Wallet::create(external, internal)
                .network(network)
                .create_wallet(&mut db)
                .map_err(|e| WalletError::Storage(format!("create wallet: {e}")))?,
        };
        Ok(Arc::new(Treasury { inner: Mutex::new(Inner { wallet, db }), network, watch_only: !private }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The wallet's network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Reveals, persists and returns the next receive address.
    pub fn new_address(&self) -> Result<Address, WalletError> {
        let mut inner = self.lock();
        let address = inner.wallet.reveal_next_address(KeychainKind::External).address;
        inner.persist()?;
        Ok(address)
    }

    /// Current balances.
    pub fn balances(&self) -> Balances {
        let b = self.lock().wallet.balance();
        Balances {
            confirmed_sat: b.confirmed.to_sat(),
            trusted_pending_sat: b.trusted_pending.to_sat(),
            untrusted_pending_sat: b.untrusted_pending.to_sat(),
            immature_sat: b.immature.to_sat(),
        }
    }

    /// Height of the last block the wallet has applied.
    pub fn synced_height(&self) -> u32 {
        self.lock().wallet.latest_checkpoint().height()
    }

    /// Unspent outputs, largest first.
    pub fn utxos(&self) -> Vec<Utxo> {
        let inner = self.lock();
        let tip = inner.wallet.latest_checkpoint().height();
        let mut utxos: Vec<Utxo> = inner
            .wallet
            .list_unspent()
            .map(|u| Utxo {
                script_type: script_type(&u.txout.script_pubkey),
                spendable: inner.spendable(&u, tip),
                outpoint: u.outpoint.to_string(),
                amount_sat: u.txout.value.to_sat(),
                address: Address::from_script(&u.txout.script_pubkey, self.network)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                keychain: match u.keychain {
                    KeychainKind::External => "receive",
                    KeychainKind::Internal => "change",
                },
                confirmation_height: match u.chain_position {
                    ChainPosition::Confirmed { anchor, .. } => Some(anchor.block_id.height),
                    ChainPosition::Unconfirmed { .. } => None,
                },
            })
            .collect();
        utxos.sort_by(|a, b| b.amount_sat.cmp(&a.amount_sat).then_with(|| a.outpoint.cmp(&b.outpoint)));
        utxos
    }

    /// Wallet transactions, newest first (unconfirmed ones on top).
    pub fn transactions(&self) -> Vec<TxRecord> {
        let inner = self.lock();
        let mut txs: Vec<TxRecord> = inner.wallet.transactions().map(|wtx| inner.record(&wtx)).collect();
        txs.sort_by(|a, b| {
            let key = |t: &TxRecord| t.confirmation_height.unwrap_or(u32::MAX);
            key(b).cmp(&key(a)).then_with(|| a.txid.cmp(&b.txid))
        });
        txs
    }

    /// One wallet transaction by id.
    pub fn transaction(&self, txid: &str) -> Option<TxRecord> {
        let txid = Txid::from_str(txid).ok()?;
        let inner = self.lock();
        let wtx = inner.wallet.get_tx(txid)?;
        Some(inner.record(&wtx))
    }

    /// Parses `text` as an address of the wallet's network.
    pub fn parse_address(&self, text: &str) -> Result<Address, WalletError> {
        let unchecked = Address::<NetworkUnchecked>::from_str(text.trim())
            .map_err(|e| WalletError::InvalidAddress(format!("{text:?}: {e}")))?;
        unchecked.require_network(self.network).map_err(|_| WalletError::WrongNetwork { expected: self.network })
    }

    /// Builds, signs and broadcasts one transaction paying every payee at `feerate`, then
    /// records it in the wallet. Nothing is recorded when building or broadcasting fails.
    pub fn pay(&self, chain: &ChainSource, payees: &[Payee], feerate: Feerate) -> Result<Payout, WalletError> {
        self.pay_avoiding(chain, payees, feerate, &[])
    }

    /// Like [`Treasury::pay`], never spending a coin of `avoid` (coins a stored transaction
    /// not yet broadcast has signed away).
    pub fn pay_avoiding(
        &self,
        chain: &ChainSource,
        payees: &[Payee],
        feerate: Feerate,
        avoid: &[OutPoint],
    ) -> Result<Payout, WalletError> {
        let (tx, payout) = self.prepare(payees, feerate, avoid)?;
        self.publish(chain, &tx)?;
        Ok(payout)
    }

    /// Builds and signs one transaction paying every payee at `feerate`, spending no coin of
    /// `avoid`; nothing is broadcast or recorded, so the caller can keep it before
    /// [`Treasury::publish`] (a payout resumed after a crash then publishes the same
    /// transaction, never a second one).
    pub fn prepare(
        &self,
        payees: &[Payee],
        feerate: Feerate,
        avoid: &[OutPoint],
    ) -> Result<(Transaction, Payout), WalletError> {
        let mut inner = self.lock();
        let (tx, fee_sat) = inner.build_signed(payees, feerate, avoid)?;
        let payout = Payout { txid: tx.compute_txid(), fee_sat, vsize: tx.vsize() as u64, feerate };
        Ok((tx, payout))
    }

    /// Like [`Treasury::prepare`] (no coin of `avoid`), and the transaction also spends the coins
    /// of `extra` (the wallet's, unspent) that coin selection did not choose: consolidation
    /// inside a payout.
    /// Coin selection first picks the coins for the payees alone, exactly as `prepare` does; the
    /// extra coins are then added to those, their value going to the change. What they add to
    /// the fee is in [`Swept::fee_sat`].
    pub fn prepare_with(
        &self,
        payees: &[Payee],
        feerate: Feerate,
        extra: &[OutPoint],
        avoid: &[OutPoint],
    ) -> Result<(Transaction, Payout, Swept), WalletError> {
        let mut inner = self.lock();
        let base = inner.payout_psbt(payees, feerate, &[], avoid)?;
        let chosen: Vec<OutPoint> = base.unsigned_tx.input.iter().map(|i| i.previous_output).collect();
        let mut inputs: Vec<OutPoint> = Vec::with_capacity(extra.len());
        for o in extra {
            if !chosen.contains(o) && !inputs.contains(o) {
                inputs.push(*o);
            }
        }
        let (psbt, swept) = if inputs.is_empty() {
            (base, Swept::default())
        } else {
            let base_fee = base.fee().map_err(|e| WalletError::Build(format!("fee: {e}")))?.to_sat();
            inner.wallet.cancel_tx(&base.unsigned_tx);
            let input_sat =
                inputs.iter().filter_map(|o| inner.wallet.get_utxo(*o)).map(|u| u.txout.value.to_sat()).sum();
            let psbt = inner.payout_psbt(payees, feerate, &[chosen, inputs.clone()].concat(), &[])?;
            let fee = psbt.fee().map_err(|e| WalletError::Build(format!("fee: {e}")))?.to_sat();
            (psbt, Swept { inputs, input_sat, fee_sat: fee.saturating_sub(base_fee) })
        };
        let (tx, fee_sat) = inner.sign(psbt)?;
        let payout = Payout { txid: tx.compute_txid(), fee_sat, vsize: tx.vsize() as u64, feerate };
        Ok((tx, payout, swept))
    }

    /// Builds and signs one transaction spending exactly `outpoints` (coins of the wallet) into one
    /// new change address, paying `fee_sat`; nothing is broadcast or recorded (a consolidation,
    /// published like a payout with [`Treasury::publish`]).
    pub fn prepare_sweep(&self, outpoints: &[OutPoint], fee_sat: u64) -> Result<(Transaction, Payout), WalletError> {
        if outpoints.len() < 2 {
            return Err(WalletError::InvalidAmount("a consolidation spends at least two coins".into()));
        }
        let mut inner = self.lock();
        let into = inner.wallet.reveal_next_address(KeychainKind::Internal).address;
        inner.persist()?;
        let mut builder = inner.wallet.build_tx();
        builder.add_utxos(outpoints).map_err(|e| WalletError::Build(format!("consolidation input: {e}")))?;
        builder.manually_selected_only().drain_to(into.script_pubkey()).fee_absolute(Amount::from_sat(fee_sat));
        let psbt = builder.finish().map_err(create_tx_error)?;
        let (tx, fee_sat) = inner.sign(psbt)?;
        let vsize = tx.vsize() as u64;
        let feerate = Feerate::from_sat_per_kvb(fee_sat.saturating_mul(1_000).div_ceil(vsize.max(1)));
        let payout = Payout { txid: tx.compute_txid(), fee_sat, vsize, feerate };
        Ok((tx, payout))
    }

    /// Broadcasts a prepared transaction (again, if bitcoind already has it) and records it in
    /// the wallet. When bitcoind refuses it, the wallet forgets it (its change address is free
    /// again, unless it was a replacement).
    pub fn publish(&self, chain: &ChainSource, tx: &Transaction) -> Result<(), WalletError> {
        let mut inner = self.lock();
        match chain.rebroadcast(tx) {
            Ok(_) => {}
            Err(e @ WalletError::Broadcast(_)) => {
                // A refused replacement shares its change address with the transaction it was to
                // replace, which still counts: that address stays used.
                if !crate::bump::replaces(&inner, tx) {
                    inner.wallet.cancel_tx(tx);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        inner.published(tx, unix_now());
        inner.persist()?;
        tracing::info!(txid = %tx.compute_txid(), outputs = tx.output.len(), "payout broadcast");
        Ok(())
    }

    /// The virtual size (vbytes) the payout to `payees` would have if sent now at
    /// `feerate`: its inputs chosen by coin selection, its outputs and change. Nothing is
    /// broadcast or kept.
    pub fn estimate_payout_vsize(&self, payees: &[Payee], feerate: Feerate) -> Result<u64, WalletError> {
        let mut inner = self.lock();
        if self.watch_only {
            // No keys: the unsigned transaction plus each input's witness as signing adds it
            // (and the segwit marker and flag).
            let psbt = inner.payout_psbt(payees, feerate, &[], &[])?;
            let tx = psbt.unsigned_tx;
            inner.wallet.cancel_tx(&tx);
            let weight = tx.weight().to_wu() + 2 + P2WPKH_WITNESS_WEIGHT * tx.input.len() as u64;
            return Ok(weight.div_ceil(4));
        }
        let (tx, _) = inner.build_signed(payees, feerate, &[])?;
        inner.wallet.cancel_tx(&tx);
        Ok(tx.vsize() as u64)
    }

    /// Where a block-by-block sync should start: the wallet's tip and its unconfirmed txs.
    pub(crate) fn sync_start(&self) -> (CheckPoint, Vec<Arc<Transaction>>) {
        let inner = self.lock();
        let unconfirmed = inner
            .wallet
            .transactions()
            .filter(|tx| tx.chain_position.is_unconfirmed())
            .map(|tx| Arc::clone(&tx.tx_node.tx))
            .collect();
        (inner.wallet.latest_checkpoint(), unconfirmed)
    }

    pub(crate) fn apply_block(&self, event: &BlockEvent<Block>) -> Result<(), WalletError> {
        let mut inner = self.lock();
        inner
            .wallet
            .apply_block_connected_to(&event.block, event.block_height(), event.connected_to())
            .map_err(|e| WalletError::Chain(format!("block {} does not connect: {e}", event.block_height())))
    }

    pub(crate) fn apply_mempool(&self, event: MempoolEvent) -> Result<(), WalletError> {
        let mut inner = self.lock();
        inner.wallet.apply_evicted_txs(event.evicted);
        inner.wallet.apply_unconfirmed_txs(event.update);
        inner.persist()
    }

    pub(crate) fn persist(&self) -> Result<(), WalletError> {
        self.lock().persist()
    }
}

impl Inner {
    /// Records `tx`, which bitcoind took at `now`, as seen in the mempool. The originals it
    /// replaces are evicted at `now` first, while the wallet still counts them (BDK evicts only
    /// what it counts): a mempool pass read before the broadcast and applied after it sees an
    /// original at no later than `now`, and an original evicted at `now` stays evicted — else it
    /// could win the same-second tie (larger txid) and be counted instead of the replacement.
    fn published(&mut self, tx: &Transaction, now: u64) {
        let replaced = crate::bump::replaced(self, tx);
        if !replaced.is_empty() {
            self.wallet.apply_evicted_txs(replaced.into_iter().map(|t| (t, now)));
        }
        self.wallet.apply_unconfirmed_txs([(tx.clone(), now)]);
    }

    fn record(&self, wtx: &bdk_wallet::WalletTx<'_>) -> TxRecord {
        let (sent, received) = self.wallet.sent_and_received(&wtx.tx_node.tx);
        let fee = self.wallet.calculate_fee(&wtx.tx_node.tx).ok().map(Amount::to_sat);
        let (height, time, first_seen) = match wtx.chain_position {
            ChainPosition::Confirmed { anchor, .. } => {
                (Some(anchor.block_id.height), Some(anchor.confirmation_time), None)
            }
            ChainPosition::Unconfirmed { first_seen, .. } => (None, None, first_seen),
        };
        TxRecord {
            txid: wtx.tx_node.txid.to_string(),
            received_sat: received.to_sat(),
            sent_sat: sent.to_sat(),
            fee_sat: fee,
            confirmation_height: height,
            confirmation_time: time,
            first_seen,
        }
    }

    pub(crate) fn persist(&mut self) -> Result<(), WalletError> {
        self.wallet.persist(&mut self.db)?;
        Ok(())
    }

    fn build_signed(
        &mut self,
        payees: &[Payee],
        feerate: Feerate,
        avoid: &[OutPoint],
    ) -> Result<(Transaction, u64), WalletError> {
        let psbt = self.payout_psbt(payees, feerate, &[], avoid)?;
        self.sign(psbt)
    }

    /// The unsigned payout to `payees` at `feerate`: from exactly the coins `only` when
    /// some are given, else from the coins coin selection picks, none of `avoid`.
    fn payout_psbt(
        &mut self,
        payees: &[Payee],
        feerate: Feerate,
        only: &[OutPoint],
        avoid: &[OutPoint],
    ) -> Result<bdk_wallet::bitcoin::Psbt, WalletError> {
        if payees.is_empty() {
            return Err(WalletError::InvalidAmount("a payout needs at least one output".into()));
        }
        if let Some(p) = payees.iter().find(|p| p.amount_sat == 0 || Amount::from_sat(p.amount_sat) > Amount::MAX_MONEY)
        {
            return Err(WalletError::InvalidAmount(format!("{} sat is not a payable amount", p.amount_sat)));
        }
        let feerate = feerate.fee_rate()?;
        // Largest coins first, deterministically: the vsize a route quotes is the vsize the payout
        // then has (BDK's default ends in a random draw), and small coins are left for
        // consolidation when fees are low.
        let mut builder = self.wallet.build_tx().coin_selection(LargestFirstCoinSelection);
        if !only.is_empty() {
            builder.add_utxos(only).map_err(|e| WalletError::Build(format!("input: {e}")))?;
            builder.manually_selected_only();
        }
        builder.unspendable(avoid.to_vec());
        for p in payees {
            builder.add_recipient(p.address.script_pubkey(), Amount::from_sat(p.amount_sat));
        }
        builder.fee_rate(feerate);
        builder.finish().map_err(create_tx_error)
    }

    /// Whether `u` can be spent now: confirmed, and 100 blocks deep when it is a coinbase output.
    fn spendable(&self, u: &bdk_wallet::LocalOutput, tip: u32) -> bool {
        let ChainPosition::Confirmed { anchor, .. } = u.chain_position else {
            return false;
        };
        let coinbase = self.wallet.get_tx(u.outpoint.txid).is_some_and(|t| t.tx_node.tx.is_coinbase());
        !coinbase || tip + 1 >= anchor.block_id.height + COINBASE_MATURITY
    }

    /// Signs `psbt`; the transaction and its fee, or the wallet forgets it.
    pub(crate) fn sign(&mut self, mut psbt: bdk_wallet::bitcoin::Psbt) -> Result<(Transaction, u64), WalletError> {
        let finalized = self
            .wallet
            .sign(&mut psbt, SignOptions::default())
            .map_err(|e| WalletError::Build(format!("sign: {e}")))?;
        let fee = psbt.fee().map(Amount::to_sat);
        let tx = psbt.extract_tx_unchecked_fee_rate();
        match (finalized, fee) {
            (true, Ok(fee)) => Ok((tx, fee)),
            _ => {
                self.wallet.cancel_tx(&tx);
                Err(WalletError::Build("transaction could not be fully signed".into()))
            }
        }
    }
}

pub(crate) fn create_tx_error(e: CreateTxError) -> WalletError {
    match e {
        CreateTxError::CoinSelection(InsufficientFunds { needed, available }) => {
            WalletError::InsufficientFunds { needed_sat: needed.to_sat(), available_sat: available.to_sat() }
        }
        CreateTxError::OutputBelowDustLimit(i) => {
            WalletError::InvalidAmount(format!("output {i} is below the dust limit"))
        }
        CreateTxError::NoUtxosSelected => WalletError::InsufficientFunds { needed_sat: 0, available_sat: 0 },
        CreateTxError::FeeRateTooLow { required } => {
            WalletError::InvalidFeerate(format!("below the minimum {required}"))
        }
        other => WalletError::Build(other.to_string()),
    }
}

/// Blocks before a coinbase output can be spent.
const COINBASE_MATURITY: u32 = 100;

/// The kind of script a coin is locked with.
fn script_type(script: &bdk_wallet::bitcoin::Script) -> &'static str {
    if script.is_p2wpkh() {
        "p2wpkh"
    } else if script.is_p2tr() {
        "p2tr"
    } else if script.is_p2sh() {
        "p2sh"
    } else if script.is_p2pkh() {
        "p2pkh"
    } else {
        "other"
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn treasury(dir: &Path) -> Arc<Treasury> {
        let m = Mnemonic::from_str(
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        )
        .unwrap();
        Treasury::open(&dir.join("wallet.sqlite"), &m, Network::Regtest).unwrap()
    }

    #[test]
    fn addresses_survive_reopen_and_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let first = treasury(dir.path()).new_address().unwrap();
        let t = treasury(dir.path());
        let second = t.new_address().unwrap();
        assert_ne!(first, second);
        assert!(first.to_string().starts_with("bcrt1q"));
    }

    #[test]
    fn address_checks_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let t = treasury(dir.path());
        assert!(matches!(t.parse_address("not-an-address"), Err(WalletError::InvalidAddress(_))));
        assert!(matches!(
            t.parse_address("bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu"),
            Err(WalletError::WrongNetwork { expected: Network::Regtest })
        ));
        let own = t.new_address().unwrap().to_string();
        assert_eq!(t.parse_address(&format!(" {own} ")).unwrap().to_string(), own);
    }

    /// 100,000 sat to the wallet in block 1, built here (the wallet checks no proof of work).
    fn funded(t: &Treasury) {
        use bdk_wallet::bitcoin::block::{Header, Version};
        use bdk_wallet::bitcoin::hashes::Hash;
        use bdk_wallet::bitcoin::{absolute, transaction, CompactTarget, TxIn, TxMerkleNode, TxOut};
        use bdk_wallet::chain::BlockId;
        let to = t.new_address().unwrap().script_pubkey();
        let fund = Transaction {
            version: transaction::Version::TWO,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn { previous_output: OutPoint::new(Txid::from_byte_array([7; 32]), 0), ..TxIn::default() }],
            output: vec![TxOut { value: Amount::from_sat(100_000), script_pubkey: to }],
        };
        let mut inner = t.lock();
        let genesis = inner.wallet.latest_checkpoint().block_id();
        let header = Header {
            version: Version::TWO,
            prev_blockhash: genesis.hash,
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        };
        let block = Block { header, txdata: vec![fund] };
        inner.wallet.apply_block_connected_to(&block, 1, BlockId { height: 0, hash: genesis.hash }).unwrap();
    }

    /// A mempool pass reads bitcoind's mempool (the original still in it), bitcoind takes the
    /// replacement, the wallet records it, then the pass is applied — all in one second: the
    /// wallet counts the replacement, not the original (which, seen in the same second as the
    /// replacement, would win the tie when its txid is the larger, as it is here).
    #[test]
    fn a_replacement_stays_counted_over_a_mempool_pass_read_before_its_broadcast() {
        let dir = tempfile::tempdir().unwrap();
        let t = treasury(dir.path());
        funded(&t);
        let payee = Payee { address: t.new_address().unwrap(), amount_sat: 40_000 };
        let (original, _) = t.prepare(&[payee], Feerate::from_sat_per_vb(2), &[]).unwrap();
        let first = original.compute_txid();
        t.lock().published(&original, 98);
        let step = Feerate::from_sat_per_kvb(100);
        let replacement = (3..60)
            .find_map(|vb| {
                let (tx, _) = t.bump(&first.to_string(), Feerate::from_sat_per_vb(vb), step, &[]).unwrap();
                let smaller = tx.compute_txid() < first;
                if !smaller {
                    t.lock().wallet.cancel_tx(&tx);
                }
                smaller.then_some(tx)
            })
            .expect("a replacement whose txid is the smaller");
        let second = replacement.compute_txid();
        t.lock().published(&replacement, 100);
        assert!(t.pending(&second.to_string()).is_some());
        t.apply_mempool(MempoolEvent { update: vec![(Arc::new(original), 100)], evicted: vec![] }).unwrap();
        assert!(t.pending(&second.to_string()).is_some(), "the replacement is still counted");
        assert!(t.pending(&first.to_string()).is_none(), "the original is not");
        let txids: Vec<String> = t.transactions().into_iter().map(|r| r.txid).collect();
        assert!(txids.contains(&second.to_string()) && !txids.contains(&first.to_string()), "{txids:?}");
    }

    #[test]
    fn an_empty_wallet_refuses_to_pay_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let t = treasury(dir.path());
        let to = Payee { address: t.new_address().unwrap(), amount_sat: 10_000 };
        let err = t.estimate_payout_vsize(std::slice::from_ref(&to), Feerate::from_sat_per_vb(2)).unwrap_err();
        assert!(matches!(err, WalletError::InsufficientFunds { available_sat: 0, .. }), "{err}");
        let err = t.prepare_with(std::slice::from_ref(&to), Feerate::from_sat_per_kvb(2_345), &[], &[]).unwrap_err();
        assert!(matches!(err, WalletError::InsufficientFunds { available_sat: 0, .. }), "{err}");
        let zero = Payee { amount_sat: 0, ..to };
        assert!(matches!(
            t.estimate_payout_vsize(&[zero], Feerate::from_sat_per_vb(2)),
            Err(WalletError::InvalidAmount(_))
        ));
        assert!(matches!(t.prepare_sweep(&[], 100), Err(WalletError::InvalidAmount(_))));
        assert!(t.utxos().is_empty());
        assert!(t.transactions().is_empty());
        assert_eq!(t.balances(), Balances::default());
    }
}
