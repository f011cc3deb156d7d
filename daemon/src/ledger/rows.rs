//! The rows behind the movements between rails: transfers between the treasury and the node
//! (`ln_transfers`) and the node's channel movements waiting to be settled (`ln_movements`), each
//! written together with its ledger entry.

use crate::store::sql::{params, OptionalExtension};
use serde::Serialize;

use super::{post, LedgerError, Posting};
use crate::store::{Store, StoreError};

/// One transfer between the treasury and the node (or out of a channel to an address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Row id.
    pub id: i64,
    /// `to_node`, `to_treasury` or `to_address`.
    pub direction: String,
    /// The channel a splice-out leaves from.
    pub channel_id: Option<String>,
    /// Amount asked for.
    pub amount_sat: u64,
    /// The transaction, once known.
    pub txid: Option<String>,
    /// `requested`, `broadcast`, `booked` or `failed`.
    pub state: String,
}

/// One channel movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Movement {
    /// `open:<channel>`, `splice:<txid>` or `close:<channel>`.
    pub id: String,
    /// `open`, `splice` or `close`.
    pub kind: String,
    /// The channel.
    pub channel_id: String,
    /// The splice's transaction.
    pub txid: Option<String>,
    /// `pending` or `settled`.
    pub state: String,
    /// What its settlement booked as on-chain cost.
    pub fee_msat: Option<i64>,
}

fn msat(sat: u64) -> i64 {
    i64::try_from(sat).unwrap_or(i64::MAX / 1_000).saturating_mul(1_000)
}

impl Store {
    /// Records a treasury → node transfer the treasury just broadcast, with its entry.
    pub fn ln_transfer_to_node(&self, txid: &str, amount_sat: u64, fee_sat: u64, now: u64) -> Result<(), LedgerError> {
        let postings = [
            Posting::btc("treasury:onchain", -msat(amount_sat + fee_sat)),
            Posting::btc("treasury:lightning", msat(amount_sat)),
            Posting::btc("fees:onchain_transfer", msat(fee_sat)),
        ];
        self.ln_transfer_booked("to_node", txid, amount_sat, &postings, now)
    }

    /// Records a node → treasury transfer the treasury received (`received_sat`), with its entry.
    pub fn ln_transfer_to_treasury(&self, txid: &str, received_sat: u64, now: u64) -> Result<(), LedgerError> {
        let postings = [
            Posting::btc("treasury:lightning", -msat(received_sat)),
            Posting::btc("treasury:onchain", msat(received_sat)),
        ];
        self.ln_transfer_booked("to_treasury", txid, received_sat, &postings, now)
    }

    /// Records what a splice sent to an outside address, with its entry.
    pub fn ln_splice_out_booked(&self, txid: &str, amount_sat: u64, now: u64) -> Result<(), LedgerError> {
        let postings = [
            Posting::btc("treasury:lightning", -msat(amount_sat)),
            Posting::btc("payouts:splice_out", msat(amount_sat)),
        ];
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        post(&tx, "ln_splice_out", None, &format!("ln:splice_out:{txid}"), &postings, now)?;
        tx.execute("UPDATE ln_transfers SET state = 'booked' WHERE txid = ?1", [txid])?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// A treasury → node transfer found in both wallets with no entry (a crash came between the
    /// broadcast and its record): the treasury lost `treasury_sent_sat`, the node got
    /// `node_received_sat`, the rest was the fee.
    pub fn ln_transfer_caught_up(
        &self,
        txid: &str,
        treasury_sent_sat: u64,
        node_received_sat: u64,
        now: u64,
    ) -> Result<(), LedgerError> {
        let fee = treasury_sent_sat.saturating_sub(node_received_sat);
        self.ln_transfer_to_node(txid, node_received_sat, fee, now)
    }

    fn ln_transfer_booked(
        &self,
        direction: &str,
        txid: &str,
        amount_sat: u64,
        postings: &[Posting],
        now: u64,
    ) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        post(&tx, "ln_transfer", None, &format!("ln:transfer:{txid}"), postings, now)?;
        tx.execute(
            "INSERT INTO ln_transfers (direction, amount_sat, txid, state, created_at) VALUES (?1, ?2, ?3, 'booked', ?4)
             ON CONFLICT (txid) DO UPDATE SET state = 'booked'",
            params![direction, amount_sat as i64, txid, now as i64],
        )?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Records a splice-out before it is asked of the node; returns its id.
    pub fn ln_transfer_requested(
        &self,
        direction: &str,
        channel_id: &str,
        amount_sat: u64,
        now: u64,
    ) -> Result<i64, StoreError> {
        Ok(self.conn().query_row(
            "INSERT INTO ln_transfers (direction, channel_id, amount_sat, state, created_at)
             VALUES (?1, ?2, ?3, 'requested', ?4) RETURNING id",
            params![direction, channel_id, amount_sat as i64, now as i64],
            |r| r.get(0),
        )?)
    }

    /// The node refused a requested splice-out.
    pub fn ln_transfer_failed(&self, id: i64) -> Result<(), StoreError> {
        self.conn().execute("UPDATE ln_transfers SET state = 'failed' WHERE id = ?1 AND state = 'requested'", [id])?;
        Ok(())
    }

    /// A splice of `channel_id` is on its way as `txid`: the channel's requested splice-out, if
    /// any, now has its transaction. Returns it.
    pub fn ln_transfer_broadcast(&self, channel_id: &str, txid: &str) -> Result<Option<Transfer>, StoreError> {
        let conn = self.conn();
        let id: Option<i64> = conn
            .query_row(
                "SELECT id FROM ln_transfers WHERE channel_id = ?1 AND state = 'requested' ORDER BY id DESC LIMIT 1",
                [channel_id],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else { return Ok(None) };
        conn.execute(
            "UPDATE ln_transfers SET txid = ?2, state = 'broadcast' WHERE id = ?1 AND NOT EXISTS
             (SELECT 1 FROM ln_transfers WHERE txid = ?2)",
            params![id, txid],
        )?;
        drop(conn);
        Ok(self.ln_transfers()?.into_iter().find(|t| t.id == id))
    }

    /// A splice of `channel_id` failed: its requested splice-out will not happen.
    pub fn ln_transfer_abandoned(&self, channel_id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE ln_transfers SET state = 'failed' WHERE channel_id = ?1 AND state = 'requested'",
            [channel_id],
        )?;
        Ok(())
    }

    /// A splice-out asked `older_than` seconds ago that never got a transaction (the process died
    /// before the node took it, or the node dropped it without `SpliceFailed`) will not happen.
    pub fn ln_transfers_expire(&self, now: u64, older_than: u64) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "UPDATE ln_transfers SET state = 'failed' WHERE state = 'requested' AND created_at < ?1
             AND channel_id NOT IN (SELECT channel_id FROM ln_channels WHERE state = 'splice_pending')",
            [now.saturating_sub(older_than) as i64],
        )?)
    }

    /// Every transfer, oldest first.
    pub fn ln_transfers(&self) -> Result<Vec<Transfer>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, direction, channel_id, amount_sat, txid, state FROM ln_transfers ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
            Ok(Transfer {
                id: r.get(0)?,
                direction: r.get(1)?,
                channel_id: r.get(2)?,
                amount_sat: r.get::<_, i64>(3)? as u64,
                txid: r.get(4)?,
                state: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a channel movement (once).
    pub fn ln_movement(&self, kind: &str, channel_id: &str, txid: Option<&str>, now: u64) -> Result<(), StoreError> {
        let id = match (kind, txid) {
            ("splice", Some(t)) => format!("splice:{t}"),
            _ => format!("{kind}:{channel_id}"),
        };
        self.conn().execute(
            "INSERT INTO ln_movements (id, kind, channel_id, txid, state, created_at, seq)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, (SELECT COALESCE(MAX(seq), 0) + 1 FROM ln_movements))
             ON CONFLICT (id) DO NOTHING",
            params![id, kind, channel_id, txid, now as i64],
        )?;
        Ok(())
    }

    /// Every movement, oldest first.
    pub fn ln_movements(&self) -> Result<Vec<Movement>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT id, kind, channel_id, txid, state, fee_msat FROM ln_movements ORDER BY created_at, seq")?;
        let rows = stmt.query_map([], |r| {
            Ok(Movement {
                id: r.get(0)?,
                kind: r.get(1)?,
                channel_id: r.get(2)?,
                txid: r.get(3)?,
                state: r.get(4)?,
                fee_msat: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Settles `movements` with one entry booking `cost_msat` (none when it is zero).
    pub fn ln_settle(&self, movements: &[String], cost_msat: i64, now: u64) -> Result<(), LedgerError> {
        let Some(first) = movements.first() else { return Ok(()) };
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        if cost_msat != 0 {
            let postings =
                [Posting::btc("treasury:lightning", -cost_msat), Posting::btc("fees:lightning_onchain", cost_msat)];
            post(&tx, "ln_settle", None, &format!("ln:settle:{first}"), &postings, now)?;
        }
        for (i, id) in movements.iter().enumerate() {
            let fee = if i == 0 { cost_msat } else { 0 };
            tx.execute(
                "UPDATE ln_movements SET state = 'settled', fee_msat = ?2, settled_at = ?3 WHERE id = ?1",
                params![id, fee, now as i64],
            )?;
        }
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Whether an entry with this reference is posted.
    pub fn ledger_has(&self, reference: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .conn()
            .query_row("SELECT id FROM ledger_entries WHERE reference = ?1", [reference], |r| r.get(0))
            .optional()?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::BTC;

    #[test]
    fn transfers_and_settlements_post_once_and_balance() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let bal = |a: &str| store.ledger_balance(a, BTC).unwrap();
        store.ln_transfer_to_node("t1", 100_000, 150, 1).unwrap();
        store.ln_transfer_caught_up("t1", 100_150, 100_000, 2).unwrap();
        assert_eq!((bal("treasury:onchain"), bal("treasury:lightning")), (-100_150_000, 100_000_000));
        assert_eq!(bal("fees:onchain_transfer"), 150_000);

        // A splice-out: asked, started (SplicePending), received by the treasury.
        let id = store.ln_transfer_requested("to_treasury", "c1", 40_000, 3).unwrap();
        let started = store.ln_transfer_broadcast("c1", "t2").unwrap().unwrap();
        assert_eq!((started.id, started.state.as_str(), started.txid.as_deref()), (id, "broadcast", Some("t2")));
        store.ln_transfer_to_treasury("t2", 40_000, 4).unwrap();
        assert_eq!(bal("treasury:lightning"), 60_000_000);
        assert_eq!(store.ln_transfers().unwrap()[1].state, "booked");

        // One asked and never started expires; one the node refused is failed at once.
        store.ln_transfer_requested("to_treasury", "c1", 1_000, 5).unwrap();
        assert_eq!(store.ln_transfers_expire(100, 600).unwrap(), 0);
        assert_eq!(store.ln_transfers_expire(700, 600).unwrap(), 1);

        // Movements settle together, the cost once.
        store.ln_movement("open", "c1", Some("f1"), 6).unwrap();
        store.ln_movement("open", "c1", Some("f1"), 7).unwrap();
        store.ln_movement("close", "c1", None, 8).unwrap();
        let ids: Vec<String> = store.ln_movements().unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["open:c1", "close:c1"]);
        store.ln_settle(&ids, 2_500, 9).unwrap();
        assert_eq!(bal("fees:lightning_onchain"), 2_500);
        assert_eq!(bal("treasury:lightning"), 60_000_000 - 2_500);
        assert!(store.ln_movements().unwrap().iter().all(|m| m.state == "settled"));
        assert!(store.ledger_has("ln:settle:open:c1").unwrap());
        let (unbalanced, totals) = store.ledger_integrity().unwrap();
        assert!(unbalanced.is_empty() && totals.values().all(|t| *t == 0));
    }
}
