//! `GET /v1/payments/{id}` (scope `read` or `pay`): one of the key's payments — state, rail, fee
//! actually paid, txid or payment hash, failure code.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::authorize_any;
use super::ApiError;
use crate::apikey::Scope;
use crate::state::AppState;

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &[Scope::Read, Scope::Pay])?;
    match ctx.store.payment(&id)? {
        Some(p) if p.api_key_id == key.id => {
            let hold = ctx.store.fee_hold(&id)?;
            Ok(Json(crate::payment::fee_holds::view_with_hold(&p, hold.as_ref())).into_response())
        }
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "payment_not_found", format!("no payment {id}"))),
    }
}
