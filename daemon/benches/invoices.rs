//! `cargo bench -p sendero --bench invoices`: receiving, on a regtest bitcoind with a real
//! senderod A (the merchant, started as the end-to-end tests start it, a static EUR rate) and a
//! plain ldk-node B (the customer, no Sendero code in it) holding 400,000 sat of a 1,000,000 sat
//! channel from A.
//!
//! - Creations: `POST /v1/invoices` for 10.00 EUR (FX-locked, a fresh treasury address and a
//!   BOLT11 invoice from A's node each), first one client one after another (latency p50/p99),
//!   then `INV_BENCH_CLIENTS` keep-alive clients at once (creations/s), next to the durable
//!   baseline: a bare SQLite INSERT + COMMIT loop (WAL, synchronous=FULL) in A's data dir, in the
//!   same run.
//! - Paid: B pays `INV_BENCH_PAYMENTS` (default 100) invoices of 1,000 sat one after another; each
//!   timed from B's `bolt11_payment().send` until A's signed `invoice.paid` webhook reaches a
//!   receiver in this process, and — the raw baseline — until B's own `PaymentSuccessful`.
//!
//! Prints the tables and the peak RSS of senderod and of this process (which runs B).

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "support/ldk_peer.rs"]
mod ldk_peer;
mod support;

use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{AdminMode, Chain, Gateway};
use ldk_peer::{env_count, forward_events, ms, open_channel, percentile, start_b, Hooks};
use sendero::devchain::free_port;
use sendero_lightning::ldk_node::lightning_invoice::Bolt11Invoice;
use sendero_lightning::ldk_node::{Event, Node};
use serde_json::{json, Value};
use support::{rss_kb, KeepAlive};

const MINUTE: Duration = Duration::from_secs(60);
const CONFIG: &str = r#"[fx]
pairs = ["BTC/EUR"]
static_rates = { "BTC/EUR" = "85000" }
markup_bps = 50
"#;

fn main() {
    // Throughput is measured here, not the per-key rate limit: the gateways run without one.
    common::without_rate_limit();
    let (sequential, clients, per_client) =
        (env_count("INV_BENCH_SEQUENTIAL", 300), env_count("INV_BENCH_CLIENTS", 16), 100);
    let payments = env_count("INV_BENCH_PAYMENTS", 100);
    let chain = Chain::start();
    let home = tempfile::tempdir().expect("tempdir");
    let a = Gateway::start_with(&chain, &home.path().join("a"), AdminMode::Socket, "human", CONFIG);
    let b_port = free_port().expect("port");
    let b = start_b(&chain, &home.path().join("b"), b_port);
    let b_events = forward_events(Arc::clone(&b));
    open_channel(&chain, &a, &b, b_port);
    let key = a.api_key("invoice,read");

    // Creations: one client, then many; the bare loop in between, same file system.
    let mut api = KeepAlive::connect(a.api_port);
    for i in 0..10 {
        create(&mut api, &key, &format!("warm-{i}"), 1_000);
    }
    let took: Vec<Duration> = (0..sequential)
        .map(|i| {
            let started = Instant::now();
            create(&mut api, &key, &format!("seq-{i}"), 1_000);
            started.elapsed()
        })
        .collect();
    let bare = bare_rate(&a.datadir.join("bare.sqlite"), 2_000);
    let (n, wall) = concurrent(a.api_port, &key, clients, per_client);
    let bare_after = bare_rate(&a.datadir.join("bare2.sqlite"), 2_000);
    println!("\nPOST /v1/invoices (10.00 EUR, FX-locked, fresh address + BOLT11 each)");
    println!("{:<58} {:>10} {:>10} {:>12}", "path", "p50 ms", "p99 ms", "per second");
    let seq_rate = took.len() as f64 / took.iter().sum::<Duration>().as_secs_f64();
    println!(
        "{:<58} {:>10.2} {:>10.2} {:>12.0}",
        "one client, one after another",
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.99)),
        seq_rate
    );
    let rate = n as f64 / wall.as_secs_f64();
    println!("{:<58} {:>10} {:>10} {:>12.0}", format!("{clients} keep-alive clients, {n} invoices"), "", "", rate);
    println!("{:<58} {:>10} {:>10} {:>12.0}", "baseline: bare SQLite INSERT + COMMIT (before / after)", "", "", bare);
    println!("{:<58} {:>10} {:>10} {:>12.0}", "", "", "", bare_after);
    println!("ratio invoices/s ({clients} clients) / bare inserts/s: {:.2}", rate / ((bare + bare_after) / 2.0));

    // Paid over Lightning: B's send → A's invoice.paid webhook, and → B's PaymentSuccessful.
    let hooks = Hooks::start("invoice.paid", "invoice_id");
    let (status, endpoint) = api.request_json("POST", "/v1/webhooks", &key, None, &hooks.subscription());
    assert_eq!(status, 201, "{endpoint}");
    let mut paid = Paid { api, key, b: &b, b_events, hooks, n: 0 };
    for _ in 0..5 {
        paid.one();
    }
    let (hooked, raw): (Vec<_>, Vec<_>) = (0..payments).map(|_| paid.one()).unzip();
    println!("\nLightning payments of 1,000 sat to A's invoices, one after another, {payments} (after 5 to warm up)");
    println!("{:<58} {:>10} {:>10} {:>10}", "path", "p50 ms", "p99 ms", "mean ms");
    for (name, t) in
        [("raw: B send -> B PaymentSuccessful", &raw), ("B send -> invoice.paid webhook received", &hooked)]
    {
        let mean = t.iter().sum::<Duration>() / t.len().max(1) as u32;
        println!("{name:<58} {:>10.1} {:>10.1} {:>10.1}", ms(percentile(t, 0.5)), ms(percentile(t, 0.99)), ms(mean));
    }
    println!(
        "ratio webhook / raw: p50 {:.2}, p99 {:.2}",
        ms(percentile(&hooked, 0.5)) / ms(percentile(&raw, 0.5)),
        ms(percentile(&hooked, 0.99)) / ms(percentile(&raw, 0.99))
    );
    println!(
        "peak RSS (VmHWM): senderod A {} kB, this process (runs B) {} kB",
        a.pid().map_or(0, |p| rss_kb(&p.to_string())),
        rss_kb("self")
    );
    b.stop().expect("stop B");
}

/// One `POST /v1/invoices`; its answer.
fn create(api: &mut KeepAlive, key: &str, idem: &str, minor: u64) -> Value {
    let body = json!({"amount": {"minor_units": minor, "currency": "EUR"}, "description": idem});
    let (status, inv) = api.request_json("POST", "/v1/invoices", key, Some(idem), &body);
    assert_eq!(status, 201, "{inv}");
    inv
}

/// `clients` keep-alive clients creating `per_client` invoices each, the clock running once all
/// are connected: (invoices, wall time).
fn concurrent(port: u16, key: &str, clients: usize, per_client: usize) -> (usize, Duration) {
    let ready = std::sync::Barrier::new(clients + 1);
    let mut started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let ready = &ready;
            s.spawn(move || {
                let mut api = KeepAlive::connect(port);
                ready.wait();
                for i in 0..per_client {
                    create(&mut api, key, &format!("par-{c}-{i}"), 1_000);
                }
            });
        }
        ready.wait();
        started = Instant::now();
    });
    (clients * per_client, started.elapsed())
}

/// Inserts + commits per second into a fresh SQLite file at `path` (WAL, synchronous=FULL, as
/// senderod's store), `n` of them, one transaction each.
fn bare_rate(path: &Path, n: usize) -> f64 {
    let db = rusqlite::Connection::open(path).expect("bare store");
    db.pragma_update(None, "journal_mode", "WAL").expect("wal");
    db.pragma_update(None, "synchronous", "FULL").expect("sync");
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v TEXT NOT NULL)", []).expect("table");
    let started = Instant::now();
    for i in 0..n {
        let tx = db.unchecked_transaction().expect("tx");
        tx.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (format!("k-{i}"), "{\"invoice_id\":\"inv_x\"}"))
            .expect("insert");
        tx.commit().expect("commit");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// What each paid invoice needs.
struct Paid<'a> {
    api: KeepAlive,
    key: String,
    b: &'a Node,
    b_events: Receiver<(Event, Instant)>,
    hooks: Hooks,
    n: usize,
}

impl Paid<'_> {
    /// A invoices 1,000 sat, B pays it: (send → invoice.paid received, send → B's PaymentSuccessful).
    fn one(&mut self) -> (Duration, Duration) {
        self.n += 1;
        let body =
            json!({"amount": {"minor_units": 1_000, "currency": "SAT"}, "description": "bench", "speed": "high"});
        let (status, inv) =
            self.api.request_json("POST", "/v1/invoices", &self.key, Some(&format!("pay-{}", self.n)), &body);
        assert_eq!(status, 201, "{inv}");
        let invoice = Bolt11Invoice::from_str(inv["bolt11"].as_str().unwrap_or_default()).expect("A's invoice");
        let started = Instant::now();
        let id = self.b.bolt11_payment().send(&invoice, None).expect("B pays");
        let raw = loop {
            let (event, at) = self.b_events.recv_timeout(MINUTE).expect("B's payment event");
            match event {
                Event::PaymentSuccessful { payment_id: Some(p), .. } if p == id => break at - started,
                Event::PaymentFailed { payment_id: Some(p), reason, .. } if p == id => {
                    panic!("B's payment failed: {reason:?}")
                }
                _ => {}
            }
        };
        let hooked = self.hooks.wait(inv["invoice_id"].as_str().unwrap_or_default()) - started;
        (hooked, raw)
    }
}
