//! `POST /v1/webhooks {url, events?}` → `201 {endpoint_id, url, events, state, created_at,
//! secret}` (the secret is shown this once). Any scope may register: a key hears only its own
//! events.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::authorize_any;
use super::ApiError;
use crate::apikey::Scope;
use crate::state::AppState;
use crate::webhook;

pub(crate) async fn handle(State(ctx): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &Scope::ALL)?;
    let (url, events) = parse(&body)?;
    let registered = tokio::task::block_in_place(|| webhook::register(&ctx.webhooks, &key.id, &url, &events))?;
    Ok((StatusCode::CREATED, Json(json!(registered))).into_response())
}

pub(super) fn parse(body: &[u8]) -> Result<(String, Vec<String>), ApiError> {
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad("invalid_request", format!("body is not JSON: {e}")))?;
    let url = v.get("url").and_then(Value::as_str).ok_or_else(|| bad("invalid_url", "url must be a string".into()))?;
    let events = match v.get("events") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            list.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        Some(_) => return Err(bad("invalid_event", "events must be an array of event names".into())),
    };
    Ok((url.to_owned(), events))
}
