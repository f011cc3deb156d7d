//! The treasury policy in force and what each rail holds against its reserve. The policy is
//! `[treasury]` until an operator changes it at run time (`treasury.policy.set`, audited); the
//! change is kept in the store and outlives restarts. Every few seconds (and on demand) the guard
//! looks at each rail — on chain the treasury's balance, on Lightning the channels' outbound,
//! less what payouts in flight have taken from it but not yet spent — against its reserve
//! ([`crate::rebalance::rail_status`]). A rail below its reserve takes no new payouts: routes list
//! it under `unavailable` with code `treasury_reserve`, submits to it are refused, the other rails
//! still serve. Crossing a reserve either way writes one operator event (`treasury.low`,
//! `treasury.recovered`) to the outbox, in the same transaction as the rail's new state, and one
//! log line.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crate::store::sql::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, TreasuryConfig};
use crate::rails::lightning::LnRail;
use crate::rails::onchain::Onchain;
use crate::rebalance::{self, Forecast, Rail, RailFunds, RailStatus, TreasuryPolicy};
use crate::store::{Store, StoreError};

/// The store's record of the node's last look (the front ends of a PostgreSQL store refuse
/// payouts by it).
const PUBLISHED_LOOKS: &str = "treasury_looks";
/// How often the rails are looked at.
const LOOK_EVERY: Duration = Duration::from_secs(3);
/// How long the periodic look reuses a rail's forecast (it is made of hourly buckets).
const FORECAST_AGE: Duration = Duration::from_secs(60);

/// Why the policy was not changed, or a look failed.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The new policy is not valid (nothing changed).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ConfigError> for GuardError {
    fn from(e: ConfigError) -> Self {
        GuardError::Invalid(e.to_string())
    }
}

/// A rail's figures as `treasury.status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RailView {
    /// `onchain` (also `onchain_batch`) or `lightning`.
    pub rail: &'static str,
    /// What it holds, sats.
    pub held_sat: u64,
    /// Taken by payouts in flight and not yet spent, sats.
    pub reserved_sat: u64,
    /// Free for new payouts, sats.
    pub free_sat: u64,
    /// The reserve it keeps, sats.
    pub reserve_sat: u64,
    /// The forecast's payouts over its horizon (p90 of recent days), sats.
    pub forecast_need_sat: u64,
    /// Hours until what is free falls to the reserve at the recent payout rate (`null`: nothing
    /// paid out recently).
    pub runway_hours: Option<u64>,
    /// Whether it takes new payouts.
    pub accepting: bool,
    /// Why not, when it does not.
    pub code: Option<&'static str>,
    /// …for a person.
    pub message: Option<String>,
}

impl RailView {
    fn of(s: &RailStatus) -> RailView {
        RailView {
            rail: s.rail.as_str(),
            held_sat: s.held_msat / 1_000,
            reserved_sat: s.reserved_msat.div_ceil(1_000),
            free_sat: s.held_msat.saturating_sub(s.reserved_msat) / 1_000,
            reserve_sat: s.reserve_msat / 1_000,
            forecast_need_sat: s.forecast_need_msat.div_ceil(1_000),
            runway_hours: s.runway_hours,
            accepting: s.accepting(),
            code: s.unavailable.as_ref().map(|u| u.code),
            message: s.unavailable.as_ref().map(|u| u.message.clone()),
        }
    }
}

/// A rail's status as the node publishes it for the front ends.
#[derive(Debug, Serialize, Deserialize)]
struct Published {
    rail: String,
    held_msat: u64,
    reserved_msat: u64,
    reserve_msat: u64,
    forecast_need_msat: u64,
    runway_hours: Option<u64>,
    /// Why it takes no new payouts (`treasury_reserve`), for a person.
    refused: Option<String>,
}

impl Published {
    fn of(s: &RailStatus) -> Published {
        Published {
            rail: s.rail.as_str().to_owned(),
            held_msat: s.held_msat,
            reserved_msat: s.reserved_msat,
            reserve_msat: s.reserve_msat,
            forecast_need_msat: s.forecast_need_msat,
            runway_hours: s.runway_hours,
            refused: s.unavailable.as_ref().map(|u| u.message.clone()),
        }
    }

    fn status(self) -> Option<RailStatus> {
        let rail = [Rail::Onchain, Rail::Lightning].into_iter().find(|r| r.as_str() == self.rail)?;
        Some(RailStatus {
            rail,
            held_msat: self.held_msat,
            reserved_msat: self.reserved_msat,
            reserve_msat: self.reserve_msat,
            forecast_need_msat: self.forecast_need_msat,
            runway_hours: self.runway_hours,
            unavailable: self.refused.map(|message| rebalance::Unavailable { code: "treasury_reserve", message }),
        })
    }
}

/// The policy an operator set, as the store keeps it, checked.
fn stored_policy(text: &str) -> Result<TreasuryConfig, GuardError> {
    let set: TreasuryConfig = serde_json::from_str(text)
        .map_err(|e| GuardError::Invalid(format!("the stored treasury policy is unreadable: {e}")))?;
    set.check()?;
    Ok(set)
}

/// The payment rails that draw on a treasury rail.
fn payment_rails(rail: Rail) -> &'static str {
    match rail {
        Rail::Onchain => "'onchain', 'onchain_batch'",
        Rail::Lightning => "'lightning'",
    }
}

impl Store {
    /// The policy an operator set at run time, if any.
    fn treasury_policy(&self) -> Result<Option<String>, StoreError> {
        let conn = self.read();
        Ok(conn.query_row("SELECT config FROM treasury_policy WHERE id = 1", [], |r| r.get(0)).optional()?)
    }

    fn set_treasury_policy(&self, config: &str, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO treasury_policy (id, config, updated_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET config = excluded.config, updated_at = excluded.updated_at",
            params![config, now as i64],
        )?;
        Ok(())
    }

    /// What payouts in flight on `rail` took and have not spent yet (debited, queued, or signed
    /// and not broadcast: their amounts and fee reserves), msat.
    pub(super) fn reserved_msat(&self, rail: Rail) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT COALESCE(SUM(amount_msat + fee_reserve_msat), 0) FROM payments
             WHERE rail IN ({}) AND state IN ('submitted', 'debited', 'sending')",
            payment_rails(rail)
        );
        let msat: i64 = self.read().query_row(&sql, [], |r| r.get(0))?;
        Ok(msat.max(0) as u64)
    }

    /// The payouts on `rail` since `from` that did not fail: `(created_at, amount_msat)`.
    pub(super) fn payouts_since(&self, rail: Rail, from: u64) -> Result<Vec<(u64, u64)>, StoreError> {
        let sql = format!(
            "SELECT created_at, amount_msat FROM payments
             WHERE rail IN ({}) AND state != 'failed' AND created_at >= ?1",
            payment_rails(rail)
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([from as i64], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Whether `rail` took new payouts at the last look (yes, before any look).
    fn rail_accepting(&self, rail: Rail) -> Result<bool, StoreError> {
        let conn = self.read();
        let accepting: Option<bool> = conn
            .query_row("SELECT accepting FROM treasury_rails WHERE rail = ?1", [rail.as_str()], |r| r.get(0))
            .optional()?;
        Ok(accepting.unwrap_or(true))
    }

    /// Records that `status.rail` crossed its reserve, and the operator event, in one transaction.
    fn record_crossing(&self, status: &RailStatus, event: &str, now: u64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO treasury_rails (rail, accepting, since) VALUES (?1, ?2, ?3)
             ON CONFLICT (rail) DO UPDATE SET accepting = excluded.accepting, since = excluded.since",
            params![status.rail.as_str(), status.accepting(), now as i64],
        )?;
        let payload = json!(RailView::of(status));
        tx.execute(
            "INSERT INTO outbox (event_id, event_type, payment_id, api_key_id, payload, created_at)
             VALUES (?1, ?2, NULL, '', ?3, ?4)",
            params![crate::secret::sortable_id("evt_"), event, payload.to_string(), now as i64],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// The policy in force and the rails' last look.
pub struct Guard {
    store: Arc<Store>,
    onchain: Arc<Onchain>,
    lightning: Arc<LnRail>,
    config: RwLock<TreasuryConfig>,
    looks: RwLock<HashMap<Rail, RailStatus>>,
    /// Each rail's forecast and when it was made: it reads a week of payouts, which the look
    /// every few seconds does not need afresh.
    forecasts: RwLock<HashMap<Rail, (Instant, Forecast)>>,
    webhooks_wake: Arc<Notify>,
    /// A front end's guard: it follows the looks the node publishes, and records nothing.
    front_end: bool,
}

impl Guard {
    /// The guard over the rails, with `[treasury]` — or the policy an operator set since, which
    /// the store keeps.
    pub fn open(
        base: &TreasuryConfig,
        store: Arc<Store>,
        (onchain, lightning): (Arc<Onchain>, Arc<LnRail>),
        webhooks_wake: Arc<Notify>,
        front_end: bool,
    ) -> Result<Guard, GuardError> {
        let config = match store.treasury_policy()? {
            Some(text) => stored_policy(&text)?,
            None => base.clone(),
        };
        let looks = RwLock::new(HashMap::new());
        let forecasts = RwLock::new(HashMap::new());
        let config = RwLock::new(config);
        Ok(Guard { store, onchain, lightning, config, looks, forecasts, webhooks_wake, front_end })
    }

    /// The policy in force.
    pub fn policy(&self) -> TreasuryPolicy {
        TreasuryPolicy::from_config(&self.treasury_config())
    }

    /// The `[treasury]` settings in force.
    pub fn treasury_config(&self) -> TreasuryConfig {
        self.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The settings in force, and what they become with `changes` (a JSON object of `[treasury]`
    /// keys) — checked, not yet in force ([`Guard::put`]).
    pub fn merged(
        &self,
        changes: &serde_json::Map<String, Value>,
    ) -> Result<(TreasuryConfig, TreasuryConfig), GuardError> {
        let before = self.treasury_config();
        let mut merged = serde_json::to_value(&before).map_err(|e| GuardError::Invalid(e.to_string()))?;
        if let Value::Object(m) = &mut merged {
            m.extend(changes.clone());
        }
        let after: TreasuryConfig = serde_json::from_value(merged).map_err(|e| GuardError::Invalid(e.to_string()))?;
        after.check()?;
        Ok((before, after))
    }

    /// Puts `after` in force, kept in the store first (it outlives restarts).
    pub fn put(&self, after: TreasuryConfig) -> Result<(), GuardError> {
        after.check()?;
        let text = serde_json::to_string(&after).map_err(|e| GuardError::Invalid(e.to_string()))?;
        self.store.set_treasury_policy(&text, crate::unix_now())?;
        *self.config.write().unwrap_or_else(PoisonError::into_inner) = after;
        Ok(())
    }

    /// Why `rail` takes no new payouts at the last look, and what is free on it (sats).
    pub fn refusal(&self, rail: Rail) -> Option<(rebalance::Unavailable, u64)> {
        let looks = self.looks.read().unwrap_or_else(PoisonError::into_inner);
        let s = looks.get(&rail)?;
        let free = s.held_msat.saturating_sub(s.reserved_msat) / 1_000;
        s.unavailable.clone().map(|u| (u, free))
    }

    /// Looks at every rail that can be looked at now (Lightning only while the node runs),
    /// records crossings, and returns what it saw. A forecast younger than `forecast_age` is
    /// reused.
    pub async fn look(&self, forecast_age: Duration) -> Result<Vec<RailView>, GuardError> {
        if self.front_end {
            return self.follow_node();
        }
        let p = self.policy();
        let now = crate::unix_now();
        let mut seen = Vec::new();
        for rail in [Rail::Onchain, Rail::Lightning] {
            let Some(funds) = self.funds(rail)? else { continue };
            let forecast = self.forecast(rail, &p, forecast_age)?;
            let status = rebalance::rail_status(rail, funds, &forecast, &p);
            self.crossed(&status, now)?;
            seen.push(RailView::of(&status));
            self.looks.write().unwrap_or_else(PoisonError::into_inner).insert(rail, status);
        }
        if self.store.is_postgres() {
            let published: Vec<Published> = {
                let looks = self.looks.read().unwrap_or_else(PoisonError::into_inner);
                looks.values().map(Published::of).collect()
            };
            let text = serde_json::to_string(&published).map_err(|e| GuardError::Invalid(e.to_string()))?;
            let store = Arc::clone(&self.store);
            tokio::task::block_in_place(|| store.set_meta(PUBLISHED_LOOKS, &text))?;
        }
        Ok(seen)
    }

    /// A front end's look: the node's last, as it published it (nothing before it has).
    fn follow_node(&self) -> Result<Vec<RailView>, GuardError> {
        let store = Arc::clone(&self.store);
        let text = tokio::task::block_in_place(|| store.meta(PUBLISHED_LOOKS))?;
        let published: Vec<Published> = match text {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| GuardError::Invalid(format!("the node's published treasury look is unreadable: {e}")))?,
            None => Vec::new(),
        };
        // The policy too, as an operator set it on the node.
        if let Some(text) = tokio::task::block_in_place(|| store.treasury_policy())? {
            if let Ok(set) = stored_policy(&text) {
                *self.config.write().unwrap_or_else(PoisonError::into_inner) = set;
            }
        }
        let statuses: Vec<RailStatus> = published.into_iter().filter_map(Published::status).collect();
        let seen = statuses.iter().map(RailView::of).collect();
        *self.looks.write().unwrap_or_else(PoisonError::into_inner) =
            statuses.into_iter().map(|s| (s.rail, s)).collect();
        Ok(seen)
    }

    /// What `rail` holds and what payouts in flight took from it; `None` when it cannot be seen
    /// (no Lightning node running).
    pub fn funds(&self, rail: Rail) -> Result<Option<RailFunds>, GuardError> {
        let Some(held_msat) = self.held_msat(rail) else { return Ok(None) };
        let store = Arc::clone(&self.store);
        let reserved_msat = tokio::task::block_in_place(|| store.reserved_msat(rail))?;
        Ok(Some(RailFunds { held_msat, reserved_msat }))
    }

    /// `rail`'s payout forecast under `p`, reused when younger than `max_age`.
    pub fn forecast(&self, rail: Rail, p: &TreasuryPolicy, max_age: Duration) -> Result<Forecast, GuardError> {
        if let Some((at, f)) = self.forecasts.read().unwrap_or_else(PoisonError::into_inner).get(&rail) {
            if at.elapsed() < max_age {
                return Ok(*f);
            }
        }
        let now = crate::unix_now();
        let (store, start) = (Arc::clone(&self.store), rebalance::history_start(now, p));
        let records = tokio::task::block_in_place(|| store.payouts_since(rail, start))?;
        let forecast = rebalance::forecast(&records, now, p);
        self.forecasts.write().unwrap_or_else(PoisonError::into_inner).insert(rail, (Instant::now(), forecast));
        Ok(forecast)
    }

    /// What `rail` holds now, msat; `None` when it cannot be seen (no Lightning node running).
    fn held_msat(&self, rail: Rail) -> Option<u64> {
        match rail {
            Rail::Onchain => {
                let b = self.onchain.treasury().balances();
                Some(b.confirmed_sat.saturating_add(b.trusted_pending_sat).saturating_mul(1_000))
            }
            // Ready channels' outbound, usable now or not: a peer reconnecting after a restart
            // is not the rail running low.
            Rail::Lightning => self
                .lightning
                .node()
                .ok()
                .map(|n| n.channels().iter().filter(|c| c.ready).map(|c| c.outbound_msat).sum()),
        }
    }

    /// Records and tells a crossing of `status.rail`'s reserve since the last look, if any.
    fn crossed(&self, status: &RailStatus, now: u64) -> Result<(), GuardError> {
        let store = Arc::clone(&self.store);
        let before = tokio::task::block_in_place(|| store.rail_accepting(status.rail))?;
        let Some(crossing) = rebalance::crossing(before, status.accepting()) else { return Ok(()) };
        let event = crossing.event();
        tokio::task::block_in_place(|| store.record_crossing(status, event, now))?;
        self.webhooks_wake.notify_one();
        let (held_sat, reserve_sat) = (status.held_msat / 1_000, status.reserve_msat / 1_000);
        let reserved_sat = status.reserved_msat.div_ceil(1_000);
        match crossing {
            rebalance::Crossing::Low => tracing::warn!(
                rail = status.rail.as_str(),
                held_sat,
                reserved_sat,
                reserve_sat,
                "treasury.low: the rail is below its reserve and takes no new payouts until it is refilled"
            ),
            rebalance::Crossing::Recovered => tracing::info!(
                rail = status.rail.as_str(),
                held_sat,
                reserved_sat,
                reserve_sat,
                "treasury.recovered: the rail is back above its reserve and takes new payouts"
            ),
        }
        Ok(())
    }

    /// Looks at the rails every few seconds until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut failing = false;
        loop {
            match self.look(FORECAST_AGE).await {
                Ok(_) => failing = false,
                // Once per outage, not every look.
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "the treasury's rails could not be looked at; tried again");
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(LOOK_EVERY) => {}
            }
        }
    }
}
