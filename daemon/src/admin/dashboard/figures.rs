//! What the dashboard shows, read as the admin RPC reads it: `treasury.status`, `ln.channels`,
//! `fees.report`, `batch.list` answer through their own handlers, payouts by rail and state and
//! the webhook backlog through the store queries `metrics.rs` uses too, the rates from the FX
//! cache. A section that cannot be read carries why instead.

use serde_json::Value;

use super::super::params::Params;
use super::super::{batch, cost_reports, ln_channels, treasury};
use crate::fx::SourceHealth;
use crate::payment::costs::{self, CostPoint};
use crate::payment::Payment;
use crate::state::AppState;
use crate::webhook::Backlog;

/// A section's figures, or why they could not be read.
pub(super) type Section<T> = Result<T, String>;

/// Everything on the page.
pub(super) struct Figures {
    /// When they were read, Unix seconds.
    pub now: u64,
    /// The chain.
    pub network: String,
    /// `treasury.status`'s `rails`.
    pub treasury: Section<Vec<Value>>,
    /// `ln.channels`'s `channels`.
    pub channels: Section<Vec<Value>>,
    /// Payouts by rail and state, and the latest ones.
    pub payouts: Section<Payouts>,
    /// `fees.report` and the payouts it counts, one by one.
    pub fees: Section<Fees>,
    /// `batch.list`.
    pub batch: Section<Value>,
    /// Webhook deliveries not yet made.
    pub webhooks: Section<Backlog>,
    /// Rates by pair and sources' health.
    pub rates: Rates,
}

/// Payouts by rail and state, and the latest.
pub(super) struct Payouts {
    /// `(rail, state, count)`.
    pub counts: Vec<(String, String, u64)>,
    /// Newest first.
    pub recent: Vec<Payment>,
}

/// `fees.report` and its payouts in the order they settled.
pub(super) struct Fees {
    /// The report as the admin RPC answers it.
    pub report: Value,
    /// Its payouts.
    pub points: Vec<CostPoint>,
}

/// A pair's latest rate.
pub(super) struct PairRate {
    /// `BASE/QUOTE`.
    pub pair: String,
    /// The mid-rate, as text.
    pub mid: String,
    /// Which source (`combined`, `static`).
    pub source: String,
    /// Its age, seconds.
    pub age_secs: u64,
    /// `ok`, `stale` (older than its TTL) or `missing` (a configured pair with no rate yet).
    pub status: &'static str,
}

/// A source's health.
pub(super) struct SourceRow {
    /// Its name.
    pub name: String,
    /// `ok`, `stale` (no reading for longer than `fx.rate_ttl_secs`) or `failing` (its last poll failed).
    pub status: &'static str,
    /// Age of its last reading, seconds.
    pub last_ok_age_secs: Option<u64>,
    /// Its last failure.
    pub last_error: Option<String>,
}

/// The rates section.
pub(super) struct Rates {
    /// Configured pairs.
    pub pairs: Vec<PairRate>,
    /// Polled sources.
    pub sources: Vec<SourceRow>,
}

/// `failing` when a source's last poll failed (or it never answered), `stale` when its last
/// reading is older than `ttl_secs` at `now`, else `ok`.
fn source_status(h: &SourceHealth, now: u64, ttl_secs: u64) -> &'static str {
    match (&h.last_error, h.last_ok) {
        (Some((failed_at, _)), Some(ok_at)) if *failed_at > ok_at => "failing",
        (Some(_), None) => "failing",
        (_, Some(ok_at)) if now.saturating_sub(ok_at) > ttl_secs => "stale",
        _ => "ok",
    }
}

/// Latest payouts listed.
const RECENT: usize = 20;

/// Reads every section.
pub(super) async fn gather(ctx: &AppState) -> Figures {
    let treasury = treasury::status(ctx, Params::default()).await.map_err(|e| e.to_string());
    let channels = ln_channels::channels(ctx, Params::default()).await.map_err(|e| e.to_string());
    let batch = batch::list(ctx, Params::default()).await.map_err(|e| e.to_string());
    Figures {
        now: crate::unix_now(),
        network: ctx.network.to_string(),
        treasury: treasury.map(|v| v["rails"].as_array().cloned().unwrap_or_default()),
        channels: channels.map(|v| v["channels"].as_array().cloned().unwrap_or_default()),
        payouts: payouts(ctx),
        fees: fees(ctx).await,
        batch,
        webhooks: ctx.store.webhook_backlog().map_err(|e| e.to_string()),
        rates: rates(ctx),
    }
}

fn payouts(ctx: &AppState) -> Section<Payouts> {
    let counts = ctx.store.payout_counts().map_err(|e| e.to_string())?;
    let recent = ctx.store.payments(None, &[], None, RECENT).map_err(|e| e.to_string())?;
    Ok(Payouts { counts, recent })
}

async fn fees(ctx: &AppState) -> Section<Fees> {
    let report = cost_reports::report(ctx, Params::default()).await.map_err(|e| e.to_string())?;
    let (from, to) = (report["from"].as_u64().unwrap_or(0), report["to"].as_u64().unwrap_or(0));
    let points = costs::timeline(&ctx.payments, from, to).map_err(|e| e.to_string())?;
    Ok(Fees { report, points })
}

fn rates(ctx: &AppState) -> Rates {
    let now = crate::unix_now();
    let snapshot = ctx.fx.snapshot();
    let pairs = ctx
        .config
        .fx
        .pairs
        .iter()
        .map(|pair| match snapshot.iter().find(|(p, _)| p == pair) {
            Some((_, rate)) => {
                let age_secs = now.saturating_sub(rate.as_of);
                let fresh = ctx.fx.fresh(pair, now).is_some();
                PairRate {
                    pair: pair.clone(),
                    mid: rate.mid.to_string(),
                    source: rate.source.to_owned(),
                    age_secs,
                    status: if fresh { "ok" } else { "stale" },
                }
            }
            None => PairRate {
                pair: pair.clone(),
                mid: String::new(),
                source: String::new(),
                age_secs: 0,
                status: "missing",
            },
        })
        .collect();
    let ttl = ctx.config.fx.rate_ttl_secs;
    let sources = ctx
        .fx
        .source_health()
        .into_iter()
        .map(|(name, h)| {
            let last_ok_age_secs = h.last_ok.map(|t| now.saturating_sub(t));
            let status = source_status(&h, now, ttl);
            SourceRow { name: name.to_owned(), status, last_ok_age_secs, last_error: h.last_error.map(|(_, why)| why) }
        })
        .collect();
    Rates { pairs, sources }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_failing_stale_or_ok() {
        let health = |ok: Option<u64>, error: Option<u64>| SourceHealth {
            last_ok: ok,
            last_error: error.map(|at| (at, "timeout".to_owned())),
        };
        assert_eq!(source_status(&health(Some(100), None), 150, 60), "ok");
        assert_eq!(source_status(&health(Some(100), None), 161, 60), "stale");
        assert_eq!(source_status(&health(Some(100), Some(120)), 130, 60), "failing");
        assert_eq!(source_status(&health(Some(120), Some(100)), 130, 60), "ok", "answered again since");
        assert_eq!(source_status(&health(None, Some(100)), 130, 60), "failing");
    }
}
