//! The chain follower: one background task that watches bitcoind (reachable? right chain? still
//! syncing?) and keeps the treasury wallet in step with it, backing off while bitcoind is down.

use std::sync::Arc;
use std::time::Duration;

use sendero_wallet::bitcoin::Network;
use sendero_wallet::{ChainInfo, ChainSource, Follower, Treasury, WalletError};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Longest wait between two attempts while bitcoind is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// How often the follower says how far bitcoind's initial block download has come.
const SYNC_PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// What the daemon knows about bitcoind and the wallet's sync, as of the last poll.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChainStatus {
    /// bitcoind answered the last poll and is on the configured chain.
    pub reachable: bool,
    /// bitcoind's chain name, once known.
    pub chain: Option<String>,
    /// bitcoind's block height, once known.
    pub chain_height: Option<u32>,
    /// bitcoind's best header height, once known.
    pub headers: Option<u32>,
    /// bitcoind is still in initial block download.
    pub initial_block_download: bool,
    /// Height the wallet has applied.
    pub wallet_synced_height: u32,
    /// Why the last poll failed, if it did.
    pub last_error: Option<String>,
}

impl ChainStatus {
    /// Why the on-chain rails are out, while bitcoind is unreachable: the last poll's error (the
    /// rails' circuit breaker — a route or submit asks this, not bitcoind, and answers at once).
    /// `None` before the first poll has failed, and from the first poll that succeeds.
    pub fn outage(&self) -> Option<&str> {
        if self.reachable {
            return None;
        }
        self.last_error.as_deref()
    }

    /// The status as read with the wallet at `wallet_height` now: the wallet applies blocks
    /// during a poll, and the poll writes the status only when it ends, so a reader may see the
    /// wallet ahead of the last status — the chain is at least where the wallet is.
    pub fn with_wallet_at(mut self, wallet_height: u32) -> ChainStatus {
        self.wallet_synced_height = self.wallet_synced_height.max(wallet_height);
        self.chain_height = self.chain_height.map(|h| h.max(self.wallet_synced_height));
        self
    }

    /// The wallet has applied every block bitcoind has.
    pub fn wallet_synced(&self) -> bool {
        self.reachable && self.chain_height == Some(self.wallet_synced_height)
    }
}

/// Runs until `cancel` fires: polls bitcoind every `interval`, syncs the wallet, publishes status.
pub async fn run(
    chain: Arc<ChainSource>,
    treasury: Arc<Treasury>,
    network: Network,
    start_height: u32,
    interval: Duration,
    status: watch::Sender<ChainStatus>,
    cancel: CancellationToken,
) {
    let mut follower = None;
    let mut backoff = interval;
    let mut was_reachable = None;
    // While bitcoind is in initial block download: when the follower last said so.
    let mut syncing_said: Option<std::time::Instant> = None;
    loop {
        let outcome = poll_once(&chain, &treasury, network, start_height, &mut follower).await;
        let reachable = outcome.is_ok();
        status.send_modify(|s| apply(s, &outcome, treasury.synced_height()));
        match (&outcome, was_reachable) {
            (Ok(info), Some(false) | None) => {
                tracing::info!(chain = %info.chain, height = info.blocks, "bitcoind reachable");
            }
            (Err(e), Some(true) | None) => {
                tracing::warn!(error = %e, url = chain.url(), "bitcoind unreachable; retrying with backoff");
            }
            (Err(e), Some(false)) => {
                tracing::debug!(error = %e, retry_in_ms = backoff.as_millis() as u64, "bitcoind still unreachable")
            }
            _ => {}
        }
        if let Ok(info) = &outcome {
            syncing_said = tell_sync(info, syncing_said);
        }
        was_reachable = Some(reachable);
        backoff = if reachable { interval } else { (backoff * 2).min(MAX_BACKOFF).max(interval) };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
    tracing::debug!("chain follower stopped");
}

/// Says when bitcoind's initial block download starts and ends, and how far it has come once a
/// minute in between (not every poll: a mainnet sync polls for hours, a fresh regtest chain every
/// 200 ms until its first block). Returns when it last said so while the download goes on.
fn tell_sync(info: &ChainInfo, said: Option<std::time::Instant>) -> Option<std::time::Instant> {
    let (blocks, headers) = (info.blocks, info.headers);
    match (info.initial_block_download, said) {
        (true, None) => {
            tracing::info!(blocks, headers, "bitcoind is syncing the chain (initial block download)");
            Some(std::time::Instant::now())
        }
        (true, Some(at)) if at.elapsed() >= SYNC_PROGRESS_EVERY => {
            tracing::info!(blocks, headers, "bitcoind is still syncing the chain");
            Some(std::time::Instant::now())
        }
        (true, Some(at)) => Some(at),
        (false, Some(_)) => {
            tracing::info!(height = blocks, "bitcoind has synced the chain");
            None
        }
        (false, None) => None,
    }
}

fn apply(s: &mut ChainStatus, outcome: &Result<ChainInfo, WalletError>, wallet_height: u32) {
    s.wallet_synced_height = wallet_height;
    match outcome {
        Ok(info) => {
            s.reachable = true;
            s.chain = Some(info.chain.clone());
            // Blocks mined while the wallet synced: the chain is at least where the wallet is.
            s.chain_height = Some(info.blocks.max(wallet_height));
            s.headers = Some(info.headers);
            s.initial_block_download = info.initial_block_download;
            s.last_error = None;
        }
        Err(e) => {
            s.reachable = false;
            s.last_error = Some(e.to_string());
        }
    }
}

/// One poll: chain info, then (on the right chain) a wallet sync. Blocking RPC runs off the
/// async threads; the follower is moved into the blocking task and back.
async fn poll_once(
    chain: &Arc<ChainSource>,
    treasury: &Arc<Treasury>,
    network: Network,
    start_height: u32,
    slot: &mut Option<Follower>,
) -> Result<ChainInfo, WalletError> {
    // A follower lost to a failed or panicked sync is rebuilt from the wallet's own checkpoint.
    let mut follower = slot.take().unwrap_or_else(|| Follower::new(treasury, Arc::clone(chain), start_height));
    let (chain, treasury) = (Arc::clone(chain), Arc::clone(treasury));
    let joined = tokio::task::spawn_blocking(move || {
        let result = sync_step(&chain, &treasury, network, &mut follower);
        (follower, result)
    })
    .await;
    match joined {
        Ok((follower, result)) => {
            // After a failed poll (bitcoind gone, maybe restarted without its mempool) the next
            // one starts a new follower that expects the wallet's unconfirmed transactions in the
            // mempool: those bitcoind no longer has are then known evicted, and broadcast again by
            // their payouts, instead of counted as pending forever.
            if result.is_ok() {
                *slot = Some(follower);
            }
            result
        }
        Err(e) => Err(WalletError::Chain(format!("sync task failed: {e}"))),
    }
}

fn sync_step(
    chain: &ChainSource,
    treasury: &Treasury,
    network: Network,
    follower: &mut Follower,
) -> Result<ChainInfo, WalletError> {
    let info = chain.info()?;
    if !info.is_network(network) {
        return Err(WalletError::Chain(format!(
            "bitcoind is on chain {:?}, but senderod is configured for {network}",
            info.chain
        )));
    }
    if let Err(e) = follower.sync(treasury) {
        // bitcoind answered: a full disk is not bitcoind unreachable (the wallet writes what it
        // applied with its next change, once there is space).
        if !e.is_disk_full() {
            return Err(e);
        }
        tracing::error!(error = %e, "the wallet could not write what it synced");
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wallet_ahead_of_the_last_poll_reads_as_synced_at_its_height() {
        // The last poll saw 0 blocks; the wallet has since applied 101 during the next one.
        let polled = ChainStatus { reachable: true, chain_height: Some(0), ..ChainStatus::default() };
        let now = polled.clone().with_wallet_at(101);
        assert_eq!((now.chain_height, now.wallet_synced_height, now.wallet_synced()), (Some(101), 101, true));
        // A chain ahead of the wallet stays ahead; before any poll, nothing is known.
        let ahead = ChainStatus { chain_height: Some(150), ..polled }.with_wallet_at(101);
        assert_eq!((ahead.chain_height, ahead.wallet_synced()), (Some(150), false));
        assert_eq!(ChainStatus::default().with_wallet_at(101).chain_height, None);
    }
}
