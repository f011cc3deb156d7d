//! Routes in the store: written when priced, read back when submitted.

use rusqlite::{params, OptionalExtension};

use super::Route;
use crate::store::{Store, StoreError};

/// A stored route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRow {
    /// `rt_…`.
    pub route_id: String,
    /// The key that priced it.
    pub api_key_id: String,
    /// The destination as given.
    pub destination: String,
    /// Request currency.
    pub currency: String,
    /// Request amount, minor units.
    pub amount_minor: u64,
    /// What the payee gets, msat.
    pub amount_msat: u64,
    /// FX quote of a fiat amount.
    pub fx_quote_id: Option<String>,
    /// `high`, `normal`, `low`.
    pub priority: String,
    /// The candidates as JSON.
    pub candidates: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl Store {
    /// Records a priced route.
    pub fn insert_route(&self, route: &Route, key_id: &str, destination: &str, now: u64) -> Result<(), StoreError> {
        let candidates = serde_json::to_string(&route.candidates).unwrap_or_else(|_| "[]".into());
        self.conn().execute(
            "INSERT INTO routes (route_id, api_key_id, destination, kind, currency, amount_minor, amount_sat,
                                 amount_msat, fx_quote_id, priority, candidates, recommend, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
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
            ],
        )?;
        Ok(())
    }

    /// A route by id.
    pub fn route(&self, route_id: &str) -> Result<Option<RouteRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT route_id, api_key_id, destination, currency, amount_minor, amount_msat, fx_quote_id,
                        priority, candidates, expires_at FROM routes WHERE route_id = ?1",
                [route_id],
                |r| {
                    Ok(RouteRow {
                        route_id: r.get(0)?,
                        api_key_id: r.get(1)?,
                        destination: r.get(2)?,
                        currency: r.get(3)?,
                        amount_minor: r.get::<_, i64>(4)? as u64,
                        amount_msat: r.get::<_, i64>(5)? as u64,
                        fx_quote_id: r.get(6)?,
                        priority: r.get(7)?,
                        candidates: r.get(8)?,
                        expires_at: r.get::<_, i64>(9)? as u64,
                    })
                },
            )
            .optional()?)
    }
}
