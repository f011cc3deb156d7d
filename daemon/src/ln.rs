//! The Lightning node inside senderod: started once bitcoind answers (retrying with backoff),
//! funded from the treasury, its events recorded in the store and always acknowledged, and channel
//! opens that wait for their funding carried out when it confirms.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use sendero_lightning::{Event, LightningConfig, LightningError, LightningNode};
use sendero_wallet::{BitcoindAuth, Payee, WalletError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::store::{LnPaymentRow, PendingAction, PendingKind, Store, StoreError};

/// On-chain sats ldk-node keeps back per anchor channel (its default).
pub const ANCHOR_RESERVE_SAT: u64 = 25_000;

/// Where the running node is published for handlers; empty until it has started (and while it
/// restarts).
pub type LnSlot = Arc<RwLock<Option<Arc<LightningNode>>>>;

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

/// The running node, or why there is none.
pub fn node(ctx: &AppState) -> Result<Arc<LightningNode>, LnError> {
    if !ctx.config.lightning.enabled {
        return Err(LnError::Disabled);
    }
    ctx.lightning.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or(LnError::NotReady)
}

/// The node's state for `getinfo` and `/v1/health`: `disabled`, `starting`, or `running` with
/// node id, peers, channels and liquidity.
pub fn summary(ctx: &AppState) -> serde_json::Value {
    match node(ctx) {
        Ok(n) => {
            let mut v = serde_json::json!(n.info());
            v["state"] = "running".into();
            v
        }
        Err(LnError::Disabled) => serde_json::json!({ "state": "disabled" }),
        Err(_) => serde_json::json!({ "state": "starting" }),
    }
}

/// Runs the node until `cancel`: start (once bitcoind answers), then events and pending actions.
/// ldk-node takes bitcoind's credentials once, so when bitcoind's cookie changes (bitcoind
/// restarted) the node is stopped and built again with the new one.
pub async fn run(ctx: AppState, rpc: (String, BitcoindAuth), seed: [u8; 64], cancel: CancellationToken) {
    loop {
        let Some((node, creds)) = start_when_possible(&ctx, &rpc, seed, &cancel).await else { return };
        *ctx.lightning.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&node));
        let restart = serve_node(&ctx, &node, &rpc.1, &creds, &cancel).await;
        *ctx.lightning.write().unwrap_or_else(PoisonError::into_inner) = None;
        let stopping = Arc::clone(&node);
        let _ = tokio::task::spawn_blocking(move || stopping.stop()).await;
        if !restart {
            return;
        }
        tracing::warn!("bitcoind's RPC cookie changed (bitcoind restarted): restarting the lightning node");
    }
}

/// Events and pending actions until `cancel` (returns false) or new bitcoind credentials (true).
async fn serve_node(
    ctx: &AppState,
    node: &Arc<LightningNode>,
    auth: &BitcoindAuth,
    creds: &(String, String),
    cancel: &CancellationToken,
) -> bool {
    let tick = Duration::from_millis(ctx.config.bitcoind.poll_interval_ms.max(100));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return false,
            event = node.next_event() => {
                // Recording may wait on SQLite; keep it off the async threads.
                let (store, n, wake) = (Arc::clone(&ctx.store), Arc::clone(node), Arc::clone(&ctx.payments_wake));
                if let Err(e) = tokio::task::spawn_blocking(move || handle_event(&store, &n, &wake, event)).await {
                    tracing::error!(error = %e, "lightning event task failed");
                }
            }
            _ = tokio::time::sleep(tick) => {
                process_pending(ctx, node).await;
                if read_credentials(auth).is_ok_and(|now| &now != creds) {
                    return true;
                }
            }
        }
    }
}

async fn start_when_possible(
    ctx: &AppState,
    rpc: &(String, BitcoindAuth),
    seed: [u8; 64],
    cancel: &CancellationToken,
) -> Option<(Arc<LightningNode>, (String, String))> {
    let mut backoff = Duration::from_secs(1);
    loop {
        if ctx.status.borrow().reachable {
            match node_config(ctx, rpc, seed) {
                Ok(config) => {
                    let creds = (config.rpc_user.clone(), config.rpc_password.clone());
                    match tokio::task::spawn_blocking(move || LightningNode::start(config)).await {
                        Ok(Ok(node)) => return Some((Arc::new(node), creds)),
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "lightning node did not start")
                        }
                        Err(e) => tracing::error!(error = %e, "lightning node start panicked"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "lightning node config"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn node_config(ctx: &AppState, rpc: &(String, BitcoindAuth), seed: [u8; 64]) -> Result<LightningConfig, String> {
    let (url, auth) = rpc;
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').ok_or_else(|| format!("bitcoind rpc_url {url:?} has no port"))?;
    let port = port.parse().map_err(|_| format!("bitcoind rpc_url {url:?}: bad port"))?;
    let (user, password) = read_credentials(auth)?;
    let ln = &ctx.config.lightning;
    Ok(LightningConfig {
        network: ctx.network,
        storage_dir: ctx.config.datadir.join("lightning"),
        rpc_host: host.to_owned(),
        rpc_port: port,
        rpc_user: user,
        rpc_password: password,
        listen: vec![ln.listen.clone()],
        alias: (!ln.alias.is_empty()).then(|| ln.alias.clone()),
        seed,
    })
}

/// bitcoind's RPC user and password: as configured, or read from its cookie file now.
fn read_credentials(auth: &BitcoindAuth) -> Result<(String, String), String> {
    match auth {
        BitcoindAuth::UserPass(u, p) => Ok((u.clone(), p.clone())),
        BitcoindAuth::Cookie(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cookie {}: {e}", path.display()))?;
            let (u, p) = text.trim().split_once(':').ok_or("malformed bitcoind cookie")?;
            Ok((u.to_owned(), p.to_owned()))
        }
    }
}

/// Records what matters of `event`, wakes the payment saga when the event is a payment's outcome
/// (the payout it belongs to settles or fails now, not on the saga's next tick), then acknowledges
/// the event — on every path: a recording failure is logged, never allowed to stall the node.
pub fn handle_event(store: &Store, node: &LightningNode, payments_wake: &Notify, event: Event) {
    if let Err(e) = record_event(store, node, &event) {
        tracing::error!(error = %e, ?event, "lightning event not recorded; acknowledging it anyway");
    }
    // The node's own record already holds the outcome, and now ours does too (the saga's fallback).
    if matches!(event, Event::PaymentSuccessful { .. } | Event::PaymentFailed { .. }) {
        payments_wake.notify_one();
    }
    if let Err(e) = node.event_handled() {
        tracing::error!(error = %e, "lightning event_handled failed");
    }
}

fn record_event(store: &Store, node: &LightningNode, event: &Event) -> Result<(), StoreError> {
    match event {
        Event::PaymentSuccessful { .. } | Event::PaymentFailed { .. } | Event::PaymentReceived { .. } => {
            record_payment(store, node, event)
        }
        other => record_channel(store, other),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|x| format!("{x:02x}")).collect()
}

/// A payment's outcome (sent, failed, received) in the node's events table.
fn record_payment(store: &Store, node: &LightningNode, event: &Event) -> Result<(), StoreError> {
    let now = crate::unix_now();
    let row = match event {
        Event::PaymentSuccessful { payment_id, payment_hash, fee_paid_msat, .. } => {
            let id = payment_id.map(|p| hex(&p.0)).unwrap_or_else(|| hex(&payment_hash.0));
            let amount = node.payment(&id).and_then(|p| p.amount_msat);
            tracing::info!(payment_id = %id, amount_msat = ?amount, fee_paid_msat = ?fee_paid_msat, "lightning payment sent");
            payment_row(id, "outbound", "succeeded", amount, *fee_paid_msat, Some(hex(&payment_hash.0)))
        }
        Event::PaymentFailed { payment_id, payment_hash, reason } => {
            let id = payment_id.map(|p| hex(&p.0)).or_else(|| payment_hash.map(|h| hex(&h.0))).unwrap_or_default();
            tracing::warn!(payment_id = %id, ?reason, "lightning payment failed");
            let amount = node.payment(&id).and_then(|p| p.amount_msat);
            payment_row(id, "outbound", "failed", amount, None, payment_hash.map(|h| hex(&h.0)))
        }
        Event::PaymentReceived { payment_id, payment_hash, amount_msat, .. } => {
            let id = payment_id.map(|p| hex(&p.0)).unwrap_or_else(|| hex(&payment_hash.0));
            tracing::info!(payment_id = %id, amount_msat, "lightning payment received");
            payment_row(id, "inbound", "succeeded", Some(*amount_msat), None, Some(hex(&payment_hash.0)))
        }
        _ => return Ok(()),
    };
    store.record_ln_payment(&row, now)
}

/// A channel's step (pending, ready, closed, spliced) and the ledger movement it starts.
fn record_channel(store: &Store, event: &Event) -> Result<(), StoreError> {
    let now = crate::unix_now();
    match event {
        Event::ChannelPending { channel_id, counterparty_node_id, funding_txo, .. } => {
            tracing::info!(%channel_id, peer = %counterparty_node_id, %funding_txo, "channel pending");
            let (id, txo) = (channel_id.to_string(), funding_txo.to_string());
            store.record_ln_channel(&id, &counterparty_node_id.to_string(), "pending", Some(&txo), now)?;
            store.ln_movement("open", &id, Some(&funding_txo.txid.to_string()), now)
        }
        Event::ChannelReady { channel_id, counterparty_node_id, funding_txo, .. } => {
            tracing::info!(%channel_id, "channel ready");
            let peer = counterparty_node_id.map(|p| p.to_string()).unwrap_or_default();
            let txo = funding_txo.map(|o| o.to_string());
            store.record_ln_channel(&channel_id.to_string(), &peer, "ready", txo.as_deref(), now)
        }
        Event::ChannelClosed { channel_id, counterparty_node_id, reason, .. } => {
            tracing::info!(%channel_id, ?reason, "channel closed");
            let (id, peer) = (channel_id.to_string(), counterparty_node_id.map(|p| p.to_string()).unwrap_or_default());
            let reason = reason.as_ref().map(|r| format!("{r:?}")).unwrap_or_else(|| "unknown".into());
            crate::alarm::channel_closed(store, &id, &peer, &reason)?;
            store.record_ln_channel(&id, &peer, "closed", None, now)?;
            store.ln_movement("close", &id, None, now)
        }
        Event::SplicePending { channel_id, counterparty_node_id, new_funding_txo, .. } => {
            tracing::info!(%channel_id, %new_funding_txo, "splice pending");
            let (id, txo, txid) =
                (channel_id.to_string(), new_funding_txo.to_string(), new_funding_txo.txid.to_string());
            store.record_ln_channel(&id, &counterparty_node_id.to_string(), "splice_pending", Some(&txo), now)?;
            store.ln_transfer_broadcast(&id, &txid)?;
            store.ln_movement("splice", &id, Some(&txid), now)
        }
        Event::SpliceFailed { channel_id, counterparty_node_id, .. } => {
            tracing::warn!(%channel_id, "splice failed");
            let id = channel_id.to_string();
            store.ln_transfer_abandoned(&id)?;
            store.record_ln_channel(&id, &counterparty_node_id.to_string(), "ready", None, now)
        }
        other => {
            tracing::debug!(event = ?other, "lightning event");
            Ok(())
        }
    }
}

fn payment_row(
    payment_id: String,
    direction: &'static str,
    status: &'static str,
    amount_msat: Option<u64>,
    fee_paid_msat: Option<u64>,
    payment_hash: Option<String>,
) -> LnPaymentRow {
    LnPaymentRow { payment_id, direction, status, amount_msat, fee_paid_msat, payment_hash }
}

/// Moves `amount_sat` from the treasury to the node's on-chain wallet; returns the txid.
pub async fn fund(ctx: &AppState, amount_sat: u64) -> Result<String, LnError> {
    let node = node(ctx)?;
    let address = blocking_ln(move || node.new_onchain_address()).await?;
    let fee = ctx.onchain.default_estimate().await?;
    let payout = ctx.onchain.pay(Payee { address, amount_sat }, fee.sat_per_vb).await?;
    let txid = payout.txid.to_string();
    tracing::info!(%txid, amount_sat, fee_sat = payout.fee_sat, "treasury funded the lightning wallet");
    // Posted now; should this fail or the process die first, the next import finds the
    // transaction in both wallets and posts it then.
    if let Err(e) = ctx.store.ln_transfer_to_node(&txid, amount_sat, payout.fee_sat, crate::unix_now()) {
        tracing::error!(error = %e, %txid, "posting the transfer to the lightning node; the next ledger import will");
    }
    Ok(txid)
}

/// A channel open request.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    /// Peer node id.
    pub node_id: String,
    /// Peer `host:port`.
    pub address: String,
    /// Channel amount.
    pub amount_sat: u64,
    /// Pushed to the peer.
    pub push_msat: Option<u64>,
    /// Announce the channel.
    pub announce: bool,
}

/// How an open went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Started now (`ChannelPending` / `SplicePending` follows).
    Opening {
        /// ldk-node's user channel id (opens) or the channel id (splices).
        user_channel_id: String,
    },
    /// The treasury is funding the node first; the action happens once that confirms.
    AwaitingFunding {
        /// Pending open id.
        pending_id: i64,
        /// The treasury's transfer.
        funding_txid: String,
    },
}

/// Opens a channel, funding the node from the treasury first when its own wallet is short.
pub async fn open_channel(ctx: &AppState, req: OpenRequest) -> Result<Opened, LnError> {
    let node = node(ctx)?;
    let spendable = node.balance().onchain_spendable_sat;
    let needed = req.amount_sat + ANCHOR_RESERVE_SAT;
    if spendable >= needed {
        let n = Arc::clone(&node);
        let r = req.clone();
        let ucid =
            blocking_ln(move || n.open_channel(&r.node_id, &r.address, r.amount_sat, r.push_msat, r.announce)).await?;
        return Ok(Opened::Opening { user_channel_id: ucid });
    }
    // Check the peer's id and address before any money moves.
    node.check_peer(&req.node_id, &req.address)?;
    let shortfall = needed - spendable + ctx.config.lightning.funding_fee_headroom_sat;
    let kind = PendingKind::Open {
        node_id: req.node_id,
        address: req.address,
        push_msat: req.push_msat,
        announce: req.announce,
    };
    let (pending_id, funding_txid) = fund_then(ctx, kind, req.amount_sat, shortfall).await?;
    Ok(Opened::AwaitingFunding { pending_id, funding_txid })
}

/// Splices `amount_sat` into a channel, funding the node from the treasury first when its own
/// wallet is short (the splice then happens once that transfer confirms).
pub async fn splice_in(ctx: &AppState, channel_id: String, amount_sat: u64) -> Result<Opened, LnError> {
    let node = node(ctx)?;
    node.check_channel(&channel_id)?;
    let headroom = ctx.config.lightning.funding_fee_headroom_sat;
    let spendable = node.balance().onchain_spendable_sat;
    if spendable >= amount_sat + headroom {
        let id = channel_id.clone();
        blocking_ln(move || node.splice_in(&id, amount_sat)).await?;
        return Ok(Opened::Opening { user_channel_id: channel_id });
    }
    let shortfall = amount_sat + headroom - spendable;
    let (pending_id, funding_txid) =
        fund_then(ctx, PendingKind::SpliceIn { channel_id }, amount_sat, shortfall).await?;
    Ok(Opened::AwaitingFunding { pending_id, funding_txid })
}

/// Sends `shortfall` from the treasury to the node and queues `kind` until it confirms.
async fn fund_then(
    ctx: &AppState,
    kind: PendingKind,
    amount_sat: u64,
    shortfall: u64,
) -> Result<(i64, String), LnError> {
    let funding_txid = fund(ctx, shortfall).await?;
    let action = PendingAction { id: 0, kind, amount_sat, funding_txid: funding_txid.clone() };
    let pending_id = ctx.store.add_pending_action(&action, crate::unix_now())?;
    tracing::info!(pending_id, %funding_txid, shortfall, "lightning action waits for the treasury's funding to confirm");
    Ok((pending_id, funding_txid))
}

/// Carries out every queued action whose funding has arrived in the node's wallet.
async fn process_pending(ctx: &AppState, node: &Arc<LightningNode>) {
    let pending = match ctx.store.pending_actions() {
        Ok(p) => p,
        Err(e) => return tracing::error!(error = %e, "reading pending lightning actions"),
    };
    let headroom = ctx.config.lightning.funding_fee_headroom_sat;
    for action in pending {
        let required = match action.kind {
            PendingKind::Open { .. } => action.amount_sat + ANCHOR_RESERVE_SAT,
            PendingKind::SpliceIn { .. } => action.amount_sat + headroom,
        };
        if node.balance().onchain_spendable_sat < required {
            continue;
        }
        let (n, a) = (Arc::clone(node), action.clone());
        let result = blocking_ln(move || match &a.kind {
            PendingKind::Open { node_id, address, push_msat, announce } => {
                n.open_channel(node_id, address, a.amount_sat, *push_msat, *announce)
            }
            PendingKind::SpliceIn { channel_id } => n.splice_in(channel_id, a.amount_sat).map(|()| channel_id.clone()),
        })
        .await;
        let recorded = match &result {
            Ok(outcome) => {
                tracing::info!(pending_id = action.id, %outcome, "funded lightning action started");
                ctx.store.finish_pending_action(action.id, Some(outcome), None)
            }
            Err(LightningError::InsufficientFunds) => Ok(()),
            Err(e) => {
                tracing::warn!(pending_id = action.id, error = %e, "funded lightning action failed");
                ctx.store.finish_pending_action(action.id, None, Some(&e.to_string()))
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, pending_id = action.id, "recording a pending action's outcome");
        }
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
