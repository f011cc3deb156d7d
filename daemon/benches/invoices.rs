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
mod support;

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::str::FromStr;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{wait_for, AdminMode, Chain, Gateway};
use sendero::devchain::free_port;
use sendero_lightning::ldk_node::bitcoin::Network;
use sendero_lightning::ldk_node::lightning_invoice::Bolt11Invoice;
use sendero_lightning::ldk_node::{Builder, Event, Node};
use serde_json::{json, Value};
use support::{read_message, rss_kb, KeepAlive};

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
        ms(pct(&took, 0.5)),
        ms(pct(&took, 0.99)),
        seq_rate
    );
    let rate = n as f64 / wall.as_secs_f64();
    println!("{:<58} {:>10} {:>10} {:>12.0}", format!("{clients} keep-alive clients, {n} invoices"), "", "", rate);
    println!("{:<58} {:>10} {:>10} {:>12.0}", "baseline: bare SQLite INSERT + COMMIT (before / after)", "", "", bare);
    println!("{:<58} {:>10} {:>10} {:>12.0}", "", "", "", bare_after);
    println!("ratio invoices/s ({clients} clients) / bare inserts/s: {:.2}", rate / ((bare + bare_after) / 2.0));

    // Paid over Lightning: B's send → A's invoice.paid webhook, and → B's PaymentSuccessful.
    let hooks = Hooks::start();
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
        println!("{name:<58} {:>10.1} {:>10.1} {:>10.1}", ms(pct(t, 0.5)), ms(pct(t, 0.99)), ms(mean));
    }
    println!(
        "ratio webhook / raw: p50 {:.2}, p99 {:.2}",
        ms(pct(&hooked, 0.5)) / ms(pct(&raw, 0.5)),
        ms(pct(&hooked, 0.99)) / ms(pct(&raw, 0.99))
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

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

fn pct(took: &[Duration], p: f64) -> Duration {
    let mut sorted = took.to_vec();
    sorted.sort();
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

/// A plain ldk-node on the chain's bitcoind, listening on `port`.
fn start_b(chain: &Chain, dir: &Path, port: u16) -> Arc<Node> {
    let url = chain.node.rpc_url();
    let (host, rpc_port) = url.trim_start_matches("http://").rsplit_once(':').expect("rpc url");
    let cookie = std::fs::read_to_string(chain.node.cookie_path()).expect("cookie");
    let (user, password) = cookie.trim().split_once(':').expect("cookie format");
    let mut builder = Builder::new();
    builder
        .set_network(Network::Regtest)
        .set_storage_dir_path(dir.to_string_lossy().into_owned())
        .set_entropy_seed_bytes([9; 64])
        .set_chain_source_bitcoind_rpc(host.to_owned(), rpc_port.parse().expect("port"), user.into(), password.into());
    builder.set_listening_addresses(vec![format!("127.0.0.1:{port}").parse().expect("address")]).expect("listen");
    let node = builder.build().expect("build B");
    node.start().expect("start B");
    Arc::new(node)
}

/// B's events as they come, each with the instant it was seen (and acknowledged right after).
fn forward_events(b: Arc<Node>) -> Receiver<(Event, Instant)> {
    let (tx, rx) = channel();
    std::thread::spawn(move || loop {
        let event = b.wait_next_event();
        let at = Instant::now();
        let _ = b.event_handled();
        if tx.send((event, at)).is_err() {
            return;
        }
    });
    rx
}

/// Funds A's treasury and B's wallet by mining, then A opens 1,000,000 sat to B, pushing
/// 400,000 sat to B (what B pays A's invoices with).
fn open_channel(chain: &Chain, a: &Gateway, b: &Node, b_port: u16) {
    let a_addr = a.call("wallet.newaddress", json!({}))["address"].as_str().unwrap_or_default().to_owned();
    chain.mine_to(1, &b.onchain_payment().new_address().expect("B address").to_string());
    chain.mine_to(101, &a_addr);
    wait_for("A's treasury synced", MINUTE, || a.synced_height() == 102);
    wait_for("B's wallet funded", MINUTE, || b.list_balances().spendable_onchain_balance_sats > 0);
    let params = json!({"node_id": b.node_id().to_string(), "addr": format!("127.0.0.1:{b_port}"),
                        "amount_sat": 1_000_000, "push_msat": 400_000_000});
    let opened = a.call("ln.open_channel", params);
    assert_eq!(opened["status"], "awaiting_funding", "{opened}");
    chain.mine(1);
    let channel = || a.call("ln.channels", json!({}))["channels"][0].clone();
    wait_for("A's open to start once its funding confirmed", MINUTE, || !channel().is_null());
    wait_for("the channel's funding in the mempool", MINUTE, || !chain.mempool().is_empty());
    chain.mine(6);
    wait_for("the channel usable on both sides", MINUTE, || {
        channel()["usable"] == true && b.list_channels().first().is_some_and(|c| c.is_usable)
    });
}

/// A webhook receiver: the instant each `invoice.paid` arrived, by invoice id.
struct Hooks {
    port: u16,
    arrived: Receiver<(String, Instant)>,
    seen: HashMap<String, Instant>,
}

impl Hooks {
    fn start() -> Hooks {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (tx, arrived) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || serve_hooks(stream, &tx));
            }
        });
        Hooks { port, arrived, seen: HashMap::new() }
    }

    /// `POST /v1/webhooks` body.
    fn subscription(&self) -> Value {
        json!({"url": format!("http://127.0.0.1:{}/hook", self.port), "events": ["invoice.paid"]})
    }

    /// When the `invoice.paid` of `invoice_id` arrived (waits for it).
    fn wait(&mut self, invoice_id: &str) -> Instant {
        while !self.seen.contains_key(invoice_id) {
            let (id, at) = self.arrived.recv_timeout(MINUTE).expect("the invoice.paid webhook");
            self.seen.insert(id, at);
        }
        self.seen[invoice_id]
    }
}

/// Answers 200 to every request on one (keep-alive) connection, reporting each invoice id.
fn serve_hooks(stream: TcpStream, tx: &Sender<(String, Instant)>) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    while let Some((_, body)) = read_message(&mut reader) {
        let at = Instant::now();
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let hook: Value = serde_json::from_slice(&body).unwrap_or_default();
        if hook["type"] == "invoice.paid" {
            if let Some(id) = hook["data"]["invoice_id"].as_str() {
                let _ = tx.send((id.to_owned(), at));
            }
        }
    }
}
