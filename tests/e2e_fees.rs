//! Steering feerates on regtest, which has no fee market: `fees.set` moves the on-chain route's
//! feerate and cost and what an admin send pays (checked in bitcoind's mempool), `fees.clear`
//! goes back to bitcoind's (fallback) estimate, bad inputs change nothing, every change is
//! audited; a `wallet.fee_schedule_file` moves the feerate over time; a mainnet config with a
//! schedule does not start.

mod common;

use std::time::{Duration, Instant};

use bdk_bitcoind_rpc::bitcoincore_rpc::RpcApi;
use common::{http_post, outside_address, unix_now, wait_for, AdminMode, Chain, Gateway, SENDEROD};
use serde_json::{json, Value};

/// The on-chain candidate of a route to `address`: (feerate, vsize, cost, cost source).
fn onchain_route(gw: &Gateway, key: &str, address: &str, priority: &str) -> (u64, u64, u64, String) {
    let body = json!({"amount": {"minor_units": 50_000, "currency": "SAT"}, "destination": address,
                      "direction": "payout", "priority": priority});
    let (status, text) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    let r: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    assert_eq!(status, 200, "{text}");
    let c = r["candidates"].as_array().unwrap().iter().find(|c| c["rail"] == "onchain").expect("onchain").clone();
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}"));
    let (rate, kvb, vsize, cost) = (n("fee_rate_sat_vb"), n("fee_rate_sat_kvb"), n("vsize"), n("cost_sat"));
    assert_eq!(cost, (kvb * vsize).div_ceil(1_000), "cost = feerate × vsize, rounded up to the sat: {c}");
    assert_eq!(rate, kvb.div_ceil(1_000), "sat/vB is sat/kvB rounded up: {c}");
    (rate, vsize, cost, c["cost_source"].as_str().unwrap().to_owned())
}

/// The fee a transaction pays (its inputs' values from their parents, minus its outputs) and its
/// vsize, all read from bitcoind.
fn fee_and_vsize(chain: &Chain, txid: &str) -> (u64, u64) {
    let rpc = chain.rpc();
    let tx = rpc.get_raw_transaction(&txid.parse().unwrap(), None).unwrap();
    let inputs: u64 = tx
        .input
        .iter()
        .map(|i| {
            let parent = rpc.get_raw_transaction(&i.previous_output.txid, None).unwrap();
            parent.output[i.previous_output.vout as usize].value.to_sat()
        })
        .sum();
    let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    (inputs - outputs, tx.vsize() as u64)
}

fn audited(gw: &Gateway, action: &str) -> usize {
    let entries = gw.call("audit.list", json!({}))["entries"].as_array().unwrap().clone();
    entries.iter().filter(|e| e["action"] == action).count()
}

#[test]
fn the_operator_raises_and_lowers_fees_and_a_schedule_moves_them() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(&chain, &home.path().join("gw"), AdminMode::Socket);
    let funding = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &funding);
    wait_for("the wallet to sync", Duration::from_secs(60), || gw.synced_height() == 101);
    let key = gw.api_key("pay");
    let payee = outside_address(7).to_string();

    // Nothing set: bitcoind decides, and regtest's bitcoind has no estimate (the fallback, 2).
    let got = gw.cli(&["fees.get"]);
    eprintln!("fees.get before: {got}");
    assert_eq!((got["source"].as_str(), got["sat_per_vb"].as_u64()), (Some("fallback"), Some(2)), "{got}");
    assert_eq!((got["override"].clone(), got["schedule"].clone()), (Value::Null, Value::Null));
    let targets: Vec<u64> =
        got["estimates"].as_array().unwrap().iter().map(|e| e["target_blocks"].as_u64().unwrap()).collect();
    assert_eq!(targets, [1, 3, 6, 144]);
    // bitcoind's relay floor (what operator feerates are lifted to) and the step a replacement
    // raises the feerate by, as bitcoind (v30 on) reports them: 0.1 sat/vB each.
    assert_eq!((got["relay_floor_sat_kvb"].as_u64(), got["replacement_step_sat_kvb"].as_u64()), (Some(100), Some(100)));
    let (rate, _, _, source) = onchain_route(&gw, &key, &payee, "normal");
    assert_eq!((rate, source.as_str()), (2, "fallback_feerate"));

    // Raised to 40 sat/vB (through sendero-cli): the route prices 40 × the payout's vsize.
    let set = gw.cli(&["fees.set", "--sat-per-vb", "40"]);
    eprintln!("fees.set 40: {set}");
    assert_eq!((set["source"].as_str(), set["sat_per_vb"].as_u64()), (Some("operator_override"), Some(40)), "{set}");
    assert!(set["audit_seq"].as_i64().is_some(), "{set}");
    assert!(set["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["sat_per_vb"] == 40 && e["source"] == "operator_override"));
    let (rate, vsize, cost, source) = onchain_route(&gw, &key, &payee, "normal");
    eprintln!("route at 40: feerate {rate} sat/vB × vsize {vsize} = {cost} sat ({source})");
    assert_eq!((rate, source.as_str()), (40, "operator_override"));

    // An admin send naming no feerate pays the override: bitcoind's mempool says so.
    let sent = gw.call("wallet.send", json!({"address": payee, "amount_sat": 50_000}));
    assert_eq!(
        (sent["feerate_sat_vb"].as_u64(), sent["feerate_source"].as_str()),
        (Some(40), Some("operator_override"))
    );
    let txid = sent["txid"].as_str().unwrap();
    assert!(chain.mempool().iter().any(|t| t == txid), "{txid} in bitcoind's mempool");
    let (fee_sat, tx_vsize) = fee_and_vsize(&chain, txid);
    eprintln!("wallet.send at the override: {sent}; in bitcoind: fee {fee_sat} sat, vsize {tx_vsize} vB");
    assert_eq!(fee_sat, sent["fee_sat"].as_u64().unwrap());
    // 40 sat/vB over the weight BDK sized, which may be a few weight units over the signed
    // weight (a signature a byte shorter than sized) and so a vbyte over its vsize.
    assert!(40 * (tx_vsize - 1) <= fee_sat && fee_sat <= 40 * (tx_vsize + 1), "{fee_sat} sat for {tx_vsize} vB");
    chain.mine(1);

    // Lowered to 5, with 50 sat/vB for targets up to 2 blocks: normal (6 blocks) pays 5, high (2) 50.
    let set = gw.cli(&["fees.set", "--sat-per-vb", "5", "--targets", "2:50"]);
    assert_eq!(set["override"], json!({"sat_per_vb": 5, "targets": [{"max_target_blocks": 2, "sat_per_vb": 50}]}));
    let by_target: Vec<u64> =
        set["estimates"].as_array().unwrap().iter().map(|e| e["sat_per_vb"].as_u64().unwrap()).collect();
    assert_eq!(by_target, [50, 5, 5, 5], "targets 1, 3, 6, 144");
    assert_eq!(onchain_route(&gw, &key, &payee, "normal").0, 5);
    assert_eq!(onchain_route(&gw, &key, &payee, "high").0, 50);

    // Bad inputs: refused with their code, nothing changed, nothing audited.
    let before = gw.call("fees.get", json!({}));
    let audits = audited(&gw, "fees.set");
    let cases = [
        (json!({"sat_per_vb": 0}), "invalid_feerate"),
        (json!({"sat_per_vb": 1_001}), "invalid_feerate"),
        (json!({"sat_per_vb": 2.5}), "invalid_feerate"),
        (json!({"sat_per_vb": "40"}), "invalid_feerate"),
        (json!({"sat_per_vb": -3}), "invalid_feerate"),
        (json!({"sat_per_vb": 40, "targets": ["1:5000"]}), "invalid_feerate"),
        (json!({"sat_per_vb": 40, "targets": "0:30"}), "invalid_feerate"),
        (json!({"sat_per_vb": 40, "targets": ["soon"]}), "invalid_feerate"),
        (json!({}), "invalid_params"),
        (json!({"sat_per_vb": 40, "rate": 3}), "invalid_params"),
    ];
    for (params, code) in cases {
        assert_eq!(gw.error_code("fees.set", params.clone()), code, "{params}");
    }
    assert_eq!(gw.call("fees.get", json!({})), before);
    assert_eq!(audited(&gw, "fees.set"), audits);
    assert_eq!(audits, 2);

    // Cleared: back to bitcoind's (fallback) estimate.
    let cleared = gw.cli(&["fees.clear"]);
    assert_eq!((cleared["source"].as_str(), cleared["override"].clone()), (Some("fallback"), Value::Null), "{cleared}");
    let (rate, _, _, source) = onchain_route(&gw, &key, &payee, "normal");
    assert_eq!((rate, source.as_str()), (2, "fallback_feerate"));
    assert_eq!(audited(&gw, "fees.clear"), 1);

    // A schedule: 7 sat/vB from 10 s ago, 29.5 (paid as 30) from `switch` on.
    gw.stop();
    let switch = unix_now() + 8;
    let schedule = home.path().join("fees.csv");
    let text = format!("# unix_time,sat_per_vb\n{},7\n{switch},29.5\n", unix_now() - 10);
    std::fs::write(&schedule, text).unwrap();
    let config = gw.datadir.join("senderod.toml");
    let with_schedule =
        format!("{}\n[wallet]\nfee_schedule_file = {:?}\n", std::fs::read_to_string(&config).unwrap(), schedule);
    std::fs::write(&config, with_schedule).unwrap();
    let restart = Instant::now();
    gw.start_again();
    eprintln!("restarted with the schedule in {:?}", restart.elapsed());
    assert!(unix_now() < switch, "senderod took too long to start to see the first sample");
    let got = gw.call("fees.get", json!({}));
    assert_eq!((got["source"].as_str(), got["schedule"]["samples"].as_u64()), (Some("fee_schedule"), Some(2)), "{got}");
    let (rate, _, _, source) = onchain_route(&gw, &key, &payee, "normal");
    assert_eq!((rate, source.as_str()), (7, "fee_schedule"));
    // The override wins over the schedule until cleared.
    gw.call("fees.set", json!({"sat_per_vb": 12}));
    assert_eq!(onchain_route(&gw, &key, &payee, "normal").0, 12);
    gw.call("fees.clear", json!({}));
    assert_eq!(onchain_route(&gw, &key, &payee, "normal").0, 7);
    let waited = Instant::now();
    wait_for("the schedule's second sample", Duration::from_secs(30), || {
        onchain_route(&gw, &key, &payee, "normal").0 != 7
    });
    let (rate, _, _, source) = onchain_route(&gw, &key, &payee, "normal");
    eprintln!("schedule moved 7 -> {rate} sat/vB after {:?}, at {} (switch {switch})", waited.elapsed(), unix_now());
    assert_eq!((rate, source.as_str()), (30, "fee_schedule"));
    assert!(unix_now() >= switch);

    // 29.5 sat/vB is quoted and paid as 29.5, not 30: an admin send naming no feerate, a single
    // `onchain` payout (its route quoted 29.5) and a batch (it leaves at the estimate).
    let got = gw.call("fees.get", json!({}));
    assert_eq!((got["sat_per_vb"].as_u64(), got["feerate_sat_kvb"].as_u64()), (Some(30), Some(29_500)), "{got}");
    let paid_at = |txid: &str| {
        let (fee_sat, vsize) = fee_and_vsize(&chain, txid);
        eprintln!("{txid}: fee {fee_sat} sat for {vsize} vB in bitcoind");
        // 29.5 sat/vB over the weight BDK sized, which may exceed the signed weight by a few
        // weight units (a signature a byte shorter than sized): 4,146 sat was paid for a batch
        // sized at 562 WU (140.5 vB) that came out 140 vB. 30 sat/vB would pay at least 30 × vsize.
        assert!(
            29_500 * (vsize - 1) <= fee_sat * 1_000 && fee_sat * 1_000 <= 29_500 * (vsize + 1),
            "{fee_sat} sat, {vsize} vB"
        );
        assert!(fee_sat < 30 * vsize, "{fee_sat} sat for {vsize} vB is 30 sat/vB or more");
        fee_sat
    };
    let sent = gw.call("wallet.send", json!({"address": payee, "amount_sat": 50_000}));
    assert_eq!((sent["feerate_sat_kvb"].as_u64(), sent["feerate_sat_vb"].as_u64()), (Some(29_500), Some(30)), "{sent}");
    assert_eq!(paid_at(sent["txid"].as_str().unwrap()), sent["fee_sat"].as_u64().unwrap());
    chain.mine(1);
    wait_for("the wallet to sync", Duration::from_secs(60), || gw.synced_height() == u64::from(chain.height()));
    let (_, _, quoted, _) = onchain_route(&gw, &key, &payee, "normal");
    let single = common::route_and_submit(&gw, &key, (&payee, 50_000, "normal"), "onchain", "fees-single");
    let mut view = Value::Null;
    wait_for("the single payout's transaction", Duration::from_secs(30), || {
        view = common::payment(&gw, &key, &single);
        view["txid"].is_string()
    });
    assert_eq!(
        (view["fee_rate_sat_kvb"].as_u64(), view["fee_rate_sat_vb"].as_u64()),
        (Some(29_500), Some(30)),
        "{view}"
    );
    let fee = paid_at(view["txid"].as_str().unwrap());
    // The quote is a signed transaction's vsize: a vbyte short when its signature came out a
    // byte shorter than the weight BDK pays for, so up to a vbyte's fee (30 sat) under the payout.
    assert!(fee <= quoted + 30, "the single payout paid {fee} sat, quoted {quoted}");
    chain.mine(1);
    wait_for("the wallet to sync", Duration::from_secs(60), || gw.synced_height() == u64::from(chain.height()));
    common::route_and_submit(
        &gw,
        &key,
        (&outside_address(8).to_string(), 60_000, "normal"),
        "onchain_batch",
        "fees-batch",
    );
    let left = gw.cli(&["batch.trigger"]);
    assert_eq!((left["feerate_sat_kvb"].as_u64(), left["feerate_sat_vb"].as_u64()), (Some(29_500), Some(30)), "{left}");
    assert_eq!(paid_at(left["txid"].as_str().unwrap()), left["fee_sat"].as_u64().unwrap());
}

#[test]
fn a_mainnet_config_with_a_fee_schedule_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fees.csv"), "0,40\n").unwrap();
    let config = dir.path().join("senderod.toml");
    let text = format!(
        "network = \"bitcoin\"\ndatadir = {:?}\n[wallet]\nfee_schedule_file = {:?}\n",
        dir.path().join("data"),
        dir.path().join("fees.csv")
    );
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(SENDEROD).arg("--config").arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("wallet.fee_schedule_file is refused on mainnet"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "refused before anything was created");
}
