//! `treasury.status`: per rail what it holds, what payouts in flight reserve, its reserve, the
//! forecast need and the runway, and whether it takes new payouts — with the policy in force.
//! `treasury.policy.set {<[treasury] keys>}`: changes the policy at run time (audited, kept
//! across restarts); a refused change (`invalid_policy`) changes nothing.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::liquidity::guard::GuardError;
use crate::state::AppState;

fn guard_error(e: GuardError) -> AdminError {
    match e {
        GuardError::Invalid(why) => AdminError::new(rpc_code::INVALID_PARAMS, "invalid_policy", why),
        GuardError::Store(e) => AdminError::internal(e.to_string()),
    }
}

pub(crate) async fn status(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let rails = ctx.guard.look(Duration::ZERO).await.map_err(guard_error)?;
    Ok(json!({ "rails": rails, "policy": ctx.guard.treasury_config() }))
}

pub(crate) async fn policy_set(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let changes = params.into_map();
    if changes.is_empty() {
        return Err(AdminError::new(rpc_code::INVALID_PARAMS, "invalid_policy", "name at least one [treasury] key"));
    }
    let (before, after) = ctx.guard.merged(&changes).map_err(guard_error)?;
    let (was, now) = (json!(before), json!(after));
    let changed: Map<String, Value> =
        changes.keys().map(|k| (k.clone(), json!({"from": was[k], "to": now[k]}))).collect();
    let entry = crate::audit::record(&ctx.store, "admin", "treasury.policy.set", &json!({ "changed": changed }))?;
    ctx.guard.put(after.clone()).map_err(guard_error)?;
    let rails = ctx.guard.look(Duration::ZERO).await.map_err(guard_error)?;
    Ok(json!({ "policy": after, "changed": changed, "rails": rails, "audit_seq": entry.seq }))
}
