//! `GET /v1/health`: 200 while bitcoind is reachable on the right chain, 503 otherwise, with chain
//! and wallet-sync heights either way. Needs no API key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::ApiError;
use crate::state::AppState;

pub(crate) async fn handle(State(ctx): State<AppState>) -> Result<Response, ApiError> {
    let status = ctx.status.borrow().clone();
    let code = if status.reachable { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if status.reachable { "ok" } else { "unavailable" },
        "network": ctx.network.to_string(),
        "bitcoind": {
            "reachable": status.reachable,
            "chain_height": status.chain_height,
            "headers": status.headers,
            "initial_block_download": status.initial_block_download,
            "error": status.last_error,
        },
        "wallet": {
            "synced_height": ctx.treasury.synced_height(),
            "synced": status.wallet_synced(),
        },
        "lightning": crate::ln::summary(&ctx),
    });
    Ok((code, Json(body)).into_response())
}
