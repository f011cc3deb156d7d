//! Accepting payments: the group commit. A payment joins a queue, and one committer at a time (a
//! blocking task, started by whoever finds none running) drains it, committing every payment
//! queued meanwhile in one transaction — each with its treasury-guard check, its row, its ledger
//! debit, its `payment.submitted` event and its idempotency answer; one refusal does not undo
//! the others. Waiting for the commit holds no thread, so concurrent submits share one durable
//! commit however many there are.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::store::sql::{params, OptionalExtension};
use tokio::sync::oneshot;

use super::record::{outbox, record_change, COLUMNS};
use super::{InsertError, NewPayment, Payment, Rail};
use crate::invoice::refund;
use crate::store::{Store, StoreError};

/// A payment queued for the next group commit, with where its result goes.
pub(crate) type Waiting = (NewPayment, oneshot::Sender<Result<(), InsertError>>);

/// The group committer of one store.
pub struct Committer {
    store: Arc<Store>,
    /// Payments waiting for the next commit.
    queue: Mutex<Vec<Waiting>>,
    /// Whether a committer task is running.
    running: AtomicBool,
}

impl Committer {
    /// A committer writing to `store`.
    pub fn new(store: Arc<Store>) -> Committer {
        Committer { store, queue: Mutex::default(), running: AtomicBool::new(false) }
    }

    fn queue(&self) -> MutexGuard<'_, Vec<Waiting>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts a payment: checks the treasury guard against what open payments on its rail still
    /// reserve (amount + fee reserve of those not yet handed to the rail), inserts it, writes its
    /// `payment.submitted` event and the idempotency key's answer — all in one transaction, so a
    /// crash leaves either all of it or none.
    pub async fn insert(self: &Arc<Self>, new: NewPayment) -> Result<(), InsertError> {
        let (done, result) = oneshot::channel();
        self.queue().push((new, done));
        if !self.running.swap(true, Ordering::AcqRel) {
            let committer = Arc::clone(self);
            tokio::task::spawn_blocking(move || committer.commit_submits());
        }
        result.await.unwrap_or_else(|_| Err(InsertError::Commit("the committer stopped".into())))
    }

    /// Commits queued payments, batch after batch, until the queue is empty.
    fn commit_submits(&self) {
        loop {
            let batch = std::mem::take(&mut *self.queue());
            if !batch.is_empty() {
                self.commit_batch(batch);
                continue;
            }
            self.running.store(false, Ordering::Release);
            // A payment queued between the take and the store saw a committer running: unless
            // another committer started since, this one carries on with it.
            if self.queue().is_empty() || self.running.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    fn commit_batch(&self, batch: Vec<Waiting>) {
        let mut conn = self.store.conn();
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
            Err(e) => batch.iter().map(|_| Err(commit_failed(&e))).collect(),
        }
        .into_iter();
        for (new, done) in batch {
            let result = results.next().unwrap_or_else(|| Err(InsertError::Commit("not written".into())));
            if result.is_ok() {
                self.store.idempotency_release(&new.payment.api_key_id, &new.payment.idem_key);
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
        conn: &mut crate::store::sql::Connection,
        batch: &[Waiting],
        savepoints: bool,
    ) -> crate::store::sql::Result<Option<Vec<Result<(), InsertError>>>> {
        let tx = conn.transaction_with_behavior(crate::store::sql::TransactionBehavior::Immediate)?;
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

    fn insert_one(&self, conn: &crate::store::sql::Connection, new: &NewPayment) -> Result<(), InsertError> {
        check_admission(conn, new)?;
        let p = new.first.next.as_ref().unwrap_or(&new.payment);
        let inserted = conn
            .prepare_cached(&format!(
                "INSERT INTO payments ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
                 ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24) ON CONFLICT DO NOTHING"
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
                p.fee_rate_sat_kvb.map(|v| v as i64),
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
                p.fee_rate_sat_kvb.map(|v| v.div_ceil(1_000) as i64),
            ]);
        if inserted? == 0 {
            // A front end of the same PostgreSQL store may have answered this key first.
            let answered = self.store.idempotency_answered(conn, &p.api_key_id, &p.idem_key)?;
            return Err(match answered {
                Some(crate::store::IdemBegin::Replay { status, body }) => InsertError::Answered { status, body },
                Some(_) => InsertError::IdemMismatch,
                None => conflict(conn, p)?,
            });
        }
        if let Some((invoice_id, mode)) = &new.refund_of {
            refund::record(conn, &p.payment_id, invoice_id, mode, p.created_at)?;
        }
        outbox(conn, &p.payment_id, &p.api_key_id, (new.event.0, new.event.1.clone()), p.created_at)?;
        record_change(conn, p, &new.first, p.created_at)?;
        self.store.idempotency_answer(conn, (&p.api_key_id, &p.idem_key), 202, &new.answer, p.created_at)?;
        Ok(())
    }
}

/// Which uniqueness a payment that was not inserted ran into (asked only then, off the hot path):
/// its route already has a payment, its FX quote is locked by another, or its destination is being
/// (or was) paid on this rail.
fn conflict(conn: &crate::store::sql::Connection, p: &Payment) -> Result<InsertError, InsertError> {
    let exists = |sql: &str, args: &[&dyn crate::store::sql::ToSql]| -> crate::store::sql::Result<bool> {
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

/// A failed group commit, for each payment of the batch: SQLite's own error (a full disk stays
/// recognisable at the API's edge), else its message.
fn commit_failed(e: &crate::store::sql::Error) -> InsertError {
    if e.is_disk_full() {
        return InsertError::Store(StoreError::Sql(crate::store::sql::Error::DiskFull(e.to_string())));
    }
    InsertError::Commit(e.to_string())
}

/// The rail spending the same funds as `rail`: both on-chain rails spend the one treasury.
fn sibling(rail: Rail) -> Rail {
    match rail {
        Rail::Onchain => Rail::OnchainBatch,
        Rail::OnchainBatch => Rail::Onchain,
        other => other,
    }
}

/// The checks a payment passes before it writes anything: its idempotency key is free, its key's
/// daily payout limit (what the key paid out in the last 24 h, not failed, read in this very
/// transaction, so two payments committed together count each other), and the treasury guard — its rail can fund it beside what open payments on that rail still reserve
/// (amount + fee reserve of those not yet handed to the rail).
fn check_admission(conn: &crate::store::sql::Connection, new: &NewPayment) -> Result<(), InsertError> {
    let p = &new.payment;
    let taken = conn
        .prepare_cached("SELECT 1 FROM payments WHERE api_key_id = ?1 AND idem_key = ?2")?
        .query_row([&p.api_key_id, &p.idem_key], |_| Ok(()))
        .optional()?;
    if taken.is_some() {
        return Err(InsertError::IdemTaken);
    }
    if let Some((invoice_id, _)) = &new.refund_of {
        let left_msat = refund::refundable_msat(conn, invoice_id)?;
        if p.amount_msat > left_msat {
            return Err(InsertError::RefundExceeds { left_msat, need_msat: p.amount_msat });
        }
    }
    if let Some((max_daily_msat, since)) = new.daily_limit {
        let used_msat = crate::limits::used_since(conn, &p.api_key_id, since)?;
        if used_msat.saturating_add(p.amount_msat) > max_daily_msat {
            return Err(InsertError::Limit { used_msat });
        }
    }
    let Some(spendable) = new.spendable_msat else { return Ok(()) };
    let reserved: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_msat + fee_reserve_msat), 0) FROM payments
             WHERE rail IN (?1, ?2) AND state IN ('submitted', 'debited', 'sending')",
        )?
        .query_row([p.rail.as_str(), sibling(p.rail).as_str()], |r| r.get(0))?;
    let available = spendable.saturating_sub(reserved as u64);
    if available < new.need_msat {
        return Err(InsertError::Guard { available_msat: available, need_msat: new.need_msat });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::{Rail, State};
    use crate::store::sql::params;

    fn new_payment(n: u32) -> NewPayment {
        let payment = crate::payment::test_payment(n, Rail::Lightning, format!("lnbcrt{n}"));
        let first = super::super::steps::first_step(&payment);
        NewPayment {
            payment,
            first,
            spendable_msat: None,
            need_msat: 1_000_000,
            daily_limit: None,
            event: ("payment.submitted", "{}".into()),
            answer: b"{}".to_vec(),
            refund_of: None,
        }
    }

    /// A batch commits its payments without savepoints; one that fails half-written sends the
    /// batch round again with a savepoint each, so that it alone is left out, whole.
    #[test]
    fn a_payment_failing_half_written_leaves_nothing_and_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
        let committer = Committer::new(Arc::clone(&store));
        {
            let conn = store.conn();
            // No keys or routes here; and payment 2's event is refused after its row is written.
            conn.as_sqlite().unwrap().pragma_update(None, "foreign_keys", false).unwrap();
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
        committer.commit_batch(waiting);
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

    /// Two refunds of one invoice in one group commit: the second sees the first and is refused
    /// beyond what the invoice received, leaving nothing behind.
    #[test]
    fn refunds_are_capped_at_what_the_invoice_received_inside_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
        let committer = Committer::new(Arc::clone(&store));
        {
            let conn = store.conn();
            conn.as_sqlite().unwrap().pragma_update(None, "foreign_keys", false).unwrap();
            conn.execute(
                "INSERT INTO invoices (invoice_id, api_key_id, status, currency, amount_minor, amount_sat, description,
                 speed, address, received_msat, expires_at, created_at, updated_at)
                 VALUES ('inv_1', 'key', 'paid', 'SAT', 1500, 1500, '', 'medium', 'bcrt1q', 1500000, 9, 1, 1)",
                [],
            )
            .unwrap();
        }
        let (waiting, results): (Vec<Waiting>, Vec<_>) = [1, 2]
            .into_iter()
            .map(|n| {
                let (done, result) = oneshot::channel();
                let new = NewPayment { refund_of: Some(("inv_1".into(), "rate_then")), ..new_payment(n) };
                ((new, done), result)
            })
            .unzip();
        committer.commit_batch(waiting);
        let results: Vec<_> = results.into_iter().map(|mut r| r.try_recv().unwrap()).collect();
        assert!(results[0].is_ok(), "{results:?}");
        assert!(
            matches!(results[1], Err(InsertError::RefundExceeds { left_msat: 500_000, need_msat: 1_000_000 })),
            "{results:?}"
        );
        let conn = store.conn();
        let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM invoice_refunds"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM payments"), 1);
        assert_eq!(crate::invoice::refund::refundable_msat(&conn, "inv_1").unwrap(), 500_000);
    }

    /// Two payments of one key committed in one transaction count each other against its daily
    /// limit: only the first fits, the second is refused having written nothing; a failed payout
    /// no longer counts.
    #[test]
    fn payments_committed_together_share_one_daily_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
        let committer = Committer::new(Arc::clone(&store));
        store.conn().as_sqlite().unwrap().pragma_update(None, "foreign_keys", false).unwrap();
        let limited = |n| {
            let mut new = new_payment(n);
            new.daily_limit = Some((new.payment.amount_msat * 3 / 2, 0));
            new
        };
        let (waiting, results): (Vec<Waiting>, Vec<_>) = [1, 2]
            .into_iter()
            .map(|n| {
                let (done, result) = oneshot::channel();
                ((limited(n), done), result)
            })
            .unzip();
        committer.commit_batch(waiting);
        let results: Vec<_> = results.into_iter().map(|mut r| r.try_recv().unwrap()).collect();
        assert!(results[0].is_ok(), "{results:?}");
        assert!(matches!(results[1], Err(InsertError::Limit { .. })), "{results:?}");
        let count = |sql: &str| store.conn().query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM payments"), 1);
        assert_eq!(count("SELECT COUNT(*) FROM ledger_entries"), 1);
        store.conn().execute("UPDATE payments SET state = 'failed'", []).unwrap();
        let (done, mut result) = oneshot::channel();
        committer.commit_batch(vec![(limited(3), done)]);
        assert!(result.try_recv().unwrap().is_ok(), "the failed payout gave its amount back");
    }

    /// The saga sleeps until the earliest retry of an open payment: later ones, past ones (due
    /// now) and final payments do not count.
    #[test]
    fn the_next_retry_is_the_earliest_future_one_of_open_payments() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
        let committer = Committer::new(Arc::clone(&store));
        store.conn().as_sqlite().unwrap().pragma_update(None, "foreign_keys", false).unwrap();
        assert_eq!(store.next_retry_at(100).unwrap(), None);
        for (n, at, state) in
            [(1, 90, State::Debited), (2, 130, State::Debited), (3, 110, State::Failed), (4, 120, State::Sent)]
        {
            let (done, _result) = oneshot::channel();
            committer.commit_batch(vec![(new_payment(n), done)]);
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
