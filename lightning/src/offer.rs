//! BOLT12 offers read without paying them: network, amount, expiry, the offer id, and where its
//! blinded paths enter the network (each path's introduction node: a node id, or one side of a
//! channel given by its short channel id). A real ldk-node offer signs with a per-offer key that
//! is not the node's id, and reaches the node only through these paths.

use std::str::FromStr;

use ldk_node::bitcoin::constants::ChainHash;
use ldk_node::bitcoin::hex::DisplayHex;
use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::Network;
use ldk_node::lightning::blinded_path::{Direction, IntroductionNode};
use ldk_node::lightning::offers::offer::{Amount as OfferAmount, Offer};

use crate::LightningError;

/// Where one of an offer's blinded paths enters the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intro {
    /// The introduction node, by id.
    Node(PublicKey),
    /// One side of a channel: `node_one` is the lesser node id of the two (BOLT 7's order).
    Channel {
        /// The channel's short channel id (or an alias of it).
        scid: u64,
        /// Whether the introduction node is the channel's lesser node id.
        node_one: bool,
    },
}

/// One of an offer's blinded message paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferPath {
    /// Its introduction node.
    pub intro: Intro,
    /// Blinded hops after the introduction node (0: the introduction node is the issuer).
    pub blinded_hops: usize,
}

/// A BOLT12 offer, read and checked.
#[derive(Debug, Clone)]
pub struct OfferInfo {
    /// The offer id, hex (stable for the offer's text).
    pub offer_id: String,
    /// Fixed amount, if any.
    pub amount_msat: Option<u64>,
    /// The key the issuer signs with, when the offer names one. Without paths it is the node
    /// to pay; with paths it is usually a per-offer key that reaches no node.
    pub issuer: Option<PublicKey>,
    /// The offer's blinded paths (empty: pay `issuer` directly).
    pub paths: Vec<OfferPath>,
    /// When the offer expires, unix seconds (`None`: never).
    pub expires_at: Option<u64>,
}

/// Reads a BOLT12 offer for `network`.
pub fn read_offer(text: &str, network: Network) -> Result<OfferInfo, LightningError> {
    let (offer, amount_msat) = payable_offer(text.trim(), network)?;
    if offer.is_expired() {
        return Err(LightningError::invalid("offer_expired", "the offer has expired"));
    }
    let paths = offer
        .paths()
        .iter()
        .map(|p| OfferPath {
            intro: match p.introduction_node() {
                IntroductionNode::NodeId(pk) => Intro::Node(*pk),
                IntroductionNode::DirectedShortChannelId(dir, scid) => {
                    Intro::Channel { scid: *scid, node_one: *dir == Direction::NodeOne }
                }
            },
            blinded_hops: p.blinded_hops().len().saturating_sub(1),
        })
        .collect();
    Ok(OfferInfo {
        offer_id: offer.id().0.to_lower_hex_string(),
        amount_msat,
        issuer: offer.issuer_signing_pubkey(),
        paths,
        expires_at: offer.absolute_expiry().map(|d| d.as_secs()),
    })
}

/// A BOLT12 offer for `network`, priced in bitcoin or unpriced, with its fixed amount.
pub(crate) fn payable_offer(text: &str, network: Network) -> Result<(Offer, Option<u64>), LightningError> {
    let offer = Offer::from_str(text)
        .map_err(|e| LightningError::invalid("invalid_offer", format!("not a BOLT12 offer: {e:?}")))?;
    if !offer.supports_chain(ChainHash::using_genesis_block(network)) {
        return Err(LightningError::WrongNetwork("the offer"));
    }
    let fixed = match offer.amount() {
        None => None,
        Some(OfferAmount::Bitcoin { amount_msats }) => Some(amount_msats),
        Some(OfferAmount::Currency { .. }) => {
            return Err(LightningError::invalid("invalid_offer", "offers priced in fiat are not supported"))
        }
    };
    Ok((offer, fixed))
}

/// Whether `text` is a BOLT12 offer (`lno…`) rather than a BOLT11 invoice.
pub fn is_offer(text: &str) -> bool {
    text.to_ascii_lowercase().starts_with("lno")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldk_node::bitcoin::secp256k1::{Secp256k1, SecretKey};
    use ldk_node::lightning::blinded_path::message::BlindedMessagePath;
    use ldk_node::lightning::blinded_path::BlindedHop;
    use ldk_node::lightning::offers::offer::OfferBuilder;
    use ldk_node::lightning::util::ser::{Readable, Writeable};

    fn key(n: u8) -> PublicKey {
        PublicKey::from_secret_key(&Secp256k1::new(), &SecretKey::from_slice(&[n; 32]).unwrap())
    }

    #[test]
    fn an_offer_without_paths_names_its_issuer_and_its_id() {
        let offer = OfferBuilder::new(key(3))
            .chain(Network::Regtest)
            .amount_msats(5_000)
            .description("x".into())
            .build()
            .unwrap();
        let info = read_offer(&offer.to_string(), Network::Regtest).unwrap();
        assert_eq!((info.amount_msat, info.issuer, info.paths.len()), (Some(5_000), Some(key(3)), 0));
        assert_eq!(info.offer_id, offer.id().0.to_lower_hex_string());
        assert_eq!(read_offer(&offer.to_string(), Network::Bitcoin).unwrap_err().code(), "wrong_network");
        assert!(is_offer(&offer.to_string().to_ascii_uppercase()));
    }

    /// A blinded message path entering at `intro` (a node id, or with `scid` the side of a
    /// channel: serialized as a direction byte and the short channel id instead of the key).
    fn path(intro: PublicKey, scid: Option<(u8, u64)>) -> BlindedMessagePath {
        let hop = |n| BlindedHop { blinded_node_id: key(n), encrypted_payload: vec![n; 8] };
        let path = BlindedMessagePath::from_blinded_path(intro, key(6), vec![hop(7), hop(8)]);
        let Some((direction, scid)) = scid else { return path };
        let bytes = path.encode();
        let compact = [&[direction][..], &scid.to_be_bytes(), &bytes[33..]].concat();
        BlindedMessagePath::read(&mut &compact[..]).unwrap()
    }

    #[test]
    fn an_offers_paths_name_their_introduction_node_or_channel_side() {
        let offer = OfferBuilder::new(key(3))
            .chain(Network::Regtest)
            .description("x".into())
            .path(path(key(4), None))
            .path(path(key(4), Some((1, 42))))
            .build()
            .unwrap();
        let info = read_offer(&offer.to_string(), Network::Regtest).unwrap();
        assert_eq!(info.amount_msat, None);
        assert_eq!(
            info.paths,
            [
                OfferPath { intro: Intro::Node(key(4)), blinded_hops: 1 },
                OfferPath { intro: Intro::Channel { scid: 42, node_one: false }, blinded_hops: 1 },
            ]
        );
    }
}
