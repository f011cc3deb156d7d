//! What the treasury received, output by output: the address paid, the amount, whether the
//! transaction is confirmed and at what height, and whether it signals replaceability (BIP125).
//! Spent outputs are listed too, so that a payment counted once is still seen after its coin moved.

use bdk_wallet::bitcoin::Address;
use bdk_wallet::chain::ChainPosition;
use bdk_wallet::KeychainKind;
use serde::Serialize;

use crate::treasury::Treasury;

/// One output paid to one of the treasury's receive addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Received {
    /// `txid:vout`.
    pub outpoint: String,
    /// The transaction.
    pub txid: String,
    /// The address it pays.
    pub address: String,
    /// Value in sats.
    pub amount_sat: u64,
    /// Height of the confirming block, if confirmed.
    pub confirmation_height: Option<u32>,
    /// The transaction signals replaceability (an input's sequence below `0xfffffffe`).
    pub signals_rbf: bool,
}

impl Treasury {
    /// Every output the wallet's receive keychain was paid (spent or not) in a transaction of
    /// the best chain or of the mempool.
    pub fn received(&self) -> Vec<Received> {
        let inner = self.lock();
        let network = self.network();
        let mut out: Vec<Received> = inner
            .wallet
            .list_output()
            .filter(|o| o.keychain == KeychainKind::External)
            .map(|o| {
                let signals_rbf =
                    inner.wallet.get_tx(o.outpoint.txid).is_some_and(|t| t.tx_node.tx.is_explicitly_rbf());
                Received {
                    outpoint: o.outpoint.to_string(),
                    txid: o.outpoint.txid.to_string(),
                    address: Address::from_script(&o.txout.script_pubkey, network)
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                    amount_sat: o.txout.value.to_sat(),
                    confirmation_height: match o.chain_position {
                        ChainPosition::Confirmed { anchor, .. } => Some(anchor.block_id.height),
                        ChainPosition::Unconfirmed { .. } => None,
                    },
                    signals_rbf,
                }
            })
            .collect();
        out.sort_by(|a, b| a.outpoint.cmp(&b.outpoint));
        out
    }
}
