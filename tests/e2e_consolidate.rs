//! Standalone UTXO consolidation on a real regtest bitcoind and senderod: the treasury holds 100
//! small coins, a big one, and a small coin that a stored, signed batch (whose broadcast
//! bitcoind keeps refusing) has already spent. At 1 sat/vB `consolidate.preview` plans the 53
//! smallest free coins (102 → 50 UTXOs, the target) and leaves the reserved coin alone;
//! `consolidate.run` broadcasts exactly that; once mined the wallet holds 50 coins and exactly
//! the fee (read from the chain) less, and the ledger books it as `fees:consolidation`. Above
//! the threshold it is refused (`feerate_too_high`), at the target `nothing_to_consolidate`, and
//! nothing changes; the background check then consolidates on its own once the target is lowered.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{call_bitcoind, http_post, outside_address, wait_for, AdminMode, Chain, Gateway};
use sendero_wallet::bitcoin::consensus::encode::serialize_hex;
use sendero_wallet::bitcoin::ecdsa::Signature;
use sendero_wallet::bitcoin::hashes::Hash;
use sendero_wallet::bitcoin::key::{CompressedPublicKey, Secp256k1};
use sendero_wallet::bitcoin::secp256k1::{Message, SecretKey};
use sendero_wallet::bitcoin::sighash::{EcdsaSighashType, SighashCache};
use sendero_wallet::bitcoin::transaction::Version;
use sendero_wallet::bitcoin::{absolute, Address, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut};
use sendero_wallet::bitcoin::{Txid, Witness};
use serde_json::{json, Value};

const MINUTE: Duration = Duration::from_secs(60);
/// The key of the coinbases the test spends (`outside_address(MINER)`).
const MINER: u8 = 7;

/// Spends the coinbase of block `height` (paid to `outside_address(MINER)`) to `outputs`, the
/// rest back to the miner less 10 000 sats of fee; its txid.
fn fund(chain: &Chain, height: u32, outputs: &[(String, u64)]) -> Txid {
    let hash = call_bitcoind(&chain.rpc(), "getblockhash", &[json!(height)]);
    let block = call_bitcoind(&chain.rpc(), "getblock", &[hash, json!(1)]);
    let coinbase = chain.tx(block["tx"][0].as_str().unwrap());
    let miner = outside_address(MINER).script_pubkey();
    let (value, prev) = (coinbase.output[0].value, coinbase.output[0].script_pubkey.clone());
    assert_eq!(prev, miner);
    let mut out: Vec<TxOut> = outputs
        .iter()
        .map(|(a, sat)| TxOut {
            value: Amount::from_sat(*sat),
            script_pubkey: a.parse::<Address<_>>().unwrap().assume_checked().script_pubkey(),
        })
        .collect();
    let spent: u64 = outputs.iter().map(|o| o.1).sum();
    out.push(TxOut { value: value - Amount::from_sat(spent + 10_000), script_pubkey: miner });
    let mut t = Transaction {
        version: Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint { txid: coinbase.compute_txid(), vout: 0 },
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness: Witness::new(),
        }],
        output: out,
    };
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[MINER; 32]).unwrap();
    let pk = CompressedPublicKey(sk.public_key(&secp));
    let sighash = SighashCache::new(&t).p2wpkh_signature_hash(0, &prev, value, EcdsaSighashType::All).expect("sighash");
    let signature = secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &sk);
    t.input[0].witness = Witness::p2wpkh(&Signature::sighash_all(signature), &pk.0);
    let txid = call_bitcoind(&chain.rpc(), "sendrawtransaction", &[json!(serialize_hex(&t))]);
    txid.as_str().unwrap().parse().unwrap()
}

fn synced(chain: &Chain, gw: &Gateway) {
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
}

/// The treasury's spendable coins: outpoint → sats.
fn coins(gw: &Gateway) -> Vec<(String, u64)> {
    let utxos = gw.call("wallet.utxos", json!({}))["utxos"].as_array().unwrap().clone();
    utxos
        .iter()
        .filter(|u| u["spendable"] == true)
        .map(|u| (u["outpoint"].as_str().unwrap().to_owned(), u["amount_sat"].as_u64().unwrap()))
        .collect()
}

/// Routes `sat` to `address` at low priority and submits it on `onchain_batch`.
fn pay_batched_low(gw: &Gateway, key: &str, address: &str, sat: u64) {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": address, "priority": "low"});
    let (status, text) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{text}");
    let route: Value = serde_json::from_str(&text).unwrap();
    let submit = json!({"route_id": route["route_id"], "rail": "onchain_batch"});
    let (status, text) = http_post(gw.api_port, "/v1/payments/submit", key, Some("reserve"), &submit.to_string());
    assert_eq!(status, 202, "{text}");
}

fn account(gw: &Gateway, name: &str) -> i64 {
    let b = gw.call("ledger.balances", json!({}));
    let found = b["accounts"].as_array().unwrap().iter().find(|a| a["account"] == name).cloned();
    found.map_or(0, |a| a["balance"].as_i64().unwrap())
}

fn new_address(gw: &Gateway) -> String {
    gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned()
}

/// A batch payout signed and stored, then the process aborted before its broadcast; bitcoind is
/// told to refuse it (a fee delta of −1 BTC), so it stays stored and its coin reserved. The
/// batch's txid.
fn reserve_with_a_refused_batch(chain: &Chain, gw: &mut Gateway) -> String {
    let key = gw.api_key("pay,read");
    pay_batched_low(gw, &key, &outside_address(50).to_string(), 10_000);
    gw.env = vec![("SENDERO_FAILPOINT".into(), "batch.signed".into())];
    gw.restart();
    assert!(gw.try_call("batch.trigger", json!({})).is_err(), "the process aborts inside the call");
    gw.wait_exit();
    let store = rusqlite::Connection::open(gw.datadir.join("sendero.sqlite")).unwrap();
    let txid: String = store.query_row("SELECT txid FROM batches WHERE state = 'signed'", [], |r| r.get(0)).unwrap();
    drop(store);
    call_bitcoind(&chain.rpc(), "prioritisetransaction", &[json!(txid), json!(0), json!(-100_000_000)]);
    gw.env.clear();
    gw.start_again();
    wait_for("the batch refused again", MINUTE, || gw.log().contains("bitcoind refused batch"));
    assert!(chain.mempool().is_empty());
    txid
}

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
    let batch_txid = reserve_with_a_refused_batch(&chain, &mut gw);
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
    let audit = gw.call("audit.list", json!({}));
    assert!(audit.to_string().contains("consolidate.run"), "{audit}");

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
