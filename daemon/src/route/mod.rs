//! Route selection for payouts: price every rail that can reach the destination — `onchain`
//! (feerate for the priority's confirmation target × the payout's own vsize), `lightning` (the
//! routing fee of the cheapest path our channels, the invoice's hints and the network graph
//! allow; for an offer, to one of its blinded paths' introduction node plus an estimate of the
//! blinded hops), `on_us` (our own invoice or offer, or the address of one of our invoices: free,
//! instant) — say why the others cannot,
//! recommend the
//! lowest expected cost per success within the priority's ETA bound, and persist the route so that
//! it can be submitted until it expires. Knows nothing of HTTP.

pub mod destination;
mod fiat;
pub mod learn;
pub(crate) mod price;
mod record;

pub use fiat::QuoteUseError;

pub use record::StoredRoute;

use std::sync::Arc;

use sendero_wallet::bitcoin::Network;
use serde::Serialize;

pub use crate::batch::Priority;
use tokio::sync::watch;

use crate::config::Config;
use crate::follower::ChainStatus;
use crate::fx::{FxError, RateCache};
use crate::liquidity::guard::Guard;
use crate::rails::lightning::LnRail;
use crate::rails::onchain::Onchain;
use crate::rebalance::reserve;
use crate::route::destination::{Destination, DestinationError, PayTo};
use crate::store::{Store, StoreError};

/// The router: what pricing a payout reads — both rails, the FX rates, the learner — and the
/// store its routes are kept in.
pub struct Router {
    /// The checked configuration (`[routing]`, `[fx]`).
    pub config: Arc<Config>,
    /// The chain destinations must belong to.
    pub network: Network,
    /// Where routes (and the gateway's own offers) are kept.
    pub store: Arc<Store>,
    /// The on-chain rail, for its feerate and the payout's vsize.
    pub onchain: Arc<Onchain>,
    /// The Lightning rail, for the cheapest path.
    pub lightning: Arc<LnRail>,
    /// Hot FX rates, for fiat amounts.
    pub fx: Arc<RateCache>,
    /// What the rails have done so far, and the operator's rail rules.
    pub learner: learn::SharedLearner,
    /// The rails' reserves: a rail below its own takes no new payouts.
    pub guard: Arc<Guard>,
    /// bitcoind's status as the chain follower last saw it: the on-chain rails' breaker.
    pub chain: watch::Receiver<ChainStatus>,
}

/// A route request, parsed at the edge.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    /// Amount in `currency`'s minor units (sats for `BTC` and `SAT`).
    pub amount_minor: u64,
    /// `BTC`, `SAT` or a fiat currency the gateway quotes.
    pub currency: String,
    /// Invoice, offer, node id (keysend), address or BIP21 URI.
    pub destination: String,
    /// Urgency.
    pub priority: Priority,
    /// The client's own FX quote for a fiat amount (else the route takes a fresh one).
    pub fx_quote_id: Option<String>,
    /// The rails the client accepts (`None`: all of them).
    pub method: Option<Method>,
    /// Where the payee is, as the client says (ISO 3166 alpha-2); recorded with the route.
    pub geo: Option<String>,
}

/// The payout method a client asks for: which rails may carry it. The seed's methods (`card`,
/// `sepa`, `swift`, `ewallet`) are not rails of a Bitcoin gateway; `crypto` (or `bitcoin`) is
/// every rail Sendero has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Every rail.
    Crypto,
    /// A transaction on chain.
    Onchain,
    /// Lightning, our own invoices (`on_us`) included.
    Lightning,
    /// Only our own invoices.
    OnUs,
}

impl Method {
    /// The method a client names, or why it is not one.
    pub fn parse(text: &str) -> Result<Method, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "crypto" | "bitcoin" | "any" => Ok(Method::Crypto),
            "onchain" => Ok(Method::Onchain),
            "lightning" => Ok(Method::Lightning),
            "on_us" => Ok(Method::OnUs),
            other => Err(format!(
                "method {other:?} is not a rail of this gateway: it pays over bitcoin only (crypto, onchain, lightning or on_us)"
            )),
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Crypto => "crypto",
            Method::Onchain => "onchain",
            Method::Lightning => "lightning",
            Method::OnUs => "on_us",
        }
    }

    fn allows(self, rail: &str) -> bool {
        match self {
            Method::Crypto => true,
            Method::Onchain => matches!(rail, "onchain" | "onchain_batch"),
            Method::Lightning => matches!(rail, "lightning" | "on_us"),
            Method::OnUs => rail == "on_us",
        }
    }
}

/// One priced rail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// `onchain`, `lightning` or `on_us`.
    pub rail: &'static str,
    /// Estimated cost, sats.
    pub cost_sat: u64,
    /// The same in the request's currency's minor units (rounded up).
    pub cost_minor: u64,
    /// Estimated seconds to settlement.
    pub eta_sec: u64,
    /// Learned probability of success.
    pub success_rate: f64,
    /// What one success costs on average on this rail, fee and failures included, sats.
    pub expected_cost_sat: u64,
    /// On-chain: the feerate used, sat/vB, rounded up (for display beside `fee_rate_sat_kvb`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_rate_sat_vb: Option<u64>,
    /// On-chain: the feerate used, sat/kvB, as the estimate gives it; the cost is this over
    /// `vsize`, rounded up to the sat, and a single payout pays it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fee_rate_sat_kvb: Option<u64>,
    /// On-chain: the payout's estimated virtual size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vsize: Option<u64>,
    /// On-chain: the confirmation target, blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_blocks: Option<u16>,
    /// Lightning: the channels on the cheapest path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hops: Option<usize>,
    /// Lightning to an offer: of the cost, what the blinded hops are estimated to charge, msat
    /// (their exact fee arrives only with the offer's invoice, once paying).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blinded_fee_msat: Option<u64>,
    /// Where the cost came from: `estimatesmartfee` / `fallback_feerate` (on-chain),
    /// `direct_channel` / `route_hint` / `network_graph` / `blinded_path` (Lightning; the last
    /// for an offer, whose blinded hops' fee is estimated), `own_invoice` / `own_offer` /
    /// `own_invoice_address` (on_us: our node's invoice or offer, one of our invoices' addresses).
    pub cost_source: &'static str,
}

impl Candidate {
    /// A candidate on `rail` costing `cost_sat`, with the learned success rate; rail-specific
    /// details are filled in by the caller.
    fn new(rail: &'static str, cost_sat: u64, eta_sec: u64, cost_source: &'static str) -> Self {
        Candidate {
            rail,
            cost_sat,
            cost_minor: cost_sat,
            eta_sec,
            success_rate: learn::prior(rail).success_rate,
            expected_cost_sat: cost_sat,
            fee_rate_sat_vb: None,
            fee_rate_sat_kvb: None,
            vsize: None,
            target_blocks: None,
            hops: None,
            blinded_fee_msat: None,
            cost_source,
        }
    }
}

/// A rail that cannot take this payout, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unavailable {
    /// The rail.
    pub rail: &'static str,
    /// Stable code (`insufficient_funds`, `insufficient_liquidity`, `no_route`, …).
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// What the rail could spend, sats, when funds are the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub available_sat: Option<u64>,
    /// Whether it clears by itself (the node starting, a peer reconnecting, bitcoind back):
    /// asking again later may find the rail.
    pub retryable: bool,
}

/// Codes of a rail that is unavailable for now only.
const PASSING: &[&str] = &["lightning_starting", "channel_not_usable", "bitcoind_unavailable"];

/// A priced, persisted route.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Route {
    /// `rt_…`.
    pub route_id: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// What the destination is.
    pub kind: &'static str,
    /// The request's currency.
    pub currency: String,
    /// The request's amount, minor units.
    pub amount_minor: u64,
    /// What the payee receives, sats (rounded up from msat).
    pub amount_sat: u64,
    /// What the payee receives, msat.
    pub amount_msat: u64,
    /// The FX quote that priced a fiat amount.
    pub fx_quote_id: Option<String>,
    /// Urgency.
    pub priority: &'static str,
    /// Longest ETA recommended for this priority, seconds.
    pub eta_bound_sec: u64,
    /// Feasible rails.
    pub candidates: Vec<Candidate>,
    /// The rail to use.
    pub recommend: Option<&'static str>,
    /// Rails that cannot take it.
    pub unavailable: Vec<Unavailable>,
    /// The method asked for.
    pub method: Option<&'static str>,
    /// Where the payee is, as the client said.
    pub geo: Option<String>,
    /// What each rail pays, stored with the route for its submit.
    #[serde(skip)]
    pub pay_to: PayTo,
}

/// Why no route.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// Bad destination.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// Zero, or too large.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// Converting a fiat amount failed.
    #[error(transparent)]
    Fx(#[from] FxError),
    /// The client's FX quote does not fit this payout.
    #[error(transparent)]
    Quote(#[from] QuoteUseError),
    /// `fx_quote_id` with a bitcoin amount.
    #[error("fx_quote_id prices a fiat amount; this payout is in {0}")]
    QuoteNotNeeded(String),
    /// No rail can take the payout.
    #[error("no rail can pay this: {}", .0.iter().map(|u| format!("{}: {}", u.rail, u.message)).collect::<Vec<_>>().join("; "))]
    NoRail(Vec<Unavailable>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RouteError {
    /// The first reason that clears by itself, when one does: waiting may then find a rail.
    pub fn passing(unavailable: &[Unavailable]) -> Option<&Unavailable> {
        unavailable.iter().find(|u| u.retryable)
    }

    /// `insufficient_funds` when every rail lacks funds, else `no_route`.
    pub fn no_rail_code(unavailable: &[Unavailable]) -> &'static str {
        let funds = |u: &Unavailable| {
            matches!(u.code, "insufficient_funds" | "insufficient_liquidity" | reserve::TREASURY_RESERVE)
        };
        if !unavailable.is_empty() && unavailable.iter().all(funds) {
            "insufficient_funds"
        } else {
            "no_route"
        }
    }
}

/// Prices `req` for API key `key_id` and records the route.
#[tracing::instrument(name = "route.select", skip_all, fields(fx_quote_id = ?req.fx_quote_id))]
pub async fn select(ctx: &Router, key_id: &str, req: RouteRequest, now: u64) -> Result<Route, RouteError> {
    let dest = destination::parse(&req.destination, ctx.network)?;
    price::refuse_keysend_to_self(ctx, &dest)?;
    price::refuse_closed_own_invoice(&ctx.store, &dest.pay_to(), now)?;
    let currency = req.currency.trim().to_ascii_uppercase();
    if req.amount_minor == 0 {
        return Err(RouteError::InvalidAmount("amount.minor_units must be at least 1".into()));
    }
    let (amount_msat, fx_quote_id) = amount(ctx, key_id, &req, &currency, &dest, now)?;
    let amount_sat = amount_msat.div_ceil(1_000);
    let (mut candidates, mut unavailable) = price::price_rails(ctx, &dest, amount_msat, req.priority).await;
    if let Some(method) = req.method {
        let (allowed, excluded): (Vec<Candidate>, Vec<Candidate>) =
            candidates.into_iter().partition(|c| method.allows(c.rail));
        candidates = allowed;
        for c in excluded {
            let why = format!("the request asks for method {}", method.as_str());
            unavailable.push(self::unavailable(c.rail, "method_excluded", why, None));
        }
    }
    reserves(ctx, &mut candidates, &mut unavailable);
    let bound = req.priority.max_eta_secs(&ctx.config.routing);
    let recommend = learned(ctx, &mut candidates, &mut unavailable, bound, now);
    if candidates.is_empty() {
        return Err(RouteError::NoRail(unavailable));
    }
    if fx_quote_id.is_some() {
        for c in &mut candidates {
            let cost = u128::from(c.cost_sat) * u128::from(req.amount_minor);
            c.cost_minor = u64::try_from(cost.div_ceil(u128::from(amount_sat.max(1)))).unwrap_or(u64::MAX);
        }
    }
    let route = Route {
        route_id: crate::secret::sortable_id("rt_"),
        expires_at: now + ctx.config.routing.route_ttl_secs,
        kind: dest.kind,
        currency,
        amount_minor: req.amount_minor,
        amount_sat,
        amount_msat,
        fx_quote_id,
        priority: req.priority.as_str(),
        eta_bound_sec: bound,
        candidates,
        recommend,
        unavailable,
        method: req.method.map(Method::as_str),
        geo: req.geo.clone(),
        pay_to: dest.pay_to(),
    };
    ctx.store.insert_route(&route, key_id, req.destination.trim(), now)?;
    tracing::info!(route_id = %route.route_id, kind = route.kind, amount_sat, recommend = ?route.recommend, "route priced");
    Ok(route)
}

/// What the learner says of the candidates: rails the operator disabled move to `unavailable`,
/// the others get their learned success rate, latency and expected cost; returns the rail to
/// recommend within the priority's ETA `bound`.
fn learned(
    ctx: &Router,
    candidates: &mut Vec<Candidate>,
    unavailable: &mut Vec<Unavailable>,
    bound: u64,
    now: u64,
) -> Option<&'static str> {
    let tuning = ctx.config.routing.tuning();
    let learner = ctx.learner.lock();
    let (offered, disabled): (Vec<Candidate>, Vec<Candidate>) =
        std::mem::take(candidates).into_iter().partition(|c| !learner.is_disabled(c.rail));
    *candidates = offered;
    for c in disabled {
        unavailable.push(self::unavailable(c.rail, "rail_disabled", "disabled by the operator".into(), None));
    }
    let total = learner.total_outcomes();
    for c in candidates.iter_mut() {
        let stats = learner.stats(c.rail);
        c.success_rate = stats.success_rate();
        if c.rail == "lightning" {
            c.eta_sec = stats.latency_secs.map_or(c.eta_sec, |s| s.ceil() as u64);
        }
        c.expected_cost_sat = learner.expected_cost(c.rail, c.cost_sat, total, &tuning);
    }
    let priced: Vec<(&'static str, u64, u64)> = candidates.iter().map(|c| (c.rail, c.cost_sat, c.eta_sec)).collect();
    learner.recommend(&priced, bound, now, &tuning)
}

/// What the payee gets, msat, and the FX quote that priced a fiat amount. A destination that
/// fixes its own amount must agree with the request: exactly for bitcoin amounts, within the FX
/// allowed drift for fiat ones (the destination's amount is then what is paid).
fn amount(
    ctx: &Router,
    key_id: &str,
    req: &RouteRequest,
    currency: &str,
    dest: &Destination,
    now: u64,
) -> Result<(u64, Option<String>), RouteError> {
    let too_large = || RouteError::InvalidAmount(format!("{} {currency} is too large", req.amount_minor));
    let (requested_sat, quote_id) = match currency {
        "BTC" | "SAT" if req.fx_quote_id.is_some() => return Err(RouteError::QuoteNotNeeded(currency.to_owned())),
        "BTC" | "SAT" => (req.amount_minor, None),
        fiat => {
            let fx = (&ctx.config.fx, &*ctx.fx, &*ctx.store);
            let priced = fiat::price(fx, key_id, fiat, req.amount_minor, req.fx_quote_id.as_deref(), now);
            let (sat, quote_id) = priced.map_err(|e| match e {
                fiat::PriceError::Fx(e) => RouteError::Fx(e),
                fiat::PriceError::Quote(e) => RouteError::Quote(e),
            })?;
            (sat, Some(quote_id))
        }
    };
    if requested_sat > 21_000_000 * 100_000_000 {
        return Err(too_large());
    }
    let requested_msat = requested_sat.checked_mul(1_000).ok_or_else(too_large)?;
    let Some(fixed) = dest.amount_msat else { return Ok((requested_msat, quote_id)) };
    let fixed_sat = fixed.div_ceil(1_000);
    let agrees = match quote_id {
        None => fixed_sat == requested_sat,
        Some(_) => {
            let drift = u128::from(fixed_sat.abs_diff(requested_sat)) * 10_000;
            drift <= u128::from(ctx.config.fx.allowed_drift_bps) * u128::from(requested_sat)
        }
    };
    if !agrees {
        return Err(RouteError::Destination(DestinationError::AmountMismatch(format!(
            "the destination asks for {fixed} msat ({fixed_sat} sat) but the request is for {requested_sat} sat"
        ))));
    }
    Ok((fixed, quote_id))
}

/// The treasury rail a payment rail draws on (`on_us` draws on none).
pub fn treasury_rail(rail: &str) -> Option<reserve::Rail> {
    match rail {
        "onchain" | "onchain_batch" => Some(reserve::Rail::Onchain),
        "lightning" => Some(reserve::Rail::Lightning),
        _ => None,
    }
}

/// Candidates whose treasury rail is below its reserve move to `unavailable` (`treasury_reserve`,
/// with what is free on it); the other rails still serve.
fn reserves(ctx: &Router, candidates: &mut Vec<Candidate>, unavailable: &mut Vec<Unavailable>) {
    candidates.retain(|c| {
        let Some((why, free_sat)) = treasury_rail(c.rail).and_then(|r| ctx.guard.refusal(r)) else { return true };
        unavailable.push(self::unavailable(c.rail, why.code, why.message, Some(free_sat)));
        false
    });
}

fn unavailable(rail: &'static str, code: &'static str, message: String, available_sat: Option<u64>) -> Unavailable {
    Unavailable { rail, code, message, available_sat, retryable: PASSING.contains(&code) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rail_is_insufficient_funds_only_when_funds_are_the_reason() {
        let funds = unavailable("onchain", "insufficient_funds", String::new(), Some(1));
        let liq = unavailable("lightning", "insufficient_liquidity", String::new(), Some(0));
        let route = unavailable("lightning", "no_route", String::new(), None);
        assert_eq!(RouteError::no_rail_code(&[funds.clone(), liq]), "insufficient_funds");
        assert_eq!(RouteError::no_rail_code(&[funds, route]), "no_route");
    }
}
