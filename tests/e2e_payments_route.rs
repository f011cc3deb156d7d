//! `POST /v1/payments/route` between two real gateways with a channel from A to B: an address is
//! priced on-chain at feerate × the payout's vsize (checked against a real send), B's invoice over
//! Lightning (free through the direct channel, recommended), a BIP21 URI with both on both rails,
//! A's own invoice as `on_us`; bad destinations and amounts are refused with stable codes and
//! record nothing.

mod common;

use common::ln::{open_channel, pair};
use common::{http_post, outside_address};
use serde_json::{json, Value};

fn route(port: u16, key: &str, body: Value) -> (u16, Value) {
    let (status, text) = http_post(port, "/v1/payments/route", key, None, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn sat(amount: u64, destination: &str) -> Value {
    json!({"amount": {"minor_units": amount, "currency": "SAT"}, "destination": destination,
           "direction": "payout", "priority": "normal"})
}

fn candidate<'a>(r: &'a Value, rail: &str) -> Option<&'a Value> {
    r["candidates"].as_array()?.iter().find(|c| c["rail"] == rail)
}

fn routes_stored(gw: &common::Gateway) -> i64 {
    let conn = common::books(&gw.datadir);
    conn.query_row("SELECT count(*) FROM routes", [], |r| r.get(0)).unwrap()
}

#[test]
fn routes_price_every_rail_and_recommend_the_cheapest() {
    let p = pair();
    open_channel(&p, 1_000_000);
    let (a, b) = (&p.a, &p.b);
    let key = a.api_key("pay");
    let port = a.api_port;

    // An address: on-chain only, cost = feerate × the payout's own vsize; batched, alone in an
    // empty queue, it carries a whole transaction's overhead and leaves at its deadline (the
    // normal ETA bound of 2 h minus its 6-block target), so it costs as much and is slower.
    let addr = outside_address(7).to_string();
    let (status, r) = route(port, &key, sat(50_000, &addr));
    assert_eq!(status, 200, "{r}");
    assert!(r["route_id"].as_str().unwrap().starts_with("rt_"));
    assert_eq!(r["destination_kind"], "address");
    let onchain = candidate(&r, "onchain").expect("onchain candidate");
    let rails: Vec<&str> = r["candidates"].as_array().unwrap().iter().map(|c| c["rail"].as_str().unwrap()).collect();
    assert_eq!(rails, ["onchain", "onchain_batch"]);
    let batched = candidate(&r, "onchain_batch").expect("onchain_batch candidate");
    assert_eq!(
        (batched["vsize"].as_u64(), batched["eta_sec"].as_u64()),
        (onchain["vsize"].as_u64(), Some(7_200)),
        "{r}"
    );
    assert_eq!(r["recommend"], "onchain");
    let (rate, vsize, cost) = (
        onchain["fee_rate_sat_vb"].as_u64().unwrap(),
        onchain["vsize"].as_u64().unwrap(),
        onchain["cost_sat"].as_u64().unwrap(),
    );
    // The fallback feerate is whole: the same in both units.
    assert_eq!(onchain["fee_rate_sat_kvb"].as_u64(), Some(rate * 1_000), "{onchain}");
    assert_eq!(cost, rate * vsize, "{onchain}");
    assert_eq!(onchain["cost_minor"], cost, "SAT amounts cost in sats");
    assert_eq!(onchain["eta_sec"], 6 * 600, "normal priority targets 6 blocks");
    assert_eq!(onchain["cost_source"], "fallback_feerate", "regtest bitcoind has no fee estimates");
    // The estimate matches what a real payout of that amount at that feerate pays (BDK may size
    // a signature a byte or two smaller).
    let sent = a.call("wallet.send", json!({"address": addr, "amount_sat": 50_000, "feerate_sat_vb": rate}));
    let fee = sent["fee_sat"].as_u64().unwrap();
    eprintln!("on-chain route: {onchain}; real payout fee {fee} sat");
    assert!(fee <= cost && cost - fee <= 2 * rate, "estimated {cost} sat, paid {fee} sat");
    p.chain.mine(1);

    // B's invoice: Lightning through the direct channel costs nothing and wins.
    let inv = b.call("ln.invoice", json!({"amount_msat": 20_000_000, "description": "route", "expiry_secs": 600}));
    let bolt11 = inv["bolt11"].as_str().unwrap();
    let (status, r) = route(port, &key, sat(20_000, bolt11));
    assert_eq!(status, 200, "{r}");
    let ln = candidate(&r, "lightning").expect("lightning candidate");
    assert_eq!((ln["cost_sat"].as_u64(), ln["hops"].as_u64()), (Some(0), Some(1)), "{ln}");
    assert_eq!(ln["cost_source"], "direct_channel");
    assert!(candidate(&r, "onchain").is_none() && candidate(&r, "on_us").is_none());
    assert_eq!((r["recommend"].as_str(), r["amount_msat"].as_u64()), (Some("lightning"), Some(20_000_000)));

    // A BIP21 URI with an address and B's invoice: both rails, Lightning cheaper and recommended.
    let b_addr = b.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    let uri = format!("bitcoin:{b_addr}?amount=0.0002&lightning={bolt11}");
    let (status, r) = route(port, &key, sat(20_000, &uri));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["destination_kind"], "bip21");
    let (ln, onchain) = (candidate(&r, "lightning").unwrap(), candidate(&r, "onchain").unwrap());
    assert!(ln["cost_sat"].as_u64().unwrap() < onchain["cost_sat"].as_u64().unwrap(), "{r}");
    assert_eq!(r["recommend"], "lightning");
    eprintln!("BIP21 route candidates: {}", r["candidates"]);

    // A's own invoice: on_us, free and instant.
    let own = a.call("ln.invoice", json!({"amount_msat": 5_000_000, "description": "self", "expiry_secs": 600}));
    let (status, r) = route(port, &key, sat(5_000, own["bolt11"].as_str().unwrap()));
    assert_eq!(status, 200, "{r}");
    let on_us = candidate(&r, "on_us").expect("on_us candidate");
    assert_eq!((on_us["cost_sat"].as_u64(), on_us["eta_sec"].as_u64()), (Some(0), Some(0)));
    assert_eq!(r["recommend"], "on_us");
    assert!(candidate(&r, "lightning").is_none());
    let priced = routes_stored(a);
    assert_eq!(priced, 4);

    // Refusals: each with its stable code, none recorded.
    let mainnet = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";
    let expiring = b.call("ln.invoice", json!({"amount_msat": 1_000_000, "description": "x", "expiry_secs": 1}));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let cases: Vec<(Value, u16, &str)> = vec![
        (sat(1_000, "not a destination"), 400, "invalid_destination"),
        (sat(1_000, mainnet), 400, "wrong_network"),
        (sat(30_000, bolt11), 400, "amount_mismatch"),
        (sat(1_000, &format!("bitcoin:{b_addr}?amount=0.0002&lightning={bolt11}&req-x=1")), 400, "invalid_destination"),
        (sat(1_000, expiring["bolt11"].as_str().unwrap()), 400, "invoice_expired"),
        (sat(0, &addr), 400, "invalid_amount"),
        (
            json!({"amount": {"minor_units": 1000, "currency": "SAT"}, "destination": addr, "priority": "asap"}),
            400,
            "invalid_priority",
        ),
        (json!({"amount": {"minor_units": 1000, "currency": "XYZ"}, "destination": addr}), 400, "unsupported_currency"),
        // No exchange is reachable from these gateways: a fiat amount is refused, never guessed.
        (json!({"amount": {"minor_units": 1000, "currency": "EUR"}, "destination": addr}), 503, "rate_unavailable"),
        // More than the treasury holds, and more than the channel can send.
        (sat(1_000_000_000_000, &addr), 422, "insufficient_funds"),
    ];
    for (body, want_status, want_code) in cases {
        let (status, r) = route(port, &key, body.clone());
        assert_eq!((status, r["error"]["code"].as_str()), (want_status, Some(want_code)), "{body} → {r}");
    }
    let big = b.call("ln.invoice", json!({"amount_msat": 5_000_000_000u64, "description": "big", "expiry_secs": 600}));
    let (status, r) = route(port, &key, sat(5_000_000, big["bolt11"].as_str().unwrap()));
    assert_eq!((status, r["error"]["code"].as_str()), (422, Some("insufficient_funds")), "{r}");
    assert_eq!(r["error"]["unavailable"][0]["code"], "insufficient_liquidity");
    // Keys: none → 401, a quote-only key → 403.
    assert_eq!(route(port, "sk_wrong", sat(1_000, &addr)).0, 401);
    assert_eq!(route(port, &a.api_key("quote"), sat(1_000, &addr)).0, 403);
    assert_eq!(routes_stored(a), priced, "refused requests record no route");
}
