//! The operator's hand on feerates off mainnet: `fees.set {sat_per_vb, targets?}` puts an
//! override in force instead of bitcoind's estimates (and over `wallet.fee_schedule_file`),
//! `fees.clear` removes it, `fees.get` says what is in force, bitcoind's relay floor and the step
//! a replacement raises the feerate by, and what the batcher made of the feerates it has seen (its
//! recent low, yesterday's fall). Changes are audited; on mainnet
//! they are refused (`fees_override_refused`) and change nothing.

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::rails::fees::FeeOverride;
use crate::state::AppState;

/// The confirmation targets `fees.get` prices.
const TARGETS: [u16; 4] = [1, 3, 6, 144];

pub(crate) async fn get(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    in_force(ctx).await
}

pub(crate) async fn set(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["sat_per_vb", "targets"])?;
    let fees = ctx.onchain.fees();
    fees.check_allowed()?;
    let rate = params.positive_integer("sat_per_vb", "invalid_feerate")?;
    let steps = params.optional_string_list("targets")?.unwrap_or_default();
    let steps = steps.iter().map(|s| step(s)).collect::<Result<Vec<_>, _>>()?;
    let over = FeeOverride::new(rate, steps, ctx.onchain.max_feerate_sat_vb())?;
    let details = json!({ "override": describe(&over), "was": fees.current().as_ref().map(describe) });
    let entry = crate::audit::record(&ctx.store, "admin", "fees.set", &details)?;
    fees.set(over)?;
    audited(in_force(ctx).await?, entry.seq)
}

pub(crate) async fn clear(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let fees = ctx.onchain.fees();
    fees.check_allowed()?;
    let details = json!({ "was": fees.current().as_ref().map(describe) });
    let entry = crate::audit::record(&ctx.store, "admin", "fees.clear", &details)?;
    fees.clear()?;
    audited(in_force(ctx).await?, entry.seq)
}

/// One step, `MAX_TARGET_BLOCKS:SAT_PER_VB` (e.g. `1:50`: targets up to 1 block pay 50 sat/vB).
fn step(text: &str) -> Result<(u16, u64), AdminError> {
    let refuse = || {
        AdminError::new(
            rpc_code::INVALID_PARAMS,
            "invalid_feerate",
            format!("targets: {text:?} is not MAX_TARGET_BLOCKS:SAT_PER_VB with whole numbers"),
        )
    };
    let (target, rate) = text.split_once(':').ok_or_else(refuse)?;
    Ok((target.trim().parse().map_err(|_| refuse())?, rate.trim().parse().map_err(|_| refuse())?))
}

fn describe(over: &FeeOverride) -> Value {
    let steps: Vec<Value> =
        over.steps.iter().map(|(t, r)| json!({ "max_target_blocks": t, "sat_per_vb": r })).collect();
    json!({ "sat_per_vb": over.sat_per_vb, "targets": steps })
}

/// Where feerates come from now, and the feerate for a few targets.
async fn in_force(ctx: &AppState) -> Result<Value, AdminError> {
    let fees = ctx.onchain.fees();
    let mut estimates = Vec::with_capacity(TARGETS.len());
    for target in TARGETS {
        let fee = ctx.onchain.estimate(target).await?;
        estimates.push(json!({ "target_blocks": target, "sat_per_vb": fee.feerate.sat_per_vb_ceil(),
            "feerate_sat_kvb": fee.feerate, "source": fee.source }));
    }
    let default = ctx.onchain.default_estimate().await?;
    let (relay_floor, step) = ctx.onchain.relay_fees().await;
    let schedule = fees.schedule().map(|s| {
        let now = s.at(crate::unix_now());
        json!({ "file": s.path().display().to_string(), "samples": s.len(),
            "sat_per_vb_now": now.map(|r| r.sat_per_vb_ceil()), "feerate_sat_kvb_now": now })
    });
    Ok(json!({
        "source": default.source,
        "default_target_blocks": default.target_blocks,
        "sat_per_vb": default.feerate.sat_per_vb_ceil(),
        "feerate_sat_kvb": default.feerate,
        "override": fees.current().as_ref().map(describe),
        "schedule": schedule,
        "max_feerate_sat_vb": ctx.onchain.max_feerate_sat_vb(),
        "relay_floor_sat_kvb": relay_floor,
        "replacement_step_sat_kvb": step,
        "estimates": estimates,
        "history": history(ctx),
    }))
}

/// What the batcher's "cheap" test reads from the feerates it has seen (the estimate for
/// `high`'s target, a sample a block interval, stored and resumed after a restart): how many and
/// since when, the recent low (`null` until half the window is seen), each priority's deadline
/// cap (`null` when off, or as long) and yesterday's fall (`null` when none is ahead, or before a
/// day is seen).
fn history(ctx: &AppState) -> Value {
    use crate::batch::Priority::{High, Low, Normal};
    let policy = crate::batch::Policy::from_config(&ctx.config);
    let now = crate::unix_now();
    let h = crate::payment::batch_policy::history(&ctx.payments);
    let recent_low = h.recent_low(now, &policy);
    let caps = h.deadline_caps(now, &policy);
    let pct = |p| policy.class(p).deadline_cap_percentile;
    json!({
        "samples": h.len(),
        "oldest_at": h.span().map(|s| s.0),
        "newest_at": h.span().map(|s| s.1),
        "window_secs": policy.cheap_window_secs,
        "cheap_percentile": policy.cheap_percentile,
        "recent_low_sat_kvb": (recent_low > 0).then_some(recent_low),
        "deadline_cap_percentile": {
            "high": pct(High), "normal": pct(Normal), "low": pct(Low),
        },
        "deadline_caps_sat_kvb": { "high": caps[0], "normal": caps[1], "low": caps[2] },
        "forecast_fall_percent": policy.forecast_fall_percent,
        "yesterday_fall_in_secs": h.cheaper_in(now, policy.forecast_fall_percent),
    })
}

fn audited(mut answer: Value, seq: i64) -> Result<Value, AdminError> {
    if let Some(map) = answer.as_object_mut() {
        map.insert("audit_seq".into(), Value::from(seq));
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rails::fees::Fees;
    use sendero_wallet::bitcoin::Network;

    #[test]
    fn mainnet_refusals_and_bad_steps_carry_stable_codes() {
        let over = FeeOverride::new(40, vec![], 1_000).unwrap();
        let refused: AdminError = Fees::new(Network::Bitcoin).set(over).unwrap_err().into();
        assert_eq!((refused.code, refused.rpc_code), ("fees_override_refused", rpc_code::REFUSED));
        assert_eq!(step(" 6 : 20 ").unwrap(), (6, 20));
        for bad in ["6", "6:", ":20", "6:2.5", "-1:20", "70000:20", "6:-20"] {
            assert_eq!(step(bad).unwrap_err().code, "invalid_feerate", "{bad:?}");
        }
        let above: AdminError = FeeOverride::new(1_001, vec![], 1_000).unwrap_err().into();
        assert_eq!((above.code, above.rpc_code), ("invalid_feerate", rpc_code::INVALID_PARAMS));
    }
}
