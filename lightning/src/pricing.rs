//! What paying a destination would cost, from what the running node knows: its usable channels
//! (with their forwarding policies), the network graph, an invoice's route hints, and an offer's
//! blinded paths (see [`crate::route`] for the search and the blinded estimate).

use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::lightning::routing::gossip::NodeId;

use crate::node::LightningNode;
use crate::offer::{Intro, OfferInfo};
use crate::route::{self, BlindedEntry, Edge, FirstHop, RouteFee};

/// Where a Lightning payment goes, as pricing needs it.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A node: a BOLT11 payee (with its invoice's route hints) or a keysend recipient.
    Node {
        /// The node.
        node: &'a PublicKey,
        /// Route hints as directed channels into it.
        hints: &'a [Edge],
    },
    /// A BOLT12 offer: through its blinded paths, or to its signing key when it has none.
    Offer(&'a OfferInfo),
}

impl LightningNode {
    /// The cheapest routing fee to deliver `amount_msat` to `target` from our usable channels;
    /// `None` when no path can carry it. For an offer with blinded paths the fee includes an
    /// estimate of the blinded hops (`source` `blinded_path`, the estimate in `blinded_msat`).
    pub fn price(&self, target: Target<'_>, amount_msat: u64) -> Option<RouteFee> {
        match target {
            Target::Node { node, hints } => self.route_fee(node, amount_msat, hints),
            Target::Offer(offer) if offer.paths.is_empty() => self.route_fee(offer.issuer.as_ref()?, amount_msat, &[]),
            Target::Offer(offer) => self.offer_fee(offer, amount_msat),
        }
    }

    /// The cheapest routing fee to deliver `amount_msat` to `payee`, from our usable channels,
    /// the destination's route hints and the network graph; `None` when no path can carry it.
    pub fn route_fee(&self, payee: &PublicKey, amount_msat: u64, hints: &[Edge]) -> Option<RouteFee> {
        let mut edges = hints.to_vec();
        edges.extend(self.graph_edges(amount_msat));
        route::cheapest(route::node_id(payee), amount_msat, &self.first_hops(), &edges)
    }

    fn offer_fee(&self, offer: &OfferInfo, amount_msat: u64) -> Option<RouteFee> {
        let own = route::node_id(&self.public_key());
        let edges = self.graph_edges(amount_msat);
        let own_edges = self.own_policies();
        let entries: Vec<BlindedEntry> = offer
            .paths
            .iter()
            .filter_map(|p| self.resolve(p.intro))
            .map(|intro| {
                let known = if intro == own { &own_edges } else { &edges };
                BlindedEntry { intro, policy: route::blinded_policy(intro, amount_msat, known) }
            })
            .collect();
        route::cheapest_blinded(own, &entries, amount_msat, &self.first_hops(), &edges)
    }

    /// The introduction node of a path: a node id as given, a channel's side through our own
    /// channels (their ids and aliases) or the network graph.
    fn resolve(&self, intro: Intro) -> Option<NodeId> {
        let (scid, node_one) = match intro {
            Intro::Node(pk) => return Some(route::node_id(&pk)),
            Intro::Channel { scid, node_one } => (scid, node_one),
        };
        let own = route::node_id(&self.public_key());
        let ours = self
            .node
            .list_channels()
            .into_iter()
            .find(|c| [c.short_channel_id, c.inbound_scid_alias, c.outbound_scid_alias].contains(&Some(scid)));
        let (a, b) = match ours {
            Some(c) => (own, route::node_id(&c.counterparty_node_id)),
            None => {
                let info = self.node.network_graph().channel(scid)?;
                (info.node_one, info.node_two)
            }
        };
        Some(channel_side(a, b, node_one))
    }

    /// Our usable channels and what each can send now.
    fn first_hops(&self) -> Vec<FirstHop> {
        self.node
            .list_channels()
            .iter()
            .filter(|c| c.is_usable)
            .map(|c| FirstHop {
                peer: route::node_id(&c.counterparty_node_id),
                outbound_msat: c.next_outbound_htlc_limit_msat,
            })
            .collect()
    }

    /// What we charge to forward over each usable channel: what a payee behind that channel puts
    /// in a blinded path that starts at our node.
    fn own_policies(&self) -> Vec<Edge> {
        let own = route::node_id(&self.public_key());
        self.node
            .list_channels()
            .iter()
            .filter(|c| c.is_usable)
            .map(|c| Edge {
                from: own,
                to: route::node_id(&c.counterparty_node_id),
                base_msat: c.config.forwarding_fee_base_msat,
                ppm: c.config.forwarding_fee_proportional_millionths,
                hint: false,
            })
            .collect()
    }

    /// Every enabled direction of every gossiped channel that can carry `amount_msat`.
    fn graph_edges(&self, amount_msat: u64) -> Vec<Edge> {
        let graph = self.node.network_graph();
        let mut edges = Vec::new();
        for scid in graph.list_channels() {
            let Some(info) = graph.channel(scid) else { continue };
            for (from, to, policy) in
                [(info.node_one, info.node_two, &info.one_to_two), (info.node_two, info.node_one, &info.two_to_one)]
            {
                if let Some(p) = policy.as_ref().filter(|p| p.enabled && p.htlc_maximum_msat >= amount_msat) {
                    edges.push(Edge {
                        from,
                        to,
                        base_msat: p.fees.base_msat,
                        ppm: p.fees.proportional_millionths,
                        hint: false,
                    });
                }
            }
        }
        edges
    }
}

/// The side of the channel between `a` and `b` that `node_one` names: BOLT 7's node one is the
/// lesser node id.
fn channel_side(a: NodeId, b: NodeId, node_one: bool) -> NodeId {
    let (one, two) = if a <= b { (a, b) } else { (b, a) };
    if node_one {
        one
    } else {
        two
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldk_node::bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn id(n: u8) -> NodeId {
        let sk = SecretKey::from_slice(&[n; 32]).unwrap();
        route::node_id(&PublicKey::from_secret_key(&Secp256k1::new(), &sk))
    }

    #[test]
    fn a_channel_side_is_told_by_bolt7_order_whichever_way_the_channel_is_seen() {
        let (x, y) = (id(1), id(2));
        let (lesser, greater) = if x < y { (x, y) } else { (y, x) };
        for (a, b) in [(x, y), (y, x)] {
            assert_eq!(channel_side(a, b, true), lesser);
            assert_eq!(channel_side(a, b, false), greater);
        }
    }
}
