//! Rates from three exchanges (a local server answering with their real ticker shapes): combined
//! around the median, an outlier dropped, a source that is down, slow, garbage, zero or negative
//! ignored and logged, and no quote at all once every source has gone stale.

mod common;

use std::time::Duration;

use common::exchange::{Behaviour, ExchangeServer};
use common::{http_get_with_key, wait_for, AdminMode, Chain, Gateway};
use serde_json::Value;

/// A chain and a gateway whose only rate sources are the three exchanges served by `ex`, with
/// `settings` added to its `[fx]` section.
fn exchange_gateway(ex: &ExchangeServer, settings: &str) -> (Chain, tempfile::TempDir, Gateway) {
    let url = ex.url();
    let fx = format!(
        "[fx]\npairs = [\"BTC/EUR\"]\nsources = [\"kraken\", \"bitstamp\", \"coinbase\"]\n\
         source_urls = {{ kraken = \"{url}\", bitstamp = \"{url}\", coinbase = \"{url}\" }}\n{settings}"
    );
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", &fx);
    (chain, home, gw)
}

fn set_all(ex: &ExchangeServer, behaviour: Behaviour) {
    for name in ["kraken", "bitstamp", "coinbase"] {
        ex.set(name, behaviour.clone());
    }
}

#[test]
fn exchange_rates_are_combined_and_bad_sources_ignored() {
    let ex = ExchangeServer::start();
    for (name, price) in [("kraken", 85_000), ("bitstamp", 85_010), ("coinbase", 84_990)] {
        ex.set(name, Behaviour::Price(price));
    }
    let (_chain, _home, gw) = exchange_gateway(
        &ex,
        "markup_bps = 0\nrefresh_secs = 1\nrate_ttl_secs = 3\nsource_timeout_ms = 500\nmax_deviation_bps = 100\n",
    );
    let key = gw.api_key("quote");
    // With no markup, the quoted BTC/EUR rate is the combined mid.
    let mid = || {
        let (status, body) = http_get_with_key(
            gw.api_port,
            "/v1/fx/quote?base=BTC&quote=EUR&side=buy&amount_minor=100000000",
            Some(&key),
        );
        if status == 200 {
            body["rate"].as_str().unwrap_or_default().to_owned()
        } else {
            format!("{status} {}", body["error"]["code"])
        }
    };
    let expect = |what: &str, rate: &str| {
        wait_for(what, Duration::from_secs(20), || mid() == rate);
    };

    expect("all three agree: their mean", "85000");
    ex.set("coinbase", Behaviour::Price(95_000));
    expect("the outlier dropped", "85005");
    ex.set("coinbase", Behaviour::Status(500));
    ex.set("bitstamp", Behaviour::Price(85_020));
    expect("a source answering 500 ignored", "85010");
    ex.set("coinbase", Behaviour::Slow(70_000, Duration::from_secs(2)));
    ex.set("kraken", Behaviour::Price(85_030));
    expect("a slow source ignored", "85025");
    ex.set("coinbase", Behaviour::Garbage);
    ex.set("kraken", Behaviour::Price(85_040));
    expect("a garbage answer ignored", "85030");
    ex.set("coinbase", Behaviour::Zero);
    ex.set("kraken", Behaviour::Price(85_050));
    expect("a zero price ignored", "85035");
    ex.set("coinbase", Behaviour::Negative);
    ex.set("kraken", Behaviour::Price(85_060));
    expect("a negative price ignored", "85040");
    assert!(gw.log().contains("fx source ignored"), "ignored sources are logged");

    // Every source down: once the last rate is older than rate_ttl_secs, no quote.
    set_all(&ex, Behaviour::Status(503));
    expect("503 once every rate is stale", "503 \"rate_unavailable\"");
}

#[test]
fn execution_fills_once_within_drift_and_refuses_otherwise() {
    let ex = ExchangeServer::start();
    set_all(&ex, Behaviour::Price(85_000));
    let settings = "markup_bps = 50\nrefresh_secs = 1\nrate_ttl_secs = 10\nquote_ttl_secs = 6\n\
                    allowed_drift_bps = 100\nmax_conversion_cost_bps = 120\n";
    let (_chain, _home, mut gw) = exchange_gateway(&ex, settings);
    let (key, invoice_only) = (gw.api_key("quote,pay"), gw.api_key("invoice,quote"));
    let port = gw.api_port;
    let quote = |key: &str| -> Value {
        let mut q = Value::Null;
        wait_for("a quote", Duration::from_secs(20), || {
            let (status, body) =
                http_get_with_key(port, "/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000", Some(key));
            q = body;
            status == 200
        });
        q
    };
    let body_of = |q: &Value| {
        format!(r#"{{"quote_id":"{}","amount_minor":100000,"pair":"EUR/BTC"}}"#, q["quote_id"].as_str().unwrap())
    };
    let exec = |idem: Option<&str>, body: &str, key: &str| common::http_post(port, "/v1/fx/execute", key, idem, body);
    let code = |raw: &str| {
        serde_json::from_str::<Value>(raw).unwrap()["error"]["code"].as_str().unwrap_or_default().to_owned()
    };
    let datadir = gw.datadir.clone();
    let fills = |quote_id: &str| -> i64 {
        let conn = common::books(&datadir);
        conn.query_row("SELECT COUNT(*) FROM fx_fills WHERE quote_id = ?1", [quote_id], |r| r.get(0)).unwrap()
    };

    // Within drift: filled at the locked rate; the same key and body replay the same bytes, even
    // after a restart.
    let a = quote(&key);
    let (status, first) = exec(Some("k-a"), &body_of(&a), &key);
    assert_eq!(status, 200, "{first}");
    let filled: Value = serde_json::from_str(&first).unwrap();
    assert_eq!((filled["status"].as_str(), filled["avg_rate"].as_str()), (Some("filled"), a["rate"].as_str()));
    assert!(filled["fx_entry_id"].as_str().unwrap().starts_with("fx_"));
    assert_eq!(exec(Some("k-a"), &body_of(&a), &key), (200, first.clone()));
    gw.restart();
    assert_eq!(exec(Some("k-a"), &body_of(&a), &key), (200, first.clone()), "replayed byte for byte after a restart");
    assert_eq!(fills(a["quote_id"].as_str().unwrap()), 1);

    // Refusals.
    let other_body = body_of(&a).replace("100000", "100001");
    let (status, raw) = exec(Some("k-a"), &other_body, &key);
    assert_eq!((status, code(&raw)), (422, "idempotency_mismatch".into()));
    let (status, raw) = exec(None, &body_of(&a), &key);
    assert_eq!((status, code(&raw)), (400, "idempotency_key_required".into()));
    let (status, raw) = exec(Some("k-x"), &body_of(&a), &invoice_only);
    assert_eq!((status, code(&raw)), (403, "forbidden".into()));
    let (status, raw) = exec(Some("k-other"), &body_of(&a), &key);
    assert_eq!((status, code(&raw)), (409, "quote_already_filled".into()));

    // 50 concurrent executes with one key: exactly one fill, every answer that fill or "in flight".
    let b = quote(&key);
    let body_b = body_of(&b);
    let answers: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50).map(|_| s.spawn(|| exec(Some("k-b"), &body_b, &key))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(fills(b["quote_id"].as_str().unwrap()), 1);
    let ok: Vec<&String> = answers.iter().filter(|(s, _)| *s == 200).map(|(_, b)| b).collect();
    assert!(!ok.is_empty() && ok.iter().all(|b| *b == ok[0]), "every 200 is the same fill");
    assert!(answers.iter().all(|(s, b)| *s == 200 || (*s == 409 && code(b) == "idempotency_in_flight")), "{answers:?}");

    // The market moves 1.8 %: beyond the drift, a fresh quote comes back with the refusal.
    let c = quote(&key);
    set_all(&ex, Behaviour::Price(86_500));
    wait_for("the new rate", Duration::from_secs(20), || quote(&key)["rate"] != c["rate"]);
    let (status, raw) = exec(Some("k-c"), &body_of(&c), &key);
    assert_eq!((status, code(&raw)), (409, "requote_required".into()), "{raw}");
    let fresh = &serde_json::from_str::<Value>(&raw).unwrap()["error"]["quote"];
    assert_ne!(fresh["quote_id"], c["quote_id"]);
    assert_eq!(fresh["pair"], "EUR/BTC");

    // Within the drift but over the conversion-cost budget: 85,000 → 85,765 (+0.9 %) makes the
    // locked EUR/BTC rate 141 bps worse than the market for the client (budget 120).
    set_all(&ex, Behaviour::Price(85_000));
    wait_for("the rate back", Duration::from_secs(20), || quote(&key)["rate"] == a["rate"]);
    let d = quote(&key);
    set_all(&ex, Behaviour::Price(85_765));
    wait_for("the moved rate", Duration::from_secs(20), || quote(&key)["rate"] != d["rate"]);
    let (status, raw) = exec(Some("k-d"), &body_of(&d), &key);
    assert_eq!((status, code(&raw)), (422, "fx_budget_exceeded".into()), "{raw}");

    // After expiry: gone.
    let e = quote(&key);
    std::thread::sleep(Duration::from_secs(7));
    let (status, raw) = exec(Some("k-e"), &body_of(&e), &key);
    assert_eq!((status, code(&raw)), (410, "quote_expired".into()));
    assert_eq!(fills(e["quote_id"].as_str().unwrap()), 0);

    // The market moves against the gateway beyond the drift: the requote shows what honouring
    // the old quote would have given away (the client would have paid fewer sats than now).
    let f = quote(&key);
    set_all(&ex, Behaviour::Price(83_000));
    wait_for("the lower rate", Duration::from_secs(20), || quote(&key)["rate"] != f["rate"]);
    let (status, raw) = exec(Some("k-f"), &body_of(&f), &key);
    assert_eq!((status, code(&raw)), (409, "requote_required".into()), "{raw}");
    let fresh_f = serde_json::from_str::<Value>(&raw).unwrap()["error"]["quote"].clone();
    let loss = fresh_f["quote_amount_minor"].as_i64().unwrap() - f["quote_amount_minor"].as_i64().unwrap();
    assert!(loss > 0, "{fresh_f} against {f}");

    // The operator's report.
    let report = gw.cli(&["fx.report"]);
    let line = &report["pairs"][0];
    assert_eq!(
        (line["pair"].as_str(), line["fills"].as_u64(), line["requotes"].as_u64()),
        (Some("EUR/BTC"), Some(2), Some(2)),
        "{report}"
    );
    assert_eq!(line["requote_loss_minor"].as_i64(), Some(loss), "the first requote cost nothing: {report}");
    // Both fills are booked with both legs: the gateway gave 2 × 1,000.00 EUR and took their sats.
    let balances = gw.call("ledger.balances", serde_json::json!({}));
    let account = |name: &str, currency: &str| {
        balances["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == name && a["currency"] == currency)
            .map_or(0, |a| a["balance"].as_i64().unwrap())
    };
    assert_eq!((account("fx:EUR", "EUR"), account("fx_clients:EUR", "EUR")), (-200_000, 200_000), "{balances}");
    assert!(
        account("fx:BTC", "BTC") > 0 && account("fx:BTC", "BTC") == -account("fx_clients:BTC", "BTC"),
        "{balances}"
    );
    let register = gw.call("fx.register", serde_json::json!({}));
    let booked = register["quotes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ledger_reference"].as_str().is_some_and(|l| l.starts_with("fx:fx_")))
        .count();
    assert_eq!(booked, 2, "{register}");
    assert!(line["expired_quotes"].as_u64().unwrap() >= 1 && line["spread_minor"].as_i64().unwrap() > 0, "{report}");
}

#[test]
fn a_stale_rate_finishes_an_execution_within_grace_and_is_refused_after() {
    let ex = ExchangeServer::start();
    set_all(&ex, Behaviour::Price(85_000));
    let (_chain, _home, gw) =
        exchange_gateway(&ex, "refresh_secs = 1\nrate_ttl_secs = 2\ngrace_secs = 6\nquote_ttl_secs = 30\n");
    let key = gw.api_key("quote,pay");
    let path = "/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000";
    let mut quotes = Vec::new();
    wait_for("two quotes", Duration::from_secs(20), || {
        let (status, q) = http_get_with_key(gw.api_port, path, Some(&key));
        if status == 200 {
            quotes.push(q);
        }
        quotes.len() == 2
    });
    let body = |q: &Value| {
        format!(r#"{{"quote_id":"{}","amount_minor":100000,"pair":"EUR/BTC"}}"#, q["quote_id"].as_str().unwrap())
    };

    // Every source goes down: the rate goes stale, new quotes are refused at once…
    set_all(&ex, Behaviour::Status(502));
    wait_for("quotes refused once the rate is stale", Duration::from_secs(10), || {
        http_get_with_key(gw.api_port, path, Some(&key)).0 == 503
    });
    // …but an execution already started still finishes inside the grace window…
    let (status, raw) = common::http_post(gw.api_port, "/v1/fx/execute", &key, Some("g-1"), &body(&quotes[0]));
    assert_eq!(status, 200, "{raw}");
    // …and not after it.
    std::thread::sleep(Duration::from_secs(7));
    let (status, raw) = common::http_post(gw.api_port, "/v1/fx/execute", &key, Some("g-2"), &body(&quotes[1]));
    assert_eq!(status, 503, "{raw}");
    assert!(raw.contains("rate_unavailable"));
    // A 503 is not stored: the same key runs again once rates are back.
    set_all(&ex, Behaviour::Price(85_000));
    wait_for("the retry to fill", Duration::from_secs(20), || {
        common::http_post(gw.api_port, "/v1/fx/execute", &key, Some("g-2"), &body(&quotes[1])).0 == 200
    });
}
