//! What paying a destination over Lightning would cost, before paying: `ldk-node` has no "estimate
//! route fee" call, so the fee is computed from what it does expose — our usable channels (a payment
//! to a direct peer pays no routing fee), the invoice's route hints and the gossiped network graph
//! with every channel's fee policy. The search is a cheapest-path search run backwards from the
//! payee, charging each forwarding node its policy on the amount it forwards, as the sender will.
//!
//! A BOLT12 offer hides its issuer behind blinded paths: the route is priced to each path's
//! introduction node, and the blinded hops after it — whose fees (the payment paths' payinfo)
//! arrive only with the invoice, after the payer commits — are estimated as one forwarding hop
//! charging the highest policy the introduction node publishes (our own channels' policy when the
//! path starts at our node), or [`BLINDED_FALLBACK`] when it publishes none.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::lightning::routing::gossip::NodeId;
use serde::Serialize;

/// Most hops a path may have (the sender's own first hop included).
const MAX_HOPS: usize = 20;

/// One directed channel: `from` forwards to `to` charging `base_msat + amount × ppm / 10⁶`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// The forwarding node.
    pub from: NodeId,
    /// The next node.
    pub to: NodeId,
    /// Base fee, msat.
    pub base_msat: u32,
    /// Proportional fee, millionths.
    pub ppm: u32,
    /// Whether it came from the invoice's route hints (else from the network graph).
    pub hint: bool,
}

/// One of our usable channels: to whom, and how much it can send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstHop {
    /// The peer.
    pub peer: NodeId,
    /// What the channel can send in one HTLC now, msat.
    pub outbound_msat: u64,
}

/// The cheapest way found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteFee {
    /// Routing fees the sender pays on top of the amount, msat (estimated blinded part included).
    pub fee_msat: u64,
    /// Channels on the path (for an offer: up to its introduction node, plus one blinded hop).
    pub hops: usize,
    /// `direct_channel`, `route_hint`, `network_graph` or `blinded_path` (an offer: the blinded
    /// hops' fee is estimated).
    pub source: &'static str,
    /// Of `fee_msat`, what the blinded hops are estimated to charge, msat.
    pub blinded_msat: u64,
}

/// A forwarding policy: `base_msat + amount × ppm / 10⁶`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Base fee, msat.
    pub base_msat: u32,
    /// Proportional fee, millionths.
    pub ppm: u32,
}

/// What a blinded hop is assumed to charge when its introduction node publishes no policy: 1 sat
/// plus 0.1 % — above the defaults of LDK (1 sat + 0), LND (1 sat + 1 ppm) and CLN (1 sat + 10
/// ppm). The fee actually paid is capped by LDK at 1 % + 50 sat, which the payment's fee reserve
/// holds.
pub const BLINDED_FALLBACK: Policy = Policy { base_msat: 1_000, ppm: 1_000 };

/// One way into an offer: a blinded path's introduction node and what its blinded hops are
/// estimated to charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlindedEntry {
    /// The introduction node.
    pub intro: NodeId,
    /// The estimated policy of the blinded hops.
    pub policy: Policy,
}

/// The highest policy (on `amount_msat`) among `edges` leaving `intro`, or [`BLINDED_FALLBACK`].
pub fn blinded_policy(intro: NodeId, amount_msat: u64, edges: &[Edge]) -> Policy {
    edges
        .iter()
        .filter(|e| e.from == intro)
        .map(|e| Policy { base_msat: e.base_msat, ppm: e.ppm })
        .max_by_key(|p| forwarding_fee(amount_msat, p.base_msat, p.ppm).unwrap_or(u64::MAX))
        .unwrap_or(BLINDED_FALLBACK)
}

/// The cheapest way into an offer through one of `entries`: the route from us to the
/// introduction node carrying the amount plus the blinded hops' estimated fee, plus that fee.
/// An introduction node that is `own` starts the blinded part at our node: only the estimate
/// counts, and one of our channels must carry it.
pub fn cheapest_blinded(
    own: NodeId,
    entries: &[BlindedEntry],
    amount_msat: u64,
    first_hops: &[FirstHop],
    edges: &[Edge],
) -> Option<RouteFee> {
    let priced = entries.iter().filter_map(|entry| {
        let blinded = forwarding_fee(amount_msat, entry.policy.base_msat, entry.policy.ppm)?;
        let arriving = amount_msat.checked_add(blinded)?;
        let (to_intro, hops) = if entry.intro == own {
            first_hops.iter().any(|h| h.outbound_msat >= arriving).then_some((0, 0))?
        } else {
            let r = cheapest(entry.intro, arriving, first_hops, edges)?;
            (r.fee_msat, r.hops)
        };
        Some(RouteFee {
            fee_msat: to_intro.checked_add(blinded)?,
            hops: hops + 1,
            source: "blinded_path",
            blinded_msat: blinded,
        })
    });
    priced.min_by_key(|r| (r.fee_msat, r.hops))
}

/// The fee a forwarding node charges on `amount_msat`.
pub fn forwarding_fee(amount_msat: u64, base_msat: u32, ppm: u32) -> Option<u64> {
    let proportional = u128::from(amount_msat) * u128::from(ppm) / 1_000_000;
    u64::try_from(proportional).ok()?.checked_add(u64::from(base_msat))
}

/// The cheapest path from us (through `first_hops`) to `payee` delivering `amount_msat`, over
/// `edges`; `None` when no path exists or none of our channels can carry what the path needs.
pub fn cheapest(payee: NodeId, amount_msat: u64, first_hops: &[FirstHop], edges: &[Edge]) -> Option<RouteFee> {
    if first_hops.iter().any(|h| h.peer == payee && h.outbound_msat >= amount_msat) {
        return Some(RouteFee { fee_msat: 0, hops: 1, source: "direct_channel", blinded_msat: 0 });
    }
    let mut into: HashMap<NodeId, Vec<&Edge>> = HashMap::new();
    for e in edges {
        into.entry(e.to).or_default().push(e);
    }
    // need[v]: what must arrive at v so that the payee gets amount_msat (v forwarding the rest).
    let mut need: HashMap<NodeId, (u64, usize, bool)> = HashMap::from([(payee, (amount_msat, 0, false))]);
    let mut queue = BinaryHeap::from([Reverse((amount_msat, 0usize, payee))]);
    let mut best: Option<RouteFee> = None;
    while let Some(Reverse((arriving, hops, node))) = queue.pop() {
        if need.get(&node).is_some_and(|&(n, h, _)| (n, h) < (arriving, hops)) {
            continue;
        }
        let used_hint = need.get(&node).is_some_and(|&(_, _, h)| h);
        if best.as_ref().is_some_and(|b| amount_msat + b.fee_msat <= arriving) {
            break;
        }
        // We can hand `arriving` straight to `node` if it is our peer (our own hop is free).
        if node != payee && first_hops.iter().any(|h| h.peer == node && h.outbound_msat >= arriving) {
            let fee_msat = arriving - amount_msat;
            let source = if used_hint { "route_hint" } else { "network_graph" };
            if best.as_ref().is_none_or(|b| fee_msat < b.fee_msat) {
                best = Some(RouteFee { fee_msat, hops: hops + 1, source, blinded_msat: 0 });
            }
            continue;
        }
        if hops + 1 >= MAX_HOPS {
            continue;
        }
        for edge in into.get(&node).map(Vec::as_slice).unwrap_or_default() {
            let Some(fee) = forwarding_fee(arriving, edge.base_msat, edge.ppm) else { continue };
            let Some(total) = arriving.checked_add(fee) else { continue };
            let better = need.get(&edge.from).is_none_or(|&(n, h, _)| (total, hops + 1) < (n, h));
            if better {
                need.insert(edge.from, (total, hops + 1, used_hint || edge.hint));
                queue.push(Reverse((total, hops + 1, edge.from)));
            }
        }
    }
    best
}

/// A node id from a public key.
pub fn node_id(pk: &PublicKey) -> NodeId {
    NodeId::from_pubkey(pk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        let secp = ldk_node::bitcoin::secp256k1::Secp256k1::new();
        let sk = ldk_node::bitcoin::secp256k1::SecretKey::from_slice(&[n; 32]).unwrap();
        NodeId::from_pubkey(&PublicKey::from_secret_key(&secp, &sk))
    }

    fn edge(from: u8, to: u8, base_msat: u32, ppm: u32) -> Edge {
        Edge { from: id(from), to: id(to), base_msat, ppm, hint: false }
    }

    #[test]
    fn fees_follow_the_forwarding_policies() {
        assert_eq!(forwarding_fee(1_000_000, 1_000, 100), Some(1_100));
        assert_eq!(forwarding_fee(999, 0, 1), Some(0), "proportional fees round down, as LDK charges");
        let hop = |peer, outbound_msat| FirstHop { peer: id(peer), outbound_msat };
        // Direct peer: free.
        let direct = cheapest(id(2), 5_000_000, &[hop(2, 10_000_000)], &[]).unwrap();
        assert_eq!((direct.fee_msat, direct.hops, direct.source), (0, 1, "direct_channel"));
        // Through 2 (1000 + 1%) or through 3 (0 + 0.05%): 3 is cheaper.
        let edges = [edge(2, 9, 1_000, 10_000), edge(3, 9, 0, 500)];
        let via = cheapest(id(9), 1_000_000, &[hop(2, 10_000_000), hop(3, 10_000_000)], &edges).unwrap();
        assert_eq!((via.fee_msat, via.hops, via.source), (500, 2, "network_graph"));
        // Two forwarding nodes: 4 charges on what it forwards to 5, 5 on what reaches 9.
        let edges = [edge(4, 5, 1_000, 0), edge(5, 9, 100, 1_000)];
        let two = cheapest(id(9), 2_000_000, &[hop(4, 10_000_000)], &edges).unwrap();
        assert_eq!((two.fee_msat, two.hops), (1_000 + 2_100, 3));
        // A path whose first hop cannot carry amount + fees does not count.
        assert_eq!(cheapest(id(9), 2_000_000, &[hop(4, 2_000_000)], &edges), None);
        // Nothing connects.
        assert_eq!(cheapest(id(9), 1, &[hop(4, 10)], &[edge(5, 9, 0, 0)]), None);
        // A route hint marks its source.
        let hinted = [Edge { hint: true, ..edge(2, 9, 7, 0) }];
        assert_eq!(cheapest(id(9), 100, &[hop(2, 1_000)], &hinted).unwrap().source, "route_hint");
    }

    #[test]
    fn offers_are_priced_to_their_introduction_node_plus_the_blinded_hops() {
        let hop = |peer, outbound_msat| FirstHop { peer: id(peer), outbound_msat };
        let amount = 1_000_000;
        // The blinded part starts at our node (1): only the estimate counts.
        let ours = BlindedEntry { intro: id(1), policy: Policy { base_msat: 1_000, ppm: 0 } };
        let r = cheapest_blinded(id(1), &[ours], amount, &[hop(2, 2_000_000)], &[]).unwrap();
        assert_eq!((r.fee_msat, r.blinded_msat, r.hops, r.source), (1_000, 1_000, 1, "blinded_path"));
        // ...and needs a channel that can carry amount + estimate.
        assert_eq!(cheapest_blinded(id(1), &[ours], amount, &[hop(2, amount)], &[]), None);
        // Through our peer 2 to introduction node 9 (2 charges 100 + 0.1 % on what it forwards),
        // the blinded hop after 9 estimated at 500 msat: 2's fee is on amount + 500.
        let far = BlindedEntry { intro: id(9), policy: Policy { base_msat: 500, ppm: 0 } };
        let edges = [edge(2, 9, 100, 1_000)];
        let r = cheapest_blinded(id(1), &[far], amount, &[hop(2, 5_000_000)], &edges).unwrap();
        assert_eq!((r.fee_msat, r.blinded_msat, r.hops), (100 + 1_000 + 500, 500, 3));
        // The cheaper of two paths wins; an unreachable one is skipped.
        let lost = BlindedEntry { intro: id(7), policy: BLINDED_FALLBACK };
        let r = cheapest_blinded(id(1), &[lost, far, ours], amount, &[hop(2, 5_000_000)], &edges).unwrap();
        assert_eq!(r.fee_msat, 1_000);
        assert_eq!(cheapest_blinded(id(1), &[lost], amount, &[hop(2, 5_000_000)], &edges), None);
    }

    #[test]
    fn the_blinded_estimate_is_the_introduction_nodes_highest_policy() {
        let edges = [edge(9, 2, 1_000, 0), edge(9, 3, 0, 2_000), edge(4, 9, 50_000, 0)];
        // On 1,000,000 msat: 1,000 vs 2,000 msat; edges into 9 do not count.
        assert_eq!(blinded_policy(id(9), 1_000_000, &edges), Policy { base_msat: 0, ppm: 2_000 });
        assert_eq!(blinded_policy(id(9), 100_000, &edges), Policy { base_msat: 1_000, ppm: 0 });
        assert_eq!(blinded_policy(id(5), 100_000, &edges), BLINDED_FALLBACK);
    }
}
