//! `[log]` (level and format) and `[dev]` (dev mode's bitcoind).

use serde::{Deserialize, Serialize};

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `sendero=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Empty: no export. An OTLP/HTTP traces URL such as `http://127.0.0.1:4318/v1/traces`: the
    /// spans go there as OTLP JSON, one trace per payout.
    pub otlp_endpoint: String,
}

/// `[dev]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// bitcoind binary for dev mode; empty: `BITCOIND_EXE`, then the cached build, then build it.
    pub bitcoind_exe: String,
    /// Blocks mined to the wallet when dev mode starts a new chain.
    pub mine_blocks: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: "human".into(), level: "info".into() }
    }
}

impl Default for DevConfig {
    fn default() -> Self {
        DevConfig { bitcoind_exe: String::new(), mine_blocks: 101 }
    }
}
