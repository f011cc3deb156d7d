//! The schema on PostgreSQL: the same numbered migrations as SQLite's ([`MIGRATIONS`]), counted
//! in the table `sendero_schema`, each applied in one transaction under the store's write lock.
//! PostgreSQL applies them through [`dialect`] (its column types), except where SQLite rebuilds a
//! table to change it or uses its own trigger syntax ([`POSTGRES_FORMS`]: the same change, in
//! PostgreSQL's words).

use super::migrations::MIGRATIONS;
use super::sql::{self, dialect};
use super::StoreError;

/// Where PostgreSQL's form of a migration differs from SQLite's: by number, the span of SQLite's
/// text it replaces (from the first marker to the second, or to the end) and what replaces it.
/// Everything else of the migration is SQLite's text through [`dialect`].
const POSTGRES_FORMS: &[(usize, &str, Option<&str>, &str)] = &[
    // The audit log refuses changes: PostgreSQL's triggers call a function.
    (
        7,
        "CREATE TRIGGER audit_log_no_update",
        None,
        "CREATE FUNCTION sendero_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS
             'BEGIN RAISE EXCEPTION ''the audit log is append-only''; END';
         CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
             FOR EACH ROW EXECUTE FUNCTION sendero_audit_log_append_only();
         CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
             FOR EACH ROW EXECUTE FUNCTION sendero_audit_log_append_only();",
    ),
    // The outbox's payment becomes optional (SQLite rebuilds the table for it).
    (12, "CREATE TABLE outbox_new", None, "ALTER TABLE outbox ALTER COLUMN payment_id DROP NOT NULL;"),
    // The rail `onchain_batch` (SQLite rebuilds `payments` for the new CHECK).
    (
        13,
        "CREATE TABLE payments_new",
        Some("CREATE INDEX payments_queued"),
        "ALTER TABLE payments DROP CONSTRAINT payments_rail_check;
         ALTER TABLE payments ADD CONSTRAINT payments_rail_check
             CHECK (rail IN ('onchain', 'onchain_batch', 'lightning', 'on_us'));
         ",
    ),
    // A PostgreSQL store has no movement yet here (SQLite numbers its rows by their row id).
    (25, "UPDATE ln_movements", None, ""),
];

/// Migration `number` as PostgreSQL applies it.
fn postgres_form(number: usize, sqlite: &str) -> Result<String, StoreError> {
    let Some((_, from, to, replacement)) = POSTGRES_FORMS.iter().find(|f| f.0 == number) else {
        return Ok(dialect::postgres(sqlite));
    };
    let missing = |marker: &str| {
        StoreError::Sql(sql::Error::Statement(format!("migration {number}: {marker:?} not found in SQLite's text")))
    };
    let start = sqlite.find(from).ok_or_else(|| missing(from))?;
    let rest = match to {
        Some(to) => &sqlite[sqlite[start..].find(to).map(|n| start + n).ok_or_else(|| missing(to))?..],
        None => "",
    };
    Ok(format!("{}{replacement}{}", dialect::postgres(&sqlite[..start]), dialect::postgres(rest)))
}

/// Applies the migrations the PostgreSQL database has not seen yet, each in one transaction
/// under the store's write lock (so two gateways starting together migrate once); refuses a
/// database of a newer Sendero.
pub(super) fn migrate(conn: &mut sql::Connection) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute_batch("CREATE TABLE IF NOT EXISTS sendero_schema (version BIGINT NOT NULL)")?;
    let version: Option<usize> =
        sql::OptionalExtension::optional(tx.query_row("SELECT version FROM sendero_schema", [], |r| r.get(0)))?;
    if version.is_none() {
        tx.execute("INSERT INTO sendero_schema (version) VALUES (0)", [])?;
    }
    tx.commit()?;
    let mut from = None;
    loop {
        let tx = conn.transaction()?;
        let version: usize = tx.query_row("SELECT version FROM sendero_schema", [], |r| r.get(0))?;
        if version > MIGRATIONS.len() {
            return Err(StoreError::TooNew { found: version, known: MIGRATIONS.len() });
        }
        let Some(sqlite) = MIGRATIONS.get(version) else {
            if let Some(from) = from {
                tracing::info!(from, to = version, "store migrated (PostgreSQL)");
            }
            return Ok(());
        };
        from.get_or_insert(version);
        tx.execute_batch(&postgres_form(version + 1, sqlite)?)?;
        tx.execute("UPDATE sendero_schema SET version = ?1", [version + 1])?;
        tx.commit()?;
        tracing::debug!(version = version + 1, "store migration applied (PostgreSQL)");
    }
}
