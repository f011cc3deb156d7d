//! `GET /v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000` (scope `quote`):
//! `{pair, rate, markup_bps, expires_at, quote_id, amount_minor, amount_sat, quote_amount_minor}`.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::auth::authorize;
use super::ApiError;
use crate::apikey::Scope;
use crate::fx::money::Side;
use crate::fx::{self, FxError, QuoteRequest};
use crate::state::AppState;

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key = authorize(&ctx, &headers, Scope::Quote)?;
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    let field = |name: &str| {
        q.get(name)
            .map(|v| v.trim().to_ascii_uppercase())
            .ok_or_else(|| bad("invalid_request", format!("missing {name}")))
    };
    let side = q.get("side").map(String::as_str).unwrap_or_default();
    let req = QuoteRequest {
        base: field("base")?,
        quote: field("quote")?,
        side: Side::parse(side)
            .ok_or_else(|| bad("invalid_side", format!("side must be buy or sell, not {side:?}")))?,
        amount_minor: q
            .get("amount_minor")
            .and_then(|a| a.parse::<u64>().ok())
            .ok_or_else(|| bad("invalid_amount", "amount_minor must be a whole number of minor units".into()))?,
    };
    let quote =
        fx::quote(&ctx.config.fx, &ctx.fx, &ctx.store, &key.id, &req, crate::unix_now(), "api").map_err(map_error)?;
    Ok(Json(quote_json(&quote)))
}

/// A quote as the API shows it (also inside a `requote_required` error).
pub(crate) fn quote_json(quote: &fx::Quote) -> Value {
    let expires_at = chrono::DateTime::from_timestamp(quote.expires_at as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    json!({
        "pair": quote.pair,
        "rate": quote.rate.to_string(),
        "markup_bps": quote.markup_bps,
        "expires_at": expires_at,
        "quote_id": quote.quote_id,
        "amount_minor": quote.amount_minor,
        "quote_amount_minor": quote.quote_amount_minor,
        "amount_sat": quote.amount_sat,
    })
}

pub(crate) fn map_error(e: FxError) -> ApiError {
    let msg = e.to_string();
    match e {
        FxError::UnsupportedCurrency(_) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported_currency", msg),
        FxError::UnsupportedPair(_) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported_pair", msg),
        FxError::InvalidAmount(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_amount", msg),
        FxError::RateUnavailable(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "rate_unavailable", msg),
        FxError::Store(e) => {
            tracing::error!(error = %e, "recording a quote");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not record the quote")
        }
    }
}
