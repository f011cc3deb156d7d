//! `cargo bench --bench scale_out`: what running the public API as front ends (`--role api`) of
//! a PostgreSQL store buys, against one SQLite process, on real processes started as the
//! end-to-end tests start them — in one run: a regtest bitcoind, (a) a SQLite gateway (role all),
//! and on PostgreSQL one node (role all: it takes the node lock) plus two front ends. Each has
//! static FX rates of its own and a funded (or, for the front ends, watch-only) treasury.
//!
//! Measured for (a) SQLite, one process; (b) PostgreSQL, one front end; (c) PostgreSQL, two
//! front ends (clients round-robin over them), with the same number of client threads, each on
//! its own keep-alive connection:
//! - `GET /v1/fx/quote` requests/s and p50/p99 (each quote is priced from the process's rate
//!   cache and written to the books behind the answer): after each round the wait until the books
//!   hold every quote served is timed (its CPU counted), which gives the rate written too;
//! - durable submits/s and p50/p99: `POST /v1/payments/submit` of low-priority `onchain_batch`
//!   payouts (1,000–5,000 sat to outside addresses) whose routes were priced before any clock
//!   started; batches never leave during the run (no count, total, cheap-fee or interval trigger
//!   fires), so the queue just grows and each submit is one durable commit.
//!
//! Then what a front end's hand-over to the node costs: `POST /v1/invoices` (5,000 sat each; only
//! the node can make one — its wallet's next address, its node's BOLT11 invoice) from the same
//! clients for a fixed time per round, (a) at the PostgreSQL node's own API, (b) through one front
//! end, which hands each to the node over HTTP, and (c) at the SQLite process for reference:
//! invoices/s, p50/p99 and the ratio (b)/(a); afterwards the books hold exactly one invoice per
//! `201` answered.
//!
//! Configurations alternate within each round so that the machine's noise hits them alike; per
//! configuration the table sums every round (ops/s = all ops / all wall time), gives the ratio
//! to SQLite, each process's CPU per op (utime + stime from /proc, PostgreSQL's backends
//! included) and how busy the machine was; then peak RSS and a "where the limit is" line built
//! from those figures.
//!
//! Read it honestly: everything here — clients, front ends, node, PostgreSQL, bitcoind — shares
//! the machine's cores (two on the reference box), so a second front end on the same machine
//! mostly shows contention, not capacity. What a second machine adds: the front ends' HTTP, JSON
//! and API-key CPU moves off the database's box; the node role and the database stay single, and
//! the database's single write lock (every writer's transaction takes it) serialises submits —
//! a bound the "front ends and clients elsewhere" CPU figure does not include.

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use common::postgres::PgServer;
use common::{wait_for, AdminMode, Chain, Gateway};
use serde_json::{json, Value};
use support::{machine_ticks, rss_kb, KeepAlive};

const CLIENTS: usize = 16;
const ROUNDS: usize = 3;
const QUOTE_TIME: Duration = Duration::from_secs(2);
const QUOTE_WARMUP: Duration = Duration::from_millis(500);
const QUOTE_PATH: &str = "/v1/fx/quote?base=EUR&quote=BTC&side=buy&amount_minor=100000";
const MINUTE: Duration = Duration::from_secs(60);
const SCOPES: &str = "invoice,pay,read,quote";
const INVOICE_TIME: Duration = Duration::from_secs(2);

/// Static rates on every process: each front end has a rate cache of its own.
const FX: &str = "[fx]\npairs = [\"BTC/EUR\", \"BTC/USD\"]\nsources = [\"static\"]\n\
                  static_rates = { \"BTC/EUR\" = \"85000\", \"BTC/USD\" = \"98000\" }\n";
/// `low` payouts queue and stay queued: no count or total trigger within reach, never a cheap
/// feerate, no interval; their deadline (a day less 24 blocks) is hours away. Routes stand an
/// hour, so that all of them are priced before any clock starts.
const QUEUE: &str = "[batching]\nenabled = true\nlow_max_count = 1000000\nlow_max_total_sat = 2000000000000000\n\
                     low_cheap_feerate_sat_kvb = 0\ncheap_percentile = 0\nlow_cheap_min_wait_secs = 86400\n\
                     low_interval_secs = 0\n\n[routing]\nroute_ttl_secs = 3600\n";

/// The processes watched, by index into [`Procs::pids`].
const SQLITE: usize = 0;
const NODE: usize = 1;
const FE1: usize = 2;
const FE2: usize = 3;
const PG: usize = 4;
const BENCH: usize = 5;
const PROCS: usize = 6;
const NAMES: [&str; PROCS] = ["SQLite gateway", "node", "front end 1", "front end 2", "PostgreSQL", "clients"];

/// The number of submits per configuration and round: `SCALE_OUT_SUBMITS`, else 800.
fn submits_per_round() -> usize {
    std::env::var("SCALE_OUT_SUBMITS").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(800)
}

/// Everything the bench runs; gateways first, so that they stop before the chain.
struct Rig {
    sqlite: Gateway,
    node: Gateway,
    fronts: Vec<Gateway>,
    procs: Procs,
    sqlite_key: String,
    pg_key: String,
    chain: Chain,
    _home: tempfile::TempDir,
}

#[derive(Clone, Copy, PartialEq)]
enum Setup {
    Sqlite,
    PgOne,
    PgTwo,
    /// The PostgreSQL node's own API (the invoices' reference).
    PgNode,
}

const SETUPS: [Setup; 3] = [Setup::Sqlite, Setup::PgOne, Setup::PgTwo];
/// Where invoices are made: at the node, through a front end (handed to the node), and SQLite.
const INVOICE_SETUPS: [Setup; 3] = [Setup::PgNode, Setup::PgOne, Setup::Sqlite];

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Sqlite => "SQLite, 1 process",
            Setup::PgOne => "PG, 1 front end",
            Setup::PgTwo => "PG, 2 front ends",
            Setup::PgNode => "PG node, direct",
        }
    }

    /// The API ports clients are spread over (round-robin).
    fn ports(self, rig: &Rig) -> Vec<u16> {
        match self {
            Setup::Sqlite => vec![rig.sqlite.api_port],
            Setup::PgNode => vec![rig.node.api_port],
            Setup::PgOne => vec![rig.fronts[0].api_port],
            Setup::PgTwo => rig.fronts.iter().map(|f| f.api_port).collect(),
        }
    }

    /// The gateway whose books the configuration writes, and the API key its clients use.
    fn books(self, rig: &Rig) -> (&Gateway, &str) {
        match self {
            Setup::Sqlite => (&rig.sqlite, &rig.sqlite_key),
            Setup::PgOne | Setup::PgTwo | Setup::PgNode => (&rig.node, &rig.pg_key),
        }
    }

    /// The processes that serve this configuration.
    fn serving(self) -> &'static [usize] {
        match self {
            Setup::Sqlite => &[SQLITE],
            Setup::PgOne => &[NODE, FE1, PG],
            Setup::PgTwo => &[NODE, FE1, FE2, PG],
            Setup::PgNode => &[NODE, PG],
        }
    }
}

/// The label of row `k` of a table of `setups`: its letter and its name.
fn label(setups: &[Setup], k: usize) -> String {
    format!("({}) {}", char::from(b'a' + k as u8), setups[k].name())
}

fn main() {
    assert!(!common::postgres::enabled(), "run without SENDERO_TEST_STORE: (a) is the SQLite store");
    common::without_rate_limit();
    let rig = start_rig();
    let n = submits_per_round();
    // Every route of every round and configuration, priced before any clock starts (not timed).
    let routes: Vec<Vec<Vec<String>>> = (0..ROUNDS)
        .map(|r| {
            (0..SETUPS.len()).map(|s| priced_routes(&rig, SETUPS[s], n, ((r * SETUPS.len() + s) * n) as u32)).collect()
        })
        .collect();
    for setup in SETUPS {
        quote_round(&rig, setup, QUOTE_WARMUP);
    }
    // Invoices made outside the tallies (the warm-up), by configuration.
    let mut made: Vec<usize> = (0..INVOICE_SETUPS.len())
        .map(|i| invoice_round(&rig, INVOICE_SETUPS[i], QUOTE_WARMUP, &format!("w{i}")).took.len())
        .collect();
    let mut quotes: Vec<Tally> = SETUPS.iter().map(|_| Tally::default()).collect();
    let mut submits: Vec<Tally> = SETUPS.iter().map(|_| Tally::default()).collect();
    let mut invoices: Vec<Tally> = INVOICE_SETUPS.iter().map(|_| Tally::default()).collect();
    // Each round starts with another configuration.
    for (round, routes) in routes.iter().enumerate() {
        let order: Vec<usize> = (0..SETUPS.len()).map(|k| (round + k) % SETUPS.len()).collect();
        for &i in &order {
            quotes[i].add(quote_round(&rig, SETUPS[i], QUOTE_TIME));
        }
        for &i in &order {
            submits[i].add(submit_round(&rig, SETUPS[i], &routes[i]));
        }
        for &i in &order {
            invoices[i].add(invoice_round(&rig, INVOICE_SETUPS[i], INVOICE_TIME, &format!("r{round}-{i}")));
        }
    }
    check_books(&rig, n);
    for (made, t) in made.iter_mut().zip(&invoices) {
        *made += t.took.len();
    }
    check_invoices(&rig, &made);
    println!();
    println!(
        "scale_out: {CLIENTS} client threads (keep-alive, round-robin over a configuration's front ends), {ROUNDS} \
         rounds alternating configurations; per round and configuration {} s of quotes, {n} submits and {} s of \
         invoices; {} cores",
        QUOTE_TIME.as_secs(),
        INVOICE_TIME.as_secs(),
        cores()
    );
    print_table("GET /v1/fx/quote", &SETUPS, &quotes);
    print_table("POST /v1/payments/submit", &SETUPS, &submits);
    print_table(
        "POST /v1/invoices (5,000 sat; the node makes each: at its own API, or handed to it by a front end)",
        &INVOICE_SETUPS,
        &invoices,
    );
    print_handover(&invoices);
    print_rss(&rig);
    print_limit("quotes", &quotes);
    print_limit("submits", &submits);
    print_scale_note(&submits);
    keep_logs(rig);
}

/// The gateways' errors; with `SCALE_OUT_KEEP` set, the data dirs and PostgreSQL's log are kept.
fn keep_logs(rig: Rig) {
    let gateways = [&rig.sqlite, &rig.node, &rig.fronts[0], &rig.fronts[1]];
    let errors = gateways.iter().map(|gw| gw.log().lines().filter(|l| l.contains("ERROR")).count());
    println!("log lines at ERROR (SQLite gateway, node, front ends): {:?}", errors.collect::<Vec<_>>());
    if std::env::var_os("SCALE_OUT_KEEP").is_some() {
        let _ = std::fs::write(rig._home.path().join("postgres.log"), PgServer::get().log());
        println!("kept: {}", rig._home.keep().display());
    }
}

/// The chain, the SQLite gateway, the PostgreSQL node (both funded) and two front ends, synced.
fn start_rig() -> Rig {
    let server = PgServer::get();
    let chain = Chain::start();
    let home = tempfile::tempdir().expect("tempdir");
    let extra = format!("{FX}\n{QUEUE}");
    let sqlite = Gateway::start_with(&chain, &home.path().join("sqlite"), AdminMode::Socket, "human", &extra);
    let url = server.new_database("scale_out");
    let pg_extra = format!("[store]\nurl = \"{url}\"\n\n{extra}");
    let node = Gateway::start_with(&chain, &home.path().join("node"), AdminMode::Socket, "human", &pg_extra);
    assert!(node.log().contains("node lock taken"), "{}", node.log());
    // Coinbase maturity: 101 blocks to each treasury.
    for gw in [&sqlite, &node] {
        let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().expect("address").to_owned();
        chain.mine_to(101, &address);
    }
    for gw in [&sqlite, &node] {
        wait_for("treasury sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    }
    let (sqlite_key, pg_key) = (sqlite.api_key(SCOPES), node.api_key(SCOPES));
    let api = ["--role", "api"];
    let fronts: Vec<Gateway> = ["fe1", "fe2"]
        .iter()
        .map(|name| {
            Gateway::start_with_args(&chain, &home.path().join(name), AdminMode::Socket, "human", &pg_extra, &api)
        })
        .collect();
    for fe in &fronts {
        // The watch-only treasury, synced from the chain.
        wait_for("front end sync", MINUTE, || fe.synced_height() == u64::from(chain.height()));
        assert!(fe.log().contains("front end (--role api)"), "{}", fe.log());
    }
    let pid = |gw: &Gateway| gw.pid().expect("running");
    let postmaster = std::fs::read_to_string(server.dir.join("data/postmaster.pid")).expect("postmaster.pid");
    let pg = postmaster.lines().next().and_then(|l| l.trim().parse().ok()).expect("postmaster pid");
    let procs = Procs { pids: [pid(&sqlite), pid(&node), pid(&fronts[0]), pid(&fronts[1]), pg, std::process::id()] };
    Rig { sqlite, node, fronts, procs, sqlite_key, pg_key, chain, _home: home }
}

/// What timed runs left: each op's latency, the wall time, CPU ticks per process, machine ticks.
#[derive(Default)]
struct Tally {
    took: Vec<Duration>,
    wall: Duration,
    /// After the clients stopped, until the books held every quote served.
    drain: Duration,
    cpu: Cpu,
    /// Ops/s of each round added.
    rounds: Vec<f64>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.rounds.push(other.rate());
        self.took.extend(other.took);
        self.wall += other.wall;
        self.drain += other.drain;
        self.cpu.add(&other.cpu);
    }

    fn rate(&self) -> f64 {
        self.took.len() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    fn percentile_us(&self, p: f64) -> u128 {
        let mut sorted = self.took.clone();
        sorted.sort();
        sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).map_or(0, |d| d.as_micros())
    }

    /// CPU of process `i` per op, µs.
    fn cpu_us(&self, i: usize) -> u64 {
        self.cpu.ticks[i] * 1_000_000 / clock_ticks() / (self.took.len() as u64).max(1)
    }

    /// Ops per second of wall time including the wait for the books.
    fn written_rate(&self) -> f64 {
        self.took.len() as f64 / (self.wall + self.drain).as_secs_f64().max(1e-9)
    }

    fn busy_percent(&self) -> u64 {
        self.cpu.busy * 100 / self.cpu.all.max(1)
    }
}

/// `CLIENTS` threads, client i on its own keep-alive connection to `ports[i % ports.len()]`. Once
/// all are connected the clock starts, and client i calls `op(connection, i, n, started)` for
/// n = 0, 1, … until it returns false; every call that returns true is one timed op.
fn drive(ports: &[u16], procs: &Procs, op: &(dyn Fn(&mut KeepAlive, usize, usize, Instant) -> bool + Sync)) -> Tally {
    let ready = Barrier::new(CLIENTS + 1);
    let (mut started, mut cpu0) = (Instant::now(), Cpu::default());
    let took: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (port, ready) = (ports[client % ports.len()], &ready);
                s.spawn(move || {
                    let mut connection = KeepAlive::connect(port);
                    ready.wait();
                    let (begin, mut took) = (Instant::now(), Vec::new());
                    for n in 0.. {
                        let sent = Instant::now();
                        if !op(&mut connection, client, n, begin) {
                            break;
                        }
                        took.push(sent.elapsed());
                    }
                    took
                })
            })
            .collect();
        ready.wait();
        (started, cpu0) = (Instant::now(), procs.snapshot());
        handles.into_iter().flat_map(|h| h.join().expect("a client failed")).collect()
    });
    let wall = started.elapsed();
    Tally { took, wall, cpu: procs.snapshot().since(&cpu0), ..Tally::default() }
}

/// `n` low-priority routes (1,000–5,000 sat to outside addresses `first`…) priced by the
/// configuration's API from all clients at once; their ids.
fn priced_routes(rig: &Rig, setup: Setup, n: usize, first: u32) -> Vec<String> {
    let (ids, next, key) = (Mutex::new(Vec::with_capacity(n)), AtomicUsize::new(0), setup.books(rig).1);
    drive(&setup.ports(rig), &rig.procs, &|connection, _, _, _| {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n {
            return false;
        }
        let seq = first + i as u32;
        let sat = 1_000 + u64::from(seq % 4_001);
        let destination = common::outside_address_at(seq).to_string();
        let body =
            json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination, "priority": "low"});
        let (status, r) = connection.request_json("POST", "/v1/payments/route", key, None, &body);
        assert_eq!(status, 200, "{r}");
        let rails: Vec<&Value> =
            r["candidates"].as_array().map(|c| c.iter().map(|c| &c["rail"]).collect()).unwrap_or_default();
        assert!(rails.iter().any(|rail| *rail == "onchain_batch"), "no onchain_batch candidate: {r}");
        ids.lock().expect("ids").push(r["route_id"].as_str().expect("route_id").to_owned());
        true
    });
    ids.into_inner().expect("ids")
}

/// Quotes from every client for `time`, then the wait until the books hold them all: each
/// process writes its quotes behind its answers, in batches, so that wait (and its CPU) is part of
/// what a quote costs. A process's batches commit in order: its clients' last quotes written,
/// all are.
fn quote_round(rig: &Rig, setup: Setup, time: Duration) -> Tally {
    let (key, last): (_, Vec<Mutex<String>>) = (setup.books(rig).1, (0..CLIENTS).map(|_| Mutex::default()).collect());
    let mut tally = drive(&setup.ports(rig), &rig.procs, &|connection, client, _, begin| {
        if begin.elapsed() >= time {
            return false;
        }
        let (status, q) = connection.request_json("GET", QUOTE_PATH, key, None, &Value::Null);
        assert_eq!(status, 200, "{q}");
        assert!(q["amount_sat"].as_u64().is_some_and(|sat| sat > 0), "{q}");
        *last[client].lock().expect("last") = q["quote_id"].as_str().expect("quote_id").to_owned();
        true
    });
    let (started, cpu0) = (Instant::now(), rig.procs.snapshot());
    let books = common::books(&setup.books(rig).0.datadir);
    let ids: Vec<String> = last.into_iter().map(|m| m.into_inner().expect("last")).collect();
    let written = |id: &String| {
        let sql = "SELECT COUNT(*) FROM fx_quotes WHERE quote_id = ?1";
        books.query_row(sql, [id], |r| r.get::<_, i64>(0)).expect("read the books") == 1
    };
    while !ids.iter().all(written) {
        assert!(started.elapsed() < 10 * MINUTE, "quotes served but not written after 10 minutes");
        std::thread::sleep(Duration::from_millis(10));
    }
    tally.drain = started.elapsed();
    tally.cpu.add(&rig.procs.snapshot().since(&cpu0));
    tally
}

/// Submits every route of `routes` on `onchain_batch`, its id as the idempotency key; client i
/// takes the i-th share.
fn submit_round(rig: &Rig, setup: Setup, routes: &[String]) -> Tally {
    let (key, chunks) = (setup.books(rig).1, routes.chunks(routes.len().div_ceil(CLIENTS)).collect::<Vec<_>>());
    drive(&setup.ports(rig), &rig.procs, &|connection, client, n, _| {
        let Some(route_id) = chunks.get(client).and_then(|c| c.get(n)) else { return false };
        let body = json!({"route_id": route_id, "rail": "onchain_batch"});
        let (status, p) = connection.request_json("POST", "/v1/payments/submit", key, Some(route_id), &body);
        assert_eq!(status, 202, "{p}");
        assert!(p["payment_id"].as_str().is_some_and(|id| !id.is_empty()), "{p}");
        true
    })
}

/// Invoices from every client for `time`, each with an idempotency key of its own (`tag` makes
/// them unique across rounds and configurations); every answer is the node's (`201`, with its
/// BOLT11 invoice).
fn invoice_round(rig: &Rig, setup: Setup, time: Duration, tag: &str) -> Tally {
    let key = setup.books(rig).1;
    let body = json!({"amount": {"minor_units": 5000, "currency": "SAT"}, "description": "bench"});
    drive(&setup.ports(rig), &rig.procs, &|connection, client, n, begin| {
        if begin.elapsed() >= time {
            return false;
        }
        let idem = format!("inv-{tag}-{client}-{n}");
        let (status, inv) = connection.request_json("POST", "/v1/invoices", key, Some(&idem), &body);
        assert_eq!(status, 201, "{inv}");
        assert!(inv["invoice_id"].as_str().is_some_and(|id| !id.is_empty()), "{inv}");
        assert!(inv["bolt11"].as_str().is_some_and(|b| b.starts_with("lnbcrt")), "no BOLT11 from the node: {inv}");
        true
    })
}

/// Each invoice answered `201` (`made`, by [`INVOICE_SETUPS`]) is exactly one in its books.
fn check_invoices(rig: &Rig, made: &[usize]) {
    let count = |gw: &Gateway| -> i64 {
        common::books(&gw.datadir).query_row("SELECT COUNT(*) FROM invoices", [], |r| r.get(0)).expect("count")
    };
    let on_sqlite = |sqlite: bool| -> i64 {
        INVOICE_SETUPS.iter().zip(made).filter(|(s, _)| (**s == Setup::Sqlite) == sqlite).map(|(_, m)| *m as i64).sum()
    };
    assert_eq!(count(&rig.sqlite), on_sqlite(true), "SQLite: one invoice per 201");
    assert_eq!(
        count(&rig.node),
        on_sqlite(false),
        "PostgreSQL: one invoice per 201, at the node or through a front end"
    );
}

/// Each submit made exactly one payment, and nothing left the queue (no batch in the mempool).
fn check_books(rig: &Rig, per_round: usize) {
    let count = |gw: &Gateway| -> i64 {
        common::books(&gw.datadir).query_row("SELECT COUNT(*) FROM payments", [], |r| r.get(0)).expect("count")
    };
    assert_eq!(count(&rig.sqlite), (ROUNDS * per_round) as i64, "SQLite: one payment per submit");
    assert_eq!(count(&rig.node), (2 * ROUNDS * per_round) as i64, "PostgreSQL: one payment per submit");
    assert!(rig.chain.mempool().is_empty(), "a batch left during the run: {:?}", rig.chain.mempool());
}

/// One row per configuration; the CPU of every watched process per op (a process serving no
/// request of the configuration shows its background work, in parentheses).
fn print_table(what: &str, setups: &[Setup], tallies: &[Tally]) {
    println!();
    println!("{what}");
    println!(
        "{:<22} {:>7} {:>8} {:>7} {:>7} {:>7} {:>6} | CPU µs/op: sqlite   node    fe1    fe2     pg clients | busy",
        "configuration", "ops", "ops/s", "p50 µs", "p99 µs", "max ms", "vs (a)"
    );
    let base = tallies[0].rate();
    for (k, (setup, t)) in setups.iter().zip(tallies).enumerate() {
        let cell = |i: usize| match setup.serving().contains(&i) || i == BENCH {
            true => t.cpu_us(i).to_string(),
            false => format!("({})", t.cpu_us(i)),
        };
        println!(
            "{:<22} {:>7} {:>8.0} {:>7} {:>7} {:>7} {:>6.2} | {:>17} {:>6} {:>6} {:>6} {:>6} {:>7} | {:>3}%",
            label(setups, k),
            t.took.len(),
            t.rate(),
            t.percentile_us(0.5),
            t.percentile_us(0.99),
            t.percentile_us(1.0) / 1_000,
            t.rate() / base,
            cell(SQLITE),
            cell(NODE),
            cell(FE1),
            cell(FE2),
            cell(PG),
            cell(BENCH),
            t.busy_percent()
        );
    }
    let rounds: Vec<String> =
        tallies.iter().enumerate().map(|(k, t)| format!("{} {:.0?}", label(setups, k), t.rounds)).collect();
    println!("  ops/s per round: {}", rounds.join("; "));
    for (k, t) in tallies.iter().enumerate().filter(|(_, t)| !t.drain.is_zero()) {
        println!(
            "  {}: the books held every quote {} ms after the clients stopped (sum over rounds) → {:.0} quotes/s \
             served and written ({:.2} of (a)'s); CPU and busy above include that wait",
            label(setups, k),
            t.drain.as_millis(),
            t.written_rate(),
            t.written_rate() / tallies[0].written_rate()
        );
    }
}

fn print_rss(rig: &Rig) {
    let kb = |pid: u32| rss_kb(&pid.to_string());
    let mut each: Vec<String> = (0..BENCH).map(|i| format!("{} {} kB", NAMES[i], kb(rig.procs.pids[i]))).collect();
    let backends = children(rig.procs.pids[PG]).into_iter().map(kb).max().unwrap_or(0);
    each[PG] = format!("PostgreSQL postmaster {} kB (largest backend {backends} kB)", kb(rig.procs.pids[PG]));
    println!("\npeak RSS (VmHWM): {}, bench process {} kB", each.join(", "), rss_kb("self"));
}

/// Where the limit is, from the figures just measured: how busy the machine was, the CPU per
/// op of the processes serving and of the clients (other processes' background work aside), the
/// ceiling that puts on the cores, that ceiling with the front ends and clients on other machines
/// (the node and the database stay), and which bound the figures point at.
fn print_limit(what: &str, tallies: &[Tally]) {
    let cores = cores() as u64;
    let ceiling = |us: u64| cores * 1_000_000 / us.max(1);
    println!();
    for (k, (setup, t)) in SETUPS.iter().zip(tallies).enumerate() {
        let mut shares: Vec<(u64, &str)> =
            setup.serving().iter().chain(&[BENCH]).map(|&i| (t.cpu_us(i), NAMES[i])).collect();
        shares.sort_by(|a, b| b.cmp(a));
        let total: u64 = shares.iter().map(|s| s.0).sum();
        let named: Vec<String> = shares.iter().map(|(us, name)| format!("{name} {us}")).collect();
        // A quote's CPU includes writing it: it is weighed at the rate the books took quotes.
        let rate = if what == "quotes" { t.written_rate() } else { t.rate() };
        let mut line = format!(
            "where the limit is, {what} {}: {}% machine busy; CPU µs/op {total} ({}) → {cores} cores ≈ {}/s vs {rate:.0}/s \
             measured",
            label(&SETUPS, k),
            t.busy_percent(),
            named.join(", "),
            ceiling(total)
        );
        if matches!(setup, Setup::PgOne | Setup::PgTwo) {
            let here = t.cpu_us(NODE) + t.cpu_us(PG);
            line +=
                &format!("; front ends and clients elsewhere: node + PostgreSQL {here} µs/op ≈ {}/s", ceiling(here));
        }
        line += &if what == "quotes" && t.written_rate() < 0.9 * t.rate() {
            format!(
                " → bound: the write-behind (served {:.0}/s, written {rate:.0}/s; 64 quotes per INSERT, no write \
                 lock, on cores shared with the front ends and clients)",
                t.rate()
            )
        } else if t.busy_percent() >= 85 {
            " → bound: the cores".to_owned()
        } else {
            format!(
                " → bound: not the cores alone — ops queue for the one writer ({:.0} µs of wall time per op)",
                1e6 / rate
            )
        };
        println!("{line}");
    }
}

/// What a second front end did here, from the figures: on one machine it adds concurrency, not
/// cores.
fn print_scale_note(submits: &[Tally]) {
    let cpu = |t: &Tally, setup: Setup| -> u64 { setup.serving().iter().map(|&i| t.cpu_us(i)).sum() };
    println!(
        "\nnote: every process shares these {} cores; a second front end here gave submits {:.2}× (c)/(b) at {} vs {} \
         CPU µs per submit and {}% vs {}% machine busy — contention for the same cores, not new capacity. A second \
         machine takes the front ends' HTTP/JSON/auth CPU off this one; the node and the database stay single, and \
         the database's one write lock (every writer's transaction takes it) serialises the submits.",
        cores(),
        submits[2].rate() / submits[1].rate(),
        cpu(&submits[2], Setup::PgTwo),
        cpu(&submits[1], Setup::PgOne),
        submits[2].busy_percent(),
        submits[1].busy_percent()
    );
}

/// What handing an invoice to the node cost, from the invoices' figures: (b) through a front end
/// against (a) at the node's own API — the rate, the latency added, and the front end's CPU.
fn print_handover(invoices: &[Tally]) {
    let (node, front) = (&invoices[0], &invoices[1]);
    let added = |p: f64| front.percentile_us(p) as i128 - node.percentile_us(p) as i128;
    println!(
        "\nhand-over to the node: invoices through a front end ran at {:.2}× (b)/(a) the node's own API's rate \
         ({:.0} vs {:.0}/s), p50 {:+} µs and p99 {:+} µs; per invoice the front end spent {} µs of CPU handing it \
         over (node {} vs {} µs, PostgreSQL {} vs {} µs); {}% vs {}% machine busy",
        front.rate() / node.rate(),
        front.rate(),
        node.rate(),
        added(0.5),
        added(0.99),
        front.cpu_us(FE1),
        front.cpu_us(NODE),
        node.cpu_us(NODE),
        front.cpu_us(PG),
        node.cpu_us(PG),
        front.busy_percent(),
        node.busy_percent()
    );
}

/// Clock ticks (utime, stime) per second.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant of the system.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100).max(1)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The watched processes; PostgreSQL's pid is the postmaster's.
struct Procs {
    pids: [u32; PROCS],
}

/// CPU clock ticks per watched process, and the machine's busy and total ticks (all cores).
#[derive(Default, Clone)]
struct Cpu {
    ticks: [u64; PROCS],
    busy: u64,
    all: u64,
}

impl Procs {
    fn snapshot(&self) -> Cpu {
        let mut ticks = [0; PROCS];
        for (i, pid) in self.pids.iter().enumerate() {
            ticks[i] = if i == PG {
                // The postmaster with its reaped children, plus the backends alive now.
                stat_fields(*pid).iter().skip(11).take(4).sum::<u64>()
                    + children(*pid)
                        .into_iter()
                        .map(|c| stat_fields(c).iter().skip(11).take(2).sum::<u64>())
                        .sum::<u64>()
            } else {
                stat_fields(*pid).iter().skip(11).take(2).sum()
            };
        }
        let (busy, all) = machine_ticks();
        Cpu { ticks, busy, all }
    }
}

impl Cpu {
    fn add(&mut self, other: &Cpu) {
        for (mine, theirs) in self.ticks.iter_mut().zip(other.ticks) {
            *mine += theirs;
        }
        self.busy += other.busy;
        self.all += other.all;
    }

    fn since(&self, earlier: &Cpu) -> Cpu {
        let mut ticks = [0; PROCS];
        for (i, t) in ticks.iter_mut().enumerate() {
            *t = self.ticks[i].saturating_sub(earlier.ticks[i]);
        }
        Cpu { ticks, busy: self.busy.saturating_sub(earlier.busy), all: self.all.saturating_sub(earlier.all) }
    }
}

/// The numeric fields of /proc/<pid>/stat after the command name, from `state` on (ppid is 1,
/// utime 11, stime 12, cutime 13, cstime 14); `state` reads as 0.
fn stat_fields(pid: u32) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect()
}

/// The live children of `parent`.
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).get(1) == Some(&u64::from(parent)))
        .collect()
}
