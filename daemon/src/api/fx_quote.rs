//! `GET /v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000` (scope `quote`):
//! `{pair, rate, markup_bps, expires_at, quote_id, amount_minor, amount_sat, quote_amount_minor}`.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::auth::authorize;
use super::ApiError;
use crate::apikey::Scope;
use crate::fx::money::Side;
use crate::fx::{self, QuoteRequest};
use crate::state::AppState;

/// The query string's fields, every one optional so that a missing one gets our own error.
#[derive(Default)]
pub(super) struct Params {
    base: Option<String>,
    quote: Option<String>,
    side: Option<String>,
    amount_minor: Option<String>,
}

impl Params {
    /// Percent-decodes `query`; unknown fields are ignored, a repeated one keeps its last value.
    pub(super) fn parse(query: &str) -> Params {
        let mut params = Params::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*name {
                "base" => &mut params.base,
                "quote" => &mut params.quote,
                "side" => &mut params.side,
                "amount_minor" => &mut params.amount_minor,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        params
    }
}

/// A quote as the API shows it.
#[derive(Serialize)]
pub(crate) struct QuoteView<'a> {
    pair: &'a str,
    rate: String,
    markup_bps: u32,
    expires_at: String,
    quote_id: &'a str,
    amount_minor: u64,
    quote_amount_minor: u64,
    amount_sat: u64,
}

impl<'a> From<&'a fx::Quote> for QuoteView<'a> {
    fn from(quote: &'a fx::Quote) -> Self {
        QuoteView {
            pair: &quote.pair,
            rate: quote.rate.to_string(),
            markup_bps: quote.markup_bps,
            expires_at: crate::rfc3339(quote.expires_at),
            quote_id: &quote.quote_id,
            amount_minor: quote.amount_minor,
            quote_amount_minor: quote.quote_amount_minor,
            amount_sat: quote.amount_sat,
        }
    }
}

// The whole request is taken (not `HeaderMap` + `Query`): nothing is copied on the hot path.
pub(crate) async fn handle(State(ctx): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let key = authorize(&ctx, request.headers(), Scope::Quote)?;
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    let q = Params::parse(request.uri().query().unwrap_or_default());
    let field = |value: Option<String>, name: &str| {
        value.map(|v| v.trim().to_ascii_uppercase()).ok_or_else(|| bad("invalid_request", format!("missing {name}")))
    };
    let side = q.side.unwrap_or_default();
    let req = QuoteRequest {
        base: field(q.base, "base")?,
        quote: field(q.quote, "quote")?,
        side: Side::parse(&side)
            .ok_or_else(|| bad("invalid_side", format!("side must be buy or sell, not {side:?}")))?,
        amount_minor: q
            .amount_minor
            .and_then(|a| a.parse::<u64>().ok())
            .ok_or_else(|| bad("invalid_amount", "amount_minor must be a whole number of minor units".into()))?,
    };
    let quote = fx::quote(&ctx.config.fx, &ctx.fx, &ctx.store, &key.id, &req, crate::unix_now(), "api")?;
    Ok(Json(QuoteView::from(&quote)).into_response())
}

/// A quote as the API shows it (also inside a `requote_required` error).
pub(crate) fn quote_json(quote: &fx::Quote) -> Value {
    serde_json::to_value(QuoteView::from(quote)).unwrap_or_default()
}
