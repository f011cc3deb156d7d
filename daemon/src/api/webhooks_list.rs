//! `GET /v1/webhooks`: the key's endpoints (never their secrets).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::auth::authorize_any;
use super::ApiError;
use crate::apikey::Scope;
use crate::state::AppState;

pub(crate) async fn handle(State(ctx): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &Scope::ALL)?;
    Ok(Json(json!({ "webhooks": ctx.store.endpoints(Some(&key.id))? })).into_response())
}
