//! BOLT12 and keysend payouts through the public API, against a plain ldk-node: a real senderod
//! gateway A with a 1,000,000 sat channel to a bare `ldk_node::Node` B (no Sendero in it), on a
//! real regtest bitcoind. Through `POST /v1/payments/route` + `/submit`, A pays B's fixed-amount
//! offer, B's variable-amount offer and a keysend to B's node id — each SETTLED, each received by
//! B exactly once for exactly its amount — routes A's own offer `on_us`, and survives a SIGKILL
//! right after submitting a keysend with the payment made exactly once. At the node level, a
//! keysend for a key is paid once under one payment hash, and one that a crash lost inside the
//! node (ldk-node's `pending` record, nothing in LDK) is sent again under that same hash.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ln::{channel, node_config, rpc, wait_ln_running, MINUTE};
use common::{http_get_with_key, http_post, wait_for, AdminMode, Chain, Gateway};
use sendero::devchain::free_port;
use sendero_lightning::ldk_node::bitcoin::hex::FromHex;
use sendero_lightning::ldk_node::bitcoin::Network;
use sendero_lightning::ldk_node::lightning::ln::channelmanager::PaymentId;
use sendero_lightning::ldk_node::lightning::util::ser::Writeable;
use sendero_lightning::ldk_node::lightning_types::payment::PaymentHash;
use sendero_lightning::ldk_node::payment::{PaymentDetails, PaymentDirection, PaymentKind, PaymentStatus};
use sendero_lightning::ldk_node::{Builder, Event, Node};
use sendero_lightning::{LightningError, LightningNode, Recovery};
use serde_json::{json, Value};

/// The plain ldk-node payee, with a thread that acknowledges its events and keeps what each
/// `PaymentReceived` said: (payment hash, msat).
struct PlainNode {
    node: Arc<Node>,
    port: u16,
    received: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Arc<AtomicBool>,
}

impl PlainNode {
    fn start(chain: &Chain, dir: &Path) -> PlainNode {
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

    fn id(&self) -> String {
        self.node.node_id().to_string()
    }

    /// What B received for `hash`, one entry per `PaymentReceived`.
    fn received_for(&self, hash: &str) -> Vec<u64> {
        self.received.lock().unwrap().iter().filter(|(h, _)| h == hash).map(|(_, msat)| *msat).collect()
    }
}

impl Drop for PlainNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.node.stop();
    }
}

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn route(gw: &Gateway, key: &str, sat: u64, destination: &str) -> (u16, Value) {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination,
                      "direction": "payout", "priority": "high"});
    post(gw, "/v1/payments/route", key, None, &body)
}

fn candidate<'a>(route: &'a Value, rail: &str) -> &'a Value {
    route["candidates"].as_array().unwrap().iter().find(|c| c["rail"] == rail).unwrap_or_else(|| panic!("{route:#}"))
}

/// Submits `rail` of `route`; the payment id.
fn submit(gw: &Gateway, key: &str, route: &Value, rail: &str) -> String {
    let route_id = route["route_id"].as_str().unwrap();
    let body = json!({"route_id": route_id, "rail": rail});
    let (status, accepted) = post(gw, "/v1/payments/submit", key, Some(route_id), &body);
    assert_eq!(status, 202, "{accepted}");
    accepted["payment_id"].as_str().unwrap().to_owned()
}

fn wait_settled(gw: &Gateway, key: &str, id: &str) -> Value {
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
fn paid_hash(a: &Gateway, payout: &Value) -> String {
    if let Some(hash) = payout["payment_hash"].as_str() {
        return hash.to_owned();
    }
    let ln_id = payout["ln_payment_id"].as_str().unwrap_or_else(|| panic!("{payout:#}"));
    let payments = a.call("ln.payments", json!({}));
    let p = payments["payments"].as_array().unwrap().iter().find(|p| p["payment_id"] == ln_id).unwrap();
    p["payment_hash"].as_str().unwrap().to_owned()
}

/// A's payout reached B exactly once, for exactly `amount_msat`, within the fee reserve.
fn received_once(a: &Gateway, b: &PlainNode, payout: &Value, amount_msat: u64) {
    let hash = paid_hash(a, payout);
    wait_for("B's PaymentReceived", MINUTE, || !b.received_for(&hash).is_empty());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.received_for(&hash), [amount_msat], "B's receipts for {hash}");
    let fee = payout["fee_paid_msat"].as_u64().unwrap();
    assert!(fee <= amount_msat / 100 + 50_000, "the fee {fee} msat is within the reserve");
}

#[test]
fn bolt12_and_keysend_payouts_settle_once_through_the_api() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let extra = "[routing]\nlightning_wait_secs = 30\nsaga_interval_ms = 200\n";
    let mut a = Gateway::start_with(&chain, &home.path().join("alice"), AdminMode::Socket, "human", extra);
    let b = PlainNode::start(&chain, &home.path().join("bob"));
    wait_ln_running(&a);

    // Funds: B's node a coinbase (its anchor reserve), A's treasury 101 blocks; A opens a
    // 1,000,000 sat channel to B, funded from its treasury through its node.
    chain.mine_to(1, &b.node.onchain_payment().new_address().unwrap().to_string());
    let a_addr = a.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &a_addr);
    wait_for("A's wallet sync", MINUTE, || a.synced_height() == 102);
    let peer = format!("127.0.0.1:{}", b.port);
    let opened = a.call("ln.open_channel", json!({"node_id": b.id(), "addr": peer, "amount_sat": 1_000_000}));
    assert_eq!(opened["status"], "awaiting_funding", "{opened}");
    chain.mine(1);
    wait_for("A's channel open to start", MINUTE, || channel(&a).is_some());
    wait_for("the channel funding tx in the mempool", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for("the channel to be usable on both sides", MINUTE, || {
        channel(&a).is_some_and(|c| c["usable"] == true) && b.node.list_channels().iter().any(|c| c.is_usable)
    });
    let key = a.api_key("pay,read");

    // (a) B's fixed-amount offer: its paths start at an introduction node, not at the per-offer
    // signing key; the route prices the path to it and estimates the blinded hops.
    let fixed = b.node.bolt12_payment().receive(20_000_000, "fixed", None, None).unwrap().to_string();
    let info = sendero_lightning::read_offer(&fixed, Network::Regtest).unwrap();
    let a_id = a.call("ln.info", json!({}))["node_id"].as_str().unwrap().to_owned();
    let intros: Vec<String> = info
        .paths
        .iter()
        .map(|p| match p.intro {
            sendero_lightning::Intro::Node(k) => format!("node {k} (+{} blinded)", p.blinded_hops),
            other => format!("{other:?} (+{} blinded)", p.blinded_hops),
        })
        .collect();
    eprintln!(
        "B's offer: signing key {:?}, B {}, A {a_id}, paths {intros:?}",
        info.issuer.map(|k| k.to_string()),
        b.id()
    );
    assert!(info.issuer.is_some_and(|k| k.to_string() != b.id()), "a per-offer signing key: {info:?}");
    // B is unannounced with one peer: its paths enter through A, so the blinded part starts at A.
    assert!(!info.paths.is_empty(), "{info:?}");
    for p in &info.paths {
        assert!(matches!(p.intro, sendero_lightning::Intro::Node(k) if k.to_string() == a_id), "{info:?}");
    }
    let (status, r) = route(&a, &key, 20_000, &fixed);
    assert_eq!(status, 200, "{r:#}");
    let ln = candidate(&r, "lightning");
    eprintln!("fixed offer route: {ln}");
    assert_eq!((r["destination_kind"].as_str(), ln["cost_source"].as_str()), (Some("bolt12"), Some("blinded_path")));
    assert!(ln["blinded_fee_msat"].as_u64().is_some(), "{ln}");
    let id = submit(&a, &key, &r, "lightning");
    let paid = wait_settled(&a, &key, &id);
    eprintln!("fixed offer payout: {paid}");
    received_once(&a, &b, &paid, 20_000_000);
    let (priced_msat, paid_msat) = (ln["cost_sat"].as_u64().unwrap() * 1_000, paid["fee_paid_msat"].as_u64().unwrap());
    assert!(
        paid_msat <= priced_msat,
        "the route's estimate ({priced_msat} msat) covers the fee paid ({paid_msat} msat)"
    );

    // (b) B's variable-amount offer: the amount is the request's.
    let variable = b.node.bolt12_payment().receive_variable_amount("any", None).unwrap().to_string();
    let (status, r) = route(&a, &key, 15_000, &variable);
    assert_eq!(status, 200, "{r:#}");
    eprintln!("variable offer route: {}", candidate(&r, "lightning"));
    let id = submit(&a, &key, &r, "lightning");
    let paid = wait_settled(&a, &key, &id);
    received_once(&a, &b, &paid, 15_000_000);

    // (c) A keysend to B's bare node id (and the `keysend:` form prices the same).
    let (status, r) = route(&a, &key, 12_345, &b.id());
    assert_eq!(status, 200, "{r:#}");
    assert_eq!(r["destination_kind"], "keysend");
    assert_eq!(candidate(&r, "lightning")["cost_source"], "direct_channel");
    let (status, prefixed) = route(&a, &key, 12_345, &format!("keysend:{}", b.id()));
    assert_eq!((status, &prefixed["destination_kind"]), (200, &json!("keysend")), "{prefixed:#}");
    let id = submit(&a, &key, &r, "lightning");
    let paid = wait_settled(&a, &key, &id);
    eprintln!("keysend payout: {paid}");
    assert_eq!(paid["destination"], format!("keysend:{}", b.id()));
    received_once(&a, &b, &paid, 12_345_000);
    // A keysend to A itself pays no one: refused.
    let (status, e) = route(&a, &key, 1_000, &a_id);
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_destination")), "{e}");

    // (d) A's own offer routes on_us and settles inside the gateway; A's node pays nothing.
    let own = a.call("ln.offer", json!({"amount_msat": 5_000_000, "description": "own"}));
    let node_payments = a.call("ln.payments", json!({}))["payments"].as_array().unwrap().len();
    let (status, r) = route(&a, &key, 5_000, own["offer"].as_str().unwrap());
    assert_eq!(status, 200, "{r:#}");
    assert_eq!(
        (r["recommend"].as_str(), candidate(&r, "on_us")["cost_source"].as_str()),
        (Some("on_us"), Some("own_offer"))
    );
    let id = submit(&a, &key, &r, "on_us");
    let paid = wait_settled(&a, &key, &id);
    assert_eq!((paid["rail"].as_str(), paid["fee_paid_msat"].as_u64()), (Some("on_us"), Some(0)));
    assert_eq!(a.call("ln.payments", json!({}))["payments"].as_array().unwrap().len(), node_payments);

    // (e) SIGKILL right after a keysend is submitted; after the restart it settles, paid once.
    let (status, r) = route(&a, &key, 7_000, &b.id());
    assert_eq!(status, 200, "{r:#}");
    let id = submit(&a, &key, &r, "lightning");
    a.kill();
    a.start_again();
    wait_ln_running(&a);
    let paid = wait_settled(&a, &key, &id);
    eprintln!("keysend payout across a SIGKILL: {paid}");
    received_once(&a, &b, &paid, 7_000_000);
    // The own offer is still recognised after the restart.
    let (_, r) = route(&a, &key, 5_000, own["offer"].as_str().unwrap());
    assert_eq!(r["recommend"], "on_us", "{r:#}");
    // Nothing else reached B: one receipt per payout.
    assert_eq!(b.received.lock().unwrap().len(), 4, "{:?}", b.received.lock().unwrap());
}

/// What a crash right after ldk-node's keysend `send` leaves in A's store: a `pending` outbound
/// record under `hash`, written before this run of the node, that LDK never heard of.
fn write_lost_keysend(storage_dir: &Path, hash: &str, amount_msat: u64) {
    let hash = <[u8; 32]>::from_hex(hash).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let record = PaymentDetails {
        id: PaymentId(hash),
        kind: PaymentKind::Spontaneous { hash: PaymentHash(hash), preimage: None },
        amount_msat: Some(amount_msat),
        fee_paid_msat: None,
        direction: PaymentDirection::Outbound,
        status: PaymentStatus::Pending,
        latest_update_timestamp: now - 60,
    };
    let db = rusqlite::Connection::open(storage_dir.join("ldk_node_data.sqlite")).unwrap();
    let key: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    db.execute(
        "INSERT INTO ldk_node_data (primary_namespace, secondary_namespace, key, value) VALUES ('payments', '', ?1, ?2)",
        rusqlite::params![key, record.encode()],
    )
    .unwrap();
}

#[test]
fn a_keysend_is_paid_once_per_key_and_one_lost_in_a_crash_is_sent_again_under_its_hash() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let (a_dir, a_port) = (home.path().join("a"), free_port().unwrap());
    let a = LightningNode::start(node_config(&chain, &a_dir, a_port, 7)).unwrap();
    let b = PlainNode::start(&chain, &home.path().join("b"));
    chain.mine_to(1, &b.node.onchain_payment().new_address().unwrap().to_string());
    chain.mine_to(1, &a.new_onchain_address().unwrap().to_string());
    chain.mine(100);
    wait_for("A's on-chain wallet funded", MINUTE, || a.balance().onchain_spendable_sat > 0);
    a.open_channel(&b.id(), &format!("127.0.0.1:{}", b.port), 1_000_000, None, false).unwrap();
    wait_for("the channel funding tx in the mempool", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    let usable = |a: &LightningNode| a.channels().first().is_some_and(|c| c.usable);
    wait_for("the channel to be usable", MINUTE, || usable(&a));
    let dest = format!("keysend:{}", b.id());
    let status = |a: &LightningNode, key: &str| a.payment_for(&dest, key).map(|p| p.status);

    // One key, one payment hash: paid once, refused the second time.
    let hash = a.pay_once(&dest, Some(30_000_000), Some("pay_k1")).unwrap();
    assert_eq!(hash, a.keysend_payment_hash("pay_k1"));
    wait_for("the keysend to succeed", MINUTE, || status(&a, "pay_k1") == Some("succeeded"));
    assert_eq!(a.pay_once(&dest, Some(30_000_000), Some("pay_k1")), Err(LightningError::DuplicatePayment));
    assert_ne!(a.keysend_payment_hash("pay_k2"), hash);

    // Lost in a crash: A's store says `pending`, LDK never had it. After the restart the record
    // is found under the key's hash and sent again, once.
    let lost = a.keysend_payment_hash("pay_k2");
    drop(a);
    write_lost_keysend(&a_dir, &lost, 20_000_000);
    let a = LightningNode::start(node_config(&chain, &a_dir, a_port, 7)).unwrap();
    assert_eq!(status(&a, "pay_k2"), Some("pending"), "the crash's record survives the restart");
    wait_for("the channel usable after A's restart", MINUTE, || usable(&a));
    let recovered = a.recover_lost_for(&dest, 20_000_000, Some("pay_k2"), Duration::ZERO).unwrap();
    assert_eq!(recovered, Recovery::Resent);
    wait_for("the resent keysend to succeed", MINUTE, || status(&a, "pay_k2") == Some("succeeded"));
    assert_eq!(a.recover_lost_for(&dest, 20_000_000, Some("pay_k2"), Duration::ZERO).unwrap(), Recovery::Kept);

    // B received each key's payment once, for its amount.
    wait_for("B's receipts", MINUTE, || b.received.lock().unwrap().len() == 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.received_for(&hash), [30_000_000]);
    assert_eq!(b.received_for(&lost), [20_000_000]);
    assert_eq!(b.received.lock().unwrap().len(), 2);
}
