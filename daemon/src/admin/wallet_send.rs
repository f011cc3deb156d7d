//! `wallet.send {address, amount_sat, feerate_sat_vb?}`: pays one address from the treasury.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::rails::onchain::SendRequest;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["address", "amount_sat", "feerate_sat_vb"])?;
    let req = SendRequest {
        address: params.string("address")?,
        amount_sat: params.positive_integer("amount_sat", "invalid_amount")?,
        feerate_sat_vb: params.optional_positive_integer("feerate_sat_vb", "invalid_feerate")?,
    };
    let sent = ctx.onchain.send(&ctx.store, req).await?;
    Ok(json!({
        "txid": sent.payout.txid.to_string(),
        "fee_sat": sent.payout.fee_sat,
        "vsize": sent.payout.vsize,
        "feerate_sat_vb": sent.payout.feerate.sat_per_vb_ceil(),
        "feerate_sat_kvb": sent.payout.feerate,
        "feerate_source": sent.feerate_source,
    }))
}
