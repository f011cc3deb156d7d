//! The public HTTP API (`/v1`): a flat route table over thin handlers, with body limits, timeouts
//! and a tracing span per request.

mod auth;
mod error;
mod fx_execute;
mod fx_quote;
mod health;
mod idempotency;

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::state::AppState;

/// The route table.
pub fn router(state: AppState) -> Router {
    let api = &state.config.api;
    let (limit, timeout) = (api.body_limit_bytes, Duration::from_secs(api.request_timeout_secs));
    Router::new()
        .route("/v1/health", get(health::handle))
        .route("/v1/fx/quote", get(fx_quote::handle))
        .route("/v1/fx/execute", post(fx_execute::handle))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves the API on `listener` until `cancel`.
pub async fn serve(listener: TcpListener, state: AppState, cancel: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(cancel.cancelled_owned()).await
}
