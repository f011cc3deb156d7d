//! Peers and channels: connecting, opening, closing and splicing, each input checked before
//! `ldk-node` is asked.

use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::Address;
use ldk_node::UserChannelId;

use crate::destination::{parse_node_id, parse_socket};
use crate::node::LightningNode;
use crate::types::{Channel, Peer};
use crate::LightningError;

impl LightningNode {
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
}
