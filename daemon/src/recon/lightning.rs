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
    let by_event = s.sent_by_event.get(&key).filter(|_| d.kind == Some("payout"));
    let class = match () {
        _ if d.open_payouts > 0 => (Class::Timing, Some("the payout has not reached the node yet")),
        _ if d.ledger_msat == 0 && d.booked => return None,
        _ if !node_up => (Class::Timing, Some("the Lightning node is not running: its side is unknown")),
        _ if by_event.is_some() => (
            Class::Match,
            Some("the node has no record of it after a kill; its PaymentSuccessful event, recorded here, proves it"),
        ),
        _ => (Class::Missing, Some("the ledger has it, the node does not")),
    };
    let side = by_event.map_or_else(Side::default, |e| Side {
        msat: None,
        at: Some(RailTime::Clock(e.at)),
        payment_hash: e.payment_hash.clone(),
    });
    let reference = key.strip_prefix("mv:").unwrap_or(&key).to_owned();
    Some(d.finish("lightning", reference, class, side))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::Payment;
    use crate::rails::lightning::SentByEvent;
    use crate::recon::record::{Entry, InvoiceRow};

    fn paid(id: &str, direction: &'static str, status: &'static str, msat: u64) -> NodePayment {
        NodePayment {
            payment_id: id.into(),
            kind: "bolt11",
            direction,
            status,
            amount_msat: Some(msat),
            fee_paid_msat: Some(0),
            payment_hash: Some(id.into()),
            updated_at: 150,
        }
    }

    fn entry(reference: &str, lightning_msat: i64) -> Entry {
        let postings = 2;
        Entry {
            reference: reference.into(),
            payment_id: None,
            created_at: 150,
            onchain_msat: 0,
            lightning_msat,
            postings,
            on_us_msat: 0,
        }
    }

    fn sources(entries: Vec<Entry>, payments: Vec<NodePayment>) -> Sources {
        let invoice = InvoiceRow {
            invoice_id: "inv_1".into(),
            currency: "EUR".into(),
            amount_minor: 1_000,
            amount_sat: 10_000,
            payment_hash: Some("h1".into()),
            status: "paid".into(),
            received_msat: 10_000_000,
            created_at: 140,
            receipts_on_their_way: 0,
        };
        Sources {
            entries,
            payments: HashMap::new(),
            invoices: [("inv_1".to_owned(), invoice)].into(),
            invoice_by_hash: [("h1".to_owned(), "inv_1".to_owned())].into(),
            invoice_by_outpoint: HashMap::new(),
            txs: Vec::new(),
            node: Some((payments, Vec::new())),
            movements: Vec::new(),
            sent_by_event: HashMap::new(),
        }
    }

    #[test]
    fn node_payments_are_classed_against_their_entries() {
        let w = Window { from: 100, to: 200 };
        let s = sources(
            vec![entry("ln:recv:h1", 10_000_000), entry("ln:recv:h2", 4_000), entry("ln:recv:gone", 7_000)],
            vec![
                paid("h1", "inbound", "succeeded", 10_000_000),
                paid("h2", "inbound", "succeeded", 5_000),
                paid("h3", "inbound", "succeeded", 6_000),
                paid("h4", "inbound", "pending", 1_000),
            ],
        );
        let got: BTreeMap<String, (Class, &str)> =
            items(&s, w).into_iter().map(|i| (i.reference, (i.class, i.kind))).collect();
        assert_eq!(got["h1"], (Class::Match, "invoice_receipt"));
        assert_eq!(got["h2"], (Class::AmountMismatch, "receipt"));
        assert_eq!(got["h3"], (Class::Missing, "receipt"), "the node has it, the ledger does not");
        assert_eq!(got["gone"], (Class::Missing, "receipt"), "the ledger has it, the node does not");
        assert!(!got.contains_key("h4"), "an invoice nobody paid yet is no movement");
        let fiat = items(&s, w).into_iter().find(|i| i.reference == "h1").unwrap();
        assert_eq!((fiat.fiat_minor, fiat.fiat_currency.as_deref()), (Some(1_000), Some("EUR")));
        // The invoice: counted what the ledger booked.
        let checks = super::super::invoices::checks(&s, w);
        assert_eq!((checks.len(), checks[0].class, checks[0].ledger_msat), (1, Class::Match, 10_000_000));
        let short = sources(vec![entry("ln:recv:h1", 9_000_000)], vec![paid("h1", "inbound", "succeeded", 9_000_000)]);
        assert_eq!(super::super::invoices::checks(&short, w)[0].class, Class::AmountMismatch);
        let none = sources(Vec::new(), Vec::new());
        assert_eq!(super::super::invoices::checks(&none, w)[0].class, Class::Missing);
    }

    /// A settled payout whose record the node lost in a kill (ldk-node stores a payment after LDK
    /// took it): matched by the `PaymentSuccessful` event recorded here, and only by it.
    #[test]
    fn a_payout_the_node_lost_the_record_of_is_proven_by_its_event() {
        let w = Window { from: 100, to: 200 };
        let payout = Payment {
            state: State::Settled,
            rail_ref: Some("ln1".into()),
            amount_msat: 1_000_000,
            ..crate::payment::test_payment(1, Rail::Lightning, "keysend:02aa".into())
        };
        let mut e = entry("pay:x:debit", -1_000_000);
        e.payment_id = Some(payout.payment_id.clone());
        let mut s = sources(vec![e], Vec::new());
        s.payments.insert(payout.payment_id.clone(), payout);
        let class = |s: &Sources| items(s, w).into_iter().find(|i| i.reference == "ln1").map(|i| (i.class, i.kind));
        assert_eq!(class(&s), Some((Class::Missing, "payout")), "no record and no event");
        let sent = SentByEvent { fee_paid_msat: Some(0), payment_hash: Some("hh".into()), at: 160 };
        s.sent_by_event.insert("ln1".into(), sent);
        let item = items(&s, w).into_iter().find(|i| i.reference == "ln1").unwrap();
        assert_eq!((item.class, item.kind, item.payment_hash.as_deref()), (Class::Match, "payout", Some("hh")));
        assert!(item.note.unwrap().contains("no record of it after a kill"));
    }
}
