//! One trace per payout (issue 17's traces): a client sends a W3C `traceparent` with its route and
//! submit requests; the JSON log of that payout — the route priced, the submit, every saga step,
//! the settlement and the webhook delivered — carries that one `trace_id`, inside the spans
//! `route.select`, `ledger.debit`, `payment` / `rail.submit` and `webhook.deliver`. A request
//! without a `traceparent` gets a new trace, answered back in its own `traceparent`. The same
//! spans reach an OTLP collector (`[telemetry] otlp_endpoint`; here a local OTLP/HTTP JSON
//! receiver) in that one trace.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
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

/// An OTLP/HTTP collector on 127.0.0.1: keeps every JSON export request's body, answers 200.
struct Collector {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (port, bodies) = (listener.local_addr().unwrap().port(), Arc::new(Mutex::new(vec![])));
        let kept = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let (mut line, mut len) = (String::new(), 0);
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_ok() {
                    kept.lock().unwrap().push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                }
                let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
                let _ = reader.into_inner().write_all(answer.as_bytes());
            }
        });
        Collector { port, bodies }
    }

    /// (trace id, span name, service name) of every span received.
    fn spans(&self) -> Vec<(String, String, String)> {
        let mut spans = vec![];
        for body in self.bodies.lock().unwrap().iter() {
            for rs in body["resourceSpans"].as_array().into_iter().flatten() {
                let service = rs["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "service.name")
                    .and_then(|a| a["value"]["stringValue"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                    for span in ss["spans"].as_array().into_iter().flatten() {
                        let field = |k: &str| span[k].as_str().unwrap_or_default().to_owned();
                        spans.push((field("traceId"), field("name"), service.clone()));
                    }
                }
            }
        }
        spans
    }
}

#[test]
fn a_payouts_log_carries_one_trace_from_route_to_webhook() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let collector = Collector::start();
    let gw = Gateway::start_with(
        &chain,
        &home.path().join("gw"),
        AdminMode::Socket,
        "json",
        &format!(
            "[routing]\nsaga_interval_ms = 100\n\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}/v1/traces\"\n",
            collector.port
        ),
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

    // The collector got the same spans, in the client's trace, from the service senderod.
    let names = || -> std::collections::BTreeSet<String> {
        collector.spans().into_iter().filter(|(t, _, svc)| t == TRACE && svc == "senderod").map(|(_, n, _)| n).collect()
    };
    let exported = ["request", "route.select", "ledger.debit", "payment", "rail.submit", "webhook.deliver"];
    wait_for("the spans at the OTLP collector", MINUTE, || exported.iter().all(|n| names().contains(*n)));
    let in_trace = collector.spans().iter().filter(|(t, _, _)| t == TRACE).count();
    eprintln!("OTLP: {} spans exported, {in_trace} in the payout's trace", collector.spans().len());

    // Without a traceparent: a new trace, answered back.
    let (status, head, _) = post(&gw, "/v1/payments/route", &key, None, None, &body);
    assert_eq!(status, 200);
    let answered = head.lines().find(|l| l.starts_with("traceparent: 00-")).unwrap_or_else(|| panic!("{head}"));
    assert!(!answered.contains(TRACE) && answered.len() == "traceparent: 00-".len() + 32 + 1 + 16 + 3, "{answered}");
}
