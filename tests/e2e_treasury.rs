//! `sendero-wallet` used directly against a real regtest bitcoind: sync by following blocks and
//! the mempool, payouts with several outputs, the vsize estimate routing will rely on, and fee
//! estimation with its fallback.

mod common;

use std::str::FromStr;
use std::sync::Arc;

use common::{outside_address, payment, wait_for, AdminMode, Chain, Gateway};
use sendero_wallet::bitcoin::{Amount, Denomination, OutPoint};
use sendero_wallet::keys::Mnemonic;
use sendero_wallet::{FeeSource, Feerate, Follower, Payee, Treasury, WalletError};
use serde_json::json;

const WORDS: &str = "legal winner thank year wave sausage worth useful legal winner thank yellow";

#[test]
fn multi_output_payout_matches_its_vsize_estimate() {
    let chain = Chain::start();
    let dir = tempfile::tempdir().unwrap();
    let mnemonic = Mnemonic::from_str(WORDS).unwrap();
    let db = dir.path().join("wallet.sqlite");
    let treasury = Treasury::open(&db, &mnemonic, sendero_wallet::bitcoin::Network::Regtest).unwrap();
    let rpc = Arc::new(chain.rpc());
    let mut follower = Follower::new(&treasury, Arc::clone(&rpc), 0);

    chain.mine_to(101, &treasury.new_address().unwrap().to_string());
    let report = follower.sync(&treasury).unwrap();
    assert_eq!((report.blocks_applied, report.synced_height), (101, 101));
    assert_eq!(treasury.balances().confirmed_sat, 100 * 100_000_000);

    // Regtest has no fee history: the fallback is used and said to be.
    let fee = rpc.estimate_feerate(6, 3).unwrap();
    assert_eq!((fee.feerate, fee.source), (Feerate::from_sat_per_vb(3), FeeSource::Fallback));

    let payees: Vec<Payee> =
        (1..=3u8).map(|i| Payee { address: outside_address(i), amount_sat: 10_000 * u64::from(i) }).collect();
    // 4.321 sat/vB, as bitcoind may estimate it: paid to the sat/kvB, not rounded up to 5.
    let rate = Feerate::from_sat_per_kvb(4_321);
    let estimate = treasury.estimate_payout_vsize(&payees, rate).unwrap();
    let utxos_before = treasury.utxos();
    let payout = treasury.pay(&rpc, &payees, rate).unwrap();
    // The estimate prices signatures at their largest; the real ones may be a byte shorter each.
    assert!(estimate >= payout.vsize && estimate - payout.vsize <= 2, "estimate {estimate} vs {}", payout.vsize);
    let paid_sat_kvb = payout.fee_sat * 1_000 / payout.vsize;
    assert!((4_321..4_400).contains(&paid_sat_kvb), "{} sat for {} vB", payout.fee_sat, payout.vsize);
    assert_eq!(treasury.utxos().len(), utxos_before.len(), "one coin spent, one change coin back");

    let raw = chain.raw_tx(&payout.txid.to_string());
    for p in &payees {
        let out =
            raw["vout"].as_array().unwrap().iter().find(|o| o["scriptPubKey"]["address"] == p.address.to_string());
        // bitcoind prints BTC with 8 decimals; read that text exactly, never through a float.
        let sats = out.map(|o| Amount::from_str_in(&o["value"].to_string(), Denomination::Bitcoin).unwrap().to_sat());
        assert_eq!(sats, Some(p.amount_sat), "output to {}", p.address);
    }
    assert_eq!(raw["vout"].as_array().unwrap().len(), 4, "three payees and change");

    // Replaced at the least bitcoind takes: its feerate plus bitcoind's incremental relay
    // feerate (0.1 sat/vB since v30), the old fee plus 0.1 sat/vB on its size (BIP125 rule 4),
    // not the 1 sat/vB over it that BDK's own fee bump asks.
    let step = rpc.incremental_feerate().unwrap();
    assert_eq!(step, 100);
    let pending = treasury.pending(&payout.txid.to_string()).unwrap();
    let asked = Feerate::from_sat_per_kvb(pending.effective_sat_kvb + step);
    let (replacement, bumped) =
        treasury.bump(&payout.txid.to_string(), asked, Feerate::from_sat_per_kvb(step), &[]).unwrap();
    treasury.publish(&rpc, &replacement).unwrap();
    eprintln!("replaced at {asked} asked, {} built: {} → {} sat", bumped.feerate, payout.fee_sat, bumped.fee_sat);
    assert!(bumped.feerate >= asked && (bumped.fee_sat - payout.fee_sat) * 10 >= bumped.vsize, "{bumped:?}");
    assert!(bumped.fee_sat - payout.fee_sat <= bumped.vsize / 10 + 5, "a tenth of a sat/vB more: {bumped:?}");
    assert_eq!(chain.mempool(), [bumped.txid.to_string()]);
    assert_eq!(chain.fee(&replacement), bumped.fee_sat);
    // bitcoind's relay floor is what the operator's feerates are lifted to: 0.1 sat/vB since v30.
    assert_eq!(rpc.relay_feerate().unwrap(), 100);

    // The mempool pass sees it; a block confirms it; a reopened wallet remembers all of it.
    chain.mine(1);
    follower.sync(&treasury).unwrap();
    let txid = bumped.txid.to_string();
    let confirmed = treasury.transactions().into_iter().find(|t| t.txid == txid).unwrap();
    assert_eq!(confirmed.confirmation_height, Some(102));
    assert_eq!(confirmed.sent_sat - confirmed.received_sat, 60_000 + bumped.fee_sat);
    let balances = treasury.balances();
    drop((follower, treasury));
    let reopened = Treasury::open(&db, &mnemonic, sendero_wallet::bitcoin::Network::Regtest).unwrap();
    assert_eq!(reopened.balances(), balances);
    assert_eq!(reopened.synced_height(), 102);

    // A payout that cannot be broadcast (bitcoind is down: a chain error, not a rejection) is not
    // kept: its coins stay spendable, history unchanged.
    let mut chain = chain;
    chain.node.stop();
    let to = Payee { address: outside_address(9), amount_sat: 50_000 };
    let two = Feerate::from_sat_per_vb(2);
    assert!(matches!(reopened.pay(&rpc, std::slice::from_ref(&to), two), Err(WalletError::Chain(_))));
    assert_eq!(reopened.transactions().len(), 102, "101 coinbases and the payout");
    assert_eq!(reopened.balances(), balances);
    assert!(reopened.estimate_payout_vsize(&[to], two).is_ok(), "coins were released");
    let too_much = Payee { address: outside_address(9), amount_sat: 21_000_000 * 100_000_000 };
    assert!(matches!(reopened.estimate_payout_vsize(&[too_much], two), Err(WalletError::InsufficientFunds { .. })));
}

/// A payout signed and stored but not yet broadcast (after a crash, or while its broadcast is
/// retried) keeps its coins: the next payout, told what stored transactions spend, picks others,
/// and both are taken by bitcoind whichever goes first. Not told, coin selection picks the same
/// coin, and the stored payout could then never be broadcast.
#[test]
fn a_payout_signed_but_not_broadcast_keeps_its_coins_from_the_next() {
    let chain = Chain::start();
    // Spendable coinbases of 50 BTC: one per block up to 100 below the next (four).
    let (_dir, treasury, rpc, _) = mined_to(&chain, 103);
    let rate = Feerate::from_sat_per_vb(2);
    let to = |i: u8| vec![Payee { address: outside_address(i), amount_sat: 100_000 }];
    let inputs =
        |tx: &sendero_wallet::bitcoin::Transaction| -> Vec<_> { tx.input.iter().map(|i| i.previous_output).collect() };

    let (stored, _) = treasury.prepare(&to(1), rate, &[]).unwrap();
    let unaware = treasury.prepare(&to(2), rate, &[]).unwrap().0;
    assert_eq!(inputs(&unaware), inputs(&stored), "coin selection alone picks the stored payout's coin");
    let (next, _) = treasury.prepare(&to(2), rate, &inputs(&stored)).unwrap();
    assert!(inputs(&next).iter().all(|o| !inputs(&stored).contains(o)), "{:?} vs {:?}", inputs(&next), inputs(&stored));

    // The next one leaves first; the stored one is still valid and leaves after it.
    treasury.publish(&rpc, &next).unwrap();
    treasury.publish(&rpc, &stored).unwrap();
    let mut mempool = chain.mempool();
    mempool.sort();
    let mut both = vec![next.compute_txid().to_string(), stored.compute_txid().to_string()];
    both.sort();
    assert_eq!(mempool, both);

    // Every coin held by stored transactions: not enough, and said so.
    let held: Vec<_> = treasury.utxos().iter().map(|u| u.outpoint.parse().unwrap()).collect();
    assert!(matches!(treasury.prepare(&to(3), rate, &held), Err(WalletError::InsufficientFunds { .. })));
}

/// A replacement broadcast in the same second as its original (the wallet's "last seen" counts
/// seconds, and a tie went to the larger txid) takes its place in the wallet at once: the
/// original's change is not spendable, so the next payout cannot spend an output bitcoind no
/// longer has (it failed `bad-txns-inputs-missingorspent` in the crash soak).
#[test]
fn a_replacement_takes_the_originals_place_in_the_wallet_at_once() {
    let chain = Chain::start();
    let (_dir, treasury, rpc, mut follower) = mined_to(&chain, 110);
    let rate = Feerate::from_sat_per_vb(2);
    let mut same_second = 0;
    for i in 0..8u8 {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let original = treasury.pay(&rpc, &[Payee { address: outside_address(100 + i), amount_sat: 30_000 }], rate);
        let original = original.unwrap().txid.to_string();
        let (replacement, _) =
            treasury.bump(&original, Feerate::from_sat_per_vb(4), Feerate::from_sat_per_kvb(100), &[]).unwrap();
        treasury.publish(&rpc, &replacement).unwrap();
        let ended = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        same_second += usize::from(started == ended);
        let replacement = replacement.compute_txid().to_string();
        let counted: Vec<String> = treasury.transactions().into_iter().map(|t| t.txid).collect();
        assert!(counted.contains(&replacement) && !counted.contains(&original), "{i}: {original} still counted");
        assert!(treasury.utxos().iter().all(|u| !u.outpoint.starts_with(&original)), "{i}: the original's change");
        assert_eq!(chain.mempool(), vec![replacement.clone()]);
        chain.mine(1);
        follower.sync(&treasury).unwrap();
    }
    eprintln!("{same_second} of 8 replacements broadcast in their original's second");
    assert!(same_second >= 4, "the case under test: a replacement in its original's second");
}

const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// A single payout built from a coin bitcoind already has spent — by a transaction of ours the
/// gateway's wallet has not seen yet (here another wallet on the same seed, the gateway polling
/// bitcoind once an hour) — is refused at its first broadcast. It never left, so it is built
/// again from another coin at the same feerate and leaves, instead of failing
/// `broadcast_rejected`; the payee is paid once.
#[test]
fn a_payout_refused_for_a_coin_already_spent_is_built_again_from_another() {
    let (chain, _home, mut gw, key, big) = spent_behind_its_back();
    let to = outside_address(93).to_string();
    let id = common::route_and_submit(&gw, &key, (&to, 40_000, "normal"), "onchain", "built-again");
    let txid = |id: &str| payment(&gw, &key, id)["txid"].as_str().map(str::to_owned);
    wait_for("the payout in the mempool or failed", MINUTE, || {
        payment(&gw, &key, &id)["status"] == "FAILED" || txid(&id).is_some_and(|t| chain.mempool().contains(&t))
    });
    let p = payment(&gw, &key, &id);
    assert_eq!(p["status"], "PENDING", "{p:#}\n{}", gw.log());
    let tx = chain.tx(&txid(&id).unwrap());
    assert!(tx.input.iter().all(|i| i.previous_output != big), "it spends another coin than the one spent");
    assert!(gw.log().contains("built again from others"), "the rebuild is logged");
    settles_paid_once(&chain, &mut gw, &key, &[(&id, &to)]);
}

/// The same for a batch: refused at its first broadcast for a coin already spent, it is built
/// again from another coin and leaves; the refused transaction is kept as replaced, every payout
/// points at the new one, and each payee is paid once.
#[test]
fn a_batch_refused_for_a_coin_already_spent_is_built_again_from_another() {
    let (chain, _home, mut gw, key, big) = spent_behind_its_back();
    let payees = [outside_address(94).to_string(), outside_address(95).to_string()];
    let (ids, left, txid) = common::batch_left(&gw, &key, &payees, "b");
    assert!(chain.mempool().contains(&txid), "it left");
    assert!(chain.tx(&txid).input.iter().all(|i| i.previous_output != big), "it spends another coin");
    let batch = gw.call("batch.get", json!({"batch_id": left["batch_id"]}));
    assert_eq!(batch["txid"], txid.as_str(), "{batch:#}");
    assert_eq!(batch["replaced"].as_array().map(Vec::len), Some(1), "the refused one is kept: {batch:#}");
    for id in &ids {
        assert!(payment(&gw, &key, id)["txid"].as_str().is_some_and(|t| t == txid), "{id} points at the new one");
    }
    assert!(gw.log().contains("built again from others"), "the rebuild is logged");
    let paid: Vec<(&str, &str)> = ids.iter().map(String::as_str).zip(payees.iter().map(String::as_str)).collect();
    settles_paid_once(&chain, &mut gw, &key, &paid);
}

/// A gateway holding two coins (1 BTC, and about 49 BTC, which coin selection picks first) whose
/// wallet polls bitcoind once an hour, and another wallet on its seed that has just spent the big
/// coin: the chain, the gateway's home, the gateway, a `pay,read` key and the big coin.
fn spent_behind_its_back() -> (Chain, tempfile::TempDir, Gateway, String, OutPoint) {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(&chain, &home.path().join("gw"), AdminMode::Socket);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(100, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let own = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    gw.call("wallet.send", json!({"address": own, "amount_sat": 100_000_000u64, "feerate_sat_vb": 2}));
    chain.mine(1);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let key = gw.api_key("pay,read");
    gw.env = vec![("SENDERO_BITCOIND_POLL_INTERVAL_MS".into(), "3600000".into())];
    gw.restart();
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));

    let dir = tempfile::tempdir().unwrap();
    let words = std::fs::read_to_string(gw.datadir.join("mnemonic")).unwrap();
    let mnemonic = Mnemonic::from_str(words.trim()).unwrap();
    let twin = Treasury::open(&dir.path().join("w.sqlite"), &mnemonic, sendero_wallet::bitcoin::Network::Regtest);
    let twin = twin.unwrap();
    let rpc = Arc::new(chain.rpc());
    Follower::new(&twin, Arc::clone(&rpc), 0).sync(&twin).unwrap();
    let payee = Payee { address: outside_address(92), amount_sat: 100_000 };
    let behind = twin.pay(&rpc, &[payee], Feerate::from_sat_per_vb(2)).unwrap().txid;
    let big = chain.tx(&behind.to_string()).input[0].previous_output;
    (chain, home, gw, key, big)
}

/// Back to following bitcoind (a restart), a block: each payout settles, its payee paid once,
/// and the books balance.
fn settles_paid_once(chain: &Chain, gw: &mut Gateway, key: &str, payouts: &[(&str, &str)]) {
    gw.env.clear();
    gw.restart();
    let height = chain.height();
    chain.mine(1);
    for (id, _) in payouts {
        wait_for("settled", MINUTE, || payment(gw, key, id)["status"] == "SETTLED");
    }
    let paid = chain.paid_after(height);
    for (id, to) in payouts {
        assert_eq!(paid.get(*to), Some(&1), "{id}: its payee is paid once");
    }
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

/// A treasury in a temporary directory, the chain mined to `height` into it and synced: the
/// directory (kept while the treasury is used), the treasury, bitcoind's RPC and the follower.
fn mined_to(
    chain: &Chain,
    height: u32,
) -> (tempfile::TempDir, Arc<Treasury>, Arc<sendero_wallet::ChainSource>, Follower) {
    let dir = tempfile::tempdir().unwrap();
    let mnemonic = Mnemonic::from_str(WORDS).unwrap();
    let treasury =
        Treasury::open(&dir.path().join("w.sqlite"), &mnemonic, sendero_wallet::bitcoin::Network::Regtest).unwrap();
    let rpc = Arc::new(chain.rpc());
    let mut follower = Follower::new(&treasury, Arc::clone(&rpc), 0);
    chain.mine_to(height, &treasury.new_address().unwrap().to_string());
    follower.sync(&treasury).unwrap();
    (dir, treasury, rpc, follower)
}

/// A payout that left and whose coin another transaction of the same seed then spends (replacing
/// it in the mempool, then confirmed): bitcoind refuses it from then on. One block deep the
/// conflict may still be undone, so the payout stays pending as it is; six blocks deep its
/// transaction can never confirm, and it is built again in a new family from other coins. The
/// gateway is killed right after storing the new transaction (`onchain.renewed`): after the
/// restart that one leaves, the payout settles with its fee, and its payee is paid once.
#[test]
fn a_payout_whose_coin_another_transaction_spent_is_built_again_once_that_one_is_buried() {
    let (chain, _home, mut gw, key, twin) = with_twin();
    gw.call("fees.set", json!({"sat_per_vb": 1}));
    let to = outside_address(94).to_string();
    let id = common::route_and_submit(&gw, &key, (&to, 40_000, "normal"), "onchain", "conflicted");
    let dead = common::broadcast(&gw, &key, &chain, &id);
    let (coin, by) = twin.spend_under(&chain, &dead);
    chain.mine(1);
    wait_for("the gateway to offer it again, refused", MINUTE, || gw.log().contains("bad-txns-inputs-missingorspent"));
    std::thread::sleep(std::time::Duration::from_secs(3));
    let p = payment(&gw, &key, &id);
    assert_eq!((p["status"].as_str(), p["txid"].as_str()), (Some("PENDING"), Some(dead.as_str())), "{p:#}");

    let renewed = buried_then_killed(&chain, &mut gw, "onchain.renewed");
    assert!(renewed.contains(&format!("{coin} is spent by {by}")), "{renewed}");
    let txid = payment(&gw, &key, &id)["txid"].as_str().unwrap().to_owned();
    assert_ne!(txid, dead, "the payout has a new transaction");
    let tx = chain.tx(&txid);
    assert!(tx.input.iter().all(|i| i.previous_output != coin), "it spends other coins");
    chain.mine(1);
    wait_for("settled", MINUTE, || payment(&gw, &key, &id)["status"] == "SETTLED");
    let p = payment(&gw, &key, &id);
    assert_eq!(p["fee_paid_sat"].as_u64(), Some(chain.fee(&tx)), "it pays its new transaction's fee: {p:#}");
    assert_eq!(chain.paid_after(0).get(&to), Some(&1), "its payee is paid once");
}

/// The same for a batch: six blocks after another transaction spent its coin, the batch is built
/// again in a new family — every payout's output in one new transaction, the dead one kept as
/// replaced — and the gateway killed right after storing it (`batch.renewed`); after the restart
/// it leaves, each payout settles with its share (the shares sum to its fee), each payee paid
/// once, and the books balance.
#[test]
fn a_batch_whose_coin_another_transaction_spent_is_built_again_once_that_one_is_buried() {
    let (chain, _home, mut gw, key, twin) = with_twin();
    gw.call("fees.set", json!({"sat_per_vb": 1}));
    let payees = [outside_address(96).to_string(), outside_address(97).to_string()];
    let (ids, left, dead) = common::batch_left(&gw, &key, &payees, "d");
    let (coin, by) = twin.spend_under(&chain, &dead);
    chain.mine(1);
    wait_for("the gateway to offer it again, refused", MINUTE, || gw.log().contains("bad-txns-inputs-missingorspent"));
    for id in &ids {
        assert_eq!(payment(&gw, &key, id)["status"], "PENDING", "one block deep, the conflict may still be undone");
    }

    let renewed = buried_then_killed(&chain, &mut gw, "batch.renewed");
    assert!(renewed.contains(&coin.to_string()) && renewed.contains(&by), "{renewed}");
    let batch = gw.call("batch.get", json!({"batch_id": left["batch_id"]}));
    let txid = batch["txid"].as_str().unwrap().to_owned();
    assert_ne!(txid, dead, "{batch:#}");
    let replaced: Vec<&str> = batch["replaced"].as_array().unwrap().iter().filter_map(|r| r["txid"].as_str()).collect();
    assert_eq!(replaced, vec![dead.as_str()], "the dead one is kept: {batch:#}");
    let tx = chain.tx(&txid);
    chain.mine(1);
    let mut shares = 0;
    for id in &ids {
        wait_for("settled", MINUTE, || payment(&gw, &key, id)["status"] == "SETTLED");
        let p = payment(&gw, &key, id);
        assert_eq!(p["txid"].as_str(), Some(txid.as_str()), "{p:#}");
        shares += p["fee_paid_sat"].as_u64().unwrap();
    }
    assert_eq!(shares, chain.fee(&tx), "the shares are the new transaction's fee");
    let paid = chain.paid_after(0);
    for to in &payees {
        assert_eq!(paid.get(to), Some(&1), "{to} is paid once");
    }
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

/// A funded gateway (102 blocks mined to it) and another wallet on its seed, synced now, before
/// any payout leaves: the chain, the gateway's home, the gateway, a `pay,read` key and the twin.
fn with_twin() -> (Chain, tempfile::TempDir, Gateway, String, Twin) {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&chain, &home.path().join("gw"), AdminMode::Socket);
    let address = gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(102, &address);
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
    let key = gw.api_key("pay,read");
    let dir = tempfile::tempdir().unwrap();
    let words = std::fs::read_to_string(gw.datadir.join("mnemonic")).unwrap();
    let treasury = Treasury::open(
        &dir.path().join("w.sqlite"),
        &Mnemonic::from_str(words.trim()).unwrap(),
        sendero_wallet::bitcoin::Network::Regtest,
    )
    .unwrap();
    let rpc = Arc::new(chain.rpc());
    Follower::new(&treasury, Arc::clone(&rpc), 0).sync(&treasury).unwrap();
    (chain, home, gw, key, Twin { _dir: dir, treasury, rpc })
}

/// A wallet on the gateway's seed that spends its coins behind its back.
struct Twin {
    _dir: tempfile::TempDir,
    treasury: Arc<Treasury>,
    rpc: Arc<sendero_wallet::ChainSource>,
}

impl Twin {
    /// Sweeps the first coin the gateway's `txid` spends and another mature one into the twin's
    /// own address, paying more: it replaces `txid` in the mempool. That coin and the sweep.
    fn spend_under(&self, chain: &Chain, txid: &str) -> (OutPoint, String) {
        let coin = chain.tx(txid).input[0].previous_output;
        let other = self
            .treasury
            .utxos()
            .into_iter()
            .filter(|u| u.confirmation_height <= Some(3))
            .map(|u| OutPoint::from_str(&u.outpoint).unwrap())
            .find(|o| *o != coin)
            .unwrap();
        let (sweep, _) = self.treasury.prepare_sweep(&[coin, other], 10_000).unwrap();
        self.treasury.publish(&self.rpc, &sweep).unwrap();
        let by = sweep.compute_txid().to_string();
        assert_eq!(chain.mempool(), vec![by.clone()], "the sweep replaced {txid}");
        (coin, by)
    }
}

/// With `failpoint` armed (a restart), five more blocks bury the conflict six deep: the gateway
/// builds the transaction again, stores it and aborts. Started again without the failpoint, that
/// transaction leaves. The log line that said why (the one before the abort).
fn buried_then_killed(chain: &Chain, gw: &mut Gateway, failpoint: &str) -> String {
    gw.env = vec![("SENDERO_FAILPOINT".into(), failpoint.into())];
    gw.restart();
    chain.mine(4);
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!gw.log().contains("failpoint reached"), "five blocks deep, it is left as it is");
    chain.mine(1);
    wait_for("built again, then the abort", std::time::Duration::from_secs(150), || {
        gw.log().contains("failpoint reached")
    });
    gw.wait_exit();
    let why = gw.log().lines().rev().find(|l| l.contains("new family")).unwrap_or_default().to_owned();
    assert!(chain.mempool().is_empty(), "nothing left before the abort");
    gw.env.clear();
    gw.start_again();
    wait_for("the new transaction in the mempool", MINUTE, || !chain.mempool().is_empty());
    why
}
