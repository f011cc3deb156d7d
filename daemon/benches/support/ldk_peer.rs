//! What the Lightning benches share: a plain ldk-node B beside senderod A on the regtest chain,
//! its events as they come, the channel A opens to it, a webhook receiver timing A's events, and
//! the figures' arithmetic.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sendero_lightning::ldk_node::bitcoin::Network;
use sendero_lightning::ldk_node::{Builder, Event, Node};
use serde_json::{json, Value};

use crate::common::{wait_for, Chain, Gateway};
use crate::support::read_message;

const MINUTE: Duration = Duration::from_secs(60);

/// The positive number in the environment variable `name`, else `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// `d` in milliseconds, for the tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// The `p` quantile (0.0–1.0) of `took`, nearest rank.
pub fn percentile(took: &[Duration], p: f64) -> Duration {
    let mut sorted = took.to_vec();
    sorted.sort();
    sorted.get(((sorted.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
}

/// A plain ldk-node on the chain's bitcoind, listening on `port`.
pub fn start_b(chain: &Chain, dir: &Path, port: u16) -> Arc<Node> {
    let url = chain.node.rpc_url();
    let (host, rpc_port) = url.trim_start_matches("http://").rsplit_once(':').expect("rpc url");
    let cookie = std::fs::read_to_string(chain.node.cookie_path()).expect("cookie");
    let (user, password) = cookie.trim().split_once(':').expect("cookie format");
    let mut builder = Builder::new();
    builder
        .set_network(Network::Regtest)
        .set_storage_dir_path(dir.to_string_lossy().into_owned())
        .set_entropy_seed_bytes([9; 64])
        .set_chain_source_bitcoind_rpc(host.to_owned(), rpc_port.parse().expect("port"), user.into(), password.into());
    builder.set_listening_addresses(vec![format!("127.0.0.1:{port}").parse().expect("address")]).expect("listen");
    let node = builder.build().expect("build B");
    node.start().expect("start B");
    Arc::new(node)
}

/// B's events as they come, each with the instant it was seen (and acknowledged right after).
pub fn forward_events(b: Arc<Node>) -> Receiver<(Event, Instant)> {
    let (tx, rx) = channel();
    std::thread::spawn(move || loop {
        let event = b.wait_next_event();
        let at = Instant::now();
        let _ = b.event_handled();
        if tx.send((event, at)).is_err() {
            return;
        }
    });
    rx
}

/// Funds A's treasury and B's on-chain wallet by mining, then A opens 1,000,000 sat to B through
/// the admin RPC (its node is funded from the treasury first), pushing 400,000 sat to B.
pub fn open_channel(chain: &Chain, a: &Gateway, b: &Node, b_port: u16) {
    let a_addr = a.call("wallet.newaddress", json!({}))["address"].as_str().unwrap_or_default().to_owned();
    chain.mine_to(1, &b.onchain_payment().new_address().expect("B address").to_string());
    chain.mine_to(101, &a_addr);
    wait_for("A's treasury synced", MINUTE, || a.synced_height() == 102);
    wait_for("B's wallet funded", MINUTE, || b.list_balances().spendable_onchain_balance_sats > 0);
    let params = json!({"node_id": b.node_id().to_string(), "addr": format!("127.0.0.1:{b_port}"),
                        "amount_sat": 1_000_000, "push_msat": 400_000_000});
    let opened = a.call("ln.open_channel", params);
    assert_eq!(opened["status"], "awaiting_funding", "{opened}");
    chain.mine(1);
    let channel = || a.call("ln.channels", json!({}))["channels"][0].clone();
    wait_for("A's open to start once its funding confirmed", MINUTE, || !channel().is_null());
    wait_for("the channel's funding in the mempool", MINUTE, || !chain.mempool().is_empty());
    chain.mine(6);
    wait_for("the channel usable on both sides", MINUTE, || {
        channel()["usable"] == true && b.list_channels().first().is_some_and(|c| c.is_usable)
    });
}

/// A webhook receiver: the instant each event of one type arrived, by the id its data carries.
pub struct Hooks {
    port: u16,
    event: &'static str,
    arrived: Receiver<(String, Instant)>,
    seen: HashMap<String, Instant>,
}

impl Hooks {
    /// Receives `event` webhooks, keyed by their `data[id_field]`.
    pub fn start(event: &'static str, id_field: &'static str) -> Hooks {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let (tx, arrived) = channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || serve_hooks(stream, &tx, event, id_field));
            }
        });
        Hooks { port, event, arrived, seen: HashMap::new() }
    }

    /// `POST /v1/webhooks` body.
    pub fn subscription(&self) -> Value {
        json!({"url": format!("http://127.0.0.1:{}/hook", self.port), "events": [self.event]})
    }

    /// When the event about `id` arrived (waits for it).
    pub fn wait(&mut self, id: &str) -> Instant {
        while !self.seen.contains_key(id) {
            let (seen, at) = self.arrived.recv_timeout(MINUTE).expect("the webhook");
            self.seen.insert(seen, at);
        }
        self.seen[id]
    }
}

/// Answers 200 to every request on one (keep-alive) connection, reporting each `event`'s id.
fn serve_hooks(stream: TcpStream, tx: &Sender<(String, Instant)>, event: &str, id_field: &str) {
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    while let Some((_, body)) = read_message(&mut reader) {
        let at = Instant::now();
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        let hook: Value = serde_json::from_slice(&body).unwrap_or_default();
        if hook["type"] == event {
            if let Some(id) = hook["data"][id_field].as_str() {
                let _ = tx.send((id.to_owned(), at));
            }
        }
    }
}
