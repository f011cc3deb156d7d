//! The `onchain_batch` rail through the public API on a real regtest bitcoind: 50 payouts priced
//! and submitted by a wallet app leave in ONE transaction (50 payee outputs and a change), each
//! settles with its own output and a fee share, the shares sum exactly to the transaction's fee
//! (read from the chain itself), each payout's `payment.settled` webhook carries the batch txid,
//! and the ledger proves every sat. Then SIGKILL-equivalent aborts after a batch is signed and
//! stored but before its broadcast, and after its broadcast before it is recorded: after the
//! restart every payout is paid exactly once, on the chain.

mod common;

use std::time::Duration;

use common::webhook::{signature_valid, Receiver};
use common::{http_post, outside_address, payment, settled, wait_for, AdminMode, Chain, Gateway};
use sendero_wallet::bitcoin::{Address, Transaction};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);

fn post(gw: &Gateway, path: &str, key: &str, idem: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Routes `sat` to `address` at `priority` and submits it on `onchain_batch`; the payment.
fn pay_batched(gw: &Gateway, key: &str, address: &str, sat: u64, priority: &str) -> Value {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": address, "priority": priority});
    let (status, route) = post(gw, "/v1/payments/route", key, None, &body);
    assert_eq!(status, 200, "{route}");
    let idem = format!("batch-{address}");
    let (status, p) = post(
        gw,
        "/v1/payments/submit",
        key,
        Some(&idem),
        &json!({"route_id": route["route_id"], "rail": "onchain_batch"}),
    );
    assert_eq!(status, 202, "{p}");
    p
}

fn funded(chain: &Chain, dir: &std::path::Path) -> Gateway {
    funded_with(chain, dir, "")
}

fn funded_with(chain: &Chain, dir: &std::path::Path, extra: &str) -> Gateway {
    let gw = Gateway::start_with(chain, dir, AdminMode::Socket, "human", extra);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    gw
}

#[test]
fn fifty_payouts_leave_in_one_transaction_and_each_settles_with_its_share() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = funded(&chain, &home.path().join("gw"));
    let key = gw.api_key("pay,read");
    let receiver = Receiver::start(200);
    let (status, hook) = post(&gw, "/v1/webhooks", &key, None, &json!({"url": receiver.url()}));
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();

    // A low-priority payout alone in an empty queue: a batch costs it what a transaction of its
    // own would (it carries the overhead alone).
    let priced = |destination: &str| {
        let body = json!({"amount": {"minor_units": 10_000, "currency": "SAT"}, "destination": destination, "priority": "low"});
        let (_, route) = post(&gw, "/v1/payments/route", &key, None, &body);
        let candidate = |rail: &str| {
            let c = route["candidates"].as_array().unwrap().iter().find(|c| c["rail"] == rail).cloned();
            c.unwrap_or_else(|| panic!("no {rail} in {route:#}"))
        };
        let cost = |rail: &str| candidate(rail)["cost_sat"].as_u64().unwrap();
        (cost("onchain_batch"), cost("onchain"), route["recommend"].clone(), candidate("onchain"))
    };
    let (batch, single, _, onchain) = priced(&outside_address(200).to_string());
    // The single quote is the signed transaction's vsize, which comes out a vbyte short of the
    // weight the batch quote sizes for when its signature is a byte shorter: up to a vbyte's fee.
    let vbyte = onchain["fee_rate_sat_kvb"].as_u64().unwrap().div_ceil(1_000);
    assert!(batch <= single + vbyte, "alone: {batch} vs {single} ({onchain})");

    let addresses: Vec<String> = (0..50u8).map(|i| outside_address(100 + i).to_string()).collect();
    let payments: Vec<Value> =
        addresses.iter().enumerate().map(|(i, a)| pay_batched(&gw, &key, a, 10_000 + i as u64, "low")).collect();
    // With 50 waiting, a batched output costs well under half a transaction of its own.
    let (batch, single, recommend, _) = priced(&outside_address(201).to_string());
    assert!(batch * 2 < single, "queued: {batch} vs {single}");
    assert_eq!(recommend, "onchain_batch");
    let ids: Vec<String> = payments.iter().map(|p| p["payment_id"].as_str().unwrap().to_owned()).collect();
    // Queued: debited, nothing broadcast (a low payout may wait for hours).
    std::thread::sleep(Duration::from_secs(3));
    assert!(chain.mempool().is_empty(), "nothing leaves before the batch");
    assert_eq!(gw.call("batch.list", json!({}))["queued"].as_array().unwrap().len(), 50);
    assert_eq!(payment(&gw, &key, &ids[0])["status"], "SUBMITTED");

    let left = gw.cli(&["batch.trigger"]);
    assert_eq!(left["payouts"], 50, "{left}");
    let txid = left["txid"].as_str().unwrap().to_owned();
    assert_eq!(chain.mempool(), vec![txid.clone()], "one transaction");
    let t = chain.tx(&txid);
    assert_eq!(t.output.len(), 51, "50 payees and a change output");
    let chain_fee = chain.fee(&t);
    assert_eq!(left["fee_sat"], chain_fee);

    let height = chain.height();
    chain.mine(1);
    let mut shares = 0;
    for (i, id) in ids.iter().enumerate() {
        let mut p = Value::Null;
        wait_for(&format!("payout {i} settled"), MINUTE, || {
            p = payment(&gw, &key, id);
            p["status"] == "SETTLED"
        });
        assert_eq!(p["txid"], txid.as_str());
        let vout = p["vout"].as_u64().unwrap() as usize;
        assert_eq!(t.output[vout].value.to_sat(), 10_000 + i as u64, "its own output pays its amount");
        assert_eq!(
            t.output[vout].script_pubkey,
            addresses[i].parse::<Address<_>>().unwrap().assume_checked().script_pubkey()
        );
        shares += p["fee_paid_sat"].as_u64().unwrap();
    }
    assert_eq!(shares, chain_fee, "the fee shares sum to the transaction's fee");
    let paid = chain.paid_after(height);
    assert!(addresses.iter().all(|a| paid.get(a) == Some(&1)), "each payee paid once");

    let batch = gw.call("batch.get", json!({"batch_id": left["batch_id"]}));
    assert_eq!(batch["state"], "confirmed");
    assert_eq!(batch["fee_shares_sum_sat"], chain_fee);
    wait_for("50 settled webhooks", MINUTE, || {
        ids.iter().all(|id| !receiver.delivered("payment.settled", id).is_empty())
    });
    for id in &ids {
        let hook = &receiver.delivered("payment.settled", id)[0];
        assert!(signature_valid(&secret, hook));
        let body: Value = serde_json::from_str(&hook.body).unwrap();
        assert_eq!(body["data"]["txid"], txid.as_str(), "{body}");
    }
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(v["onchain"]["payouts"]["match"], 50, "{v:#}");
}

/// Aborts at `failpoint` while a batch of 10 leaves, restarts, and checks each payee was paid
/// exactly once on the chain and the ledger agrees.
fn crash_at(failpoint: &str, seed: u8) {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = funded(&chain, &home.path().join("gw"));
    let key = gw.api_key("pay,read");
    let addresses: Vec<String> = (0..10u8).map(|i| outside_address(seed + i).to_string()).collect();
    let ids: Vec<String> = addresses
        .iter()
        .map(|a| pay_batched(&gw, &key, a, 20_000, "normal")["payment_id"].as_str().unwrap().to_owned())
        .collect();
    gw.env = vec![("SENDERO_FAILPOINT".into(), failpoint.into())];
    gw.restart();
    assert!(gw.try_call("batch.trigger", json!({})).is_err(), "the process aborts inside the call");
    gw.wait_exit();
    assert!(gw.log().contains("failpoint reached: aborting"), "{}", gw.log());
    // Stored and not sent, or sent and not recorded: the chain tells which.
    let expected_in_mempool = usize::from(failpoint == "batch.broadcast");
    assert_eq!(chain.mempool().len(), expected_in_mempool, "{failpoint}");
    gw.env.clear();
    gw.start_again();
    let height = chain.height();
    wait_for("the stored batch in the mempool", MINUTE, || chain.mempool().len() == 1);
    chain.mine(1);
    for id in &ids {
        wait_for(&format!("{id} settled after the crash"), MINUTE, || payment(&gw, &key, id)["status"] == "SETTLED");
    }
    let paid = chain.paid_after(height);
    assert!(addresses.iter().all(|a| paid.get(a) == Some(&1)), "{failpoint}: each payee paid exactly once: {paid:?}");
    assert_eq!(gw.call("batch.list", json!({}))["batches"].as_array().unwrap().len(), 1, "one batch, never a second");
    std::thread::sleep(Duration::from_secs(3));
    assert!(chain.mempool().is_empty(), "nothing sent again");
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{failpoint}: {v:#}");
}

#[test]
fn a_batch_killed_after_signing_is_broadcast_as_stored_after_the_restart() {
    crash_at("batch.signed", 1);
}

#[test]
fn a_batch_killed_after_its_broadcast_is_recorded_once_after_the_restart() {
    crash_at("batch.broadcast", 40);
}

/// Queues `n` normal payouts of 30,000 sat and sends them as one batch; their ids, addresses and
/// the batch as `batch.trigger` answered.
fn one_batch(gw: &Gateway, key: &str, n: u8, seed: u8) -> (Vec<String>, Vec<String>, Value) {
    let addresses: Vec<String> = (0..n).map(|i| outside_address(seed + i).to_string()).collect();
    let ids = addresses
        .iter()
        .map(|a| pay_batched(gw, key, a, 30_000, "normal")["payment_id"].as_str().unwrap().to_owned())
        .collect();
    let left = gw.call("batch.trigger", json!({}));
    (ids, addresses, left)
}

/// A single payout signed and stored before a crash, whose broadcast is then retried later (as
/// after a failed attempt), keeps its coins: a payout submitted meanwhile spends another coin,
/// and the stored one still leaves as stored. (Before, coin selection took the stored payout's
/// coin, and it failed with `broadcast_rejected`: `bad-txns-inputs-missingorspent`.)
#[test]
fn a_payout_signed_before_a_crash_keeps_its_coins_while_its_broadcast_waits() {
    signed_first(2);
}

/// The same with the stored payout's coin the only one: the next payout does not fail for want
/// of funds, it waits for the stored one's broadcast and spends its change.
#[test]
fn a_payout_short_only_of_coins_a_stored_payout_holds_waits_for_its_change() {
    signed_first(1);
}

/// A gateway on `chain` with `coins` mature coins whose 40,000-sat `normal` payout to `to` was
/// signed and stored, then the process aborted before its broadcast (failpoint `onchain.signed`),
/// and started again with that broadcast postponed `secs` (as after a failed attempt): the
/// gateway, an API key, the payout's id and its stored transaction.
fn stored_single(
    chain: &Chain,
    dir: &std::path::Path,
    coins: u32,
    to: &str,
    secs: u64,
) -> (Gateway, String, String, Transaction) {
    let mut gw = Gateway::start_with(chain, dir, AdminMode::Socket, "human", "");
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    // A coinbase can be spent in the block 100 after its own: at height 99 + n, n of them.
    chain.mine_to(99 + coins, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let key = gw.api_key("pay,read");
    gw.env = vec![("SENDERO_FAILPOINT".into(), "onchain.signed".into())];
    gw.restart();
    let id = common::route_and_submit(&gw, &key, (to, 40_000, "normal"), "onchain", &format!("stored-{to}"));
    gw.wait_exit();
    assert!(chain.mempool().is_empty(), "stored, not broadcast");
    common::postpone_sending(&gw, &id, secs);
    let db = common::books(&gw.datadir);
    let raw: Vec<u8> = db
        .query_row("SELECT raw_tx FROM payments WHERE payment_id = ?1", sendero::store::sql::params![id], |r| r.get(0))
        .unwrap();
    drop(db);
    let stored: Transaction = sendero_wallet::bitcoin::consensus::deserialize(&raw).unwrap();
    gw.env.clear();
    gw.start_again();
    (gw, key, id, stored)
}

/// A payout stored and not broadcast before a crash, its broadcast postponed; another submitted
/// meanwhile, with `coins` mature coins in the treasury.
fn signed_first(coins: u32) {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let (first_to, second_to) = (outside_address(90).to_string(), outside_address(91).to_string());
    let (gw, key, first, stored) = stored_single(&chain, &home.path().join("gw"), coins, &first_to, 20);

    let second = common::route_and_submit(&gw, &key, (&second_to, 50_000, "normal"), "onchain", "signed-second");
    let txid = |id: &str| payment(&gw, &key, id)["txid"].as_str().map(str::to_owned);
    wait_for("the second payout in the mempool", MINUTE, || {
        txid(&second).is_some_and(|t| chain.mempool().contains(&t))
    });
    let second_tx = chain.tx(&txid(&second).unwrap());
    let spent = |tx: &Transaction| tx.input.iter().map(|i| i.previous_output).collect::<Vec<_>>();
    assert!(spent(&second_tx).iter().all(|o| !spent(&stored).contains(o)), "the second spends another coin");
    if coins == 1 {
        assert!(spent(&second_tx).iter().any(|o| o.txid == stored.compute_txid()), "the second spends its change");
    }
    wait_for("the stored payout in the mempool", MINUTE, || {
        chain.mempool().contains(&stored.compute_txid().to_string())
    });
    let height = chain.height();
    chain.mine(1);
    for id in [&first, &second] {
        wait_for(&format!("{id} settled"), MINUTE, || payment(&gw, &key, id)["status"] == "SETTLED");
    }
    assert_eq!(txid(&first), Some(stored.compute_txid().to_string()), "the first left as stored");
    let paid = chain.paid_after(height);
    assert_eq!((paid.get(&first_to), paid.get(&second_to)), (Some(&1), Some(&1)), "{paid:?}");
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

/// A batch does not wait for a single payout whose stored transaction's broadcast is postponed
/// (as after a failed attempt): `batch.trigger` sends it at once, from other coins than the
/// stored payout's, and the stored payout still leaves as stored. (Before, the batcher refused to
/// build while any single payout was `sending`, and `batch.trigger` answered that nothing was due.)
#[test]
fn a_batch_leaves_while_a_stored_single_payout_waits_for_its_broadcast() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let single_to = outside_address(95).to_string();
    let (gw, key, single, stored) = stored_single(&chain, &home.path().join("gw"), 3, &single_to, 30);

    let (ids, addresses, left) = one_batch(&gw, &key, 3, 96);
    assert_eq!(left["payouts"], 3, "the batch left at once: {left:#}");
    let batch_txid = left["txid"].as_str().unwrap().to_owned();
    assert!(chain.mempool().contains(&batch_txid));
    assert!(!chain.mempool().contains(&stored.compute_txid().to_string()), "the single payout still waits");
    let spent = |tx: &Transaction| tx.input.iter().map(|i| i.previous_output).collect::<Vec<_>>();
    let batch_tx = chain.tx(&batch_txid);
    assert!(spent(&batch_tx).iter().all(|o| !spent(&stored).contains(o)), "the batch spends other coins");
    wait_for("the stored payout in the mempool", MINUTE, || {
        chain.mempool().contains(&stored.compute_txid().to_string())
    });
    let height = chain.height();
    chain.mine(1);
    for id in &ids {
        assert_eq!(settled(&gw, &key, id)["txid"], batch_txid.as_str());
    }
    assert_eq!(settled(&gw, &key, &single)["txid"], stored.compute_txid().to_string(), "left as stored");
    let paid = chain.paid_after(height);
    assert!(addresses.iter().chain([&single_to]).all(|a| paid.get(a) == Some(&1)), "each paid once: {paid:?}");
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

#[test]
fn a_stuck_batch_is_replaced_with_every_output_and_the_first_is_recorded_replaced() {
    stuck(None, 60);
}

#[test]
fn a_replacement_killed_before_its_broadcast_is_sent_as_stored_after_the_restart() {
    stuck(Some("batch.bumped"), 70);
}

/// A batch miners leave out while fees rise is replaced (with an abort at `failpoint` between
/// storing the replacement and broadcasting it, then a restart, when given).
fn stuck(failpoint: Option<&str>, seed: u8) {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = funded_with(&chain, &home.path().join("gw"), "[batching]\nnormal_bump_after_blocks = 2\n");
    let key = gw.api_key("pay,read");
    let (ids, addresses, left) = one_batch(&gw, &key, 5, seed);
    let first = left["txid"].as_str().unwrap().to_owned();
    let original = chain.tx(&first);
    // Miners leave it out (as if its feerate were far below the market's), and fees rise.
    common::call_bitcoind(&chain.rpc(), "prioritisetransaction", &[json!(first), json!(0), json!(-100_000_000)]);
    if let Some(failpoint) = failpoint {
        gw.env = vec![("SENDERO_FAILPOINT".into(), failpoint.into())];
        gw.restart();
    }
    gw.call("fees.set", json!({"sat_per_vb": 20}));
    let height = chain.height();
    chain.mine(2);
    if failpoint.is_some() {
        gw.wait_exit();
        assert!(gw.log().contains("failpoint reached: aborting"));
        assert_eq!(chain.mempool(), vec![first.clone()], "the replacement was stored, not sent");
        gw.env.clear();
        gw.start_again();
        gw.call("fees.set", json!({"sat_per_vb": 20}));
    }
    let mut batch = Value::Null;
    wait_for("the batch replaced", MINUTE, || {
        batch = gw.call("batch.get", json!({"batch_id": left["batch_id"]}));
        batch["txid"] != first.as_str()
    });
    let second = batch["txid"].as_str().unwrap().to_owned();
    assert_eq!(batch["replaced"][0]["txid"], first.as_str(), "{batch:#}");
    // Asked at the next block's 20 sat/vB, priced on the original's size: a hair more when a
    // shorter signature made the replacement a vbyte smaller.
    let kvb = batch["feerate_sat_kvb"].as_u64().unwrap();
    assert!((20_000..20_200).contains(&kvb), "{batch:#}");
    wait_for("the replacement in the mempool", MINUTE, || chain.mempool() == vec![second.clone()]);
    let replacement = chain.tx(&second);
    for a in &addresses {
        let script = a.parse::<Address<_>>().unwrap().assume_checked().script_pubkey();
        let paid = |t: &Transaction| {
            t.output.iter().filter(|o| o.script_pubkey == script && o.value.to_sat() == 30_000).count()
        };
        assert_eq!((paid(&original), paid(&replacement)), (1, 1), "every output is in the replacement");
    }
    let paid_fee = chain.fee(&replacement);
    assert!(paid_fee > chain.fee(&original), "the replacement pays more");
    assert_eq!(kvb, (paid_fee * 1_000 / replacement.vsize() as u64).max(20_000), "the feerate it pays on the chain");
    chain.mine(1);
    settle_once(&gw, &key, &chain, (&ids, &addresses), (&second, paid_fee), height);
}

/// Each of `ids` settles with `txid` (confirmed after `height`), their shares summing to `fee`,
/// each of `addresses` paid once on the chain, and the ledger verifies.
fn settle_once(
    gw: &Gateway,
    key: &str,
    chain: &Chain,
    (ids, addresses): (&[String], &[String]),
    (txid, fee): (&str, u64),
    height: u32,
) {
    let mut shares = 0;
    for id in ids {
        let p = settled(gw, key, id);
        assert_eq!(p["txid"], txid);
        shares += p["fee_paid_sat"].as_u64().unwrap();
    }
    assert_eq!(shares, fee, "the ledger ends with the fee of the transaction that confirmed");
    let paid = chain.paid_after(height);
    assert!(addresses.iter().all(|a| paid.get(a) == Some(&1)), "each payee paid once: {paid:?}");
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

#[test]
fn a_confirmed_batch_reorged_out_goes_back_to_broadcast_not_to_the_queue() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = funded_with(&chain, &home.path().join("gw"), "[routing]\nonchain_confirmations = 2\n");
    let key = gw.api_key("pay,read");
    let (ids, addresses, left) = one_batch(&gw, &key, 4, 80);
    let txid = left["txid"].as_str().unwrap().to_owned();
    let height = chain.height();
    chain.mine(1);
    wait_for("the wallet at the block", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let tip = common::call_bitcoind(&chain.rpc(), "getbestblockhash", &[]);
    common::call_bitcoind(&chain.rpc(), "invalidateblock", &[tip]);
    wait_for("the batch back in the mempool", MINUTE, || chain.mempool() == vec![txid.clone()]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(ids.iter().all(|id| payment(&gw, &key, id)["status"] == "PENDING"), "still sent, not queued again");
    assert!(gw.call("batch.list", json!({}))["queued"].as_array().unwrap().is_empty());
    assert_eq!(chain.mempool(), vec![txid.clone()], "no second transaction");
    // Another miner's blocks (the invalidated one would be found again, identical, and refused).
    chain.mine_to(2, &outside_address(250).to_string());
    for id in &ids {
        assert_eq!(settled(&gw, &key, id)["txid"], txid.as_str());
    }
    let paid = chain.paid_after(height);
    assert!(addresses.iter().all(|a| paid.get(a) == Some(&1)), "each payee paid once");
    assert_eq!(gw.call("batch.list", json!({}))["batches"].as_array().unwrap().len(), 1);
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

/// An operator lifts a stuck batch: through one of its payouts (`payment.bump`: the whole batch
/// moves), then `batch.bump`. Every output is in each replacement, the replaced ones are
/// recorded, each payout settles with its share of the fee that confirmed and is paid once. A
/// bump naming no feerate asks what the next block asks, which the batch already pays: refused.
#[test]
fn an_operator_bumps_a_stuck_batch_through_a_payout_and_by_its_id() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    // The gateway's own bumps wait 50 blocks here: what lifts the batch is the operator.
    let gw = funded_with(&chain, &home.path().join("gw"), "[batching]\nnormal_bump_after_blocks = 50\n");
    let key = gw.api_key("pay,read");
    let (ids, addresses, left) = one_batch(&gw, &key, 3, 90);
    let (first, batch_id) = (left["txid"].as_str().unwrap().to_owned(), left["batch_id"].clone());
    common::call_bitcoind(&chain.rpc(), "prioritisetransaction", &[json!(first), json!(0), json!(-100_000_000)]);
    let height = chain.height();

    let code = gw.error_code("batch.bump", json!({"batch_id": batch_id}));
    assert_eq!(code, "feerate_too_low", "the next block asks what it pays already");
    let bumped = gw.call("payment.bump", json!({"payment_id": ids[1], "sat_per_vb": 9}));
    assert_eq!((&bumped["batch_id"], bumped["txid"].as_str()), (&batch_id, Some(first.as_str())), "{bumped:#}");
    let second = bumped["new_txid"].as_str().unwrap().to_owned();
    let bumped = gw.call("batch.bump", json!({"batch_id": batch_id, "feerate_sat_kvb": 11_500}));
    assert_eq!((bumped["txid"].as_str(), bumped["how"].as_str()), (Some(second.as_str()), Some("replaced")));
    let third = bumped["new_txid"].as_str().unwrap().to_owned();
    assert_eq!(chain.mempool(), vec![third.clone()]);
    // Each bump audited as asked, then as done; the refused one not at all.
    let audit = gw.call("audit.list", json!({}))["entries"].as_array().unwrap().clone();
    let bumps: Vec<(&str, &Value)> = audit
        .iter()
        .filter(|e| {
            e["action"].as_str().unwrap().ends_with("bump") || e["action"].as_str().unwrap().ends_with("bump.requested")
        })
        .map(|e| (e["action"].as_str().unwrap(), &e["details"]))
        .collect();
    let actions: Vec<&str> = bumps.iter().map(|(a, _)| *a).collect();
    assert_eq!(actions, ["payment.bump.requested", "payment.bump", "batch.bump.requested", "batch.bump"], "{audit:#?}");
    assert_eq!(
        (bumps[2].1["batch_id"].clone(), bumps[2].1["feerate_sat_kvb"].as_u64()),
        (batch_id.clone(), Some(11_500))
    );
    assert_eq!(
        (bumps[3].1["new_txid"].as_str(), bumps[3].1["request_seq"].clone()),
        (Some(third.as_str()), bumped["request_seq"].clone())
    );
    let batch = gw.call("batch.get", json!({"batch_id": batch_id}));
    assert_eq!(batch["txid"], third.as_str(), "{batch:#}");
    let replaced: Vec<&str> =
        batch["replaced"].as_array().unwrap().iter().map(|r| r["txid"].as_str().unwrap()).collect();
    assert!(replaced.contains(&first.as_str()) && replaced.contains(&second.as_str()), "{batch:#}");
    let replacement = chain.tx(&third);
    let fee = chain.fee(&replacement);
    assert!((11_500..11_600).contains(&(fee * 1_000 / replacement.vsize() as u64)), "{bumped:#}");

    chain.mine(1);
    settle_once(&gw, &key, &chain, (&ids, &addresses), (&third, fee), height);
    assert_eq!(gw.error_code("batch.bump", json!({"batch_id": batch_id})), "not_bumpable", "confirmed");
}
