//! A front end (`senderod --role api`) of a PostgreSQL store serves what only the node can do by
//! handing it to the node's API: Lightning routes and payouts to every destination kind (a
//! BOLT11 invoice, a BOLT12 offer, a keysend) of a plain ldk-node — each SETTLED and received
//! once —, invoices with the node's BOLT11 invoice and an address no other invoice has, paid by
//! that plain node. It refuses on-chain payouts by the reserve the node's guard published,
//! follows the rail rules set on the node, and refuses the admin calls that act on the node's
//! keys or node (`node_only`). With keysends submitted through it in flight, the node is
//! SIGKILLed: the front end answers `503 node_unavailable` for Lightning meanwhile (on-chain
//! routes still served); once the node is back each key answers the same payment, and each
//! payment ends once: paid and received once, or — when the kill cost the channel
//! (rust-lightning #4286, never hidden) — failed and never received.

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::ln::{wait_ln_running, MINUTE};
use common::plain::{candidate, fund_and_open, post, received_once, route, submit, wait_settled, PlainNode};
use common::postgres::PgServer;
use common::{http_get_with_key, outside_address, wait_for, AdminMode, Chain, Gateway};
use sendero_lightning::ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use serde_json::{json, Value};

/// The on-chain rail in a `treasury.status` answer.
fn onchain(status: &Value) -> Value {
    status["rails"].as_array().unwrap().iter().find(|r| r["rail"] == "onchain").cloned().unwrap_or_default()
}

/// The rail's entry in a route's `unavailable`, if any.
fn refused<'a>(route: &'a Value, rail: &str) -> Option<&'a Value> {
    route["unavailable"].as_array()?.iter().find(|u| u["rail"] == rail)
}

#[test]
fn a_front_end_hands_lightning_and_invoices_to_the_node_and_refuses_by_its_published_reserve() {
    common::without_rate_limit();
    let server = PgServer::get();
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let url = server.new_database("ln_front_end");
    let extra = format!("[store]\nurl = \"{url}\"\n\n[routing]\nlightning_wait_secs = 30\nsaga_interval_ms = 200\n");
    let mut a = Gateway::start_with(&chain, &home.path().join("node"), AdminMode::Socket, "human", &extra);
    let b = PlainNode::start(&chain, &home.path().join("bob"));
    wait_ln_running(&a);
    fund_and_open(&chain, &a, &b, 1_000_000);
    assert!(a.log().contains("the node's API published for the store's front ends"), "{}", a.log());
    let fe = Gateway::start_with_args(
        &chain,
        &home.path().join("fe"),
        AdminMode::Socket,
        "human",
        &extra,
        &["--role", "api"],
    );
    wait_for("front end sync", MINUTE, || fe.synced_height() == u64::from(chain.height()));
    let key = a.api_key("pay,read,invoice");

    // (a) A keysend to B, routed and paid through the front end: priced as the node prices it,
    // paid once, and the same idempotency key at the front end answers the same payment.
    let (status, at_node) = route(&a, &key, 12_345, &b.id());
    assert_eq!(status, 200, "{at_node:#}");
    let (status, r) = route(&fe, &key, 12_345, &b.id());
    assert_eq!(status, 200, "{r:#}");
    let ln = candidate(&r, "lightning");
    assert_eq!(ln["cost_source"], "direct_channel", "{r:#}");
    assert_eq!(ln["cost_sat"], candidate(&at_node, "lightning")["cost_sat"]);
    let id = submit(&fe, &key, &r, "lightning");
    assert_eq!(submit(&fe, &key, &r, "lightning"), id, "the same key, the same payment");
    let paid = wait_settled(&fe, &key, &id);
    received_once(&a, &b, &paid, 12_345_000);

    // (b) B's BOLT12 offer: its blinded paths priced by the node.
    let offer = b.node.bolt12_payment().receive(20_000_000, "offer", None, None).unwrap().to_string();
    let (status, r) = route(&fe, &key, 20_000, &offer);
    assert_eq!(status, 200, "{r:#}");
    assert_eq!(candidate(&r, "lightning")["cost_source"], "blinded_path", "{r:#}");
    let paid = wait_settled(&fe, &key, &submit(&fe, &key, &r, "lightning"));
    received_once(&a, &b, &paid, 20_000_000);

    // (c) B's BOLT11 invoice.
    let description = Bolt11InvoiceDescription::Direct(Description::new("bolt11".into()).unwrap());
    let bolt11 = b.node.bolt11_payment().receive(7_000_000, &description, 600).unwrap().to_string();
    let (status, r) = route(&fe, &key, 7_000, &bolt11);
    assert_eq!((status, r["destination_kind"].as_str()), (200, Some("bolt11")), "{r:#}");
    let paid = wait_settled(&fe, &key, &submit(&fe, &key, &r, "lightning"));
    received_once(&a, &b, &paid, 7_000_000);

    // (d) Invoices made through the front end carry the node's BOLT11 invoice and addresses that
    // no other invoice (nor the node's own next address) has; B pays one, the front end reads it
    // paid.
    let mut addresses = Vec::new();
    let mut made = Vec::new();
    for (i, port) in [fe.api_port, a.api_port, fe.api_port].into_iter().enumerate() {
        let body = json!({"amount": {"minor_units": 5_000 + i as u64, "currency": "SAT"}, "description": "order"});
        let (status, text) =
            common::http_post(port, "/v1/invoices", &key, Some(&format!("inv-{i}")), &body.to_string());
        assert_eq!(status, 201, "{text}");
        let inv: Value = serde_json::from_str(&text).unwrap();
        assert!(inv["bolt11"].as_str().is_some_and(|s| s.starts_with("lnbcrt")), "{inv:#}");
        addresses.push(inv["address"].as_str().unwrap().to_owned());
        made.push(inv);
    }
    addresses.push(a.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned());
    let distinct: std::collections::BTreeSet<&String> = addresses.iter().collect();
    assert_eq!(distinct.len(), addresses.len(), "every address handed out once: {addresses:?}");
    let invoice = Bolt11Invoice::from_str(made[0]["bolt11"].as_str().unwrap()).unwrap();
    b.node.bolt11_payment().send(&invoice, None).unwrap();
    let inv_id = made[0]["invoice_id"].as_str().unwrap();
    wait_for("the invoice paid, read at the front end", MINUTE, || {
        let (status, inv) = http_get_with_key(fe.api_port, &format!("/v1/invoices/{inv_id}"), Some(&key));
        assert_eq!(status, 200, "{inv}");
        inv["status"] == "paid"
    });

    // (e) The admin calls that act on the node's keys or node are refused at the front end.
    for method in ["wallet.newaddress", "ln.info", "treasury.policy.set", "batch.trigger"] {
        assert_eq!(fe.error_code(method, json!({})), "node_only", "{method}");
    }

    // A rail the operator disables on the node is disabled at the front end too.
    let outside = outside_address(7).to_string();
    let disabled_at_front_end = |yes: bool| {
        let (status, r) = route(&fe, &key, 40_000, &outside);
        assert!(status == 200 || status == 422, "{r:#}");
        let why = if status == 200 { refused(&r, "onchain") } else { refused(&r["error"], "onchain") };
        why.is_some_and(|u| u["code"] == "rail_disabled") == yes
    };
    a.call("routing.disable", json!({"rail": "onchain"}));
    wait_for("the front end to take the rail rule", MINUTE, || disabled_at_front_end(true));
    a.call("routing.enable", json!({"rail": "onchain"}));
    wait_for("the front end to lift it", MINUTE, || disabled_at_front_end(false));

    // (f) The node's reserve, as published, refuses on-chain payouts at the front end.
    let (status, early) = route(&fe, &key, 40_000, &outside);
    assert_eq!(status, 200, "{early:#}");
    assert!(refused(&early, "onchain").is_none(), "{early:#}");
    let held = onchain(&a.call("treasury.status", json!({})))["held_sat"].as_u64().unwrap();
    let set = a.call("treasury.policy.set", json!({"onchain_reserve_sat": held + 50_000_000}));
    assert_eq!(onchain(&set)["accepting"], false, "{set}");
    wait_for("the front end to see the node's reserve", MINUTE, || {
        onchain(&fe.call("treasury.status", json!({})))["accepting"] == false
    });
    let shown = fe.call("treasury.status", json!({}));
    assert_eq!(shown["policy"]["onchain_reserve_sat"], held + 50_000_000, "{shown:#}");
    // No rail left for an address: the route is refused, saying why for each rail.
    let (status, r) = route(&fe, &key, 40_000, &outside);
    assert_eq!((status, r["error"]["code"].as_str()), (422, Some("insufficient_funds")), "{r:#}");
    let why = refused(&r["error"], "onchain").unwrap_or_else(|| panic!("{r:#}"));
    assert_eq!((why["code"].as_str(), why["available_sat"].as_u64()), (Some("treasury_reserve"), Some(held)), "{r:#}");
    let (status, e) = post(
        &fe,
        "/v1/payments/submit",
        &key,
        Some("early"),
        &json!({"route_id": early["route_id"], "rail": "onchain"}),
    );
    assert_eq!((status, e["error"]["code"].as_str()), (422, Some("treasury_reserve")), "{e}");
    a.call("treasury.policy.set", json!({"onchain_reserve_sat": 0}));
    wait_for("the front end to see the reserve lifted", MINUTE, || {
        onchain(&fe.call("treasury.status", json!({})))["accepting"] == true
    });
    let verified = a.call("ledger.verify", json!({}));
    assert_eq!(verified["ok"], true, "{verified}");

    // (g) Keysends submitted through the front end, the node SIGKILLed right after: meanwhile
    // Lightning is 503 node_unavailable at the front end and on-chain routes are still priced
    // there; once the node is back the same keys answer the same payments, and each payment ends
    // once — SETTLED and received once by B, or FAILED and never received. A kill between
    // ldk-node persisting a channel's monitor and its manager force-closes the channel at the
    // restart (rust-lightning #4286): that is never hidden (health `degraded`), and a payout the
    // node lost with it fails, credited back.
    let routes: Vec<Value> = (0..4u64)
        .map(|i| {
            let (status, r) = route(&fe, &key, 1_000 + i, &b.id());
            assert_eq!(status, 200, "{r:#}");
            r
        })
        .collect();
    let ids: Vec<String> = routes.iter().map(|r| submit(&fe, &key, r, "lightning")).collect();
    a.kill();
    let (status, e) = route(&fe, &key, 1_000, &b.id());
    assert_eq!((status, e["error"]["code"].as_str()), (503, Some("node_unavailable")), "{e}");
    let (status, r) = route(&fe, &key, 40_000, &outside);
    assert_eq!(status, 200, "{r:#}");
    assert!(candidate(&r, "onchain")["cost_sat"].as_u64().is_some(), "{r:#}");
    a.start_again();
    for (r, id) in routes.iter().zip(&ids) {
        let mut again = None;
        wait_for("the front end to hand the submit to the node again", MINUTE, || {
            let body = json!({"route_id": r["route_id"], "rail": "lightning"});
            let (status, v) = post(&fe, "/v1/payments/submit", &key, r["route_id"].as_str(), &body);
            assert!(status == 202 || v["error"]["code"] == "node_unavailable", "{status} {v}");
            again = v["payment_id"].as_str().map(str::to_owned);
            status == 202
        });
        assert_eq!(again.as_ref(), Some(id), "the same key, the same payment");
    }
    assert!(fe.log().contains("front end: the node answers again"), "{}", fe.log());
    let mut force_closed = false;
    let mut ended = Vec::new();
    for id in &ids {
        let deadline = std::time::Instant::now() + 4 * MINUTE;
        let last = loop {
            let (_, last) = http_get_with_key(fe.api_port, &format!("/v1/payments/{id}"), Some(&key));
            force_closed |= a.get("/v1/health").1["status"] == "degraded";
            if last["status"] == "SETTLED" || last["status"] == "FAILED" {
                break last;
            }
            assert!(std::time::Instant::now() < deadline, "{id} not final: {last}\n{}", a.log());
            if force_closed {
                chain.mine(6);
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        ended.push(last);
    }
    std::thread::sleep(Duration::from_millis(500));
    for last in &ended {
        // A payout the node never sent (its channel gone before the saga reached it) has no hash.
        let received = last["payment_hash"].as_str().map(|hash| b.received_for(hash)).unwrap_or_default();
        match last["status"].as_str() {
            Some("SETTLED") => assert_eq!(received, [last["amount_msat"].as_u64().unwrap()], "{last:#}"),
            _ => {
                assert!(force_closed, "only a channel lost to the kill may fail a payout: {last:#}\n{}", a.log());
                assert!(received.is_empty(), "failed, so B must not have been paid: {last:#}");
            }
        }
    }
    // Nothing else reached B: the three payouts before, and one receipt per settled keysend.
    let settled = ended.iter().filter(|p| p["status"] == "SETTLED").count();
    assert_eq!(b.received.lock().unwrap().len(), 3 + settled, "{:?}", b.received.lock().unwrap());
    let statuses: Vec<&str> = ended.iter().filter_map(|p| p["status"].as_str()).collect();
    eprintln!("keysends across the node's SIGKILL: {statuses:?} (channel force-closed at the restart: {force_closed})");
    if !force_closed {
        let verified = a.call("ledger.verify", json!({}));
        assert_eq!(verified["ok"], true, "{verified}");
    }
}
