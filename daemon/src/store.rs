//! Sendero's own SQLite store (`sendero.sqlite` in the data dir): schema under
//! `PRAGMA user_version` with numbered migrations, each applied in one transaction.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

/// The migrations, in order; `user_version` counts how many have been applied.
const MIGRATIONS: &[&str] = &[
    // 1: key/value facts about this data dir, and the record of admin sends.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
     CREATE TABLE onchain_sends (
         txid TEXT PRIMARY KEY,
         address TEXT NOT NULL,
         amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
         fee_sat INTEGER NOT NULL CHECK (fee_sat >= 0),
         feerate_sat_vb INTEGER NOT NULL,
         created_at INTEGER NOT NULL
     ) STRICT;",
    // 2: what the Lightning node's events told us, and channel opens / splice-ins waiting for the
    //    treasury's transfer to the node to confirm.
    "CREATE TABLE ln_payments (
         payment_id TEXT PRIMARY KEY,
         direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
         status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
         amount_msat INTEGER,
         fee_paid_msat INTEGER,
         payment_hash TEXT,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE ln_channels (
         channel_id TEXT PRIMARY KEY,
         counterparty_node_id TEXT NOT NULL,
         state TEXT NOT NULL,
         funding_txo TEXT,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE ln_pending_actions (
         id INTEGER PRIMARY KEY,
         kind TEXT NOT NULL CHECK (kind IN ('open', 'splice_in')),
         node_id TEXT NOT NULL DEFAULT '',
         address TEXT NOT NULL DEFAULT '',
         channel_id TEXT NOT NULL DEFAULT '',
         amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
         push_msat INTEGER,
         announce INTEGER NOT NULL DEFAULT 0,
         funding_txid TEXT NOT NULL,
         state TEXT NOT NULL DEFAULT 'awaiting_funding',
         result TEXT,
         error TEXT,
         created_at INTEGER NOT NULL
     ) STRICT;",
    // 3: API keys (secrets stored as SHA-256 only) and FX quotes.
    "CREATE TABLE api_keys (
         id TEXT PRIMARY KEY,
         label TEXT NOT NULL,
         scopes TEXT NOT NULL,
         secret_sha256 TEXT NOT NULL UNIQUE,
         created_at INTEGER NOT NULL,
         revoked_at INTEGER
     ) STRICT;
     CREATE TABLE fx_quotes (
         quote_id TEXT PRIMARY KEY,
         api_key_id TEXT NOT NULL REFERENCES api_keys (id),
         pair TEXT NOT NULL,
         side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
         rate TEXT NOT NULL,
         markup_bps INTEGER NOT NULL,
         amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
         quote_amount_minor INTEGER NOT NULL,
         amount_sat INTEGER NOT NULL,
         expires_at INTEGER NOT NULL,
         origin TEXT NOT NULL DEFAULT 'api' CHECK (origin IN ('api', 'requote')),
         created_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE fx_fills (
         fx_entry_id TEXT PRIMARY KEY,
         quote_id TEXT NOT NULL UNIQUE REFERENCES fx_quotes (quote_id),
         api_key_id TEXT NOT NULL,
         pair TEXT NOT NULL,
         side TEXT NOT NULL,
         rate TEXT NOT NULL,
         mid_at_fill TEXT NOT NULL,
         amount_minor INTEGER NOT NULL,
         quote_amount_minor INTEGER NOT NULL,
         amount_sat INTEGER NOT NULL,
         spread_minor INTEGER NOT NULL,
         created_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE idempotency_keys (
         api_key_id TEXT NOT NULL,
         idem_key TEXT NOT NULL,
         fingerprint TEXT NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
         status INTEGER,
         body BLOB,
         created_at INTEGER NOT NULL,
         PRIMARY KEY (api_key_id, idem_key)
     ) STRICT;",
    // 4: payout routes: the priced candidates a client may submit until expires_at.
    "CREATE TABLE routes (
         route_id TEXT PRIMARY KEY,
         api_key_id TEXT NOT NULL REFERENCES api_keys (id),
         destination TEXT NOT NULL,
         kind TEXT NOT NULL,
         currency TEXT NOT NULL,
         amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
         amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
         amount_msat INTEGER NOT NULL,
         fx_quote_id TEXT REFERENCES fx_quotes (quote_id),
         priority TEXT NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
         candidates TEXT NOT NULL,
         recommend TEXT,
         created_at INTEGER NOT NULL,
         expires_at INTEGER NOT NULL
     ) STRICT;",
    // 5: payouts (one saga per row), the double-entry ledger and the outbox of payment events.
    "CREATE TABLE payments (
         payment_id TEXT PRIMARY KEY,
         api_key_id TEXT NOT NULL REFERENCES api_keys (id),
         idem_key TEXT NOT NULL,
         route_id TEXT NOT NULL UNIQUE REFERENCES routes (route_id),
         rail TEXT NOT NULL CHECK (rail IN ('onchain', 'lightning', 'on_us')),
         destination TEXT NOT NULL,
         amount_msat INTEGER NOT NULL CHECK (amount_msat > 0),
         currency TEXT NOT NULL,
         amount_minor INTEGER NOT NULL,
         fx_quote_id TEXT REFERENCES fx_quotes (quote_id),
         fee_reserve_msat INTEGER NOT NULL CHECK (fee_reserve_msat >= 0),
         fee_rate_sat_vb INTEGER,
         state TEXT NOT NULL CHECK (state IN ('submitted', 'debited', 'sending', 'sent', 'settled', 'failed')),
         rail_ref TEXT,
         raw_tx BLOB,
         fee_paid_msat INTEGER,
         failure_code TEXT,
         failure_message TEXT,
         attempts INTEGER NOT NULL DEFAULT 0,
         next_attempt_at INTEGER NOT NULL DEFAULT 0,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL,
         final_at INTEGER,
         UNIQUE (api_key_id, idem_key)
     ) STRICT;
     CREATE INDEX payments_open ON payments (next_attempt_at) WHERE state NOT IN ('settled', 'failed');
     CREATE INDEX payments_by_key ON payments (api_key_id, payment_id);
     CREATE UNIQUE INDEX payments_rail_ref ON payments (rail, rail_ref) WHERE rail_ref IS NOT NULL AND state != 'failed';
     CREATE UNIQUE INDEX payments_quote ON payments (fx_quote_id) WHERE fx_quote_id IS NOT NULL AND state != 'failed';
     CREATE TABLE ledger_entries (
         id INTEGER PRIMARY KEY,
         kind TEXT NOT NULL,
         payment_id TEXT REFERENCES payments (payment_id),
         reference TEXT NOT NULL UNIQUE,
         memo TEXT NOT NULL DEFAULT '',
         created_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE ledger_postings (
         id INTEGER PRIMARY KEY,
         entry_id INTEGER NOT NULL REFERENCES ledger_entries (id),
         account TEXT NOT NULL,
         currency TEXT NOT NULL,
         amount INTEGER NOT NULL CHECK (amount != 0)
     ) STRICT;
     CREATE INDEX ledger_postings_account ON ledger_postings (account, currency);
     CREATE TABLE outbox (
         id INTEGER PRIMARY KEY,
         event_id TEXT NOT NULL UNIQUE,
         event_type TEXT NOT NULL,
         payment_id TEXT NOT NULL REFERENCES payments (payment_id),
         api_key_id TEXT NOT NULL,
         payload TEXT NOT NULL,
         created_at INTEGER NOT NULL
     ) STRICT;",
    // 6: webhook endpoints per API key, one delivery per (endpoint, outbox event), every attempt.
    "CREATE TABLE webhook_endpoints (
         endpoint_id TEXT PRIMARY KEY,
         api_key_id TEXT NOT NULL REFERENCES api_keys (id),
         url TEXT NOT NULL,
         secret TEXT NOT NULL,
         events TEXT NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('enabled', 'disabled')),
         disabled_reason TEXT,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE webhook_deliveries (
         delivery_id INTEGER PRIMARY KEY,
         endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (endpoint_id),
         outbox_id INTEGER NOT NULL REFERENCES outbox (id),
         state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
         attempts INTEGER NOT NULL DEFAULT 0,
         next_attempt_at INTEGER NOT NULL,
         last_status INTEGER,
         last_error TEXT,
         created_at INTEGER NOT NULL,
         delivered_at INTEGER,
         UNIQUE (endpoint_id, outbox_id)
     ) STRICT;
     CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
     CREATE TABLE webhook_attempts (
         id INTEGER PRIMARY KEY,
         delivery_id INTEGER NOT NULL REFERENCES webhook_deliveries (delivery_id),
         at INTEGER NOT NULL,
         status INTEGER,
         error TEXT,
         duration_ms INTEGER NOT NULL
     ) STRICT;",
    // 7: what the router learns from (one outcome per final payment) and the audit log, which
    //    refuses changes.
    "CREATE TABLE rail_outcomes (
         id INTEGER PRIMARY KEY,
         payment_id TEXT NOT NULL UNIQUE REFERENCES payments (payment_id),
         rail TEXT NOT NULL,
         success INTEGER NOT NULL CHECK (success IN (0, 1)),
         code TEXT,
         latency_secs INTEGER NOT NULL,
         at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE audit_log (
         seq INTEGER PRIMARY KEY,
         at INTEGER NOT NULL,
         actor TEXT NOT NULL,
         action TEXT NOT NULL,
         details TEXT NOT NULL,
         prev_hash TEXT NOT NULL,
         hash TEXT NOT NULL
     ) STRICT;
     CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
     CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
         BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    // 8: what open payments reserve on a rail, read at every submit without a table scan.
    "CREATE INDEX payments_reserving ON payments (rail, amount_msat, fee_reserve_msat)
         WHERE state IN ('submitted', 'debited', 'sending');",
    // 9: what each rail of a route pays, fixed when it is priced (a submit then parses nothing).
    "ALTER TABLE routes ADD COLUMN pay_address TEXT;
     ALTER TABLE routes ADD COLUMN pay_lightning TEXT;
     ALTER TABLE routes ADD COLUMN payment_hash TEXT;
     ALTER TABLE routes ADD COLUMN pay_by INTEGER;",
    // 10: the seed's route fields (method, geo); payout quotes filled when their payment settles
    //     (linked to it); what a requote cost against the quote it replaced.
    "ALTER TABLE routes ADD COLUMN method TEXT;
     ALTER TABLE routes ADD COLUMN geo TEXT;
     ALTER TABLE fx_fills ADD COLUMN payment_id TEXT REFERENCES payments (payment_id);
     ALTER TABLE fx_quotes ADD COLUMN requote_of TEXT;
     ALTER TABLE fx_quotes ADD COLUMN requote_loss_minor INTEGER NOT NULL DEFAULT 0;",
    // 11: the BOLT12 offers this gateway issued (`ln.offer`): a payout to one settles `on_us`.
    "CREATE TABLE own_offers (
         offer_id TEXT PRIMARY KEY,
         created_at INTEGER NOT NULL
     ) STRICT;",
    // 12: money between the treasury and the Lightning node, the node's channel movements until
    //     the ledger settles them, closes the operator asked for, alarms for the others, and
    //     operator events (no payment, no API key) in the outbox.
    "CREATE TABLE ln_transfers (
         id INTEGER PRIMARY KEY,
         direction TEXT NOT NULL CHECK (direction IN ('to_node', 'to_treasury', 'to_address')),
         channel_id TEXT,
         amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
         txid TEXT UNIQUE,
         state TEXT NOT NULL CHECK (state IN ('requested', 'broadcast', 'booked', 'failed')),
         created_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE ln_movements (
         id TEXT PRIMARY KEY,
         kind TEXT NOT NULL CHECK (kind IN ('open', 'splice', 'close')),
         channel_id TEXT NOT NULL,
         txid TEXT,
         state TEXT NOT NULL CHECK (state IN ('pending', 'settled')),
         fee_msat INTEGER,
         created_at INTEGER NOT NULL,
         settled_at INTEGER
     ) STRICT;
     ALTER TABLE ln_channels ADD COLUMN close_requested_at INTEGER;
     CREATE TABLE ln_alarms (
         channel_id TEXT PRIMARY KEY,
         counterparty_node_id TEXT NOT NULL,
         reason TEXT NOT NULL,
         raised_at INTEGER NOT NULL,
         acknowledged_at INTEGER
     ) STRICT;
     CREATE TABLE outbox_new (
         id INTEGER PRIMARY KEY,
         event_id TEXT NOT NULL UNIQUE,
         event_type TEXT NOT NULL,
         payment_id TEXT REFERENCES payments (payment_id),
         api_key_id TEXT NOT NULL,
         payload TEXT NOT NULL,
         created_at INTEGER NOT NULL
     ) STRICT;
     INSERT INTO outbox_new SELECT id, event_id, event_type, payment_id, api_key_id, payload, created_at FROM outbox;
     DROP TABLE outbox;
     ALTER TABLE outbox_new RENAME TO outbox;",
];

/// Prepared statements kept per connection: every statement of the hot paths (submit, saga,
/// webhooks, quotes) is parsed once.
const STATEMENT_CACHE: usize = 64;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer Sendero.
    #[error("store schema version {found} is newer than this senderod knows ({known}); upgrade senderod")]
    TooNew {
        /// Version in the file.
        found: usize,
        /// Newest version this build knows.
        known: usize,
    },
    /// The checkpointer thread could not be started.
    #[error("store: starting the checkpointer: {0}")]
    Thread(std::io::Error),
}

/// One admin send, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    /// Transaction id.
    pub txid: String,
    /// Destination.
    pub address: String,
    /// Amount.
    pub amount_sat: u64,
    /// Fee paid.
    pub fee_sat: u64,
    /// Feerate asked for.
    pub feerate_sat_vb: u64,
}

/// The store. Writes are serialised through one connection. Two hot-path helpers sit in front of
/// it: API keys are cached after their first lookup (cleared on any revocation), and quotes are
/// buffered and written in batches ([`Store::flush_quotes`]; every read of quotes flushes first).
pub struct Store {
    conn: Mutex<Connection>,
    /// A second, read-only connection for the hot reads (idempotency keys, routes, payments):
    /// under WAL it reads the last committed state while the writer is busy committing.
    reader: Mutex<Connection>,
    keys: std::sync::RwLock<std::collections::HashMap<String, ApiKeyRow>>,
    pending_quotes: Mutex<Vec<(QuoteRow, u64)>>,
    /// Idempotency keys of requests in flight: `(key id, idempotency key)` → (fingerprint, since).
    claims: Mutex<std::collections::HashMap<(String, String), (String, u64)>>,
    /// Payments waiting for a group commit (see `Store::insert_payment`).
    submits: Mutex<Vec<crate::payment::record::Waiting>>,
    /// Whether a group committer is running.
    pub(crate) committing: std::sync::atomic::AtomicBool,
    /// Tells the checkpointer thread to stop (see [`checkpointer`]).
    checkpoints: Arc<(Mutex<bool>, Condvar)>,
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// WAL pages after which the writer checkpoints by itself, should the checkpointer fall behind.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// Copies the WAL back into the database file every [`CHECKPOINT_EVERY`] on a connection of its
/// own, so that commits only append to the WAL: a passive checkpoint runs beside the writer and
/// readers, and the writer starts the WAL over once it has been copied.
fn checkpointer(path: &Path, stop: Arc<(Mutex<bool>, Condvar)>) -> Result<(), StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let (stopped, wake) = &*stop;
            let mut guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
            while !*guard {
                guard = wake.wait_timeout(guard, CHECKPOINT_EVERY).unwrap_or_else(PoisonError::into_inner).0;
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "checkpointing the store's WAL");
                }
            }
        })
        .map_err(StoreError::Thread)?;
    Ok(())
}

impl Drop for Store {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.checkpoints;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The copies of pages a savepoint may roll back (one savepoint per payment of a group
        // commit) stay in memory instead of going through a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        migrate(&mut conn)?;
        let reader = Connection::open(path)?;
        reader.pragma_update(None, "query_only", true)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let checkpoints = Arc::new((Mutex::new(false), Condvar::new()));
        checkpointer(path, Arc::clone(&checkpoints))?;
        Ok(Store {
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            keys: Default::default(),
            pending_quotes: Mutex::new(Vec::new()),
            claims: Default::default(),
            submits: Default::default(),
            committing: Default::default(),
            checkpoints,
        })
    }

    pub(crate) fn submits(&self) -> MutexGuard<'_, Vec<crate::payment::record::Waiting>> {
        self.submits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The read-only connection (see [`Store`]).
    pub(crate) fn read(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fact about this data dir.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?;
        Ok(stmt.query_row([key], |r| r.get(0)).optional()?)
    }

    /// Records a fact about this data dir.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Records an admin send.
    pub fn record_send(&self, send: &SendRecord, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO onchain_sends (txid, address, amount_sat, fee_sat, feerate_sat_vb, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                send.txid,
                send.address,
                send.amount_sat as i64,
                send.fee_sat as i64,
                send.feerate_sat_vb as i64,
                now as i64
            ],
        )?;
        Ok(())
    }

    /// The admin send of `txid`, if there was one.
    pub fn send(&self, txid: &str) -> Result<Option<SendRecord>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT txid, address, amount_sat, fee_sat, feerate_sat_vb FROM onchain_sends WHERE txid = ?1",
                [txid],
                |r| {
                    Ok(SendRecord {
                        txid: r.get(0)?,
                        address: r.get(1)?,
                        amount_sat: r.get::<_, i64>(2)? as u64,
                        fee_sat: r.get::<_, i64>(3)? as u64,
                        feerate_sat_vb: r.get::<_, i64>(4)? as u64,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }
}

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
                 amount_msat = COALESCE(excluded.amount_msat, amount_msat),
                 fee_paid_msat = COALESCE(excluded.fee_paid_msat, fee_paid_msat),
                 payment_hash = COALESCE(excluded.payment_hash, payment_hash),
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

    /// What the node's events said of a payment: its status and routing fee, if an event came.
    pub fn ln_payment_status(&self, payment_id: &str) -> Result<Option<(String, Option<u64>)>, StoreError> {
        let row = self
            .conn()
            .query_row("SELECT status, fee_paid_msat FROM ln_payments WHERE payment_id = ?1", [payment_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
            })
            .optional()?;
        Ok(row.map(|(status, fee)| (status, fee.map(|f| f as u64))))
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
                 counterparty_node_id = CASE WHEN excluded.counterparty_node_id = '' THEN counterparty_node_id
                                             ELSE excluded.counterparty_node_id END,
                 funding_txo = COALESCE(excluded.funding_txo, funding_txo),
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
        let conn = self.conn();
        conn.execute(
            "INSERT INTO ln_pending_actions
                 (kind, node_id, address, channel_id, amount_sat, push_msat, announce, funding_txid, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
        )?;
        Ok(conn.last_insert_rowid())
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

/// An API key as stored (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// `ak_…`.
    pub id: String,
    /// Operator's label.
    pub label: String,
    /// Comma-separated scopes.
    pub scopes: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<u64>,
}

/// A quote as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRow {
    /// `q_…`.
    pub quote_id: String,
    /// The key that asked.
    pub api_key_id: String,
    /// `BASE/QUOTE`.
    pub pair: String,
    /// `buy` / `sell`.
    pub side: &'static str,
    /// Marked-up rate at full precision.
    pub rate: String,
    /// Markup.
    pub markup_bps: u32,
    /// BASE minor units.
    pub amount_minor: u64,
    /// QUOTE minor units.
    pub quote_amount_minor: u64,
    /// The bitcoin leg.
    pub amount_sat: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// `api` or `requote`.
    pub origin: &'static str,
}

impl Store {
    /// Stores a new API key.
    pub fn insert_api_key(&self, row: &ApiKeyRow, secret_sha256: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO api_keys (id, label, scopes, secret_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.id, row.label, row.scopes, secret_sha256, row.created_at as i64],
        )?;
        Ok(())
    }

    /// The key whose secret hashes to `secret_sha256` (cached after the first lookup).
    pub fn api_key_by_hash(&self, secret_sha256: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        if let Some(row) = self.keys.read().unwrap_or_else(PoisonError::into_inner).get(secret_sha256) {
            return Ok(Some(row.clone()));
        }
        let row = self
            .conn()
            .query_row(
                "SELECT id, label, scopes, created_at, revoked_at FROM api_keys WHERE secret_sha256 = ?1",
                [secret_sha256],
                api_key_row,
            )
            .optional()?;
        if let Some(row) = &row {
            self.keys.write().unwrap_or_else(PoisonError::into_inner).insert(secret_sha256.to_owned(), row.clone());
        }
        Ok(row)
    }

    /// Every key, oldest first.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, label, scopes, created_at, revoked_at FROM api_keys ORDER BY created_at, id")?;
        let rows = stmt.query_map([], api_key_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Revokes a key; false when there is no such active key.
    pub fn revoke_api_key(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![id, now as i64],
        )?;
        self.keys.write().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(changed == 1)
    }

    /// Buffers a quote; it reaches the database at the next [`Store::flush_quotes`] (a quote moves
    /// no money: a crash may lose the last few milliseconds of quotes, never a fill).
    pub fn record_quote(&self, q: QuoteRow, now: u64) -> Result<(), StoreError> {
        self.pending_quotes.lock().unwrap_or_else(PoisonError::into_inner).push((q, now));
        Ok(())
    }

    /// Whether quotes wait in the write buffer.
    pub fn has_pending_quotes(&self) -> bool {
        !self.pending_quotes.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Writes every buffered quote in one transaction; returns how many.
    pub fn flush_quotes(&self) -> Result<usize, StoreError> {
        // The writer first: a flush under way elsewhere (the background writer) has committed
        // before this one takes the buffer, so a caller that flushes to read a quote it just made
        // always finds it.
        let mut conn = self.conn();
        let batch = std::mem::take(&mut *self.pending_quotes.lock().unwrap_or_else(PoisonError::into_inner));
        if batch.is_empty() {
            return Ok(0);
        }
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO fx_quotes (quote_id, api_key_id, pair, side, rate, markup_bps, amount_minor,
                                        quote_amount_minor, amount_sat, expires_at, created_at, origin)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for (q, now) in &batch {
                stmt.execute(params![
                    q.quote_id,
                    q.api_key_id,
                    q.pair,
                    q.side,
                    q.rate,
                    q.markup_bps,
                    q.amount_minor as i64,
                    q.quote_amount_minor as i64,
                    q.amount_sat as i64,
                    q.expires_at as i64,
                    *now as i64,
                    q.origin
                ])?;
            }
        }
        tx.commit()?;
        Ok(batch.len())
    }

    /// The quote `quote_id`, if any.
    pub fn quote(&self, quote_id: &str) -> Result<Option<QuoteRow>, StoreError> {
        self.flush_quotes()?;
        // Flushed and committed: the read-only connection sees it.
        let conn = self.read();
        let row = conn
            .prepare_cached(
                "SELECT quote_id, api_key_id, pair, side, rate, markup_bps, amount_minor, quote_amount_minor,
                        amount_sat, expires_at, origin FROM fx_quotes WHERE quote_id = ?1",
            )?
            .query_row([quote_id], |r| {
                let side: String = r.get(3)?;
                let origin: String = r.get(10)?;
                Ok(QuoteRow {
                    quote_id: r.get(0)?,
                    api_key_id: r.get(1)?,
                    pair: r.get(2)?,
                    side: if side == "sell" { "sell" } else { "buy" },
                    rate: r.get(4)?,
                    markup_bps: r.get(5)?,
                    amount_minor: r.get::<_, i64>(6)? as u64,
                    quote_amount_minor: r.get::<_, i64>(7)? as u64,
                    amount_sat: r.get::<_, i64>(8)? as u64,
                    expires_at: r.get::<_, i64>(9)? as u64,
                    origin: if origin == "requote" { "requote" } else { "api" },
                })
            })
            .optional()?;
        Ok(row)
    }

    /// Claims `(api_key_id, idem_key)` for a request with `fingerprint`, or reports what holds it.
    /// A claim lives in memory only — a request in flight dies with its process, so nothing needs
    /// to survive it — and a finished request's answer is written with its effects, in their
    /// transaction: one durable commit per request.
    pub fn idempotency_begin(
        &self,
        api_key_id: &str,
        idem_key: &str,
        fingerprint: &str,
        now: u64,
    ) -> Result<IdemBegin, StoreError> {
        let id = (api_key_id.to_owned(), idem_key.to_owned());
        {
            let mut claims = self.claims.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((held, _)) = claims.get(&id) {
                return Ok(if held == fingerprint { IdemBegin::InFlight } else { IdemBegin::Mismatch });
            }
            claims.insert(id.clone(), (fingerprint.to_owned(), now));
        }
        let done: Option<(String, Option<i64>, Option<Vec<u8>>)> = self
            .read()
            .prepare_cached(
                "SELECT fingerprint, status, body FROM idempotency_keys
                 WHERE api_key_id = ?1 AND idem_key = ?2 AND state = 'done'",
            )?
            .query_row(params![api_key_id, idem_key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((stored_fp, status, body)) = done else { return Ok(IdemBegin::Fresh) };
        self.idempotency_release(api_key_id, idem_key);
        Ok(if stored_fp != fingerprint {
            IdemBegin::Mismatch
        } else {
            IdemBegin::Replay { status: status.unwrap_or(200) as u16, body: body.unwrap_or_default() }
        })
    }

    /// Writes a claimed request's answer inside `tx`, with the request's effects; after the
    /// commit the caller releases the claim ([`Store::idempotency_release`]).
    pub(crate) fn idempotency_answer(
        &self,
        tx: &Connection,
        (api_key_id, idem_key): (&str, &str),
        status: u16,
        body: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        let fingerprint = self
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(api_key_id.to_owned(), idem_key.to_owned()))
            .map(|(fp, _)| fp.clone())
            .unwrap_or_default();
        tx.prepare_cached(
            "INSERT INTO idempotency_keys (api_key_id, idem_key, fingerprint, state, status, body, created_at)
             VALUES (?1, ?2, ?3, 'done', ?4, ?5, ?6)
             ON CONFLICT (api_key_id, idem_key) DO UPDATE SET
                 fingerprint = excluded.fingerprint, state = 'done', status = excluded.status, body = excluded.body",
        )?
        .execute(params![api_key_id, idem_key, fingerprint, status as i64, body, now as i64])?;
        Ok(())
    }

    /// Stores the response of a finished request (it is replayed for the same key and body).
    pub fn idempotency_finish(
        &self,
        api_key_id: &str,
        idem_key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let written = (|| {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            self.idempotency_answer(&tx, (api_key_id, idem_key), status, body, crate::unix_now())?;
            tx.commit()?;
            Ok(())
        })();
        self.idempotency_release(api_key_id, idem_key);
        written
    }

    /// Releases a key's claim: its request finished (answer written) or failed on the server's
    /// side, so that a retry can run.
    pub fn idempotency_abandon(&self, api_key_id: &str, idem_key: &str) -> Result<(), StoreError> {
        self.idempotency_release(api_key_id, idem_key);
        Ok(())
    }

    /// Drops a claim.
    pub(crate) fn idempotency_release(&self, api_key_id: &str, idem_key: &str) {
        self.claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(api_key_id.to_owned(), idem_key.to_owned()));
    }

    /// Drops finished idempotency records older than `before`, and in-flight ones left by a
    /// request that died before committing anything (`stale_before`). Returns how many.
    pub fn idempotency_prune(&self, before: u64, stale_before: u64) -> Result<usize, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM idempotency_keys WHERE (state = 'done' AND created_at < ?1) OR (state = 'in_flight' AND created_at < ?2)",
            params![before as i64, stale_before as i64],
        )?)
    }
}

/// Where an idempotent request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdemBegin {
    /// First time: go ahead.
    Fresh,
    /// Done before with the same body: send this again.
    Replay {
        /// HTTP status.
        status: u16,
        /// Exact response bytes.
        body: Vec<u8>,
    },
    /// Same key, different body.
    Mismatch,
    /// Same key and body, still being processed.
    InFlight,
}

fn api_key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.get(0)?,
        label: r.get(1)?,
        scopes: r.get(2)?,
        created_at: r.get::<_, i64>(3)? as u64,
        revoked_at: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
    })
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::TooNew { found: version, known: MIGRATIONS.len() });
    }
    // A migration may rebuild a table others refer to: foreign keys are checked once it is done
    // (SQLite's own procedure for schema changes), not while the old table is dropped.
    conn.pragma_update(None, "foreign_keys", false)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let broken: Option<String> = tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0)).optional()?;
        if let Some(table) = broken {
            let code = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY);
            let message = format!("migration {} breaks a foreign key of {table}", i + 1);
            return Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(code, Some(message))));
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store migrated");
    }
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path).unwrap();
        store.set_meta("network", "regtest").unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.meta("network").unwrap().as_deref(), Some("regtest"));
        assert_eq!(store.meta("nothing").unwrap(), None);
    }

    #[test]
    fn the_wal_reaches_the_database_file_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path).unwrap();
        store.set_meta("checkpointed", "yes").unwrap();
        // The database file alone, WAL ignored: it holds what was checkpointed.
        let in_file = || {
            let uri = format!("file:{}?immutable=1", path.display());
            let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
            let conn = Connection::open_with_flags(&uri, flags).unwrap();
            // Before the first checkpoint even the tables are only in the WAL.
            conn.query_row("SELECT value FROM meta WHERE key = 'checkpointed'", [], |r| r.get::<_, String>(0)).ok()
        };
        let deadline = std::time::Instant::now() + CHECKPOINT_EVERY * 10;
        while in_file().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(CHECKPOINT_EVERY / 4);
        }
        assert_eq!(in_file().as_deref(), Some("yes"), "the checkpointer copied the commit into the file");
        // The writer itself only checkpoints far beyond that.
        let pages: i64 = store.conn().query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(pages, WRITER_CHECKPOINT_PAGES);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { found: 99, .. })));
    }

    #[test]
    fn sends_round_trip_and_reject_nonsense() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let send =
            SendRecord { txid: "ab".into(), address: "bcrt1q".into(), amount_sat: 5, fee_sat: 1, feerate_sat_vb: 2 };
        store.record_send(&send, 7).unwrap();
        assert_eq!(store.send("ab").unwrap(), Some(send.clone()));
        assert!(store.record_send(&SendRecord { txid: "cd".into(), amount_sat: 0, ..send }, 7).is_err());
    }
}
