//! `POST /v1/fx/execute` (scope `pay`, `X-Idempotency-Key`) `{quote_id, amount_minor, pair}` →
//! `{status:"filled", avg_rate, fx_entry_id}`; the fill and the stored response are written in
//! one transaction.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::auth::authorize;
use super::error::json_bytes;
use super::fx_quote::{map_error, quote_json};
use super::{idempotency, ApiError};
use crate::apikey::Scope;
use crate::fx::money::{display_rate, Side};
use crate::fx::record::FillError;
use crate::fx::{self, ExecuteError, ExecuteRequest};
use crate::state::AppState;
use rust_decimal::Decimal;

pub(crate) async fn handle(State(ctx): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let key = match authorize(&ctx, &headers, Scope::Pay) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let idem = match idempotency::begin(&ctx, &key.id, &headers, "POST /v1/fx/execute", &body) {
        Ok(idem) => idem,
        Err(answer) => return *answer,
    };
    let fill = parse(&body).and_then(|req| {
        fx::execute(&ctx.config.fx, &ctx.fx, &ctx.store, &key.id, &req, crate::unix_now()).map_err(map_execute_error)
    });
    let fill = match fill {
        Ok(fill) => fill,
        Err(e) => return idempotency::finish_error(&ctx, &key.id, &idem, e),
    };
    // The rate as the quote showed it (the store keeps full precision).
    let side = if fill.side == "sell" { Side::Sell } else { Side::Buy };
    let avg_rate =
        fill.rate.parse::<Decimal>().map(|r| display_rate(r, side).to_string()).unwrap_or_else(|_| fill.rate.clone());
    let answer =
        json!({ "status": "filled", "avg_rate": avg_rate, "fx_entry_id": fill.fx_entry_id }).to_string().into_bytes();
    match ctx.store.record_fill(&fill, (&key.id, &idem), 200, &answer, crate::unix_now()) {
        Ok(()) => {
            tracing::info!(fx_entry_id = %fill.fx_entry_id, quote_id = %fill.quote_id, amount_sat = fill.amount_sat, "fx fill");
            json_bytes(StatusCode::OK, answer)
        }
        Err(FillError::AlreadyFilled) => idempotency::finish_error(
            &ctx,
            &key.id,
            &idem,
            ApiError::new(
                StatusCode::CONFLICT,
                "quote_already_filled",
                format!("quote {} is already filled", fill.quote_id),
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "recording a fill");
            idempotency::finish_error(
                &ctx,
                &key.id,
                &idem,
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not record the fill"),
            )
        }
    }
}

fn parse(body: &[u8]) -> Result<ExecuteRequest, ApiError> {
    let bad = |msg: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", msg);
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(&format!("body is not JSON: {e}")))?;
    let text = |k: &str| {
        v.get(k).and_then(Value::as_str).map(str::to_owned).ok_or_else(|| bad(&format!("{k} must be a string")))
    };
    Ok(ExecuteRequest {
        quote_id: text("quote_id")?,
        pair: text("pair")?,
        amount_minor: v.get("amount_minor").and_then(Value::as_u64).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_amount", "amount_minor must be a whole number")
        })?,
    })
}

fn map_execute_error(e: ExecuteError) -> ApiError {
    let msg = e.to_string();
    match e {
        ExecuteError::UnknownQuote(_) => ApiError::new(StatusCode::NOT_FOUND, "quote_not_found", msg),
        ExecuteError::Mismatch(_) => ApiError::new(StatusCode::BAD_REQUEST, "quote_mismatch", msg),
        ExecuteError::Expired(_) => ApiError::new(StatusCode::GONE, "quote_expired", msg),
        ExecuteError::AlreadyFilled(_) => ApiError::new(StatusCode::CONFLICT, "quote_already_filled", msg),
        ExecuteError::Requote { quote, .. } => {
            ApiError::new(StatusCode::CONFLICT, "requote_required", msg).with("quote", quote_json(&quote))
        }
        ExecuteError::OverBudget { .. } => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "fx_budget_exceeded", msg),
        ExecuteError::Fx(e) => map_error(e),
    }
}
