//! Standalone UTXO consolidation on a real regtest bitcoind and senderod: the treasury holds 100
//! small coins, a big one, and a small coin that a stored, signed batch (whose broadcast the
//! saga has put off, as after a failed attempt) has already spent. At 1 sat/vB `consolidate.preview` plans the 53
//! smallest free coins (102 → 50 UTXOs, the target) and leaves the reserved coin alone;
//! `consolidate.run` broadcasts exactly that; once mined the wallet holds 50 coins and exactly
//! the fee (read from the chain) less, and the ledger books it as `fees:consolidation`. Above
//! the threshold it is refused (`feerate_too_high`), at the target `nothing_to_consolidate`, and
//! nothing changes; the background check then consolidates on its own once the target is lowered.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::coins::{account, coins, fund, new_address, reserve_with_a_stored_batch, synced, MINER, MINUTE};
use common::{outside_address, wait_for, AdminMode, Chain, Gateway};
use serde_json::{json, Value};

#[test]
fn small_coins_are_swept_into_one_and_the_ledger_books_only_the_fee() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start_with(&chain, &home.path().join("gw"), AdminMode::Socket, "human", "");
    chain.mine_to(102, &outside_address(MINER).to_string());
    // A small coin alone in the treasury, which a batch then signs away.
    let small = fund(&chain, 1, &[(new_address(&gw), 20_000)]);
    chain.mine(1);
    synced(&chain, &gw);
    let batch_txid = reserve_with_a_stored_batch(&mut gw);
    let reserved = format!("{small}:0");

    // 100 small coins and a big one.
    let mut outputs: Vec<(String, u64)> = (0..100u64).map(|i| (new_address(&gw), 30_000 + i * 10)).collect();
    outputs.push((new_address(&gw), 1_000_000_000));
    fund(&chain, 2, &outputs);
    chain.mine(1);
    synced(&chain, &gw);
    wait_for("102 coins", MINUTE, || coins(&gw).len() == 102);
    assert!(coins(&gw).iter().any(|c| c.0 == reserved), "the reserved coin is still unspent in the wallet");
    gw.call("fees.set", json!({"sat_per_vb": 1}));

    let plan = gw.call("consolidate.preview", json!({}));
    let mut shown = plan.clone();
    shown["inputs"] = json!(format!("{} outpoints", plan["inputs"].as_array().unwrap().len()));
    eprintln!("consolidate.preview: {shown}");
    assert_eq!(plan["input_count"], 53, "102 − 50 + 1: {plan:#}");
    assert_eq!((plan["utxos_before"].as_u64(), plan["utxos_after"].as_u64()), (Some(102), Some(50)));
    assert_eq!(plan["reserved"], 1, "{plan:#}");
    let inputs: HashSet<String> =
        plan["inputs"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().into()).collect();
    assert!(!inputs.contains(&reserved), "the coin the stored batch spends is never planned");
    let smallest: HashSet<String> =
        coins(&gw).into_iter().filter(|c| c.1 >= 30_000 && c.1 < 30_530).map(|c| c.0).collect();
    assert_eq!(inputs, smallest, "the 53 smallest free coins");
    // 42 + 53 × 272 + 124 = 14 582 WU → 3646 vB at 1 sat/vB.
    assert_eq!((plan["vsize"].as_u64(), plan["fee_sat"].as_u64()), (Some(3_646), Some(3_646)));
    assert_eq!(plan["feerate_sat_kvb"], 1_000);
    assert_eq!(plan["later_cost_sat"], 53 * 680, "68 vB each at the reference 10 sat/vB");
    assert_eq!(plan["saving_sat"], 53 * 680 - 3_646);
    let input_sat: u64 = (0..53u64).map(|i| 30_000 + i * 10).sum();
    assert_eq!(plan["input_sat"], input_sat);

    // Bounded by max_inputs; previewed at a feerate above the threshold: refused.
    let bounded = gw.cli(&["consolidate.preview", "--max-inputs", "20"]);
    assert_eq!((bounded["input_count"].as_u64(), bounded["utxos_after"].as_u64()), (Some(20), Some(83)));
    assert_eq!(gw.error_code("consolidate.preview", json!({"feerate_sat_vb": 4})), "feerate_too_high");
    assert_eq!(gw.error_code("consolidate.preview", json!({"max_inputs": 1})), "invalid_max_inputs");
    assert_eq!(gw.call("consolidate.preview", json!({"feerate_sat_vb": 3}))["fee_sat"], 3 * 3_646);

    let before: u64 = coins(&gw).iter().map(|c| c.1).sum();
    let ran = gw.cli(&["consolidate.run"]);
    eprintln!("consolidate.run: txid {} fee_sat {} actual_vsize {}", ran["txid"], ran["fee_sat"], ran["actual_vsize"]);
    let txid = ran["txid"].as_str().unwrap().to_owned();
    assert_eq!(chain.mempool(), vec![txid.clone()], "{ran:#}");
    let t = chain.tx(&txid);
    assert_eq!(t.input.len(), 53);
    assert_eq!(t.output.len(), 1, "one output, the treasury's own");
    let chain_fee = chain.fee(&t);
    assert_eq!(ran["fee_sat"], chain_fee);
    assert_eq!(chain_fee, 3_646, "the planned fee exactly");
    let spent: HashSet<String> = t.input.iter().map(|i| i.previous_output.to_string()).collect();
    assert_eq!(spent, inputs, "exactly the previewed coins");
    // Unconfirmed, the ledger still proves every sat.
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");

    chain.mine(1);
    synced(&chain, &gw);
    wait_for("the consolidation confirmed", MINUTE, || coins(&gw).len() == 50);
    let after: u64 = coins(&gw).iter().map(|c| c.1).sum();
    assert_eq!(before - after, chain_fee, "the treasury lost exactly the fee");
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
    assert_eq!(account(&gw, "fees:consolidation"), chain_fee as i64 * 1_000);
    // Audited once built, before its broadcast, with its txid; then with what was done.
    let audit = gw.call("audit.list", json!({}))["entries"].as_array().unwrap().clone();
    let runs: Vec<&Value> =
        audit.iter().filter(|e| e["action"].as_str().unwrap().starts_with("consolidate.run")).collect();
    let actions: Vec<&str> = runs.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["consolidate.run.requested", "consolidate.run"], "{audit:#?}");
    assert_eq!(
        (runs[0]["details"]["txid"].as_str(), runs[0]["details"]["fee_sat"].as_u64()),
        (Some(txid.as_str()), Some(chain_fee))
    );
    assert_eq!(
        (runs[1]["details"]["txid"].as_str(), &runs[1]["details"]["request_seq"]),
        (Some(txid.as_str()), &runs[0]["seq"])
    );

    // Above the threshold: refused, nothing moves.
    gw.call("fees.set", json!({"sat_per_vb": 10}));
    assert_eq!(gw.error_code("consolidate.run", json!({})), "feerate_too_high");
    assert_eq!(gw.error_code("consolidate.run", json!({"force": true})), "nothing_to_consolidate");
    gw.call("fees.set", json!({"sat_per_vb": 1}));
    assert_eq!(gw.error_code("consolidate.run", json!({})), "nothing_to_consolidate", "50 coins, the target");
    std::thread::sleep(Duration::from_secs(1));
    assert!(chain.mempool().is_empty());
    assert_eq!(coins(&gw).len(), 50);
    assert!(coins(&gw).iter().any(|c| c.0 == reserved), "the reserved coin was never touched");
    assert!(!chain.mempool().contains(&batch_txid));

    // The background check, with the target lowered to 10: it consolidates on its own.
    gw.env = vec![
        ("SENDERO_BATCHING_TARGET_UTXOS".into(), "10".into()),
        ("SENDERO_BATCHING_CONSOLIDATION_INTERVAL_SECS".into(), "1".into()),
    ];
    gw.restart();
    wait_for("an automatic consolidation", MINUTE, || {
        chain.mempool().len() == 1 && gw.log().contains("consolidated the treasury's small coins")
    });
    let log = gw.log();
    eprintln!("{}", log.lines().find(|l| l.contains("consolidated the treasury's small coins")).unwrap_or_default());
    chain.mine(1);
    synced(&chain, &gw);
    wait_for("10 coins", MINUTE, || coins(&gw).len() == 10);
    std::thread::sleep(Duration::from_secs(2));
    assert!(chain.mempool().is_empty(), "once, not again");
    let v = gw.call("ledger.verify", json!({}));
    assert_eq!(v["ok"], true, "{v:#}");
}
