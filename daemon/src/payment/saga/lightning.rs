//! The saga's Lightning steps: a payout paid once under its payment id, its outcome the node's
//! record — or, when a kill took that record, the node's event — and a payment a crash lost
//! inside the node sent again or failed.

use std::sync::Arc;
use std::time::Duration;

use sendero_lightning::{LightningError, Recovery};

use super::{fail, retry_or_fail, settle, Change, Payment, Payments, State, Step};

/// How long the Lightning node runs before a payment still pending from before it started counts
/// as lost: past LDK's own retry window for what it resumed at start.
const RECOVER_AFTER: Duration = Duration::from_secs(30);

/// Pays the invoice or offer once: a resumed saga first asks the node for the payment it may
/// already have made for this payment id.
pub(super) async fn send(ctx: &Payments, p: &Payment) -> Step {
    let node = match ctx.lightning.node() {
        Ok(n) => n,
        Err(e) => return Step::RetrySoon(e.to_string()),
    };
    // A payment the node made for this one before a crash decides its outcome. A failed one
    // does not when it predates this payment (someone else's attempt) or when it is the failed
    // send of our own previous attempt, which is being retried (nothing moved: sending again is
    // safe, and ldk-node refuses to pay an invoice twice).
    if let Some(existing) = node.payment_for(&p.destination, &p.payment_id) {
        let resumed_outcome = existing.updated_at >= p.created_at && p.attempts == 0;
        if existing.status != "failed" || resumed_outcome {
            return sent_as(p, existing.payment_id);
        }
    } else if let Some(id) = node.payment_id_for(&p.destination, &p.payment_id) {
        // The node's record may be gone while its event of the payment's success was recorded
        // (a kill between LDK's send and ldk-node's record): paid, never to be sent again.
        match ctx.store.ln_payment_status(&id) {
            Ok(Some((status, _))) if status == "succeeded" => return sent_as(p, id),
            Ok(_) => {}
            Err(e) => return Step::Retry(e.to_string()),
        }
    }
    // Channels are not usable for a while after a restart (the peer reconnects): wait for them
    // rather than fail the payment, for a bounded number of attempts.
    let outbound = node.usable_outbound_msat();
    if outbound < p.amount_msat {
        let why = format!("channels can send {outbound} msat, {} msat needed", p.amount_msat);
        return ln_retry_or_fail(ctx, &node, p, "insufficient_liquidity", why);
    }
    let (n, dest, id, amount) = (Arc::clone(&node), p.destination.clone(), p.payment_id.clone(), p.amount_msat);
    let sent = crate::rails::lightning::blocking_ln(move || n.pay_once(&dest, Some(amount), Some(&id))).await;
    match sent {
        Ok(ln_id) => {
            crate::failpoint::hit("lightning.sent");
            sent_as(p, ln_id)
        }
        Err(LightningError::DuplicatePayment) => match node.payment_for(&p.destination, &p.payment_id) {
            Some(existing) => sent_as(p, existing.payment_id),
            // LDK knows the payment though ldk-node has no record of it: a kill came between
            // LDK's send and ldk-node's record. It may be on its way; its outcome comes as the
            // node's event, recorded under this id.
            None => match node.payment_id_for(&p.destination, &p.payment_id) {
                Some(id) => {
                    tracing::warn!(payment_id = %p.payment_id, ln_payment_id = %id,
                        "the node sent this payout before a kill but kept no record of it: its outcome comes as the node's event");
                    sent_as(p, id)
                }
                None => Step::next(fail(p, "duplicate_payment", "the node already paid this invoice".into())),
            },
        },
        Err(e @ LightningError::NotRunning) => Step::RetrySoon(e.to_string()),
        // No route yet (channels still reconnecting after a restart): nothing left the node.
        Err(e @ LightningError::SendFailed(_)) => ln_retry_or_fail(ctx, &node, p, e.code(), e.to_string()),
        Err(e @ (LightningError::InsufficientLiquidity { .. } | LightningError::ConnectionFailed)) => {
            ln_retry_or_fail(ctx, &node, p, e.code(), e.to_string())
        }
        Err(e) => Step::next(fail(p, e.code(), e.to_string())),
    }
}

/// The payout moves to `sent`, its outcome that of the node's payment `ln_payment_id`.
fn sent_as(p: &Payment, ln_payment_id: String) -> Step {
    let next = Payment { state: State::Sent, rail_ref: Some(ln_payment_id), ..p.clone() };
    Step::next(Change { next: Some(next), ..Change::default() })
}

/// `sent` on Lightning: the node's record decides; without one (a kill between LDK's send and
/// ldk-node's record, or a recovery that dropped it while LDK still knew the payment), what the
/// node's events said does.
pub(super) async fn outcome(ctx: &Payments, p: &Payment, rail_ref: &str) -> Step {
    let node = match ctx.lightning.node() {
        Ok(n) => n,
        Err(_) => return Step::Wait,
    };
    let known = match node.payment(rail_ref) {
        Some(ln) => Some((ln.status.to_owned(), ln.fee_paid_msat)),
        None => ctx.store.ln_payment_status(rail_ref).unwrap_or_else(|e| {
            tracing::error!(payment_id = %p.payment_id, error = %e, "reading the node's events");
            None
        }),
    };
    match known {
        Some((status, fee)) if status == "succeeded" => Step::next(settle(p, fee.unwrap_or_default(), None)),
        Some((status, _)) if status == "failed" => {
            Step::next(fail(p, "lightning_payment_failed", "the node could not deliver the payment".into()))
        }
        Some(_) => recover_lost(node, p).await,
        None => Step::Wait,
    }
}

/// A pending Lightning payout the node may have lost in a crash: sent again, or failed when it
/// cannot be (nothing of it left the node). See [`sendero_lightning::LightningNode::recover_lost`].
async fn recover_lost(node: Arc<sendero_lightning::LightningNode>, p: &Payment) -> Step {
    let (dest, amount, key) = (p.destination.clone(), p.amount_msat, p.payment_id.clone());
    match crate::rails::lightning::blocking_ln(move || node.recover_lost_for(&dest, amount, Some(&key), RECOVER_AFTER))
        .await
    {
        Ok(Recovery::Abandoned(why)) => Step::next(fail(p, "lightning_payment_lost", why)),
        Ok(Recovery::Kept | Recovery::Resent | Recovery::Tracked) => Step::Wait,
        Err(e) => {
            tracing::warn!(payment_id = %p.payment_id, error = %e, "looking for a payment lost in a crash");
            Step::Wait
        }
    }
}

/// [`retry_or_fail`] for a Lightning payout the node could not send now — which never fails while
/// an HTLC of it is on a channel, open or closing: a kill took the node's record of a payment that
/// had left (and may have cost the channel too). Its outcome comes as the node's event.
fn ln_retry_or_fail(
    ctx: &Payments,
    node: &sendero_lightning::LightningNode,
    p: &Payment,
    code: &str,
    why: String,
) -> Step {
    match node.in_flight_for(&p.destination, &p.payment_id) {
        Some(id) => {
            tracing::warn!(payment_id = %p.payment_id, ln_payment_id = %id,
                "an HTLC of this payout is on a channel though the node kept no record of it: its outcome comes as the node's event");
            sent_as(p, id)
        }
        None => retry_or_fail(ctx, p, code, why),
    }
}
