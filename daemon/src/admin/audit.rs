//! `audit.list {after?, limit?}`: the audit log's entries; `audit.verify`: the hash chain
//! recomputed (ok, entries, the first broken entry, the head hash).

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn list(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["after", "limit"])?;
    let after = params.optional_positive_integer("after", "invalid_params")?.unwrap_or(0);
    let limit = params.optional_positive_integer("limit", "invalid_params")?.unwrap_or(100).min(1_000);
    Ok(json!({ "entries": ctx.store.audit_list(after as i64, limit as usize)? }))
}

pub(crate) async fn verify(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!(ctx.store.audit_verify()?))
}
