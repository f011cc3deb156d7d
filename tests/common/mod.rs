//! The end-to-end harness: a real regtest bitcoind per test and real `senderod` processes started
//! from their binary with a generated config, plus `wait_for` and plain-HTTP helpers.
#![allow(dead_code)]

pub mod coins;
pub mod exchange;
pub mod ln;
pub mod nats;
pub mod plain;
pub mod postgres;
pub mod webhook;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sendero::admin::{AdminClient, ClientError};
use sendero::devchain::{free_port, resolve_bitcoind, Bitcoind};
use sendero_wallet::bitcoin::key::{CompressedPublicKey, Secp256k1};
use sendero_wallet::bitcoin::secp256k1::SecretKey;
use sendero_wallet::bitcoin::{Address, Network};
use sendero_wallet::ChainSource;
use serde_json::{json, Value};
use tempfile::TempDir;

pub const SENDEROD: &str = env!("CARGO_BIN_EXE_senderod");
pub const SENDERO_CLI: &str = env!("CARGO_BIN_EXE_sendero-cli");

static NO_RATE_LIMIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Gateways started from now on have no per-key rate limit: benchmarks measure throughput, not
/// the limit.
pub fn without_rate_limit() {
    NO_RATE_LIMIT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Polls `cond` every 100 ms until it holds; panics with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The bitcoind the tests run: `BITCOIND_EXE`, or the cached build (built if missing).
pub fn bitcoind_exe() -> PathBuf {
    resolve_bitcoind("").unwrap_or_else(|e| panic!("no bitcoind for the tests: {e}"))
}

/// A regtest chain of its own in a temporary directory.
pub struct Chain {
    pub node: Bitcoind,
    pub dir: TempDir,
}

impl Chain {
    pub fn start() -> Chain {
        let dir = tempfile::tempdir().expect("tempdir");
        let node = Bitcoind::start(&bitcoind_exe(), &dir.path().join("bitcoind")).expect("start bitcoind");
        Chain { node, dir }
    }

    pub fn rpc(&self) -> ChainSource {
        self.node.chain_source()
    }

    /// Mines `blocks` paying `address`.
    pub fn mine_to(&self, blocks: u32, address: &str) {
        self.rpc().generate_to_address(blocks, address).expect("generatetoaddress");
    }

    /// Mines `blocks` to an address nobody in the test owns.
    pub fn mine(&self, blocks: u32) {
        self.mine_to(blocks, &outside_address(99).to_string());
    }

    pub fn height(&self) -> u32 {
        self.rpc().info().expect("getblockchaininfo").blocks
    }

    /// `getrawtransaction txid true` (the node runs with txindex).
    pub fn raw_tx(&self, txid: &str) -> Value {
        call_bitcoind(&self.rpc(), "getrawtransaction", &[json!(txid), json!(true)])
    }

    /// A transaction of the chain or the mempool, decoded.
    pub fn tx(&self, txid: &str) -> sendero_wallet::bitcoin::Transaction {
        let hex = self.raw_tx(txid)["hex"].as_str().expect("hex").to_owned();
        sendero_wallet::bitcoin::consensus::encode::deserialize_hex(&hex).expect("transaction")
    }

    /// The fee of `t`, from its inputs' previous outputs on the chain (in sats, exactly).
    pub fn fee(&self, t: &sendero_wallet::bitcoin::Transaction) -> u64 {
        let inputs: u64 = t
            .input
            .iter()
            .map(|i| {
                self.tx(&i.previous_output.txid.to_string()).output[i.previous_output.vout as usize].value.to_sat()
            })
            .sum();
        inputs - t.output.iter().map(|o| o.value.to_sat()).sum::<u64>()
    }

    /// How many times each address is paid in the blocks after `from` (exclusive) up to the tip.
    pub fn paid_after(&self, from: u32) -> std::collections::HashMap<String, usize> {
        let mut paid = std::collections::HashMap::new();
        for height in from + 1..=self.height() {
            let hash = call_bitcoind(&self.rpc(), "getblockhash", &[json!(height)]);
            let block = call_bitcoind(&self.rpc(), "getblock", &[hash, json!(1)]);
            for txid in block["tx"].as_array().expect("txs") {
                for out in self.tx(txid.as_str().expect("txid")).output {
                    if let Ok(a) = Address::from_script(&out.script_pubkey, Network::Regtest) {
                        *paid.entry(a.to_string()).or_insert(0) += 1;
                    }
                }
            }
        }
        paid
    }

    pub fn mempool(&self) -> Vec<String> {
        serde_json::from_value(call_bitcoind(&self.rpc(), "getrawmempool", &[])).expect("mempool list")
    }
}

pub fn call_bitcoind(rpc: &ChainSource, method: &str, args: &[Value]) -> Value {
    use bdk_bitcoind_rpc::bitcoincore_rpc::RpcApi;
    rpc.call(method, args).unwrap_or_else(|e| panic!("bitcoind {method}: {e}"))
}

/// A regtest address whose key is `seed` repeated: outside every Sendero wallet.
pub fn outside_address(seed: u8) -> Address {
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&[seed.max(1); 32]).expect("valid key");
    let pk = CompressedPublicKey(sk.public_key(&secp));
    Address::p2wpkh(&pk, Network::Regtest)
}

/// The `n`th of as many outside addresses as a test needs (none of them [`outside_address`]'s).
pub fn outside_address_at(n: u32) -> Address {
    let mut key = [0x5a; 32];
    key[28..].copy_from_slice(&n.to_be_bytes());
    let secp = Secp256k1::new();
    let sk = SecretKey::from_slice(&key).expect("valid key");
    Address::p2wpkh(&CompressedPublicKey(sk.public_key(&secp)), Network::Regtest)
}

/// How a gateway's admin RPC is reached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AdminMode {
    Socket,
    Tcp,
}

/// A real `senderod` process on a chain.
pub struct Gateway {
    pub datadir: PathBuf,
    pub api_port: u16,
    pub ln_port: u16,
    pub admin_port: Option<u16>,
    child: Option<Child>,
    runtime: tokio::runtime::Runtime,
    /// Environment set on the next starts (e.g. `SENDERO_FAILPOINT`).
    pub env: Vec<(String, String)>,
    /// Arguments given to senderod beside `--config` (e.g. `--role api`).
    pub args: Vec<String>,
    /// Every admin cookie the gateway wrote (one per start over TCP): never to be logged.
    cookies: Vec<String>,
}

/// The tests' webhook receivers listen on 127.0.0.1, which the SSRF guard refuses unless
/// allowed: `extra` with `[webhooks] allow_private = ["127.0.0.0/8"]`, unless it sets its own.
fn allow_loopback_webhooks(extra: &str) -> String {
    const ALLOW: &str = "allow_private = [\"127.0.0.0/8\"]\n";
    if extra.contains("allow_private") {
        extra.to_owned()
    } else if extra.contains("[webhooks]\n") {
        extra.replacen("[webhooks]\n", &format!("[webhooks]\n{ALLOW}"), 1)
    } else {
        format!("{extra}\n[webhooks]\n{ALLOW}")
    }
}

impl Gateway {
    /// Writes a config for `chain` under `datadir` and starts senderod; returns once it answers.
    pub fn start(chain: &Chain, datadir: &Path, admin: AdminMode) -> Gateway {
        Self::start_with(chain, datadir, admin, "human", "")
    }

    /// Like [`Gateway::start`], with `log.format` set to `log_format` and `extra` appended to the
    /// generated config (whole sections, e.g. `[fx]`).
    pub fn start_with(chain: &Chain, datadir: &Path, admin: AdminMode, log_format: &str, extra: &str) -> Gateway {
        Self::start_with_args(chain, datadir, admin, log_format, extra, &[])
    }

    /// Like [`Gateway::start_with`], with `args` given to senderod (e.g. `["--role", "api"]`).
    pub fn start_with_args(
        chain: &Chain,
        datadir: &Path,
        admin: AdminMode,
        log_format: &str,
        extra: &str,
        args: &[&str],
    ) -> Gateway {
        std::fs::create_dir_all(datadir).expect("datadir");
        let api_port = free_port().expect("port");
        let admin_port = (admin == AdminMode::Tcp).then(|| free_port().expect("port"));
        let ln_port = free_port().expect("port");
        let config = format!(
            "network = \"regtest\"\ndatadir = {datadir:?}\n\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n\n\
             [admin]\nlisten = \"{admin}\"\n\n[bitcoind]\nrpc_url = \"{url}\"\nrpc_cookie = {cookie:?}\npoll_interval_ms = 200\n\n\
             [lightning]\nlisten = \"127.0.0.1:{ln_port}\"\nalias = \"{alias}\"\n\n[log]\nlevel = \"info,sendero=debug\"\nformat = \"{log_format}\"\n",
            datadir = datadir.display().to_string(),
            admin = admin_port.map(|p| format!("127.0.0.1:{p}")).unwrap_or_default(),
            url = chain.node.rpc_url(),
            alias = datadir.file_name().and_then(|n| n.to_str()).unwrap_or("sendero"),
            cookie = chain.node.cookie_path().display().to_string(),
        );
        let mut extra = allow_loopback_webhooks(extra);
        if postgres::enabled() && !extra.contains("[store]") {
            let hint = datadir.file_name().and_then(|n| n.to_str()).unwrap_or("gw");
            let url = postgres::PgServer::get().new_database(hint);
            extra = format!("{extra}\n[store]\nurl = \"{url}\"\n");
        }
        std::fs::write(datadir.join("senderod.toml"), format!("{config}\n{extra}\n")).expect("write config");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let mut gw = Gateway {
            datadir: datadir.to_path_buf(),
            api_port,
            ln_port,
            admin_port,
            child: None,
            runtime,
            env: vec![],
            args: args.iter().map(|a| a.to_string()).collect(),
            cookies: vec![],
        };
        gw.spawn();
        gw
    }

    fn spawn(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.datadir.join("senderod.log")).expect("log");
        let mut cmd = Command::new(SENDEROD);
        cmd.arg("--config").arg(self.datadir.join("senderod.toml")).args(&self.args);
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("SENDERO_") && k != "SENDERO_CACHE") {
            cmd.env_remove(key);
        }
        if NO_RATE_LIMIT.load(std::sync::atomic::Ordering::Relaxed) {
            cmd.env("SENDERO_API_RATE_LIMIT_PER_SEC", "0");
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log).spawn().expect("spawn senderod");
        self.child = Some(child);
        wait_for("senderod to serve its admin RPC", Duration::from_secs(60), || {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("senderod exited with {status}:\n{}", self.log());
            }
            self.try_call("getinfo", json!({})).is_ok()
        });
        if let Ok(cookie) = std::fs::read_to_string(self.datadir.join("admin.cookie")) {
            self.cookies.push(cookie.trim().to_owned());
        }
    }

    /// senderod's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.datadir.join("senderod.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn client(&self) -> AdminClient {
        AdminClient::new(&self.datadir, self.admin_port.map(|p| ([127, 0, 0, 1], p).into()))
    }

    pub fn try_call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.runtime.block_on(self.client().call(method, params))
    }

    /// Calls an admin method that must succeed.
    pub fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params).unwrap_or_else(|e| panic!("{method} failed: {e}\n{}", self.log()))
    }

    /// Calls an admin method that must fail, and returns its stable error code.
    pub fn error_code(&self, method: &str, params: Value) -> String {
        match self.try_call(method, params.clone()) {
            Err(ClientError::Rpc { code, .. }) => code,
            other => panic!("{method} {params} should have been refused, got {other:?}"),
        }
    }

    /// Sends `body` to the admin RPC as it is; returns the whole JSON-RPC response.
    pub fn call_raw(&self, body: &[u8]) -> Value {
        self.runtime.block_on(self.client().call_raw(body.to_vec())).expect("raw admin call")
    }

    /// `GET path` on the public API: (status, JSON body).
    pub fn get(&self, path: &str) -> (u16, Value) {
        http_get(self.api_port, path)
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().expect("wait senderod");
        assert!(status.success(), "senderod exited with {status} on SIGTERM:\n{}", self.log());
    }

    /// SIGKILL: the process dies wherever it is, as in a power cut.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits until the process ends by itself (a failpoint aborted it).
    pub fn wait_exit(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let status = child.wait().expect("wait senderod");
        assert!(!status.success(), "senderod was expected to abort, exited with {status}");
    }

    /// Starts senderod again on the same data dir and config (after `kill` or `stop`).
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// SIGTERM, then start again on the same data dir and config.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Wallet balances as the admin RPC reports them.
    pub fn balance(&self) -> Value {
        self.call("wallet.balance", json!({}))
    }

    /// `sendero-cli` against this gateway (JSON output).
    pub fn cli(&self, args: &[&str]) -> Value {
        cli_json(&self.datadir, args)
    }

    /// A new API key with these comma-separated scopes (made with `sendero-cli apikey.create`).
    pub fn api_key(&self, scopes: &str) -> String {
        let created = self.cli(&["apikey.create", "--label", scopes, "--scopes", scopes]);
        created["key"].as_str().expect("key").to_owned()
    }

    pub fn synced_height(&self) -> u64 {
        self.balance()["synced_height"].as_u64().expect("synced_height")
    }
}

impl Drop for Gateway {
    /// Stops the process, then checks that its log shows no secret (every e2e test's gateways
    /// pass through here: the suite-wide check of issue 15).
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            assert_no_secrets(&self.datadir, &self.log(), &self.cookies);
        }
    }
}

/// Panics when `log` (a senderod log) shows a secret of the gateway on `datadir`: the mnemonic
/// (any four of its words in a row, whatever stands between them), an API key secret
/// (`sk_` + 64 hex digits), a `whsec_` webhook secret, an admin cookie (`cookies`, and the one
/// on disk), or the dev API key.
pub fn assert_no_secrets(datadir: &Path, log: &str, cookies: &[String]) {
    let words = |text: &str| -> Vec<String> {
        text.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
    };
    if let Ok(mnemonic) = std::fs::read_to_string(datadir.join("mnemonic")) {
        let (secret, logged) = (words(&mnemonic), words(log));
        for run in secret.windows(4) {
            assert!(
                !logged.windows(4).any(|w| w == run),
                "the log of {} shows the mnemonic's words",
                datadir.display()
            );
        }
    }
    assert!(!log.contains("whsec_"), "the log of {} shows a webhook secret", datadir.display());
    let bytes = log.as_bytes();
    let api_key = log
        .match_indices("sk_")
        .any(|(i, _)| bytes.len() >= i + 3 + 64 && bytes[i + 3..i + 3 + 64].iter().all(|b| b.is_ascii_hexdigit()));
    assert!(!api_key, "the log of {} shows an API key's secret", datadir.display());
    let on_disk = ["admin.cookie", "dev-api-key"].map(|f| std::fs::read_to_string(datadir.join(f)).unwrap_or_default());
    for secret in cookies.iter().chain(&on_disk).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        assert!(!log.contains(secret), "the log of {} shows the admin cookie or dev key", datadir.display());
    }
}

/// `sendero-cli --datadir <datadir> <args> --json`, which must succeed; its JSON output.
pub fn cli_json(datadir: &Path, args: &[&str]) -> Value {
    let out = Command::new(SENDERO_CLI)
        .arg("--datadir")
        .arg(datadir)
        .args(args)
        .arg("--json")
        .output()
        .expect("run sendero-cli");
    // With --json an error is printed on stdout: show both.
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "sendero-cli {args:?} ({}): {stdout}{stderr}", out.status);
    serde_json::from_slice(&out.stdout).expect("sendero-cli prints JSON")
}

/// A plain HTTP/1.1 GET on 127.0.0.1:`port`; (status, JSON body or Null).
pub fn http_get(port: u16, path: &str) -> (u16, Value) {
    http_get_with_key(port, path, None)
}

/// `http_get` with `Authorization: Bearer <key>`.
pub fn http_get_with_key(port: u16, path: &str, key: Option<&str>) -> (u16, Value) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return (0, Value::Null) };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, Value::Null);
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A plain HTTP/1.1 POST of a JSON body with an API key and an optional idempotency key;
/// (status, raw body text).
pub fn http_post(port: u16, path: &str, key: &str, idem: Option<&str>, body: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let idem = idem.map(|k| format!("X-Idempotency-Key: {k}\r\n")).unwrap_or_default();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n{idem}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

/// Routes and submits an on-chain payout of `sat` to [`outside_address`]`(seed)` with the
/// idempotency key `idem`; the payment id.
pub fn onchain_payout(gw: &Gateway, key: &str, sat: u64, seed: u8, idem: &str) -> String {
    let post = |path: &str, idem: Option<&str>, body: &Value| {
        let (status, text) = http_post(gw.api_port, path, key, idem, &body.to_string());
        (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null))
    };
    let body =
        json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": outside_address(seed).to_string()});
    let (status, r) = post("/v1/payments/route", None, &body);
    assert_eq!(status, 200, "{r}");
    let (status, p) = post("/v1/payments/submit", Some(idem), &json!({"route_id": r["route_id"], "rail": "onchain"}));
    assert_eq!(status, 202, "{p}");
    p["payment_id"].as_str().expect("payment_id").to_owned()
}

/// Routes `sat` to `destination` at `priority` and submits it on `rail` (the route id as the
/// idempotency key); the payment id.
pub fn api_payout(gw: &Gateway, key: &str, sat: u64, destination: &str, rail: &str, priority: &str) -> String {
    let body =
        json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": destination, "priority": priority});
    let (status, text) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{text}");
    let r: Value = serde_json::from_str(&text).expect("route");
    let body = json!({"route_id": r["route_id"], "rail": rail}).to_string();
    let idem = r["route_id"].as_str().expect("route_id");
    let (status, text) = http_post(gw.api_port, "/v1/payments/submit", key, Some(idem), &body);
    assert_eq!(status, 202, "{text}");
    serde_json::from_str::<Value>(&text).expect("payment")["payment_id"].as_str().expect("payment_id").to_owned()
}

/// Waits (a minute at most) until the payment is final; its status (`SETTLED` or `FAILED`).
pub fn final_status(gw: &Gateway, key: &str, id: &str) -> String {
    let mut last = String::new();
    wait_for(&format!("{id} final"), Duration::from_secs(60), || {
        last = http_get_with_key(gw.api_port, &format!("/v1/payments/{id}"), Some(key)).1["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        last == "SETTLED" || last == "FAILED"
    });
    last
}

/// A plain HTTP/1.1 DELETE with an API key; (status, JSON body or Null).
pub fn http_delete(port: u16, path: &str, key: &str) -> (u16, Value) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return (0, Value::Null) };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, Value::Null);
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap_or(Value::Null))
}

/// Seconds since the Unix epoch.
/// A connection to the books of the gateway in `datadir`: its SQLite file, or its PostgreSQL
/// database when its config names one (`SENDERO_TEST_STORE=postgres`). Statements are written
/// as the daemon's are, in the SQL both share.
pub fn books(datadir: &Path) -> sendero::store::sql::Connection {
    let config = std::fs::read_to_string(datadir.join("senderod.toml")).unwrap_or_default();
    let url = config.lines().find_map(|l| {
        l.trim().strip_prefix("url = \"postgres").map(|rest| format!("postgres{}", rest.trim_end_matches('"')))
    });
    match url {
        Some(url) => sendero::store::sql::Connection::postgres(&url, true).expect("connect to the books"),
        None => sendero::store::sql::Connection::sqlite(
            rusqlite::Connection::open(datadir.join("sendero.sqlite")).expect("open the books"),
        ),
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// Routes `sat` to `address` at `priority` and submits it on `rail` (idempotency key `idem`);
/// the payment's id.
pub fn route_and_submit(
    gw: &Gateway,
    key: &str,
    (address, sat, priority): (&str, u64, &str),
    rail: &str,
    idem: &str,
) -> String {
    let body = json!({"amount": {"minor_units": sat, "currency": "SAT"}, "destination": address, "priority": priority});
    let (status, route) = http_post(gw.api_port, "/v1/payments/route", key, None, &body.to_string());
    assert_eq!(status, 200, "{route}");
    let route: Value = serde_json::from_str(&route).expect("route");
    let submit = json!({"route_id": route["route_id"], "rail": rail}).to_string();
    let (status, submitted) = http_post(gw.api_port, "/v1/payments/submit", key, Some(idem), &submit);
    assert_eq!(status, 202, "{submitted}");
    let submitted: Value = serde_json::from_str(&submitted).expect("payment");
    submitted["payment_id"].as_str().expect("payment_id").to_owned()
}

/// With the gateway stopped: puts off the next attempt of `payment_id`, stored `sending` (a
/// transaction signed, not broadcast), by `secs`, as after a failed broadcast.
pub fn postpone_sending(gw: &Gateway, payment_id: &str, secs: u64) {
    let db = books(&gw.datadir);
    let later = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() + secs;
    let n = db
        .execute(
            "UPDATE payments SET attempts = 1, next_attempt_at = ?1 WHERE payment_id = ?2 AND state = 'sending'",
            sendero::store::sql::params![later as i64, payment_id],
        )
        .expect("postpone");
    assert_eq!(n, 1, "{payment_id} is stored as sending");
}

/// Waits (a minute at most) for the payment's transaction to be in the mempool and the payout
/// recorded as sent (a moment after bitcoind took it: until then it is `sending`, and an
/// operator's bump is told to ask again once it is sent); its txid.
pub fn broadcast(gw: &Gateway, key: &str, chain: &Chain, id: &str) -> String {
    let mut txid = String::new();
    wait_for("the payout broadcast", Duration::from_secs(60), || {
        txid = payment(gw, key, id)["txid"].as_str().unwrap_or_default().to_owned();
        !txid.is_empty() && chain.mempool().contains(&txid)
    });
    wait_for("the payout recorded as sent", Duration::from_secs(60), || {
        let events = gw.call("payment.get", json!({"payment_id": id}))["events"].clone();
        events.as_array().is_some_and(|e| e.iter().any(|e| e["type"] == "payment.sent"))
    });
    txid
}

/// A `low` `onchain_batch` payout of 30,000 sat to each of `payees` (idempotency keys
/// `{tag}0`, `{tag}1` …), then `batch.trigger`, which must broadcast their batch: the payouts'
/// ids, the trigger's answer and the batch's txid.
pub fn batch_left(gw: &Gateway, key: &str, payees: &[String], tag: &str) -> (Vec<String>, Value, String) {
    let ids: Vec<String> = payees
        .iter()
        .enumerate()
        .map(|(i, to)| route_and_submit(gw, key, (to, 30_000, "low"), "onchain_batch", &format!("{tag}{i}")))
        .collect();
    let left = gw.call("batch.trigger", json!({}));
    assert_eq!(left["broadcast"], true, "{left:#}\n{}", gw.log());
    let txid = left["txid"].as_str().expect("txid").to_owned();
    (ids, left, txid)
}

/// `GET /v1/payments/{id}` with `key`: the payment's view.
pub fn payment(gw: &Gateway, key: &str, id: &str) -> Value {
    let (status, p) = http_get_with_key(gw.api_port, &format!("/v1/payments/{id}"), Some(key));
    assert_eq!(status, 200, "{p}");
    p
}

/// Waits (a minute at most) for the payment to settle; its view then (the gateway's log when it
/// does not).
pub fn settled(gw: &Gateway, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = payment(gw, key, id);
        if p["status"] == "SETTLED" {
            return p;
        }
        assert!(Instant::now() < deadline, "{id} not settled: {p}\n{}", gw.log());
        std::thread::sleep(Duration::from_millis(200));
    }
}
