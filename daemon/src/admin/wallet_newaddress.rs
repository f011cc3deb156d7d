//! `wallet.newaddress`: a fresh receive address of the treasury.

use std::sync::Arc;

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::rails::onchain::blocking;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let treasury = Arc::clone(ctx.onchain.treasury());
    let address = blocking(move || treasury.new_address()).await?;
    Ok(json!({ "address": address.to_string() }))
}
