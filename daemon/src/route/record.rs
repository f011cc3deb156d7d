//! Routes in the store, written when priced and read back when submitted.

use crate::store::sql::{params, OptionalExtension};

use super::destination::PayTo;
use super::learn::{Learner, Outcome, Tuning};
use super::{Priority, Route};
use crate::config::RoutingConfig;
use crate::store::{Store, StoreError};

/// Meta keys of the operator's rail rules.
const PINNED: &str = "routing.pinned";
const DISABLED: &str = "routing.disabled";
/// Outcomes replayed into the learner at start (older ones have decayed away).
const REPLAY: i64 = 2_000;

/// A stored route, as submission needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRoute {
    /// `rt_…`.
    pub route_id: String,
    /// The key that priced it.
    pub api_key_id: String,
    /// The destination text as given.
    pub destination: String,
    /// The request's currency.
    pub currency: String,
    /// The request's amount, minor units.
    pub amount_minor: u64,
    /// What the payee receives, msat.
    pub amount_msat: u64,
    /// The FX quote that priced a fiat amount.
    pub fx_quote_id: Option<String>,
    /// The priced candidates: `(rail, cost_sat, fee_rate_sat_kvb)`.
    pub candidates: Vec<(String, u64, Option<u64>)>,
    /// Unix seconds.
    pub expires_at: u64,
    /// What each rail pays (`None` for a route priced before this was stored).
    pub pay_to: Option<PayTo>,
}

impl Store {
    /// The batch queue as routing sees it: how many payouts a batch leaving now would carry —
    /// those waiting, or as many as the last batches carried on average when that is more — and
    /// the earliest time one of the waiting must leave (its priority's ETA bound minus its
    /// confirmation target).
    pub fn batch_queue(&self, routing: &RoutingConfig) -> Result<(u64, Option<u64>), StoreError> {
        let conn = self.read();
        let recent: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(payouts) / COUNT(*), 0)
                 FROM (SELECT payouts FROM batches ORDER BY created_at DESC LIMIT 10) AS recent",
            )?
            .query_row([], |r| r.get::<_, i64>(0))?;
        let mut stmt = conn.prepare_cached(
            "SELECT r.priority, COUNT(*), MIN(p.created_at) FROM payments p JOIN routes r ON r.route_id = p.route_id
             WHERE p.rail = 'onchain_batch' AND p.state = 'debited' GROUP BY r.priority",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
        let (mut count, mut earliest) = (0, None::<u64>);
        for row in rows {
            let (priority, n, oldest) = row?;
            let p = Priority::parse(&priority).unwrap_or(Priority::Normal);
            let leaves = oldest as u64 + p.max_wait_secs(routing);
            count += n as u64;
            earliest = Some(earliest.map_or(leaves, |e| e.min(leaves)));
        }
        Ok((count.max(recent.max(0) as u64), earliest))
    }

    /// Records a priced route.
    pub fn insert_route(&self, route: &Route, key_id: &str, destination: &str, now: u64) -> Result<(), StoreError> {
        if route.fx_quote_id.is_some() {
            // The route refers to its quote, which may still sit in the write buffer.
            self.flush_deferred()?;
        }
        let candidates = serde_json::to_string(&route.candidates).unwrap_or_else(|_| "[]".into());
        let pay = &route.pay_to;
        self.conn()
            .prepare_cached(
                "INSERT INTO routes (route_id, api_key_id, destination, kind, currency, amount_minor, amount_sat,
                                 amount_msat, fx_quote_id, priority, candidates, recommend, created_at, expires_at,
                                 pay_address, pay_lightning, payment_hash, pay_by, method, geo)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
            )?
            .execute(params![
                route.route_id,
                key_id,
                destination,
                route.kind,
                route.currency,
                route.amount_minor as i64,
                route.amount_sat as i64,
                route.amount_msat as i64,
                route.fx_quote_id,
                route.priority,
                candidates,
                route.recommend,
                now as i64,
                route.expires_at as i64,
                pay.address,
                pay.lightning,
                pay.payment_hash,
                pay.pay_by.map(|t| t as i64),
                route.method,
                route.geo,
            ])?;
        Ok(())
    }

    /// A route by id.
    pub fn route(&self, route_id: &str) -> Result<Option<StoredRoute>, StoreError> {
        let conn = self.read();
        let row = conn
            .prepare_cached(
                "SELECT route_id, api_key_id, destination, currency, amount_minor, amount_msat, fx_quote_id,
                        candidates, expires_at, pay_address, pay_lightning, payment_hash, pay_by
                 FROM routes WHERE route_id = ?1",
            )?
            .query_row([route_id], |r| {
                let candidates: String = r.get(7)?;
                let pay_to = PayTo {
                    address: r.get(9)?,
                    lightning: r.get(10)?,
                    payment_hash: r.get(11)?,
                    pay_by: r.get::<_, Option<i64>>(12)?.map(|t| t as u64),
                };
                Ok(StoredRoute {
                    route_id: r.get(0)?,
                    api_key_id: r.get(1)?,
                    destination: r.get(2)?,
                    currency: r.get(3)?,
                    amount_minor: r.get::<_, i64>(4)? as u64,
                    amount_msat: r.get::<_, i64>(5)? as u64,
                    fx_quote_id: r.get(6)?,
                    candidates: parse_candidates(&candidates),
                    expires_at: r.get::<_, i64>(8)? as u64,
                    pay_to: (pay_to.address.is_some() || pay_to.lightning.is_some()).then_some(pay_to),
                })
            })
            .optional()?;
        Ok(row)
    }

    /// The learner as the store remembers it: the operator's rules, and the latest outcomes
    /// replayed in order.
    pub fn load_learner(&self, tuning: &Tuning) -> Result<Learner, StoreError> {
        let disabled = self.meta(DISABLED)?.unwrap_or_default();
        let mut learner = Learner {
            pinned: self.meta(PINNED)?.filter(|p| !p.is_empty()),
            disabled: disabled.split(',').filter(|r| !r.is_empty()).map(str::to_owned).collect(),
            ..Learner::default()
        };
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT rail, success, code, latency_secs, at FROM
               (SELECT * FROM rail_outcomes ORDER BY id DESC LIMIT ?1) AS latest ORDER BY id",
        )?;
        let rows = stmt.query_map([REPLAY], |r| {
            Ok(Outcome {
                rail: r.get(0)?,
                success: r.get::<_, i64>(1)? == 1,
                code: r.get(2)?,
                latency_secs: r.get::<_, i64>(3)? as u64,
                at: r.get::<_, i64>(4)? as u64,
            })
        })?;
        for o in rows {
            learner.record(&o?, tuning);
        }
        Ok(learner)
    }

    /// Stores the operator's rail rules.
    pub fn set_rail_rules(&self, pinned: Option<&str>, disabled: &[String]) -> Result<(), StoreError> {
        self.set_meta(PINNED, pinned.unwrap_or(""))?;
        self.set_meta(DISABLED, &disabled.join(","))
    }
}

fn parse_candidates(json: &str) -> Vec<(String, u64, Option<u64>)> {
    let values: Vec<serde_json::Value> = serde_json::from_str(json).unwrap_or_default();
    values
        .iter()
        .filter_map(|c| {
            let rail = c.get("rail")?.as_str()?.to_owned();
            let cost = c.get("cost_sat")?.as_u64()?;
            // Routes priced before quotes were kept to the sat/kvB had whole sat/vB only.
            let kvb = c.get("fee_rate_sat_kvb").and_then(serde_json::Value::as_u64);
            let vb = c.get("fee_rate_sat_vb").and_then(serde_json::Value::as_u64);
            Some((rail, cost, kvb.or(vb.map(|vb| vb.saturating_mul(1_000)))))
        })
        .collect()
}
