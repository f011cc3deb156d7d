//! `wallet.balance`: the treasury's balances in sats.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(balances(ctx))
}

/// The balances object `wallet.balance` answers and `getinfo` embeds.
pub(crate) fn balances(ctx: &AppState) -> Value {
    let b = ctx.onchain.treasury().balances();
    json!({
        "confirmed_sat": b.confirmed_sat,
        "trusted_pending_sat": b.trusted_pending_sat,
        "untrusted_pending_sat": b.untrusted_pending_sat,
        "immature_sat": b.immature_sat,
        "total_sat": b.confirmed_sat + b.trusted_pending_sat + b.untrusted_pending_sat + b.immature_sat,
        "synced_height": ctx.onchain.treasury().synced_height(),
    })
}
