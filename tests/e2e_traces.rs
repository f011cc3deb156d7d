//! One trace per payout (issue 17's traces): a client sends a W3C `traceparent` with its route and
//! submit requests; the JSON log of that payout — the route priced, the submit, every saga step,
//! the settlement and the webhook delivered — carries that one `trace_id`, inside the spans
//! `route.select`, `ledger.debit`, `payment` / `rail.submit` and `webhook.deliver`. A request
//! without a `traceparent` gets a new trace, answered back in its own `traceparent`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::webhook::Receiver;
use common::{outside_address, wait_for, AdminMode, Chain, Gateway};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A POST with `traceparent` (when given); (status, lower-cased head, body).
fn post(
    gw: &Gateway,
    path: &str,
    key: &str,
    idem: Option<&str>,
    traceparent: Option<&str>,
    body: &Value,
) -> (u16, String, Value) {
    let body = body.to_string();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(idem) = idem {
        head.push_str(&format!("X-Idempotency-Key: {idem}\r\n"));
    }
    if let Some(tp) = traceparent {
        head.push_str(&format!("traceparent: {tp}\r\n"));
    }
    let mut stream = TcpStream::connect(("127.0.0.1", gw.api_port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(format!("{head}\r\n{body}").as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_ascii_lowercase(), serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn a_payouts_log_carries_one_trace_from_route_to_webhook() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(
        &chain,
        &home.path().join("gw"),
        AdminMode::Socket,
        "json",
        "[routing]\nsaga_interval_ms = 100\n",
    );
    let addr = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &addr);
    wait_for("the wallet to sync", MINUTE, || gw.synced_height() == 101);
    let key = gw.api_key("pay,read");
    let receiver = Receiver::start(200);
    let (status, _, hook) = post(&gw, "/v1/webhooks", &key, None, None, &json!({"url": receiver.url()}));
    assert_eq!(status, 201, "{hook}");

    let parent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let body =
        json!({"amount": {"minor_units": 30_000, "currency": "SAT"}, "destination": outside_address(71).to_string()});
    let (status, head, route) = post(&gw, "/v1/payments/route", &key, None, Some(&parent), &body);
    assert_eq!(status, 200, "{route}");
    assert!(head.contains(&format!("traceparent: 00-{TRACE}-")), "the trace is answered back: {head}");
    let submit = json!({"route_id": route["route_id"], "rail": "onchain"});
    let (status, _, accepted) = post(&gw, "/v1/payments/submit", &key, Some("traced-1"), Some(&parent), &submit);
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["payment_id"].as_str().unwrap().to_owned();
    wait_for("the payout in the mempool", MINUTE, || !chain.mempool().is_empty());
    chain.mine(1);
    wait_for("payment.settled delivered", MINUTE, || !receiver.delivered("payment.settled", &id).is_empty());

    // Every line of the payout's story names the trace.
    let log = gw.log();
    let lines: Vec<Value> = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let traced: Vec<&Value> = lines.iter().filter(|l| l.to_string().contains(TRACE)).collect();
    let said = |message: &str| traced.iter().any(|l| l["fields"]["message"] == message);
    for message in ["route priced", "payment submitted", "payment step", "payment settled", "webhook delivered"] {
        assert!(
            said(message),
            "no {message:?} line carries the trace:\n{}",
            traced.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n")
        );
    }
    let spans: std::collections::BTreeSet<String> = traced
        .iter()
        .flat_map(|l| l["spans"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["name"].as_str().map(str::to_owned))
        .collect();
    for span in ["request", "route.select", "ledger.debit", "payment", "rail.submit", "webhook.deliver"] {
        assert!(spans.contains(span), "no {span} span: {spans:?}");
    }
    // The saga's lines of this payout name it and its route too.
    let settled = traced.iter().find(|l| l["fields"]["message"] == "payment settled").unwrap();
    assert!(settled.to_string().contains(route["route_id"].as_str().unwrap()), "{settled}");
    // No other payout's line carries this trace.
    assert!(traced.iter().all(|l| !l.to_string().contains("pay_") || l.to_string().contains(&id)));

    // Without a traceparent: a new trace, answered back.
    let (status, head, _) = post(&gw, "/v1/payments/route", &key, None, None, &body);
    assert_eq!(status, 200);
    let answered = head.lines().find(|l| l.starts_with("traceparent: 00-")).unwrap_or_else(|| panic!("{head}"));
    assert!(!answered.contains(TRACE) && answered.len() == "traceparent: 00-".len() + 32 + 1 + 16 + 3, "{answered}");
}
