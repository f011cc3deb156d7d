//! `payment.bump {payment_id, sat_per_vb? | feerate_sat_kvb?}` and `batch.bump {batch_id, …}`:
//! an operator lifts a stuck on-chain transaction now ([`crate::payment::manual_bump`]), to the
//! feerate named or to what the next block asks: audited as asked before the transaction is
//! touched (`payment.bump.requested`), then with what was done ([`super::audit::Request`]). Refused with a stable code, changing
//! nothing: `payment_not_found`, `batch_not_found`, `not_bumpable` (nothing unconfirmed to lift,
//! and why), `feerate_too_low` (with `pays_sat_kvb` and the least a bump asks), `feerate_too_high`
//! (over `wallet.max_feerate_sat_vb`), `bump_held` (a payout not yet broadcast spends from it).

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::payment::bumper::BumpError;
use crate::payment::manual_bump::{bump_now, Asked, ManualBumpError, Target};
use crate::state::AppState;

pub(crate) async fn payment(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["payment_id", "sat_per_vb", "feerate_sat_kvb"])?;
    let id = params.string("payment_id")?;
    bump(ctx, Target::Payment(&id), &params, "payment.bump").await
}

pub(crate) async fn batch(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["batch_id", "sat_per_vb", "feerate_sat_kvb"])?;
    let id = params.string("batch_id")?;
    bump(ctx, Target::Batch(&id), &params, "batch.bump").await
}

async fn bump(ctx: &AppState, target: Target<'_>, params: &Params, method: &str) -> Result<Value, AdminError> {
    let whole = params.optional_positive_integer("sat_per_vb", "invalid_feerate")?;
    let precise = params.optional_positive_integer("feerate_sat_kvb", "invalid_feerate")?;
    let sat_kvb = match (whole, precise) {
        (Some(_), Some(_)) => {
            let why = "give sat_per_vb or feerate_sat_kvb, not both";
            return Err(AdminError::new(rpc_code::INVALID_PARAMS, "invalid_feerate", why));
        }
        (Some(vb), None) => Some(vb.saturating_mul(1_000)),
        (None, kvb) => kvb,
    };
    let mut request = super::audit::Request::new(ctx, method);
    let bumped = bump_now(&ctx.payments, target, sat_kvb, |asked: &Asked| request.asked(asked)).await;
    request.close(bumped.map(|b| json!(b)).map_err(refusal))
}

fn refusal(e: ManualBumpError) -> AdminError {
    use rpc_code::{INTERNAL, INVALID_PARAMS, REFUSED, UNAVAILABLE};
    let msg = e.to_string();
    match e {
        ManualBumpError::PaymentNotFound(_) => AdminError::new(INVALID_PARAMS, "payment_not_found", msg),
        ManualBumpError::BatchNotFound(_) => AdminError::new(INVALID_PARAMS, "batch_not_found", msg),
        ManualBumpError::NotBumpable(_) => AdminError::new(REFUSED, "not_bumpable", msg),
        ManualBumpError::TooLow { pays_sat_kvb, least_sat_kvb } => AdminError::new(REFUSED, "feerate_too_low", msg)
            .with("pays_sat_kvb", pays_sat_kvb)
            .with("least_sat_kvb", least_sat_kvb),
        ManualBumpError::TooHigh { max_sat_vb, .. } => {
            AdminError::new(REFUSED, "feerate_too_high", msg).with("max_feerate_sat_vb", max_sat_vb)
        }
        ManualBumpError::Held => AdminError::new(UNAVAILABLE, "bump_held", msg),
        ManualBumpError::Bump(BumpError::Wallet(w)) => w.into(),
        ManualBumpError::Bump(_) => AdminError::new(INTERNAL, "internal", msg),
        ManualBumpError::Store(e) => e.into(),
    }
}
