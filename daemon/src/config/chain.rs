//! `[bitcoind]` (where the node is and how to log in) and `[wallet]` (the treasury: birthday,
//! fee targets and limits).

use serde::{Deserialize, Serialize};

/// `[bitcoind]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BitcoindConfig {
    /// RPC URL; empty means the network's default port on 127.0.0.1.
    pub rpc_url: String,
    /// Path of bitcoind's `.cookie`; empty means `~/.bitcoin/<network dir>/.cookie` unless
    /// `rpc_user` is set.
    pub rpc_cookie: String,
    /// `rpcuser` (with `rpc_password`) instead of the cookie.
    pub rpc_user: String,
    /// `rpcpassword`.
    pub rpc_password: String,
    /// How often to look for new blocks and mempool transactions, in milliseconds.
    pub poll_interval_ms: u64,
}

/// `[wallet]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletConfig {
    /// Height to start scanning from when the wallet is new. A mnemonic Sendero creates itself
    /// starts at the chain tip of its first start instead.
    pub birthday_height: u32,
    /// Confirmation target (blocks) for sends that name no feerate.
    pub default_target_blocks: u16,
    /// Feerate (sat/vB) used when bitcoind has no estimate, as on regtest or a fresh node.
    pub fallback_feerate_sat_vb: u64,
    /// Sends asking for more than this many sat/vB are refused as absurd.
    pub max_feerate_sat_vb: u64,
    /// A CSV of `unix_time,sat_per_vb` feerates over time, used instead of bitcoind's estimates
    /// (regtest, signet, simulators; refused on mainnet). Empty: none.
    pub fee_schedule_file: String,
}

impl Default for BitcoindConfig {
    fn default() -> Self {
        BitcoindConfig {
            rpc_url: String::new(),
            rpc_cookie: String::new(),
            rpc_user: String::new(),
            rpc_password: String::new(),
            poll_interval_ms: 1_000,
        }
    }
}

impl Default for WalletConfig {
    fn default() -> Self {
        WalletConfig {
            birthday_height: 0,
            default_target_blocks: 6,
            fallback_feerate_sat_vb: 2,
            max_feerate_sat_vb: 1_000,
            fee_schedule_file: String::new(),
        }
    }
}
