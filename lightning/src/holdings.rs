//! What the node holds, piece by piece, for the gateway's ledger to reconcile against: its own
//! on-chain wallet, each open channel's balance in msat, what closed channels still have to
//! claim on-chain, and the outputs its sweeper is moving to the wallet.
//!
//! ldk-node 0.7.1 has no "balance of a channel in msat" call: `ChannelDetails` gives what can be
//! sent (`outbound_capacity_msat`) and received, each net of a reserve and, for the channel's
//! funder, of the two 330-sat anchor outputs. The balance is rebuilt from whichever side is not
//! clamped at zero, preferring the one that does not depend on the channel type:
//!
//! - we funded it and the peer holds more than the reserve we asked for: `capacity − (inbound +
//!   that reserve)` — exact;
//! - the peer funded it and we hold more than the reserve it asked for: `outbound + that
//!   reserve` — exact;
//! - otherwise the other side's formula, counting the funder's anchors (ldk-node negotiates
//!   anchor channels by default) — exact for anchor channels;
//! - neither side above its reserve (a tiny channel): the monitor's `to_local` output, whole
//!   sats — up to 999 msat short, flagged `exact: false`.
//!
//! Pending HTLCs are outside these figures (they are neither side's until resolved): compare only
//! when none is pending ([`Holdings::pending_payments`]).

use std::collections::HashSet;

use ldk_node::payment::{ConfirmationStatus, PaymentDirection, PaymentKind, PaymentStatus};
use ldk_node::{BalanceDetails, ChannelDetails, LightningBalance, PendingSweepBalance};
use serde::Serialize;

/// Both anchor outputs of an anchor channel, paid from the funder's balance.
pub const ANCHORS_MSAT: u64 = 2 * 330 * 1_000;

/// The node's holdings at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holdings {
    /// The node's own on-chain wallet, confirmed and unconfirmed.
    pub onchain_wallet_sat: u64,
    /// Open channels (pending, ready or splicing).
    pub channels: Vec<ChannelHolding>,
    /// What closed channels still claim on-chain (commitment outputs, HTLCs) before the sweeper
    /// takes them. A cooperative close pays the wallet directly: not counted here.
    pub closing: Vec<ClosingHolding>,
    /// Outputs of closed channels being swept to the wallet, not yet in it.
    pub sweeps: Vec<SweepHolding>,
    /// Transactions of the node's wallet not confirmed yet.
    pub unconfirmed_txids: Vec<String>,
    /// Lightning payments the node is sending, still pending.
    pub pending_payments: usize,
}

/// One open channel's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelHolding {
    /// Channel id, hex.
    pub channel_id: String,
    /// The funding transaction now in use, once known.
    pub funding_txid: Option<String>,
    /// Our balance.
    pub balance_msat: u64,
    /// False when rebuilt from the monitor's whole-sat output (up to 999 msat short).
    pub exact: bool,
    /// Ready (funding confirmed and both sides agreed).
    pub ready: bool,
}

/// What a closed channel still claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosingHolding {
    /// Channel id, hex.
    pub channel_id: String,
    /// ldk-node's balance kind, e.g. `claimable_awaiting_confirmations`.
    pub kind: &'static str,
    /// Amount (net of the fees already spent on it).
    pub amount_sat: u64,
}

/// An output being swept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepHolding {
    /// The channel it came from.
    pub channel_id: Option<String>,
    /// `pending_broadcast`, `awaiting_confirmation` or `awaiting_threshold`.
    pub state: &'static str,
    /// The output's value.
    pub amount_sat: u64,
    /// The sweeping transaction, once broadcast.
    pub txid: Option<String>,
}

/// One transaction of the node's own wallet, as ldk-node records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnchainTx {
    /// Transaction id.
    pub txid: String,
    /// For a transaction paying the wallet from outside (a transfer from the treasury): what it
    /// received; 0 for the wallet's own spends.
    pub inbound_sat: u64,
    /// Confirmed in the best chain.
    pub confirmed: bool,
}

impl Holdings {
    /// Everything, in msat: the wallet, the channels, the closing channels and the sweeps.
    pub fn total_msat(&self) -> u64 {
        self.onchain_wallet_sat * 1_000
            + self.channels_msat()
            + self.closing.iter().map(|c| c.amount_sat * 1_000).sum::<u64>()
            + self.sweeps.iter().map(|s| s.amount_sat * 1_000).sum::<u64>()
    }

    /// The open channels' balances.
    pub fn channels_msat(&self) -> u64 {
        self.channels.iter().map(|c| c.balance_msat).sum()
    }

    /// Sweeps broadcast but not yet listed among the wallet's transactions: ldk-node's wallet
    /// balance may already count them (it applies mempool transactions before it lists them), so
    /// while one is there the total may count it twice.
    pub fn maybe_twice_msat(&self) -> u64 {
        self.sweeps.iter().filter(|s| s.state == "awaiting_confirmation").map(|s| s.amount_sat * 1_000).sum()
    }

    /// Our HTLCs on closing channels that we claim back only if they time out: the total counts
    /// them, but a counterparty holding the preimage (a payout it received) claims them first.
    pub fn undecided_htlc_msat(&self) -> u64 {
        self.closing.iter().filter(|c| c.kind == "maybe_timeout_claimable_htlc").map(|c| c.amount_sat * 1_000).sum()
    }

    /// How far the total may be from the truth by whole-sat rounding: 999 msat per channel whose
    /// balance is not exact.
    pub fn tolerance_msat(&self) -> u64 {
        self.channels.iter().filter(|c| !c.exact).count() as u64 * 999
    }

    /// Nothing on its way: every channel ready, no close or sweep unresolved, no unconfirmed
    /// wallet transaction, no payment being sent.
    pub fn at_rest(&self) -> bool {
        self.channels.iter().all(|c| c.ready)
            && self.closing.is_empty()
            && self.sweeps.is_empty()
            && self.unconfirmed_txids.is_empty()
            && self.pending_payments == 0
    }
}

/// Builds the holdings from ldk-node's balances, channels and payments.
pub(crate) fn holdings(
    balances: &BalanceDetails,
    channels: &[ChannelDetails],
    payments: &[ldk_node::payment::PaymentDetails],
) -> Holdings {
    let txs = onchain_txs(payments);
    let wallet_txids: HashSet<&str> = txs.iter().map(|t| t.txid.as_str()).collect();
    let open: HashSet<String> = channels.iter().map(|c| c.channel_id.to_string()).collect();
    Holdings {
        onchain_wallet_sat: balances.total_onchain_balance_sats,
        channels: channels.iter().map(|c| channel(c, &balances.lightning_balances)).collect(),
        closing: balances.lightning_balances.iter().filter_map(|b| closing(b, &open)).collect(),
        sweeps: balances
            .pending_balances_from_channel_closures
            .iter()
            .filter_map(|s| sweep(s, &wallet_txids))
            .collect(),
        unconfirmed_txids: txs.iter().filter(|t| !t.confirmed).map(|t| t.txid.clone()).collect(),
        // An invoice waiting to be paid is a pending inbound payment: only what we send counts.
        pending_payments: payments
            .iter()
            .filter(|p| !matches!(p.kind, PaymentKind::Onchain { .. }) && p.direction == PaymentDirection::Outbound)
            .filter(|p| p.status == PaymentStatus::Pending)
            .count(),
    }
}

fn channel(c: &ChannelDetails, monitors: &[LightningBalance]) -> ChannelHolding {
    let value = c.channel_value_sats * 1_000;
    let ours_reserve = c.unspendable_punishment_reserve.unwrap_or(0) * 1_000;
    let theirs_reserve = c.counterparty_unspendable_punishment_reserve * 1_000;
    let from_outbound =
        |anchors: u64| c.outbound_capacity_msat + ours_reserve + if c.is_outbound { anchors } else { 0 };
    let from_inbound = |anchors: u64| {
        value.saturating_sub(c.inbound_capacity_msat + theirs_reserve + if c.is_outbound { 0 } else { anchors })
    };
    let (balance, exact) = match (c.is_outbound, c.outbound_capacity_msat > 0, c.inbound_capacity_msat > 0) {
        (true, _, true) => (from_inbound(0), true),
        (false, true, _) => (from_outbound(0), true),
        (true, true, false) => (from_outbound(ANCHORS_MSAT), true),
        (false, false, true) => (from_inbound(ANCHORS_MSAT), true),
        _ => (to_local_sat(c, monitors) * 1_000, false),
    };
    ChannelHolding {
        channel_id: c.channel_id.to_string(),
        funding_txid: c.funding_txo.map(|o| o.txid.to_string()),
        balance_msat: balance,
        exact,
        ready: c.is_channel_ready,
    }
}

fn to_local_sat(c: &ChannelDetails, monitors: &[LightningBalance]) -> u64 {
    monitors
        .iter()
        .find_map(|b| match b {
            LightningBalance::ClaimableOnChannelClose { channel_id, amount_satoshis, .. }
                if *channel_id == c.channel_id =>
            {
                Some(*amount_satoshis)
            }
            _ => None,
        })
        .unwrap_or(0)
}

fn closing(b: &LightningBalance, open: &HashSet<String>) -> Option<ClosingHolding> {
    use ldk_node::lightning::chain::channelmonitor::BalanceSource;
    let (channel_id, kind, amount) = match b {
        LightningBalance::ClaimableOnChannelClose { channel_id, amount_satoshis, .. } => {
            (channel_id, "claimable_on_channel_close", *amount_satoshis)
        }
        LightningBalance::ClaimableAwaitingConfirmations { source: BalanceSource::CoopClose, .. } => return None,
        LightningBalance::ClaimableAwaitingConfirmations { channel_id, amount_satoshis, .. } => {
            (channel_id, "claimable_awaiting_confirmations", *amount_satoshis)
        }
        LightningBalance::ContentiousClaimable { channel_id, amount_satoshis, .. } => {
            (channel_id, "contentious_claimable", *amount_satoshis)
        }
        LightningBalance::MaybeTimeoutClaimableHTLC { channel_id, amount_satoshis, .. } => {
            (channel_id, "maybe_timeout_claimable_htlc", *amount_satoshis)
        }
        LightningBalance::MaybePreimageClaimableHTLC { channel_id, amount_satoshis, .. } => {
            (channel_id, "maybe_preimage_claimable_htlc", *amount_satoshis)
        }
        LightningBalance::CounterpartyRevokedOutputClaimable { channel_id, amount_satoshis, .. } => {
            (channel_id, "counterparty_revoked_output_claimable", *amount_satoshis)
        }
    };
    let channel_id = channel_id.to_string();
    (!open.contains(&channel_id)).then_some(ClosingHolding { channel_id, kind, amount_sat: amount })
}

/// A sweep whose transaction the wallet already sees is in the wallet's balance: not counted
/// twice; once that transaction is confirmed the sweep is over (the sweeper only waits for more
/// confirmations before it forgets the output).
fn sweep(s: &PendingSweepBalance, wallet_txids: &HashSet<&str>) -> Option<SweepHolding> {
    let (channel_id, state, amount, txid) = match s {
        PendingSweepBalance::PendingBroadcast { channel_id, amount_satoshis } => {
            (channel_id, "pending_broadcast", *amount_satoshis, None)
        }
        PendingSweepBalance::BroadcastAwaitingConfirmation {
            channel_id,
            latest_spending_txid,
            amount_satoshis,
            ..
        } => (channel_id, "awaiting_confirmation", *amount_satoshis, Some(latest_spending_txid.to_string())),
        PendingSweepBalance::AwaitingThresholdConfirmations {
            channel_id,
            latest_spending_txid,
            amount_satoshis,
            ..
        } => (channel_id, "awaiting_threshold", *amount_satoshis, Some(latest_spending_txid.to_string())),
    };
    let in_wallet = txid.as_deref().is_some_and(|t| wallet_txids.contains(t));
    if in_wallet && state == "awaiting_threshold" {
        return None;
    }
    let amount_sat = if in_wallet { 0 } else { amount };
    Some(SweepHolding { channel_id: channel_id.map(|c| c.to_string()), state, amount_sat, txid })
}

/// The node wallet's own transactions (ldk-node lists them as `Onchain` payments). For an inbound
/// one whose inputs are all foreign, ldk-node can compute no fee and records what it received.
pub(crate) fn onchain_txs(payments: &[ldk_node::payment::PaymentDetails]) -> Vec<OnchainTx> {
    payments
        .iter()
        .filter_map(|p| {
            let PaymentKind::Onchain { txid, status } = &p.kind else { return None };
            let inbound_sat = match p.direction {
                PaymentDirection::Inbound => p.amount_msat.unwrap_or(0) / 1_000,
                PaymentDirection::Outbound => 0,
            };
            let confirmed = matches!(status, ConfirmationStatus::Confirmed { .. });
            Some(OnchainTx { txid: txid.to_string(), inbound_sat, confirmed })
        })
        .collect()
}
