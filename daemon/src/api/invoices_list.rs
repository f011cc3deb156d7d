//! `GET /v1/invoices?status=new|processing|paid|underpaid|expired&cursor=&limit=` (scope
//! `invoice` or `read`): the key's invoices, newest first, a page at a time.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::authorize_any;
use super::ApiError;
use crate::apikey::Scope;
use crate::state::AppState;

const MAX_PAGE: usize = 100;
const STATUSES: [&str; 5] = ["new", "processing", "paid", "underpaid", "expired"];

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &[Scope::Invoice, Scope::Read])?;
    let (status, cursor, limit) = parse(query.as_deref().unwrap_or_default())?;
    let mut page = ctx.store.invoices(&key.id, status, cursor.as_deref(), limit + 1)?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next_cursor = more.then(|| page.last().map(|i| i.invoice_id.clone())).flatten();
    let invoices: Vec<Value> = page.iter().map(crate::invoice::view).collect();
    Ok(Json(json!({ "invoices": invoices, "next_cursor": next_cursor })).into_response())
}

type Query = (Option<&'static str>, Option<String>, usize);

fn parse(query: &str) -> Result<Query, ApiError> {
    let (mut status, mut cursor, mut limit): Query = (None, None, 50);
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "status" => {
                let wanted = v.to_ascii_lowercase();
                status = Some(STATUSES.into_iter().find(|s| *s == wanted).ok_or_else(|| {
                    bad("invalid_status", format!("status must be one of {}, not {v:?}", STATUSES.join(", ")))
                })?)
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
    Ok((status, cursor, limit))
}
