//! Consolidation inside a batch on a real regtest bitcoind and senderod (`[batching] target_utxos
//! = 10`): the treasury holds 30 small coins, a big one, and a small coin a stored batch (its
//! broadcast put off) has signed away. At 5 sat/vB (above the 3 sat/vB consolidation threshold) a batch of three
//! payouts spends only the big coin. At 1 sat/vB the next batch also sweeps in the 22 smallest
//! free coins (32 UTXOs → 10): the chain shows them spent, the reserved coin not; the payouts
//! share the fee less what the extra coins cost, which the ledger books as `fees:consolidation`
//! (shares + consolidation part = the transaction's fee, to the sat), and `ledger.verify` holds.
//! A third batch at 1 sat/vB, the treasury at its target, sweeps nothing in, and its payouts'
//! shares are exactly those of the consolidating batch: consolidation cost them nothing. In
//! between, the consolidating batch is left out by miners while fees rise to 20 sat/vB and is
//! replaced: the same coins, their part of the fee ×20, the ledger exact with the replacement.

mod common;

use std::collections::HashSet;

use common::coins::{account, coins, fund, new_address, pay_batched_low, reserve_with_a_stored_batch, synced};
use common::coins::{MINER, MINUTE};
use common::{call_bitcoind, http_get_with_key, outside_address, wait_for, AdminMode, Chain, Gateway};
use sendero_wallet::bitcoin::Transaction;
use serde_json::{json, Value};

/// A batch that left: `batch.preview` just before, `batch.get`, its transaction from the chain,
/// its payouts' ids.
struct Left {
    preview: Value,
    batch: Value,
    tx: Transaction,
    ids: Vec<String>,
}

/// Queues three low payouts of 25 000 sat to `outside_address(seed..seed + 3)` and triggers the
/// batch; it is the only transaction in the mempool.
fn leave(chain: &Chain, gw: &Gateway, key: &str, seed: u8) -> Left {
    let ids: Vec<String> =
        (seed..seed + 3).map(|s| pay_batched_low(gw, key, &outside_address(s).to_string(), 25_000)).collect();
    let preview = gw.call("batch.preview", json!({}))["preview"].clone();
    let left = gw.cli(&["batch.trigger"]);
    assert_eq!(left["payouts"], 3, "{left}");
    let txid = left["txid"].as_str().unwrap().to_owned();
    assert_eq!(chain.mempool(), vec![txid.clone()], "one transaction: {left}");
    let batch = gw.call("batch.get", json!({"batch_id": left["batch_id"]}));
    eprintln!(
        "batch at {} sat/vB: {} inputs, fee {} sat, consolidated {} coins for {} sat, payouts' shares {}",
        batch["feerate_sat_vb"],
        chain.tx(&txid).input.len(),
        batch["fee_sat"],
        batch["consolidated_inputs"],
        batch["consolidation_fee_sat"],
        batch["fee_shares_sum_sat"]
    );
    Left { preview, batch, tx: chain.tx(&txid), ids }
}

/// Mines the batch and waits for its payouts to settle; their fees paid, in sats.
fn settle(chain: &Chain, gw: &Gateway, key: &str, left: &Left) -> Vec<u64> {
    chain.mine(1);
    synced(chain, gw);
    left.ids
        .iter()
        .map(|id| {
            let mut p = Value::Null;
            wait_for(&format!("{id} settled"), MINUTE, || {
                p = http_get_with_key(gw.api_port, &format!("/v1/payments/{id}"), Some(key)).1;
                p["status"] == "SETTLED"
            });
            p["fee_paid_sat"].as_u64().unwrap_or_else(|| panic!("{p}"))
        })
        .collect()
}

/// Keeps miners from `left`'s transaction, raises fees to `sat_per_vb` and mines until the
/// batcher replaces it; the batch with its replacement, which is then the mempool's only one.
fn replaced(chain: &Chain, gw: &Gateway, left: &Left, sat_per_vb: u64) -> Left {
    let first = left.tx.compute_txid().to_string();
    call_bitcoind(&chain.rpc(), "prioritisetransaction", &[json!(first), json!(0), json!(-100_000_000)]);
    gw.call("fees.set", json!({"sat_per_vb": sat_per_vb}));
    chain.mine(2);
    let mut batch = Value::Null;
    wait_for("the batch replaced", MINUTE, || {
        batch = gw.call("batch.get", json!({"batch_id": left.batch["batch_id"]}));
        batch["txid"] != first.as_str()
    });
    let second = batch["txid"].as_str().unwrap().to_owned();
    wait_for("the replacement in the mempool", MINUTE, || chain.mempool() == vec![second.clone()]);
    eprintln!(
        "replaced at {} sat/vB: fee {} sat, consolidation part {} sat, payouts' shares {}",
        batch["feerate_sat_vb"], batch["fee_sat"], batch["consolidation_fee_sat"], batch["fee_shares_sum_sat"]
    );
    Left { preview: left.preview.clone(), batch, tx: chain.tx(&second), ids: left.ids.clone() }
}

fn sorted_shares(batch: &Value) -> Vec<u64> {
    let mut shares: Vec<u64> =
        batch["payouts_detail"].as_array().unwrap().iter().map(|p| p["fee_share_sat"].as_u64().unwrap()).collect();
    shares.sort_unstable();
    shares
}

fn spent(t: &Transaction) -> HashSet<String> {
    t.input.iter().map(|i| i.previous_output.to_string()).collect()
}

fn verified(gw: &Gateway) {
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}

#[test]
fn a_cheap_batch_sweeps_in_small_coins_at_the_treasurys_cost() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("gw");
    let mut gw = Gateway::start_with(
        &chain,
        &dir,
        AdminMode::Socket,
        "human",
        "[batching]\ntarget_utxos = 10\nlow_bump_after_blocks = 2\n",
    );
    chain.mine_to(102, &outside_address(MINER).to_string());
    let small = fund(&chain, 1, &[(new_address(&gw), 20_000)]);
    chain.mine(1);
    synced(&chain, &gw);
    let stored = reserve_with_a_stored_batch(&mut gw);
    let reserved = format!("{small}:0");
    let mut outputs: Vec<(String, u64)> = (0..30u64).map(|i| (new_address(&gw), 30_000 + i * 10)).collect();
    outputs.push((new_address(&gw), 1_000_000_000));
    fund(&chain, 2, &outputs);
    chain.mine(1);
    synced(&chain, &gw);
    wait_for("32 coins", MINUTE, || coins(&gw).len() == 32);
    let key = gw.api_key("pay,read");

    // Above the threshold: the big coin alone pays, nothing is swept in.
    gw.call("fees.set", json!({"sat_per_vb": 5}));
    let dear = leave(&chain, &gw, &key, 100);
    assert_eq!(dear.tx.input.len(), 1, "the big coin only");
    assert_eq!(
        (dear.batch["consolidated_inputs"].as_u64(), dear.batch["consolidation_fee_sat"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(dear.batch["fee_shares_sum_sat"].as_u64(), Some(chain.fee(&dear.tx)));
    assert_eq!(dear.preview["consolidation_fee_sat"], 0, "{:#}", dear.preview);
    settle(&chain, &gw, &key, &dear);
    assert_eq!(coins(&gw).len(), 32, "one coin spent, one change");
    verified(&gw);

    // At 1 sat/vB with 32 coins: the 22 smallest free ones go in (32 − 1 + 1 − 22 = 10).
    gw.call("fees.set", json!({"sat_per_vb": 1}));
    let before = coins(&gw);
    let smallest: HashSet<String> =
        before.iter().filter(|c| (30_000..30_220).contains(&c.1)).map(|c| c.0.clone()).collect();
    assert_eq!(smallest.len(), 22);
    let biggest = before.iter().max_by_key(|c| c.1).unwrap().0.clone();
    let cheap = leave(&chain, &gw, &key, 110);
    let b = &cheap.batch;
    assert_eq!(b["consolidated_inputs"], 22, "{b:#}");
    assert_eq!(cheap.tx.input.len(), 23);
    let expected: HashSet<String> = smallest.iter().cloned().chain([biggest]).collect();
    assert_eq!(spent(&cheap.tx), expected, "the big coin and the 22 smallest; never the reserved one");
    assert_eq!(cheap.tx.output.len(), 4, "three payees and one change");
    // 22 P2WPKH inputs of 68 vB at 1 sat/vB.
    let consolidation = b["consolidation_fee_sat"].as_u64().unwrap();
    assert_eq!(consolidation, 22 * 68);
    let chain_fee = chain.fee(&cheap.tx);
    assert_eq!(b["fee_sat"].as_u64(), Some(chain_fee));
    assert_eq!(b["fee_shares_sum_sat"].as_u64().unwrap() + consolidation, chain_fee, "to the sat");
    // As batch.preview planned it (at 1 sat/vB its whole-vbyte rounding and BDK's agree).
    assert_eq!(cheap.preview["consolidation_fee_sat"].as_u64(), Some(consolidation), "{:#}", cheap.preview);
    assert_eq!(cheap.preview["batch_fee_sat"], b["fee_shares_sum_sat"]);
    let list = gw.call("batch.list", json!({}));
    assert_eq!(list["batches"][0]["consolidated_inputs"], 22, "{list:#}");
    assert_eq!(list["batches"][0]["consolidation_fee_sat"], consolidation);
    assert!(gw.log().contains("the batch consolidates small coins"));
    verified(&gw);
    let cheap_shares = sorted_shares(&cheap.batch);

    // Miners leave it out while fees rise: replaced at 20 sat/vB, the same coins swept in, their
    // part of the fee scaled with the feerate; the payouts share the rest.
    let bumped = replaced(&chain, &gw, &cheap, 20);
    assert_eq!(spent(&bumped.tx), expected, "the replacement sweeps the same coins");
    let b = &bumped.batch;
    assert_eq!(
        (b["consolidated_inputs"].as_u64(), b["consolidation_fee_sat"].as_u64()),
        (Some(22), Some(22 * 68 * 20))
    );
    assert_eq!(b["replaced"][0]["consolidation_fee_sat"], consolidation, "{b:#}");
    let consolidation = 22 * 68 * 20;
    let chain_fee = chain.fee(&bumped.tx);
    assert_eq!(b["fee_shares_sum_sat"].as_u64().unwrap() + consolidation, chain_fee, "to the sat");
    gw.call("fees.set", json!({"sat_per_vb": 1}));
    let fees = settle(&chain, &gw, &key, &bumped);
    wait_for("10 coins", MINUTE, || coins(&gw).len() == 10);
    let mut paid = fees.clone();
    paid.sort_unstable();
    assert_eq!(paid, sorted_shares(&bumped.batch), "each payout settles with its share of the fee that confirmed");
    assert_eq!(account(&gw, "fees:consolidation"), consolidation as i64 * 1_000);
    verified(&gw);

    // At the target: nothing swept in, and the payouts pay what the consolidating batch's did.
    let plain = leave(&chain, &gw, &key, 120);
    assert_eq!(plain.tx.input.len(), 1);
    assert_eq!(plain.batch["consolidated_inputs"], 0);
    assert_eq!(plain.batch["fee_sat"].as_u64(), Some(chain.fee(&plain.tx)));
    assert_eq!(sorted_shares(&plain.batch), cheap_shares, "consolidation cost the payouts nothing");
    settle(&chain, &gw, &key, &plain);
    wait_for("10 coins", MINUTE, || coins(&gw).len() == 10);
    assert!(coins(&gw).iter().any(|c| c.0 == reserved), "the reserved coin was never touched");
    assert!(!chain.mempool().contains(&stored));
    assert_eq!(account(&gw, "fees:consolidation"), consolidation as i64 * 1_000, "booked once");
    let report = gw.call("fees.report", json!({}));
    assert_eq!(report["treasury"]["consolidation_fee_sat"], consolidation, "{report:#}");
    verified(&gw);
}
