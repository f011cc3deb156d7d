//! Prometheus metrics (`[metrics] listen`): after a scripted run — on-chain and Lightning payouts
//! settled, one failed, quotes, routes and a refused request — `GET /metrics` parses as the text
//! exposition format and its figures equal what the admin RPC and the API report: payouts by rail
//! and state, the settle-latency histogram's counts, the router's success rates, the treasury per
//! rail, each channel's liquidity, the fees of the day, HTTP requests by route and status.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::ln::{api_pay_invoice, open_channel, pair_each, unreachable_invoice};
use common::{api_payout, final_status, http_get_with_key, outside_address, wait_for};
use serde_json::json;

const MINUTE: Duration = Duration::from_secs(60);

/// One sample: the metric's name and labels, its value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// `GET /metrics` on `port`: (status, content type, body).
fn scrape(port: u16) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let content_type =
        head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-type:")).unwrap_or("").to_owned();
    (status, content_type, body.to_owned())
}

/// Parses the text exposition format: `# HELP` / `# TYPE` lines, then `name{k="v",…} value`.
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = body
                    .split("\",")
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once("=\"").unwrap_or_else(|| panic!("bad label {kv:?}: {line}"));
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "bad name: {line}");
        assert!(samples.insert((name, labels), value).is_none(), "duplicate series: {line}");
    }
    samples
}

fn get(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    samples.get(&(name.to_owned(), labels)).copied()
}

#[test]
fn metrics_after_a_scripted_run_parse_and_equal_what_the_admin_rpc_reports() {
    let port = sendero::devchain::free_port().unwrap();
    let extra = format!(
        "[metrics]\nlisten = \"127.0.0.1:{port}\"\n\n[fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = {{ \"BTC/EUR\" = \"85000\" }}\n"
    );
    let p = pair_each(&extra, "");
    open_channel(&p, 1_000_000);
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    let key = a.api_key("pay,read,quote");

    // Two on-chain payouts, two Lightning ones, one Lightning payout the network fails.
    let on: Vec<String> = (0..2)
        .map(|i| api_payout(a, &key, 20_000 + i, &outside_address(60 + i as u8).to_string(), "onchain", "high"))
        .collect();
    wait_for("the payouts in the mempool", MINUTE, || chain.mempool().len() >= 2);
    chain.mine(1);
    let ln: Vec<String> = (0..2).map(|i| api_pay_invoice(a, b, &key, 10_000 + i).0).collect();
    let failing = api_payout(a, &key, 5_000, &unreachable_invoice(&p.b_id, 5_000_000), "lightning", "high");
    for id in on.iter().chain(&ln) {
        assert_eq!(final_status(a, &key, id), "SETTLED");
    }
    assert_eq!(final_status(a, &key, &failing), "FAILED");
    // A quote served from the cache, and a request refused for its key.
    let (status, _) =
        http_get_with_key(a.api_port, "/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=1000", Some(&key));
    assert_eq!(status, 200);
    assert_eq!(http_get_with_key(a.api_port, "/v1/payments", Some("sk_nobody")).0, 401);

    // A Lightning payout settles when its preimage comes back; the channel's balances move a
    // moment later, once the peers have exchanged their new commitments: scrape at rest.
    let balances = || {
        let c = &a.call("ln.channels", json!({}))["channels"][0];
        (c["outbound_msat"].clone(), c["inbound_msat"].clone())
    };
    let mut last = balances();
    wait_for("the channel's balances at rest", MINUTE, || {
        std::thread::sleep(Duration::from_millis(300));
        let now = balances();
        std::mem::replace(&mut last, now.clone()) == now
    });

    let (status, content_type, text) = scrape(port);
    assert_eq!(status, 200, "{text}");
    assert!(content_type.contains("text/plain"), "{content_type}");
    assert!(text.contains("# TYPE sendero_payout_settle_seconds histogram"), "{text}");
    let m = parse(&text);
    eprintln!("{} series scraped", m.len());

    // Payouts by rail and state, as the API lists them.
    let listed = http_get_with_key(a.api_port, "/v1/payments?limit=100", Some(&key)).1;
    let count = |rail: &str, status: &str| {
        listed["payments"].as_array().unwrap().iter().filter(|x| x["rail"] == rail && x["status"] == status).count()
            as f64
    };
    assert_eq!(
        get(&m, "sendero_payouts", &[("rail", "onchain"), ("state", "settled")]),
        Some(count("onchain", "SETTLED"))
    );
    assert_eq!(
        get(&m, "sendero_payouts", &[("rail", "lightning"), ("state", "settled")]),
        Some(count("lightning", "SETTLED"))
    );
    assert_eq!(get(&m, "sendero_payouts", &[("rail", "lightning"), ("state", "failed")]), Some(1.0));
    assert_eq!(get(&m, "sendero_payouts_final_total", &[("rail", "onchain"), ("state", "settled")]), Some(2.0));
    assert_eq!(get(&m, "sendero_payouts_final_total", &[("rail", "lightning"), ("state", "failed")]), Some(1.0));
    assert_eq!(get(&m, "sendero_payout_settle_seconds_count", &[("rail", "lightning")]), Some(2.0));
    assert_eq!(get(&m, "sendero_payout_settle_seconds_bucket", &[("rail", "onchain"), ("le", "+Inf")]), Some(2.0));
    assert_eq!(get(&m, "sendero_saga_backlog", &[("state", "sent")]), Some(0.0));

    // The router's view, the treasury, the channel, the day's fees: the admin RPC's figures.
    let stats = a.call("routing.stats", json!({}));
    for r in stats["rails"].as_array().unwrap() {
        let rail = r["rail"].as_str().unwrap();
        assert_eq!(get(&m, "sendero_rail_success_rate", &[("rail", rail)]), r["success_rate"].as_f64(), "{rail}");
    }
    let treasury = a.call("treasury.status", json!({}));
    for r in treasury["rails"].as_array().unwrap() {
        let rail = r["rail"].as_str().unwrap();
        assert_eq!(get(&m, "sendero_treasury_held_sat", &[("rail", rail)]), r["held_sat"].as_f64(), "{rail}");
    }
    let channel = &a.call("ln.channels", json!({}))["channels"][0];
    let labels = [("channel_id", channel["channel_id"].as_str().unwrap()), ("peer", p.b_id.as_str())];
    assert_eq!(get(&m, "sendero_channel_outbound_msat", &labels), channel["outbound_msat"].as_f64());
    assert_eq!(get(&m, "sendero_channel_inbound_msat", &labels), channel["inbound_msat"].as_f64());
    let fees = a.call("fees.report", json!({}));
    for r in fees["rails"].as_array().unwrap() {
        let rail = r["rail"].as_str().unwrap();
        assert_eq!(get(&m, "sendero_fees_paid_24h_sat", &[("rail", rail)]), r["fees_paid_sat"].as_f64(), "{rail}");
    }
    assert!(get(&m, "sendero_fees_one_by_one_24h_sat", &[("rail", "onchain")]).is_some_and(|v| v > 0.0));

    // HTTP requests by matched route, method and status; quotes from the cache; the FX rate's age.
    let http = |route: &str, method: &str, status: &str| {
        get(&m, "sendero_http_requests_total", &[("route", route), ("method", method), ("status", status)])
    };
    assert_eq!(http("/v1/payments/route", "POST", "200"), Some(5.0));
    assert_eq!(http("/v1/payments/submit", "POST", "202"), Some(5.0));
    assert_eq!(http("/v1/payments", "GET", "401"), Some(1.0));
    assert!(http("/v1/payments/{id}", "GET", "200").is_some_and(|n| n >= 5.0));
    assert_eq!(get(&m, "sendero_fx_rate_cache_total", &[("outcome", "hit")]), Some(1.0));
    let age = m.iter().find(|((name, labels), _)| name == "sendero_fx_rate_age_seconds" && labels["pair"] == "BTC/EUR");
    assert!(age.is_some_and(|(_, secs)| *secs < 120.0), "{text}");
    assert_eq!(get(&m, "sendero_webhook_backlog", &[]), Some(0.0));

    // Off unless configured: B serves no metrics port, and a non-loopback address is refused.
    let refused = std::process::Command::new(common::SENDEROD)
        .args(["--config", "/dev/null", "--network", "regtest"])
        .env("SENDERO_METRICS_LISTEN", "0.0.0.0:9380")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("metrics.listen"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
