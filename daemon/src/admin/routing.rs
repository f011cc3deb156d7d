//! The operator's hand on routing: `routing.stats` (what the router has learned of each rail and
//! the rules in force), `routing.pin {rail}` / `routing.unpin`, `routing.disable {rail}` /
//! `routing.enable {rail}` — each change written to the audit log.

use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::state::AppState;

const RAILS: [&str; 4] = ["onchain", "onchain_batch", "lightning", "on_us"];

pub(crate) async fn stats(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let learner = ctx.router.learner.lock().clone();
    let now = crate::unix_now();
    let rails: Vec<Value> = RAILS
        .iter()
        .map(|rail| {
            let s = learner.stats(rail);
            json!({
                "rail": rail,
                "success_rate": s.success_rate(),
                "outcomes": s.outcomes,
                "consecutive_failures": s.consecutive_failures,
                "stopped": learner.tripped(rail, now),
                "stopped_until": (s.tripped_until > now).then_some(s.tripped_until),
                "latency_secs": s.latency_secs,
                "failures": s.failures,
                "disabled": learner.is_disabled(rail),
            })
        })
        .collect();
    Ok(json!({ "rails": rails, "pinned": learner.pinned, "disabled": learner.disabled }))
}

fn rail(params: &Params) -> Result<&'static str, AdminError> {
    let asked = params.string("rail")?;
    RAILS.into_iter().find(|r| *r == asked).ok_or_else(|| {
        AdminError::new(
            rpc_code::INVALID_PARAMS,
            "invalid_rail",
            format!("rail must be onchain, lightning or on_us, not {asked:?}"),
        )
    })
}

/// Applies a rule change, stores it and audits it — or changes nothing.
fn change(
    ctx: &AppState,
    action: &str,
    details: Value,
    apply: impl FnOnce(&mut crate::route::learn::Learner),
) -> Result<Value, AdminError> {
    let mut learner = ctx.router.learner.lock();
    let mut next = learner.clone();
    apply(&mut next);
    ctx.store.set_rail_rules(next.pinned.as_deref(), &next.disabled)?;
    let entry = crate::audit::record(&ctx.store, "admin", action, &details)?;
    (learner.pinned, learner.disabled) = (next.pinned.clone(), next.disabled.clone());
    Ok(json!({ "pinned": next.pinned, "disabled": next.disabled, "audit_seq": entry.seq }))
}

pub(crate) async fn pin(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["rail"])?;
    let rail = rail(&params)?;
    if ctx.router.learner.lock().is_disabled(rail) {
        return Err(AdminError::new(
            rpc_code::REFUSED,
            "rail_disabled",
            format!("{rail} is disabled; enable it first"),
        ));
    }
    change(ctx, "routing.pin", json!({ "rail": rail }), |l| l.pinned = Some(rail.to_owned()))
}

pub(crate) async fn unpin(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let was = ctx.router.learner.lock().pinned.clone();
    change(ctx, "routing.unpin", json!({ "was": was }), |l| l.pinned = None)
}

pub(crate) async fn disable(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["rail"])?;
    let rail = rail(&params)?;
    change(ctx, "routing.disable", json!({ "rail": rail }), |l| {
        if !l.is_disabled(rail) {
            l.disabled.push(rail.to_owned());
        }
        if l.pinned.as_deref() == Some(rail) {
            l.pinned = None;
        }
    })
}

pub(crate) async fn enable(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["rail"])?;
    let rail = rail(&params)?;
    change(ctx, "routing.enable", json!({ "rail": rail }), |l| l.disabled.retain(|r| r != rail))
}
