//! Crash points for tests: on regtest only, `SENDERO_FAILPOINT=<name>` makes the process abort
//! (as abruptly as a SIGKILL) when it reaches the named point — e.g. `batch.signed` (a batch
//! written, not yet broadcast), `onchain.signed` (the same for a single on-chain payout),
//! `onchain.fee_released` (a single on-chain payout's wait for fees released, not yet built),
//! `batch.broadcast` (broadcast, not yet recorded), `onchain.renewed` / `batch.renewed` (a
//! payout or batch whose transaction can never confirm built again and stored, not yet
//! broadcast), `lightning.sent` (a Lightning payout sent by
//! the node, its `sent` step not yet stored) or
//! `payment.committed` (a submitted payout stored, its client not answered). Anywhere else the
//! points do nothing.

use std::sync::OnceLock;

use sendero_wallet::bitcoin::Network;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// Reads `SENDERO_FAILPOINT` once at start; ignored unless `network` is regtest.
pub fn arm(network: Network) {
    let armed = std::env::var("SENDERO_FAILPOINT").ok().filter(|_| network == Network::Regtest);
    if let Some(name) = &armed {
        tracing::warn!(failpoint = %name, "regtest failpoint armed: the process aborts when it is reached");
    }
    let _ = ARMED.set(armed);
}

/// Aborts the process if `name` is the armed point.
pub fn hit(name: &str) {
    if ARMED.get().and_then(Option::as_deref) == Some(name) {
        tracing::error!(failpoint = name, "failpoint reached: aborting");
        std::process::abort();
    }
}
