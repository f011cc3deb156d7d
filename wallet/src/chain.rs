//! The bitcoind RPC connection the wallet is synced from and broadcasts through, with fee
//! estimation. It re-reads the cookie and reconnects by itself after bitcoind restarts.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use bdk_bitcoind_rpc::bitcoincore_rpc::{self, jsonrpc, Auth, Client, RpcApi};
use bdk_wallet::bitcoin::{Amount, Denomination, Network, OutPoint, Transaction, Txid};
use serde_json::Value;

use crate::{Feerate, WalletError};

/// How to authenticate to bitcoind's RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitcoindAuth {
    /// bitcoind's `.cookie` file, re-read on every reconnect.
    Cookie(PathBuf),
    /// `rpcuser` / `rpcpassword`.
    UserPass(String, String),
}

/// What `getblockchaininfo` says about the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// bitcoind's chain name: `main`, `test`, `testnet4`, `signet` or `regtest`.
    pub chain: String,
    /// Height of the best validated block.
    pub blocks: u32,
    /// Height of the best known header.
    pub headers: u32,
    /// Whether bitcoind is still in initial block download.
    pub initial_block_download: bool,
}

impl ChainInfo {
    /// Whether bitcoind's chain is `network`.
    pub fn is_network(&self, network: Network) -> bool {
        match network {
            Network::Bitcoin => self.chain == "main",
            Network::Testnet => self.chain == "test",
            Network::Testnet4 => self.chain == "testnet4",
            Network::Signet => self.chain == "signet",
            Network::Regtest => self.chain == "regtest",
        }
    }
}

/// Where a fee estimate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeeSource {
    /// bitcoind's `estimatesmartfee`.
    Bitcoind,
    /// bitcoind had no estimate (as on regtest or a fresh node): the configured fallback.
    Fallback,
    /// The caller named the feerate.
    Requested,
    /// The operator set it for the whole gateway (regtest, signet, a simulator; never mainnet).
    #[serde(rename = "operator_override")]
    Override,
    /// The operator's schedule of feerates over time (never mainnet).
    #[serde(rename = "fee_schedule")]
    Schedule,
}

/// A feerate for a confirmation target, to the sat/kvB (bitcoind's resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FeeEstimate {
    /// The feerate.
    #[serde(rename = "feerate_sat_kvb")]
    pub feerate: Feerate,
    /// The confirmation target asked for, in blocks.
    pub target_blocks: u16,
    /// Where it came from.
    pub source: FeeSource,
}

/// How long one RPC waits for bitcoind's answer (the transport tries a fresh connection once
/// more). bitcoind answers in milliseconds; one that does not answer in this long is hung.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// While bitcoind does not answer, calls fail at once for this long; then one call tries again.
const BREAKER_RETRY: Duration = Duration::from_secs(3);

/// The circuit breaker in front of bitcoind: after a call could not reach it, calls fail at once
/// (instead of queueing for the one connection, each waiting out its timeout) until a trial
/// call, one every [`BREAKER_RETRY`], reaches it again.
#[derive(Debug, Default)]
enum Breaker {
    #[default]
    Closed,
    /// Since when, and why.
    Open(Instant, String),
    /// One call is trying; the others fail at once.
    Trial(String),
}

/// Connections kept open between calls.
const IDLE_CONNECTIONS: usize = 8;

/// A bitcoind RPC endpoint. Each call has a connection of its own (from a small pool), so a call
/// bitcoind is slow to answer holds up no other.
pub struct ChainSource {
    url: String,
    auth: BitcoindAuth,
    idle: Mutex<Vec<Client>>,
    breaker: Mutex<Breaker>,
}

impl ChainSource {
    /// A source for `url` (e.g. `http://127.0.0.1:18443`); nothing is contacted yet.
    pub fn new(url: impl Into<String>, auth: BitcoindAuth) -> Self {
        ChainSource { url: url.into(), auth, idle: Mutex::new(Vec::new()), breaker: Mutex::new(Breaker::Closed) }
    }

    /// Lets a call through, or says why bitcoind is out (the breaker is open).
    fn admit(&self) -> Result<(), String> {
        let mut b = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        match &*b {
            Breaker::Closed => Ok(()),
            Breaker::Open(since, why) if since.elapsed() >= BREAKER_RETRY => {
                *b = Breaker::Trial(why.clone());
                Ok(())
            }
            Breaker::Open(_, why) | Breaker::Trial(why) => Err(why.clone()),
        }
    }

    /// Records a call's outcome: reaching bitcoind closes the breaker. Not reaching it opens the
    /// breaker when the call hung (`waited` its timeout: other calls would queue behind the same
    /// wait) or was the trial; a call refused at once (bitcoind down or starting, its cookie not
    /// written yet) costs nothing to repeat, so it leaves a closed breaker closed.
    fn record(&self, unreachable: Option<String>, waited: Duration) {
        let mut b = self.breaker.lock().unwrap_or_else(PoisonError::into_inner);
        match (unreachable, &*b) {
            (None, _) => *b = Breaker::Closed,
            (Some(_), Breaker::Closed) if waited < RPC_TIMEOUT => {}
            (Some(why), state) => {
                if matches!(state, Breaker::Closed) {
                    tracing::warn!(url = %self.url, error = %why, "bitcoind does not answer: its RPC calls fail at once until it does");
                }
                *b = Breaker::Open(Instant::now(), why);
            }
        }
    }

    /// The RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An idle connection, or a new one (reading the cookie again).
    fn connection(&self) -> bitcoincore_rpc::Result<Client> {
        if let Some(client) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(client);
        }
        let auth = match &self.auth {
            BitcoindAuth::Cookie(path) => Auth::CookieFile(path.clone()),
            BitcoindAuth::UserPass(u, p) => Auth::UserPass(u.clone(), p.clone()),
        };
        let (user, pass) = auth.get_user_pass()?;
        let mut transport = jsonrpc::simple_http::Builder::new()
            .timeout(RPC_TIMEOUT)
            .url(&self.url)
            .map_err(|e| bitcoincore_rpc::Error::JsonRpc(e.into()))?;
        if let Some(user) = user {
            transport = transport.auth(user, pass);
        }
        Ok(Client::from_jsonrpc(jsonrpc::Client::with_transport(transport.build())))
    }

    /// One call on a connection of its own, kept for the next call unless it failed to reach
    /// bitcoind.
    fn call_once<T: for<'a> serde::de::Deserialize<'a>>(
        &self,
        cmd: &str,
        args: &[Value],
    ) -> bitcoincore_rpc::Result<T> {
        let client = self.connection()?;
        let result = client.call(cmd, args);
        if !result.as_ref().is_err_and(is_connection_error) {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(client);
            }
        }
        result
    }

    fn forget_connections(&self) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// `getblockchaininfo`.
    pub fn info(&self) -> Result<ChainInfo, WalletError> {
        let v: Value = self.call("getblockchaininfo", &[])?;
        let num = |k: &str| v.get(k).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
        Ok(ChainInfo {
            chain: v.get("chain").and_then(Value::as_str).unwrap_or_default().to_owned(),
            blocks: num("blocks").ok_or_else(|| WalletError::Chain("getblockchaininfo: no blocks".into()))?,
            headers: num("headers").unwrap_or_default(),
            initial_block_download: v.get("initialblockdownload").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The feerate for confirmation within `target_blocks`, from `estimatesmartfee`, or
    /// `fallback_sat_vb` when bitcoind has no estimate.
    pub fn estimate_feerate(&self, target_blocks: u16, fallback_sat_vb: u64) -> Result<FeeEstimate, WalletError> {
        let v: Value = self.call("estimatesmartfee", &[Value::from(target_blocks)])?;
        let estimated = v.get("feerate").and_then(btc_per_kvb_to_sat_per_kvb);
        Ok(match estimated {
            Some(sat_kvb) => {
                FeeEstimate { feerate: Feerate::from_sat_per_kvb(sat_kvb), target_blocks, source: FeeSource::Bitcoind }
            }
            None => FeeEstimate {
                feerate: Feerate::from_sat_per_vb(fallback_sat_vb),
                target_blocks,
                source: FeeSource::Fallback,
            },
        })
    }

    /// The lowest feerate bitcoind relays (`getnetworkinfo`'s `relayfee`), sat/kvB.
    pub fn relay_feerate(&self) -> Result<u64, WalletError> {
        Ok(self.relay_feerates()?.0)
    }

    /// The least a replacement raises the feerate by for bitcoind to take it (BIP125's rule 4:
    /// `getnetworkinfo`'s `incrementalfee`; 1 sat/vB before v30, 0.1 since), sat/kvB.
    pub fn incremental_feerate(&self) -> Result<u64, WalletError> {
        Ok(self.relay_feerates()?.1)
    }

    /// Both of them, from one `getnetworkinfo`: (`relayfee`, `incrementalfee`), sat/kvB.
    pub fn relay_feerates(&self) -> Result<(u64, u64), WalletError> {
        let v: Value = self.call("getnetworkinfo", &[])?;
        let read = |key: &str| {
            v.get(key)
                .and_then(btc_per_kvb_to_sat_per_kvb)
                .ok_or_else(|| WalletError::Chain(format!("getnetworkinfo: no {key}")))
        };
        Ok((read("relayfee")?, read("incrementalfee")?))
    }

    /// The least feerate bitcoind's mempool takes now, sat/kvB: its relay floor, or its mempool's
    /// floor when a full mempool raised it (`getmempoolinfo`).
    pub fn mempool_floor(&self) -> Result<u64, WalletError> {
        let v: Value = self.call("getmempoolinfo", &[])?;
        let floor = |key: &str| v.get(key).and_then(btc_per_kvb_to_sat_per_kvb);
        match (floor("mempoolminfee"), floor("minrelaytxfee")) {
            (Some(pool), Some(relay)) => Ok(pool.max(relay)),
            (Some(one), None) | (None, Some(one)) => Ok(one),
            (None, None) => Err(WalletError::Chain("getmempoolinfo: no mempoolminfee".into())),
        }
    }

    /// `sendrawtransaction`. bitcoind's refusal is [`WalletError::Broadcast`]; not reaching it is
    /// [`WalletError::Chain`] (the transaction may or may not have been relayed).
    pub fn broadcast(&self, tx: &Transaction) -> Result<Txid, WalletError> {
        self.send_raw_transaction(tx).map_err(|e| match e {
            bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Rpc(rpc)) => WalletError::Broadcast(rpc.message),
            other => WalletError::Chain(other.to_string()),
        })
    }

    /// The inputs of `tx` bitcoind does not hold unspent, in its chain or its mempool
    /// (`gettxout` with the mempool): spent by another transaction, or never there.
    pub fn spent_inputs(&self, tx: &Transaction) -> Result<Vec<OutPoint>, WalletError> {
        let mut spent = vec![];
        for input in &tx.input {
            let o = input.previous_output;
            let args = [Value::from(o.txid.to_string()), Value::from(o.vout), Value::from(true)];
            let v: Value = self.call("gettxout", &args)?;
            if v.is_null() {
                spent.push(o);
            }
        }
        Ok(spent)
    }

    /// Broadcasts `tx`, again if need be: a transaction bitcoind already has in its mempool or
    /// chain counts as broadcast.
    pub fn rebroadcast(&self, tx: &Transaction) -> Result<Txid, WalletError> {
        match self.broadcast(tx) {
            Err(WalletError::Broadcast(reason)) if already_known(&reason) => Ok(tx.compute_txid()),
            other => other,
        }
    }

    /// `stop`: asks bitcoind to shut down.
    pub fn request_stop(&self) -> Result<(), WalletError> {
        let _: Value = self.call("stop", &[])?;
        Ok(())
    }

    /// `generatetoaddress` (regtest only; used by dev mode and tests).
    pub fn generate_to_address(&self, blocks: u32, address: &str) -> Result<(), WalletError> {
        let _: Value = self.call("generatetoaddress", &[Value::from(blocks), Value::from(address)])?;
        Ok(())
    }
}

/// A BTC/kvB figure as bitcoind prints it (8 decimals), turned into sat/kvB exactly: the parsed
/// JSON number printed back with those 8 decimals (a float holds an 8-decimal figure to well
/// under half its last place), then read as an amount — no arithmetic on the float.
fn btc_per_kvb_to_sat_per_kvb(v: &Value) -> Option<u64> {
    // JSON numbers arrive parsed; a small one prints in exponent form ("1e-6"), which no amount
    // parser reads. Printed back with bitcoind's own 8 decimals it is the exact text it sent.
    let text = format!("{:.8}", v.as_f64()?);
    let sat_per_kvb = Amount::from_str_in(&text, Denomination::Bitcoin).ok()?.to_sat();
    (sat_per_kvb > 0).then_some(sat_per_kvb)
}

impl RpcApi for ChainSource {
    fn call<T: for<'a> serde::de::Deserialize<'a>>(&self, cmd: &str, args: &[Value]) -> bitcoincore_rpc::Result<T> {
        self.admit().map_err(|why| bitcoincore_rpc::Error::ReturnedError(format!("bitcoind unreachable: {why}")))?;
        let started = Instant::now();
        let result = match self.call_once(cmd, args) {
            Err(e) if is_connection_error(&e) => {
                // bitcoind may have restarted with a new cookie: reconnect once.
                self.forget_connections();
                self.call_once(cmd, args)
            }
            other => other,
        };
        let unreachable = result.as_ref().err().filter(|e| is_connection_error(e)).map(|e| format!("{cmd}: {e}"));
        self.record(unreachable, started.elapsed());
        result
    }
}

/// bitcoind's answers for a transaction it already has (`txn-already-in-mempool`,
/// `txn-already-known`, "Transaction outputs already in utxo set").
fn already_known(reason: &str) -> bool {
    reason.contains("already-in-mempool") || reason.contains("already-known") || reason.contains("already in utxo set")
}

/// Whether bitcoind refused a transaction for a fee under its floor, relay or mempool ("min relay
/// fee not met", "mempool min fee not met"): bid again over it, from the same coins, it is taken.
pub fn below_floor(reason: &str) -> bool {
    reason.contains("min relay fee not met") || reason.contains("mempool min fee not met")
}

fn is_connection_error(e: &bitcoincore_rpc::Error) -> bool {
    matches!(
        e,
        bitcoincore_rpc::Error::JsonRpc(jsonrpc::Error::Transport(_))
            | bitcoincore_rpc::Error::InvalidCookieFile
            | bitcoincore_rpc::Error::Io(_)
    )
}

impl FromStr for BitcoindAuth {
    type Err = WalletError;

    /// `cookie:/path` or `user:password`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("cookie", path)) => Ok(BitcoindAuth::Cookie(PathBuf::from(path))),
            Some((user, pass)) => Ok(BitcoindAuth::UserPass(user.into(), pass.into())),
            None => Err(WalletError::Chain("bitcoind auth must be cookie:PATH or USER:PASSWORD".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_on_a_hung_call_not_on_a_refused_one_and_closes_on_an_answer() {
        let source = ChainSource::new("http://127.0.0.1:1", BitcoindAuth::UserPass("u".into(), "p".into()));
        let refused = || Some("getblockchaininfo: connection refused".to_owned());
        // Refused at once (bitcoind starting): calls keep going to bitcoind.
        source.record(refused(), Duration::from_millis(2));
        assert!(source.admit().is_ok());
        // A call that waited out its timeout: the others fail at once, saying why.
        source.record(Some("getblockchaininfo: timed out".into()), RPC_TIMEOUT);
        assert_eq!(source.admit(), Err("getblockchaininfo: timed out".to_owned()));
        // After BREAKER_RETRY one trial call goes through; the others still fail at once.
        *source.breaker.lock().unwrap() = Breaker::Open(Instant::now() - BREAKER_RETRY, "timed out".into());
        assert!(source.admit().is_ok());
        assert!(source.admit().is_err());
        // A trial refused at once opens the breaker again; an answer closes it.
        source.record(refused(), Duration::from_millis(2));
        assert!(source.admit().is_err());
        *source.breaker.lock().unwrap() = Breaker::Open(Instant::now() - BREAKER_RETRY, "timed out".into());
        assert!(source.admit().is_ok());
        source.record(None, Duration::from_millis(2));
        assert!(source.admit().is_ok() && source.admit().is_ok());
    }

    #[test]
    fn bitcoind_feerates_convert_exactly_to_the_sat_per_kvb() {
        let rate = |s: &str| btc_per_kvb_to_sat_per_kvb(&serde_json::from_str(s).unwrap());
        assert_eq!(rate("0.00001000"), Some(1_000), "1 sat/vB");
        assert_eq!(rate("0.00001001"), Some(1_001), "1.001 sat/vB, not 2");
        assert_eq!(rate("0.00012345"), Some(12_345));
        assert_eq!(rate("0.0000010"), Some(100), "0.1 sat/vB (bitcoind's minimum relay feerate since v30)");
        assert_eq!(rate("0.001"), Some(100_000));
        assert_eq!(rate("0.00000001"), Some(1));
        assert_eq!(rate("1e-6"), Some(100));
        assert_eq!(rate("0"), None);
        assert_eq!(rate("\"x\""), None);
    }

    #[test]
    fn chain_names_match_networks() {
        let info = ChainInfo { chain: "regtest".into(), blocks: 0, headers: 0, initial_block_download: false };
        assert!(info.is_network(Network::Regtest));
        assert!(!info.is_network(Network::Bitcoin));
    }

    #[test]
    fn unreachable_bitcoind_is_a_chain_error() {
        let src = ChainSource::new("http://127.0.0.1:1", BitcoindAuth::UserPass("u".into(), "p".into()));
        assert!(matches!(src.info(), Err(WalletError::Chain(_))));
    }
}
