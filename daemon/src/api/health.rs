//! `GET /v1/health`: 200 while bitcoind is reachable on the right chain, 503 otherwise, with chain
//! and wallet-sync heights either way. `status` is `ok`, `unavailable`, or `degraded` (still 200:
//! the gateway serves) while an alarm is open — a channel closed without the operator asking —
//! with the alarms. Needs no API key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::ApiError;
use crate::state::AppState;

pub(crate) async fn handle(State(ctx): State<AppState>) -> Result<Response, ApiError> {
    let status = ctx.status.borrow().clone().with_wallet_at(ctx.onchain.treasury().synced_height());
    let code = if status.reachable { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let (alarmed, alarms) = crate::alarm::status(&ctx.store);
    let body = json!({
        "status": if status.reachable { alarmed } else { "unavailable" },
        "alarms": alarms,
        "network": ctx.network.to_string(),
        "bitcoind": {
            "reachable": status.reachable,
            "chain_height": status.chain_height,
            "headers": status.headers,
            "initial_block_download": status.initial_block_download,
            "error": status.last_error,
        },
        "wallet": {
            "synced_height": ctx.onchain.treasury().synced_height(),
            "synced": status.wallet_synced(),
        },
        "lightning": ctx.lightning.summary(),
    });
    Ok((code, Json(body)).into_response())
}
