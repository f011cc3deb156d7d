//! `apikey.create {label, scopes}`, `apikey.list`, `apikey.revoke {id}`: the public API's keys.

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::apikey::Scope;
use crate::state::AppState;

/// `apikey.create`: the secret is in the answer and nowhere else.
pub(crate) async fn create(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["label", "scopes"])?;
    let label = params.string("label")?;
    let scopes = params.string_list("scopes")?;
    let scopes = scopes
        .iter()
        .map(|s| {
            Scope::parse(s).ok_or_else(|| {
                AdminError::invalid_params(format!("unknown scope {s:?}; use read, quote, invoice, pay"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if scopes.is_empty() {
        return Err(AdminError::invalid_params("give at least one scope"));
    }
    let (key, secret) = ctx.keys.create(&label, &scopes, crate::unix_now())?;
    let details = json!({ "id": key.id, "label": key.label, "scopes": names(&key.scopes) });
    crate::audit::record(&ctx.store, "admin", "apikey.create", &details)?;
    Ok(json!({ "id": key.id, "key": secret, "label": key.label, "scopes": names(&key.scopes) }))
}

/// `apikey.list`: ids, labels, scopes, revocation — never secrets.
pub(crate) async fn list(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let keys: Vec<Value> = ctx
        .keys
        .list()?
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id,
                "label": k.label,
                "scopes": k.scopes.split(',').collect::<Vec<_>>(),
                "created_at": k.created_at,
                "revoked": k.revoked_at.is_some(),
            })
        })
        .collect();
    Ok(json!({ "api_keys": keys }))
}

/// `apikey.revoke {id}`.
pub(crate) async fn revoke(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["id"])?;
    let id = params.string("id")?;
    if !ctx.keys.revoke(&id, crate::unix_now())? {
        return Err(AdminError::new(rpc_code::REFUSED, "unknown_api_key", format!("no active API key {id}")));
    }
    crate::audit::record(&ctx.store, "admin", "apikey.revoke", &json!({ "id": id }))?;
    Ok(json!({ "revoked": id }))
}

fn names(scopes: &[Scope]) -> Vec<&'static str> {
    scopes.iter().map(|s| s.as_str()).collect()
}
