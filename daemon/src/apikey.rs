//! API keys: scoped credentials for the public API. The secret is shown once at creation and
//! stored only as its SHA-256; an invoice-only key can never move funds.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use sendero_wallet::bitcoin::hashes::{sha256, Hash};

use crate::store::sql::{params, OptionalExtension};

use crate::store::{Store, StoreError};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Read status and history.
    Read,
    /// Ask for FX quotes.
    Quote,
    /// Create invoices.
    Invoice,
    /// Move funds (execute, submit payments).
    Pay,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Quote, Scope::Invoice, Scope::Pay];

    /// `read`, `quote`, `invoice`, `pay`.
    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text.trim())
    }

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Quote => "quote",
            Scope::Invoice => "invoice",
            Scope::Pay => "pay",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An active API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `ak_…`.
    pub id: String,
    /// Operator's label.
    pub label: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
}

impl ApiKey {
    /// Whether the key carries `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

fn digest(secret: &str) -> String {
    sha256::Hash::hash(secret.as_bytes()).to_string()
}

fn scopes_of(row: &ApiKeyRow) -> Vec<Scope> {
    row.scopes.split(',').filter_map(Scope::parse).collect()
}

/// The API keys: stored in the store, looked up through a cache (a key is read from SQLite once;
/// any revocation clears the cache). On PostgreSQL another process may revoke a key: a cached
/// key is read again after [`SHARED_CACHE_TTL`].
pub struct ApiKeys {
    store: Arc<Store>,
    cache: RwLock<HashMap<String, (ApiKeyRow, std::time::Instant)>>,
    /// How long a cached key is trusted; `None`: until this process revokes one.
    ttl: Option<std::time::Duration>,
}

/// How long a front end of a PostgreSQL store keeps serving a key another process revoked.
pub const SHARED_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl ApiKeys {
    /// The keys of `store`.
    pub fn new(store: Arc<Store>) -> ApiKeys {
        let ttl = store.is_postgres().then_some(SHARED_CACHE_TTL);
        ApiKeys { store, cache: RwLock::default(), ttl }
    }

    /// Creates a key; returns it with its secret (shown once).
    pub fn create(&self, label: &str, scopes: &[Scope], now: u64) -> Result<(ApiKey, String), StoreError> {
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let id = format!("ak_{}", crate::secret::random_hex(8));
        let secret = format!("sk_{}", crate::secret::random_hex(32));
        let joined = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let row =
            ApiKeyRow { id: id.clone(), label: label.to_owned(), scopes: joined, created_at: now, revoked_at: None };
        self.store.insert_api_key(&row, &digest(&secret))?;
        Ok((ApiKey { id, label: label.to_owned(), scopes }, secret))
    }

    /// The active key with this secret, if any.
    pub fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        let digest = digest(secret);
        let cached = self.cache.read().unwrap_or_else(PoisonError::into_inner).get(&digest).cloned();
        let fresh = |at: std::time::Instant| self.ttl.is_none_or(|ttl| at.elapsed() < ttl);
        let row = match cached {
            Some((row, at)) if fresh(at) => Some(row),
            _ => {
                let row = self.store.api_key_by_hash(&digest)?;
                if let Some(row) = &row {
                    let entry = (row.clone(), std::time::Instant::now());
                    self.cache.write().unwrap_or_else(PoisonError::into_inner).insert(digest, entry);
                }
                row
            }
        };
        Ok(row.filter(|row| row.revoked_at.is_none()).map(|row| ApiKey {
            scopes: scopes_of(&row),
            id: row.id,
            label: row.label,
        }))
    }

    /// Every key, oldest first.
    pub fn list(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        self.store.api_keys()
    }

    /// Revokes a key; false when there is no such active key.
    pub fn revoke(&self, id: &str, now: u64) -> Result<bool, StoreError> {
        let revoked = self.store.revoke_api_key(id, now)?;
        self.cache.write().unwrap_or_else(PoisonError::into_inner).clear();
        Ok(revoked)
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

impl Store {
    /// Stores a new API key.
    pub fn insert_api_key(&self, row: &ApiKeyRow, secret_sha256: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO api_keys (id, label, scopes, secret_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.id, row.label, row.scopes, secret_sha256, row.created_at as i64],
        )?;
        Ok(())
    }

    /// The key whose secret hashes to `secret_sha256`.
    pub fn api_key_by_hash(&self, secret_sha256: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        // On the reader: a request's authentication never waits behind a writer's transaction.
        let row = self
            .read()
            .query_row(
                "SELECT id, label, scopes, created_at, revoked_at FROM api_keys WHERE secret_sha256 = ?1",
                [secret_sha256],
                api_key_row,
            )
            .optional()?;
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
        Ok(changed == 1)
    }
}

fn api_key_row(r: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: r.get(0)?,
        label: r.get(1)?,
        scopes: r.get(2)?,
        created_at: r.get::<_, i64>(3)? as u64,
        revoked_at: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_authenticate_until_revoked_and_keep_their_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let keys = ApiKeys::new(Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap()));
        let (key, secret) = keys.create("shop", &[Scope::Pay, Scope::Quote, Scope::Pay], 1).unwrap();
        assert_eq!(key.scopes, vec![Scope::Quote, Scope::Pay]);
        let found = keys.authenticate(&secret).unwrap().unwrap();
        assert!(found.allows(Scope::Pay) && !found.allows(Scope::Invoice));
        assert_eq!(keys.authenticate("sk_wrong").unwrap(), None);
        assert!(keys.revoke(&key.id, 2).unwrap());
        assert!(!keys.revoke(&key.id, 3).unwrap());
        assert_eq!(keys.authenticate(&secret).unwrap(), None);
        // Only the digest is stored.
        let conn = rusqlite::Connection::open(dir.path().join("s.sqlite")).unwrap();
        let stored: String = conn.query_row("SELECT secret_sha256 FROM api_keys", [], |r| r.get(0)).unwrap();
        assert_ne!(stored, secret);
        assert_eq!(stored.len(), 64);
    }
}
