//! Where an invoice goes when what counts toward it changes: a payment credited (on time, or
//! late once it expired: `paid_late`), or a counted on-chain payment a reorg took away
//! (`invoice.reorged`). Pure functions of the invoice and the amounts; the store applies them.

use super::{judge, outcome, Judgement};

/// What of an invoice its next state depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts<'a> {
    /// The stored status.
    pub status: &'a str,
    /// What the payer pays, sats.
    pub amount_sat: u64,
    /// Everything counted so far, msat.
    pub received_msat: u64,
    /// What of it was credited after the invoice expired, msat.
    pub paid_late_msat: u64,
}

/// An invoice's next state and the events that say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Next {
    /// The stored status: `new`, `processing`, `paid`, `underpaid` or `expired`.
    pub status: &'static str,
    /// `underpaid` / `overpaid`, judged on everything counted.
    pub exception: Option<&'static str>,
    /// Everything counted, msat.
    pub received_msat: u64,
    /// What of it was credited after the invoice expired, msat.
    pub paid_late_msat: u64,
    /// The events to queue, in order.
    pub events: Vec<&'static str>,
}

/// The status the API shows: an expired invoice that received a payment after it expired is
/// `paid_late`.
pub fn public_status(status: &str, paid_late_msat: u64) -> &str {
    if status == "expired" && paid_late_msat > 0 {
        "paid_late"
    } else {
        status
    }
}

fn exception_of(amount_sat: u64, received_msat: u64, tolerance_bps: u32) -> Option<&'static str> {
    match judge(amount_sat, received_msat, tolerance_bps) {
        Judgement::Exact => None,
        Judgement::Underpaid => Some("underpaid"),
        Judgement::Overpaid => Some("overpaid"),
    }
}

/// `amount_msat` more counts toward `inv`. An expired invoice stays expired, its late amount
/// grows and `invoice.paid_late` says so (shown as `paid_late`); a paid one stays paid (and says
/// `invoice.overpaid` if it now is); any other moves on by the total received.
pub fn credit(inv: Counts<'_>, amount_msat: u64, tolerance_bps: u32) -> Next {
    let received_msat = inv.received_msat.saturating_add(amount_msat);
    let exception = exception_of(inv.amount_sat, received_msat, tolerance_bps);
    let (status, paid_late_msat, events) = match inv.status {
        "expired" => ("expired", inv.paid_late_msat.saturating_add(amount_msat), vec!["invoice.paid_late"]),
        "paid" if exception == Some("overpaid") => ("paid", inv.paid_late_msat, vec!["invoice.overpaid"]),
        "paid" => ("paid", inv.paid_late_msat, vec![]),
        _ => {
            let (status, _, events) = outcome(inv.amount_sat, received_msat, tolerance_bps);
            (status, inv.paid_late_msat, events)
        }
    };
    Next { status, exception, received_msat, paid_late_msat, events }
}

/// A counted payment of `amount_msat` (credited late if `late`) no longer counts: a reorg took
/// its transaction out of the chain. An expired invoice stays expired with what still counts;
/// any other is `processing` while a payment to it is still seen (`pending`: the transaction
/// back in the mempool), else `new` when nothing counts, else judged on what does. Always
/// `invoice.reorged`.
pub fn debit(inv: Counts<'_>, amount_msat: u64, late: bool, pending: bool, tolerance_bps: u32) -> Next {
    let received_msat = inv.received_msat.saturating_sub(amount_msat);
    let paid_late_msat = if late { inv.paid_late_msat.saturating_sub(amount_msat) } else { inv.paid_late_msat };
    let judged = || exception_of(inv.amount_sat, received_msat, tolerance_bps);
    let (status, exception) = match inv.status {
        "expired" if received_msat == 0 => ("expired", None),
        "expired" => ("expired", judged()),
        _ if pending => ("processing", None),
        _ if received_msat == 0 => ("new", None),
        _ => {
            let (status, exception, _) = outcome(inv.amount_sat, received_msat, tolerance_bps);
            (status, exception)
        }
    };
    Next { status, exception, received_msat, paid_late_msat, events: vec!["invoice.reorged"] }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice(status: &str, received_msat: u64, paid_late_msat: u64) -> Counts<'_> {
        Counts { status, amount_sat: 50_000, received_msat, paid_late_msat }
    }

    #[test]
    fn a_payment_after_expiry_is_credited_and_paid_late() {
        let late = credit(invoice("expired", 0, 0), 50_000_000, 0);
        assert_eq!((late.status, late.exception, late.paid_late_msat), ("expired", None, 50_000_000));
        assert_eq!(
            (late.events, public_status(late.status, late.paid_late_msat)),
            (vec!["invoice.paid_late"], "paid_late")
        );
        let rest = credit(invoice("expired", 20_000_000, 0), 10_000_000, 0);
        assert_eq!(
            (rest.exception, rest.received_msat, rest.paid_late_msat),
            (Some("underpaid"), 30_000_000, 10_000_000)
        );
        assert_eq!(public_status("expired", 0), "expired");
    }

    #[test]
    fn a_second_full_payment_leaves_it_paid_and_overpaid() {
        let twice = credit(invoice("paid", 50_000_000, 0), 50_000_000, 10);
        assert_eq!((twice.status, twice.exception, twice.received_msat), ("paid", Some("overpaid"), 100_000_000));
        assert_eq!(twice.events, vec!["invoice.overpaid"]);
        let first = credit(invoice("processing", 0, 0), 50_000_000, 10);
        assert_eq!((first.status, first.events), ("paid", vec!["invoice.paid"]));
    }

    #[test]
    fn a_reorged_payment_returns_the_invoice_to_processing_or_new() {
        let back = debit(invoice("paid", 50_000_000, 0), 50_000_000, false, true, 10);
        assert_eq!((back.status, back.received_msat, back.events), ("processing", 0, vec!["invoice.reorged"]));
        assert_eq!(debit(invoice("paid", 50_000_000, 0), 50_000_000, false, false, 10).status, "new");
        let part = debit(invoice("paid", 80_000_000, 0), 30_000_000, false, false, 10);
        assert_eq!((part.status, part.exception), ("paid", None));
        let late = debit(invoice("expired", 50_000_000, 50_000_000), 50_000_000, true, true, 10);
        assert_eq!((late.status, late.paid_late_msat, public_status(late.status, 0)), ("expired", 0, "expired"));
    }
}
