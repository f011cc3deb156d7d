//! Payments in the store: accepted with their idempotency answer in one transaction, moved from
//! state to state together with their ledger entry and their outbox event, listed by key.

use rusqlite::{params, OptionalExtension, Row};

use super::{Payment, Rail, State};
use crate::ledger::{self, LedgerError, Posting};
use crate::route::learn::Outcome;
use crate::store::{Store, StoreError};

/// One state change, written atomically: the new state and what it learned, the ledger entry
/// it posts and the event it emits.
#[derive(Debug, Default)]
pub struct Change {
    /// What the payment looks like afterwards.
    pub next: Option<Payment>,
    /// `(kind, postings)`; posted under the reference `pay:<id>:<kind>`.
    pub ledger: Option<(&'static str, Vec<Posting>)>,
    /// Outbox event type and payload.
    pub event: Option<(&'static str, String)>,
    /// What the router learns from a final state.
    pub outcome: Option<Outcome>,
}

/// Why a payment could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// This idempotency key already has a payment (its first request's answer was lost).
    #[error("this idempotency key already has a payment")]
    IdemTaken,
    /// This route already has a payment.
    #[error("route {0} was already submitted")]
    RouteTaken(String),
    /// The FX quote is locked by another payment.
    #[error("FX quote {0} is already used by another payment")]
    QuoteTaken(String),
    /// The same destination is already being paid (or was paid) on this rail.
    #[error("this destination is already being paid or was paid")]
    AlreadyPaying,
    /// The treasury guard refused (the caller's check, given what open payments reserve).
    #[error("{0}")]
    Guard(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger refused.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<rusqlite::Error> for InsertError {
    fn from(e: rusqlite::Error) -> Self {
        InsertError::Store(StoreError::Sqlite(e))
    }
}

const COLUMNS: &str = "payment_id, api_key_id, idem_key, route_id, rail, destination, amount_msat, currency,
    amount_minor, fx_quote_id, fee_reserve_msat, fee_rate_sat_vb, state, rail_ref, raw_tx, fee_paid_msat,
    failure_code, failure_message, attempts, next_attempt_at, created_at, updated_at, final_at";

fn payment_row(r: &Row<'_>) -> rusqlite::Result<Payment> {
    let text = |i: usize| r.get::<_, String>(i);
    let int = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
    let opt = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(|v| v as u64));
    Ok(Payment {
        payment_id: text(0)?,
        api_key_id: text(1)?,
        idem_key: text(2)?,
        route_id: text(3)?,
        rail: Rail::parse(&text(4)?).unwrap_or(Rail::Onchain),
        destination: text(5)?,
        amount_msat: int(6)?,
        currency: text(7)?,
        amount_minor: int(8)?,
        fx_quote_id: r.get(9)?,
        fee_reserve_msat: int(10)?,
        fee_rate_sat_vb: opt(11)?,
        state: State::parse(&text(12)?).unwrap_or(State::Failed),
        rail_ref: r.get(13)?,
        raw_tx: r.get(14)?,
        fee_paid_msat: opt(15)?,
        failure_code: r.get(16)?,
        failure_message: r.get(17)?,
        attempts: int(18)? as u32,
        next_attempt_at: int(19)?,
        created_at: int(20)?,
        updated_at: int(21)?,
        final_at: opt(22)?,
    })
}

impl Store {
    /// Accepts a payment: checks `guard` against what open payments on its rail still reserve
    /// (amount + fee reserve, msat, of those not yet handed to the rail), inserts it, writes its
    /// `payment.submitted` event and marks the idempotency key done with `answer` — all in one
    /// transaction, so a crash leaves either all of it or none.
    pub fn insert_payment(
        &self,
        p: &Payment,
        guard: impl FnOnce(u64) -> Result<(), String>,
        event: (&'static str, String),
        answer: (u16, &[u8]),
    ) -> Result<(), InsertError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let taken = tx
            .query_row(
                "SELECT 1 FROM payments WHERE api_key_id = ?1 AND idem_key = ?2",
                [&p.api_key_id, &p.idem_key],
                |_| Ok(()),
            )
            .optional()?;
        if taken.is_some() {
            return Err(InsertError::IdemTaken);
        }
        let reserved: i64 = tx.query_row(
            "SELECT COALESCE(SUM(amount_msat + fee_reserve_msat), 0) FROM payments
             WHERE rail = ?1 AND state IN ('submitted', 'debited', 'sending')",
            [p.rail.as_str()],
            |r| r.get(0),
        )?;
        guard(reserved as u64).map_err(InsertError::Guard)?;
        let inserted = tx.execute(
            &format!(
                "INSERT INTO payments ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                     ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)"
            ),
            params![
                p.payment_id,
                p.api_key_id,
                p.idem_key,
                p.route_id,
                p.rail.as_str(),
                p.destination,
                p.amount_msat as i64,
                p.currency,
                p.amount_minor as i64,
                p.fx_quote_id,
                p.fee_reserve_msat as i64,
                p.fee_rate_sat_vb.map(|v| v as i64),
                p.state.as_str(),
                p.rail_ref,
                p.raw_tx,
                p.fee_paid_msat.map(|v| v as i64),
                p.failure_code,
                p.failure_message,
                p.attempts,
                p.next_attempt_at as i64,
                p.created_at as i64,
                p.updated_at as i64,
                p.final_at.map(|v| v as i64),
            ],
        );
        if let Err(rusqlite::Error::SqliteFailure(f, Some(msg))) = &inserted {
            if f.code == rusqlite::ErrorCode::ConstraintViolation {
                return Err(if msg.contains("route_id") {
                    InsertError::RouteTaken(p.route_id.clone())
                } else if msg.contains("fx_quote_id") {
                    InsertError::QuoteTaken(p.fx_quote_id.clone().unwrap_or_default())
                } else if msg.contains("rail_ref") {
                    InsertError::AlreadyPaying
                } else {
                    InsertError::Store(StoreError::Sqlite(rusqlite::Error::SqliteFailure(*f, Some(msg.clone()))))
                });
            }
        }
        inserted?;
        outbox(&tx, &p.payment_id, &p.api_key_id, event, p.created_at)?;
        self.idempotency_answer(&tx, (&p.api_key_id, &p.idem_key), answer.0, answer.1, p.created_at)?;
        tx.commit()?;
        self.idempotency_release(&p.api_key_id, &p.idem_key);
        Ok(())
    }

    /// Applies `change` to payment `from` if it is still in `from.state` (returns false when
    /// another step got there first).
    pub fn change_payment(&self, from: &Payment, change: Change, now: u64) -> Result<bool, LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let next = change.next.as_ref().unwrap_or(from);
        let updated = tx.execute(
            "UPDATE payments SET state = ?3, rail_ref = ?4, raw_tx = ?5, fee_paid_msat = ?6, failure_code = ?7,
                 failure_message = ?8, attempts = ?9, next_attempt_at = ?10, updated_at = ?11, final_at = ?12
             WHERE payment_id = ?1 AND state = ?2",
            params![
                from.payment_id,
                from.state.as_str(),
                next.state.as_str(),
                next.rail_ref,
                next.raw_tx,
                next.fee_paid_msat.map(|v| v as i64),
                next.failure_code,
                next.failure_message,
                next.attempts,
                next.next_attempt_at as i64,
                now as i64,
                next.final_at.map(|v| v as i64),
            ],
        )?;
        if updated == 0 {
            return Ok(false);
        }
        if let Some((kind, postings)) = &change.ledger {
            let reference = format!("pay:{}:{kind}", from.payment_id);
            ledger::post(&tx, kind, Some(&from.payment_id), &reference, postings, now)?;
        }
        if let Some(event) = change.event {
            outbox(&tx, &from.payment_id, &from.api_key_id, event, now)?;
        }
        if let Some(o) = &change.outcome {
            tx.execute(
                "INSERT INTO rail_outcomes (payment_id, rail, success, code, latency_secs, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                params![from.payment_id, o.rail, o.success as i64, o.code, o.latency_secs as i64, o.at as i64],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// One payment.
    pub fn payment(&self, payment_id: &str) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE payment_id = ?1");
        Ok(self.conn().query_row(&sql, [payment_id], payment_row).optional()?)
    }

    /// The payment a key made under an idempotency key.
    pub fn payment_by_idem(&self, api_key_id: &str, idem_key: &str) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE api_key_id = ?1 AND idem_key = ?2");
        Ok(self.conn().query_row(&sql, [api_key_id, idem_key], payment_row).optional()?)
    }

    /// A key's payments, newest first, older than `before` (a payment id), in the given saga
    /// states (all when empty).
    pub fn payments(
        &self,
        api_key_id: Option<&str>,
        states: &[State],
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError> {
        let in_states = states.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",");
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE (?1 IS NULL OR api_key_id = ?1) AND (?2 IS NULL OR payment_id < ?2)
             {} ORDER BY payment_id DESC LIMIT ?3",
            if states.is_empty() { String::new() } else { format!("AND state IN ({in_states})") }
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params![api_key_id, before, limit as i64], payment_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Payments not yet final whose next attempt is due, the furthest along first (a payout
    /// already handed to its rail is finished before a new one is started).
    pub fn due_payments(&self, now: u64, limit: usize) -> Result<Vec<Payment>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE state NOT IN ('settled', 'failed') AND next_attempt_at <= ?1
             ORDER BY CASE state WHEN 'sending' THEN 0 WHEN 'sent' THEN 1 WHEN 'debited' THEN 2 ELSE 3 END, payment_id
             LIMIT ?2"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params![now as i64, limit as i64], payment_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Outbox events of a payment, oldest first: `(event_id, type, payload)`.
    pub fn payment_events(&self, payment_id: &str) -> Result<Vec<(String, String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT event_id, event_type, payload FROM outbox WHERE payment_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([payment_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn outbox(
    tx: &rusqlite::Transaction<'_>,
    payment_id: &str,
    api_key_id: &str,
    (event_type, payload): (&'static str, String),
    now: u64,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO outbox (event_id, event_type, payment_id, api_key_id, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![crate::secret::sortable_id("evt_"), event_type, payment_id, api_key_id, payload, now as i64],
    )
}
