//! `wallet.utxos`: the treasury's unspent outputs.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!({ "utxos": ctx.onchain.treasury().utxos() }))
}
