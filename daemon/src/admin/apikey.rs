//! `apikey.create {label, scopes}`, `apikey.list`, `apikey.revoke {id}`: the public API's keys;
//! `apikey.limits.set {key_id, currency?, max_payout?, max_daily?, allowlist?}`: a key's payout
//! limits (audited).

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::apikey::Scope;
use crate::fx::FxError;
use crate::limits::{self, Limits};
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

/// `apikey.list`: ids, labels, scopes, revocation, payout limits and what each key paid out in
/// the last 24 h — never secrets.
pub(crate) async fn list(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let now = crate::unix_now();
    let mut keys = Vec::new();
    for k in ctx.keys.list()? {
        let used_msat = ctx.store.key_used_since(&k.id, now.saturating_sub(limits::DAY_SECS))?;
        keys.push(json!({
            "id": k.id,
            "label": k.label,
            "scopes": k.scopes.split(',').collect::<Vec<_>>(),
            "created_at": k.created_at,
            "revoked": k.revoked_at.is_some(),
            "used_today_sat": used_msat.div_ceil(1_000),
            "limits": key_limits(ctx, &k.id, used_msat, now)?,
        }));
    }
    Ok(json!({ "api_keys": keys }))
}

/// A key's limits as set, with their sat values at the current rate and what is left today
/// (the sat values are null while a fiat limit has no fresh rate).
fn key_limits(ctx: &AppState, key_id: &str, used_msat: u64, now: u64) -> Result<Value, AdminError> {
    let Some(set) = ctx.store.key_limits(key_id)? else { return Ok(Value::Null) };
    let mut shown = json!(set);
    if let Ok(Some(checked)) = limits::for_key(&ctx.store, (&ctx.config.fx, &ctx.fx), key_id, now) {
        let left = checked.left(used_msat);
        shown["max_payout_sat"] = json!(left.max_payout_sat);
        shown["max_daily_sat"] = json!(left.max_daily_sat);
        shown["left_today_sat"] = json!(left.left_today_sat);
    }
    Ok(shown)
}

/// `apikey.limits.set {key_id, currency?, max_payout?, max_daily?, allowlist?}`: replaces the
/// key's limits (amounts in `currency`'s minor units, `SAT` by default); none of the three
/// clears them.
pub(crate) async fn limits_set(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["key_id", "currency", "max_payout", "max_daily", "allowlist"])?;
    let key_id = params.string("key_id")?;
    if !ctx.keys.list()?.iter().any(|k| k.id == key_id && k.revoked_at.is_none()) {
        return Err(AdminError::new(rpc_code::REFUSED, "unknown_api_key", format!("no active API key {key_id}")));
    }
    let currency = params.optional_string("currency")?.unwrap_or_else(|| "SAT".into()).trim().to_ascii_uppercase();
    let now = crate::unix_now();
    match crate::fx::mid_sats(&ctx.config.fx, &ctx.fx, &currency, 1, now) {
        Ok(_) | Err(FxError::RateUnavailable(_)) => {}
        Err(e) => return Err(AdminError::new(rpc_code::INVALID_PARAMS, "invalid_currency", e.to_string())),
    }
    let allowlist = params
        .optional_string_list("allowlist")?
        .unwrap_or_default()
        .iter()
        .map(|e| limits::entry(e, ctx.network))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AdminError::new(rpc_code::INVALID_PARAMS, "invalid_allowlist", e.to_string()))?;
    let set = Limits {
        currency,
        max_payout: params.optional_positive_integer("max_payout", "invalid_limit")?,
        max_daily: params.optional_positive_integer("max_daily", "invalid_limit")?,
        allowlist,
        updated_at: now,
    };
    let clear = set.max_payout.is_none() && set.max_daily.is_none() && set.allowlist.is_empty();
    ctx.store.set_key_limits(&key_id, (!clear).then_some(&set))?;
    let details = json!({ "key_id": key_id, "limits": if clear { Value::Null } else { json!(set) } });
    crate::audit::record(&ctx.store, "admin", "apikey.limits.set", &details)?;
    Ok(details)
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
