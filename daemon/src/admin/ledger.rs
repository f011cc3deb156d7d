//! `ledger.balances`: every account's balance per currency (BTC in msat, fiat in minor units),
//! after importing the wallet's outside movements. `ledger.verify`: the ledger's integrity and
//! its reconciliation with the wallet and the Lightning node. `payment.get {payment_id}`: one
//! payment of any key, with its outbox events.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::payment::reconcile;
use crate::state::AppState;

pub(crate) async fn balances(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        reconcile::import_wallet(&ctx).map_err(AdminError::from)?;
        Ok(json!({ "unit": {"BTC": "msat"}, "accounts": ctx.store.ledger_balances()? }))
    })
    .await
    .map_err(|e| AdminError::internal(e.to_string()))?
}

pub(crate) async fn verify(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || reconcile::verify(&ctx).map_err(AdminError::from))
        .await
        .map_err(|e| AdminError::internal(e.to_string()))?
}

pub(crate) async fn payment(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["payment_id"])?;
    let id = params.string("payment_id")?;
    let p = ctx.store.payment(&id)?.ok_or_else(|| {
        AdminError::new(super::error::rpc_code::INVALID_PARAMS, "payment_not_found", format!("no payment {id}"))
    })?;
    let events: Vec<Value> = ctx
        .store
        .payment_events(&id)?
        .into_iter()
        .map(|(event_id, kind, _)| json!({ "event_id": event_id, "type": kind }))
        .collect();
    let mut v = p.view();
    v["api_key_id"] = json!(p.api_key_id);
    v["attempts"] = json!(p.attempts);
    v["events"] = json!(events);
    Ok(v)
}
