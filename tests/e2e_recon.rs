//! `recon.report` on a real senderod (gateway A, the merchant) after a scripted run against a
//! second real gateway (B, the customer and payee) over one regtest bitcoind: mined coins and a
//! deposit, a transfer to the node and a channel open, an on-chain payout priced in euros, a
//! batch of two, a Lightning payout, a consolidation, an invoice paid on chain and one over
//! Lightning. Every item
//! is `match`, but for a deposit left in the mempool (`timing`); the CSV that `sendero-cli`
//! writes parses and adds up to the JSON's totals. Then, with senderod stopped, the ledger is
//! edited by hand: an invoice receipt's entry deleted shows `missing`, a deposit's amount and a
//! Lightning receipt's amount altered show `amount_mismatch`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::ln::{open_channel, pair_with, settled_exact, Pair, MINUTE};
use common::{http_get_with_key, http_post, outside_address, wait_for, Gateway};
use serde_json::{json, Value};

const CONFIG: &str = r#"[fx]
pairs = ["BTC/EUR"]
static_rates = { "BTC/EUR" = "85000" }
markup_bps = 50
quote_ttl_secs = 30

[batching]
target_utxos = 3
"#;

/// Routes `amount` to `destination` and submits it on `rail`; the payment id.
fn pay(gw: &Gateway, key: &str, amount: Value, destination: &str, rail: &str) -> String {
    let body = json!({"amount": amount, "destination": destination, "direction": "payout", "priority": "low"});
    let (status, text) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{text}");
    let route: Value = serde_json::from_str(&text).unwrap();
    let submit = json!({"route_id": route["route_id"], "rail": rail}).to_string();
    let idem = format!("recon-{}", route["route_id"].as_str().unwrap());
    let (status, text) = http_post(gw.api_port, "/v1/payments/submit", key, Some(&idem), &submit);
    assert_eq!(status, 202, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["payment_id"].as_str().unwrap().to_owned()
}

fn settled(gw: &Gateway, key: &str, id: &str) {
    wait_for(&format!("payout {id} settled"), MINUTE, || {
        http_get_with_key(gw.api_port, &format!("/v1/payments/{id}"), Some(key)).1["status"] == "SETTLED"
    });
}

fn invoice(gw: &Gateway, key: &str, idem: &str, minor: u64) -> Value {
    let body = json!({"amount": {"minor_units": minor, "currency": "EUR"}, "description": idem, "speed": "medium"});
    let (status, text) = http_post(gw.api_port, "/v1/invoices", key, Some(idem), &body.to_string());
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn invoice_paid(gw: &Gateway, key: &str, inv: &Value) {
    let path = format!("/v1/invoices/{}", inv["invoice_id"].as_str().unwrap());
    wait_for("the invoice paid", MINUTE, || http_get_with_key(gw.api_port, &path, Some(key)).1["status"] == "paid");
}

/// The items of `report` that `pick` keeps.
fn items<'a>(report: &'a Value, pick: impl Fn(&Value) -> bool + 'a) -> Vec<&'a Value> {
    report["items"].as_array().unwrap().iter().filter(|i| pick(i)).collect()
}

/// The scripted run; returns the mempool deposit's txid, the confirmed deposit's txid, the
/// invoice paid on chain and the one paid over Lightning.
fn run(p: &Pair) -> (String, String, Value, [Value; 2]) {
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    open_channel(p, 1_000_000);
    let key = a.api_key("pay,read,invoice");
    // On chain, priced in euros: 20.00 EUR to an outside address.
    let single =
        pay(a, &key, json!({"minor_units": 2_000, "currency": "EUR"}), &outside_address(41).to_string(), "onchain");
    // A batch of two.
    let one = pay(
        a,
        &key,
        json!({"minor_units": 30_000, "currency": "SAT"}),
        &outside_address(42).to_string(),
        "onchain_batch",
    );
    let two = pay(
        a,
        &key,
        json!({"minor_units": 40_000, "currency": "SAT"}),
        &outside_address(43).to_string(),
        "onchain_batch",
    );
    a.call("batch.trigger", json!({}));
    // Over Lightning, to B's invoice: 90,000 sat (under the 10% of the channel an HTLC may carry),
    // which B then pays with.
    let bolt11 =
        b.call("ln.invoice", json!({"amount_msat": 90_000_000u64, "description": "payout", "expiry_secs": 600}));
    let ln = pay(
        a,
        &key,
        json!({"minor_units": 90_000, "currency": "SAT"}),
        bolt11["bolt11"].as_str().unwrap(),
        "lightning",
    );
    settled(a, &key, &ln);
    wait_for("the payout and the batch in the mempool", MINUTE, || chain.mempool().len() == 2);
    chain.mine(1);
    for id in [&single, &one, &two] {
        settled(a, &key, id);
    }
    // A consolidation of the treasury's small coins (forced: regtest's feerate is not low).
    let swept = a.call("consolidate.run", json!({"force": true}));
    assert!(swept["txid"].is_string(), "{swept}");
    // B deposits to A's treasury, pays an invoice on chain and one over Lightning.
    let deposit = b.call("wallet.send", json!({"address": common::coins::new_address(a), "amount_sat": 150_000}));
    let on_chain = invoice(a, &key, "order-chain", 2_500);
    b.call("wallet.send", json!({"address": on_chain["address"], "amount_sat": on_chain["amount_sat"]}));
    let over_ln = invoice(a, &key, "order-ln", 1_000);
    b.call("ln.pay", json!({"invoice": over_ln["bolt11"]}));
    chain.mine(1);
    invoice_paid(a, &key, &on_chain);
    invoice_paid(a, &key, &over_ln);
    // One of A's own invoices paid by A's own payout (`on_us`): both sides in the ledger, no rail.
    let own = invoice(a, &key, "order-own", 500);
    let amount = json!({"minor_units": own["amount_sat"], "currency": "SAT"});
    settled(a, &key, &pay(a, &key, amount, own["bolt11"].as_str().unwrap(), "on_us"));
    invoice_paid(a, &key, &own);
    settled_exact(a, "A after the run");
    // A deposit left in the mempool.
    let waiting = b.call("wallet.send", json!({"address": common::coins::new_address(a), "amount_sat": 60_000}));
    let waiting = waiting["txid"].as_str().unwrap().to_owned();
    wait_for("A's wallet to see the mempool deposit", MINUTE, || {
        a.call("wallet.transactions", json!({}))["transactions"].to_string().contains(&waiting)
    });
    (waiting, deposit["txid"].as_str().unwrap().to_owned(), on_chain, [over_ln, own])
}

/// What every kind of movement of the run looks like in the report.
fn check_all_match(report: &Value, waiting: &str, on_chain: &Value, [over_ln, own]: &[Value; 2]) {
    let odd = items(report, |i| i["class"] != "match" && i["reference"] != waiting);
    assert!(odd.is_empty(), "every item but the mempool deposit matches: {odd:#?}");
    let timing = items(report, |i| i["reference"] == waiting);
    assert_eq!(timing.len(), 1, "{report:#}");
    assert_eq!((timing[0]["class"].as_str(), timing[0]["kind"].as_str()), (Some("timing"), Some("deposit")));
    assert_eq!((timing[0]["rail_sat"].as_i64(), timing[0]["ledger_sat"].clone()), (Some(60_000), Value::Null));
    assert_eq!(report["ok"], true);
    // Each paid invoice: what it counted is what the ledger booked for it.
    for inv in [on_chain, over_ln, own] {
        let check = report["invoices"].as_array().unwrap().iter().find(|c| c["invoice_id"] == inv["invoice_id"]);
        let check = check.unwrap_or_else(|| panic!("{:#}", report["invoices"]));
        assert_eq!((check["class"].as_str(), check["status"].as_str()), (Some("match"), Some("paid")), "{check}");
        assert_eq!(check["ledger_msat"].as_i64(), Some(inv["amount_sat"].as_i64().unwrap() * 1_000));
    }
    let kinds = |rail: &str| -> Vec<String> {
        items(report, |i| i["rail"] == rail).iter().map(|i| i["kind"].as_str().unwrap().to_owned()).collect()
    };
    for k in ["deposit", "withdrawal", "transfer_to_node", "payout", "batch", "consolidation", "invoice_receipt"] {
        assert!(kinds("onchain").contains(&k.to_owned()), "onchain {k}: {:?}", kinds("onchain"));
    }
    for k in ["transfer_to_node", "channel_open", "payout", "invoice_receipt"] {
        assert!(kinds("lightning").contains(&k.to_owned()), "lightning {k}: {:?}", kinds("lightning"));
    }
    let batch = items(report, |i| i["kind"] == "batch");
    assert_eq!(batch.len(), 1, "one transaction, two payouts: {batch:#?}");
    assert_eq!(batch[0]["payment_ids"].as_array().unwrap().len(), 2);
    let single = items(report, |i| i["kind"] == "payout" && i["rail"] == "onchain");
    assert_eq!((single[0]["fiat_minor"].as_i64(), single[0]["fiat_currency"].as_str()), (Some(-2_000), Some("EUR")));
    for (inv, rail, eur) in [(on_chain, "onchain", 2_500), (over_ln, "lightning", 1_000)] {
        let got = items(report, |i| i["invoice_ids"].as_array().unwrap().contains(&inv["invoice_id"]));
        assert_eq!(got.len(), 1, "{got:#?}");
        assert_eq!((got[0]["rail"].as_str(), got[0]["kind"].as_str()), (Some(rail), Some("invoice_receipt")));
        assert_eq!((got[0]["fiat_minor"].as_i64(), got[0]["fiat_currency"].as_str()), (Some(eur), Some("EUR")));
        assert_eq!(got[0]["ledger_msat"].as_i64(), Some(inv["amount_sat"].as_i64().unwrap() * 1_000));
    }
}

/// `sendero-cli recon.report --csv FILE`: one row per item, and its sums per day and rail are the
/// JSON's totals; the table names every class.
fn check_csv(gw: &Gateway, report: &Value) {
    let file = gw.datadir.join("recon.csv");
    let cli = std::path::Path::new(env!("CARGO_BIN_EXE_sendero-cli"));
    let out = std::process::Command::new(cli)
        .args(["--datadir", gw.datadir.to_str().unwrap(), "recon.report", "--csv", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    eprintln!("{table}");
    assert!(table.contains("invoice_receipt") && table.contains("timing"), "{table}");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut rows = text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut sums: BTreeMap<(String, String), (i64, i64, i64)> = BTreeMap::new();
    let mut count = 0;
    for row in rows {
        // No field of this run holds a comma but the notes, which come last.
        let f: Vec<&str> = row.splitn(header.len(), ',').collect();
        let num = |c: &str| f[col(c)].parse::<i64>().unwrap_or(0);
        let s = sums.entry((f[col("date")].to_owned(), f[col("rail")].to_owned())).or_default();
        *s = (s.0 + num("ledger_sat"), s.1 + num("rail_sat"), s.2 + num("fiat_minor"));
        count += 1;
    }
    assert_eq!(count, report["items"].as_array().unwrap().len(), "one row per item");
    for t in report["totals"].as_array().unwrap() {
        let key = (t["date"].as_str().unwrap().to_owned(), t["rail"].as_str().unwrap().to_owned());
        let fiat = t["fiat_minor"]["EUR"].as_i64().unwrap_or(0);
        assert_eq!(sums[&key], (t["ledger_sat"].as_i64().unwrap(), t["rail_sat"].as_i64().unwrap(), fiat), "{key:?}");
    }
}

/// Edits A's ledger with senderod stopped.
fn edit_ledger(gw: &Gateway, sql: &str) {
    let conn = common::books(&gw.datadir);
    conn.execute_batch(sql).unwrap();
}

#[test]
fn the_report_matches_every_movement_and_shows_what_the_ledger_hides() {
    let mut p = pair_with(CONFIG);
    let (waiting, deposit, on_chain, others) = run(&p);
    let over_ln = others[0].clone();
    let report = p.a.call("recon.report", json!({}));
    eprintln!("{}", serde_json::to_string_pretty(&report["totals"]).unwrap());
    check_all_match(&report, &waiting, &on_chain, &others);
    check_csv(&p.a, &report);
    // A window that ends before the run: nothing in it.
    let early = p.a.call("recon.report", json!({"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"}));
    assert_eq!(early["items"], json!([]));

    // Hidden from the ledger: the on-chain invoice's receipt; altered: the deposit (less 1,000 sat,
    // both legs, so the entry still balances) and the Lightning receipt (less 1 msat).
    let ln_item = items(&report, |i| i["invoice_ids"].as_array().unwrap().contains(&over_ln["invoice_id"]))[0].clone();
    let chain_item =
        items(&report, |i| i["invoice_ids"].as_array().unwrap().contains(&on_chain["invoice_id"]))[0].clone();
    let chain_txid = chain_item["reference"].as_str().unwrap().to_owned();
    p.a.stop();
    edit_ledger(
        &p.a,
        &format!(
            "DELETE FROM ledger_postings WHERE entry_id IN (SELECT id FROM ledger_entries WHERE reference LIKE 'invoice:onchain:{chain_txid}:%');
             DELETE FROM ledger_entries WHERE reference LIKE 'invoice:onchain:{chain_txid}:%';
             UPDATE ledger_postings SET amount = amount - 1000000 WHERE account = 'treasury:onchain'
                 AND entry_id = (SELECT id FROM ledger_entries WHERE reference = 'wallet:{deposit}');
             UPDATE ledger_postings SET amount = amount + 1000000 WHERE account = 'external:onchain'
                 AND entry_id = (SELECT id FROM ledger_entries WHERE reference = 'wallet:{deposit}');
             UPDATE ledger_postings SET amount = amount - 1 WHERE account = 'treasury:lightning'
                 AND entry_id = (SELECT id FROM ledger_entries WHERE reference = 'ln:recv:{}');
             UPDATE ledger_postings SET amount = amount + 1 WHERE account != 'treasury:lightning'
                 AND entry_id = (SELECT id FROM ledger_entries WHERE reference = 'ln:recv:{}');",
            ln_item["reference"].as_str().unwrap(),
            ln_item["reference"].as_str().unwrap()
        ),
    );
    p.a.start_again();
    wait_for("A's node running", MINUTE, || p.a.try_call("ln.info", json!({})).is_ok());
    wait_for("A's wallet synced", MINUTE, || p.a.synced_height() == u64::from(p.chain.height()));
    std::thread::sleep(Duration::from_secs(2));
    let after = p.a.call("recon.report", json!({}));
    let class_of = |reference: &str| -> Vec<String> {
        items(&after, |i| i["reference"] == reference).iter().map(|i| i["class"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(class_of(&chain_txid), ["missing"], "{after:#}");
    assert_eq!(class_of(&deposit), ["amount_mismatch"], "{after:#}");
    let dep = &items(&after, |i| i["reference"] == deposit.as_str())[0];
    assert_eq!(dep["rail_sat"].as_i64().unwrap() - dep["ledger_sat"].as_i64().unwrap(), 1_000);
    assert_eq!(class_of(ln_item["reference"].as_str().unwrap()), ["amount_mismatch"], "{after:#}");
    assert_eq!(class_of(&waiting), ["timing"]);
    let invoice_class = |inv: &Value| {
        let found = after["invoices"].as_array().unwrap().iter().find(|c| c["invoice_id"] == inv["invoice_id"]);
        found.unwrap()["class"].as_str().unwrap().to_owned()
    };
    assert_eq!((invoice_class(&on_chain), invoice_class(&over_ln)), ("missing".into(), "amount_mismatch".into()));
    assert_eq!(after["ok"], false);
    assert_eq!(
        (after["summary"]["missing"].as_u64(), after["summary"]["amount_mismatch"].as_u64()),
        (Some(1), Some(2))
    );
}
