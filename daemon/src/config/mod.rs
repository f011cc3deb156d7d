//! Configuration: a TOML file, then `SENDERO_*` environment variables, then command-line flags,
//! merged into one checked [`Config`]. Unknown keys are errors that name the key.

mod api;
mod batching;
mod chain;
mod env;
mod events;
mod fx;
mod invoices;
mod lightning;
mod log;
mod routing;
mod store;
mod treasury;
mod webhooks;

pub use api::{AdminConfig, ApiConfig, DashboardConfig, MetricsConfig};
pub use batching::BatchingConfig;
pub use chain::{BitcoindConfig, WalletConfig};
pub use env::env_keys;
use env::{apply_env, default_home, parse_tree};
pub use events::EventsConfig;
pub use fx::{FxConfig, SideMarkup};
pub use invoices::InvoicesConfig;
pub use lightning::LightningConfig;
pub use log::{DevConfig, LogConfig, TelemetryConfig};
pub use routing::RoutingConfig;
pub use store::{redact as redact_store_url, StoreConfig};
pub use treasury::TreasuryConfig;
pub use webhooks::{IpNet, WebhooksConfig};

use sendero_wallet::bitcoin::Network;
use sendero_wallet::BitcoindAuth;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

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
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// The operator dashboard.
    pub dashboard: DashboardConfig,
    /// Span export to an OpenTelemetry collector.
    pub telemetry: TelemetryConfig,
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
    /// On-chain batching, fee policy and consolidation.
    pub batching: BatchingConfig,
    /// Reserves per rail and channel rebalancing by splicing.
    pub treasury: TreasuryConfig,
    /// Signed webhooks to API clients.
    pub webhooks: WebhooksConfig,
    /// The outbox's events published to NATS JetStream.
    pub events: EventsConfig,
    /// Where the books are: SQLite in the data dir, or PostgreSQL.
    pub store: StoreConfig,
    /// What invoices accept.
    pub invoices: InvoicesConfig,
    /// Logging.
    pub log: LogConfig,
    /// Dev mode (`senderod --dev`).
    pub dev: DevConfig,
}

impl Config {
    /// The policy the audit log follows: markups, FX limits, fee limits and routing bounds.
    pub fn audited_policy(&self) -> serde_json::Value {
        let (fx, r, w) = (&self.fx, &self.routing, &self.wallet);
        serde_json::json!({
            "fx": {
                "markup_bps": fx.markup_bps,
                "markups": fx.markups,
                "allowed_drift_bps": fx.allowed_drift_bps,
                "max_conversion_cost_bps": fx.max_conversion_cost_bps,
                "quote_ttl_secs": fx.quote_ttl_secs,
                "max_deviation_bps": fx.max_deviation_bps,
            },
            "wallet": { "max_feerate_sat_vb": w.max_feerate_sat_vb, "fallback_feerate_sat_vb": w.fallback_feerate_sat_vb },
            "routing": {
                "max_eta_secs": [r.high_max_eta_secs, r.normal_max_eta_secs, r.low_max_eta_secs],
                "target_blocks": [r.high_target_blocks, r.normal_target_blocks, r.low_target_blocks],
                "failure_penalty_sat": r.failure_penalty_sat,
                "lightning_wait_secs": r.lightning_wait_secs,
                "onchain_confirmations": r.onchain_confirmations,
            },
        })
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network: "bitcoin".into(),
            datadir: default_home().join(".sendero"),
            api: ApiConfig::default(),
            admin: AdminConfig::default(),
            metrics: MetricsConfig::default(),
            dashboard: DashboardConfig::default(),
            telemetry: TelemetryConfig::default(),
            events: EventsConfig::default(),
            store: StoreConfig::default(),
            bitcoind: BitcoindConfig::default(),
            wallet: WalletConfig::default(),
            lightning: LightningConfig::default(),
            routing: RoutingConfig::default(),
            batching: BatchingConfig::default(),
            treasury: TreasuryConfig::default(),
            fx: FxConfig::default(),
            webhooks: WebhooksConfig::default(),
            invoices: InvoicesConfig::default(),
            log: LogConfig::default(),
            dev: DevConfig::default(),
        }
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
        let tree = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
                parse_tree(&text, &path.display().to_string())?
            }
            None => toml::Table::new(),
        };
        Config::from_tree(tree, env, flags)
    }

    /// Reads a config file's `text` (no environment, no flags) and checks it, as [`Config::load`]
    /// does a file's: the fuzz target's entry point.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_tree(parse_tree(text, "config")?, [], &Overrides::default())
    }

    fn from_tree(
        mut tree: toml::Table,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
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
        self.api_advertised(self.api_listen()?)?;
        self.admin_listen()?;
        self.metrics_listen()?;
        self.dashboard_listen()?;
        self.events.check()?;
        self.store.check()?;
        let otlp = &self.telemetry.otlp_endpoint;
        if !otlp.is_empty() && !otlp.starts_with("http://") && !otlp.starts_with("https://") {
            return Err(ConfigError::Invalid(format!("telemetry.otlp_endpoint {otlp:?} is not an http(s) URL")));
        }
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
        if !w.fee_schedule_file.is_empty() && self.bitcoin_network()? == Network::Bitcoin {
            return Err(ConfigError::Invalid(
                "wallet.fee_schedule_file is refused on mainnet: fees come from bitcoind's estimatesmartfee".into(),
            ));
        }
        self.fx.check()?;
        self.routing.check()?;
        self.batching.check()?;
        self.treasury.check()?;
        self.webhooks.check()?;
        self.invoices.check()?;
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

    /// Where the front ends reach this node's API: `api.advertise_url`, else `http://` and the
    /// address the API is bound to (`bound`), an unspecified address as loopback.
    pub fn api_advertised(&self, bound: SocketAddr) -> Result<String, ConfigError> {
        let url = self.api.advertise_url.trim_end_matches('/');
        if !url.is_empty() {
            return match url.parse::<reqwest::Url>() {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/" => {
                    Ok(url.to_owned())
                }
                _ => Err(ConfigError::Invalid(format!(
                    "api.advertise_url {:?} is not an http(s) URL of a host (with no path): e.g. http://10.0.0.5:8380",
                    self.api.advertise_url
                ))),
            };
        }
        let ip = match bound.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Ok(format!("http://{}", SocketAddr::new(ip, bound.port())))
    }

    /// The admin RPC's TCP address, or `None` for the Unix socket.
    pub fn admin_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        loopback("admin.listen", &self.admin.listen)
    }
}

impl Config {
    /// The metrics listener's address, or `None` when metrics are off.
    pub fn metrics_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        loopback("metrics.listen", &self.metrics.listen)
    }

    /// The dashboard listener's address, or `None` when the dashboard is off.
    pub fn dashboard_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        loopback("dashboard.listen", &self.dashboard.listen)
    }

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

/// `value` of the key `name`: empty for `None`, else an address that must be on loopback.
fn loopback(name: &str, value: &str) -> Result<Option<SocketAddr>, ConfigError> {
    if value.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr =
        value.parse().map_err(|_| ConfigError::Invalid(format!("{name} {value:?} is not an address")))?;
    if !addr.ip().is_loopback() {
        return Err(ConfigError::Invalid(format!("{name} {addr} must be a loopback address")));
    }
    Ok(Some(addr))
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
    fn an_otlp_endpoint_must_be_an_http_url() {
        let with = |url: &str| Config::from_toml(&format!("[telemetry]\notlp_endpoint = {url:?}\n"));
        assert!(with("http://127.0.0.1:4318/v1/traces").is_ok());
        assert!(with("").is_ok(), "empty: no export");
        let refused = with("127.0.0.1:4318").unwrap_err().to_string();
        assert!(refused.contains("telemetry.otlp_endpoint"), "{refused}");
    }

    #[test]
    fn the_node_advertises_its_api_where_front_ends_can_reach_it() {
        let bound: SocketAddr = ([0, 0, 0, 0], 8380).into();
        let default = Config::from_toml("").unwrap();
        assert_eq!(default.api_advertised(bound).unwrap(), "http://127.0.0.1:8380", "0.0.0.0 as loopback");
        assert_eq!(default.api_advertised(([10, 0, 0, 5], 81).into()).unwrap(), "http://10.0.0.5:81");
        let set = Config::from_toml("[api]\nadvertise_url = \"https://node.internal:8380/\"\n").unwrap();
        assert_eq!(set.api_advertised(bound).unwrap(), "https://node.internal:8380");
        for bad in ["node.internal:8380", "ftp://node", "http://node/v1"] {
            let refused = Config::from_toml(&format!("[api]\nadvertise_url = {bad:?}\n")).unwrap_err().to_string();
            assert!(refused.contains("api.advertise_url"), "{bad}: {refused}");
        }
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
        let dashboard = load("[dashboard]\nlisten = \"0.0.0.0:9\"", &[], &none).unwrap_err().to_string();
        assert!(dashboard.contains("dashboard.listen") && dashboard.contains("loopback"), "{dashboard}");
        assert!(load("", &[("SENDERO_DASHBOARD_LISTEN", "nope")], &none)
            .unwrap_err()
            .to_string()
            .contains("dashboard.listen"));
        let on = load("[dashboard]\nlisten = \"127.0.0.1:9381\"", &[], &none).unwrap();
        assert_eq!(on.dashboard_listen().unwrap(), Some(([127, 0, 0, 1], 9381).into()));
        assert!(load("[wallet]\nmax_feerate_sat_vb = \"x\"", &[], &none).is_err());
        assert!(load("", &[("SENDERO_WALLET_MAX_FEERATE_SAT_VB", "lots")], &none)
            .unwrap_err()
            .to_string()
            .contains("integer"));
        let schedule = "[wallet]\nfee_schedule_file = \"fees.csv\"\n";
        let err = load(schedule, &[], &none).unwrap_err().to_string();
        assert!(err.contains("refused on mainnet"), "{err}");
        assert!(load(&format!("network = \"mainnet\"\n{schedule}"), &[], &none).is_err());
        let regtest = load(&format!("network = \"regtest\"\n{schedule}"), &[], &none).unwrap();
        assert_eq!(regtest.wallet.fee_schedule_file, "fees.csv");
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
