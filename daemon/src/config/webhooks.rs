//! `[webhooks]`: delivery timeouts, retries and backoff, and the private networks endpoints may
//! reach anyway (`allow_private`, CIDR blocks).

use std::net::IpAddr;

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
    /// Networks (CIDR, e.g. `127.0.0.0/8`, `10.1.2.0/24`, `::1/128`) that endpoints may reach
    /// although they are loopback, private, link-local, CGNAT or unspecified addresses, which are
    /// otherwise refused at registration and at every delivery. Empty: none.
    pub allow_private: Vec<String>,
}

/// A CIDR block: an address and how many of its leading bits a match shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u32,
}

impl IpNet {
    /// `a.b.c.d/n` or `x::y/n` (a bare address is one host).
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = text.trim().split_once('/').unwrap_or((text.trim(), ""));
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() { max } else { prefix.parse().ok()? };
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let shift = |bits: u32, width: u32| if self.prefix == 0 { 0 } else { bits >> (width - self.prefix) };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => shift(u32::from(net), 32) == shift(u32::from(ip), 32),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let wide = |bits: u128| if self.prefix == 0 { 0 } else { bits >> (128 - self.prefix) };
                wide(u128::from(net)) == wide(u128::from(ip))
            }
            _ => false,
        }
    }
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
            allow_private: Vec::new(),
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
        if let Some(bad) = self.allow_private.iter().find(|n| IpNet::parse(n).is_none()) {
            return Err(ConfigError::Invalid(format!(
                "webhooks.allow_private: {bad:?} is not a CIDR block such as \"127.0.0.0/8\" or \"::1/128\""
            )));
        }
        if self.timeout_secs == 0 || self.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.timeout_secs and webhooks.concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

impl WebhooksConfig {
    /// The `allow_private` blocks (checked by the config's check).
    pub fn allowed_nets(&self) -> Vec<IpNet> {
        self.allow_private.iter().filter_map(|n| IpNet::parse(n)).collect()
    }
}
