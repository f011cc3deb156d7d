//! `payment.get {payment_id}`: one payment of any key, with its key, attempts and outbox events.

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["payment_id"])?;
    let id = params.string("payment_id")?;
    let p = ctx
        .store
        .payment(&id)?
        .ok_or_else(|| AdminError::new(rpc_code::INVALID_PARAMS, "payment_not_found", format!("no payment {id}")))?;
    let events: Vec<Value> = ctx
        .store
        .payment_events(&id)?
        .into_iter()
        .map(|(event_id, kind, _)| json!({ "event_id": event_id, "type": kind }))
        .collect();
    let hold = ctx.store.fee_hold(&id)?;
    let mut v = crate::payment::fee_holds::view_with_hold(&p, hold.as_ref());
    v["api_key_id"] = json!(p.api_key_id);
    v["attempts"] = json!(p.attempts);
    v["events"] = json!(events);
    Ok(v)
}
