//! Webhook endpoints, deliveries and their attempt log in the store.

use crate::store::sql::{params, OptionalExtension};
use serde::Serialize;

use crate::store::{Store, StoreError};

/// Meta key: the last outbox row fanned out.
const CURSOR: &str = "webhooks.outbox_cursor";

/// A registered endpoint (its secret is never read back out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// `we_…`.
    pub endpoint_id: String,
    /// Where events are POSTed.
    pub url: String,
    /// Subscribed event types.
    pub events: Vec<String>,
    /// `enabled` or `disabled`.
    pub state: String,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// The deliveries not yet made ([`Store::webhook_backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Backlog {
    /// Waiting to be sent (or retried).
    pub pending: u64,
    /// Given up on after their last attempt.
    pub failed: u64,
    /// When the oldest waiting one was queued, Unix seconds.
    pub oldest_pending_at: Option<u64>,
}

/// A delivery due now, with what sending it needs.
#[derive(Debug, Clone)]
pub struct Due {
    /// Delivery row.
    pub delivery_id: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// The endpoint.
    pub endpoint_id: String,
    /// Its URL.
    pub url: String,
    /// Its secret.
    pub secret: String,
    /// The event id (`webhook-id`).
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The event's data (JSON).
    pub payload: String,
    /// When the event happened.
    pub created_at: u64,
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Delivery row.
    pub delivery_id: i64,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The payment the event is about (none for an operator event).
    pub payment_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Last HTTP status.
    pub last_status: Option<u16>,
    /// Last network error.
    pub last_error: Option<String>,
    /// Unix seconds.
    pub next_attempt_at: u64,
    /// Unix seconds.
    pub delivered_at: Option<u64>,
}

impl Store {
    /// Stores a new endpoint.
    pub fn insert_endpoint(&self, e: &Endpoint, api_key_id: &str, secret: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO webhook_endpoints (endpoint_id, api_key_id, url, secret, events, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'enabled', ?6, ?6)",
            params![e.endpoint_id, api_key_id, e.url, secret, e.events.join(","), e.created_at as i64],
        )?;
        Ok(())
    }

    /// A key's endpoints (every key's when `None`).
    pub fn endpoints(&self, api_key_id: Option<&str>) -> Result<Vec<Endpoint>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT endpoint_id, url, events, state, disabled_reason, created_at FROM webhook_endpoints
             WHERE CAST(?1 AS TEXT) IS NULL OR api_key_id = ?1 ORDER BY endpoint_id",
        )?;
        let rows = stmt.query_map([api_key_id], |r| {
            Ok(Endpoint {
                endpoint_id: r.get(0)?,
                url: r.get(1)?,
                events: r.get::<_, String>(2)?.split(',').map(str::to_owned).collect(),
                state: r.get(3)?,
                disabled_reason: r.get(4)?,
                created_at: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deletes a key's endpoint with its deliveries; false when it has no such endpoint.
    pub fn delete_endpoint(&self, api_key_id: &str, endpoint_id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let owned = tx
            .query_row(
                "SELECT 1 FROM webhook_endpoints WHERE endpoint_id = ?1 AND api_key_id = ?2",
                [endpoint_id, api_key_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if owned {
            tx.execute(
                "DELETE FROM webhook_attempts WHERE delivery_id IN
                   (SELECT delivery_id FROM webhook_deliveries WHERE endpoint_id = ?1)",
                [endpoint_id],
            )?;
            tx.execute("DELETE FROM webhook_deliveries WHERE endpoint_id = ?1", [endpoint_id])?;
            tx.execute("DELETE FROM webhook_endpoints WHERE endpoint_id = ?1", [endpoint_id])?;
        }
        tx.commit()?;
        Ok(owned)
    }

    /// Where fan-out stopped last time (persisted with the deliveries it made).
    pub fn fan_out_cursor(&self) -> Result<i64, StoreError> {
        Ok(self.meta(CURSOR)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Turns outbox events past `cursor` into one delivery per subscribed, enabled endpoint of
    /// the event's key. Returns the new cursor and the deliveries made; the cursor is stored with
    /// the deliveries, in their transaction, and only then: events nobody subscribed to cost no
    /// write, and a cursor lost in a crash only makes the next start look at those events again
    /// (a delivery is made once per endpoint and event whatever happens).
    pub fn fan_out(&self, cursor: i64, now: u64) -> Result<(i64, usize), StoreError> {
        // Looking costs no write: on the reader, which sees every committed event.
        let (last, subscribed) = {
            let reader = self.read();
            let last: Option<i64> = reader
                .prepare_cached(
                    "SELECT MAX(id) FROM (SELECT id FROM outbox WHERE id > ?1 ORDER BY id LIMIT 1000) AS next",
                )?
                .query_row([cursor], |r| r.get(0))?;
            let Some(last) = last else { return Ok((cursor, 0)) };
            let subscribed: i64 = reader
                .prepare_cached(
                    "SELECT COUNT(*) FROM webhook_endpoints e WHERE e.state = 'enabled'
                     AND (e.api_key_id IN (SELECT api_key_id FROM outbox WHERE id > ?1 AND id <= ?2)
                          OR EXISTS (SELECT 1 FROM outbox WHERE id > ?1 AND id <= ?2 AND api_key_id = ''))",
                )?
                .query_row(params![cursor, last], |r| r.get(0))?;
            (last, subscribed)
        };
        if subscribed == 0 {
            return Ok((last, 0));
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let made = tx.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, outbox_id, state, next_attempt_at, created_at)
             SELECT e.endpoint_id, o.id, 'pending', ?3, ?3 FROM outbox o
             JOIN webhook_endpoints e ON (e.api_key_id = o.api_key_id OR o.api_key_id = '') AND e.state = 'enabled'
                  AND (',' || e.events || ',') LIKE ('%,' || o.event_type || ',%')
             WHERE o.id > ?1 AND o.id <= ?2
             ON CONFLICT DO NOTHING",
            params![cursor, last, now as i64],
        )?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![CURSOR, last.to_string()],
        )?;
        tx.commit()?;
        Ok((last, made))
    }

    /// Pending deliveries whose time has come, to enabled endpoints, oldest first. Each is held
    /// back `hold_secs` (longer than an attempt can take) until its attempt is recorded, so a
    /// process that dies mid-attempt sends it again after that.
    pub fn due_deliveries(&self, now: u64, limit: usize, hold_secs: u64) -> Result<Vec<Due>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT d.delivery_id, d.attempts, e.endpoint_id, e.url, e.secret, o.event_id, o.event_type, o.payload,
                    o.created_at
             FROM webhook_deliveries d JOIN webhook_endpoints e USING (endpoint_id) JOIN outbox o ON o.id = d.outbox_id
             WHERE d.state = 'pending' AND d.next_attempt_at <= ?1 AND e.state = 'enabled'
             ORDER BY d.next_attempt_at, d.delivery_id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now as i64, limit as i64], |r| {
            Ok(Due {
                delivery_id: r.get(0)?,
                attempts: r.get(1)?,
                endpoint_id: r.get(2)?,
                url: r.get(3)?,
                secret: r.get(4)?,
                event_id: r.get(5)?,
                event_type: r.get(6)?,
                payload: r.get(7)?,
                created_at: r.get::<_, i64>(8)? as u64,
            })
        })?;
        let due: Vec<Due> = rows.collect::<Result<_, _>>()?;
        let mut hold =
            conn.prepare_cached("UPDATE webhook_deliveries SET next_attempt_at = ?2 WHERE delivery_id = ?1")?;
        for d in &due {
            hold.execute(params![d.delivery_id, (now + hold_secs) as i64])?;
        }
        Ok(due)
    }

    /// Records one attempt and the delivery's new state; `gone` disables the endpoint.
    #[allow(clippy::too_many_arguments)]
    pub fn record_attempt(
        &self,
        d: &Due,
        state: &str,
        status: Option<u16>,
        error: Option<&str>,
        duration_ms: u64,
        next_attempt_at: u64,
        gone: bool,
        now: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO webhook_attempts (delivery_id, at, status, error, duration_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![d.delivery_id, now as i64, status, error, duration_ms as i64],
        )?;
        tx.execute(
            "UPDATE webhook_deliveries SET state = ?2, attempts = attempts + 1, last_status = ?3, last_error = ?4,
                 next_attempt_at = ?5, delivered_at = CASE WHEN ?2 = 'delivered' THEN ?6 ELSE delivered_at END
             WHERE delivery_id = ?1",
            params![d.delivery_id, state, status, error, next_attempt_at as i64, now as i64],
        )?;
        if gone {
            tx.execute(
                "UPDATE webhook_endpoints SET state = 'disabled', disabled_reason = 'answered 410 Gone', updated_at = ?2
                 WHERE endpoint_id = ?1",
                params![d.endpoint_id, now as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The deliveries not yet made: how many wait, how many failed for good, and when the oldest
    /// waiting one was queued.
    pub fn webhook_backlog(&self) -> Result<Backlog, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0),
                 COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0),
                 MIN(CASE WHEN state = 'pending' THEN created_at END)
             FROM webhook_deliveries",
        )?;
        Ok(stmt.query_row([], |r| {
            Ok(Backlog {
                pending: r.get::<_, i64>(0)? as u64,
                failed: r.get::<_, i64>(1)? as u64,
                oldest_pending_at: r.get::<_, Option<i64>>(2)?.map(|t| t as u64),
            })
        })?)
    }

    /// The delivery log, newest first, optionally for one endpoint, event or state.
    pub fn deliveries(
        &self,
        endpoint_id: Option<&str>,
        event_id: Option<&str>,
        state: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT d.delivery_id, d.endpoint_id, o.event_id, o.event_type, o.payment_id, d.state, d.attempts,
                    d.last_status, d.last_error, d.next_attempt_at, d.delivered_at
             FROM webhook_deliveries d JOIN outbox o ON o.id = d.outbox_id
             WHERE (CAST(?1 AS TEXT) IS NULL OR d.endpoint_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR o.event_id = ?2) AND (CAST(?3 AS TEXT) IS NULL OR d.state = ?3)
             ORDER BY d.delivery_id DESC LIMIT ?4",
        )?;
        let rows = stmt.query_map(params![endpoint_id, event_id, state, limit as i64], |r| {
            Ok(Delivery {
                delivery_id: r.get(0)?,
                endpoint_id: r.get(1)?,
                event_id: r.get(2)?,
                event_type: r.get(3)?,
                payment_id: r.get(4)?,
                state: r.get(5)?,
                attempts: r.get(6)?,
                last_status: r.get(7)?,
                last_error: r.get(8)?,
                next_attempt_at: r.get::<_, i64>(9)? as u64,
                delivered_at: r.get::<_, Option<i64>>(10)?.map(|v| v as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Queues a delivery again now (and re-enables its endpoint); false when there is none.
    pub fn redeliver(&self, delivery_id: i64, now: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = ?2 WHERE delivery_id = ?1",
            params![delivery_id, now as i64],
        )?;
        tx.execute(
            "UPDATE webhook_endpoints SET state = 'enabled', disabled_reason = NULL, updated_at = ?2
             WHERE endpoint_id = (SELECT endpoint_id FROM webhook_deliveries WHERE delivery_id = ?1)",
            params![delivery_id, now as i64],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }
}
