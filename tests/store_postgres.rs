//! The store on a real PostgreSQL: the schema migrates, and every SQL statement written in the
//! daemon's source prepares there (PostgreSQL checks names, types and syntax at prepare time),
//! so a statement only SQLite understands is found here rather than by a payout at run time.

mod common;

use common::postgres::PgServer;
use sendero::store::Store;

/// The string literals of a Rust file that are SQL statements (those built with `format!` are
/// skipped: the end-to-end suite runs them).
fn statements(source: &str) -> Vec<String> {
    let (b, mut out, mut i) = (source.as_bytes(), Vec::new(), 0);
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = source[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'')) => {
                i += if b[i + 1] == b'\\' { 4 } else { 3 };
            }
            b'"' => {
                let mut j = i + 1;
                let mut text = String::new();
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' {
                        match b.get(j + 1) {
                            Some(b'\n') => {
                                j += 2;
                                while j < b.len() && b[j].is_ascii_whitespace() {
                                    j += 1;
                                }
                                continue;
                            }
                            Some(b'"') => text.push('"'),
                            Some(b'n') => text.push('\n'),
                            Some(b'\\') => text.push('\\'),
                            _ => {}
                        }
                        j += 2;
                        continue;
                    }
                    let ch = source[j..].chars().next().unwrap_or(' ');
                    text.push(ch);
                    j += ch.len_utf8();
                }
                let head = text.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                let raw_prefix = i > 0 && b[i - 1] == b'r';
                if !raw_prefix
                    && ["SELECT", "INSERT", "UPDATE", "DELETE", "WITH"].contains(&head.as_str())
                    && !text.contains('{')
                    && text.contains(' ')
                {
                    out.push(text);
                }
                i = j + 1;
            }
            _ => i += 1,
        }
    }
    out
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = e.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_statement_of_the_source_prepares_on_postgres() {
    let server = PgServer::get();
    let store = Store::open_postgres(&server.new_database("statements")).expect("migrate");
    let mut files = Vec::new();
    rust_files(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    files.sort();
    let (mut checked, mut failed) = (0, Vec::new());
    for file in &files {
        if file.components().any(|c| c.as_os_str() == "sql") || file.ends_with("pg_migrations.rs") {
            continue; // the dialect's own tests; the migrations' markers (the migrations run below)
        }
        let source = std::fs::read_to_string(file).unwrap();
        // The statements of unit tests run on their own SQLite files.
        let source = source.split("#[cfg(test)]").next().unwrap_or_default();
        for sql in statements(source) {
            checked += 1;
            if let Err(e) = store.check_statement(&sql) {
                failed.push(format!(
                    "{}: {e}\n    {}",
                    file.display(),
                    sql.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
    assert!(checked > 150, "found only {checked} statements: the scanner is broken");
    assert!(failed.is_empty(), "{} of {checked} statements fail on PostgreSQL:\n{}", failed.len(), failed.join("\n"));
    eprintln!("{checked} statements prepared on PostgreSQL");
}

#[test]
fn the_schema_migrates_once_and_a_second_open_keeps_the_data() {
    let server = PgServer::get();
    let url = server.new_database("migrate");
    let store = Store::open_postgres(&url).expect("migrate");
    store.set_meta("network", "regtest").unwrap();
    drop(store);
    let store = Store::open_postgres(&url).expect("open again");
    assert_eq!(store.meta("network").unwrap().as_deref(), Some("regtest"));
    let db = url.rsplit('/').next().unwrap();
    let version: usize = server.psql(db, "SELECT version FROM sendero_schema").parse().unwrap();
    assert!(version >= 25, "schema version {version}");
    // The audit log refuses changes on PostgreSQL as on SQLite.
    server.psql(
        db,
        "INSERT INTO audit_log (at, actor, action, details, prev_hash, hash) VALUES (1, 'a', 'b', '{}', 'x', 'y')",
    );
    let edit = server.psql_result(db, "UPDATE audit_log SET details = '{\"x\":1}'");
    assert!(edit.as_ref().is_err_and(|e| e.contains("append-only")), "{edit:?}");
    let delete = server.psql_result(db, "DELETE FROM audit_log");
    assert!(delete.as_ref().is_err_and(|e| e.contains("append-only")), "{delete:?}");
    assert_eq!(server.psql(db, "SELECT COUNT(*) FROM audit_log"), "1");
}

#[test]
fn quotes_written_behind_reach_postgres_many_per_insert_each_once() {
    let server = PgServer::get();
    let url = server.new_database("quotes");
    let store = Store::open_postgres(&url).expect("migrate");
    let db = url.rsplit('/').next().unwrap();
    server.psql(
        db,
        "INSERT INTO api_keys (id, label, scopes, secret_sha256, created_at) VALUES ('key', 'k', 'quote', 'x', 1)",
    );
    let quote = |i: u64| sendero::fx::quotes::QuoteRow {
        quote_id: format!("q_{i:04}"),
        api_key_id: "key".into(),
        pair: "BTC/EUR".into(),
        side: if i % 2 == 0 { "buy" } else { "sell" },
        rate: "91234.5678".into(),
        markup_bps: 50,
        amount_minor: 1_000 + i,
        quote_amount_minor: 2_000 + i,
        amount_sat: 3_000 + i,
        expires_at: 1_900_000_000,
        origin: "api",
    };
    // 300 quotes, one of them twice (the first is kept).
    for i in (0..300).chain([7]) {
        store.record_quote(quote(i), 1_800_000_000);
    }
    assert_eq!(store.flush_deferred().unwrap(), 301);
    assert_eq!(
        server.psql(db, "SELECT COUNT(*), SUM(amount_sat) FROM fx_quotes"),
        format!("300|{}", (0..300u64).map(|i| 3_000 + i).sum::<u64>())
    );
    for i in [0, 7, 63, 64, 255, 256, 299] {
        assert_eq!(store.quote(&format!("q_{i:04}")).unwrap(), Some(quote(i)), "quote {i}");
    }
}
