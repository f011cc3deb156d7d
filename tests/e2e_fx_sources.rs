//! Rates from three exchanges (a local server answering with their real ticker shapes): combined
//! around the median, an outlier dropped, a source that is down, slow, garbage, zero or negative
//! ignored and logged, and no quote at all once every source has gone stale.

mod common;

use std::process::Command;
use std::time::Duration;

use common::exchange::{Behaviour, ExchangeServer};
use common::{http_get_with_key, wait_for, AdminMode, Chain, Gateway, SENDERO_CLI};
use serde_json::Value;

#[test]
fn exchange_rates_are_combined_and_bad_sources_ignored() {
    let ex = ExchangeServer::start();
    for (name, price) in [("kraken", 85_000), ("bitstamp", 85_010), ("coinbase", 84_990)] {
        ex.set(name, Behaviour::Price(price));
    }
    let url = ex.url();
    let fx = format!(
        "[fx]\npairs = [\"BTC/EUR\"]\nsources = [\"kraken\", \"bitstamp\", \"coinbase\"]\n\
         source_urls = {{ kraken = \"{url}\", bitstamp = \"{url}\", coinbase = \"{url}\" }}\n\
         markup_bps = 0\nrefresh_secs = 1\nrate_ttl_secs = 3\nsource_timeout_ms = 500\nmax_deviation_bps = 100\n"
    );
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", &fx);
    let out = Command::new(SENDERO_CLI)
        .args([
            "--datadir",
            gw.datadir.to_str().unwrap(),
            "apikey.create",
            "--label",
            "t",
            "--scopes",
            "quote",
            "--json",
        ])
        .output()
        .unwrap();
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["key"].as_str().unwrap().to_owned();
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
    for name in ["kraken", "bitstamp", "coinbase"] {
        ex.set(name, Behaviour::Status(503));
    }
    expect("503 once every rate is stale", "503 \"rate_unavailable\"");
}
