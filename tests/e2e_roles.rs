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
