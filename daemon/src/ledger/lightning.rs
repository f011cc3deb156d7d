//! The Lightning rail in the ledger: posts what the node's own records show and the ledger lacks
//! (transfers a crash left unposted, payments received, payments the operator sent, splice-outs),
//! settles channel movements once the node is at rest, and compares `treasury:lightning` with
//! what the node holds. See the booking rules in the [ledger's](super) documentation.

use std::collections::{HashMap, HashSet};

use sendero_lightning::{Holdings, LightningNode, OnchainTx};
use sendero_wallet::TxRecord;
use serde_json::{json, Value};

use super::rows::{Movement, Transfer};
use super::{LedgerError, Posting, BTC};
use crate::store::Store;

/// The largest on-chain cost one settlement may book (100,000 sat): a gap beyond it is not a fee
/// but something the ledger missed, and is reported instead.
pub const SETTLE_BOUND_MSAT: i64 = 100_000_000;

/// How long a splice-out may take to start (`SplicePending`) before it is taken as never started.
const SPLICE_OUT_EXPIRY_SECS: u64 = 600;

/// What the rail's import needs to know of the payouts.
#[derive(Debug, Default)]
pub struct Payouts {
    /// Node payment ids that Lightning payouts refer to.
    pub tracked: HashSet<String>,
    /// A Lightning payout is not final yet.
    pub open: bool,
    /// Payment hashes of the gateway's invoices: what they receive is booked against them.
    pub invoiced: HashSet<String>,
}

/// Posts what is missing (see the module doc), then settles finished movements; returns how many
/// entries it posted. Without a node only the splice-outs the treasury received are posted.
pub fn import(
    store: &Store,
    node: Option<&LightningNode>,
    treasury_txs: &[TxRecord],
    payouts: &Payouts,
    now: u64,
) -> Result<usize, LedgerError> {
    if store.ln_transfers_expire(now, SPLICE_OUT_EXPIRY_SECS)? > 0 {
        tracing::warn!("a splice-out asked long ago never started: no longer expected");
    }
    let mut posted = book_withdrawals(store, treasury_txs, now)?;
    let Some(node) = node else { return Ok(posted) };
    let node_txs = node.onchain_txs();
    posted += catch_up_funding(store, &node_txs, treasury_txs, now)?;
    posted += book_payments(store, node, payouts, now)?;
    let (holdings, steady) = node.steady_holdings(STEADY_TRIES);
    if steady && settle(store, &holdings, &node_txs, payouts.open, now)? {
        posted += 1;
    }
    Ok(posted)
}

/// Splice-outs to the treasury that the treasury now sees, and splice-outs to an address.
fn book_withdrawals(store: &Store, treasury_txs: &[TxRecord], now: u64) -> Result<usize, LedgerError> {
    let mut posted = 0;
    for t in store.ln_transfers()?.into_iter().filter(|t| t.state == "broadcast") {
        let Some(txid) = t.txid.as_deref() else { continue };
        match t.direction.as_str() {
            "to_treasury" => {
                if let Some(tx) = treasury_txs.iter().find(|x| x.txid == txid && x.received_sat > 0) {
                    store.ln_transfer_to_treasury(txid, tx.received_sat, now)?;
                    posted += 1;
                }
            }
            "to_address" => {
                store.ln_splice_out_booked(txid, t.amount_sat, now)?;
                posted += 1;
            }
            _ => {}
        }
    }
    Ok(posted)
}

/// Treasury → node transfers that both wallets know and the ledger does not (a crash between the
/// broadcast and its record).
fn catch_up_funding(
    store: &Store,
    node_txs: &[OnchainTx],
    treasury_txs: &[TxRecord],
    now: u64,
) -> Result<usize, LedgerError> {
    let treasury: HashMap<&str, &TxRecord> = treasury_txs.iter().map(|t| (t.txid.as_str(), t)).collect();
    let mut posted = 0;
    for n in node_txs.iter().filter(|n| n.inbound_sat > 0) {
        let Some(t) = treasury.get(n.txid.as_str()).filter(|t| t.sent_sat > t.received_sat) else { continue };
        if store.ledger_has(&format!("ln:transfer:{}", n.txid))? {
            continue;
        }
        tracing::warn!(txid = %n.txid, "a transfer to the lightning node had no ledger entry (crash): posted now");
        store.ln_transfer_caught_up(&n.txid, t.sent_sat - t.received_sat, n.inbound_sat, now)?;
        posted += 1;
    }
    Ok(posted)
}

/// Payments the node received, and those it sent that no payout tracks (the operator's). While a
/// payout is open its node payment may not be linked to it yet: sends wait until none is.
fn book_payments(store: &Store, node: &LightningNode, payouts: &Payouts, now: u64) -> Result<usize, LedgerError> {
    let mut posted = 0;
    for p in node.payments().into_iter().filter(|p| p.kind != "onchain" && p.status == "succeeded") {
        let amount = i64::try_from(p.amount_msat.unwrap_or(0)).unwrap_or(i64::MAX);
        let invoiced = p.payment_hash.as_ref().is_some_and(|h| payouts.invoiced.contains(h));
        let (reference, postings) = if p.direction == "inbound" && invoiced {
            continue;
        } else if p.direction == "inbound" {
            let postings =
                vec![Posting::btc("treasury:lightning", amount), Posting::btc("receipts:lightning", -amount)];
            (format!("ln:recv:{}", p.payment_id), postings)
        } else if !payouts.open && !payouts.tracked.contains(&p.payment_id) {
            let fee = i64::try_from(p.fee_paid_msat.unwrap_or(0)).unwrap_or(i64::MAX);
            let postings = vec![
                Posting::btc("treasury:lightning", -(amount + fee)),
                Posting::btc("payouts:lightning_admin", amount),
                Posting::btc("fees:lightning", fee),
            ];
            (format!("ln:send:{}", p.payment_id), postings)
        } else {
            continue;
        };
        if store.ledger_post("ln_payment", &reference, &postings, now)? {
            posted += 1;
        }
    }
    Ok(posted)
}

/// Why the rail is not at rest, if it is not.
fn unrest(holdings: &Holdings, node_txs: &[OnchainTx], transfers: &[Transfer], open_payouts: bool) -> Vec<String> {
    let mut why = Vec::new();
    if open_payouts {
        why.push("a lightning payout is not final".to_owned());
    }
    if !holdings.at_rest() {
        why.push("the node has a channel not ready, a close or sweep unresolved, an unconfirmed transaction or a pending payment".into());
    }
    let confirmed: HashSet<&str> = node_txs.iter().filter(|t| t.confirmed).map(|t| t.txid.as_str()).collect();
    for t in transfers {
        let on_its_way = match (t.direction.as_str(), t.state.as_str()) {
            ("to_node", "booked") => t.txid.as_deref().is_some_and(|x| !confirmed.contains(x)),
            (_, "requested" | "broadcast") => true,
            _ => false,
        };
        if on_its_way {
            why.push(format!(
                "transfer {} ({}) is on its way",
                t.txid.as_deref().unwrap_or("not broadcast"),
                t.direction
            ));
        }
    }
    why
}

/// Whether a pending movement is over.
fn over(m: &Movement, holdings: &Holdings) -> bool {
    let channel = holdings.channels.iter().find(|c| c.channel_id == m.channel_id);
    match (m.kind.as_str(), channel) {
        (_, None) => true,
        ("open", Some(c)) => c.ready,
        ("splice", Some(c)) => c.ready && c.funding_txid == m.txid,
        _ => false,
    }
}

/// Whether a splice is over because a later splice of its channel is (back-to-back splices:
/// the channel's funding moved past this one's transaction before the ledger looked).
fn superseded(m: &Movement, later: &[Movement], holdings: &Holdings) -> bool {
    m.kind == "splice" && later.iter().any(|n| n.kind == "splice" && n.channel_id == m.channel_id && over(n, holdings))
}

/// Settles the pending movements that are over when the node is at rest; true if it posted.
fn settle(
    store: &Store,
    holdings: &Holdings,
    node_txs: &[OnchainTx],
    open_payouts: bool,
    now: u64,
) -> Result<bool, LedgerError> {
    let pending: Vec<Movement> = store.ln_movements()?.into_iter().filter(|m| m.state == "pending").collect();
    if pending.is_empty() || !unrest(holdings, node_txs, &store.ln_transfers()?, open_payouts).is_empty() {
        return Ok(false);
    }
    let ids: Vec<String> = pending
        .iter()
        .enumerate()
        .filter(|(i, m)| over(m, holdings) || superseded(m, &pending[i + 1..], holdings))
        .map(|(_, m)| m.id.clone())
        .collect();
    if ids.is_empty() {
        return Ok(false);
    }
    let gap = gap_msat(store, holdings)?;
    let cost = if gap.unsigned_abs() <= holdings.tolerance_msat() { 0 } else { gap };
    if !(0..=SETTLE_BOUND_MSAT).contains(&cost) {
        tracing::error!(gap_msat = gap, movements = ?ids, "the lightning rail's gap is no fee: not settled, see ledger.verify");
        return Ok(false);
    }
    store.ln_settle(&ids, cost, now)?;
    tracing::info!(movements = ?ids, cost_msat = cost, "lightning movements settled in the ledger");
    Ok(cost != 0)
}

/// What transfers on their way carry: to the node (posted, not confirmed in its wallet yet) and
/// out of it (asked or started, not posted yet).
fn in_transit_msat(transfers: &[Transfer], node_txs: &[OnchainTx]) -> (i64, i64) {
    let confirmed: HashSet<&str> = node_txs.iter().filter(|t| t.confirmed).map(|t| t.txid.as_str()).collect();
    let msat = |t: &Transfer| i64::try_from(t.amount_sat).unwrap_or(i64::MAX / 1_000).saturating_mul(1_000);
    let (mut incoming, mut outgoing) = (0, 0);
    for t in transfers {
        match (t.direction.as_str(), t.state.as_str()) {
            ("to_node", "booked") if t.txid.as_deref().is_some_and(|x| !confirmed.contains(x)) => incoming += msat(t),
            ("to_treasury" | "to_address", "requested" | "broadcast") => outgoing += msat(t),
            _ => {}
        }
    }
    (incoming, outgoing)
}

/// How many pairs of reads [`LightningNode::steady_holdings`] makes at most (2 s).
const STEADY_TRIES: u32 = 10;

/// `treasury:lightning` + what open payouts hold − what the node holds.
fn gap_msat(store: &Store, holdings: &Holdings) -> Result<i64, LedgerError> {
    let ledger = store.ledger_balance("treasury:lightning", BTC)? + store.ledger_balance("in_flight:lightning", BTC)?;
    Ok(ledger - i64::try_from(holdings.total_msat()).unwrap_or(i64::MAX))
}

/// The rail's reconciliation for `ledger.verify`: the node's holdings against the ledger, the
/// gap, and whether it is judged exactly (at rest) or as timing (a movement on its way).
pub fn check(store: &Store, node: &LightningNode, open_payouts: bool) -> Result<Value, LedgerError> {
    let (holdings, steady) = node.steady_holdings(STEADY_TRIES);
    let (node_txs, transfers) = (node.onchain_txs(), store.ln_transfers()?);
    let movements = store.ln_movements()?;
    let mut waiting = unrest(&holdings, &node_txs, &transfers, open_payouts);
    if !steady {
        waiting.push("channel balances still moving (an HTLC being settled)".into());
    }
    let pending: Vec<&Movement> = movements.iter().filter(|m| m.state == "pending").collect();
    if !pending.is_empty() {
        waiting.push(format!("{} channel movement(s) not settled", pending.len()));
    }
    let gap = gap_msat(store, &holdings)?;
    let tolerance = i64::try_from(holdings.tolerance_msat()).unwrap_or(i64::MAX);
    let ok = if waiting.is_empty() {
        gap.abs() <= tolerance
    } else {
        // On its way: the gap is what the movements cost so far, what transfers carry, and our
        // HTLCs on a closing channel that the counterparty may still claim with their preimage.
        let (incoming, outgoing) = in_transit_msat(&transfers, &node_txs);
        let twice = i64::try_from(holdings.maybe_twice_msat()).unwrap_or(i64::MAX / 2);
        let undecided = i64::try_from(holdings.undecided_htlc_msat()).unwrap_or(i64::MAX / 4);
        let bound = SETTLE_BOUND_MSAT * i64::try_from(pending.len().max(1)).unwrap_or(1);
        (-(incoming + tolerance + twice + undecided)..=bound + outgoing).contains(&gap)
    };
    Ok(json!({
        "ok": ok,
        "status": if waiting.is_empty() { "settled" } else { "timing" },
        "waiting_for": waiting,
        "ledger_treasury_msat": store.ledger_balance("treasury:lightning", BTC)?,
        "in_flight_msat": store.ledger_balance("in_flight:lightning", BTC)?,
        "node_msat": holdings.total_msat(),
        "difference_msat": gap,
        "tolerance_msat": tolerance,
        "maybe_counted_twice_msat": holdings.maybe_twice_msat(),
        "undecided_htlc_msat": holdings.undecided_htlc_msat(),
        "node": {
            "onchain_wallet_msat": holdings.onchain_wallet_sat * 1_000,
            "channels_msat": holdings.channels_msat(),
            "channels": holdings.channels,
            "closing": holdings.closing,
            "sweeps": holdings.sweeps,
        },
        "movements": movements,
        "transfers": transfers,
    }))
}
