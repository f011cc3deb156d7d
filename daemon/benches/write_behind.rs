//! `cargo bench -p sendero --bench write_behind`: how fast the books take quotes written behind
//! (`Store::record_quote` buffers, `Store::flush_deferred` writes), on SQLite and on a real
//! PostgreSQL, 64 rows to an `INSERT` against one statement per row — the baseline, run in the
//! same process, alternating over rounds. Prints quotes/s per round and in sum, the ratio, and
//! peak RSS.

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
mod support;

use std::time::Instant;

use common::postgres::PgServer;
use sendero::fx::quotes::QuoteRow;
use sendero::store::Store;

const QUOTES: u64 = 20_000;
const ROUNDS: usize = 3;

/// Buffers `QUOTES` quotes (ids starting at `first`) and flushes them; seconds the flush took.
fn flush(store: &Store, first: u64) -> f64 {
    for i in first..first + QUOTES {
        let quote = QuoteRow {
            quote_id: format!("q_{i:08}"),
            api_key_id: "bench".into(),
            pair: "BTC/EUR".into(),
            side: if i % 2 == 0 { "buy" } else { "sell" },
            rate: "91234.56789".into(),
            markup_bps: 50,
            amount_minor: 1 + i % 100_000,
            quote_amount_minor: 1 + i % 7_000,
            amount_sat: 1 + i % 1_000_000,
            expires_at: 1_900_000_000,
            origin: "api",
        };
        store.record_quote(quote, 1_800_000_000);
    }
    let started = Instant::now();
    let written = store.flush_deferred().expect("flush");
    assert_eq!(written as u64, QUOTES);
    started.elapsed().as_secs_f64()
}

const KEY: &str =
    "INSERT INTO api_keys (id, label, scopes, secret_sha256, created_at) VALUES ('bench', 'bench', 'quote', 'x', 1)";

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.sqlite");
    let sqlite = Store::open(&path).expect("SQLite store");
    rusqlite::Connection::open(&path).and_then(|c| c.execute_batch(KEY)).expect("key");
    let server = PgServer::get();
    let url = server.new_database("write_behind");
    let postgres = Store::open_postgres(&url).expect("PostgreSQL store");
    server.psql(url.rsplit('/').next().expect("database"), KEY);

    println!("quotes written behind: {QUOTES} buffered, then one flush; {ROUNDS} rounds, alternating");
    println!("{:<12} {:>16} {:>16} {:>7}", "store", "1 row/INSERT", "64 rows/INSERT", "ratio");
    let mut first = 0;
    for (name, store) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        let (mut single, mut multi, mut rounds) = (0.0, 0.0, Vec::new());
        for _ in 0..ROUNDS {
            store.set_rows_per_insert(1);
            let one = flush(store, first);
            first += QUOTES;
            store.set_rows_per_insert(64);
            let many = flush(store, first);
            first += QUOTES;
            (single, multi) = (single + one, multi + many);
            rounds.push(format!("{:.0} / {:.0}", QUOTES as f64 / one, QUOTES as f64 / many));
        }
        let total = (QUOTES * ROUNDS as u64) as f64;
        let (a, b) = (total / single, total / multi);
        println!("{name:<12} {:>14.0}/s {:>14.0}/s {:>6.1}×", a, b, b / a);
        println!("{:<12} per round (1 / 64): {}", "", rounds.join("; "));
    }
    println!("\npeak RSS (VmHWM) of the bench process: {} kB", support::rss_kb("self"));
}
