//! Idempotent routes, after the IETF draft and Stripe: keyed by (API key, `X-Idempotency-Key`),
//! with a fingerprint of the request. Same key and body → the stored response, byte for byte;
//! same key, other body → 422; same key while the first is running → 409; no key → 400.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sendero_wallet::bitcoin::hashes::{sha256, Hash};

use super::error::json_bytes;
use super::ApiError;
use crate::state::AppState;
use crate::store::IdemBegin;

const HEADER: &str = "x-idempotency-key";

/// Claims the request's idempotency key, or answers it (replay or refusal).
pub(crate) fn begin(
    ctx: &AppState,
    key_id: &str,
    headers: &HeaderMap,
    route: &str,
    body: &[u8],
) -> Result<String, Box<Response>> {
    let idem = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| -> Box<Response> {
            Box::new(
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "idempotency_key_required",
                    "send X-Idempotency-Key (1 to 255 characters)",
                )
                .into_response(),
            )
        })?;
    let mut material = route.as_bytes().to_vec();
    material.push(b'\n');
    material.extend_from_slice(body);
    let fingerprint = sha256::Hash::hash(&material).to_string();
    let answer = match ctx.store.idempotency_begin(key_id, idem, &fingerprint, crate::unix_now()) {
        Ok(IdemBegin::Fresh) => return Ok(idem.to_owned()),
        Ok(IdemBegin::Replay { status, body }) => {
            json_bytes(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
        }
        Ok(IdemBegin::Mismatch) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_mismatch",
            "this idempotency key was used with another request body",
        )
        .into_response(),
        Ok(IdemBegin::InFlight) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_flight",
            "a request with this idempotency key is still being processed; retry shortly",
        )
        .into_response(),
        Err(e) if e.is_disk_full() => ApiError::disk_full(&e).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "idempotency store");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "idempotency store failed").into_response()
        }
    };
    Err(Box::new(answer))
}

/// Stores a refusal to replay it (4xx), or releases the key (5xx: a retry may succeed).
pub(crate) fn finish_error(ctx: &AppState, key_id: &str, idem: &str, error: ApiError) -> Response {
    let (status, body) = error.render();
    let stored = if status.is_server_error() {
        ctx.store.idempotency_abandon(key_id, idem)
    } else {
        ctx.store.idempotency_finish(key_id, idem, status.as_u16(), &body)
    };
    if let Err(e) = stored {
        tracing::error!(error = %e, "idempotency store");
    }
    error.into_response()
}
