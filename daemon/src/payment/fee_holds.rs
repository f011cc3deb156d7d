//! Payouts waiting for fees: a queued `onchain_batch` payout whose priority's feerate is above
//! that priority's ceiling (`[batching] *_max_feerate_sat_kvb`) waits (see
//! [`crate::batch::held_for_fees`]) until fees fall or its deadline comes. The batcher records
//! each hold here (table `fee_holds`), writes ONE `payment.delayed` event when a payout starts
//! waiting, and removes the hold once it no longer waits (fees fell, its deadline came, it left).
//! `GET /v1/payments/{id}` and `payment.get` show it as `waiting_for_fees`.

use std::collections::HashSet;
use std::sync::Arc;

use crate::store::sql::{params, OptionalExtension};
use sendero_wallet::{Feerate, WalletError};
use serde_json::{json, Value};

use super::batches::Queued as Stored;
use super::record::outbox;
use super::{batch_policy, Payment, Payments};
use crate::batch::{self, Policy};
use crate::store::{Store, StoreError};

/// The outbox event of a payout that starts waiting for fees.
pub const DELAYED: &str = "payment.delayed";

/// Most payouts read from the queue at once.
const QUEUE_READ: usize = 10_000;

/// A payout waiting for fees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeHold {
    /// The payout.
    pub payment_id: String,
    /// It leaves once its target's feerate is at or below this (its priority's ceiling), sat/kvB.
    pub waits_for_sat_kvb: u64,
    /// The feerate its target needed when last seen, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// Since when it waits, Unix seconds.
    pub since: u64,
    /// Its deadline: it leaves then whatever the feerate, Unix seconds.
    pub until: u64,
}

impl FeeHold {
    /// `waiting_for_fees`: the feerate now, the ceiling it waits for (whole sat/vB rounded up
    /// and down, and exact in sat/kvB), since and until when.
    pub fn view(&self) -> Value {
        json!({
            "feerate_sat_vb": self.feerate_sat_kvb.div_ceil(1_000),
            "feerate_sat_kvb": self.feerate_sat_kvb,
            "ceiling_sat_vb": self.waits_for_sat_kvb / 1_000,
            "ceiling_sat_kvb": self.waits_for_sat_kvb,
            "since": crate::rfc3339(self.since),
            "until": crate::rfc3339(self.until),
        })
    }
}

/// A payment's view with `waiting_for_fees` when it waits for fees.
pub fn view_with_hold(p: &Payment, hold: Option<&FeeHold>) -> Value {
    let mut v = p.view();
    if let Some(h) = hold {
        v["waiting_for_fees"] = h.view();
    }
    v
}

/// Reads the queue and the feerates, and records which payouts wait for fees now; the number
/// that started waiting (each got its `payment.delayed` event).
pub async fn refresh(ctx: &Payments, rates: &batch_policy::RoundRates) -> Result<usize, WalletError> {
    let store = Arc::clone(&ctx.store);
    let queued = tokio::task::block_in_place(|| store.queued_payouts(QUEUE_READ)).map_err(storage)?;
    let holds = if queued.is_empty() { Vec::new() } else { holds(ctx, &queued, rates).await? };
    let store = Arc::clone(&ctx.store);
    let started = tokio::task::block_in_place(|| store.record_fee_holds(&holds, crate::unix_now())).map_err(storage)?;
    if started > 0 {
        ctx.webhooks_wake.notify_one();
    }
    Ok(started)
}

fn storage(e: StoreError) -> WalletError {
    WalletError::Storage(e.to_string())
}

/// The payouts of `queued` that wait for fees now, with their holds.
async fn holds<'a>(
    ctx: &Payments,
    queued: &'a [Stored],
    rates: &batch_policy::RoundRates,
) -> Result<Vec<(&'a Payment, FeeHold)>, WalletError> {
    let seen = batch_policy::view(ctx, queued);
    let rates = rates.get(ctx).await?;
    let policy = Policy::from_config(&ctx.config);
    let now = crate::unix_now();
    Ok(seen
        .iter()
        .filter_map(|(i, q)| {
            let held = batch::held_for_fees(q, now, &rates, &policy)?;
            let p = &queued[*i].payment;
            let hold = FeeHold {
                payment_id: p.payment_id.clone(),
                waits_for_sat_kvb: held.waits_for_sat_kvb,
                feerate_sat_kvb: rates.of(q.priority),
                since: now,
                until: held.until,
            };
            Some((p, hold))
        })
        .collect())
}

const HOLD_COLUMNS: &str = "payment_id, waits_for_sat_kvb, feerate_sat_kvb, since, until";

fn hold_row(r: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<FeeHold> {
    let u = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
    Ok(FeeHold { payment_id: r.get(0)?, waits_for_sat_kvb: u(1)?, feerate_sat_kvb: u(2)?, since: u(3)?, until: u(4)? })
}

impl Store {
    /// The hold of a payout still queued (`debited`), if it waits for fees.
    pub fn fee_hold(&self, payment_id: &str) -> Result<Option<FeeHold>, StoreError> {
        let conn = self.read();
        let sql = format!(
            "SELECT {} FROM fee_holds h JOIN payments p ON p.payment_id = h.payment_id
             WHERE h.payment_id = ?1 AND p.state = 'debited' AND h.released_at IS NULL",
            HOLD_COLUMNS.split(", ").map(|c| format!("h.{c}")).collect::<Vec<_>>().join(", ")
        );
        let hold = conn.prepare_cached(&sql)?.query_row([payment_id], hold_row).optional()?;
        Ok(hold)
    }

    /// Every payout waiting for fees now, oldest hold first.
    pub fn fee_holds(&self) -> Result<Vec<FeeHold>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {HOLD_COLUMNS} FROM fee_holds WHERE released_at IS NULL ORDER BY since, payment_id"
        ))?;
        let rows = stmt.query_map([], hold_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Makes `holds` the payouts waiting for fees, in one transaction: a payout that starts
    /// waiting gets its row and one `payment.delayed` event (its view with `waiting_for_fees`),
    /// one still waiting its feerate and deadline updated, the others lose their row. Returns
    /// how many started waiting.
    pub fn record_fee_holds(&self, holds: &[(&Payment, FeeHold)], now: u64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let before: HashSet<String> = {
            // The batcher's: queued payouts (a single `onchain` payout's hold is its saga's).
            let mut stmt = tx.prepare_cached(
                "SELECT h.payment_id FROM fee_holds h JOIN payments p ON p.payment_id = h.payment_id
                 WHERE p.rail = 'onchain_batch' OR p.state != 'debited'",
            )?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let now_held: HashSet<&str> = holds.iter().map(|(_, h)| h.payment_id.as_str()).collect();
        for gone in before.iter().filter(|id| !now_held.contains(id.as_str())) {
            tx.prepare_cached("DELETE FROM fee_holds WHERE payment_id = ?1")?.execute([gone])?;
        }
        let mut started = 0;
        for (p, h) in holds {
            started += usize::from(hold(&tx, p, h, before.contains(&h.payment_id), now)?);
        }
        tx.commit()?;
        Ok(started)
    }

    /// Records that a single `onchain` payout waits for fees (its `payment.delayed` event when
    /// it starts waiting); true when it started now.
    pub fn hold_single(&self, p: &Payment, h: &FeeHold, now: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let known = tx
            .prepare_cached("SELECT 1 FROM fee_holds WHERE payment_id = ?1")?
            .query_row([&h.payment_id], |_| Ok(()))
            .optional()?
            .is_some();
        let started = hold(&tx, p, h, known, now)?;
        tx.commit()?;
        Ok(started)
    }

    /// Releases a single payout's hold at `now`: it no longer shows `waiting_for_fees`, and its
    /// row stays until the payout is stored built (the batcher's next round then removes it), so
    /// an attempt after a failed build or a crash still knows it waited. Whether it had a hold
    /// (it waited for fees), released now or before.
    pub fn release_hold(&self, payment_id: &str, now: u64) -> Result<bool, StoreError> {
        let conn = self.conn();
        conn.prepare_cached("UPDATE fee_holds SET released_at = ?2 WHERE payment_id = ?1 AND released_at IS NULL")?
            .execute(params![payment_id, now as i64])?;
        let had = conn
            .prepare_cached("SELECT 1 FROM fee_holds WHERE payment_id = ?1")?
            .query_row([payment_id], |_| Ok(()))
            .optional()?
            .is_some();
        Ok(had)
    }

    /// A route's priority (`high`, `normal`, `low`).
    pub(super) fn route_priority(&self, route_id: &str) -> Result<Option<String>, StoreError> {
        let conn = self.read();
        let priority = conn
            .prepare_cached("SELECT priority FROM routes WHERE route_id = ?1")?
            .query_row([route_id], |r| r.get(0))
            .optional()?;
        Ok(priority)
    }
}

/// Writes `h`: its feerate and deadline when `known`, else its row and its `payment.delayed`
/// event; true when it started waiting now.
fn hold(
    tx: &crate::store::sql::Transaction<'_>,
    p: &Payment,
    h: &FeeHold,
    known: bool,
    now: u64,
) -> Result<bool, StoreError> {
    if known {
        tx.prepare_cached(
            "UPDATE fee_holds SET feerate_sat_kvb = ?2, until = ?3, released_at = NULL WHERE payment_id = ?1",
        )?
        .execute(params![h.payment_id, h.feerate_sat_kvb as i64, h.until as i64])?;
        return Ok(false);
    }
    tx.prepare_cached(&format!("INSERT INTO fee_holds ({HOLD_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"))?.execute(
        params![h.payment_id, h.waits_for_sat_kvb as i64, h.feerate_sat_kvb as i64, now as i64, h.until as i64],
    )?;
    let payload = view_with_hold(p, Some(&FeeHold { since: now, ..h.clone() })).to_string();
    outbox(tx, &p.payment_id, &p.api_key_id, (DELAYED, payload), now)?;
    Ok(true)
}

/// What a single `onchain` payout does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleFee {
    /// Its priority's feerate is above its ceiling and its deadline has not come: it waits.
    Wait,
    /// It is built at this feerate.
    Pay(Feerate),
}

/// A single `onchain` payout about to be built: above its priority's ceiling it waits (recorded
/// as for queued payouts, with its `payment.delayed` event) until fees fall — then it pays what
/// its target needs now — or its deadline comes — then what the deadline needs (the near-bound
/// margin for a target of two blocks or fewer), up to `wallet.max_feerate_sat_vb` and to its
/// priority's deadline cap ([`batch::Feerates::at_deadline`]); so does every later attempt
/// (after a failed build or a crash), since a released hold is kept until the payout is built.
/// A payout that never waited pays the feerate it was priced at.
pub async fn single_fee(ctx: &Payments, p: &Payment) -> Result<SingleFee, String> {
    let q = single_queued(ctx, p)?;
    let priority = q.priority;
    let policy = Policy::from_config(&ctx.config);
    let target = priority.target_blocks(&ctx.config.routing);
    let rate = ctx.onchain.estimate(target).await.map_err(|e| e.to_string())?.feerate.sat_per_kvb();
    let now = crate::unix_now();
    if let Some(held) = batch::held_for_fees(&q, now, &batch::Feerates::flat(rate), &policy) {
        let h = FeeHold {
            payment_id: p.payment_id.clone(),
            waits_for_sat_kvb: held.waits_for_sat_kvb,
            feerate_sat_kvb: rate,
            since: now,
            until: held.until,
        };
        if ctx.store.hold_single(p, &h, now).map_err(|e| e.to_string())? {
            ctx.webhooks_wake.notify_one();
        }
        return Ok(SingleFee::Wait);
    }
    let waited = ctx.store.release_hold(&p.payment_id, now).map_err(|e| e.to_string())?;
    if waited {
        crate::failpoint::hit("onchain.fee_released");
    }
    let Some(priced) = p.fee_rate_sat_kvb.filter(|_| !waited) else {
        return Ok(SingleFee::Pay(leaving_at(ctx, &q, rate, (now, &policy))));
    };
    // What its route quoted, to the sat/kvB.
    Ok(SingleFee::Pay(Feerate::from_sat_per_kvb(priced)))
}

/// A single `onchain` payout as the fee policy weighs it: its route's priority, its output.
pub fn single_queued(ctx: &Payments, p: &Payment) -> Result<batch::Queued, String> {
    let priority = ctx.store.route_priority(&p.route_id).map_err(|e| e.to_string())?;
    Ok(batch::Queued {
        priority: priority.as_deref().and_then(batch::Priority::parse).unwrap_or(batch::Priority::Normal),
        output: batch::OutputKind::P2wpkh,
        amount_sat: p.amount_msat.div_ceil(1_000),
        submitted_at: p.created_at,
    })
}

/// What a transaction paying `q` (its most urgent payout, the earliest due) pays leaving now: its
/// priority's estimate, or once its deadline came what the deadline needs (margin, cap) — never
/// above `wallet.max_feerate_sat_vb`. A payout built again in a new family pays this.
pub async fn leaving_now(ctx: &Payments, q: &batch::Queued) -> Result<Feerate, String> {
    let target = q.priority.target_blocks(&ctx.config.routing);
    let rate = ctx.onchain.estimate(target).await.map_err(|e| e.to_string())?.feerate.sat_per_kvb();
    Ok(leaving_at(ctx, q, rate, (crate::unix_now(), &Policy::from_config(&ctx.config))))
}

/// [`leaving_now`] with its priority's estimate `rate`, sat/kvB, at `now`.
fn leaving_at(ctx: &Payments, q: &batch::Queued, rate: u64, (now, policy): (u64, &Policy)) -> Feerate {
    let pay = if now >= q.deadline(policy) {
        let deadline_caps = super::batch_policy::history(ctx).deadline_caps(now, policy);
        batch::Feerates { deadline_caps, ..batch::Feerates::flat(rate) }.at_deadline(q.priority, policy)
    } else {
        rate.min(policy.max_feerate_sat_kvb)
    };
    Feerate::from_sat_per_kvb(pay.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::{Rail, State};

    fn payment(n: u32, rail: Rail) -> Payment {
        Payment {
            amount_msat: 30_000_000,
            amount_minor: 30_000,
            fee_rate_sat_kvb: Some(20_000),
            state: State::Debited,
            ..crate::payment::test_payment(n, rail, format!("bcrt1q{n}"))
        }
    }

    fn held(p: &Payment, feerate_sat_kvb: u64) -> FeeHold {
        FeeHold { payment_id: p.payment_id.clone(), waits_for_sat_kvb: 5_000, feerate_sat_kvb, since: 0, until: 900 }
    }

    /// One `payment.delayed` when a payout starts waiting, none while it keeps waiting, its
    /// hold gone when it no longer waits; a single payout's hold is its saga's, not the batcher's,
    /// and once released it is kept (not shown) until the payout is built.
    #[test]
    fn a_payout_that_starts_waiting_gets_one_delayed_event_and_loses_its_hold_when_it_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let (a, b, single) =
            (payment(1, Rail::OnchainBatch), payment(2, Rail::OnchainBatch), payment(3, Rail::Onchain));
        {
            let conn = store.conn();
            conn.as_sqlite().unwrap().pragma_update(None, "foreign_keys", false).unwrap();
            for p in [&a, &b, &single] {
                conn.execute(
                    "INSERT INTO payments (payment_id, api_key_id, idem_key, route_id, rail, destination, amount_msat,
                     currency, amount_minor, fee_reserve_msat, state, created_at, updated_at)
                     VALUES (?1, 'key', ?1, ?1, ?2, 'x', 1, 'SAT', 1, 0, 'debited', 1, 1)",
                    params![p.payment_id, p.rail.as_str()],
                )
                .unwrap();
            }
        }
        let delayed = |id: &str| store.payment_events(id).unwrap().iter().filter(|e| e.1 == DELAYED).count();
        assert_eq!(store.record_fee_holds(&[(&a, held(&a, 20_000)), (&b, held(&b, 20_000))], 10).unwrap(), 2);
        assert_eq!(store.record_fee_holds(&[(&a, held(&a, 30_000)), (&b, held(&b, 30_000))], 12).unwrap(), 0);
        assert_eq!((delayed("pay_1"), delayed("pay_2")), (1, 1));
        let hold = store.fee_hold("pay_1").unwrap().unwrap();
        assert_eq!((hold.feerate_sat_kvb, hold.since, hold.until), (30_000, 10, 900));
        let (_, _, payload) = &store.payment_events("pay_1").unwrap()[0];
        let event: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(event["waiting_for_fees"]["feerate_sat_vb"], 20);
        assert_eq!(event["waiting_for_fees"]["ceiling_sat_vb"], 5);

        assert!(store.hold_single(&single, &held(&single, 20_000), 13).unwrap());
        assert!(!store.hold_single(&single, &held(&single, 21_000), 14).unwrap());
        assert_eq!(store.record_fee_holds(&[(&b, held(&b, 30_000))], 15).unwrap(), 0);
        assert_eq!(store.fee_hold("pay_1").unwrap(), None, "a left the wait");
        assert_eq!(store.fee_holds().unwrap().len(), 2, "b's and the single payout's");
        assert_eq!(delayed("pay_3"), 1);
        // Released: no longer shown waiting, but a later attempt still knows it waited.
        assert!(store.release_hold("pay_3", 16).unwrap());
        assert_eq!(store.fee_hold("pay_3").unwrap(), None);
        assert_eq!(store.fee_holds().unwrap().len(), 1, "b's");
        assert!(store.release_hold("pay_3", 17).unwrap(), "after a failed build or a crash");
        // Held again (fees rose before it was built): shown waiting, no second event.
        assert!(!store.hold_single(&single, &held(&single, 22_000), 18).unwrap());
        assert_eq!(store.fee_hold("pay_3").unwrap().map(|h| h.feerate_sat_kvb), Some(22_000));
        assert!(store.release_hold("pay_3", 19).unwrap());
        assert_eq!(delayed("pay_3"), 1);
        // Built and stored: the batcher's next round removes the row.
        store.conn().execute("UPDATE payments SET state = 'sending' WHERE payment_id = 'pay_3'", []).unwrap();
        store.record_fee_holds(&[(&b, held(&b, 30_000))], 20).unwrap();
        assert!(!store.release_hold("pay_3", 21).unwrap());
    }
}
