//! The Lightning node inside senderod: started once bitcoind answers (retrying with backoff),
//! published on the [`LnRail`], its events recorded and always acknowledged, and the channel opens
//! that waited for their funding carried out when it confirms.

use std::sync::Arc;
use std::time::Duration;

use sendero_lightning::{LightningConfig, LightningNode};
use sendero_wallet::bitcoin::Network;
use sendero_wallet::BitcoindAuth;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::events::handle_event;
use super::{LnRail, Starting};
use crate::config::Config;
use crate::follower::ChainStatus;
use crate::store::Store;

/// What the runner needs besides the rail it publishes on.
pub struct Runner {
    /// The rail the node is published on.
    pub rail: Arc<LnRail>,
    /// The checked configuration (`[lightning]`, the data dir, bitcoind's poll interval).
    pub config: Arc<Config>,
    /// The chain.
    pub network: Network,
    /// Where events and pending actions are recorded.
    pub store: Arc<Store>,
    /// Whether bitcoind answers.
    pub status: watch::Receiver<ChainStatus>,
    /// Woken when a payment's outcome arrives.
    pub payments_wake: Arc<Notify>,
    /// The webhook sender, woken when an event queued something to tell (an invoice paid, an
    /// alarm).
    pub webhooks_wake: Arc<Notify>,
}

/// Runs the node until `cancel`: start (once bitcoind answers), then events and pending actions.
/// ldk-node takes bitcoind's credentials once, so when bitcoind's cookie changes (bitcoind
/// restarted) the node is stopped and built again with the new one. When ldk-node's background
/// processing dies (a write it could not make: a full disk) the node no longer persists nor
/// processes events: it is stopped and started again from what it persisted, as after a crash,
/// retrying with backoff while the start fails; `getinfo` and `/v1/health` count these restarts.
pub async fn run(ctx: Runner, rpc: (String, BitcoindAuth), seed: [u8; 64], cancel: CancellationToken) {
    loop {
        let Some((node, creds)) = start_when_possible(&ctx, &rpc, seed, &cancel).await else { return };
        ctx.rail.publish(Some(Arc::clone(&node)));
        let next = serve_node(&ctx, &node, &rpc.1, &creds, &cancel).await;
        ctx.rail.publish(None);
        let stopping = Arc::clone(&node);
        let _ = tokio::task::spawn_blocking(move || stopping.stop()).await;
        match next {
            Next::Stop => return,
            Next::NewCredentials => {
                tracing::warn!("bitcoind's RPC cookie changed (bitcoind restarted): restarting the lightning node")
            }
            Next::Failed(failure) => {
                // Not in a loop while the disk stays full: 1, 2, 4 … 30 s before each new start.
                let mut restarts = 0;
                ctx.rail.starting(|s| {
                    (s.restarts, s.last_failure) = (s.restarts + 1, Some(failure));
                    restarts = s.restarts;
                });
                let wait = Duration::from_secs(1 << restarts.min(5)).min(Duration::from_secs(30));
                tracing::warn!(
                    restarts,
                    start_in_s = wait.as_secs(),
                    "lightning node stopped after its background processing died"
                );
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Why [`serve_node`] returned.
enum Next {
    /// The daemon stops.
    Stop,
    /// bitcoind's credentials changed.
    NewCredentials,
    /// ldk-node's background processing died, with this error line.
    Failed(String),
}

/// Events and pending actions until `cancel`, new bitcoind credentials or the node's failure.
async fn serve_node(
    ctx: &Runner,
    node: &Arc<LightningNode>,
    auth: &BitcoindAuth,
    creds: &(String, String),
    cancel: &CancellationToken,
) -> Next {
    let tick = Duration::from_millis(ctx.config.bitcoind.poll_interval_ms.max(100));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Next::Stop,
            event = node.next_event() => {
                // Recording may wait on SQLite; keep it off the async threads.
                let (store, n) = (Arc::clone(&ctx.store), Arc::clone(node));
                let wakes = (Arc::clone(&ctx.payments_wake), Arc::clone(&ctx.webhooks_wake));
                let tolerance = ctx.config.invoices.tolerance_bps;
                let handled = move || handle_event((&store, tolerance), &n, (&wakes.0, &wakes.1), event);
                if let Err(e) = tokio::task::spawn_blocking(handled).await {
                    tracing::error!(error = %e, "lightning event task failed");
                }
            }
            _ = tokio::time::sleep(tick) => {
                if let Some(failure) = node.failure() {
                    tracing::error!(%failure, "the lightning node's background processing died (it no longer persists its state nor processes events): restarting the node");
                    return Next::Failed(failure);
                }
                let funding = (&*ctx.store, ctx.config.lightning.funding_fee_headroom_sat);
                crate::rails::funding::process_pending(funding, node).await;
                if read_credentials(auth).is_ok_and(|now| &now != creds) {
                    return Next::NewCredentials;
                }
            }
        }
    }
}

/// Starts the node as soon as bitcoind answers (waiting for bitcoind is not a failed start, so it
/// does not lengthen the backoff), and after a failed start tries again in 1, 2, 4 … 30 s. Where
/// it stands is published on the rail for `getinfo` and `/v1/health`.
async fn start_when_possible(
    ctx: &Runner,
    rpc: &(String, BitcoindAuth),
    seed: [u8; 64],
    cancel: &CancellationToken,
) -> Option<(Arc<LightningNode>, (String, String))> {
    let mut backoff = Duration::from_secs(1);
    let mut status = ctx.status.clone();
    loop {
        if !status.borrow().reachable {
            ctx.rail.starting(|s| (s.waiting_for_bitcoind, s.next_attempt) = (true, None));
            until_bitcoind_answers(&mut status, cancel).await?;
        }
        ctx.rail.starting(|s| (s.waiting_for_bitcoind, s.next_attempt) = (false, None));
        let failed = match node_config(ctx, rpc, seed) {
            Ok(config) => {
                let creds = (config.rpc_user.clone(), config.rpc_password.clone());
                tracing::info!(network = %ctx.network, "starting the lightning node");
                match tokio::task::spawn_blocking(move || LightningNode::start(config)).await {
                    Ok(Ok(node)) => {
                        // Restarts after a failure stay counted.
                        ctx.rail.starting(|s| {
                            *s = Starting {
                                restarts: s.restarts,
                                last_failure: s.last_failure.take(),
                                ..Starting::default()
                            }
                        });
                        return Some((Arc::new(node), creds));
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => {
                        tracing::error!(error = %e, "lightning node start panicked");
                        format!("the start panicked: {e}")
                    }
                }
            }
            Err(e) => format!("lightning node config: {e}"),
        };
        tracing::warn!(error = %failed, retry_in_s = backoff.as_secs(), "lightning node did not start");
        let next = std::time::Instant::now() + backoff;
        ctx.rail.starting(|s| {
            s.failed_starts += 1;
            (s.last_error, s.next_attempt) = (Some(failed), Some(next));
        });
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Waits until the follower reaches bitcoind (`None` on `cancel`); says once, with the follower's
/// error, that the node waits for it (not before the follower's first poll).
async fn until_bitcoind_answers(status: &mut watch::Receiver<ChainStatus>, cancel: &CancellationToken) -> Option<()> {
    let mut told = false;
    loop {
        let now = status.borrow_and_update().clone();
        if now.reachable {
            return Some(());
        }
        if let (false, Some(error)) = (told, now.last_error) {
            tracing::info!(%error, "the lightning node starts once bitcoind answers");
            told = true;
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            changed = status.changed() => changed.ok()?,
        }
    }
}

fn node_config(ctx: &Runner, rpc: &(String, BitcoindAuth), seed: [u8; 64]) -> Result<LightningConfig, String> {
    let (url, auth) = rpc;
    let hostport = url.trim_start_matches("http://").trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').ok_or_else(|| format!("bitcoind rpc_url {url:?} has no port"))?;
    let port = port.parse().map_err(|_| format!("bitcoind rpc_url {url:?}: bad port"))?;
    let (user, password) = read_credentials(auth)?;
    let ln = &ctx.config.lightning;
    Ok(LightningConfig {
        network: ctx.network,
        storage_dir: ctx.config.datadir.join("lightning"),
        rpc_host: host.to_owned(),
        rpc_port: port,
        rpc_user: user,
        rpc_password: password,
        listen: vec![ln.listen.clone()],
        alias: (!ln.alias.is_empty()).then(|| ln.alias.clone()),
        seed,
    })
}

/// bitcoind's RPC user and password: as configured, or read from its cookie file now.
fn read_credentials(auth: &BitcoindAuth) -> Result<(String, String), String> {
    match auth {
        BitcoindAuth::UserPass(u, p) => Ok((u.clone(), p.clone())),
        BitcoindAuth::Cookie(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cookie {}: {e}", path.display()))?;
            let (u, p) = text.trim().split_once(':').ok_or("malformed bitcoind cookie")?;
            Ok((u.to_owned(), p.to_owned()))
        }
    }
}
