//! Accepting a payout: a priced, unexpired route of the same key, one of its feasible rails, its
//! FX quote still valid, and the treasury guard — the rail must be able to fund it beside what
//! open payments already reserve. The payment, its `payment.submitted` event and the idempotent
//! answer are written in one transaction; the saga takes it from there.

use super::Payments;
use super::{steps, InsertError, NewPayment, Payment, Rail, State};
use crate::limits::{self, Checked, Left};
use crate::route::destination::{self, DestinationError, PayTo};
use crate::route::StoredRoute;
use crate::store::StoreError;

/// A submission, parsed at the edge.
#[derive(Debug, Clone)]
pub struct SubmitRequest {
    /// The priced route.
    pub route_id: String,
    /// One of its candidates' rails.
    pub rail: String,
    /// Must be the route's quote when given.
    pub fx_quote_id: Option<String>,
    /// The key's payout limits at the current rate, if it has any.
    pub limits: Option<Checked>,
}

/// What one rail could fund now, for `insufficient_funds`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Available {
    /// The rail.
    pub rail: &'static str,
    /// Spendable now minus what open payments reserve, sats.
    pub available_sat: u64,
}

/// Why a submission was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// No route with this id for this key.
    #[error("no route {0}")]
    UnknownRoute(String),
    /// Past its expiry.
    #[error("route {0} has expired; price the payout again")]
    RouteExpired(String),
    /// Not a rail name.
    #[error("rail must be onchain, lightning or on_us, not {0:?}")]
    InvalidRail(String),
    /// The route has no such candidate.
    #[error("route {route_id} offers {offered}, not {rail}")]
    RailNotOffered {
        /// The route.
        route_id: String,
        /// Asked for.
        rail: String,
        /// What it offers.
        offered: String,
    },
    /// The operator disabled the rail since the route was priced.
    #[error("the {0} rail is disabled by the operator")]
    RailDisabled(&'static str),
    /// The rail's treasury fell below its reserve since the route was priced.
    #[error("{0}")]
    TreasuryReserve(String),
    /// `fx_quote_id` is not the route's quote.
    #[error("fx_quote_id {0} is not the quote this route was priced with")]
    QuoteMismatch(String),
    /// The route's FX quote has expired.
    #[error("FX quote {0} has expired; price the payout again")]
    QuoteExpired(String),
    /// The destination stopped being payable (an invoice expired since routing).
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The treasury guard: the rail cannot fund it.
    #[error("{message}")]
    InsufficientFunds {
        /// Why.
        message: String,
        /// Per rail.
        available: Vec<Available>,
    },
    /// A refund beyond what its invoice may still refund.
    #[error("the invoice can refund {refundable_sat} sat more; this refund needs {needed_sat} sat")]
    RefundExceeds {
        /// What the invoice may still refund, sats.
        refundable_sat: u64,
        /// What the refund needs, sats.
        needed_sat: u64,
    },
    /// Over the key's per-payout or daily limit.
    #[error("{message}")]
    LimitExceeded {
        /// Why.
        message: String,
        /// The limits and what is left today.
        left: Box<Left>,
    },
    /// Not on the key's destination allowlist.
    #[error("{0}")]
    DestinationNotAllowed(String),
    /// Already submitted, locked, or being paid.
    #[error(transparent)]
    Conflict(InsertError),
    /// The Lightning node is not running.
    #[error("the Lightning node is not running: {0}")]
    LightningUnavailable(String),
    /// Channels that could fund it are not usable yet (peer offline or reconnecting): retry.
    #[error("{0}")]
    ChannelNotUsable(String),
    /// bitcoind is unreachable (the on-chain rails' breaker is open): retry once it is back.
    #[error("bitcoind is unreachable: {0}")]
    BitcoindUnavailable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The `202` body: `{payment_id, status:"SUBMITTED"}`.
pub fn answer(payment_id: &str) -> Vec<u8> {
    serde_json::json!({ "payment_id": payment_id, "status": "SUBMITTED" }).to_string().into_bytes()
}

/// Accepts `req` for key `key_id` under idempotency key `idem`, storing [`answer`] as the
/// key's response in the same transaction. The checks read SQLite's read-only connection and
/// in-memory state (the wallet's balance off the async threads); the write waits for the next
/// group commit without holding a thread.
pub async fn accept(
    ctx: &Payments,
    key_id: &str,
    idem: &str,
    req: &SubmitRequest,
    now: u64,
) -> Result<Payment, SubmitError> {
    accept_as(ctx, (key_id, idem), req, None, now).await
}

/// A payout that refunds an invoice: the invoice, the refund's mode, and the idempotent answer
/// to store for the payment.
pub struct RefundOf<'a> {
    /// The invoice refunded.
    pub invoice_id: String,
    /// `rate_then`, `current_rate` or `amount`.
    pub mode: &'static str,
    /// The answer stored for the idempotency key.
    pub answer: &'a (dyn Fn(&Payment) -> Vec<u8> + Sync),
}

/// [`accept`], for a refund when `refund` is given: capped, in the transaction that writes the
/// payment, at what the invoice may still refund (refused with nothing written beyond it).
#[tracing::instrument(name = "ledger.debit", skip_all, fields(route_id = %req.route_id, rail = %req.rail))]
pub async fn accept_as(
    ctx: &Payments,
    (key_id, idem): (&str, &str),
    req: &SubmitRequest,
    refund: Option<RefundOf<'_>>,
    now: u64,
) -> Result<Payment, SubmitError> {
    let (route, rail, (cost_sat, fee_rate)) = checked_route(ctx, key_id, req, now)?;
    if let Some(why) = ctx.chain.borrow().outage().filter(|_| rail.on_chain()) {
        return Err(SubmitError::BitcoindUnavailable(why.to_owned()));
    }
    let payee = payee(ctx, &route, rail, now)?;
    if let Some(checked) = &req.limits {
        within_limits(ctx, checked, key_id, (&route, &payee.0), now)?;
    }
    let payment = new_payment((key_id, idem), &route, rail, (cost_sat, fee_rate), payee, now);
    let answer_of = |p: &Payment| refund.as_ref().map_or_else(|| answer(&p.payment_id), |r| (r.answer)(p));
    let mut first = steps::first_step(&payment);
    let stored = first.next.clone().unwrap_or_else(|| payment.clone());
    if stored.state.is_final() {
        steps::complete(ctx, &payment, &mut first);
    }
    let new = NewPayment {
        spendable_msat: spendable_msat(ctx, rail)?,
        need_msat: route.amount_msat + cost_sat * 1_000,
        daily_limit: req
            .limits
            .as_ref()
            .and_then(|l| l.max_daily_msat)
            .map(|m| (m, now.saturating_sub(limits::DAY_SECS))),
        // Written with the debit, in one transaction: the payload shows the stored state.
        event: ("payment.submitted", stored.view().to_string()),
        answer: answer_of(&payment),
        payment: payment.clone(),
        first,
        refund_of: refund.as_ref().map(|r| (r.invoice_id.clone(), r.mode)),
    };
    match ctx.committer.insert(new).await {
        Err(InsertError::Limit { used_msat }) => return Err(over_daily(req.limits.as_ref(), used_msat)),
        Err(e) => return refused(ctx, (key_id, idem), rail, e, &answer_of),
        Ok(()) => {}
    }
    // Tests: stored (an `on_us` payout settled, its invoice credited), the client not answered.
    crate::failpoint::hit("payment.committed");
    tracing::info!(payment_id = %payment.payment_id, route_id = %payment.route_id, rail = rail.as_str(),
        amount_msat = payment.amount_msat, "payment submitted");
    steps::log_step(&payment, &stored);
    if !stored.state.is_final() {
        ctx.wake.notify_one();
    }
    if rail == Rail::OnchainBatch {
        ctx.batch_wake.notify_one();
    }
    ctx.webhooks_wake.notify_one();
    Ok(stored)
}

/// A rail's priced cost (sats) and feerate (sat/vB, on chain).
type Priced = (u64, Option<u64>);

/// The key's route, unexpired, with the rail asked for among its candidates and not disabled,
/// its FX quote (the one asked for, if any) still valid; the rail's priced cost and feerate.
fn checked_route(
    ctx: &Payments,
    key_id: &str,
    req: &SubmitRequest,
    now: u64,
) -> Result<(StoredRoute, Rail, Priced), SubmitError> {
    let route = ctx
        .store
        .route(&req.route_id)?
        .filter(|r| r.api_key_id == key_id)
        .ok_or_else(|| SubmitError::UnknownRoute(req.route_id.clone()))?;
    if route.expires_at <= now {
        return Err(SubmitError::RouteExpired(route.route_id));
    }
    let rail = Rail::parse(req.rail.trim()).ok_or_else(|| SubmitError::InvalidRail(req.rail.clone()))?;
    let Some(&(_, cost_sat, fee_rate)) = route.candidates.iter().find(|c| c.0 == rail.as_str()) else {
        let offered = route.candidates.iter().map(|c| c.0.as_str()).collect::<Vec<_>>().join(", ");
        return Err(SubmitError::RailNotOffered { route_id: route.route_id, rail: req.rail.clone(), offered });
    };
    if ctx.learner.lock().is_disabled(rail.as_str()) {
        return Err(SubmitError::RailDisabled(rail.as_str()));
    }
    if let Some((why, _)) = crate::route::treasury_rail(rail.as_str()).and_then(|r| ctx.guard.refusal(r)) {
        return Err(SubmitError::TreasuryReserve(why.message));
    }
    if let Some(asked) = &req.fx_quote_id {
        if route.fx_quote_id.as_deref() != Some(asked.as_str()) {
            return Err(SubmitError::QuoteMismatch(asked.clone()));
        }
    }
    if let Some(quote_id) = &route.fx_quote_id {
        let quote = ctx.store.quote(quote_id)?;
        if quote.is_none_or(|q| q.expires_at <= now) {
            return Err(SubmitError::QuoteExpired(quote_id.clone()));
        }
    }
    Ok((route, rail, (cost_sat, fee_rate)))
}

/// The key's per-payout limit, its destination allowlist, and (for the answer only: the commit
/// checks it again in its transaction) its daily limit.
fn within_limits(
    ctx: &Payments,
    checked: &Checked,
    key_id: &str,
    (route, paid): (&StoredRoute, &str),
    now: u64,
) -> Result<(), SubmitError> {
    if !limits::allows(&checked.limits.allowlist, paid, ctx.network) {
        return Err(SubmitError::DestinationNotAllowed(format!(
            "this API key may pay only the destinations on its allowlist; {paid} is not on it"
        )));
    }
    let over_payout = checked.max_payout_msat.is_some_and(|max| route.amount_msat > max);
    let used_msat = ctx.store.key_used_since(key_id, now.saturating_sub(limits::DAY_SECS))?;
    let over_daily = checked.max_daily_msat.is_some_and(|max| used_msat.saturating_add(route.amount_msat) > max);
    if over_payout {
        let left = Box::new(checked.left(used_msat));
        let message = format!(
            "{} sat is over this API key's limit per payout ({} sat)",
            route.amount_msat.div_ceil(1_000),
            left.max_payout_sat.unwrap_or_default()
        );
        return Err(SubmitError::LimitExceeded { message, left });
    }
    if over_daily {
        return Err(over_daily_error(checked, used_msat));
    }
    Ok(())
}

/// The daily limit's refusal.
fn over_daily(checked: Option<&Checked>, used_msat: u64) -> SubmitError {
    match checked {
        Some(checked) => over_daily_error(checked, used_msat),
        None => SubmitError::Conflict(InsertError::Limit { used_msat }),
    }
}

fn over_daily_error(checked: &Checked, used_msat: u64) -> SubmitError {
    let left = Box::new(checked.left(used_msat));
    let message = format!(
        "this payout would take the API key over its daily limit ({} sat in any 24 h): {} sat left today",
        left.max_daily_sat.unwrap_or_default(),
        left.left_today_sat.unwrap_or_default()
    );
    SubmitError::LimitExceeded { message, left }
}

/// What the rail pays (an address, or an invoice / offer / keysend with its payment hash), still
/// payable and not already paid outside the API.
fn payee(ctx: &Payments, route: &StoredRoute, rail: Rail, now: u64) -> Result<(String, Option<String>), SubmitError> {
    let pay_to = match &route.pay_to {
        Some(pay_to) => pay_to.clone(),
        None => destination::parse(&route.destination, ctx.network)?.pay_to(),
    };
    let (destination, rail_ref) = match rail {
        Rail::OnUs => on_us_payee(ctx, &pay_to, now)?,
        _ => pay_to.rail(rail.on_chain(), now)?,
    };
    if let (Rail::Lightning, Some(hash)) = (rail, &rail_ref) {
        // Paid (or being paid) outside the API, e.g. with `ln.pay`: not again.
        let node = ctx.lightning.node().map_err(|e| SubmitError::LightningUnavailable(e.to_string()))?;
        if node.payment(hash).is_some_and(|p| p.status != "failed") {
            return Err(SubmitError::Conflict(InsertError::AlreadyPaying));
        }
    }
    Ok((destination, rail_ref))
}

/// What an `on_us` payment pays, its invoice still open: the BOLT11 invoice when it is one of the
/// gateway's invoices' (or the destination has no address of ours), else the invoice's address —
/// then also the payment's reference, so one `on_us` payment pays an invoice's address.
fn on_us_payee(ctx: &Payments, pay_to: &PayTo, now: u64) -> Result<(String, Option<String>), SubmitError> {
    crate::route::price::refuse_closed_own_invoice(&ctx.store, pay_to, now)?;
    let own_hash = match &pay_to.payment_hash {
        Some(hash) => ctx.store.invoice_by_hash(hash)?.is_some(),
        None => false,
    };
    match &pay_to.address {
        Some(address) if !own_hash && ctx.store.invoice_by_address(address)?.is_some() => {
            Ok((address.clone(), Some(address.clone())))
        }
        _ => Ok(pay_to.rail(false, now)?),
    }
}

/// The new payment, `submitted`, holding the fee it may cost.
fn new_payment(
    (key_id, idem): (&str, &str),
    route: &StoredRoute,
    rail: Rail,
    (cost_sat, fee_rate): (u64, Option<u64>),
    (destination, rail_ref): (String, Option<String>),
    now: u64,
) -> Payment {
    let fee_reserve_msat = match rail {
        Rail::Onchain | Rail::OnchainBatch => cost_sat * 1_000,
        // What LDK allows a route to cost at most (1 % + 50 sat), so the actual fee always fits:
        // for an invoice, a keysend and an offer alike (an offer's blinded hops, whose fee the
        // route could only estimate, are part of what LDK caps).
        Rail::Lightning => (route.amount_msat / 100 + 50_000).max(cost_sat * 1_000),
        Rail::OnUs => 0,
    };
    Payment {
        payment_id: crate::secret::sortable_id("pay_"),
        api_key_id: key_id.to_owned(),
        idem_key: idem.to_owned(),
        route_id: route.route_id.clone(),
        rail,
        destination,
        amount_msat: route.amount_msat,
        currency: route.currency.clone(),
        amount_minor: route.amount_minor,
        fx_quote_id: route.fx_quote_id.clone(),
        fee_reserve_msat,
        fee_rate_sat_kvb: fee_rate.filter(|_| rail.on_chain()),
        state: State::Submitted,
        rail_ref,
        raw_tx: None,
        fee_paid_msat: None,
        failure_code: None,
        failure_message: None,
        attempts: 0,
        next_attempt_at: 0,
        created_at: now,
        updated_at: now,
        final_at: None,
    }
}

/// A refused insert as the client sees it — or, when the key already has its payment (its first
/// answer was lost with the process), that payment.
fn refused(
    ctx: &Payments,
    (key_id, idem): (&str, &str),
    rail: Rail,
    e: InsertError,
    answer_of: &dyn Fn(&Payment) -> Vec<u8>,
) -> Result<Payment, SubmitError> {
    match e {
        InsertError::Guard { available_msat, need_msat }
            if rail == Rail::Lightning && {
                let waiting = unusable_outbound_msat(ctx);
                waiting > 0 && available_msat.saturating_add(waiting) >= need_msat
            } =>
        {
            Err(SubmitError::ChannelNotUsable(format!(
                "channels that could fund this payout are not usable yet (peer offline or reconnecting): usable now \
                 {} sat, {} sat needed",
                available_msat / 1_000,
                need_msat.div_ceil(1_000)
            )))
        }
        e @ InsertError::Guard { available_msat, .. } => {
            let mut available = vec![Available { rail: rail.as_str(), available_sat: available_msat / 1_000 }];
            for other in [Rail::Onchain, Rail::Lightning].into_iter().filter(|r| *r != rail) {
                if let Ok(Some(msat)) = spendable_msat(ctx, other) {
                    available.push(Available { rail: other.as_str(), available_sat: msat / 1_000 });
                }
            }
            Err(SubmitError::InsufficientFunds { message: format!("{}: {e}", rail.as_str()), available })
        }
        InsertError::IdemTaken => {
            let existing = ctx
                .store
                .payment_by_idem(key_id, idem)?
                .ok_or_else(|| SubmitError::Store(StoreError::Sql(crate::store::sql::Error::QueryReturnedNoRows)))?;
            ctx.store.idempotency_finish(key_id, idem, 202, &answer_of(&existing))?;
            Ok(existing)
        }
        InsertError::Store(e) => Err(SubmitError::Store(e)),
        InsertError::RefundExceeds { left_msat, need_msat } => {
            Err(SubmitError::RefundExceeds { refundable_sat: left_msat / 1_000, needed_sat: need_msat.div_ceil(1_000) })
        }
        e => Err(SubmitError::Conflict(e)),
    }
}

/// What channels that are not usable now (peer offline, reconnecting) could send, msat.
fn unusable_outbound_msat(ctx: &Payments) -> u64 {
    let Ok(node) = ctx.lightning.node() else { return 0 };
    node.channels().iter().filter(|c| !c.usable).map(|c| c.outbound_msat).sum()
}

/// What `rail` can spend now, msat (`None`: no limit, for `on_us`).
fn spendable_msat(ctx: &Payments, rail: Rail) -> Result<Option<u64>, SubmitError> {
    Ok(match rail {
        Rail::Onchain | Rail::OnchainBatch => {
            // The wallet may be busy syncing: wait for it off the async threads.
            let b = tokio::task::block_in_place(|| ctx.onchain.treasury().balances());
            Some((b.confirmed_sat + b.trusted_pending_sat) * 1_000)
        }
        Rail::Lightning => {
            let node = ctx.lightning.node().map_err(|e| SubmitError::LightningUnavailable(e.to_string()))?;
            Some(node.usable_outbound_msat())
        }
        Rail::OnUs => None,
    })
}
