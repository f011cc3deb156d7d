//! `GET /metrics` on `[metrics] listen` (loopback only): Prometheus's text exposition. Counters
//! and histograms come from where things happen (`crate::metrics`); at each scrape the gauges are
//! set from the same answers the admin RPC gives (`routing.stats`, `treasury.status`,
//! `fees.report`, `ln.channels`) and from the store (payouts by rail and state, the saga's
//! backlog, the webhook backlog), so a scrape and the admin RPC always agree.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use super::params::Params;
use crate::metrics::gauge;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// The metrics listener's routes: `/metrics` only.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(|axum::extract::State(ctx): axum::extract::State<AppState>| scrape(ctx)))
        .with_state(state)
}

async fn scrape(ctx: AppState) -> Response {
    if let Err(e) = refresh(&ctx).await {
        tracing::warn!(error = %e, "metrics: some gauges could not be read");
    }
    match crate::metrics::render() {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are not installed").into_response(),
    }
}

/// Sets every scrape-time gauge; the first failure is returned after the others are set.
async fn refresh(ctx: &AppState) -> Result<(), String> {
    let mut failed = None;
    let mut note = |r: Result<(), String>| {
        if let Err(e) = r {
            failed.get_or_insert(e);
        }
    };
    let store = std::sync::Arc::clone(&ctx.store);
    note(tokio::task::block_in_place(|| from_store(&store)).map_err(|e| e.to_string()));
    note(routing(ctx).await);
    note(treasury(ctx).await);
    note(fees(ctx).await);
    channels(ctx);
    rates(ctx);
    if ctx.config.events.enabled() {
        let backlog = tokio::task::block_in_place(|| ctx.store.events_backlog()).map_err(|e| e.to_string());
        note(backlog.map(|n| gauge("sendero_events_backlog", &[], n as f64)));
    }
    failed.map_or(Ok(()), Err)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

async fn routing(ctx: &AppState) -> Result<(), String> {
    let stats = super::routing::stats(ctx, Params::default()).await.map_err(|e| e.to_string())?;
    for r in stats["rails"].as_array().into_iter().flatten() {
        let rail = [("rail", text(&r["rail"]))];
        gauge("sendero_rail_success_rate", &rail, num(&r["success_rate"]));
        gauge("sendero_rail_stopped", &rail, if r["stopped"] == true { 1.0 } else { 0.0 });
        gauge("sendero_rail_disabled", &rail, if r["disabled"] == true { 1.0 } else { 0.0 });
    }
    Ok(())
}

async fn treasury(ctx: &AppState) -> Result<(), String> {
    let status = super::treasury::status(ctx, Params::default()).await.map_err(|e| e.to_string())?;
    for r in status["rails"].as_array().into_iter().flatten() {
        let rail = [("rail", text(&r["rail"]))];
        gauge("sendero_treasury_held_sat", &rail, num(&r["held_sat"]));
        gauge("sendero_treasury_free_sat", &rail, num(&r["free_sat"]));
        gauge("sendero_treasury_reserve_sat", &rail, num(&r["reserve_sat"]));
        gauge("sendero_treasury_accepting", &rail, if r["accepting"] == true { 1.0 } else { 0.0 });
    }
    Ok(())
}

/// Fees paid per rail over the last 24 h (as `fees.report` gives them by default), and what one
/// transaction per payout would have cost.
async fn fees(ctx: &AppState) -> Result<(), String> {
    let report = super::cost_reports::report(ctx, Params::default()).await.map_err(|e| e.to_string())?;
    for r in report["rails"].as_array().into_iter().flatten() {
        let rail = [("rail", text(&r["rail"]))];
        gauge("sendero_fees_paid_24h_sat", &rail, num(&r["fees_paid_sat"]));
        gauge("sendero_payouts_settled_24h", &rail, num(&r["count"]));
        if !r["one_by_one_fee_sat"].is_null() {
            gauge("sendero_fees_one_by_one_24h_sat", &rail, num(&r["one_by_one_fee_sat"]));
        }
    }
    Ok(())
}

fn channels(ctx: &AppState) {
    let Ok(node) = ctx.lightning.node() else { return };
    for c in node.channels() {
        let labels = [("channel_id", c.channel_id.clone()), ("peer", c.counterparty_node_id.clone())];
        gauge("sendero_channel_outbound_msat", &labels, c.outbound_msat as f64);
        gauge("sendero_channel_inbound_msat", &labels, c.inbound_msat as f64);
        gauge("sendero_channel_usable", &labels, if c.usable { 1.0 } else { 0.0 });
    }
}

fn rates(ctx: &AppState) {
    let now = crate::unix_now();
    for (pair, rate) in ctx.fx.snapshot() {
        let labels = [("pair", pair), ("source", rate.source.to_owned())];
        gauge("sendero_fx_rate_age_seconds", &labels, now.saturating_sub(rate.as_of) as f64);
    }
}

/// Payouts by rail and state, the saga's backlog by state, the webhook backlog.
fn from_store(store: &Store) -> Result<(), StoreError> {
    let mut backlog: std::collections::BTreeMap<String, u64> = Default::default();
    for (rail, state, n) in store.payout_counts()? {
        gauge("sendero_payouts", &[("rail", rail), ("state", state.clone())], n as f64);
        if state != "settled" && state != "failed" {
            *backlog.entry(state).or_default() += n;
        }
    }
    for state in ["submitted", "debited", "sending", "sent"] {
        gauge("sendero_saga_backlog", &[("state", state.to_owned())], backlog.get(state).copied().unwrap_or(0) as f64);
    }
    let webhooks = store.webhook_backlog()?;
    let oldest = webhooks.oldest_pending_at.map_or(0, |t| crate::unix_now().saturating_sub(t));
    gauge("sendero_webhook_backlog", &[], webhooks.pending as f64);
    gauge("sendero_webhook_failed", &[], webhooks.failed as f64);
    gauge("sendero_webhook_oldest_undelivered_seconds", &[], oldest as f64);
    Ok(())
}
