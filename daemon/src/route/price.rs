//! Pricing each rail for one destination: `lightning` (or `on_us` for our own invoices and
//! offers, and for our invoices' addresses) from the node's view of the network, `onchain` from
//! the feerate and the payout's own transaction as coin selection would build it now.

use sendero_lightning::{LightningNode, Target};
use sendero_wallet::{FeeSource, Feerate, Payee, WalletError};

use super::destination::{Destination, DestinationError, LnDestination, PayTo};
use super::{learn, unavailable, Candidate, Priority, RouteError, Router, Unavailable};
use crate::rails::lightning::LnError;
use crate::store::{Store, StoreError};

/// Every rail that can reach `dest`, priced, and why the others cannot.
pub(super) async fn price_rails(
    ctx: &Router,
    dest: &Destination,
    amount_msat: u64,
    priority: Priority,
) -> (Vec<Candidate>, Vec<Unavailable>) {
    let (mut candidates, mut unavailable) = (Vec::new(), Vec::new());
    if let Some(ln) = &dest.lightning {
        match lightning(ctx, ln, amount_msat) {
            Ok(c) => candidates.push(c),
            Err(u) => unavailable.push(u),
        }
    }
    if let Some(address) = &dest.address {
        match own_address(ctx, address) {
            Ok(false) => {}
            // One of our invoices' addresses: settled inside the gateway (once, if the BIP21's
            // invoice is ours too), never by a transaction to ourselves.
            Ok(true) => {
                if !candidates.iter().any(|c| c.rail == "on_us") {
                    candidates.push(Candidate::new("on_us", 0, 0, "own_invoice_address"));
                }
                return (candidates, unavailable);
            }
            Err(u) => {
                unavailable.push(u);
                return (candidates, unavailable);
            }
        }
        match onchain(ctx, address.clone(), amount_msat.div_ceil(1_000), priority).await {
            Ok(c) => {
                let batch = ctx.config.batching.enabled.then(|| batched(ctx, address, &c, priority));
                candidates.push(c);
                match batch {
                    Some(Ok(b)) => candidates.push(b),
                    Some(Err(u)) => unavailable.push(u),
                    None => {}
                }
            }
            Err(u) => {
                // bitcoind down takes both on-chain rails out: say so for each.
                let batch = (u.code == "bitcoind_unavailable" && ctx.config.batching.enabled)
                    .then(|| Unavailable { rail: "onchain_batch", ..u.clone() });
                unavailable.push(u);
                unavailable.extend(batch);
            }
        }
    }
    (candidates, unavailable)
}

/// Whether `address` is one of the gateway's invoices' addresses.
fn own_address(ctx: &Router, address: &sendero_wallet::bitcoin::Address) -> Result<bool, Unavailable> {
    ctx.store.invoice_by_address(&address.to_string()).map(|inv| inv.is_some()).map_err(|e| {
        tracing::error!(error = %e, "reading the gateway's invoices");
        unavailable("on_us", "internal", "could not read the gateway's invoices".into(), None)
    })
}

/// The gateway's own invoice `dest` pays (by its BOLT11 invoice's payment hash, or its address),
/// refused when it can no longer be paid `on_us`: expired (`invoice_expired`: an expired
/// invoice is not paid from inside the gateway), or already paid (`invoice_already_paid`).
pub(crate) fn refuse_closed_own_invoice(store: &Store, dest: &PayTo, now: u64) -> Result<(), DestinationError> {
    let by_hash = match &dest.payment_hash {
        Some(hash) => store.invoice_by_hash(hash).map_err(internal)?,
        None => None,
    };
    let inv = match (by_hash, &dest.address) {
        (Some(inv), _) => Some(inv),
        (None, Some(address)) => store.invoice_by_address(address).map_err(internal)?,
        (None, None) => None,
    };
    let Some(inv) = inv else { return Ok(()) };
    if inv.status == "expired" || inv.expires_at <= now {
        return Err(DestinationError::Expired("invoice"));
    }
    if inv.status == "paid" {
        return Err(DestinationError::AlreadyPaid(format!("invoice {} is already paid", inv.invoice_id)));
    }
    Ok(())
}

fn internal(e: StoreError) -> DestinationError {
    tracing::error!(error = %e, "reading the gateway's invoices");
    DestinationError::Invalid("could not read the gateway's invoices".into())
}

/// A keysend to our own node id pays no one (unlike our own invoice or offer, it names no
/// receivable the payout could settle): refused as a bad destination.
pub(super) fn refuse_keysend_to_self(ctx: &Router, dest: &Destination) -> Result<(), RouteError> {
    let Some(LnDestination::Keysend(_, node_id)) = &dest.lightning else { return Ok(()) };
    if ctx.lightning.node().is_ok_and(|n| n.public_key() == *node_id) {
        return Err(RouteError::Destination(DestinationError::Invalid(
            "a keysend to this gateway's own node id pays no one: pay one of its invoices or offers (on_us)".into(),
        )));
    }
    Ok(())
}

/// `on_us` for our own invoice or offer, else `lightning` priced by the cheapest path (for an
/// offer, through its blinded paths).
fn lightning(ctx: &Router, ln: &LnDestination, amount_msat: u64) -> Result<Candidate, Unavailable> {
    let node = ctx.lightning.node();
    if let Some(source) = own(ctx, node.as_deref().ok(), ln)? {
        return Ok(Candidate::new("on_us", 0, 0, source));
    }
    let node = node.map_err(|e| match e {
        LnError::NotReady => unavailable("lightning", "lightning_starting", e.to_string(), None),
        e => unavailable("lightning", "lightning_unavailable", e.to_string(), None),
    })?;
    let target = match ln {
        LnDestination::Bolt11(_, info) => Target::Node { node: &info.payee, hints: &info.hints },
        LnDestination::Bolt12(_, info) => Target::Offer(info),
        LnDestination::Keysend(_, node_id) => Target::Node { node: node_id, hints: &[] },
    };
    let outbound = node.usable_outbound_msat();
    let Some(fee) = node.price(target, amount_msat) else {
        // Channels that would carry it once their peer is back (or their funding is deep enough).
        let waiting: u64 = node.channels().iter().filter(|c| !c.usable).map(|c| c.outbound_msat).sum();
        let (code, message) = if outbound < amount_msat && outbound.saturating_add(waiting) >= amount_msat {
            let why = "channels that could carry it are not usable yet (peer offline or reconnecting, or funding not deep enough)";
            ("channel_not_usable", format!("{why}: usable now {outbound} msat, {amount_msat} msat needed"))
        } else if outbound < amount_msat {
            ("insufficient_liquidity", format!("channels can send {outbound} msat, {amount_msat} msat needed"))
        } else if matches!(ln, LnDestination::Bolt12(_, info) if info.paths.is_empty() && info.issuer.is_none()) {
            ("no_route", "the offer names no node and no path to price a route to".to_owned())
        } else if matches!(ln, LnDestination::Bolt12(_, info) if !info.paths.is_empty()) {
            ("no_route", "no path from our channels reaches an introduction node of the offer".to_owned())
        } else {
            ("no_route", "no path from our channels reaches the payee".to_owned())
        };
        return Err(unavailable("lightning", code, message, Some(outbound / 1_000)));
    };
    let eta_sec = learn::prior("lightning").latency_secs.map_or(5, |s| s.ceil() as u64);
    Ok(Candidate {
        hops: Some(fee.hops),
        blinded_fee_msat: (fee.source == "blinded_path").then_some(fee.blinded_msat),
        ..Candidate::new("lightning", fee.fee_msat.div_ceil(1_000), eta_sec, fee.source)
    })
}

/// Whether `ln` is ours — an invoice of our node, an offer our node signs or that `ln.offer`
/// recorded (known from the store even while the node is not running) — and so settles
/// `on_us`; the candidate's cost source when it is.
fn own(ctx: &Router, node: Option<&LightningNode>, ln: &LnDestination) -> Result<Option<&'static str>, Unavailable> {
    let own = node.map(LightningNode::public_key);
    Ok(match ln {
        LnDestination::Bolt11(_, info) => (own == Some(info.payee)).then_some("own_invoice"),
        LnDestination::Bolt12(_, info) => {
            let recorded = ctx.store.is_own_offer(&info.offer_id).map_err(|e| {
                tracing::error!(error = %e, "reading the gateway's own offers");
                unavailable("lightning", "internal", "could not read the gateway's own offers".into(), None)
            })?;
            (recorded || own.is_some_and(|own| info.issuer == Some(own))).then_some("own_offer")
        }
        LnDestination::Keysend(..) => None,
    })
}

/// `onchain`: the feerate for the priority's target times the vsize of this payout's own
/// transaction, as coin selection would build it now.
async fn onchain(
    ctx: &Router,
    address: sendero_wallet::bitcoin::Address,
    amount_sat: u64,
    priority: Priority,
) -> Result<Candidate, Unavailable> {
    let target = priority.target_blocks(&ctx.config.routing);
    let wallet_error = |e: WalletError| match e {
        WalletError::InsufficientFunds { available_sat, .. } => {
            unavailable("onchain", "insufficient_funds", e.to_string(), Some(available_sat))
        }
        WalletError::InvalidAmount(_) => unavailable("onchain", "invalid_amount", e.to_string(), None),
        WalletError::Chain(_) => unavailable("onchain", "bitcoind_unavailable", e.to_string(), None),
        e => unavailable("onchain", "onchain_unavailable", e.to_string(), None),
    };
    // The breaker: while the follower finds bitcoind unreachable, answer at once, asking nothing.
    if let Some(why) = ctx.chain.borrow().outage() {
        return Err(unavailable("onchain", "bitcoind_unavailable", format!("bitcoind is unreachable: {why}"), None));
    }
    let fee = ctx.onchain.estimate(target).await.map_err(wallet_error)?;
    // Quoted to the sat/kvB, as estimated: a single payout pays what it was quoted; a batch pays
    // its departure's feerate.
    let vsize =
        ctx.onchain.payout_vsize(vec![Payee { address, amount_sat }], fee.feerate).await.map_err(wallet_error)?;
    let source = match fee.source {
        FeeSource::Bitcoind => "estimatesmartfee",
        FeeSource::Override => "operator_override",
        FeeSource::Schedule => "fee_schedule",
        FeeSource::Fallback | FeeSource::Requested => "fallback_feerate",
    };
    Ok(on_chain("onchain", (fee.feerate, vsize), target, u64::from(target) * 600, source))
}

/// An on-chain candidate paying `feerate` over `vsize` vbytes (its cost, rounded up to the
/// sat), confirming within `target` blocks.
fn on_chain(
    rail: &'static str,
    (feerate, vsize): (Feerate, u64),
    target: u16,
    eta_sec: u64,
    source: &'static str,
) -> Candidate {
    Candidate {
        fee_rate_sat_vb: Some(feerate.sat_per_vb_ceil()),
        fee_rate_sat_kvb: Some(feerate.sat_per_kvb()),
        vsize: Some(vsize),
        target_blocks: Some(target),
        ..Candidate::new(rail, feerate.fee_sat(vsize), eta_sec, source)
    }
}

/// Shared by every batch: version, locktime, counts, segwit marker (42 WU), one P2WPKH input
/// (272 WU) and a P2WPKH change output (124 WU), in weight units.
const BATCH_SHARED_WU: u64 = 42 + 272 + 124;

/// `onchain_batch`: the same feerate as `onchain` times this payout's own output plus its share
/// of what every batch carries once (overhead, an input, the change), shared with the payouts
/// queued now; it leaves at the earliest deadline of the queue and its own (see
/// `payment::batch_policy`), and confirms within the priority's target after that.
fn batched(
    ctx: &Router,
    address: &sendero_wallet::bitcoin::Address,
    onchain: &Candidate,
    priority: Priority,
) -> Result<Candidate, Unavailable> {
    let feerate = Feerate::from_sat_per_kvb(onchain.fee_rate_sat_kvb.unwrap_or(1_000));
    let (queued, earliest) = ctx.store.batch_queue(&ctx.config.routing).map_err(|e| {
        tracing::error!(error = %e, "reading the batch queue");
        unavailable("onchain_batch", "internal", "could not read the batch queue".into(), None)
    })?;
    let output_wu = (9 + address.script_pubkey().len() as u64) * 4;
    let share_wu = BATCH_SHARED_WU.div_ceil(queued + 1);
    let vsize = (output_wu + share_wu).div_ceil(4);
    let target = priority.target_blocks(&ctx.config.routing);
    let now = crate::unix_now();
    let own = now + priority.max_wait_secs(&ctx.config.routing);
    let leaves = earliest.map_or(own, |e| e.min(own)).max(now);
    let eta_sec = leaves - now + u64::from(target) * 600;
    Ok(on_chain("onchain_batch", (feerate, vsize), target, eta_sec, onchain.cost_source))
}
