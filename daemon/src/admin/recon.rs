//! `recon.report {from?, to?}` (unix seconds or RFC 3339; default the last 24 h): the ledger
//! against the wallet's transactions, the node's payments, the payouts and the invoices, each
//! movement classed `match` / `timing` / `missing` / `amount_mismatch`, with totals per day and
//! rail (see [`crate::recon`]).

use serde_json::Value;

use super::error::AdminError;
use super::params::Params;
use crate::recon::{self, Window};
use crate::state::AppState;

pub(crate) async fn report(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let (from, to) = super::fx_report::window(params)?;
    let ctx = ctx.clone();
    let report = tokio::task::spawn_blocking(move || recon::report(&ctx.payments, Window { from, to }))
        .await
        .map_err(|e| AdminError::internal(e.to_string()))??;
    serde_json::to_value(report).map_err(|e| AdminError::internal(e.to_string()))
}
