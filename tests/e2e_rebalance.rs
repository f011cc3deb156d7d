//! The rebalancer on two real gateways over one regtest bitcoind (A rebalances, B does not):
//! A's channel drained by payouts to B below the band is spliced into from A's treasury by the
//! loop, and once B has paid a lot back (A's outbound above the band) spliced out to A's
//! treasury, each within a cycle of its confirmation, with the ledger exact; a spent budget and
//! a feerate above the ceiling stop it unless the forecast says the channel runs dry first, and
//! `rebalance.preview` says why; a dry run records and moves nothing; a SIGKILL right after
//! the node was asked for a splice leaves exactly one splice on the chain after the restart.

mod common;

use std::time::Duration;

use common::ln::{
    account, capacity, channel, open_channel, pair_each, pay_a, pay_b, settled_exact, wait_ln_running, Pair, MINUTE,
};
use common::{http_post, wait_for, Gateway};
use serde_json::{json, Value};

/// A's policy: small reserves, generous fee caps, the loop every `interval` seconds; the forecast
/// is the largest hour of Lightning payouts of the last day.
fn policy(interval: u64, budget_sat: u64) -> String {
    format!(
        "[treasury]\nonchain_reserve_sat = 100000\nlightning_reserve_sat = 0\nchannel_reserve_sat = 10000\n\
         min_splice_sat = 50000\nmax_fee_sat = 100000\nmax_fee_ppm = 100000\nfee_budget_sat = {budget_sat}\n\
         backoff_secs = 1\nrebalance_interval_secs = {interval}\ndry_run = false\n\
         forecast_hours = 1\nforecast_days = 1\nforecast_percentile = 100\n"
    )
}

/// One payment: at most what the node lets one HTLC carry on these channels.
const CHUNK_MSAT: u64 = 20_000_000;

const NO_REBALANCER: &str = "[treasury]\nrebalance_interval_secs = 0\n";

/// A's channel: (outbound, inbound) sat and its outbound share in basis points.
fn share(gw: &Gateway) -> (u64, u64, u64) {
    let c = channel(gw).unwrap();
    let (out, inb) = (c["outbound_msat"].as_u64().unwrap(), c["inbound_msat"].as_u64().unwrap());
    (out / 1_000, inb / 1_000, out * 10_000 / (out + inb).max(1))
}

/// The rebalancer's splices made (dry runs left out).
fn history(gw: &Gateway) -> Vec<Value> {
    let all = gw.call("rebalance.history", json!({}))["splices"].as_array().unwrap().clone();
    all.into_iter().filter(|s| s["dry_run"] == false).collect()
}

fn preview_line(gw: &Gateway) -> Value {
    let plan = gw.call("rebalance.preview", json!({}));
    eprintln!("preview: {plan}");
    plan["channels"][0].clone()
}

/// A 1,000,000 sat channel from A, then 400,000 sat paid to B (20 payments): about 60 % A's, inside the band.
fn channel_in_band(p: &Pair) -> String {
    let id = open_channel(p, 1_000_000);
    for _ in 0..20 {
        pay_b(p, CHUNK_MSAT);
    }
    let (_, _, bp) = share(&p.a);
    assert!((2_500..=7_500).contains(&bp), "inside the band: {bp} bp, {:?}", channel(&p.a));
    id
}

/// A pays B in 20,000 sat payouts until A's outbound share is below 25 %.
fn drain_below_band(p: &Pair) {
    while share(&p.a).2 >= 2_500 {
        pay_b(p, CHUNK_MSAT);
    }
    eprintln!("A drained: {:?}", share(&p.a));
}

/// Prices a BOLT11 invoice for its amount and submits it on Lightning; returns the payment id.
fn submit_lightning(gw: &Gateway, key: &str, idem: &str, invoice: &str) -> String {
    let body = json!({"amount": {"minor_units": CHUNK_MSAT / 1_000, "currency": "SAT"}, "destination": invoice,
                      "direction": "payout", "priority": "high"});
    let (status, text) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{text}");
    let route: Value = serde_json::from_str(&text).unwrap();
    let body = json!({"route_id": route["route_id"], "rail": "lightning"}).to_string();
    let (status, text) = http_post(gw.api_port, "/v1/payments/submit", key, Some(idem), &body);
    assert_eq!(status, 202, "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["payment_id"].as_str().unwrap().to_owned()
}

/// Rewrites each `(from, to)` in A's config; restarts A; returns once its channel is usable again.
fn reconfigure(p: &mut Pair, changes: &[(&str, &str)]) {
    let config = p.a.datadir.join("senderod.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    for (from, to) in changes {
        assert!(text.contains(from), "{text}");
        text = text.replace(from, to);
    }
    std::fs::write(&config, text).unwrap();
    p.a.restart();
    wait_ln_running(&p.a);
    wait_for("A's channel usable again", MINUTE, || channel(&p.a).is_some_and(|c| c["usable"] == true));
}

/// Mines until the splice in flight is the channel's funding on both sides, at `want` capacity.
fn confirm_splice(p: &Pair, want: impl Fn(u64) -> bool) {
    wait_for("the splice tx in the mempool", MINUTE, || p.chain.mempool().len() == 1);
    p.chain.mine(6);
    wait_for("the spliced capacity on both sides", MINUTE, || want(capacity(&p.a)) && want(capacity(&p.b)));
    wait_for("both sides usable", MINUTE, || channel(&p.a).is_some_and(|c| c["usable"] == true));
}

#[test]
fn the_loop_splices_a_drained_channel_in_and_an_overfull_one_out() {
    let mut p = pair_each(&policy(0, 1_000_000), NO_REBALANCER);
    channel_in_band(&p);
    settled_exact(&p.a, "A after the open");
    // The loop on, every 2 s.
    reconfigure(&mut p, &[("rebalance_interval_secs = 0\n", "rebalance_interval_secs = 2\n")]);
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    assert_eq!(preview_line(a)["action"], "in_band");
    std::thread::sleep(Duration::from_secs(3));
    assert!(history(a).is_empty(), "nothing to do inside the band");

    // Drained below the band: the loop splices in from the treasury (through the node's wallet,
    // which the treasury funds first), back to the band's middle.
    drain_below_band(&p);
    let before = capacity(a);
    wait_for("the rebalancer to fund its splice-in", MINUTE, || chain.mempool().len() == 1);
    // The row leaves `planned` once the node has taken the splice (a moment after the funding is
    // broadcast).
    wait_for("the splice-in started", MINUTE, || history(a)[0]["state"] == "started");
    let splice = history(a)[0].clone();
    assert_eq!((splice["kind"].as_str(), splice["code"].as_str()), (Some("in"), Some("below_band")), "{splice}");
    let amount = splice["amount_sat"].as_u64().unwrap();
    chain.mine(1);
    confirm_splice(&p, |c| c == before + amount);
    wait_for("A's share back to the band's middle", MINUTE, || (4_500..=5_500).contains(&share(a).2));
    let (out, inb, bp) = share(a);
    eprintln!("A after the splice-in of {amount} sat: outbound {out}, inbound {inb}, {bp} bp");
    wait_for("the splice-in confirmed in the history", MINUTE, || history(a)[0]["state"] == "confirmed");
    settled_exact(a, "A after the rebalancer's splice-in");
    assert!(account(a, "fees:lightning_onchain") > 0, "the splice's fee is the treasury's cost");

    // B pays a lot back: A's outbound above the band, the loop splices out to A's treasury.
    // Paying stops once the loop has started that splice: while it is pending the node counts
    // A's outbound net of the amount leaving, so the share alone would read low again and more
    // payments would leave the channel above the band after the splice (a second splice-out).
    let treasury_before = account(a, "treasury:onchain");
    let before = capacity(a);
    while history(a).len() < 2 && share(a).2 <= 7_500 {
        pay_a(&p, CHUNK_MSAT);
    }
    eprintln!("A over-full (its splice-out perhaps started): {:?}", share(a));
    wait_for("the rebalancer's splice-out", MINUTE, || chain.mempool().len() == 1);
    let out_splice = history(a)[1].clone();
    assert_eq!((out_splice["kind"].as_str(), out_splice["code"].as_str()), (Some("out"), Some("above_band")));
    let amount = out_splice["amount_sat"].as_u64().unwrap();
    confirm_splice(&p, |c| c < before - amount + 1 && c > before - amount - 10_000);
    // The channel's balances follow its new capacity a moment later.
    wait_for("A's share back towards the middle", MINUTE, || (4_500..=6_250).contains(&share(a).2));
    let (out, inb, bp) = share(a);
    eprintln!("A after the splice-out of {amount} sat: outbound {out}, inbound {inb}, {bp} bp; {out_splice}");
    wait_for("the splice-out confirmed", MINUTE, || history(a)[1]["state"] == "confirmed");
    settled_exact(a, "A after the rebalancer's splice-out");
    settled_exact(b, "B after both splices");
    assert_eq!(account(a, "treasury:onchain") - treasury_before, amount as i64 * 1_000, "to the treasury, exactly");

    // Two splices, each one INFO line; the healthy loop wrote no WARN or ERROR of its own.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(history(a).len(), 2, "{:#?}", history(a));
    let log = a.log();
    assert_eq!(log.lines().filter(|l| l.contains("rebalance: splicing")).count(), 2);
    // (The treasury guard's one `treasury.low`, while A started unfunded under its reserve, is
    // not the loop's.)
    let loop_line =
        |l: &&str| l.contains("sendero::liquidity::rebalancer") || l.contains("sendero::liquidity::splices");
    let noisy = |l: &&str| loop_line(l) && (l.contains("WARN") || l.contains("ERROR"));
    assert_eq!(log.lines().filter(noisy).count(), 0, "{log}");
    let h = a.call("rebalance.history", json!({}));
    assert_eq!(h["spliced_in_sat"], history(a)[0]["amount_sat"]);
    assert_eq!(h["spliced_out_sat"], amount);
    assert!(h["booked_fees_msat"].as_i64().unwrap() > 0, "{h:#}");
    let cli = common::cli_json(&a.datadir, &["rebalance.history"]);
    assert_eq!(cli["splices"].as_array().unwrap().len(), 2);
}

#[test]
fn budget_and_feerate_stop_it_and_a_kill_mid_splice_leaves_one_splice() {
    let mut p = pair_each(&policy(0, 1), NO_REBALANCER);
    channel_in_band(&p);
    drain_below_band(&p);

    // The budget is spent: nothing moves, and the preview says why.
    let line = preview_line(&p.a);
    assert_eq!(line["action"], "budget_spent", "{line}");
    assert!(line["reason"].as_str().unwrap().contains("below the band"), "{line}");
    let ran = p.a.call("rebalance.run", json!({}));
    assert_eq!(ran["channels"][0]["action"], "budget_spent", "{ran}");
    assert!(p.chain.mempool().is_empty() && history(&p.a).is_empty());
    let audit = p.a.call("audit.list", json!({}))["entries"].clone();
    assert!(audit.as_array().unwrap().iter().any(|e| e["action"] == "rebalance.run"), "{audit}");

    // Above the feerate ceiling (20,000 sat/kvB by default), it waits for cheaper blocks.
    p.a.call("fees.set", json!({"sat_per_vb": 50}));
    let line = preview_line(&p.a);
    assert_eq!(line["action"], "feerate_above_ceiling", "{line}");

    // Unless the channel would run dry first: 60,000 sat of Lightning payouts in the last hour
    // (API payouts, from the payments table) forecast as much for the next; the outbound above
    // its reserve lasts less than the 6 h fees are expected to take. Then the budget stops it.
    let key = p.a.api_key("pay,read");
    for i in 0..3 {
        let inv = p.b.call("ln.invoice", json!({"amount_msat": CHUNK_MSAT, "description": "x", "expiry_secs": 600}));
        let id = submit_lightning(&p.a, &key, &format!("payout-{i}"), inv["bolt11"].as_str().unwrap());
        common::settled(&p.a, &key, &id);
    }
    let plan = p.a.call("rebalance.preview", json!({}));
    assert_eq!(plan["forecast_need_sat"], 60_000, "{plan}");
    let line = &plan["channels"][0];
    assert!(line["runway_secs"].as_u64().unwrap() < 6 * 3_600, "{line}");
    assert_eq!(line["action"], "budget_spent", "past the feerate ceiling: {line}");
    p.a.call("fees.clear", json!({}));

    // Budget restored, in dry run: the splice is decided and recorded, nothing moves.
    reconfigure(
        &mut p,
        &[("fee_budget_sat = 1\n", "fee_budget_sat = 1000000\n"), ("dry_run = false", "dry_run = true")],
    );
    let ran = p.a.call("rebalance.run", json!({}));
    assert_eq!((ran["dry_run"].as_bool(), ran["channels"][0]["action"].as_str()), (Some(true), Some("splice_in")));
    let dry = p.a.call("rebalance.history", json!({}))["splices"].as_array().unwrap().clone();
    assert_eq!((dry.len(), dry[0]["dry_run"].as_bool(), dry[0]["state"].as_str()), (1, Some(true), Some("planned")));
    assert_eq!(preview_line(&p.a)["action"], "splice_in", "a dry run is never in flight");
    std::thread::sleep(Duration::from_secs(1));
    assert!(p.chain.mempool().is_empty(), "a dry run moves nothing");

    // For real; the process dies right after asking for the splice.
    let before = capacity(&p.a);
    let txs_before = p.a.call("wallet.transactions", json!({}))["transactions"].as_array().unwrap().len();
    p.a.env = vec![("SENDERO_FAILPOINT".into(), "rebalance.splice_started".into())];
    reconfigure(&mut p, &[("dry_run = true", "dry_run = false")]);
    assert!(p.a.try_call("rebalance.run", json!({})).is_err(), "the process died mid-call");
    p.a.wait_exit();
    assert!(p.a.log().contains("failpoint reached: aborting"));
    p.a.env.clear();
    p.a.start_again();
    wait_ln_running(&p.a);
    wait_for("A's channel usable again", MINUTE, || channel(&p.a).is_some_and(|c| c["usable"] == true));

    // The treasury's funding for it left once; the splice is found in flight, never made twice.
    assert_eq!(p.chain.mempool().len(), 1, "the treasury's funding of the splice");
    let planned = history(&p.a);
    assert_eq!(planned.len(), 1, "{planned:#?}");
    assert_eq!(planned[0]["state"], "planned", "the crash came before its state was written");
    assert_eq!(preview_line(&p.a)["action"], "in_flight");
    let ran = p.a.call("rebalance.run", json!({}));
    assert_eq!(ran["channels"][0]["action"], "in_flight", "{ran}");
    assert_eq!(p.chain.mempool().len(), 1);

    let amount = planned[0]["amount_sat"].as_u64().unwrap();
    p.chain.mine(1);
    confirm_splice(&p, |c| c == before + amount);
    let ran = p.a.call("rebalance.run", json!({}));
    assert_eq!(ran["channels"][0]["action"], "in_band", "{ran}");
    let done = history(&p.a);
    assert_eq!(done.len(), 1, "exactly one splice: {done:#?}");
    assert_eq!(done[0]["state"], "confirmed", "{done:#?}");
    assert!(p.chain.mempool().is_empty(), "no second splice");
    assert_eq!(capacity(&p.a), before + amount, "one splice's worth, once");
    let txs_after = p.a.call("wallet.transactions", json!({}))["transactions"].as_array().unwrap().len();
    assert_eq!(txs_after, txs_before + 1, "the treasury funded the node once");
    settled_exact(&p.a, "A after the crash and its one splice");
}
