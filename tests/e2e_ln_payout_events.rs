//! Lightning payouts finish when the node says so, not when the saga next looks: with the saga's
//! interval set to a minute, a payout to the peer's invoice is `SETTLED` (its `payment.settled`
//! event queued) and one the network fails is `FAILED` (credited back) within seconds of its
//! submit — the node's payment events wake the saga. Two real gateways on a real regtest
//! bitcoind, a channel from A to B.

mod common;

use std::time::{Duration, Instant};

use common::ln::{open_channel, pair_with, unreachable_invoice};
use common::{http_get_with_key, http_post, Gateway};
use serde_json::{json, Value};

/// The saga's interval in this test: far longer than any payout takes.
const SAGA_INTERVAL_MS: u64 = 60_000;
/// How soon a payout must be final after its submit.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Prices `destination` for `sat` and submits it on Lightning; returns the payment id.
fn submit(gw: &Gateway, key: &str, idem: &str, sat: u64, destination: &str) -> String {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination,
                      "direction": "payout", "priority": "high"});
    let (status, text) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{text}");
    let route: Value = serde_json::from_str(&text).unwrap();
    let body = json!({"route_id": route["route_id"], "rail": "lightning"}).to_string();
    let (status, text) = http_post(gw.api_port, "/v1/payments/submit", key, Some(idem), &body);
    assert_eq!(status, 202, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["payment_id"].as_str().unwrap().to_owned()
}

/// Polls the payment every 10 ms until it is final; (how long after `since`, the payment).
/// Panics when it is not final within [`PROMPTLY`].
fn final_state(gw: &Gateway, key: &str, id: &str, since: Instant) -> (Duration, Value) {
    loop {
        let (status, p) = http_get_with_key(gw.api_port, &format!("/v1/payments/{id}"), Some(key));
        assert_eq!(status, 200, "{p}");
        if p["status"] == "SETTLED" || p["status"] == "FAILED" {
            return (since.elapsed(), p);
        }
        assert!(
            since.elapsed() < PROMPTLY,
            "payment {id} still {} {:?} after its submit (the saga looks every {SAGA_INTERVAL_MS} ms): {p}",
            p["status"],
            since.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn events(gw: &Gateway, id: &str) -> Vec<String> {
    let p = gw.call("payment.get", json!({"payment_id": id}));
    p["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn lightning_payouts_settle_or_fail_on_the_nodes_event_not_on_the_sagas_interval() {
    let p = pair_with(&format!("[routing]\nsaga_interval_ms = {SAGA_INTERVAL_MS}\n"));
    open_channel(&p, 1_000_000);
    let (a, b) = (&p.a, &p.b);
    let key = a.api_key("pay,read");

    // Paid: SETTLED with B's payment hash, and its webhook event queued with it.
    for i in 0..3 {
        let inv = b.call("ln.invoice", json!({"amount_msat": 1_000_000, "description": "x", "expiry_secs": 600}));
        let started = Instant::now();
        let id = submit(a, &key, &format!("paid-{i}"), 1_000, inv["bolt11"].as_str().unwrap());
        let (took, paid) = final_state(a, &key, &id, started);
        eprintln!("payout {i} settled {took:?} after its submit");
        assert_eq!(paid["status"], "SETTLED", "{paid}");
        assert_eq!(paid["payment_hash"], inv["payment_hash"]);
        assert_eq!(events(a, &id), ["payment.submitted", "payment.sending", "payment.sent", "payment.settled"]);
    }

    // Failed by the network (B cannot forward it): FAILED and credited back just as soon.
    let nowhere = unreachable_invoice(&p.b_id, 2_000_000);
    let started = Instant::now();
    let id = submit(a, &key, "nowhere", 2_000, &nowhere);
    let (took, failed) = final_state(a, &key, &id, started);
    eprintln!("the unreachable payout failed {took:?} after its submit");
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["failure"]["code"], "lightning_payment_failed", "{failed}");
    assert_eq!(events(a, &id), ["payment.submitted", "payment.sending", "payment.sent", "payment.failed"]);
    let balances = a.call("ledger.balances", json!({}));
    let in_flight = balances["accounts"].as_array().unwrap().iter().find(|x| x["account"] == "in_flight:lightning");
    assert!(in_flight.is_none_or(|x| x["balance"] == 0), "nothing held in flight: {balances}");
}
