//! `POST /v1/webhooks {url, events?}` → `201 {endpoint_id, url, events, state, created_at,
//! secret}` (the secret is shown this once); `GET /v1/webhooks` lists the key's endpoints;
//! `DELETE /v1/webhooks/{id}` removes one. Any scope may register: a key hears only its own events.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::authorize_any;
use super::ApiError;
use crate::apikey::Scope;
use crate::state::AppState;
use crate::webhook::{self, WebhookError};

pub(crate) async fn create(State(ctx): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let key = match authorize_any(&ctx, &headers, &Scope::ALL) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg).into_response();
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad("invalid_request", format!("body is not JSON: {e}")),
    };
    let Some(url) = v.get("url").and_then(Value::as_str) else {
        return bad("invalid_url", "url must be a string".into());
    };
    let events: Vec<String> = match v.get("events") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
            list.iter().filter_map(Value::as_str).map(str::to_owned).collect()
        }
        Some(_) => return bad("invalid_event", "events must be an array of event names".into()),
    };
    match tokio::task::block_in_place(|| webhook::register(&ctx, &key.id, url, &events)) {
        Ok(registered) => (StatusCode::CREATED, Json(json!(registered))).into_response(),
        Err(e @ WebhookError::InvalidUrl(_)) => bad("invalid_url", e.to_string()),
        Err(e @ WebhookError::InvalidEvent(_)) => bad("invalid_event", e.to_string()),
        Err(WebhookError::Store(e)) => internal(e),
    }
}

pub(crate) async fn list(State(ctx): State<AppState>, headers: HeaderMap) -> Response {
    let key = match authorize_any(&ctx, &headers, &Scope::ALL) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    match ctx.store.endpoints(Some(&key.id)) {
        Ok(endpoints) => Json(json!({ "webhooks": endpoints })).into_response(),
        Err(e) => internal(e),
    }
}

pub(crate) async fn delete(State(ctx): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let key = match authorize_any(&ctx, &headers, &Scope::ALL) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    match ctx.store.delete_endpoint(&key.id, &id) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => {
            ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found", format!("no webhook {id}")).into_response()
        }
        Err(e) => internal(e),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "webhook endpoints");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not read or write webhooks").into_response()
}
