//! Fee bumping of single on-chain payouts on a real regtest bitcoind, through the public API. A
//! payout whose transaction miners leave out while fees rise is replaced (RBF) with the same
//! output at the feerate the next block needs, settles with the replacement's fee and is paid
//! once — also when the gateway is killed between storing the replacement and broadcasting it.
//! A stuck payout whose change another payout already spends cannot be replaced without
//! evicting that one: a child pays for both (CPFP), neither payout's transaction changes, the
//! child's fee is booked as the treasury's (`fees:cpfp`), and after a kill between storing the
//! child and broadcasting it exactly one child is sent. A coin a stored replacement added stays
//! its own while the replacement waits for its broadcast.

mod common;

use std::time::Duration;

use common::{broadcast, http_post, outside_address, payment, settled, wait_for, AdminMode, Chain, Gateway};
use sendero_wallet::bitcoin::{Address, Transaction};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);
const BUMP_AFTER_TWO: &str = "[batching]\nnormal_bump_after_blocks = 2\n";

/// Routes `sat` to `address` (normal priority) and submits it on the `onchain` rail; its id.
fn pay(gw: &Gateway, key: &str, address: &str, sat: u64) -> String {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": address, "priority": "normal"});
    let (status, route) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{route}");
    let route: Value = serde_json::from_str(&route).unwrap();
    let submit = json!({"route_id": route["route_id"], "rail": "onchain"}).to_string();
    let (status, p) = http_post(gw.api_port, "/v1/payments/submit", key, Some(&format!("bump-{address}")), &submit);
    assert_eq!(status, 202, "{p}");
    serde_json::from_str::<Value>(&p).unwrap()["payment_id"].as_str().unwrap().to_owned()
}

/// How many outputs of `t` pay `sat` to `address`.
fn pays(t: &Transaction, address: &str, sat: u64) -> usize {
    let script = address.parse::<Address<_>>().unwrap().assume_checked().script_pubkey();
    t.output.iter().filter(|o| o.script_pubkey == script && o.value.to_sat() == sat).count()
}

/// Keeps `txid` out of blocks (as if its feerate were far below the market's), or lets it in.
fn shun(chain: &Chain, txid: &str, out: bool) {
    let delta = if out { -100_000_000 } else { 100_000_000 };
    common::call_bitcoind(&chain.rpc(), "prioritisetransaction", &[json!(txid), json!(0), json!(delta)]);
}

/// Aborts the gateway at `failpoint` from now on (a restart with it armed).
/// The audit log's entries whose action names `word`.
fn audited(gw: &Gateway, word: &str) -> Vec<Value> {
    let entries = gw.call("audit.list", json!({}))["entries"].as_array().unwrap().clone();
    entries.into_iter().filter(|e| e["action"].as_str().unwrap().contains(word)).collect()
}

fn arm(gw: &mut Gateway, failpoint: &str) {
    gw.env = vec![("SENDERO_FAILPOINT".into(), failpoint.into())];
    gw.restart();
}

/// After the abort at the armed failpoint: the gateway started again, fees still high.
fn after_abort(gw: &mut Gateway) {
    gw.wait_exit();
    assert!(gw.log().contains("failpoint reached: aborting"));
    gw.env.clear();
    gw.start_again();
    gw.call("fees.set", json!({"sat_per_vb": 20}));
}

fn ledger_ok(gw: &Gateway) {
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

#[test]
fn a_stuck_single_payout_is_replaced_and_settles_with_the_replacement_fee() {
    stuck_single(None, 30);
}

#[test]
fn a_single_replacement_killed_before_its_broadcast_is_sent_as_stored_after_the_restart() {
    stuck_single(Some("onchain.bumped"), 31);
}

fn stuck_single(failpoint: Option<&str>, seed: u8) {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", BUMP_AFTER_TWO);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let key = gw.api_key("pay,read");
    let to = outside_address(seed).to_string();
    let id = pay(&gw, &key, &to, 40_000);
    let first = broadcast(&gw, &key, &chain, &id);
    let original = chain.tx(&first);
    shun(&chain, &first, true);
    if let Some(failpoint) = failpoint {
        arm(&mut gw, failpoint);
    }
    gw.call("fees.set", json!({"sat_per_vb": 20}));
    let height = chain.height();
    chain.mine(2);
    if failpoint.is_some() {
        gw.wait_exit();
        assert_eq!(chain.mempool(), vec![first.clone()], "the replacement was stored, not sent");
        after_abort(&mut gw);
    }
    let mut second = String::new();
    wait_for("the payout replaced", MINUTE, || {
        second = payment(&gw, &key, &id)["txid"].as_str().unwrap().to_owned();
        second != first && chain.mempool() == vec![second.clone()]
    });
    let replacement = chain.tx(&second);
    assert_eq!((pays(&original, &to, 40_000), pays(&replacement, &to, 40_000)), (1, 1), "the same output");
    let fee = chain.fee(&replacement);
    assert!(fee > chain.fee(&original), "the replacement pays more");
    assert!(fee * 4 >= 20 * replacement.weight().to_wu(), "at what the next block needs: {fee} sat");
    chain.mine(1);
    let p = settled(&gw, &key, &id);
    assert_eq!(p["txid"], second.as_str());
    assert_eq!(p["fee_paid_sat"], fee, "the ledger ends with the fee of the transaction that confirmed");
    assert_eq!(paid_since(&chain, height, &to, 40_000), 1, "paid once");
    ledger_ok(&gw);
}

/// How many outputs of the blocks mined after `height` pay `sat` to `address`.
fn paid_since(chain: &Chain, height: u32, address: &str, sat: u64) -> usize {
    (height + 1..=chain.height())
        .flat_map(|h| {
            let hash = common::call_bitcoind(&chain.rpc(), "getblockhash", &[json!(h)]);
            let block = common::call_bitcoind(&chain.rpc(), "getblock", &[hash, json!(1)]);
            block["tx"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect::<Vec<_>>()
        })
        .map(|t| pays(&chain.tx(&t), address, sat))
        .sum()
}

/// The feerate `t` pays, sat/kvB.
fn feerate(chain: &Chain, t: &Transaction) -> u64 {
    chain.fee(t) * 1_000 / t.vsize() as u64
}

/// Whether `t` pays `asked_kvb` on the chain, and at most a vbyte's worth more (its fee in whole
/// sats): a replacement is priced on its original's size, and a shorter signature can make it a
/// vbyte smaller.
fn pays_asked(chain: &Chain, t: &Transaction, asked_kvb: u64) -> bool {
    let rate = feerate(chain, t);
    (asked_kvb..=asked_kvb + (asked_kvb + 1_000).div_ceil(t.vsize() as u64)).contains(&rate)
}

/// bitcoind (v30 on) takes a replacement 0.1 sat/vB over its original: a payout built at 2
/// sat/vB, stuck while the market moves to 2.4, is replaced at 2.4 — not left waiting until its
/// last blocks because a whole 1 sat/vB more (BDK's own fee bump step) would overpay.
#[test]
fn a_stuck_payout_is_lifted_by_bitcoinds_step_not_by_a_whole_sat_per_vb() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    // 2 sat/vB now, 2.4 sat/vB from 40 s on (the payout is out well before).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let rises_at = now + 40;
    let schedule = home.path().join("fees.csv");
    std::fs::write(&schedule, format!("{},2\n{rises_at},2.4\n", now - 3_600)).unwrap();
    let config = format!("{BUMP_AFTER_TWO}\n[wallet]\nfee_schedule_file = {:?}\n", schedule.display().to_string());
    let gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", &config);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let key = gw.api_key("pay,read");
    let to = outside_address(32).to_string();
    let id = pay(&gw, &key, &to, 40_000);
    let first = broadcast(&gw, &key, &chain, &id);
    let original = chain.tx(&first);
    let built = feerate(&chain, &original);
    assert!((1_950..2_050).contains(&built), "built at 2 sat/vB: {built} sat/kvB");
    shun(&chain, &first, true);
    let wait =
        rises_at.saturating_sub(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs());
    std::thread::sleep(Duration::from_secs(wait + 1));
    let height = chain.height();
    chain.mine(2);
    let mut second = String::new();
    wait_for("the payout replaced", MINUTE, || {
        second = payment(&gw, &key, &id)["txid"].as_str().unwrap().to_owned();
        second != first && chain.mempool() == vec![second.clone()]
    });
    let replacement = chain.tx(&second);
    let (old_fee, fee) = (chain.fee(&original), chain.fee(&replacement));
    assert!((2_350..2_450).contains(&feerate(&chain, &replacement)), "at what the next block asks: {fee} sat");
    assert!((fee - old_fee) * 10 >= replacement.vsize() as u64, "BIP125: the old fee + 0.1 sat/vB on its size");
    assert_eq!(pays(&replacement, &to, 40_000), 1, "the same output");
    assert!(gw.log().contains("payout fee bumped"), "logged");
    chain.mine(1);
    let p = settled(&gw, &key, &id);
    assert_eq!((p["txid"].as_str(), p["fee_paid_sat"].as_u64()), (Some(second.as_str()), Some(fee)));
    assert_eq!(paid_since(&chain, height, &to, 40_000), 1, "paid once");
    ledger_ok(&gw);
}

#[test]
fn a_stuck_payout_another_payout_spends_from_is_lifted_by_a_child() {
    lifted_by_a_child(None);
}

#[test]
fn a_child_killed_before_its_broadcast_is_sent_once_after_the_restart() {
    lifted_by_a_child(Some("onchain.child_signed"));
}

/// A gateway bumping after two blocks whose treasury holds one spendable coin (a second payout
/// has to spend the first one's change); with a paying key.
fn one_coin(chain: &Chain, home: &std::path::Path) -> (Gateway, String) {
    let gw = Gateway::start_with(chain, &home.join("gw"), AdminMode::Socket, "human", BUMP_AFTER_TWO);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(1, &address);
    chain.mine(100);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let key = gw.api_key("pay,read");
    (gw, key)
}

fn lifted_by_a_child(failpoint: Option<&str>) {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let (mut gw, key) = one_coin(&chain, home.path());
    let (to_a, to_b) = (outside_address(41).to_string(), outside_address(42).to_string());
    let a = pay(&gw, &key, &to_a, 40_000);
    let ta = broadcast(&gw, &key, &chain, &a);
    let b = pay(&gw, &key, &to_b, 50_000);
    let tb = broadcast(&gw, &key, &chain, &b);
    let parent = chain.tx(&tb).input[0].previous_output.txid.to_string();
    assert_eq!(parent, ta, "b spends a's change: {:#}\n{:#}", chain.raw_tx(&parent), chain.raw_tx(&ta));
    shun(&chain, &ta, true);
    if let Some(failpoint) = failpoint {
        arm(&mut gw, failpoint);
    }
    gw.call("fees.set", json!({"sat_per_vb": 20}));
    chain.mine(2);
    if failpoint.is_some() {
        gw.wait_exit();
        assert_eq!(chain.mempool().len(), 2, "the child was stored, not sent");
        after_abort(&mut gw);
    }
    let mut mempool = Vec::new();
    wait_for("a child in the mempool", MINUTE, || {
        mempool = chain.mempool();
        mempool.len() == 3
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(chain.mempool().len(), 3, "one child, nothing replaced: {mempool:?}");
    let child_id = mempool.iter().find(|t| **t != ta && **t != tb).unwrap().clone();
    let child = chain.tx(&child_id);
    assert_eq!(child.input.len(), 1);
    assert_eq!(child.input[0].previous_output.txid.to_string(), tb, "it spends b's change");
    let family = [chain.tx(&ta), chain.tx(&tb), child.clone()];
    let (fees, vsize) = family.iter().fold((0, 0), |(f, v), t| (f + chain.fee(t), v + t.vsize() as u64));
    assert!(fees >= 20 * vsize, "the package pays what the next block needs: {fees} sat for {vsize} vB");
    assert_eq!(
        (payment(&gw, &key, &a)["txid"].clone(), payment(&gw, &key, &b)["txid"].clone()),
        (json!(ta), json!(tb))
    );
    // A miner takes the package now that the child pays for it.
    shun(&chain, &ta, false);
    chain.mine(1);
    assert_eq!(settled(&gw, &key, &a)["fee_paid_sat"], chain.fee(&family[0]));
    assert_eq!(settled(&gw, &key, &b)["fee_paid_sat"], chain.fee(&family[1]));
    let accounts = gw.call("ledger.balances", json!({}))["accounts"].clone();
    let cpfp = accounts.as_array().unwrap().iter().find(|a| a["account"] == "fees:cpfp").cloned();
    assert_eq!(cpfp.map(|a| a["balance"].clone()), Some(json!(chain.fee(&child) * 1_000)), "{accounts:#}");
    let report = gw.call("fees.report", json!({}));
    assert_eq!(report["treasury"]["cpfp_fee_sat"], chain.fee(&child), "{report:#}");
    ledger_ok(&gw);
}

/// A stuck payout whose change a second payout spends in a transaction signed and stored but not
/// yet broadcast (a crash, then its broadcast retried later): it is not replaced — that would
/// make the second payout's transaction invalid (it failed `broadcast_rejected`,
/// `bad-txns-inputs-missingorspent`, in the crash soak) — until the second is out; then a child
/// pays for both, and each payout is paid once with the transaction it was signed with.
#[test]
fn a_stuck_payout_is_not_replaced_while_a_payout_spending_its_change_waits_to_be_broadcast() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let (mut gw, key) = one_coin(&chain, home.path());
    let (to_a, to_b) = (outside_address(43).to_string(), outside_address(44).to_string());
    let a = pay(&gw, &key, &to_a, 40_000);
    let ta = broadcast(&gw, &key, &chain, &a);
    shun(&chain, &ta, true);

    // b is signed (spending a's change) and stored; the process dies before its broadcast, and
    // its next attempt is 30 s away, as after a failed one.
    arm(&mut gw, "onchain.signed");
    let b = pay(&gw, &key, &to_b, 50_000);
    gw.wait_exit();
    assert_eq!(chain.mempool(), vec![ta.clone()]);
    common::postpone_sending(&gw, &b, 30);
    after_abort(&mut gw);

    // Due for a bump (two blocks, fees up): left alone while b waits.
    chain.mine(2);
    wait_for("the bumper to weigh it", MINUTE, || {
        gw.log().contains("stuck transaction left for now") || chain.mempool() != vec![ta.clone()]
    });
    assert_eq!(chain.mempool(), vec![ta.clone()], "a is not replaced");
    assert_eq!(payment(&gw, &key, &a)["txid"], ta.as_str());
    // An operator asking to lift b meanwhile is told it is not out yet; nothing moves.
    match gw.try_call("payment.bump", json!({"payment_id": b, "sat_per_vb": 20})) {
        Err(sendero::admin::ClientError::Rpc { code, message, .. }) => {
            assert_eq!(code, "not_bumpable");
            assert!(message.contains("being broadcast"), "{message}");
        }
        other => panic!("a payout still sending was bumped: {other:?}"),
    }
    assert_eq!(chain.mempool(), vec![ta.clone()]);

    // b leaves as signed; then a child lifts the package.
    let tb = broadcast(&gw, &key, &chain, &b);
    assert_eq!(chain.tx(&tb).input[0].previous_output.txid.to_string(), ta, "b spends a's change");
    wait_for("a child in the mempool", MINUTE, || chain.mempool().len() == 3);
    shun(&chain, &ta, false);
    chain.mine(1);
    assert_eq!(settled(&gw, &key, &a)["txid"], ta.as_str());
    assert_eq!(settled(&gw, &key, &b)["txid"], tb.as_str());
    ledger_ok(&gw);
}

/// A replacement that had to add a coin (its original had no change to pay the higher fee from),
/// stored and then cut from its broadcast by a crash, its broadcast retried later: a payout
/// built meanwhile leaves that coin alone — it waits for the replacement's change — and the
/// replacement still leaves as stored. (Before, the next payout took that coin and left; 30 s
/// later the replacement's broadcast evicted it — it paid more than both transactions it
/// conflicted with — and that payout failed `broadcast_rejected`, "insufficient fee, rejecting
/// replacement".)
#[test]
fn a_coin_a_stored_replacement_added_is_left_alone_while_its_broadcast_waits() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", BUMP_AFTER_TWO);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    // Two coins of 50 BTC, spendable.
    chain.mine_to(2, &address);
    chain.mine(100);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let key = gw.api_key("pay,read");
    let (to_a, to_b) = (outside_address(45).to_string(), outside_address(46).to_string());

    // a spends one coin whole: its 110 vB at 1 sat/vB and 30 sat over, too little for a change.
    gw.call("fees.set", json!({"sat_per_vb": 1}));
    let whole = 5_000_000_000 - 110 - 30;
    let a = pay(&gw, &key, &to_a, whole);
    let ta = broadcast(&gw, &key, &chain, &a);
    let original = chain.tx(&ta);
    assert_eq!((original.input.len(), original.output.len()), (1, 1), "no change: {original:?}");
    shun(&chain, &ta, true);

    // Fees up, two blocks: the replacement adds the other coin, is stored, and the process dies
    // before its broadcast; the next attempt is 30 s away.
    arm(&mut gw, "onchain.bumped");
    gw.call("fees.set", json!({"sat_per_vb": 20}));
    chain.mine(2);
    gw.wait_exit();
    assert_eq!(chain.mempool(), vec![ta.clone()], "the replacement was stored, not sent");
    let db = common::books(&gw.datadir);
    let raw: Vec<u8> = db
        .query_row("SELECT raw_tx FROM payments WHERE payment_id = ?1", sendero::store::sql::params![a], |r| r.get(0))
        .unwrap();
    let later = common::unix_now() as i64 + 30;
    db.execute(
        "UPDATE payments SET next_attempt_at = ?1 WHERE payment_id = ?2",
        sendero::store::sql::params![later, a],
    )
    .unwrap();
    drop(db);
    let replacement: Transaction = sendero_wallet::bitcoin::consensus::deserialize(&raw).unwrap();
    let added: Vec<_> = replacement
        .input
        .iter()
        .map(|i| i.previous_output)
        .filter(|o| original.input.iter().all(|i| i.previous_output != *o))
        .collect();
    assert_eq!(added.len(), 1, "the replacement added a coin: {replacement:?}");
    after_abort(&mut gw);

    // b is submitted while the replacement waits: it must not spend the added coin.
    let b = pay(&gw, &key, &to_b, 40_000);
    let tb = broadcast(&gw, &key, &chain, &b);
    let b_tx = chain.tx(&tb);
    assert!(b_tx.input.iter().all(|i| i.previous_output != added[0]), "b leaves the replacement's coin alone");
    assert_eq!(b_tx.input[0].previous_output.txid, replacement.compute_txid(), "b spends the replacement's change");
    let second = replacement.compute_txid().to_string();
    assert!(chain.mempool().contains(&second) && !chain.mempool().contains(&ta), "the replacement left as stored");
    chain.mine(1);
    assert_eq!(settled(&gw, &key, &a)["txid"], second.as_str());
    assert_eq!(settled(&gw, &key, &b)["txid"], tb.as_str());
    ledger_ok(&gw);
}

/// `payment.bump`'s stable error code for `params`.
fn refused(gw: &Gateway, params: Value) -> String {
    gw.error_code("payment.bump", params)
}

/// An operator lifts a stuck payout through the admin RPC (`payment.bump`). Bad requests are
/// refused with a stable code and change nothing; a bump the gateway is killed in, right after
/// storing the replacement (`onchain.bumped`), goes out as stored after the restart; a second
/// one through `sendero-cli` replaces that one and is audited; the payout settles with the fee of
/// the transaction that confirmed and is paid once.
#[test]
fn an_operator_bumps_a_stuck_payout_once_across_a_kill() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    // The gateway's own bumps wait 50 blocks here: what lifts the payout is the operator.
    let config = "[batching]\nnormal_bump_after_blocks = 50\n";
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", config);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    gw.call("fees.set", json!({"sat_per_vb": 2}));
    let key = gw.api_key("pay,read");
    let to = outside_address(33).to_string();
    let id = pay(&gw, &key, &to, 40_000);
    let first = broadcast(&gw, &key, &chain, &id);
    let original = chain.tx(&first);
    shun(&chain, &first, true);
    let height = chain.height();

    assert_eq!(refused(&gw, json!({"payment_id": "pay_unknown"})), "payment_not_found");
    assert_eq!(refused(&gw, json!({"payment_id": id, "sat_per_vb": 2})), "feerate_too_low", "it pays 2 already");
    assert_eq!(refused(&gw, json!({"payment_id": id, "sat_per_vb": 5_000})), "feerate_too_high");
    assert_eq!(refused(&gw, json!({"payment_id": id, "sat_per_vb": 5, "feerate_sat_kvb": 5_000})), "invalid_feerate");
    assert_eq!(gw.error_code("batch.bump", json!({"batch_id": "bt_unknown"})), "batch_not_found");
    assert_eq!(chain.mempool(), vec![first.clone()], "nothing changed");
    assert_eq!(payment(&gw, &key, &id)["txid"], first.as_str());
    assert_eq!(audited(&gw, "bump"), Vec::<Value>::new(), "a refused bump is not audited");

    arm(&mut gw, "onchain.bumped");
    let cut = gw.try_call("payment.bump", json!({"payment_id": id, "sat_per_vb": 12}));
    assert!(cut.is_err(), "the gateway died inside the call: {cut:?}");
    gw.wait_exit();
    assert!(gw.log().contains("failpoint reached: aborting"));
    assert_eq!(chain.mempool(), vec![first.clone()], "the replacement was stored, not sent");
    gw.env.clear();
    gw.start_again();
    let mut second = String::new();
    wait_for("the stored replacement sent", MINUTE, || {
        second = payment(&gw, &key, &id)["txid"].as_str().unwrap().to_owned();
        second != first && chain.mempool() == vec![second.clone()]
    });
    let sent = chain.tx(&second);
    assert!(pays_asked(&chain, &sent, 12_000), "at the 12 sat/vB asked: {}", feerate(&chain, &sent));
    // The bump the kill cut short is on record as asked, with no outcome.
    let cut = audited(&gw, "bump");
    assert_eq!(cut.len(), 1, "{cut:?}");
    assert_eq!(cut[0]["action"], "payment.bump.requested");
    let asked = &cut[0]["details"];
    assert_eq!((asked["payment_id"].as_str(), asked["txid"].as_str()), (Some(id.as_str()), Some(first.as_str())));
    assert_eq!(asked["feerate_sat_kvb"], 12_000);
    assert!((1_900..2_100).contains(&asked["from_sat_kvb"].as_u64().unwrap()), "it paid 2 sat/vB: {asked}");

    let bumped = gw.cli(&["payment.bump", &id, "--feerate-sat-kvb", "15500"]);
    assert_eq!(
        (bumped["txid"].as_str(), bumped["how"].as_str()),
        (Some(second.as_str()), Some("replaced")),
        "{bumped}"
    );
    let third = bumped["new_txid"].as_str().unwrap().to_owned();
    let replacement = chain.tx(&third);
    assert_eq!(chain.mempool(), vec![third.clone()]);
    assert_eq!(bumped["fee_sat"], chain.fee(&replacement));
    assert!(pays_asked(&chain, &replacement, 15_500), "{bumped}");
    assert_eq!(pays(&original, &to, 40_000) + pays(&replacement, &to, 40_000), 2, "the same output");
    // Audited as asked, then with what was done, pointing at the request.
    let entries = audited(&gw, "bump");
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["payment.bump.requested", "payment.bump.requested", "payment.bump"], "{entries:?}");
    assert_eq!(
        (entries[1]["seq"].clone(), entries[1]["details"]["txid"].as_str()),
        (bumped["request_seq"].clone(), Some(second.as_str()))
    );
    assert_eq!(entries[1]["details"]["feerate_sat_kvb"], 15_500);
    assert_eq!(entries[2]["seq"], bumped["audit_seq"]);
    assert_eq!(entries[2]["details"]["request_seq"], bumped["request_seq"]);
    assert_eq!(entries[2]["details"]["new_txid"], third.as_str());
    assert!(gw.log().contains("operator's fee bump"));

    chain.mine(1);
    let p = settled(&gw, &key, &id);
    assert_eq!((p["txid"].as_str(), p["fee_paid_sat"].as_u64()), (Some(third.as_str()), Some(chain.fee(&replacement))));
    assert_eq!(paid_since(&chain, height, &to, 40_000), 1, "paid once");
    assert_eq!(refused(&gw, json!({"payment_id": id})), "not_bumpable", "confirmed");
    ledger_ok(&gw);
}
