//! `cargo bench --bench payments`: payout routing and submission on real processes — a regtest
//! bitcoind and two senderod gateways (A pays; B is the peer, with a 1,000,000 sat channel from
//! A) started exactly as the end-to-end tests start them. Prints, in one run:
//! - `POST /v1/payments/route` latency p50 / p99 per destination kind (an on-chain address, the
//!   peer's BOLT11 invoice, a BIP21 URI with both, the gateway's own invoice), one request per
//!   connection, as a wallet app would send them;
//! - durable submits/s (`POST /v1/payments/submit` of `on_us` payouts from 4 client threads,
//!   the saga settling them meanwhile) against a bare SQLite `INSERT` + `COMMIT` loop with the
//!   same durability settings (WAL, `synchronous = FULL`) on the same disk; the two alternate
//!   over rounds, and the ratio of the sums is the figure (aim ≥ 0.5);
//! - peak RSS of this process and of gateway A.

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::time::{Duration, Instant};

use common::ln::{open_channel, pair};
use common::{http_post, outside_address};
use serde_json::{json, Value};

const ROUTES_PER_KIND: usize = 300;
const SUBMITS_PER_ROUND: usize = 400;
const ROUNDS: usize = 3;
const CLIENTS: usize = 4;

fn route(port: u16, key: &str, sat: u64, destination: &str) -> Value {
    let body =
        json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination, "priority": "high"});
    let (status, text) = http_post(port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let p = pair();
    open_channel(&p, 1_000_000);
    let (a, b) = (&p.a, &p.b);
    let key = a.api_key("pay,read");
    let port = a.api_port;
    let invoice = |gw: &common::Gateway, sat: u64| {
        gw.call("ln.invoice", json!({"amount_msat": sat * 1_000, "description": "bench", "expiry_secs": 3600}))
            ["bolt11"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    println!("POST /v1/payments/route, {ROUTES_PER_KIND} requests per kind after 20 to warm up");
    println!("{:<14} {:>10} {:>10} {:>10}  recommend", "destination", "p50 µs", "p99 µs", "mean µs");
    let b_addr = b.call("wallet.newaddress", json!({}))["address"].as_str().unwrap_or_default().to_owned();
    let peer_invoice = invoice(b, 20_000);
    let kinds = [
        ("address", outside_address(3).to_string()),
        ("bolt11", peer_invoice.clone()),
        ("bip21", format!("bitcoin:{b_addr}?amount=0.0002&lightning={peer_invoice}")),
        ("own_invoice", invoice(a, 20_000)),
    ];
    for (kind, destination) in &kinds {
        for _ in 0..20 {
            route(port, &key, 20_000, destination);
        }
        let mut took = Vec::with_capacity(ROUTES_PER_KIND);
        let mut recommend = Value::Null;
        for _ in 0..ROUTES_PER_KIND {
            let started = Instant::now();
            let r = route(port, &key, 20_000, destination);
            took.push(started.elapsed());
            recommend = r["recommend"].clone();
        }
        took.sort();
        let mean = took.iter().sum::<Duration>() / took.len() as u32;
        println!(
            "{kind:<14} {:>10} {:>10} {:>10}  {recommend}",
            percentile(&took, 0.5).as_micros(),
            percentile(&took, 0.99).as_micros(),
            mean.as_micros()
        );
    }

    // Routes for every submit round, priced before any clock starts.
    let rounds: Vec<Vec<String>> = (0..ROUNDS)
        .map(|_| {
            (0..SUBMITS_PER_ROUND)
                .map(|_| {
                    route(port, &key, 1_000, &invoice(a, 1_000))["route_id"].as_str().unwrap_or_default().to_owned()
                })
                .collect()
        })
        .collect();
    // One client alone: what one submit costs end to end.
    let alone: Vec<String> = (0..200)
        .map(|_| route(port, &key, 1_000, &invoice(a, 1_000))["route_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut took = Vec::with_capacity(alone.len());
    for route_id in &alone {
        let body = json!({"route_id": route_id, "rail": "on_us"}).to_string();
        let started = Instant::now();
        let (status, text) = http_post(port, "/v1/payments/submit", &key, Some(&format!("alone-{route_id}")), &body);
        took.push(started.elapsed());
        assert_eq!(status, 202, "{text}");
    }
    took.sort();
    println!();
    println!(
        "POST /v1/payments/submit, one client, {} requests: p50 {} µs, p99 {} µs",
        took.len(),
        percentile(&took, 0.5).as_micros(),
        percentile(&took, 0.99).as_micros()
    );
    let bare_path = a.datadir.join("bare.sqlite");
    let bare = rusqlite::Connection::open(&bare_path).expect("bare store");
    bare.pragma_update(None, "journal_mode", "WAL").expect("wal");
    bare.pragma_update(None, "synchronous", "FULL").expect("sync");
    bare.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v TEXT NOT NULL)", [])
        .expect("table");

    println!();
    println!("durable writes: {SUBMITS_PER_ROUND} per round, {ROUNDS} rounds, alternating");
    println!("{:<6} {:>18} {:>18} {:>8}", "round", "bare insert/s", "submit/s", "ratio");
    let (mut bare_total, mut submit_total) = (Duration::ZERO, Duration::ZERO);
    for (round, route_ids) in rounds.iter().enumerate() {
        let started = Instant::now();
        for i in 0..SUBMITS_PER_ROUND {
            let tx = bare.unchecked_transaction().expect("tx");
            tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (format!("{round}-{i}"), "{\"payment_id\":\"pay_x\"}"))
                .expect("insert");
            tx.commit().expect("commit");
        }
        let bare_took = started.elapsed();
        let started = Instant::now();
        std::thread::scope(|s| {
            for chunk in route_ids.chunks(SUBMITS_PER_ROUND / CLIENTS) {
                let (key, datadir) = (key.as_str(), &a.datadir);
                s.spawn(move || {
                    for route_id in chunk {
                        let body = json!({"route_id": route_id, "rail": "on_us"}).to_string();
                        let (status, text) =
                            http_post(port, "/v1/payments/submit", key, Some(&format!("bench-{route_id}")), &body);
                        if status != 202 {
                            let log = std::fs::read_to_string(datadir.join("senderod.log")).unwrap_or_default();
                            let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
                            panic!("submit answered {status}: {text}\n{}", errors.join("\n"));
                        }
                    }
                });
            }
        });
        let submit_took = started.elapsed();
        let rate = |d: Duration| SUBMITS_PER_ROUND as f64 / d.as_secs_f64();
        println!(
            "{:<6} {:>18.0} {:>18.0} {:>8.2}",
            round + 1,
            rate(bare_took),
            rate(submit_took),
            rate(submit_took) / rate(bare_took)
        );
        bare_total += bare_took;
        submit_total += submit_took;
    }
    let n = (SUBMITS_PER_ROUND * ROUNDS) as f64;
    let (bare_rate, submit_rate) = (n / bare_total.as_secs_f64(), n / submit_total.as_secs_f64());
    println!("{:<6} {:>18.0} {:>18.0} {:>8.2}", "all", bare_rate, submit_rate, submit_rate / bare_rate);
    println!("ratio submit/bare = {:.2} (aim >= 0.5)", submit_rate / bare_rate);

    // Every submitted payout settles.
    let settled = |gw: &common::Gateway| {
        let db = rusqlite::Connection::open(gw.datadir.join("sendero.sqlite")).expect("store");
        db.query_row("SELECT COUNT(*) FROM payments WHERE state = 'settled'", [], |r| r.get::<_, i64>(0)).unwrap_or(0)
    };
    common::wait_for("every bench payout settled", Duration::from_secs(120), || settled(a) >= n as i64);
    println!();
    println!(
        "peak RSS (VmHWM): bench process {} kB, gateway A {} kB",
        rss_kb("self"),
        a.pid().map_or(0, |p| rss_kb(&p.to_string()))
    );
}

fn rss_kb(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
