//! `senderod --role node` on a real PostgreSQL store: one node at a time. A second node started
//! on the same store (and data dir) waits as a standby, serving nothing; when the first is
//! SIGKILLed with payouts in flight, the standby takes over and every payout is paid exactly
//! once — counted on the chain itself — and the ledger verifies.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::postgres::PgServer;
use common::{api_payout, outside_address, wait_for, AdminMode, Chain, Gateway, SENDEROD};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

/// A second senderod on `gw`'s config with `--role node`, its log in `standby.log`.
fn standby(gw: &Gateway) -> Child {
    let log = std::fs::File::create(gw.datadir.join("standby.log")).unwrap();
    let mut cmd = Command::new(SENDEROD);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SENDERO_")) {
        cmd.env_remove(key);
    }
    cmd.arg("--config").arg(gw.datadir.join("senderod.toml")).args(["--role", "node"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().unwrap()
}

fn standby_log(gw: &Gateway) -> String {
    std::fs::read_to_string(gw.datadir.join("standby.log")).unwrap_or_default()
}

/// Outputs paying `address` on the chain (mempool and blocks): (txid, vout, sats).
fn outputs_to(chain: &Chain, address: &str) -> Vec<(String, u64)> {
    let found =
        common::call_bitcoind(&chain.rpc(), "scantxoutset", &[json!("start"), json!([format!("addr({address})")])]);
    let mut outs: Vec<(String, u64)> = found["unspents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let btc: rust_decimal::Decimal = u["amount"].to_string().parse().unwrap();
            let sat = u64::try_from((btc * rust_decimal::Decimal::from(100_000_000u64)).trunc().mantissa()).unwrap();
            (u["txid"].as_str().unwrap().to_owned(), sat)
        })
        .collect();
    outs.sort();
    outs
}

#[test]
fn a_standby_node_takes_over_after_a_sigkill_and_the_payouts_in_flight_are_paid_once() {
    let server = PgServer::get();
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let url = server.new_database("roles");
    let extra = format!("[store]\nurl = \"{url}\"\n\n[batching]\nenabled = true\n");
    let mut gw = Gateway::start_with(&chain, &home.path().join("node"), AdminMode::Socket, "human", &extra);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    assert!(gw.log().contains("node lock taken: this senderod is the node"), "{}", gw.log());
    let key = gw.api_key("pay,read");

    // A second node on the same store waits, and says so.
    let mut second = standby(&gw);
    wait_for("the standby to say it waits", MINUTE, || {
        standby_log(&gw).contains("standby: another senderod node holds")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(second.try_wait().unwrap().is_none(), "the standby keeps waiting:\n{}", standby_log(&gw));
    assert!(!standby_log(&gw).contains("senderod ready"), "{}", standby_log(&gw));

    // Payouts accepted by the first node; SIGKILL right after, with them in flight.
    let mut payouts = Vec::new();
    for i in 0..6u8 {
        let destination = outside_address(100 + i).to_string();
        let (rail, priority) = if i % 2 == 0 { ("onchain", "high") } else { ("onchain_batch", "low") };
        let sat = 20_000 + u64::from(i) * 1_000;
        payouts.push((api_payout(&gw, &key, sat, &destination, rail, priority), destination, sat));
    }
    gw.kill();

    // The standby takes over: same store, same data dir, same ports.
    wait_for("the standby to take over", MINUTE, || standby_log(&gw).contains("senderod ready"));
    assert!(standby_log(&gw).contains("standby took over: this senderod is now the node"), "{}", standby_log(&gw));
    // The batched payouts leave at the operator's word (asked until the queue is empty: the
    // new node may still be loading it); every payout then confirms.
    let deadline = std::time::Instant::now() + 2 * MINUTE;
    loop {
        let _ = gw.try_call("batch.trigger", json!({}));
        chain.mine(1);
        std::thread::sleep(Duration::from_millis(300));
        let statuses: Vec<Value> = payouts.iter().map(|(id, _, _)| common::payment(&gw, &key, id)).collect();
        if statuses.iter().all(|p| p["status"] == "SETTLED") {
            break;
        }
        if std::time::Instant::now() > deadline {
            let log = standby_log(&gw);
            let tail: Vec<&str> = log.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("not all settled: {statuses:#?}\n{}", tail.join("\n"));
        }
    }
    // Exactly once, on the chain: one output of the right amount to each payee.
    for (id, destination, sat) in &payouts {
        let outs = outputs_to(&chain, destination);
        assert_eq!(outs.len(), 1, "{id} paid {outs:?}");
        assert_eq!(outs[0].1, *sat, "{id}");
    }
    let verified = gw.call("ledger.verify", json!({}));
    assert_eq!(verified["ok"], Value::Bool(true), "{verified}");
    let _ = second.kill();
    let _ = second.wait();
}

/// POSTs `body` to a front end; (status, parsed body).
fn post(port: u16, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = common::http_post(port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn two_front_ends_and_one_node_take_200_concurrent_submits_and_each_key_pays_once() {
    common::without_rate_limit();
    let server = PgServer::get();
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let url = server.new_database("frontends");
    let extra = format!("[store]\nurl = \"{url}\"\n\n[batching]\nenabled = true\n");
    let node = Gateway::start_with(&chain, &home.path().join("node"), AdminMode::Socket, "human", &extra);
    let address = node.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("node sync", MINUTE, || node.synced_height() == u64::from(chain.height()));
    let key = node.api_key("pay,read");

    let api = ["--role", "api"];
    let fronts: Vec<Gateway> = ["fe1", "fe2"]
        .iter()
        .map(|name| Gateway::start_with_args(&chain, &home.path().join(name), AdminMode::Socket, "human", &extra, &api))
        .collect();
    for fe in &fronts {
        wait_for("front end sync", MINUTE, || fe.synced_height() == u64::from(chain.height()));
        assert!(fe.log().contains("front end (--role api)"), "{}", fe.log());
        assert!(!fe.datadir.join("mnemonic").exists(), "a front end holds no mnemonic");
    }

    // A front end prices an on-chain payout as the node does (from its watch-only treasury).
    let probe = json!({"amount": {"minor_units": 50_000, "currency": "SAT"},
                       "destination": outside_address(9).to_string(), "priority": "high"});
    let onchain_cost = |port: u16| {
        let (status, r) = post(port, "/v1/payments/route", &key, None, &probe);
        assert_eq!(status, 200, "{r}");
        let c = r["candidates"].as_array().unwrap().iter().find(|c| c["rail"] == "onchain").cloned().unwrap();
        c["cost_sat"].as_u64().unwrap()
    };
    let (at_node, at_front) = (onchain_cost(node.api_port), onchain_cost(fronts[0].api_port));
    assert_eq!(at_front, at_node, "the same on-chain cost at the node and at a front end");

    // 100 routes, priced by the front ends in turn (each from its watch-only treasury).
    let mut routes = Vec::new();
    for i in 0..100u32 {
        let fe = &fronts[i as usize % 2];
        let destination = common::outside_address_at(1_000 + i).to_string();
        let sat = 10_000 + u64::from(i);
        let body =
            json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination, "priority": "low"});
        let (status, r) = post(fe.api_port, "/v1/payments/route", &key, None, &body);
        assert_eq!(status, 200, "{r}");
        routes.push((r["route_id"].as_str().unwrap().to_owned(), destination, sat));
    }

    // 200 submits at once: each route's submit (its route id as the idempotency key) sent to
    // both front ends.
    let ports: Vec<u16> = fronts.iter().map(|f| f.api_port).collect();
    let answers: Vec<(String, u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = routes
            .iter()
            .flat_map(|(route_id, _, _)| ports.iter().map(move |port| (route_id.clone(), *port)))
            .map(|(route_id, port)| {
                let key = key.clone();
                s.spawn(move || {
                    let body = json!({"route_id": route_id, "rail": "onchain_batch"});
                    let (status, v) = post(port, "/v1/payments/submit", &key, Some(&route_id), &body);
                    (route_id, status, v)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (route_id, status, v) in &answers {
        assert!(*status == 202 || (*status == 409 && v["error"]["code"] == "idempotency_in_flight"), "{status} {v}");
        if *status == 202 {
            by_key.entry(route_id.clone()).or_default().push(v["payment_id"].as_str().unwrap().to_owned());
        }
    }
    // A key answered "in flight" by its own front end is retried, as a client would.
    for (route_id, status, _) in &answers {
        if *status == 409 {
            let body = json!({"route_id": route_id, "rail": "onchain_batch"});
            let (status, v) = post(ports[0], "/v1/payments/submit", &key, Some(route_id), &body);
            assert_eq!(status, 202, "{v}");
            by_key.entry(route_id.clone()).or_default().push(v["payment_id"].as_str().unwrap().to_owned());
        }
    }
    let in_flight = answers.iter().filter(|a| a.1 == 409).count();
    eprintln!(
        "200 submits: {} answered 202 at once, {in_flight} in flight at their front end and retried",
        200 - in_flight
    );
    assert_eq!(by_key.len(), 100);
    for (route_id, ids) in &by_key {
        assert!(ids.iter().all(|id| id == &ids[0]), "{route_id}: one payment per key, got {ids:?}");
    }
    let books = common::books(&node.datadir);
    let payments: i64 = books.query_row("SELECT COUNT(*) FROM payments", [], |r| r.get(0)).unwrap();
    assert_eq!(payments, 100, "each key made exactly one payment");

    // The node carries them out; the front ends read them settled.
    let deadline = std::time::Instant::now() + 3 * MINUTE;
    loop {
        let _ = node.try_call("batch.trigger", json!({}));
        chain.mine(1);
        std::thread::sleep(Duration::from_millis(500));
        let open: i64 =
            books.query_row("SELECT COUNT(*) FROM payments WHERE state != 'settled'", [], |r| r.get(0)).unwrap();
        if open == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{open} payouts not settled:\n{}", node.log());
    }
    for (i, (route_id, destination, sat)) in routes.iter().enumerate() {
        let id = &by_key[route_id][0];
        let read = common::payment(&fronts[i % 2], &key, id);
        assert_eq!(read["status"], "SETTLED", "{read}");
        if i % 10 == 0 {
            let outs = outputs_to(&chain, destination);
            assert_eq!(outs.iter().map(|o| o.1).collect::<Vec<_>>(), vec![*sat], "{id}");
        }
    }
    let verified = node.call("ledger.verify", json!({}));
    assert_eq!(verified["ok"], Value::Bool(true), "{verified}");
}
