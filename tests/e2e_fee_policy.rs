//! Fee ceilings and cost reports on a real regtest bitcoind: while the feerate (steered with
//! `fees.set`) is above the `low` and `normal` ceilings, queued `onchain_batch` payouts wait —
//! `GET /v1/payments/{id}` shows `waiting_for_fees` with the feerate and the ceiling, one signed
//! `payment.delayed` webhook per payout, nothing leaves — except a payout whose deadline comes
//! during the spike: it leaves in time, at what its deadline needs. `batch.preview` shows the queue
//! as one batch costs less than one transaction each; when fees fall the rest leave as one batch
//! and settle, and so does a `low` single `onchain` payout that waited beside them, at the new
//! feerate; `fees.report` then shows the `onchain_batch` rail's count, the fees paid (the
//! payouts' `fee_paid_sat`) and a positive saving. A single payout killed right after its wait
//! is released pays, after the restart, what its target needs then, not its spike-time quote.

mod common;

use std::time::Duration;

use common::webhook::{signature_valid, Receiver};
use common::{http_post, outside_address, payment, settled, wait_for, AdminMode, Chain, Gateway};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

/// `low` and `normal` wait above 5 sat/vB; a `normal` payout (1-block target, ETA bound 640 s)
/// may wait 40 s; `low` leaves as soon as fees are cheap again (batched: `low_cheap_min_wait_secs`).
const CONFIG: &str = "[batching]\nlow_max_feerate_sat_kvb = 5000\nnormal_max_feerate_sat_kvb = 5000\n\
                      low_cheap_min_wait_secs = 0\n\n[routing]\nnormal_target_blocks = 1\nnormal_max_eta_secs = 640\n";
const NORMAL_WAIT_SECS: u64 = 40;

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Routes `sat` to `address` at `priority` and submits it on `onchain_batch`; its id.
fn pay_batched(gw: &Gateway, key: &str, address: &str, sat: u64, priority: &str) -> String {
    pay(gw, key, address, sat, priority, "onchain_batch")
}

/// Routes `sat` to `address` at `priority` and submits it on `rail`; its id.
fn pay(gw: &Gateway, key: &str, address: &str, sat: u64, priority: &str, rail: &str) -> String {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": address, "priority": priority});
    let (status, route) = post(gw, "/v1/payments/route", key, None, &body);
    assert_eq!(status, 200, "{route}");
    let submit = json!({"route_id": route["route_id"], "rail": rail});
    let (status, p) = post(gw, "/v1/payments/submit", key, Some(&format!("fp-{address}")), &submit);
    assert_eq!(status, 202, "{p}");
    p["payment_id"].as_str().unwrap().to_owned()
}

fn funded(chain: &Chain, dir: &std::path::Path) -> Gateway {
    let gw = Gateway::start_with(chain, dir, AdminMode::Socket, "human", CONFIG);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    gw
}

#[test]
fn payouts_wait_above_the_ceiling_leave_when_fees_fall_or_at_their_deadline_and_the_report_counts_the_saving() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = funded(&chain, &home.path().join("gw"));
    let key = gw.api_key("pay,read");
    let receiver = Receiver::start(200);
    let events = json!(["payment.delayed", "payment.settled"]);
    let (status, hook) = post(&gw, "/v1/webhooks", &key, None, &json!({"url": receiver.url(), "events": events}));
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();

    // A fee spike: 20 sat/vB for every target, above both ceilings (5 sat/vB).
    gw.cli(&["fees.set", "--sat-per-vb", "20"]);
    let lows: Vec<String> =
        (0..3u8).map(|i| pay_batched(&gw, &key, &outside_address(60 + i).to_string(), 30_000, "low")).collect();
    let urgent = pay_batched(&gw, &key, &outside_address(70).to_string(), 40_000, "normal");
    // A low payout in a transaction of its own waits too.
    let single = pay(&gw, &key, &outside_address(71).to_string(), 50_000, "low", "onchain");
    let submitted = common::unix_now();

    for id in lows.iter().chain([&urgent, &single]) {
        let mut p = Value::Null;
        wait_for(&format!("{id} waiting for fees"), MINUTE, || {
            p = payment(&gw, &key, id);
            p["waiting_for_fees"].is_object()
        });
        let w = &p["waiting_for_fees"];
        assert_eq!((w["feerate_sat_vb"].as_u64(), w["ceiling_sat_vb"].as_u64()), (Some(20), Some(5)), "{p:#}");
        assert_eq!(p["status"], "SUBMITTED", "{p:#}");
        let admin = gw.cli(&["payment.get", id]);
        assert_eq!(admin["waiting_for_fees"]["ceiling_sat_kvb"], 5_000, "{admin:#}");
    }
    wait_for("a payment.delayed webhook per payout", MINUTE, || {
        lows.iter().chain([&urgent, &single]).all(|id| !receiver.delivered("payment.delayed", id).is_empty())
    });
    let preview = gw.cli(&["batch.preview"]);
    eprintln!("batch.preview: {preview}");
    std::thread::sleep(Duration::from_secs(4));
    for id in lows.iter().chain([&urgent, &single]) {
        let hooks = receiver.delivered("payment.delayed", id);
        assert_eq!(hooks.len(), 1, "one payment.delayed per payout");
        assert!(signature_valid(&secret, &hooks[0]));
        let body: Value = serde_json::from_str(&hooks[0].body).unwrap();
        assert_eq!(body["data"]["waiting_for_fees"]["feerate_sat_vb"], 20, "{body:#}");
        assert_eq!(body["data"]["payment_id"], id.as_str(), "{body:#}");
    }
    assert!(common::unix_now() < submitted + NORMAL_WAIT_SECS, "the checks ran before the deadline");
    assert!(chain.mempool().is_empty(), "nothing leaves while fees are above the ceilings");

    // The queue as one batch now, against one transaction each, at the same 20 sat/vB.
    let p = &preview["preview"];
    assert_eq!((p["payouts"].as_u64(), p["feerate_sat_kvb"].as_u64()), (Some(4), Some(20_000)), "{preview:#}");
    let (batch_fee, single_fee) = (p["batch_fee_sat"].as_u64().unwrap(), p["one_by_one_fee_sat"].as_u64().unwrap());
    assert_eq!(single_fee, 4 * 141 * 20, "four P2WPKH payouts of 141 vB each: {preview:#}");
    assert!(batch_fee < single_fee, "{preview:#}");
    assert_eq!(p["saving_sat"].as_i64().unwrap(), (single_fee - batch_fee) as i64);

    // The normal payout's deadline comes during the spike: it leaves alone, in time, at what a
    // 1-block target needs near its bound (20 sat/vB + the 40 % near-bound margin).
    wait_for("the due payout in the mempool", MINUTE, || chain.mempool().len() == 1);
    let left_at = common::unix_now();
    assert!(left_at <= submitted + NORMAL_WAIT_SECS + 6, "it left at its deadline: {left_at} vs {submitted}");
    let batches = gw.call("batch.list", json!({}));
    let first = &batches["batches"][0];
    assert_eq!((first["reason"].as_str(), first["payouts"].as_u64()), (Some("deadline"), Some(1)), "{batches:#}");
    assert_eq!(first["feerate_sat_vb"], 28, "{batches:#}");
    assert!(payment(&gw, &key, &urgent)["waiting_for_fees"].is_null());
    assert!(lows.iter().chain([&single]).all(|id| payment(&gw, &key, id)["waiting_for_fees"]["feerate_sat_vb"] == 20));
    assert_eq!(batches["queued"].as_array().unwrap().len(), 3, "the low payouts still wait");
    chain.mine(1);
    let urgent_paid = settled(&gw, &key, &urgent);

    // Fees fall: the batched low payouts leave together at once, the single one in its own
    // transaction at what its target needs now (1 sat/vB, not the 20 it was priced at).
    gw.cli(&["fees.set", "--sat-per-vb", "1"]);
    wait_for("the low payouts' transactions in the mempool", MINUTE, || chain.mempool().len() == 2);
    assert!(lows.iter().chain([&single]).all(|id| payment(&gw, &key, id)["waiting_for_fees"].is_null()));
    chain.mine(1);
    let single_paid = settled(&gw, &key, &single);
    let single_fee = single_paid["fee_paid_sat"].as_u64().unwrap();
    assert!((141..=200).contains(&single_fee), "about 141 vB at 1 sat/vB: {single_paid:#}");
    let fees_paid: u64 = lows
        .iter()
        .map(|id| settled(&gw, &key, id)["fee_paid_sat"].as_u64().unwrap())
        .chain([urgent_paid["fee_paid_sat"].as_u64().unwrap()])
        .sum();
    let batches = gw.call("batch.list", json!({}));
    assert_eq!(
        (batches["batches"][0]["reason"].as_str(), batches["batches"][0]["payouts"].as_u64()),
        (Some("cheap"), Some(3))
    );

    let report = gw.cli(&["fees.report"]);
    eprintln!("fees.report: {report}");
    let rails = report["rails"].as_array().unwrap();
    let row = rails.iter().find(|r| r["rail"] == "onchain_batch").unwrap();
    assert_eq!(row["count"], 4, "{report:#}");
    assert_eq!(row["fees_paid_sat"], fees_paid, "{report:#}");
    // One transaction each at the 20 sat/vB of their submission: 4 × 141 vB × 20.
    assert_eq!(row["one_by_one_fee_sat"], 4 * 141 * 20, "{report:#}");
    assert!(row["saving_sat"].as_i64().unwrap() > 0, "{report:#}");
    assert_eq!(row["saving_sat"].as_i64().unwrap(), 4 * 141 * 20 - fees_paid as i64);
    assert!(row["saving_bps"].as_i64().unwrap() > 0 && row["saving_percent"].is_string(), "{report:#}");
    let row = rails.iter().find(|r| r["rail"] == "onchain").unwrap();
    assert_eq!((row["count"].as_u64(), row["fees_paid_sat"].as_u64()), (Some(1), Some(single_fee)), "{report:#}");
    assert_eq!(row["saving_sat"].as_i64().unwrap(), 141 * 20 - single_fee as i64, "{report:#}");
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

/// A single `low` `onchain` payout priced in a spike (20 sat/vB, from a fee schedule file, which
/// outlives restarts) waits for fees. Fees fall to 2 sat/vB (`fees.set`) and the gateway is
/// killed right after the wait is released, before the payout is built
/// (`onchain.fee_released`). The schedule then says 2 sat/vB from now on, and after the restart
/// the payout pays that — not the 20 sat/vB its route quoted, which it paid before the released
/// hold was kept (it was deleted on release, so the next attempt took the payout for one that
/// never waited) — and it is paid once.
#[test]
fn a_single_payout_killed_as_its_wait_for_fees_ends_pays_the_fallen_feerate_after_the_restart() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("gw");
    std::fs::create_dir_all(&dir).unwrap();
    let schedule = dir.join("fees.csv");
    std::fs::write(&schedule, "0,20\n").unwrap();
    let config = format!("{CONFIG}\n[wallet]\nfee_schedule_file = {:?}\n", schedule.display().to_string());
    let mut gw = Gateway::start_with(&chain, &dir, AdminMode::Socket, "human", &config);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let key = gw.api_key("pay,read");
    let to = outside_address(80).to_string();
    let id = pay(&gw, &key, &to, 50_000, "low", "onchain");
    wait_for("the payout waiting for fees", MINUTE, || payment(&gw, &key, &id)["waiting_for_fees"].is_object());
    let height = chain.height();

    gw.env = vec![("SENDERO_FAILPOINT".into(), "onchain.fee_released".into())];
    gw.restart();
    assert!(payment(&gw, &key, &id)["waiting_for_fees"].is_object(), "still 20 sat/vB by the schedule");
    gw.cli(&["fees.set", "--sat-per-vb", "2"]);
    gw.wait_exit();
    let log = gw.log();
    assert!(log.lines().any(|l| l.contains("failpoint reached") && l.contains("onchain.fee_released")), "{log}");
    assert!(chain.mempool().is_empty(), "released, not built");

    std::fs::write(&schedule, format!("0,20\n{},2\n", common::unix_now())).unwrap();
    gw.env.clear();
    gw.start_again();
    wait_for("the payout in the mempool", MINUTE, || chain.mempool().len() == 1);
    let p = payment(&gw, &key, &id);
    assert!(p["waiting_for_fees"].is_null(), "{p:#}");
    let tx = chain.tx(p["txid"].as_str().unwrap());
    let fee = chain.fee(&tx);
    let weight = tx.weight().to_wu();
    assert_eq!(fee, (2 * weight).div_ceil(4), "2 sat/vB on {weight} WU, not its quote's 20: {fee} sat");
    chain.mine(1);
    let paid = settled(&gw, &key, &id);
    assert_eq!(paid["fee_paid_sat"].as_u64(), Some(fee), "{paid:#}");
    assert_eq!(chain.paid_after(height).get(&to), Some(&1), "paid once");
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}
