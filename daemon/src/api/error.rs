//! The API's one error shape: `{"error": {"code", "message"}}` with a stable `code` and the HTTP
//! status a client can act on.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// An API error.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// Extra fields of the error object (e.g. the fresh `quote` of `requote_required`).
    pub extra: Map<String, Value>,
    /// `Retry-After`, seconds: the error clears by itself (a 503 a client should retry).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), extra: Map::new(), retry_after_secs: None }
    }

    /// A 503 for something that clears by itself, with `Retry-After: secs`.
    pub fn retry_later(code: &'static str, message: impl Into<String>, secs: u64) -> Self {
        ApiError { retry_after_secs: Some(secs), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// The status and the exact body bytes (what idempotent routes store and replay).
    pub fn render(&self) -> (StatusCode, Vec<u8>) {
        let mut error = self.extra.clone();
        error.insert("code".into(), Value::from(self.code));
        error.insert("message".into(), Value::from(self.message.clone()));
        if let Some(secs) = self.retry_after_secs {
            error.insert("retry_after_sec".into(), Value::from(secs));
        }
        (self.status, json!({ "error": error }).to_string().into_bytes())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.render();
        let mut response = json_bytes(status, body);
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// A JSON response made of exactly these bytes.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}
