//! Reconciliation: the ledger against the wallet's and the node's own records. Every payout is
//! classified `match` (the rail agrees), `timing` (not final yet), `missing` (the ledger says it
//! went out, the rail has no trace) or `amount_mismatch` (both have it, with other amounts — or
//! the rail paid what the ledger says failed). The treasury's balance is compared as a whole:
//! wallet transactions Sendero did not make (deposits, mined coins, admin sends) are imported as
//! `external:onchain` entries once confirmed, so that `treasury:onchain` plus what open payouts
//! hold must equal the wallet's balance to the msat; transfers to and from the Lightning node are
//! never outside movements, and a consolidation (`payment/consolidate.rs`) moves nothing out but its
//! fee (`fees:consolidation`, once confirmed; unconfirmed, it counts like an outside movement not
//! yet imported), and so does a child paying for a stuck transaction (`payment/cpfp.rs`,
//! `fees:cpfp`); a batch that swept in small coins spent its payouts, their shares and the
//! consolidation part the batcher booked (`fees:consolidation`) when it confirmed. The Lightning
//! rail is reconciled by [`crate::ledger::lightning`].

use std::collections::{HashMap, HashSet};

use sendero_wallet::TxRecord;

use serde::Serialize;
use serde_json::{json, Value};

use super::Payments;
use super::{Payment, Rail, State};
use crate::ledger::{self, LedgerError, Posting, BTC};
use crate::rails::lightning::SentByEvent;
use crate::store::StoreError;

/// Payouts of one rail, classified.
#[derive(Debug, Default, Serialize)]
pub struct Classified {
    /// The rail agrees.
    pub r#match: u64,
    /// Not final yet.
    pub timing: u64,
    /// The ledger has it, the rail does not.
    pub missing: Vec<Value>,
    /// Both have it, differently.
    pub amount_mismatch: Vec<Value>,
    /// Settled, and among the `match`es, though the rail's store lost its record in a kill: the
    /// outcome event the gateway recorded proves it (the Lightning node; see
    /// [`crate::store::Store::ln_sent_by_event`]). Listed, never hidden.
    pub record_lost: Vec<Value>,
}

impl Classified {
    fn clean(&self) -> bool {
        self.missing.is_empty() && self.amount_mismatch.is_empty()
    }
}

/// Posts what the Lightning node's records show, then imports the wallet's confirmed
/// transactions that no payment and no transfer to or from the node made; returns how many.
pub fn import_wallet(ctx: &Payments) -> Result<usize, LedgerError> {
    import(ctx, &all_payments(ctx)?, &ctx.onchain.treasury().transactions())
}

fn import(ctx: &Payments, payments: &[Payment], txs: &[TxRecord]) -> Result<usize, LedgerError> {
    let node = ctx.lightning.node().ok();
    let mut ln = ln_payouts(payments);
    if let Some(node) = node.as_deref() {
        count_invoice_payments(ctx, node);
        ln.invoiced = ctx.store.invoice_payment_hashes()?.into_iter().collect();
    }
    let mut imported = ledger::lightning::import(&ctx.store, node.as_deref(), txs, &ln, crate::unix_now())?;
    let mut ours = payout_txids(payments);
    let transfers = transfer_txids(ctx, node.as_deref())?;
    ours.extend(transfers.iter().map(String::as_str));
    let consolidations = ctx.store.consolidation_txids()?;
    let children = ctx.store.fee_child_txids()?;
    let invoiced = invoice_receipts(ctx)?;
    for tx in txs {
        if tx.confirmation_height.is_none() || ours.contains(tx.txid.as_str()) {
            continue;
        }
        // What paid invoices is booked against them, not as an outside movement.
        let received = tx.received_sat.saturating_sub(invoiced.get(&tx.txid).copied().unwrap_or(0));
        let net = (i64::try_from(received).unwrap_or(i64::MAX) - i64::try_from(tx.sent_sat).unwrap_or(i64::MAX))
            .saturating_mul(1_000);
        if net == 0 {
            continue;
        }
        // A consolidation, or a child paying for a stuck payout, moves nothing out but its fee.
        let (kind, reference, other) = if consolidations.contains(&tx.txid) {
            ("consolidation", format!("consolidation:{}", tx.txid), "fees:consolidation")
        } else if children.contains(&tx.txid) {
            ("cpfp", format!("cpfp:{}", tx.txid), "fees:cpfp")
        } else {
            ("external", format!("wallet:{}", tx.txid), "external:onchain")
        };
        let postings = [Posting::btc("treasury:onchain", net), Posting::btc(other, -net)];
        if ctx.store.ledger_post(kind, &reference, &postings, crate::unix_now())? {
            imported += 1;
        }
    }
    if imported > 0 {
        tracing::info!(imported, "wallet transactions imported into the ledger");
    }
    Ok(imported)
}

/// Moves the invoices paid on chain on (booking what confirmed), then what their receipts
/// booked, sats by transaction.
fn invoice_receipts(ctx: &Payments) -> Result<HashMap<String, u64>, StoreError> {
    let treasury = ctx.onchain.treasury();
    let (received, tip) = (treasury.received(), treasury.synced_height());
    let config = &ctx.config.invoices;
    if let Err(e) = crate::invoice::onchain::watch((&ctx.store, config), &received, tip, crate::unix_now()) {
        tracing::error!(error = %e, "watching invoices' on-chain payments failed");
    }
    ctx.store.invoice_booked_by_txid()
}

/// Counts against their invoices the payments the node received that its events did not (a
/// crash between the node's claim and the event's record); each is counted once.
fn count_invoice_payments(ctx: &Payments, node: &sendero_lightning::LightningNode) {
    let now = crate::unix_now();
    for p in node.payments().into_iter().filter(|p| p.direction == "inbound" && p.status == "succeeded") {
        let (Some(hash), Some(msat)) = (p.payment_hash.as_deref(), p.amount_msat) else { continue };
        let tolerance = ctx.config.invoices.tolerance_bps;
        if let Err(e) = crate::invoice::lightning_received((&ctx.store, tolerance), hash, &p.payment_id, msat, now) {
            tracing::error!(error = %e, payment_id = %p.payment_id, "a received payment not counted against its invoice");
        }
    }
}

/// What the Lightning rail's import needs of the payouts.
fn ln_payouts(payments: &[Payment]) -> ledger::lightning::Payouts {
    let lightning = || payments.iter().filter(|p| p.rail == Rail::Lightning);
    ledger::lightning::Payouts {
        tracked: lightning().filter_map(|p| p.rail_ref.clone()).collect(),
        open: lightning().any(|p| !matches!(p.state, State::Settled | State::Failed)),
        invoiced: HashSet::new(),
    }
}

/// Transactions between the treasury and the node: recorded ones, and any the node's wallet
/// knows (a transfer a crash left unrecorded is never an outside movement).
fn transfer_txids(
    ctx: &Payments,
    node: Option<&sendero_lightning::LightningNode>,
) -> Result<HashSet<String>, StoreError> {
    let mut txids: HashSet<String> = ctx.store.ln_transfers()?.into_iter().filter_map(|t| t.txid).collect();
    if let Some(node) = node {
        txids.extend(node.onchain_txs().into_iter().map(|t| t.txid));
    }
    Ok(txids)
}

/// The txids of on-chain payouts.
fn payout_txids(payments: &[Payment]) -> HashSet<&str> {
    payments.iter().filter(|p| p.rail.on_chain()).filter_map(|p| p.rail_ref.as_deref()).map(batch_txid).collect()
}

/// A payout's transaction id: its `rail_ref` (`txid` on `onchain`, `txid:vout` on `onchain_batch`).
fn batch_txid(rail_ref: &str) -> &str {
    rail_ref.split_once(':').map_or(rail_ref, |(txid, _)| txid)
}

fn all_payments(ctx: &Payments) -> Result<Vec<Payment>, StoreError> {
    ctx.store.payments(None, &[], None, usize::MAX >> 1)
}

/// `ledger.verify`: the ledger's own integrity, then the wallet and the node.
pub fn verify(ctx: &Payments) -> Result<Value, LedgerError> {
    let (payments, txs) = (all_payments(ctx)?, ctx.onchain.treasury().transactions());
    import(ctx, &payments, &txs)?;
    let (unbalanced, totals) = ctx.store.ledger_integrity()?;
    let node = ctx.lightning.node().ok();
    let transfers = transfer_txids(ctx, node.as_deref())?;
    let onchain = onchain(ctx, &payments, &txs, &transfers)?;
    let lightning = lightning(ctx, &payments)?;
    let negative: Vec<Value> = ctx
        .store
        .ledger_balances()?
        .into_iter()
        .filter(|b| b.account.starts_with("treasury:") && b.balance < 0)
        .map(|b| json!({"account": b.account, "balance": b.balance}))
        .collect();
    let ok = unbalanced.is_empty()
        && negative.is_empty()
        && totals.values().all(|t| *t == 0)
        && onchain.get("ok").and_then(Value::as_bool) == Some(true)
        && lightning.get("ok").and_then(Value::as_bool) == Some(true);
    Ok(json!({
        "ok": ok,
        "unbalanced_entries": unbalanced,
        "negative_treasury_accounts": negative,
        "totals": totals,
        "onchain": onchain,
        "lightning": lightning,
    }))
}

fn onchain(
    ctx: &Payments,
    payments: &[Payment],
    txs: &[TxRecord],
    transfers: &HashSet<String>,
) -> Result<Value, LedgerError> {
    let mut ours = payout_txids(payments);
    ours.extend(transfers.iter().map(String::as_str));
    let (mut c, mut in_flight) = classify_onchain(payments, txs);
    in_flight += classify_batches(payments, txs, &ctx.store.batch_consolidations_booked()?, &mut c);
    let unconfirmed_external: i128 = txs
        .iter()
        .filter(|t| t.confirmation_height.is_none() && !ours.contains(t.txid.as_str()))
        .map(|t| (i128::from(t.received_sat) - i128::from(t.sent_sat)) * 1_000)
        .sum();
    let b = ctx.onchain.treasury().balances();
    let wallet = i128::from(b.confirmed_sat + b.trusted_pending_sat + b.untrusted_pending_sat + b.immature_sat) * 1_000;
    let ledger = i128::from(ctx.store.ledger_balance("treasury:onchain", BTC)?);
    let difference = wallet - (ledger + in_flight + unconfirmed_external);
    Ok(json!({
        "ok": c.clean() && difference == 0,
        "wallet_msat": wallet as i64,
        "ledger_treasury_msat": ledger as i64,
        "in_flight_msat": in_flight as i64,
        "unconfirmed_external_msat": unconfirmed_external as i64,
        "difference_msat": difference as i64,
        "payouts": c,
    }))
}

/// Batched payouts against the wallet, one transaction at a time (recorded into `c`): once every
/// payout of a transaction has settled, it spent exactly their amounts and fee shares and the
/// consolidation fee `booked` for it (msat by txid); returns what open ones still hold beyond
/// what the wallet already spent on them, msat.
fn classify_batches(payments: &[Payment], txs: &[TxRecord], booked: &HashMap<String, i64>, c: &mut Classified) -> i128 {
    let by_txid: HashMap<&str, &TxRecord> = txs.iter().map(|t| (t.txid.as_str(), t)).collect();
    let mut groups: HashMap<Option<&str>, Vec<&Payment>> = HashMap::new();
    for p in payments.iter().filter(|p| p.rail == Rail::OnchainBatch && p.state != State::Failed) {
        groups.entry(p.rail_ref.as_deref().map(batch_txid)).or_default().push(p);
    }
    c.r#match += payments.iter().filter(|p| p.rail == Rail::OnchainBatch && p.state == State::Failed).count() as u64;
    let mut in_flight = 0;
    for (txid, group) in groups {
        let settled = |p: &Payment| p.state == State::Settled;
        let consolidation = txid.and_then(|t| booked.get(t)).map_or(0, |m| i128::from(*m));
        let paid: i128 = consolidation
            + group
                .iter()
                .filter(|p| settled(p))
                .map(|p| i128::from(p.amount_msat + p.fee_paid_msat.unwrap_or(0)))
                .sum::<i128>();
        let held: i128 =
            group.iter().filter(|p| !settled(p)).map(|p| i128::from(p.amount_msat + p.fee_reserve_msat)).sum();
        let tx = txid.and_then(|t| by_txid.get(t).copied());
        let out = tx.map_or(0, |t| (i128::from(t.sent_sat) - i128::from(t.received_sat)) * 1_000);
        let open = group.iter().filter(|p| !settled(p)).count() as u64;
        c.timing += open;
        match (tx, open) {
            (Some(t), 0) if t.confirmation_height.is_some() && out == paid => c.r#match += group.len() as u64,
            (Some(_), 0) => {
                c.amount_mismatch.push(json!({"txid": txid, "ledger_out_msat": paid, "wallet_out_msat": out}))
            }
            (None, _) if open < group.len() as u64 => c.missing.push(json!({"txid": txid})),
            _ => {}
        }
        in_flight += held - (out - paid);
    }
    in_flight
}

/// Each on-chain payout against the wallet, and what open ones still hold beyond what the
/// wallet already spent on them, msat.
fn classify_onchain(payments: &[Payment], txs: &[TxRecord]) -> (Classified, i128) {
    let mut c = Classified::default();
    let mut in_flight: i128 = 0;
    let by_txid: HashMap<&str, &TxRecord> = txs.iter().map(|t| (t.txid.as_str(), t)).collect();
    let out = |t: &TxRecord| (i128::from(t.sent_sat) - i128::from(t.received_sat)) * 1_000;
    for p in payments.iter().filter(|p| p.rail == Rail::Onchain) {
        let tx = p.rail_ref.as_deref().and_then(|t| by_txid.get(t).copied());
        match p.state {
            State::Settled => match &tx {
                Some(t)
                    if t.confirmation_height.is_some()
                        && out(t)
                            == i128::from(p.amount_msat.div_ceil(1_000) * 1_000 + p.fee_paid_msat.unwrap_or(0)) =>
                {
                    c.r#match += 1
                }
                Some(t) => c.amount_mismatch.push(json!({"payment_id": p.payment_id, "ledger_out_msat":
                    p.amount_msat + p.fee_paid_msat.unwrap_or(0), "wallet_out_msat": out(t)})),
                None => c.missing.push(json!({"payment_id": p.payment_id, "txid": p.rail_ref})),
            },
            State::Failed => match tx {
                None => c.r#match += 1,
                Some(t) => c.amount_mismatch.push(json!({"payment_id": p.payment_id, "ledger": "failed",
                    "wallet_out_msat": out(t)})),
            },
            State::Submitted => c.timing += 1,
            State::Debited | State::Sending | State::Sent => {
                c.timing += 1;
                let held = i128::from(p.amount_msat + p.fee_reserve_msat);
                in_flight += tx.map_or(held, |t| held - out(t));
            }
        }
    }
    (c, in_flight)
}

/// A settled Lightning payout against the node's record `ln` — or, without one, the event that
/// proved it (`by_event`) — classed into `c`; whether the node's side counts it as paid.
fn settled_ln(
    p: &Payment,
    ln: Option<sendero_lightning::Payment>,
    by_event: &HashMap<String, SentByEvent>,
    c: &mut Classified,
) -> bool {
    let fee = p.fee_paid_msat.unwrap_or(0);
    match ln {
        Some(ln)
            if ln.status == "succeeded"
                && ln.amount_msat == Some(p.amount_msat)
                && ln.fee_paid_msat.unwrap_or(0) == fee =>
        {
            c.r#match += 1;
            true
        }
        Some(ln) => {
            c.amount_mismatch.push(json!({"payment_id": p.payment_id, "node": ln}));
            false
        }
        None => match p.rail_ref.as_deref().and_then(|r| by_event.get(r)) {
            Some(sent) if sent.fee_paid_msat.unwrap_or(0) == fee => {
                c.r#match += 1;
                c.record_lost.push(json!({"payment_id": p.payment_id, "ln_payment_id": p.rail_ref,
                    "payment_hash": sent.payment_hash, "event_at": sent.at,
                    "why": "the node has no record of it after a kill (lost, or dropped by the recovery that found it pending); its PaymentSuccessful event proves it"}));
                true
            }
            _ => {
                c.missing.push(json!({"payment_id": p.payment_id, "ln_payment_id": p.rail_ref}));
                false
            }
        },
    }
}

fn lightning(ctx: &Payments, payments: &[Payment]) -> Result<Value, LedgerError> {
    let node = match ctx.lightning.node() {
        Ok(n) => n,
        Err(e) => {
            let open = payments.iter().any(|p| p.rail == Rail::Lightning);
            let treasury = ctx.store.ledger_balance("treasury:lightning", BTC)?;
            return Ok(
                json!({ "ok": !open && treasury == 0, "node": e.to_string(), "ledger_treasury_msat": treasury }),
            );
        }
    };
    let mut c = Classified::default();
    let (mut ledger_out, mut node_out) = (0_u64, 0_u64);
    let by_event = ctx.store.ln_sent_by_event()?;
    for p in payments.iter().filter(|p| p.rail == Rail::Lightning) {
        let ln = p.rail_ref.as_deref().and_then(|r| node.payment(r));
        match p.state {
            State::Settled => {
                let out = p.amount_msat + p.fee_paid_msat.unwrap_or(0);
                ledger_out += out;
                if settled_ln(p, ln, &by_event, &mut c) {
                    node_out += out;
                }
            }
            State::Failed => match ln {
                Some(ln) if ln.status == "succeeded" => {
                    c.amount_mismatch.push(json!({"payment_id": p.payment_id, "ledger": "failed", "node": ln}))
                }
                _ => c.r#match += 1,
            },
            _ => c.timing += 1,
        }
    }
    let open = payments.iter().any(|p| p.rail == Rail::Lightning && !matches!(p.state, State::Settled | State::Failed));
    let mut rail = ledger::lightning::check(&ctx.store, &node, open)?;
    let rail_ok = rail.get("ok").and_then(Value::as_bool) == Some(true);
    rail["ok"] = Value::from(c.clean() && ledger_out == node_out && rail_ok);
    rail["payouts_out_msat"] = json!({ "ledger": ledger_out, "node": node_out });
    rail["payouts"] = json!(c);
    Ok(rail)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A settled Lightning payout matches the node's record; without one, only the node's event
    /// with the same routing fee proves it (listed under `record_lost`); else it is `missing`.
    #[test]
    fn a_settled_payout_without_the_nodes_record_is_proven_only_by_its_event() {
        let p = Payment {
            state: State::Settled,
            rail_ref: Some("ln1".into()),
            amount_msat: 1_000_000,
            fee_paid_msat: Some(1_000),
            ..crate::payment::test_payment(1, Rail::Lightning, "keysend:02aa".into())
        };
        let record = sendero_lightning::Payment {
            payment_id: "ln1".into(),
            kind: "spontaneous",
            direction: "outbound",
            status: "succeeded",
            amount_msat: Some(1_000_000),
            fee_paid_msat: Some(1_000),
            payment_hash: None,
            updated_at: 1,
        };
        let event = |fee| SentByEvent { fee_paid_msat: Some(fee), payment_hash: Some("hh".into()), at: 2 };
        let mut c = Classified::default();
        assert!(settled_ln(&p, Some(record.clone()), &HashMap::new(), &mut c));
        assert!(!settled_ln(
            &p,
            Some(sendero_lightning::Payment { amount_msat: Some(9), ..record }),
            &HashMap::new(),
            &mut c
        ));
        assert!(!settled_ln(&p, None, &HashMap::new(), &mut c));
        assert!(!settled_ln(&p, None, &[("ln1".to_owned(), event(7))].into(), &mut c));
        assert_eq!((c.r#match, c.amount_mismatch.len(), c.missing.len(), c.record_lost.len()), (1, 1, 2, 0));
        assert!(settled_ln(&p, None, &[("ln1".to_owned(), event(1_000))].into(), &mut c));
        assert_eq!((c.r#match, c.missing.len(), c.record_lost[0]["payment_hash"].as_str()), (2, 2, Some("hh")));
    }
}
