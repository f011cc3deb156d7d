//! A plain ldk-node (no Sendero in it) as the payee of a gateway's Lightning payouts, and the
//! helpers that route, submit and follow those payouts through the public API.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sendero::devchain::free_port;
use sendero_lightning::ldk_node::bitcoin::Network;
use sendero_lightning::ldk_node::{Builder, Event, Node};
use serde_json::{json, Value};

use super::ln::{rpc, MINUTE};
use super::{http_get_with_key, http_post, wait_for, Chain, Gateway};

/// The plain ldk-node payee, with a thread that acknowledges its events and keeps what each
/// `PaymentReceived` said: (payment hash, msat).
pub struct PlainNode {
    pub node: Arc<Node>,
    pub port: u16,
    pub received: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Arc<AtomicBool>,
}

impl PlainNode {
    pub fn start(chain: &Chain, dir: &Path) -> PlainNode {
        let (host, rpc_port, user, password) = rpc(chain);
        let port = free_port().unwrap();
        let mut builder = Builder::new();
        builder
            .set_network(Network::Regtest)
            .set_storage_dir_path(dir.to_string_lossy().into_owned())
            .set_entropy_seed_bytes([11; 64])
            .set_chain_source_bitcoind_rpc(host, rpc_port, user, password);
        builder.set_listening_addresses(vec![format!("127.0.0.1:{port}").parse().unwrap()]).unwrap();
        let node = Arc::new(builder.build().unwrap());
        node.start().unwrap();
        let (received, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (n, r, s) = (Arc::clone(&node), Arc::clone(&received), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match n.next_event() {
                    Some(event) => {
                        if let Event::PaymentReceived { payment_hash, amount_msat, .. } = &event {
                            r.lock().unwrap().push((payment_hash.to_string(), *amount_msat));
                        }
                        let _ = n.event_handled();
                    }
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        PlainNode { node, port, received, stop }
    }

    pub fn id(&self) -> String {
        self.node.node_id().to_string()
    }

    /// What B received for `hash`, one entry per `PaymentReceived`.
    pub fn received_for(&self, hash: &str) -> Vec<u64> {
        self.received.lock().unwrap().iter().filter(|(h, _)| h == hash).map(|(_, msat)| *msat).collect()
    }
}

impl Drop for PlainNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.node.stop();
    }
}

pub fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn route(gw: &Gateway, key: &str, sat: u64, destination: &str) -> (u16, Value) {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination,
                      "direction": "payout", "priority": "high"});
    post(gw, "/v1/payments/route", key, None, &body)
}

pub fn candidate<'a>(route: &'a Value, rail: &str) -> &'a Value {
    route["candidates"].as_array().unwrap().iter().find(|c| c["rail"] == rail).unwrap_or_else(|| panic!("{route:#}"))
}

/// Submits `rail` of `route`; the payment id.
pub fn submit(gw: &Gateway, key: &str, route: &Value, rail: &str) -> String {
    let route_id = route["route_id"].as_str().unwrap();
    let body = json!({"route_id": route_id, "rail": rail});
    let (status, accepted) = post(gw, "/v1/payments/submit", key, Some(route_id), &body);
    assert_eq!(status, 202, "{accepted}");
    accepted["payment_id"].as_str().unwrap().to_owned()
}

pub fn wait_settled(gw: &Gateway, key: &str, id: &str) -> Value {
    let mut last = Value::Null;
    wait_for(&format!("payment {id} to settle"), MINUTE, || {
        let (status, p) = http_get_with_key(gw.api_port, &format!("/v1/payments/{id}"), Some(key));
        assert!(status == 0 || status == 200, "{p}");
        assert_ne!(p["status"], "FAILED", "{p:#}\n{}", gw.log());
        last = p;
        last["status"] == "SETTLED"
    });
    last
}

/// The payment hash A's node paid a settled payout under.
pub fn paid_hash(a: &Gateway, payout: &Value) -> String {
    if let Some(hash) = payout["payment_hash"].as_str() {
        return hash.to_owned();
    }
    let ln_id = payout["ln_payment_id"].as_str().unwrap_or_else(|| panic!("{payout:#}"));
    let payments = a.call("ln.payments", json!({}));
    let p = payments["payments"].as_array().unwrap().iter().find(|p| p["payment_id"] == ln_id).unwrap();
    p["payment_hash"].as_str().unwrap().to_owned()
}

/// A's payout reached B exactly once, for exactly `amount_msat`, within the fee reserve.
pub fn received_once(a: &Gateway, b: &PlainNode, payout: &Value, amount_msat: u64) {
    let hash = paid_hash(a, payout);
    wait_for("B's PaymentReceived", MINUTE, || !b.received_for(&hash).is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.received_for(&hash), [amount_msat], "B's receipts for {hash}");
    let fee = payout["fee_paid_msat"].as_u64().unwrap();
    assert!(fee <= amount_msat / 100 + 50_000, "the fee {fee} msat is within the reserve");
}

/// Funds B's node (its anchor reserve: a coinbase) and A's treasury (101 blocks), then opens a
/// `sat` channel from A's treasury to B; returns once it is usable on both sides.
pub fn fund_and_open(chain: &Chain, a: &Gateway, b: &PlainNode, sat: u64) {
    chain.mine_to(1, &b.node.onchain_payment().new_address().unwrap().to_string());
    let a_addr = a.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &a_addr);
    wait_for("A's wallet sync", MINUTE, || a.synced_height() == 102);
    let peer = format!("127.0.0.1:{}", b.port);
    let opened = a.call("ln.open_channel", json!({"node_id": b.id(), "addr": peer, "amount_sat": sat}));
    assert_eq!(opened["status"], "awaiting_funding", "{opened}");
    chain.mine(1);
    wait_for("A's channel open to start", MINUTE, || super::ln::channel(a).is_some());
    wait_for("the channel funding tx in the mempool", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for("the channel to be usable on both sides", MINUTE, || {
        super::ln::channel(a).is_some_and(|c| c["usable"] == true) && b.node.list_channels().iter().any(|c| c.is_usable)
    });
}
