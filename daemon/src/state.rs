//! The composition root's product: the objects every API and admin handler reaches, built once
//! from the config, the store, the rails and the FX cache. Only `api/`, `admin/` and `daemon.rs`
//! see it; a domain function takes the objects it uses.

use std::sync::Arc;

use sendero_wallet::bitcoin::Network;
use tokio::sync::{watch, Notify};

use crate::apikey::ApiKeys;
use crate::config::Config;
use crate::follower::ChainStatus;
use crate::fx::RateCache;
use crate::liquidity::guard::{Guard, GuardError};
use crate::login::Logins;
use crate::nodelink::NodeLink;
use crate::payment::commit::Committer;
use crate::payment::Payments;
use crate::rails::lightning::LnRail;
use crate::rails::onchain::Onchain;
use crate::ratelimit::RateLimiter;
use crate::route::learn::SharedLearner;
use crate::route::Router;
use crate::store::Store;
use crate::webhook::Webhooks;

/// What every handler shares; one pointer, so cloning it per request costs one atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What the objects are built from.
pub struct Parts {
    /// The checked configuration.
    pub config: Arc<Config>,
    /// The chain this gateway runs on.
    pub network: Network,
    /// Sendero's own store.
    pub store: Arc<Store>,
    /// The on-chain rail.
    pub onchain: Arc<Onchain>,
    /// Hot FX rates.
    pub fx: Arc<RateCache>,
    /// Latest bitcoind / wallet-sync status.
    pub status: watch::Receiver<ChainStatus>,
    /// Whether this process is a front end of a PostgreSQL store (`--role api`): no keys, no
    /// Lightning node; the node of the store does what only it can.
    pub front_end: bool,
}

/// The parts of [`AppState`].
pub struct Shared {
    /// The checked configuration.
    pub config: Arc<Config>,
    /// The chain this gateway runs on.
    pub network: Network,
    /// Sendero's own store.
    pub store: Arc<Store>,
    /// The API keys.
    pub keys: Arc<ApiKeys>,
    /// Each key's request budget.
    pub limiter: Arc<RateLimiter>,
    /// The on-chain rail: the treasury wallet and bitcoind behind one spend lock.
    pub onchain: Arc<Onchain>,
    /// The Lightning rail: the node, once it runs.
    pub lightning: Arc<LnRail>,
    /// Prices payouts on every rail and records routes.
    pub router: Arc<Router>,
    /// Submits payouts and carries them to their rails.
    pub payments: Arc<Payments>,
    /// Hot FX rates.
    pub fx: Arc<RateCache>,
    /// Signs and delivers webhooks.
    pub webhooks: Arc<Webhooks>,
    /// The treasury policy in force and the rails' reserves.
    pub guard: Arc<Guard>,
    /// Latest bitcoind / wallet-sync status.
    pub status: watch::Receiver<ChainStatus>,
    /// The operator dashboard's address, tickets and sessions.
    pub logins: Arc<Logins>,
    /// A front end's link to the node (`--role api`); `None` in the node or a single process.
    pub node_link: Option<Arc<NodeLink>>,
}

impl AppState {
    /// Builds the objects from `parts`: one Lightning rail, one learner shared by the router and
    /// the saga, one waker each for the saga and the webhook sender.
    pub fn compose(parts: Parts) -> Result<AppState, GuardError> {
        let Parts { config, network, store, onchain, fx, status, front_end } = parts;
        let lightning = Arc::new(LnRail::new(config.lightning.enabled));
        let learner = SharedLearner::default();
        let (webhooks, guard) = webhooks_and_guard(&config, &store, (&onchain, &lightning), front_end)?;
        let router = Arc::new(Router {
            config: Arc::clone(&config),
            network,
            store: Arc::clone(&store),
            onchain: Arc::clone(&onchain),
            lightning: Arc::clone(&lightning),
            fx: Arc::clone(&fx),
            learner: learner.clone(),
            guard: Arc::clone(&guard),
            chain: status.clone(),
        });
        let payments = Arc::new(Payments {
            config: Arc::clone(&config),
            network,
            store: Arc::clone(&store),
            onchain: Arc::clone(&onchain),
            lightning: Arc::clone(&lightning),
            committer: Arc::new(Committer::new(Arc::clone(&store))),
            learner,
            wake: Arc::new(Notify::new()),
            webhooks_wake: Arc::clone(&webhooks.wake),
            batch_wake: Arc::new(Notify::new()),
            guard: Arc::clone(&guard),
            fee_history: std::sync::Mutex::new(crate::payment::batch_policy::stored_history(&store, &config)),
            waiting_out: std::sync::Mutex::default(),
            fall_ahead: Default::default(),
            chain: status.clone(),
            unoffered: Default::default(),
        });
        let keys = Arc::new(ApiKeys::new(Arc::clone(&store)));
        let limiter = Arc::new(RateLimiter::new(config.api.rate_limit_per_sec, config.api.rate_limit_burst));
        let node_link = front_end.then(|| link_to_node(&config, &store)).transpose()?;
        Ok(AppState(Arc::new(Shared {
            config,
            network,
            store,
            keys,
            limiter,
            onchain,
            lightning,
            router,
            payments,
            fx,
            webhooks,
            guard,
            status,
            logins: Arc::default(),
            node_link,
        })))
    }
}

/// The webhook sender's shared part, and the treasury guard (which wakes it).
fn webhooks_and_guard(
    config: &Arc<Config>,
    store: &Arc<Store>,
    (onchain, lightning): (&Arc<Onchain>, &Arc<LnRail>),
    front_end: bool,
) -> Result<(Arc<Webhooks>, Arc<Guard>), GuardError> {
    let webhooks =
        Arc::new(Webhooks { config: Arc::clone(config), store: Arc::clone(store), wake: Arc::new(Notify::new()) });
    let rails = (Arc::clone(onchain), Arc::clone(lightning));
    let guard = Guard::open(&config.treasury, Arc::clone(store), rails, Arc::clone(&webhooks.wake), front_end)?;
    Ok((webhooks, Arc::new(guard)))
}

/// A front end's link to the node of its store.
fn link_to_node(config: &Config, store: &Arc<Store>) -> Result<Arc<NodeLink>, GuardError> {
    // The node's answer may take its whole request timeout, and a little more to arrive.
    let wait = std::time::Duration::from_secs(config.api.request_timeout_secs.saturating_add(5));
    let link = NodeLink::new(Arc::clone(store), wait)
        .map_err(|e| GuardError::Invalid(format!("the front end's link to the node: {e}")))?;
    Ok(Arc::new(link))
}
