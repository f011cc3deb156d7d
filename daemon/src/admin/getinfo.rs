//! `getinfo`: the gateway at a glance — network, chain, wallet balances and sync.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let status = ctx.status.borrow().clone();
    let balances = ctx.treasury.balances();
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "network": ctx.network.to_string(),
        "datadir": ctx.config.datadir,
        "api_listen": ctx.config.api.listen,
        "chain_height": status.chain_height,
        "bitcoind": {
            "reachable": status.reachable,
            "chain": status.chain,
            "headers": status.headers,
            "initial_block_download": status.initial_block_download,
            "last_error": status.last_error,
        },
        "wallet": {
            "synced_height": ctx.treasury.synced_height(),
            "synced": status.wallet_synced(),
            "confirmed_sat": balances.confirmed_sat,
            "trusted_pending_sat": balances.trusted_pending_sat,
            "untrusted_pending_sat": balances.untrusted_pending_sat,
            "immature_sat": balances.immature_sat,
        },
    }))
}
