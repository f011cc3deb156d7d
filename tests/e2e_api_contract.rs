//! The seed's API flow as a wallet developer follows it (sections 2.5 and 3.6): a quote, then a
//! route with that quote, `method` and `geo`, then a submit with `psp` — against a real gateway on
//! a real regtest bitcoind. A fiat payout is priced on the sell side (the payee receives fewer
//! sats than the mid-rate gives), and its fill and spread show in `fx.report` and `fx.register`.
//! Quotes that do not fit are refused with stable codes. Every error the framework answers by
//! itself (413, 404, 405, 415) comes in the API's JSON shape, the admin RPC's too;
//! `method_not_found` lists every method; API keys and the config's markups are audited; every
//! saga step is published through the outbox.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{http_get_with_key, http_post, outside_address, wait_for, AdminMode, Chain, Gateway};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn fx(markup_bps: u32) -> String {
    format!(
        "[fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = {{ \"BTC/EUR\" = \"85000\" }}\nquote_ttl_secs = 4\nmarkup_bps = {markup_bps}\n"
    )
}

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn code(answer: &(u16, Value)) -> (u16, String) {
    (answer.0, answer.1["error"]["code"].as_str().unwrap_or_default().to_owned())
}

fn quote(gw: &Gateway, key: &str, side: &str, amount_minor: u64) -> Value {
    let path = format!("/v1/fx/quote?base=EUR&quote=BTC&side={side}&amount_minor={amount_minor}");
    let (status, q) = http_get_with_key(gw.api_port, &path, Some(key));
    assert_eq!(status, 200, "{q}");
    q
}

/// Sends `request` as it is; (status, headers, body).
fn raw(port: u16, request: &[u8]) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), serde_json::from_str(body).unwrap_or(Value::Null))
}

fn audit_actions(gw: &Gateway) -> Vec<Value> {
    gw.call("audit.list", json!({}))["entries"].as_array().unwrap().clone()
}

#[test]
fn the_seed_flow_prices_fiat_on_the_sell_side_and_every_error_is_json() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("gw");
    let mut gw = Gateway::start_with(&chain, &dir, AdminMode::Socket, "human", &fx(50));
    let addr = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &addr);
    wait_for("the wallet to sync", MINUTE, || gw.synced_height() == 101);
    let key = gw.api_key("quote,pay,read");
    let payee = outside_address(31).to_string();

    // The seed's flow: quote, route with it (plus the destination a bitcoin payout needs), submit
    // with `psp`. 10.00 EUR at 85,000 EUR/BTC is 11,764.7 sat at the mid; the sell side with a
    // 50 bps markup gives the payee 11,705 sat, never more than the mid.
    let q = quote(&gw, &key, "sell", 1_000);
    assert_eq!((q["pair"].as_str(), q["amount_sat"].as_u64()), (Some("EUR/BTC"), Some(11_705)), "{q}");
    let q_id = q["quote_id"].as_str().unwrap().to_owned();
    let seed_route = json!({"amount": {"minor_units": 1_000, "currency": "EUR"}, "method": "crypto", "geo": "DE",
                            "direction": "payout", "destination": payee, "fx_quote_id": q_id});
    let (status, r) = post(&gw, "/v1/payments/route", &key, None, &seed_route);
    assert_eq!(status, 200, "{r}");
    assert_eq!((r["fx_quote_id"].as_str(), r["amount_sat"].as_u64()), (Some(q_id.as_str()), Some(11_705)), "{r}");
    assert_eq!((r["method"].as_str(), r["geo"].as_str()), (Some("crypto"), Some("DE")));
    assert_eq!((r["recommend"].as_str(), r["candidates"][0]["psp"].as_str()), (Some("onchain"), Some("onchain")));
    let stored: (Option<String>, Option<String>) = common::books(&dir)
        .query_row("SELECT method, geo FROM routes WHERE route_id = ?1", [r["route_id"].as_str().unwrap()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!(stored, (Some("crypto".into()), Some("DE".into())));
    let both = json!({"route_id": r["route_id"], "rail": "onchain", "psp": "lightning"});
    assert_eq!(code(&post(&gw, "/v1/payments/submit", &key, Some("both"), &both)), (400, "invalid_request".into()));
    let seed_submit = json!({"route_id": r["route_id"], "psp": r["recommend"], "fx_quote_id": q_id});
    let (status, accepted) = post(&gw, "/v1/payments/submit", &key, Some("pay_001"), &seed_submit);
    assert_eq!((status, accepted["status"].as_str()), (202, Some("SUBMITTED")), "{accepted}");
    let id = accepted["payment_id"].as_str().unwrap().to_owned();
    wait_for("the payout in the mempool", MINUTE, || !chain.mempool().is_empty());
    chain.mine(1);
    wait_for("the payout to settle", MINUTE, || {
        http_get_with_key(gw.api_port, &format!("/v1/payments/{id}"), Some(&key)).1["status"] == "SETTLED"
    });

    // Every saga step went through the outbox, in order.
    let events: Vec<String> = gw.call("payment.get", json!({"payment_id": id}))["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["payment.submitted", "payment.sending", "payment.sent", "payment.settled"]);

    // The fill of the payout's quote: spread = 11,764.7 − 11,705 sat, truncated; linked to the
    // payment and to the ledger entry that booked both legs.
    let report = gw.call("fx.report", json!({}));
    let line = &report["pairs"][0];
    assert_eq!(
        (
            line["fills"].as_u64(),
            line["payout_fills"].as_u64(),
            line["filled_sat"].as_u64(),
            line["spread_minor"].as_i64()
        ),
        (Some(1), Some(1), Some(11_705), Some(59)),
        "{report}"
    );
    let register = gw.call("fx.register", json!({}));
    let row = register["quotes"].as_array().unwrap().iter().find(|x| x["quote_id"] == q_id.as_str()).unwrap().clone();
    assert!(row["fx_entry_id"].as_str().unwrap().starts_with("fx_"), "{row}");
    assert_eq!(row["payment_id"], id.as_str());
    assert_eq!(row["payment_state"], "settled");
    assert_eq!(row["ledger_reference"], format!("pay:{id}:settle"));
    let verify = gw.call("ledger.verify", json!({}));
    assert_eq!(verify["ok"], true, "{verify:#}");

    // Quotes that do not fit the payout are refused, and nothing is routed.
    let eur = |quote_id: &Value, minor: u64| json!({"amount": {"minor_units": minor, "currency": "EUR"}, "destination": payee, "fx_quote_id": quote_id});
    let other_key = gw.api_key("quote,pay");
    let theirs = quote(&gw, &other_key, "sell", 1_000);
    let route_with = |body: &Value| code(&post(&gw, "/v1/payments/route", &key, None, body));
    assert_eq!(route_with(&eur(&theirs["quote_id"], 1_000)), (404, "quote_not_found".into()));
    assert_eq!(route_with(&eur(&quote(&gw, &key, "sell", 2_000)["quote_id"], 1_000)), (400, "quote_mismatch".into()));
    assert_eq!(
        route_with(&eur(&quote(&gw, &key, "buy", 1_000)["quote_id"], 1_000)),
        (422, "quote_side_mismatch".into())
    );
    assert_eq!(route_with(&eur(&json!(q_id), 1_000)), (409, "quote_already_filled".into()));
    let sats = json!({"amount": {"minor_units": 1_000, "currency": "SAT"}, "destination": payee, "fx_quote_id": q_id});
    assert_eq!(route_with(&sats), (400, "quote_mismatch".into()));
    let late = quote(&gw, &key, "sell", 1_000);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(route_with(&eur(&late["quote_id"], 1_000)), (410, "quote_expired".into()));
    // The seed's own method names a rail this gateway does not have; a rail method restricts.
    let mut card = seed_route.clone();
    card["method"] = "card".into();
    card.as_object_mut().unwrap().remove("fx_quote_id");
    assert_eq!(route_with(&card), (422, "method_not_supported".into()));
    let sat_route = |method: &str| json!({"amount": {"minor_units": 5_000, "currency": "SAT"}, "destination": payee, "method": method});
    let (status, excluded) = post(&gw, "/v1/payments/route", &key, None, &sat_route("lightning"));
    assert_eq!(
        (status, excluded["error"]["unavailable"][0]["code"].as_str()),
        (422, Some("method_excluded")),
        "{excluded}"
    );
    let mut no_destination = seed_route.clone();
    no_destination.as_object_mut().unwrap().remove("destination");
    assert_eq!(route_with(&no_destination), (400, "destination_required".into()));
    let routes: i64 = common::books(&dir).query_row("SELECT COUNT(*) FROM routes", [], |r| r.get(0)).unwrap();
    assert_eq!(routes, 1, "refused routes record nothing");

    // Errors the framework answers itself come in the API's shape.
    let port = gw.api_port;
    let big = format!("{{\"destination\":\"{}\"}}", "x".repeat(1 << 20));
    let request = format!(
        "POST /v1/payments/route HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{big}",
        big.len()
    );
    let (status, _, body) = raw(port, request.as_bytes());
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("body_too_large")), "{body}");
    let (status, _, body) = raw(port, b"GET /v1/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{body}");
    let (status, head, body) = raw(port, b"GET /v1/payments/route HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((status, body["error"]["code"].as_str()), (405, Some("method_not_allowed")), "{body}");
    assert!(head.contains("allow: post"), "{head}");
    let form = format!(
        "POST /v1/payments/route HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 3\r\nConnection: close\r\n\r\na=b"
    );
    let (status, _, body) = raw(port, form.as_bytes());
    assert_eq!((status, body["error"]["code"].as_str()), (415, Some("unsupported_media_type")), "{body}");

    // The admin RPC: an oversized body is a JSON-RPC error too; method_not_found lists every method.
    // (100 kB: over the 64 KiB limit, small enough that the client has written it all before the
    // refusal comes back.)
    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "getinfo", "params": {"x": "y".repeat(100_000)}});
    let answer = gw.call_raw(huge.to_string().as_bytes());
    assert_eq!(answer["error"]["data"]["code"], "body_too_large", "{answer}");
    let answer = gw.call_raw(br#"{"jsonrpc":"2.0","id":1,"method":"no.such"}"#);
    let methods: Vec<&str> =
        answer["error"]["data"]["methods"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    for m in ["getinfo", "ln.open_channel", "ledger.verify", "fx.register", "audit.verify", "webhook.redeliver"] {
        assert!(methods.contains(&m), "{m} missing from {methods:?}");
    }
    assert_eq!(methods, sendero::admin::METHODS, "every method of the dispatch table");

    // API keys and the config's policy are audited; a changed markup is audited at the next start.
    let entries = audit_actions(&gw);
    let creates = entries.iter().filter(|e| e["action"] == "apikey.create").count();
    assert_eq!(creates, 2, "{entries:?}");
    assert_eq!(entries.iter().filter(|e| e["action"] == "config.policy").count(), 1);
    gw.stop();
    let config = dir.join("senderod.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace("markup_bps = 50", "markup_bps = 60");
    std::fs::write(&config, text).unwrap();
    gw.start_again();
    let entries = audit_actions(&gw);
    let policy: Vec<&Value> = entries.iter().filter(|e| e["action"] == "config.policy").collect();
    assert_eq!(policy.len(), 2, "{entries:?}");
    assert_eq!(
        (
            policy[1]["details"]["before"]["fx"]["markup_bps"].as_u64(),
            policy[1]["details"]["after"]["fx"]["markup_bps"].as_u64()
        ),
        (Some(50), Some(60))
    );
    assert_eq!(gw.call("audit.verify", json!({}))["ok"], true);
    gw.restart();
    assert_eq!(audit_actions(&gw).len(), entries.len(), "an unchanged config is not audited again");
}
