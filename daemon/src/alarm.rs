//! Alarms the operator must see: a funded channel closed other than by the operator's own
//! `ln.close_channel` (the peer force-closed or closed it, or ldk-node force-closed it — e.g.
//! `OutdatedChannelManager` after a kill, rust-lightning #4286). Raised once per channel from the
//! node's `ChannelClosed` event (which ldk-node delivers again until handled, so a crash loses
//! none), kept in the store across restarts, and shown until acknowledged: `/v1/health` and
//! `getinfo` say `degraded`, one ERROR log line, one `channel.closed_unexpectedly` operator event
//! in the outbox.

use crate::store::sql::{params, OptionalExtension};
use serde::Serialize;
use serde_json::json;

use crate::store::{Store, StoreError};

/// The operator event an unexpected close writes to the outbox.
pub const CHANNEL_CLOSED_UNEXPECTEDLY: &str = "channel.closed_unexpectedly";

/// One alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alarm {
    /// Always `channel.closed_unexpectedly` for now.
    pub kind: &'static str,
    /// The closed channel.
    pub channel_id: String,
    /// Its peer.
    pub counterparty_node_id: String,
    /// ldk-node's closure reason.
    pub reason: String,
    /// When it was raised (unix seconds).
    pub raised_at: u64,
    /// When the operator acknowledged it.
    pub acknowledged_at: Option<u64>,
}

impl Store {
    /// The operator asked to close this channel (before the node is asked).
    pub fn ln_close_requested(&self, channel_id: &str, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO ln_channels (channel_id, counterparty_node_id, state, updated_at, close_requested_at)
             VALUES (?1, '', 'closing', ?2, ?2)
             ON CONFLICT (channel_id) DO UPDATE SET close_requested_at = excluded.close_requested_at",
            params![channel_id, now as i64],
        )?;
        Ok(())
    }

    /// Raises the alarm for a closed channel unless the operator asked for the close or the
    /// channel was never funded (no `ChannelPending`); writes its operator event in the same
    /// transaction. True when raised now (false: not an alarm, or raised before).
    pub fn raise_close_alarm(
        &self,
        channel_id: &str,
        counterparty: &str,
        reason: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let row: Option<(Option<i64>, String)> = tx
            .query_row(
                "SELECT close_requested_at, funding_txo FROM ln_channels WHERE channel_id = ?1",
                [channel_id],
                |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.unwrap_or_default())),
            )
            .optional()?;
        let funded_not_asked = matches!(&row, Some((None, txo)) if !txo.is_empty());
        if !funded_not_asked {
            return Ok(false);
        }
        let raised = tx.execute(
            "INSERT INTO ln_alarms (channel_id, counterparty_node_id, reason, raised_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (channel_id) DO NOTHING",
            params![channel_id, counterparty, reason, now as i64],
        )? == 1;
        if raised {
            let payload = json!({ "channel_id": channel_id, "counterparty_node_id": counterparty, "reason": reason });
            tx.execute(
                "INSERT INTO outbox (event_id, event_type, payment_id, api_key_id, payload, created_at)
                 VALUES (?1, ?2, NULL, '', ?3, ?4)",
                params![
                    crate::secret::sortable_id("evt_"),
                    CHANNEL_CLOSED_UNEXPECTEDLY,
                    payload.to_string(),
                    now as i64
                ],
            )?;
        }
        tx.commit()?;
        Ok(raised)
    }

    /// Alarms, oldest first; acknowledged ones too when `all`.
    pub fn alarms(&self, all: bool) -> Result<Vec<Alarm>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT channel_id, counterparty_node_id, reason, raised_at, acknowledged_at FROM ln_alarms
             WHERE ?1 OR acknowledged_at IS NULL ORDER BY raised_at, channel_id",
        )?;
        let rows = stmt.query_map([all], |r| {
            Ok(Alarm {
                kind: CHANNEL_CLOSED_UNEXPECTEDLY,
                channel_id: r.get(0)?,
                counterparty_node_id: r.get(1)?,
                reason: r.get(2)?,
                raised_at: r.get::<_, i64>(3)? as u64,
                acknowledged_at: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Acknowledges a channel's alarm; false when there is none open.
    pub fn acknowledge_alarm(&self, channel_id: &str, now: u64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE ln_alarms SET acknowledged_at = ?2 WHERE channel_id = ?1 AND acknowledged_at IS NULL",
            params![channel_id, now as i64],
        )?;
        Ok(n == 1)
    }
}

/// A channel closed: raises (and logs, once) the alarm if the operator did not ask for it.
pub fn channel_closed(store: &Store, channel_id: &str, counterparty: &str, reason: &str) -> Result<(), StoreError> {
    if store.raise_close_alarm(channel_id, counterparty, reason, crate::unix_now())? {
        tracing::error!(
            %channel_id, peer = %counterparty, %reason,
            "channel closed without the operator asking: the gateway is degraded until `ln.ack_alarm`; \
             its funds return to the node's wallet once swept (see ledger.verify)"
        );
    }
    Ok(())
}

/// `ok`, or `degraded` while an alarm is open, with the open alarms.
pub fn status(store: &Store) -> (&'static str, Vec<Alarm>) {
    match store.alarms(false) {
        Ok(open) if open.is_empty() => ("ok", open),
        Ok(open) => ("degraded", open),
        Err(e) => {
            tracing::warn!(error = %e, "reading alarms");
            ("ok", Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_funded_channels_the_operator_did_not_close_raise_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        store.record_ln_channel("c1", "peer", "ready", Some("tx:0"), 1).unwrap();
        store.record_ln_channel("c2", "peer", "ready", Some("tx:1"), 1).unwrap();
        store.ln_close_requested("c2", 2).unwrap();
        assert!(store.raise_close_alarm("c1", "peer", "CounterpartyForceClosed", 3).unwrap());
        assert!(!store.raise_close_alarm("c1", "peer", "CounterpartyForceClosed", 4).unwrap(), "once");
        assert!(!store.raise_close_alarm("c2", "peer", "HolderForceClosed", 3).unwrap(), "asked");
        assert!(!store.raise_close_alarm("c3", "peer", "DisconnectedPeer", 3).unwrap(), "never funded");
        assert_eq!(status(&store).0, "degraded");
        let events: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM outbox WHERE event_type = 'channel.closed_unexpectedly'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 1);
        assert!(store.acknowledge_alarm("c1", 5).unwrap());
        assert_eq!(status(&store).0, "ok");
        assert_eq!(store.alarms(true).unwrap()[0].acknowledged_at, Some(5));
    }
}
