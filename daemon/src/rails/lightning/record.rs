//! What the Lightning rail keeps in the store: the node's payment outcomes, the offers this
//! gateway issued, channels' states, and the actions waiting for the treasury's funding.

use std::collections::HashMap;

use crate::store::sql::{params, OptionalExtension};

use crate::store::{Store, StoreError};

/// A Lightning payment as the node's events reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LnPaymentRow {
    /// Payment id, hex.
    pub payment_id: String,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    /// `pending`, `succeeded` or `failed`.
    pub status: &'static str,
    /// Amount.
    pub amount_msat: Option<u64>,
    /// Routing fee paid.
    pub fee_paid_msat: Option<u64>,
    /// Payment hash, hex.
    pub payment_hash: Option<String>,
}

/// A payment the node's events said it sent (see [`Store::ln_sent_by_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentByEvent {
    /// Routing fee the event reported.
    pub fee_paid_msat: Option<u64>,
    /// Payment hash, hex.
    pub payment_hash: Option<String>,
    /// When the event came, unix seconds.
    pub at: u64,
}

/// What a pending action does once its funding has confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingKind {
    /// Open a channel to `node_id` at `address`.
    Open {
        /// Peer node id.
        node_id: String,
        /// Peer address.
        address: String,
        /// Pushed to the peer at open.
        push_msat: Option<u64>,
        /// Announced channel.
        announce: bool,
    },
    /// Splice into `channel_id`.
    SpliceIn {
        /// Channel id, hex.
        channel_id: String,
    },
}

/// A Lightning action waiting for the treasury's transfer to the node to confirm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAction {
    /// Row id.
    pub id: i64,
    /// What to do.
    pub kind: PendingKind,
    /// Channel amount, or amount spliced in.
    pub amount_sat: u64,
    /// The treasury's transfer to the node.
    pub funding_txid: String,
}

impl Store {
    /// Records (or updates) a Lightning payment.
    pub fn record_ln_payment(&self, row: &LnPaymentRow, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO ln_payments (payment_id, direction, status, amount_msat, fee_paid_msat, payment_hash, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (payment_id) DO UPDATE SET status = excluded.status,
                 amount_msat = COALESCE(excluded.amount_msat, ln_payments.amount_msat),
                 fee_paid_msat = COALESCE(excluded.fee_paid_msat, ln_payments.fee_paid_msat),
                 payment_hash = COALESCE(excluded.payment_hash, ln_payments.payment_hash),
                 updated_at = excluded.updated_at",
            params![
                row.payment_id,
                row.direction,
                row.status,
                row.amount_msat.map(|v| v as i64),
                row.fee_paid_msat.map(|v| v as i64),
                row.payment_hash,
                now as i64
            ],
        )?;
        Ok(())
    }

    /// What the node's events said of a payment it sent: its status and routing fee, if an event
    /// came. (A payment received under the same id — an invoice of this node — is not one.)
    pub fn ln_payment_status(&self, payment_id: &str) -> Result<Option<(String, Option<u64>)>, StoreError> {
        let row = self
            .read()
            .prepare_cached(
                "SELECT status, fee_paid_msat FROM ln_payments WHERE payment_id = ?1 AND direction = 'outbound'",
            )?
            .query_row([payment_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?)))
            .optional()?;
        Ok(row.map(|(status, fee)| (status, fee.map(|f| f as u64))))
    }

    /// The payments the node's events said it sent, by payment id: routing fee, payment hash and
    /// when the event came. ldk-node stores a payment only once LDK has taken it, so a kill in
    /// between leaves a payment that left — and whose `PaymentSuccessful` event came after the
    /// restart — without the node's record: this is then what proves it.
    pub fn ln_sent_by_event(&self) -> Result<HashMap<String, SentByEvent>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT payment_id, fee_paid_msat, payment_hash, updated_at FROM ln_payments
             WHERE direction = 'outbound' AND status = 'succeeded'",
        )?;
        let rows = stmt.query_map([], |r| {
            let sent = SentByEvent {
                fee_paid_msat: r.get::<_, Option<i64>>(1)?.map(|f| f as u64),
                payment_hash: r.get(2)?,
                at: r.get::<_, i64>(3)? as u64,
            };
            Ok((r.get::<_, String>(0)?, sent))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records a BOLT12 offer this gateway issued, by offer id (hex).
    pub fn record_own_offer(&self, offer_id: &str, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO own_offers (offer_id, created_at) VALUES (?1, ?2) ON CONFLICT (offer_id) DO NOTHING",
            params![offer_id, now as i64],
        )?;
        Ok(())
    }

    /// Whether this gateway issued the offer with this id (hex).
    pub fn is_own_offer(&self, offer_id: &str) -> Result<bool, StoreError> {
        let found = self
            .read()
            .prepare_cached("SELECT 1 FROM own_offers WHERE offer_id = ?1")?
            .query_row([offer_id], |_| Ok(()))
            .optional()?;
        Ok(found.is_some())
    }

    /// Records a channel's state (`pending`, `ready`, `splice_pending`, `closed`, …).
    pub fn record_ln_channel(
        &self,
        channel_id: &str,
        counterparty: &str,
        state: &str,
        funding_txo: Option<&str>,
        now: u64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO ln_channels (channel_id, counterparty_node_id, state, funding_txo, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (channel_id) DO UPDATE SET state = excluded.state,
                 counterparty_node_id = CASE WHEN excluded.counterparty_node_id = ''
                                             THEN ln_channels.counterparty_node_id
                                             ELSE excluded.counterparty_node_id END,
                 funding_txo = COALESCE(excluded.funding_txo, ln_channels.funding_txo),
                 updated_at = excluded.updated_at",
            params![channel_id, counterparty, state, funding_txo, now as i64],
        )?;
        Ok(())
    }

    /// Queues an action until its funding confirms; returns its id.
    pub fn add_pending_action(&self, action: &PendingAction, now: u64) -> Result<i64, StoreError> {
        let (kind, node_id, address, channel_id, push_msat, announce) = match &action.kind {
            PendingKind::Open { node_id, address, push_msat, announce } => {
                ("open", node_id.as_str(), address.as_str(), "", *push_msat, *announce)
            }
            PendingKind::SpliceIn { channel_id } => ("splice_in", "", "", channel_id.as_str(), None, false),
        };
        Ok(self.conn().query_row(
            "INSERT INTO ln_pending_actions
                 (kind, node_id, address, channel_id, amount_sat, push_msat, announce, funding_txid, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
            params![
                kind,
                node_id,
                address,
                channel_id,
                action.amount_sat as i64,
                push_msat.map(|v| v as i64),
                announce,
                action.funding_txid,
                now as i64
            ],
            |r| r.get(0),
        )?)
    }

    /// Actions still waiting for funds, oldest first.
    pub fn pending_actions(&self) -> Result<Vec<PendingAction>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, kind, node_id, address, channel_id, amount_sat, push_msat, announce, funding_txid
             FROM ln_pending_actions WHERE state = 'awaiting_funding' ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let kind: String = r.get(1)?;
            let kind = if kind == "splice_in" {
                PendingKind::SpliceIn { channel_id: r.get(4)? }
            } else {
                PendingKind::Open {
                    node_id: r.get(2)?,
                    address: r.get(3)?,
                    push_msat: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                    announce: r.get(7)?,
                }
            };
            Ok(PendingAction { id: r.get(0)?, kind, amount_sat: r.get::<_, i64>(5)? as u64, funding_txid: r.get(8)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a pending action done (`done` with its result, e.g. the user channel id) or `failed`.
    pub fn finish_pending_action(&self, id: i64, result: Option<&str>, error: Option<&str>) -> Result<(), StoreError> {
        let state = if error.is_some() { "failed" } else { "done" };
        self.conn().execute(
            "UPDATE ln_pending_actions SET state = ?2, result = ?3, error = ?4 WHERE id = ?1",
            params![id, state, result, error],
        )?;
        Ok(())
    }
}
