//! Sendero's own store: SQLite (`sendero.sqlite` in the data dir, the default) or PostgreSQL
//! (`[store] url`), through [`sql`]. The connections (one writer, one reader, on SQLite a
//! checkpointer), the schema's migrations (`migrations`), idempotency keys (`idempotency`) and
//! a write-behind buffer. Nothing else: each noun keeps its rows and queries beside its own
//! code, in `impl Store` blocks there.

mod idempotency;
mod migrations;
mod node_lock;
mod pg_migrations;
pub mod sql;

pub use node_lock::{NodeLock, NODE_LOCK_POLL};

pub use idempotency::IdemBegin;

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sql::{params, Connection, OptionalExtension};

/// Prepared statements kept per connection: every statement of the hot paths (submit, saga,
/// webhooks, quotes) is parsed once.
const STATEMENT_CACHE: usize = 64;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused.
    #[error("store: {0}")]
    Sql(#[from] sql::Error),
    /// The file was written by a newer Sendero.
    #[error("store schema version {found} is newer than this senderod knows ({known}); upgrade senderod")]
    TooNew {
        /// Version in the file.
        found: usize,
        /// Newest version this build knows.
        known: usize,
    },
    /// The database file could not be created.
    #[error("store: creating the database file: {0}")]
    Io(std::io::Error),
    /// This node's PostgreSQL session ended, and the node lock with it: another node may be
    /// taking over, so this one must stop.
    #[error("store: the node lock was lost (the PostgreSQL session holding it ended); stopping so that one node runs")]
    NodeLockLost,
    /// The checkpointer thread could not be started.
    #[error("store: starting the checkpointer: {0}")]
    Thread(std::io::Error),
}

impl StoreError {
    /// The disk holding the store is full: SQLite's `SQLITE_FULL`, or `ENOSPC` from a file the
    /// store writes. It clears once space is freed, with nothing half-written.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Sql(e) => e.is_disk_full(),
            StoreError::Io(e) => is_enospc(e),
            StoreError::Thread(_) | StoreError::TooNew { .. } | StoreError::NodeLockLost => false,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sql(sql::Error::Sqlite(e))
    }
}

/// `ENOSPC` (or its portable kind): no space left on the device.
pub fn is_enospc(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
}

/// Buffered writes committed per transaction by [`Store::flush_deferred`].
const FLUSH_CHUNK: usize = 256;

/// Rows of one statement inserted by one multi-row `INSERT` at a flush (12 columns: 768
/// parameters, well under both engines' limits).
const ROWS_PER_INSERT: usize = 64;

/// A row that may wait for the next flush (see [`Store::defer`]), inserted where no other write
/// reads or changes it (the flush takes no write lock on PostgreSQL): `sql` inserts one row,
/// `INSERT INTO t (a, b, …) VALUES (?1, ?2, …) [ON CONFLICT …]`, with `values`. Rows of the same
/// statement are written many per `INSERT` (its `VALUES` tuple repeated and renumbered).
pub struct DeferredRow {
    /// The one-row statement.
    pub sql: &'static str,
    /// Its parameters, in order.
    pub values: Vec<sql::Value>,
}

/// The store. Writes are serialised through one connection. Writes that move no money (quotes)
/// can be buffered and written in batches ([`Store::defer`], [`Store::flush_deferred`]).
pub struct Store {
    conn: Mutex<Connection>,
    /// A second, read-only connection for the hot reads (idempotency keys, routes, payments):
    /// under WAL it reads the last committed state while the writer is busy committing.
    reader: Mutex<Connection>,
    /// Writes waiting for the next flush.
    deferred: Mutex<Vec<DeferredRow>>,
    /// Rows of one statement a flush inserts with one `INSERT` ([`ROWS_PER_INSERT`]).
    rows_per_insert: std::sync::atomic::AtomicUsize,
    /// Idempotency keys of requests in flight: `(key id, idempotency key)` → (fingerprint, since).
    claims: Mutex<std::collections::HashMap<(String, String), (String, u64)>>,
    /// Tells the checkpointer thread to stop (see [`checkpointer`]); SQLite only.
    checkpoints: Arc<(Mutex<bool>, Condvar)>,
}

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database, by its URL (`postgres://user@host:port/db`).
    Postgres(String),
}

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// WAL pages after which the writer checkpoints by itself, should the checkpointer fall behind.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;

/// Copies the WAL back into the database file every [`CHECKPOINT_EVERY`] on a connection of its
/// own, so that commits only append to the WAL: a passive checkpoint runs beside the writer and
/// readers, and the writer starts the WAL over once it has been copied.
fn checkpointer(path: &Path, stop: Arc<(Mutex<bool>, Condvar)>) -> Result<(), StoreError> {
    let conn = rusqlite::Connection::open(path)?;
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
    /// Opens (creating if needed) and migrates the store at `location`.
    pub fn open_at(location: &StoreLocation) -> Result<Store, StoreError> {
        match location {
            StoreLocation::Sqlite(path) => Store::open(path),
            StoreLocation::Postgres(url) => Store::open_postgres(url),
        }
    }

    /// Opens and migrates the store in the PostgreSQL database at `url`.
    pub fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let mut conn = Connection::postgres(url, true)?;
        pg_migrations::migrate(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            reader: Mutex::new(Connection::postgres(url, false)?),
            deferred: Mutex::new(Vec::new()),
            rows_per_insert: ROWS_PER_INSERT.into(),
            claims: Default::default(),
            checkpoints: Arc::new((Mutex::new(true), Condvar::new())),
        })
    }

    /// Whether `sql` prepares on this store (the tests check every statement of the source on
    /// PostgreSQL with it).
    pub fn check_statement(&self, sql: &str) -> Result<(), StoreError> {
        self.conn().prepare(sql)?;
        Ok(())
    }

    /// Whether the store is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.conn().is_postgres()
    }

    /// Opens (creating if needed) and migrates the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // Created readable by its owner only (it holds webhook secrets); SQLite gives its WAL
        // files the database file's mode.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
            if let Err(e) = created.map(drop) {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    return Err(StoreError::Io(e));
                }
            }
        }
        let mut conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The copies of pages a savepoint may roll back (one savepoint per payment of a group
        // commit) stay in memory instead of going through a temporary file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        migrations::migrate(&mut conn)?;
        let reader = rusqlite::Connection::open(path)?;
        reader.pragma_update(None, "query_only", true)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        reader.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let checkpoints = Arc::new((Mutex::new(false), Condvar::new()));
        checkpointer(path, Arc::clone(&checkpoints))?;
        Ok(Store {
            conn: Mutex::new(Connection::sqlite(conn)),
            reader: Mutex::new(Connection::sqlite(reader)),
            deferred: Mutex::new(Vec::new()),
            rows_per_insert: ROWS_PER_INSERT.into(),
            claims: Default::default(),
            checkpoints,
        })
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

    /// Buffers `row` until the next [`Store::flush_deferred`] — for rows that move no money (a
    /// crash may lose the last few milliseconds of them, never a payment or a fill).
    pub fn defer(&self, row: DeferredRow) {
        self.deferred.lock().unwrap_or_else(PoisonError::into_inner).push(row);
    }

    /// Sets how many rows of one statement a flush inserts with one `INSERT` (64 unless set; 1 is
    /// one statement per row, the baseline `benches/write_behind.rs` measures against).
    pub fn set_rows_per_insert(&self, rows: usize) {
        self.rows_per_insert.store(rows.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether writes wait in the buffer.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.lock().unwrap_or_else(PoisonError::into_inner).is_empty()
    }

    /// Writes every buffered write in one transaction; returns how many. Every read of what
    /// they write flushes first.
    pub fn flush_deferred(&self) -> Result<usize, StoreError> {
        let (mut written, per_insert) = (0, self.rows_per_insert.load(std::sync::atomic::Ordering::Relaxed));
        loop {
            // The writer first: a chunk under way elsewhere (the background writer) has committed
            // before this one takes the next, so a caller that flushes to read what it just wrote
            // always finds it. One chunk per transaction: other writers (and, on PostgreSQL, other
            // processes) take the write lock between chunks instead of waiting out a backlog.
            let mut conn = self.conn();
            let chunk: Vec<DeferredRow> = {
                let mut deferred = self.deferred.lock().unwrap_or_else(PoisonError::into_inner);
                let n = deferred.len().min(FLUSH_CHUNK);
                deferred.drain(..n).collect()
            };
            if chunk.is_empty() {
                return Ok(written);
            }
            written += chunk.len();
            // Rows written behind are inserts nothing else writes: no write lock on PostgreSQL.
            let tx = conn.commuting_transaction()?;
            for rows in chunk.chunk_by(|a, b| a.sql == b.sql) {
                for rows in rows.chunks(per_insert) {
                    insert_rows(&tx, rows)?;
                }
            }
            tx.commit()?;
        }
    }
}

/// Inserts `rows` (all of one statement) with one statement.
fn insert_rows(tx: &sql::Transaction<'_>, rows: &[DeferredRow]) -> Result<(), StoreError> {
    let Some(first) = rows.first() else { return Ok(()) };
    let width = first.values.len();
    let text = multi_row(first.sql, width, rows.len()).ok_or_else(|| {
        sql::Error::Statement(format!("a deferred row's statement has no VALUES tuple: {}", first.sql))
    })?;
    let values: Vec<&dyn sql::ToSql> =
        rows.iter().flat_map(|r| r.values.iter().map(|v| v as &dyn sql::ToSql)).collect();
    tx.prepare_cached(&text)?.execute(values.as_slice())?;
    Ok(())
}

/// `sql` (one `VALUES (?1, …, ?width)` tuple) inserting `rows` rows: the tuple repeated,
/// renumbered; `None` when it has no such tuple.
fn multi_row(sql: &str, width: usize, rows: usize) -> Option<String> {
    let open = sql.find("VALUES (")? + "VALUES ".len();
    let close = open + sql[open..].find(')')?;
    let tuple = |row: usize| {
        let numbers: Vec<String> = (1..=width).map(|i| format!("?{}", row * width + i)).collect();
        format!("({})", numbers.join(", "))
    };
    let tuples: Vec<String> = (0..rows).map(tuple).collect();
    Some(format!("{}{}{}", &sql[..open], tuples.join(", "), &sql[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_values_tuple_repeats_renumbered() {
        let one = "INSERT INTO t (a, b) VALUES (?1, ?2) ON CONFLICT DO NOTHING";
        assert_eq!(multi_row(one, 2, 1).as_deref(), Some(one));
        assert_eq!(
            multi_row(one, 2, 3).as_deref(),
            Some("INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4), (?5, ?6) ON CONFLICT DO NOTHING")
        );
        assert_eq!(multi_row("DELETE FROM t", 0, 2), None);
    }

    #[test]
    fn deferred_rows_are_written_many_per_insert_and_all_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        store.conn().execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)").unwrap();
        const INSERT: &str = "INSERT INTO t (a, b) VALUES (?1, ?2) ON CONFLICT DO NOTHING";
        // 300 rows, one of them twice (the conflict clause keeps the first).
        for a in (0..300).chain([7]) {
            let values = vec![sql::Value::Integer(a), sql::Value::Text(format!("row {a}"))];
            store.defer(DeferredRow { sql: INSERT, values });
        }
        assert_eq!(store.flush_deferred().unwrap(), 301);
        assert!(!store.has_deferred());
        let conn = store.read();
        let (n, sum): (i64, i64) =
            conn.query_row("SELECT COUNT(*), SUM(a) FROM t", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((n, sum), (300, (0..300).sum::<i64>()));
        let b: String = conn.query_row("SELECT b FROM t WHERE a = 299", [], |r| r.get(0)).unwrap();
        assert_eq!(b, "row 299");
    }

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
            let conn = rusqlite::Connection::open_with_flags(&uri, flags).unwrap();
            // Before the first checkpoint even the tables are only in the WAL.
            conn.query_row("SELECT value FROM meta WHERE key = 'checkpointed'", [], |r| r.get::<_, String>(0)).ok()
        };
        let deadline = std::time::Instant::now() + CHECKPOINT_EVERY * 10;
        while in_file().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(CHECKPOINT_EVERY / 4);
        }
        assert_eq!(in_file().as_deref(), Some("yes"), "the checkpointer copied the commit into the file");
        // The writer itself only checkpoints far beyond that.
        let conn = store.conn();
        let pages: i64 = conn.as_sqlite().unwrap().query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(pages, WRITER_CHECKPOINT_PAGES);
    }

    /// A payout priced in whole sat/vB before migration 28 keeps its feerate, in sat/kvB; so does
    /// one a gateway of the release before stores afterwards (sharing the store, not upgraded yet).
    #[test]
    fn a_payout_stored_in_whole_sat_per_vb_reads_in_sat_per_kvb() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for sql in &migrations::MIGRATIONS[..27] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(
                "INSERT INTO api_keys (id, label, scopes, secret_sha256, created_at) VALUES ('key_1', 'k', 'pay', 'h', 1);
                 INSERT INTO routes (route_id, api_key_id, destination, kind, currency, amount_minor, amount_sat,
                     amount_msat, priority, candidates, created_at, expires_at)
                 VALUES ('rt_1', 'key_1', 'bcrt1q', 'onchain', 'SAT', 1, 1, 1000, 'normal', '[]', 1, 2);
                 INSERT INTO payments (payment_id, api_key_id, idem_key, route_id, rail, destination, amount_msat,
                     currency, amount_minor, fee_reserve_msat, fee_rate_sat_vb, state, created_at, updated_at)
                 VALUES ('pay_1', 'key_1', 'i', 'rt_1', 'onchain', 'bcrt1q', 1000, 'SAT', 1, 0, 7, 'debited', 1, 1);
                 PRAGMA user_version = 27;",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.payment("pay_1").unwrap().and_then(|p| p.fee_rate_sat_kvb), Some(7_000));
        store.conn().execute_batch("UPDATE payments SET fee_rate_sat_kvb = NULL, fee_rate_sat_vb = 9").unwrap();
        assert_eq!(store.payment("pay_1").unwrap().and_then(|p| p.fee_rate_sat_kvb), Some(9_000));
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(Store::open(&path), Err(StoreError::TooNew { found: 99, .. })));
    }
}
