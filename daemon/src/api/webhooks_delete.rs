//! `DELETE /v1/webhooks/{id}`: removes one of the key's endpoints (204), 404 if it has none.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::authorize_any;
use super::ApiError;
use crate::apikey::Scope;
use crate::state::AppState;

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &Scope::ALL)?;
    if !ctx.store.delete_endpoint(&key.id, &id)? {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "webhook_not_found", format!("no webhook {id}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
