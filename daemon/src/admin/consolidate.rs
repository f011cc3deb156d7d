//! `consolidate.preview {feerate_sat_vb?, max_inputs?}` and `consolidate.run {force?,
//! max_inputs?}`: the treasury's smallest coins swept into one, planned or done.

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::payment::consolidate::{self, Ask, ConsolidateError, Record};
use crate::state::AppState;

/// `consolidate.preview`: what a consolidation would spend now, its fee and its saving.
pub(crate) async fn preview(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["feerate_sat_vb", "max_inputs"])?;
    let max = ctx.onchain.max_feerate_sat_vb();
    let feerate = params.optional_positive_integer("feerate_sat_vb", "invalid_feerate")?;
    if let Some(rate) = feerate.filter(|&r| r > max) {
        let why = format!("{rate} sat/vB is outside 1..={max}");
        return Err(AdminError::new(rpc_code::INVALID_PARAMS, "invalid_feerate", why));
    }
    let ask = Ask { feerate_sat_kvb: feerate.map(|r| r * 1_000), max_inputs: max_inputs(&params)?, force: false };
    let plan = consolidate::preview(&ctx.payments, ask).await.map_err(refused)?;
    Ok(json!(plan))
}

/// `consolidate.run`: consolidates now and broadcasts, audited once built and signed, before it
/// is recorded and broadcast (`consolidate.run.requested`), and with what was done or why not
/// ([`super::audit::Request`]).
pub(crate) async fn run(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["force", "max_inputs"])?;
    let force = params.optional_bool("force")?.unwrap_or(false);
    let ask = Ask { feerate_sat_kvb: None, max_inputs: max_inputs(&params)?, force };
    let mut request = super::audit::Request::new(ctx, "consolidate.run");
    let built = |row: &Record| {
        let mut details = json!(row);
        details["force"] = json!(force);
        request.asked(&details)
    };
    let plan = consolidate::run(&ctx.payments, ask, built).await;
    request.close(plan.map(|plan| json!(plan)).map_err(refused))
}

fn max_inputs(params: &Params) -> Result<Option<usize>, AdminError> {
    let max = params.optional_positive_integer("max_inputs", "invalid_max_inputs")?;
    match max {
        Some(1) => {
            Err(AdminError::new(rpc_code::INVALID_PARAMS, "invalid_max_inputs", "max_inputs must be at least 2"))
        }
        m => Ok(m.map(|m| m.min(10_000) as usize)),
    }
}

fn refused(e: ConsolidateError) -> AdminError {
    match e {
        ConsolidateError::Nothing(_) => AdminError::new(rpc_code::REFUSED, "nothing_to_consolidate", e.to_string()),
        ConsolidateError::FeerateTooHigh(_) => AdminError::new(rpc_code::REFUSED, "feerate_too_high", e.to_string()),
        ConsolidateError::Wallet(w) => AdminError::from(w),
        ConsolidateError::Store(s) => AdminError::internal(s.to_string()),
    }
}
