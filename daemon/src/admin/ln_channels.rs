//! `ln.fund`, `ln.open_channel`, `ln.close_channel`, `ln.channels`, `ln.splice_in`,
//! `ln.splice_out`, `ln.alarms`, `ln.ack_alarm`: channels, the money that moves between them and
//! the treasury, and the alarms of channels closed without the operator asking. What moves money
//! is audited once done ([`super::audit::done`]).

use std::sync::Arc;

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::rails::funding::{self, Funding, OpenRequest, Opened};
use crate::rails::lightning::blocking_ln;
use crate::rails::onchain::blocking;
use crate::state::AppState;

/// `ln.fund {amount_sat}`: treasury → the node's on-chain wallet.
pub(crate) async fn fund(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["amount_sat"])?;
    let amount_sat = params.positive_integer("amount_sat", "invalid_amount")?;
    let funded = funding::fund(&funding_of(ctx), amount_sat).await.map(|txid| json!({ "txid": txid }));
    super::audit::done(ctx, "ln.fund", json!({ "amount_sat": amount_sat }), funded.map_err(AdminError::from))
}

/// `ln.open_channel {node_id, addr, amount_sat, push_msat?, announce?}`.
pub(crate) async fn open_channel(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["node_id", "addr", "amount_sat", "push_msat", "announce"])?;
    let req = OpenRequest {
        node_id: params.string("node_id")?,
        address: params.string("addr")?,
        amount_sat: params.positive_integer("amount_sat", "invalid_amount")?,
        push_msat: params.optional_positive_integer("push_msat", "invalid_amount")?,
        announce: params.optional_bool("announce")?.unwrap_or(false),
    };
    let asked = json!({"node_id": req.node_id, "addr": req.address, "amount_sat": req.amount_sat,
        "push_msat": req.push_msat, "announce": req.announce});
    let opened = funding::open_channel(&funding_of(ctx), req).await.map_err(AdminError::from).map(|o| match o {
        Opened::Opening { user_channel_id } => json!({ "status": "opening", "user_channel_id": user_channel_id }),
        Opened::AwaitingFunding { pending_id, funding_txid } => {
            json!({ "status": "awaiting_funding", "pending_open_id": pending_id, "funding_txid": funding_txid })
        }
    });
    super::audit::done(ctx, "ln.open_channel", asked, opened)
}

/// `ln.close_channel {channel_id, force?}`.
pub(crate) async fn close_channel(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["channel_id", "force"])?;
    let channel_id = params.string("channel_id")?;
    let force = params.optional_bool("force")?.unwrap_or(false);
    let node = ctx.lightning.node()?;
    node.check_channel(&channel_id)?;
    // Recorded first: the close's event then finds it was asked for, and raises no alarm.
    ctx.store.ln_close_requested(&channel_id.trim().to_ascii_lowercase(), crate::unix_now())?;
    let asked = json!({ "channel_id": channel_id, "force": force });
    let closed = blocking_ln(move || node.close_channel(&channel_id, force)).await;
    let closed = closed.map_err(AdminError::from).map(|()| json!({ "closing": true, "force": force }));
    super::audit::done(ctx, "ln.close_channel", asked, closed)
}

/// `ln.channels`: capacity, outbound / inbound msat, ready, usable.
pub(crate) async fn channels(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!({ "channels": ctx.lightning.node()?.channels() }))
}

/// `ln.splice_in {channel_id, amount_sat}`: from the treasury (through the node's on-chain wallet)
/// into the channel.
pub(crate) async fn splice_in(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["channel_id", "amount_sat"])?;
    let channel_id = params.string("channel_id")?;
    let amount_sat = params.positive_integer("amount_sat", "invalid_amount")?;
    let asked = json!({ "channel_id": channel_id, "amount_sat": amount_sat });
    let spliced = funding::splice_in(&funding_of(ctx), channel_id, amount_sat).await.map_err(AdminError::from);
    let spliced = spliced.map(|o| match o {
        Opened::Opening { .. } => json!({ "status": "splicing" }),
        Opened::AwaitingFunding { pending_id, funding_txid } => {
            json!({ "status": "awaiting_funding", "pending_id": pending_id, "funding_txid": funding_txid })
        }
    });
    super::audit::done(ctx, "ln.splice_in", asked, spliced)
}

/// `ln.splice_out {channel_id, amount_sat, address?}`: out of the channel, to `address` or by
/// default to a fresh treasury address.
pub(crate) async fn splice_out(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["channel_id", "amount_sat", "address"])?;
    let channel_id = params.string("channel_id")?;
    let amount_sat = params.positive_integer("amount_sat", "invalid_amount")?;
    let (address, direction) = match params.optional_string("address")? {
        Some(text) => (ctx.onchain.treasury().parse_address(&text)?, "to_address"),
        None => {
            let treasury = Arc::clone(ctx.onchain.treasury());
            (blocking(move || treasury.new_address()).await?, "to_treasury")
        }
    };
    let to = address.to_string();
    let asked = json!({ "channel_id": channel_id, "amount_sat": amount_sat, "address": to });
    let spliced = funding::splice_out(&funding_of(ctx), channel_id, amount_sat, address, direction).await;
    let spliced = spliced.map_err(AdminError::from).map(|_| json!({ "splicing": true, "address": to }));
    super::audit::done(ctx, "ln.splice_out", asked, spliced)
}

/// `ln.alarms {all?}`: open alarms (all, acknowledged too, with `all: true`).
pub(crate) async fn alarms(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["all"])?;
    let all = params.optional_bool("all")?.unwrap_or(false);
    Ok(json!({ "alarms": ctx.store.alarms(all)? }))
}

/// `ln.ack_alarm {channel_id}`: the operator has seen it; health is `ok` again once none is open.
pub(crate) async fn ack_alarm(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["channel_id"])?;
    let channel_id = params.string("channel_id")?.trim().to_ascii_lowercase();
    if !ctx.store.acknowledge_alarm(&channel_id, crate::unix_now())? {
        return Err(AdminError::new(
            super::error::rpc_code::INVALID_PARAMS,
            "alarm_not_found",
            format!("no open alarm for channel {channel_id}"),
        ));
    }
    Ok(json!({ "acknowledged": true, "status": crate::alarm::status(&ctx.store).0 }))
}

/// Both rails and the store, as funding the node from the treasury uses them.
fn funding_of(ctx: &AppState) -> Funding<'_> {
    Funding {
        onchain: &ctx.onchain,
        lightning: &ctx.lightning,
        store: &ctx.store,
        headroom_sat: ctx.config.lightning.funding_fee_headroom_sat,
    }
}
