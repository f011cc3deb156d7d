//! `GET /v1/payments?status=SUBMITTED|PENDING|SETTLED|FAILED&cursor=&limit=` (scope `read` or
//! `pay`): the key's payments, newest first, a page at a time.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::authorize_any;
use super::page;
use super::ApiError;
use crate::apikey::Scope;
use crate::payment::State as SagaState;
use crate::state::AppState;

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &[Scope::Read, Scope::Pay])?;
    let q = page::parse(query.as_deref().unwrap_or_default(), |v| {
        SagaState::for_status(v)
            .ok_or_else(|| format!("status must be SUBMITTED, PENDING, SETTLED or FAILED, not {v:?}"))
    })?;
    let rows = ctx.store.payments(Some(&key.id), q.status, q.cursor.as_deref(), q.limit + 1)?;
    let (rows, next_cursor) = page::cut(rows, q.limit, |p| p.payment_id.clone());
    let payments: Vec<Value> = rows.iter().map(|p| p.view()).collect();
    Ok(Json(json!({ "payments": payments, "next_cursor": next_cursor })).into_response())
}
