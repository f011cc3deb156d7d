//! Plain, serialisable views of the node's state, in integer sats / msats and hex ids.

use ldk_node::bitcoin::hex::DisplayHex;
use ldk_node::payment::{PaymentDetails, PaymentDirection, PaymentKind, PaymentStatus};
use ldk_node::{BalanceDetails, ChannelDetails, PeerDetails};
use serde::Serialize;

/// The node at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// Public key, hex.
    pub node_id: String,
    /// Addresses it listens on.
    pub listening_addresses: Vec<String>,
    /// Chain height the node has processed.
    pub best_block_height: u32,
    /// Connected peers.
    pub peers: usize,
    /// Channels in any state.
    pub channels: usize,
    /// Channels that can send and receive now.
    pub usable_channels: usize,
    /// What usable channels can send now.
    pub outbound_msat: u64,
    /// What usable channels can receive now.
    pub inbound_msat: u64,
}

/// One peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// Public key, hex.
    pub node_id: String,
    /// `host:port`.
    pub address: String,
    /// Connected now.
    pub connected: bool,
    /// Reconnected to on restart.
    pub persisted: bool,
}

/// One channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Channel {
    /// Channel id, hex (what `ln.close_channel` and splices take).
    pub channel_id: String,
    /// The peer.
    pub counterparty_node_id: String,
    /// `txid:vout` of the funding output, once known.
    pub funding_txo: Option<String>,
    /// Total capacity.
    pub capacity_sat: u64,
    /// What we can send.
    pub outbound_msat: u64,
    /// What we can receive.
    pub inbound_msat: u64,
    /// Funding confirmed deep enough and both sides agreed.
    pub ready: bool,
    /// Ready and the peer is connected.
    pub usable: bool,
    /// We opened it.
    pub outbound: bool,
    /// Announced to the network.
    pub announced: bool,
    /// Funding confirmations so far.
    pub confirmations: Option<u32>,
}

/// An offer this node issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedOffer {
    /// The offer, `lno…`.
    pub offer: String,
    /// Its offer id, hex.
    pub offer_id: String,
}

/// Lightning-side balances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LnBalance {
    /// The node's own on-chain wallet, all of it.
    pub onchain_total_sat: u64,
    /// Spendable now (confirmed, minus the anchor reserve).
    pub onchain_spendable_sat: u64,
    /// Kept on-chain to bump anchor channels' closing transactions.
    pub anchor_reserve_sat: u64,
    /// Claimable from channels if all were closed now.
    pub lightning_sat: u64,
    /// From closed channels, still being swept on-chain.
    pub pending_sweep_sat: u64,
}

/// One payment, either direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// Payment id, hex.
    pub payment_id: String,
    /// `bolt11`, `bolt12_offer`, `bolt12_refund`, `spontaneous`, `onchain` or `bolt11_jit`.
    pub kind: &'static str,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `pending`, `succeeded` or `failed`.
    pub status: &'static str,
    /// Amount, when known.
    pub amount_msat: Option<u64>,
    /// Routing fee paid (outbound), when known.
    pub fee_paid_msat: Option<u64>,
    /// Payment hash, hex, when there is one.
    pub payment_hash: Option<String>,
    /// Last change, unix seconds.
    pub updated_at: u64,
}

/// A BOLT11 invoice this node issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invoice {
    /// The invoice text.
    pub bolt11: String,
    /// Payment hash, hex.
    pub payment_hash: String,
    /// Amount, if fixed.
    pub amount_msat: Option<u64>,
    /// Expiry, unix seconds.
    pub expires_at: u64,
}

impl From<&PeerDetails> for Peer {
    fn from(p: &PeerDetails) -> Self {
        Peer {
            node_id: p.node_id.to_string(),
            address: p.address.to_string(),
            connected: p.is_connected,
            persisted: p.is_persisted,
        }
    }
}

impl From<&ChannelDetails> for Channel {
    fn from(c: &ChannelDetails) -> Self {
        Channel {
            channel_id: c.channel_id.to_string(),
            counterparty_node_id: c.counterparty_node_id.to_string(),
            funding_txo: c.funding_txo.map(|o| o.to_string()),
            capacity_sat: c.channel_value_sats,
            outbound_msat: c.outbound_capacity_msat,
            inbound_msat: c.inbound_capacity_msat,
            ready: c.is_channel_ready,
            usable: c.is_usable,
            outbound: c.is_outbound,
            announced: c.is_announced,
            confirmations: c.confirmations,
        }
    }
}

impl From<&BalanceDetails> for LnBalance {
    fn from(b: &BalanceDetails) -> Self {
        LnBalance {
            onchain_total_sat: b.total_onchain_balance_sats,
            onchain_spendable_sat: b.spendable_onchain_balance_sats,
            anchor_reserve_sat: b.total_anchor_channels_reserve_sats,
            lightning_sat: b.total_lightning_balance_sats,
            pending_sweep_sat: b.pending_balances_from_channel_closures.iter().map(sweep_amount).sum(),
        }
    }
}

fn sweep_amount(p: &ldk_node::PendingSweepBalance) -> u64 {
    use ldk_node::PendingSweepBalance::*;
    match p {
        PendingBroadcast { amount_satoshis, .. }
        | BroadcastAwaitingConfirmation { amount_satoshis, .. }
        | AwaitingThresholdConfirmations { amount_satoshis, .. } => *amount_satoshis,
    }
}

impl From<&PaymentDetails> for Payment {
    fn from(p: &PaymentDetails) -> Self {
        let (kind, hash) = match &p.kind {
            PaymentKind::Onchain { .. } => ("onchain", None),
            PaymentKind::Bolt11 { hash, .. } => ("bolt11", Some(hash.0)),
            PaymentKind::Bolt11Jit { hash, .. } => ("bolt11_jit", Some(hash.0)),
            PaymentKind::Bolt12Offer { hash, .. } => ("bolt12_offer", hash.map(|h| h.0)),
            PaymentKind::Bolt12Refund { hash, .. } => ("bolt12_refund", hash.map(|h| h.0)),
            PaymentKind::Spontaneous { hash, .. } => ("spontaneous", Some(hash.0)),
        };
        Payment {
            payment_id: p.id.0.to_lower_hex_string(),
            kind,
            direction: match p.direction {
                PaymentDirection::Inbound => "inbound",
                PaymentDirection::Outbound => "outbound",
            },
            status: status_name(p.status),
            amount_msat: p.amount_msat,
            fee_paid_msat: p.fee_paid_msat,
            payment_hash: hash.map(|h| h.to_lower_hex_string()),
            updated_at: p.latest_update_timestamp,
        }
    }
}

/// `pending`, `succeeded` or `failed`.
pub(crate) fn status_name(s: PaymentStatus) -> &'static str {
    match s {
        PaymentStatus::Pending => "pending",
        PaymentStatus::Succeeded => "succeeded",
        PaymentStatus::Failed => "failed",
    }
}
