//! `GET /v1/invoices/{id}` (scope `invoice` or `read`): one of the key's invoices — status, what
//! was received, how to pay it, and its refunds (`refunds: [{payment_id, amount_sat, status, …}]`,
//! `refunded_sat`: what the refunds not failed give back).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::authorize_any;
use super::ApiError;
use crate::apikey::Scope;
use crate::invoice::refund;
use crate::state::AppState;

pub(crate) async fn handle(
    State(ctx): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = authorize_any(&ctx, &headers, &[Scope::Invoice, Scope::Read])?;
    match ctx.store.invoice(&id)? {
        Some(inv) if inv.api_key_id == key.id => {
            let mut view = crate::invoice::view(&inv);
            let (refunds, refunded_sat) = refund::refunds_view(&ctx.store.invoice_refunds(&inv.invoice_id)?);
            view["refunds"] = refunds;
            view["refunded_sat"] = refunded_sat.into();
            Ok(Json(view).into_response())
        }
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "invoice_not_found", format!("no invoice {id}"))),
    }
}
