//! The wallet's error type: a few categories a caller can act on.

use bdk_wallet::bitcoin::Network;

/// Everything the treasury wallet can refuse or fail at.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The text is not a Bitcoin address at all.
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// A valid address, but for another network than the wallet's.
    #[error("address is for another network (wallet network is {expected})")]
    WrongNetwork {
        /// The wallet's network.
        expected: Network,
    },
    /// Zero, dust, or otherwise unusable amount.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// A feerate outside the accepted range.
    #[error("invalid feerate: {0}")]
    InvalidFeerate(String),
    /// The wallet cannot fund the payout (amount plus fee).
    #[error("insufficient funds: need {needed_sat} sat, {available_sat} sat available")]
    InsufficientFunds {
        /// Sats needed, fee included.
        needed_sat: u64,
        /// Sats the wallet can spend.
        available_sat: u64,
    },
    /// bitcoind could not be reached, or answered with an error.
    #[error("bitcoind: {0}")]
    Chain(String),
    /// bitcoind refused to relay the transaction.
    #[error("broadcast rejected: {0}")]
    Broadcast(String),
    /// The mnemonic or seed file is missing, unreadable or malformed.
    #[error("key material: {0}")]
    Keys(String),
    /// Reading or writing the wallet database failed.
    #[error("wallet storage: {0}")]
    Storage(String),
    /// BDK could not build or sign the transaction for another reason.
    #[error("transaction building: {0}")]
    Build(String),
}

impl From<bdk_bitcoind_rpc::bitcoincore_rpc::Error> for WalletError {
    fn from(e: bdk_bitcoind_rpc::bitcoincore_rpc::Error) -> Self {
        WalletError::Chain(e.to_string())
    }
}

/// How a [`WalletError::Storage`] message starts when the disk holding the wallet is full.
const DISK_FULL: &str = "disk full";

impl WalletError {
    /// The wallet's database could not be written because its disk is full (SQLite's
    /// `SQLITE_FULL`): it clears once space is freed, the staged changes written then.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, WalletError::Storage(m) if m.starts_with(DISK_FULL))
    }
}

impl From<bdk_wallet::rusqlite::Error> for WalletError {
    fn from(e: bdk_wallet::rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(bdk_wallet::rusqlite::ErrorCode::DiskFull) {
            return WalletError::Storage(format!("{DISK_FULL}: {e}"));
        }
        WalletError::Storage(e.to_string())
    }
}
