//! The public HTTP API (`/v1`): a flat route table over thin handlers, with body limits, timeouts
//! and a tracing span per request.

mod auth;
mod error;
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod fx_execute;
mod fx_quote;
mod health;
mod idempotency;
mod invoices_create;
mod invoices_get;
pub(crate) mod invoices_list;
mod invoices_refund;
pub mod openapi;
mod page;
mod payments_get;
mod payments_list;
mod payments_route;
mod payments_submit;
mod webhooks_create;
mod webhooks_delete;
mod webhooks_list;

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::classify::ServerErrorsFailureClass;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::state::AppState;

/// The route table. Routes that read a body or wait on I/O get the body limit and the timeout;
/// routes answered from memory (health, quotes) skip both, which keeps the quote path close to
/// a bare hyper handler (see `benches/quote.rs`).
pub fn router(state: AppState) -> Router {
    let api = &state.config.api;
    let (limit, timeout) = (api.body_limit_bytes, Duration::from_secs(api.request_timeout_secs));
    let bounded = |route: MethodRouter<AppState>| -> MethodRouter<AppState> {
        route
            .layer::<_, Infallible>(RequestBodyLimitLayer::new(limit))
            .layer::<_, Infallible>(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
    };
    Router::new()
        .route("/v1/health", get(health::handle))
        .route("/v1/openapi.json", get(contract))
        .route("/v1/fx/quote", get(fx_quote::handle))
        .route("/v1/fx/execute", bounded(post(fx_execute::handle)))
        .route("/v1/payments/route", bounded(post(payments_route::handle)))
        .route("/v1/payments/submit", bounded(post(payments_submit::handle)))
        .route("/v1/payments", bounded(get(payments_list::handle)))
        .route("/v1/payments/{id}", bounded(get(payments_get::handle)))
        .route("/v1/invoices", bounded(post(invoices_create::handle).get(invoices_list::handle)))
        .route("/v1/invoices/{id}", bounded(get(invoices_get::handle)))
        .route("/v1/invoices/{id}/refund", bounded(post(invoices_refund::handle)))
        .route("/v1/webhooks", bounded(post(webhooks_create::handle).get(webhooks_list::handle)))
        .route("/v1/webhooks/{id}", bounded(axum::routing::delete(webhooks_delete::handle)))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), forward::to_node))
        .layer(axum::middleware::from_fn(observe))
        .layer(axum::middleware::from_fn(move |req, next| edge(req, next, limit)))
        .layer(axum::middleware::from_fn(traced))
        .layer(TraceLayer::new_for_http().on_failure(failed))
        .with_state(state)
}

/// `GET /v1/openapi.json`: the API's contract (no key needed).
async fn contract() -> Response {
    static DOCUMENT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| openapi::document().to_string().into_bytes());
    error::json_bytes(StatusCode::OK, body.clone())
}

/// Gives the request its trace — the client's `traceparent`, else a new one, set on the request
/// for the handlers and answered back — and runs it inside a `request` span carrying `trace_id`.
async fn traced(mut req: Request, next: Next) -> Response {
    let given = req.headers().get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(crate::trace::from_traceparent);
    let trace_id = given.unwrap_or_else(crate::trace::new_trace_id);
    let parent = header::HeaderValue::from_str(&crate::trace::traceparent(&trace_id)).ok();
    if let Some(v) = &parent {
        req.headers_mut().insert(TRACEPARENT, v.clone());
    }
    let span = tracing::info_span!("request", trace_id = %trace_id, method = %req.method(), path = %req.uri().path());
    crate::telemetry::continue_trace(&span, &trace_id);
    let mut response = tracing::Instrument::instrument(next.run(req), span).await;
    if let Some(v) = parent {
        response.headers_mut().insert(TRACEPARENT, v);
    }
    response
}

/// The W3C trace context header.
const TRACEPARENT: &str = "traceparent";

/// The trace id the request runs under (set by the `traced` layer).
pub(crate) fn trace_id(headers: &HeaderMap) -> Option<String> {
    headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(crate::trace::from_traceparent)
}

/// Counts the request and its duration by matched route, method and status (when metrics are on).
async fn observe(req: Request, next: Next) -> Response {
    if !crate::metrics::enabled() {
        return next.run(req).await;
    }
    let route = req.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let method = req.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    crate::metrics::http_request(route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// A request that ended in a server error: an ERROR, except a 503, which is an answer (not
/// ready yet, a rail unavailable) the client acts on and the operator sees elsewhere — DEBUG.
fn failed(class: ServerErrorsFailureClass, latency: Duration, _: &tracing::Span) {
    let ms = latency.as_millis() as u64;
    match class {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::debug!(latency_ms = ms, "answered 503: not available now")
        }
        other => tracing::error!(latency_ms = ms, classification = %other, "request failed"),
    }
}

/// What every request passes: a body that says it is not JSON is refused (415) before any
/// handler reads it, and an error the framework answers itself (413 from the body limit, 405,
/// 408) comes back in the API's one error shape.
async fn edge(req: Request, next: Next, limit: usize) -> Response {
    let content_type = req.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes().to_ascii_lowercase());
    if content_type.is_some_and(|t| !t.starts_with(b"application/json")) && req.method() != Method::GET {
        let msg = "the body must be JSON: send Content-Type: application/json (or none)";
        return ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", msg).into_response();
    }
    let response = next.run(req).await;
    let is_json =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || response.status().is_success() {
        return response;
    }
    let (code, message) = match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ("body_too_large", format!("the request body is over the {limit}-byte limit")),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this endpoint does not take that HTTP method".into()),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request took too long; try again".into()),
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint".into()),
        _ => return response,
    };
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut answer = ApiError::new(response.status(), code, message).into_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    answer
}

/// Serves the API on `listener` until `cancel` over HTTP/1.1 (keep-alive, no upgrades), then lets
/// requests in progress finish.
pub async fn serve(listener: TcpListener, state: AppState, cancel: CancellationToken) -> std::io::Result<()> {
    serve_app(listener, router(state), cancel).await
}

/// Serves `app` on `listener` (HTTP/1.1, keep-alive) until `cancel`, then lets the open
/// connections finish.
pub async fn serve_app(listener: TcpListener, app: Router, cancel: CancellationToken) -> std::io::Result<()> {
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "API: accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        // A child token per connection: waiting on it does not contend with the other connections.
        let stop = cancel.child_token();
        connections.spawn(async move {
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                biased;
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}
