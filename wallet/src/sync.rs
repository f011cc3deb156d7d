//! Following bitcoind: every new block and the mempool are applied to the treasury wallet.

use std::sync::Arc;
use std::time::Instant;

use bdk_bitcoind_rpc::Emitter;

use crate::{ChainSource, Treasury, WalletError};

/// Blocks applied between two progress lines (and wallet persists) during a long catch-up.
const PROGRESS_EVERY: u32 = 1_000;

/// What one sync pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Blocks applied in this pass.
    pub blocks_applied: u32,
    /// The wallet's height afterwards.
    pub synced_height: u32,
    /// Mempool transactions seen that touch the wallet or were already known.
    pub mempool_txs: usize,
}

/// Walks bitcoind's chain from the wallet's last checkpoint. Keep one per treasury and call
/// [`Follower::sync`] whenever a new block or mempool change may have happened; it resumes where it
/// stopped, survives reorgs and reconnects after bitcoind restarts.
pub struct Follower {
    emitter: Emitter<Arc<ChainSource>>,
    chain: Arc<ChainSource>,
}

impl Follower {
    /// A follower for `treasury`; `start_height` is where a brand-new wallet starts scanning.
    pub fn new(treasury: &Treasury, chain: Arc<ChainSource>, start_height: u32) -> Self {
        let (checkpoint, unconfirmed) = treasury.sync_start();
        Follower { emitter: Emitter::new(Arc::clone(&chain), checkpoint, start_height, unconfirmed), chain }
    }

    /// Applies every block up to bitcoind's tip, then the mempool.
    pub fn sync(&mut self, treasury: &Treasury) -> Result<SyncReport, WalletError> {
        let started = Instant::now();
        let mut report = SyncReport::default();
        while let Some(event) = self.emitter.next_block()? {
            treasury.apply_block(&event)?;
            report.blocks_applied += 1;
            if report.blocks_applied % PROGRESS_EVERY == 0 {
                treasury.persist()?;
                self.progress(event.block_height(), report.blocks_applied, started);
            }
        }
        let mempool = self.emitter.mempool()?;
        report.mempool_txs = mempool.update.len();
        treasury.apply_mempool(mempool)?;
        report.synced_height = treasury.synced_height();
        if report.blocks_applied > 0 {
            tracing::debug!(
                blocks = report.blocks_applied,
                height = report.synced_height,
                ms = started.elapsed().as_millis() as u64,
                "wallet synced"
            );
        }
        Ok(report)
    }

    /// One progress line of a long catch-up: where the wallet is, bitcoind's tip, the rate and
    /// the time left at that rate.
    fn progress(&self, height: u32, applied: u32, started: Instant) {
        let tip = self.chain.info().map(|i| i.blocks).unwrap_or(height);
        let ms = (started.elapsed().as_millis() as u64).max(1);
        let per_sec = u64::from(applied) * 1000 / ms;
        let left = u64::from(tip.saturating_sub(height));
        let eta_secs = (left * ms).checked_div(u64::from(applied) * 1000).unwrap_or(0);
        tracing::info!(
            height,
            tip,
            blocks_per_sec = per_sec,
            eta_secs,
            "wallet catching up: block {height} of {tip}, {per_sec} blocks/s, about {eta_secs} s left"
        );
    }
}
