//! The node itself: built from [`LightningConfig`], started and stopped with the daemon, and the
//! operations the admin RPC exposes. Every input is checked before `ldk-node` is asked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::{Address, Network};
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use ldk_node::{Builder, ChannelDetails, Event, Node, UserChannelId};

use crate::holdings::{Holdings, OnchainTx};
use crate::keysend::{self, is_keysend, read_keysend};
use crate::offer::{is_offer, payable_offer};
use crate::route::{self, Edge};
use crate::types::{Channel, CreatedOffer, Invoice, LnBalance, NodeInfo, Payment, Peer};
use crate::LightningError;

/// Everything needed to build the node.
#[derive(Clone)]
pub struct LightningConfig {
    /// Chain.
    pub network: Network,
    /// Where ldk-node keeps its SQLite store.
    pub storage_dir: PathBuf,
    /// bitcoind RPC host (the same bitcoind as the treasury).
    pub rpc_host: String,
    /// bitcoind RPC port.
    pub rpc_port: u16,
    /// bitcoind RPC user (the cookie's `__cookie__` works).
    pub rpc_user: String,
    /// bitcoind RPC password.
    pub rpc_password: String,
    /// P2P listening addresses, `host:port`.
    pub listen: Vec<String>,
    /// Public alias (needed to announce channels).
    pub alias: Option<String>,
    /// 64 bytes of seed, derived from the gateway mnemonic.
    pub seed: [u8; 64],
}

/// A running `ldk-node`. Stopped on drop.
pub struct LightningNode {
    pub(crate) node: Arc<Node>,
    /// What keysend preimages are derived from (see [`crate::keysend`]).
    pub(crate) keysend_secret: [u8; 32],
    network: Network,
    /// When this run of the node started, for [`LightningNode::recover_lost`].
    pub(crate) started: Instant,
    pub(crate) started_unix: u64,
    /// When each payment was last examined by [`LightningNode::recover_lost`].
    pub(crate) examined: Mutex<HashMap<PaymentId, Instant>>,
}

impl LightningNode {
    /// Builds and starts the node. Blocking: call it off the async threads (it needs a
    /// multi-threaded tokio runtime around it).
    pub fn start(config: LightningConfig) -> Result<LightningNode, LightningError> {
        let setup = |what: &str, e: &dyn std::fmt::Display| LightningError::Setup(format!("{what}: {e}"));
        std::fs::create_dir_all(&config.storage_dir).map_err(|e| setup("storage dir", &e))?;
        let mut builder = Builder::new();
        builder
            .set_network(config.network)
            .set_storage_dir_path(config.storage_dir.to_string_lossy().into_owned())
            .set_entropy_seed_bytes(config.seed)
            .set_chain_source_bitcoind_rpc(config.rpc_host, config.rpc_port, config.rpc_user, config.rpc_password)
            .set_log_facade_logger();
        let listen = config
            .listen
            .iter()
            .map(|a| SocketAddress::from_str(a).map_err(|_| setup("listen address", a)))
            .collect::<Result<Vec<_>, _>>()?;
        builder.set_listening_addresses(listen).map_err(|e| setup("listen addresses", &e))?;
        if let Some(alias) = config.alias.filter(|a| !a.is_empty()) {
            builder.set_node_alias(alias).map_err(|e| setup("alias", &e))?;
        }
        let node = builder.build().map_err(|e| setup("build", &e))?;
        node.start().map_err(|e| setup("start", &e))?;
        tracing::info!(node_id = %node.node_id(), "lightning node started");
        let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        Ok(LightningNode {
            node: Arc::new(node),
            keysend_secret: keysend::keysend_secret(&config.seed),
            network: config.network,
            started: Instant::now(),
            started_unix,
            examined: Mutex::new(HashMap::new()),
        })
    }

    /// Stops the node (idempotent).
    pub fn stop(&self) {
        if self.node.status().is_running {
            if let Err(e) = self.node.stop() {
                tracing::warn!(error = %e, "lightning node stop");
            } else {
                tracing::info!("lightning node stopped");
            }
        }
    }

    /// The next event; it is delivered again until [`LightningNode::event_handled`] is called.
    pub async fn next_event(&self) -> Event {
        self.node.next_event_async().await
    }

    /// Acknowledges the current event.
    pub fn event_handled(&self) -> Result<(), LightningError> {
        self.node.event_handled().map_err(|e| LightningError::from_node("event_handled", e))
    }

    /// Node id, hex.
    pub fn node_id(&self) -> String {
        self.node.node_id().to_string()
    }

    /// The node at a glance.
    pub fn info(&self) -> NodeInfo {
        let channels = self.node.list_channels();
        let usable: Vec<&ChannelDetails> = channels.iter().filter(|c| c.is_usable).collect();
        NodeInfo {
            node_id: self.node_id(),
            listening_addresses: self
                .node
                .listening_addresses()
                .unwrap_or_default()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            best_block_height: self.node.status().current_best_block.height,
            peers: self.node.list_peers().iter().filter(|p| p.is_connected).count(),
            channels: channels.len(),
            usable_channels: usable.len(),
            outbound_msat: usable.iter().map(|c| c.outbound_capacity_msat).sum(),
            inbound_msat: usable.iter().map(|c| c.inbound_capacity_msat).sum(),
        }
    }

    /// Connects to a peer and remembers it.
    pub fn connect(&self, node_id: &str, address: &str) -> Result<(), LightningError> {
        let (pk, addr) = (parse_node_id(node_id)?, parse_socket(address)?);
        self.node.connect(pk, addr, true).map_err(|e| LightningError::from_node("connect", e))
    }

    /// Checks a peer's node id and address without contacting it.
    pub fn check_peer(&self, node_id: &str, address: &str) -> Result<(), LightningError> {
        parse_node_id(node_id)?;
        parse_socket(address)?;
        Ok(())
    }

    /// Known peers.
    pub fn peers(&self) -> Vec<Peer> {
        self.node.list_peers().iter().map(Peer::from).collect()
    }

    /// Channels.
    pub fn channels(&self) -> Vec<Channel> {
        self.node.list_channels().iter().map(Channel::from).collect()
    }

    /// Balances.
    pub fn balance(&self) -> LnBalance {
        LnBalance::from(&self.node.list_balances())
    }

    /// What the node holds, piece by piece (see [`Holdings`]).
    pub fn holdings(&self) -> Holdings {
        // Payments first: a sweep whose transaction the wallet lists is counted in the wallet.
        let payments = self.node.list_payments();
        crate::holdings::holdings(&self.node.list_balances(), &self.node.list_channels(), &payments)
    }

    /// [`LightningNode::holdings`] once two reads 200 ms apart agree: for a moment after a
    /// payment's event, while the HTLC is being removed from the channel, the channel figures
    /// still move. Up to `tries` pairs; `false` when they never agreed.
    pub fn steady_holdings(&self, tries: u32) -> (Holdings, bool) {
        let mut last = self.holdings();
        for _ in 0..tries {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.holdings();
            if now == last {
                return (now, true);
            }
            last = now;
        }
        (last, false)
    }

    /// The transactions of the node's own on-chain wallet.
    pub fn onchain_txs(&self) -> Vec<OnchainTx> {
        crate::holdings::onchain_txs(&self.node.list_payments())
    }

    /// Payments, newest first.
    pub fn payments(&self) -> Vec<Payment> {
        let mut payments: Vec<Payment> = self.node.list_payments().iter().map(Payment::from).collect();
        payments.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.payment_id.cmp(&b.payment_id)));
        payments
    }

    /// A fresh address of the node's own on-chain wallet (where channel funds come from).
    pub fn new_onchain_address(&self) -> Result<Address, LightningError> {
        self.node.onchain_payment().new_address().map_err(|e| LightningError::from_node("new address", e))
    }

    /// Opens a channel; returns its user channel id.
    pub fn open_channel(
        &self,
        node_id: &str,
        address: &str,
        amount_sat: u64,
        push_msat: Option<u64>,
        announce: bool,
    ) -> Result<String, LightningError> {
        let (pk, addr) = (parse_node_id(node_id)?, parse_socket(address)?);
        if push_msat.is_some_and(|p| p > amount_sat.saturating_mul(1000)) {
            return Err(LightningError::invalid("invalid_amount", "push_msat exceeds the channel amount"));
        }
        let opened = if announce {
            self.node.open_announced_channel(pk, addr, amount_sat, push_msat, None)
        } else {
            self.node.open_channel(pk, addr, amount_sat, push_msat, None)
        };
        opened.map(|id| id.0.to_string()).map_err(|e| LightningError::from_node("open channel", e))
    }

    /// Closes a channel cooperatively, or force-closes it.
    pub fn close_channel(&self, channel_id: &str, force: bool) -> Result<(), LightningError> {
        let (ucid, peer) = self.find_channel(channel_id)?;
        let closed =
            if force { self.node.force_close_channel(&ucid, peer, None) } else { self.node.close_channel(&ucid, peer) };
        closed.map_err(|e| LightningError::from_node("close channel", e))
    }

    /// Adds `amount_sat` from the node's on-chain wallet to a channel.
    pub fn splice_in(&self, channel_id: &str, amount_sat: u64) -> Result<(), LightningError> {
        let (ucid, peer) = self.find_channel(channel_id)?;
        self.node.splice_in(&ucid, peer, amount_sat).map_err(|e| LightningError::from_node("splice in", e))
    }

    /// Moves `amount_sat` out of a channel to `address`.
    pub fn splice_out(&self, channel_id: &str, amount_sat: u64, address: &Address) -> Result<(), LightningError> {
        let (ucid, peer) = self.find_channel(channel_id)?;
        self.node.splice_out(&ucid, peer, address, amount_sat).map_err(|e| LightningError::from_node("splice out", e))
    }

    /// Checks that a channel with this id exists.
    pub fn check_channel(&self, channel_id: &str) -> Result<(), LightningError> {
        self.find_channel(channel_id).map(|_| ())
    }

    fn find_channel(&self, channel_id: &str) -> Result<(UserChannelId, PublicKey), LightningError> {
        let wanted = channel_id.trim().to_ascii_lowercase();
        self.node
            .list_channels()
            .into_iter()
            .find(|c| c.channel_id.to_string() == wanted)
            .map(|c| (c.user_channel_id, c.counterparty_node_id))
            .ok_or_else(|| LightningError::UnknownChannel(channel_id.to_owned()))
    }

    /// Issues a BOLT11 invoice (`amount_msat` `None`: the payer chooses).
    pub fn invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
    ) -> Result<Invoice, LightningError> {
        let desc = Description::new(description.to_owned())
            .map_err(|e| LightningError::invalid("invalid_description", format!("description: {e}")))?;
        let desc = Bolt11InvoiceDescription::Direct(desc);
        let bolt11 = self.node.bolt11_payment();
        let invoice = match amount_msat {
            Some(0) => return Err(LightningError::invalid("invalid_amount", "amount_msat must be at least 1")),
            Some(msat) => bolt11.receive(msat, &desc, expiry_secs),
            None => bolt11.receive_variable_amount(&desc, expiry_secs),
        }
        .map_err(|e| LightningError::from_node("create invoice", e))?;
        Ok(Invoice {
            bolt11: invoice.to_string(),
            payment_hash: invoice.payment_hash().to_string(),
            amount_msat: invoice.amount_milli_satoshis(),
            expires_at: invoice.expires_at().map(|d| d.as_secs()).unwrap_or_default(),
        })
    }

    /// Issues a BOLT12 offer (`amount_msat` `None`: the payer chooses).
    pub fn offer(&self, amount_msat: Option<u64>, description: &str) -> Result<CreatedOffer, LightningError> {
        let bolt12 = self.node.bolt12_payment();
        let offer = match amount_msat {
            Some(0) => return Err(LightningError::invalid("invalid_amount", "amount_msat must be at least 1")),
            Some(msat) => bolt12.receive(msat, description, None, None),
            None => bolt12.receive_variable_amount(description, None),
        }
        .map_err(|e| LightningError::from_node("create offer", e))?;
        Ok(CreatedOffer { offer: offer.to_string(), offer_id: hex(&offer.id().0) })
    }

    /// Pays a BOLT11 invoice or a BOLT12 offer; returns the payment id (hex). `amount_msat` is
    /// required when the invoice or offer names no amount, and must match when it does.
    pub fn pay(&self, destination: &str, amount_msat: Option<u64>) -> Result<String, LightningError> {
        self.pay_once(destination, amount_msat, None)
    }

    /// Pays like [`LightningNode::pay`], at most once per `key`: an invoice is paid under its
    /// payment hash (ldk-node refuses to pay it again while a payment of it is pending or has
    /// succeeded), an offer payment carries `key` as its payer note, and a keysend
    /// (`keysend:<node id>`, `amount_msat` required) uses a preimage derived from `key`, so that
    /// its payment hash — ldk-node's id for it — is the same for every attempt. After a restart
    /// [`LightningNode::payment_for`] finds the payment made for `key`.
    pub fn pay_once(
        &self,
        destination: &str,
        amount_msat: Option<u64>,
        key: Option<&str>,
    ) -> Result<String, LightningError> {
        let text = destination.trim();
        if is_offer(text) {
            return self.pay_offer(text, amount_msat, key.map(str::to_owned));
        }
        if is_keysend(text) {
            let amount = settle_amount(None, amount_msat)?;
            return self.send_keysend(&read_keysend(text)?, amount, key);
        }
        let invoice = payable_bolt11(text, self.network)?;
        let fixed = invoice.amount_milli_satoshis();
        let amount = settle_amount(fixed, amount_msat)?;
        self.check_liquidity(amount)?;
        let bolt11 = self.node.bolt11_payment();
        let sent = match fixed {
            Some(_) => bolt11.send(&invoice, None),
            None => bolt11.send_using_amount(&invoice, amount, None),
        };
        sent.map(|id| hex(&id.0)).map_err(|e| LightningError::from_node("pay invoice", e))
    }

    fn pay_offer(&self, text: &str, amount_msat: Option<u64>, note: Option<String>) -> Result<String, LightningError> {
        let (offer, fixed) = payable_offer(text, self.network)?;
        let amount = settle_amount(fixed, amount_msat)?;
        self.check_liquidity(amount)?;
        let bolt12 = self.node.bolt12_payment();
        let sent = match fixed {
            Some(_) => bolt12.send(&offer, None, note, None),
            None => bolt12.send_using_amount(&offer, amount, None, note, None),
        };
        sent.map(|id| hex(&id.0)).map_err(|e| LightningError::from_node("pay offer", e))
    }

    /// Sends `amount_msat` to `node_id` without an invoice (keysend).
    pub fn keysend(&self, node_id: &str, amount_msat: u64) -> Result<String, LightningError> {
        let pk = parse_node_id(node_id)?;
        if amount_msat == 0 {
            return Err(LightningError::invalid("invalid_amount", "amount_msat must be at least 1"));
        }
        self.send_keysend(&pk, amount_msat, None)
    }

    /// The payment hash (hex) — ldk-node's payment id — of the keysend [`LightningNode::pay_once`]
    /// makes for `key`.
    pub fn keysend_payment_hash(&self, key: &str) -> String {
        hex(&keysend::payment_id_for(&self.keysend_secret, key).0)
    }

    /// A keysend of `amount_msat` to `pk`: with a random preimage, or the one derived from `key`.
    fn send_keysend(&self, pk: &PublicKey, amount_msat: u64, key: Option<&str>) -> Result<String, LightningError> {
        if *pk == self.node.node_id() {
            return Err(LightningError::invalid("invalid_node_id", "a keysend to this node itself pays no one"));
        }
        self.check_liquidity(amount_msat)?;
        let spontaneous = self.node.spontaneous_payment();
        let sent = match key {
            Some(key) => {
                let preimage = keysend::preimage_for(&self.keysend_secret, key);
                spontaneous.send_with_preimage(amount_msat, *pk, preimage, None)
            }
            None => spontaneous.send(amount_msat, *pk, None),
        };
        sent.map(|id| hex(&id.0)).map_err(|e| LightningError::from_node("keysend", e))
    }

    /// The payment [`LightningNode::pay_once`] made to `destination` for `key`, if the node has
    /// one: by the invoice's payment hash, by the payer note of an offer payment, or by the
    /// payment hash a keysend for `key` has.
    pub fn payment_for(&self, destination: &str, key: &str) -> Option<Payment> {
        let text = destination.trim();
        if is_keysend(text) {
            return self.node.payment(&keysend::payment_id_for(&self.keysend_secret, key)).as_ref().map(Payment::from);
        }
        if is_offer(text) {
            let details = self.node.list_payments_with_filter(|p| {
                matches!(&p.kind, ldk_node::payment::PaymentKind::Bolt12Offer { payer_note: Some(n), .. } if n.0 == key)
            });
            return details.first().map(Payment::from);
        }
        let invoice = Bolt11Invoice::from_str(text).ok()?;
        self.payment(&hex(invoice.payment_hash().as_ref()))
    }

    /// One payment by id (hex).
    pub fn payment(&self, payment_id: &str) -> Option<Payment> {
        use ldk_node::bitcoin::hex::FromHex;
        let id = <[u8; 32]>::from_hex(payment_id).ok()?;
        self.node.payment(&PaymentId(id)).as_ref().map(Payment::from)
    }

    /// This node's id as a key.
    pub fn public_key(&self) -> PublicKey {
        self.node.node_id()
    }

    /// What our usable channels can send now, msat.
    pub fn usable_outbound_msat(&self) -> u64 {
        self.node.list_channels().iter().filter(|c| c.is_usable).map(|c| c.next_outbound_htlc_limit_msat).sum()
    }

    pub(crate) fn check_liquidity(&self, amount_msat: u64) -> Result<(), LightningError> {
        let available: u64 =
            self.node.list_channels().iter().filter(|c| c.is_usable).map(|c| c.next_outbound_htlc_limit_msat).sum();
        if amount_msat > available {
            return Err(LightningError::InsufficientLiquidity { needed_msat: amount_msat, available_msat: available });
        }
        Ok(())
    }
}

impl Drop for LightningNode {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A BOLT11 invoice for `network` that has not expired.
fn payable_bolt11(text: &str, network: Network) -> Result<Bolt11Invoice, LightningError> {
    let invoice = Bolt11Invoice::from_str(text).map_err(|e| {
        LightningError::invalid("invalid_invoice", format!("not a BOLT11 invoice or BOLT12 offer: {e}"))
    })?;
    if invoice.network() != network {
        return Err(LightningError::WrongNetwork("the invoice"));
    }
    if invoice.is_expired() {
        return Err(LightningError::InvoiceExpired);
    }
    Ok(invoice)
}

/// A BOLT11 invoice, read and checked (network, expiry) without paying it.
#[derive(Debug, Clone)]
pub struct Bolt11Info {
    /// Who gets paid.
    pub payee: PublicKey,
    /// Fixed amount, if any.
    pub amount_msat: Option<u64>,
    /// Payment hash, hex.
    pub payment_hash: String,
    /// Expiry, unix seconds.
    pub expires_at: u64,
    /// The route hints as directed channels into the payee.
    pub hints: Vec<Edge>,
}

/// Reads a BOLT11 invoice for `network`: `invalid_invoice`, `wrong_network` or `invoice_expired`
/// when it cannot be paid.
pub fn read_bolt11(text: &str, network: Network) -> Result<Bolt11Info, LightningError> {
    let invoice = payable_bolt11(text.trim(), network)?;
    let payee = invoice.get_payee_pub_key();
    let mut hints = Vec::new();
    for hint in invoice.route_hints() {
        let hops = &hint.0;
        for (i, hop) in hops.iter().enumerate() {
            let to = hops.get(i + 1).map(|next| next.src_node_id).unwrap_or(payee);
            hints.push(Edge {
                from: route::node_id(&hop.src_node_id),
                to: route::node_id(&to),
                base_msat: hop.fees.base_msat,
                ppm: hop.fees.proportional_millionths,
                hint: true,
            });
        }
    }
    Ok(Bolt11Info {
        payee,
        amount_msat: invoice.amount_milli_satoshis(),
        payment_hash: invoice.payment_hash().to_string(),
        expires_at: invoice.expires_at().map(|d| d.as_secs()).unwrap_or_default(),
        hints,
    })
}

fn settle_amount(fixed: Option<u64>, given: Option<u64>) -> Result<u64, LightningError> {
    match (fixed, given) {
        (_, Some(0)) => Err(LightningError::invalid("invalid_amount", "amount_msat must be at least 1")),
        (Some(a), None) => Ok(a),
        (Some(a), Some(b)) if a == b => Ok(a),
        (Some(a), Some(b)) => {
            Err(LightningError::invalid("amount_mismatch", format!("the destination asks for {a} msat, not {b}")))
        }
        (None, Some(b)) => Ok(b),
        (None, None) => {
            Err(LightningError::invalid("invalid_amount", "the destination names no amount: give amount_msat"))
        }
    }
}

fn parse_node_id(text: &str) -> Result<PublicKey, LightningError> {
    PublicKey::from_str(text.trim())
        .map_err(|_| LightningError::invalid("invalid_node_id", format!("{text:?} is not a node id")))
}

fn parse_socket(text: &str) -> Result<SocketAddress, LightningError> {
    SocketAddress::from_str(text.trim())
        .map_err(|_| LightningError::invalid("invalid_peer_address", format!("{text:?} is not host:port")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use ldk_node::bitcoin::hex::DisplayHex;
    bytes.to_lower_hex_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_settle_against_the_destination() {
        assert_eq!(settle_amount(Some(5), None), Ok(5));
        assert_eq!(settle_amount(Some(5), Some(5)), Ok(5));
        assert_eq!(settle_amount(None, Some(7)), Ok(7));
        assert_eq!(settle_amount(Some(5), Some(6)).unwrap_err().code(), "amount_mismatch");
        assert_eq!(settle_amount(None, None).unwrap_err().code(), "invalid_amount");
        assert_eq!(settle_amount(None, Some(0)).unwrap_err().code(), "invalid_amount");
    }

    #[test]
    fn inputs_are_checked_before_the_node_is_asked() {
        assert_eq!(parse_node_id("02nothex").unwrap_err().code(), "invalid_node_id");
        assert_eq!(parse_socket("no-port").unwrap_err().code(), "invalid_peer_address");
        assert!(parse_socket("127.0.0.1:9735").is_ok());
    }
}
