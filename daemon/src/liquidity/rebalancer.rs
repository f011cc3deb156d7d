//! The rebalancer loop: keeps each channel inside its band by splicing to and from the treasury.
//!
//! Each cycle (every `[treasury] rebalance_interval_secs`, or `rebalance.run`) it first brings the
//! ledger up to date with what the node did (so that a finished splice's fee is booked as
//! `fees:lightning_onchain`, the treasury's cost), resolves the splices in flight
//! ([`Store::resolve_splices`](crate::store::Store::resolve_splices)), then gathers the node's
//! usable channels and the [`Situation`] (the treasury's balance less what on-chain payouts in
//! flight reserve, the feerate, the splice fees of the budget period, the Lightning payouts'
//! forecast), asks [`rebalance::decide()`] and carries out the splices it returns — none in dry run.
//! A splice is persisted `planned` before the node is asked, through the same calls as the admin
//! RPCs (`funding::splice_in`, `funding::splice_out` to a treasury address), so the ledger books
//! it exactly as theirs. One cycle runs at a time. Each splice made is one INFO line; a channel
//! left alone is logged at DEBUG only.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::splices::{NewSplice, NodeChannel};
use crate::payment::Payments;
use crate::rails::funding::{self, Funding};
use crate::rails::lightning::LnError;
use crate::rails::onchain::blocking;
use crate::rebalance::decide::Splice;
use crate::rebalance::{self, Action, Channel, Decision, Situation, TreasuryPolicy};
use crate::store::StoreError;

/// Why a cycle could not run.
#[derive(Debug, thiserror::Error)]
pub enum RebalanceError {
    /// The node is not running, or refused.
    #[error(transparent)]
    Lightning(#[from] LnError),
    /// The treasury or bitcoind failed.
    #[error(transparent)]
    Wallet(#[from] sendero_wallet::WalletError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The treasury guard could not weigh the treasury.
    #[error(transparent)]
    Guard(#[from] super::guard::GuardError),
}

/// One channel in a plan: the decision, and what was made of it.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// The channel.
    pub channel_id: String,
    /// `splice_in`, `splice_out`, or why nothing is done (`in_band`, `budget_spent`, …).
    pub action: &'static str,
    /// Why a splice is made (`below_band`, `below_floor`, `above_band`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<&'static str>,
    /// For a person.
    pub reason: String,
    /// What the splice moves, sats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount_sat: Option<u64>,
    /// Its estimated fee, sats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_sat: Option<u64>,
    /// Capacity, sats.
    pub capacity_sat: u64,
    /// What we can send, sats.
    pub outbound_sat: u64,
    /// What we can receive, sats.
    pub inbound_sat: u64,
    /// The outbound share, basis points.
    pub share_bp: u64,
    /// Its floor (its part of the Lightning reserve and the forecast need), sats.
    pub floor_sat: u64,
    /// How long its outbound lasts at the forecast's rate, seconds (absent: no payouts forecast).
    pub runway_secs: Option<u64>,
    /// The persisted splice (`rebalance.run`, the loop).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub splice_id: Option<i64>,
    /// Its state after this cycle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// Why the node refused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A cycle's decisions and the situation they came from.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Unix seconds.
    pub now: u64,
    /// Decide only.
    pub dry_run: bool,
    /// The treasury's balance, sats.
    pub onchain_sat: u64,
    /// What on-chain payouts in flight reserve of it, sats.
    pub onchain_reserved_sat: u64,
    /// The feerate a splice would pay now, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// The ceiling, sat/kvB.
    pub max_feerate_sat_kvb: u64,
    /// Splice fees spent in the budget period, sats.
    pub spent_sat: u64,
    /// The budget, sats.
    pub fee_budget_sat: u64,
    /// The Lightning payouts expected over the forecast's horizon, sats.
    pub forecast_need_sat: u64,
    /// Their mean rate, sats per hour.
    pub forecast_rate_sat_per_hour: u64,
    /// Per usable channel (ready, peer connected).
    pub channels: Vec<Line>,
}

/// How often a switched-off rebalancer looks whether it was switched on.
const OFF_LOOK: Duration = Duration::from_secs(10);

/// One cycle at a time: the loop and `rebalance.run` / `rebalance.preview` never interleave.
static CYCLE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the rebalancer would do now, per channel (nothing is spliced or recorded, but the
/// splices in flight are resolved first).
pub async fn preview(ctx: &Arc<Payments>) -> Result<Plan, RebalanceError> {
    let _one = CYCLE.lock().await;
    let p = ctx.guard.policy();
    let (channels, situation) = gather(ctx, &p, crate::unix_now()).await?;
    let decisions = rebalance::decide(&channels, &situation, &p);
    Ok(plan(&p, &channels, &situation, &decisions))
}

/// One cycle now: decides and carries out the splices (records them only, in dry run).
pub async fn cycle(ctx: &Arc<Payments>) -> Result<Plan, RebalanceError> {
    let _one = CYCLE.lock().await;
    let p = ctx.guard.policy();
    let now = crate::unix_now();
    let (channels, situation) = gather(ctx, &p, now).await?;
    let decisions = rebalance::decide(&channels, &situation, &p);
    let mut plan = plan(&p, &channels, &situation, &decisions);
    for (line, d) in plan.channels.iter_mut().zip(&decisions) {
        let splice = match &d.action {
            Action::SpliceIn(s) => (rebalance::SpliceKind::In, s),
            Action::SpliceOut(s) => (rebalance::SpliceKind::Out, s),
            Action::Nothing { .. } => {
                tracing::debug!(channel_id = %d.channel_id, code = d.action.code(), reason = d.action.reason(), "rebalance: nothing to do");
                continue;
            }
        };
        make(ctx, d, splice, p.dry_run, line).await?;
    }
    Ok(plan)
}

/// Runs a cycle every `rebalance_interval_secs` until cancelled. A failing cycle is logged once
/// (WARN) until it fails differently or succeeds again.
pub async fn run(ctx: Arc<Payments>, cancel: CancellationToken) {
    let mut last_error: Option<String> = None;
    loop {
        // The interval in force (`treasury.policy.set` may switch the loop on or off).
        let interval = ctx.guard.treasury_config().rebalance_interval_secs;
        let wait = if interval == 0 { OFF_LOOK } else { Duration::from_secs(interval) };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if ctx.guard.treasury_config().rebalance_interval_secs == 0 {
            continue;
        }
        match cycle(&ctx).await {
            Ok(_) => last_error = None,
            Err(RebalanceError::Lightning(LnError::NotReady)) => {
                tracing::debug!("rebalance: the node is not running yet")
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, "rebalance cycle failed; retrying every interval");
                }
                last_error = Some(text);
            }
        }
    }
}

/// The ledger brought up to date, the splices in flight resolved, the usable channels and the
/// situation.
async fn gather(
    ctx: &Arc<Payments>,
    p: &TreasuryPolicy,
    now: u64,
) -> Result<(Vec<Channel>, Situation), RebalanceError> {
    let node = ctx.lightning.node()?;
    let c = Arc::clone(ctx);
    match tokio::task::spawn_blocking(move || crate::payment::reconcile::import_wallet(&c)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "rebalance: ledger import failed; ledger.verify tells more"),
        Err(e) => tracing::debug!(error = %e, "rebalance: ledger import task failed"),
    }
    let listed = node.channels();
    let seen: Vec<NodeChannel> = listed
        .iter()
        .map(|c| NodeChannel { channel_id: c.channel_id.clone(), funding_txid: funding_txid(c), ready: c.ready })
        .collect();
    for s in ctx.store.resolve_splices(&seen, now)? {
        let (id, channel_id, kind, amount_sat, state) = (s.id, &s.channel_id, &s.kind, s.amount_sat, &s.state);
        let txid = s.txid.as_deref().unwrap_or_default();
        tracing::info!(splice_id = id, %channel_id, %kind, amount_sat, %state, %txid, error = ?s.error, "rebalance: splice ended");
    }
    let in_flight = ctx.store.splices_in_flight()?;
    let mut channels = Vec::new();
    // A channel whose peer is offline cannot be spliced now: left out until it is usable.
    for c in listed.iter().filter(|c| c.usable) {
        let (failures, last_failure_at) = ctx.store.splice_failures(&c.channel_id)?;
        let busy = in_flight.iter().any(|s| s.channel_id == c.channel_id) || ctx.store.channel_busy(&c.channel_id)?;
        channels.push(Channel {
            id: c.channel_id.clone(),
            capacity_sat: c.capacity_sat,
            outbound_msat: c.outbound_msat,
            inbound_msat: c.inbound_msat,
            in_flight: busy,
            failures,
            last_failure_at,
        });
    }
    Ok((channels, situation(ctx, p, now).await?))
}

/// The treasury, the feerate, the budget spent and the forecast at `now`.
async fn situation(ctx: &Payments, p: &TreasuryPolicy, now: u64) -> Result<Situation, RebalanceError> {
    // The treasury as its guard weighs it; the forecast made afresh (a cycle is minutes apart).
    let funds = ctx.guard.funds(rebalance::Rail::Onchain)?.unwrap_or_default();
    let feerate = ctx.onchain.default_estimate().await?;
    Ok(Situation {
        now,
        onchain_sat: funds.held_msat / 1_000,
        onchain_reserved_sat: funds.reserved_msat.div_ceil(1_000),
        feerate_sat_kvb: feerate.feerate.sat_per_kvb(),
        spent_sat: ctx.store.splice_fees_since(now.saturating_sub(p.fee_budget_period_secs))?,
        forecast: ctx.guard.forecast(rebalance::Rail::Lightning, p, Duration::ZERO)?,
    })
}

/// The funding transaction of a channel, from its `txid:vout`.
fn funding_txid(c: &sendero_lightning::Channel) -> Option<String> {
    c.funding_txo.as_deref().and_then(|o| o.split(':').next()).map(str::to_owned)
}

/// Persists the splice `planned`, asks the node (unless dry run), and records what it answered.
async fn make(
    ctx: &Payments,
    d: &Decision,
    (kind, s): (rebalance::SpliceKind, &Splice),
    dry_run: bool,
    line: &mut Line,
) -> Result<(), RebalanceError> {
    let node = ctx.lightning.node()?;
    let before = node.channels().iter().find(|c| c.channel_id == d.channel_id).and_then(funding_txid);
    let new = NewSplice {
        channel_id: d.channel_id.clone(),
        kind: if kind == rebalance::SpliceKind::In { "in" } else { "out" },
        amount_sat: s.amount_sat,
        fee_sat: s.fee_sat,
        code: s.why.code(),
        reason: s.reason.clone(),
        funding_txid_before: before,
        dry_run,
    };
    let id = ctx.store.splice_planned(&new, crate::unix_now())?;
    line.splice_id = Some(id);
    line.state = Some("planned");
    let (channel_id, amount_sat, fee_sat, why) = (&d.channel_id, s.amount_sat, s.fee_sat, s.why.code());
    if dry_run {
        tracing::info!(%channel_id, kind = kind.as_str(), amount_sat, fee_sat, why, reason = %s.reason, "rebalance (dry run): would splice");
        return Ok(());
    }
    tracing::info!(%channel_id, kind = kind.as_str(), amount_sat, fee_sat, why, reason = %s.reason, splice_id = id, "rebalance: splicing");
    let asked = ask(ctx, kind, channel_id.clone(), amount_sat).await;
    crate::failpoint::hit("rebalance.splice_started");
    let now = crate::unix_now();
    match asked {
        Ok(()) => {
            ctx.store.splice_state(id, "started", None, now)?;
            line.state = Some("started");
        }
        Err(e) => {
            tracing::warn!(%channel_id, splice_id = id, error = %e, "rebalance: the splice was refused; the channel backs off");
            ctx.store.splice_state(id, "failed", Some(&e.to_string()), now)?;
            line.state = Some("failed");
            line.error = Some(e.to_string());
        }
    }
    Ok(())
}

/// Asks for the splice exactly as `ln.splice_in` / `ln.splice_out` (to a treasury address) do.
async fn ask(ctx: &Payments, kind: rebalance::SpliceKind, channel_id: String, amount_sat: u64) -> Result<(), LnError> {
    let f = Funding {
        onchain: &ctx.onchain,
        lightning: &ctx.lightning,
        store: &ctx.store,
        headroom_sat: ctx.config.lightning.funding_fee_headroom_sat,
    };
    match kind {
        rebalance::SpliceKind::In => funding::splice_in(&f, channel_id, amount_sat).await.map(|_| ()),
        rebalance::SpliceKind::Out => {
            let treasury = Arc::clone(ctx.onchain.treasury());
            let address = blocking(move || treasury.new_address()).await?;
            funding::splice_out(&f, channel_id, amount_sat, address, "to_treasury").await
        }
    }
}

/// The plan's lines and figures.
fn plan(p: &TreasuryPolicy, channels: &[Channel], s: &Situation, decisions: &[Decision]) -> Plan {
    let lines = channels.iter().zip(decisions).map(|(c, d)| line(c, d)).collect();
    Plan {
        now: s.now,
        dry_run: p.dry_run,
        onchain_sat: s.onchain_sat,
        onchain_reserved_sat: s.onchain_reserved_sat,
        feerate_sat_kvb: s.feerate_sat_kvb,
        max_feerate_sat_kvb: p.max_feerate_sat_kvb,
        spent_sat: s.spent_sat,
        fee_budget_sat: p.fee_budget_sat,
        forecast_need_sat: s.forecast.need_msat / 1_000,
        forecast_rate_sat_per_hour: s.forecast.rate_msat_per_hour / 1_000,
        channels: lines,
    }
}

fn line(c: &Channel, d: &Decision) -> Line {
    let splice = match &d.action {
        Action::SpliceIn(s) | Action::SpliceOut(s) => Some(s),
        Action::Nothing { .. } => None,
    };
    Line {
        channel_id: d.channel_id.clone(),
        action: d.action.code(),
        why: splice.map(|s| s.why.code()),
        reason: d.action.reason().to_owned(),
        amount_sat: splice.map(|s| s.amount_sat),
        fee_sat: splice.map(|s| s.fee_sat),
        capacity_sat: c.capacity_sat,
        outbound_sat: c.outbound_msat / 1_000,
        inbound_sat: c.inbound_msat / 1_000,
        share_bp: d.share_bp,
        floor_sat: d.floor_msat / 1_000,
        runway_secs: d.runway_secs,
        splice_id: None,
        state: None,
        error: None,
    }
}
