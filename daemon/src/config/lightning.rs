//! `[lightning]`: the embedded node (on or off, listen address, alias, funding headroom).

use serde::{Deserialize, Serialize};

/// `[lightning]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LightningConfig {
    /// Run the embedded Lightning node.
    pub enabled: bool,
    /// P2P address the node listens on.
    pub listen: String,
    /// Public alias (up to 32 bytes); needed to open announced channels.
    pub alias: String,
    /// Extra sats sent to the node's wallet, above channel amount and anchor reserve, when
    /// `ln.open_channel` funds it from the treasury (pays the funding transaction's fee).
    pub funding_fee_headroom_sat: u64,
}

impl Default for LightningConfig {
    fn default() -> Self {
        LightningConfig {
            enabled: true,
            listen: "127.0.0.1:9735".into(),
            alias: String::new(),
            funding_fee_headroom_sat: 10_000,
        }
    }
}
