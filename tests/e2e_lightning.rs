//! Two real senderod processes on one regtest bitcoind, each with its embedded ldk-node: A opens a
//! channel to B funded from its treasury, B invoices and A pays, B pays back by keysend, both
//! daemons restart and keep their channels, payments and balances; refusals change nothing.

mod common;

use std::time::Duration;

use common::ln::{
    capacity, channel, ln_info, open_channel, pair, pay_b, payment, payment_by_hash, splice_in, wait_ln_running, Pair,
    MINUTE,
};
use common::{wait_for, Gateway};
use serde_json::{json, Value};

/// What the daemon's own store recorded from the node's events.
fn stored_payment(gw: &Gateway, id: &str) -> Option<(String, String, i64, Option<String>)> {
    let conn = common::books(&gw.datadir);
    conn.query_row(
        "SELECT direction, status, amount_msat, payment_hash FROM ln_payments WHERE payment_id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .ok()
}

#[test]
fn channel_payments_and_restarts_between_two_gateways() {
    let p = pair();
    let (a, b) = (&p.a, &p.b);

    // Refused before any money moves: a channel larger than A's treasury, a bad node id.
    let treasury_before = a.balance();
    let peer = format!("127.0.0.1:{}", b.ln_port);
    let code =
        a.error_code("ln.open_channel", json!({"node_id": p.b_id, "addr": peer, "amount_sat": 50_000_000_000u64}));
    assert_eq!(code, "insufficient_funds");
    assert_eq!(
        a.error_code("ln.open_channel", json!({"node_id": "02abc", "addr": peer, "amount_sat": 100_000})),
        "invalid_node_id"
    );
    assert_eq!(a.balance(), treasury_before);

    let channel_id = open_channel(&p, 1_000_000);
    let Pair { chain: _chain, mut a, mut b, a_id, b_id, _home } = p;
    let ch = channel(&a).unwrap();
    assert_eq!(ch["capacity_sat"], 1_000_000);
    assert_eq!(ch["counterparty_node_id"], b_id.as_str());
    assert_eq!(ch["channel_id"], channel_id.as_str());
    assert_eq!(ch["ready"], true);
    assert!(ch["outbound_msat"].as_u64().unwrap() > 900_000_000, "{ch}");
    assert_eq!(channel(&b).unwrap()["channel_id"], ch["channel_id"]);
    assert!(ln_info(&a)["outbound_msat"].as_u64().unwrap() > 900_000_000);

    // B invoices 50,000 sat; A pays; both record it settled with the same amount and hash.
    let inv = b.call("ln.invoice", json!({"amount_msat": 50_000_000, "description": "order 1", "expiry_secs": 600}));
    let (bolt11, hash) = (inv["bolt11"].as_str().unwrap().to_owned(), inv["payment_hash"].as_str().unwrap().to_owned());
    assert!(bolt11.starts_with("lnbcrt500u"), "{bolt11}");
    let paid = a.call("ln.pay", json!({"invoice": bolt11}));
    let pay_id = paid["payment_id"].as_str().unwrap().to_owned();
    wait_for("A's payment to succeed", MINUTE, || payment(&a, &pay_id).is_some_and(|p| p["status"] == "succeeded"));
    wait_for("B to receive", MINUTE, || payment_by_hash(&b, &hash).is_some_and(|p| p["status"] == "succeeded"));
    let (sent, received) = (payment(&a, &pay_id).unwrap(), payment_by_hash(&b, &hash).unwrap());
    assert_eq!(
        (sent["amount_msat"].clone(), sent["payment_hash"].clone(), sent["direction"].clone()),
        (json!(50_000_000), json!(hash), json!("outbound"))
    );
    assert_eq!((received["amount_msat"].clone(), received["direction"].clone()), (json!(50_000_000), json!("inbound")));
    assert_eq!(sent["fee_paid_msat"], 0, "a direct channel pays no routing fee");
    wait_for("both stores to record it", MINUTE, || {
        stored_payment(&a, &pay_id).is_some_and(|p| p.1 == "succeeded")
            && stored_payment(&b, received["payment_id"].as_str().unwrap()).is_some()
    });
    assert_eq!(
        stored_payment(&a, &pay_id).unwrap(),
        ("outbound".into(), "succeeded".into(), 50_000_000, Some(hash.clone()))
    );
    let b_row = stored_payment(&b, received["payment_id"].as_str().unwrap()).unwrap();
    assert_eq!(b_row, ("inbound".into(), "succeeded".into(), 50_000_000, Some(hash.clone())));

    // Refusals that change nothing.
    let outbound_before = channel(&a).unwrap()["outbound_msat"].clone();
    assert_eq!(a.error_code("ln.pay", json!({"invoice": bolt11})), "duplicate_payment");
    let big =
        b.call("ln.invoice", json!({"amount_msat": 2_000_000_000u64, "description": "too big", "expiry_secs": 600}));
    assert_eq!(a.error_code("ln.pay", json!({"invoice": big["bolt11"]})), "insufficient_liquidity");
    let short = b.call("ln.invoice", json!({"amount_msat": 1_000, "description": "short", "expiry_secs": 1}));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.error_code("ln.pay", json!({"invoice": short["bolt11"]})), "invoice_expired");
    assert_eq!(a.error_code("ln.pay", json!({"invoice": "lnbcrt1notaninvoice"})), "invalid_invoice");
    assert_eq!(a.error_code("ln.pay", json!({"offer": "lno1notanoffer"})), "invalid_offer");
    assert_eq!(a.error_code("ln.pay", json!({"invoice": mainnet_invoice()})), "wrong_network");
    assert_eq!(a.error_code("ln.keysend", json!({"node_id": b_id, "amount_msat": 0})), "invalid_amount");
    assert_eq!(channel(&a).unwrap()["outbound_msat"], outbound_before);

    // What moved money is audited once done, with what was asked and the answer; no refusal is.
    let ln_audit = |gw: &Gateway| -> Vec<(String, Value)> {
        let entries = gw.call("audit.list", json!({}))["entries"].as_array().unwrap().clone();
        entries
            .into_iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("ln."))
            .map(|e| (e["action"].as_str().unwrap().to_owned(), e["details"].clone()))
            .collect()
    };
    let audited = ln_audit(&a);
    let actions: Vec<&str> = audited.iter().map(|(action, _)| action.as_str()).collect();
    assert_eq!(actions, ["ln.open_channel", "ln.pay"], "{audited:#?}");
    assert_eq!(
        (audited[0].1["asked"]["node_id"].as_str(), audited[0].1["asked"]["amount_sat"].as_u64()),
        (Some(b_id.as_str()), Some(1_000_000))
    );
    assert_eq!(
        (audited[1].1["asked"]["destination"].as_str(), audited[1].1["answer"]["payment_id"].as_str()),
        (Some(bolt11.as_str()), Some(pay_id.as_str()))
    );
    assert_eq!(ln_audit(&b).iter().map(|(action, _)| action.as_str()).collect::<Vec<_>>(), ["ln.fund"]);

    // Restart both: channel, payments and balances are all still there.
    let (a_payments, b_payments) = (a.call("ln.payments", json!({})), b.call("ln.payments", json!({})));
    let a_ln_balance = a.call("ln.balance", json!({}))["lightning_sat"].clone();
    a.restart();
    b.restart();
    wait_ln_running(&a);
    wait_ln_running(&b);
    wait_for("the channel to be usable again after restarts", MINUTE, || {
        channel(&a).is_some_and(|c| c["usable"] == true) && channel(&b).is_some_and(|c| c["usable"] == true)
    });
    assert_eq!(a.call("ln.payments", json!({})), a_payments);
    assert_eq!(b.call("ln.payments", json!({})), b_payments);
    assert_eq!(a.call("ln.balance", json!({}))["lightning_sat"], a_ln_balance);

    // B pays A back by keysend.
    let ks = b.call("ln.keysend", json!({"node_id": a_id, "amount_msat": 10_000_000}));
    let ks_id = ks["payment_id"].as_str().unwrap().to_owned();
    wait_for("the keysend to succeed", MINUTE, || payment(&b, &ks_id).is_some_and(|p| p["status"] == "succeeded"));
    let ks_hash = payment(&b, &ks_id).unwrap()["payment_hash"].as_str().unwrap().to_owned();
    wait_for("A to receive the keysend", MINUTE, || {
        payment_by_hash(&a, &ks_hash).is_some_and(|p| p["status"] == "succeeded")
    });
    assert_eq!(payment_by_hash(&a, &ks_hash).unwrap()["amount_msat"], 10_000_000);
    assert_eq!(payment_by_hash(&a, &ks_hash).unwrap()["kind"], "spontaneous");

    // B pays A back over BOLT12 too.
    let offer = a.call("ln.offer", json!({"amount_msat": 5_000_000, "description": "tip jar"}))["offer"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(offer.starts_with("lno1"), "{offer}");
    let via_offer = b.call("ln.pay", json!({"offer": offer}));
    let offer_id = via_offer["payment_id"].as_str().unwrap().to_owned();
    wait_for("the BOLT12 payment to succeed", MINUTE, || {
        payment(&b, &offer_id).is_some_and(|p| p["status"] == "succeeded")
    });
    let offer_paid = payment(&b, &offer_id).unwrap();
    assert_eq!(
        (offer_paid["kind"].clone(), offer_paid["amount_msat"].clone()),
        (json!("bolt12_offer"), json!(5_000_000))
    );
    let offer_hash = offer_paid["payment_hash"].as_str().unwrap().to_owned();
    wait_for("A to receive over BOLT12", MINUTE, || {
        payment_by_hash(&a, &offer_hash).is_some_and(|p| p["status"] == "succeeded")
    });

    // An event whose recording fails is still acknowledged: with B's store locked by another
    // writer, B's node keeps going; the next payment after the lock is released is recorded.
    let lock = common::books(&b.datadir);
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let first =
        b.call("ln.invoice", json!({"amount_msat": 2_000_000, "description": "while locked", "expiry_secs": 600}));
    let first_id = a.call("ln.pay", json!({"invoice": first["bolt11"]}))["payment_id"].as_str().unwrap().to_owned();
    let first_hash = first["payment_hash"].as_str().unwrap().to_owned();
    wait_for("B's node to take the payment", MINUTE, || {
        payment_by_hash(&b, &first_hash).is_some_and(|p| p["status"] == "succeeded")
    });
    // This payment's event, not another one the lock caught (a channel's, after the restarts).
    let gave_up = |l: &str| {
        l.contains("acknowledging it anyway")
            && l.contains("PaymentReceived")
            && (l.contains("amount_msat: 2000000,") || l.contains("amount_msat: 2000000 "))
    };
    wait_for("B to give up recording it", MINUTE, || b.log().lines().any(gave_up));
    lock.execute_batch("ROLLBACK").unwrap();
    let second = b.call("ln.invoice", json!({"amount_msat": 3_000_000, "description": "after", "expiry_secs": 600}));
    a.call("ln.pay", json!({"invoice": second["bolt11"]}));
    let second_hash = second["payment_hash"].as_str().unwrap().to_owned();
    wait_for("B to record the next payment", MINUTE, || {
        payment_by_hash(&b, &second_hash).and_then(|p| stored_payment(&b, p["payment_id"].as_str().unwrap())).is_some()
    });
    let first_b_id = payment_by_hash(&b, &first_hash).unwrap()["payment_id"].as_str().unwrap().to_owned();
    assert_eq!(stored_payment(&b, &first_b_id), None, "the locked-out event was not recorded");
    wait_for("A's side of the locked-out payment", MINUTE, || {
        payment(&a, &first_id).is_some_and(|p| p["status"] == "succeeded")
    });

    // The operator's view: `sendero-cli ln.channels` shows the channel's figures.
    let out = std::process::Command::new(common::SENDERO_CLI)
        .args(["--datadir", a.datadir.to_str().unwrap(), "ln.channels", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = &listed["channels"][0];
    for field in ["channel_id", "capacity_sat", "outbound_msat", "inbound_msat", "ready", "usable"] {
        assert!(!c[field].is_null(), "ln.channels lacks {field}: {listed}");
    }
    assert_eq!(c["capacity_sat"], 1_000_000);

    // getinfo and health carry the Lightning figures.
    let info = a.call("getinfo", json!({}));
    assert_eq!(info["lightning"]["state"], "running");
    assert_eq!(info["lightning"]["usable_channels"], 1);
    let (status, health) = a.get("/v1/health");
    assert_eq!(status, 200);
    assert_eq!(health["lightning"]["node_id"], a_id.as_str());
    a.stop();
    b.stop();
}

/// A well-formed, signed BOLT11 invoice for mainnet.
fn mainnet_invoice() -> String {
    use sendero_lightning::ldk_node::bitcoin::hashes::{sha256, Hash};
    use sendero_lightning::ldk_node::bitcoin::secp256k1::{Secp256k1, SecretKey};
    use sendero_lightning::ldk_node::lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[0x42; 32]).unwrap();
    InvoiceBuilder::new(Currency::Bitcoin)
        .description("mainnet".into())
        .payment_hash(sha256::Hash::hash(b"preimage"))
        .payment_secret(PaymentSecret([7; 32]))
        .amount_milli_satoshis(1_000)
        .current_timestamp()
        .min_final_cltv_expiry_delta(144)
        .build_signed(|m| secp.sign_ecdsa_recoverable(m, &key))
        .unwrap()
        .to_string()
}

fn ln_balance(gw: &Gateway) -> Value {
    gw.call("ln.balance", json!({}))
}

#[test]
fn splices_and_a_cooperative_close_move_funds_between_channel_and_chain() {
    let p = pair();
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    let channel_id = open_channel(&p, 1_000_000);
    pay_b(&p, 40_000_000);

    // Splice in 300,000 sat from A's treasury: funded to the node first, spliced once confirmed.
    let node_spendable = ln_balance(a)["onchain_spendable_sat"].as_u64().unwrap();
    let spliced = splice_in(&p, &channel_id, 300_000);
    assert_eq!(capacity(a), 1_300_000);
    wait_for("the channel usable after the splice", MINUTE, || channel(a).is_some_and(|c| c["usable"] == true));
    let funding = spliced["funding_txid"].as_str().unwrap();
    let txs = a.call("wallet.transactions", json!({}));
    let tx = txs["transactions"].as_array().unwrap().iter().find(|t| t["txid"] == funding).unwrap();
    let moved = tx["sent_sat"].as_u64().unwrap() - tx["received_sat"].as_u64().unwrap();
    let fee = tx["fee_sat"].as_u64().unwrap();
    // The treasury sends what the node lacks: the amount and the fee headroom (10,000 sat) less what
    // the node already had spendable.
    assert_eq!(
        moved - fee,
        300_000 + 10_000 - node_spendable,
        "treasury paid {moved} (fee {fee}); node had {node_spendable}"
    );

    // Splice out 200,000 sat to A's treasury: the treasury receives exactly that.
    let out = a.call("ln.splice_out", json!({"channel_id": channel_id, "amount_sat": 200_000}));
    let to = out["address"].as_str().unwrap().to_owned();
    wait_for("the splice-out tx", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for("capacity to drop by about 200,000", MINUTE, || {
        let c = capacity(a);
        (1_095_000..=1_100_000).contains(&c) && capacity(b) == c
    });
    wait_for("the treasury to see the splice-out", MINUTE, || {
        a.call("wallet.transactions", json!({}))["transactions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["received_sat"] == 200_000 && t["confirmation_height"].is_u64())
    });
    assert!(a.call("wallet.utxos", json!({}))["utxos"].as_array().unwrap().iter().any(|u| u["address"] == to.as_str()));
    wait_for("the channel usable after the splice-out", MINUTE, || channel(a).is_some_and(|c| c["usable"] == true));

    // Cooperative close: both nodes get their channel balances back on-chain.
    let (a_out, b_out) = (
        channel(a).unwrap()["outbound_msat"].as_u64().unwrap() / 1000,
        channel(b).unwrap()["outbound_msat"].as_u64().unwrap() / 1000,
    );
    let (a_chain, b_chain) =
        (ln_balance(a)["onchain_total_sat"].as_u64().unwrap(), ln_balance(b)["onchain_total_sat"].as_u64().unwrap());
    a.call("ln.close_channel", json!({"channel_id": channel_id}));
    wait_for("the closing tx", MINUTE, || chain.mempool().len() == 1);
    chain.mine(1);
    wait_for("the channel gone on both sides", MINUTE, || channel(a).is_none() && channel(b).is_none());
    wait_for("the closing outputs in both node wallets", MINUTE, || {
        ln_balance(a)["onchain_total_sat"].as_u64().unwrap() > a_chain + a_out - 5_000
            && ln_balance(b)["onchain_total_sat"].as_u64().unwrap() >= b_chain + b_out
    });
    let state = |gw: &Gateway| -> String {
        let conn = common::books(&gw.datadir);
        conn.query_row("SELECT state FROM ln_channels WHERE channel_id = ?1", [&channel_id], |r| r.get(0)).unwrap()
    };
    wait_for("both stores to record the close", MINUTE, || state(a) == "closed" && state(b) == "closed");
    // Each of A's moves audited once done.
    let entries = a.call("audit.list", json!({}))["entries"].as_array().unwrap().clone();
    let actions: Vec<&str> =
        entries.iter().map(|e| e["action"].as_str().unwrap()).filter(|a| a.starts_with("ln.")).collect();
    let moves = ["ln.open_channel", "ln.pay", "ln.splice_in", "ln.splice_out", "ln.close_channel"];
    assert_eq!(actions, moves, "{entries:#?}");
}

#[test]
fn a_force_close_is_swept_after_the_delay() {
    let p = pair();
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    let channel_id = open_channel(&p, 500_000);
    pay_b(&p, 40_000_000);
    let (a_chain, b_chain) =
        (ln_balance(a)["onchain_total_sat"].as_u64().unwrap(), ln_balance(b)["onchain_total_sat"].as_u64().unwrap());
    assert_eq!(a.error_code("ln.close_channel", json!({"channel_id": "00".repeat(32)})), "unknown_channel");

    a.call("ln.close_channel", json!({"channel_id": channel_id, "force": true}));
    wait_for("the commitment tx", MINUTE, || !chain.mempool().is_empty());
    chain.mine(1);
    wait_for("the channel gone", MINUTE, || channel(a).is_none() && channel(b).is_none());
    // A's own output waits out the to_self_delay, B's sweep needs a block too: mine until every
    // sweep on both sides has confirmed.
    let swept = |gw: &Gateway, floor: u64| {
        let bal = ln_balance(gw);
        bal["lightning_sat"] == 0 && bal["pending_sweep_sat"] == 0 && bal["onchain_total_sat"].as_u64().unwrap() > floor
    };
    let mut mined = 1;
    while mined < 400 && !(swept(a, a_chain + 450_000) && swept(b, b_chain + 35_000)) {
        chain.mine(6);
        mined += 6;
        std::thread::sleep(Duration::from_millis(2_500));
    }
    let a_after = ln_balance(a)["onchain_total_sat"].as_u64().unwrap();
    assert!(
        a_after > a_chain + 450_000 && a_after < a_chain + 460_000,
        "A swept {} after {mined} blocks",
        a_after - a_chain
    );
    let b_after = ln_balance(b)["onchain_total_sat"].as_u64().unwrap();
    assert!(
        b_after > b_chain + 35_000 && b_after <= b_chain + 40_000,
        "B swept {} after {mined} blocks",
        b_after - b_chain
    );
}
