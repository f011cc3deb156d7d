//! `wallet.transactions`: the treasury's history, newest first.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!({ "transactions": ctx.onchain.treasury().transactions() }))
}
