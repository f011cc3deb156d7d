//! At a front end (`--role api`), the requests only the node can answer go to the node's API
//! ([`crate::nodelink`]): routes and refunds to a Lightning destination (priced on the node's
//! channel graph), Lightning submits (checked against its channels and payments), and new
//! invoices (its wallet's next address, its node's BOLT11 invoice). Everything else is answered
//! here. A node that cannot be reached is `503 node_unavailable`, with Retry-After; a request it
//! took whose answer was lost is answered by a retry with the same idempotency key.

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::ApiError;
use crate::nodelink::LinkError;
use crate::route::destination;
use crate::state::AppState;

/// How long a client waits before asking again when the node is not there.
const RETRY_AFTER_SECS: u64 = 2;

/// Hands the request to the node when only the node can answer it.
pub(super) async fn to_node(State(ctx): State<AppState>, req: Request, next: Next) -> Response {
    let Some(link) = ctx.node_link.as_ref() else { return next.run(req).await };
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_owned());
    let Some(route) = route.filter(|r| req.method() == Method::POST && HANDED_OVER.contains(&r.as_str())) else {
        return next.run(req).await;
    };
    let (parts, body) = req.into_parts();
    let limit = ctx.config.api.body_limit_bytes;
    let Ok(body) = to_bytes(body, limit).await else {
        let msg = format!("the request body is over the {limit}-byte limit");
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", msg).into_response();
    };
    if !node_only(&ctx, &route, &body) {
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    }
    let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    tracing::debug!(route = %route, "front end: handed to the node");
    match link.forward(parts.method.clone(), path, &parts.headers, body).await {
        Ok(answer) => {
            let mut response = Response::new(Body::from(answer.body));
            *response.status_mut() = answer.status;
            *response.headers_mut() = answer.headers;
            response
        }
        Err(LinkError::Store(e)) => ApiError::internal("read where the node is", &e).into_response(),
        Err(e @ (LinkError::NoNode | LinkError::Unreachable(..))) => {
            let msg = format!("{e}; nothing was done: try again");
            ApiError::retry_later("node_unavailable", msg, RETRY_AFTER_SECS).into_response()
        }
        Err(e @ LinkError::NoAnswer(..)) => {
            let msg = format!("{e}; it may have been done: retry with the same X-Idempotency-Key to get its answer");
            ApiError::retry_later("node_unavailable", msg, RETRY_AFTER_SECS).into_response()
        }
    }
}

/// The routes a front end may hand to the node.
const HANDED_OVER: &[&str] = &["/v1/payments/route", "/v1/payments/submit", "/v1/invoices", "/v1/invoices/{id}/refund"];

/// Whether only the node can answer `route` with `body` (a body that does not parse is answered
/// here, with the same error the node would give).
fn node_only(ctx: &AppState, route: &str, body: &Bytes) -> bool {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    let lightning_destination = || {
        text("destination").and_then(|d| destination::parse(d, ctx.network).ok()).is_some_and(|d| d.lightning.is_some())
    };
    match route {
        "/v1/invoices" => true,
        "/v1/payments/submit" => [text("rail"), text("psp")].iter().any(|r| r.map(str::trim) == Some("lightning")),
        "/v1/payments/route" => lightning_destination(),
        _ => text("rail").map(str::trim) == Some("lightning") || lightning_destination(),
    }
}
