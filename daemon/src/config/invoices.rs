//! `[invoices]`: how receiving judges what arrived.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[invoices]`: what a merchant's invoices accept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvoicesConfig {
    /// How far the amount received may miss the amount asked, in basis points of it, and still
    /// be `paid` without `underpaid` / `overpaid`.
    pub tolerance_bps: u32,
    /// How many days after an invoice closed (expired, or last changed once paid) the on-chain
    /// watcher still reads its address each tick and follows its payments through reorgs; past
    /// it, a payment seen while it is recent (unconfirmed or ≤ 6 confirmations) is still matched
    /// by looking its address up, so the tick's cost follows the open invoices and recent
    /// traffic, not all of history.
    pub watch_days: u32,
}

impl Default for InvoicesConfig {
    fn default() -> Self {
        InvoicesConfig { tolerance_bps: 10, watch_days: 30 }
    }
}

impl InvoicesConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.tolerance_bps > 10_000 {
            return Err(ConfigError::Invalid("invoices.tolerance_bps must be at most 10000 (100%)".into()));
        }
        if self.watch_days > 3_650 {
            return Err(ConfigError::Invalid("invoices.watch_days must be at most 3650".into()));
        }
        Ok(())
    }
}
