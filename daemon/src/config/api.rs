//! `[api]` (the public HTTP API: listen address, body limit, timeout), `[admin]` (the admin
//! RPC: Unix socket or loopback TCP), `[metrics]` (Prometheus) and `[dashboard]` (the operator's
//! read-only page), both off unless given a loopback address.

use serde::{Deserialize, Serialize};

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the public HTTP API listens on.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// How long idempotency keys (and their stored responses) are kept.
    pub idempotency_retention_secs: u64,
    /// A request taking longer is answered 408.
    pub request_timeout_secs: u64,
    /// Requests a second each API key may make on average (0: no limit).
    pub rate_limit_per_sec: u32,
    /// Requests a key may make at once before the average applies.
    pub rate_limit_burst: u32,
    /// Where the front ends of a PostgreSQL store reach this node's API (`http://host:port`);
    /// empty: `listen`'s address (an unspecified address as loopback).
    pub advertise_url: String,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Empty: no metrics. A loopback address such as `127.0.0.1:9380`: Prometheus's text
    /// exposition format at `GET /metrics` there.
    pub listen: String,
}

/// `[dashboard]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Empty: no dashboard. A loopback address such as `127.0.0.1:9381`: the operator's read-only
    /// page there, logged into with the admin cookie (`<datadir>/admin.cookie`).
    pub listen: String,
}

/// `[admin]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Empty: a Unix socket `<datadir>/admin.sock` (mode 0600). An address such as
    /// `127.0.0.1:8381`: TCP on loopback, authenticated with the cookie in `<datadir>/admin.cookie`.
    pub listen: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8380".into(),
            body_limit_bytes: 64 * 1024,
            request_timeout_secs: 30,
            idempotency_retention_secs: 86_400,
            rate_limit_per_sec: 100,
            rate_limit_burst: 300,
            advertise_url: String::new(),
        }
    }
}
