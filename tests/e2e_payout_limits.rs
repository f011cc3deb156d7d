//! Payout limits per API key on two real gateways (A pays, B is the payee over a channel from A):
//! the operator sets them with `sendero-cli apikey.limits.set` (audited); a payout over the
//! per-payout or the daily limit is refused at submit with 422 `limit_exceeded` (saying what is
//! left) and nothing written — no payment, no ledger entry; a failed payout gives its amount back
//! to the day; a limit in EUR is converted at the current rate; the destination allowlist admits
//! listed addresses and invoices of listed nodes only (`destination_not_allowed`); concurrent
//! submits never both pass a limit only one fits; `apikey.list` shows limits and the day's use.

mod common;

use common::ln::{open_channel, pair_with, unreachable_invoice, MINUTE};
use common::{http_post, outside_address, payment, wait_for, Gateway};
use serde_json::{json, Value};

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn route(gw: &Gateway, key: &str, sat: u64, destination: &str) -> String {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination,
                      "direction": "payout", "priority": "high"});
    let (status, r) = post(gw, "/v1/payments/route", key, None, &body);
    assert_eq!(status, 200, "{r}");
    r["route_id"].as_str().unwrap().to_owned()
}

fn submit(gw: &Gateway, key: &str, route_id: &str, rail: &str) -> (u16, Value) {
    post(
        gw,
        "/v1/payments/submit",
        key,
        Some(&format!("idem-{route_id}")),
        &json!({"route_id": route_id, "rail": rail}),
    )
}

/// A new key: (id, secret).
fn new_key(gw: &Gateway, label: &str) -> (String, String) {
    let created = gw.cli(&["apikey.create", "--label", label, "--scopes", "pay,read"]);
    (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
}

fn listed(gw: &Gateway, id: &str) -> Value {
    let keys = gw.cli(&["apikey.list"])["api_keys"].as_array().unwrap().clone();
    keys.into_iter().find(|k| k["id"] == id).unwrap()
}

/// What a refusal must leave unchanged: the payments and the ledger.
fn books(gw: &Gateway) -> (i64, Value) {
    let store = common::books(&gw.datadir);
    let payments: i64 = store.query_row("SELECT COUNT(*) FROM payments", [], |r| r.get(0)).unwrap();
    (payments, gw.call("ledger.balances", json!({})))
}

fn refused(gw: &Gateway, key: &str, route_id: &str, rail: &str, code: &str) -> Value {
    let before = books(gw);
    let (status, e) = submit(gw, key, route_id, rail);
    assert_eq!((status, e["error"]["code"].as_str()), (422, Some(code)), "{e}");
    assert_eq!(books(gw), before, "a refused payout writes nothing");
    e["error"].clone()
}

/// Waits until an on-chain payout has been handed to the chain (its books then rest until a
/// block confirms it).
fn sent(gw: &Gateway, paid: &Value) {
    let id = paid["payment_id"].as_str().unwrap();
    wait_for(&format!("{id} sent"), MINUTE, || {
        let events = gw.call("payment.get", json!({"payment_id": id}))["events"].clone();
        events.as_array().unwrap().iter().any(|e| e["type"] == "payment.sent")
    });
}

fn wait_status(gw: &Gateway, key: &str, id: &str, status: &str) {
    wait_for(&format!("{id} {status}"), 2 * MINUTE, || payment(gw, key, id)["status"] == status);
}

#[test]
fn payout_limits_per_key_refuse_before_any_debit() {
    let p = pair_with(
        "[routing]\nlightning_wait_secs = 20\nsaga_interval_ms = 200\n\n\
         [fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = { \"BTC/EUR\" = \"85000\" }\n",
    );
    open_channel(&p, 1_000_000);
    let (a, b) = (&p.a, &p.b);
    let invoice = |sat: u64| {
        let inv = b.call("ln.invoice", json!({"amount_msat": sat * 1_000, "description": "x", "expiry_secs": 600}));
        inv["bolt11"].as_str().unwrap().to_owned()
    };

    // Per payout 20,000 sat, 30,000 a day: set through the CLI, audited, shown by apikey.list.
    let (id, key) = new_key(a, "limited");
    let set = a.cli(&["apikey.limits.set", "--key-id", &id, "--max-payout", "20000", "--max-daily", "30000"]);
    assert_eq!(set["limits"]["max_daily"], 30_000, "{set}");
    let audit = a.call("audit.list", json!({}))["entries"].as_array().unwrap().clone();
    let entry = audit.iter().rev().find(|e| e["action"] == "apikey.limits.set").expect("audited");
    assert_eq!((entry["actor"].as_str(), entry["details"]["key_id"].as_str()), (Some("admin"), Some(id.as_str())));
    assert_eq!(listed(a, &id)["limits"]["left_today_sat"], 30_000);

    let body =
        json!({"amount": {"minor_units": 25_000, "currency": "SAT"}, "destination": outside_address(51).to_string()});
    let (status, priced) = post(a, "/v1/payments/route", &key, None, &body);
    assert_eq!(
        (status, &priced["limits"]["fits"], &priced["limits"]["max_payout_sat"]),
        (200, &json!(false), &json!(20_000))
    );
    let too_big = priced["route_id"].as_str().unwrap().to_owned();
    let e = refused(a, &key, &too_big, "onchain", "limit_exceeded");
    assert_eq!(
        (e["limit"]["max_payout_sat"].as_u64(), e["limit"]["left_today_sat"].as_u64()),
        (Some(20_000), Some(30_000))
    );

    // 15,000 over Lightning settles; then 16,000 is over what is left today (15,000).
    let (status, paid) = submit(a, &key, &route(a, &key, 15_000, &invoice(15_000)), "lightning");
    assert_eq!(status, 202, "{paid}");
    wait_status(a, &key, paid["payment_id"].as_str().unwrap(), "SETTLED");
    let over = route(a, &key, 16_000, &outside_address(52).to_string());
    let e = refused(a, &key, &over, "onchain", "limit_exceeded");
    assert_eq!(
        (e["limit"]["used_today_sat"].as_u64(), e["limit"]["left_today_sat"].as_u64()),
        (Some(15_000), Some(15_000))
    );

    // A payout that fails gives its amount back: 10,000 held while it is tried, free once failed.
    let (status, failing) =
        submit(a, &key, &route(a, &key, 10_000, &unreachable_invoice(&p.b_id, 10_000_000)), "lightning");
    assert_eq!(status, 202, "{failing}");
    wait_status(a, &key, failing["payment_id"].as_str().unwrap(), "FAILED");
    assert_eq!(listed(a, &id)["used_today_sat"], 15_000);
    let (status, last) = submit(a, &key, &route(a, &key, 15_000, &outside_address(53).to_string()), "onchain");
    assert_eq!(status, 202, "the failed payout's 10,000 are free again: {last}");
    sent(a, &last);
    let shown = listed(a, &id);
    assert_eq!((shown["used_today_sat"].as_u64(), shown["limits"]["left_today_sat"].as_u64()), (Some(30_000), Some(0)));
    refused(a, &key, &route(a, &key, 1_000, &outside_address(54).to_string()), "onchain", "limit_exceeded");

    // A limit in EUR, converted at the current rate: 10.00 EUR at 85,000 EUR/BTC is 11,764 sat.
    let (eur_id, eur_key) = new_key(a, "euro");
    a.cli(&["apikey.limits.set", "--key-id", &eur_id, "--currency", "EUR", "--max-payout", "1000"]);
    let e = refused(
        a,
        &eur_key,
        &route(a, &eur_key, 12_000, &outside_address(55).to_string()),
        "onchain",
        "limit_exceeded",
    );
    assert_eq!((e["limit"]["currency"].as_str(), e["limit"]["max_payout_sat"].as_u64()), (Some("EUR"), Some(11_764)));
    let (status, ok) = submit(a, &eur_key, &route(a, &eur_key, 11_000, &outside_address(55).to_string()), "onchain");
    assert_eq!(status, 202, "{ok}");
    sent(a, &ok);

    // The allowlist: a listed address and the invoices of a listed node; nothing else.
    let (list_id, list_key) = new_key(a, "allowlist");
    let listed_address = outside_address(61).to_string();
    let bad = a.error_code("apikey.limits.set", json!({"key_id": list_id, "allowlist": ["not-a-destination"]}));
    assert_eq!(bad, "invalid_allowlist");
    a.cli(&["apikey.limits.set", "--key-id", &list_id, "--allowlist", &format!("{listed_address},{}", p.b_id)]);
    let e = refused(
        a,
        &list_key,
        &route(a, &list_key, 5_000, &outside_address(62).to_string()),
        "onchain",
        "destination_not_allowed",
    );
    assert!(e["message"].as_str().unwrap().contains("allowlist"), "{e}");
    let elsewhere = unreachable_invoice(&p.b_id, 5_000_000); // its payee is not B
    refused(a, &list_key, &route(a, &list_key, 5_000, &elsewhere), "lightning", "destination_not_allowed");
    let (status, ok) = submit(a, &list_key, &route(a, &list_key, 5_000, &listed_address), "onchain");
    assert_eq!(status, 202, "{ok}");
    let (status, ok) = submit(a, &list_key, &route(a, &list_key, 5_000, &invoice(5_000)), "lightning");
    assert_eq!(status, 202, "{ok}");

    // Concurrency: two submits that each fit a 20,000 day but not together: one passes.
    for round in 0..3 {
        let (race_id, race_key) = new_key(a, &format!("race-{round}"));
        a.cli(&["apikey.limits.set", "--key-id", &race_id, "--max-daily", "20000"]);
        let routes: Vec<String> =
            (0..2).map(|i| route(a, &race_key, 12_000, &outside_address(70 + round * 2 + i).to_string())).collect();
        let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
            let handles: Vec<_> = routes.iter().map(|r| s.spawn(|| submit(a, &race_key, r, "onchain"))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut statuses: Vec<u16> = answers.iter().map(|x| x.0).collect();
        statuses.sort();
        assert_eq!(statuses, [202, 422], "{answers:?}");
        assert_eq!(listed(a, &race_id)["used_today_sat"], 12_000);
    }
    // Everything accepted goes out and the books agree with the wallet and the node.
    wait_for("the accepted payouts in the mempool", MINUTE, || p.chain.mempool().len() >= 6);
    p.chain.mine(1);
    let mut verified = Value::Null;
    wait_for("ledger.verify to hold", MINUTE, || {
        verified = a.call("ledger.verify", json!({}));
        verified["ok"] == true
    });
}
