//! The on-chain rail of the report: one item per treasury transaction, the ledger's entries that
//! name it (payouts through their `rail_ref`, `wallet:`, `consolidation:`, `cpfp:`,
//! `ln:transfer:`, `invoice:onchain:<outpoint>[:<n>]`, its reversal `invoice:reorg:`) summed on `treasury:onchain` against what the
//! wallet's own record says it moved (received − sent); and an item for payouts the ledger
//! debited that have no transaction yet (queued for a batch, about to be built).

use std::collections::BTreeMap;

use sendero_wallet::TxRecord;

use super::{windowed, Class, Draft, Item, RailTime, Side, Sources, Window};
use crate::payment::Rail;

/// What an entry makes of its transaction, the strongest first.
const KINDS: [&str; 7] = ["batch", "payout", "consolidation", "cpfp", "transfer", "invoice_receipt", "external"];

/// Every on-chain item (not yet cut to the window).
pub(super) fn items(s: &Sources, w: Window) -> Vec<Item> {
    let mut drafts: BTreeMap<String, Draft> = BTreeMap::new();
    for e in &s.entries {
        let Some((key, kind)) = link(s, &e.reference, e.payment_id.as_deref()) else { continue };
        let d = drafts.entry(key).or_default();
        d.add(e, e.onchain_msat);
        d.kind = strongest(d.kind, kind);
        if let Some(p) = e.payment_id.as_deref().and_then(|id| s.payments.get(id)) {
            d.payout(p);
        }
        if let Some(inv) = super::invoice_outpoint(&e.reference).and_then(|o| s.invoice_by_outpoint.get(&o)) {
            if let Some(inv) = s.invoices.get(inv) {
                d.invoice(inv, u64::try_from(e.onchain_msat).unwrap_or(0));
            }
        }
    }
    // A block's time ahead of this machine's clock (consensus allows it) counts as now, and a
    // window that ends now (the default) holds it.
    let clock = crate::unix_now();
    let now = if w.to.saturating_add(60) >= clock { clock.min(w.to.saturating_sub(1)) } else { clock };
    let mut items = Vec::new();
    for tx in &s.txs {
        let mut d = drafts.remove(&tx.txid).unwrap_or_default();
        d.kind = d.kind.or(Some("external"));
        let wallet = net_msat(tx);
        if wallet == 0 && d.refs.is_empty() {
            continue;
        }
        let block = tx.confirmation_time.map(|t| RailTime::Block(t.min(now)));
        let at = tx.first_seen.map(RailTime::Clock).or(block);
        let class = windowed(classify(&d, Some(tx)), at, w);
        let mut item = d.finish("onchain", tx.txid.clone(), class, Side { msat: Some(wallet), at, payment_hash: None });
        item.kind = named(item.kind, wallet);
        items.push(item);
    }
    for (key, d) in drafts {
        // A payout debited and credited back (failed before any transaction) moved nothing.
        if d.ledger_msat == 0 && d.booked && d.open_payouts == 0 {
            continue;
        }
        let class = classify(&d, None);
        let mut item = d.finish("onchain", key, class, Side::default());
        item.kind = named(item.kind, item.ledger_msat.unwrap_or(0));
        items.push(item);
    }
    items
}

/// The transaction (or, for a payout with none yet, `pay:<id>`) an entry books, and its kind.
fn link(s: &Sources, reference: &str, payment_id: Option<&str>) -> Option<(String, &'static str)> {
    if let Some(id) = payment_id.filter(|_| reference.starts_with("pay:")) {
        let p = s.payments.get(id)?;
        let kind = match p.rail {
            Rail::Onchain => "payout",
            Rail::OnchainBatch => "batch",
            Rail::Lightning | Rail::OnUs => return None,
        };
        let key = p.rail_ref.as_deref().map(batch_txid).map_or_else(|| format!("pay:{id}"), str::to_owned);
        return Some((key, kind));
    }
    let prefixes = [
        ("wallet:", "external"),
        ("consolidation:", "consolidation"),
        ("cpfp:", "cpfp"),
        ("ln:transfer:", "transfer"),
        ("invoice:onchain:", "invoice_receipt"),
        ("invoice:reorg:", "invoice_receipt"),
    ];
    let (rest, kind) = prefixes.iter().find_map(|(p, k)| reference.strip_prefix(p).map(|r| (r, *k)))?;
    // An invoice's booking names an outpoint (and a booking number after a reorg).
    let txid = if kind == "invoice_receipt" { rest.split(':').next().unwrap_or(rest) } else { rest };
    Some((txid.to_owned(), kind))
}

/// A payout's transaction id: its `rail_ref` (`txid`, or `txid:vout` in a batch).
fn batch_txid(rail_ref: &str) -> &str {
    rail_ref.split_once(':').map_or(rail_ref, |(txid, _)| txid)
}

fn strongest(have: Option<&'static str>, new: &'static str) -> Option<&'static str> {
    let rank = |k: &str| KINDS.iter().position(|x| *x == k).unwrap_or(KINDS.len());
    match have {
        Some(h) if rank(h) <= rank(new) => Some(h),
        _ => Some(new),
    }
}

/// Outside movements and transfers are named by their direction.
fn named(kind: &'static str, msat: i64) -> &'static str {
    match (kind, msat >= 0) {
        ("external", true) => "deposit",
        ("external", false) => "withdrawal",
        ("transfer", true) => "transfer_to_treasury",
        ("transfer", false) => "transfer_to_node",
        (k, _) => k,
    }
}

/// What the transaction moved in or out of the treasury, msat.
fn net_msat(tx: &TxRecord) -> i64 {
    let sat = i128::from(tx.received_sat) - i128::from(tx.sent_sat);
    i64::try_from(sat * 1_000).unwrap_or(i64::MAX)
}

/// The ledger's side against the wallet's (compared in whole sats: the wallet pays a payout's
/// sub-sat part rounded up).
fn classify(d: &Draft, tx: Option<&TxRecord>) -> (Class, Option<&'static str>) {
    let confirmed = tx.is_some_and(|t| t.confirmation_height.is_some());
    match tx {
        _ if d.open_payouts > 0 => (Class::Timing, Some("a payout it carries is not final yet")),
        Some(_) if !d.booked && !confirmed => (Class::Timing, Some("unconfirmed: booked once it confirms")),
        Some(_) if !d.booked => (Class::Missing, Some("the wallet has it, the ledger does not")),
        Some(t) if super::sat(d.ledger_msat) == super::sat(net_msat(t)) => (Class::Match, None),
        Some(_) if !confirmed => (Class::Timing, Some("unconfirmed: the ledger has not booked all of it yet")),
        Some(_) => (Class::AmountMismatch, Some("the ledger and the wallet disagree on the amount")),
        None => (Class::Missing, Some("the ledger has it, the wallet does not")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(received: u64, sent: u64, confirmed: bool) -> TxRecord {
        TxRecord {
            txid: "t".into(),
            received_sat: received,
            sent_sat: sent,
            fee_sat: None,
            confirmation_height: confirmed.then_some(5),
            confirmation_time: None,
            first_seen: None,
        }
    }

    fn booked(msat: i64) -> Draft {
        Draft { ledger_msat: msat, booked: true, refs: vec!["wallet:t".into()], ..Draft::default() }
    }

    #[test]
    fn each_side_is_classed() {
        assert_eq!(classify(&booked(5_000_000), Some(&tx(5_000, 0, true))).0, Class::Match);
        // A payout of 1,500 msat plus 200 sat fee: the wallet paid 202 sat.
        assert_eq!(classify(&booked(-201_500), Some(&tx(0, 202, true))).0, Class::Match);
        assert_eq!(classify(&booked(4_000_000), Some(&tx(5_000, 0, true))).0, Class::AmountMismatch);
        assert_eq!(classify(&Draft::default(), Some(&tx(5_000, 0, true))).0, Class::Missing);
        assert_eq!(classify(&Draft::default(), Some(&tx(5_000, 0, false))).0, Class::Timing);
        assert_eq!(classify(&booked(-5_000), None).0, Class::Missing);
        let open = Draft { open_payouts: 1, ..booked(-9_000_000) };
        assert_eq!(classify(&open, Some(&tx(0, 9_000, true))).0, Class::Timing);
        // The entry is there but its postings are gone: the wallet's side alone.
        let hollow = Draft { booked: false, ..booked(0) };
        assert_eq!(classify(&hollow, Some(&tx(5_000, 0, true))).0, Class::Missing);
    }

    #[test]
    fn kinds_keep_the_strongest_and_name_the_direction() {
        assert_eq!(strongest(Some("external"), "invoice_receipt"), Some("invoice_receipt"));
        assert_eq!(strongest(Some("batch"), "consolidation"), Some("batch"));
        assert_eq!((named("external", 5), named("external", -5)), ("deposit", "withdrawal"));
        assert_eq!(named("transfer", -5), "transfer_to_node");
        assert_eq!(batch_txid("ab:3"), "ab");
    }
}
