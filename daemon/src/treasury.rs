//! On-chain sends from the treasury: feerate policy (estimate or check the one asked for), the
//! payout itself, and its record in the store. Knows nothing of HTTP or JSON-RPC.

use std::sync::Arc;

use sendero_wallet::{FeeEstimate, FeeSource, Payee, Payout, WalletError};

use crate::state::AppState;
use crate::store::SendRecord;

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

/// A completed send.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The broadcast payout.
    pub payout: Payout,
    /// Where its feerate came from.
    pub feerate_source: FeeSource,
}

/// Sends `req.amount_sat` to `req.address` from the treasury. Every check happens before anything
/// is built; a refused send changes nothing. Once bitcoind has accepted the transaction the send
/// is reported as done, whatever happens to its bookkeeping record.
pub async fn send(ctx: &AppState, req: SendRequest) -> Result<Sent, WalletError> {
    let address = ctx.treasury.parse_address(&req.address)?;
    if req.amount_sat == 0 {
        return Err(WalletError::InvalidAmount("amount_sat must be at least 1".into()));
    }
    let max = ctx.config.wallet.max_feerate_sat_vb;
    let fee = match req.feerate_sat_vb {
        Some(rate) if rate == 0 || rate > max => {
            return Err(WalletError::InvalidFeerate(format!("{rate} sat/vB is outside 1..={max}")))
        }
        Some(rate) => FeeEstimate { sat_per_vb: rate, target_blocks: 0, source: FeeSource::Requested },
        None => estimate(ctx, ctx.config.wallet.default_target_blocks).await?,
    };
    let payout = pay(ctx, Payee { address, amount_sat: req.amount_sat }, fee.sat_per_vb).await?;
    let record = SendRecord {
        txid: payout.txid.to_string(),
        address: req.address.trim().to_owned(),
        amount_sat: req.amount_sat,
        fee_sat: payout.fee_sat,
        feerate_sat_vb: payout.feerate_sat_vb,
    };
    if let Err(e) = ctx.store.record_send(&record, crate::unix_now()) {
        // The money has moved and the wallet knows it; failing the call now would invite a retry.
        tracing::error!(txid = %record.txid, error = %e, "send broadcast but not recorded in the store");
    }
    Ok(Sent { payout, feerate_source: fee.source })
}

/// Builds, signs and broadcasts one transaction paying `payee`, holding the treasury's spend lock
/// (see [`crate::state::Shared::onchain_spend`]) from coin selection to broadcast.
pub async fn pay(ctx: &AppState, payee: Payee, feerate_sat_vb: u64) -> Result<Payout, WalletError> {
    let (treasury, chain) = (Arc::clone(&ctx.treasury), Arc::clone(&ctx.chain));
    let _spending = ctx.onchain_spend.lock().await;
    blocking(move || treasury.pay(&chain, &[payee], feerate_sat_vb)).await
}

/// The feerate for `target_blocks`, capped at the configured maximum.
pub async fn estimate(ctx: &AppState, target_blocks: u16) -> Result<FeeEstimate, WalletError> {
    let chain = Arc::clone(&ctx.chain);
    let (fallback, max) = (ctx.config.wallet.fallback_feerate_sat_vb, ctx.config.wallet.max_feerate_sat_vb);
    let mut fee = blocking(move || chain.estimate_feerate(target_blocks, fallback)).await?;
    fee.sat_per_vb = fee.sat_per_vb.clamp(1, max);
    Ok(fee)
}

/// Runs blocking wallet / RPC work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WalletError> + Send + 'static,
) -> Result<T, WalletError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| WalletError::Build(format!("wallet task failed: {e}")))?
}
