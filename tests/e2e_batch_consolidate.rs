//! Consolidation inside a batch on a real regtest bitcoind and senderod (`[batching] target_utxos
//! = 10`): the treasury holds 30 small coins, a big one, and a small coin a stored, refused batch
//! has signed away. At 5 sat/vB (above the 3 sat/vB consolidation threshold) a batch of three
//! payouts spends only the big coin. At 1 sat/vB the next batch also sweeps in the 22 smallest
//! free coins (32 UTXOs → 10): the chain shows them spent, the reserved coin not; the payouts
//! share the fee less what the extra coins cost, which the ledger books as `fees:consolidation`
//! (shares + consolidation part = the transaction's fee, to the sat), and `ledger.verify` holds.
//! A third batch at 1 sat/vB, the treasury at its target, sweeps nothing in, and its payouts'
//! shares are exactly those of the consolidating batch: consolidation cost them nothing.

mod common;

use std::collections::HashSet;

use common::coins::{account, coins, fund, new_address, pay_batched_low, reserve_with_a_refused_batch, synced};
use common::coins::{MINER, MINUTE};
use common::{http_get_with_key, outside_address, wait_for, AdminMode, Chain, Gateway};
use sendero_wallet::bitcoin::Transaction;
use serde_json::{json, Value};

/// A batch that left: `batch.get`, its transaction from the chain, its payouts' ids.
struct Left {
    batch: Value,
    tx: Transaction,
    ids: Vec<String>,
}

/// Queues three low payouts of 25 000 sat to `outside_address(seed..seed + 3)` and triggers the
/// batch; it is the only transaction in the mempool.
fn leave(chain: &Chain, gw: &Gateway, key: &str, seed: u8) -> Left {
    let ids: Vec<String> =
        (seed..seed + 3).map(|s| pay_batched_low(gw, key, &outside_address(s).to_string(), 25_000)).collect();
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
    Left { batch, tx: chain.tx(&txid), ids }
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
    let mut gw = Gateway::start_with(&chain, &dir, AdminMode::Socket, "human", "[batching]\ntarget_utxos = 10\n");
    chain.mine_to(102, &outside_address(MINER).to_string());
    let small = fund(&chain, 1, &[(new_address(&gw), 20_000)]);
    chain.mine(1);
    synced(&chain, &gw);
    let refused = reserve_with_a_refused_batch(&chain, &mut gw);
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
    let list = gw.call("batch.list", json!({}));
    assert_eq!(list["batches"][0]["consolidated_inputs"], 22, "{list:#}");
    assert_eq!(list["batches"][0]["consolidation_fee_sat"], consolidation);
    assert!(gw.log().contains("the batch consolidates small coins"));
    verified(&gw);
    let fees = settle(&chain, &gw, &key, &cheap);
    wait_for("10 coins", MINUTE, || coins(&gw).len() == 10);
    let mut paid = fees.clone();
    paid.sort_unstable();
    assert_eq!(paid, sorted_shares(&cheap.batch), "each payout settles with its share");
    assert_eq!(account(&gw, "fees:consolidation"), consolidation as i64 * 1_000);
    verified(&gw);

    // At the target: nothing swept in, and the payouts pay what the consolidating batch's did.
    let plain = leave(&chain, &gw, &key, 120);
    assert_eq!(plain.tx.input.len(), 1);
    assert_eq!(plain.batch["consolidated_inputs"], 0);
    assert_eq!(plain.batch["fee_sat"].as_u64(), Some(chain.fee(&plain.tx)));
    assert_eq!(sorted_shares(&plain.batch), sorted_shares(&cheap.batch), "consolidation cost the payouts nothing");
    settle(&chain, &gw, &key, &plain);
    wait_for("10 coins", MINUTE, || coins(&gw).len() == 10);
    assert!(coins(&gw).iter().any(|c| c.0 == reserved), "the reserved coin was never touched");
    assert!(!chain.mempool().contains(&refused));
    assert_eq!(account(&gw, "fees:consolidation"), consolidation as i64 * 1_000, "booked once");
    verified(&gw);
}
