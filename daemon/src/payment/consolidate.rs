//! Standalone UTXO consolidation: when the feerate is at or below `[batching]
//! consolidation_feerate_sat_kvb` and the treasury holds more than `target_utxos` confirmed
//! coins, the smallest are swept into one new change output (at most `max_consolidation_inputs`),
//! never a coin an unbroadcast batch or payout has already signed away. `preview` plans it
//! ([`crate::batch::plan_consolidation`]), `run` builds, records and broadcasts it under the
//! treasury's spend lock, and [`run_every`] does so on its own when `consolidation_interval_secs`
//! says so. The ledger books its fee once it confirms (`payment/reconcile.rs`).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::store::sql::params;
use sendero_wallet::bitcoin::consensus::deserialize;
use sendero_wallet::bitcoin::{OutPoint, Transaction};
use sendero_wallet::WalletError;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Payments;
use crate::batch::{plan_consolidation, InputKind, NoConsolidation, OutputKind, Policy, Priority, Utxo};
use crate::store::{Store, StoreError};

/// Why a consolidation does not happen; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ConsolidateError {
    /// At or under the target, or fewer than two free coins worth spending
    /// (`nothing_to_consolidate`).
    #[error("nothing to consolidate: {0}")]
    Nothing(NoConsolidation),
    /// The feerate is above the threshold and `force` was not given (`feerate_too_high`).
    #[error("{0}")]
    FeerateTooHigh(NoConsolidation),
    /// The wallet or bitcoind refused.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the operator asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask {
    /// The feerate to plan at, sat/kvB; else the estimate for the low priority's target.
    pub feerate_sat_kvb: Option<u64>,
    /// Fewer inputs than `max_consolidation_inputs`.
    pub max_inputs: Option<usize>,
    /// Consolidate even above the threshold feerate.
    pub force: bool,
}

/// A planned consolidation (`consolidate.preview`), or one that ran (`txid` set).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The coins it spends (`txid:vout`), smallest first.
    pub inputs: Vec<String>,
    /// How many.
    pub input_count: usize,
    /// What they hold, sats.
    pub input_sat: u64,
    /// The one output, sats.
    pub output_sat: u64,
    /// The fee, sats.
    pub fee_sat: u64,
    /// Virtual size as planned (largest signatures), vB.
    pub vsize: u64,
    /// Feerate, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// The threshold it is compared with, sat/kvB.
    pub threshold_sat_kvb: u64,
    /// Confirmed UTXOs before (reserved ones included).
    pub utxos_before: usize,
    /// … and after.
    pub utxos_after: usize,
    /// Coins left alone: a batch or payout in flight has signed them away (or their script is
    /// not one the plan can size).
    pub reserved: usize,
    /// What spending the same coins later at `reference_feerate_sat_kvb` would cost, sats.
    pub later_cost_sat: u64,
    /// `later_cost_sat − fee_sat`.
    pub saving_sat: i64,
    /// The transaction, once it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txid: Option<String>,
    /// Its actual virtual size, once it ran, vB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_vsize: Option<u64>,
}

/// The consolidation `ask` describes, now; nothing is built.
pub async fn preview(ctx: &Payments, ask: Ask) -> Result<Plan, ConsolidateError> {
    let feerate = match ask.feerate_sat_kvb {
        Some(rate) => rate,
        None => ctx.onchain.estimate(Priority::Low.target_blocks(&ctx.config.routing)).await?.feerate.sat_per_kvb(),
    };
    let (coins, utxos) = treasury_coins(ctx)?;
    let mut policy = Policy::from_config(&ctx.config);
    let threshold_sat_kvb = policy.consolidation_feerate_sat_kvb;
    if let Some(max) = ask.max_inputs {
        policy.max_consolidation_inputs = policy.max_consolidation_inputs.min(max.max(2));
    }
    if ask.force {
        policy.consolidation_feerate_sat_kvb = u64::MAX;
    }
    let c = plan_consolidation(&utxos, feerate, OutputKind::P2wpkh, &policy).map_err(|e| match e {
        NoConsolidation::Feerate { .. } => ConsolidateError::FeerateTooHigh(e),
        e => ConsolidateError::Nothing(e),
    })?;
    Ok(Plan {
        inputs: c.inputs.iter().map(|&i| coins[i].outpoint.clone()).collect(),
        input_count: c.inputs.len(),
        input_sat: c.input_sat,
        output_sat: c.output_sat,
        fee_sat: c.fee_sat,
        vsize: c.vsize,
        feerate_sat_kvb: c.feerate_sat_kvb,
        threshold_sat_kvb,
        utxos_before: c.utxos_before,
        utxos_after: c.utxos_after,
        reserved: utxos.iter().filter(|u| u.reserved).count(),
        later_cost_sat: c.later_cost_sat,
        saving_sat: c.saving_sat,
        txid: None,
        actual_vsize: None,
    })
}

/// Plans, builds, records and broadcasts the consolidation `ask` describes, under the treasury's
/// spend lock (so that no payout signs the same coins meanwhile). `asked` is handed it built and
/// signed, before it is recorded and broadcast (an operator's request is audited there); its
/// error refuses it, nothing recorded or broadcast.
pub async fn run(
    ctx: &Payments,
    ask: Ask,
    asked: impl FnOnce(&Record) -> Result<(), StoreError>,
) -> Result<Plan, ConsolidateError> {
    let _spending = ctx.onchain.spending().await;
    let mut plan = preview(ctx, ask).await?;
    let outpoints = plan
        .inputs
        .iter()
        .map(|o| OutPoint::from_str(o).map_err(|e| WalletError::Build(format!("outpoint {o}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let (tx, built) = ctx.onchain.prepare_sweep(outpoints, plan.fee_sat).await?;
    let txid = built.txid.to_string();
    let row = Record {
        id: crate::secret::sortable_id("cs_"),
        txid: txid.clone(),
        inputs: plan.input_count as u64,
        input_sat: plan.input_sat,
        fee_sat: built.fee_sat,
        feerate_sat_kvb: plan.feerate_sat_kvb,
    };
    asked(&row)?;
    // Recorded before the broadcast, so that the ledger never takes it for an outside movement.
    let store = Arc::clone(&ctx.store);
    tokio::task::block_in_place(|| store.record_consolidation(&row, crate::unix_now()))?;
    if let Err(e) = ctx.onchain.publish(tx).await {
        if let Err(forget) = tokio::task::block_in_place(|| store.forget_consolidation(&row.txid)) {
            tracing::error!(txid = %row.txid, error = %forget, "a refused consolidation stays recorded");
        }
        return Err(e.into());
    }
    plan.txid = Some(txid);
    plan.actual_vsize = Some(built.vsize);
    Ok(plan)
}

/// The background check: every `consolidation_interval_secs` (and no sooner after the last
/// consolidation, whoever ran it), one consolidation when the feerate and the count say so.
pub async fn run_every(ctx: Arc<Payments>, cancel: CancellationToken) {
    let interval = ctx.config.batching.consolidation_interval_secs.max(1);
    loop {
        let last = ctx.store.last_consolidation_at().unwrap_or(None).unwrap_or(0);
        if crate::unix_now() >= last.saturating_add(interval) {
            match run(&ctx, Ask::default(), |_| Ok(())).await {
                Ok(p) => tracing::info!(
                    txid = p.txid.as_deref().unwrap_or_default(),
                    inputs = p.input_count,
                    fee_sat = p.fee_sat,
                    feerate_sat_kvb = p.feerate_sat_kvb,
                    utxos_after = p.utxos_after,
                    saving_sat = p.saving_sat,
                    "consolidated the treasury's small coins"
                ),
                Err(e @ (ConsolidateError::Nothing(_) | ConsolidateError::FeerateTooHigh(_))) => {
                    tracing::debug!(reason = %e, "no consolidation now")
                }
                Err(e) => tracing::warn!(error = %e, "consolidation failed; it is tried again"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(interval.min(60))) => {}
        }
    }
}

/// The treasury's spendable coins, and the same as the plans read them: a coin is reserved when a
/// batch or payout in flight has signed it away, or when its script is not one a plan can size.
pub(super) fn treasury_coins(ctx: &Payments) -> Result<(Vec<sendero_wallet::Utxo>, Vec<Utxo>), StoreError> {
    let reserved: HashSet<String> = ctx.store.signed_away()?.iter().map(OutPoint::to_string).collect();
    let coins: Vec<_> = ctx.onchain.treasury().utxos().into_iter().filter(|u| u.spendable).collect();
    let utxos: Vec<Utxo> = coins
        .iter()
        .map(|c| {
            let kind = input_kind(c.script_type);
            Utxo {
                value_sat: c.amount_sat,
                kind: kind.unwrap_or(InputKind::P2pkh),
                reserved: kind.is_none() || reserved.contains(&c.outpoint),
            }
        })
        .collect();
    Ok((coins, utxos))
}

/// How a coin of this script type is spent, if the wallet can plan it.
fn input_kind(script_type: &str) -> Option<InputKind> {
    match script_type {
        "p2wpkh" => Some(InputKind::P2wpkh),
        "p2tr" => Some(InputKind::P2trKeyPath),
        "p2sh" => Some(InputKind::P2shP2wpkh),
        "p2pkh" => Some(InputKind::P2pkh),
        _ => None,
    }
}

/// One consolidation, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    /// `cs_…`.
    pub id: String,
    /// Its transaction.
    pub txid: String,
    /// Coins spent.
    pub inputs: u64,
    /// What they held, sats.
    pub input_sat: u64,
    /// Its fee, sats.
    pub fee_sat: u64,
    /// Its planned feerate, sat/kvB.
    pub feerate_sat_kvb: u64,
}

impl Store {
    /// Records a consolidation about to be broadcast.
    pub fn record_consolidation(&self, c: &Record, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO consolidations (id, txid, inputs, input_sat, fee_sat, feerate_sat_kvb, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                c.id,
                c.txid,
                c.inputs as i64,
                c.input_sat as i64,
                c.fee_sat as i64,
                c.feerate_sat_kvb as i64,
                now as i64
            ],
        )?;
        Ok(())
    }

    /// Forgets a consolidation bitcoind refused.
    pub fn forget_consolidation(&self, txid: &str) -> Result<(), StoreError> {
        self.conn().execute("DELETE FROM consolidations WHERE txid = ?1", [txid])?;
        Ok(())
    }

    /// Every consolidation's txid.
    pub fn consolidation_txids(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT txid FROM consolidations")?;
        let txids = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(txids)
    }

    /// When the last consolidation ran (unix seconds).
    pub fn last_consolidation_at(&self) -> Result<Option<u64>, StoreError> {
        let at: Option<i64> = self.conn().query_row("SELECT MAX(created_at) FROM consolidations", [], |r| r.get(0))?;
        Ok(at.map(|t| t as u64))
    }

    /// Coins signed away by transactions the gateway stored and may still broadcast (batches
    /// `signed`, `onchain` payouts `sending`, children paying for a stuck transaction neither
    /// given up nor buried) or broadcast again (the current transaction of every batch and
    /// `onchain` payout out and not yet settled: a fee bump's replacement, or a rebid, is stored
    /// before it is broadcast and may add an input; one that fell out of bitcoind's mempool is
    /// offered again, or bid again from the same coins): the wallet knows them spent only while it
    /// counts that transaction, so no other transaction may spend them meanwhile — after a crash,
    /// while a broadcast is retried, or while a transaction is out of the mempool, it would make
    /// the stored one invalid, or fail a payout built meanwhile. (Coins of those the wallet counts
    /// are among them too: spent anyway; a buried child's are long spent on chain.)
    pub fn signed_away(&self) -> Result<Vec<OutPoint>, StoreError> {
        let mut spent = Vec::new();
        for raw in self.unbroadcast_txs()? {
            match deserialize::<Transaction>(&raw) {
                Ok(tx) => spent.extend(tx.input.iter().map(|i| i.previous_output)),
                Err(e) => tracing::warn!(error = %e, "a stored transaction is unreadable; its coins are unknown"),
            }
        }
        Ok(spent)
    }

    /// The raw transactions stored that may still be broadcast (again): batches `signed` or
    /// `broadcast`, `onchain` payouts `sending` or `sent`, children neither given up nor buried.
    pub fn unbroadcast_txs(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT raw_tx FROM batches WHERE state IN ('signed', 'broadcast')
             UNION ALL SELECT raw_tx FROM payments
                 WHERE rail = 'onchain' AND state IN ('sending', 'sent') AND raw_tx IS NOT NULL
             UNION ALL SELECT raw_tx FROM fee_children WHERE abandoned_at IS NULL AND buried_at IS NULL",
        )?;
        let raws = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(raws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consolidations_round_trip_and_the_last_one_is_known() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        assert_eq!(store.last_consolidation_at().unwrap(), None);
        let c = Record {
            id: "cs_1".into(),
            txid: "ab".into(),
            inputs: 3,
            input_sat: 90_000,
            fee_sat: 300,
            feerate_sat_kvb: 1_000,
        };
        store.record_consolidation(&c, 7).unwrap();
        assert!(store.record_consolidation(&Record { id: "cs_2".into(), inputs: 1, ..c.clone() }, 8).is_err());
        assert_eq!(store.last_consolidation_at().unwrap(), Some(7));
        assert_eq!(store.consolidation_txids().unwrap(), HashSet::from(["ab".to_string()]));
        store.forget_consolidation("ab").unwrap();
        assert!(store.consolidation_txids().unwrap().is_empty());
        assert!(store.unbroadcast_txs().unwrap().is_empty());
    }

    /// A fee bump's replacement is stored before it is broadcast and may spend a coin its original
    /// did not: while its batch or payout is out and unconfirmed, that coin stays signed away (a
    /// payout built after a failed or cut broadcast would take it, and one of the two would be
    /// refused). Transactions never replaced were recorded in the wallet when they left.
    #[test]
    fn the_coins_of_every_transaction_out_stay_signed_away_until_it_confirms() {
        let spending = |n| sendero_wallet::bitcoin::consensus::serialize(&crate::payment::test_spend(n, 0));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let conn = store.conn();
        conn.as_sqlite().unwrap().pragma_update(None, "foreign_keys", false).unwrap();
        let batch = |id: &str, raw: Vec<u8>, state: &str| {
            conn.execute(
                "INSERT INTO batches (batch_id, txid, raw_tx, fee_sat, feerate_sat_vb, vsize, payouts, reason, state, created_at)
                 VALUES (?1, ?1, ?2, 1, 1, 1, 1, 'operator', ?3, 1)",
                params![id, raw, state],
            )
            .unwrap();
        };
        let payout = |id: &str, raw: Vec<u8>, state: &str| {
            conn.execute(
                "INSERT INTO payments (payment_id, api_key_id, idem_key, route_id, rail, destination, amount_msat,
                 currency, amount_minor, fee_reserve_msat, state, created_at, updated_at, raw_tx)
                 VALUES (?1, 'key', ?1, ?1, 'onchain', 'x', 1, 'SAT', 1, 0, ?2, 1, 1, ?3)",
                params![id, state, raw],
            )
            .unwrap();
        };
        batch("bt_out", spending(1), "broadcast");
        batch("bt_bumped", spending(2), "broadcast");
        payout("pay_out", spending(3), "sent");
        payout("pay_bumped", spending(4), "sent");
        conn.execute(
            "INSERT INTO batch_replaced (txid, batch_id, raw_tx, fee_sat, feerate_sat_vb, replaced_at)
             VALUES ('first', 'bt_bumped', x'00', 1, 1, 2)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO payout_replaced (txid, payment_id, raw_tx, replaced_at) VALUES ('first', 'pay_bumped', x'00', 2)",
            [],
        )
        .unwrap();
        drop(conn);
        let coin = |n: u8| OutPoint::new(sendero_wallet::bitcoin::hashes::Hash::from_byte_array([n; 32]), 0);
        let away = || {
            let mut coins = store.signed_away().unwrap();
            coins.sort();
            coins
        };
        assert_eq!(away(), vec![coin(1), coin(2), coin(3), coin(4)], "those out, replaced or not");
        store.batch_confirmed("bt_bumped", 3).unwrap();
        store.conn().execute("UPDATE payments SET state = 'settled' WHERE payment_id = 'pay_bumped'", []).unwrap();
        assert_eq!(away(), vec![coin(1), coin(3)], "confirmed: the wallet knows them spent for good");
    }
}
