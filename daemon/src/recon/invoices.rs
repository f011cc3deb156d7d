//! The invoices against the ledger: what each invoice counted as received (`received_msat`, what
//! its state was judged on) against the entries booked for it — `invoice:onchain:<outpoint>[:<n>]`
//! for its on-chain receipts (less `invoice:reorg:` reversals), `ln:recv:<id>` for the node's
//! payments of its payment hash, `invoice:on_us:<payment_id>` for our own payouts to it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Class, Sources, Window};

/// One invoice, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvoiceCheck {
    /// `inv_…`.
    pub invoice_id: String,
    /// Its state.
    pub status: String,
    /// How the invoice and the ledger compare.
    pub class: Class,
    /// What the invoice counted, msat.
    pub received_msat: u64,
    /// What the ledger booked for it, msat.
    pub ledger_msat: i64,
    /// The entries.
    pub ledger_refs: Vec<String>,
    /// Its currency.
    pub currency: String,
    /// What it counted is worth at its locked rate, minor units (its currency's; sats for `SAT`).
    pub received_minor: u64,
    /// Why it is not a match.
    pub note: Option<&'static str>,
}

/// Every invoice that received something or has something booked, created or booked in `w`.
pub(super) fn checks(s: &Sources, w: Window) -> Vec<InvoiceCheck> {
    let hash_of: HashMap<&str, &str> = s.node.as_ref().map_or_else(HashMap::new, |(payments, _)| {
        payments.iter().filter_map(|p| Some((p.payment_id.as_str(), p.payment_hash.as_deref()?))).collect()
    });
    let mut booked: BTreeMap<&str, (i64, Vec<String>, u64)> = BTreeMap::new();
    for e in &s.entries {
        let (invoice, msat) = if let Some(outpoint) = super::invoice_outpoint(&e.reference) {
            (s.invoice_by_outpoint.get(&outpoint), e.onchain_msat)
        } else if let Some(id) = e.reference.strip_prefix("invoice:on_us:") {
            (s.invoice_by_outpoint.get(&format!("on_us:{id}")), e.on_us_msat)
        } else if let Some(id) = e.reference.strip_prefix("ln:recv:") {
            // A BOLT11 payment's id is its hash when the node is not there to say.
            let hash = hash_of.get(id).copied().unwrap_or(id);
            (s.invoice_by_hash.get(hash), e.lightning_msat)
        } else {
            continue;
        };
        let Some(invoice) = invoice else { continue };
        let b = booked.entry(invoice.as_str()).or_insert((0, Vec::new(), e.created_at));
        b.0 += msat;
        b.1.push(e.reference.clone());
        b.2 = b.2.min(e.created_at);
    }
    let mut checks = Vec::new();
    for inv in s.invoices.values() {
        let (ledger, refs, at) = booked.remove(inv.invoice_id.as_str()).unwrap_or((0, Vec::new(), inv.created_at));
        if (inv.received_msat == 0 && refs.is_empty()) || !(w.contains(at) || w.contains(inv.created_at)) {
            continue;
        }
        let received = i64::try_from(inv.received_msat).unwrap_or(i64::MAX);
        let (class, note) = match () {
            _ if ledger == received => (Class::Match, None),
            _ if inv.receipts_on_their_way > 0 => {
                (Class::Timing, Some("an on-chain receipt is not yet both booked and counted"))
            }
            _ if refs.is_empty() => (Class::Missing, Some("the invoice counted payments the ledger has not booked")),
            _ => (Class::AmountMismatch, Some("the invoice and the ledger disagree on what it received")),
        };
        checks.push(InvoiceCheck {
            invoice_id: inv.invoice_id.clone(),
            status: inv.status.clone(),
            class,
            received_msat: inv.received_msat,
            ledger_msat: ledger,
            ledger_refs: refs,
            currency: inv.currency.clone(),
            received_minor: crate::invoice::fiat_value(inv.amount_minor, inv.amount_sat, inv.received_msat),
            note,
        });
    }
    checks.sort_by(|a, b| a.invoice_id.cmp(&b.invoice_id));
    checks
}
