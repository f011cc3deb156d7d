//! The processes of a gateway on PostgreSQL (`--role`): the node, which holds the store's node
//! lock while it runs, and the front ends, which serve the API from a watch-only treasury the
//! node publishes.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{following_the_chain, prune_idempotency, write_quotes, Boot, DaemonError};
use crate::state::AppState;
use crate::store::Store;
use crate::supervise::Tasks;

/// What a senderod process does (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Role {
    /// The whole gateway in one process.
    #[default]
    All,
    /// The whole gateway, as the one node of a PostgreSQL store: it holds the store's node lock
    /// (a second node waits as a standby and takes over when the first is gone).
    Node,
    /// A front end of a PostgreSQL store: the public HTTP API (quotes from its own rate cache,
    /// on-chain routes priced from a watch-only copy of the treasury and bitcoind, submits,
    /// reads) and the admin RPC's reads; the node role carries out what it accepts, and answers
    /// what only it can (Lightning routes and submits, new invoices), handed to its API. Runs
    /// many times, each with a data dir of its own and no mnemonic.
    Api,
}

/// The store's record of the treasury's public descriptors (written by the node, read by the
/// front ends' watch-only copies).
pub(super) const TREASURY_DESCRIPTORS: &str = "treasury_public_descriptors";

/// The treasury's public descriptors as the node published them; waits (saying so once) until
/// a node has started on this store.
pub(super) async fn published_descriptors(store: &Store) -> Result<(String, String), DaemonError> {
    let mut said = false;
    loop {
        let published = store.meta(TREASURY_DESCRIPTORS)?;
        if let Some(pair) = published.and_then(|text| serde_json::from_str::<(String, String)>(&text).ok()) {
            return Ok(pair);
        }
        if !said {
            tracing::warn!("waiting for a node (senderod --role node) to start on this store and publish the treasury");
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A front end's tasks: its watch-only treasury following the chain, its rate cache, the
/// idempotency pruner and the quote writer. The node carries out the payouts.
pub(super) fn spawn_front_end_tasks(state: &AppState, boot: Boot, cancel: &CancellationToken) -> Tasks {
    let mut tasks = following_the_chain(state, boot.start_height, boot.status_tx, cancel);
    tasks.spawn("fx sources", crate::fx::sources::run(Arc::clone(&state.fx), boot.fx_sources, cancel.clone()));
    tasks.spawn("idempotency pruner", prune_idempotency(state.clone(), cancel.clone()));
    tasks.spawn("quote writer", write_quotes(Arc::clone(&state.store), cancel.clone()));
    // The node's reserve refusals, as it publishes them; its rails' record and the operator's
    // rail rules, as it keeps them.
    tasks.spawn("treasury guard", Arc::clone(&state.guard).run(cancel.clone()));
    tasks.spawn("routing statistics", follow_routing(state.clone(), cancel.clone()));
    tracing::info!("front end (--role api): the node carries out the payouts this process accepts");
    tasks
}

/// How often a front end reads the rails' record and the rail rules again.
const ROUTING_EVERY: Duration = Duration::from_secs(5);

/// A front end's routing statistics and the operator's pins and disabled rails, read again from
/// the books every few seconds: the node records every outcome there, and `routing.pin` /
/// `routing.disable` on the node reach every front end within [`ROUTING_EVERY`].
async fn follow_routing(state: AppState, cancel: CancellationToken) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(ROUTING_EVERY) => {}
        }
        let (store, tuning) = (Arc::clone(&state.store), state.config.routing.tuning());
        match tokio::task::spawn_blocking(move || store.load_learner(&tuning)).await {
            Ok(Ok(learner)) => {
                *state.router.learner.lock() = learner;
                failing = false;
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "reading the node's routing statistics failed; tried again");
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(error = %e, "reading the node's routing statistics"),
        }
    }
}

/// Checks the node lock until shutdown; ends (stopping senderod) when it is lost.
pub(super) async fn hold_node_lock(lock: Arc<crate::store::NodeLock>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(crate::store::NODE_LOCK_POLL) => {}
        }
        let check = Arc::clone(&lock);
        match tokio::task::spawn_blocking(move || check.check()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "node lock lost");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "checking the node lock");
                return;
            }
        }
    }
}
