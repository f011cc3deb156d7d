//! `cargo bench -p sendero --bench lightning`: how long a Lightning payout takes through the
//! gateway, against the same payment made by a bare ldk-node over the same channel, in one run.
//! A regtest bitcoind, a real senderod gateway A (started as the end-to-end tests start it, with
//! its default config) and a plain ldk-node B (no Sendero code in it), with a 1,000,000 sat channel
//! from A to B of which 400,000 sat are pushed to B. Rounds alternate, so that a busy neighbour on
//! the machine hits both alike:
//! - gateway: A pays invoices of B, 1,000 sat each, one after another through the API.
//!   `POST /v1/payments/route` prices it (not timed); then the clock runs from
//!   `POST /v1/payments/submit` until `GET /v1/payments/{id}` answers `SETTLED` (polled every
//!   millisecond on the same keep-alive connection), and until the `payment.settled` webhook
//!   reaches a receiver in this process;
//! - raw: B pays invoices of A (made with the admin `ln.invoice`), 1,000 sat each, timed from
//!   ldk-node's `bolt11_payment().send` until B's `PaymentSuccessful` event.
//!
//! Prints p50 / p99 / mean of each, the ratio gateway / raw (aim ≤ 1.2) overall and per round,
//! senderod's own share of a payout read from its log (submit → accepted, the node's
//! `PaymentSuccessful` → `SETTLED`), and peak RSS of senderod and of this process (which runs B). `LN_BENCH_PAYMENTS` (payments per
//! path and round, default 50) and `LN_BENCH_ROUNDS` (default 3) size it; after 5 payments each
//! way to warm up.

#[path = "../../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;
#[path = "support/ldk_peer.rs"]
mod ldk_peer;
mod support;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{AdminMode, Chain, Gateway};
use ldk_peer::{env_count, forward_events, ms, open_channel, percentile, start_b, Hooks};
use sendero::devchain::free_port;
use sendero_lightning::ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use sendero_lightning::ldk_node::{Event, Node};
use serde_json::{json, Value};
use support::{rss_kb, KeepAlive};

const MINUTE: Duration = Duration::from_secs(60);
const AMOUNT_SAT: u64 = 1_000;
const WARMUP: usize = 5;

fn main() {
    // Throughput is measured here, not the per-key rate limit: the gateways run without one.
    common::without_rate_limit();
    let per_round = env_count("LN_BENCH_PAYMENTS", 50);
    let rounds = env_count("LN_BENCH_ROUNDS", 3);
    let chain = Chain::start();
    let home = tempfile::tempdir().expect("tempdir");
    let a = Gateway::start_with(&chain, &home.path().join("a"), AdminMode::Socket, "human", "");
    let b_port = free_port().expect("port");
    let b = start_b(&chain, &home.path().join("b"), b_port);
    let b_events = forward_events(Arc::clone(&b));
    open_channel(&chain, &a, &b, b_port);
    let key = a.api_key("pay,read");
    let hooks = Hooks::start("payment.settled", "payment_id");
    let mut api = KeepAlive::connect(a.api_port);
    let (status, endpoint) = api.request_json("POST", "/v1/webhooks", &key, None, &hooks.subscription());
    assert_eq!(status, 201, "{endpoint}");

    let mut bench = Bench { api, key, a: &a, b: &b, b_events, hooks, paid: 0, payouts: Vec::new() };
    for _ in 0..WARMUP {
        bench.gateway_payout();
        bench.raw_payment();
    }
    let (mut settled, mut hooked, mut raw, mut per_round_ratio) = (vec![], vec![], vec![], vec![]);
    let (mut measured, mut raw_send) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = bench.payouts.len();
        let (s, h): (Vec<_>, Vec<_>) = (0..per_round).map(|_| bench.gateway_payout()).unzip();
        measured.extend(bench.payouts.drain(start..));
        let (r, send): (Vec<_>, Vec<_>) = (0..per_round).map(|_| bench.raw_payment()).unzip();
        raw_send.extend(send);
        per_round_ratio.push(format!("{:.2}", ms(percentile(&s, 0.5)) / ms(percentile(&r, 0.5))));
        settled.extend(s);
        hooked.extend(h);
        raw.extend(r);
    }

    println!(
        "\nLightning payments of {AMOUNT_SAT} sat over one channel, one at a time: {rounds} alternating rounds of \
         {per_round} per path (after {WARMUP} each to warm up)"
    );
    println!("{:<62} {:>8} {:>8} {:>8} {:>6}", "path", "p50 ms", "p99 ms", "mean ms", "n");
    let share = shares(&a.log(), &measured);
    for (name, took) in [
        ("raw ldk-node: B send -> B PaymentSuccessful", &raw),
        ("  of which B's bolt11_payment().send call", &raw_send),
        ("gateway: POST submit -> GET shows SETTLED", &settled),
        ("gateway: POST submit -> payment.settled webhook received", &hooked),
        ("  senderod log: POST submit -> payment accepted", &share.accepted),
        ("  senderod log: accepted -> sent (incl. ldk-node's send call)", &share.sent),
        ("  senderod log: node's PaymentSuccessful -> SETTLED", &share.settled),
    ] {
        let mean = took.iter().sum::<Duration>() / took.len().max(1) as u32;
        println!(
            "{name:<62} {:>8.1} {:>8.1} {:>8.1} {:>6}",
            ms(percentile(took, 0.5)),
            ms(percentile(took, 0.99)),
            ms(mean),
            took.len()
        );
    }
    println!(
        "\nratio gateway (SETTLED) / raw: p50 {:.2}, p99 {:.2} (aim <= 1.2); p50 per round {}",
        ms(percentile(&settled, 0.5)) / ms(percentile(&raw, 0.5)),
        ms(percentile(&settled, 0.99)) / ms(percentile(&raw, 0.99)),
        per_round_ratio.join(" ")
    );
    println!(
        "peak RSS (VmHWM): senderod A {} kB, this process (runs B) {} kB",
        a.pid().map_or(0, |p| rss_kb(&p.to_string())),
        rss_kb("self")
    );
    b.stop().expect("stop B");
}

/// What every payment needs.
struct Bench<'a> {
    api: KeepAlive,
    key: String,
    a: &'a Gateway,
    b: &'a Node,
    b_events: Receiver<(Event, Instant)>,
    hooks: Hooks,
    paid: usize,
    /// Each payout made through the API: payment id, payment hash, when its submit was sent.
    payouts: Vec<(String, String, SystemTime)>,
}

impl Bench<'_> {
    /// A pays an invoice of B through the API: (submit → SETTLED, submit → webhook received).
    fn gateway_payout(&mut self) -> (Duration, Duration) {
        let description = Bolt11InvoiceDescription::Direct(Description::new("bench".into()).expect("description"));
        let invoice = self.b.bolt11_payment().receive(AMOUNT_SAT * 1_000, &description, 3_600).expect("B invoices");
        let body = json!({"amount": {"minor_units": AMOUNT_SAT, "currency": "SAT"}, "destination": invoice.to_string(),
                          "priority": "high"});
        let (status, route) = self.api.request_json("POST", "/v1/payments/route", &self.key, None, &body);
        assert_eq!(status, 200, "{route}");
        let body = json!({"route_id": route["route_id"], "rail": "lightning"});
        self.paid += 1;
        let idem = format!("bench-{}", self.paid);
        let (started, wall) = (Instant::now(), SystemTime::now());
        let (status, accepted) = self.api.request_json("POST", "/v1/payments/submit", &self.key, Some(&idem), &body);
        assert_eq!(status, 202, "{accepted}");
        let hash = invoice.payment_hash().to_string();
        self.payouts.push((accepted["payment_id"].as_str().unwrap_or_default().to_owned(), hash, wall));
        let path = format!("/v1/payments/{}", accepted["payment_id"].as_str().unwrap_or_default());
        loop {
            let (_, payment) = self.api.request_json("GET", &path, &self.key, None, &Value::Null);
            match payment["status"].as_str() {
                Some("SETTLED") => break,
                Some("FAILED") => panic!("the payout failed: {payment}\n{}", self.a.log()),
                _ => assert!(started.elapsed() < MINUTE, "not settled after a minute: {payment}"),
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let settled = started.elapsed();
        let hooked = self.hooks.wait(accepted["payment_id"].as_str().unwrap_or_default()) - started;
        (settled, hooked)
    }

    /// B pays an invoice of A with ldk-node itself: (send → B's `PaymentSuccessful`, the send
    /// call alone).
    fn raw_payment(&mut self) -> (Duration, Duration) {
        let params = json!({"amount_msat": AMOUNT_SAT * 1_000, "description": "raw", "expiry_secs": 3_600});
        let invoice = self.a.call("ln.invoice", params)["bolt11"].as_str().unwrap_or_default().to_owned();
        let invoice = Bolt11Invoice::from_str(&invoice).expect("A's invoice");
        let started = Instant::now();
        let id = self.b.bolt11_payment().send(&invoice, None).expect("B pays");
        let send = started.elapsed();
        loop {
            let (event, at) = self.b_events.recv_timeout(MINUTE).expect("B's payment event");
            match event {
                Event::PaymentSuccessful { payment_id: Some(p), .. } if p == id => return (at - started, send),
                Event::PaymentFailed { payment_id: Some(p), reason, .. } if p == id => {
                    panic!("B's payment failed: {reason:?}")
                }
                _ => {}
            }
        }
    }
}

/// senderod's share of each payout, from the timestamps of its log lines.
fn shares(log: &str, payouts: &[(String, String, SystemTime)]) -> Shares {
    let mut at = HashMap::new();
    for line in log.lines() {
        let Some((Ok(time), rest)) = line.split_once(' ').map(|(t, r)| (chrono::DateTime::parse_from_rfc3339(t), r))
        else {
            continue;
        };
        let what = ["payment submitted", "state=\"sent\"", "lightning payment sent", "payment settled"]
            .into_iter()
            .find(|m| rest.contains(m));
        let id = rest.split_whitespace().find_map(|w| w.strip_prefix("payment_id="));
        if let (Some(what), Some(id)) = (what, id) {
            at.insert((what, id.to_owned()), SystemTime::from(time));
        }
    }
    // Zero when the later line came first (the saga saw the node's record before its event).
    let between =
        |from: Option<&SystemTime>, to: Option<&SystemTime>| Some(to?.duration_since(*from?).unwrap_or_default());
    let mut shares = Shares::default();
    for (id, hash, submitted) in payouts {
        let line = |what: &'static str, id: &str| at.get(&(what, id.to_owned()));
        shares.accepted.extend(between(Some(submitted), line("payment submitted", id)));
        shares.sent.extend(between(line("payment submitted", id), line("state=\"sent\"", id)));
        shares.settled.extend(between(line("lightning payment sent", hash), line("payment settled", id)));
    }
    shares
}

/// senderod's own share of its payouts, each from its log.
#[derive(Default)]
struct Shares {
    /// POST submit sent → `payment submitted` (accepted: stored debited, the saga woken).
    accepted: Vec<Duration>,
    /// `payment submitted` → the `sent` step recorded (the saga's wake, ldk-node's send call, a commit).
    sent: Vec<Duration>,
    /// The node's `PaymentSuccessful` → `payment settled` (recorded, the saga woken, settled).
    settled: Vec<Duration>,
}
