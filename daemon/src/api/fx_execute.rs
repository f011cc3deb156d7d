//! `POST /v1/fx/execute` (scope `pay`, `X-Idempotency-Key`) `{quote_id, amount_minor, pair}` →
//! `{status:"filled", avg_rate, fx_entry_id}`; the fill and the stored response are written in
//! one transaction.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::authorize;
use super::error::json_bytes;
use super::{idempotency, ApiError};
use crate::apikey::Scope;
use crate::fx::money::{display_rate, Side};
use crate::fx::record::FillError;
use crate::fx::{self, ExecuteError, ExecuteRequest};
use crate::state::AppState;
use rust_decimal::Decimal;

pub(crate) async fn handle(State(ctx): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let key = authorize(&ctx, &headers, Scope::Pay)?;
    let idem = match idempotency::begin(&ctx, &key.id, &headers, "POST /v1/fx/execute", &body) {
        Ok(idem) => idem,
        Err(answer) => return Ok(*answer),
    };
    Ok(match fill(&ctx, &key.id, &idem, &body) {
        Ok(answer) => json_bytes(StatusCode::OK, answer),
        Err(e) => idempotency::finish_error(&ctx, &key.id, &idem, e),
    })
}

/// Checks the request against its quote and the market, then records the fill, its ledger entry
/// and the answer together; returns the answer.
fn fill(ctx: &AppState, key_id: &str, idem: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let req = parse(body)?;
    // A quote that locks an invoice's amount prices what the customer owes; it is not a trade.
    match ctx.store.invoice_of_quote(&req.quote_id) {
        Ok(Some(invoice_id)) => {
            let msg = format!("quote {} locks the amount of invoice {invoice_id}; it cannot be executed", req.quote_id);
            return Err(ApiError::new(StatusCode::CONFLICT, "quote_reserved", msg));
        }
        Ok(None) => {}
        Err(e) => return Err(ApiError::internal("read the quote's invoice", &e)),
    }
    let fill = fx::execute(&ctx.config.fx, &ctx.fx, &ctx.store, key_id, &req, crate::unix_now())?;
    // The rate as the quote showed it (the store keeps full precision).
    let side = if fill.side == "sell" { Side::Sell } else { Side::Buy };
    let avg_rate =
        fill.rate.parse::<Decimal>().map(|r| display_rate(r, side).to_string()).unwrap_or_else(|_| fill.rate.clone());
    let answer =
        json!({ "status": "filled", "avg_rate": avg_rate, "fx_entry_id": fill.fx_entry_id }).to_string().into_bytes();
    match ctx.store.record_fill(&fill, (key_id, idem), 200, &answer, crate::unix_now()) {
        Ok(()) => {
            tracing::info!(fx_entry_id = %fill.fx_entry_id, quote_id = %fill.quote_id, amount_sat = fill.amount_sat, "fx fill");
            Ok(answer)
        }
        Err(FillError::AlreadyFilled) => Err(ExecuteError::AlreadyFilled(fill.quote_id).into()),
        Err(e) => Err(ApiError::internal("record the fill", &e)),
    }
}

pub(super) fn parse(body: &[u8]) -> Result<ExecuteRequest, ApiError> {
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
