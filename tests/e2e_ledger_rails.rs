//! Every sat between rails in the ledger, on two real gateways over one regtest bitcoind: the
//! treasury funds A's node, A opens a channel to B, pays over it, splices in from the treasury,
//! splices out to the treasury, closes cooperatively; then opens again and B force-closes. After
//! each movement settles, `ledger.verify` is `ok` with each rail's difference 0 and no treasury
//! account negative. The force close A did not ask for raises the alarm: health `degraded` with
//! the channel and reason, one ERROR line, a `channel.closed_unexpectedly` webhook; the funds are
//! followed in the ledger until swept.

mod common;

use std::time::Duration;

use common::ln::{account, capacity, channel, open_channel, pair, pay_b, settled_exact, splice_in, Pair, MINUTE};
use common::webhook::{signature_valid, Receiver};
use common::{http_post, wait_for, Gateway};
use serde_json::{json, Value};

/// Mines until `done` says so; `done` also gives what to show if it never does.
fn mine_until(p: &Pair, what: &str, mut done: impl FnMut() -> (bool, Value)) {
    let mut mined = 0;
    loop {
        let (ok, seen) = done();
        if ok {
            break;
        }
        assert!(mined < 500, "{what}: not after {mined} blocks: {seen:#}");
        p.chain.mine(6);
        mined += 6;
        std::thread::sleep(Duration::from_millis(1_500));
    }
    eprintln!("{what}: after {mined} more blocks");
}

#[test]
fn every_movement_between_rails_keeps_the_ledger_exact() {
    let p = pair();
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    let before = settled_exact(a, "A before anything");
    assert_eq!(before["lightning"]["ledger_treasury_msat"], 0);

    // Treasury → node transfer, channel open: the node's funding and the open's fee are booked.
    let channel_id = open_channel(&p, 1_000_000);
    settled_exact(a, "A after the open");
    settled_exact(b, "B after the open");
    let open_fee = account(a, "fees:lightning_onchain");
    assert!((1..50_000_000).contains(&open_fee), "the open's on-chain cost: {open_fee} msat");
    assert!(account(a, "fees:onchain_transfer") > 0, "the treasury paid the transfer's fee");

    // Payments: A's sends and B's receipts, to the msat.
    pay_b(&p, 40_000_123);
    pay_b(&p, 1_000_001);
    settled_exact(a, "A after paying");
    settled_exact(b, "B after being paid");
    assert_eq!(account(b, "receipts:lightning"), -41_000_124);
    assert_eq!(account(a, "payouts:lightning_admin"), 41_000_124);

    // Splice in from the treasury (through the node's wallet).
    splice_in(&p, &channel_id, 300_000);
    assert_eq!(capacity(a), 1_300_000);
    settled_exact(a, "A after the splice-in");

    // Splice out to the treasury: a transfer, not an outside deposit.
    let treasury_before = account(a, "treasury:onchain");
    a.call("ln.splice_out", json!({"channel_id": channel_id, "amount_sat": 200_000}));
    wait_for("the splice-out tx", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for("the capacity to drop", MINUTE, || capacity(a) < 1_100_001 && capacity(a) > 1_090_000);
    let v = settled_exact(a, "A after the splice-out");
    assert_eq!(account(a, "treasury:onchain") - treasury_before, 200_000_000, "{v:#}");
    assert_eq!(account(a, "external:onchain"), before_external(&before), "no transfer imported as external");

    // Cooperative close, asked by the operator: no alarm.
    a.call("ln.close_channel", json!({"channel_id": channel_id}));
    wait_for("the closing tx", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for("the channel gone on both sides", MINUTE, || channel(a).is_none() && channel(b).is_none());
    settled_exact(a, "A after the cooperative close");
    settled_exact(b, "B after the cooperative close");
    assert_eq!(a.get("/v1/health").1["status"], "ok");

    // The operator's webhook for alarms.
    let key = a.api_key("read");
    let receiver = Receiver::start(200);
    let body = json!({"url": receiver.url(), "events": ["channel.closed_unexpectedly"]});
    let (status, hook) = http_post(a.api_port, "/v1/webhooks", &key, None, &body.to_string());
    assert_eq!(status, 201, "{hook}");
    let secret = serde_json::from_str::<Value>(&hook).unwrap()["secret"].as_str().unwrap().to_owned();

    // Open again from the node's own wallet, pay, and B force-closes.
    let peer = format!("127.0.0.1:{}", b.ln_port);
    let opened = a.call("ln.open_channel", json!({"node_id": p.b_id, "addr": peer, "amount_sat": 500_000}));
    assert_eq!(opened["status"], "opening", "{opened}");
    wait_for("the second funding tx", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for("the second channel usable", MINUTE, || channel(a).is_some_and(|c| c["usable"] == true));
    let second = channel(a).unwrap()["channel_id"].as_str().unwrap().to_owned();
    pay_b(&p, 30_000_000);
    settled_exact(a, "A after the second open");

    b.call("ln.close_channel", json!({"channel_id": second, "force": true}));
    wait_for("B's commitment tx", MINUTE, || !chain.mempool().is_empty());
    chain.mine(1);
    wait_for("A to see the close", MINUTE, || channel(a).is_none());
    let (code, health) = a.get("/v1/health");
    wait_for("A's health to turn degraded", MINUTE, || a.get("/v1/health").1["status"] == "degraded");
    let (code2, health2) = a.get("/v1/health");
    assert_eq!(code2, 200, "degraded still serves: {health2}");
    let alarm = &health2["alarms"][0];
    assert_eq!(alarm["channel_id"], second.as_str(), "{health2}");
    assert!(alarm["reason"].as_str().unwrap().contains("CounterpartyForceClosed"), "{health2}");
    eprintln!("A's health after B's force close: {code} {health} → {health2}");
    let info = a.call("getinfo", json!({}));
    assert_eq!(info["status"], "degraded");
    assert_eq!(info["alarms"][0]["channel_id"], second.as_str());
    // B asked for this close: no alarm for it. It has one for the first channel, which A closed
    // (a close B's operator did not ask for, cooperative or not, leaves B without that channel).
    let b_alarms = b.call("ln.alarms", json!({}))["alarms"].clone();
    assert_eq!(b_alarms.as_array().unwrap().len(), 1, "{b_alarms}");
    assert_eq!(b_alarms[0]["channel_id"], channel_id.as_str());
    assert_eq!(b_alarms[0]["reason"], "CounterpartyInitiatedCooperativeClosure");
    wait_for("the alarm's webhook", MINUTE, || !receiver.hooks().is_empty());
    let delivered = &receiver.hooks()[0];
    assert!(signature_valid(&secret, delivered), "signed like every webhook");
    let event: Value = serde_json::from_str(&delivered.body).unwrap();
    assert_eq!(event["type"], "channel.closed_unexpectedly");
    assert_eq!(event["data"]["channel_id"], second.as_str());

    // Followed until swept: timing (within the bound) meanwhile, exact once everything is back.
    let v = a.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["lightning"]["status"], "timing", "{v:#}");
    mine_until(&p, "A's sweep", || {
        let v = a.call("ledger.verify", json!({}));
        assert_eq!(v["ok"], true, "while sweeping: {v:#}");
        (v["lightning"]["status"] == "settled", v)
    });
    mine_until(&p, "B's sweep (its own output waits out the delay)", || {
        let v = b.call("ledger.verify", json!({}));
        (v["lightning"]["status"] == "settled", v)
    });
    settled_exact(a, "A after the sweeps");
    settled_exact(b, "B after the sweeps");
    for gw in [a, b] {
        for acc in ["treasury:onchain", "treasury:lightning"] {
            assert!(account(gw, acc) >= 0, "{acc} negative");
        }
    }

    // One ERROR line, however often the state is read; the alarm survives a restart; ack clears it.
    let errors = |gw: &Gateway| {
        let ours = |l: &&str| l.contains("ERROR sendero::alarm") && l.contains(&second);
        gw.log().lines().filter(ours).count()
    };
    assert_eq!(errors(a), 1, "{}", a.log());
    let mut a = p.a;
    a.restart();
    // Health says `unavailable` until the follower has reached bitcoind once after the start.
    wait_for("health past unavailable", Duration::from_secs(30), || a.get("/v1/health").1["status"] != "unavailable");
    assert_eq!(a.get("/v1/health").1["status"], "degraded");
    assert_eq!(a.error_code("ln.ack_alarm", json!({"channel_id": "00".repeat(32)})), "alarm_not_found");
    a.call("ln.ack_alarm", json!({"channel_id": second}));
    assert_eq!(a.get("/v1/health").1["status"], "ok");
    assert_eq!(a.call("ln.alarms", json!({"all": true}))["alarms"][0]["channel_id"], second.as_str());
    assert_eq!(receiver.hooks().len(), 1, "one event");
}

/// Everything the treasury held at the start came from outside (mined coins, B's deposit).
fn before_external(before: &Value) -> i64 {
    -before["onchain"]["ledger_treasury_msat"].as_i64().unwrap()
}
