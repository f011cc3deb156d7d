//! `POST /v1/payments/route` (scope `pay`) `{amount:{minor_units, currency}, destination,
//! direction:"payout", priority, fx_quote_id?, method?, geo?}` → `{route_id, expires_at,
//! candidates:[…], recommend, unavailable, method, geo, limits?}` — `limits` when the key has
//! payout limits: what is left today and whether this payout fits.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::authorize;
use super::ApiError;
use crate::apikey::Scope;
use crate::limits::{self, Checked};
use crate::route::{self, Method, Priority, Route, RouteRequest};
use crate::state::AppState;

pub(crate) async fn handle(State(ctx): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let key = authorize(&ctx, &headers, Scope::Pay)?;
    let req = parse(&body)?;
    let now = crate::unix_now();
    let route = route::select(&ctx.router, &key.id, req, now).await?;
    let mut answer = route_json(&route);
    // Shown when they can be weighed now (a fiat limit needs a fresh rate; submit insists on one).
    if let Ok(Some(checked)) = limits::for_key(&ctx.store, (&ctx.config.fx, &ctx.fx), &key.id, now) {
        answer["limits"] = limits_json(&ctx, &checked, &key.id, route.amount_msat, now)?;
    }
    Ok(Json(answer).into_response())
}

/// The key's payout limits beside this payout: what is left today and whether it fits (submit
/// decides; the allowlist is checked there, against what the chosen rail pays).
fn limits_json(ctx: &AppState, checked: &Checked, key_id: &str, amount_msat: u64, now: u64) -> Result<Value, ApiError> {
    let used_msat = ctx
        .store
        .key_used_since(key_id, now.saturating_sub(limits::DAY_SECS))
        .map_err(|e| ApiError::internal("read the key's payouts", &e))?;
    let fits = checked.max_payout_msat.is_none_or(|max| amount_msat <= max)
        && checked.max_daily_msat.is_none_or(|max| used_msat.saturating_add(amount_msat) <= max);
    let mut shown = json!(checked.left(used_msat));
    shown["fits"] = fits.into();
    shown["allowlist"] = (!checked.limits.allowlist.is_empty()).into();
    Ok(shown)
}

fn route_json(route: &Route) -> Value {
    // The seed's clients read a candidate's rail as `psp`.
    let candidates: Vec<Value> = route
        .candidates
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["psp"] = c.rail.into();
            v
        })
        .collect();
    json!({
        "route_id": route.route_id,
        "expires_at": crate::rfc3339(route.expires_at),
        "destination_kind": route.kind,
        "amount": {"minor_units": route.amount_minor, "currency": route.currency},
        "amount_sat": route.amount_sat,
        "amount_msat": route.amount_msat,
        "fx_quote_id": route.fx_quote_id,
        "priority": route.priority,
        "eta_bound_sec": route.eta_bound_sec,
        "candidates": candidates,
        "recommend": route.recommend,
        "unavailable": route.unavailable,
        "method": route.method,
        "geo": route.geo,
    })
}

fn bad(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, msg)
}

pub(super) fn parse(body: &[u8]) -> Result<RouteRequest, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad("invalid_request", format!("body is not JSON: {e}")))?;
    let (amount_minor, currency) = amount(&v)?;
    let destination = match v.get("destination") {
        Some(Value::String(d)) => d.clone(),
        None | Some(Value::Null) => {
            let why = "destination is required: the BOLT11 invoice, BOLT12 offer, node id (keysend), address or \
                       BIP21 URI to pay — a bitcoin payout cannot be routed by method and geo alone";
            return Err(bad("destination_required", why));
        }
        Some(_) => return Err(bad("invalid_destination", "destination must be a string")),
    };
    match v.get("direction").and_then(Value::as_str) {
        None | Some("payout") => {}
        Some(other) => return Err(bad("invalid_request", format!("direction {other:?} is not supported (payout)"))),
    }
    let priority = match v.get("priority") {
        None => Priority::Normal,
        Some(p) => p
            .as_str()
            .and_then(Priority::parse)
            .ok_or_else(|| bad("invalid_priority", format!("priority must be high, normal or low, not {p}")))?,
    };
    let method = text(&v, "method")?
        .map(|m| {
            Method::parse(&m)
                .map_err(|msg| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "method_not_supported", msg))
        })
        .transpose()?;
    let geo = text(&v, "geo")?.map(|g| g.to_ascii_uppercase());
    if geo.as_ref().is_some_and(|g| g.len() != 2 || !g.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(bad("invalid_geo", "geo must be an ISO 3166 alpha-2 country code such as DE"));
    }
    let fx_quote_id = text(&v, "fx_quote_id")?;
    Ok(RouteRequest { amount_minor, currency, destination, priority, fx_quote_id, method, geo })
}

/// `amount: {minor_units, currency}`.
fn amount(v: &Value) -> Result<(u64, String), ApiError> {
    let amount = v.get("amount").ok_or_else(|| bad("invalid_request", "amount is required"))?;
    let minor = amount.get("minor_units").and_then(Value::as_u64).ok_or_else(|| {
        bad("invalid_amount", "amount.minor_units must be a whole number of the currency's minor units")
    })?;
    let currency = amount
        .get("currency")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("invalid_request", "amount.currency must be a string (BTC, SAT, EUR, …)"))?;
    Ok((minor, currency.to_owned()))
}

/// An optional non-empty string field.
fn text(v: &Value, key: &str) -> Result<Option<String>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(other) => Err(bad("invalid_request", format!("{key} must be a non-empty string, not {other}"))),
    }
}
