//! `batch.preview`: the queue paid now as one batch (as `batch.trigger` would send it) against
//! one transaction per payout at the same feerate; `fees.report {from?, to?}` (unix seconds;
//! default the last 24 h): per rail, the payouts settled, the fees they paid and, on chain, what
//! one transaction each at their submission's feerate would have cost, and the saving; and
//! `treasury`: the fees the treasury paid itself (consolidations, children paying for stuck
//! transactions).

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::payment::costs::{self, CostError};
use crate::state::AppState;

fn admin_error(e: CostError) -> AdminError {
    match e {
        CostError::Wallet(w) => AdminError::from(w),
        CostError::Plan(p) => AdminError::new(rpc_code::REFUSED, "batch_unplannable", p.to_string()),
        CostError::Store(s) => AdminError::internal(s.to_string()),
    }
}

/// `batch.preview`.
pub(crate) async fn preview(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    match costs::preview(&ctx.payments).await.map_err(admin_error)? {
        Some(p) => Ok(json!({ "queued": true, "preview": p })),
        None => Ok(json!({ "queued": false, "preview": null })),
    }
}

/// `fees.report {from?, to?}`.
pub(crate) async fn report(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let (from, to) = super::fx_report::window(params)?;
    let rails = costs::report(&ctx.payments, from, to).map_err(admin_error)?;
    let treasury = costs::treasury_costs(&ctx.payments, from, to).map_err(admin_error)?;
    Ok(json!({ "from": from, "to": to, "rails": rails, "treasury": treasury }))
}
