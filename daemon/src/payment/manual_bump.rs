//! An operator's fee bump (`payment.bump {payment_id}`, `batch.bump {batch_id}`): a single
//! `onchain` payout's or a batch's unconfirmed transaction lifted now, to the feerate the operator
//! names or to what the next block asks, by the automatic bumper's own path
//! (`bumper::lift`): replaced (the same outputs, the higher fee from its change; stored
//! before its broadcast, the replaced one kept with its family) when nothing spends it yet,
//! otherwise a child pays for the package. Refused, changing nothing, when there is nothing to
//! lift or the feerate is not one a replacement can pay.

use sendero_wallet::Feerate;

use super::bumper::{lift, BumpError, Lifted, NotLifted, Stuck};
use super::{Payments, Rail, State};
use crate::store::StoreError;

/// What to lift.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The transaction of this payout (a single `onchain` one, or the batch it is in).
    Payment(&'a str),
    /// This batch's transaction.
    Batch(&'a str),
}

/// A lift done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bumped {
    /// The batch lifted, when it was one (every payout in it moved with it).
    pub batch_id: Option<String>,
    /// The transaction that was stuck.
    pub txid: String,
    /// Its feerate before, with what already paid for it, sat/kvB.
    pub from_sat_kvb: u64,
    /// The feerate asked, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// `replaced`: `new_txid` replaces it; `child`: `new_txid` spends from it and pays for both.
    pub how: &'static str,
    /// The replacement, or the child.
    pub new_txid: String,
    /// The replacement's whole fee, or the child's own.
    pub fee_sat: u64,
}

/// Why a lift was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ManualBumpError {
    /// No such payment.
    #[error("no payment {0}")]
    PaymentNotFound(String),
    /// No such batch.
    #[error("no batch {0}")]
    BatchNotFound(String),
    /// Nothing on the chain to lift, and why.
    #[error("{0}")]
    NotBumpable(String),
    /// Not more than it already pays plus bitcoind's step.
    #[error("its transaction already pays {pays_sat_kvb} sat/kvB; a bump must ask at least {least_sat_kvb} sat/kvB")]
    TooLow {
        /// What it pays now, sat/kvB.
        pays_sat_kvb: u64,
        /// The least a bump asks, sat/kvB.
        least_sat_kvb: u64,
    },
    /// Above `wallet.max_feerate_sat_vb`.
    #[error("{asked_sat_kvb} sat/kvB is above wallet.max_feerate_sat_vb ({max_sat_vb} sat/vB)")]
    TooHigh {
        /// What was asked, sat/kvB.
        asked_sat_kvb: u64,
        /// The wallet's maximum, sat/vB.
        max_sat_vb: u64,
    },
    /// A payout signed and not yet broadcast spends from it.
    #[error("a payout signed and not yet broadcast spends from it: try again once that one is out")]
    Held,
    /// Building, storing or broadcasting failed.
    #[error(transparent)]
    Bump(#[from] BumpError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a valid request asks, handed to `bump_now`'s `asked` before the transaction is touched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Asked {
    /// The batch to lift, when it is one.
    pub batch_id: Option<String>,
    /// The payout named, when one was.
    pub payment_id: Option<String>,
    /// The transaction stuck.
    pub txid: String,
    /// Its feerate now, with what already pays for it, sat/kvB.
    pub from_sat_kvb: u64,
    /// The feerate asked, sat/kvB.
    pub feerate_sat_kvb: u64,
}

/// Lifts `target`'s transaction to `sat_kvb` (what the next block asks when `None`). `asked` is
/// called once the request is valid, before the transaction is touched (the operator's request
/// is audited there); an error from it refuses the bump.
pub async fn bump_now(
    ctx: &Payments,
    target: Target<'_>,
    sat_kvb: Option<u64>,
    asked_hook: impl FnOnce(&Asked) -> Result<(), StoreError>,
) -> Result<Bumped, ManualBumpError> {
    let stuck = stuck(ctx, target)?;
    let txid = stuck.txid().to_owned();
    let batch_id = match &stuck {
        Stuck::Batch(b) => Some(b.batch_id.clone()),
        Stuck::Payout(_) => None,
    };
    let asked = match sat_kvb {
        Some(rate) => rate,
        None => ctx.onchain.estimate(1).await.map_err(BumpError::from)?.feerate.sat_per_kvb(),
    };
    let max_sat_vb = ctx.onchain.max_feerate_sat_vb();
    if asked > max_sat_vb.saturating_mul(1_000) {
        return Err(ManualBumpError::TooHigh { asked_sat_kvb: asked, max_sat_vb });
    }
    let step = ctx.onchain.replacement_step().await;
    let _spending = ctx.onchain.spending().await;
    let pending = ctx.onchain.treasury().pending(&txid).ok_or_else(not_in_mempool)?;
    let least = pending.effective_sat_kvb.saturating_add(step);
    if asked < least {
        return Err(ManualBumpError::TooLow { pays_sat_kvb: pending.effective_sat_kvb, least_sat_kvb: least });
    }
    let payment_id = match target {
        Target::Payment(id) => Some(id.to_owned()),
        Target::Batch(_) => None,
    };
    let from_sat_kvb = pending.effective_sat_kvb;
    asked_hook(&Asked {
        batch_id: batch_id.clone(),
        payment_id,
        txid: txid.clone(),
        from_sat_kvb,
        feerate_sat_kvb: asked,
    })?;
    let lifted = lift(ctx, &stuck, Feerate::from_sat_per_kvb(asked)).await.map_err(|e| match e {
        NotLifted::NotPending => not_in_mempool(),
        NotLifted::AlreadyPays(pays) => ManualBumpError::TooLow { pays_sat_kvb: pays, least_sat_kvb: pays + step },
        NotLifted::Held => ManualBumpError::Held,
        NotLifted::Moved => ManualBumpError::NotBumpable("the payout moved meanwhile: look at it again".into()),
        NotLifted::Unreadable(e) => e.into(),
        NotLifted::Failed(e) => e.error.into(),
    })?;
    let (how, new_txid, fee_sat) = match lifted {
        Lifted::Replaced { txid, fee_sat } => ("replaced", txid, fee_sat),
        Lifted::Child { txid, fee_sat } => ("child", txid, fee_sat),
    };
    tracing::info!(%txid, %new_txid, how, from_sat_kvb, feerate_sat_kvb = asked, fee_sat, "operator's fee bump");
    Ok(Bumped { batch_id, txid, from_sat_kvb, feerate_sat_kvb: asked, how, new_txid, fee_sat })
}

fn not_in_mempool() -> ManualBumpError {
    ManualBumpError::NotBumpable(
        "its transaction is not unconfirmed in bitcoind's mempool: confirmed, or gone (a gone one is bid again on its own)"
            .into(),
    )
}

/// The unconfirmed transaction `target` names.
fn stuck(ctx: &Payments, target: Target<'_>) -> Result<Stuck, ManualBumpError> {
    let not = |why: &str| ManualBumpError::NotBumpable(why.into());
    let batch = |b: super::batches::BatchRow| match b.state.as_str() {
        "broadcast" => Ok(Stuck::Batch(b)),
        "confirmed" => Err(not("its batch is confirmed")),
        _ => Err(not("its batch is not broadcast yet")),
    };
    match target {
        Target::Batch(id) => {
            let (b, _) = ctx.store.batch(id)?.ok_or_else(|| ManualBumpError::BatchNotFound(id.into()))?;
            batch(b)
        }
        Target::Payment(id) => {
            let p = ctx.store.payment(id)?.ok_or_else(|| ManualBumpError::PaymentNotFound(id.into()))?;
            match (p.rail, p.state) {
                (Rail::OnchainBatch, _) => match ctx.store.batch_of(id)? {
                    Some((b, _)) => batch(b),
                    None => Err(not(
                        "it waits in the batch queue, in no transaction yet (batch.trigger sends the queue now)",
                    )),
                },
                (Rail::Onchain, State::Sent) if p.rail_ref.is_some() => Ok(Stuck::Payout(p)),
                (Rail::Onchain, State::Settled) => Err(not("its transaction is confirmed")),
                (Rail::Onchain, State::Sending) if p.rail_ref.is_some() => {
                    Err(not("its transaction is signed and being broadcast: ask again once the payout is sent"))
                }
                (Rail::Onchain, _) => Err(not("it has no broadcast transaction")),
                _ => Err(not("it is not an on-chain payout")),
            }
        }
    }
}
