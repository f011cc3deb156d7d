//! The schema, as numbered migrations under `PRAGMA user_version`, each applied in one
//! transaction with its foreign keys checked before it commits. PostgreSQL applies the same
//! list (`pg_migrations`).

use rusqlite::{Connection, OptionalExtension};

use super::StoreError;

/// The migrations, in order; `user_version` counts how many have been applied.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 13: the `onchain_batch` rail: payouts that leave together in one transaction (a batch),
    // each with its output and its exact share of the fee.
    "CREATE TABLE payments_new (
         payment_id TEXT PRIMARY KEY,
         api_key_id TEXT NOT NULL REFERENCES api_keys (id),
         idem_key TEXT NOT NULL,
         route_id TEXT NOT NULL UNIQUE REFERENCES routes (route_id),
         rail TEXT NOT NULL CHECK (rail IN ('onchain', 'onchain_batch', 'lightning', 'on_us')),
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
     INSERT INTO payments_new SELECT * FROM payments;
     DROP TABLE payments;
     ALTER TABLE payments_new RENAME TO payments;
     CREATE INDEX payments_open ON payments (next_attempt_at) WHERE state NOT IN ('settled', 'failed');
     CREATE INDEX payments_by_key ON payments (api_key_id, payment_id);
     CREATE UNIQUE INDEX payments_rail_ref ON payments (rail, rail_ref) WHERE rail_ref IS NOT NULL AND state != 'failed';
     CREATE UNIQUE INDEX payments_quote ON payments (fx_quote_id) WHERE fx_quote_id IS NOT NULL AND state != 'failed';
     CREATE INDEX payments_reserving ON payments (rail, amount_msat, fee_reserve_msat)
         WHERE state IN ('submitted', 'debited', 'sending');
     CREATE INDEX payments_queued ON payments (created_at) WHERE rail = 'onchain_batch' AND state = 'debited';
     CREATE TABLE batches (
         batch_id TEXT PRIMARY KEY,
         txid TEXT NOT NULL UNIQUE,
         raw_tx BLOB NOT NULL,
         fee_sat INTEGER NOT NULL CHECK (fee_sat >= 0),
         feerate_sat_vb INTEGER NOT NULL,
         vsize INTEGER NOT NULL,
         payouts INTEGER NOT NULL CHECK (payouts > 0),
         reason TEXT NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('signed', 'broadcast', 'confirmed')),
         created_at INTEGER NOT NULL,
         broadcast_at INTEGER,
         confirmed_at INTEGER,
         priority TEXT NOT NULL DEFAULT 'normal',
         broadcast_height INTEGER
     ) STRICT;
     CREATE TABLE batch_replaced (
         txid TEXT PRIMARY KEY,
         batch_id TEXT NOT NULL REFERENCES batches (batch_id),
         raw_tx BLOB NOT NULL,
         fee_sat INTEGER NOT NULL,
         feerate_sat_vb INTEGER NOT NULL,
         replaced_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE batch_payouts (
         payment_id TEXT PRIMARY KEY REFERENCES payments (payment_id),
         batch_id TEXT NOT NULL REFERENCES batches (batch_id),
         vout INTEGER NOT NULL,
         amount_sat INTEGER NOT NULL,
         fee_share_sat INTEGER NOT NULL CHECK (fee_share_sat >= 0),
         UNIQUE (batch_id, vout)
     ) STRICT;",
    // 14: standalone consolidations: the treasury's small coins swept into one of its own
    // outputs; the ledger books each one's fee (`fees:consolidation`) once it confirms.
    "CREATE TABLE consolidations (
         id TEXT PRIMARY KEY,
         txid TEXT NOT NULL UNIQUE,
         inputs INTEGER NOT NULL CHECK (inputs >= 2),
         input_sat INTEGER NOT NULL CHECK (input_sat > 0),
         fee_sat INTEGER NOT NULL CHECK (fee_sat > 0),
         feerate_sat_kvb INTEGER NOT NULL CHECK (feerate_sat_kvb > 0),
         created_at INTEGER NOT NULL
     ) STRICT;",
    // 15: payouts waiting for fees: a queued payout whose priority's feerate is above its
    // ceiling, the ceiling it waits for, the feerate seen last, since when, and until when (its
    // deadline); the row goes when the payout leaves or fees fall.
    "CREATE TABLE fee_holds (
         payment_id TEXT PRIMARY KEY REFERENCES payments (payment_id),
         waits_for_sat_kvb INTEGER NOT NULL,
         feerate_sat_kvb INTEGER NOT NULL,
         since INTEGER NOT NULL,
         until INTEGER NOT NULL
     ) STRICT;",
    // 16: speeding up stuck transactions. A single on-chain payout's transaction counts its
    // unconfirmed blocks from `payout_broadcasts.height`; the transactions a replacement (RBF)
    // took over are kept in `payout_replaced` (one of them may still be the one that confirms);
    // a child that pays for a stuck transaction (CPFP) is stored in `fee_children` before its
    // broadcast, and its fee is the treasury's (`fees:cpfp` in the ledger once it confirms).
    "CREATE TABLE payout_broadcasts (
         payment_id TEXT PRIMARY KEY REFERENCES payments (payment_id),
         height INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE payout_replaced (
         txid TEXT PRIMARY KEY,
         payment_id TEXT NOT NULL REFERENCES payments (payment_id),
         raw_tx BLOB NOT NULL,
         replaced_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX payout_replaced_by_payment ON payout_replaced (payment_id);
     CREATE TABLE fee_children (
         txid TEXT PRIMARY KEY,
         parent_txid TEXT NOT NULL,
         raw_tx BLOB NOT NULL,
         fee_sat INTEGER NOT NULL CHECK (fee_sat > 0),
         package_sat_kvb INTEGER NOT NULL,
         created_at INTEGER NOT NULL,
         abandoned_at INTEGER
     ) STRICT;",
    // 17: consolidation inside a batch: how many extra small coins a batch's transaction swept
    // in, and the part of its fee they cost (the treasury's, not the payouts'), also for each
    // transaction a replacement took over.
    "ALTER TABLE batches ADD COLUMN consolidated_inputs INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE batches ADD COLUMN consolidation_fee_sat INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE batch_replaced ADD COLUMN consolidation_fee_sat INTEGER NOT NULL DEFAULT 0;",
    // 18: the treasury policy an operator set at run time (`treasury.policy.set`; `[treasury]`
    // until then), and whether each rail took new payouts at the guard's last look (a crossing
    // of its reserve either way is one operator event).
    "CREATE TABLE treasury_policy (
         id INTEGER PRIMARY KEY CHECK (id = 1),
         config TEXT NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE TABLE treasury_rails (
         rail TEXT PRIMARY KEY,
         accepting INTEGER NOT NULL,
         since INTEGER NOT NULL
     ) STRICT;",
    // 19: the rebalancer's splices, written before the node is asked: `planned` (decided, the
    // node maybe asked), `started` (the node took it, or it waits for the treasury's funding),
    // then `confirmed`, `failed` or `abandoned`. At most one in flight per channel. Dry runs are
    // kept too (`dry_run` = 1, never in flight).
    "CREATE TABLE rebalance_splices (
         id INTEGER PRIMARY KEY,
         channel_id TEXT NOT NULL,
         kind TEXT NOT NULL CHECK (kind IN ('in', 'out')),
         amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
         fee_sat INTEGER NOT NULL CHECK (fee_sat >= 0),
         code TEXT NOT NULL,
         reason TEXT NOT NULL,
         state TEXT NOT NULL CHECK (state IN ('planned', 'started', 'confirmed', 'failed', 'abandoned')),
         funding_txid_before TEXT,
         txid TEXT,
         error TEXT,
         dry_run INTEGER NOT NULL DEFAULT 0,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX rebalance_splices_by_time ON rebalance_splices (created_at);
     CREATE UNIQUE INDEX rebalance_splices_one_in_flight ON rebalance_splices (channel_id)
         WHERE dry_run = 0 AND state IN ('planned', 'started');",
    // 20: invoices (receiving): one row per invoice, what was received against it.
    "CREATE TABLE invoices (
         invoice_id TEXT PRIMARY KEY,
         api_key_id TEXT NOT NULL,
         status TEXT NOT NULL CHECK (status IN ('new', 'processing', 'paid', 'underpaid', 'expired')),
         exception TEXT CHECK (exception IN ('underpaid', 'overpaid')),
         currency TEXT NOT NULL,
         amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
         amount_sat INTEGER NOT NULL CHECK (amount_sat > 0),
         fx_quote_id TEXT,
         rate TEXT,
         description TEXT NOT NULL,
         metadata TEXT,
         speed TEXT NOT NULL CHECK (speed IN ('high', 'medium', 'low')),
         address TEXT NOT NULL,
         bolt11 TEXT,
         payment_hash TEXT,
         received_msat INTEGER NOT NULL DEFAULT 0,
         paid_via TEXT,
         paid_at INTEGER,
         expires_at INTEGER NOT NULL,
         created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX invoices_by_key ON invoices (api_key_id, invoice_id);
     CREATE UNIQUE INDEX invoices_by_hash ON invoices (payment_hash) WHERE payment_hash IS NOT NULL;
     CREATE INDEX invoices_by_address ON invoices (address);
     CREATE TABLE invoice_receipts (
         outpoint TEXT PRIMARY KEY,
         invoice_id TEXT NOT NULL REFERENCES invoices (invoice_id),
         txid TEXT NOT NULL,
         amount_sat INTEGER NOT NULL,
         confirmation_height INTEGER,
         signals_rbf INTEGER NOT NULL DEFAULT 0,
         booked INTEGER NOT NULL DEFAULT 0,
         counted INTEGER NOT NULL DEFAULT 0,
         seen_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX invoice_receipts_by_txid ON invoice_receipts (txid);",
    // 21: refunds of invoices: each one a payout (`payments`), written in the transaction that
    // accepts it, so what an invoice may still refund is read from here and the payouts' states.
    "CREATE TABLE invoice_refunds (
         payment_id TEXT PRIMARY KEY REFERENCES payments (payment_id),
         invoice_id TEXT NOT NULL REFERENCES invoices (invoice_id),
         mode TEXT NOT NULL CHECK (mode IN ('rate_then', 'current_rate', 'amount')),
         created_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX invoice_refunds_by_invoice ON invoice_refunds (invoice_id);",
    // 22: payout limits per API key (`limits.rs`), and each key's payouts by time for the day's use.
    "CREATE TABLE api_key_limits (
         api_key_id TEXT PRIMARY KEY REFERENCES api_keys (id),
         currency TEXT NOT NULL,
         max_payout INTEGER CHECK (max_payout > 0),
         max_daily INTEGER CHECK (max_daily > 0),
         allowlist TEXT NOT NULL DEFAULT '',
         updated_at INTEGER NOT NULL
     ) STRICT;
     CREATE INDEX payments_by_key_time ON payments (api_key_id, created_at);",
    // 23: invoice detection: what an expired invoice received late (`paid_late`), how many times
    // a receipt was booked (a reorg reverses a booking; a re-mined payment is booked afresh under
    // a new reference) and whether it counted late; the watcher reads only the invoices that can
    // still receive or closed recently (by status, expiry and last change), not all of history.
    "ALTER TABLE invoices ADD COLUMN paid_late_msat INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE invoice_receipts ADD COLUMN bookings INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE invoice_receipts ADD COLUMN counted_late INTEGER NOT NULL DEFAULT 0;
     UPDATE invoice_receipts SET bookings = booked;
     CREATE INDEX invoices_by_status ON invoices (status);
     CREATE INDEX invoices_by_expiry ON invoices (expires_at);
     CREATE INDEX invoices_by_update ON invoices (updated_at);
     CREATE INDEX invoice_receipts_by_seen ON invoice_receipts (seen_at);
     CREATE INDEX invoice_receipts_by_invoice ON invoice_receipts (invoice_id);",
    // 24: the trace each submit or refund ran under, by its idempotency key (`trace.rs`): the saga
    // and the webhook sender continue it for the payout it made.
    "CREATE TABLE payment_traces (
         api_key_id TEXT NOT NULL,
         idem_key TEXT NOT NULL,
         trace_id TEXT NOT NULL,
         PRIMARY KEY (api_key_id, idem_key)
     ) STRICT;",
    // 25: the order the node's channel movements were seen in (SQLite's hidden row id until
    // now, which PostgreSQL has not), numbered by the writer.
    "ALTER TABLE ln_movements ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
     UPDATE ln_movements SET seq = rowid;",
    // 26: the feerates the batcher saw (the estimate for `high`'s target, a sample a block
    // interval at most), kept for its cheap window and at least a day and a block: a restart
    // keeps the recent low and yesterday's fall.
    "CREATE TABLE fee_samples (
         at INTEGER NOT NULL,
         sat_kvb INTEGER NOT NULL CHECK (sat_kvb >= 0),
         PRIMARY KEY (at)
     ) STRICT;",
    // 27: a batch's feerate to the sat/kvB, as bitcoind estimates it (`feerate_sat_vb` stays,
    // rounded up, for display); older batches were built at whole sat/vB.
    "ALTER TABLE batches ADD COLUMN feerate_sat_kvb INTEGER NOT NULL DEFAULT 0;
     UPDATE batches SET feerate_sat_kvb = feerate_sat_vb * 1000;
     ALTER TABLE batch_replaced ADD COLUMN feerate_sat_kvb INTEGER NOT NULL DEFAULT 0;
     UPDATE batch_replaced SET feerate_sat_kvb = feerate_sat_vb * 1000;",
    // 28: the feerate a payout's route quoted, to the sat/kvB as estimated (it was rounded up to
    // whole sat/vB, and a single payout paid that; `fee_rate_sat_vb` stays, rounded up).
    "ALTER TABLE payments ADD COLUMN fee_rate_sat_kvb INTEGER;
     UPDATE payments SET fee_rate_sat_kvb = fee_rate_sat_vb * 1000;",
    // 29: when a child paying for a stuck transaction was seen buried (confirmed deep enough
    // that a reorg is not expected to undo it): done with, no longer read on every spend.
    "ALTER TABLE fee_children ADD COLUMN buried_at INTEGER;",
    // 30: when a single payout's hold was released (fees fell or its deadline came). The row
    // stays until the payout is built and stored, so an attempt after a failure or a crash still
    // knows it waited, and pays what its target needs then, not the feerate its route quoted.
    "ALTER TABLE fee_holds ADD COLUMN released_at INTEGER;",
];

/// Applies the migrations this file has not seen yet; refuses a file from a newer Sendero.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
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
            return Err(StoreError::from(rusqlite::Error::SqliteFailure(code, Some(message))));
        }
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::debug!(version = i + 1, "store migration applied");
    }
    conn.pragma_update(None, "foreign_keys", true)?;
    if version < MIGRATIONS.len() {
        tracing::info!(from = version, to = MIGRATIONS.len(), "store migrated");
    }
    Ok(())
}
