//! `POST /v1/payments/submit` between two real gateways (A pays, B is the payee, a 1,000,000 sat
//! channel from A to B) on a real regtest bitcoind: every rail end to end (on-chain to an
//! outside address, Lightning to B's invoice, `on_us` to A's own invoice), idempotency (replay,
//! body mismatch, concurrent duplicates), the treasury guard, a Lightning payout that fails and is
//! credited back, SIGKILL in the middle of payouts on both rails with exactly one payment on the
//! rail afterwards, and a ledger that balances and agrees with the wallet and the node.

mod common;

use std::collections::HashSet;

use common::ln::{channel, open_channel, pair_with, payment_by_hash, unreachable_invoice, MINUTE};
use common::{http_get_with_key, http_post, outside_address, payment, wait_for, Gateway};
use serde_json::{json, Value};

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn route(gw: &Gateway, key: &str, sat: u64, destination: &str) -> Value {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination,
                      "direction": "payout", "priority": "high"});
    let (status, r) = post(gw, "/v1/payments/route", key, None, &body);
    assert_eq!(status, 200, "{r}");
    r
}

fn submit(gw: &Gateway, key: &str, idem: &str, route_id: &str, rail: &str) -> (u16, Value) {
    post(gw, "/v1/payments/submit", key, Some(idem), &json!({"route_id": route_id, "rail": rail}))
}

/// Waits two minutes at most for the payment to reach `status`; on a timeout, panics with its view
/// and the end of the gateway's log.
fn wait_status(gw: &Gateway, key: &str, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + 2 * MINUTE;
    loop {
        let last = payment(gw, key, id);
        if last["status"] == status {
            return last;
        }
        if std::time::Instant::now() > deadline {
            let log = gw.log();
            let tail: Vec<&str> = log.lines().rev().take(300).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("payment {id} not {status} after 2 min: {last}\n{}", tail.join("\n"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn events(gw: &Gateway, id: &str) -> Vec<String> {
    let p = gw.call("payment.get", json!({"payment_id": id}));
    p["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_owned()).collect()
}

fn account(gw: &Gateway, name: &str) -> i64 {
    let b = gw.call("ledger.balances", json!({}));
    b["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == name)
        .map_or(0, |a| a["balance"].as_i64().unwrap())
}

fn verify_clean(gw: &Gateway) -> Value {
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "ledger.verify: {v:#}");
    v
}

/// Wallet transactions paying `address`, as bitcoind's mempool and the wallet see them.
fn wallet_txs(gw: &Gateway) -> usize {
    gw.call("wallet.transactions", json!({}))["transactions"].as_array().unwrap().len()
}

#[test]
fn payouts_settle_on_every_rail_exactly_once() {
    let p = pair_with(
        "[routing]\nlightning_wait_secs = 20\nsaga_interval_ms = 200\n\n\
         [fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = { \"BTC/EUR\" = \"85000\" }\nquote_ttl_secs = 3\n",
    );
    open_channel(&p, 1_000_000);
    let (chain, b) = (&p.chain, &p.b);
    let a = p.a;
    let key = a.api_key("pay,read");
    let before_txs = wallet_txs(&a);

    // On-chain: 202 SUBMITTED, then PENDING with its txid in the mempool, then SETTLED after a
    // block, with the fee the transaction actually paid.
    let addr = outside_address(21).to_string();
    let r = route(&a, &key, 60_000, &addr);
    let (status, accepted) = submit(&a, &key, "onchain-1", r["route_id"].as_str().unwrap(), "onchain");
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["status"], "SUBMITTED");
    let id = accepted["payment_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("pay_"));
    // Replay: the same answer, byte for byte; another body under the same key: 422.
    assert_eq!(submit(&a, &key, "onchain-1", r["route_id"].as_str().unwrap(), "onchain"), (202, accepted.clone()));
    let (status, e) = submit(&a, &key, "onchain-1", r["route_id"].as_str().unwrap(), "lightning");
    assert_eq!((status, e["error"]["code"].as_str()), (422, Some("idempotency_mismatch")), "{e}");
    let pending = wait_status(&a, &key, &id, "PENDING");
    let txid = pending["txid"].as_str().unwrap().to_owned();
    wait_for("the payout in the mempool", MINUTE, || chain.mempool().contains(&txid));
    chain.mine(1);
    let settled = wait_status(&a, &key, &id, "SETTLED");
    let fee = settled["fee_paid_sat"].as_u64().unwrap();
    let wallet_tx = a.call("wallet.transactions", json!({}))["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["txid"] == txid.as_str())
        .cloned()
        .unwrap();
    assert_eq!(wallet_tx["fee_sat"].as_u64(), Some(fee), "{wallet_tx}");
    assert_eq!(settled["rail"], "onchain");
    assert_eq!(settled["amount_sat"], 60_000);
    eprintln!("on-chain payout settled: {settled}");
    assert_eq!(events(&a, &id), ["payment.submitted", "payment.sending", "payment.sent", "payment.settled"]);
    assert_eq!(account(&a, "payouts:onchain"), 60_000_000);
    assert_eq!(account(&a, "fees:onchain"), fee as i64 * 1_000);
    assert_eq!(account(&a, "in_flight:onchain"), 0);
    verify_clean(&a);

    // Lightning to B's invoice: settled once A's node has the preimage, B received it.
    let inv = b.call("ln.invoice", json!({"amount_msat": 25_000_000, "description": "payout", "expiry_secs": 600}));
    let r = route(&a, &key, 25_000, inv["bolt11"].as_str().unwrap());
    assert_eq!(r["recommend"], "lightning");
    let (status, accepted) = submit(&a, &key, "ln-1", r["route_id"].as_str().unwrap(), "lightning");
    assert_eq!(status, 202, "{accepted}");
    let ln_id = accepted["payment_id"].as_str().unwrap().to_owned();
    let settled = wait_status(&a, &key, &ln_id, "SETTLED");
    assert_eq!(
        (settled["payment_hash"].as_str(), settled["fee_paid_msat"].as_u64()),
        (inv["payment_hash"].as_str(), Some(0))
    );
    let received = payment_by_hash(b, inv["payment_hash"].as_str().unwrap()).unwrap();
    assert_eq!((received["status"].as_str(), received["amount_msat"].as_u64()), (Some("succeeded"), Some(25_000_000)));
    // The same invoice again: refused before anything moves.
    let again = post(
        &a,
        "/v1/payments/route",
        &key,
        None,
        &json!({"amount": {"minor_units": 25_000, "currency": "SAT"},
        "destination": inv["bolt11"], "priority": "high"}),
    );
    if again.0 == 200 {
        let (status, e) = submit(&a, &key, "ln-again", again.1["route_id"].as_str().unwrap(), "lightning");
        assert_eq!((status, e["error"]["code"].as_str()), (409, Some("duplicate_payment")), "{e}");
    }

    // on_us: A's own invoice settles inside the gateway at once, at no cost.
    let own = a.call("ln.invoice", json!({"amount_msat": 7_000_000, "description": "own", "expiry_secs": 600}));
    let r = route(&a, &key, 7_000, own["bolt11"].as_str().unwrap());
    let (status, accepted) = submit(&a, &key, "on-us-1", r["route_id"].as_str().unwrap(), "on_us");
    assert_eq!(status, 202, "{accepted}");
    let settled = wait_status(&a, &key, accepted["payment_id"].as_str().unwrap(), "SETTLED");
    assert_eq!((settled["rail"].as_str(), settled["fee_paid_msat"].as_u64()), (Some("on_us"), Some(0)));
    assert_eq!(account(&a, "payouts:on_us"), 7_000_000);
    assert_eq!(account(&a, "receipts:on_us"), -7_000_000);

    // A payout priced in euros: the route's FX quote is locked by the payment, and the ledger
    // records the euro value against FX beside the bitcoin that left.
    let body = json!({"amount": {"minor_units": 2_500, "currency": "EUR"}, "destination": outside_address(24).to_string(),
                      "priority": "high"});
    let (status, eur) = post(&a, "/v1/payments/route", &key, None, &body);
    assert_eq!(status, 200, "{eur}");
    let quote_id = eur["fx_quote_id"].as_str().unwrap().to_owned();
    let sats = eur["amount_sat"].as_u64().unwrap();
    assert!(sats > 29_000 && sats < 30_000, "25 EUR at 85,000 EUR/BTC with the markup: {sats} sat");
    let submit_eur = json!({"route_id": eur["route_id"], "rail": "onchain", "fx_quote_id": quote_id});
    let (status, accepted) = post(&a, "/v1/payments/submit", &key, Some("eur-1"), &submit_eur);
    assert_eq!(status, 202, "{accepted}");
    let eur_id = accepted["payment_id"].as_str().unwrap().to_owned();
    let pending = wait_status(&a, &key, &eur_id, "PENDING");
    assert_eq!(
        (pending["amount"]["currency"].as_str(), pending["fx_quote_id"].as_str()),
        (Some("EUR"), Some(quote_id.as_str()))
    );
    // A quote past its expiry cannot be submitted: price again.
    let (_, stale) = post(&a, "/v1/payments/route", &key, None, &body);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let (status, e) = post(
        &a,
        "/v1/payments/submit",
        &key,
        Some("eur-stale"),
        &json!({"route_id": stale["route_id"], "rail": "onchain"}),
    );
    assert_eq!((status, e["error"]["code"].as_str()), (410, Some("quote_expired")), "{e}");
    chain.mine(1);
    wait_status(&a, &key, &eur_id, "SETTLED");
    assert_eq!((account(&a, "payouts:EUR"), account(&a, "fx:EUR")), (2_500, -2_500));

    // Refusals with stable codes; nothing is recorded.
    let r = route(&a, &key, 10_000, &outside_address(22).to_string());
    let rid = r["route_id"].as_str().unwrap();
    let refused = |idem: &str, body: Value| post(&a, "/v1/payments/submit", &key, Some(idem), &body);
    let code = |(s, v): (u16, Value)| (s, v["error"]["code"].as_str().unwrap_or_default().to_owned());
    assert_eq!(code(refused("e1", json!({"route_id": "rt_nope", "rail": "onchain"}))), (404, "route_not_found".into()));
    assert_eq!(code(refused("e2", json!({"route_id": rid, "rail": "carrier_pigeon"}))), (400, "invalid_rail".into()));
    assert_eq!(code(refused("e3", json!({"route_id": rid, "rail": "lightning"}))), (422, "rail_not_offered".into()));
    assert_eq!(
        code(refused("e4", json!({"route_id": rid, "rail": "onchain", "fx_quote_id": "q_x"}))),
        (400, "quote_mismatch".into())
    );
    assert_eq!(code(refused("e5", json!({"rail": "onchain"}))), (400, "invalid_request".into()));
    let (status, text) = http_post(
        a.api_port,
        "/v1/payments/submit",
        &key,
        None,
        &json!({"route_id": rid, "rail": "onchain"}).to_string(),
    );
    assert_eq!(status, 400, "{text}");
    let read_only = a.api_key("read");
    assert_eq!(
        code(post(&a, "/v1/payments/submit", &read_only, Some("e6"), &json!({"route_id": rid, "rail": "onchain"}))).0,
        403
    );
    let (status, _) = http_get_with_key(a.api_port, &format!("/v1/payments/{id}"), Some(&a.api_key("pay")));
    assert_eq!(status, 404, "another key does not see this key's payments");

    // Concurrent duplicates: eight clients with one idempotency key, four with their own keys on
    // one route — one payment.
    let (gw, k) = (&a, key.as_str());
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let same: Vec<_> = (0..8).map(|_| s.spawn(move || submit(gw, k, "dup-1", rid, "onchain"))).collect();
        let other: Vec<_> =
            (0..4).map(|i| s.spawn(move || submit(gw, k, &format!("dup-other-{i}"), rid, "onchain"))).collect();
        same.into_iter().chain(other).map(|h| h.join().unwrap()).collect()
    });
    let ids: HashSet<&str> =
        answers.iter().filter(|(s, _)| *s == 202).filter_map(|(_, v)| v["payment_id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    for (s, v) in &answers {
        assert!(
            *s == 202
                || (*s == 409
                    && ["idempotency_in_flight", "route_already_submitted"]
                        .contains(&v["error"]["code"].as_str().unwrap())),
            "{s} {v}"
        );
    }
    let dup_id = ids.into_iter().next().unwrap().to_owned();
    let dup_txid = wait_status(&a, &key, &dup_id, "PENDING")["txid"].as_str().unwrap().to_owned();

    // Treasury guard: a payout the channel cannot fund beside what is already reserved (an HTLC
    // may carry at most 10 % of the channel: 100,000 sat).
    let big = b.call("ln.invoice", json!({"amount_msat": 60_000_000, "description": "big", "expiry_secs": 600}));
    let big2 = b.call("ln.invoice", json!({"amount_msat": 60_000_000, "description": "big2", "expiry_secs": 600}));
    let r1 = route(&a, &key, 60_000, big["bolt11"].as_str().unwrap());
    let r2 = route(&a, &key, 60_000, big2["bolt11"].as_str().unwrap());
    let (status, first) = submit(&a, &key, "big-1", r1["route_id"].as_str().unwrap(), "lightning");
    assert_eq!(status, 202, "{first}");
    let (status, e) = submit(&a, &key, "big-2", r2["route_id"].as_str().unwrap(), "lightning");
    assert_eq!((status, e["error"]["code"].as_str()), (422, Some("insufficient_funds")), "{e}");
    let available = e["error"]["available"].as_array().unwrap();
    assert!(
        available.iter().any(|x| x["rail"] == "lightning") && available.iter().any(|x| x["rail"] == "onchain"),
        "{e}"
    );
    wait_status(&a, &key, first["payment_id"].as_str().unwrap(), "SETTLED");

    // The deduplicated payout confirms once.
    wait_for("the deduplicated payout in the mempool", MINUTE, || chain.mempool().contains(&dup_txid));
    chain.mine(1);
    wait_status(&a, &key, &dup_id, "SETTLED");
    // Three on-chain payouts, three wallet transactions.
    assert_eq!(wallet_txs(&a), before_txs + 3);

    // A Lightning payout the network fails (B cannot forward it): failed, and the ledger credits
    // back what it held.
    let treasury_ln = account(&a, "treasury:lightning");
    let nowhere = unreachable_invoice(&p.b_id, 8_000_000);
    let r_fail = route(&a, &key, 8_000, &nowhere);
    assert_eq!(r_fail["recommend"], "lightning", "{r_fail}");
    let (status, accepted) = submit(&a, &key, "fail-1", r_fail["route_id"].as_str().unwrap(), "lightning");
    assert_eq!(status, 202, "{accepted}");
    let fail_id = accepted["payment_id"].as_str().unwrap();
    let failed = wait_status(&a, &key, fail_id, "FAILED");
    eprintln!("failed payout: {failed}");
    assert_eq!(failed["failure"]["code"], "lightning_payment_failed", "{failed}");
    assert_eq!(events(&a, fail_id), ["payment.submitted", "payment.sending", "payment.sent", "payment.failed"]);
    assert_eq!(account(&a, "treasury:lightning"), treasury_ln, "credited back");
    assert_eq!(account(&a, "in_flight:lightning"), 0);

    // The payee offline: the channel cannot carry anything now, but it will once the peer is
    // back — a 503 with Retry-After on route and submit alike, not a refusal a client gives up on.
    let off = b.call("ln.invoice", json!({"amount_msat": 5_000_000, "description": "off", "expiry_secs": 600}));
    let r_off = route(&a, &key, 5_000, off["bolt11"].as_str().unwrap());
    let mut b = p.b;
    b.stop();
    wait_for("A to see the channel unusable", MINUTE, || channel(&a).is_some_and(|c| c["usable"] == false));
    let (status, e) = submit(&a, &key, "off-1", r_off["route_id"].as_str().unwrap(), "lightning");
    assert_eq!(
        (status, e["error"]["code"].as_str(), e["error"]["retry_after_sec"].as_u64()),
        (503, Some("channel_not_usable"), Some(5)),
        "{e}"
    );
    let body =
        json!({"amount": {"minor_units": 5_000, "currency": "SAT"}, "destination": off["bolt11"], "priority": "high"});
    let (status, e) = post(&a, "/v1/payments/route", &key, None, &body);
    assert_eq!((status, e["error"]["code"].as_str()), (503, Some("channel_not_usable")), "{e}");
    b.start_again();
    wait_for("the channel usable again", MINUTE, || channel(&a).is_some_and(|c| c["usable"] == true));
    // The same submit, retried under the same key once the peer is back, goes through.
    let (status, e) = submit(&a, &key, "off-1", r_off["route_id"].as_str().unwrap(), "lightning");
    assert_eq!(status, 202, "{e}");
    wait_status(&a, &key, e["payment_id"].as_str().unwrap(), "SETTLED");

    // The listing pages through them, newest first, filtered by status.
    let (status, page) = http_get_with_key(a.api_port, "/v1/payments?status=SETTLED&limit=2", Some(&key));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["payments"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = http_get_with_key(a.api_port, &format!("/v1/payments?status=SETTLED&cursor={cursor}"), Some(&key));
    let all: Vec<&str> = page["payments"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["payments"].as_array().unwrap())
        .map(|x| x["payment_id"].as_str().unwrap())
        .collect();
    assert_eq!(all.len(), 7, "{all:?}");
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first: {all:?}");
    let (status, e) = http_get_with_key(a.api_port, "/v1/payments?status=LOST", Some(&key));
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_status")));

    // The ledger sums to zero and agrees with the wallet and the node.
    let v = verify_clean(&a);
    eprintln!("ledger.verify: {v}");
    assert_eq!(v["onchain"]["payouts"]["match"], 3);
    assert_eq!(v["lightning"]["payouts"]["match"], 4, "three settled, one failed with the node's record");
    assert_eq!(v["onchain"]["difference_msat"], 0);
    assert!(v["totals"].as_object().unwrap().values().all(|t| t == 0), "{v}");
}

/// SIGKILL right after a payout is accepted on each rail: after the restart each is paid exactly
/// once on its rail. A kill can also land between ldk-node persisting a channel's monitor and its
/// manager (rust-lightning #4286): the channel is force-closed at the restart. That is never
/// hidden (health says `degraded` and names the channel) and the Lightning payout still ends once:
/// settled if B got paid (on-chain, through the closed channel), failed and credited back if not.
#[test]
fn a_kill_right_after_submitting_on_both_rails_pays_each_exactly_once() {
    let p = pair_with("[routing]\nlightning_wait_secs = 20\nsaga_interval_ms = 200\n");
    open_channel(&p, 1_000_000);
    let (chain, b) = (&p.chain, &p.b);
    let mut a = p.a;
    let key = a.api_key("pay,read");
    let before_txs = wallet_txs(&a);
    let treasury_ln = account(&a, "treasury:lightning");

    let kill_addr = outside_address(23).to_string();
    let r_on = route(&a, &key, 40_000, &kill_addr);
    let kill_inv = b.call("ln.invoice", json!({"amount_msat": 30_000_000, "description": "kill", "expiry_secs": 600}));
    let r_ln = route(&a, &key, 30_000, kill_inv["bolt11"].as_str().unwrap());
    let (s1, on) = submit(&a, &key, "kill-on", r_on["route_id"].as_str().unwrap(), "onchain");
    let (s2, ln) = submit(&a, &key, "kill-ln", r_ln["route_id"].as_str().unwrap(), "lightning");
    assert_eq!((s1, s2), (202, 202), "{on} {ln}");
    a.kill();
    a.start_again();
    // The same request after the restart is answered from the store.
    assert_eq!(submit(&a, &key, "kill-on", r_on["route_id"].as_str().unwrap(), "onchain"), (202, on.clone()));
    let on_id = on["payment_id"].as_str().unwrap();
    let on_txid = wait_status(&a, &key, on_id, "PENDING")["txid"].as_str().unwrap().to_owned();
    wait_for("the payout in the mempool", MINUTE, || chain.mempool().contains(&on_txid));
    chain.mine(1);
    wait_status(&a, &key, on_id, "SETTLED");
    assert_eq!(wallet_txs(&a), before_txs + 1, "one on-chain payout, one wallet transaction");

    // The Lightning payout ends; a channel the kill force-closed resolves its HTLC on-chain.
    let ln_id = ln["payment_id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + 4 * MINUTE;
    let (last, force_closed) = loop {
        let last = payment(&a, &key, ln_id);
        let health = a.get("/v1/health").1;
        let force_closed = health["status"] == "degraded";
        if last["status"] == "SETTLED" || last["status"] == "FAILED" {
            break (last, force_closed);
        }
        assert!(std::time::Instant::now() < deadline, "{ln_id} not final: {last}\nhealth {health}\n{}", a.log());
        if force_closed {
            chain.mine(6);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    let paid_to_b = b.call("ln.payments", json!({}))["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["payment_hash"] == kill_inv["payment_hash"] && x["status"] == "succeeded")
        .count();
    eprintln!("Lightning payout after the kill: {} (force-closed: {force_closed})", last["status"]);
    if last["status"] == "SETTLED" {
        assert_eq!(last["payment_hash"], kill_inv["payment_hash"]);
        assert_eq!(paid_to_b, 1, "B paid exactly once");
    } else {
        assert!(force_closed, "only a channel lost to the kill may fail the payout: {last}\n{}", a.log());
        assert_eq!(paid_to_b, 0, "failed, so B must not have been paid: {last}");
        assert_eq!(account(&a, "in_flight:lightning"), 0, "credited back");
    }
    if force_closed {
        let health = a.get("/v1/health").1;
        let alarms = health["alarms"].as_array().unwrap();
        assert!(alarms.iter().any(|x| x["reason"].as_str().is_some_and(|r| !r.is_empty())), "{health}");
    } else {
        assert_eq!(account(&a, "treasury:lightning"), treasury_ln - 30_000_000);
        verify_clean(&a);
    }
}

/// Waits until A's node runs again and its channel is usable (after a restart).
fn wait_usable(a: &Gateway) {
    wait_for("the channel usable again after the restart", MINUTE, || {
        a.try_call("ln.channels", json!({})).is_ok_and(|c| c["channels"][0]["usable"] == true)
    });
}

/// Routes a BIP21 URI with B's address and a fresh invoice of B: both rails are feasible and
/// Lightning is far cheaper; returns the route.
fn bip21_route(a: &Gateway, b: &Gateway, key: &str) -> Value {
    let inv = b.call("ln.invoice", json!({"amount_msat": 10_000_000, "description": "bip21", "expiry_secs": 600}));
    let addr = b.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    route(a, key, 10_000, &format!("bitcoin:{addr}?amount=0.0001&lightning={}", inv["bolt11"].as_str().unwrap()))
}

#[test]
fn a_degrading_rail_loses_the_recommendation_and_wins_it_back() {
    let p = pair_with("[routing]\nsaga_interval_ms = 100\nbreaker_cooldown_secs = 30\n");
    open_channel(&p, 1_000_000);
    let (b, key) = (&p.b, p.a.api_key("pay,read"));
    let mut a = p.a;
    let r = bip21_route(&a, b, &key);
    assert_eq!(r["recommend"], "lightning", "{r}");

    // Payments beyond the peer start failing: after a bounded number of outcomes Lightning is no
    // longer recommended.
    let mut lost_after = None;
    for i in 1..=5_u32 {
        let dead = route(&a, &key, 5_000, &unreachable_invoice(&p.b_id, 5_000_000));
        let (status, s) = submit(&a, &key, &format!("dead-{i}"), dead["route_id"].as_str().unwrap(), "lightning");
        assert_eq!(status, 202, "{s}");
        wait_status(&a, &key, s["payment_id"].as_str().unwrap(), "FAILED");
        let r = bip21_route(&a, b, &key);
        let ln = r["candidates"].as_array().unwrap().iter().find(|c| c["rail"] == "lightning").unwrap().clone();
        eprintln!("after {i} failure(s): recommend {} (lightning success_rate {})", r["recommend"], ln["success_rate"]);
        if r["recommend"] == "onchain" {
            lost_after = Some(i);
            break;
        }
    }
    assert!(lost_after.is_some_and(|n| n <= 3), "lost after {lost_after:?} failures");
    let stats = a.call("routing.stats", json!({}));
    let ln = stats["rails"].as_array().unwrap().iter().find(|r| r["rail"] == "lightning").unwrap().clone();
    assert_eq!(ln["consecutive_failures"], u64::from(lost_after.unwrap()), "{stats}");
    assert_eq!(ln["failures"]["lightning_payment_failed"], u64::from(lost_after.unwrap()));

    // The statistics survive a restart.
    let inv = b.call("ln.invoice", json!({"amount_msat": 3_000_000, "description": "early", "expiry_secs": 600}));
    a.restart();
    // Right after the restart the node is starting or its channel reconnecting: a Lightning-only
    // route is a 503 to retry (or already priced), never a 422 a client would give up on.
    let early = json!({"amount": {"minor_units": 3_000, "currency": "SAT"}, "destination": inv["bolt11"]});
    let (status, e) = post(&a, "/v1/payments/route", &key, None, &early);
    let code = e["error"]["code"].as_str().unwrap_or_default();
    assert!(
        status == 200 || (status == 503 && ["lightning_starting", "channel_not_usable"].contains(&code)),
        "{status} {e}"
    );
    eprintln!("route right after a restart: {status} {code}");
    let again = a.call("routing.stats", json!({}));
    let ln_again = again["rails"].as_array().unwrap().iter().find(|r| r["rail"] == "lightning").unwrap().clone();
    for field in ["success_rate", "outcomes", "consecutive_failures", "failures"] {
        assert_eq!(ln_again[field], ln[field], "{field} after the restart");
    }
    wait_usable(&a);

    // The peer recovers: clients that still choose Lightning succeed, and it wins back.
    let mut won_after = None;
    for i in 1..=6_u32 {
        let inv = b.call("ln.invoice", json!({"amount_msat": 2_000_000, "description": "ok", "expiry_secs": 600}));
        let ok = route(&a, &key, 2_000, inv["bolt11"].as_str().unwrap());
        let (status, s) = submit(&a, &key, &format!("ok-{i}"), ok["route_id"].as_str().unwrap(), "lightning");
        assert_eq!(status, 202, "{s}");
        wait_status(&a, &key, s["payment_id"].as_str().unwrap(), "SETTLED");
        if bip21_route(&a, b, &key)["recommend"] == "lightning" {
            won_after = Some(i);
            break;
        }
    }
    eprintln!("lost after {lost_after:?} failures, won back after {won_after:?} successes");
    assert!(won_after.is_some_and(|n| n <= 4), "won back after {won_after:?} successes");

    // The operator's rules, each in the audit log.
    a.call("routing.disable", json!({"rail": "lightning"}));
    let r = bip21_route(&a, b, &key);
    let rails: Vec<&str> = r["candidates"].as_array().unwrap().iter().map(|c| c["rail"].as_str().unwrap()).collect();
    assert_eq!(rails, ["onchain", "onchain_batch"], "{r}");
    assert_eq!(
        (r["recommend"].as_str(), r["unavailable"][0]["code"].as_str()),
        (Some("onchain"), Some("rail_disabled"))
    );
    assert_eq!(a.error_code("routing.pin", json!({"rail": "lightning"})), "rail_disabled");
    assert_eq!(a.error_code("routing.pin", json!({"rail": "carrier_pigeon"})), "invalid_rail");
    a.call("routing.enable", json!({"rail": "lightning"}));
    a.call("routing.pin", json!({"rail": "onchain"}));
    assert_eq!(bip21_route(&a, b, &key)["recommend"], "onchain", "pinned");
    a.restart();
    wait_usable(&a);
    assert_eq!(bip21_route(&a, b, &key)["recommend"], "onchain", "the pin survives a restart");
    a.call("routing.unpin", json!({}));
    assert_eq!(bip21_route(&a, b, &key)["recommend"], "lightning");
    let audit = a.call("audit.list", json!({}));
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    // The config's policy at the first start, the API key, then the operator's rule changes
    // (between them, the money the setup moved: the treasury's send to B, the channel it opened).
    let moves = |a: &&str| a.starts_with("wallet.") || a.starts_with("ln.");
    let rules: Vec<&str> = actions.iter().copied().filter(|a| !moves(a)).collect();
    assert_eq!(
        rules,
        ["config.policy", "apikey.create", "routing.disable", "routing.enable", "routing.pin", "routing.unpin"]
    );
    assert!(actions.contains(&"ln.open_channel"), "{actions:?}");
    let verified = a.call("audit.verify", json!({}));
    let n = actions.len();
    assert_eq!((verified["ok"].as_bool(), verified["entries"].as_u64()), (Some(true), Some(n as u64)), "{verified}");
    assert_eq!(verified["head"], audit["entries"][n - 1]["hash"]);
}
