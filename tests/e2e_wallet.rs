//! The treasury end to end: a real regtest bitcoind and the real senderod binary. Fund the wallet by
//! mining to an address from the admin RPC, send to an outside address, confirm, restart senderod
//! and find the same balance and history.

mod common;

use std::time::Duration;

use common::{outside_address, wait_for, AdminMode, Chain, Gateway, SENDERO_CLI};
use serde_json::{json, Value};

const COIN: u64 = 100_000_000;
const SUBSIDY: u64 = 50 * COIN;

fn tx<'a>(txs: &'a Value, txid: &str) -> &'a Value {
    txs["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["txid"] == txid)
        .unwrap_or_else(|| panic!("{txid} not in {txs}"))
}

/// A regtest bitcoind stopped with its data dir and ports kept, to be started on them again.
struct Stopped {
    dir: tempfile::TempDir,
    datadir: std::path::PathBuf,
    ports: (u16, u16),
}

impl Stopped {
    fn stop(chain: Chain) -> Stopped {
        let rpc_port = chain.node.rpc_url().rsplit(':').next().unwrap().parse().unwrap();
        let (ports, datadir) = ((rpc_port, chain.node.p2p_port()), chain.node.datadir().to_path_buf());
        let Chain { mut node, dir } = chain;
        node.stop();
        Stopped { dir, datadir, ports }
    }

    /// Started again with `settings` (lines of `bitcoin.conf`'s `[regtest]` section).
    fn start_with(self, settings: &str) -> Chain {
        std::fs::write(self.datadir.join("bitcoin.conf"), format!("[regtest]\n{settings}")).unwrap();
        self.start()
    }

    /// Started again (with a new cookie).
    fn start(self) -> Chain {
        let (rpc, p2p) = self.ports;
        let node = sendero::devchain::Bitcoind::start_on(&common::bitcoind_exe(), &self.datadir, rpc, p2p).unwrap();
        Chain { node, dir: self.dir }
    }
}

/// A gateway in `home` on `chain`, funded with one mature coin (101 blocks), the operator's
/// feerate at 1 sat/vB: it and an API key that pays and reads.
fn at_one_sat_vb(chain: &Chain, home: &tempfile::TempDir) -> (Gateway, String) {
    let gw = Gateway::start(chain, &home.path().join("gw"), AdminMode::Socket);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", Duration::from_secs(30), || gw.synced_height() == 101);
    let key = gw.api_key("pay,read");
    gw.call("fees.set", json!({"sat_per_vb": 1}));
    (gw, key)
}

#[test]
fn fund_send_confirm_and_restart() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(&chain, &home.path().join("gw"), AdminMode::Socket);

    // Fund: 101 blocks to a fresh address of the treasury.
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    assert!(address.starts_with("bcrt1q"), "{address}");
    chain.mine_to(101, &address);
    wait_for("the wallet to sync 101 blocks", Duration::from_secs(30), || gw.synced_height() == 101);
    let funded = gw.balance();
    // Coinbases at heights 1 and 2 are 100 deep at tip 101 (as bitcoind counts it); 99 are not.
    assert_eq!(funded["confirmed_sat"], 2 * SUBSIDY, "{funded}");
    assert_eq!(funded["immature_sat"], 99 * SUBSIDY, "{funded}");
    assert_eq!(funded["trusted_pending_sat"], 0);

    // The health endpoint and the CLI agree.
    let (status, health) = gw.get("/v1/health");
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["bitcoind"]["chain_height"], 101);
    assert_eq!(health["wallet"]["synced_height"], 101);
    let out = std::process::Command::new(SENDERO_CLI)
        .args(["--datadir", gw.datadir.to_str().unwrap(), "getinfo", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["network"], "regtest");
    assert_eq!(info["chain_height"], 101);
    assert_eq!(info["wallet"]["synced_height"], 101);
    assert_eq!(info["wallet"]["confirmed_sat"], 2 * SUBSIDY);
    assert_eq!(info["wallet"]["immature_sat"], 99 * SUBSIDY);
    assert_eq!(info["wallet"]["untrusted_pending_sat"], 0);

    // Send to an address outside the wallet at 5 sat/vB.
    let payee = outside_address(7).to_string();
    let amount: u64 = 1_234_567;
    let sent = gw.call("wallet.send", json!({"address": payee, "amount_sat": amount, "feerate_sat_vb": 5}));
    let txid = sent["txid"].as_str().unwrap().to_owned();
    let (fee, vsize) = (sent["fee_sat"].as_u64().unwrap(), sent["vsize"].as_u64().unwrap());
    // BDK prices the signature at its largest size; the real one may be a byte or two shorter.
    assert!(fee.abs_diff(5 * vsize) <= 10, "fee {fee} for {vsize} vB at 5 sat/vB");
    assert_eq!(chain.mempool(), vec![txid.clone()]);
    let raw = chain.raw_tx(&txid);
    let paid = raw["vout"].as_array().unwrap().iter().find(|o| o["scriptPubKey"]["address"] == payee.as_str()).unwrap();
    assert_eq!(paid["value"].to_string(), "0.01234567");

    let pending = gw.balance();
    assert_eq!(
        pending["confirmed_sat"].as_u64().unwrap() + pending["trusted_pending_sat"].as_u64().unwrap(),
        2 * SUBSIDY - amount - fee
    );
    let txs = gw.call("wallet.transactions", json!({}));
    assert_eq!(tx(&txs, &txid)["confirmation_height"], Value::Null);
    assert_eq!(tx(&txs, &txid)["fee_sat"], fee);

    // One block confirms it (and matures the coinbase of height 3).
    chain.mine(1);
    wait_for("the send to confirm", Duration::from_secs(30), || {
        tx(&gw.call("wallet.transactions", json!({})), &txid)["confirmation_height"] == 102
    });
    let confirmed = gw.balance();
    assert_eq!(confirmed["confirmed_sat"], 3 * SUBSIDY - amount - fee, "{confirmed}");
    assert_eq!(confirmed["trusted_pending_sat"], 0);
    assert_eq!(confirmed["immature_sat"], 98 * SUBSIDY);
    let history = gw.call("wallet.transactions", json!({}));
    let utxos = gw.call("wallet.utxos", json!({}));
    let sent_tx = tx(&history, &txid);
    assert_eq!(sent_tx["sent_sat"].as_u64().unwrap() - sent_tx["received_sat"].as_u64().unwrap(), amount + fee);

    // Restart: the same balance, history and coins, without waiting for a resync.
    gw.restart();
    assert_eq!(gw.balance(), confirmed);
    assert_eq!(gw.call("wallet.transactions", json!({})), history);
    assert_eq!(gw.call("wallet.utxos", json!({})), utxos);
    assert_eq!(history["transactions"].as_array().unwrap().len(), 102, "101 coinbases and the send");

    // A catch-up of more than a thousand blocks says how it goes: where it is, the tip, a rate
    // and the time left.
    gw.stop();
    chain.mine(1_100);
    gw.start_again();
    wait_for("the wallet to catch up 1,100 blocks", Duration::from_secs(180), || gw.synced_height() == 1_202);
    let log = gw.log();
    let progress =
        log.lines().find(|l| l.contains("wallet catching up")).unwrap_or_else(|| panic!("no progress:\n{log}"));
    assert!(progress.contains("block 1102 of 1202") && progress.contains("blocks/s, about"), "{progress}");
}

#[test]
fn bitcoind_down_is_reported_and_survived() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(&chain, &home.path().join("gw"), AdminMode::Socket);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &address);
    wait_for("sync", Duration::from_secs(30), || gw.synced_height() == 101);

    wait_for("the lightning node on the first bitcoind", Duration::from_secs(60), || {
        gw.try_call("ln.info", json!({})).is_ok_and(|i| i["best_block_height"] == 101)
    });

    // bitcoind goes away: health turns 503, getinfo says so, the daemon stays up.
    let stopped = Stopped::stop(chain);
    wait_for("health to report bitcoind down", Duration::from_secs(30), || gw.get("/v1/health").0 == 503);
    let (_, health) = gw.get("/v1/health");
    assert_eq!(health["status"], "unavailable");
    assert_eq!(health["bitcoind"]["reachable"], false);
    assert!(health["bitcoind"]["error"].as_str().is_some_and(|e| !e.is_empty()), "{health}");
    assert_eq!(gw.call("getinfo", json!({}))["bitcoind"]["reachable"], false);
    let code = gw.error_code("wallet.send", json!({"address": outside_address(3).to_string(), "amount_sat": 10_000}));
    assert_eq!(code, "bitcoind_unavailable");

    // It comes back (with a new cookie): the daemon reconnects and follows new blocks.
    let chain = stopped.start();
    wait_for("health to recover", Duration::from_secs(30), || gw.get("/v1/health").0 == 200);
    chain.mine(2);
    wait_for("sync after recovery", Duration::from_secs(30), || gw.synced_height() == 103);
    assert_eq!(gw.balance()["confirmed_sat"], 4 * SUBSIDY);
    // The Lightning node is rebuilt with bitcoind's new cookie and follows the chain too.
    wait_for("the lightning node to follow the restarted bitcoind", Duration::from_secs(60), || {
        gw.try_call("ln.info", json!({})).is_ok_and(|i| i["best_block_height"] == 103)
    });
    assert!(gw.log().contains("restarting the lightning node"));
    gw.stop();
}

/// A gateway (re)started while its bitcoind is down: the follower says bitcoind's initial block
/// download starts and ends once each (not every 200 ms poll), and the Lightning node, which
/// waits for bitcoind, starts as soon as bitcoind answers — waiting is not a failed start, so it
/// does not push the next try out by a growing backoff (it did: 1, 2, 4 … 30 s, so a bitcoind
/// back after half a minute left the node down up to 30 s more).
#[test]
fn a_node_waiting_for_bitcoind_starts_when_it_answers_and_the_initial_download_is_told_once() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(&chain, &home.path().join("gw"), AdminMode::Socket);
    wait_for("the lightning node", Duration::from_secs(60), || gw.try_call("ln.info", json!({})).is_ok());
    wait_for("the follower's first polls", Duration::from_secs(30), || gw.synced_height() == 0);
    std::thread::sleep(Duration::from_secs(3));
    let ibd = |log: &str, what: &str| log.lines().filter(|l| l.contains(what)).count();
    let log = gw.log();
    assert_eq!(ibd(&log, "bitcoind is syncing the chain (initial block download)"), 1, "{log}");
    assert_eq!(ibd(&log, "still syncing"), 0, "{log}");
    gw.stop();

    let stopped = Stopped::stop(chain);
    gw.start_again();
    wait_for("getinfo to report bitcoind down", Duration::from_secs(30), || {
        gw.call("getinfo", json!({}))["bitcoind"]["reachable"] == false
    });
    // Long enough for the old backoff to have reached its 30 s step.
    std::thread::sleep(Duration::from_secs(32));
    let lightning = gw.call("getinfo", json!({}))["lightning"].clone();
    assert_eq!(lightning["state"], "starting", "{lightning}");
    assert_eq!(lightning["waiting_for_bitcoind"], true, "{lightning}");
    assert_eq!(lightning["failed_starts"], 0, "{lightning}");
    // Waiting for bitcoind is not a node that died: no restart counted.
    assert_eq!((lightning["restarts"].as_u64(), lightning["last_failure"].is_null()), (Some(0), true), "{lightning}");
    assert!(lightning["next_attempt_in_s"].is_null() && lightning["last_error"].is_null(), "{lightning}");
    assert_eq!(gw.error_code("ln.info", json!({})), "lightning_unavailable");

    let chain = stopped.start();
    wait_for("health to recover", Duration::from_secs(30), || gw.get("/v1/health").0 == 200);
    // A node start takes a second or two here; the old backoff's next try was 19 s or more away.
    wait_for("the node to start once bitcoind answers", Duration::from_secs(15), || {
        gw.try_call("ln.info", json!({})).is_ok()
    });
    let log = gw.log();
    assert_eq!(ibd(&log, "the lightning node starts once bitcoind answers"), 1, "{log}");
    assert_eq!(ibd(&log, "lightning node did not start"), 0, "{log}");

    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(1, &address);
    wait_for("the first block", Duration::from_secs(30), || gw.log().contains("bitcoind has synced the chain"));
    let log = gw.log();
    assert_eq!(ibd(&log, "bitcoind is syncing the chain (initial block download)"), 2, "one per start: {log}");
    assert_eq!(ibd(&log, "still syncing"), 0, "{log}");
    gw.stop();
}

/// A payout and a batch that left, then fell out of bitcoind's mempool and are refused when
/// offered again (bitcoind restarted with a higher `minrelaytxfee`, as a full mempool's floor
/// rises in a spike), may still confirm — other nodes, or the payees, may hold them: they stay
/// pending, never failed and credited back. Once they have waited their priority's blocks
/// (`normal` 3, `low` 6) they are bid again at what bitcoind's mempool takes — the same coins,
/// so only one of each pair can confirm; a payout submitted meanwhile takes none of those coins. The gateway is killed right after storing the batch's
/// (`batch.bumped`); after the restart both leave, settle with their new fees, and each payee is
/// paid once.
/// A payout built under bitcoind's floor — the operator's 1 sat/vB feed, bitcoind restarted
/// meanwhile with its floor at 5 sat/vB — is refused at its first offer: it never left, so it is
/// bid again from the same coins over the floor and leaves, instead of failing
/// `broadcast_rejected` (credited back, its client left to pay again) as it did before. A batch
/// too, which before waited for the floor to fall.
#[test]
fn a_payout_refused_at_its_first_offer_for_its_fee_is_bid_again_over_the_floor() {
    let (chain, home) = (Chain::start(), tempfile::tempdir().unwrap());
    let (gw, key) = at_one_sat_vb(&chain, &home);
    let before = outside_address(53).to_string();
    let first = common::route_and_submit(&gw, &key, (&before, 40_000, "normal"), "onchain", "before");
    common::broadcast(&gw, &key, &chain, &first);
    chain.mine(1);
    common::settled(&gw, &key, &first);

    let chain = Stopped::stop(chain).start_with("minrelaytxfee=0.00005\n");
    chain.mine(1);
    wait_for("the gateway back on bitcoind", Duration::from_secs(60), || {
        gw.synced_height() == u64::from(chain.height())
    });
    let start = chain.height();
    let to = outside_address(54).to_string();
    let id = common::route_and_submit(&gw, &key, (&to, 40_000, "normal"), "onchain", "under");
    let txid = common::broadcast(&gw, &key, &chain, &id);
    assert!(gw.log().contains("min relay fee not met"), "{}", gw.log());
    assert!(gw.log().contains("bid again over bitcoind's floor"), "{}", gw.log());
    // A batch likewise, inside batch.trigger: it leaves over the floor.
    let payees = [outside_address(55).to_string(), outside_address(56).to_string()];
    let (ids, left, batch_txid) = common::batch_left(&gw, &key, &payees, "under");
    assert!(gw.log().contains("batch refused before it left: its fee under bitcoind's floor"), "{}", gw.log());
    let b = gw.call("batch.get", json!({"batch_id": left["batch_id"]}));
    assert_eq!(b["replaced"].as_array().map(Vec::len), Some(1), "the refused one kept with its family: {b:#}");
    let (tx, batch) = (chain.tx(&txid), chain.tx(&batch_txid));
    for t in [&tx, &batch] {
        assert!(chain.fee(t) * 1_000 / t.vsize() as u64 >= 5_000, "{t:?} pays what bitcoind takes now");
    }
    chain.mine(1);
    let p = common::settled(&gw, &key, &id);
    assert_eq!(p["fee_paid_sat"].as_u64(), Some(chain.fee(&tx)), "{p:#}");
    let shares: u64 = ids.iter().map(|id| common::settled(&gw, &key, id)["fee_paid_sat"].as_u64().unwrap()).sum();
    assert_eq!(shares, chain.fee(&batch), "the shares are the fee of the batch that left");
    let paid = chain.paid_after(start);
    for to in payees.iter().chain([&to]) {
        assert_eq!(paid.get(to), Some(&1), "{to} is paid once");
    }
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

/// A single payout signed and stored at 1 sat/vB, the gateway killed before its broadcast, and
/// bitcoind restarted with its relay floor at 5 sat/vB: offered after the restart, it is refused.
/// It may have left before the kill (the gateway cannot tell), so it is kept — and counts as out
/// from then on, so that it is bid again once it has waited its blocks. Before, it stayed
/// `sending` (the bumper weighs only payouts out), offered and refused for ever.
#[test]
fn a_payout_stored_before_a_kill_and_refused_since_is_bid_again() {
    stored_before_a_kill_then_refused("onchain.signed", |gw, key, payees| {
        vec![common::route_and_submit(gw, key, (&payees[0], 40_000, "normal"), "onchain", "stored")]
    });
}

/// The same for a batch: signed and stored, the gateway killed before its broadcast, refused
/// after the restart: it is marked `broadcast`, its payouts `sent`, and it is bid again. Before,
/// it stayed `signed` with its payouts `sending`, and the bumper never weighed it.
#[test]
fn a_batch_stored_before_a_kill_and_refused_since_is_bid_again() {
    stored_before_a_kill_then_refused("batch.signed", |gw, key, payees| {
        let ids = payees
            .iter()
            .enumerate()
            .map(|(i, to)| common::route_and_submit(gw, key, (to, 30_000, "low"), "onchain_batch", &format!("b{i}")))
            .collect();
        assert!(gw.try_call("batch.trigger", json!({})).is_err(), "the process aborts inside the call");
        ids
    });
}

/// Payouts to `payees` submitted by `submit` with the gateway armed to abort at `failpoint` once
/// their transaction is stored; bitcoind restarted with a 5 sat/vB relay floor; the gateway
/// started again: refused, kept PENDING on their txid, then bid again and settled once.
fn stored_before_a_kill_then_refused(failpoint: &str, submit: impl Fn(&Gateway, &str, &[String]) -> Vec<String>) {
    let (chain, home) = (Chain::start(), tempfile::tempdir().unwrap());
    let (mut gw, key) = at_one_sat_vb(&chain, &home);
    let payees = [outside_address(51).to_string(), outside_address(52).to_string()];
    gw.env = vec![("SENDERO_FAILPOINT".into(), failpoint.into())];
    gw.restart();
    let ids = submit(&gw, &key, &payees);
    gw.wait_exit();
    assert!(gw.log().contains("failpoint reached"), "{}", gw.log());
    assert!(chain.mempool().is_empty(), "stored, never sent");
    let start = chain.height();

    let chain = Stopped::stop(chain).start_with("minrelaytxfee=0.00005\n");
    gw.env.clear();
    gw.start_again();
    wait_for("the stored transaction offered, refused, and counted as out", Duration::from_secs(60), || {
        gw.log().contains("min relay fee not met") && gw.log().contains("counts as out")
    });
    let first = common::payment(&gw, &key, &ids[0])["txid"].as_str().unwrap().to_owned();
    for id in &ids {
        let p = common::payment(&gw, &key, id);
        assert_eq!((p["status"].as_str(), p["txid"].as_str()), (Some("PENDING"), Some(first.as_str())), "{p:#}");
    }
    if failpoint == "batch.signed" {
        let b = &gw.call("batch.list", json!({}))["batches"][0];
        assert_eq!((b["state"].as_str(), b["txid"].as_str()), (Some("broadcast"), Some(first.as_str())), "{b:#}");
    }

    // Its blocks waited, it is bid again at what bitcoind takes now, and settles with that fee.
    chain.mine(6);
    let mut rebid = String::new();
    wait_for("the payouts bid again in the mempool", Duration::from_secs(60), || {
        rebid = common::payment(&gw, &key, &ids[0])["txid"].as_str().unwrap_or_default().to_owned();
        rebid != first && chain.mempool().contains(&rebid)
    });
    let tx = chain.tx(&rebid);
    assert!(chain.fee(&tx) * 1_000 / tx.vsize() as u64 >= 5_000, "{tx:?} pays what bitcoind takes now");
    chain.mine(1);
    let fees: u64 = ids.iter().map(|id| common::settled(&gw, &key, id)["fee_paid_sat"].as_u64().unwrap()).sum();
    assert_eq!(fees, chain.fee(&tx), "the payouts paid the fee of the transaction that confirmed");
    let paid = chain.paid_after(start);
    for to in &payees[..ids.len()] {
        assert_eq!(paid.get(to), Some(&1), "{to} is paid once");
    }
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

#[test]
fn payouts_out_of_the_mempool_and_refused_again_stay_pending_and_are_bid_again() {
    let (chain, home) = (Chain::start(), tempfile::tempdir().unwrap());
    let (mut gw, key) = at_one_sat_vb(&chain, &home);
    let to = outside_address(47).to_string();
    let id = common::route_and_submit(&gw, &key, (&to, 40_000, "normal"), "onchain", "evicted");
    let txid = common::broadcast(&gw, &key, &chain, &id);
    let payees = [outside_address(48).to_string(), outside_address(49).to_string()];
    let (ids, left, batch_txid) = common::batch_left(&gw, &key, &payees, "e");
    let start = chain.height();
    let firsts = [chain.tx(&txid), chain.tx(&batch_txid)];

    // bitcoind restarted with its relay floor at 5 sat/vB and its mempool not kept: the 1 sat/vB
    // transactions are gone, and refused when offered again.
    let chain = Stopped::stop(chain).start_with("minrelaytxfee=0.00005\npersistmempool=0\n");
    assert!(chain.mempool().is_empty());
    wait_for("the gateway to offer them again, refused", Duration::from_secs(60), || {
        gw.log().matches("min relay fee not met").count() >= 2
    });
    std::thread::sleep(Duration::from_secs(5));
    for (id, tx) in [(&id, &txid), (&ids[0], &batch_txid), (&ids[1], &batch_txid)] {
        let p = common::payment(&gw, &key, id);
        assert_eq!(p["status"], "PENDING", "it left, and may still confirm: {p:#}");
        assert_eq!(p["txid"], tx.as_str());
    }
    assert!(gw.log().contains("it may have left and may still confirm, so it is kept and offered again"));
    // A payout submitted meanwhile (its quote at 6 sat/vB) leaves their coins alone — they are
    // the treasury's only mature ones: it waits for change rather than take a coin they will be
    // bid again from.
    gw.call("fees.set", json!({"sat_per_vb": 6}));
    let later_to = outside_address(50).to_string();
    let later = common::route_and_submit(&gw, &key, (&later_to, 20_000, "normal"), "onchain", "later");
    gw.call("fees.set", json!({"sat_per_vb": 1}));

    // Six blocks: both have waited their blocks, and are bid again; the batch's is stored, then
    // the gateway dies before broadcasting it.
    gw.env = vec![("SENDERO_FAILPOINT".into(), "batch.bumped".into())];
    gw.restart();
    chain.mine(6);
    wait_for("the batch bid again, then the abort", Duration::from_secs(120), || {
        gw.log().contains("failpoint reached")
    });
    gw.wait_exit();
    gw.env.clear();
    gw.start_again();
    let (mut single, mut rebid) = (String::new(), String::new());
    wait_for("both bid again in the mempool", Duration::from_secs(60), || {
        single = common::payment(&gw, &key, &id)["txid"].as_str().unwrap_or_default().to_owned();
        rebid = gw.call("batch.get", json!({"batch_id": left["batch_id"]}))["txid"].as_str().unwrap().to_owned();
        let pool = chain.mempool();
        single != txid && rebid != batch_txid && pool.contains(&single) && pool.contains(&rebid)
    });
    let batch = gw.call("batch.get", json!({"batch_id": left["batch_id"]}));
    let (single, rebid) = (chain.tx(&single), chain.tx(&rebid));
    assert_eq!(batch["replaced"][0]["txid"], batch_txid.as_str(), "{batch:#}");
    let spent =
        |t: &sendero_wallet::bitcoin::Transaction| t.input.iter().map(|i| i.previous_output).collect::<Vec<_>>();
    for (first, new) in firsts.iter().zip([&single, &rebid]) {
        assert!(chain.fee(new) * 1_000 / new.vsize() as u64 >= 5_000, "{new:?} pays what bitcoind takes now");
        assert!(spent(first).iter().all(|o| spent(new).contains(o)), "every coin of {}", first.compute_txid());
    }
    chain.mine(1);
    let p = common::settled(&gw, &key, &id);
    wait_for("the later payout settled", Duration::from_secs(120), || {
        let p = common::payment(&gw, &key, &later);
        if p["txid"].as_str().is_some_and(|t| chain.mempool().iter().any(|m| m == t)) {
            chain.mine(1);
        }
        p["status"] == "SETTLED"
    });
    let later_tx = chain.tx(common::payment(&gw, &key, &later)["txid"].as_str().unwrap());
    for first in &firsts {
        assert!(
            spent(&later_tx).iter().all(|o| !spent(first).contains(o)),
            "the later payout took none of their coins"
        );
    }
    assert_eq!(p["fee_paid_sat"].as_u64(), Some(chain.fee(&single)), "{p:#}");
    let shares: u64 = ids.iter().map(|id| common::settled(&gw, &key, id)["fee_paid_sat"].as_u64().unwrap()).sum();
    assert_eq!(shares, chain.fee(&rebid), "the shares are the new batch transaction's fee");
    let paid = chain.paid_after(start);
    for to in payees.iter().chain([&to, &later_to]) {
        assert_eq!(paid.get(to), Some(&1), "{to} is paid once");
    }
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}
