//! Receiving: a merchant's invoices on a real senderod (gateway B), priced in euros at a locked
//! rate, with a fresh address, a BOLT11 invoice and one BIP21 URI for both; paid over Lightning
//! by a second real gateway (A, the customer, with a channel to B), seen paid within seconds,
//! booked once against the key's receivable, told through a signed `invoice.paid` webhook.
//! Refusals keep stable codes and change nothing; another key sees none of it.

mod common;

use std::time::{Duration, Instant};

use common::ln::{account, open_channel, pair_with, settled_exact};
use common::webhook::{signature_valid, Receiver};
use common::{http_get_with_key, http_post, wait_for, Gateway};
use serde_json::{json, Value};

const FX: &str = r#"[fx]
pairs = ["BTC/EUR"]
static_rates = { "BTC/EUR" = "85000" }
markup_bps = 50
quote_ttl_secs = 30
"#;

fn create(gw: &Gateway, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, "/v1/invoices", key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn invoices(gw: &Gateway, key: &str, query: &str) -> Value {
    let (status, list) = http_get_with_key(gw.api_port, &format!("/v1/invoices{query}"), Some(key));
    assert_eq!(status, 200, "{list}");
    list
}

/// Every refusal: its status and stable code, and no invoice made.
fn refusals(gw: &Gateway, key: &str) {
    let ok = json!({"amount": {"minor_units": 1_000, "currency": "EUR"}, "description": "order 1"});
    let cases = [
        (None, ok.clone(), 400, "idempotency_key_required"),
        (Some("bad-1"), json!({"amount": {"minor_units": 0, "currency": "EUR"}}), 400, "invalid_amount"),
        (Some("bad-2"), json!({"amount": {"minor_units": 10, "currency": "XYZ"}}), 400, "invalid_currency"),
        (Some("bad-3"), json!({"amount": {"minor_units": 10, "currency": "USD"}}), 400, "unsupported_pair"),
        (
            Some("bad-4"),
            json!({"amount": {"minor_units": 10, "currency": "EUR"}, "speed": "warp"}),
            400,
            "invalid_speed",
        ),
        (
            Some("bad-5"),
            json!({"amount": {"minor_units": 10, "currency": "EUR"}, "expiry_secs": 5}),
            400,
            "invalid_expiry",
        ),
        (
            Some("bad-6"),
            json!({"amount": {"minor_units": 10, "currency": "EUR"}, "metadata": [1]}),
            400,
            "invalid_metadata",
        ),
    ];
    for (idem, body, status, code) in cases {
        let (got, answer) = create(gw, key, idem, &body);
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{body}: {answer}");
    }
    let read_only = gw.api_key("read");
    let (status, answer) = create(gw, &read_only, Some("ro"), &ok);
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")));
    assert_eq!(invoices(gw, key, "")["invoices"], json!([]), "a refusal made no invoice");
}

#[test]
fn a_euro_invoice_paid_over_lightning_is_paid_booked_and_told_once() {
    let p = pair_with(FX);
    open_channel(&p, 1_000_000);
    let (customer, merchant) = (&p.a, &p.b);
    let created = merchant.cli(&["apikey.create", "--label", "shop", "--scopes", "invoice,pay"]);
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let other = merchant.api_key("invoice,read");
    let hooks = Receiver::start(200);
    let body = json!({"url": hooks.url(), "events": ["invoice.paid"]}).to_string();
    let (status, text) = http_post(merchant.api_port, "/v1/webhooks", &key, None, &body);
    assert_eq!(status, 201, "{text}");
    let secret = serde_json::from_str::<Value>(&text).unwrap()["secret"].as_str().unwrap().to_owned();

    refusals(merchant, &key);

    // 10.00 EUR at 85,000 EUR/BTC, marked up 50 bps on the gateway's side: ceil(10 × 1.005 /
    // 85,000 BTC) = 11,824 sat, locked for the invoice's life.
    let order = json!({"amount": {"minor_units": 1_000, "currency": "EUR"}, "description": "order 42",
                       "metadata": {"order": 42}, "speed": "high", "expiry_secs": 900});
    let (status, inv) = create(merchant, &key, Some("order-42"), &order);
    assert_eq!(status, 201, "{inv}");
    let want_sat = (1_000u128 * 100_000_000 * 10_050).div_ceil(100 * 85_000 * 10_000) as u64;
    assert_eq!((inv["status"].as_str(), inv["amount_sat"].as_u64()), (Some("new"), Some(want_sat)), "{inv}");
    assert_eq!(inv["amount"], json!({"minor_units": 1_000, "currency": "EUR"}));
    assert!(inv["fx_quote_id"].as_str().unwrap().starts_with("q_"), "{inv}");
    assert_eq!(inv["metadata"], json!({"order": 42}));
    let (address, bolt11) = (inv["address"].as_str().unwrap(), inv["bolt11"].as_str().unwrap());
    assert!(address.starts_with("bcrt1") && bolt11.starts_with("lnbcrt"), "{inv}");
    let btc = format!("0.{want_sat:08}").trim_end_matches('0').to_owned();
    assert_eq!(inv["bip21"], format!("bitcoin:{address}?amount={btc}&lightning={bolt11}"));
    let id = inv["invoice_id"].as_str().unwrap().to_owned();
    // The quote that locks the amount is the invoice's, not a trade the key can execute.
    let execute = json!({"quote_id": inv["fx_quote_id"], "amount_minor": 1_000, "pair": "BTC/EUR"}).to_string();
    let (status, text) = http_post(merchant.api_port, "/v1/fx/execute", &key, Some("steal-quote"), &execute);
    assert_eq!(
        (status, serde_json::from_str::<Value>(&text).unwrap()["error"]["code"].clone()),
        (409, json!("quote_reserved")),
        "{text}"
    );

    // The same request again: the same invoice, byte for byte; another key: no such invoice.
    let (replayed, again) = http_post(merchant.api_port, "/v1/invoices", &key, Some("order-42"), &order.to_string());
    assert_eq!((replayed, serde_json::from_str::<Value>(&again).unwrap()), (201, inv.clone()));
    let (status, theirs) = http_get_with_key(merchant.api_port, &format!("/v1/invoices/{id}"), Some(&other));
    assert_eq!((status, theirs["error"]["code"].as_str()), (404, Some("invoice_not_found")));
    assert_eq!(invoices(merchant, &other, "")["invoices"], json!([]));
    assert_eq!(invoices(merchant, &key, "?status=new")["invoices"][0]["invoice_id"], id);
    let second = json!({"amount": {"minor_units": 2_500, "currency": "SAT"}, "description": "tip"});
    let (status, tip) = create(merchant, &key, Some("tip"), &second);
    assert_eq!((status, tip["amount_sat"].as_u64(), tip["fx_quote_id"].clone()), (201, Some(2_500), Value::Null));
    assert_ne!(tip["address"], inv["address"], "a fresh address per invoice");
    let page = invoices(merchant, &key, "?limit=1");
    assert_eq!(
        (page["invoices"][0]["invoice_id"].clone(), page["next_cursor"].clone()),
        (tip["invoice_id"].clone(), tip["invoice_id"].clone())
    );
    let rest = invoices(merchant, &key, &format!("?limit=1&cursor={}", tip["invoice_id"].as_str().unwrap()));
    assert_eq!(
        (rest["invoices"][0]["invoice_id"].as_str(), rest["next_cursor"].clone()),
        (Some(id.as_str()), Value::Null)
    );

    // The customer pays the BOLT11 invoice from its own gateway.
    let started = Instant::now();
    customer.call("ln.pay", json!({"invoice": bolt11}));
    let get = || http_get_with_key(merchant.api_port, &format!("/v1/invoices/{id}"), Some(&key)).1;
    wait_for("the invoice to be paid", Duration::from_secs(15), || get()["status"] == "paid");
    eprintln!("invoice paid {:?} after the customer paid", started.elapsed());
    let paid = get();
    assert_eq!(paid["received_msat"].as_u64(), Some(want_sat * 1_000), "{paid}");
    assert_eq!((paid["paid_via"].as_str(), paid["exception"].clone()), (Some("lightning"), Value::Null));
    assert_eq!(paid["received_minor_units"], 1_000);
    assert_eq!(invoices(merchant, &key, "?status=paid")["invoices"][0]["invoice_id"], id);

    wait_for("invoice.paid delivered", Duration::from_secs(15), || {
        hooks.hooks().iter().any(|h| h.body.contains("invoice.paid"))
    });
    std::thread::sleep(Duration::from_secs(1));
    let told: Vec<_> = hooks
        .hooks()
        .into_iter()
        .filter(|h| {
            let v: Value = serde_json::from_str(&h.body).unwrap();
            v["type"] == "invoice.paid" && v["data"]["invoice_id"] == id.as_str()
        })
        .collect();
    assert_eq!(told.len(), 1, "told once: {told:?}");
    assert!(signature_valid(&secret, &told[0]), "the webhook's signature checks out");
    let data: Value = serde_json::from_str::<Value>(&told[0].body).unwrap()["data"].clone();
    assert_eq!((data["status"].as_str(), data["received_msat"].as_u64()), (Some("paid"), Some(want_sat * 1_000)));

    // Booked once, against the key's receivable, not as an anonymous receipt; the books add up.
    let verify = settled_exact(merchant, "after the invoice was paid");
    assert_eq!(verify["ok"], true);
    assert_eq!(account(merchant, &format!("receivable:{key_id}")), -((want_sat * 1_000) as i64));
    assert_eq!(account(merchant, "receipts:lightning"), 0, "the payment is not imported a second time");
}

/// The hooks of `event_type` about invoice `id`.
fn told(hooks: &Receiver, event_type: &str, id: &str) -> Vec<common::webhook::Hook> {
    hooks
        .hooks()
        .into_iter()
        .filter(|h| {
            let v: Value = serde_json::from_str(&h.body).unwrap();
            h.answered < 300 && v["type"] == event_type && v["data"]["invoice_id"] == id
        })
        .collect()
}

#[test]
fn an_invoice_paid_on_chain_is_processing_in_the_mempool_paid_once_confirmed_and_unpaid_ones_expire() {
    let p = pair_with(FX);
    let (merchant, customer, chain) = (&p.a, &p.b, &p.chain);
    let created = merchant.cli(&["apikey.create", "--label", "shop", "--scopes", "invoice"]);
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let hooks = Receiver::start(200);
    let events = ["invoice.processing", "invoice.paid", "invoice.expired"];
    let body = json!({"url": hooks.url(), "events": events}).to_string();
    let (status, text) = http_post(merchant.api_port, "/v1/webhooks", &key, None, &body);
    assert_eq!(status, 201, "{text}");
    let secret = serde_json::from_str::<Value>(&text).unwrap()["secret"].as_str().unwrap().to_owned();

    let late =
        json!({"amount": {"minor_units": 5_000, "currency": "SAT"}, "description": "never paid", "expiry_secs": 10});
    let (status, late) = create(merchant, &key, Some("late"), &late);
    assert_eq!(status, 201, "{late}");
    let order =
        json!({"amount": {"minor_units": 2_500, "currency": "EUR"}, "description": "order 7", "speed": "medium"});
    let (status, inv) = create(merchant, &key, Some("order-7"), &order);
    assert_eq!(status, 201, "{inv}");
    let (id, amount_sat) = (inv["invoice_id"].as_str().unwrap().to_owned(), inv["amount_sat"].as_u64().unwrap());
    let by_speed = |speed: &str, sat: u64| {
        let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "description": speed, "speed": speed});
        let (status, inv) = create(merchant, &key, Some(speed), &body);
        assert_eq!(status, 201, "{inv}");
        inv
    };
    let (fast, slow) = (by_speed("high", 30_000), by_speed("low", 40_000));
    let external_before = account(merchant, "external:onchain");

    // The customer pays the addresses from its own treasury: seen in the mempool → processing.
    let sent = customer.call("wallet.send", json!({"address": inv["address"], "amount_sat": amount_sat}));
    let txid = sent["txid"].as_str().unwrap().to_owned();
    customer.call("wallet.send", json!({"address": fast["address"], "amount_sat": 30_000}));
    customer.call("wallet.send", json!({"address": slow["address"], "amount_sat": 40_000}));
    let status_of = |id: &Value| {
        http_get_with_key(merchant.api_port, &format!("/v1/invoices/{}", id.as_str().unwrap()), Some(&key)).1
    };
    let get = || status_of(&json!(id));
    wait_for("the invoices to be processing", Duration::from_secs(20), || {
        [get(), status_of(&fast["invoice_id"]), status_of(&slow["invoice_id"])]
            .iter()
            .all(|i| i["status"] == "processing")
    });
    assert_eq!(get()["received_msat"], 0, "a medium-speed invoice counts nothing unconfirmed");
    assert!(chain.mempool().contains(&txid));
    // The treasury's sends signal RBF: even a high-speed invoice waits for a confirmation.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status_of(&fast["invoice_id"])["status"], "processing", "an RBF-signalling payment is not final");

    // One confirmation: paid, booked once against the key's receivable, not as an outside deposit.
    chain.mine(1);
    wait_for("the invoice to be paid", Duration::from_secs(30), || get()["status"] == "paid");
    wait_for("the high-speed one too", Duration::from_secs(30), || status_of(&fast["invoice_id"])["status"] == "paid");
    // A low-speed invoice waits for six; what it received is booked as soon as it confirmed.
    let booked = settled_exact(merchant, "one confirmation");
    assert_eq!(status_of(&slow["invoice_id"])["status"], "processing", "{booked}");
    chain.mine(5);
    wait_for("the low-speed one after six", Duration::from_secs(30), || {
        status_of(&slow["invoice_id"])["status"] == "paid"
    });
    let paid = get();
    assert_eq!(
        (paid["received_msat"].as_u64(), paid["paid_via"].as_str()),
        (Some(amount_sat * 1_000), Some("onchain"))
    );
    assert_eq!(paid["received_minor_units"], 2_500);
    settled_exact(merchant, "after the on-chain invoice payment confirmed");
    let all = (amount_sat + 30_000 + 40_000) * 1_000;
    assert_eq!(account(merchant, &format!("receivable:{key_id}")), -(all as i64));
    assert_eq!(account(merchant, "external:onchain"), external_before, "not imported as an outside deposit");

    // The unpaid invoice expired; each event was told once, signed.
    let late_id = late["invoice_id"].as_str().unwrap().to_owned();
    let get_late = || http_get_with_key(merchant.api_port, &format!("/v1/invoices/{late_id}"), Some(&key)).1;
    wait_for("the unpaid invoice to expire", Duration::from_secs(30), || get_late()["status"] == "expired");
    wait_for("the webhooks", Duration::from_secs(15), || {
        told(&hooks, "invoice.paid", &id).len() == 1 && told(&hooks, "invoice.expired", &late_id).len() == 1
    });
    std::thread::sleep(Duration::from_secs(2));
    for (event, about) in [("invoice.processing", &id), ("invoice.paid", &id), ("invoice.expired", &late_id)] {
        let got = told(&hooks, event, about);
        assert_eq!(got.len(), 1, "{event} told once: {got:?}");
        assert!(signature_valid(&secret, &got[0]), "{event}: the signature checks out");
    }
    assert!(told(&hooks, "invoice.paid", &late_id).is_empty() && told(&hooks, "invoice.expired", &id).is_empty());
}

#[test]
fn a_payment_that_arrives_while_senderod_is_down_is_counted_once_after_the_restart() {
    let mut p = pair_with(FX);
    let created = p.a.cli(&["apikey.create", "--label", "shop", "--scopes", "invoice"]);
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let order = json!({"amount": {"minor_units": 1_500, "currency": "EUR"}, "description": "order 9"});
    let (status, inv) = create(&p.a, &key, Some("order-9"), &order);
    assert_eq!(status, 201, "{inv}");
    let (id, amount_sat) = (inv["invoice_id"].as_str().unwrap().to_owned(), inv["amount_sat"].as_u64().unwrap());

    p.a.kill();
    p.b.call("wallet.send", json!({"address": inv["address"], "amount_sat": amount_sat}));
    p.chain.mine(1);
    p.a.start_again();
    let get = || http_get_with_key(p.a.api_port, &format!("/v1/invoices/{id}"), Some(&key)).1;
    wait_for("the invoice to be paid after the restart", Duration::from_secs(60), || get()["status"] == "paid");
    assert_eq!(get()["received_msat"].as_u64(), Some(amount_sat * 1_000));
    settled_exact(&p.a, "after the restart");
    p.a.restart();
    settled_exact(&p.a, "after another restart");
    assert_eq!(account(&p.a, &format!("receivable:{key_id}")), -((amount_sat * 1_000) as i64), "counted once");
    let conn = common::books(&p.a.datadir);
    let events: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE event_type = 'invoice.paid' AND payload LIKE ?1",
            [format!("%{id}%")],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(events, 1, "one invoice.paid");
}

#[test]
fn underpaid_and_overpaid_invoices_are_marked_and_partial_payments_add_up() {
    // A 5% tolerance: 49,000 of 50,000 sat is paid; 20,000 is not, nor is 80,000 exact.
    let p = pair_with(&format!("{FX}\n[invoices]\ntolerance_bps = 500\n"));
    let (merchant, customer, chain) = (&p.a, &p.b, &p.chain);
    let created = merchant.cli(&["apikey.create", "--label", "shop", "--scopes", "invoice"]);
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let hooks = Receiver::start(200);
    let events = ["invoice.paid", "invoice.underpaid", "invoice.overpaid"];
    let (status, text) = http_post(
        merchant.api_port,
        "/v1/webhooks",
        &key,
        None,
        &json!({"url": hooks.url(), "events": events}).to_string(),
    );
    assert_eq!(status, 201, "{text}");
    let make = |idem: &str| {
        let body =
            json!({"amount": {"minor_units": 50_000, "currency": "SAT"}, "description": idem, "speed": "medium"});
        let (status, inv) = create(merchant, &key, Some(idem), &body);
        assert_eq!(status, 201, "{inv}");
        inv
    };
    let (short, over, near) = (make("short"), make("over"), make("near"));
    let pay =
        |inv: &Value, sat: u64| customer.call("wallet.send", json!({"address": inv["address"], "amount_sat": sat}));
    pay(&short, 20_000);
    pay(&over, 80_000);
    pay(&near, 49_000);
    chain.mine(1);
    let get = |inv: &Value| {
        http_get_with_key(
            merchant.api_port,
            &format!("/v1/invoices/{}", inv["invoice_id"].as_str().unwrap()),
            Some(&key),
        )
        .1
    };
    wait_for("both counted", Duration::from_secs(30), || {
        get(&short)["status"] == "underpaid" && get(&over)["status"] == "paid"
    });
    assert_eq!(
        (get(&short)["exception"].as_str(), get(&short)["received_msat"].as_u64()),
        (Some("underpaid"), Some(20_000_000))
    );
    assert_eq!(
        (get(&over)["exception"].as_str(), get(&over)["received_msat"].as_u64()),
        (Some("overpaid"), Some(80_000_000))
    );
    wait_for("the near one", Duration::from_secs(30), || get(&near)["status"] == "paid");
    assert_eq!(
        (get(&near)["exception"].clone(), get(&near)["received_msat"].as_u64()),
        (Value::Null, Some(49_000_000))
    );

    // The rest of the short one, in a second payment: the two add up to paid.
    pay(&short, 30_000);
    chain.mine(1);
    wait_for("the short one paid in two parts", Duration::from_secs(30), || get(&short)["status"] == "paid");
    let paid = get(&short);
    assert_eq!((paid["exception"].clone(), paid["received_msat"].as_u64()), (Value::Null, Some(50_000_000)), "{paid}");
    settled_exact(merchant, "after partial and over payments");
    assert_eq!(account(merchant, &format!("receivable:{key_id}")), -179_000_000, "every sat received is booked");
    let id = |inv: &Value| inv["invoice_id"].as_str().unwrap().to_owned();
    wait_for("the webhooks", Duration::from_secs(15), || {
        told(&hooks, "invoice.paid", &id(&short)).len() == 1
            && told(&hooks, "invoice.underpaid", &id(&short)).len() == 1
            && told(&hooks, "invoice.overpaid", &id(&over)).len() == 1
            && told(&hooks, "invoice.paid", &id(&over)).len() == 1
    });
}
