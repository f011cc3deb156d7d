//! BOLT12 and keysend payouts through the public API, against a plain ldk-node: a real senderod
//! gateway A with a 1,000,000 sat channel to a bare `ldk_node::Node` B (no Sendero in it), on a
//! real regtest bitcoind. Through `POST /v1/payments/route` + `/submit`, A pays B's fixed-amount
//! offer, B's variable-amount offer and a keysend to B's node id — each SETTLED, each received by
//! B exactly once for exactly its amount — routes A's own offer `on_us`, and survives a SIGKILL
//! right after submitting a keysend with the payment made exactly once. At the node level, a
//! keysend for a key is paid once under one payment hash, and one that a crash lost inside the
//! node (ldk-node's `pending` record, nothing in LDK) is sent again under that same hash, while
//! one whose record the crash took (LDK kept it) is refused by LDK and found by its key's hash.

mod common;

use std::path::Path;
use std::time::Duration;

use common::ln::{node_config, wait_ln_running, MINUTE};
use common::plain::{candidate, fund_and_open, post, received_once, route, submit, wait_settled, PlainNode};
use common::{http_get_with_key, wait_for, AdminMode, Chain, Gateway};
use sendero::devchain::free_port;
use sendero_lightning::ldk_node::bitcoin::hex::FromHex;
use sendero_lightning::ldk_node::bitcoin::Network;
use sendero_lightning::ldk_node::lightning::ln::channelmanager::PaymentId;
use sendero_lightning::ldk_node::lightning::util::ser::Writeable;
use sendero_lightning::ldk_node::lightning_types::payment::PaymentHash;
use sendero_lightning::ldk_node::payment::{PaymentDetails, PaymentDirection, PaymentKind, PaymentStatus};
use sendero_lightning::{LightningError, LightningNode, Recovery};
use serde_json::{json, Value};

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
    fund_and_open(&chain, &a, &b, 1_000_000);
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
    // (f) An abort right after the node sent a keysend (the payout's `sent` step not stored),
    // which also took the node's record of it — a kill inside ldk-node's send. LDK may keep the
    // payment or not, and the abort may cost the channel (rust-lightning #4286, never hidden).
    // After the restart the payout ends once: paid and received once, or — its channel lost —
    // failed by the node's own verdict on the HTLC, and never received.
    let ln_store = a.datadir.join("lightning");
    let before = ln_payment_keys(&ln_store);
    a.env = vec![("SENDERO_FAILPOINT".into(), "lightning.sent".into())];
    a.restart();
    wait_ln_running(&a);
    wait_for("the channel usable after the restart", MINUTE, || {
        route(&a, &key, 6_000, &b.id()).1["recommend"] == "lightning"
    });
    let (_, r) = route(&a, &key, 6_000, &b.id());
    let body = json!({"route_id": r["route_id"], "rail": "lightning"});
    let _ = post(&a, "/v1/payments/submit", &key, r["route_id"].as_str(), &body); // answered or cut off by the abort
    a.wait_exit();
    assert!(a.log().contains("failpoint reached: aborting"), "{}", a.log());
    let sent: Vec<String> = ln_payment_keys(&ln_store).into_iter().filter(|k| !before.contains(k)).collect();
    assert_eq!(sent.len(), 1, "the node's record of the keysend: {sent:?}");
    forget_payment(&ln_store, &sent[0]);
    a.env.clear();
    a.start_again();
    wait_ln_running(&a);
    let mut id = None;
    wait_for("the same key to answer the same payout", MINUTE, || {
        let (status, v) = post(&a, "/v1/payments/submit", &key, r["route_id"].as_str(), &body);
        id = v["payment_id"].as_str().map(str::to_owned);
        status == 202
    });
    let (id, mut force_closed) = (id.unwrap(), false);
    let mut last = Value::Null;
    wait_for("the payout to end", 4 * MINUTE, || {
        last = http_get_with_key(a.api_port, &format!("/v1/payments/{id}"), Some(&key)).1;
        force_closed |= a.get("/v1/health").1["status"] == "degraded";
        if force_closed {
            chain.mine(6); // the HTLC resolves on chain: claimed by B, or timed out
        }
        last["status"] == "SETTLED" || last["status"] == "FAILED"
    });
    let kept = a.log().contains("kept no record of it");
    eprintln!("keysend payout across an abort that took the node's record (LDK kept it: {kept}, channel force-closed: {force_closed}): {last}");
    let settled = last["status"] == "SETTLED";
    if settled {
        assert_eq!(last["payment_hash"].as_str(), Some(sent[0].as_str()), "{last:#}");
        received_once(&a, &b, &last, 6_000_000);
    } else {
        // Failed by the node's verdict on its HTLC, or — nothing of it on a channel, the channel
        // gone — for want of liquidity. Either way B must never be paid: the closing resolves
        // on chain (B's claim would come through it) and B has nothing of it.
        assert!(force_closed, "only a channel lost to the abort may fail it: {last:#}\n{}", a.log());
        let code = last["failure"]["code"].as_str();
        assert!(matches!(code, Some("lightning_payment_failed" | "insufficient_liquidity")), "{last:#}");
        for _ in 0..20 {
            chain.mine(10);
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(b.received_for(&sent[0]).is_empty(), "failed, so B must not have been paid: {last:#}");
    }
    // The own offer is still recognised after the restart.
    let (_, r) = route(&a, &key, 5_000, own["offer"].as_str().unwrap());
    assert_eq!(r["recommend"], "on_us", "{r:#}");
    // Nothing else reached B: one receipt per settled payout.
    let receipts = 4 + usize::from(settled);
    assert_eq!(b.received.lock().unwrap().len(), receipts, "{:?}", b.received.lock().unwrap());
}

/// The keys of the payments ldk-node keeps in its store in `storage_dir`.
fn ln_payment_keys(storage_dir: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(storage_dir.join("ldk_node_data.sqlite")).unwrap();
    let mut rows = db.prepare("SELECT key FROM ldk_node_data WHERE primary_namespace = 'payments'").unwrap();
    rows.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
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
fn a_keysend_is_paid_once_per_key_and_one_lost_in_a_crash_is_sent_again_under_its_hash_or_refused_when_ldk_kept_it() {
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

    // The converse: LDK sent the keysend, the crash took ldk-node's record of it. A send under
    // the same key is refused by LDK (it remembers the payment), and the payment's id is known
    // from the key alone — where the saga waits for the node's event of it.
    let kept = a.pay_once(&dest, Some(10_000_000), Some("pay_k3")).unwrap();
    wait_for("the third keysend to succeed", MINUTE, || status(&a, "pay_k3") == Some("succeeded"));
    drop(a);
    forget_payment(&a_dir, &kept);
    let a = LightningNode::start(node_config(&chain, &a_dir, a_port, 7)).unwrap();
    assert_eq!(status(&a, "pay_k3"), None, "the record is gone");
    wait_for("the channel usable after A's second restart", MINUTE, || usable(&a));
    assert_eq!(a.pay_once(&dest, Some(10_000_000), Some("pay_k3")), Err(LightningError::DuplicatePayment));
    assert_eq!(a.payment_id_for(&dest, "pay_k3"), Some(kept.clone()));
    assert_eq!(a.payment_id_for(&format!(" {dest} "), "pay_k3"), Some(kept.clone()), "trimmed as pay_once trims");

    // B received each key's payment once, for its amount.
    wait_for("B's receipts", MINUTE, || b.received.lock().unwrap().len() == 3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.received_for(&hash), [30_000_000]);
    assert_eq!(b.received_for(&lost), [20_000_000]);
    assert_eq!(b.received_for(&kept), [10_000_000]);
    assert_eq!(b.received.lock().unwrap().len(), 3);
}

/// What a crash between LDK's send and ldk-node's record leaves: no record under `hash`.
fn forget_payment(storage_dir: &Path, hash: &str) {
    let db = rusqlite::Connection::open(storage_dir.join("ldk_node_data.sqlite")).unwrap();
    let gone =
        db.execute("DELETE FROM ldk_node_data WHERE primary_namespace = 'payments' AND key = ?1", [hash]).unwrap();
    assert_eq!(gone, 1, "A's record of {hash}");
}
