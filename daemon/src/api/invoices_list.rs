//! `GET /v1/invoices?status=new|processing|paid|underpaid|expired|paid_late&cursor=&limit=` (scope
//! `invoice` or `read`): the key's invoices, newest first, a page at a time.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::authorize_any;
use super::page;
use super::ApiError;
use crate::apikey::Scope;
use crate::state::AppState;

pub(crate) const STATUSES: [&str; 6] = ["new", "processing", "paid", "underpaid", "expired", "paid_late"];

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &[Scope::Invoice, Scope::Read])?;
    let q = page::parse(query.as_deref().unwrap_or_default(), |v| {
        let wanted = v.to_ascii_lowercase();
        STATUSES
            .into_iter()
            .find(|s| *s == wanted)
            .map(Some)
            .ok_or_else(|| format!("status must be one of {}, not {v:?}", STATUSES.join(", ")))
    })?;
    let rows = ctx.store.invoices(&key.id, q.status, q.cursor.as_deref(), q.limit + 1)?;
    let (rows, next_cursor) = page::cut(rows, q.limit, |i| i.invoice_id.clone());
    let invoices: Vec<Value> = rows.iter().map(crate::invoice::view).collect();
    Ok(Json(json!({ "invoices": invoices, "next_cursor": next_cursor })).into_response())
}
