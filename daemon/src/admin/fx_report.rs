//! `fx.report {from?, to?}` (unix seconds; default the last 24 h): per pair, fills (payout
//! quotes included once their payout settled) and sats converted, spread earned (QUOTE minor
//! units), requotes and what they cost, quotes that expired unfilled; `fx.register {from?, to?}`:
//! each quote with its fill, the payout that used it and the ledger entry that books it.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let (from, to) = window(params)?;
    let pairs: Vec<Value> = ctx
        .store
        .fx_report(from, to)?
        .into_iter()
        .map(|r| {
            json!({
                "pair": r.pair,
                "fills": r.fills,
                "filled_sat": r.filled_sat,
                "spread_minor": r.spread_minor,
                "requotes": r.requotes,
                "expired_quotes": r.expired,
                "payout_fills": r.payout_fills,
                "requote_loss_minor": r.requote_loss_minor,
            })
        })
        .collect();
    Ok(json!({ "from": from, "to": to, "pairs": pairs }))
}

/// `fx.register {from?, to?}`.
pub(crate) async fn register(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let (from, to) = window(params)?;
    Ok(json!({ "from": from, "to": to, "quotes": ctx.store.fx_register(from, to)? }))
}

/// `from` / `to` (unix seconds or RFC 3339), by default the last 24 h.
pub(super) fn window(params: Params) -> Result<(u64, u64), AdminError> {
    let params = params.only(&["from", "to"])?;
    let now = crate::unix_now();
    let to = params.optional_time("to")?.unwrap_or(now + 1);
    let from = params.optional_time("from")?.unwrap_or(to.saturating_sub(86_400));
    if from >= to {
        return Err(AdminError::invalid_params("from must be before to"));
    }
    Ok((from, to))
}
