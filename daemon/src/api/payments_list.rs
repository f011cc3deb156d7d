//! `GET /v1/payments?status=SUBMITTED|PENDING|SETTLED|FAILED&cursor=&limit=` (scope `read` or
//! `pay`): the key's payments, newest first, a page at a time.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::authorize_any;
use super::ApiError;
use crate::apikey::Scope;
use crate::payment::State as SagaState;
use crate::state::AppState;

const MAX_PAGE: usize = 100;

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &[Scope::Read, Scope::Pay])?;
    let (states, cursor, limit) = parse(query.as_deref().unwrap_or_default())?;
    let mut page = ctx.store.payments(Some(&key.id), states, cursor.as_deref(), limit + 1)?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next_cursor = more.then(|| page.last().map(|p| p.payment_id.clone())).flatten();
    let payments: Vec<Value> = page.iter().map(|p| p.view()).collect();
    Ok(Json(json!({ "payments": payments, "next_cursor": next_cursor })).into_response())
}

type Query = (&'static [SagaState], Option<String>, usize);

fn parse(query: &str) -> Result<Query, ApiError> {
    let (mut states, mut cursor, mut limit): Query = (&[], None, 50);
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "status" => {
                states = SagaState::for_status(&v).ok_or_else(|| {
                    bad("invalid_status", format!("status must be SUBMITTED, PENDING, SETTLED or FAILED, not {v:?}"))
                })?
            }
            "cursor" => cursor = Some(v.into_owned()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => limit = n,
                _ => return Err(bad("invalid_limit", format!("limit must be 1 to {MAX_PAGE}"))),
            },
            other => {
                return Err(bad("invalid_request", format!("unknown parameter {other:?} (status, cursor, limit)")))
            }
        }
    }
    Ok((states, cursor, limit))
}
