//! `senderod`: the Sendero payment gateway daemon.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sendero::config::{Config, Overrides};

/// senderod allocates through mimalloc: small, short-lived allocations dominate request handling,
/// and glibc's allocator contends on them across worker threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sendero payment gateway daemon: an on-chain treasury and a Lightning node beside your
/// bitcoind, behind a local HTTP API and an admin RPC.
#[derive(Parser, Debug)]
#[command(name = "senderod", version)]
struct Args {
    /// TOML configuration file (see config.example.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (default ~/.sendero, or ~/.sendero-dev with --dev).
    #[arg(long)]
    datadir: Option<PathBuf>,
    /// bitcoin | testnet | testnet4 | signet | regtest.
    #[arg(long)]
    network: Option<String>,
    /// Address of the public HTTP API (default 127.0.0.1:8380).
    #[arg(long)]
    api_listen: Option<String>,
    /// Dev mode: start a private regtest bitcoind (building it if needed), mine 101 blocks to the
    /// wallet, and serve.
    #[arg(long)]
    dev: bool,
    /// Print the public API's OpenAPI 3.1 document (the repository's openapi.json) and exit.
    #[arg(long)]
    openapi: bool,
    /// Load and check the configuration (file, SENDERO_* environment, flags), print what it
    /// settles on and exit: 0 when senderod would start with it, 1 with the reason when not.
    #[arg(long)]
    check_config: bool,
    /// Restore a backup made by `sendero-cli backup.export` into the data directory (which must
    /// hold no gateway), then exit; start senderod again to run the restored gateway.
    #[arg(long, value_name = "FILE")]
    restore_from: Option<PathBuf>,
    /// all: the whole gateway in one process (the default). node: the same, as the one node of a
    /// PostgreSQL store (store.url): a second node waits as a standby and takes over when the
    /// first is gone. api: a front end of a PostgreSQL store (public API; the node pays).
    #[arg(long, value_enum, default_value_t = sendero::daemon::Role::All)]
    role: sendero::daemon::Role,
    /// With --restore-from: the wallet's mnemonic (a file, mode 0600), when the backup holds none.
    #[arg(long, value_name = "FILE", requires = "restore_from")]
    mnemonic_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.openapi {
        let text = serde_json::to_string_pretty(&sendero::api::openapi::document()).unwrap_or_default();
        println!("{text}");
        return ExitCode::SUCCESS;
    }
    let overrides =
        Overrides { datadir: args.datadir, network: args.network, api_listen: args.api_listen, dev: args.dev };
    let config = match Config::load(args.config.as_deref(), std::env::vars(), &overrides) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    if args.check_config {
        println!(
            "senderod: config ok: network {}, data directory {}, API on {}",
            config.network,
            config.datadir.display(),
            config.api.listen
        );
        return ExitCode::SUCCESS;
    }
    if let Some(bundle) = &args.restore_from {
        return restore(&config, bundle, args.mnemonic_file.as_deref());
    }
    if let Err(e) = sendero::logging::init(&config.log, &config.telemetry) {
        return fail(&e);
    }
    // ldk-node runs its background work on this runtime too; a floor of 4 workers keeps the API,
    // the admin RPC and the chain follower responsive on 2-core machines.
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(4);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let ran = runtime.block_on(sendero::daemon::run(config, args.dev, args.role));
    sendero::telemetry::flush();
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "senderod failed");
            fail(&e)
        }
    }
}

/// `--restore-from`: writes the backup into the configured data dir and says what it holds.
fn restore(config: &Config, bundle: &std::path::Path, mnemonic_file: Option<&std::path::Path>) -> ExitCode {
    let network = match config.bitcoin_network() {
        Ok(n) => n,
        Err(e) => return fail(&e),
    };
    match sendero::backup::restore(bundle, mnemonic_file, &config.datadir, network) {
        Ok(r) => {
            let m = &r.manifest;
            let channels = m.channels.as_array().map_or(0, Vec::len);
            println!(
                "senderod: restored the backup made at {} (wallet {}, node {}, {} channel(s)) into {}",
                m.created_at,
                m.master_fingerprint,
                m.node_id.as_deref().unwrap_or("-"),
                channels,
                r.datadir.display()
            );
            if !m.payouts_in_flight.is_empty() {
                println!(
                    "senderod: {} payout(s) were not yet with their rail at the backup and will be resumed: {}",
                    m.payouts_in_flight.len(),
                    m.payouts_in_flight.join(", ")
                );
            }
            println!(
                "senderod: start senderod on this data dir; never start the old one again (its channel state would \
                 conflict with this one)"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("senderod: restore refused ({}): {e}", e.code());
            ExitCode::FAILURE
        }
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("senderod: {e}");
    ExitCode::FAILURE
}
