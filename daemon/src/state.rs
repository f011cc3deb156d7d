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
}

impl AppState {
    /// Builds the objects from `parts`: one Lightning rail, one learner shared by the router and
    /// the saga, one waker each for the saga and the webhook sender.
    pub fn compose(parts: Parts) -> Result<AppState, GuardError> {
        let Parts { config, network, store, onchain, fx, status } = parts;
        let lightning = Arc::new(LnRail::new(config.lightning.enabled));
        let learner = SharedLearner::default();
        let webhooks = Arc::new(Webhooks {
            config: Arc::clone(&config),
            store: Arc::clone(&store),
            wake: Arc::new(Notify::new()),
        });
        let guard = Arc::new(Guard::open(
            &config.treasury,
            Arc::clone(&store),
            (Arc::clone(&onchain), Arc::clone(&lightning)),
            Arc::clone(&webhooks.wake),
        )?);
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
            fee_history: Default::default(),
            chain: status.clone(),
        });
        let keys = Arc::new(ApiKeys::new(Arc::clone(&store)));
        let limiter = Arc::new(RateLimiter::new(config.api.rate_limit_per_sec, config.api.rate_limit_burst));
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
        })))
    }
}
