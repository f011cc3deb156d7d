//! The on-chain rail: the treasury wallet and bitcoind behind one spend lock, with the wallet's
//! fee policy. Sends (feerate estimated or checked, the payout, its record), payouts prepared and
//! published in two steps (the saga stores a signed transaction before broadcasting it), fee
//! estimates (bitcoind's, unless the operator steers them off mainnet: [`super::fees`]). Knows
//! nothing of HTTP or JSON-RPC.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use sendero_wallet::bitcoin::{OutPoint, Transaction};
use sendero_wallet::{
    ChainSource, Child, FeeEstimate, FeeSource, Feerate, Payee, Payout, Swept, Treasury, WalletError,
};
use tokio::sync::{Mutex, MutexGuard};

use super::fees::{Fees, FeesError, Schedule};
use crate::config::WalletConfig;
use crate::store::sql::{params, OptionalExtension};

use crate::store::{Store, StoreError};

/// A send request, already parsed from the edge.
#[derive(Debug, Clone)]
pub struct SendRequest {
    /// Destination address text.
    pub address: String,
    /// Amount in sats.
    pub amount_sat: u64,
    /// Feerate in sat/vB; `None` asks bitcoind for the default confirmation target.
    pub feerate_sat_vb: Option<u64>,
}

/// A send built and signed, about to be broadcast.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SendAsked {
    /// Destination address.
    pub address: String,
    /// Amount in sats.
    pub amount_sat: u64,
    /// Its transaction.
    pub txid: String,
    /// Its fee, sats.
    pub fee_sat: u64,
    /// The feerate it pays, sat/kvB.
    pub feerate_sat_kvb: u64,
    /// Where that feerate came from.
    pub feerate_source: FeeSource,
}

/// A completed send.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The broadcast payout.
    pub payout: Payout,
    /// Where its feerate came from.
    pub feerate_source: FeeSource,
}

/// The treasury and bitcoind, spent through one lock.
pub struct Onchain {
    treasury: Arc<Treasury>,
    chain: Arc<ChainSource>,
    /// Held by whoever builds and broadcasts a treasury transaction (a payout from its signing to
    /// its broadcast, an admin send, a transfer to the Lightning wallet), so that two never pick
    /// the same coins.
    spend: Mutex<()>,
    config: WalletConfig,
    fees: Fees,
    /// bitcoind's last estimates per confirmation target, and when they were read: they change
    /// with blocks, not seconds, and the batcher, the fee bumper and every route ask for them.
    estimates: std::sync::Mutex<HashMap<u16, (Instant, FeeEstimate)>>,
    /// bitcoind's minimum relay feerate and incremental relay feerate (`getnetworkinfo`'s
    /// `relayfee`, `incrementalfee`), sat/kvB, and when they were read ([`Onchain::relay_fees`]):
    /// the operator's feerates are lifted to the first (bitcoind's own estimates never go below
    /// it), a replacement raises the feerate by at least the second.
    relay: std::sync::Mutex<Option<(Instant, (u64, u64))>>,
    /// Coins bitcoind said were spent while the wallet still counted them (a transaction of
    /// ours it has not seen yet spends them), and when: every spend leaves them alone for
    /// [`GONE_FOR`], by when the wallet has seen their spender.
    gone: std::sync::Mutex<HashMap<OutPoint, Instant>>,
}

/// How long a coin bitcoind said was spent is left alone although the wallet still counts it.
const GONE_FOR: Duration = Duration::from_secs(600);

/// How long bitcoind's relay feerates are used before they are asked again.
const RELAY_TTL: Duration = Duration::from_secs(600);

/// How long one of bitcoind's estimates is used before it is asked again.
const ESTIMATE_TTL: Duration = Duration::from_secs(10);

impl Onchain {
    /// The rail over `treasury` and `chain`, with the wallet's fee policy.
    pub fn new(treasury: Arc<Treasury>, chain: Arc<ChainSource>, config: WalletConfig) -> Self {
        let fees = Fees::new(treasury.network());
        let (estimates, relay, gone) = Default::default();
        Onchain { treasury, chain, spend: Mutex::new(()), config, fees, estimates, relay, gone }
    }

    /// The rail with `schedule`'s feerates in force instead of bitcoind's (refused on mainnet).
    pub fn with_schedule(self, schedule: Schedule) -> Result<Self, FeesError> {
        Ok(Onchain { fees: self.fees.with_schedule(schedule)?, ..self })
    }

    /// The feerates the operator steers (`fees.set`, `fees.clear`, the schedule).
    pub fn fees(&self) -> &Fees {
        &self.fees
    }

    /// The highest feerate the wallet pays or accepts, in sat/vB.
    pub fn max_feerate_sat_vb(&self) -> u64 {
        self.config.max_feerate_sat_vb
    }

    /// The treasury wallet (balances, history, addresses).
    pub fn treasury(&self) -> &Arc<Treasury> {
        &self.treasury
    }

    /// bitcoind.
    pub fn chain(&self) -> &Arc<ChainSource> {
        &self.chain
    }

    /// The spend lock, for a caller that signs and broadcasts in steps of its own (the saga).
    pub async fn spending(&self) -> MutexGuard<'_, ()> {
        self.spend.lock().await
    }

    /// Sends `req.amount_sat` to `req.address` and records it in `store`. Every check happens
    /// before anything is built; a refused send changes nothing. `asked` is handed the send
    /// built and signed, before its broadcast (the operator's request is audited there, so a
    /// kill cannot leave a send unaudited); its error refuses the send, nothing broadcast. Once
    /// bitcoind has accepted the transaction the send is reported as done, whatever happens to
    /// its bookkeeping record.
    pub async fn send<E: From<WalletError>>(
        &self,
        store: &Store,
        req: SendRequest,
        asked: impl FnOnce(&SendAsked) -> Result<(), E>,
    ) -> Result<Sent, E> {
        let address = self.treasury.parse_address(&req.address)?;
        if req.amount_sat == 0 {
            return Err(WalletError::InvalidAmount("amount_sat must be at least 1".into()).into());
        }
        let max = self.config.max_feerate_sat_vb;
        let fee = match req.feerate_sat_vb {
            Some(rate) if rate == 0 || rate > max => {
                return Err(WalletError::InvalidFeerate(format!("{rate} sat/vB is outside 1..={max}")).into())
            }
            Some(rate) => {
                FeeEstimate { feerate: Feerate::from_sat_per_vb(rate), target_blocks: 0, source: FeeSource::Requested }
            }
            None => self.estimate(self.config.default_target_blocks).await?,
        };
        let _spending = self.spend.lock().await;
        let (tx, payout) =
            self.prepare(store, vec![Payee { address, amount_sat: req.amount_sat }], fee.feerate).await?;
        asked(&SendAsked {
            address: req.address.trim().to_owned(),
            amount_sat: req.amount_sat,
            txid: payout.txid.to_string(),
            fee_sat: payout.fee_sat,
            feerate_sat_kvb: payout.feerate.sat_per_kvb(),
            feerate_source: fee.source,
        })?;
        crate::failpoint::hit("wallet.send.asked");
        self.publish(tx).await?;
        let record = SendRecord {
            txid: payout.txid.to_string(),
            address: req.address.trim().to_owned(),
            amount_sat: req.amount_sat,
            fee_sat: payout.fee_sat,
            feerate_sat_vb: payout.feerate.sat_per_vb_ceil(),
        };
        if let Err(e) = store.record_send(&record, crate::unix_now()) {
            // The money has moved and the wallet knows it; failing the call now would invite a retry.
            tracing::error!(txid = %record.txid, error = %e, "send broadcast but not recorded in the store");
        }
        Ok(Sent { payout, feerate_source: fee.source })
    }

    /// Builds, signs and broadcasts one transaction paying `payee`, holding the spend lock from
    /// coin selection to broadcast, and spending no coin a transaction stored in `store` has
    /// signed away ([`Store::signed_away`]).
    pub async fn pay(&self, store: &Store, payee: Payee, feerate: Feerate) -> Result<Payout, WalletError> {
        let (treasury, chain) = (Arc::clone(&self.treasury), Arc::clone(&self.chain));
        let _spending = self.spend.lock().await;
        let avoid = self.avoid(store)?;
        blocking(move || treasury.pay_avoiding(&chain, &[payee], feerate, &avoid)).await
    }

    /// Builds and signs a payout without broadcasting it, spending no coin a transaction stored
    /// in `store` has signed away (the caller holds [`Onchain::spending`]).
    pub async fn prepare(
        &self,
        store: &Store,
        payees: Vec<Payee>,
        feerate: Feerate,
    ) -> Result<(Transaction, Payout), WalletError> {
        let treasury = Arc::clone(&self.treasury);
        let avoid = self.avoid(store)?;
        blocking(move || treasury.prepare(&payees, feerate, &avoid)).await
    }

    /// Like [`Onchain::prepare`], also spending the coins of `extra` coin selection did not choose
    /// (consolidation inside a batch; the caller holds [`Onchain::spending`]).
    pub async fn prepare_with(
        &self,
        store: &Store,
        payees: Vec<Payee>,
        feerate: Feerate,
        extra: Vec<OutPoint>,
    ) -> Result<(Transaction, Payout, Swept), WalletError> {
        let treasury = Arc::clone(&self.treasury);
        let avoid = self.avoid(store)?;
        blocking(move || treasury.prepare_with(&payees, feerate, &extra, &avoid)).await
    }

    /// `tx`, out of bitcoind's mempool and refused when offered again, bid again at `feerate` —
    /// at least what bitcoind's mempool takes now, refused when that is above
    /// `wallet.max_feerate_sat_vb` — from the same coins
    /// ([`sendero_wallet::Treasury::rebid`]; any other coin none a transaction stored in `store`
    /// has signed away); not broadcast. The caller holds [`Onchain::spending`].
    pub async fn rebid(
        &self,
        store: &Store,
        tx: Transaction,
        feerate: Feerate,
    ) -> Result<(Transaction, Payout), WalletError> {
        let (treasury, chain) = (Arc::clone(&self.treasury), Arc::clone(&self.chain));
        let avoid = self.avoid(store)?;
        let max = self.config.max_feerate_sat_vb;
        blocking(move || {
            let floor = chain.mempool_floor()?;
            if floor > max.saturating_mul(1_000) {
                let why = format!("bitcoind's mempool takes nothing under {floor} sat/kvB, above {max} sat/vB");
                return Err(WalletError::InvalidFeerate(why));
            }
            // bitcoind weighs the fee against the size rounded up to the vbyte, BDK builds it on
            // the weight (and rounds the rate down to the sat/kwu): 1 % and a step above the floor
            // cover both for any transaction over 100 vB.
            let floor = Feerate::from_sat_per_kvb(floor * 101 / 100 + 4);
            treasury.rebid(&tx, feerate.max(floor), &avoid)
        })
        .await
    }

    /// A signed replacement of the unconfirmed `txid` at `feerate`, and at least its fee plus
    /// bitcoind's [`Onchain::replacement_step`] on its size (same outputs, the fee from its
    /// change, any extra input none a transaction stored in `store` has signed away); not
    /// broadcast. The caller holds [`Onchain::spending`].
    pub async fn bump(
        &self,
        store: &Store,
        txid: &str,
        feerate: Feerate,
    ) -> Result<(Transaction, Payout), WalletError> {
        let (treasury, txid) = (Arc::clone(&self.treasury), txid.to_owned());
        let avoid = self.avoid(store)?;
        let step = Feerate::from_sat_per_kvb(self.replacement_step().await);
        blocking(move || treasury.bump(&txid, feerate, step, &avoid)).await
    }

    /// A signed child (CPFP) lifting the unconfirmed `txid` and its package to `feerate`;
    /// not broadcast. The caller holds [`Onchain::spending`].
    pub async fn prepare_child(&self, txid: &str, feerate: Feerate) -> Result<Child, WalletError> {
        let (treasury, txid) = (Arc::clone(&self.treasury), txid.to_owned());
        blocking(move || treasury.prepare_child(&txid, feerate)).await
    }

    /// Builds and signs a consolidation spending exactly `outpoints` into one new change address
    /// for `fee_sat`, without broadcasting it (the caller holds [`Onchain::spending`]).
    pub async fn prepare_sweep(
        &self,
        outpoints: Vec<OutPoint>,
        fee_sat: u64,
    ) -> Result<(Transaction, Payout), WalletError> {
        let treasury = Arc::clone(&self.treasury);
        blocking(move || treasury.prepare_sweep(&outpoints, fee_sat)).await
    }

    /// The coins a spend leaves alone: those transactions stored in `store` have signed away
    /// ([`Store::signed_away`]), and those bitcoind lately said were spent ([`Onchain::note_spent`]).
    fn avoid(&self, store: &Store) -> Result<Vec<OutPoint>, WalletError> {
        let mut avoid = signed_away(store)?;
        let mut gone = self.gone.lock().unwrap_or_else(PoisonError::into_inner);
        gone.retain(|_, at| at.elapsed() < GONE_FOR);
        avoid.extend(gone.keys().copied());
        Ok(avoid)
    }

    /// Asks bitcoind which inputs of `tx` (refused by it) are already spent, and leaves those
    /// coins alone from now on; returns them. The wallet still counting them means it has not yet
    /// seen the transaction that spends them.
    pub async fn note_spent(&self, tx: Transaction) -> Result<Vec<OutPoint>, WalletError> {
        let chain = Arc::clone(&self.chain);
        let spent = blocking(move || chain.spent_inputs(&tx)).await?;
        let now = Instant::now();
        self.gone.lock().unwrap_or_else(PoisonError::into_inner).extend(spent.iter().map(|o| (*o, now)));
        Ok(spent)
    }

    /// Broadcasts a prepared transaction (again, after a restart) and records it in the wallet.
    pub async fn publish(&self, tx: Transaction) -> Result<(), WalletError> {
        let (treasury, chain) = (Arc::clone(&self.treasury), Arc::clone(&self.chain));
        blocking(move || treasury.publish(&chain, &tx)).await
    }

    /// The vsize a payout to `payees` would have at `feerate`, as coin selection builds it now.
    pub async fn payout_vsize(&self, payees: Vec<Payee>, feerate: Feerate) -> Result<u64, WalletError> {
        let treasury = Arc::clone(&self.treasury);
        blocking(move || treasury.estimate_payout_vsize(&payees, feerate)).await
    }

    /// The feerate for `target_blocks` — the operator's where one is in force, else bitcoind's
    /// (read again after 10 s), to the sat/kvB: bitcoind never estimates below the feerate it
    /// relays — capped at the configured maximum.
    pub async fn estimate(&self, target_blocks: u16) -> Result<FeeEstimate, WalletError> {
        let (fallback, max) = (self.config.fallback_feerate_sat_vb, self.config.max_feerate_sat_vb);
        if let Some((rate, source)) = self.fees.operator_rate(target_blocks, crate::unix_now()) {
            let floor = Feerate::from_sat_per_kvb(self.relay_fees().await.0);
            return Ok(FeeEstimate { feerate: capped(rate.max(floor), max), target_blocks, source });
        }
        let cached = |m: &HashMap<u16, (Instant, FeeEstimate)>| {
            m.get(&target_blocks).filter(|(at, _)| at.elapsed() < ESTIMATE_TTL).map(|(_, f)| *f)
        };
        if let Some(fee) = cached(&self.estimates.lock().unwrap_or_else(PoisonError::into_inner)) {
            return Ok(fee);
        }
        let chain = Arc::clone(&self.chain);
        let mut fee = blocking(move || chain.estimate_feerate(target_blocks, fallback)).await?;
        fee.feerate = capped(fee.feerate, max);
        self.estimates.lock().unwrap_or_else(PoisonError::into_inner).insert(target_blocks, (Instant::now(), fee));
        Ok(fee)
    }

    /// bitcoind's minimum relay feerate and incremental relay feerate, sat/kvB, read again after
    /// 10 minutes (a bitcoind restarted with other settings is followed); the last read, or 1
    /// sat/vB each (the defaults before v30), while they cannot be read.
    pub async fn relay_fees(&self) -> (u64, u64) {
        let last = *self.relay.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, fees)) = last.filter(|(at, _)| at.elapsed() < RELAY_TTL) {
            return fees;
        }
        let chain = Arc::clone(&self.chain);
        match blocking(move || chain.relay_feerates()).await {
            Ok(fees) => {
                *self.relay.lock().unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), fees));
                fees
            }
            Err(_) => last.map_or((1_000, 1_000), |(_, fees)| fees),
        }
    }

    /// The least a replacement raises a transaction's feerate by for bitcoind to take it (its
    /// incremental relay feerate: 0.1 sat/vB since v30), sat/kvB, read again every 10 minutes.
    pub async fn replacement_step(&self) -> u64 {
        self.relay_fees().await.1
    }

    /// The feerate for the wallet's default confirmation target.
    pub async fn default_estimate(&self) -> Result<FeeEstimate, WalletError> {
        self.estimate(self.config.default_target_blocks).await
    }
}

/// `rate` within 1 sat/kvB and `max_sat_vb` (`wallet.max_feerate_sat_vb`).
fn capped(rate: Feerate, max_sat_vb: u64) -> Feerate {
    Feerate::from_sat_per_kvb(rate.sat_per_kvb().clamp(1, max_sat_vb.saturating_mul(1_000)))
}

/// The coins transactions stored in `store` have signed away ([`Store::signed_away`]), for a
/// spend to leave alone; a store that cannot be read builds nothing.
fn signed_away(store: &Store) -> Result<Vec<OutPoint>, WalletError> {
    store.signed_away().map_err(|e| WalletError::Storage(format!("reading the coins stored transactions spend: {e}")))
}

/// Runs blocking wallet / RPC work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WalletError> + Send + 'static,
) -> Result<T, WalletError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| WalletError::Build(format!("wallet task failed: {e}")))?
}

/// One admin send, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRecord {
    /// Transaction id.
    pub txid: String,
    /// Destination.
    pub address: String,
    /// Amount.
    pub amount_sat: u64,
    /// Fee paid.
    pub fee_sat: u64,
    /// Feerate asked for.
    pub feerate_sat_vb: u64,
}

impl Store {
    /// Records an admin send.
    pub fn record_send(&self, send: &SendRecord, now: u64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO onchain_sends (txid, address, amount_sat, fee_sat, feerate_sat_vb, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                send.txid,
                send.address,
                send.amount_sat as i64,
                send.fee_sat as i64,
                send.feerate_sat_vb as i64,
                now as i64
            ],
        )?;
        Ok(())
    }

    /// The admin send of `txid`, if there was one.
    pub fn send(&self, txid: &str) -> Result<Option<SendRecord>, StoreError> {
        let row = self
            .conn()
            .query_row(
                "SELECT txid, address, amount_sat, fee_sat, feerate_sat_vb FROM onchain_sends WHERE txid = ?1",
                [txid],
                |r| {
                    Ok(SendRecord {
                        txid: r.get(0)?,
                        address: r.get(1)?,
                        amount_sat: r.get::<_, i64>(2)? as u64,
                        fee_sat: r.get::<_, i64>(3)? as u64,
                        feerate_sat_vb: r.get::<_, i64>(4)? as u64,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_round_trip_and_reject_nonsense() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let send =
            SendRecord { txid: "ab".into(), address: "bcrt1q".into(), amount_sat: 5, fee_sat: 1, feerate_sat_vb: 2 };
        store.record_send(&send, 7).unwrap();
        assert_eq!(store.send("ab").unwrap(), Some(send.clone()));
        assert!(store.record_send(&SendRecord { txid: "cd".into(), amount_sat: 0, ..send }, 7).is_err());
    }
}
