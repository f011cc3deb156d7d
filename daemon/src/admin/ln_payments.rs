//! `ln.invoice`, `ln.offer`, `ln.pay`, `ln.keysend`, `ln.payments`: receiving and sending; a
//! payment audited once the node took it ([`super::audit::done`]).

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::rails::lightning::blocking_ln;
use crate::state::AppState;

/// `ln.invoice {amount_msat?, description, expiry_secs}`: a BOLT11 invoice.
pub(crate) async fn invoice(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["amount_msat", "description", "expiry_secs"])?;
    let amount = params.optional_positive_integer("amount_msat", "invalid_amount")?;
    let description = params.optional_string("description")?.unwrap_or_default();
    let expiry = params.optional_positive_integer("expiry_secs", "invalid_params")?.unwrap_or(3600);
    let expiry = u32::try_from(expiry).map_err(|_| AdminError::invalid_params("expiry_secs is too large"))?;
    let node = ctx.lightning.node()?;
    Ok(json!(blocking_ln(move || node.invoice(amount, &description, expiry)).await?))
}

/// `ln.offer {amount_msat?, description}`: a BOLT12 offer, recorded as the gateway's own so that
/// a payout to it settles `on_us`.
pub(crate) async fn offer(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["amount_msat", "description"])?;
    let amount = params.optional_positive_integer("amount_msat", "invalid_amount")?;
    let description = params.optional_string("description")?.unwrap_or_default();
    let node = ctx.lightning.node()?;
    let created = blocking_ln(move || node.offer(amount, &description)).await?;
    ctx.store.record_own_offer(&created.offer_id, crate::unix_now())?;
    Ok(json!(created))
}

/// `ln.pay {invoice | offer, amount_msat?}`.
pub(crate) async fn pay(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["invoice", "offer", "amount_msat"])?;
    let destination = match (params.optional_string("invoice")?, params.optional_string("offer")?) {
        (Some(d), None) | (None, Some(d)) => d,
        _ => return Err(AdminError::invalid_params("give exactly one of invoice or offer")),
    };
    let amount = params.optional_positive_integer("amount_msat", "invalid_amount")?;
    let node = ctx.lightning.node()?;
    let asked = json!({ "destination": destination, "amount_msat": amount });
    let paid = blocking_ln(move || node.pay(&destination, amount)).await;
    let paid = paid.map_err(AdminError::from).map(|id| json!({ "payment_id": id, "status": "pending" }));
    super::audit::done(ctx, "ln.pay", asked, paid)
}

/// `ln.keysend {node_id, amount_msat}`.
pub(crate) async fn keysend(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["node_id", "amount_msat"])?;
    let node_id = params.string("node_id")?;
    let amount = params.positive_integer("amount_msat", "invalid_amount")?;
    let node = ctx.lightning.node()?;
    let asked = json!({ "node_id": node_id, "amount_msat": amount });
    let sent = blocking_ln(move || node.keysend(&node_id, amount)).await;
    let sent = sent.map_err(AdminError::from).map(|id| json!({ "payment_id": id, "status": "pending" }));
    super::audit::done(ctx, "ln.keysend", asked, sent)
}

/// `ln.payments`: every payment the node knows, newest first.
pub(crate) async fn payments(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!({ "payments": ctx.lightning.node()?.payments() }))
}
