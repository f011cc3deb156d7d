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
}

impl Default for InvoicesConfig {
    fn default() -> Self {
        InvoicesConfig { tolerance_bps: 10 }
    }
}

impl InvoicesConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.tolerance_bps > 10_000 {
            return Err(ConfigError::Invalid("invoices.tolerance_bps must be at most 10000 (100%)".into()));
        }
        Ok(())
    }
}
