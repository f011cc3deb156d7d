//! senderod's lifecycle: data dir, store, (dev chain), wallet, chain follower, listeners; then one
//! `select!` over the servers and SIGTERM/SIGINT, and an orderly shutdown.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sendero_wallet::bitcoin::Network;
use sendero_wallet::{keys, BitcoindAuth, ChainSource, Treasury, WalletError};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::admin::AdminListener;
use crate::config::{Config, ConfigError};
use crate::devchain::{self, Bitcoind, DevChainError};
use crate::follower::{self, ChainStatus};
use crate::rails::lightning::runner::{self, Runner};
use crate::rails::onchain::{blocking, Onchain};
use crate::state::{AppState, Parts};
use crate::store::{Store, StoreError};
use crate::supervise::Tasks;

pub use roles::Role;
use roles::{hold_node_lock, published_descriptors, spawn_front_end_tasks, TREASURY_DESCRIPTORS};

mod dev;
mod roles;
use dev::{dev_bootstrap, start_dev_chain};

/// Why senderod could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file, directory or socket could not be used.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Another senderod holds the data dir.
    #[error("another senderod is running on {0}")]
    Locked(PathBuf),
    /// The data dir belongs to another network.
    #[error("data dir {datadir} holds a {found} gateway, but senderod is configured for {configured}")]
    NetworkMismatch {
        /// The data dir.
        datadir: PathBuf,
        /// Its recorded network.
        found: String,
        /// The configured one.
        configured: Network,
    },
    /// A file holding a secret is readable or writable by others.
    #[error("{path} holds a secret but its mode is {mode:o}: others can read or change it; run `chmod 600 {path}`")]
    LooseSecret {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A restore into the data dir did not finish.
    #[error("a restore into {0} did not finish ({marker} is there): run `senderod --restore-from` again", marker = crate::backup::RESTORE_MARKER)]
    RestoreIncomplete(PathBuf),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The operator's webhook endpoint could not be set up.
    #[error(transparent)]
    OperatorWebhook(#[from] crate::webhook::operator::OperatorError),
    /// The treasury policy the store keeps is unreadable.
    #[error(transparent)]
    Treasury(#[from] crate::liquidity::guard::GuardError),
    /// A background task ended or panicked while the daemon ran.
    #[error("{0}")]
    TaskEnded(String),
    /// The wallet failed to open.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// Dev mode's bitcoind failed.
    #[error(transparent)]
    DevChain(#[from] DevChainError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Runs senderod until SIGTERM/SIGINT.
pub async fn run(config: Config, dev: bool, role: Role) -> Result<(), DaemonError> {
    let datadir = config.datadir.clone();
    if !config.metrics.listen.is_empty() {
        // Before anything runs, so that every payout and request from the start is counted.
        crate::metrics::install();
    }
    prepare_datadir(&datadir)?;
    if role != Role::All && config.store.url.is_empty() {
        return Err(ConfigError::Invalid(
            "--role node and --role api need a PostgreSQL store ([store] url): a SQLite store is one process's file"
                .into(),
        )
        .into());
    }
    // Before the data dir's own lock: a standby sharing the data dir waits here, saying so.
    let node_lock = match config.store.url.is_empty() || role == Role::Api {
        true => None,
        false => Some(Arc::new(crate::store::NodeLock::acquire(&config.store.url).await?)),
    };
    let _lock = lock_datadir(&datadir)?;
    if datadir.join(crate::backup::RESTORE_MARKER).exists() {
        return Err(DaemonError::RestoreIncomplete(datadir));
    }
    check_secret_files(&datadir)?;
    let mut dev_chain = if dev { Some(start_dev_chain(&config)?) } else { None };
    let rpc = match &dev_chain {
        Some(node) => (node.rpc_url(), BitcoindAuth::Cookie(node.cookie_path())),
        None => config.bitcoind_rpc()?,
    };
    let (state, boot) = compose(config, &rpc, role).await?;
    let cancel = CancellationToken::new();
    let mut tasks = match role {
        Role::Api => spawn_front_end_tasks(&state, boot, &cancel),
        Role::All | Role::Node => spawn_tasks(&state, boot, rpc, &cancel),
    };
    if let Some(lock) = node_lock {
        tasks.spawn("node lock", hold_node_lock(lock, cancel.clone()));
    }
    if dev {
        dev_bootstrap(&state).await?;
    }
    let result = serve(&state, &mut tasks, &cancel).await;

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracing::info!("senderod stopping");
    cancel.cancel();
    tasks.shutdown(Duration::from_secs(30)).await;
    if let Some(node) = dev_chain.as_mut() {
        tokio::task::block_in_place(|| node.stop());
    }
    tracing::info!("senderod stopped");
    result
}

/// What the background tasks take beyond the shared state.
struct Boot {
    status_tx: watch::Sender<ChainStatus>,
    start_height: u32,
    /// The Lightning node's seed; none on a front end (`--role api`), which runs no node.
    ln_seed: Option<[u8; 64]>,
    fx_sources: crate::fx::sources::SourceSet,
}

/// Opens (and migrates) the books: SQLite in the data dir, or PostgreSQL (`[store] url`).
fn open_store(config: &crate::config::StoreConfig, datadir: &std::path::Path) -> Result<Store, DaemonError> {
    let location = config.location(datadir);
    let store = Store::open_at(&location)?;
    match location {
        crate::store::StoreLocation::Sqlite(path) => tracing::info!(path = %path.display(), "store: SQLite"),
        crate::store::StoreLocation::Postgres(url) => {
            tracing::info!(url = %crate::config::redact_store_url(&url), "store: PostgreSQL")
        }
    }
    Ok(store)
}

/// Opens the store, the keys and the wallet, and composes the shared state.
async fn compose(config: Config, rpc: &(String, BitcoindAuth), role: Role) -> Result<(AppState, Boot), DaemonError> {
    let (network, datadir) = (config.bitcoin_network()?, config.datadir.clone());
    crate::failpoint::arm(network);
    let store = Arc::new(open_store(&config.store, &datadir)?);
    check_network(&store, &datadir, network)?;
    let chain = Arc::new(ChainSource::new(rpc.0.clone(), rpc.1.clone()));
    let (treasury, ln_seed, start_height) = match role {
        Role::Api => {
            let (external, internal) = published_descriptors(&store).await?;
            let treasury = Treasury::open_watch_only(&datadir.join("wallet.sqlite"), external, internal, network)?;
            let start_height = wallet_birthday(&store, &chain, false, config.wallet.birthday_height).await?;
            (treasury, None, start_height)
        }
        Role::All | Role::Node => {
            let (mnemonic, created) = keys::load_or_create_mnemonic(&datadir.join("mnemonic"))?;
            if created {
                tracing::warn!(path = %datadir.join("mnemonic").display(), "created a new wallet mnemonic: back this file up");
            }
            let treasury = Treasury::open(&datadir.join("wallet.sqlite"), &mnemonic, network)?;
            let ln_seed = keys::lightning_seed(&mnemonic, network)?;
            let start_height = wallet_birthday(&store, &chain, created, config.wallet.birthday_height).await?;
            let (external, internal) = keys::treasury_public_descriptors(&mnemonic, network)?;
            store.set_meta(TREASURY_DESCRIPTORS, &serde_json::json!([external, internal]).to_string())?;
            (treasury, Some(ln_seed), start_height)
        }
    };
    let fx_cache = crate::fx::RateCache::with_ttls(
        config.fx.rate_ttl_secs,
        config.fx.pairs.iter().map(|p| (p.clone(), config.fx.ttl_for(p))).collect(),
    );
    let fx_sources = config.fx.source_set()?;
    let (status_tx, status_rx) = watch::channel(ChainStatus::default());
    let onchain = Arc::new(fee_schedule(Onchain::new(treasury, chain, config.wallet.clone()), &config.wallet)?);
    let state = AppState::compose(Parts {
        config: Arc::new(config),
        network,
        store,
        onchain,
        fx: Arc::new(fx_cache),
        status: status_rx,
        front_end: role == Role::Api,
    })?;
    crate::webhook::operator::ensure(
        &state.store,
        &state.config.webhooks.operator_url,
        &crate::webhook::guard::Guard::new(&state.config.webhooks),
        &state.config.datadir.join("operator-webhook.secret"),
    )?;
    if let Some(entry) = crate::audit::config_policy(&state.store, &state.config.audited_policy())? {
        tracing::info!(audit_seq = entry.seq, "the config's markups or limits changed since the last start: audited");
    }
    let learned = state.store.load_learner(&state.config.routing.tuning())?;
    tracing::info!(outcomes = learned.total_outcomes(), pinned = ?learned.pinned, disabled = ?learned.disabled,
        "routing statistics loaded");
    *state.router.learner.lock() = learned;
    Ok((state, Boot { status_tx, start_height, ln_seed, fx_sources }))
}

/// The rail with `wallet.fee_schedule_file`'s feerates in force, when one is set.
fn fee_schedule(onchain: Onchain, wallet: &crate::config::WalletConfig) -> Result<Onchain, DaemonError> {
    if wallet.fee_schedule_file.is_empty() {
        return Ok(onchain);
    }
    let invalid = |e: crate::rails::fees::FeesError| ConfigError::Invalid(format!("wallet.fee_schedule_file: {e}"));
    let schedule = crate::rails::fees::Schedule::load(Path::new(&wallet.fee_schedule_file)).map_err(invalid)?;
    tracing::warn!(file = %wallet.fee_schedule_file, samples = schedule.len(),
        "feerates follow the fee schedule instead of bitcoind's estimates");
    Ok(onchain.with_schedule(schedule).map_err(invalid)?)
}

/// The supervised tasks, starting with the chain follower (the treasury, watch-only or not, kept
/// in step with bitcoind).
fn following_the_chain(
    state: &AppState,
    start_height: u32,
    status_tx: watch::Sender<ChainStatus>,
    cancel: &CancellationToken,
) -> Tasks {
    let interval = Duration::from_millis(state.config.bitcoind.poll_interval_ms.max(50));
    let (chain, treasury) = (Arc::clone(state.onchain.chain()), Arc::clone(state.onchain.treasury()));
    let follow = follower::run(chain, treasury, state.network, start_height, interval, status_tx, cancel.clone());
    let mut tasks = Tasks::default();
    tasks.spawn("chain follower", follow);
    tasks
}

/// Starts the background tasks, supervised.
fn spawn_tasks(state: &AppState, boot: Boot, rpc: (String, BitcoindAuth), cancel: &CancellationToken) -> Tasks {
    let interval = Duration::from_millis(state.config.bitcoind.poll_interval_ms.max(50));
    let mut tasks = following_the_chain(state, boot.start_height, boot.status_tx, cancel);
    if let (true, Some(ln_seed)) = (state.config.lightning.enabled, boot.ln_seed) {
        let runner = Runner {
            rail: Arc::clone(&state.lightning),
            config: Arc::clone(&state.config),
            network: state.network,
            store: Arc::clone(&state.store),
            status: state.status.clone(),
            payments_wake: Arc::clone(&state.payments.wake),
            webhooks_wake: Arc::clone(&state.webhooks.wake),
        };
        tasks.spawn("lightning node", runner::run(runner, rpc, ln_seed, cancel.clone()));
    }
    tasks.spawn("fx sources", crate::fx::sources::run(Arc::clone(&state.fx), boot.fx_sources, cancel.clone()));
    // Every in-flight key belongs to a request of an earlier process (none is served yet) — on
    // SQLite. On PostgreSQL front ends may be serving requests: only keys older than a request
    // can run are stale.
    let stale_before = match state.store.is_postgres() {
        false => crate::unix_now() + 1,
        true => crate::unix_now().saturating_sub(STALE_IN_FLIGHT_SECS),
    };
    prune_idempotency_now(state, stale_before);
    tasks.spawn("idempotency pruner", prune_idempotency(state.clone(), cancel.clone()));
    tasks.spawn("quote writer", write_quotes(Arc::clone(&state.store), cancel.clone()));
    tasks.spawn("payment sagas", crate::payment::saga::run(Arc::clone(&state.payments), cancel.clone()));
    if state.config.batching.enabled {
        tasks.spawn("batcher", crate::payment::batcher::run(Arc::clone(&state.payments), cancel.clone()));
    }
    tasks.spawn("fee bumper", crate::payment::bumper::run(Arc::clone(&state.payments), cancel.clone()));
    tasks.spawn("treasury guard", Arc::clone(&state.guard).run(cancel.clone()));
    if state.config.batching.consolidation_interval_secs > 0 {
        let payments = Arc::clone(&state.payments);
        tasks.spawn("consolidation", crate::payment::consolidate::run_every(payments, cancel.clone()));
    }
    tasks.spawn("webhook sender", crate::webhook::run(Arc::clone(&state.webhooks), cancel.clone()));
    if state.config.events.enabled() {
        let (store, events) = (Arc::clone(&state.store), state.config.events.clone());
        tasks.spawn("event publisher", crate::events::run(store, events, cancel.clone()));
    }
    let watched = (Arc::clone(&state.store), Arc::clone(state.onchain.treasury()), state.config.invoices.clone());
    tasks.spawn("invoice watcher", crate::invoice::onchain::run(watched, interval, cancel.clone()));
    if state.config.lightning.enabled {
        let payments = Arc::clone(&state.payments);
        tasks.spawn("rebalancer", crate::liquidity::rebalancer::run(payments, cancel.clone()));
    }
    tasks
}

/// Binds both listeners, says READY, and waits for a signal, a server failure or a background
/// task that ends.
async fn serve(state: &AppState, tasks: &mut Tasks, cancel: &CancellationToken) -> Result<(), DaemonError> {
    let api_addr = state.config.api_listen()?;
    let api_listener = tokio::net::TcpListener::bind(api_addr).await.map_err(io(format!("bind API on {api_addr}")))?;
    let dashboard_addr = state.config.dashboard_listen()?;
    let admin = AdminListener::bind(&state.config.datadir, state.config.admin_listen()?, dashboard_addr.is_some())
        .await
        .map_err(io("bind admin RPC"))?;
    let api_at = api_listener.local_addr().map_err(io("API address"))?;
    if state.store.is_postgres() && state.node_link.is_none() {
        // Where the front ends hand over what only the node does (a standby taking over says
        // so again).
        let url = state.config.api_advertised(api_at)?;
        crate::nodelink::publish(&state.store, &url)?;
        tracing::info!(url = %url, "the node's API published for the store's front ends");
    }
    let admin_at = admin.describe();
    if let Some(addr) = state.config.metrics_listen()? {
        let at = serve_side(tasks, "metrics", addr, crate::admin::metrics::router(state.clone()), cancel).await?;
        tracing::info!(metrics = %at, "Prometheus metrics at /metrics");
    }
    if let (Some(addr), Some(cookie)) = (dashboard_addr, admin.cookie()) {
        serve_dashboard(state, tasks, cancel, addr, cookie.to_owned()).await?;
    }
    let mut api = tokio::spawn(crate::api::serve(api_listener, state.clone(), cancel.clone()));
    let mut admin = tokio::spawn(admin.serve(state.clone(), cancel.clone()));
    let mut sigterm = signal(SignalKind::terminate()).map_err(io("install SIGTERM handler"))?;

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    tracing::info!(api = %api_at, admin = %admin_at, network = %state.network, "senderod ready");

    let outcome = tokio::select! {
        _ = sigterm.recv() => { tracing::info!("SIGTERM received"); Ok(()) }
        _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT received"); Ok(()) }
        r = &mut api => server_ended("API", r),
        r = &mut admin => server_ended("admin RPC", r),
        ended = tasks.ended() => {
            tracing::error!(task = ended.name, panic = ?ended.panic, "{ended}: stopping senderod");
            Err(DaemonError::TaskEnded(ended.to_string()))
        }
    };
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = (&mut api).await;
        let _ = (&mut admin).await;
    })
    .await;
    outcome
}

/// Binds the operator dashboard on `addr`, unlocked with the admin `cookie`.
async fn serve_dashboard(
    state: &AppState,
    tasks: &mut Tasks,
    cancel: &CancellationToken,
    addr: std::net::SocketAddr,
    cookie: String,
) -> Result<(), DaemonError> {
    let at = serve_side(tasks, "dashboard", addr, crate::admin::dashboard::router(state.clone()), cancel).await?;
    state.logins.enable(at, cookie);
    let cookie = state.config.datadir.join(crate::admin::COOKIE_FILE);
    tracing::info!(dashboard = %at, cookie = %cookie.display(), "operator dashboard at http://{at}/ (log in with the admin cookie)");
    Ok(())
}

/// Binds `addr` and serves `app` there as the supervised task `name` (the metrics and dashboard
/// listeners); the bound address.
async fn serve_side(
    tasks: &mut Tasks,
    name: &'static str,
    addr: std::net::SocketAddr,
    app: axum::Router,
    cancel: &CancellationToken,
) -> Result<std::net::SocketAddr, DaemonError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io(format!("bind {name} on {addr}")))?;
    let at = listener.local_addr().map_err(io(format!("{name} address")))?;
    let stop = cancel.clone();
    tasks.spawn(name, async move {
        if let Err(e) = crate::api::serve_app(listener, app, stop).await {
            tracing::error!(error = %e, "{name} listener failed");
        }
    });
    Ok(at)
}

fn server_ended(name: &str, r: Result<std::io::Result<()>, tokio::task::JoinError>) -> Result<(), DaemonError> {
    let source = match r {
        Ok(Ok(())) => std::io::Error::other("stopped unexpectedly"),
        Ok(Err(e)) => e,
        Err(e) => std::io::Error::other(e.to_string()),
    };
    Err(DaemonError::Io { what: format!("{name} server"), source })
}

/// The data dir's files that hold secrets: the mnemonic, the admin cookie, the operator's webhook
/// secret, the dev API key, and the store (webhook endpoints' secrets) with its WAL files.
pub const SECRET_FILES: &[&str] = &[
    "mnemonic",
    crate::admin::COOKIE_FILE,
    "operator-webhook.secret",
    "dev-api-key",
    "sendero.sqlite",
    "sendero.sqlite-wal",
    "sendero.sqlite-shm",
];

/// Refuses to start while a file holding a secret can be read or changed by others.
fn check_secret_files(datadir: &Path) -> Result<(), DaemonError> {
    for name in SECRET_FILES {
        let path = datadir.join(name);
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(DaemonError::LooseSecret { path: path.display().to_string(), mode });
        }
    }
    Ok(())
}

fn prepare_datadir(datadir: &Path) -> Result<(), DaemonError> {
    // Everything senderod creates (store, wallet, node state, secrets) is its owner's alone.
    // SAFETY: umask only changes the mode new files get; it cannot fail.
    unsafe { libc::umask(0o077) };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(datadir)
        .map_err(io(format!("create data dir {}", datadir.display())))?;
    let mode = std::fs::metadata(datadir).map_err(io(format!("data dir {}", datadir.display())))?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(datadir = %datadir.display(), mode = format!("{:o}", mode & 0o777), "data dir is readable by others; chmod 700 it");
    }
    Ok(())
}

/// Holds an exclusive `flock` on `<datadir>/senderod.lock` for the daemon's lifetime.
fn lock_datadir(datadir: &Path) -> Result<File, DaemonError> {
    let path = datadir.join("senderod.lock");
    let file = File::create(&path).map_err(io(format!("create {}", path.display())))?;
    // SAFETY: flock on a descriptor we own; the lock is released when `file` is closed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(DaemonError::Locked(datadir.to_path_buf()));
    }
    Ok(file)
}

fn check_network(store: &Store, datadir: &Path, network: Network) -> Result<(), DaemonError> {
    match store.meta("network")? {
        Some(found) if found != network.to_string() => {
            Err(DaemonError::NetworkMismatch { datadir: datadir.to_path_buf(), found, configured: network })
        }
        Some(_) => Ok(()),
        None => Ok(store.set_meta("network", &network.to_string())?),
    }
}

/// Where a new wallet starts scanning: a mnemonic made now has no history before today's tip.
async fn wallet_birthday(
    store: &Store,
    chain: &Arc<ChainSource>,
    created: bool,
    configured: u32,
) -> Result<u32, DaemonError> {
    if let Some(height) = store.meta("wallet_birthday")?.and_then(|h| h.parse().ok()) {
        return Ok(height);
    }
    let mut height = configured;
    if created {
        let chain = Arc::clone(chain);
        if let Ok(Ok(info)) = tokio::task::spawn_blocking(move || chain.info()).await {
            height = info.blocks;
        }
    }
    store.set_meta("wallet_birthday", &height.to_string())?;
    Ok(height)
}

/// Writes buffered quotes every 20 ms (and once more at shutdown), off the async threads.
async fn write_quotes(store: Arc<Store>, cancel: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = cancel.cancelled() => true,
            _ = tokio::time::sleep(Duration::from_millis(20)) => false,
        };
        if !store.has_deferred() && !stopping {
            continue;
        }
        let s = Arc::clone(&store);
        match tokio::task::spawn_blocking(move || s.flush_deferred()).await {
            Ok(Err(e)) => tracing::error!(error = %e, "writing quotes"),
            Err(e) => tracing::error!(error = %e, "quote writer task"),
            Ok(Ok(_)) => {}
        }
        if stopping {
            return;
        }
    }
}

/// Drops idempotency records past their retention, and in-flight ones older than `stale_before`
/// (a request that died with an earlier process committed nothing).
/// An in-flight idempotency key older than this belongs to a request no process still serves.
const STALE_IN_FLIGHT_SECS: u64 = 600;

fn prune_idempotency_now(state: &AppState, stale_before: u64) {
    let now = crate::unix_now();
    match state.store.idempotency_prune(now.saturating_sub(state.config.api.idempotency_retention_secs), stale_before) {
        Ok(0) => {}
        Ok(n) => tracing::info!(pruned = n, "idempotency keys pruned"),
        Err(e) => tracing::warn!(error = %e, "pruning idempotency keys"),
    }
}

/// [`prune_idempotency_now`] hourly (the start-up pass runs before the API serves).
async fn prune_idempotency(state: AppState, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(3_600)) => {}
        }
        prune_idempotency_now(&state, crate::unix_now().saturating_sub(3_600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_unit_is_notify_after_bitcoind_and_hardened() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd/senderod.service");
        let unit = std::fs::read_to_string(path).unwrap();
        let has = |line: &str| unit.lines().any(|l| l.trim() == line);
        assert!(has("Type=notify"));
        assert!(unit.lines().any(|l| l.starts_with("After=") && l.contains("bitcoind.service")));
        for line in
            ["ProtectSystem=strict", "NoNewPrivileges=true", "PrivateTmp=true", "ProtectHome=read-only", "UMask=0077"]
        {
            assert!(has(line), "missing {line}");
        }
        assert!(unit.lines().any(|l| l.starts_with("ExecStart=") && l.contains("senderod --config")));
    }

    #[test]
    fn a_second_daemon_cannot_take_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_datadir(dir.path()).unwrap();
        assert!(matches!(lock_datadir(dir.path()), Err(DaemonError::Locked(_))));
        drop(held);
        assert!(lock_datadir(dir.path()).is_ok());
    }

    #[test]
    fn a_data_dir_keeps_its_network() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        check_network(&store, dir.path(), Network::Regtest).unwrap();
        check_network(&store, dir.path(), Network::Regtest).unwrap();
        assert!(matches!(
            check_network(&store, dir.path(), Network::Bitcoin),
            Err(DaemonError::NetworkMismatch { .. })
        ));
    }
}
