//! Payments a crash lost inside the node: ldk-node recorded them `pending`, LDK never persisted
//! them. Found by their stable payment id (a BOLT11 invoice's payment hash, or a keysend's hash
//! derived from its key) and sent again under it, or abandoned when they cannot be.

use std::str::FromStr;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use ldk_node::bitcoin::hashes::Hash;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning_invoice::Bolt11Invoice;
use ldk_node::payment::{PaymentDirection, PaymentKind, PaymentStatus};
use ldk_node::LightningBalance;

use crate::destination::hex;
use crate::keysend::{self, is_keysend};
use crate::node::LightningNode;
use crate::offer::is_offer;
use crate::LightningError;

/// How often [`LightningNode::recover_lost`] examines one payment at most.
const EXAMINE_EVERY: Duration = Duration::from_secs(5);

/// What [`LightningNode::recover_lost`] found, and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing to do: the payment is settled, failed, younger than this run of the node, or may
    /// still be on its way (an HTLC of it is on a channel, a channel is not usable, the node has
    /// not run long enough to have finished what it resumed at start).
    Kept,
    /// The payment was lost in a crash and has been sent again, under the same payment id.
    Resent,
    /// The node still knows the payment after all: its outcome comes as an event.
    Tracked,
    /// The payment was lost and cannot be sent again (why): nothing of it is on its way.
    Abandoned(String),
}

impl LightningNode {
    /// Finishes a BOLT11 payment that a crash lost half-way. ldk-node stores its `pending` record
    /// right after LDK accepted the payment, and LDK persists what it accepted a moment later,
    /// in the background: a crash between the two leaves a record nothing will ever complete,
    /// for a payment that never left the node. (A keysend is recovered the same way by
    /// [`LightningNode::recover_lost_for`].)
    ///
    /// The record of `destination` counts as lost only when all of this holds: it is outbound and
    /// `pending`; it was last written before this run of the node started; the node has run for
    /// `settle` (long enough to have retried or failed what it resumed at start); every channel
    /// is usable (no HTLC waits on a disconnected peer); and no channel carries an HTLC of it,
    /// dust included. Then the record is dropped and the invoice paid again under the same
    /// payment id, so that if LDK knew the payment after all it refuses the second one — or,
    /// when its invoice has expired or no channel is left (a force close took it), abandoned.
    /// `amount_msat` is what the first attempt paid.
    ///
    /// Offers are kept: their payment id is random, so LDK could not refuse a second payment.
    pub fn recover_lost(
        &self,
        destination: &str,
        amount_msat: u64,
        settle: Duration,
    ) -> Result<Recovery, LightningError> {
        self.recover_lost_for(destination, amount_msat, None, settle)
    }

    /// [`LightningNode::recover_lost`] for the payment [`LightningNode::pay_once`] made for
    /// `key` (a keysend is found, and sent again, by the payment hash `key` gives it).
    pub fn recover_lost_for(
        &self,
        destination: &str,
        amount_msat: u64,
        key: Option<&str>,
        settle: Duration,
    ) -> Result<Recovery, LightningError> {
        let text = destination.trim();
        let (id, expired) = match (is_keysend(text), key) {
            (true, Some(key)) => (keysend::payment_id_for(&self.keysend_secret, key), false),
            (true, None) => return Ok(Recovery::Kept),
            (false, _) => {
                let Some(invoice) = (!is_offer(text)).then(|| Bolt11Invoice::from_str(text).ok()).flatten() else {
                    return Ok(Recovery::Kept);
                };
                (PaymentId(invoice.payment_hash().to_byte_array()), invoice.is_expired())
            }
        };
        let Some(record) = self.node.payment(&id) else { return Ok(Recovery::Kept) };
        let pending_before_start = record.status == PaymentStatus::Pending
            && record.direction == PaymentDirection::Outbound
            && matches!(record.kind, PaymentKind::Bolt11 { .. } | PaymentKind::Spontaneous { .. })
            && record.latest_update_timestamp < self.started_unix;
        if !pending_before_start || self.started.elapsed() < settle || !self.due_for_examination(id) {
            return Ok(Recovery::Kept);
        }
        if self.node.list_channels().iter().any(|c| !c.is_usable) || self.htlc_on_a_channel(&id.0, amount_msat) {
            return Ok(Recovery::Kept);
        }
        let hash = hex(&id.0);
        if expired {
            tracing::warn!(payment_hash = %hash, "a payment lost in a crash cannot be sent again: its invoice expired");
            self.node.remove_payment(&id).map_err(|e| LightningError::from_node("remove lost payment", e))?;
            return Ok(Recovery::Abandoned("the invoice expired before the payment could be sent again".into()));
        }
        if self.check_liquidity(amount_msat).is_err() {
            if !self.node.list_channels().is_empty() {
                return Ok(Recovery::Kept); // liquidity may come back (payments in flight resolve)
            }
            // No channel left (a force close took it, with nothing of this payment on it): it
            // cannot be sent again, and nothing of it is on its way.
            tracing::warn!(payment_hash = %hash, "a payment lost in a crash cannot be sent again: no channel is left");
            self.node.remove_payment(&id).map_err(|e| LightningError::from_node("remove lost payment", e))?;
            return Ok(Recovery::Abandoned("no channel is left to send it again".into()));
        }
        tracing::warn!(payment_hash = %hash, amount_msat, "a payment was lost in a crash before it left the node: sending it again");
        self.node.remove_payment(&id).map_err(|e| LightningError::from_node("remove lost payment", e))?;
        match self.pay_once(text, Some(amount_msat), key) {
            Ok(_) => Ok(Recovery::Resent),
            Err(LightningError::DuplicatePayment) => {
                tracing::info!(payment_hash = %hash, "the node still knows this payment: its outcome comes as an event");
                Ok(Recovery::Tracked)
            }
            Err(e) => Ok(Recovery::Abandoned(e.to_string())),
        }
    }

    /// The payment id (hex) of [`LightningNode::pay_once`]'s payment to `destination` for `key`
    /// when an HTLC of it is on a channel, open or closing: it left the node, whatever the node's
    /// record says (a kill can take the record and leave the HTLC, and then also force-close the
    /// channel: rust-lightning #4286). `None` for an offer (its payment id is random), and for a
    /// dust HTLC: those are not listed one by one, and a payout taken for one that is not there
    /// would wait for an outcome that never comes.
    pub fn in_flight_for(&self, destination: &str, key: &str) -> Option<String> {
        let id = self.sent_payment_id(destination, key)?;
        self.outbound_htlcs(&id.0).0.then(|| hex(&id.0))
    }

    /// Whether [`LightningNode::recover_lost`] may look at `id` now (at most every few seconds).
    fn due_for_examination(&self, id: PaymentId) -> bool {
        let mut examined = self.examined.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        examined.retain(|_, at| now.duration_since(*at) < EXAMINE_EVERY);
        if examined.contains_key(&id) {
            return false;
        }
        examined.insert(id, now);
        true
    }

    /// Whether a channel (open or closing) carries an outbound HTLC of `payment_hash`. Dust
    /// HTLCs are not listed one by one; they count when their total could hold `amount_msat`.
    fn htlc_on_a_channel(&self, payment_hash: &[u8; 32], amount_msat: u64) -> bool {
        let (listed, dust_msat) = self.outbound_htlcs(payment_hash);
        listed || dust_msat >= amount_msat
    }

    /// Whether a channel (open or closing) lists an HTLC of `payment_hash`, and the total of the
    /// dust HTLCs (which are not listed one by one), msat.
    fn outbound_htlcs(&self, payment_hash: &[u8; 32]) -> (bool, u64) {
        let mut dust_msat = 0u64;
        for balance in self.node.list_balances().lightning_balances {
            match balance {
                LightningBalance::ClaimableOnChannelClose { outbound_payment_htlc_rounded_msat, .. } => {
                    dust_msat = dust_msat.saturating_add(outbound_payment_htlc_rounded_msat);
                }
                LightningBalance::MaybeTimeoutClaimableHTLC { payment_hash: h, .. }
                | LightningBalance::MaybePreimageClaimableHTLC { payment_hash: h, .. }
                | LightningBalance::ContentiousClaimable { payment_hash: h, .. }
                    if &h.0 == payment_hash =>
                {
                    return (true, dust_msat);
                }
                _ => {}
            }
        }
        (false, dust_msat)
    }
}
