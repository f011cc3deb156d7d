//! API keys: scoped credentials for the public API. The secret is shown once at creation and
//! stored only as its SHA-256; an invoice-only key can never move funds.

use std::fmt;

use sendero_wallet::bitcoin::hashes::{sha256, Hash};

use crate::store::{ApiKeyRow, Store, StoreError};

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

/// Creates a key; returns it with its secret (shown once).
pub fn create(store: &Store, label: &str, scopes: &[Scope], now: u64) -> Result<(ApiKey, String), StoreError> {
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    let id = format!("ak_{}", crate::secret::random_hex(8));
    let secret = format!("sk_{}", crate::secret::random_hex(32));
    let joined = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
    let row = ApiKeyRow { id: id.clone(), label: label.to_owned(), scopes: joined, created_at: now, revoked_at: None };
    store.insert_api_key(&row, &digest(&secret))?;
    Ok((ApiKey { id, label: label.to_owned(), scopes }, secret))
}

/// The active key with this secret, if any.
pub fn authenticate(store: &Store, secret: &str) -> Result<Option<ApiKey>, StoreError> {
    Ok(store.api_key_by_hash(&digest(secret))?.filter(|row| row.revoked_at.is_none()).map(|row| ApiKey {
        scopes: scopes_of(&row),
        id: row.id,
        label: row.label,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_authenticate_until_revoked_and_keep_their_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let (key, secret) = create(&store, "shop", &[Scope::Pay, Scope::Quote, Scope::Pay], 1).unwrap();
        assert_eq!(key.scopes, vec![Scope::Quote, Scope::Pay]);
        let found = authenticate(&store, &secret).unwrap().unwrap();
        assert!(found.allows(Scope::Pay) && !found.allows(Scope::Invoice));
        assert_eq!(authenticate(&store, "sk_wrong").unwrap(), None);
        assert!(store.revoke_api_key(&key.id, 2).unwrap());
        assert!(!store.revoke_api_key(&key.id, 3).unwrap());
        assert_eq!(authenticate(&store, &secret).unwrap(), None);
        // Only the digest is stored.
        let conn = rusqlite::Connection::open(dir.path().join("s.sqlite")).unwrap();
        let stored: String = conn.query_row("SELECT secret_sha256 FROM api_keys", [], |r| r.get(0)).unwrap();
        assert_ne!(stored, secret);
        assert_eq!(stored.len(), 64);
    }
}
