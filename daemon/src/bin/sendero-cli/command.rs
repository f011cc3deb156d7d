//! `sendero-cli`'s subcommands: one per admin method, and how each becomes a call.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;
use serde_json::{json, Value};

/// One subcommand per admin method, named as the method; its fields serialize to the method's
/// parameters.
#[derive(Subcommand, Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Command {
    /// Network, chain height, wallet balances and sync state.
    #[command(name = "getinfo")]
    Getinfo,
    /// Treasury balances in sats.
    #[command(name = "wallet.balance")]
    WalletBalance,
    /// A fresh receive address.
    #[command(name = "wallet.newaddress")]
    WalletNewaddress,
    /// Pay an address from the treasury.
    #[command(name = "wallet.send")]
    WalletSend {
        /// Destination address (of the daemon's network).
        #[arg(long)]
        address: String,
        /// Amount in sats.
        #[arg(long, allow_negative_numbers = true)]
        amount_sat: i64,
        /// Feerate in sat/vB (default: bitcoind's estimate for the configured target).
        #[arg(long, allow_negative_numbers = true)]
        #[serde(skip_serializing_if = "Option::is_none")]
        feerate_sat_vb: Option<i64>,
    },
    /// Where feerates come from now (operator override, fee schedule or bitcoind) and the
    /// feerate for 1, 3, 6 and 144 blocks.
    #[command(name = "fees.get")]
    FeesGet,
    /// Use this feerate instead of bitcoind's estimates until fees.clear (not on mainnet; audited).
    #[command(name = "fees.set")]
    FeesSet {
        /// Feerate in sat/vB, for every confirmation target no --targets step covers.
        #[arg(long, allow_negative_numbers = true)]
        sat_per_vb: i64,
        /// Steps by confirmation target, `MAX_TARGET_BLOCKS:SAT_PER_VB,…` (e.g. `1:50,6:20`).
        #[arg(long)]
        #[serde(skip_serializing_if = "Option::is_none")]
        targets: Option<String>,
    },
    /// Back to bitcoind's estimates (or the fee schedule) (not on mainnet; audited).
    #[command(name = "fees.clear")]
    FeesClear,
    /// Unspent outputs of the treasury.
    #[command(name = "wallet.utxos")]
    WalletUtxos,
    /// Treasury transactions, newest first.
    #[command(name = "wallet.transactions")]
    WalletTransactions,
    /// The Lightning node: id, addresses, peers, channels, liquidity.
    #[command(name = "ln.info")]
    LnInfo,
    /// Connect to a Lightning peer.
    #[command(name = "ln.connect")]
    LnConnect {
        /// Peer node id (hex).
        #[arg(long)]
        node_id: String,
        /// Peer address, host:port.
        #[arg(long)]
        addr: String,
    },
    /// Lightning peers.
    #[command(name = "ln.peers")]
    LnPeers,
    /// Lightning balances (the node's on-chain wallet, channels, sweeps).
    #[command(name = "ln.balance")]
    LnBalance,
    /// Move sats from the treasury to the Lightning node's on-chain wallet.
    #[command(name = "ln.fund")]
    LnFund {
        /// Amount in sats.
        #[arg(long, allow_negative_numbers = true)]
        amount_sat: i64,
    },
    /// Open a channel (funding the node from the treasury when needed).
    #[command(name = "ln.open_channel")]
    LnOpenChannel {
        /// Peer node id (hex).
        #[arg(long)]
        node_id: String,
        /// Peer address, host:port.
        #[arg(long)]
        addr: String,
        /// Channel size in sats.
        #[arg(long, allow_negative_numbers = true)]
        amount_sat: i64,
        /// Give the peer this much at open, in msat.
        #[arg(long)]
        push_msat: Option<u64>,
        /// Announce the channel to the network.
        #[arg(long)]
        announce: bool,
    },
    /// Close a channel (cooperatively, or --force).
    #[command(name = "ln.close_channel")]
    LnCloseChannel {
        /// Channel id (hex, from ln.channels).
        #[arg(long)]
        channel_id: String,
        /// Force-close unilaterally.
        #[arg(long)]
        force: bool,
    },
    /// Channels: capacity, outbound / inbound msat, ready, usable.
    #[command(name = "ln.channels")]
    LnChannels,
    /// Alarms: channels closed without the operator asking (open ones; `--all` for past ones too).
    #[command(name = "ln.alarms")]
    LnAlarms {
        /// Acknowledged alarms too.
        #[arg(long)]
        all: bool,
    },
    /// Acknowledge a channel's alarm (health is `ok` again once none is open).
    #[command(name = "ln.ack_alarm")]
    LnAckAlarm {
        /// Channel id (hex).
        #[arg(long)]
        channel_id: String,
    },
    /// Add sats from the treasury to a channel.
    #[command(name = "ln.splice_in")]
    LnSpliceIn {
        /// Channel id (hex).
        #[arg(long)]
        channel_id: String,
        /// Amount in sats.
        #[arg(long, allow_negative_numbers = true)]
        amount_sat: i64,
    },
    /// Take sats out of a channel, to an address or the treasury.
    #[command(name = "ln.splice_out")]
    LnSpliceOut {
        /// Channel id (hex).
        #[arg(long)]
        channel_id: String,
        /// Amount in sats.
        #[arg(long, allow_negative_numbers = true)]
        amount_sat: i64,
        /// Destination (default: a new treasury address).
        #[arg(long)]
        address: Option<String>,
    },
    /// Issue a BOLT11 invoice.
    #[command(name = "ln.invoice")]
    LnInvoice {
        /// Amount in msat (omit for any amount).
        #[arg(long)]
        amount_msat: Option<u64>,
        /// Description shown to the payer.
        #[arg(long, default_value = "")]
        description: String,
        /// Seconds until it expires.
        #[arg(long, default_value_t = 3600)]
        expiry_secs: u64,
    },
    /// Issue a BOLT12 offer.
    #[command(name = "ln.offer")]
    LnOffer {
        /// Amount in msat (omit for any amount).
        #[arg(long)]
        amount_msat: Option<u64>,
        /// Description shown to the payer.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Pay a BOLT11 invoice or a BOLT12 offer.
    #[command(name = "ln.pay")]
    LnPay {
        /// The invoice (lnbc…) or offer (lno…).
        destination: String,
        /// Amount in msat, for invoices and offers that name none.
        #[arg(long)]
        amount_msat: Option<u64>,
    },
    /// Send to a node without an invoice.
    #[command(name = "ln.keysend")]
    LnKeysend {
        /// Destination node id (hex).
        #[arg(long)]
        node_id: String,
        /// Amount in msat.
        #[arg(long)]
        amount_msat: u64,
    },
    /// Lightning payments, newest first.
    #[command(name = "ln.payments")]
    LnPayments,
    /// Create an API key for the public API (its secret is printed once).
    #[command(name = "apikey.create")]
    ApikeyCreate {
        /// A label for the operator.
        #[arg(long)]
        label: String,
        /// Comma-separated scopes: read, quote, invoice, pay.
        #[arg(long)]
        scopes: String,
    },
    /// API keys (ids, labels, scopes, payout limits and the last 24 h's use; never secrets).
    #[command(name = "apikey.list")]
    ApikeyList,
    /// Revoke an API key.
    #[command(name = "apikey.revoke")]
    ApikeyRevoke {
        /// The key's id (ak_…).
        #[arg(long)]
        id: String,
    },
    /// Set an API key's payout limits (none of the three clears them).
    #[command(name = "apikey.limits.set")]
    ApikeyLimitsSet {
        /// The key's id (ak_…).
        #[arg(long)]
        key_id: String,
        /// SAT (default) or a fiat currency the amounts are in (minor units).
        #[arg(long)]
        currency: Option<String>,
        /// Most one payout may send.
        #[arg(long)]
        max_payout: Option<u64>,
        /// Most the key may pay out in any 24 hours.
        #[arg(long)]
        max_daily: Option<u64>,
        /// Comma-separated addresses, node ids and BOLT12 offers the key may pay (default: any).
        #[arg(long)]
        allowlist: Option<String>,
    },
    /// FX fills, spread earned, requotes and expired quotes per pair.
    #[command(name = "fx.report")]
    FxReport {
        /// From (unix seconds; default 24 h before --to).
        #[arg(long)]
        from: Option<u64>,
        /// To (unix seconds; default now).
        #[arg(long)]
        to: Option<u64>,
    },
    /// Every ledger account's balance (BTC in msat, fiat in minor units).
    #[command(name = "ledger.balances")]
    LedgerBalances,
    /// Check the ledger balances and agrees with the wallet and the Lightning node.
    #[command(name = "ledger.verify")]
    LedgerVerify,
    /// One payment of any API key, with its events.
    #[command(name = "payment.get")]
    PaymentGet {
        /// `pay_…`.
        payment_id: String,
    },
    /// Lift a stuck on-chain payout's transaction now (its batch's, for a batched payout): replaced
    /// with a higher fee, or a child pays for it when others spend from it (audited).
    #[command(name = "payment.bump")]
    PaymentBump {
        /// `pay_…`.
        payment_id: String,
        #[command(flatten)]
        #[serde(flatten)]
        rate: BumpRate,
    },
    /// Batches of the `onchain_batch` rail, newest first, and the payouts waiting in the queue.
    #[command(name = "batch.list")]
    BatchList {
        /// How many (default 50).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// One batch: its transaction, fee, and every payout's output and fee share.
    #[command(name = "batch.get")]
    BatchGet {
        /// `bt_…`.
        batch_id: String,
    },
    /// Send the queue now, as one batch (audited).
    #[command(name = "batch.trigger")]
    BatchTrigger,
    /// Lift a stuck batch's transaction now: replaced with a higher fee (every payout's output
    /// kept, the shares read again), or a child pays for it when others spend from it (audited).
    #[command(name = "batch.bump")]
    BatchBump {
        /// `bt_…`.
        batch_id: String,
        #[command(flatten)]
        #[serde(flatten)]
        rate: BumpRate,
    },
    /// The consolidation that would run now: the treasury's smallest coins swept into one, what
    /// it spends and what it saves.
    #[command(name = "consolidate.preview")]
    ConsolidatePreview {
        /// Plan at this feerate, sat/vB (default: the estimate for the low priority's target).
        #[arg(long, allow_negative_numbers = true)]
        #[serde(skip_serializing_if = "Option::is_none")]
        feerate_sat_vb: Option<i64>,
        /// At most this many inputs (default `[batching] max_consolidation_inputs`).
        #[arg(long, allow_negative_numbers = true)]
        #[serde(skip_serializing_if = "Option::is_none")]
        max_inputs: Option<i64>,
    },
    /// Consolidate now (audited); refused above the threshold feerate unless --force.
    #[command(name = "consolidate.run")]
    ConsolidateRun {
        /// Even above `[batching] consolidation_feerate_sat_kvb`.
        #[arg(long)]
        force: bool,
        /// At most this many inputs.
        #[arg(long, allow_negative_numbers = true)]
        #[serde(skip_serializing_if = "Option::is_none")]
        max_inputs: Option<i64>,
    },
    /// What the queue would pay now as one batch, against one transaction per payout.
    #[command(name = "batch.preview")]
    BatchPreview,
    /// Per rail, settled payouts' fees against one transaction each, and the saving.
    #[command(name = "fees.report")]
    FeesReport {
        /// From (unix seconds; default 24 h before --to).
        #[arg(long)]
        from: Option<u64>,
        /// To (unix seconds; default now).
        #[arg(long)]
        to: Option<u64>,
    },
    /// The ledger against the wallet's transactions, the node's payments, payouts and invoices:
    /// each movement classed match / timing / missing / amount_mismatch, totals per day and rail.
    #[command(name = "recon.report")]
    ReconReport {
        /// From (unix seconds or RFC 3339; default 24 h before --to).
        #[arg(long)]
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// To (unix seconds or RFC 3339; default now).
        #[arg(long)]
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// Also write the items as CSV to this file (one row per item, fiat values included).
        #[arg(long, value_name = "FILE")]
        #[serde(skip)]
        csv: Option<PathBuf>,
    },
    /// Per rail what the treasury holds, reserves, keeps and forecasts, and whether it takes new
    /// payouts; the treasury policy in force.
    #[command(name = "treasury.status")]
    TreasuryStatus,
    /// Change the treasury policy at run time (audited; kept across restarts).
    #[command(name = "treasury.policy.set")]
    TreasuryPolicySet {
        /// `KEY=VALUE` of a `[treasury]` setting (repeatable), e.g. `onchain_reserve_sat=500000`.
        #[arg(long = "set", value_name = "KEY=VALUE", required = true)]
        settings: Vec<String>,
    },
    /// Per channel, what the rebalancer would do now and why (code, reason, amount, fee).
    #[command(name = "rebalance.preview")]
    RebalancePreview,
    /// One rebalancing cycle now: splices in or out of the treasury as decided (audited; none in
    /// `[treasury] dry_run`).
    #[command(name = "rebalance.run")]
    RebalanceRun,
    /// The rebalancer's splices: what moved, what it cost, why, and their state.
    #[command(name = "rebalance.history")]
    RebalanceHistory {
        /// From (unix seconds; default: the first).
        #[arg(long)]
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
        /// To (unix seconds; default now).
        #[arg(long)]
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<u64>,
    },
    /// What routing has learned of each rail, and the rules in force.
    #[command(name = "routing.stats")]
    RoutingStats,
    /// Recommend this rail whenever it can pay (audited).
    #[command(name = "routing.pin")]
    RoutingPin {
        /// onchain, onchain_batch, lightning or on_us.
        rail: String,
    },
    /// Remove the pin (audited).
    #[command(name = "routing.unpin")]
    RoutingUnpin,
    /// Never offer this rail (audited).
    #[command(name = "routing.disable")]
    RoutingDisable {
        /// onchain, onchain_batch, lightning or on_us.
        rail: String,
    },
    /// Offer this rail again (audited).
    #[command(name = "routing.enable")]
    RoutingEnable {
        /// onchain, onchain_batch, lightning or on_us.
        rail: String,
    },
    /// The audit log, oldest first.
    #[command(name = "audit.list")]
    AuditList {
        /// Entries after this sequence number.
        #[arg(long)]
        after: Option<u64>,
    },
    /// Recompute the audit log's hash chain.
    #[command(name = "audit.verify")]
    AuditVerify,
    /// Write a backup (the books, the Lightning node's channel state, metadata; not the mnemonic
    /// unless asked) to a file, mode 0600. Restore it with `senderod --restore-from FILE`.
    #[command(name = "backup.export")]
    BackupExport {
        /// The file to write (refused if it exists); default `sendero-backup-<network>-<unix time>.tar`.
        #[arg(long)]
        #[serde(skip)]
        out: Option<PathBuf>,
        /// Put the mnemonic in the backup too (then the file alone restores the wallet: keep it
        /// as safe as the mnemonic).
        #[arg(long)]
        include_mnemonic: bool,
        /// Export even while payouts are not yet with their rail (a restore resumes them).
        #[arg(long)]
        allow_in_flight: bool,
    },
    /// Every API key's webhook endpoints.
    #[command(name = "webhook.endpoints")]
    WebhookEndpoints,
    /// The webhook delivery log, newest first.
    #[command(name = "webhook.deliveries")]
    WebhookDeliveries {
        /// Only this endpoint's.
        #[arg(long)]
        endpoint_id: Option<String>,
        /// Only this event's.
        #[arg(long)]
        event_id: Option<String>,
        /// pending, delivered or failed.
        #[arg(long)]
        state: Option<String>,
    },
    /// Deliver a webhook again now.
    #[command(name = "webhook.redeliver")]
    WebhookRedeliver {
        /// From webhook.deliveries.
        delivery_id: u64,
    },
    /// A one-time link into the operator dashboard (60 s, usable once; needs `[dashboard] listen`).
    #[command(name = "dashboard.login_url")]
    DashboardLoginUrl,
    /// Print a shell completion script for sendero-cli (bash, zsh, fish, elvish or powershell);
    /// no daemon needed.
    #[command(name = "completions")]
    #[serde(skip)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print sendero-cli's man page (roff, section 1); no daemon needed.
    #[command(name = "manpage")]
    #[serde(skip)]
    Manpage,
    /// Call any admin method with JSON parameters, e.g. `call wallet.send '{"address":…}'`.
    Call {
        /// Method name.
        method: String,
        /// Parameters as a JSON object.
        params: Option<String>,
    },
}

impl Command {
    /// The admin call: `method` (the subcommand's name, which is the method's) with the
    /// subcommand's fields as parameters, named as the method takes them.
    pub(crate) fn request(&self, method: &str) -> Result<(String, Value), String> {
        match self {
            Command::LnPay { destination, amount_msat } => {
                let key = if destination.trim().to_ascii_lowercase().starts_with("lno") { "offer" } else { "invoice" };
                Ok((method.to_owned(), json!({ key: destination, "amount_msat": amount_msat })))
            }
            Command::TreasuryPolicySet { settings } => {
                let mut params = serde_json::Map::new();
                for kv in settings {
                    let (key, value) = kv.split_once('=').ok_or_else(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
                    // Numbers and booleans as JSON; anything else as a string.
                    let value = serde_json::from_str(value.trim()).unwrap_or_else(|_| Value::from(value.trim()));
                    params.insert(key.trim().to_owned(), value);
                }
                Ok((method.to_owned(), Value::Object(params)))
            }
            Command::Call { method, params } => {
                let params = match params {
                    Some(text) => serde_json::from_str(text).map_err(|e| format!("params are not JSON: {e}"))?,
                    None => json!({}),
                };
                Ok((method.clone(), params))
            }
            fields => match serde_json::to_value(fields).map_err(|e| e.to_string())? {
                Value::Null => Ok((method.to_owned(), json!({}))),
                params => Ok((method.to_owned(), params)),
            },
        }
    }

    /// `backup.export`'s `--out` when the file is already there (it is never written over).
    pub(crate) fn existing_out(&self) -> Option<&PathBuf> {
        match self {
            Command::BackupExport { out: Some(path), .. } => path.exists().then_some(path),
            _ => None,
        }
    }
}

/// The feerate a bump asks: whole sat/vB or sat/kvB (default: what the next block asks).
#[derive(clap::Args, Debug, Serialize)]
pub(crate) struct BumpRate {
    /// Feerate in sat/vB (default: what the next block asks).
    #[arg(long, allow_negative_numbers = true, conflicts_with = "feerate_sat_kvb")]
    #[serde(skip_serializing_if = "Option::is_none")]
    sat_per_vb: Option<i64>,
    /// Feerate in sat/kvB, to the 0.001 sat/vB.
    #[arg(long, allow_negative_numbers = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    feerate_sat_kvb: Option<i64>,
}
