//! `sendero`: the Sendero payment gateway daemon (`senderod`) and its admin client
//! (`sendero-cli`). The daemon composes the treasury wallet (`sendero-wallet`) and the
//! Lightning node (`sendero-lightning`), and serves the public HTTP API and the admin RPC.

pub mod admin;
pub mod alarm;
pub mod api;
pub mod apikey;
pub mod audit;
pub mod backup;
pub mod batch;
pub mod config;
pub mod daemon;
pub mod devchain;
pub mod events;
pub mod failpoint;
pub mod follower;
pub mod fx;
pub mod invoice;
pub mod ledger;
pub mod limits;
pub mod liquidity;
pub mod logging;
pub mod login;
pub mod metrics;
pub mod nodelink;
pub mod payment;
pub mod rails;
pub mod ratelimit;
pub mod rebalance;
pub mod recon;
pub mod route;
pub mod secret;
pub mod state;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod trace;
pub mod webhook;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// `unix` seconds as RFC 3339 UTC (`2026-11-26T12:00:30Z`); empty if out of range.
pub(crate) fn rfc3339(unix: u64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}
