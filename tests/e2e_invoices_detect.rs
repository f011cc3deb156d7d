//! Detecting what pays an invoice, on real processes: a real bitcoind, a merchant's senderod and
//! a second gateway as the customer (over its treasury and, with a channel, its node). Paid on
//! both rails at once, paid twice, underpaid then expired, paid after expiry (on chain: an
//! expired BOLT11 is refused by the payer's node), a reorg that takes a counted payment out of
//! the chain and the same payment mined again, and senderod SIGKILLed while payments arrive:
//! every sat received is booked once against the key's receivable, the books match the wallet
//! and the node, and every `invoice.*` event is told once, signed.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::ln::{account, open_channel, pair_each, pair_with, payment, settled_exact};
use common::webhook::{signature_valid, Hook, Receiver};
use common::{call_bitcoind, http_get_with_key, http_post, outside_address, wait_for, Gateway};
use serde_json::{json, Value};

const FX: &str = r#"[fx]
pairs = ["BTC/EUR"]
static_rates = { "BTC/EUR" = "85000" }
markup_bps = 50
quote_ttl_secs = 30
"#;

const EVENTS: [&str; 7] = [
    "invoice.processing",
    "invoice.paid",
    "invoice.underpaid",
    "invoice.overpaid",
    "invoice.paid_late",
    "invoice.expired",
    "invoice.reorged",
];

/// A merchant key (scope `invoice`) with a webhook endpoint for every invoice event: (key id,
/// key, receiver, signing secret).
fn merchant_key(gw: &Gateway) -> (String, String, Receiver, String) {
    let created = gw.cli(&["apikey.create", "--label", "shop", "--scopes", "invoice"]);
    let (key_id, key) = (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned());
    let hooks = Receiver::start(200);
    let body = json!({"url": hooks.url(), "events": EVENTS}).to_string();
    let (status, text) = http_post(gw.api_port, "/v1/webhooks", &key, None, &body);
    assert_eq!(status, 201, "{text}");
    let secret = serde_json::from_str::<Value>(&text).unwrap()["secret"].as_str().unwrap().to_owned();
    (key_id, key, hooks, secret)
}

/// A sat-priced invoice.
fn create(gw: &Gateway, key: &str, name: &str, sat: u64, expiry_secs: u64) -> Value {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "description": name, "speed": "medium",
                      "expiry_secs": expiry_secs});
    let (status, text) = http_post(gw.api_port, "/v1/invoices", key, Some(name), &body.to_string());
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn get(gw: &Gateway, key: &str, inv: &Value) -> Value {
    let (status, got) =
        http_get_with_key(gw.api_port, &format!("/v1/invoices/{}", inv["invoice_id"].as_str().unwrap()), Some(key));
    assert_eq!(status, 200, "{got}");
    got
}

fn pay_on_chain(customer: &Gateway, inv: &Value, sat: u64) -> String {
    let sent = customer.call("wallet.send", json!({"address": inv["address"], "amount_sat": sat}));
    sent["txid"].as_str().unwrap().to_owned()
}

/// The hooks delivered (answered 2xx) of `event_type` about `inv`.
fn told(hooks: &Receiver, event_type: &str, inv: &Value) -> Vec<Hook> {
    hooks
        .hooks()
        .into_iter()
        .filter(|h| {
            let v: Value = serde_json::from_str(&h.body).unwrap();
            h.answered < 300 && v["type"] == event_type && v["data"]["invoice_id"] == inv["invoice_id"]
        })
        .collect()
}

/// How many distinct events (webhook ids) of each type were told about `inv`, in [`EVENTS`]'s
/// order, once every event the outbox holds about it was delivered.
fn told_once_each(gw: &Gateway, hooks: &Receiver, inv: &Value) -> [usize; 7] {
    let id = inv["invoice_id"].as_str().unwrap();
    let queued = outbox(gw, id).len();
    wait_for(&format!("the {queued} events about {id} delivered"), Duration::from_secs(30), || {
        EVENTS.iter().map(|e| distinct(&told(hooks, e, inv))).sum::<usize>() == queued
    });
    EVENTS.map(|e| distinct(&told(hooks, e, inv)))
}

fn distinct(hooks: &[Hook]) -> usize {
    hooks.iter().map(|h| h.headers["webhook-id"].clone()).collect::<HashSet<_>>().len()
}

/// The event types the outbox queued about `invoice_id`, in order.
fn outbox(gw: &Gateway, invoice_id: &str) -> Vec<String> {
    let conn = common::books(&gw.datadir);
    let mut stmt = conn.prepare("SELECT event_type FROM outbox WHERE payload LIKE ?1 ORDER BY id").unwrap();
    let rows = stmt.query_map([format!("%\"invoice_id\":\"{invoice_id}\"%")], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// The ledger references that mention `text`, in order.
fn references(gw: &Gateway, text: &str) -> Vec<String> {
    let conn = common::books(&gw.datadir);
    let mut stmt = conn.prepare("SELECT reference FROM ledger_entries WHERE reference LIKE ?1 ORDER BY id").unwrap();
    let rows = stmt.query_map([format!("%{text}%")], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn paid_on_both_rails_paid_twice_and_paid_after_expiry_every_sat_is_credited_and_marked() {
    // The merchant (B) watches only its open invoices' addresses each tick (`watch_days = 0`): a
    // payment to an invoice that closed is still matched when it arrives, by its address.
    let p = pair_each(FX, &format!("{FX}\n[invoices]\nwatch_days = 0\n"));
    open_channel(&p, 1_000_000);
    let (customer, merchant, chain) = (&p.a, &p.b, &p.chain);
    let (key_id, key, hooks, secret) = merchant_key(merchant);
    let external = account(merchant, "external:onchain");

    // Paid on both rails at once: the address and the BOLT11 invoice of the same invoice, the
    // on-chain payment still in the mempool when the Lightning one arrives.
    let both = create(merchant, &key, "both", 20_000, 900);
    pay_on_chain(customer, &both, 20_000);
    wait_for("processing", Duration::from_secs(20), || get(merchant, &key, &both)["status"] == "processing");
    customer.call("ln.pay", json!({"invoice": both["bolt11"]}));
    wait_for("paid over lightning", Duration::from_secs(20), || get(merchant, &key, &both)["status"] == "paid");
    chain.mine(1);
    wait_for("the on-chain payment counted too", Duration::from_secs(30), || {
        get(merchant, &key, &both)["received_msat"] == 40_000_000
    });
    let got = get(merchant, &key, &both);
    assert_eq!((got["status"].as_str(), got["exception"].as_str()), (Some("paid"), Some("overpaid")), "{got}");
    assert_eq!((got["overpaid_msat"].as_u64(), got["due_msat"].as_u64()), (Some(20_000_000), Some(0)));

    // Paid twice on chain: two full payments to the same address.
    let twice = create(merchant, &key, "twice", 25_000, 900);
    pay_on_chain(customer, &twice, 25_000);
    pay_on_chain(customer, &twice, 25_000);
    wait_for("processing", Duration::from_secs(20), || get(merchant, &key, &twice)["status"] == "processing");
    chain.mine(1);
    wait_for("both payments counted", Duration::from_secs(30), || {
        get(merchant, &key, &twice)["received_msat"] == 50_000_000
    });
    let got = get(merchant, &key, &twice);
    assert_eq!((got["status"].as_str(), got["exception"].as_str()), (Some("paid"), Some("overpaid")), "{got}");

    // Underpaid, then expired with what it received, then the rest after the expiry.
    let short = create(merchant, &key, "short", 20_000, 30);
    pay_on_chain(customer, &short, 5_000);
    wait_for("processing", Duration::from_secs(20), || get(merchant, &key, &short)["status"] == "processing");
    chain.mine(1);
    wait_for("underpaid", Duration::from_secs(20), || get(merchant, &key, &short)["status"] == "underpaid");
    let late = create(merchant, &key, "late", 15_000, 10);
    wait_for("both expired", Duration::from_secs(40), || {
        get(merchant, &key, &short)["status"] == "expired" && get(merchant, &key, &late)["status"] == "expired"
    });
    let got = get(merchant, &key, &short);
    assert_eq!((got["exception"].as_str(), got["received_msat"].as_u64()), (Some("underpaid"), Some(5_000_000)));

    // An expired BOLT11 invoice: the customer's node will not pay it (and the merchant's node
    // would fail the HTLC once the expiry, plus LDK's two hours of block-time slack, passed).
    match customer.try_call("ln.pay", json!({"invoice": late["bolt11"]})) {
        Err(e) => eprintln!("the customer's node refused the expired invoice: {e}"),
        Ok(sent) => {
            let id = sent["payment_id"].as_str().unwrap().to_owned();
            wait_for("the payment to fail", Duration::from_secs(30), || {
                payment(customer, &id).is_some_and(|p| p["status"] == "failed")
            });
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get(merchant, &key, &late)["received_msat"], 0, "nothing arrived over lightning");

    // On chain it can be paid late: credited, booked, marked paid_late with the amounts.
    pay_on_chain(customer, &late, 15_000);
    pay_on_chain(customer, &short, 15_000);
    chain.mine(1);
    wait_for("both paid late", Duration::from_secs(30), || {
        get(merchant, &key, &late)["status"] == "paid_late" && get(merchant, &key, &short)["status"] == "paid_late"
    });
    let got = get(merchant, &key, &late);
    assert_eq!((got["received_msat"].as_u64(), got["paid_late_msat"].as_u64()), (Some(15_000_000), Some(15_000_000)));
    assert_eq!(got["exception"], Value::Null, "{got}");
    let got = get(merchant, &key, &short);
    assert_eq!((got["received_msat"].as_u64(), got["paid_late_msat"].as_u64()), (Some(20_000_000), Some(15_000_000)));
    assert_eq!((got["exception"].clone(), got["due_msat"].as_u64()), (Value::Null, Some(0)), "{got}");
    let (status, listed) = http_get_with_key(merchant.api_port, "/v1/invoices?status=paid_late", Some(&key));
    assert_eq!((status, listed["invoices"].as_array().map(Vec::len)), (200, Some(2)), "{listed}");

    // Every sat booked once against the key; the books match the wallet and the node.
    settled_exact(merchant, "after every payment");
    let all = 40_000_000 + 50_000_000 + 20_000_000 + 15_000_000;
    assert_eq!(account(merchant, &format!("receivable:{key_id}")), -all);
    assert_eq!(account(merchant, "external:onchain"), external, "nothing imported as an outside deposit");

    //                                   processing paid under over late expired reorged
    assert_eq!(told_once_each(merchant, &hooks, &both), [1, 1, 0, 1, 0, 0, 0]);
    assert_eq!(told_once_each(merchant, &hooks, &twice), [1, 1, 0, 1, 0, 0, 0]);
    assert_eq!(told_once_each(merchant, &hooks, &short), [1, 0, 1, 0, 1, 1, 0]);
    assert_eq!(told_once_each(merchant, &hooks, &late), [0, 0, 0, 0, 1, 1, 0]);
    let hook = &told(&hooks, "invoice.paid_late", &late)[0];
    assert!(signature_valid(&secret, hook), "the signature checks out");
    let data = &serde_json::from_str::<Value>(&hook.body).unwrap()["data"];
    assert_eq!((data["status"].as_str(), data["paid_late_msat"].as_u64()), (Some("paid_late"), Some(15_000_000)));
}

#[test]
fn a_reorg_takes_a_counted_payment_back_and_the_payment_mined_again_is_booked_once() {
    let p = pair_with(FX);
    let (merchant, customer, chain) = (&p.a, &p.b, &p.chain);
    let (key_id, key, hooks, secret) = merchant_key(merchant);
    let receivable = || account(merchant, &format!("receivable:{key_id}"));
    let external = account(merchant, "external:onchain");
    let inv = create(merchant, &key, "order", 30_000, 3_600);
    let txid = pay_on_chain(customer, &inv, 30_000);
    wait_for("processing", Duration::from_secs(20), || get(merchant, &key, &inv)["status"] == "processing");
    chain.mine(1);
    wait_for("paid", Duration::from_secs(30), || get(merchant, &key, &inv)["status"] == "paid");
    settled_exact(merchant, "paid");
    assert_eq!(receivable(), -30_000_000);

    // A competing block replaces the one that confirmed the payment: back in the mempool.
    let rpc = chain.rpc();
    let tip = call_bitcoind(&rpc, "getbestblockhash", &[]);
    call_bitcoind(&rpc, "invalidateblock", &[tip]);
    wait_for("the payment back in the mempool", Duration::from_secs(10), || chain.mempool().contains(&txid));
    call_bitcoind(&rpc, "generateblock", &[json!(outside_address(98).to_string()), json!([])]);
    wait_for("processing again", Duration::from_secs(30), || get(merchant, &key, &inv)["status"] == "processing");
    let got = get(merchant, &key, &inv);
    assert_eq!((got["received_msat"].as_u64(), got["due_msat"].as_u64()), (Some(0), Some(30_000_000)), "{got}");
    let verify = settled_exact(merchant, "after the reorg");
    assert_eq!(receivable(), 0, "the booking is reversed: {verify}");
    wait_for("invoice.reorged", Duration::from_secs(15), || told(&hooks, "invoice.reorged", &inv).len() == 1);
    let hook = &told(&hooks, "invoice.reorged", &inv)[0];
    assert!(signature_valid(&secret, hook));
    let data = &serde_json::from_str::<Value>(&hook.body).unwrap()["data"];
    assert_eq!((data["status"].as_str(), data["received_msat"].as_u64()), (Some("processing"), Some(0)));

    // Mined again: paid again, booked once net.
    chain.mine(1);
    wait_for("paid again", Duration::from_secs(30), || get(merchant, &key, &inv)["status"] == "paid");
    settled_exact(merchant, "mined again");
    assert_eq!(receivable(), -30_000_000, "one booking net");
    assert_eq!(account(merchant, "external:onchain"), external, "never an outside deposit");
    let outpoint = references(merchant, &txid)[0].trim_start_matches("invoice:onchain:").to_owned();
    assert_eq!(
        references(merchant, &txid),
        [
            format!("invoice:onchain:{outpoint}"),
            format!("invoice:reorg:{outpoint}:1"),
            format!("invoice:onchain:{outpoint}:2")
        ]
    );
    //                                  processing paid under over late expired reorged
    assert_eq!(told_once_each(merchant, &hooks, &inv), [1, 2, 0, 0, 0, 0, 1]);
    // The reconciliation follows the three bookings: the invoice and its transaction match.
    let report = merchant.call("recon.report", json!({}));
    let check = report["invoices"].as_array().unwrap().iter().find(|c| c["invoice_id"] == inv["invoice_id"]).cloned();
    assert_eq!(check.as_ref().map(|c| c["class"].clone()), Some(json!("match")), "{:#}", report["invoices"]);
    let item = report["items"].as_array().unwrap().iter().find(|i| i["reference"] == txid.as_str()).cloned();
    let item = item.unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!((item["class"].as_str(), item["ledger_sat"].as_i64()), (Some("match"), Some(30_000)), "{item}");
    assert_eq!((report["ok"].as_bool(), report["summary"]["missing"].as_u64()), (Some(true), Some(0)), "{report:#}");
}

/// Waits until the customer's Lightning payment `ln_id` is final. A kill between the merchant's
/// node persisting a ChannelMonitor update and its ChannelManager makes LDK force-close the
/// channel on restart (rust-lightning #4286, README "Crash safety"): the HTLC is then resolved on
/// chain, so blocks are mined until it is. Returns whether it succeeded.
fn ln_payment_final(p: &common::ln::Pair, ln_id: &str) -> bool {
    let status = || payment(&p.a, ln_id).map(|x| x["status"].clone()).unwrap_or(Value::Null);
    let started = std::time::Instant::now();
    let mut mined = 0;
    while status() != "succeeded" && status() != "failed" {
        if started.elapsed() > Duration::from_secs(30) && common::ln::channel(&p.b).is_none() {
            assert!(mined < 600, "the HTLC not resolved on chain after {mined} blocks");
            p.chain.mine(6);
            mined += 6;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the payment never finished: {}", status());
        std::thread::sleep(Duration::from_millis(1_000));
    }
    eprintln!("the customer's payment {} after {:?}, {mined} blocks mined", status(), started.elapsed());
    status() == "succeeded"
}

/// Mines until `gw`'s ledger follows a force-closed channel's funds back on chain, then checks
/// it is exact.
fn settled_after_sweeps(p: &common::ln::Pair, what: &str) {
    let mut mined = 0;
    while p.b.call("ledger.verify", json!({}))["lightning"]["status"] != "settled" {
        assert!(mined < 600, "{what}: not swept after {mined} blocks");
        p.chain.mine(6);
        mined += 6;
        std::thread::sleep(Duration::from_millis(1_500));
    }
    settled_exact(&p.b, what);
}

/// Pays `inv` over Lightning from A and SIGKILLs the merchant (B) `delay` later, with `meanwhile`
/// done while it is down; restarts it. If the payment failed back while the channel still works,
/// pays again. Returns whether the merchant received it.
fn ln_payment_around_a_kill(
    p: &mut common::ln::Pair,
    inv: &Value,
    delay: Duration,
    meanwhile: impl FnOnce(&common::ln::Pair),
) -> bool {
    let sent = p.a.call("ln.pay", json!({"invoice": inv["bolt11"]}));
    std::thread::sleep(delay);
    p.b.kill();
    let counted = outbox(&p.b, inv["invoice_id"].as_str().unwrap()).contains(&"invoice.paid".to_owned());
    eprintln!(
        "{delay:?} after ln.pay, at the kill, the payment was {}",
        if counted { "counted" } else { "not counted yet" }
    );
    meanwhile(p);
    p.b.start_again();
    let ln_id = sent["payment_id"].as_str().unwrap();
    if ln_payment_final(p, ln_id) {
        return true;
    }
    if common::ln::channel(&p.a).is_some_and(|c| c["usable"] == true) {
        eprintln!("the HTLC failed back before reaching the merchant: paying again");
        let again = p.a.call("ln.pay", json!({"invoice": inv["bolt11"]}));
        return ln_payment_final(p, again["payment_id"].as_str().unwrap());
    }
    false
}

#[test]
fn senderod_killed_while_payments_arrive_misses_nothing_and_counts_nothing_twice() {
    let mut p = pair_with(FX);
    open_channel(&p, 1_000_000);
    let (key_id, key, hooks, _) = merchant_key(&p.b);
    let by_ln = create(&p.b, &key, "by-ln", 50_000, 900);
    let confirmed_while_down = create(&p.b, &key, "down", 40_000, 900);
    let seen_before = create(&p.b, &key, "mempool", 35_000, 900);
    let pending = create(&p.b, &key, "pending", 10_000, 15);
    pay_on_chain(&p.a, &seen_before, 35_000);
    wait_for("processing", Duration::from_secs(20), || get(&p.b, &key, &seen_before)["status"] == "processing");

    // The customer pays over Lightning and the merchant's senderod dies at once; on chain, a
    // payment is made and both confirm while it is down; an unpaid invoice expires meanwhile.
    let down = confirmed_while_down.clone();
    let first = ln_payment_around_a_kill(&mut p, &by_ln, Duration::ZERO, move |p| {
        pay_on_chain(&p.a, &down, 40_000);
        p.chain.mine(1);
        std::thread::sleep(Duration::from_secs(10));
    });
    // Killed again a moment into a second Lightning payment (about when the node claims it and
    // the event is recorded), if the first kill left the channel open.
    let second = create(&p.b, &key, "by-ln-2", 20_000, 900);
    let second_paid = if common::ln::channel(&p.a).is_some_and(|c| c["usable"] == true) {
        ln_payment_around_a_kill(&mut p, &second, Duration::from_millis(200), |_| {})
    } else {
        eprintln!("the first kill force-closed the channel: no second Lightning payment");
        false
    };
    let (first_msat, second_msat) = (if first { 50_000_000 } else { 0 }, if second_paid { 20_000_000 } else { 0 });

    let status = |inv: &Value| get(&p.b, &key, inv)["status"].clone();
    let ln_status = |paid: bool| if paid { "paid" } else { "new" };
    wait_for("every invoice settled after the restarts", Duration::from_secs(60), || {
        status(&by_ln) == ln_status(first)
            && status(&second) == ln_status(second_paid)
            && status(&confirmed_while_down) == "paid"
            && status(&seen_before) == "paid"
            && status(&pending) == "expired"
    });
    settled_after_sweeps(&p, "after the SIGKILLs");
    let all = first_msat + second_msat + 40_000_000 + 35_000_000;
    assert_eq!(account(&p.b, &format!("receivable:{key_id}")), -all, "each payment counted once");

    // Killed once more with nothing in flight: nothing moves.
    p.b.kill();
    p.b.start_again();
    settled_exact(&p.b, "after a last SIGKILL");
    assert_eq!(account(&p.b, &format!("receivable:{key_id}")), -all);
    let amounts =
        [(&by_ln, first_msat), (&second, second_msat), (&confirmed_while_down, 40_000_000), (&seen_before, 35_000_000)];
    for (inv, amount) in amounts {
        assert_eq!(get(&p.b, &key, inv)["received_msat"], amount, "{inv}");
    }
    //                                        processing paid under over late expired reorged
    assert_eq!(told_once_each(&p.b, &hooks, &by_ln), [0, usize::from(first), 0, 0, 0, 0, 0]);
    assert_eq!(told_once_each(&p.b, &hooks, &second), [0, usize::from(second_paid), 0, 0, 0, 0, 0]);
    assert_eq!(told_once_each(&p.b, &hooks, &confirmed_while_down), [0, 1, 0, 0, 0, 0, 0], "confirmed: no processing");
    assert_eq!(told_once_each(&p.b, &hooks, &seen_before), [1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(told_once_each(&p.b, &hooks, &pending), [0, 0, 0, 0, 0, 1, 0]);
}
