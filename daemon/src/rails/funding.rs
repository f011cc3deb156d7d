//! The one place both rails meet: the treasury funds the Lightning node's wallet, and channel
//! opens and splices that need more than the node holds wait for that funding to confirm.

use std::sync::Arc;

use sendero_lightning::{LightningError, LightningNode};
use sendero_wallet::Payee;

use crate::rails::lightning::{blocking_ln, LnError, LnRail, ANCHOR_RESERVE_SAT};
use crate::rails::lightning::{PendingAction, PendingKind};
use crate::rails::onchain::Onchain;
use crate::store::Store;

/// What funding the node from the treasury uses: both rails, the store, and the fee headroom
/// (`[lightning] funding_fee_headroom_sat`) left in the node's wallet for the open's own fee.
pub struct Funding<'a> {
    /// The treasury.
    pub onchain: &'a Onchain,
    /// The node.
    pub lightning: &'a LnRail,
    /// Where pending actions and transfers are recorded.
    pub store: &'a Store,
    /// Sats left for the node's own fee on top of what an action needs.
    pub headroom_sat: u64,
}

/// Moves `amount_sat` from the treasury to the node's on-chain wallet; returns the txid.
pub async fn fund(ctx: &Funding<'_>, amount_sat: u64) -> Result<String, LnError> {
    let node = ctx.lightning.node()?;
    let address = blocking_ln(move || node.new_onchain_address()).await?;
    let fee = ctx.onchain.default_estimate().await?;
    let payout = ctx.onchain.pay(ctx.store, Payee { address, amount_sat }, fee.feerate).await?;
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
pub async fn open_channel(ctx: &Funding<'_>, req: OpenRequest) -> Result<Opened, LnError> {
    let node = ctx.lightning.node()?;
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
    let shortfall = needed - spendable + ctx.headroom_sat;
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
pub async fn splice_in(ctx: &Funding<'_>, channel_id: String, amount_sat: u64) -> Result<Opened, LnError> {
    let node = ctx.lightning.node()?;
    node.check_channel(&channel_id)?;
    let headroom = ctx.headroom_sat;
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

/// Splices `amount_sat` out of a channel to `address` — `direction` `to_treasury` (a treasury
/// address) or `to_address` (anyone's). The transfer is recorded before the node is asked: its
/// `SplicePending` gives the transaction, which the ledger then books as a transfer (or a payout
/// to the outside address); a refusal marks it failed.
pub async fn splice_out(
    ctx: &Funding<'_>,
    channel_id: String,
    amount_sat: u64,
    address: sendero_wallet::bitcoin::Address,
    direction: &str,
) -> Result<(), LnError> {
    let node = ctx.lightning.node()?;
    node.check_channel(&channel_id)?;
    let channel = channel_id.trim().to_ascii_lowercase();
    let transfer = ctx.store.ln_transfer_requested(direction, &channel, amount_sat, crate::unix_now())?;
    if let Err(e) = blocking_ln(move || node.splice_out(&channel_id, amount_sat, &address)).await {
        ctx.store.ln_transfer_failed(transfer)?;
        return Err(e.into());
    }
    Ok(())
}

/// Sends `shortfall` from the treasury to the node and queues `kind` until it confirms.
async fn fund_then(
    ctx: &Funding<'_>,
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
pub(crate) async fn process_pending((store, headroom): (&Store, u64), node: &Arc<LightningNode>) {
    let pending = match store.pending_actions() {
        Ok(p) => p,
        Err(e) => return tracing::error!(error = %e, "reading pending lightning actions"),
    };
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
                store.finish_pending_action(action.id, Some(outcome), None)
            }
            Err(LightningError::InsufficientFunds) => Ok(()),
            Err(e) => {
                tracing::warn!(pending_id = action.id, error = %e, "funded lightning action failed");
                store.finish_pending_action(action.id, None, Some(&e.to_string()))
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, pending_id = action.id, "recording a pending action's outcome");
        }
    }
}
