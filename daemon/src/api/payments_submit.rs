//! `POST /v1/payments/submit` (scope `pay`, `X-Idempotency-Key`) `{route_id, rail | psp,
//! fx_quote_id?}` → `202 {payment_id, status:"SUBMITTED"}`. A refusal is stored as the key's
//! answer (4xx) or releases the key (5xx, 503: a retry may succeed).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::auth::authorize;
use super::error::json_bytes;
use super::{idempotency, ApiError};
use crate::apikey::Scope;
use crate::limits;
use crate::payment::record::InsertError;
use crate::payment::submit::{self, SubmitError, SubmitRequest};
use crate::state::AppState;

const ROUTE: &str = "POST /v1/payments/submit";

pub(crate) async fn handle(State(ctx): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let key = authorize(&ctx, &headers, Scope::Pay)?;
    let idem = match idempotency::begin(&ctx, &key.id, &headers, ROUTE, &body) {
        Ok(idem) => idem,
        Err(answer) => return Ok(*answer),
    };
    if let Some(trace_id) = super::trace_id(&headers) {
        if let Err(e) = ctx.store.record_trace((&key.id, &idem), &trace_id) {
            tracing::warn!(error = %e, "the submit's trace not recorded");
        }
    }
    let now = crate::unix_now();
    let accepted = match parse(&body).and_then(|req| with_limits(&ctx, &key.id, req, now)) {
        Ok(req) => submit::accept(&ctx.payments, &key.id, &idem, &req, now).await.map_err(|e| match e {
            SubmitError::Conflict(InsertError::Answered { status, body }) => AcceptError::Answered { status, body },
            e => AcceptError::Api(ApiError::from(e)),
        }),
        Err(e) => Err(AcceptError::Api(e)),
    };
    Ok(match accepted {
        Ok(payment) => json_bytes(StatusCode::ACCEPTED, submit::answer(&payment.payment_id)),
        Err(AcceptError::Answered { status, body }) => {
            // Another front end answered this key first: its answer, byte for byte.
            ctx.store.idempotency_release(&key.id, &idem);
            json_bytes(StatusCode::from_u16(status).unwrap_or(StatusCode::ACCEPTED), body)
        }
        Err(AcceptError::Api(e)) => idempotency::finish_error(&ctx, &key.id, &idem, e),
    })
}

/// Why a submit was not accepted here.
enum AcceptError {
    /// Another front end answered its idempotency key first.
    Answered { status: u16, body: Vec<u8> },
    /// Refused.
    Api(ApiError),
}

pub(super) fn parse(body: &[u8]) -> Result<SubmitRequest, ApiError> {
    let bad = |msg: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", msg);
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(format!("body is not JSON: {e}")))?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let route_id = text("route_id").ok_or_else(|| bad("route_id must be a string".into()))?;
    // The seed calls the rail `psp`; either name works, both must agree.
    let rail = match (text("rail"), text("psp")) {
        (Some(rail), Some(psp)) if rail != psp => {
            return Err(bad(format!("rail {rail:?} and psp {psp:?} name the rail twice, differently: send one")))
        }
        (Some(rail), _) | (None, Some(rail)) => rail,
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_rail",
                "rail (or psp) must be one of the route's candidates: onchain, lightning or on_us",
            ))
        }
    };
    let fx_quote_id = match v.get("fx_quote_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(q)) => Some(q.clone()),
        Some(_) => return Err(bad("fx_quote_id must be a string".into())),
    };
    Ok(SubmitRequest { route_id, rail, fx_quote_id, limits: None })
}

/// The request with the key's payout limits at the current rate.
fn with_limits(ctx: &AppState, key_id: &str, mut req: SubmitRequest, now: u64) -> Result<SubmitRequest, ApiError> {
    req.limits = limits::for_key(&ctx.store, (&ctx.config.fx, &ctx.fx), key_id, now)?;
    Ok(req)
}
