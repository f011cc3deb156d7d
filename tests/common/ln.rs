//! Two real gateways on one regtest bitcoind, each with its Lightning node running, and the
//! helpers the Lightning and payment tests share: a channel from A to B, payments between them.

use std::time::Duration;

use serde_json::{json, Value};

use super::{wait_for, AdminMode, Chain, Gateway};

/// The usual patience.
pub const MINUTE: Duration = Duration::from_secs(60);

pub fn ln_info(gw: &Gateway) -> Value {
    gw.call("ln.info", json!({}))
}

pub fn channel(gw: &Gateway) -> Option<Value> {
    gw.call("ln.channels", json!({}))["channels"].as_array().and_then(|c| c.first().cloned())
}

pub fn payment(gw: &Gateway, id: &str) -> Option<Value> {
    gw.call("ln.payments", json!({}))["payments"].as_array()?.iter().find(|p| p["payment_id"] == id).cloned()
}

pub fn payment_by_hash(gw: &Gateway, hash: &str) -> Option<Value> {
    gw.call("ln.payments", json!({}))["payments"].as_array()?.iter().find(|p| p["payment_hash"] == hash).cloned()
}

pub fn wait_ln_running(gw: &Gateway) {
    wait_for("the lightning node to run", MINUTE, || gw.try_call("ln.info", json!({})).is_ok());
}

/// A chain and two gateways whose treasuries are funded: A mined 101 blocks, B got 1 BTC from A.
/// Two funded gateways on one chain.
pub struct Pair {
    pub chain: Chain,
    pub a: Gateway,
    pub b: Gateway,
    pub a_id: String,
    pub b_id: String,
    pub _home: tempfile::TempDir,
}

pub fn pair() -> Pair {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let a = Gateway::start(&chain, &home.path().join("alice"), AdminMode::Socket);
    let b = Gateway::start(&chain, &home.path().join("bob"), AdminMode::Socket);
    wait_ln_running(&a);
    wait_ln_running(&b);
    let a_id = ln_info(&a)["node_id"].as_str().unwrap().to_owned();
    let b_id = ln_info(&b)["node_id"].as_str().unwrap().to_owned();
    let a_addr = a.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &a_addr);
    wait_for("A's wallet sync", MINUTE, || a.synced_height() == 101);
    let b_addr = b.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    a.call("wallet.send", json!({"address": b_addr, "amount_sat": 100_000_000}));
    chain.mine(1);
    wait_for("B's treasury funded", MINUTE, || b.balance()["confirmed_sat"] == 100_000_000);
    wait_for("A's wallet at the same height", MINUTE, || a.synced_height() == 102);
    Pair { chain, a, b, a_id, b_id, _home: home }
}

/// A opens `amount_sat` to B from its treasury (its node starts empty, so the open waits for the
/// treasury's transfer to confirm); B funds its node's anchor reserve. Returns the channel id.
pub fn open_channel(p: &Pair, amount_sat: u64) -> String {
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    let peer = format!("127.0.0.1:{}", b.ln_port);
    let opened = a.call("ln.open_channel", json!({"node_id": p.b_id, "addr": peer, "amount_sat": amount_sat}));
    assert_eq!(opened["status"], "awaiting_funding", "{opened}");
    let funding_txid = opened["funding_txid"].as_str().unwrap().to_owned();
    let b_fund = b.call("ln.fund", json!({"amount_sat": 100_000}))["txid"].as_str().unwrap().to_owned();
    let mempool = chain.mempool();
    assert!(mempool.contains(&funding_txid) && mempool.contains(&b_fund), "{mempool:?}");
    chain.mine(1);
    wait_for("A's channel open to start once its funding confirmed", MINUTE, || channel(a).is_some());
    wait_for("the channel funding tx in the mempool", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for("the channel to be usable on both sides", MINUTE, || {
        channel(a).is_some_and(|c| c["usable"] == true) && channel(b).is_some_and(|c| c["usable"] == true)
    });
    channel(a).unwrap()["channel_id"].as_str().unwrap().to_owned()
}

/// B invoices `amount_msat`, A pays; returns once both see it settled.
pub fn pay_b(p: &Pair, amount_msat: u64) {
    let inv = p.b.call("ln.invoice", json!({"amount_msat": amount_msat, "description": "x", "expiry_secs": 600}));
    let id = p.a.call("ln.pay", json!({"invoice": inv["bolt11"]}))["payment_id"].as_str().unwrap().to_owned();
    let hash = inv["payment_hash"].as_str().unwrap();
    wait_for("the payment to settle", MINUTE, || {
        payment(&p.a, &id).is_some_and(|x| x["status"] == "succeeded")
            && payment_by_hash(&p.b, hash).is_some_and(|x| x["status"] == "succeeded")
    });
}
