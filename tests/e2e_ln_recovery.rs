//! A payment that a crash lost inside the Lightning node: ldk-node had stored it as `pending`,
//! but LDK had not persisted it yet, so after the restart nothing would ever complete it. The
//! node A here is Sendero's own (`sendero_lightning::LightningNode`), its peer B a bare ldk-node
//! with hold invoices, both on a real regtest bitcoind. The crash is reproduced exactly: with A
//! stopped, its store gets the `pending` record that the crash left behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::ln::{node_config, rpc};
use common::{wait_for, Chain};
use sendero::devchain::free_port;
use sendero_lightning::ldk_node::bitcoin::hashes::{sha256, Hash};
use sendero_lightning::ldk_node::bitcoin::Network;
use sendero_lightning::ldk_node::lightning::ln::channelmanager::PaymentId;
use sendero_lightning::ldk_node::lightning::util::ser::Writeable;
use sendero_lightning::ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use sendero_lightning::ldk_node::lightning_types::payment::{PaymentHash, PaymentPreimage};
use sendero_lightning::ldk_node::payment::{PaymentDetails, PaymentDirection, PaymentKind, PaymentStatus};
use sendero_lightning::ldk_node::{Builder, Event, Node};
use sendero_lightning::{LightningNode, Recovery};

const MINUTE: Duration = Duration::from_secs(60);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn start_b(chain: &Chain, dir: &Path, port: u16) -> Node {
    let (host, rpc_port, user, password) = rpc(chain);
    let mut builder = Builder::new();
    builder
        .set_network(Network::Regtest)
        .set_storage_dir_path(dir.to_string_lossy().into_owned())
        .set_entropy_seed_bytes([9; 64])
        .set_chain_source_bitcoind_rpc(host, rpc_port, user, password);
    builder.set_listening_addresses(vec![format!("127.0.0.1:{port}").parse().unwrap()]).unwrap();
    let node = builder.build().unwrap();
    node.start().unwrap();
    node
}

/// Waits for B's next event that `wanted` accepts, acknowledging the others.
fn wait_event(b: &Node, what: &str, wanted: impl Fn(&Event) -> bool) {
    let deadline = std::time::Instant::now() + MINUTE;
    loop {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for B's {what}");
        match b.next_event() {
            Some(event) => {
                b.event_handled().unwrap();
                if wanted(&event) {
                    return;
                }
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn usable(a: &LightningNode, b: &Node) -> bool {
    a.channels().first().is_some_and(|c| c.usable) && b.list_channels().first().is_some_and(|c| c.is_usable)
}

fn description() -> Bolt11InvoiceDescription {
    Bolt11InvoiceDescription::Direct(Description::new("payout".into()).unwrap())
}

fn hash_of(invoice: &Bolt11Invoice) -> [u8; 32] {
    invoice.payment_hash().to_byte_array()
}

fn status(a: &LightningNode, hash: &[u8; 32]) -> Option<&'static str> {
    a.payment(&hex(hash)).map(|p| p.status)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a crash right after ldk-node's `send` leaves in A's store: a `pending` outbound record
/// for `invoice`, written before this run of the node.
fn write_lost_record(storage_dir: &Path, invoice: &Bolt11Invoice) {
    let hash = hash_of(invoice);
    let record = PaymentDetails {
        id: PaymentId(hash),
        kind: PaymentKind::Bolt11 { hash: PaymentHash(hash), preimage: None, secret: Some(*invoice.payment_secret()) },
        amount_msat: invoice.amount_milli_satoshis(),
        fee_paid_msat: None,
        direction: PaymentDirection::Outbound,
        status: PaymentStatus::Pending,
        latest_update_timestamp: now() - 60,
    };
    let db = rusqlite::Connection::open(storage_dir.join("ldk_node_data.sqlite")).unwrap();
    db.execute(
        "INSERT INTO ldk_node_data (primary_namespace, secondary_namespace, key, value) VALUES ('payments', '', ?1, ?2)",
        rusqlite::params![hex(&hash), record.encode()],
    )
    .unwrap();
}

/// B's inbound payments that succeeded: (hash, msat).
fn received(b: &Node) -> Vec<([u8; 32], u64)> {
    b.list_payments()
        .into_iter()
        .filter(|p| p.direction == PaymentDirection::Inbound && p.status == PaymentStatus::Succeeded)
        .filter_map(|p| match p.kind {
            PaymentKind::Bolt11 { hash, .. } => Some((hash.0, p.amount_msat.unwrap_or_default())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_payment_lost_in_a_crash_is_sent_again_once_and_an_in_flight_one_is_left_alone() {
    let chain = Chain::start();
    let home = tempfile::tempdir().unwrap();
    let (a_dir, b_dir): (PathBuf, PathBuf) = (home.path().join("a"), home.path().join("b"));
    let (a_port, b_port) = (free_port().unwrap(), free_port().unwrap());
    let a = LightningNode::start(node_config(&chain, &a_dir, a_port, 7)).unwrap();
    let b = start_b(&chain, &b_dir, b_port);

    // Both nodes get a mature coinbase (B needs on-chain funds for its anchor reserve), then A
    // opens a 1,000,000 sat channel to B.
    chain.mine_to(1, &b.onchain_payment().new_address().unwrap().to_string());
    chain.mine_to(1, &a.new_onchain_address().unwrap().to_string());
    chain.mine(100);
    wait_for("both on-chain wallets funded", MINUTE, || {
        a.balance().onchain_spendable_sat > 0 && b.list_balances().spendable_onchain_balance_sats > 0
    });
    a.open_channel(&b.node_id().to_string(), &format!("127.0.0.1:{b_port}"), 1_000_000, None, false).unwrap();
    wait_event(&b, "channel pending", |e| matches!(e, Event::ChannelPending { .. }));
    chain.mine(6);
    wait_for("the channel to be usable", MINUTE, || usable(&a, &b));

    // 1. In flight across a restart: B holds the HTLC of a hold invoice. A's record predates the
    //    restart, but the HTLC is on the channel, so the payment is kept, not sent again.
    let preimage = [42u8; 32];
    let held_hash = PaymentHash(sha256::Hash::hash(&preimage).to_byte_array());
    let held = b.bolt11_payment().receive_for_hash(50_000_000, &description(), 3600, held_hash).unwrap();
    a.pay_once(&held.to_string(), Some(50_000_000), None).unwrap();
    wait_event(
        &b,
        "the held HTLC",
        |e| matches!(e, Event::PaymentClaimable { payment_hash, .. } if *payment_hash == held_hash),
    );
    drop(a);
    std::thread::sleep(Duration::from_secs(1)); // the record now predates the next start
    let a = LightningNode::start(node_config(&chain, &a_dir, a_port, 7)).unwrap();
    wait_for("the channel usable after A's restart", MINUTE, || usable(&a, &b));
    assert_eq!(status(&a, &held_hash.0), Some("pending"));
    assert_eq!(a.recover_lost(&held.to_string(), 50_000_000, Duration::ZERO).unwrap(), Recovery::Kept);
    assert_eq!(status(&a, &held_hash.0), Some("pending"), "an in-flight payment keeps its record");
    b.bolt11_payment().claim_for_hash(held_hash, 50_000_000, PaymentPreimage(preimage)).unwrap();
    wait_for("the held payment to succeed at A", MINUTE, || status(&a, &held_hash.0) == Some("succeeded"));

    // 2. Lost in a crash: two records that LDK never heard of, one for an invoice still valid,
    //    one for an invoice that has expired since.
    let valid = b.bolt11_payment().receive(30_000_000, &description(), 3600).unwrap();
    let expiring = b.bolt11_payment().receive(20_000_000, &description(), 1).unwrap();
    drop(a);
    write_lost_record(&a_dir, &valid);
    write_lost_record(&a_dir, &expiring);
    std::thread::sleep(Duration::from_secs(2)); // `expiring` expires
    let a = LightningNode::start(node_config(&chain, &a_dir, a_port, 7)).unwrap();
    let (valid_hash, expiring_hash) = (hash_of(&valid), hash_of(&expiring));
    assert_eq!(status(&a, &valid_hash), Some("pending"), "the crash's record survives the restart");
    // Not before the node has run for `settle`.
    assert_eq!(a.recover_lost(&valid.to_string(), 30_000_000, Duration::from_secs(3600)).unwrap(), Recovery::Kept);
    wait_for("the channel usable after A's restart", MINUTE, || usable(&a, &b));
    let before = a.channels()[0].outbound_msat;

    assert_eq!(a.recover_lost(&valid.to_string(), 30_000_000, Duration::ZERO).unwrap(), Recovery::Resent);
    wait_for("the resent payment to succeed", MINUTE, || status(&a, &valid_hash) == Some("succeeded"));
    assert_eq!(
        a.recover_lost(&valid.to_string(), 30_000_000, Duration::ZERO).unwrap(),
        Recovery::Kept,
        "a settled payment is not touched"
    );

    match a.recover_lost(&expiring.to_string(), 20_000_000, Duration::ZERO).unwrap() {
        Recovery::Abandoned(why) => assert!(why.contains("expired"), "{why}"),
        other => panic!("an expired lost payment is abandoned, got {other:?}"),
    }
    assert_eq!(status(&a, &expiring_hash), None, "the abandoned record is dropped");

    // Exactly once: B received the held payment and the resent one, each once, nothing of the
    // expired invoice; A's side of the channel went down by the resent payment alone.
    let mut got = received(&b);
    got.sort();
    let mut want = vec![(held_hash.0, 50_000_000), (valid_hash, 30_000_000)];
    want.sort();
    assert_eq!(got, want);
    wait_for("A's channel balance to settle", MINUTE, || a.channels()[0].outbound_msat == before - 30_000_000);

    // 3. Lost in a crash that also cost the channel (a kill can force-close it): nothing can send
    //    it again and nothing of it is on a channel, so it is abandoned rather than kept forever.
    let orphan = b.bolt11_payment().receive(10_000_000, &description(), 3600).unwrap();
    let channel_id = a.channels()[0].channel_id.clone();
    a.close_channel(&channel_id, true).unwrap();
    wait_for("the channel gone at A", MINUTE, || a.channels().is_empty());
    drop(a);
    write_lost_record(&a_dir, &orphan);
    std::thread::sleep(Duration::from_secs(1));
    let a = LightningNode::start(node_config(&chain, &a_dir, a_port, 7)).unwrap();
    match a.recover_lost(&orphan.to_string(), 10_000_000, Duration::ZERO).unwrap() {
        Recovery::Abandoned(why) => assert!(why.contains("no channel"), "{why}"),
        other => panic!("a lost payment with no channel left is abandoned, got {other:?}"),
    }
    assert_eq!(status(&a, &hash_of(&orphan)), None, "the abandoned record is dropped");
    assert!(received(&b).iter().all(|(h, _)| *h != hash_of(&orphan)), "B never received it");
    b.stop().unwrap();
}
