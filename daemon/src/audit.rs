//! The audit log: append-only and hash-chained. Every change of policy — routing rules, API keys,
//! and the markups and limits of the config (audited at start when they differ from the last
//! run's) — and every operator's action that moves money (before it acts: [`requested`]) goes
//! through [`record`] and appends an entry whose hash covers the previous entry's hash, so
//! editing or removing any entry breaks every hash after it; SQLite triggers refuse UPDATE and
//! DELETE on the table outright. `audit.verify` recomputes the chain.

use crate::store::sql::{params, OptionalExtension};
use sendero_wallet::bitcoin::hashes::{sha256, Hash, HashEngine};
use serde::Serialize;
use serde_json::Value;

use crate::store::{Store, StoreError};

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// 1, 2, 3, …
    pub seq: i64,
    /// Unix seconds.
    pub at: u64,
    /// Who: `admin` (the operator through the admin RPC) or `system`.
    pub actor: String,
    /// What, e.g. `routing.pin`.
    pub action: String,
    /// The change's details.
    pub details: Value,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// What `audit.verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The whole chain holds.
    pub ok: bool,
    /// Entries checked.
    pub entries: u64,
    /// The first entry whose hash or link does not hold.
    pub broken_at: Option<i64>,
    /// The last hash (commit to it elsewhere to detect truncation).
    pub head: String,
}

/// Meta key: the config policy last audited.
const POLICY: &str = "audit.config_policy";

/// Appends `action` by `actor` with `details` and logs it: the one way a change is audited.
pub fn record(store: &Store, actor: &str, action: &str, details: &Value) -> Result<Entry, StoreError> {
    let entry = store.audit(actor, action, details, crate::unix_now())?;
    tracing::info!(actor, action, %details, audit_seq = entry.seq, "audited change");
    Ok(entry)
}

/// An operator's action that moves money is audited twice: `{action}.requested` with what was
/// asked, appended once the request is valid and before anything irreversible (so an action a
/// kill cuts short is still on record, as asked), then `action` with its outcome and the
/// request's `request_seq` ([`outcome`]), or its refusal. A request refused before then appends
/// neither.
pub fn requested(store: &Store, actor: &str, action: &str, asked: &Value) -> Result<Entry, StoreError> {
    record(store, actor, &format!("{action}.requested"), asked)
}

/// The outcome of an action audited as [`requested`] in entry `request`.
pub fn outcome(store: &Store, actor: &str, action: &str, request: i64, outcome: &Value) -> Result<Entry, StoreError> {
    let mut details = outcome.clone();
    if let Some(map) = details.as_object_mut() {
        map.insert("request_seq".into(), Value::from(request));
    }
    record(store, actor, action, &details)
}

/// Audits the policy the config sets (markups, FX and fee limits, routing bounds) when it
/// differs from the one the last run started with: `config.policy` with `before` and `after`.
pub fn config_policy(store: &Store, policy: &Value) -> Result<Option<Entry>, StoreError> {
    let text = policy.to_string();
    let before = store.meta(POLICY)?;
    if before.as_deref() == Some(text.as_str()) {
        return Ok(None);
    }
    let before: Value = before.and_then(|b| serde_json::from_str(&b).ok()).unwrap_or(Value::Null);
    let entry = record(store, "config", "config.policy", &serde_json::json!({ "before": before, "after": policy }))?;
    store.set_meta(POLICY, &text)?;
    Ok(Some(entry))
}

fn entry_hash(prev: &str, seq: i64, at: u64, actor: &str, action: &str, details: &str) -> String {
    let mut e = sha256::Hash::engine();
    for part in [prev, &seq.to_string(), &at.to_string(), actor, action, details] {
        e.input(&(part.len() as u64).to_be_bytes());
        e.input(part.as_bytes());
    }
    sha256::Hash::from_engine(e).to_string()
}

impl Store {
    /// Appends an entry; returns it.
    pub fn audit(&self, actor: &str, action: &str, details: &Value, now: u64) -> Result<Entry, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (seq, prev): (i64, String) = tx
            .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .map_or((1, GENESIS.to_owned()), |(s, h): (i64, String)| (s + 1, h));
        let text = details.to_string();
        let hash = entry_hash(&prev, seq, now, actor, action, &text);
        tx.execute(
            "INSERT INTO audit_log (seq, at, actor, action, details, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![seq, now as i64, actor, action, text, prev, hash],
        )?;
        tx.commit()?;
        Ok(Entry {
            seq,
            at: now,
            actor: actor.into(),
            action: action.into(),
            details: details.clone(),
            prev_hash: prev,
            hash,
        })
    }

    /// Entries after `after_seq`, oldest first, at most `limit`.
    pub fn audit_list(&self, after_seq: i64, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, at, actor, action, details, prev_hash, hash FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
            let details: String = r.get(4)?;
            Ok(Entry {
                seq: r.get(0)?,
                at: r.get::<_, i64>(1)? as u64,
                actor: r.get(2)?,
                action: r.get(3)?,
                details: serde_json::from_str(&details).unwrap_or(Value::String(details)),
                prev_hash: r.get(5)?,
                hash: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Recomputes the chain from the first entry.
    pub fn audit_verify(&self) -> Result<Verified, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT seq, at, actor, action, details, prev_hash, hash FROM audit_log ORDER BY seq")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })?;
        let (mut prev, mut expected_seq, mut entries) = (GENESIS.to_owned(), 1_i64, 0_u64);
        for row in rows {
            let (seq, at, actor, action, details, prev_hash, hash): (i64, i64, String, String, String, String, String) =
                row?;
            let holds = seq == expected_seq
                && prev_hash == prev
                && hash == entry_hash(&prev, seq, at as u64, &actor, &action, &details);
            if !holds {
                return Ok(Verified { ok: false, entries, broken_at: Some(seq), head: prev });
            }
            entries += 1;
            expected_seq += 1;
            prev = hash;
        }
        Ok(Verified { ok: true, entries, broken_at: None, head: prev })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_chain_detects_edits_and_the_table_refuses_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.audit_verify().unwrap(),
            Verified { ok: true, entries: 0, broken_at: None, head: GENESIS.into() }
        );
        let first = store.audit("admin", "routing.pin", &json!({"rail": "onchain"}), 10).unwrap();
        let second = store.audit("admin", "routing.unpin", &json!({}), 11).unwrap();
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS));
        assert_eq!(second.prev_hash, first.hash);
        let v = store.audit_verify().unwrap();
        assert_eq!((v.ok, v.entries, v.head.as_str()), (true, 2, second.hash.as_str()));
        assert_eq!(store.audit_list(1, 10).unwrap(), vec![second]);
        // The table refuses edits and deletions.
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert!(conn.execute("UPDATE audit_log SET details = '{}' WHERE seq = 1", []).is_err());
        assert!(conn.execute("DELETE FROM audit_log WHERE seq = 2", []).is_err());
        // Someone who drops the triggers to edit an entry still breaks the chain.
        conn.execute_batch(
            "DROP TRIGGER audit_log_no_update; UPDATE audit_log SET details = '{\"rail\":\"lightning\"}' WHERE seq = 1",
        )
        .unwrap();
        let v = store.audit_verify().unwrap();
        assert_eq!((v.ok, v.broken_at), (false, Some(1)));
    }
}
