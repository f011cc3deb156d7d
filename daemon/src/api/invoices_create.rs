//! `POST /v1/invoices` (scope `invoice`, `X-Idempotency-Key`) `{amount:{minor_units, currency},
//! description, expiry_secs?, metadata?, speed?}` → `201` the invoice: its amount locked in sats
//! (a fiat amount at an FX quote), a fresh treasury address, the node's BOLT11 invoice when
//! Lightning runs, and the BIP21 URI carrying both.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::auth::authorize;
use super::error::json_bytes;
use super::{idempotency, ApiError};
use crate::apikey::Scope;
use crate::invoice::{self, record, NewInvoice, Speed};
use crate::rails::lightning::blocking_ln;
use crate::rails::onchain::blocking;
use crate::state::AppState;

const ROUTE: &str = "POST /v1/invoices";

pub(crate) async fn handle(State(ctx): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let key = authorize(&ctx, &headers, Scope::Invoice)?;
    let idem = match idempotency::begin(&ctx, &key.id, &headers, ROUTE, &body) {
        Ok(idem) => idem,
        Err(answer) => return Ok(*answer),
    };
    Ok(match create(&ctx, &key.id, &idem, &body).await {
        Ok(answer) => json_bytes(StatusCode::CREATED, answer),
        Err(e) => idempotency::finish_error(&ctx, &key.id, &idem, e),
    })
}

async fn create(ctx: &AppState, key_id: &str, idem: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let req = parse(body)?;
    let now = crate::unix_now();
    let priced = invoice::price((&ctx.config.fx, &ctx.fx, &ctx.store), key_id, &req, now)?;
    if priced.amount_sat > invoice::MAX_AMOUNT_SAT {
        let msg = format!("{} sat is more than the 21 million bitcoin there are", priced.amount_sat);
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_amount", msg));
    }
    let treasury = Arc::clone(ctx.onchain.treasury());
    let address = blocking(move || treasury.new_address())
        .await
        .map_err(|e| match e.is_disk_full() {
            true => ApiError::disk_full(&e),
            false => ApiError::internal("derive an address", &e),
        })?
        .to_string();
    let lightning = match ctx.lightning.node() {
        Ok(node) => {
            let (msat, description) = (priced.amount_sat.saturating_mul(1_000), req.description.clone());
            let expiry = u32::try_from(req.expiry_secs).unwrap_or(u32::MAX);
            match blocking_ln(move || node.invoice(Some(msat), &description, expiry)).await {
                Ok(made) => Some((made.bolt11, made.payment_hash)),
                Err(e) => return Err(ApiError::internal("create the lightning invoice", &e)),
            }
        }
        Err(_) => None,
    };
    let inv = record::new_row(key_id, &req, priced, address, lightning, now);
    let answer = invoice::view(&inv).to_string().into_bytes();
    ctx.store.record_invoice(&inv, (key_id, idem), &answer, now)?;
    tracing::info!(invoice_id = %inv.invoice_id, amount_sat = inv.amount_sat, currency = %inv.currency, "invoice created");
    Ok(answer)
}

pub(super) fn parse(body: &[u8]) -> Result<NewInvoice, ApiError> {
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad("invalid_request", format!("body is not JSON: {e}")))?;
    let amount = v.get("amount");
    let amount_minor = amount.and_then(|a| a.get("minor_units")).and_then(Value::as_u64).filter(|n| *n > 0);
    let amount_minor = amount_minor.ok_or_else(|| {
        bad("invalid_amount", "amount.minor_units must be a whole number of minor units, at least 1".into())
    })?;
    let currency =
        amount.and_then(|a| a.get("currency")).and_then(Value::as_str).map(|c| c.trim().to_ascii_uppercase());
    let currency = currency.ok_or_else(|| bad("invalid_currency", "amount.currency must be a currency code".into()))?;
    if currency != "SAT" && crate::fx::money::exponent(&currency).is_none() {
        return Err(bad("invalid_currency", format!("unsupported currency {currency:?}")));
    }
    let description = match v.get("description") {
        Some(Value::String(d)) if d.len() <= 500 => d.clone(),
        None | Some(Value::Null) => String::new(),
        _ => return Err(bad("invalid_description", "description must be a string of at most 500 bytes".into())),
    };
    let expiry_secs = match v.get("expiry_secs") {
        None | Some(Value::Null) => invoice::DEFAULT_EXPIRY_SECS,
        Some(e) => e
            .as_u64()
            .filter(|s| (invoice::MIN_EXPIRY_SECS..=invoice::MAX_EXPIRY_SECS).contains(s))
            .ok_or_else(|| {
                bad(
                    "invalid_expiry",
                    format!("expiry_secs must be {} to {} seconds", invoice::MIN_EXPIRY_SECS, invoice::MAX_EXPIRY_SECS),
                )
            })?,
    };
    let metadata = match v.get("metadata") {
        None | Some(Value::Null) => None,
        Some(m @ Value::Object(_)) if m.to_string().len() <= 4096 => Some(m.clone()),
        _ => return Err(bad("invalid_metadata", "metadata must be a JSON object of at most 4096 bytes".into())),
    };
    let speed = match v.get("speed") {
        None | Some(Value::Null) => Speed::Medium,
        Some(s) => s
            .as_str()
            .and_then(Speed::parse)
            .ok_or_else(|| bad("invalid_speed", "speed must be high, medium or low".into()))?,
    };
    Ok(NewInvoice { currency, amount_minor, description, expiry_secs, metadata, speed })
}
