//! `sendero`: the Sendero payment gateway daemon (`senderod`) and its admin client
//! (`sendero-cli`). The daemon composes the treasury wallet (`sendero-wallet`) and the
//! Lightning node (`sendero-lightning`), and serves the public HTTP API and the admin RPC.

pub mod admin;
pub mod api;
pub mod apikey;
pub mod config;
pub mod daemon;
pub mod devchain;
pub mod follower;
pub mod fx;
pub mod ln;
pub mod logging;
pub mod secret;
pub mod state;
pub mod store;
pub mod treasury;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}
