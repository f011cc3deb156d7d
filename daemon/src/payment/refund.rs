//! Refunding an invoice: `rate_then`, `current_rate` or an explicit amount, priced by the router
//! and submitted as a payout like any other (every rail the destination allows), capped at what
//! the invoice received less its other refunds — checked again in the transaction that writes
//! the payout, so that two refunds at once cannot give back more than came in.

use serde_json::json;

use super::submit::{self, RefundOf, SubmitError, SubmitRequest};
use super::{Payment, Payments};
use crate::invoice::refund::RefundAmount;
use crate::route::{self, Priority, RouteError, RouteRequest, Router};
use crate::store::StoreError;

/// A refund, parsed at the edge.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// The invoice refunded.
    pub invoice_id: String,
    /// Where the customer is paid: an address, a BOLT11 invoice, an offer, a BIP21 URI.
    pub destination: String,
    /// How much.
    pub amount: RefundAmount,
    /// The payout's urgency.
    pub priority: Priority,
    /// The rail, when the client names one (else the route's recommendation).
    pub rail: Option<String>,
    /// The key's payout limits at the current rate: a refund is a payout like any other.
    pub limits: Option<crate::limits::Checked>,
}

/// Why a refund was refused. Nothing was paid or debited.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    /// No such invoice for this key.
    #[error("no invoice {0}")]
    NotFound(String),
    /// The invoice received nothing: there is nothing to give back.
    #[error("invoice {0} has received nothing to refund")]
    NothingReceived(String),
    /// More than the invoice received less its other refunds.
    #[error("{message}")]
    Exceeds {
        /// Why.
        message: String,
        /// What the invoice may still refund, sats.
        refundable_sat: u64,
        /// What this refund needs, sats (when it was priced).
        needed_sat: Option<u64>,
    },
    /// The payout could not be priced.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// The payout was not accepted.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn exceeds(left_msat: u64, needed_sat: Option<u64>) -> RefundError {
    let refundable_sat = left_msat / 1_000;
    let message = match needed_sat {
        Some(n) => format!("this refund needs {n} sat; the invoice can refund {refundable_sat} sat more"),
        None => "the invoice has nothing left to refund: its refunds already give back what it received".into(),
    };
    RefundError::Exceeds { message, refundable_sat, needed_sat }
}

/// Refunds `req` for key `key_id` under idempotency key `idem`; the `202` answer, also stored
/// as the key's answer with the payout.
pub async fn refund(
    (router, payments): (&Router, &Payments),
    (key_id, idem): (&str, &str),
    req: &RefundRequest,
    now: u64,
) -> Result<Vec<u8>, RefundError> {
    let inv = payments
        .store
        .invoice(&req.invoice_id)?
        .filter(|i| i.api_key_id == key_id)
        .ok_or_else(|| RefundError::NotFound(req.invoice_id.clone()))?;
    if inv.received_msat == 0 {
        return Err(RefundError::NothingReceived(inv.invoice_id));
    }
    let left = payments.store.invoice_refundable_msat(&inv.invoice_id)?;
    if left < 1_000 {
        return Err(exceeds(left, None));
    }
    let (amount_minor, currency) = req.amount.to_route(&inv, left);
    let asked = RouteRequest {
        amount_minor,
        currency,
        destination: req.destination.clone(),
        priority: req.priority,
        fx_quote_id: None,
        method: None,
        geo: None,
    };
    let route = route::select(router, key_id, asked, now).await?;
    if route.amount_msat > left {
        return Err(exceeds(left, Some(route.amount_sat)));
    }
    let rail = req.rail.as_deref().or(route.recommend).or_else(|| route.candidates.first().map(|c| c.rail));
    let submit = SubmitRequest {
        route_id: route.route_id.clone(),
        rail: rail.unwrap_or_default().to_owned(),
        fx_quote_id: None,
        limits: req.limits.clone(),
    };
    let mode = req.amount.mode();
    let answer_of = |p: &Payment| answer(p, &inv.invoice_id, mode);
    let of = RefundOf { invoice_id: inv.invoice_id.clone(), mode, answer: &answer_of };
    let payment = submit::accept_as(payments, (key_id, idem), &submit, Some(of), now).await.map_err(|e| match e {
        SubmitError::RefundExceeds { refundable_sat, needed_sat } => exceeds(refundable_sat * 1_000, Some(needed_sat)),
        e => RefundError::Submit(e),
    })?;
    tracing::info!(invoice_id = %inv.invoice_id, payment_id = %payment.payment_id, mode, amount_msat = payment.amount_msat,
        rail = payment.rail.as_str(), "invoice refund submitted");
    Ok(answer_of(&payment))
}

/// The `202` body of a refund: the payout and what it gives back (the same whatever the payout's
/// state, so that a replay answers byte for byte).
fn answer(p: &Payment, invoice_id: &str, mode: &str) -> Vec<u8> {
    json!({
        "payment_id": p.payment_id,
        "status": "SUBMITTED",
        "invoice_id": invoice_id,
        "mode": mode,
        "rail": p.rail.as_str(),
        "destination": p.destination,
        "amount_sat": p.amount_msat.div_ceil(1_000),
        "amount_msat": p.amount_msat,
        "amount": {"minor_units": p.amount_minor, "currency": p.currency},
        "fx_quote_id": p.fx_quote_id,
    })
    .to_string()
    .into_bytes()
}
