//! Two real gateways on one regtest bitcoind, each with its Lightning node running, and the
//! helpers the Lightning and payment tests share: a channel from A to B, payments between them.

use std::time::Duration;

use serde_json::{json, Value};

use super::{wait_for, AdminMode, Chain, Gateway};

/// The usual patience.
pub const MINUTE: Duration = Duration::from_secs(60);

pub fn ln_info(gw: &Gateway) -> Value {
    gw.call("ln.info", json!({}))
}

pub fn channel(gw: &Gateway) -> Option<Value> {
    gw.call("ln.channels", json!({}))["channels"].as_array().and_then(|c| c.first().cloned())
}

pub fn payment(gw: &Gateway, id: &str) -> Option<Value> {
    gw.call("ln.payments", json!({}))["payments"].as_array()?.iter().find(|p| p["payment_id"] == id).cloned()
}

pub fn payment_by_hash(gw: &Gateway, hash: &str) -> Option<Value> {
    gw.call("ln.payments", json!({}))["payments"].as_array()?.iter().find(|p| p["payment_hash"] == hash).cloned()
}

/// Waits for `ln.info` to answer. The daemon starts the node once bitcoind answers and retries a
/// start that failed (one that timed out asking a busy bitcoind for fees, say) after 1, 2, 4 …
/// 30 s, so a few failures can put the next try past a minute: this waits three. On a timeout it
/// fails with `ln.info`'s last error and the gateway's log lines about the node, then its last
/// lines.
pub fn wait_ln_running(gw: &Gateway) {
    let patience = 3 * MINUTE;
    let start = std::time::Instant::now();
    loop {
        let Err(e) = gw.try_call("ln.info", json!({})) else { return };
        if start.elapsed() >= patience {
            let log = gw.log();
            let node: Vec<&str> =
                log.lines().filter(|l| l.contains("lightning") && !l.contains("admin call")).collect();
            let last: Vec<&str> = log.lines().rev().take(10).collect::<Vec<_>>().into_iter().rev().collect();
            panic!(
                "timed out after {patience:?} waiting for the lightning node to run: {e}\nthe gateway's log on its node:\n{}\nits last lines:\n{}",
                node.join("\n"),
                last.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A chain and two gateways whose treasuries are funded: A mined 101 blocks, B got 1 BTC from A.
/// Two funded gateways on one chain.
pub struct Pair {
    pub chain: Chain,
    pub a: Gateway,
    pub b: Gateway,
    pub a_id: String,
    pub b_id: String,
    pub _home: tempfile::TempDir,
}

pub fn pair() -> Pair {
    pair_with("")
}

/// [`pair`] with `extra` appended to both gateways' configs (whole sections).
pub fn pair_with(extra: &str) -> Pair {
    pair_each(extra, extra)
}

/// [`pair`] with `extra_a` appended to A's config and `extra_b` to B's.
pub fn pair_each(extra_a: &str, extra_b: &str) -> Pair {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let a = Gateway::start_with(&chain, &home.path().join("alice"), AdminMode::Socket, "human", extra_a);
    let b = Gateway::start_with(&chain, &home.path().join("bob"), AdminMode::Socket, "human", extra_b);
    wait_ln_running(&a);
    wait_ln_running(&b);
    let a_id = ln_info(&a)["node_id"].as_str().unwrap().to_owned();
    let b_id = ln_info(&b)["node_id"].as_str().unwrap().to_owned();
    let a_addr = a.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    chain.mine_to(101, &a_addr);
    wait_for("A's wallet sync", MINUTE, || a.synced_height() == 101);
    let b_addr = b.call("wallet.newaddress", json!({}))["address"].as_str().unwrap().to_owned();
    a.call("wallet.send", json!({"address": b_addr, "amount_sat": 100_000_000}));
    chain.mine(1);
    wait_for("B's treasury funded", MINUTE, || b.balance()["confirmed_sat"] == 100_000_000);
    wait_for("A's wallet at the same height", MINUTE, || a.synced_height() == 102);
    Pair { chain, a, b, a_id, b_id, _home: home }
}

/// A opens `amount_sat` to B from its treasury (its node starts empty, so the open waits for the
/// treasury's transfer to confirm); B funds its node's anchor reserve. Returns the channel id.
pub fn open_channel(p: &Pair, amount_sat: u64) -> String {
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    let peer = format!("127.0.0.1:{}", b.ln_port);
    // B's node holds its anchor reserve before A's open reaches it: without one it would refuse
    // an anchor channel and the open would fall back to a channel of another type.
    let b_fund = b.call("ln.fund", json!({"amount_sat": 100_000}))["txid"].as_str().unwrap().to_owned();
    assert!(chain.mempool().contains(&b_fund));
    chain.mine(1);
    wait_for("B's node to see its reserve", MINUTE, || {
        b.call("ln.balance", json!({}))["onchain_spendable_sat"].as_u64().unwrap_or(0) > 0
    });
    let opened = a.call("ln.open_channel", json!({"node_id": p.b_id, "addr": peer, "amount_sat": amount_sat}));
    assert_eq!(opened["status"], "awaiting_funding", "{opened}");
    let funding_txid = opened["funding_txid"].as_str().unwrap().to_owned();
    assert!(chain.mempool().contains(&funding_txid));
    chain.mine(1);
    wait_for("A's channel open to start once its funding confirmed", MINUTE, || channel(a).is_some());
    wait_for("the channel funding tx in the mempool", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for("the channel to be usable on both sides", MINUTE, || {
        channel(a).is_some_and(|c| c["usable"] == true) && channel(b).is_some_and(|c| c["usable"] == true)
    });
    channel(a).unwrap()["channel_id"].as_str().unwrap().to_owned()
}

/// The capacity of `gw`'s first channel, sat (0 without one).
pub fn capacity(gw: &Gateway) -> u64 {
    channel(gw).map_or(0, |c| c["capacity_sat"].as_u64().unwrap())
}

/// A splices `amount_sat` from its treasury into the channel: the treasury funds its node, the
/// splice goes out once that confirms; returns once both sides see the larger capacity, with
/// `ln.splice_in`'s answer.
pub fn splice_in(p: &Pair, channel_id: &str, amount_sat: u64) -> Value {
    let (a, b, chain) = (&p.a, &p.b, &p.chain);
    let want = capacity(a) + amount_sat;
    let spliced = a.call("ln.splice_in", json!({"channel_id": channel_id, "amount_sat": amount_sat}));
    assert_eq!(spliced["status"], "awaiting_funding", "{spliced}");
    chain.mine(1);
    wait_for("the splice-in tx", MINUTE, || chain.mempool().len() == 1);
    chain.mine(6);
    wait_for(&format!("capacity {want} on both sides"), MINUTE, || capacity(a) == want && capacity(b) == want);
    spliced
}

/// B invoices `amount_msat`, A pays; returns once both see it settled.
pub fn pay_b(p: &Pair, amount_msat: u64) {
    let inv = p.b.call("ln.invoice", json!({"amount_msat": amount_msat, "description": "x", "expiry_secs": 600}));
    let id = p.a.call("ln.pay", json!({"invoice": inv["bolt11"]}))["payment_id"].as_str().unwrap().to_owned();
    let hash = inv["payment_hash"].as_str().unwrap();
    wait_for("the payment to settle", MINUTE, || {
        payment(&p.a, &id).is_some_and(|x| x["status"] == "succeeded")
            && payment_by_hash(&p.b, hash).is_some_and(|x| x["status"] == "succeeded")
    });
}

/// A invoices `amount_msat`, B pays; returns once both see it settled.
pub fn pay_a(p: &Pair, amount_msat: u64) {
    let inv = p.a.call("ln.invoice", json!({"amount_msat": amount_msat, "description": "x", "expiry_secs": 600}));
    let id = p.b.call("ln.pay", json!({"invoice": inv["bolt11"]}))["payment_id"].as_str().unwrap().to_owned();
    let hash = inv["payment_hash"].as_str().unwrap();
    wait_for("the payment to settle", MINUTE, || {
        payment(&p.b, &id).is_some_and(|x| x["status"] == "succeeded")
            && payment_by_hash(&p.a, hash).is_some_and(|x| x["status"] == "succeeded")
    });
}

/// `payee` invoices `sat`, `payer` pays it through `/v1/payments` on `lightning` (priority
/// `high`) with `key`; the payment id and the invoice.
pub fn api_pay_invoice(payer: &Gateway, payee: &Gateway, key: &str, sat: u64) -> (String, Value) {
    let inv =
        payee.call("ln.invoice", json!({"amount_msat": sat * 1_000, "description": "payout", "expiry_secs": 600}));
    let bolt11 = inv["bolt11"].as_str().expect("bolt11");
    (super::api_payout(payer, key, sat, bolt11, "lightning", "high"), inv)
}

/// Waits until `gw`'s ledger is settled and exact on both rails; returns the verify answer.
pub fn settled_exact(gw: &Gateway, what: &str) -> Value {
    let mut last = Value::Null;
    let exact = |v: &Value| {
        v["ok"] == true
            && v["lightning"]["status"] == "settled"
            && v["lightning"]["difference_msat"] == 0
            && v["onchain"]["difference_msat"] == 0
            && v["negative_treasury_accounts"].as_array().is_some_and(|n| n.is_empty())
    };
    let deadline = std::time::Instant::now() + 2 * MINUTE;
    while std::time::Instant::now() < deadline {
        last = gw.call("ledger.verify", json!({}));
        if exact(&last) {
            eprintln!(
                "{what}: settled; lightning ledger {} msat = node {} msat, onchain difference {}",
                last["lightning"]["ledger_treasury_msat"],
                last["lightning"]["node_msat"],
                last["onchain"]["difference_msat"]
            );
            return last;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("{what}: ledger.verify never settled exact: {last:#}");
}

/// The balance of a ledger account, msat.
pub fn account(gw: &Gateway, name: &str) -> i64 {
    gw.call("ledger.balances", json!({}))["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == name && a["currency"] == "BTC")
        .map_or(0, |a| a["balance"].as_i64().unwrap())
}

/// A BOLT11 invoice for `amount_msat` from a node nobody knows, with a route hint through `via`
/// over a channel that does not exist: routing prices it (our channel to `via`, then the hint),
/// and `via` fails the payment back when it cannot forward it.
pub fn unreachable_invoice(via: &str, amount_msat: u64) -> String {
    use sendero_lightning::ldk_node::bitcoin::hashes::{sha256, Hash};
    use sendero_lightning::ldk_node::bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
    use sendero_lightning::ldk_node::lightning_invoice::{
        Currency, InvoiceBuilder, PaymentSecret, RouteHint, RouteHintHop, RoutingFees,
    };
    use std::str::FromStr;
    let secp = Secp256k1::new();
    let key = SecretKey::from_slice(&[0x42; 32]).unwrap();
    let hint = RouteHintHop {
        src_node_id: PublicKey::from_str(via).unwrap(),
        short_channel_id: (700_000 << 40) | (1 << 16) | 1,
        fees: RoutingFees { base_msat: 0, proportional_millionths: 0 },
        cltv_expiry_delta: 40,
        htlc_minimum_msat: None,
        htlc_maximum_msat: None,
    };
    let preimage: [u8; 32] = rand_bytes();
    InvoiceBuilder::new(Currency::Regtest)
        .description("nobody".into())
        .payment_hash(sha256::Hash::hash(&preimage))
        .payment_secret(PaymentSecret(rand_bytes()))
        .current_timestamp()
        .min_final_cltv_expiry_delta(144)
        .amount_milli_satoshis(amount_msat)
        .private_route(RouteHint(vec![hint]))
        .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, &key))
        .unwrap()
        .to_string()
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    for (i, x) in b.iter_mut().enumerate() {
        *x = (nanos >> (i % 16 * 8)) as u8 ^ (i as u8).wrapping_mul(31);
    }
    b
}

/// bitcoind's host, port and cookie credentials, for a node built outside senderod.
pub fn rpc(chain: &Chain) -> (String, u16, String, String) {
    let url = chain.node.rpc_url();
    let (host, port) = url.trim_start_matches("http://").trim_end_matches('/').rsplit_once(':').unwrap();
    let cookie = std::fs::read_to_string(chain.node.cookie_path()).unwrap();
    let (user, password) = cookie.trim().split_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap(), user.to_owned(), password.to_owned())
}

/// Sendero's own node (`sendero_lightning::LightningNode`) on `chain`, kept in `dir`, listening
/// on `port`, from a seed of `seed` bytes.
pub fn node_config(chain: &Chain, dir: &std::path::Path, port: u16, seed: u8) -> sendero_lightning::LightningConfig {
    let (rpc_host, rpc_port, rpc_user, rpc_password) = rpc(chain);
    sendero_lightning::LightningConfig {
        network: sendero_lightning::ldk_node::bitcoin::Network::Regtest,
        storage_dir: dir.to_path_buf(),
        rpc_host,
        rpc_port,
        rpc_user,
        rpc_password,
        listen: vec![format!("127.0.0.1:{port}")],
        alias: None,
        seed: [seed; 64],
    }
}
