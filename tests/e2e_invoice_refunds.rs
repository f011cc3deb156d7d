//! Refunds and `on_us`, on real senderod processes and a real regtest chain. A merchant's euro
//! invoices (gateway A, rates from a local stand-in of the exchanges' tickers) are paid on chain
//! by a customer (gateway B) and refunded — at the invoice's rate, at the rate of the moment, an
//! explicit amount — to addresses outside both gateways, whose coins the chain itself shows;
//! over-refunds are refused and change nothing; a refund whose process dies right after its
//! commit (and again, SIGKILLed, right after its answer) pays once after the restart. Then one gateway pays its own invoices (BOLT11, address,
//! BIP21) through `/v1/payments`: settled `on_us` at zero cost, the invoice paid and both sides
//! booked once, across a crash right after the commit.

mod common;

use std::time::Duration;

use common::exchange::{Behaviour, ExchangeServer};
use common::ln::{account, pair_each, wait_ln_running};
use common::webhook::Receiver;
use common::{call_bitcoind, http_get_with_key, http_post, outside_address, settled, wait_for, Chain, Gateway};
use sendero_wallet::bitcoin::Address;
use serde_json::{json, Value};

fn fx(url: &str) -> String {
    format!(
        "[fx]\npairs = [\"BTC/EUR\"]\nsources = [\"kraken\", \"bitstamp\", \"coinbase\"]\n\
         source_urls = {{ kraken = \"{url}\", bitstamp = \"{url}\", coinbase = \"{url}\" }}\n\
         markup_bps = 50\nrefresh_secs = 1\nrate_ttl_secs = 60\nquote_ttl_secs = 30\n"
    )
}

fn price_all(ex: &ExchangeServer, price: i64) {
    for name in ["kraken", "bitstamp", "coinbase"] {
        ex.set(name, Behaviour::Price(price));
    }
}

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(gw: &Gateway, path: &str, key: &str) -> Value {
    let (status, v) = http_get_with_key(gw.api_port, path, Some(key));
    assert_eq!(status, 200, "{path}: {v}");
    v
}

fn invoice(gw: &Gateway, key: &str, idem: &str, minor_units: u64, currency: &str) -> Value {
    let body = json!({"amount": {"minor_units": minor_units, "currency": currency}, "description": idem});
    let (status, inv) = post(gw, "/v1/invoices", key, Some(idem), &body);
    assert_eq!(status, 201, "{inv}");
    inv
}

fn refund(gw: &Gateway, key: &str, id: &str, idem: &str, body: &Value) -> (u16, Value) {
    post(gw, &format!("/v1/invoices/{id}/refund"), key, Some(idem), body)
}

/// What the chain holds at `address`, sats, read from the transactions of its unspent outputs.
fn on_chain(chain: &Chain, address: &Address) -> u64 {
    let scan = call_bitcoind(&chain.rpc(), "scantxoutset", &[json!("start"), json!([format!("addr({address})")])]);
    scan["unspents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| chain.tx(u["txid"].as_str().unwrap()).output[u["vout"].as_u64().unwrap() as usize].value.to_sat())
        .sum()
}

/// The sats a sell quote of `minor_units` EUR gives now.
fn sell_sat(gw: &Gateway, key: &str, minor_units: u64) -> u64 {
    let path = format!("/v1/fx/quote?base=EUR&quote=BTC&side=sell&amount_minor={minor_units}");
    get(gw, &path, key)["amount_sat"].as_u64().unwrap()
}

/// Payments, ledger entries and the treasury's in-flight accounts: what a refused refund must
/// leave as they were.
fn books(gw: &Gateway) -> (i64, i64, i64) {
    let conn = common::books(&gw.datadir);
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    (
        count("SELECT COUNT(*) FROM payments"),
        count("SELECT COUNT(*) FROM ledger_entries"),
        count("SELECT COUNT(*) FROM invoice_refunds"),
    )
}

/// Waits until every payout of `answers` has its transaction in the mempool.
fn broadcast(chain: &Chain, gw: &Gateway, key: &str, answers: &[&Value]) {
    wait_for("the refunds' transactions in the mempool", Duration::from_secs(30), || {
        let mempool = chain.mempool();
        answers.iter().all(|a| {
            let p = common::payment(gw, key, a["payment_id"].as_str().unwrap());
            p["txid"].as_str().is_some_and(|t| mempool.iter().any(|m| m == t))
        })
    });
}

fn hooks_of(hooks: &Receiver, event: &str, field: &str, id: &str) -> usize {
    hooks
        .hooks()
        .iter()
        .filter(|h| {
            let v: Value = serde_json::from_str(&h.body).unwrap();
            h.answered < 300 && v["type"] == event && v["data"][field] == id
        })
        .count()
}

#[test]
fn refunds_at_the_invoice_rate_and_the_current_rate_reach_the_customer_and_over_refunds_change_nothing() {
    let ex = ExchangeServer::start();
    price_all(&ex, 85_000);
    let mut p = pair_each(&fx(&ex.url()), "");
    let (merchant, customer) = (&p.a, &p.b);
    let created = merchant.cli(&["apikey.create", "--label", "shop", "--scopes", "invoice,pay,read,quote"]);
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let other = merchant.api_key("invoice,pay");
    let hooks = Receiver::start(200);
    let hook = json!({"url": hooks.url(), "events": ["payment.settled"]});
    assert_eq!(post(merchant, "/v1/webhooks", &key, None, &hook).0, 201);

    // Two euro orders paid on chain by the customer (X overpaid by 2,000 sat); a third never paid.
    let (x, y) = (invoice(merchant, &key, "order-x", 1_000, "EUR"), invoice(merchant, &key, "order-y", 2_000, "EUR"));
    let unpaid = invoice(merchant, &key, "order-z", 500, "EUR");
    let (asked_x, sy) = (x["amount_sat"].as_u64().unwrap(), y["amount_sat"].as_u64().unwrap());
    let sx = asked_x + 2_000;
    let id = |inv: &Value| inv["invoice_id"].as_str().unwrap().to_owned();
    let (xid, yid) = (id(&x), id(&y));
    customer.call("wallet.send", json!({"address": x["address"], "amount_sat": sx}));
    customer.call("wallet.send", json!({"address": y["address"], "amount_sat": sy}));
    p.chain.mine(1);
    wait_for("both invoices paid", Duration::from_secs(30), || {
        [&xid, &yid].iter().all(|i| get(merchant, &format!("/v1/invoices/{i}"), &key)["status"] == "paid")
    });
    assert_eq!(get(merchant, &format!("/v1/invoices/{xid}"), &key)["exception"], "overpaid");

    // Refusals, each with its stable code and nothing written.
    let to = |seed: u8| outside_address(seed);
    let rate_then = |seed: u8| json!({"destination": to(seed).to_string(), "amount": "rate_then", "rail": "onchain"});
    let before = books(merchant);
    let (status, e) = refund(merchant, &key, &id(&unpaid), "r-unpaid", &rate_then(10));
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("nothing_received")), "{e}");
    let (status, e) = refund(merchant, &other, &xid, "r-theirs", &rate_then(10));
    assert_eq!((status, e["error"]["code"].as_str()), (404, Some("invoice_not_found")), "{e}");
    let (status, e) =
        refund(merchant, &key, &xid, "r-bad", &json!({"destination": to(10).to_string(), "amount": "all"}));
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invalid_amount")), "{e}");
    let too_much = json!({"destination": to(10).to_string(), "amount": {"minor_units": sx + 1, "currency": "SAT"}});
    let (status, e) = refund(merchant, &key, &xid, "r-over", &too_much);
    assert_eq!((status, e["error"]["code"].as_str()), (422, Some("refund_exceeds_received")), "{e}");
    assert_eq!((e["error"]["refundable_sat"].as_u64(), e["error"]["needed_sat"].as_u64()), (Some(sx), Some(sx + 1)));
    assert_eq!(books(merchant), before, "a refused refund writes no payment, no ledger entry, no refund");

    // X at the invoice's rate: every sat it received, the overpayment included, to the
    // customer's outside address.
    let (status, rx) = refund(merchant, &key, &xid, "r-x", &rate_then(11));
    assert_eq!(status, 202, "{rx}");
    assert_eq!(
        (rx["amount_sat"].as_u64(), rx["mode"].as_str(), rx["rail"].as_str()),
        (Some(sx), Some("rate_then"), Some("onchain"))
    );
    let (status, again) = refund(merchant, &key, &xid, "r-x", &rate_then(11));
    assert_eq!((status, &again), (202, &rx), "the same key and body: the same answer");
    let (status, e) = refund(merchant, &key, &xid, "r-x", &rate_then(12));
    assert_eq!((status, e["error"]["code"].as_str()), (422, Some("idempotency_mismatch")), "{e}");
    let before = books(merchant);
    let (status, e) = refund(merchant, &key, &xid, "r-x2", &rate_then(11));
    assert_eq!(
        (status, e["error"]["code"].as_str(), e["error"]["refundable_sat"].as_u64()),
        (422, Some("refund_exceeds_received"), Some(0)),
        "{e}"
    );
    assert_eq!(books(merchant), before);

    // Y: 5.00 EUR at the rate of the moment, then the rest at the current rate — refused while
    // BTC is cheaper than when it was paid (it would take more sats than came in), paid once
    // BTC is dearer.
    let part = json!({"destination": to(12).to_string(), "amount": {"minor_units": 500, "currency": "EUR"}, "priority": "high", "rail": "onchain"});
    let want_part = sell_sat(merchant, &key, 500);
    let (status, ry1) = refund(merchant, &key, &yid, "r-y1", &part);
    assert_eq!(
        (status, ry1["amount_sat"].as_u64(), ry1["amount"]["currency"].as_str()),
        (202, Some(want_part), Some("EUR")),
        "{ry1}"
    );
    let left = sy - want_part;
    let fiat_left = 2_000 * left / sy; // the invoice's rate, rounded down
    price_all(&ex, 60_000);
    wait_for("the rate to fall", Duration::from_secs(20), || sell_sat(merchant, &key, 2_000) > sy);
    let current = json!({"destination": to(13).to_string(), "amount": "current_rate", "rail": "onchain"});
    let before = books(merchant);
    let (status, e) = refund(merchant, &key, &yid, "r-y2", &current);
    assert_eq!(
        (status, e["error"]["code"].as_str(), e["error"]["refundable_sat"].as_u64()),
        (422, Some("refund_exceeds_received"), Some(left)),
        "{e}"
    );
    assert!(e["error"]["needed_sat"].as_u64().unwrap() > left, "{e}");
    let (_, _, refunds) = books(merchant);
    assert_eq!(refunds, before.2, "refused: no refund recorded");
    price_all(&ex, 100_000);
    wait_for("the rate to rise", Duration::from_secs(20), || sell_sat(merchant, &key, 2_000) < sy);
    let want_current = sell_sat(merchant, &key, fiat_left);
    let (status, ry2) = refund(merchant, &key, &yid, "r-y2b", &current);
    assert_eq!(status, 202, "{ry2}");
    assert_eq!(
        (ry2["amount"]["minor_units"].as_u64(), ry2["amount_sat"].as_u64()),
        (Some(fiat_left), Some(want_current)),
        "{ry2}"
    );

    // Paid on chain: the customer's addresses hold exactly the refunds.
    let pid = |r: &Value| r["payment_id"].as_str().unwrap().to_owned();
    broadcast(&p.chain, merchant, &key, &[&rx, &ry1, &ry2]);
    p.chain.mine(1);
    for r in [&rx, &ry1, &ry2] {
        settled(merchant, &key, &pid(r));
    }
    assert_eq!(on_chain(&p.chain, &to(11)), sx);
    assert_eq!(on_chain(&p.chain, &to(12)), want_part);
    assert_eq!(on_chain(&p.chain, &to(13)), want_current);
    wait_for("payment.settled for each refund", Duration::from_secs(20), || {
        [&rx, &ry1, &ry2].iter().all(|r| hooks_of(&hooks, "payment.settled", "payment_id", &pid(r)) == 1)
    });

    // Booked against the invoices: the key's receivable is what it received less what it refunded.
    let gx = get(merchant, &format!("/v1/invoices/{xid}"), &key);
    assert_eq!(
        gx["refunds"],
        json!([{"payment_id": pid(&rx), "amount_sat": sx, "amount_msat": sx * 1_000, "status": "SETTLED", "mode": "rate_then", "rail": "onchain"}])
    );
    assert_eq!(gx["refunded_sat"], sx);
    let gy = get(merchant, &format!("/v1/invoices/{yid}"), &key);
    assert_eq!(gy["refunded_sat"], want_part + want_current);
    let net = (sy - want_part - want_current) as i64 * 1_000;
    assert_eq!(account(merchant, &format!("receivable:{key_id}")), -net);
    let verify = merchant.call("ledger.verify", json!({}));
    assert_eq!(
        (verify["ok"].clone(), verify["onchain"]["difference_msat"].clone()),
        (json!(true), json!(0)),
        "{verify:#}"
    );

    // A refund whose process dies right after its commit (the client gets no answer) pays once.
    let last = invoice(merchant, &key, "order-w", 3_000, "SAT");
    let wid = id(&last);
    customer.call("wallet.send", json!({"address": last["address"], "amount_sat": 3_000}));
    p.chain.mine(1);
    wait_for("W paid", Duration::from_secs(30), || get(&p.a, &format!("/v1/invoices/{wid}"), &key)["status"] == "paid");
    p.a.env = vec![("SENDERO_FAILPOINT".into(), "payment.committed".into())];
    p.a.restart();
    let (status, _) = refund(&p.a, &key, &wid, "r-w", &rate_then(14));
    assert_eq!(status, 0, "no answer: the process aborted after the commit");
    p.a.wait_exit();
    p.a.env.clear();
    p.a.start_again();
    let (status, rw) = refund(&p.a, &key, &wid, "r-w", &rate_then(14));
    assert_eq!((status, rw["amount_sat"].as_u64()), (202, Some(3_000)), "{rw}");
    // And SIGKILLed right after that answer, wherever its saga is: resumed, paid once.
    p.a.kill();
    p.a.start_again();
    broadcast(&p.chain, &p.a, &key, &[&rw]);
    p.chain.mine(1);
    settled(&p.a, &key, &pid(&rw));
    assert_eq!(on_chain(&p.chain, &to(14)), 3_000, "paid exactly once");
    let gw_ = get(&p.a, &format!("/v1/invoices/{wid}"), &key);
    assert_eq!((gw_["refunds"].as_array().unwrap().len(), gw_["refunded_sat"].as_u64()), (1, Some(3_000)));
}

#[test]
fn paying_our_own_invoices_settles_on_us_pays_them_once_and_books_both_sides() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let static_fx = "[fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = { \"BTC/EUR\" = \"85000\" }\n";
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), common::AdminMode::Socket, "human", static_fx);
    wait_ln_running(&gw);
    let shop = gw.cli(&["apikey.create", "--label", "shop", "--scopes", "invoice,read"]);
    let (shop_id, shop_key) = (shop["id"].as_str().unwrap().to_owned(), shop["key"].as_str().unwrap().to_owned());
    let payer = gw.api_key("pay,read");
    let (shop_hooks, payer_hooks) = (Receiver::start(200), Receiver::start(200));
    let hook = |h: &Receiver, events: Value| json!({"url": h.url(), "events": events});
    assert_eq!(post(&gw, "/v1/webhooks", &shop_key, None, &hook(&shop_hooks, json!(["invoice.paid"]))).0, 201);
    assert_eq!(post(&gw, "/v1/webhooks", &payer, None, &hook(&payer_hooks, json!(["payment.settled"]))).0, 201);

    let inv = |idem: &str, sat: u64| invoice(&gw, &shop_key, idem, sat, "SAT");
    let (by_bolt11, by_address, by_bip21) = (inv("i-ln", 21_000), inv("i-addr", 22_000), inv("i-bip21", 23_000));
    let pay = |gw: &Gateway, destination: &str, sat: u64, idem: &str| -> (u16, Value) {
        let route = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination});
        let (status, r) = post(gw, "/v1/payments/route", &payer, None, &route);
        if status != 200 {
            return (status, r);
        }
        let rails: Vec<&str> =
            r["candidates"].as_array().unwrap().iter().map(|c| c["rail"].as_str().unwrap()).collect();
        assert_eq!((rails, r["candidates"][0]["cost_sat"].as_u64()), (vec!["on_us"], Some(0)), "{r}");
        post(gw, "/v1/payments/submit", &payer, Some(idem), &json!({"route_id": r["route_id"], "rail": "on_us"}))
    };
    for (inv, destination, idem) in [
        (&by_bolt11, &by_bolt11["bolt11"], "p-ln"),
        (&by_address, &by_address["address"], "p-addr"),
        (&by_bip21, &by_bip21["bip21"], "p-bip21"),
    ] {
        let sat = inv["amount_sat"].as_u64().unwrap();
        let (status, submitted) = pay(&gw, destination.as_str().unwrap(), sat, idem);
        assert_eq!(status, 202, "{submitted}");
        let payment_id = submitted["payment_id"].as_str().unwrap().to_owned();
        let paid = settled(&gw, &payer, &payment_id);
        assert_eq!((paid["rail"].as_str(), paid["fee_paid_msat"].as_u64()), (Some("on_us"), Some(0)), "{paid}");
        let id = inv["invoice_id"].as_str().unwrap();
        let got = get(&gw, &format!("/v1/invoices/{id}"), &shop_key);
        assert_eq!(
            (got["status"].as_str(), got["paid_via"].as_str(), got["received_msat"].as_u64()),
            (Some("paid"), Some("on_us"), Some(sat * 1_000)),
            "{got}"
        );
        wait_for("invoice.paid and payment.settled", Duration::from_secs(20), || {
            hooks_of(&shop_hooks, "invoice.paid", "invoice_id", id) == 1
                && hooks_of(&payer_hooks, "payment.settled", "payment_id", &payment_id) == 1
        });
    }
    // Both sides booked, nothing from the treasury, no fee; the node saw nothing.
    let total = (21_000 + 22_000 + 23_000) * 1_000;
    assert_eq!(account(&gw, &format!("receivable:{shop_id}")), -total);
    assert_eq!(account(&gw, "payouts:on_us"), total);
    assert_eq!((account(&gw, "receipts:on_us"), account(&gw, "fees:on_us")), (0, 0));
    assert_eq!((account(&gw, "treasury:onchain"), account(&gw, "treasury:lightning")), (0, 0));
    // The node knows the invoice it issued as an inbound payment still pending: no HTLC came.
    let node = gw.call("ln.payments", json!({}));
    let hash = by_bolt11["payment_hash"].as_str().unwrap();
    let seen: Vec<&Value> = node["payments"].as_array().unwrap().iter().filter(|p| p["payment_hash"] == hash).collect();
    assert!(seen.iter().all(|p| p["status"] == "pending"), "no HTLC: {node}");

    // A paid invoice is not paid again; an expired one is refused.
    let (status, e) = pay(&gw, by_bolt11["bolt11"].as_str().unwrap(), 21_000, "p-again");
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("invoice_already_paid")), "{e}");
    let (status, e) = pay(&gw, by_address["address"].as_str().unwrap(), 22_000, "p-again2");
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("invoice_already_paid")), "{e}");
    let body = json!({"amount": {"minor_units": 5_000, "currency": "SAT"}, "description": "late", "expiry_secs": 10});
    let (status, late) = post(&gw, "/v1/invoices", &shop_key, Some("i-late"), &body);
    assert_eq!(status, 201, "{late}");
    std::thread::sleep(Duration::from_secs(11));
    for destination in [&late["address"], &late["bip21"], &late["bolt11"]] {
        let (status, e) = pay(&gw, destination.as_str().unwrap(), 5_000, "p-late");
        assert_eq!((status, e["error"]["code"].as_str()), (400, Some("invoice_expired")), "{destination}: {e}");
    }

    // The process dies right after the commit: the payout settled and the invoice credited are
    // one transaction, found once after the restart; the same key answers the same payment.
    let crash = inv("i-crash", 24_000);
    gw.env = vec![("SENDERO_FAILPOINT".into(), "payment.committed".into())];
    gw.restart();
    wait_ln_running(&gw);
    let (status, _) = pay(&gw, crash["bolt11"].as_str().unwrap(), 24_000, "p-crash");
    assert_eq!(status, 0, "no answer: the process aborted after the commit");
    gw.wait_exit();
    gw.env.clear();
    gw.start_again();
    wait_ln_running(&gw);
    let crash_id = crash["invoice_id"].as_str().unwrap();
    let got = get(&gw, &format!("/v1/invoices/{crash_id}"), &shop_key);
    assert_eq!((got["status"].as_str(), got["received_msat"].as_u64()), (Some("paid"), Some(24_000_000)), "{got}");
    let conn = common::books(&gw.datadir);
    let count = |sql: &str| conn.query_row(sql, [crash_id], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox WHERE event_type = 'invoice.paid' AND payload LIKE '%' || ?1 || '%'"),
        1
    );
    assert_eq!(account(&gw, &format!("receivable:{shop_id}")), -(total + 24_000_000), "credited once");
    let (status, e) = pay(&gw, crash["bolt11"].as_str().unwrap(), 24_000, "p-crash-2");
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("invoice_already_paid")), "{e}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(account(&gw, "receipts:lightning"), 0, "not counted again from the node");
    assert_eq!(get(&gw, &format!("/v1/invoices/{crash_id}"), &shop_key)["received_msat"], 24_000_000);
}

#[test]
fn a_refund_to_the_customers_lightning_invoice_is_paid_over_lightning_and_the_books_net_out() {
    let static_fx = "[fx]\npairs = [\"BTC/EUR\"]\nstatic_rates = { \"BTC/EUR\" = \"85000\" }\nmarkup_bps = 50\n";
    let p = common::ln::pair_with(static_fx);
    common::ln::open_channel(&p, 1_000_000);
    let (merchant, customer) = (&p.a, &p.b);
    let created = merchant.cli(&["apikey.create", "--label", "shop", "--scopes", "invoice,pay,read"]);
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let hooks = Receiver::start(200);
    let hook = json!({"url": hooks.url(), "events": ["payment.settled"]});
    assert_eq!(post(merchant, "/v1/webhooks", &key, None, &hook).0, 201);

    // A 7.50 EUR order paid on chain by the customer, refunded to an invoice of its node.
    let inv = invoice(merchant, &key, "order-ln", 750, "EUR");
    let (id, sat) = (inv["invoice_id"].as_str().unwrap().to_owned(), inv["amount_sat"].as_u64().unwrap());
    customer.call("wallet.send", json!({"address": inv["address"], "amount_sat": sat}));
    p.chain.mine(1);
    wait_for("the invoice paid", Duration::from_secs(30), || {
        get(merchant, &format!("/v1/invoices/{id}"), &key)["status"] == "paid"
    });
    let theirs =
        customer.call("ln.invoice", json!({"amount_msat": sat * 1_000, "description": "refund", "expiry_secs": 600}));
    let bolt11 = theirs["bolt11"].as_str().or(theirs["invoice"].as_str()).unwrap().to_owned();
    let (status, r) = refund(merchant, &key, &id, "r-ln", &json!({"destination": bolt11, "amount": "rate_then"}));
    assert_eq!((status, r["rail"].as_str(), r["amount_sat"].as_u64()), (202, Some("lightning"), Some(sat)), "{r}");
    let payment_id = r["payment_id"].as_str().unwrap().to_owned();
    settled(merchant, &key, &payment_id);

    // The customer's node received it; the payout was told; the invoice nets out to zero.
    let hash = theirs["payment_hash"].as_str().unwrap();
    wait_for("the customer's node to have received it", Duration::from_secs(20), || {
        common::ln::payment_by_hash(customer, hash)
            .is_some_and(|p| p["status"] == "succeeded" && p["amount_msat"].as_u64() == Some(sat * 1_000))
    });
    wait_for("payment.settled", Duration::from_secs(20), || {
        hooks_of(&hooks, "payment.settled", "payment_id", &payment_id) == 1
    });
    let got = get(merchant, &format!("/v1/invoices/{id}"), &key);
    assert_eq!(
        (got["refunded_sat"].as_u64(), got["refunds"][0]["status"].as_str()),
        (Some(sat), Some("SETTLED")),
        "{got}"
    );
    common::ln::settled_exact(merchant, "after the Lightning refund");
    assert_eq!(account(merchant, &format!("receivable:{key_id}")), 0, "received, then refunded in full");
    assert_eq!(account(merchant, "payouts:lightning"), 0, "a refund is the merchant's money, not a payout");
}
