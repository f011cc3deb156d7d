//! Configuration: a TOML file, then `SENDERO_*` environment variables, then command-line flags,
//! merged into one checked [`Config`]. Unknown keys are errors that name the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use sendero_wallet::bitcoin::Network;
use sendero_wallet::BitcoindAuth;
use serde::{Deserialize, Serialize};

/// Environment variables that start with `SENDERO_` but are not configuration keys.
const NON_CONFIG_ENV: &[&str] = &["SENDERO_CACHE"];

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, or a value of the wrong type.
    #[error("config {origin}: {message}")]
    Parse {
        /// The file or the environment.
        origin: String,
        /// TOML's own message (it names the key).
        message: String,
    },
    /// A value parses but cannot be used.
    #[error("config: {0}")]
    Invalid(String),
}

/// The whole configuration. Every field has a default; see `config.example.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `bitcoin`, `testnet`, `testnet4`, `signet` or `regtest`.
    pub network: String,
    /// Where Sendero keeps its store, wallet, mnemonic and admin socket.
    pub datadir: PathBuf,
    /// Public HTTP API.
    pub api: ApiConfig,
    /// Admin JSON-RPC.
    pub admin: AdminConfig,
    /// The bitcoind Sendero runs beside.
    pub bitcoind: BitcoindConfig,
    /// The on-chain treasury wallet.
    pub wallet: WalletConfig,
    /// The embedded Lightning node.
    pub lightning: LightningConfig,
    /// Exchange rates and quotes.
    pub fx: FxConfig,
    /// Payout route selection.
    pub routing: RoutingConfig,
    /// Signed webhooks to API clients.
    pub webhooks: WebhooksConfig,
    /// Logging.
    pub log: LogConfig,
    /// Dev mode (`senderod --dev`).
    pub dev: DevConfig,
}

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address the public HTTP API listens on.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// How long idempotency keys (and their stored responses) are kept.
    pub idempotency_retention_secs: u64,
    /// A request taking longer is answered 408.
    pub request_timeout_secs: u64,
}

/// `[admin]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Empty: a Unix socket `<datadir>/admin.sock` (mode 0600). An address such as
    /// `127.0.0.1:8381`: TCP on loopback, authenticated with the cookie in `<datadir>/admin.cookie`.
    pub listen: String,
}

/// `[bitcoind]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BitcoindConfig {
    /// RPC URL; empty means the network's default port on 127.0.0.1.
    pub rpc_url: String,
    /// Path of bitcoind's `.cookie`; empty means `~/.bitcoin/<network dir>/.cookie` unless
    /// `rpc_user` is set.
    pub rpc_cookie: String,
    /// `rpcuser` (with `rpc_password`) instead of the cookie.
    pub rpc_user: String,
    /// `rpcpassword`.
    pub rpc_password: String,
    /// How often to look for new blocks and mempool transactions, in milliseconds.
    pub poll_interval_ms: u64,
}

/// `[wallet]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalletConfig {
    /// Height to start scanning from when the wallet is new. A mnemonic Sendero creates itself
    /// starts at the chain tip of its first start instead.
    pub birthday_height: u32,
    /// Confirmation target (blocks) for sends that name no feerate.
    pub default_target_blocks: u16,
    /// Feerate (sat/vB) used when bitcoind has no estimate, as on regtest or a fresh node.
    pub fallback_feerate_sat_vb: u64,
    /// Sends asking for more than this many sat/vB are refused as absurd.
    pub max_feerate_sat_vb: u64,
}

/// `[lightning]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LightningConfig {
    /// Run the embedded Lightning node.
    pub enabled: bool,
    /// P2P address the node listens on.
    pub listen: String,
    /// Public alias (up to 32 bytes); needed to open announced channels.
    pub alias: String,
    /// Extra sats sent to the node's wallet, above channel amount and anchor reserve, when
    /// `ln.open_channel` funds it from the treasury (pays the funding transaction's fee).
    pub funding_fee_headroom_sat: u64,
}

impl Default for LightningConfig {
    fn default() -> Self {
        LightningConfig {
            enabled: true,
            listen: "127.0.0.1:9735".into(),
            alias: String::new(),
            funding_fee_headroom_sat: 10_000,
        }
    }
}

/// `[routing]`: how payouts pick a rail, and how they are carried out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// How long a route (and the costs it shows) may be submitted, seconds.
    pub route_ttl_secs: u64,
    /// Confirmation target of an on-chain payout with priority `high`, blocks.
    pub high_target_blocks: u16,
    /// … with priority `normal`.
    pub normal_target_blocks: u16,
    /// … with priority `low`.
    pub low_target_blocks: u16,
    /// Longest ETA a rail may have to be recommended for priority `high`, seconds.
    pub high_max_eta_secs: u64,
    /// … for priority `normal`.
    pub normal_max_eta_secs: u64,
    /// … for priority `low`.
    pub low_max_eta_secs: u64,
    /// Confirmations after which an on-chain payout is settled.
    pub onchain_confirmations: u32,
    /// How often the payment saga looks at open payments when nothing wakes it (a submit, a
    /// Lightning payment event, a retry falling due), milliseconds.
    pub saga_interval_ms: u64,
    /// How long a Lightning payout waits for usable outbound liquidity (channels reconnecting
    /// after a restart, a peer briefly offline) before it fails, seconds.
    pub lightning_wait_secs: u64,
    /// What a failed attempt costs, sats, when rails are compared (a retry, a late payout).
    pub failure_penalty_sat: u64,
    /// Failures in a row after which a rail is not recommended for a while.
    pub breaker_failures: u32,
    /// How long, seconds.
    pub breaker_cooldown_secs: u64,
    /// Exploration weight of rails with few recent outcomes (UCB), thousandths.
    pub explore_permille: u32,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            route_ttl_secs: 120,
            high_target_blocks: 2,
            normal_target_blocks: 6,
            low_target_blocks: 24,
            high_max_eta_secs: 1_800,
            normal_max_eta_secs: 7_200,
            low_max_eta_secs: 86_400,
            onchain_confirmations: 1,
            saga_interval_ms: 500,
            lightning_wait_secs: 60,
            failure_penalty_sat: 500,
            breaker_failures: 3,
            breaker_cooldown_secs: 300,
            explore_permille: 50,
        }
    }
}

impl RoutingConfig {
    /// The learner's tuning.
    pub fn tuning(&self) -> crate::route::learn::Tuning {
        crate::route::learn::Tuning {
            failure_penalty_sat: self.failure_penalty_sat,
            breaker_failures: self.breaker_failures,
            breaker_cooldown_secs: self.breaker_cooldown_secs,
            explore_permille: self.explore_permille,
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.breaker_failures == 0 || self.explore_permille > 10_000 {
            return Err(ConfigError::Invalid(
                "routing.breaker_failures must be at least 1 and routing.explore_permille at most 10000".into(),
            ));
        }
        let targets = [self.high_target_blocks, self.normal_target_blocks, self.low_target_blocks];
        if targets.iter().any(|&t| t == 0 || t > 1008) {
            return Err(ConfigError::Invalid("routing.*_target_blocks must be between 1 and 1008".into()));
        }
        if self.route_ttl_secs == 0 {
            return Err(ConfigError::Invalid("routing.route_ttl_secs must be at least 1".into()));
        }
        if self.onchain_confirmations == 0 || self.onchain_confirmations > 100 {
            return Err(ConfigError::Invalid("routing.onchain_confirmations must be between 1 and 100".into()));
        }
        if !(50..=60_000).contains(&self.saga_interval_ms) {
            return Err(ConfigError::Invalid("routing.saga_interval_ms must be between 50 and 60000".into()));
        }
        Ok(())
    }
}

/// `[fx]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FxConfig {
    /// Pairs quoted, `BASE/QUOTE` with bitcoin on one side (either direction is quoted).
    pub pairs: Vec<String>,
    /// Where rates come from: `static`, `kraken`, `bitstamp`, `coinbase`.
    pub sources: Vec<String>,
    /// Base URLs of the exchanges' public APIs (tests point them at a local server).
    pub source_urls: BTreeMap<String, String>,
    /// With three or more fresh sources, those further than this from the median are dropped.
    pub max_deviation_bps: u32,
    /// A source slower than this is ignored for that round.
    pub source_timeout_ms: u64,
    /// How often sources are polled.
    pub refresh_secs: u64,
    /// Fixed mid-rates (QUOTE per BASE, decimal text) per pair, for tests and dev mode, where
    /// regtest coins have no market. Dev mode fills BTC/EUR and BTC/USD when empty.
    pub static_rates: BTreeMap<String, String>,
    /// A rate older than this is not used.
    pub rate_ttl_secs: u64,
    /// How long a quote stands.
    pub quote_ttl_secs: u64,
    /// Markup moved against the client, in basis points (pairs not in `markups`).
    pub markup_bps: u32,
    /// Markup per pair and side, e.g. `"BTC/EUR" = { buy = 40, sell = 60 }`.
    pub markups: BTreeMap<String, SideMarkup>,
    /// Rate TTL per volatility class, e.g. `g10 = 120, em = 20`.
    pub ttl_classes: BTreeMap<String, u64>,
    /// Each pair's volatility class (pairs not listed use `rate_ttl_secs`).
    pub pair_classes: BTreeMap<String, String>,
    /// At execution, the locked rate applies while the market is within this many bps of it;
    /// beyond, the client must accept a new quote.
    pub allowed_drift_bps: u32,
    /// Per-transaction conversion-cost budget: a fill whose rate is further than this from the mid
    /// at execution (against the client) is refused.
    pub max_conversion_cost_bps: u32,
    /// How long past its TTL a rate may still be used to finish an execution already started.
    pub grace_secs: u64,
}

impl Default for FxConfig {
    fn default() -> Self {
        FxConfig {
            pairs: vec!["BTC/EUR".into(), "BTC/USD".into()],
            sources: vec!["static".into()],
            source_urls: [
                ("kraken", "https://api.kraken.com"),
                ("bitstamp", "https://www.bitstamp.net"),
                ("coinbase", "https://api.exchange.coinbase.com"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            max_deviation_bps: 100,
            source_timeout_ms: 3_000,
            refresh_secs: 10,
            static_rates: BTreeMap::new(),
            rate_ttl_secs: 120,
            quote_ttl_secs: 30,
            markup_bps: 50,
            markups: BTreeMap::new(),
            ttl_classes: [("g10", 120), ("em", 20)].into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            pair_classes: BTreeMap::new(),
            allowed_drift_bps: 20,
            max_conversion_cost_bps: 200,
            grace_secs: 30,
        }
    }
}

/// Markup for each side of a pair, in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideMarkup {
    /// The client buys BASE.
    pub buy: u32,
    /// The client sells BASE.
    pub sell: u32,
}

impl FxConfig {
    /// The markup for `pair` (as configured, `BASE/QUOTE`) and the client's side.
    pub fn markup_for(&self, pair: &str, side: crate::fx::money::Side) -> u32 {
        match (self.markups.get(pair), side) {
            (Some(m), crate::fx::money::Side::Buy) => m.buy,
            (Some(m), crate::fx::money::Side::Sell) => m.sell,
            (None, _) => self.markup_bps,
        }
    }

    /// The rate TTL of `pair`, from its volatility class.
    pub fn ttl_for(&self, pair: &str) -> u64 {
        self.pair_classes.get(pair).and_then(|c| self.ttl_classes.get(c)).copied().unwrap_or(self.rate_ttl_secs)
    }

    /// The static table, parsed and checked against `pairs`.
    pub fn static_table(&self) -> Result<Vec<(String, rust_decimal::Decimal)>, ConfigError> {
        self.static_rates
            .iter()
            .map(|(pair, text)| {
                if !self.pairs.contains(pair) {
                    return Err(ConfigError::Invalid(format!("fx.static_rates has {pair}, which is not in fx.pairs")));
                }
                match rust_decimal::Decimal::from_str(text.trim()) {
                    Ok(rate) if rate > rust_decimal::Decimal::ZERO => Ok((pair.clone(), rate)),
                    _ => Err(ConfigError::Invalid(format!(
                        "fx.static_rates.{pair} = {text:?} is not a positive decimal"
                    ))),
                }
            })
            .collect()
    }

    /// The sources to poll, checked.
    pub fn source_set(&self) -> Result<crate::fx::sources::SourceSet, ConfigError> {
        use crate::fx::sources::{Exchange, SourceSet};
        let mut exchanges = Vec::new();
        for name in &self.sources {
            if name == "static" {
                continue;
            }
            let exchange = Exchange::parse(name).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "fx.sources: unknown source {name:?}; use static, kraken, bitstamp, coinbase"
                ))
            })?;
            let url = self
                .source_urls
                .get(name)
                .ok_or_else(|| ConfigError::Invalid(format!("fx.source_urls has no {name}")))?;
            exchanges.push((exchange, url.clone()));
        }
        let statics = if self.sources.iter().any(|s| s == "static") { self.static_table()? } else { Vec::new() };
        Ok(SourceSet {
            exchanges,
            statics,
            pairs: self.pairs.clone(),
            max_deviation_bps: self.max_deviation_bps,
            timeout: std::time::Duration::from_millis(self.source_timeout_ms.max(1)),
            every: std::time::Duration::from_secs(self.refresh_secs.max(1)),
        })
    }

    fn check(&self) -> Result<(), ConfigError> {
        for pair in &self.pairs {
            let known = pair.split_once('/').is_some_and(|(b, q)| {
                crate::fx::money::exponent(b).is_some()
                    && crate::fx::money::exponent(q).is_some()
                    && b != q
                    && (b == "BTC" || q == "BTC")
            });
            if !known {
                return Err(ConfigError::Invalid(format!(
                    "fx.pairs: {pair:?} is not BASE/QUOTE of known currencies with BTC on one side"
                )));
            }
        }
        self.source_set()?;
        for (pair, class) in &self.pair_classes {
            if !self.pairs.contains(pair) || !self.ttl_classes.contains_key(class) {
                return Err(ConfigError::Invalid(format!(
                    "fx.pair_classes: {pair} = {class:?} needs a pair in fx.pairs and a class in fx.ttl_classes"
                )));
            }
        }
        if let Some((pair, m)) =
            self.markups.iter().find(|(p, m)| !self.pairs.contains(p) || m.buy >= 10_000 || m.sell >= 10_000)
        {
            return Err(ConfigError::Invalid(format!(
                "fx.markups: {pair} = {m:?} needs a pair in fx.pairs and bps below 10000"
            )));
        }
        if self.ttl_classes.values().any(|t| *t == 0) {
            return Err(ConfigError::Invalid("fx.ttl_classes: a TTL must be at least 1 s".into()));
        }
        if self.quote_ttl_secs == 0 || self.rate_ttl_secs == 0 || self.refresh_secs == 0 || self.markup_bps >= 10_000 {
            return Err(ConfigError::Invalid("fx: TTLs must be at least 1 s and markup_bps below 10000".into()));
        }
        self.static_table().map(|_| ())
    }
}

/// `[webhooks]`: delivery of payment events to the endpoints API keys register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Attempts per delivery before it is given up (it can still be redelivered by hand).
    pub max_attempts: u32,
    /// Wait before the first retry, seconds; doubled at each further one.
    pub backoff_base_secs: u64,
    /// Longest wait between two attempts, seconds.
    pub backoff_max_secs: u64,
    /// How long an endpoint has to answer, seconds.
    pub timeout_secs: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            max_attempts: 12,
            backoff_base_secs: 10,
            backoff_max_secs: 3_600,
            timeout_secs: 10,
            concurrency: 16,
        }
    }
}

impl WebhooksConfig {
    fn check(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 || self.backoff_base_secs == 0 || self.backoff_max_secs < self.backoff_base_secs {
            return Err(ConfigError::Invalid(
                "webhooks: max_attempts and backoff_base_secs must be at least 1, backoff_max_secs at least backoff_base_secs"
                    .into(),
            ));
        }
        if self.timeout_secs == 0 || self.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.timeout_secs and webhooks.concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `human` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `sendero=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

/// `[dev]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// bitcoind binary for dev mode; empty: `BITCOIND_EXE`, then the cached build, then build it.
    pub bitcoind_exe: String,
    /// Blocks mined to the wallet when dev mode starts a new chain.
    pub mine_blocks: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network: "bitcoin".into(),
            datadir: default_home().join(".sendero"),
            api: ApiConfig::default(),
            admin: AdminConfig::default(),
            bitcoind: BitcoindConfig::default(),
            wallet: WalletConfig::default(),
            lightning: LightningConfig::default(),
            routing: RoutingConfig::default(),
            fx: FxConfig::default(),
            webhooks: WebhooksConfig::default(),
            log: LogConfig::default(),
            dev: DevConfig::default(),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:8380".into(),
            body_limit_bytes: 64 * 1024,
            request_timeout_secs: 30,
            idempotency_retention_secs: 86_400,
        }
    }
}

impl Default for BitcoindConfig {
    fn default() -> Self {
        BitcoindConfig {
            rpc_url: String::new(),
            rpc_cookie: String::new(),
            rpc_user: String::new(),
            rpc_password: String::new(),
            poll_interval_ms: 1_000,
        }
    }
}

impl Default for WalletConfig {
    fn default() -> Self {
        WalletConfig {
            birthday_height: 0,
            default_target_blocks: 6,
            fallback_feerate_sat_vb: 2,
            max_feerate_sat_vb: 1_000,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: "human".into(), level: "info".into() }
    }
}

impl Default for DevConfig {
    fn default() -> Self {
        DevConfig { bitcoind_exe: String::new(), mine_blocks: 101 }
    }
}

/// Values given on the command line; `None` leaves the file / environment value.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--datadir`.
    pub datadir: Option<PathBuf>,
    /// `--network`.
    pub network: Option<String>,
    /// `--api-listen`.
    pub api_listen: Option<String>,
    /// `--dev`.
    pub dev: bool,
}

impl Config {
    /// Reads `file` (if given), applies `env` (the `SENDERO_*` variables), then `flags`, and checks
    /// the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut tree = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
                parse_tree(&text, &path.display().to_string())?
            }
            None => toml::Table::new(),
        };
        apply_env(&mut tree, env)?;
        let mut config: Config = toml::Value::Table(tree).try_into().map_err(|e: toml::de::Error| {
            ConfigError::Parse { origin: "settings".into(), message: e.message().to_owned() }
        })?;
        config.apply_flags(flags);
        config.check()?;
        Ok(config)
    }

    fn apply_flags(&mut self, flags: &Overrides) {
        if flags.dev {
            self.network = "regtest".into();
            if !self.fx.sources.iter().any(|s| s == "static") {
                self.fx.sources.push("static".into());
            }
            if self.fx.static_rates.is_empty() {
                // Regtest coins have no market: dev mode quotes from a fixed table, offline.
                self.fx.static_rates = [("BTC/EUR", "85000"), ("BTC/USD", "98000")]
                    .into_iter()
                    .filter(|(p, _)| self.fx.pairs.iter().any(|c| c == p))
                    .map(|(p, r)| (p.to_owned(), r.to_owned()))
                    .collect();
            }
            if flags.datadir.is_none() && self.datadir == Config::default().datadir {
                self.datadir = default_home().join(".sendero-dev");
            }
        }
        if let Some(d) = &flags.datadir {
            self.datadir = d.clone();
        }
        if let Some(n) = &flags.network {
            self.network = n.clone();
        }
        if let Some(l) = &flags.api_listen {
            self.api.listen = l.clone();
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        self.bitcoin_network()?;
        self.api_listen()?;
        self.admin_listen()?;
        if !matches!(self.log.format.as_str(), "human" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log.format must be \"human\" or \"json\", not {:?}",
                self.log.format
            )));
        }
        let w = &self.wallet;
        if w.fallback_feerate_sat_vb == 0 || w.fallback_feerate_sat_vb > w.max_feerate_sat_vb {
            return Err(ConfigError::Invalid(
                "wallet.fallback_feerate_sat_vb must be between 1 and wallet.max_feerate_sat_vb".into(),
            ));
        }
        if w.default_target_blocks == 0 || w.default_target_blocks > 1008 {
            return Err(ConfigError::Invalid("wallet.default_target_blocks must be between 1 and 1008".into()));
        }
        self.fx.check()?;
        self.routing.check()?;
        self.webhooks.check()?;
        if self.lightning.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::Invalid(format!("lightning.listen {:?} is not host:port", self.lightning.listen)));
        }
        if self.lightning.alias.len() > 32 {
            return Err(ConfigError::Invalid("lightning.alias is longer than 32 bytes".into()));
        }
        if self.bitcoind.rpc_user.is_empty() != self.bitcoind.rpc_password.is_empty() {
            return Err(ConfigError::Invalid("bitcoind.rpc_user and bitcoind.rpc_password go together".into()));
        }
        Ok(())
    }

    /// The checked network.
    pub fn bitcoin_network(&self) -> Result<Network, ConfigError> {
        match self.network.as_str() {
            "mainnet" => Ok(Network::Bitcoin),
            name => Network::from_str(name).map_err(|_| {
                ConfigError::Invalid(format!("network {name:?}: use bitcoin, testnet, testnet4, signet or regtest"))
            }),
        }
    }

    /// The public API's listening address.
    pub fn api_listen(&self) -> Result<SocketAddr, ConfigError> {
        self.api
            .listen
            .parse()
            .map_err(|_| ConfigError::Invalid(format!("api.listen {:?} is not an address", self.api.listen)))
    }

    /// The admin RPC's TCP address, or `None` for the Unix socket.
    pub fn admin_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.admin.listen.is_empty() {
            return Ok(None);
        }
        let addr: SocketAddr = self
            .admin
            .listen
            .parse()
            .map_err(|_| ConfigError::Invalid(format!("admin.listen {:?} is not an address", self.admin.listen)))?;
        if !addr.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!("admin.listen {addr} must be a loopback address")));
        }
        Ok(Some(addr))
    }
}

impl Config {
    /// bitcoind's RPC URL and credentials, with the network's defaults filled in.
    pub fn bitcoind_rpc(&self) -> Result<(String, BitcoindAuth), ConfigError> {
        let network = self.bitcoin_network()?;
        let (port, subdir) = match network {
            Network::Bitcoin => (8332, ""),
            Network::Testnet => (18332, "testnet3"),
            Network::Testnet4 => (48332, "testnet4"),
            Network::Signet => (38332, "signet"),
            Network::Regtest => (18443, "regtest"),
        };
        let b = &self.bitcoind;
        let url = if b.rpc_url.is_empty() { format!("http://127.0.0.1:{port}") } else { b.rpc_url.clone() };
        let auth = if !b.rpc_user.is_empty() {
            BitcoindAuth::UserPass(b.rpc_user.clone(), b.rpc_password.clone())
        } else if !b.rpc_cookie.is_empty() {
            BitcoindAuth::Cookie(PathBuf::from(&b.rpc_cookie))
        } else {
            BitcoindAuth::Cookie(default_home().join(".bitcoin").join(subdir).join(".cookie"))
        };
        Ok((url, auth))
    }
}

/// `$HOME`, or `/` when unset.
fn default_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/"))
}

fn parse_tree(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    let tree: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse { origin: origin.to_owned(), message: e.to_string() })?;
    // Type-check the file on its own so that an unknown key is reported against the file.
    toml::Value::Table(tree.clone())
        .try_into::<Config>()
        .map_err(|e| ConfigError::Parse { origin: origin.to_owned(), message: e.message().to_owned() })?;
    Ok(tree)
}

/// Every configuration key as `(section, key)` (section empty for top-level keys), with its
/// environment variable name: `SENDERO_<SECTION>_<KEY>` in upper case.
pub fn env_keys() -> BTreeMap<String, (String, String)> {
    let mut keys = BTreeMap::new();
    let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(Config::default()) else {
        return keys;
    };
    for (name, value) in defaults {
        match value {
            toml::Value::Table(section) => {
                for key in section.keys() {
                    keys.insert(format!("SENDERO_{}_{}", name, key).to_uppercase(), (name.clone(), key.clone()));
                }
            }
            _ => {
                keys.insert(format!("SENDERO_{name}").to_uppercase(), (String::new(), name));
            }
        }
    }
    keys
}

fn apply_env(tree: &mut toml::Table, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
    let keys = env_keys();
    let defaults = toml::Value::try_from(Config::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    for (var, raw) in env {
        if !var.starts_with("SENDERO_") || NON_CONFIG_ENV.contains(&var.as_str()) {
            continue;
        }
        let Some((section, key)) = keys.get(&var) else {
            return Err(ConfigError::Parse {
                origin: "environment".into(),
                message: format!("unknown variable {var}"),
            });
        };
        let default =
            if section.is_empty() { defaults.get(key) } else { defaults.get(section).and_then(|s| s.get(key)) };
        let value = match default {
            Some(toml::Value::Integer(_)) => {
                raw.trim().parse::<i64>().map(toml::Value::Integer).map_err(|_| ConfigError::Parse {
                    origin: "environment".into(),
                    message: format!("{var} must be an integer, not {raw:?}"),
                })?
            }
            Some(toml::Value::Array(_)) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(|v| toml::Value::String(v.to_owned()))
                    .collect(),
            ),
            Some(toml::Value::Boolean(_)) => {
                raw.trim().parse::<bool>().map(toml::Value::Boolean).map_err(|_| ConfigError::Parse {
                    origin: "environment".into(),
                    message: format!("{var} must be true or false, not {raw:?}"),
                })?
            }
            _ => toml::Value::String(raw),
        };
        let table = if section.is_empty() {
            &mut *tree
        } else {
            match tree.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
                toml::Value::Table(t) => t,
                _ => return Err(ConfigError::Invalid(format!("[{section}] must be a table"))),
            }
        };
        table.insert(key.clone(), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, env: &[(&str, &str)], flags: &Overrides) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(Some(&path), env, flags)
    }

    #[test]
    fn example_config_parses_and_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = Config::load(Some(&path), [], &Overrides::default()).unwrap();
        assert_eq!(config.network, "bitcoin");
        for (section, key) in env_keys().values() {
            let line = format!("{key} =");
            assert!(text.contains(&line), "config.example.toml does not document {section}.{key}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load("[api]\nlisten = \"127.0.0.1:1\"\nlisten_port = 3\n", &[], &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
        let err = load("", &[("SENDERO_API_LISTN", "x")], &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("SENDERO_API_LISTN"), "{err}");
    }

    #[test]
    fn file_then_environment_then_flags() {
        let text = "network = \"signet\"\n[api]\nlisten = \"127.0.0.1:1000\"\n[wallet]\nmax_feerate_sat_vb = 500\n";
        let c = load(
            text,
            &[("SENDERO_API_LISTEN", "127.0.0.1:2000"), ("SENDERO_WALLET_MAX_FEERATE_SAT_VB", "700")],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            (c.network.as_str(), c.api.listen.as_str(), c.wallet.max_feerate_sat_vb),
            ("signet", "127.0.0.1:2000", 700)
        );
        let flags = Overrides {
            api_listen: Some("127.0.0.1:3000".into()),
            network: Some("regtest".into()),
            ..Default::default()
        };
        let c = load(text, &[("SENDERO_API_LISTEN", "127.0.0.1:2000")], &flags).unwrap();
        assert_eq!((c.network.as_str(), c.api.listen.as_str()), ("regtest", "127.0.0.1:3000"));
    }

    #[test]
    fn bad_values_are_refused() {
        let none = Overrides::default();
        assert!(load("network = \"moon\"", &[], &none).is_err());
        assert!(load("[admin]\nlisten = \"0.0.0.0:9\"", &[], &none).unwrap_err().to_string().contains("loopback"));
        assert!(load("[wallet]\nmax_feerate_sat_vb = \"x\"", &[], &none).is_err());
        assert!(load("", &[("SENDERO_WALLET_MAX_FEERATE_SAT_VB", "lots")], &none)
            .unwrap_err()
            .to_string()
            .contains("integer"));
    }

    #[test]
    fn fx_markup_and_ttl_follow_pair_side_and_class() {
        use crate::fx::money::Side;
        let text = "[fx]\npairs = [\"BTC/EUR\", \"BTC/ARS\"]\nmarkup_bps = 50\n\
                    markups = { \"BTC/EUR\" = { buy = 40, sell = 60 } }\n\
                    pair_classes = { \"BTC/ARS\" = \"em\" }\n";
        let c = load(text, &[], &Overrides::default()).unwrap();
        assert_eq!((c.fx.markup_for("BTC/EUR", Side::Buy), c.fx.markup_for("BTC/EUR", Side::Sell)), (40, 60));
        assert_eq!(c.fx.markup_for("BTC/ARS", Side::Buy), 50);
        assert_eq!((c.fx.ttl_for("BTC/ARS"), c.fx.ttl_for("BTC/EUR")), (20, 120));
        assert!(load("[fx]\npair_classes = { \"BTC/EUR\" = \"nope\" }\n", &[], &Overrides::default()).is_err());
    }

    #[test]
    fn dev_mode_is_regtest_with_its_own_datadir() {
        let c = load("", &[], &Overrides { dev: true, ..Default::default() }).unwrap();
        assert_eq!(c.bitcoin_network().unwrap(), Network::Regtest);
        assert!(c.datadir.ends_with(".sendero-dev"));
    }
}
