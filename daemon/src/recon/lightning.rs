//! The Lightning rail of the report, summed on `treasury:lightning`: each node payment against
//! its entries (a payout's `pay:<id>:*`, `ln:recv:<id>` for what the node received — an
//! invoice's or not —, `ln:send:<id>` for the operator's own), each transfer between the
//! treasury and the node (`ln:transfer:<txid>`, `ln:splice_out:<txid>`) against the node's
//! wallet or its splice, and each channel movement (open, splice, close, with its sweeps) against
//! its settlement (`ln:settle:<movement>`). ldk-node attributes no on-chain fee to a movement: its
//! cost is the gap between the ledger and the node's holdings once the node was at rest, which
//! the rail's balance (`balances.lightning`) proves.

use std::collections::{BTreeMap, HashMap};

use sendero_lightning::Payment as NodePayment;

use super::{windowed, Class, Draft, Item, RailTime, Side, Sources, Window};
use crate::payment::{Rail, State};

/// Every Lightning item (not yet cut to the window).
pub(super) fn items(s: &Sources, w: Window) -> Vec<Item> {
    let mut drafts = drafts(s);
    let mut items = Vec::new();
    let (payments, node_txs) = match &s.node {
        Some((p, t)) => (p.iter().filter(|p| p.kind != "onchain").collect::<Vec<_>>(), t.as_slice()),
        None => (Vec::new(), [].as_slice()),
    };
    let ln_open = s.payments.values().any(|p| p.rail == Rail::Lightning && !final_state(p.state));
    for n in payments {
        let d = drafts.remove(&n.payment_id).unwrap_or_default();
        if let Some(item) = payment_item(s, d, n, ln_open, w) {
            items.push(item);
        }
    }
    for m in &s.movements {
        let mut d = drafts.remove(&format!("mv:{}", m.id)).unwrap_or_default();
        d.kind = Some(match m.kind.as_str() {
            "open" => "channel_open",
            "splice" => "channel_splice",
            _ => "channel_close",
        });
        let settled = m.state == "settled";
        let rail = settled.then(|| -m.fee_msat.unwrap_or(0));
        let class = match rail {
            None => (Class::Timing, Some("the movement is not over yet: its cost is booked once the node is at rest")),
            Some(r) if r == d.ledger_msat => (Class::Match, Some("its cost is the node's holdings gap at rest")),
            Some(_) => (Class::AmountMismatch, Some("the settlement's entry differs from the cost recorded")),
        };
        let side = Side { msat: rail, at: Some(RailTime::Clock(m.created_at)), payment_hash: None };
        items.push(d.finish("lightning", m.id.clone(), windowed(class, side.at, w), side));
    }
    for (key, d) in drafts {
        if let Some(item) = leftover(s, key, d, node_txs) {
            items.push(item);
        }
    }
    items
}

fn final_state(s: State) -> bool {
    matches!(s, State::Settled | State::Failed)
}

/// The ledger's side: entries on `treasury:lightning`, by node payment id, `tx:<txid>` or
/// `mv:<movement>`.
fn drafts(s: &Sources) -> BTreeMap<String, Draft> {
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    for e in &s.entries {
        let r = e.reference.as_str();
        let (key, kind) = if let Some(p) = e.payment_id.as_deref().and_then(|id| s.payments.get(id)) {
            if p.rail != Rail::Lightning || !r.starts_with("pay:") {
                continue;
            }
            (p.rail_ref.clone().unwrap_or_else(|| format!("pay:{}", p.payment_id)), "payout")
        } else if let Some(id) = r.strip_prefix("ln:recv:") {
            (id.to_owned(), "receipt")
        } else if let Some(id) = r.strip_prefix("ln:send:") {
            (id.to_owned(), "admin_send")
        } else if let Some(txid) = r.strip_prefix("ln:transfer:") {
            (format!("tx:{txid}"), "transfer")
        } else if let Some(txid) = r.strip_prefix("ln:splice_out:") {
            (format!("tx:{txid}"), "splice_out")
        } else if let Some(mv) = r.strip_prefix("ln:settle:") {
            (format!("mv:{mv}"), "channel")
        } else {
            continue;
        };
        let d = drafts.entry(key).or_default();
        d.add(e, e.lightning_msat);
        d.kind = d.kind.or(Some(kind));
        if let Some(p) = e.payment_id.as_deref().and_then(|id| s.payments.get(id)) {
            d.payout(p);
        }
    }
    drafts
}

/// One node payment against its entries; none for a failed one nothing booked.
fn payment_item(s: &Sources, mut d: Draft, n: &NodePayment, ln_open: bool, w: Window) -> Option<Item> {
    let amount = i64::try_from(n.amount_msat.unwrap_or(0)).unwrap_or(i64::MAX);
    let fee = i64::try_from(n.fee_paid_msat.unwrap_or(0)).unwrap_or(i64::MAX);
    let inbound = n.direction == "inbound";
    let node_msat = match n.status {
        "succeeded" if inbound => amount,
        "succeeded" => -(amount + fee),
        _ => 0,
    };
    // A failed payment nothing booked moved nothing; nor does an invoice the node issued and
    // nobody paid yet (ldk-node lists it as a pending inbound payment).
    if d.refs.is_empty() && (n.status == "failed" || (inbound && n.status == "pending")) {
        return None;
    }
    if let Some(inv) = n.payment_hash.as_ref().and_then(|h| s.invoice_by_hash.get(h)).and_then(|i| s.invoices.get(i)) {
        if inbound {
            d.invoice(inv, u64::try_from(node_msat).unwrap_or(0));
            d.kind = Some("invoice_receipt");
        }
    }
    d.kind = d.kind.or(Some(if inbound { "receipt" } else { "admin_send" }));
    let class = match n.status {
        _ if d.open_payouts > 0 => (Class::Timing, Some("the payout is not final yet")),
        "pending" => (Class::Timing, Some("the node's payment is pending")),
        "failed" if d.ledger_msat == 0 => (Class::Match, None),
        "failed" => (Class::AmountMismatch, Some("the ledger books a payment the node says failed")),
        _ if !d.booked && !inbound && ln_open => (Class::Timing, Some("booked once no payout is in flight")),
        _ if !d.booked => (Class::Missing, Some("the node has it, the ledger does not")),
        _ if d.ledger_msat == node_msat => (Class::Match, None),
        _ => (Class::AmountMismatch, Some("the ledger and the node disagree on the amount")),
    };
    let side =
        Side { msat: Some(node_msat), at: Some(RailTime::Clock(n.updated_at)), payment_hash: n.payment_hash.clone() };
    Some(d.finish("lightning", n.payment_id.clone(), windowed(class, side.at, w), side))
}

/// An entry no node record matched: a transfer (matched to the node's wallet or its splice), a
/// payout the node never saw, or something the node does not have.
fn leftover(s: &Sources, key: String, d: Draft, node_txs: &[sendero_lightning::OnchainTx]) -> Option<Item> {
    let node_up = s.node.is_some();
    if let Some(txid) = key.strip_prefix("tx:") {
        return Some(transfer(s, txid, d, node_txs));
    }
    let class = match () {
        _ if d.open_payouts > 0 => (Class::Timing, Some("the payout has not reached the node yet")),
        _ if d.ledger_msat == 0 && d.booked => return None,
        _ if !node_up => (Class::Timing, Some("the Lightning node is not running: its side is unknown")),
        _ => (Class::Missing, Some("the ledger has it, the node does not")),
    };
    let reference = key.strip_prefix("mv:").unwrap_or(&key).to_owned();
    Some(d.finish("lightning", reference, class, Side::default()))
}

/// A transfer's Lightning leg: into the node's wallet (the node's own record of the
/// transaction), or out of a channel (the node's splice of that transaction, which records no
/// amount: the treasury's side of it is the on-chain item).
fn transfer(s: &Sources, txid: &str, mut d: Draft, node_txs: &[sendero_lightning::OnchainTx]) -> Item {
    let node: HashMap<&str, u64> = node_txs.iter().map(|t| (t.txid.as_str(), t.inbound_sat)).collect();
    let treasury_confirmed = s.txs.iter().any(|t| t.txid == txid && t.confirmation_height.is_some());
    let (rail, class) = if d.ledger_msat >= 0 {
        d.kind = Some("transfer_to_node");
        match node.get(txid) {
            Some(sat) => {
                let got = i64::try_from(*sat).unwrap_or(i64::MAX / 1_000) * 1_000;
                let class = if got == d.ledger_msat { Class::Match } else { Class::AmountMismatch };
                (Some(got), (class, None))
            }
            None if !treasury_confirmed => (None, (Class::Timing, Some("the node's wallet has not seen it yet"))),
            None => (None, (Class::Missing, Some("the ledger has it, the node's wallet does not"))),
        }
    } else {
        d.kind = d.kind.filter(|k| *k == "splice_out").or(Some("transfer_to_treasury"));
        let spliced = s.movements.iter().any(|m| m.id == format!("splice:{txid}"));
        match spliced {
            true => {
                (Some(d.ledger_msat), (Class::Match, Some("the node's splice of it; the amount from the treasury's")))
            }
            false => (None, (Class::Missing, Some("the node recorded no splice of it"))),
        }
    };
    d.finish("lightning", txid.to_owned(), class, Side { msat: rail, at: None, payment_hash: None })
}
