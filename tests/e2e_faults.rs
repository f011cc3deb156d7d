//! Faults survived, on real processes (a regtest bitcoind, real `senderod` gateways): bitcoind
//! hanging then stopped for 60 s under a steady payout load on both rails, and the data
//! directory's disk full. (The Lightning peer offline is `e2e_payments`'
//! `payouts_settle_on_every_rail_exactly_once`: 503 `channel_not_usable` on route and submit,
//! the same submit accepted and settled once the peer is back.)

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ln::{open_channel, pair_with, MINUTE};
use common::{http_post, outside_address, payment, wait_for, AdminMode, Chain, Gateway};
use serde_json::{json, Value};

fn post(gw_port: u16, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value, Duration) {
    let t = Instant::now();
    let (status, text) = http_post(gw_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), t.elapsed())
}

fn route_body(sat: u64, destination: &str) -> Value {
    json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination, "priority": "high"})
}

/// One request of the load: when it was sent (since the load began), what it was, the answer.
#[derive(Debug, Clone)]
struct Answer {
    at: Duration,
    what: &'static str,
    status: u16,
    code: String,
    took: Duration,
    body: Value,
}

/// The load client: every ~0.5 s an on-chain payout (route, then submit; while the route is
/// refused, a submit of the route made before the outage) and a Lightning payout to one of B's
/// invoices. Records every answer and the payment ids accepted.
struct Load {
    port: u16,
    key: String,
    spare_route: String,
    invoices: Vec<String>,
    answers: Arc<Mutex<Vec<Answer>>>,
    accepted: Arc<Mutex<Vec<(&'static str, String)>>>,
}

impl Load {
    fn run(self, stop: Arc<AtomicBool>, started: Instant) {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let tick = Instant::now();
            self.onchain(n, started);
            if let Some(invoice) = self.invoices.get(n) {
                self.lightning(n, invoice, started);
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(500).saturating_sub(tick.elapsed()));
        }
    }

    fn record(&self, started: Instant, what: &'static str, (status, body, took): &(u16, Value, Duration)) {
        let code = body["error"]["code"].as_str().unwrap_or_default().to_owned();
        let at = started.elapsed().saturating_sub(*took);
        self.answers.lock().unwrap().push(Answer { at, what, status: *status, code, took: *took, body: body.clone() });
    }

    fn submit(&self, started: Instant, what: &'static str, route_id: &str, rail: &'static str, idem: &str) {
        let answer =
            post(self.port, "/v1/payments/submit", &self.key, Some(idem), &json!({"route_id": route_id, "rail": rail}));
        self.record(started, what, &answer);
        if answer.0 == 202 {
            self.accepted.lock().unwrap().push((rail, answer.1["payment_id"].as_str().unwrap().to_owned()));
        }
    }

    fn onchain(&self, n: usize, started: Instant) {
        let address = outside_address(10 + (n % 200) as u8).to_string();
        let answer = post(self.port, "/v1/payments/route", &self.key, None, &route_body(20_000 + n as u64, &address));
        self.record(started, "onchain_route", &answer);
        if answer.0 == 200 {
            let id = answer.1["route_id"].as_str().unwrap().to_owned();
            self.submit(started, "onchain_submit", &id, "onchain", &format!("oc-{n}"));
        } else {
            // The route priced before the outage: its submit is refused too, and tries nothing.
            self.submit(started, "onchain_spare_submit", &self.spare_route, "onchain", &format!("spare-{n}"));
        }
    }

    fn lightning(&self, n: usize, invoice: &str, started: Instant) {
        let answer = post(self.port, "/v1/payments/route", &self.key, None, &route_body(1_000, invoice));
        self.record(started, "ln_route", &answer);
        if answer.0 == 200 {
            let id = answer.1["route_id"].as_str().unwrap().to_owned();
            self.submit(started, "ln_submit", &id, "lightning", &format!("ln-{n}"));
        }
    }
}

fn pause(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill").args([signal, &pid.to_string()]).status().unwrap().success();
    assert!(ok, "kill {signal} {pid}");
}

/// Counts of (what, status, code) among `answers`, for the report.
fn tally(answers: &[Answer]) -> std::collections::BTreeMap<String, usize> {
    let mut t = std::collections::BTreeMap::new();
    for a in answers {
        *t.entry(format!("{} {} {}", a.what, a.status, a.code)).or_default() += 1;
    }
    t
}

/// Checks what the gateway answered while bitcoind was known to be away (`during`): on-chain
/// routes and submits refused at once with 503 `bitcoind_unavailable` (Retry-After, both on-chain
/// rails listed unavailable), Lightning payouts accepted.
fn check_outage_answers(during: &[&Answer]) {
    let onchain: Vec<_> = during.iter().filter(|a| a.what.starts_with("onchain")).collect();
    assert!(onchain.len() >= 20, "{} on-chain requests in the outage", onchain.len());
    for a in &onchain {
        assert_eq!((a.status, a.code.as_str()), (503, "bitcoind_unavailable"), "{a:?}");
        assert_eq!(a.body["error"]["retry_after_sec"], 5, "{a:?}");
        assert!(a.took < Duration::from_secs(2), "the breaker answers at once: {a:?}");
        if a.what == "onchain_route" {
            let rails: Vec<&str> = a.body["error"]["unavailable"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["rail"].as_str().unwrap())
                .collect();
            assert_eq!(rails, ["onchain", "onchain_batch"], "{a:?}");
            assert!(a.body["error"]["unavailable"]
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["code"] == "bitcoind_unavailable" && u["retryable"] == true));
        }
    }
    let ln_ok = during.iter().filter(|a| a.what == "ln_submit" && a.status == 202).count();
    assert!(ln_ok >= 20, "Lightning keeps serving while bitcoind is away: {ln_ok} payouts accepted");
}

#[test]
fn bitcoind_outage_under_payout_load_keeps_lightning_serving_and_loses_nothing() {
    let t0 = Instant::now();
    let p = pair_with("[routing]\nlightning_wait_secs = 20\nsaga_interval_ms = 200\n");
    open_channel(&p, 1_000_000);
    let key = p.a.api_key("pay,read");
    let invoices: Vec<String> = (0..200)
        .map(|i| {
            let inv = p.b.call(
                "ln.invoice",
                json!({"amount_msat": 1_000_000, "description": format!("load {i}"), "expiry_secs": 3600}),
            );
            inv["bolt11"].as_str().unwrap().to_owned()
        })
        .collect();
    let (status, spare, _) =
        post(p.a.api_port, "/v1/payments/route", &key, None, &route_body(30_000, &outside_address(9).to_string()));
    assert_eq!(status, 200, "{spare}");
    eprintln!("setup: {:?}", t0.elapsed());

    let (answers, accepted) = (Arc::new(Mutex::new(vec![])), Arc::new(Mutex::new(vec![])));
    let spare_route = spare["route_id"].as_str().unwrap().to_owned();
    let load = Load {
        port: p.a.api_port,
        key: key.clone(),
        spare_route: spare_route.clone(),
        invoices,
        answers: Arc::clone(&answers),
        accepted: Arc::clone(&accepted),
    };
    let (stop, started) = (Arc::new(AtomicBool::new(false)), Instant::now());
    let client = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || load.run(stop, started))
    };
    // A block in the middle keeps the treasury's chain of unconfirmed payouts short.
    std::thread::sleep(Duration::from_secs(2));
    p.chain.mine(1);
    std::thread::sleep(Duration::from_secs(2));
    let before_outage: Vec<(&str, String)> = accepted.lock().unwrap().clone();
    let unconfirmed = before_outage
        .iter()
        .filter(|(rail, id)| *rail == "onchain" && payment(&p.a, &key, id)["status"] != "SETTLED")
        .count();
    assert!(unconfirmed > 0, "on-chain payouts still open when bitcoind goes: {before_outage:?}");
    eprintln!("accepted before the outage: {} ({unconfirmed} on-chain not settled)", before_outage.len());

    // bitcoind hangs (SIGSTOP) for 30 s, then is stopped for 30 s, then starts again on the same
    // datadir and ports (a new RPC cookie).
    let outage_start = started.elapsed();
    let (rpc_port, p2p_port) =
        (p.chain.node.rpc_url().rsplit(':').next().unwrap().parse().unwrap(), p.chain.node.p2p_port());
    let datadir = p.chain.node.datadir().to_path_buf();
    let common::ln::Pair { chain, a, b, .. } = p;
    let Chain { mut node, dir } = chain;
    let pid = node.pid().unwrap();
    pause(pid, "-STOP");
    wait_for("A's health to report bitcoind down", MINUTE, || a.get("/v1/health").0 == 503);
    let breaker_open = started.elapsed();
    eprintln!("bitcoind hung at {outage_start:?}; breaker open at {breaker_open:?}");
    std::thread::sleep(Duration::from_secs(30).saturating_sub(breaker_open - outage_start));
    let resumed = started.elapsed();
    pause(pid, "-CONT");
    node.stop();
    let stopped = started.elapsed();
    eprintln!("bitcoind resumed at {resumed:?}, stopped at {stopped:?}");
    std::thread::sleep(Duration::from_secs(30));
    let outage_end = started.elapsed();
    let node = sendero::devchain::Bitcoind::start_on(&common::bitcoind_exe(), &datadir, rpc_port, p2p_port).unwrap();
    let chain = Chain { node, dir };
    eprintln!("bitcoind back at {outage_end:?}");
    wait_for("A's health to recover", MINUTE, || a.get("/v1/health").0 == 200);
    wait_for("an on-chain payout accepted again", MINUTE, || {
        answers.lock().unwrap().iter().any(|x| x.at > outage_end && x.what == "onchain_submit" && x.status == 202)
    });
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();

    let answers = answers.lock().unwrap().clone();
    eprintln!("{} requests: {:#?}", answers.len(), tally(&answers));
    let slowest = answers.iter().max_by_key(|x| x.took).unwrap();
    eprintln!("slowest answer: {:?} {} {} at {:?}", slowest.took, slowest.what, slowest.status, slowest.at);
    // Every request answered (0 is no answer within the client's 30 s), none a server error.
    assert!(
        answers.iter().all(|x| x.status != 0 && x.status != 500 && x.took < Duration::from_secs(30)),
        "{:#?}",
        answers.iter().filter(|x| x.status == 0 || x.status == 500).collect::<Vec<_>>()
    );
    // Known away: hung (breaker open) until SIGCONT; stopped, once the follower's next poll (at
    // most 10 s apart) has failed, until it starts again. Between the two it answers a moment.
    let away = |x: &&Answer| {
        let (from, to) = (x.at, x.at + x.took);
        (from > breaker_open && to < resumed) || (from > stopped + Duration::from_secs(11) && to < outage_end)
    };
    let during: Vec<&Answer> = answers.iter().filter(away).collect();
    eprintln!(
        "{} requests while bitcoind was known away: {:#?}",
        during.len(),
        tally(&during.iter().map(|x| (*x).clone()).collect::<Vec<_>>())
    );
    check_outage_answers(&during);

    // The spare route, refused while bitcoind was away, goes through now — unless a load request
    // already got it through in a moment bitcoind answered (between SIGCONT and its stop, or as
    // it came back): then it is refused as spent, and paid once. Every accepted payout ends once.
    let (status, e, _) = post(
        a.api_port,
        "/v1/payments/submit",
        &key,
        Some("spare-after"),
        &json!({"route_id": spare_route, "rail": "onchain"}),
    );
    let mut accepted = accepted.lock().unwrap().clone();
    match answers.iter().find(|x| x.what == "onchain_spare_submit" && x.status == 202) {
        Some(taken) => {
            eprintln!("the spare route went through at {:?}, while bitcoind answered", taken.at);
            assert_eq!((status, e["error"]["code"].as_str()), (409, Some("route_already_submitted")), "{e}");
        }
        None => {
            assert_eq!(status, 202, "{e}");
            accepted.push(("onchain", e["payment_id"].as_str().unwrap().to_owned()));
        }
    }
    let failed = settle_all(&chain, &a, &key, &accepted);
    let v = a.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "ledger.verify: {v:#}");
    let onchain = accepted.iter().filter(|(r, _)| *r == "onchain").count();
    let ln = accepted.len() - onchain;
    assert_eq!(v["onchain"]["payouts"]["match"], onchain, "{v}");
    assert_eq!(v["lightning"]["payouts"]["match"], ln, "{v}");
    eprintln!("accepted {onchain} on-chain and {ln} Lightning payouts, each final once ({failed} Lightning failed and credited back); total {:?}", t0.elapsed());
    drop(b);
}

/// Mines until every accepted payout is final: on chain SETTLED; over Lightning SETTLED or (a
/// payment caught by a node's restart) FAILED and credited back — each with exactly one final
/// event. Returns how many Lightning payouts failed.
fn settle_all(chain: &Chain, a: &Gateway, key: &str, accepted: &[(&str, String)]) -> usize {
    let deadline = Instant::now() + 2 * MINUTE;
    let is_final = |rail: &str, p: &Value| p["status"] == "SETTLED" || (rail == "lightning" && p["status"] == "FAILED");
    loop {
        let open: Vec<Value> = accepted
            .iter()
            .map(|(r, id)| (r, payment(a, key, id)))
            .filter(|(r, p)| !is_final(r, p))
            .map(|(_, p)| p)
            .collect();
        if open.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "not final: {open:#?}");
        assert!(open.iter().all(|p| p["status"] != "FAILED"), "{open:#?}");
        chain.mine(1);
        std::thread::sleep(Duration::from_millis(500));
    }
    let mut failed = 0;
    for (_, id) in accepted {
        let p = a.call("payment.get", json!({"payment_id": id}));
        let ends: Vec<&Value> = p["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "payment.settled" || e["type"] == "payment.failed")
            .collect();
        assert_eq!(ends.len(), 1, "{p}");
        failed += usize::from(ends[0]["type"] == "payment.failed");
    }
    failed
}

/// A tmpfs of `size` mounted at `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "mount tmpfs (root needed): {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the disk is full (ENOSPC); returns the bytes written.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 4096];
    let mut written = 0;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = f.sync_all();
    written
}

/// A route then an on-chain submit (`n` makes each new), and an invoice: their answers.
/// One route, one submit and one invoice. When the route finds no room, the submit takes one of
/// `spares` (routes priced before the disk filled), so that submits meet the full disk too; a
/// spare the full disk refused is kept for the next round.
fn write_attempt(gw: &Gateway, key: &str, n: u64, spares: &mut Vec<String>) -> Vec<(&'static str, u16, Value)> {
    let mut answers = vec![];
    let route =
        post(gw.api_port, "/v1/payments/route", key, None, &route_body(10_000 + n, &outside_address(3).to_string()));
    answers.push(("route", route.0, route.1.clone()));
    let (route_id, spare) = match route.0 {
        200 => (route.1["route_id"].as_str().unwrap().to_owned(), false),
        _ => match spares.pop() {
            Some(spare) => (spare, true),
            None => (format!("rt_missing_{n}"), false),
        },
    };
    let submit = post(
        gw.api_port,
        "/v1/payments/submit",
        key,
        Some(&format!("full-{n}")),
        &json!({"route_id": route_id, "rail": "onchain"}),
    );
    if spare && submit.0 == 507 {
        spares.push(route_id);
    }
    answers.push(("submit", submit.0, submit.1));
    let body = json!({"amount": {"minor_units": 5_000 + n, "currency": "SAT"}, "description": "disk full"});
    let invoice = post(gw.api_port, "/v1/invoices", key, Some(&format!("inv-{n}")), &body);
    answers.push(("invoice", invoice.0, invoice.1));
    answers
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

#[test]
fn a_full_disk_answers_storage_full_corrupts_nothing_and_clears_when_space_is_freed() {
    // The writes below come as fast as the gateway answers, until each kind has met the full
    // disk: the per-key rate limit (tested in e2e_authz) is not what this test is about.
    common::without_rate_limit();
    let t0 = Instant::now();
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("gw");
    let tmpfs = Tmpfs::mount(&dir, "24m");
    // The log is on the full disk too (senderod.log in the data directory): lines that cannot be
    // written are dropped, and nothing else stops.
    // Routes last the test's length: the spares priced before the disk fills are still good.
    let mut gw = Gateway::start_with(&chain, &dir, AdminMode::Socket, "human", "[routing]\nroute_ttl_secs = 3600\n");
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == 101);
    let key = gw.api_key("pay,read,invoice");
    let first = write_attempt(&gw, &key, 0, &mut vec![]);
    let mut spares: Vec<String> = (0..200)
        .map(|i| {
            let body = route_body(30_000 + i, &outside_address(4).to_string());
            let (status, route, _) = post(gw.api_port, "/v1/payments/route", &key, None, &body);
            assert_eq!(status, 200, "{route}");
            route["route_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(first.iter().map(|(_, s, _)| *s).collect::<Vec<_>>(), [200, 202, 201], "{first:?}");

    // The disk fills up: every write answers either as usual or 507 storage_full (with
    // Retry-After), never a 500; the gateway stays up and its health answers.
    let junk = dir.join("junk");
    let filled = fill(&junk);
    eprintln!("filled {filled} bytes; setup {:?}", t0.elapsed());
    let (mut full, mut n) = (std::collections::BTreeMap::<&str, usize>::new(), 1);
    let mut accepted = vec![first[1].2["payment_id"].as_str().unwrap().to_owned()];
    // Whether a small write finds no room depends on where SQLite's WAL stands: as many rounds as it takes.
    while full.len() < 3 && n < 2_000 {
        for (what, status, body) in write_attempt(&gw, &key, n, &mut spares) {
            if what == "submit" && status == 202 {
                accepted.push(body["payment_id"].as_str().unwrap().to_owned());
            }
            assert!(
                [200, 201, 202, 507].contains(&status) || (what == "submit" && status == 404),
                "{what} {status} {body} (senderod answering: {})",
                gw.try_call("getinfo", json!({})).is_ok()
            );
            if status == 507 {
                assert_eq!(
                    (body["error"]["code"].as_str(), body["error"]["retry_after_sec"].as_u64()),
                    (Some("storage_full"), Some(30)),
                    "{body}"
                );
                *full.entry(what).or_default() += 1;
            }
        }
        n += 1;
        fill(&dir.join(format!("junk-{n}"))); // whatever SQLite freed meanwhile
    }
    eprintln!("after {n} rounds, 507 storage_full: {full:?}");
    assert_eq!(full.len(), 3, "route, submit and invoice each refused: {full:?}");
    assert_eq!(gw.get("/v1/health").0, 200, "{:?}", gw.get("/v1/health"));
    assert!(gw.try_call("getinfo", json!({})).is_ok());

    // A block arrives: the Lightning node must write its channel manager and cannot. ldk-node's
    // background processing dies of it ("Failed to process events"); the gateway says so and
    // stops the node to start it again (it used to keep the dead node, and abort on SIGTERM).
    let lightning = || gw.call("getinfo", json!({}))["lightning"].clone();
    assert_eq!((lightning()["state"].as_str(), lightning()["restarts"].as_u64()), (Some("running"), Some(0)));
    chain.mine(1);
    wait_for("the lightning node's failure counted", MINUTE, || {
        fill(&dir.join("junk-block"));
        lightning()["restarts"].as_u64() >= Some(1)
    });
    let failure = lightning()["last_failure"].as_str().unwrap_or_default().to_owned();
    assert!(failure.starts_with("Failed to process events"), "{:#}", lightning());
    eprintln!("lightning node failed on the full disk: {failure}");

    // Space is freed: the same requests go through again, and the payout settles.
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().starts_with("junk") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    // The node starts again from what it persisted, and answers as before.
    wait_for("the lightning node running again", MINUTE, || lightning()["state"] == "running");
    assert!(lightning()["restarts"].as_u64() >= Some(1), "{:#}", lightning());
    let again = write_attempt(&gw, &key, 1_000, &mut vec![]);
    assert_eq!(again.iter().map(|(_, s, _)| *s).collect::<Vec<_>>(), [200, 202, 201], "{again:?}");
    accepted.push(again[1].2["payment_id"].as_str().unwrap().to_owned());
    // Every payout accepted before and while the disk was full is paid, once.
    // A block whenever some are in the mempool: those accepted on the full disk may be broadcast
    // a moment after the others.
    wait_for("the payouts settled", MINUTE, || {
        let settled = accepted.iter().all(|id| payment(&gw, &key, id)["status"] == "SETTLED");
        if !settled && !chain.mempool().is_empty() {
            chain.mine(1);
        }
        settled
    });
    eprintln!("{} payouts accepted and settled", accepted.len());
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
    gw.stop(); // exits 0: the dead node's stop no longer aborts the process
    for db in ["sendero.sqlite", "wallet.sqlite"] {
        assert_eq!(integrity(&dir.join(db)), "ok", "{db}");
    }
    eprintln!("disk full test: {:?}", t0.elapsed());
    drop(tmpfs);
}
