//! Crash safety. A client sends 200 payouts across the rails (on-chain to outside addresses, a
//! tenth of them batched (`onchain_batch`, the queue sent by `batch.trigger` between kills),
//! BIP21 URIs with the peer gateway's address and invoice paid on the recommended rail, `on_us`
//! to the gateway's own invoices) while the
//! gateway is SIGKILLed at random moments — at least 10 times — and restarted each time, and a
//! miner keeps confirming. The client retries each request with its idempotency key until it
//! gets an answer, as a real client would. Afterwards:
//! - every idempotency key that was accepted maps to exactly one payment (a replay returns it);
//! - every payment reached exactly one final state, and exactly once on its rail: the wallet has
//!   one transaction per settled on-chain payout and per batch and no other, one output per
//!   batched payout, the node one succeeded payment per
//!   settled Lightning payout, and the peer received each invoice once;
//! - the ledger sums to zero and agrees with the wallet and the node (`ledger.verify`);
//! - a channel a kill force-closed is reported by health (`degraded`, with the channel and reason)
//!   and, once swept, booked exactly;
//! - every final state produced at least one webhook delivery.
//!
//! The soak is the same with 1,000 payouts and at least 50 kills, run on demand:
//! `cargo test -p sendero --test e2e_crash -- --ignored --nocapture`.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::ln::{open_channel, pair_with, MINUTE};
use common::webhook::{signature_valid, Receiver};
use common::{http_get_with_key, http_post, outside_address_at, wait_for};
use rand::Rng;
use serde_json::{json, Value};

fn post(port: u16, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// What the client got for one payout.
#[derive(Debug, Clone)]
struct Sent {
    idem: String,
    body: Value,
    payment_id: String,
}

/// Routes and submits `destination` on `rail` until accepted, through kills: a lost answer is
/// asked again with the same idempotency key and body; a refusal (the rail briefly unable after
/// a restart) starts over with a new key, since a refused key keeps its refusal.
fn pay(port: u16, key: &str, i: usize, rail: &'static str, destination: &str, sat: u64, deadline: Instant) -> Sent {
    for round in 0.. {
        assert!(Instant::now() < deadline, "payout {i} ({rail}) not accepted in time");
        let route =
            json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination, "priority": "high"});
        let (status, r) = post(port, "/v1/payments/route", key, None, &route);
        // A wallet pays on the recommended rail when it has a choice.
        let rail = if rail == "recommend" { r["recommend"].as_str().unwrap_or_default() } else { rail };
        let offered = r["candidates"].as_array().is_some_and(|c| c.iter().any(|c| c["rail"] == rail));
        if status != 200 || !offered {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let idem = format!("crash-{i}-{round}");
        let body = json!({"route_id": r["route_id"], "rail": rail});
        loop {
            assert!(Instant::now() < deadline, "payout {i} ({rail}) not accepted in time");
            let (status, v) = post(port, "/v1/payments/submit", key, Some(&idem), &body);
            match status {
                202 => {
                    let payment_id = v["payment_id"].as_str().unwrap().to_owned();
                    return Sent { idem, body, payment_id };
                }
                // No answer (killed), in flight, or not ready yet: ask again.
                0 | 409 | 500 | 503 if v["error"]["code"] != "route_already_submitted" => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => break,
            }
        }
    }
    unreachable!()
}

fn payments(port: u16, key: &str) -> Vec<Value> {
    let (mut all, mut cursor) = (Vec::new(), String::new());
    loop {
        let path = format!("/v1/payments?limit=100{cursor}");
        let (status, page) = http_get_with_key(port, &path, Some(key));
        assert_eq!(status, 200, "{page}");
        all.extend(page["payments"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return all,
        }
    }
}

#[test]
fn payouts_survive_sigkill_exactly_once() {
    survive_sigkills(200, 10);
}

#[test]
#[ignore = "the soak, on demand: 1,000 payouts, at least 50 SIGKILLs (a few minutes)"]
fn soak_1000_payouts_survive_50_sigkills_exactly_once() {
    survive_sigkills(1_000, 50);
}

/// `payouts` payouts sent while the gateway is SIGKILLed at least `min_kills` times.
fn survive_sigkills(payouts: usize, min_kills: u32) {
    let p = pair_with(
        "[routing]\nsaga_interval_ms = 100\nlightning_wait_secs = 30\n\n\
         [webhooks]\nbackoff_base_secs = 1\nbackoff_max_secs = 2\nmax_attempts = 100\n",
    );
    open_channel(&p, 1_000_000);
    let (b, chain) = (&p.b, &p.chain);
    let mut a = p.a;
    let key = a.api_key("pay,read");
    let receiver = Receiver::start(200);
    let (status, hook) = post(a.api_port, "/v1/webhooks", &key, None, &json!({"url": receiver.url()}));
    assert_eq!(status, 201, "{hook}");
    let wallet_txs =
        |gw: &common::Gateway| gw.call("wallet.transactions", json!({}))["transactions"].as_array().unwrap().len();
    let txs_before = wallet_txs(&a);

    // The plan: half on-chain (a tenth of all batched), four tenths Lightning, a tenth on_us.
    let plan: Vec<(&'static str, String, u64)> = (0..payouts)
        .map(|i| match i % 10 {
            k @ 0..=3 => ("onchain", outside_address_at((i / 10 * 5 + k) as u32).to_string(), 10_000 + i as u64),
            // A tenth batched: queued, then sent by `batch.trigger` between the kills.
            4 => ("onchain_batch", outside_address_at((i / 10 * 5 + 4) as u32).to_string(), 10_000 + i as u64),
            5..=8 => {
                let inv = b.call(
                    "ln.invoice",
                    json!({"amount_msat": 2_000_000, "description": format!("c{i}"), "expiry_secs": 3600}),
                );
                let addr = b.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
                let uri = format!("bitcoin:{addr}?amount=0.00002&lightning={}", inv["bolt11"].as_str().unwrap());
                ("recommend", uri, 2_000)
            }
            _ => {
                let inv = a.call(
                    "ln.invoice",
                    json!({"amount_msat": 1_000_000, "description": format!("u{i}"), "expiry_secs": 3600}),
                );
                ("on_us", inv["bolt11"].as_str().unwrap().to_owned(), 1_000)
            }
        })
        .collect();
    let addresses: HashSet<&str> = plan.iter().filter(|p| p.0.starts_with("onchain")).map(|p| p.1.as_str()).collect();
    let lightning_settled_before = a.call("ln.payments", json!({}))["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["direction"] == "outbound" && x["kind"] == "bolt11" && x["status"] == "succeeded")
        .count();
    assert_eq!(addresses.len(), payouts / 2, "one address per on-chain payout");

    let started = Instant::now();
    let deadline = started + 10 * MINUTE * (payouts as u32).div_ceil(200);
    let (port, done) = (a.api_port, AtomicBool::new(false));
    let mut kills = 0_u32;
    let sent: Vec<Sent> = std::thread::scope(|s| {
        let client = s.spawn(|| {
            let sent: Vec<Sent> = plan
                .iter()
                .enumerate()
                .map(|(i, (rail, dest, sat))| pay(port, &key, i, rail, dest, *sat, deadline))
                .collect();
            done.store(true, Ordering::SeqCst);
            sent
        });
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                chain.mine(1);
                std::thread::sleep(Duration::from_millis(700));
            }
        });
        let mut rng = rand::thread_rng();
        while (!done.load(Ordering::SeqCst) || kills < min_kills) && Instant::now() < deadline {
            // Long enough apart that the node reconnects its channel between some of the kills.
            std::thread::sleep(Duration::from_millis(rng.gen_range(1_000..4_000)));
            // The queue leaves now and then, so that kills also land in batches (a failed call:
            // nothing queued, or the process is just starting).
            if rng.gen_bool(0.5) {
                let _ = a.try_call("batch.trigger", json!({}));
            }
            a.kill();
            kills += 1;
            a.start_again();
        }
        client.join().unwrap()
    });
    eprintln!("{payouts} payouts accepted in {:.1} s with {kills} SIGKILLs", started.elapsed().as_secs_f64());
    assert!(kills >= min_kills);

    // Everything reaches a final state.
    let mut all;
    // A channel force-closed by a kill resolves its in-flight HTLCs on-chain: allow for it.
    let settle_by = Instant::now() + 8 * MINUTE * (payouts as u32).div_ceil(200);
    loop {
        // Payouts the wallet put on the recommended `onchain_batch` rail leave now, not at their
        // deadline (a failed call: nothing queued).
        let _ = a.try_call("batch.trigger", json!({}));
        chain.mine(1);
        std::thread::sleep(Duration::from_millis(300));
        all = payments(port, &key);
        let open: Vec<&Value> = all.iter().filter(|p| p["status"] != "SETTLED" && p["status"] != "FAILED").collect();
        if open.is_empty() {
            break;
        }
        if Instant::now() > settle_by {
            let log = a.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            panic!(
                "{} payments never became final: {open:#?}\nlog tail:\n{}",
                open.len(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    let mut by_state: HashMap<(String, String), usize> = HashMap::new();
    for p in &all {
        let status = match p["failure"]["code"].as_str() {
            Some(code) => format!("FAILED {code}"),
            None => p["status"].as_str().unwrap().into(),
        };
        *by_state.entry((p["rail"].as_str().unwrap().into(), status)).or_default() += 1;
    }
    eprintln!("payments by rail and status: {by_state:?}");
    let log = a.log();
    for l in log.lines().filter(|l| {
        [
            "fee bumped",
            "pays for a stuck",
            "family",
            "broadcast_rejected",
            "not broadcast now",
            "given up",
            "left for now",
            "built again",
        ]
        .iter()
        .any(|w| l.contains(w))
    }) {
        eprintln!("  {l}");
    }
    let lost = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    eprintln!(
        "Lightning payouts a kill lost inside the node: {} sent again, {} abandoned",
        lost("lost in a crash before it left the node"),
        lost("lost in a crash cannot be sent again")
    );
    // An on-chain payout should not fail around a kill. One refused at its first broadcast for a
    // coin the wallet still counted but bitcoind had spent (1 run in 20 before, right after fee
    // bumps) is now built again from other coins ("built again", printed above). Any that still
    // fails is printed with its log lines; nothing is paid twice either way (checked below).
    let onchain_failed: Vec<&Value> = all
        .iter()
        .filter(|p| p["rail"].as_str().is_some_and(|r| r.starts_with("onchain")) && p["status"] == "FAILED")
        .collect();
    for p in &onchain_failed {
        let id = p["payment_id"].as_str().unwrap();
        eprintln!("on-chain payout failed: {p}");
        log.lines().filter(|l| l.contains(id)).for_each(|l| eprintln!("  {l}"));
    }

    // One payment per accepted key, and the key answers with it again.
    assert_eq!(all.len(), payouts, "exactly one payment per payout");
    let ids: HashSet<&str> = sent.iter().map(|s| s.payment_id.as_str()).collect();
    assert_eq!(ids.len(), payouts);
    assert_eq!(ids, all.iter().map(|p| p["payment_id"].as_str().unwrap()).collect::<HashSet<_>>());
    for s in &sent {
        let (status, v) = loop {
            let (status, v) = post(port, "/v1/payments/submit", &key, Some(&s.idem), &s.body);
            if status != 429 {
                break (status, v);
            }
            // Replays faster than the key's rate limit: wait as long as the gateway says.
            std::thread::sleep(Duration::from_secs(v["error"]["retry_after_sec"].as_u64().unwrap_or(1)));
        };
        assert_eq!((status, v["payment_id"].as_str()), (202, Some(s.payment_id.as_str())), "replay of {}", s.idem);
    }
    let db = common::books(&a.datadir);
    let per_key: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM (SELECT idem_key FROM payments GROUP BY api_key_id, idem_key HAVING COUNT(*) > 1) AS repeated",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(per_key, 0);

    // Exactly one final event per payment.
    let finals: Vec<(String, i64)> = db
        .prepare("SELECT payment_id, COUNT(*) FROM outbox WHERE event_type IN ('payment.settled', 'payment.failed') GROUP BY payment_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(finals.len(), payouts);
    assert!(finals.iter().all(|(_, n)| *n == 1), "{finals:?}");

    // Exactly once on each rail.
    let settled = |rail: &str| all.iter().filter(|p| p["rail"] == rail && p["status"] == "SETTLED").collect::<Vec<_>>();
    let onchain = settled("onchain");
    let txids: HashSet<&str> = onchain.iter().map(|p| p["txid"].as_str().unwrap()).collect();
    assert_eq!(txids.len(), onchain.len());
    let wallet: Vec<Value> = a.call("wallet.transactions", json!({}))["transactions"].as_array().unwrap().clone();
    let in_wallet: HashSet<&str> = wallet.iter().map(|t| t["txid"].as_str().unwrap()).collect();
    assert!(txids.iter().all(|t| in_wallet.contains(t)));
    // Payouts the wallet put on the recommended `onchain_batch` rail: one output each, in batches
    // the wallet has.
    let batched = settled("onchain_batch");
    let outputs: HashSet<(&str, u64)> =
        batched.iter().map(|p| (p["txid"].as_str().unwrap(), p["vout"].as_u64().unwrap())).collect();
    assert_eq!(outputs.len(), batched.len(), "one output per batched payout");
    let batch_txids: HashSet<&str> = outputs.iter().map(|(txid, _)| *txid).collect();
    assert!(batch_txids.iter().all(|t| in_wallet.contains(t)));
    // Children that paid for a stuck payout (CPFP) are the treasury's own, booked as fees.
    let children: Vec<String> = db
        .prepare("SELECT txid FROM fee_children")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let children = children.iter().filter(|t| in_wallet.contains(t.as_str())).count();
    assert_eq!(
        wallet_txs(&a) - txs_before,
        onchain.len() + batch_txids.len() + children,
        "one wallet transaction per settled on-chain payout, per batch and per child paying for one, no other"
    );
    let lightning = settled("lightning");
    common::ln::wait_ln_running(&a);
    let node: Vec<Value> = a.call("ln.payments", json!({}))["payments"].as_array().unwrap().clone();
    let node_sent = node
        .iter()
        .filter(|x| x["direction"] == "outbound" && x["kind"] == "bolt11" && x["status"] == "succeeded")
        .count();
    assert_eq!(node_sent - lightning_settled_before, lightning.len(), "one node payment per settled Lightning payout");
    let b_received: Vec<Value> = b.call("ln.payments", json!({}))["payments"].as_array().unwrap().clone();
    for p in &lightning {
        let n =
            b_received.iter().filter(|x| x["payment_hash"] == p["payment_hash"] && x["status"] == "succeeded").count();
        assert_eq!(n, 1, "B received {} once", p["payment_hash"]);
    }

    // The ledger balances and agrees with the wallet and the node.
    let v = a.call("ledger.verify", json!({}));
    eprintln!("ledger.verify: {v}");
    assert_eq!(v["ok"], true, "{v:#}");

    // A channel a kill force-closed (ldk-node's stale ChannelManager, rust-lightning #4286) is
    // never hidden: health is degraded with the channel and its reason, and the ledger follows
    // the funds until swept, then is exact.
    let closed: Vec<String> = db
        .prepare("SELECT channel_id FROM ln_channels WHERE state = 'closed' AND close_requested_at IS NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (code, health) = a.get("/v1/health");
    eprintln!("channels closed by the kills: {closed:?}; health {code}: {}", health["alarms"]);
    assert_eq!(code, 200);
    if closed.is_empty() {
        assert_eq!(health["status"], "ok", "{health}");
    } else {
        assert_eq!(health["status"], "degraded", "{health}");
        for c in &closed {
            let alarm = health["alarms"].as_array().unwrap().iter().find(|x| x["channel_id"] == c.as_str()).cloned();
            assert!(alarm.is_some_and(|x| x["reason"].as_str().is_some_and(|r| !r.is_empty())), "{c}: {health}");
        }
        let mut mined = 0;
        loop {
            let v = a.call("ledger.verify", json!({}));
            assert_eq!(v["ok"], true, "while the closed channel is swept: {v:#}");
            if v["lightning"]["status"] == "settled" {
                assert_eq!(v["lightning"]["difference_msat"], 0, "{v:#}");
                eprintln!("swept after {mined} blocks; ledger.verify: {}", v["lightning"]);
                break;
            }
            assert!(mined < 600, "not swept after {mined} blocks: {v:#}");
            chain.mine(6);
            mined += 6;
            std::thread::sleep(Duration::from_millis(1_500));
        }
    }

    // Every final state was delivered at least once.
    wait_for("a delivered final event for every payment", 2 * MINUTE, || {
        let delivered: HashSet<String> = receiver
            .hooks()
            .iter()
            .filter(|h| h.answered < 300)
            .filter_map(|h| serde_json::from_str::<Value>(&h.body).ok())
            .filter(|v| v["type"] == "payment.settled" || v["type"] == "payment.failed")
            .filter_map(|v| v["data"]["payment_id"].as_str().map(str::to_owned))
            .collect();
        ids.iter().all(|id| delivered.contains(*id))
    });
    let hooks = receiver.hooks();
    let secret = hook["secret"].as_str().unwrap();
    assert!(hooks.iter().all(|h| signature_valid(secret, h)), "every delivery is signed with the endpoint's secret");
    let distinct: HashSet<&str> = hooks.iter().map(|h| h.headers["webhook-id"].as_str()).collect();
    eprintln!(
        "webhooks: {} requests for {} distinct events; {:.1} s in all",
        hooks.len(),
        distinct.len(),
        started.elapsed().as_secs_f64()
    );
}
