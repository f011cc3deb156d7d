//! Splices the rebalancer planned or started, persisted so that a restart never starts a second one for the same need.
//!
//! A row is written `planned` before the node is asked (the partial unique index
//! `rebalance_splices_one_in_flight` refuses a second `planned`/`started` row for a channel), is
//! `started` once the node took it (or the treasury's funding for it is on its way), and is then
//! resolved from the node's own state by [`Store::resolve_splices`]: the splice's transaction is
//! the one the node's `SplicePending` recorded as a `splice` movement for the channel; it is
//! `confirmed` when the channel is ready on that funding transaction, `failed` when the node
//! reported `SpliceFailed`, its funding action failed or the channel is gone, and `abandoned`
//! when nothing of it has shown for [`ABANDON_AFTER_SECS`] (the node lost it, e.g. in a crash
//! before the negotiation finished). The same queries give the rebalancer the fees spent in the
//! budget period, each channel's failures in a row, and the figures of its situation.

use crate::store::sql::{params, OptionalExtension, Row};
use serde::Serialize;

use crate::store::{Store, StoreError};

/// How long a splice may show nothing (no transaction, no funding action waiting) before it is
/// taken as never made, seconds.
pub const ABANDON_AFTER_SECS: u64 = 600;

/// A splice to persist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSplice {
    /// The channel.
    pub channel_id: String,
    /// `in` (treasury → channel) or `out` (channel → treasury).
    pub kind: &'static str,
    /// What it moves, sats.
    pub amount_sat: u64,
    /// Its estimated fee, sats.
    pub fee_sat: u64,
    /// Why (`below_band`, `below_floor`, `above_band`).
    pub code: &'static str,
    /// Why, for a person.
    pub reason: String,
    /// The channel's funding transaction when it was decided.
    pub funding_txid_before: Option<String>,
    /// Decided only, never made.
    pub dry_run: bool,
}

/// A persisted splice, as `rebalance.history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpliceRow {
    /// Row id.
    pub id: i64,
    /// The channel.
    pub channel_id: String,
    /// `in` or `out`.
    pub kind: String,
    /// What it moves, sats.
    pub amount_sat: u64,
    /// Its estimated fee, sats.
    pub fee_sat: u64,
    /// What the ledger booked as its on-chain cost once settled, msat.
    pub booked_fee_msat: Option<i64>,
    /// Why.
    pub code: String,
    /// Why, for a person.
    pub reason: String,
    /// `planned`, `started`, `confirmed`, `failed` or `abandoned`.
    pub state: String,
    /// Its transaction, once known.
    pub txid: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// Decided only.
    pub dry_run: bool,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

/// A channel as the node reports it, for [`Store::resolve_splices`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeChannel {
    /// Channel id.
    pub channel_id: String,
    /// Its funding transaction now.
    pub funding_txid: Option<String>,
    /// Ready on that funding transaction.
    pub ready: bool,
}

const COLUMNS: &str = "s.id, s.channel_id, s.kind, s.amount_sat, s.fee_sat, m.fee_msat, s.code, s.reason, s.state,
     s.txid, s.error, s.dry_run, s.created_at, s.updated_at
     FROM rebalance_splices s LEFT JOIN ln_movements m ON m.id = 'splice:' || s.txid AND m.state = 'settled'";

fn row(r: &Row<'_>) -> crate::store::sql::Result<SpliceRow> {
    Ok(SpliceRow {
        id: r.get(0)?,
        channel_id: r.get(1)?,
        kind: r.get(2)?,
        amount_sat: r.get::<_, i64>(3)? as u64,
        fee_sat: r.get::<_, i64>(4)? as u64,
        booked_fee_msat: r.get(5)?,
        code: r.get(6)?,
        reason: r.get(7)?,
        state: r.get(8)?,
        txid: r.get(9)?,
        error: r.get(10)?,
        dry_run: r.get(11)?,
        created_at: r.get::<_, i64>(12)? as u64,
        updated_at: r.get::<_, i64>(13)? as u64,
    })
}

impl Store {
    /// Persists a splice, `planned`; returns its id. Refused (a constraint error) when one is
    /// already in flight for the channel.
    pub fn splice_planned(&self, s: &NewSplice, now: u64) -> Result<i64, StoreError> {
        Ok(self.conn().query_row(
            "INSERT INTO rebalance_splices (channel_id, kind, amount_sat, fee_sat, code, reason, state,
                 funding_txid_before, dry_run, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'planned', ?7, ?8, ?9, ?9) RETURNING id",
            params![
                s.channel_id,
                s.kind,
                s.amount_sat as i64,
                s.fee_sat as i64,
                s.code,
                s.reason,
                s.funding_txid_before,
                s.dry_run,
                now as i64
            ],
            |r| r.get(0),
        )?)
    }

    /// Moves an in-flight splice to `state` (`started`, `confirmed`, `failed`, `abandoned`).
    pub fn splice_state(&self, id: i64, state: &str, error: Option<&str>, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE rebalance_splices SET state = ?2, error = COALESCE(?3, error), updated_at = ?4
             WHERE id = ?1 AND state IN ('planned', 'started')",
            params![id, state, error, now as i64],
        )?;
        Ok(())
    }

    /// The node reported `SpliceFailed` for the channel: its splice in flight failed.
    pub fn rebalance_splice_failed(&self, channel_id: &str, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE rebalance_splices SET state = 'failed', error = 'the node reported SpliceFailed', updated_at = ?2
             WHERE channel_id = ?1 AND dry_run = 0 AND state IN ('planned', 'started')",
            params![channel_id, now as i64],
        )?;
        Ok(())
    }

    /// Splices created in `[from, to]`, oldest first.
    pub fn splices(&self, from: u64, to: u64) -> Result<Vec<SpliceRow>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} WHERE s.created_at BETWEEN ?1 AND ?2 ORDER BY s.id");
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params![from as i64, to as i64], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Splices in flight (not dry runs), oldest first.
    pub fn splices_in_flight(&self) -> Result<Vec<SpliceRow>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} WHERE s.dry_run = 0 AND s.state IN ('planned', 'started') ORDER BY s.id");
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The estimated fees of the splices made (in flight or confirmed) since `since`, sats.
    pub fn splice_fees_since(&self, since: u64) -> Result<u64, StoreError> {
        let spent: i64 = self.conn().query_row(
            "SELECT COALESCE(SUM(fee_sat), 0) FROM rebalance_splices
             WHERE dry_run = 0 AND state IN ('planned', 'started', 'confirmed') AND created_at >= ?1",
            [since as i64],
            |r| r.get(0),
        )?;
        Ok(spent as u64)
    }

    /// The channel's failed (or abandoned) splices in a row, newest first until a confirmed one,
    /// and when the last of them ended.
    pub fn splice_failures(&self, channel_id: &str) -> Result<(u32, Option<u64>), StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT state, updated_at FROM rebalance_splices
             WHERE channel_id = ?1 AND dry_run = 0 AND state IN ('confirmed', 'failed', 'abandoned')
             ORDER BY id DESC LIMIT 16",
        )?;
        let ended = stmt.query_map([channel_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
        let (mut failures, mut last) = (0, None);
        for e in ended {
            let (state, at) = e?;
            if state == "confirmed" {
                break;
            }
            failures += 1;
            last = last.or(Some(at));
        }
        Ok((failures, last))
    }

    /// Whether something else moves the channel now: a splice-in waiting for the treasury's
    /// funding, or a splice-out asked and not yet started (the operator's `ln.splice_in` /
    /// `ln.splice_out`, or ours).
    pub fn channel_busy(&self, channel_id: &str) -> Result<bool, StoreError> {
        let busy: i64 = self.conn().query_row(
            "SELECT (SELECT COUNT(*) FROM ln_pending_actions
                     WHERE kind = 'splice_in' AND channel_id = ?1 AND state = 'awaiting_funding')
                  + (SELECT COUNT(*) FROM ln_transfers WHERE channel_id = ?1 AND state = 'requested')",
            [channel_id],
            |r| r.get(0),
        )?;
        Ok(busy > 0)
    }

    /// Resolves the splices in flight from what the node shows (see the module doc); returns the
    /// ones that ended now, in their new state.
    pub fn resolve_splices(&self, channels: &[NodeChannel], now: u64) -> Result<Vec<SpliceRow>, StoreError> {
        let mut ended = Vec::new();
        for mut s in self.splices_in_flight()? {
            if let Some((state, error)) = self.resolve_one(&mut s, channels, now)? {
                self.splice_state(s.id, state, error.as_deref(), now)?;
                s.state = state.to_owned();
                s.error = error.or(s.error);
                ended.push(s);
            }
        }
        Ok(ended)
    }

    /// How one splice in flight ended, if it did (its transaction recorded once seen).
    fn resolve_one(
        &self,
        s: &mut SpliceRow,
        channels: &[NodeChannel],
        now: u64,
    ) -> Result<Option<(&'static str, Option<String>)>, StoreError> {
        let Some(channel) = channels.iter().find(|c| c.channel_id == s.channel_id) else {
            return Ok(Some(("failed", Some("the channel is gone".into()))));
        };
        if s.txid.is_none() {
            if let Some(t) = self.splice_txid_seen(s)? {
                self.conn().execute(
                    "UPDATE rebalance_splices SET txid = ?2, state = 'started', updated_at = ?3 WHERE id = ?1",
                    params![s.id, t, now as i64],
                )?;
                s.txid = Some(t);
            }
        }
        if let Some(t) = &s.txid {
            let confirmed = channel.ready && channel.funding_txid.as_deref() == Some(t.as_str());
            return Ok(confirmed.then_some(("confirmed", None)));
        }
        if let Some(why) = self.funding_failed(s)? {
            return Ok(Some(("failed", Some(why))));
        }
        let quiet = !self.channel_busy(&s.channel_id)? && now.saturating_sub(s.updated_at) > ABANDON_AFTER_SECS;
        Ok(quiet.then(|| ("abandoned", Some("the node never started it".to_owned()))))
    }

    /// The transaction of the splice the node started for `s`'s channel since `s` was planned.
    fn splice_txid_seen(&self, s: &SpliceRow) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT txid FROM ln_movements WHERE kind = 'splice' AND channel_id = ?1 AND created_at >= ?2
                 AND txid IS NOT NULL ORDER BY created_at, seq LIMIT 1",
                params![s.channel_id, s.created_at as i64],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Why the treasury-funded splice-in of `s` failed, if it did.
    fn funding_failed(&self, s: &SpliceRow) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT COALESCE(error, 'failed') FROM ln_pending_actions
                 WHERE kind = 'splice_in' AND channel_id = ?1 AND state = 'failed' AND created_at >= ?2
                 ORDER BY id DESC LIMIT 1",
                params![s.channel_id, s.created_at as i64],
                |r| r.get(0),
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(channel: &str, dry_run: bool) -> NewSplice {
        NewSplice {
            channel_id: channel.into(),
            kind: "in",
            amount_sat: 500_000,
            fee_sat: 300,
            code: "below_band",
            reason: "share 10 % below 25 %".into(),
            funding_txid_before: Some("f0".into()),
            dry_run,
        }
    }

    fn ready(channel: &str, funding: &str) -> NodeChannel {
        NodeChannel { channel_id: channel.into(), funding_txid: Some(funding.into()), ready: true }
    }

    #[test]
    fn one_splice_in_flight_per_channel_and_dry_runs_never_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let first = store.splice_planned(&new("c1", false), 100).unwrap();
        assert!(store.splice_planned(&new("c1", false), 101).is_err(), "a second one in flight is refused");
        store.splice_planned(&new("c1", true), 102).unwrap();
        store.splice_planned(&new("c2", false), 103).unwrap();
        let flying: Vec<i64> = store.splices_in_flight().unwrap().iter().map(|s| s.id).collect();
        assert_eq!(flying.len(), 2);
        assert_eq!(flying[0], first);
        assert_eq!(store.splice_fees_since(0).unwrap(), 600, "dry runs spend nothing");
        assert_eq!(store.splice_fees_since(101).unwrap(), 300);
        assert_eq!(store.splices(0, 1_000).unwrap().len(), 3);
    }

    #[test]
    fn splices_resolve_from_the_node_and_failures_count_in_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let a = store.splice_planned(&new("c1", false), 100).unwrap();
        // The node started it: its SplicePending recorded the movement; confirmed once the
        // channel is ready on that transaction.
        store.ln_movement("splice", "c1", Some("t1"), 105).unwrap();
        assert!(store.resolve_splices(&[ready("c1", "f0")], 106).unwrap().is_empty());
        let s = &store.splices_in_flight().unwrap()[0];
        assert_eq!((s.id, s.state.as_str(), s.txid.as_deref()), (a, "started", Some("t1")));
        let ended = store.resolve_splices(&[ready("c1", "t1")], 110).unwrap();
        assert_eq!(ended.len(), 1);
        assert_eq!(store.splices(0, 200).unwrap()[0].state, "confirmed");

        // Nothing ever shows: abandoned after the expiry, and it counts as a failure.
        store.splice_planned(&new("c1", false), 200).unwrap();
        assert!(store.resolve_splices(&[ready("c1", "t1")], 200 + ABANDON_AFTER_SECS).unwrap().is_empty());
        assert_eq!(store.resolve_splices(&[ready("c1", "t1")], 201 + ABANDON_AFTER_SECS).unwrap().len(), 1);
        // The node reports SpliceFailed for the next one; then the channel is gone for another.
        store.splice_planned(&new("c1", false), 900).unwrap();
        store.rebalance_splice_failed("c1", 905).unwrap();
        assert_eq!(store.splice_failures("c1").unwrap(), (2, Some(905)));
        store.splice_planned(&new("c1", false), 1_000).unwrap();
        assert_eq!(store.resolve_splices(&[], 1_001).unwrap().len(), 1);
        assert_eq!(store.splice_failures("c1").unwrap(), (3, Some(1_001)));
        let states: Vec<String> = store.splices(0, 2_000).unwrap().into_iter().map(|s| s.state).collect();
        assert_eq!(states, ["confirmed", "abandoned", "failed", "failed"]);
        assert!(store.splices_in_flight().unwrap().is_empty());
    }
}
