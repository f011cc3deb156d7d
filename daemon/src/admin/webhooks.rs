//! `webhook.endpoints` (every key's, secrets never shown), `webhook.deliveries {endpoint_id?,
//! event_id?, state?, limit?}` (the delivery log, newest first) and `webhook.redeliver
//! {delivery_id}` (queue it again now; re-enables its endpoint if a 410 disabled it).

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn endpoints(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!({ "webhooks": ctx.store.endpoints(None)? }))
}

pub(crate) async fn deliveries(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["endpoint_id", "event_id", "state", "limit"])?;
    let text = |k: &str| params.optional_string(k);
    let state = text("state")?;
    if let Some(s) = &state {
        if !["pending", "delivered", "failed"].contains(&s.as_str()) {
            return Err(AdminError::invalid_params("state must be pending, delivered or failed"));
        }
    }
    let limit = params.optional_positive_integer("limit", "invalid_params")?.unwrap_or(100).min(1_000);
    let list = ctx.store.deliveries(
        text("endpoint_id")?.as_deref(),
        text("event_id")?.as_deref(),
        state.as_deref(),
        limit as usize,
    )?;
    Ok(json!({ "deliveries": list }))
}

pub(crate) async fn redeliver(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["delivery_id"])?;
    let id = params
        .optional_positive_integer("delivery_id", "invalid_params")?
        .ok_or_else(|| AdminError::invalid_params("missing parameter delivery_id"))?;
    if !ctx.store.redeliver(id as i64, crate::unix_now())? {
        return Err(AdminError::new(rpc_code::INVALID_PARAMS, "delivery_not_found", format!("no delivery {id}")));
    }
    ctx.webhooks.wake.notify_one();
    Ok(json!({ "delivery_id": id, "state": "pending" }))
}
