//! Receiving and paying: invoices and offers issued, BOLT11 / BOLT12 / keysend payments made (at
//! most once per key), and the node's payments read back.

use std::str::FromStr;

use ldk_node::bitcoin::hashes::Hash;
use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};

use crate::destination::{hex, parse_node_id, payable_bolt11, settle_amount};
use crate::keysend::{self, is_keysend, read_keysend};
use crate::node::LightningNode;
use crate::offer::{is_offer, payable_offer};
use crate::types::{CreatedOffer, Invoice, Payment};
use crate::LightningError;

impl LightningNode {
    /// Payments, newest first.
    pub fn payments(&self) -> Vec<Payment> {
        let mut payments: Vec<Payment> = self.node.list_payments().iter().map(Payment::from).collect();
        payments.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.payment_id.cmp(&b.payment_id)));
        payments
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
    /// payment hash a keysend for `key` has. Only a payment it sent (an invoice of this node, paid
    /// to it, is not one).
    pub fn payment_for(&self, destination: &str, key: &str) -> Option<Payment> {
        let text = destination.trim();
        if is_offer(text) {
            let details = self.node.list_payments_with_filter(|p| {
                matches!(&p.kind, ldk_node::payment::PaymentKind::Bolt12Offer { payer_note: Some(n), .. } if n.0 == key)
            });
            return details.first().map(Payment::from);
        }
        self.payment(&self.payment_id_for(text, key)?).filter(|p| p.direction == "outbound")
    }

    /// The payment id (hex) [`LightningNode::pay_once`] gives its payment to `destination` for
    /// `key` — a BOLT11 invoice's payment hash, or the hash a keysend for `key` has —, known
    /// before any payment is made. `None` for an offer (its payment id is random) or a
    /// destination that is neither.
    pub fn payment_id_for(&self, destination: &str, key: &str) -> Option<String> {
        self.sent_payment_id(destination, key).map(|id| hex(&id.0))
    }

    /// [`LightningNode::payment_id_for`], as LDK's id.
    pub(crate) fn sent_payment_id(&self, destination: &str, key: &str) -> Option<PaymentId> {
        let text = destination.trim();
        if is_keysend(text) {
            return Some(keysend::payment_id_for(&self.keysend_secret, key));
        }
        let invoice = (!is_offer(text)).then(|| Bolt11Invoice::from_str(text).ok()).flatten()?;
        Some(PaymentId(invoice.payment_hash().to_byte_array()))
    }

    /// One payment by id (hex).
    pub fn payment(&self, payment_id: &str) -> Option<Payment> {
        use ldk_node::bitcoin::hex::FromHex;
        let id = <[u8; 32]>::from_hex(payment_id).ok()?;
        self.node.payment(&PaymentId(id)).as_ref().map(Payment::from)
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
