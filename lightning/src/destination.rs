//! Destinations read and checked before the node is asked: BOLT11 invoices (network, expiry,
//! route hints), the amount to pay against the one a destination names, node ids and peer
//! addresses.

use std::str::FromStr;

use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::bitcoin::Network;
use ldk_node::lightning::ln::msgs::SocketAddress;
use ldk_node::lightning_invoice::Bolt11Invoice;

use crate::route::{self, Edge};
use crate::LightningError;

/// A BOLT11 invoice for `network` that has not expired.
pub(crate) fn payable_bolt11(text: &str, network: Network) -> Result<Bolt11Invoice, LightningError> {
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

pub(crate) fn settle_amount(fixed: Option<u64>, given: Option<u64>) -> Result<u64, LightningError> {
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

pub(crate) fn parse_node_id(text: &str) -> Result<PublicKey, LightningError> {
    PublicKey::from_str(text.trim())
        .map_err(|_| LightningError::invalid("invalid_node_id", format!("{text:?} is not a node id")))
}

pub(crate) fn parse_socket(text: &str) -> Result<SocketAddress, LightningError> {
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
