//! `wallet.send {address, amount_sat, feerate_sat_vb?}`: pays one address from the treasury,
//! audited once built and signed, before its broadcast (`wallet.send.requested`, with its txid),
//! and with what was sent or why not ([`super::audit::Request`]). A request refused before it is
//! built (its parameters, the treasury's balance) is not audited.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::rails::onchain::{SendAsked, SendRequest};
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["address", "amount_sat", "feerate_sat_vb"])?;
    let req = SendRequest {
        address: params.string("address")?,
        amount_sat: params.positive_integer("amount_sat", "invalid_amount")?,
        feerate_sat_vb: params.optional_positive_integer("feerate_sat_vb", "invalid_feerate")?,
    };
    let mut request = super::audit::Request::new(ctx, "wallet.send");
    let signed = |asked: &SendAsked| request.asked(asked).map_err(AdminError::from);
    let sent = ctx.onchain.send(&ctx.store, req, signed).await.map(|sent| {
        json!({
            "txid": sent.payout.txid.to_string(),
            "fee_sat": sent.payout.fee_sat,
            "vsize": sent.payout.vsize,
            "feerate_sat_vb": sent.payout.feerate.sat_per_vb_ceil(),
            "feerate_sat_kvb": sent.payout.feerate,
            "feerate_source": sent.feerate_source,
        })
    });
    request.close(sent)
}
