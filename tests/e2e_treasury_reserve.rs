//! The treasury's reserves through the public API, on two real gateways with a real channel: a
//! wallet app's BIP21 payout can go on chain or over Lightning. The operator raises the on-chain
//! reserve above what the treasury holds (`treasury.policy.set`, audited): the route lists
//! `onchain` and `onchain_batch` under `unavailable` with `treasury_reserve` and what is free,
//! a submit of an earlier route to `onchain` is refused and changes nothing, Lightning still
//! serves; the operator's endpoint gets one signed `treasury.low`. The treasury is refilled:
//! `treasury.recovered`, and on-chain payouts are taken again. The policy outlives a restart,
//! and a restart sends no second event.

mod common;

use std::time::Duration;

use common::ln::{open_channel, pair_with};
use common::webhook::{signature_valid, Receiver};
use common::{http_post, outside_address, settled, wait_for, Gateway};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A BIP21 payout of 20,000 sat to an outside address or B's fresh invoice.
fn route(a: &Gateway, b: &Gateway, key: &str, seed: u8) -> Value {
    let inv = b.call("ln.invoice", json!({"amount_msat": 20_000_000, "description": "reserve", "expiry_secs": 600}));
    let uri = format!("bitcoin:{}?amount=0.0002&lightning={}", outside_address(seed), inv["bolt11"].as_str().unwrap());
    let body = json!({"amount": {"minor_units": 20_000, "currency": "SAT"}, "destination": uri, "priority": "normal"});
    let (status, r) = post(a, "/v1/payments/route", key, None, &body);
    assert_eq!(status, 200, "{r}");
    r
}

fn rails(r: &Value, list: &str) -> Vec<String> {
    r[list].as_array().unwrap().iter().map(|c| c["rail"].as_str().unwrap().to_owned()).collect()
}

fn onchain(status: &Value) -> Value {
    status["rails"].as_array().unwrap().iter().find(|r| r["rail"] == "onchain").unwrap().clone()
}

/// The operator events of `event` the receiver answered 2xx, with valid signatures.
fn events(hooks: &Receiver, secret: &str, event: &str) -> Vec<Value> {
    hooks
        .hooks()
        .into_iter()
        .filter(|h| h.answered < 300)
        .map(|h| {
            assert!(signature_valid(secret, &h), "signed with the operator's secret");
            serde_json::from_str::<Value>(&h.body).unwrap()
        })
        .filter(|v| v["type"] == event)
        .collect()
}

#[test]
fn a_rail_below_its_reserve_takes_no_new_payouts_the_others_serve_and_the_operator_hears_it() {
    let hooks = Receiver::start(200);
    let mut p = pair_with(&format!("[webhooks]\noperator_url = \"{}\"\n", hooks.url()));
    open_channel(&p, 1_000_000);
    let key = p.a.api_key("pay,read");
    let secret = std::fs::read_to_string(p.a.datadir.join("operator-webhook.secret")).unwrap();
    let early = route(&p.a, &p.b, &key, 61);
    assert!(rails(&early, "candidates").contains(&"onchain".to_owned()), "{early}");

    // The operator keeps more on chain than the treasury holds.
    let held = onchain(&p.a.call("treasury.status", json!({})))["held_sat"].as_u64().unwrap();
    let set = p.a.call("treasury.policy.set", json!({"onchain_reserve_sat": held + 50_000_000}));
    assert!(set["audit_seq"].as_i64().is_some(), "{set}");
    assert_eq!(onchain(&set)["accepting"], false, "{set}");
    assert_eq!(onchain(&set)["code"], "treasury_reserve");
    assert_eq!(p.a.error_code("treasury.policy.set", json!({"band_low_percent": 90})), "invalid_policy");
    assert_eq!(p.a.error_code("treasury.policy.set", json!({"no_such_key": 1})), "invalid_policy");

    let r = route(&p.a, &p.b, &key, 62);
    assert_eq!(rails(&r, "candidates"), vec!["lightning"], "{r}");
    for rail in ["onchain", "onchain_batch"] {
        let u = r["unavailable"].as_array().unwrap().iter().find(|u| u["rail"] == rail).unwrap().clone();
        assert_eq!(u["code"], "treasury_reserve", "{u}");
        assert_eq!(u["available_sat"], held, "{u}");
    }
    let balance = p.a.balance();
    let (status, e) = post(
        &p.a,
        "/v1/payments/submit",
        &key,
        Some("early"),
        &json!({"route_id": early["route_id"], "rail": "onchain"}),
    );
    assert_eq!((status, e["error"]["code"].as_str()), (422, Some("treasury_reserve")), "{e}");
    assert_eq!(p.a.balance(), balance, "nothing debited");
    let (status, paid) =
        post(&p.a, "/v1/payments/submit", &key, Some("ln"), &json!({"route_id": r["route_id"], "rail": "lightning"}));
    assert_eq!(status, 202, "{paid}");
    assert_eq!(
        settled(&p.a, &key, paid["payment_id"].as_str().unwrap())["rail"],
        "lightning",
        "Lightning still serves"
    );
    wait_for("treasury.low delivered", MINUTE, || events(&hooks, &secret, "treasury.low").len() == 1);
    let low = &events(&hooks, &secret, "treasury.low")[0];
    assert_eq!((low["data"]["rail"].as_str(), low["data"]["accepting"].as_bool()), (Some("onchain"), Some(false)));

    // Refilled from B's treasury.
    let a_addr = p.a.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    p.b.call("wallet.send", json!({"address": a_addr, "amount_sat": 60_000_000}));
    p.chain.mine(1);
    wait_for("treasury.recovered delivered", MINUTE, || events(&hooks, &secret, "treasury.recovered").len() == 1);
    let r = route(&p.a, &p.b, &key, 63);
    assert!(rails(&r, "candidates").contains(&"onchain".to_owned()), "{r}");
    let (status, s) =
        post(&p.a, "/v1/payments/submit", &key, Some("again"), &json!({"route_id": r["route_id"], "rail": "onchain"}));
    assert_eq!(status, 202, "{s}");

    // The policy outlives a restart; the rail's state too (no second event).
    p.a.restart();
    let status = p.a.call("treasury.status", json!({}));
    assert_eq!(status["policy"]["onchain_reserve_sat"], held + 50_000_000, "{status}");
    assert_eq!(onchain(&status)["accepting"], true);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(events(&hooks, &secret, "treasury.low").len(), 1);
    assert_eq!(events(&hooks, &secret, "treasury.recovered").len(), 1);
    let audit = p.a.call("audit.list", json!({}));
    assert!(audit.to_string().contains("treasury.policy.set"), "{audit}");
    let v = p.a.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}
