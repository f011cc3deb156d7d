//! `ledger.balances`: every account's balance per currency (BTC in msat, fiat in minor units),
//! after importing the wallet's outside movements. `ledger.verify`: the ledger's integrity and
//! its reconciliation with the wallet and the Lightning node.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::payment::reconcile;
use crate::state::AppState;

pub(crate) async fn balances(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        reconcile::import_wallet(&ctx.payments).map_err(AdminError::from)?;
        Ok(json!({ "unit": {"BTC": "msat"}, "accounts": ctx.store.ledger_balances()? }))
    })
    .await
    .map_err(|e| AdminError::internal(e.to_string()))?
}

pub(crate) async fn verify(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || reconcile::verify(&ctx.payments).map_err(AdminError::from))
        .await
        .map_err(|e| AdminError::internal(e.to_string()))?
}
