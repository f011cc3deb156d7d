//! `rebalance.preview`, `rebalance.run` and `rebalance.history {from?, to?}`: what the rebalancer
//! would do now per channel and why, one cycle now (audited), and the splices it planned or made
//! with what they moved, cost and why.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::liquidity::rebalancer::{self, RebalanceError};
use crate::state::AppState;

/// `rebalance.preview`: per usable channel, what a cycle would do now (code, reason, amount, fee).
pub(crate) async fn preview(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!(rebalancer::preview(&ctx.payments).await.map_err(refused)?))
}

/// `rebalance.run`: one cycle now, splices made unless `[treasury] dry_run` (audited).
pub(crate) async fn run(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let plan = rebalancer::cycle(&ctx.payments).await.map_err(refused)?;
    let made: Vec<Value> = plan
        .channels
        .iter()
        .filter(|l| l.splice_id.is_some())
        .map(|l| {
            json!({"splice_id": l.splice_id, "channel_id": l.channel_id, "action": l.action, "amount_sat": l.amount_sat,
                "fee_sat": l.fee_sat, "why": l.why, "state": l.state})
        })
        .collect();
    let details = json!({"dry_run": plan.dry_run, "splices": made});
    super::audit::after(ctx, "rebalance.run", &details);
    Ok(json!(plan))
}

/// `rebalance.history {from?, to?}`: the splices planned in `[from, to]` (unix seconds; default
/// all), oldest first, with totals of what the made ones moved and cost.
pub(crate) async fn history(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["from", "to"])?;
    let from = params.optional_positive_integer("from", "invalid_params")?.unwrap_or(0);
    let to = params.optional_positive_integer("to", "invalid_params")?.unwrap_or(crate::unix_now() + 1);
    if from > to {
        return Err(AdminError::invalid_params("from must not be after to"));
    }
    let splices = ctx.store.splices(from, to)?;
    let made = || splices.iter().filter(|s| !s.dry_run && matches!(s.state.as_str(), "started" | "confirmed"));
    let moved = |kind: &str| made().filter(|s| s.kind == kind).map(|s| s.amount_sat).sum::<u64>();
    Ok(json!({
        "from": from,
        "to": to,
        "spliced_in_sat": moved("in"),
        "spliced_out_sat": moved("out"),
        "estimated_fees_sat": made().map(|s| s.fee_sat).sum::<u64>(),
        "booked_fees_msat": made().filter_map(|s| s.booked_fee_msat).sum::<i64>(),
        "splices": splices,
    }))
}

fn refused(e: RebalanceError) -> AdminError {
    match e {
        RebalanceError::Lightning(l) => AdminError::from(l),
        RebalanceError::Wallet(w) => AdminError::from(w),
        RebalanceError::Store(s) => AdminError::from(s),
        RebalanceError::Guard(g) => AdminError::internal(g.to_string()),
    }
}
