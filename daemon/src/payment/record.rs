//! Payments in the store: accepted with their idempotency answer in one transaction, moved from
//! state to state together with their ledger entry and their outbox event, listed by key.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{params, OptionalExtension, Row};
use tokio::sync::oneshot;

use super::{Payment, Rail, State};
use crate::fx::record::{insert_fill, FillRow};
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
    /// Its `payment.submitted` event.
    pub event: (&'static str, String),
    /// The `202` body stored as the idempotency key's answer.
    pub answer: Vec<u8>,
}

/// A payment queued for the next group commit, with where its result goes.
pub(crate) type Waiting = (NewPayment, oneshot::Sender<Result<(), InsertError>>);

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
    /// The treasury guard: the rail cannot fund it beside what open payments reserve.
    #[error("the rail can fund {} sat now; this payout needs {} sat", available_msat / 1_000, need_msat.div_ceil(1_000))]
    Guard {
        /// Spendable minus reserved, msat.
        available_msat: u64,
        /// Amount plus estimated fee, msat.
        need_msat: u64,
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
    fn leaves_nothing(&self) -> bool {
        matches!(
            self,
            InsertError::IdemTaken
                | InsertError::RouteTaken(_)
                | InsertError::QuoteTaken(_)
                | InsertError::AlreadyPaying
                | InsertError::Guard { .. }
        )
    }
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
    /// Accepts a payment: checks the treasury guard against what open payments on its rail still
    /// reserve (amount + fee reserve of those not yet handed to the rail), inserts it, writes its
    /// `payment.submitted` event and the idempotency key's answer — all in one transaction, so a
    /// crash leaves either all of it or none.
    ///
    /// Group commit: the payment joins a queue, and one committer at a time (a blocking task,
    /// started by whoever finds none running) drains it, committing every payment queued
    /// meanwhile in one transaction (one refusal does not undo the others). Waiting for the
    /// commit holds no thread, so concurrent submits share one durable commit however many there
    /// are.
    pub async fn insert_payment(self: &Arc<Self>, new: NewPayment) -> Result<(), InsertError> {
        let (done, result) = oneshot::channel();
        self.submits().push((new, done));
        if !self.committing.swap(true, Ordering::AcqRel) {
            let store = Arc::clone(self);
            tokio::task::spawn_blocking(move || store.commit_submits());
        }
        result.await.unwrap_or_else(|_| Err(InsertError::Commit("the committer stopped".into())))
    }

    /// Commits queued payments, batch after batch, until the queue is empty.
    fn commit_submits(&self) {
        loop {
            let batch = std::mem::take(&mut *self.submits());
            if !batch.is_empty() {
                self.commit_batch(batch);
                continue;
            }
            self.committing.store(false, Ordering::Release);
            // A payment queued between the take and the store saw a committer running: unless
            // another committer started since, this one carries on with it.
            if self.submits().is_empty() || self.committing.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    fn commit_batch(&self, batch: Vec<Waiting>) {
        let mut conn = self.conn();
        // Without savepoints first (each would copy every page it touches); a payment that fails
        // half-written sends the batch round again with one savepoint per payment.
        let written = match self.write_batch(&mut conn, &batch, false) {
            Ok(None) => self.write_batch(&mut conn, &batch, true),
            written => written,
        };
        drop(conn);
        let mut results = match written {
            Ok(Some(results)) => results,
            Ok(None) => vec![], // only without savepoints
            Err(e) => batch.iter().map(|_| Err(InsertError::Commit(e.to_string()))).collect(),
        }
        .into_iter();
        for (new, done) in batch {
            let result = results.next().unwrap_or_else(|| Err(InsertError::Commit("not written".into())));
            if result.is_ok() {
                self.idempotency_release(&new.payment.api_key_id, &new.payment.idem_key);
            }
            // A submitter that went away (its connection closed) still has its payment stored.
            let _ = done.send(result);
        }
    }

    /// Writes and commits `batch` in one transaction; each payment's own result. Without
    /// `savepoints`, a payment refused before its first write, or by its own insert (which SQLite
    /// undoes alone), leaves nothing behind; any other failure may have written part of it, and
    /// then nothing is committed (`None`).
    fn write_batch(
        &self,
        conn: &mut rusqlite::Connection,
        batch: &[Waiting],
        savepoints: bool,
    ) -> rusqlite::Result<Option<Vec<Result<(), InsertError>>>> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let step = |sql: &str| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
        let mut results = Vec::with_capacity(batch.len());
        for (new, _) in batch {
            if savepoints {
                step("SAVEPOINT payment")?;
            }
            let result = self.insert_one(&tx, new);
            if let Err(e) = &result {
                if !savepoints && !e.leaves_nothing() {
                    return Ok(None); // the transaction rolls back as it is dropped
                }
                if savepoints {
                    step("ROLLBACK TO payment")?;
                }
            }
            if savepoints {
                step("RELEASE payment")?;
            }
            results.push(result);
        }
        tx.commit()?;
        Ok(Some(results))
    }

    fn insert_one(&self, conn: &rusqlite::Connection, new: &NewPayment) -> Result<(), InsertError> {
        check_admission(conn, new)?;
        let p = new.first.next.as_ref().unwrap_or(&new.payment);
        let inserted = conn
            .prepare_cached(&format!(
                "INSERT INTO payments ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                 ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23) ON CONFLICT DO NOTHING"
            ))?
            .execute(params![
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
            ]);
        if inserted? == 0 {
            return Err(conflict(conn, p)?);
        }
        outbox(conn, &p.payment_id, &p.api_key_id, (new.event.0, new.event.1.clone()), p.created_at)?;
        record_change(conn, p, &new.first, p.created_at)?;
        self.idempotency_answer(conn, (&p.api_key_id, &p.idem_key), 202, &new.answer, p.created_at)?;
        Ok(())
    }

    /// Applies `change` to payment `from` if it is still in `from.state` (returns false when
    /// another step got there first).
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
            "SELECT {COLUMNS} FROM payments WHERE (?1 IS NULL OR api_key_id = ?1) AND (?2 IS NULL OR payment_id < ?2)
             {} ORDER BY payment_id DESC LIMIT ?3",
            if states.is_empty() { String::new() } else { format!("AND state IN ({in_states})") }
        );
        let conn = self.read();
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
            "SELECT MIN(next_attempt_at) FROM payments WHERE state NOT IN ('settled', 'failed') AND next_attempt_at > ?1",
        )?;
        let at: Option<i64> = stmt.query_row([now as i64], |r| r.get(0))?;
        Ok(at.map(|a| a as u64))
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

/// Which uniqueness a payment that was not inserted ran into (asked only then, off the hot path):
/// its route already has a payment, its FX quote is locked by another, or its destination is being
/// (or was) paid on this rail.
fn conflict(conn: &rusqlite::Connection, p: &Payment) -> Result<InsertError, InsertError> {
    let exists = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<bool> {
        Ok(conn.prepare_cached(sql)?.query_row(args, |_| Ok(())).optional()?.is_some())
    };
    if exists("SELECT 1 FROM payments WHERE route_id = ?1", &[&p.route_id])? {
        return Ok(InsertError::RouteTaken(p.route_id.clone()));
    }
    if let Some(quote) = &p.fx_quote_id {
        if exists("SELECT 1 FROM payments WHERE fx_quote_id = ?1 AND state != 'failed'", &[quote])? {
            return Ok(InsertError::QuoteTaken(quote.clone()));
        }
    }
    let rail = p.rail.as_str();
    if exists("SELECT 1 FROM payments WHERE rail = ?1 AND rail_ref = ?2 AND state != 'failed'", &[&rail, &p.rail_ref])?
    {
        return Ok(InsertError::AlreadyPaying);
    }
    Ok(InsertError::Commit(format!("payment {} conflicts with a stored one", p.payment_id)))
}

/// The checks a payment passes before it writes anything: its idempotency key is free, and the
/// treasury guard — its rail can fund it beside what open payments on that rail still reserve
/// (amount + fee reserve of those not yet handed to the rail).
fn check_admission(conn: &rusqlite::Connection, new: &NewPayment) -> Result<(), InsertError> {
    let p = &new.payment;
    let taken = conn
        .prepare_cached("SELECT 1 FROM payments WHERE api_key_id = ?1 AND idem_key = ?2")?
        .query_row([&p.api_key_id, &p.idem_key], |_| Ok(()))
        .optional()?;
    if taken.is_some() {
        return Err(InsertError::IdemTaken);
    }
    let Some(spendable) = new.spendable_msat else { return Ok(()) };
    let reserved: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_msat + fee_reserve_msat), 0) FROM payments
             WHERE rail = ?1 AND state IN ('submitted', 'debited', 'sending')",
        )?
        .query_row([p.rail.as_str()], |r| r.get(0))?;
    let available = spendable.saturating_sub(reserved as u64);
    if available < new.need_msat {
        return Err(InsertError::Guard { available_msat: available, need_msat: new.need_msat });
    }
    Ok(())
}

fn outbox(
    tx: &rusqlite::Connection,
    payment_id: &str,
    api_key_id: &str,
    (event_type, payload): (&'static str, String),
    now: u64,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT INTO outbox (event_id, event_type, payment_id, api_key_id, payload, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![crate::secret::sortable_id("evt_"), event_type, payment_id, api_key_id, payload, now as i64])
}

fn apply(tx: &rusqlite::Transaction<'_>, from: &Payment, change: &Change, now: u64) -> Result<bool, LedgerError> {
    let next = change.next.as_ref().unwrap_or(from);
    let updated = tx
        .prepare_cached(
            "UPDATE payments SET state = ?3, rail_ref = ?4, raw_tx = ?5, fee_paid_msat = ?6, failure_code = ?7,
             failure_message = ?8, attempts = ?9, next_attempt_at = ?10, updated_at = ?11, final_at = ?12
         WHERE payment_id = ?1 AND state = ?2",
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
        ])?;
    if updated == 0 {
        return Ok(false);
    }
    record_change(tx, from, change, now)?;
    Ok(true)
}

/// What a step writes besides the payment's row: its ledger entries (each under the reference
/// `pay:<id>:<kind>`), its event and what the router learns.
fn record_change(tx: &rusqlite::Connection, p: &Payment, change: &Change, now: u64) -> Result<(), LedgerError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn new_payment(n: u32) -> NewPayment {
        let payment = Payment {
            payment_id: format!("pay_{n}"),
            api_key_id: "key".into(),
            idem_key: format!("idem_{n}"),
            route_id: format!("rt_{n}"),
            rail: Rail::Lightning,
            destination: format!("lnbcrt{n}"),
            amount_msat: 1_000_000,
            currency: "SAT".into(),
            amount_minor: 1_000,
            fx_quote_id: None,
            fee_reserve_msat: 0,
            fee_rate_sat_vb: None,
            state: State::Submitted,
            rail_ref: None,
            raw_tx: None,
            fee_paid_msat: None,
            failure_code: None,
            failure_message: None,
            attempts: 0,
            next_attempt_at: 0,
            created_at: 1,
            updated_at: 1,
            final_at: None,
        };
        let first = super::super::saga::first_step(&payment);
        NewPayment {
            payment,
            first,
            spendable_msat: None,
            need_msat: 1_000_000,
            event: ("payment.submitted", "{}".into()),
            answer: b"{}".to_vec(),
        }
    }

    /// A batch commits its payments without savepoints; one that fails half-written sends the
    /// batch round again with a savepoint each, so that it alone is left out, whole.
    #[test]
    fn a_payment_failing_half_written_leaves_nothing_and_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        {
            let conn = store.conn();
            // No keys or routes here; and payment 2's event is refused after its row is written.
            conn.pragma_update(None, "foreign_keys", false).unwrap();
            conn.execute_batch(
                "CREATE TRIGGER refuse_event BEFORE INSERT ON outbox WHEN NEW.payment_id = 'pay_2'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        }
        let (waiting, results): (Vec<Waiting>, Vec<_>) = [1, 2, 3, 1]
            .into_iter()
            .map(|n| {
                let (done, result) = oneshot::channel();
                ((new_payment(n), done), result)
            })
            .unzip();
        store.commit_batch(waiting);
        let results: Vec<_> = results.into_iter().map(|mut r| r.try_recv().unwrap()).collect();
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(InsertError::Store(_))), "{results:?}");
        assert!(matches!(results[3], Err(InsertError::IdemTaken)), "the same key again: {results:?}");
        let conn = store.conn();
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM payments"), 2);
        assert_eq!(count("SELECT COUNT(*) FROM payments WHERE payment_id = 'pay_2'"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM ledger_entries WHERE payment_id = 'pay_2'"), 0);
        assert_eq!(count("SELECT COUNT(*) FROM outbox"), 2);
        assert_eq!(count("SELECT COUNT(*) FROM ledger_entries"), 2, "one debit each for 1 and 3");
        assert_eq!(count("SELECT COUNT(*) FROM idempotency_keys"), 2);
    }

    /// The saga sleeps until the earliest retry of an open payment: later ones, past ones (due
    /// now) and final payments do not count.
    #[test]
    fn the_next_retry_is_the_earliest_future_one_of_open_payments() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        store.conn().pragma_update(None, "foreign_keys", false).unwrap();
        assert_eq!(store.next_retry_at(100).unwrap(), None);
        for (n, at, state) in
            [(1, 90, State::Debited), (2, 130, State::Debited), (3, 110, State::Failed), (4, 120, State::Sent)]
        {
            let (done, _result) = oneshot::channel();
            store.commit_batch(vec![(new_payment(n), done)]);
            let conn = store.conn();
            conn.execute(
                "UPDATE payments SET next_attempt_at = ?1, state = ?2 WHERE payment_id = ?3",
                params![at, state.as_str(), format!("pay_{n}")],
            )
            .unwrap();
        }
        assert_eq!(store.next_retry_at(100).unwrap(), Some(120));
        assert_eq!(store.next_retry_at(125).unwrap(), Some(130));
        assert_eq!(store.next_retry_at(130).unwrap(), None);
    }
}
