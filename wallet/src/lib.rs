//! Sendero's on-chain treasury: a BDK wallet whose keys come from the gateway's BIP39 mnemonic,
//! persisted in SQLite and kept in step with bitcoind over RPC.
//!
//! The crate knows nothing of the daemon: it offers [`Treasury`] (addresses, balances, UTXOs,
//! history, payouts), [`ChainSource`] (a bitcoind RPC client with fee estimation and broadcast),
//! [`Follower`] (block + mempool sync) and the mnemonic helpers in [`keys`].

mod bump;
mod chain;
mod error;
mod feerate;
pub mod keys;
mod receive;
mod sync;
mod treasury;

pub use bdk_wallet::bitcoin;
pub use bump::{Child, Pending, CHILD_VSIZE};
pub use chain::{below_floor, BitcoindAuth, ChainInfo, ChainSource, FeeEstimate, FeeSource};
pub use error::WalletError;
pub use feerate::Feerate;
pub use receive::Received;
pub use sync::{Follower, SyncReport};
pub use treasury::{Balances, Payee, Payout, Swept, Treasury, TxRecord, Utxo};
