//! Who may do what on the public API: every route × {no key, a wrong key, a revoked key, a key
//! without the route's scope, another key's object} is answered 401, 403 or 404 in the API's
//! error shape, and changes nothing (the ledger, the payments, invoices, webhooks and the audit
//! log are the same before and after). Then the per-key rate limit: a burst beyond it is answered
//! 429 `rate_limited` with `Retry-After`, one key's flood leaves another key served, and the
//! bucket refills.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{outside_address, wait_for, AdminMode, Chain, Gateway};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

/// Each POST carries its own idempotency key.
static NEXT_IDEM: AtomicU32 = AtomicU32::new(0);

/// One HTTP/1.1 request; (status, lower-cased head, JSON body or Null).
fn request(gw: &Gateway, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", gw.api_port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let body = body.map(Value::to_string).unwrap_or_default();
    let n = NEXT_IDEM.fetch_add(1, Ordering::Relaxed);
    let idem = if method == "POST" { format!("X-Idempotency-Key: authz-{n}\r\n") } else { String::new() };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{idem}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_ascii_lowercase(), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// What a refused request must not change, as the operator and the owner see it.
fn state(gw: &Gateway, owner: &str) -> Value {
    let list = |path: &str| request(gw, "GET", path, Some(owner), None).2;
    json!({
        "ledger": gw.call("ledger.balances", json!({})),
        "payments": list("/v1/payments?limit=100"),
        "invoices": list("/v1/invoices?limit=100"),
        "webhooks": list("/v1/webhooks"),
        "endpoints": gw.call("webhook.endpoints", json!({})),
        "audit": gw.call("audit.list", json!({}))["entries"].as_array().map(Vec::len),
    })
}

/// A route of the API: method, path, body, the scopes that may use it, and whether its path or
/// body names an object of the owner's (then another key gets 404).
struct Case {
    method: &'static str,
    path: String,
    body: Option<Value>,
    scopes: &'static [&'static str],
    owned: bool,
}

fn case(method: &'static str, path: String, body: Option<Value>, scopes: &'static [&'static str], owned: bool) -> Case {
    Case { method, path, body, scopes, owned }
}

#[test]
fn every_route_refuses_who_may_not_use_it_and_changes_nothing() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let fx = "[fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = { \"BTC/EUR\" = \"85000\" }\nquote_ttl_secs = 600\n";
    let gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", fx);
    let addr = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &addr);
    wait_for("the wallet to sync", MINUTE, || gw.synced_height() == 101);

    // The owner's objects: a quote, a route, a payment, an invoice, a webhook endpoint.
    let owner = gw.api_key("read,quote,invoice,pay");
    let other = gw.api_key("read,quote,invoice,pay");
    let q = request(&gw, "GET", "/v1/fx/quote?base=EUR&quote=BTC&side=sell&amount_minor=1000", Some(&owner), None).2;
    let quote_id = q["quote_id"].as_str().unwrap_or_else(|| panic!("{q}")).to_owned();
    let payee = outside_address(41).to_string();
    let route_body = json!({"amount": {"minor_units": 20_000, "currency": "SAT"}, "destination": payee});
    let r = request(&gw, "POST", "/v1/payments/route", Some(&owner), Some(&route_body)).2;
    let route_id = r["route_id"].as_str().unwrap_or_else(|| panic!("{r}")).to_owned();
    let paid = request(&gw, "POST", "/v1/payments/route", Some(&owner), Some(&route_body)).2;
    let submit = json!({"route_id": paid["route_id"], "rail": "onchain"});
    let (status, _, accepted) = request(&gw, "POST", "/v1/payments/submit", Some(&owner), Some(&submit));
    assert_eq!(status, 202, "{accepted}");
    let payment_id = accepted["payment_id"].as_str().unwrap().to_owned();
    let inv_body = json!({"amount": {"minor_units": 5_000, "currency": "SAT"}, "description": "authz"});
    let (status, _, inv) = request(&gw, "POST", "/v1/invoices", Some(&owner), Some(&inv_body));
    assert_eq!(status, 201, "{inv}");
    let invoice_id = inv["invoice_id"].as_str().unwrap().to_owned();
    let hook_body = json!({"url": "http://127.0.0.1:9/hook", "events": ["payment.settled"]});
    let (status, _, hook) = request(&gw, "POST", "/v1/webhooks", Some(&owner), Some(&hook_body));
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().or(hook["endpoint_id"].as_str()).unwrap_or_else(|| panic!("{hook}")).to_owned();

    // A revoked key, and a key for each scope alone.
    let revoked = gw.cli(&["apikey.create", "--label", "gone", "--scopes", "read,quote,invoice,pay"]);
    gw.call("apikey.revoke", json!({"id": revoked["id"]}));
    let revoked = revoked["key"].as_str().unwrap().to_owned();
    let only: Vec<(&str, String)> = ["read", "quote", "invoice", "pay"].iter().map(|s| (*s, gw.api_key(s))).collect();

    let refund_body = json!({"destination": outside_address(42).to_string(), "amount": "rate_then"});
    let all: &[&str] = &["read", "quote", "invoice", "pay"];
    let cases = [
        case("GET", "/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=1000".into(), None, &["quote"], false),
        case(
            "POST",
            "/v1/fx/execute".into(),
            Some(json!({"quote_id": quote_id, "pair": q["pair"], "amount_minor": 1000})),
            &["pay"],
            true,
        ),
        case("POST", "/v1/payments/route".into(), Some(route_body.clone()), &["pay"], false),
        case(
            "POST",
            "/v1/payments/submit".into(),
            Some(json!({"route_id": route_id, "rail": "onchain"})),
            &["pay"],
            true,
        ),
        case("GET", "/v1/payments".into(), None, &["read", "pay"], false),
        case("GET", format!("/v1/payments/{payment_id}"), None, &["read", "pay"], true),
        case("POST", "/v1/invoices".into(), Some(inv_body.clone()), &["invoice"], false),
        case("GET", "/v1/invoices".into(), None, &["invoice", "read"], false),
        case("GET", format!("/v1/invoices/{invoice_id}"), None, &["invoice", "read"], true),
        case("POST", format!("/v1/invoices/{invoice_id}/refund"), Some(refund_body), &["pay"], true),
        case("POST", "/v1/webhooks".into(), Some(hook_body.clone()), all, false),
        case("GET", "/v1/webhooks".into(), None, all, false),
        case("DELETE", format!("/v1/webhooks/{hook_id}"), None, all, true),
    ];

    let before = state(&gw, &owner);
    let mut checked = 0;
    for c in &cases {
        let what = format!("{} {}", c.method, c.path);
        let mut expect = |key: Option<&str>, status: u16, code: &str, who: &str| {
            let (got, _, body) = request(&gw, c.method, &c.path, key, c.body.as_ref());
            assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{what} with {who}: {body}");
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
            checked += 1;
        };
        expect(None, 401, "unauthorized", "no key");
        expect(Some("sk_not_a_key_of_this_gateway"), 401, "unauthorized", "a wrong key");
        expect(Some(&revoked), 401, "unauthorized", "a revoked key");
        for (scope, key) in &only {
            if !c.scopes.contains(scope) {
                expect(Some(key), 403, "forbidden", &format!("a {scope}-only key"));
            }
        }
        if c.owned {
            let (got, _, body) = request(&gw, c.method, &c.path, Some(&other), c.body.as_ref());
            assert_eq!(got, 404, "{what} with another key: {body}");
            checked += 1;
        }
    }
    eprintln!("{checked} refusals checked over {} routes", cases.len());
    assert_eq!(state(&gw, &owner), before, "a refused request changed something");

    // The owner may still use what the refused requests named.
    let (status, _, p) = request(&gw, "GET", &format!("/v1/payments/{payment_id}"), Some(&owner), None);
    assert_eq!((status, p["payment_id"].as_str()), (200, Some(payment_id.as_str())));
    let (status, _, _) = request(&gw, "DELETE", &format!("/v1/webhooks/{hook_id}"), Some(&owner), None);
    assert_eq!(status, 204);
}

#[test]
fn a_key_beyond_its_rate_limit_is_told_when_to_come_back_and_others_are_served() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(&chain, &home.path().join("gw"), AdminMode::Socket);
    let flood = gw.api_key("read");
    let calm = gw.api_key("read");
    // `[api] rate_limit_per_sec = 2`, `rate_limit_burst = 5`, set the way an operator may.
    gw.env = vec![
        ("SENDERO_API_RATE_LIMIT_PER_SEC".into(), "2".into()),
        ("SENDERO_API_RATE_LIMIT_BURST".into(), "5".into()),
    ];
    gw.restart();
    let statuses: Vec<(u16, String, Value)> =
        (0..8).map(|_| request(&gw, "GET", "/v1/payments", Some(&flood), None)).collect();
    let served = statuses.iter().filter(|(s, _, _)| *s == 200).count();
    let limited: Vec<&(u16, String, Value)> = statuses.iter().filter(|(s, _, _)| *s == 429).collect();
    assert!((5..=6).contains(&served), "a burst of 5 (and at most one refilled): {served} served");
    assert_eq!(served + limited.len(), 8);
    let (_, head, body) = limited[0];
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(head.contains("retry-after: 1"), "{head}");
    assert_eq!(body["error"]["retry_after_sec"], 1);
    // Another key has its own budget.
    assert_eq!(request(&gw, "GET", "/v1/payments", Some(&calm), None).0, 200);
    // The flooding key is served again once its bucket refills.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(request(&gw, "GET", "/v1/payments", Some(&flood), None).0, 200);
}
