//! The node's lifecycle: built from [`LightningConfig`], started and stopped with the daemon, its
//! events, and what it is and holds at a glance. Channels, payments and destination parsing live in
//! `channels.rs`, `payments.rs` and `destination.rs`.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::Network;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::logger::{LogLevel, LogRecord, LogWriter};
use ldk_node::{Builder, ChannelDetails, Event, Node};

use crate::holdings::{Holdings, OnchainTx};
use crate::keysend;
use crate::types::{LnBalance, NodeInfo};
use crate::LightningError;

/// Everything needed to build the node.
#[derive(Clone)]
pub struct LightningConfig {
    /// Chain.
    pub network: Network,
    /// Where ldk-node keeps its SQLite store.
    pub storage_dir: PathBuf,
    /// bitcoind RPC host (the same bitcoind as the treasury).
    pub rpc_host: String,
    /// bitcoind RPC port.
    pub rpc_port: u16,
    /// bitcoind RPC user (the cookie's `__cookie__` works).
    pub rpc_user: String,
    /// bitcoind RPC password.
    pub rpc_password: String,
    /// P2P listening addresses, `host:port`.
    pub listen: Vec<String>,
    /// Public alias (needed to announce channels).
    pub alias: Option<String>,
    /// 64 bytes of seed, derived from the gateway mnemonic.
    pub seed: [u8; 64],
}

/// A running `ldk-node`. Stopped on drop.
pub struct LightningNode {
    pub(crate) node: Arc<Node>,
    /// What keysend preimages are derived from (see [`crate::keysend`]).
    pub(crate) keysend_secret: [u8; 32],
    pub(crate) network: Network,
    /// When this run of the node started, for [`LightningNode::recover_lost`].
    pub(crate) started: Instant,
    pub(crate) started_unix: u64,
    /// When each payment was last examined by [`LightningNode::recover_lost`].
    pub(crate) examined: Mutex<HashMap<PaymentId, Instant>>,
    /// Set once ldk-node's background processing died (see [`LightningNode::failure`]).
    failure: Arc<Mutex<Option<String>>>,
    /// Stopped (or its stop tried) already.
    stopped: AtomicBool,
}

/// ldk-node's log, forwarded to the `log` facade as `set_log_facade_logger` does, watched for the
/// one line that says the node's background processing died.
struct WatchedLog {
    failure: Arc<Mutex<Option<String>>>,
}

/// What ldk-node logs (at ERROR, from its `lib.rs`) just before its background processor task
/// panics: a write it could not make (a full disk), after which the node neither persists its
/// channel manager nor processes events.
const BACKGROUND_FAILED: &str = "Failed to process events";

impl LogWriter for WatchedLog {
    fn log(&self, record: LogRecord<'_>) {
        let level = match record.level {
            LogLevel::Gossip | LogLevel::Trace => log::Level::Trace,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        };
        if level == log::Level::Error {
            let line = record.args.to_string();
            if line.starts_with(BACKGROUND_FAILED) {
                *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(line);
            }
        }
        log::logger().log(
            &log::Record::builder()
                .level(level)
                .target(record.module_path)
                .module_path(Some(record.module_path))
                .line(Some(record.line))
                .args(format_args!("{}", record.args))
                .build(),
        );
    }
}

impl LightningNode {
    /// Builds and starts the node. Blocking: call it off the async threads (it needs a
    /// multi-threaded tokio runtime around it).
    pub fn start(config: LightningConfig) -> Result<LightningNode, LightningError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| LightningError::Setup(format!("{what}: {e}"));
        std::fs::create_dir_all(&config.storage_dir).map_err(|e| setup("storage dir", &e))?;
        let failure = Arc::new(Mutex::new(None));
        let mut builder = Builder::new();
        builder
            .set_network(config.network)
            .set_storage_dir_path(config.storage_dir.to_string_lossy().into_owned())
            .set_entropy_seed_bytes(config.seed)
            .set_chain_source_bitcoind_rpc(config.rpc_host, config.rpc_port, config.rpc_user, config.rpc_password)
            .set_custom_logger(Arc::new(WatchedLog { failure: Arc::clone(&failure) }));
        let listen = config
            .listen
            .iter()
            .map(|a| SocketAddress::from_str(a).map_err(|_| setup("listen address", a)))
            .collect::<Result<Vec<_>, _>>()?;
        builder.set_listening_addresses(listen).map_err(|e| setup("listen addresses", &e))?;
        if let Some(alias) = config.alias.filter(|a| !a.is_empty()) {
            builder.set_node_alias(alias).map_err(|e| setup("alias", &e))?;
        }
        let node = builder.build().map_err(|e| setup("build", &e))?;
        node.start().map_err(|e| setup("start", &e))?;
        tracing::info!(node_id = %node.node_id(), "lightning node started");
        let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        Ok(LightningNode {
            node: Arc::new(node),
            keysend_secret: keysend::keysend_secret(&config.seed),
            network: config.network,
            started: Instant::now(),
            started_unix,
            examined: Mutex::new(HashMap::new()),
            failure,
            stopped: AtomicBool::new(false),
        })
    }

    /// Why ldk-node's background processing died, once it did: it then neither persists its
    /// channel manager nor processes events, and only a stop and a new start (from what it
    /// persisted, as after a crash) bring it back.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops the node (once; later calls do nothing). A node whose background processing died
    /// panics in its stop (ldk-node: "Stopping event handling failed"); that is caught and logged
    /// here, so the daemon still shuts down (or starts the node again) cleanly.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| self.node.stop())) {
            Ok(Ok(())) => tracing::info!("lightning node stopped"),
            Ok(Err(e)) => tracing::warn!(error = %e, "lightning node stop"),
            Err(_) => {
                tracing::error!(
                    failure = self.failure().as_deref().unwrap_or("unknown"),
                    "the lightning node's stop panicked: its background processing had died"
                );
                // Its state lock is poisoned now (stopped as far as it got).
                self.keep_dead_node();
            }
        }
    }

    /// Never drops ldk-node's `Node`: its own `Drop` stops it again, which panics on a node
    /// whose background processing died (during an unwind, that aborts the process).
    fn keep_dead_node(&self) {
        std::mem::forget(Arc::clone(&self.node));
    }

    /// The next event; it is delivered again until [`LightningNode::event_handled`] is called.
    pub async fn next_event(&self) -> Event {
        self.node.next_event_async().await
    }

    /// Acknowledges the current event.
    pub fn event_handled(&self) -> Result<(), LightningError> {
        self.node.event_handled().map_err(|e| LightningError::from_node("event_handled", e))
    }

    /// Node id, hex.
    pub fn node_id(&self) -> String {
        self.node.node_id().to_string()
    }

    /// The node at a glance.
    pub fn info(&self) -> NodeInfo {
        let channels = self.node.list_channels();
        let usable: Vec<&ChannelDetails> = channels.iter().filter(|c| c.is_usable).collect();
        NodeInfo {
            node_id: self.node_id(),
            listening_addresses: self
                .node
                .listening_addresses()
                .unwrap_or_default()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            best_block_height: self.node.status().current_best_block.height,
            peers: self.node.list_peers().iter().filter(|p| p.is_connected).count(),
            channels: channels.len(),
            usable_channels: usable.len(),
            outbound_msat: usable.iter().map(|c| c.outbound_capacity_msat).sum(),
            inbound_msat: usable.iter().map(|c| c.inbound_capacity_msat).sum(),
        }
    }

    /// Balances.
    pub fn balance(&self) -> LnBalance {
        LnBalance::from(&self.node.list_balances())
    }

    /// What the node holds, piece by piece (see [`Holdings`]).
    pub fn holdings(&self) -> Holdings {
        // Payments first: a sweep whose transaction the wallet lists is counted in the wallet.
        let payments = self.node.list_payments();
        crate::holdings::holdings(&self.node.list_balances(), &self.node.list_channels(), &payments)
    }

    /// [`LightningNode::holdings`] once two reads 200 ms apart agree: for a moment after a
    /// payment's event, while the HTLC is being removed from the channel, the channel figures
    /// still move. Up to `tries` pairs; `false` when they never agreed.
    pub fn steady_holdings(&self, tries: u32) -> (Holdings, bool) {
        let mut last = self.holdings();
        for _ in 0..tries {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.holdings();
            if now == last {
                return (now, true);
            }
            last = now;
        }
        (last, false)
    }

    /// The transactions of the node's own on-chain wallet.
    pub fn onchain_txs(&self) -> Vec<OnchainTx> {
        crate::holdings::onchain_txs(&self.node.list_payments())
    }

    /// This node's id as a key.
    pub fn public_key(&self) -> PublicKey {
        self.node.node_id()
    }
}

impl Drop for LightningNode {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.stop();
        } else if self.failure().is_some() && !self.stopped.swap(true, Ordering::SeqCst) {
            // Dropped while this thread unwinds from a panic: a dead node's stop would panic again.
            self.keep_dead_node();
        }
    }
}
