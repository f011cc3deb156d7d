//! The node's events, recorded: payments' outcomes in the node's events table (waking the saga),
//! channels' steps with the ledger movements they start, and alarms for channels that closed.

use sendero_lightning::{Event, LightningNode};
use tokio::sync::Notify;

use super::LnPaymentRow;
use crate::store::{Store, StoreError};

/// Records what matters of `event`, wakes the payment saga when the event is a payment's outcome
/// (the payout it belongs to settles or fails now, not on the saga's next tick) and the webhook
/// sender when it may have queued something (an invoice paid, a channel's alarm), then
/// acknowledges the event — on every path: a recording failure is logged, never allowed to stall
/// the node.
pub fn handle_event(
    (store, tolerance_bps): (&Store, u32),
    node: &LightningNode,
    (payments_wake, webhooks_wake): (&Notify, &Notify),
    event: Event,
) {
    if let Err(e) = record_event((store, tolerance_bps), node, &event) {
        tracing::error!(error = %e, ?event, "lightning event not recorded; acknowledging it anyway");
    }
    // The node's own record already holds the outcome, and now ours does too (the saga's fallback).
    if matches!(event, Event::PaymentSuccessful { .. } | Event::PaymentFailed { .. }) {
        payments_wake.notify_one();
    } else {
        webhooks_wake.notify_one();
    }
    if let Err(e) = node.event_handled() {
        tracing::error!(error = %e, "lightning event_handled failed");
    }
}

fn record_event((store, tolerance_bps): (&Store, u32), node: &LightningNode, event: &Event) -> Result<(), StoreError> {
    match event {
        Event::PaymentReceived { payment_id, payment_hash, amount_msat, .. } => {
            record_payment(store, node, event)?;
            let id = payment_id.map(|p| hex(&p.0)).unwrap_or_else(|| hex(&payment_hash.0));
            let now = crate::unix_now();
            match crate::invoice::lightning_received(
                (store, tolerance_bps),
                &hex(&payment_hash.0),
                &id,
                *amount_msat,
                now,
            ) {
                Ok(_) => Ok(()),
                Err(crate::invoice::InvoiceError::Store(e)) => Err(e),
                Err(e) => {
                    tracing::error!(error = %e, payment_id = %id, "a received payment not counted against its invoice");
                    Ok(())
                }
            }
        }
        Event::PaymentSuccessful { .. } | Event::PaymentFailed { .. } => record_payment(store, node, event),
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
            store.rebalance_splice_failed(&id, now)?;
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
