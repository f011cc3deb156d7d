//! Sendero's own SQLite store (`sendero.sqlite` in the data dir): schema under
//! `PRAGMA user_version` with numbered migrations, each applied in one transaction.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

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
];

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

/// The store. Writes are serialised through one connection.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut conn)?;
        Ok(Store { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fact about this data dir.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn().query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional()?)
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

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StoreError::TooNew { found: version, known: MIGRATIONS.len() });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store migrated");
    }
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
