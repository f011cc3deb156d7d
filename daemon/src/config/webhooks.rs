//! `[webhooks]`: delivery timeouts, retries and backoff.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[webhooks]`: delivery of payment events to the endpoints API keys register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Attempts per delivery before it is given up (it can still be redelivered by hand).
    pub max_attempts: u32,
    /// Wait before the first retry, seconds; doubled at each further one.
    pub backoff_base_secs: u64,
    /// Longest wait between two attempts, seconds.
    pub backoff_max_secs: u64,
    /// How long an endpoint has to answer, seconds.
    pub timeout_secs: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Where the operator's events go (`channel.closed_unexpectedly`, `treasury.low`,
    /// `treasury.recovered`), whatever API keys exist; signed with the secret in
    /// `<datadir>/operator-webhook.secret`. Empty: only to endpoints of API keys that name them.
    pub operator_url: String,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            max_attempts: 12,
            backoff_base_secs: 10,
            backoff_max_secs: 3_600,
            timeout_secs: 10,
            concurrency: 16,
            operator_url: String::new(),
        }
    }
}

impl WebhooksConfig {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 || self.backoff_base_secs == 0 || self.backoff_max_secs < self.backoff_base_secs {
            return Err(ConfigError::Invalid(
                "webhooks: max_attempts and backoff_base_secs must be at least 1, backoff_max_secs at least backoff_base_secs"
                    .into(),
            ));
        }
        if self.timeout_secs == 0 || self.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.timeout_secs and webhooks.concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
