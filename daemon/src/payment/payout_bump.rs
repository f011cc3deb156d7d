//! Fee bumping of single `onchain` payouts, and which transaction of a payout's family paid. A
//! payout's transaction still unconfirmed after its priority's `bump_after_blocks` (sooner near
//! its ETA bound) is sped up to what the next block needs, up to the priority's ceiling
//! ([`crate::batch::bump`]): replaced (RBF) when nothing spends it yet, otherwise given a child
//! that pays for it ([`super::cpfp`]). A replacement becomes the payout's `rail_ref` and stored
//! `raw_tx`, and the replaced transaction is kept, in one database transaction, before the
//! replacement is broadcast. The original and its replacements spend a common input, so at most
//! one confirms; whichever does is the payout's, and its fee is what the ledger settles.
//!
//! A stored replacement is broadcast again after a restart only while the transaction it
//! replaces has no unconfirmed children (a replacement would evict them, and the payouts they
//! carry); otherwise the payout goes back to the transaction the wallet holds.
//!
//! A payout is put in a new family only once its family can never confirm: every transaction of
//! it spends a coin another transaction spent `CONFLICT_BURIED` (6) blocks deep (`family_fate`).
//! It is then built again from other coins (`renew`); a batch likewise (the bumper's `renew`).

use std::sync::Arc;

use crate::store::sql::{params, OptionalExtension};
use sendero_wallet::bitcoin::consensus::{deserialize, serialize};
use sendero_wallet::bitcoin::{OutPoint, Transaction, Txid};
use sendero_wallet::{Feerate, Payee, WalletError};

use super::{Change, Payment, Payments};
use crate::batch::{InFlight, Policy, Priority};
use crate::ledger::LedgerError;
use crate::store::{Store, StoreError};

/// How deep another transaction spending a coin of a family must be before the family counts as
/// one that can never confirm: a reorg that deep is not expected.
pub(super) const CONFLICT_BURIED: u32 = 6;

/// A transaction of a payout that a replacement took over (or that took over from the one the
/// payout has now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacedTx {
    /// Its id.
    pub txid: String,
    /// As signed.
    pub raw_tx: Vec<u8>,
}

impl Store {
    /// The chain height the payout's current transaction counts its unconfirmed blocks from.
    fn payout_broadcast_height(&self, payment_id: &str) -> Result<Option<u64>, StoreError> {
        let conn = self.read();
        let height = conn
            .prepare_cached("SELECT height FROM payout_broadcasts WHERE payment_id = ?1")?
            .query_row([payment_id], |r| r.get::<_, i64>(0))
            .optional()?;
        Ok(height.map(|h| h as u64))
    }

    /// Counts the payout's current transaction's blocks from `height`.
    fn set_payout_broadcast_height(&self, payment_id: &str, height: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO payout_broadcasts (payment_id, height) VALUES (?1, ?2)
             ON CONFLICT (payment_id) DO UPDATE SET height = excluded.height",
            params![payment_id, height as i64],
        )?;
        Ok(())
    }

    /// Counts the payout's transaction's blocks from `height`, unless they already count.
    fn payout_left(&self, payment_id: &str, height: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO payout_broadcasts (payment_id, height) VALUES (?1, ?2) ON CONFLICT (payment_id) DO NOTHING",
            params![payment_id, height as i64],
        )?;
        Ok(())
    }

    /// The other transactions of a payout's family.
    pub fn payout_replaced(&self, payment_id: &str) -> Result<Vec<ReplacedTx>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT txid, raw_tx FROM payout_replaced WHERE payment_id = ?1 ORDER BY replaced_at, txid",
        )?;
        let rows = stmt.query_map([payment_id], |r| Ok(ReplacedTx { txid: r.get(0)?, raw_tx: r.get(1)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keeps the payout's current transaction as one of its family and makes the one `change`
    /// names its own (`rail_ref`, `raw_tx`), counting blocks from `height` — in one database
    /// transaction, and only if the payout is still as `from` says.
    fn switch_payout_tx(&self, from: &Payment, change: &Change, height: u64, now: u64) -> Result<bool, LedgerError> {
        let (Some(txid), Some(raw)) = (from.rail_ref.as_deref(), from.raw_tx.as_deref()) else { return Ok(false) };
        let next = change.next.as_ref().and_then(|n| n.rail_ref.clone()).unwrap_or_default();
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let current: Option<String> = tx
            .prepare_cached("SELECT rail_ref FROM payments WHERE payment_id = ?1")?
            .query_row([&from.payment_id], |r| r.get(0))
            .optional()?
            .flatten();
        if current.as_deref() != Some(txid) || !super::record::apply(&tx, from, change, now)? {
            return Ok(false);
        }
        tx.prepare_cached(
            "INSERT INTO payout_replaced (txid, payment_id, raw_tx, replaced_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (txid) DO NOTHING",
        )?
        .execute(params![txid, from.payment_id, raw, now as i64])?;
        tx.prepare_cached("DELETE FROM payout_replaced WHERE txid = ?1")?.execute([&next])?;
        tx.prepare_cached(
            "INSERT INTO payout_broadcasts (payment_id, height) VALUES (?1, ?2)
             ON CONFLICT (payment_id) DO UPDATE SET height = excluded.height",
        )?
        .execute(params![from.payment_id, height as i64])?;
        tx.commit()?;
        Ok(true)
    }
}

/// The payout moved onto another transaction of its family (`txid`, `raw_tx`).
fn moved(p: &Payment, txid: String, raw_tx: Vec<u8>) -> Change {
    Change { next: Some(Payment { rail_ref: Some(txid), raw_tx: Some(raw_tx), ..p.clone() }), ..Change::default() }
}

/// The transaction of the payout's family that is the one paying instead of its own: one that
/// confirmed; or, when the wallet does not hold the payout's own (`ours_held` false), one the
/// wallet holds that another transaction already spends from (broadcasting the payout's own
/// would evict that one), or any it holds when `any_held` (the payout's own was refused).
pub(super) fn paying_member(
    ctx: &Payments,
    p: &Payment,
    ours_held: bool,
    any_held: bool,
) -> Result<Option<ReplacedTx>, StoreError> {
    let store = Arc::clone(&ctx.store);
    let id = p.payment_id.clone();
    let family = tokio::task::block_in_place(|| store.payout_replaced(&id))?;
    Ok(family.into_iter().find(|r| pays_instead(ctx, &r.txid, ours_held, any_held)))
}

/// Whether `txid`, another transaction of a family (a payout's or a batch's), is the one paying
/// instead of the family's current one: it confirmed; or, when the wallet does not hold the
/// current one (`ours_held` false), the wallet holds it and another transaction spends from it,
/// or holds it at all when `any_held`.
pub(super) fn pays_instead(ctx: &Payments, txid: &str, ours_held: bool, any_held: bool) -> bool {
    let treasury = ctx.onchain.treasury();
    match treasury.transaction(txid) {
        Some(t) if t.confirmation_height.is_some() => true,
        Some(_) if ours_held => false,
        Some(_) => any_held || treasury.pending(txid).is_some_and(|m| m.has_children),
        None => false,
    }
}

/// Makes a transaction of the payout's family its own (the one that paid, or may).
pub(super) fn adopt(ctx: &Payments, p: &Payment, member: ReplacedTx) -> Result<(), LedgerError> {
    let change = moved(p, member.txid.clone(), member.raw_tx);
    let (store, from, height) = (Arc::clone(&ctx.store), p.clone(), u64::from(ctx.onchain.treasury().synced_height()));
    if tokio::task::block_in_place(|| store.switch_payout_tx(&from, &change, height, crate::unix_now()))? {
        tracing::warn!(payment_id = %p.payment_id, txid = %member.txid, was = ?p.rail_ref,
            "the payout is back on another transaction of its family");
    }
    Ok(())
}

/// The payout's transaction was broadcast: its unconfirmed blocks count from the wallet's tip.
pub(super) fn left(ctx: &Payments, p: &Payment) {
    let tip = u64::from(ctx.onchain.treasury().synced_height());
    if let Err(e) = tokio::task::block_in_place(|| ctx.store.payout_left(&p.payment_id, tip)) {
        tracing::warn!(payment_id = %p.payment_id, error = %e, "broadcast height not recorded; counted from the next look");
    }
}

/// How a batch's or payout's unconfirmed transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Standing {
    /// As a miner weighs it (a child already paying for it counts), sat/kvB; 0 when it is gone
    /// (no mempool of bitcoind's takes it: it cannot confirm as it is).
    pub feerate_sat_kvb: u64,
    /// How many unconfirmed transactions it spends from.
    pub unconfirmed_ancestors: usize,
    /// Gone from bitcoind's mempool, and free to be bid again
    /// ([`sendero_wallet::Treasury::left_behind`]).
    pub gone: bool,
    /// Other unconfirmed transactions of the wallet spend from it: a child lifts it, not a
    /// replacement.
    pub has_children: bool,
}

/// How `txid` (signed as `raw`) stands: in the wallet's unconfirmed history, or gone from it and
/// free to be bid again; `None` otherwise (confirmed, unknown, or replaced by one the wallet
/// counts).
pub(super) fn standing(ctx: &Payments, txid: &str, raw: &[u8]) -> Option<Standing> {
    let treasury = ctx.onchain.treasury();
    if let Some(p) = treasury.pending(txid) {
        return Some(Standing {
            feerate_sat_kvb: p.effective_sat_kvb,
            unconfirmed_ancestors: p.unconfirmed_ancestors,
            gone: false,
            has_children: p.has_children,
        });
    }
    let tx: Transaction = deserialize(raw).ok()?;
    if !treasury.left_behind(&tx) {
        return None;
    }
    Some(Standing { feerate_sat_kvb: 0, unconfirmed_ancestors: 0, gone: true, has_children: false })
}

/// A single payout's unconfirmed transaction as the bump policy weighs it, and how it stands. Its
/// blocks count from its broadcast (or, for one sent before that was recorded, from the first
/// look).
pub(super) fn in_flight(
    ctx: &Payments,
    p: &Payment,
    policy: &Policy,
) -> Result<Option<(InFlight, Standing)>, StoreError> {
    let (Some(txid), Some(raw)) = (p.rail_ref.as_deref(), p.raw_tx.as_deref()) else { return Ok(None) };
    let Some(standing) = standing(ctx, txid, raw) else { return Ok(None) };
    let tip = u64::from(ctx.onchain.treasury().synced_height());
    let Some(height) = ctx.store.payout_broadcast_height(&p.payment_id)? else {
        ctx.store.set_payout_broadcast_height(&p.payment_id, tip)?;
        return Ok(None);
    };
    let priority = ctx.store.route_priority(&p.route_id)?.as_deref().and_then(Priority::parse);
    let priority = priority.unwrap_or(Priority::Normal);
    let in_flight = InFlight {
        priority,
        feerate_sat_kvb: standing.feerate_sat_kvb,
        blocks_unconfirmed: u32::try_from(tip.saturating_sub(height)).unwrap_or(u32::MAX),
        eta_bound: p.created_at + policy.class(priority).max_eta_secs,
    };
    Ok(Some((in_flight, standing)))
}

/// Replaces the payout's transaction at `rate`: stored, then broadcast. The caller holds
/// [`crate::rails::onchain::Onchain::spending`]. The new txid and its fee, or `None` when the
/// payout moved meanwhile (nothing is broadcast then).
pub(super) async fn replace(ctx: &Payments, p: &Payment, rate: Feerate) -> Result<Option<(String, u64)>, WalletError> {
    let Some(txid) = p.rail_ref.clone() else { return Ok(None) };
    let (tx, payout) = ctx.onchain.bump(&ctx.store, &txid, rate).await?;
    Ok(store_replacement(ctx, p, (&tx, &payout)).await?.map(|next| (next, payout.fee_sat)))
}

/// Makes `tx` (built as `payout`: the same coins and outputs, a higher fee) the payout's
/// transaction, stored, then broadcast. The caller holds
/// [`crate::rails::onchain::Onchain::spending`]. The new txid, or `None` when the payout moved
/// meanwhile (nothing is broadcast then).
pub(super) async fn store_replacement(
    ctx: &Payments,
    p: &Payment,
    (tx, payout): (&Transaction, &sendero_wallet::Payout),
) -> Result<Option<String>, WalletError> {
    if !take_tx(ctx, p, tx, &payout.txid.to_string())? {
        return Ok(None);
    }
    crate::failpoint::hit("onchain.bumped");
    tracing::info!(payment_id = %p.payment_id, replaced = ?p.rail_ref, txid = %payout.txid, to = %payout.feerate,
        fee_sat = payout.fee_sat, "payout fee bumped");
    if let Err(e) = ctx.onchain.publish(tx.clone()).await {
        tracing::warn!(payment_id = %p.payment_id, error = %e, "replacement not broadcast now; the saga decides");
    }
    Ok(Some(payout.txid.to_string()))
}

/// Makes `tx` (`txid`, signed, not broadcast) the payout's transaction, the current one kept with
/// its family, its blocks counted from the wallet's tip — in one database transaction; false when
/// the payout moved meanwhile.
fn take_tx(ctx: &Payments, p: &Payment, tx: &Transaction, txid: &str) -> Result<bool, WalletError> {
    let change = moved(p, txid.to_owned(), serialize(tx));
    let (store, from, tip) = (Arc::clone(&ctx.store), p.clone(), u64::from(ctx.onchain.treasury().synced_height()));
    tokio::task::block_in_place(|| store.switch_payout_tx(&from, &change, tip, crate::unix_now()))
        .map_err(|e| WalletError::Storage(e.to_string()))
}

/// Whether a family — its current transaction and the others, as signed — may still confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fate {
    /// Its current transaction may.
    MayConfirm,
    /// The current one never can, but this other one (its place among the others) may: the
    /// family goes back to it.
    Another(usize),
    /// None of them ever can: each spends a coin another transaction spent [`CONFLICT_BURIED`]
    /// blocks deep (the current one's coin, and that transaction).
    Dead(OutPoint, Txid),
}

/// The fate of the family of `current` and `others` (as the wallet's [`conflict_buried`] sees
/// each; one that cannot be read counts as one that may confirm).
///
/// [`conflict_buried`]: sendero_wallet::Treasury::conflict_buried
pub(super) fn family_fate<'a>(
    ctx: &Payments,
    current: &Transaction,
    others: impl IntoIterator<Item = &'a [u8]>,
) -> Fate {
    let treasury = ctx.onchain.treasury();
    let Some((coin, by)) = treasury.conflict_buried(current, CONFLICT_BURIED) else { return Fate::MayConfirm };
    let alive = others.into_iter().position(|raw| {
        deserialize::<Transaction>(raw).map_or(true, |t| treasury.conflict_buried(&t, CONFLICT_BURIED).is_none())
    });
    alive.map_or(Fate::Dead(coin, by), Fate::Another)
}

/// Puts a payout whose family can never confirm (`why`) in a new one: built again from other
/// coins paying `payee` at `rate`, stored as its own (the dead transaction kept with the rest of
/// its family) with its blocks counted from now — not broadcast. The new transaction, or `None`
/// when the payout moved meanwhile. Built under [`crate::rails::onchain::Onchain::spending`],
/// taken here unless the caller `held` it.
pub(super) async fn renew(
    ctx: &Payments,
    p: &Payment,
    (payee, rate): (Payee, Feerate),
    why: &str,
    held: bool,
) -> Result<Option<String>, WalletError> {
    let _spending = if held { None } else { Some(ctx.onchain.spending().await) };
    let (tx, payout) = ctx.onchain.prepare(&ctx.store, vec![payee], rate).await?;
    let txid = payout.txid.to_string();
    if !take_tx(ctx, p, &tx, &txid)? {
        return Ok(None);
    }
    tracing::warn!(payment_id = %p.payment_id, dead = ?p.rail_ref, %why, %txid, feerate = %rate,
        fee_sat = payout.fee_sat, "the payout's transaction can never confirm; built again in a new family");
    crate::failpoint::hit("onchain.renewed");
    Ok(Some(txid))
}
