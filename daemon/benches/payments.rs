//! `cargo bench --bench payments`: payout routing and submission on real processes — a regtest
//! bitcoind and two senderod gateways (A pays; B is the peer, with a 1,000,000 sat channel from
//! A) started exactly as the end-to-end tests start them. Prints, in one run:
//! - `POST /v1/payments/route` latency p50 / p99 per destination kind (an on-chain address, the
//!   peer's BOLT11 invoice, a BIP21 URI with both, the gateway's own invoice), one request per
//!   connection, as a wallet app would send them;
//! - durable submits/s — `POST /v1/payments/submit` of `on_us` payouts (accepted, debited and
//!   settled in one transaction, so the figure is the gateway's own cost, not a rail's) from 4,
//!   16 and 64 client threads, each on its own keep-alive connection as a merchant's backend
//!   keeps one — against a bare SQLite `INSERT` + `COMMIT` loop on one thread with the same
//!   durability settings (WAL, `synchronous = FULL`) on the same disk. The two alternate over
//!   rounds; per level the ratio of the sums is printed, with the gateway's CPU per submit and
//!   how busy the machine was. The headline is the ratio at the gateway's highest throughput,
//!   as the bare loop runs at SQLite's (aim ≥ 0.5): concurrent submits share a commit, so
//!   capacity shows under concurrency;
//! - peak RSS of this process and of gateway A.

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::ln::{open_channel, pair};
use common::{http_post, outside_address};
use serde_json::{json, Value};
use support::{machine_ticks, rss_kb, KeepAlive};

const ROUTES_PER_KIND: usize = 300;
const SUBMITS_PER_ROUND: usize = 2_000;
const ROUNDS: usize = 3;
/// Concurrent clients, level after level: submits of one commit share it.
const CLIENT_LEVELS: [usize; 3] = [4, 16, 64];

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
    // Throughput is measured here, not the per-key rate limit: the gateways run without one.
    common::without_rate_limit();
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
    let priced = |n: usize| -> Vec<String> {
        (0..n)
            .map(|_| route(port, &key, 1_000, &invoice(a, 1_000))["route_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let levels: Vec<(usize, Vec<Vec<String>>)> =
        CLIENT_LEVELS.iter().map(|&c| (c, (0..ROUNDS).map(|_| priced(SUBMITS_PER_ROUND)).collect())).collect();
    // One client alone: what one submit costs end to end.
    let alone = priced(200);
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
        "POST /v1/payments/submit, one client, a connection per request, {} requests: p50 {} µs, p99 {} µs",
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
    let mut bare_row = 0;
    let mut bare_loop = || {
        let started = Instant::now();
        for _ in 0..SUBMITS_PER_ROUND {
            bare_row += 1;
            let tx = bare.unchecked_transaction().expect("tx");
            tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (format!("k-{bare_row}"), "{\"payment_id\":\"pay_x\"}"))
                .expect("insert");
            tx.commit().expect("commit");
        }
        started.elapsed()
    };

    println!();
    println!(
        "durable writes: bare SQLite INSERT + COMMIT (one thread) against POST /v1/payments/submit (on_us, N \
         clients on keep-alive connections); {SUBMITS_PER_ROUND} of each per round, {ROUNDS} rounds per level, \
         alternating"
    );
    println!(
        "{:>7} {:>14} {:>12} {:>7} {:>16} {:>12}",
        "clients", "bare insert/s", "submit/s", "ratio", "CPU µs/submit", "machine busy"
    );
    let gateway_pid = a.pid().map_or_else(|| "self".to_owned(), |p| p.to_string());
    let mut best = (0, 0.0, 0.0);
    for (clients, rounds) in &levels {
        let (mut bare_total, mut submit_total) = (Duration::ZERO, Duration::ZERO);
        let (mut gateway_cpu, mut busy, mut all) = (0u64, 0u64, 0u64);
        for route_ids in rounds {
            bare_total += bare_loop();
            // The clock starts once every client is connected: a merchant's backend keeps its
            // connections, so their setup is not part of a submit.
            let chunks: Vec<&[String]> = route_ids.chunks(SUBMITS_PER_ROUND.div_ceil(*clients)).collect();
            let ready = std::sync::Barrier::new(chunks.len() + 1);
            let (mut started, mut gw0, mut busy0, mut all0) = (Instant::now(), 0, 0, 0);
            std::thread::scope(|s| {
                for chunk in chunks.iter().copied() {
                    let (key, datadir, ready) = (key.as_str(), &a.datadir, &ready);
                    s.spawn(move || {
                        let mut client = KeepAlive::connect(port);
                        ready.wait();
                        for route_id in chunk {
                            let body = json!({"route_id": route_id, "rail": "on_us"}).to_string();
                            let (status, text) = client.request(
                                "POST",
                                "/v1/payments/submit",
                                key,
                                Some(&format!("bench-{route_id}")),
                                &body,
                            );
                            if status != 202 {
                                let log = std::fs::read_to_string(datadir.join("senderod.log")).unwrap_or_default();
                                let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
                                panic!("submit answered {status}: {text}\n{}", errors.join("\n"));
                            }
                        }
                    });
                }
                ready.wait();
                started = Instant::now();
                (gw0, (busy0, all0)) = (cpu_ticks(&gateway_pid), machine_ticks());
            });
            submit_total += started.elapsed();
            let (busy1, all1) = machine_ticks();
            gateway_cpu += cpu_ticks(&gateway_pid) - gw0;
            busy += busy1 - busy0;
            all += all1 - all0;
        }
        let n = (SUBMITS_PER_ROUND * ROUNDS) as f64;
        let (bare_rate, submit_rate) = (n / bare_total.as_secs_f64(), n / submit_total.as_secs_f64());
        let ratio = submit_rate / bare_rate;
        // Clock ticks are 10 ms: over 6,000 submits, under 2 µs per submit of resolution.
        println!(
            "{clients:>7} {bare_rate:>14.0} {submit_rate:>12.0} {ratio:>7.2} {:>16} {:>11}%",
            gateway_cpu * 10_000 / n as u64,
            busy * 100 / all.max(1)
        );
        if submit_rate > best.1 {
            best = (*clients, submit_rate, ratio);
        }
    }
    println!(
        "ratio submit/bare = {:.2} at the gateway's highest throughput ({:.0} submits/s with {} clients; aim >= 0.5)",
        best.2, best.1, best.0
    );
    let n = CLIENT_LEVELS.len() * ROUNDS * SUBMITS_PER_ROUND + alone.len();

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

/// utime + stime of a process, in clock ticks (10 ms).
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which ends with the last ')': utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<u64>().ok()).sum()
}
