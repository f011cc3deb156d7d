//! The Lightning rail: [`LnRail`] publishes the running node to everything that pays or reads
//! through it (empty until the node has started, and while it restarts). The node's lifecycle is
//! run by [`runner`], its events recorded by [`events`].

pub mod events;
pub mod record;
pub mod runner;

pub use record::{LnPaymentRow, PendingAction, PendingKind, SentByEvent};

use std::sync::{Arc, PoisonError, RwLock};

use sendero_lightning::{LightningError, LightningNode};
use sendero_wallet::WalletError;

use crate::store::StoreError;

/// On-chain sats ldk-node keeps back per anchor channel (its default).
pub const ANCHOR_RESERVE_SAT: u64 = 25_000;

/// Why a Lightning operation could not be done.
#[derive(Debug, thiserror::Error)]
pub enum LnError {
    /// `[lightning] enabled = false`.
    #[error("the Lightning node is disabled in the config")]
    Disabled,
    /// Not started yet (waiting for bitcoind, or starting).
    #[error("the Lightning node is not running yet")]
    NotReady,
    /// The node refused.
    #[error(transparent)]
    Node(#[from] LightningError),
    /// The treasury refused (funding).
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The Lightning rail: whether it is enabled, and the node once it runs (or why it does not yet).
pub struct LnRail {
    enabled: bool,
    node: RwLock<Option<Arc<LightningNode>>>,
    starting: RwLock<Starting>,
}

/// Where the node's start stands while it is not running, for `getinfo` and `/v1/health`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Starting {
    /// bitcoind has not answered yet: the node starts as soon as it does.
    pub(crate) waiting_for_bitcoind: bool,
    /// Starts that failed since the daemon started.
    pub(crate) failed_starts: u32,
    /// Why the last start failed.
    pub(crate) last_error: Option<String>,
    /// When the next start is tried, after a failed one.
    pub(crate) next_attempt: Option<std::time::Instant>,
    /// Times the running node was stopped and started again because its background processing
    /// died (see `runner::run`).
    pub(crate) restarts: u32,
    /// The error it died with, the last time.
    pub(crate) last_failure: Option<String>,
}

impl LnRail {
    /// A rail with no node yet; `enabled` is `[lightning] enabled`.
    pub fn new(enabled: bool) -> LnRail {
        LnRail { enabled, node: RwLock::new(None), starting: RwLock::new(Starting::default()) }
    }

    /// The running node, or why there is none.
    pub fn node(&self) -> Result<Arc<LightningNode>, LnError> {
        if !self.enabled {
            return Err(LnError::Disabled);
        }
        self.node.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or(LnError::NotReady)
    }

    /// Publishes the started node, or withdraws it (`None`) while it stops.
    pub(crate) fn publish(&self, node: Option<Arc<LightningNode>>) {
        *self.node.write().unwrap_or_else(PoisonError::into_inner) = node;
    }

    /// Records where the node's start stands (the runner, while the node is not running).
    pub(crate) fn starting(&self, update: impl FnOnce(&mut Starting)) {
        update(&mut self.starting.write().unwrap_or_else(PoisonError::into_inner));
    }

    /// The node's state for `getinfo` and `/v1/health`: `disabled`; `starting`, with whether it
    /// waits for bitcoind, its failed starts, the last one's error and the seconds to the next
    /// try; or `running` with node id, peers, channels and liquidity. Both also count the node's
    /// restarts after its background processing died, and the last such failure.
    pub fn summary(&self) -> serde_json::Value {
        let s = self.starting.read().unwrap_or_else(PoisonError::into_inner).clone();
        let mut v = match self.node() {
            Ok(n) => {
                let mut v = serde_json::json!(n.info());
                v["state"] = "running".into();
                v
            }
            Err(LnError::Disabled) => return serde_json::json!({ "state": "disabled" }),
            Err(_) => {
                let next = s.next_attempt.map(|at| at.saturating_duration_since(std::time::Instant::now()).as_secs());
                serde_json::json!({
                    "state": "starting",
                    "waiting_for_bitcoind": s.waiting_for_bitcoind,
                    "failed_starts": s.failed_starts,
                    "last_error": s.last_error,
                    "next_attempt_in_s": next,
                })
            }
        };
        (v["restarts"], v["last_failure"]) = (s.restarts.into(), s.last_failure.into());
        v
    }
}

/// Runs a blocking node call off the async threads.
pub async fn blocking_ln<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LightningError> + Send + 'static,
) -> Result<T, LightningError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| LightningError::Failed { operation: "lightning task", reason: e.to_string() })?
}
