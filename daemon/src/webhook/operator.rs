//! The operator's webhook endpoint: `[webhooks] operator_url` receives every operator event
//! (`channel.closed_unexpectedly`, `treasury.low`, `treasury.recovered`) whatever API keys exist.
//! It belongs to no client: it is kept under a reserved key id (`operator`) that is revoked from
//! birth and can never authenticate, and its signing secret is written once to
//! `<datadir>/operator-webhook.secret` (mode 0600) for the operator's receiver to check
//! signatures with. Without `operator_url` the endpoint, if it existed, is disabled.

use std::path::Path;

use crate::store::sql::params;

use super::guard::Guard;
use super::{checked_url, new_secret, WebhookError, OPERATOR_EVENTS};
use crate::store::{Store, StoreError};

/// The operator endpoint's id.
pub const OPERATOR_ENDPOINT: &str = "we_operator";
/// The reserved key id it is kept under.
const OPERATOR_KEY: &str = "operator";

impl Store {
    fn upsert_operator_endpoint(&self, url: &str, secret: &str, now: u64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO api_keys (id, label, scopes, secret_sha256, created_at, revoked_at)
             VALUES (?1, 'operator webhooks (not a client key; never authenticates)', '', ?2, ?3, ?3)
             ON CONFLICT (id) DO NOTHING",
            params![OPERATOR_KEY, format!("operator:{}", crate::secret::random_hex(32)), now as i64],
        )?;
        tx.execute(
            "INSERT INTO webhook_endpoints (endpoint_id, api_key_id, url, secret, events, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'enabled', ?6, ?6)
             ON CONFLICT (endpoint_id) DO UPDATE SET url = excluded.url, secret = excluded.secret,
               events = excluded.events, state = 'enabled', disabled_reason = NULL, updated_at = excluded.updated_at",
            params![OPERATOR_ENDPOINT, OPERATOR_KEY, url, secret, OPERATOR_EVENTS.join(","), now as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn disable_operator_endpoint(&self, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE webhook_endpoints SET state = 'disabled', disabled_reason = 'no [webhooks] operator_url', updated_at = ?2
             WHERE endpoint_id = ?1 AND state = 'enabled'",
            params![OPERATOR_ENDPOINT, now as i64],
        )?;
        Ok(())
    }
}

/// Why the operator endpoint could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// `operator_url` is not an absolute http(s) URL.
    #[error("webhooks.operator_url: {0}")]
    Url(#[from] WebhookError),
    /// The secret file could not be read or written.
    #[error("{path}: {source}")]
    Secret {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Sets up (or disables, without `url`) the operator endpoint, refusing a URL the SSRF `guard`
/// refuses; its secret is `secret_file`'s,
/// created on first use.
pub fn ensure(store: &Store, url: &str, guard: &Guard, secret_file: &Path) -> Result<(), OperatorError> {
    let now = crate::unix_now();
    if url.trim().is_empty() {
        store.disable_operator_endpoint(now)?;
        return Ok(());
    }
    let url = checked_url(url)?;
    guard.check_url_blocking(&url).map_err(WebhookError::NotAllowed)?;
    let io = |source| OperatorError::Secret { path: secret_file.display().to_string(), source };
    let secret = match std::fs::read_to_string(secret_file) {
        Ok(text) if text.trim().starts_with("whsec_") => text.trim().to_owned(),
        Ok(_) | Err(_) => {
            let secret = new_secret();
            crate::secret::write_private(secret_file, &secret).map_err(io)?;
            secret
        }
    };
    store.upsert_operator_endpoint(url.as_str(), &secret, now)?;
    tracing::info!(url = %url, secret_file = %secret_file.display(), "operator webhook endpoint ready");
    Ok(())
}
