//! The feerates the batcher has seen, on a real regtest bitcoind and a real senderod: it takes a
//! sample a block interval whether or not a payout waits, stores each one, and a restart (even a
//! SIGKILL) resumes them — so the recent low of its "cheap" test and yesterday's fall are known
//! at once instead of half a day and a day later. `fees.get` shows what it made of them.
//!
//! A day cannot pass in a test: the day before is written into the gateway's store (with the
//! daemon's own [`Store::record_fee_sample`]) while it is stopped, as a gateway running then
//! would have recorded it. Yesterday at this time of day the feerate stood at 10 sat/vB and fell
//! to 5 sat/vB 30 minutes later; the rest of the day it stood at 8 sat/vB. So at 8 sat/vB now
//! the feerate is at the recent low (the 20th percentile of the day: 8 sat/vB), cheap by it
//! though above the fixed cheap level (2 sat/vB) — but yesterday says it falls further within
//! half an hour, and a `low` payout due in 20 hours waits for that. With the forecast off
//! (`forecast_fall_percent = 0`) the same queued payout leaves at once, reason `cheap`.
//!
//! The same day gives `low`'s deadline cap, its 70th percentile (8 sat/vB): a `low` payout due in
//! an 18 sat/vB spike leaves at 8, and a `low` batch kept out of blocks under that spike is not
//! bumped (the operator is told once) until the cap is turned off.

mod common;

use std::time::Duration;

use common::{outside_address, payment, route_and_submit, wait_for, AdminMode, Chain, Gateway};
use sendero::config::{Config, Overrides};
use sendero::store::Store;
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);
const BLOCK_SECS: u64 = 600;
const DAY_SECS: u64 = 86_400;

/// A `low` cheap batch leaves at once (no minimum wait); the forecast at its default (20 %); the
/// feerate 8 sat/vB for every target, from a schedule file (it holds across restarts).
fn config(schedule: &std::path::Path) -> String {
    std::fs::write(schedule, "0,8\n").unwrap();
    format!("[batching]\nlow_cheap_min_wait_secs = 0\nforecast_fall_percent = 20\n\n[wallet]\nfee_schedule_file = {schedule:?}\n")
}

/// The gateway's own store (SQLite in its data dir, or its PostgreSQL database), as its config
/// names it.
fn store_of(gw: &Gateway) -> Store {
    let config = Config::load(Some(&gw.datadir.join("senderod.toml")), [], &Overrides::default()).expect("config");
    Store::open_at(&config.store.location(&config.datadir)).expect("store")
}

fn history(gw: &Gateway) -> Value {
    gw.cli(&["fees.get"])["history"].clone()
}

/// Yesterday as a gateway would have stored it, a sample a block interval for a day up to a block
/// before `now` (the gateway takes the next when it starts): 10 sat/vB from a day ago to 20 minutes after, 5 sat/vB for the next 2.5 hours,
/// 8 sat/vB the rest.
fn yesterday(now: u64) -> Vec<(u64, u64)> {
    (1..=144u64)
        .map(|k| now - k * BLOCK_SECS)
        .map(|t| {
            let since = t as i64 - (now - DAY_SECS) as i64;
            let level = match since {
                ..=1_200 => 10_000,
                1_201..=10_800 => 5_000,
                _ => 8_000,
            };
            (t, level)
        })
        .collect()
}

/// [`yesterday`] written into the stopped gateway's store, as a gateway running then would have
/// recorded it, and the gateway started again: when the day ends, and `fees.get`'s history once
/// it holds the day and the sample the start takes.
fn restart_after_yesterday(gw: &mut Gateway) -> (u64, Value) {
    gw.kill();
    let now = common::unix_now();
    let store = store_of(gw);
    for (at, sat_kvb) in yesterday(now) {
        store.record_fee_sample(at, sat_kvb, 0).expect("sample");
    }
    drop(store);
    gw.start_again();
    let mut seen = Value::Null;
    wait_for("a day and a block of samples, the new one taken at the start", MINUTE, || {
        seen = history(gw);
        seen["samples"] == 145
    });
    (now, seen)
}

/// A funded gateway with `config` that has seen [`yesterday`]: `low`'s deadline cap is its 70th
/// percentile, 8 sat/vB.
fn funded_after_yesterday(chain: &Chain, home: &std::path::Path, config: &str) -> Gateway {
    let mut gw = Gateway::start_with(chain, &home.join("gw"), AdminMode::Socket, "human", config);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let (_, seen) = restart_after_yesterday(&mut gw);
    assert_eq!(seen["deadline_caps_sat_kvb"]["low"], 8_000, "{seen:#}");
    wait_for("the coins spendable again after the restart", MINUTE, || {
        let b = gw.balance();
        b["synced_height"] == u64::from(chain.height()) && b["confirmed_sat"].as_u64() > Some(0)
    });
    gw
}

/// The gateway restarted (after a SIGKILL) with `from` replaced by `to` in its config file.
fn reconfigure(gw: &mut Gateway, from: &str, to: &str) {
    gw.kill();
    let toml = gw.datadir.join("senderod.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains(from), "{from:?} is in the config");
    std::fs::write(&toml, text.replace(from, to)).unwrap();
    gw.start_again();
}

#[test]
fn the_feerates_seen_survive_a_restart_and_a_cheap_batch_waits_for_yesterdays_fall() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let config = config(&home.path().join("fees.csv"));
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", &config);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));

    // With an empty queue the batcher still takes a sample at once; nothing is known from one.
    let mut first = Value::Null;
    wait_for("the first sample", MINUTE, || {
        first = history(&gw);
        first["samples"] == 1
    });
    eprintln!("fees.get history after the start: {first}");
    assert_eq!(gw.cli(&["fees.get"])["source"], "fee_schedule");
    assert!(first["recent_low_sat_kvb"].is_null() && first["yesterday_fall_in_secs"].is_null(), "{first:#}");
    assert_eq!(first["deadline_cap_percentile"], json!({"high": 0, "normal": 0, "low": 70}), "{first:#}");
    assert_eq!(first["deadline_caps_sat_kvb"], json!({"high": null, "normal": null, "low": null}), "{first:#}");
    assert_eq!((first["window_secs"].as_u64(), first["cheap_percentile"].as_u64()), (Some(86_400), Some(20)));
    assert_eq!(first["oldest_at"], first["newest_at"]);

    // A SIGKILL (a second later, so that a sample taken anew would differ): the sample is still
    // there, the same one (the next is not due for a block).
    std::thread::sleep(Duration::from_millis(1_100));
    gw.kill();
    gw.start_again();
    let again = history(&gw);
    assert_eq!((&again["samples"], &again["oldest_at"]), (&first["samples"], &first["oldest_at"]), "{again:#}");

    // The day before, written while the gateway is stopped.
    let (now, seen) = restart_after_yesterday(&mut gw);
    eprintln!("fees.get history after a day was stored: {seen}");
    assert_eq!(seen["recent_low_sat_kvb"], 8_000, "the 20th percentile of the day: {seen:#}");
    let caps = &seen["deadline_caps_sat_kvb"];
    assert_eq!(caps, &json!({"high": null, "normal": null, "low": 8_000}), "low's 70th percentile: {seen:#}");
    let fall_in = seen["yesterday_fall_in_secs"].as_u64().expect("yesterday's fall ahead");
    let elapsed = common::unix_now() - now;
    assert!(fall_in <= 1_800 && fall_in + elapsed >= 1_800, "5 sat/vB came 30 min after: {fall_in} s ({elapsed} s)");
    assert!(seen["newest_at"].as_u64().unwrap() >= now, "{seen:#}");

    // At 8 sat/vB (cheap by the recent low, not by the fixed 2 sat/vB) a low payout waits.
    let key = gw.api_key("pay,read");
    let destination = outside_address(90).to_string();
    let id = route_and_submit(&gw, &key, (&destination, 40_000, "low"), "onchain_batch", "fh-1");
    std::thread::sleep(Duration::from_secs(6));
    let batches = gw.call("batch.list", json!({}));
    assert_eq!(batches["batches"].as_array().map(Vec::len), Some(0), "it waits for yesterday's fall: {batches:#}");
    assert_eq!(batches["queued"].as_array().map(Vec::len), Some(1), "{batches:#}");
    assert!(chain.mempool().is_empty());
    assert!(gw.log().contains("a day ago the feerate went on to fall further"), "the operator is told why");
    let p = payment(&gw, &key, &id);
    assert!(p["status"] == "SUBMITTED" && p["waiting_for_fees"].is_null(), "below the low ceiling: {p:#}");

    // The forecast off, after another SIGKILL: the recent low is known at once, and the payout
    // leaves, cheap, at 8 sat/vB.
    reconfigure(&mut gw, "forecast_fall_percent = 20", "forecast_fall_percent = 0");
    wait_for("the payout's batch in the mempool", MINUTE, || chain.mempool().len() == 1);
    let batches = gw.call("batch.list", json!({}));
    let b = &batches["batches"][0];
    assert_eq!(
        (b["reason"].as_str(), b["payouts"].as_u64(), b["feerate_sat_vb"].as_u64()),
        (Some("cheap"), Some(1), Some(8)),
        "{batches:#}"
    );
    let after = history(&gw);
    assert!(after["samples"].as_u64().unwrap() >= 145 && after["yesterday_fall_in_secs"].is_null(), "{after:#}");
    assert_eq!(after["recent_low_sat_kvb"], 8_000, "{after:#}");
    chain.mine(1);
    common::settled(&gw, &key, &id);
}

/// A `low` payout whose deadline comes in a fee spike leaves at its deadline cap — the 70th
/// percentile of the day seen, 8 sat/vB — not at the spike's 18 sat/vB: its transaction has the
/// rest of its bound to wait the spike out, and is bumped in its last blocks at the latest. A
/// two-block target and a 1,260 s bound put its deadline a minute after its submission.
#[test]
fn a_low_payout_due_in_a_fee_spike_leaves_at_its_deadline_cap() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let schedule = home.path().join("fees.csv");
    let config = config(&schedule) + "\n[routing]\nlow_target_blocks = 2\nlow_max_eta_secs = 1260\n";
    std::fs::write(&schedule, "0,18\n").unwrap();
    let gw = funded_after_yesterday(&chain, home.path(), &config);
    let key = gw.api_key("pay,read");
    let destination = outside_address(91).to_string();
    let id = route_and_submit(&gw, &key, (&destination, 40_000, "low"), "onchain_batch", "cap-1");
    let p = payment(&gw, &key, &id);
    assert!(p["waiting_for_fees"].is_null(), "18 sat/vB is under low's 20 sat/vB ceiling: {p:#}");
    wait_for("the payout's batch in the mempool at its deadline", 3 * MINUTE, || chain.mempool().len() == 1);
    let batches = gw.call("batch.list", json!({}));
    let b = &batches["batches"][0];
    assert_eq!(
        (b["reason"].as_str(), b["payouts"].as_u64(), b["feerate_sat_vb"].as_u64()),
        (Some("deadline"), Some(1), Some(8)),
        "{batches:#}"
    );
    chain.mine(1);
    common::settled(&gw, &key, &id);
}

/// A `low` batch stuck below a fee spike is not bumped while the next block asks more than its
/// deadline cap and its ETA bound is hours away: it waits the spike out, and the operator is told
/// once. With the cap off, the same transaction is replaced at the spike's feerate.
#[test]
fn a_low_batch_below_a_spike_over_its_deadline_cap_waits_instead_of_being_bumped() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let config = config(&home.path().join("fees.csv"))
        .replace("[batching]\n", "[batching]\nlow_bump_after_blocks = 1\nlow_deadline_cap_percentile = 70\n");
    let mut gw = funded_after_yesterday(&chain, home.path(), &config);

    // Sent now at 8 sat/vB by the operator, then kept out of blocks while fees jump to 18.
    let key = gw.api_key("pay,read");
    let destination = outside_address(92).to_string();
    let id = route_and_submit(&gw, &key, (&destination, 40_000, "low"), "onchain_batch", "hold-1");
    gw.call("batch.trigger", json!({}));
    wait_for("the batch in the mempool", MINUTE, || chain.mempool().len() == 1);
    let first = chain.mempool()[0].clone();
    common::call_bitcoind(&chain.rpc(), "prioritisetransaction", &[json!(first), json!(0), json!(-100_000_000)]);
    gw.call("fees.set", json!({"sat_per_vb": 18}));
    chain.mine(2);
    let said = "stuck transaction waits out high fees";
    wait_for("the bumper's word", MINUTE, || gw.log().contains(said));
    std::thread::sleep(Duration::from_secs(8)); // four more rounds of the bumper
    assert_eq!(chain.mempool(), vec![first.clone()], "not replaced");
    assert_eq!(gw.log().matches(said).count(), 1, "said once, not every round");
    let p = payment(&gw, &key, &id);
    assert_eq!(p["txid"], first.as_str(), "{p:#}");

    // The cap off: the same transaction is replaced at what the next block needs.
    reconfigure(&mut gw, "low_deadline_cap_percentile = 70", "low_deadline_cap_percentile = 0");
    gw.call("fees.set", json!({"sat_per_vb": 18}));
    let mut second = String::new();
    wait_for("the batch replaced", MINUTE, || {
        second = payment(&gw, &key, &id)["txid"].as_str().unwrap_or_default().to_owned();
        second != first && chain.mempool() == vec![second.clone()]
    });
    let replacement = chain.tx(&second);
    assert!(chain.fee(&replacement) * 4 >= 18 * replacement.weight().to_wu(), "at the spike's feerate");
    chain.mine(1);
    common::settled(&gw, &key, &id);
}
