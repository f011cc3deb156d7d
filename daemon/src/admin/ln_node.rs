//! `ln.info`, `ln.connect`, `ln.peers`, `ln.balance`: the Lightning node and its peers.

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::rails::lightning::blocking_ln;
use crate::state::AppState;

/// `ln.info`: node id, addresses, chain height, peers, channels and liquidity.
pub(crate) async fn info(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!(ctx.lightning.node()?.info()))
}

/// `ln.connect {node_id, addr}`: connects to a peer and remembers it.
pub(crate) async fn connect(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["node_id", "addr"])?;
    let (node_id, addr) = (params.string("node_id")?, params.string("addr")?);
    let node = ctx.lightning.node()?;
    blocking_ln(move || node.connect(&node_id, &addr)).await?;
    Ok(json!({ "connected": true }))
}

/// `ln.peers`.
pub(crate) async fn peers(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!({ "peers": ctx.lightning.node()?.peers() }))
}

/// `ln.balance`: the node's on-chain wallet, channel balances, sweeps in progress.
pub(crate) async fn balance(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!(ctx.lightning.node()?.balance()))
}
