//! Payments in the store: moved from state to state together with their ledger entry and their
//! outbox event, listed by key (accepting them is the group commit of `commit.rs`).

use crate::store::sql::{params, OptionalExtension, Row};

use super::{Payment, Rail, State};
use crate::fx::record::{insert_fill, FillRow};
use crate::invoice::refund::{self, FinalPayout};
use crate::ledger::{self, LedgerError, Posting};
use crate::route::learn::Outcome;
use crate::store::{Store, StoreError};

/// A payment to accept, with what the treasury guard needs.
#[derive(Debug)]
pub struct NewPayment {
    /// The payment, in state `submitted`.
    pub payment: Payment,
    /// Its first step, written with it: the ledger debit (and for `on_us` the settlement), so
    /// that the payment is stored `debited` (or `settled`).
    pub first: Change,
    /// What its rail can spend now, msat (`None`: no limit, `on_us`).
    pub spendable_msat: Option<u64>,
    /// What it needs: amount plus estimated fee, msat.
    pub need_msat: u64,
    /// Its key's daily limit, msat, and the start of the day it counts (`limits.rs`): checked in
    /// the transaction that debits it.
    pub daily_limit: Option<(u64, u64)>,
    /// Its `payment.submitted` event.
    pub event: (&'static str, String),
    /// The `202` body stored as the idempotency key's answer.
    pub answer: Vec<u8>,
    /// A refund: the invoice it gives back from and its mode. Refused (nothing written) beyond
    /// what the invoice may still refund; recorded in `invoice_refunds` with the payment.
    pub refund_of: Option<(String, &'static str)>,
}

/// One state change, written atomically: the new state and what it learned, the ledger entry
/// it posts and the event it emits.
#[derive(Debug, Default)]
pub struct Change {
    /// What the payment looks like afterwards.
    pub next: Option<Payment>,
    /// Ledger entries `(kind, postings)`, each posted under the reference `pay:<id>:<kind>`.
    pub ledger: Vec<(&'static str, Vec<Posting>)>,
    /// Outbox event type and payload.
    pub event: Option<(&'static str, String)>,
    /// What the router learns from a final state.
    pub outcome: Option<Outcome>,
    /// The fill of the payout's FX quote, written when a fiat-priced payout settles.
    pub fill: Option<FillRow>,
    /// Set on a step to a final state (with `[invoices] tolerance_bps`): what the payout does to
    /// invoices is booked with it — an `on_us` payout credits the gateway's invoice it paid, a
    /// refund is booked against its invoice (`invoice::refund::payout_final`).
    pub invoices: Option<u32>,
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
    /// Another process serving the same PostgreSQL store (a front end) answered this idempotency
    /// key first, with the same request: its answer, to send again.
    #[error("this idempotency key was answered by another process")]
    Answered {
        /// HTTP status.
        status: u16,
        /// The response body.
        body: Vec<u8>,
    },
    /// Another process answered this idempotency key first, for another request body.
    #[error("this idempotency key was used with another request body")]
    IdemMismatch,
    /// The FX quote is locked by another payment.
    #[error("FX quote {0} is already used by another payment")]
    QuoteTaken(String),
    /// The same destination is already being paid (or was paid) on this rail.
    #[error("this destination is already being paid or was paid")]
    AlreadyPaying,
    /// A refund beyond what its invoice received less its other refunds.
    #[error("the invoice can refund {} sat more; this refund is {} sat", left_msat / 1_000, need_msat.div_ceil(1_000))]
    RefundExceeds {
        /// What the invoice may still refund, msat.
        left_msat: u64,
        /// The refund's amount, msat.
        need_msat: u64,
    },
    /// The treasury guard: the rail cannot fund it beside what open payments reserve.
    #[error("the rail can fund {} sat now; this payout needs {} sat", available_msat / 1_000, need_msat.div_ceil(1_000))]
    Guard {
        /// Spendable minus reserved, msat.
        available_msat: u64,
        /// Amount plus estimated fee, msat.
        need_msat: u64,
    },
    /// The key's daily payout limit: what it paid out today (not failed) plus this one is over.
    #[error("this payout would take the key's payouts of the last 24 h over its daily limit")]
    Limit {
        /// Paid out in the last 24 h, msat.
        used_msat: u64,
    },
    /// The transaction could not be committed.
    #[error("committing the payment failed: {0}")]
    Commit(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger refused.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl InsertError {
    /// Whether the refusal came before the payment wrote anything (a check, or its own insert,
    /// which SQLite undoes by itself).
    pub(super) fn leaves_nothing(&self) -> bool {
        matches!(
            self,
            InsertError::IdemTaken
                | InsertError::Answered { .. }
                | InsertError::IdemMismatch
                | InsertError::RouteTaken(_)
                | InsertError::QuoteTaken(_)
                | InsertError::AlreadyPaying
                | InsertError::Guard { .. }
                | InsertError::RefundExceeds { .. }
                | InsertError::Limit { .. }
        )
    }
}

impl From<crate::store::sql::Error> for InsertError {
    fn from(e: crate::store::sql::Error) -> Self {
        InsertError::Store(StoreError::Sql(e))
    }
}

/// The columns of a payment, in [`payment_row`]'s order. `fee_rate_sat_vb` (the quote rounded
/// up, as kept before migration 28) is still written, and read where a gateway of the release
/// before stored only it (front ends sharing a PostgreSQL store upgrade one by one).
pub(super) const COLUMNS: &str = "payment_id, api_key_id, idem_key, route_id, rail, destination, amount_msat, currency,
    amount_minor, fx_quote_id, fee_reserve_msat, fee_rate_sat_kvb, state, rail_ref, raw_tx, fee_paid_msat,
    failure_code, failure_message, attempts, next_attempt_at, created_at, updated_at, final_at, fee_rate_sat_vb";

pub(super) fn payment_row(r: &Row<'_>) -> crate::store::sql::Result<Payment> {
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
        fee_rate_sat_kvb: opt(11)?.or(opt(23)?.map(|vb| vb.saturating_mul(1_000))),
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
    /// Applies `change` to payment `from` if it is still in `from.state` on `from.rail_ref`
    /// (returns false when another step got there first — a fee bump moving the payout to a
    /// replacement, say).
    pub fn change_payment(&self, from: &Payment, change: &Change, now: u64) -> Result<bool, LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let applied = apply(&tx, from, change, now)?;
        tx.commit()?;
        Ok(applied)
    }

    /// One payment.
    pub fn payment(&self, payment_id: &str) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE payment_id = ?1");
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        Ok(stmt.query_row([payment_id], payment_row).optional()?)
    }

    /// The payment a key made under an idempotency key.
    pub fn payment_by_idem(&self, api_key_id: &str, idem_key: &str) -> Result<Option<Payment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM payments WHERE api_key_id = ?1 AND idem_key = ?2");
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        Ok(stmt.query_row([api_key_id, idem_key], payment_row).optional()?)
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
            "SELECT {COLUMNS} FROM payments WHERE (CAST(?1 AS TEXT) IS NULL OR api_key_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR payment_id < ?2)
             {} ORDER BY payment_id DESC LIMIT ?3",
            if states.is_empty() { String::new() } else { format!("AND state IN ({in_states})") }
        );
        let conn = self.read();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params![api_key_id, before, limit as i64], payment_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Payouts by rail and state: `(rail, state, count)`, as stored (`metrics`, the dashboard).
    pub fn payout_counts(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        let conn = self.read();
        let mut stmt = conn
            .prepare_cached("SELECT rail, state, COUNT(*) FROM payments GROUP BY rail, state ORDER BY rail, state")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Payments not yet final whose next attempt is due, the furthest along first (a payout
    /// already handed to its rail is finished before a new one is started).
    pub fn due_payments(&self, now: u64, limit: usize) -> Result<Vec<Payment>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM payments WHERE state NOT IN ('settled', 'failed') AND next_attempt_at <= ?1
             AND NOT (rail = 'onchain_batch' AND state = 'debited')
             ORDER BY CASE state WHEN 'sending' THEN 0 WHEN 'sent' THEN 1 WHEN 'debited' THEN 2 ELSE 3 END, payment_id
             LIMIT ?2"
        );
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params![now as i64, limit as i64], payment_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the earliest open payment waiting to retry a step (its `next_attempt_at` after `now`)
    /// is due, Unix seconds.
    pub fn next_retry_at(&self, now: u64) -> Result<Option<u64>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT MIN(next_attempt_at) FROM payments WHERE state NOT IN ('settled', 'failed') AND next_attempt_at > ?1
             AND NOT (rail = 'onchain_batch' AND state = 'debited')",
        )?;
        let at: Option<i64> = stmt.query_row([now as i64], |r| r.get(0))?;
        Ok(at.map(|a| a as u64))
    }

    /// Payments not yet handed to their rail (submitted, debited, sending), oldest first: what a
    /// backup cannot tell whether the rail got.
    pub fn payments_not_with_rail(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT payment_id FROM payments WHERE state IN ('submitted', 'debited', 'sending') ORDER BY created_at, payment_id",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
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

pub(super) fn outbox(
    tx: &crate::store::sql::Connection,
    payment_id: &str,
    api_key_id: &str,
    (event_type, payload): (&'static str, String),
    now: u64,
) -> crate::store::sql::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO outbox (event_id, event_type, payment_id, api_key_id, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![crate::secret::sortable_id("evt_"), event_type, payment_id, api_key_id, payload, now as i64])
}

pub(super) fn apply(
    tx: &crate::store::sql::Transaction<'_>,
    from: &Payment,
    change: &Change,
    now: u64,
) -> Result<bool, LedgerError> {
    let next = change.next.as_ref().unwrap_or(from);
    let updated = tx
        .prepare_cached(
            "UPDATE payments SET state = ?3, rail_ref = ?4, raw_tx = ?5, fee_paid_msat = ?6, failure_code = ?7,
             failure_message = ?8, attempts = ?9, next_attempt_at = ?10, updated_at = ?11, final_at = ?12
         WHERE payment_id = ?1 AND state = ?2 AND rail_ref IS NOT DISTINCT FROM ?13",
        )?
        .execute(params![
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
            from.rail_ref,
        ])?;
    if updated == 0 {
        return Ok(false);
    }
    record_change(tx, from, change, now)?;
    Ok(true)
}

/// What a step writes besides the payment's row: its ledger entries (each under the reference
/// `pay:<id>:<kind>`), its event and what the router learns.
pub(super) fn record_change(
    tx: &crate::store::sql::Connection,
    p: &Payment,
    change: &Change,
    now: u64,
) -> Result<(), LedgerError> {
    for (kind, postings) in &change.ledger {
        let reference = format!("pay:{}:{kind}", p.payment_id);
        ledger::post(tx, kind, Some(&p.payment_id), &reference, postings, now)?;
    }
    if let Some(event) = &change.event {
        outbox(tx, &p.payment_id, &p.api_key_id, (event.0, event.1.clone()), now)?;
    }
    if let Some(fill) = &change.fill {
        insert_fill(tx, fill, Some(&p.payment_id), now)?;
    }
    if let (Some(tolerance_bps), Some(next)) = (change.invoices, change.next.as_ref().filter(|n| n.state.is_final())) {
        let payout = FinalPayout {
            payment_id: &next.payment_id,
            rail: next.rail.as_str(),
            settled: next.state == State::Settled,
            amount_msat: next.amount_msat,
            destination: &next.destination,
            rail_ref: next.rail_ref.as_deref(),
        };
        refund::payout_final(tx, payout, tolerance_bps, now)?;
    }
    if let Some(o) = &change.outcome {
        tx.prepare_cached(
            "INSERT INTO rail_outcomes (payment_id, rail, success, code, latency_secs, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            p.payment_id,
            o.rail,
            o.success as i64,
            o.code,
            o.latency_secs as i64,
            o.at as i64
        ])?;
    }
    Ok(())
}
