//! `POST /v1/payments/submit` (scope `pay`, `X-Idempotency-Key`) `{route_id, rail | psp, fx_quote_id?}`
//! → `202 {payment_id, status:"SUBMITTED"}`; `GET /v1/payments/{id}` and
//! `GET /v1/payments?status=&cursor=&limit=` (scope `read` or `pay`) report a key's payments.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{authorize, authorize_any};
use super::error::json_bytes;
use super::payments_route::RETRY_AFTER_SECS;
use super::{idempotency, ApiError};
use crate::apikey::Scope;
use crate::payment::submit::{self, SubmitError, SubmitRequest};
use crate::payment::{InsertError, State as SagaState};
use crate::state::AppState;

const ROUTE: &str = "POST /v1/payments/submit";
const MAX_PAGE: usize = 100;

pub(crate) async fn submit(State(ctx): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let key = match authorize(&ctx, &headers, Scope::Pay) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let idem = match idempotency::begin(&ctx, &key.id, &headers, ROUTE, &body) {
        Ok(idem) => idem,
        Err(answer) => return *answer,
    };
    let accepted = match parse(&body) {
        Ok(req) => submit::accept(&ctx, &key.id, &idem, &req, crate::unix_now()).await.map_err(map_submit_error),
        Err(e) => Err(e),
    };
    match accepted {
        Ok(payment) => json_bytes(StatusCode::ACCEPTED, submit::answer(&payment.payment_id)),
        Err(e) => idempotency::finish_error(&ctx, &key.id, &idem, e),
    }
}

pub(crate) async fn get(State(ctx): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let key = match authorize_any(&ctx, &headers, &[Scope::Read, Scope::Pay]) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    match ctx.store.payment(&id) {
        Ok(Some(p)) if p.api_key_id == key.id => Json(p.view()).into_response(),
        Ok(_) => ApiError::new(StatusCode::NOT_FOUND, "payment_not_found", format!("no payment {id}")).into_response(),
        Err(e) => internal(e),
    }
}

pub(crate) async fn list(State(ctx): State<AppState>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let key = match authorize_any(&ctx, &headers, &[Scope::Read, Scope::Pay]) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let (mut states, mut cursor, mut limit): (&[SagaState], Option<String>, usize) = (&[], None, 50);
    for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg).into_response();
        match &*k {
            "status" => match SagaState::for_status(&v) {
                Some(s) => states = s,
                None => {
                    return bad(
                        "invalid_status",
                        format!("status must be SUBMITTED, PENDING, SETTLED or FAILED, not {v:?}"),
                    )
                }
            },
            "cursor" => cursor = Some(v.into_owned()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => limit = n,
                _ => return bad("invalid_limit", format!("limit must be 1 to {MAX_PAGE}")),
            },
            other => return bad("invalid_request", format!("unknown parameter {other:?} (status, cursor, limit)")),
        }
    }
    match ctx.store.payments(Some(&key.id), states, cursor.as_deref(), limit + 1) {
        Ok(mut page) => {
            let more = page.len() > limit;
            page.truncate(limit);
            let next_cursor = more.then(|| page.last().map(|p| p.payment_id.clone())).flatten();
            let payments: Vec<Value> = page.iter().map(|p| p.view()).collect();
            Json(json!({ "payments": payments, "next_cursor": next_cursor })).into_response()
        }
        Err(e) => internal(e),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "reading payments");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not read payments").into_response()
}

fn parse(body: &[u8]) -> Result<SubmitRequest, ApiError> {
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
    Ok(SubmitRequest { route_id, rail, fx_quote_id })
}

fn map_submit_error(e: SubmitError) -> ApiError {
    let msg = e.to_string();
    let err = |status, code| ApiError::new(status, code, msg.clone());
    match e {
        SubmitError::UnknownRoute(_) => err(StatusCode::NOT_FOUND, "route_not_found"),
        SubmitError::RouteExpired(_) => err(StatusCode::GONE, "route_expired"),
        SubmitError::InvalidRail(_) => err(StatusCode::BAD_REQUEST, "invalid_rail"),
        SubmitError::RailNotOffered { .. } => err(StatusCode::UNPROCESSABLE_ENTITY, "rail_not_offered"),
        SubmitError::RailDisabled(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "rail_disabled"),
        SubmitError::QuoteMismatch(_) => err(StatusCode::BAD_REQUEST, "quote_mismatch"),
        SubmitError::QuoteExpired(_) => err(StatusCode::GONE, "quote_expired"),
        SubmitError::Destination(d) => err(StatusCode::BAD_REQUEST, d.code()),
        SubmitError::InsufficientFunds { available, .. } => {
            err(StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds").with("available", json!(available))
        }
        SubmitError::Conflict(InsertError::RouteTaken(_)) => err(StatusCode::CONFLICT, "route_already_submitted"),
        SubmitError::Conflict(InsertError::QuoteTaken(_)) => err(StatusCode::CONFLICT, "quote_already_used"),
        SubmitError::Conflict(InsertError::AlreadyPaying) => err(StatusCode::CONFLICT, "duplicate_payment"),
        SubmitError::LightningUnavailable(_) => ApiError::retry_later("lightning_starting", msg, RETRY_AFTER_SECS),
        SubmitError::ChannelNotUsable(_) => ApiError::retry_later("channel_not_usable", msg, RETRY_AFTER_SECS),
        SubmitError::Conflict(_) | SubmitError::Store(_) => {
            tracing::error!(error = %msg, "submitting a payment");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not record the payment")
        }
    }
}
