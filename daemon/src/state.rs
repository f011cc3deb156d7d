//! What every API and admin handler can reach: the config, the wallet, bitcoind, the store and
//! the follower's latest status.

use std::sync::Arc;

use sendero_wallet::bitcoin::Network;
use tokio::sync::watch;

use crate::config::Config;
use crate::follower::ChainStatus;
use crate::ln::LnSlot;
use crate::rails::onchain::Onchain;
use crate::store::Store;

/// What every handler shares; one pointer, so cloning it per request costs one atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Shares `shared`.
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// The checked configuration.
    pub config: Arc<Config>,
    /// The chain this gateway runs on.
    pub network: Network,
    /// The on-chain rail: the treasury wallet and bitcoind behind one spend lock.
    pub onchain: Arc<Onchain>,
    /// Sendero's own store.
    pub store: Arc<Store>,
    /// Latest bitcoind / wallet-sync status.
    pub status: watch::Receiver<ChainStatus>,
    /// The Lightning node, once it runs.
    pub lightning: LnSlot,
    /// Hot FX rates.
    pub fx: Arc<crate::fx::RateCache>,
    /// Wakes the payment saga: a payment was submitted, or the Lightning node told a payment's outcome.
    pub payments_wake: Arc<tokio::sync::Notify>,
    /// Wakes the webhook sender (an outbox event was written).
    pub webhooks_wake: Arc<tokio::sync::Notify>,
    /// What the router has learned of each rail, and the operator's rail rules.
    pub learner: Arc<std::sync::Mutex<crate::route::learn::Learner>>,
}

impl Shared {
    /// The learner, locked (a panic elsewhere does not poison it for good).
    pub fn learner(&self) -> std::sync::MutexGuard<'_, crate::route::learn::Learner> {
        self.learner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
