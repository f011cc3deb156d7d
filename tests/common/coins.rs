//! The treasury's coins in end-to-end tests: many small coins funded from a coinbase in one
//! transaction, the spendable coins as `wallet.utxos` lists them, and a coin reserved by a stored
//! batch that bitcoind keeps refusing.

use std::time::Duration;

use super::{call_bitcoind, http_post, outside_address, wait_for, Chain, Gateway};
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

pub const MINUTE: Duration = Duration::from_secs(60);
/// The key of the coinbases the test spends (`outside_address(MINER)`).
pub const MINER: u8 = 7;

/// Spends the coinbase of block `height` (paid to `outside_address(MINER)`) to `outputs`, the
/// rest back to the miner less 10 000 sats of fee; its txid.
pub fn fund(chain: &Chain, height: u32, outputs: &[(String, u64)]) -> Txid {
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

pub fn synced(chain: &Chain, gw: &Gateway) {
    wait_for("sync", MINUTE, || gw.synced_height() == u64::from(chain.height()));
}

/// The treasury's spendable coins: outpoint → sats.
pub fn coins(gw: &Gateway) -> Vec<(String, u64)> {
    let utxos = gw.call("wallet.utxos", json!({}))["utxos"].as_array().unwrap().clone();
    utxos
        .iter()
        .filter(|u| u["spendable"] == true)
        .map(|u| (u["outpoint"].as_str().unwrap().to_owned(), u["amount_sat"].as_u64().unwrap()))
        .collect()
}

/// Routes `sat` to `address` at low priority and submits it on `onchain_batch`; its payment id.
pub fn pay_batched_low(gw: &Gateway, key: &str, address: &str, sat: u64) -> String {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": address, "priority": "low"});
    let (status, text) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{text}");
    let route: Value = serde_json::from_str(&text).unwrap();
    let submit = json!({"route_id": route["route_id"], "rail": "onchain_batch"});
    let idem = format!("batched-{}", route["route_id"].as_str().unwrap_or_default());
    let (status, text) = http_post(gw.api_port, "/v1/payments/submit", key, Some(&idem), &submit.to_string());
    assert_eq!(status, 202, "{text}");
    let paid: Value = serde_json::from_str(&text).unwrap();
    paid["payment_id"].as_str().unwrap().to_owned()
}

pub fn account(gw: &Gateway, name: &str) -> i64 {
    let b = gw.call("ledger.balances", json!({}));
    let found = b["accounts"].as_array().unwrap().iter().find(|a| a["account"] == name).cloned();
    found.map_or(0, |a| a["balance"].as_i64().unwrap())
}

pub fn new_address(gw: &Gateway) -> String {
    gw.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned()
}

/// A batch payout signed and stored, then the process aborted before its broadcast, whose
/// broadcast the saga then puts off for an hour (as after a failed attempt): started again, the
/// gateway keeps it stored and its coin reserved. The batch's txid.
pub fn reserve_with_a_stored_batch(gw: &mut Gateway) -> String {
    let key = gw.api_key("pay,read");
    let id = pay_batched_low(gw, &key, &outside_address(50).to_string(), 10_000);
    gw.env = vec![("SENDERO_FAILPOINT".into(), "batch.signed".into())];
    gw.restart();
    assert!(gw.try_call("batch.trigger", json!({})).is_err(), "the process aborts inside the call");
    gw.wait_exit();
    super::postpone_sending(gw, &id, 3_600);
    let store = super::books(&gw.datadir);
    let txid: String = store.query_row("SELECT txid FROM batches WHERE state = 'signed'", [], |r| r.get(0)).unwrap();
    drop(store);
    gw.env.clear();
    gw.start_again();
    txid
}
