//! `POST /v1/invoices/{id}/refund` (scope `pay`, `X-Idempotency-Key`) `{destination, amount:
//! "rate_then" | "current_rate" | {minor_units, currency}, priority?, rail?}` → `202 {payment_id,
//! status:"SUBMITTED", invoice_id, mode, rail, amount_sat, …}`: a payout through the route and
//! submit machinery, capped at what the invoice received less its other refunds.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::auth::authorize;
use super::error::json_bytes;
use super::{idempotency, ApiError};
use crate::apikey::Scope;
use crate::invoice::refund::RefundAmount;
use crate::payment::refund::{self, RefundRequest};
use crate::route::Priority;
use crate::state::AppState;

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = authorize(&ctx, &headers, Scope::Pay)?;
    // The invoice is part of what the key's answer is for.
    let idem = match idempotency::begin(&ctx, &key.id, &headers, &format!("POST /v1/invoices/{id}/refund"), &body) {
        Ok(idem) => idem,
        Err(answer) => return Ok(*answer),
    };
    if let Some(trace_id) = super::trace_id(&headers) {
        if let Err(e) = ctx.store.record_trace((&key.id, &idem), &trace_id) {
            tracing::warn!(error = %e, "the refund's trace not recorded");
        }
    }
    let now = crate::unix_now();
    let parsed = parse(id, &body).and_then(|mut req| {
        req.limits = crate::limits::for_key(&ctx.store, (&ctx.config.fx, &ctx.fx), &key.id, now)?;
        Ok(req)
    });
    let done = match parsed {
        Ok(req) => {
            refund::refund((&ctx.router, &ctx.payments), (&key.id, &idem), &req, now).await.map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    Ok(match done {
        Ok(answer) => json_bytes(StatusCode::ACCEPTED, answer),
        Err(e) => idempotency::finish_error(&ctx, &key.id, &idem, e),
    })
}

pub(super) fn parse(invoice_id: String, body: &[u8]) -> Result<RefundRequest, ApiError> {
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad("invalid_request", format!("body is not JSON: {e}")))?;
    let destination = match v.get("destination") {
        Some(Value::String(d)) if !d.trim().is_empty() => d.trim().to_owned(),
        _ => {
            return Err(bad(
                "destination_required",
                "destination (an address, invoice or BIP21 URI) is required".into(),
            ))
        }
    };
    let amount = match v.get("amount") {
        Some(Value::String(s)) if s == "rate_then" => RefundAmount::RateThen,
        Some(Value::String(s)) if s == "current_rate" => RefundAmount::CurrentRate,
        Some(Value::Object(a)) => {
            let minor_units = a.get("minor_units").and_then(Value::as_u64).filter(|n| *n > 0);
            let currency = a.get("currency").and_then(Value::as_str).map(|c| c.trim().to_ascii_uppercase());
            match (minor_units, currency) {
                (Some(minor_units), Some(currency)) => RefundAmount::Exact { minor_units, currency },
                _ => {
                    return Err(bad(
                        "invalid_amount",
                        "amount.minor_units (at least 1) and amount.currency are required".into(),
                    ))
                }
            }
        }
        _ => {
            return Err(bad(
                "invalid_amount",
                "amount must be \"rate_then\", \"current_rate\" or {minor_units, currency}".into(),
            ))
        }
    };
    let priority = match v.get("priority") {
        None | Some(Value::Null) => Priority::Normal,
        Some(p) => p
            .as_str()
            .and_then(Priority::parse)
            .ok_or_else(|| bad("invalid_priority", format!("priority must be high, normal or low, not {p}")))?,
    };
    let rail = match v.get("rail") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => return Err(bad("invalid_rail", "rail must be a string".into())),
    };
    Ok(RefundRequest { invoice_id, destination, amount, priority, rail, limits: None })
}
