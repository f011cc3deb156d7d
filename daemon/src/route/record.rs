//! Routes in the store, written when priced.

use rusqlite::params;

use super::Route;
use crate::store::{Store, StoreError};

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
}
