//! `getinfo`: the gateway at a glance — `status` (`ok`, or `degraded` with the open alarms),
//! network, chain, wallet balances and sync, the Lightning node.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::state::AppState;

pub(crate) async fn handle(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let status = ctx.status.borrow().clone().with_wallet_at(ctx.onchain.treasury().synced_height());
    let mut wallet = super::wallet_balance::balances(ctx);
    wallet["synced"] = Value::from(status.wallet_synced());
    let (alarmed, alarms) = crate::alarm::status(&ctx.store);
    Ok(json!({
        "status": alarmed,
        "alarms": alarms,
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
        "wallet": wallet,
        "lightning": ctx.lightning.summary(),
    }))
}
