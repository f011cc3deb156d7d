//! The steps' bookkeeping, shared by the saga, the submit and the batcher: what each state change
//! posts to the ledger (`debit`, `settle`, `fail`), the event it publishes, what the router
//! learns from it, and its log line.

use super::{Change, Payment, Payments, Rail, State};
use crate::ledger::Posting;
use crate::route::learn::Outcome;

/// A new payment's first step, taken in the transaction that accepts it (and by the saga for a
/// payment an older senderod stored as `submitted`): the ledger debit, and for our own invoices
/// the settlement too (they need no rail).
pub(crate) fn first_step(p: &Payment) -> Change {
    if p.rail != Rail::OnUs {
        return debit(p);
    }
    let mut change = settle(p, 0, None);
    change.ledger.splice(0..0, debit(p).ledger);
    change
}

/// What every step writes besides its own change: the outbox event of the state it reaches
/// (`payment.<state>`: every persisted step is published), and when a fiat-priced payout
/// settles, the fill of its quote.
pub(crate) fn complete(ctx: &Payments, p: &Payment, change: &mut Change) {
    let Some(next) = change.next.as_ref().filter(|n| n.state != p.state) else { return };
    if change.event.is_none() {
        change.event = Some((event_name(next.state), next.view().to_string()));
    }
    if next.state.is_final() {
        change.invoices = Some(ctx.config.invoices.tolerance_bps);
    }
    if next.state == State::Settled {
        if let Some(quote_id) = &p.fx_quote_id {
            match ctx.store.quote(quote_id) {
                Ok(Some(q)) => change.fill = crate::fx::payout_fill(&q),
                Ok(None) => tracing::error!(payment_id = %p.payment_id, %quote_id, "the payout's quote is missing"),
                Err(e) => tracing::error!(payment_id = %p.payment_id, error = %e, "reading the payout's quote"),
            }
        }
    }
}

/// The stable outbox event name of reaching `state`.
pub fn event_name(state: State) -> &'static str {
    match state {
        State::Submitted => "payment.submitted",
        State::Debited => "payment.debited",
        State::Sending => "payment.sending",
        State::Sent => "payment.sent",
        State::Settled => "payment.settled",
        State::Failed => "payment.failed",
    }
}

pub(crate) fn log_step(from: &Payment, to: &Payment) {
    let (id, rail) = (&from.payment_id, to.rail.as_str());
    if to.state.is_final() && !from.state.is_final() {
        let secs = to.final_at.unwrap_or(to.updated_at).saturating_sub(to.created_at);
        crate::metrics::payout_final(rail, to.state.as_str(), secs);
    }
    match to.state {
        State::Settled => {
            tracing::info!(payment_id = %id, rail, fee_paid_msat = ?to.fee_paid_msat, rail_ref = ?to.rail_ref, "payment settled")
        }
        State::Failed => tracing::warn!(payment_id = %id, rail, code = ?to.failure_code, reason = ?to.failure_message,
            "payment failed"),
        s => tracing::info!(payment_id = %id, rail, state = s.as_str(), rail_ref = ?to.rail_ref, "payment step"),
    }
}

fn msat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `submitted → debited`: the amount and the fee reserve leave the rail for in-flight.
pub(crate) fn debit(p: &Payment) -> Change {
    let rail = p.rail.as_str();
    let held = msat(p.amount_msat + p.fee_reserve_msat);
    let postings =
        vec![Posting::btc(format!("in_flight:{rail}"), held), Posting::btc(p.rail.treasury_account(), -held)];
    Change {
        next: Some(Payment { state: State::Debited, attempts: 0, ..p.clone() }),
        ledger: vec![("debit", postings)],
        ..Change::default()
    }
}

/// `→ settled`: in-flight becomes the payout and the fee; what the reserve did not need goes
/// back to the rail. A fiat-priced payout also records its fiat value against FX.
pub(crate) fn settle(p: &Payment, fee_paid_msat: u64, rail_ref: Option<String>) -> Change {
    let rail = p.rail.as_str();
    let held = msat(p.amount_msat + p.fee_reserve_msat);
    let mut postings = vec![
        Posting::btc(format!("in_flight:{rail}"), -held),
        Posting::btc(format!("payouts:{rail}"), msat(p.amount_msat)),
        Posting::btc(format!("fees:{rail}"), msat(fee_paid_msat)),
    ];
    let back = msat(p.fee_reserve_msat) - msat(fee_paid_msat);
    postings.push(Posting::btc(p.rail.treasury_account(), back));
    if p.fx_quote_id.is_some() {
        let minor = msat(p.amount_minor);
        postings.push(Posting::in_currency(format!("payouts:{}", p.currency), &p.currency, minor));
        postings.push(Posting::in_currency(format!("fx:{}", p.currency), &p.currency, -minor));
    }
    let now = crate::unix_now();
    let next = Payment {
        state: State::Settled,
        fee_paid_msat: Some(fee_paid_msat),
        rail_ref: rail_ref.or_else(|| p.rail_ref.clone()),
        raw_tx: None,
        final_at: Some(now),
        updated_at: now,
        ..p.clone()
    };
    let event = ("payment.settled", next.view().to_string());
    let outcome = learned(p, true, None, now);
    Change {
        next: Some(next),
        ledger: vec![("settle", postings)],
        event: Some(event),
        outcome,
        fill: None,
        invoices: None,
    }
}

/// `→ failed`: nothing was paid; what was debited is credited back and the FX quote released
/// (a failed payment no longer holds it).
pub(crate) fn fail(p: &Payment, code: &str, message: String) -> Change {
    let debited = !matches!(p.state, State::Submitted);
    let ledger = debited.then(|| {
        let rail = p.rail.as_str();
        let held = msat(p.amount_msat + p.fee_reserve_msat);
        let back = p.rail.treasury_account();
        ("compensate", vec![Posting::btc(format!("in_flight:{rail}"), -held), Posting::btc(back, held)])
    });
    let now = crate::unix_now();
    let next = Payment {
        state: State::Failed,
        failure_code: Some(code.to_owned()),
        failure_message: Some(message),
        raw_tx: None,
        final_at: Some(now),
        updated_at: now,
        ..p.clone()
    };
    let event = ("payment.failed", next.view().to_string());
    let outcome = learned(p, false, Some(code), now);
    Change {
        next: Some(next),
        ledger: ledger.into_iter().collect(),
        event: Some(event),
        outcome,
        fill: None,
        invoices: None,
    }
}

/// What the router learns from a final state: the rail's own successes and failures; not
/// `on_us` (it cannot fail), nor refusals that say nothing of the rail (a bad or already paid
/// destination, an expired invoice, the treasury short of funds).
fn learned(p: &Payment, success: bool, code: Option<&str>, now: u64) -> Option<Outcome> {
    let not_the_rail =
        ["invalid_destination", "duplicate_payment", "invoice_expired", "insufficient_funds", "internal"];
    if p.rail == Rail::OnUs || code.is_some_and(|c| not_the_rail.contains(&c) || c.starts_with("invalid_")) {
        return None;
    }
    Some(Outcome {
        rail: p.rail.as_str().to_owned(),
        success,
        code: code.map(str::to_owned),
        latency_secs: now.saturating_sub(p.created_at),
        at: now,
    })
}
