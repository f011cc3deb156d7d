//! Children that pay for stuck transactions (CPFP). A payout's or a batch's transaction that
//! other unconfirmed transactions already spend from cannot be replaced (they would be evicted,
//! and the payouts they carry with them); it is lifted instead by a child spending an unspent
//! output of it or of its descendants back to the treasury, paying what brings the whole package
//! to the feerate wanted ([`sendero_wallet::Treasury::prepare_child`]). The child is stored before
//! its broadcast and broadcast again after a restart while its parent is unconfirmed. It moves
//! nothing out of the treasury but its fee, which is the treasury's cost: the ledger books it to
//! `fees:cpfp` once it confirms (`payment/reconcile.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use crate::store::sql::params;
use sendero_wallet::bitcoin::consensus::{deserialize, serialize};
use sendero_wallet::bitcoin::Transaction;
use sendero_wallet::{Feerate, WalletError};
use serde::Serialize;

use super::Payments;
use crate::store::{Store, StoreError};

/// A child paying for a stuck transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeeChild {
    /// The child's id.
    pub txid: String,
    /// The stuck transaction it pays for.
    pub parent_txid: String,
    /// As signed.
    #[serde(skip)]
    pub raw_tx: Vec<u8>,
    /// Its fee, sats.
    pub fee_sat: u64,
    /// The feerate of the package it completes, sat/kvB.
    pub package_sat_kvb: u64,
    /// When it was made, Unix seconds.
    pub created_at: u64,
    /// When it was given up (its parent confirmed without it, or bitcoind refused it).
    pub abandoned_at: Option<u64>,
}

const COLUMNS: &str = "txid, parent_txid, raw_tx, fee_sat, package_sat_kvb, created_at, abandoned_at";

fn child_row(r: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<FeeChild> {
    Ok(FeeChild {
        txid: r.get(0)?,
        parent_txid: r.get(1)?,
        raw_tx: r.get(2)?,
        fee_sat: r.get::<_, i64>(3)? as u64,
        package_sat_kvb: r.get::<_, i64>(4)? as u64,
        created_at: r.get::<_, i64>(5)? as u64,
        abandoned_at: r.get::<_, Option<i64>>(6)?.map(|t| t as u64),
    })
}

impl Store {
    fn record_child(&self, c: &FeeChild) -> Result<(), StoreError> {
        self.conn().execute(
            &format!("INSERT INTO fee_children ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)"),
            params![c.txid, c.parent_txid, c.raw_tx, c.fee_sat as i64, c.package_sat_kvb as i64, c.created_at as i64],
        )?;
        Ok(())
    }

    /// The children neither given up nor buried: those [`resend`] looks after.
    fn open_children(&self) -> Result<Vec<FeeChild>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM fee_children WHERE abandoned_at IS NULL AND buried_at IS NULL ORDER BY created_at, txid"
        ))?;
        let rows = stmt.query_map([], child_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records that the child `txid` is buried ([`BURIED`] confirmations): done with.
    fn bury_child(&self, txid: &str, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE fee_children SET buried_at = ?2 WHERE txid = ?1 AND buried_at IS NULL",
            params![txid, now as i64],
        )?;
        Ok(())
    }

    fn abandon_child(&self, txid: &str, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE fee_children SET abandoned_at = ?2 WHERE txid = ?1 AND abandoned_at IS NULL",
            params![txid, now as i64],
        )?;
        Ok(())
    }

    /// The ids of the children made (the ledger books their fees as the treasury's).
    pub fn fee_child_txids(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached("SELECT txid FROM fee_children")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// Lifts the stuck `parent` to `rate` with a child: stored, then broadcast. The caller holds
/// [`crate::rails::onchain::Onchain::spending`].
pub(super) async fn pay_for(ctx: &Payments, parent: &str, rate: Feerate) -> Result<FeeChild, WalletError> {
    let child = ctx.onchain.prepare_child(parent, rate).await?;
    let row = FeeChild {
        txid: child.tx.compute_txid().to_string(),
        parent_txid: parent.to_owned(),
        raw_tx: serialize(&child.tx),
        fee_sat: child.fee_sat,
        package_sat_kvb: child.package_sat_kvb,
        created_at: crate::unix_now(),
        abandoned_at: None,
    };
    let store = Arc::clone(&ctx.store);
    tokio::task::block_in_place(|| store.record_child(&row)).map_err(|e| WalletError::Storage(e.to_string()))?;
    crate::failpoint::hit("onchain.child_signed");
    tracing::info!(parent = %parent, txid = %row.txid, fee_sat = row.fee_sat, spends = %child.spends,
        package_sat_vb = row.package_sat_kvb / 1_000, "a child pays for a stuck transaction (CPFP)");
    if let Err(e) = ctx.onchain.publish(child.tx).await {
        tracing::warn!(txid = %row.txid, error = %e, "child not broadcast now; tried again next round");
    }
    Ok(row)
}

/// Confirmations after which a child is done with (buried): a reorg deeper is not expected.
const BURIED: u32 = 6;

/// Stored children the wallet does not hold: broadcast again while their parent is unconfirmed
/// and the wallet holds it; given up when it is not (it confirmed without them, or was replaced)
/// or when bitcoind refuses them. Those the wallet holds [`BURIED`] deep are done with, so that
/// neither this nor every spend ([`Store::signed_away`]) keeps reading them.
pub(super) async fn resend(ctx: &Payments) {
    let store = Arc::clone(&ctx.store);
    let children = match tokio::task::block_in_place(|| store.open_children()) {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "reading fee children"),
    };
    let treasury = ctx.onchain.treasury();
    let tip = treasury.synced_height();
    for c in children {
        if let Some(held) = treasury.transaction(&c.txid) {
            if held.confirmation_height.is_some_and(|h| tip + 1 >= h + BURIED) {
                if let Err(e) = store.bury_child(&c.txid, crate::unix_now()) {
                    tracing::error!(error = %e, "recording a child buried");
                }
            }
            continue;
        }
        let parent_waits = treasury.transaction(&c.parent_txid).is_some_and(|t| t.confirmation_height.is_none());
        let sent = match deserialize::<Transaction>(&c.raw_tx) {
            Ok(tx) if parent_waits => match ctx.onchain.publish(tx).await {
                Ok(()) => Ok(()),
                Err(WalletError::Broadcast(why)) => Err(why),
                Err(e) => {
                    tracing::warn!(txid = %c.txid, error = %e, "child not broadcast now; tried again next round");
                    continue;
                }
            },
            Ok(_) => Err("its parent is no longer waiting".to_owned()),
            Err(e) => Err(format!("unreadable: {e}")),
        };
        match sent {
            Ok(()) => tracing::info!(txid = %c.txid, parent = %c.parent_txid, "stored child broadcast"),
            Err(why) => {
                tracing::warn!(txid = %c.txid, parent = %c.parent_txid, why = %why, "child given up");
                if let Err(e) = store.abandon_child(&c.txid, crate::unix_now()) {
                    tracing::error!(error = %e, "recording a child given up");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sendero_wallet::bitcoin::hashes::Hash;
    use sendero_wallet::bitcoin::{OutPoint, Txid};

    fn child(n: u8) -> FeeChild {
        let tx = crate::payment::test_spend(n, 1);
        FeeChild {
            txid: tx.compute_txid().to_string(),
            parent_txid: format!("parent{n}"),
            raw_tx: serialize(&tx),
            fee_sat: 500,
            package_sat_kvb: 5_000,
            created_at: 10,
            abandoned_at: None,
        }
    }

    #[test]
    fn a_buried_child_is_no_longer_read_by_every_spend_but_stays_known() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let (open, buried, given_up) = (child(1), child(2), child(3));
        for c in [&open, &buried, &given_up] {
            store.record_child(c).unwrap();
        }
        let coin = |n: u8| OutPoint::new(Txid::from_byte_array([n; 32]), 1);
        assert_eq!(store.signed_away().unwrap(), vec![coin(1), coin(2), coin(3)]);
        store.bury_child(&buried.txid, 20).unwrap();
        store.abandon_child(&given_up.txid, 20).unwrap();
        assert_eq!(store.signed_away().unwrap(), vec![coin(1)], "only the open child's coin is held");
        let looked_after: Vec<String> = store.open_children().unwrap().into_iter().map(|c| c.txid).collect();
        assert_eq!(looked_after, vec![open.txid.clone()]);
        let known = store.fee_child_txids().unwrap();
        assert!([&open, &buried, &given_up].iter().all(|c| known.contains(&c.txid)), "the ledger still knows all");
    }
}
