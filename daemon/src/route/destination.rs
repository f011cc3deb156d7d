//! Where a payout goes: a BOLT11 invoice, a BOLT12 offer, a node id for a keysend (`keysend:<node
//! id>` or the bare 66-hex id), an on-chain address, or a BIP21 URI
//! (`bitcoin:<address>?amount=<BTC>&lightning=<BOLT11>` or `&lno=<offer>`). Everything is checked
//! here — network, expiry, amounts that disagree — before any rail is priced.

use std::str::FromStr;

use rust_decimal::Decimal;
use sendero_lightning::ldk_node::bitcoin::secp256k1::PublicKey;
use sendero_lightning::{
    is_keysend, is_offer, keysend_destination, read_bolt11, read_keysend, read_offer, Bolt11Info, LightningError,
    OfferInfo,
};
use sendero_wallet::bitcoin::address::NetworkUnchecked;
use sendero_wallet::bitcoin::{Address, Network};

/// Why a destination cannot be paid. Each maps to a stable API code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    /// Not something Sendero can pay.
    #[error("{0}")]
    Invalid(String),
    /// For another chain.
    #[error("{0} is for another network than this gateway's ({1})")]
    WrongNetwork(&'static str, Network),
    /// An invoice or offer past its expiry.
    #[error("the {0} has expired")]
    Expired(&'static str),
    /// Two amounts that should agree do not.
    #[error("{0}")]
    AmountMismatch(String),
    /// One of the gateway's own invoices, already paid.
    #[error("{0}")]
    AlreadyPaid(String),
}

impl DestinationError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            DestinationError::Invalid(_) => "invalid_destination",
            DestinationError::WrongNetwork(..) => "wrong_network",
            DestinationError::Expired(_) => "invoice_expired",
            DestinationError::AmountMismatch(_) => "amount_mismatch",
            DestinationError::AlreadyPaid(_) => "invoice_already_paid",
        }
    }
}

/// A Lightning destination.
#[derive(Debug, Clone)]
pub enum LnDestination {
    /// A BOLT11 invoice (its text and what it says).
    Bolt11(String, Bolt11Info),
    /// A BOLT12 offer.
    Bolt12(String, OfferInfo),
    /// A keysend to a node (its canonical text `keysend:<node id>`): the amount is the request's.
    Keysend(String, PublicKey),
}

impl LnDestination {
    /// The amount the invoice or offer fixes, msat.
    pub fn amount_msat(&self) -> Option<u64> {
        match self {
            LnDestination::Bolt11(_, info) => info.amount_msat,
            LnDestination::Bolt12(_, info) => info.amount_msat,
            LnDestination::Keysend(..) => None,
        }
    }

    /// The invoice or offer text, or `keysend:<node id>`.
    pub fn text(&self) -> &str {
        match self {
            LnDestination::Bolt11(text, _) | LnDestination::Bolt12(text, _) | LnDestination::Keysend(text, _) => text,
        }
    }
}

/// A parsed destination: an address, a Lightning destination, or both (BIP21).
#[derive(Debug, Clone)]
pub struct Destination {
    /// `address`, `bolt11`, `bolt12`, `keysend` or `bip21`.
    pub kind: &'static str,
    /// On-chain address, if any.
    pub address: Option<Address>,
    /// Lightning invoice or offer, if any.
    pub lightning: Option<LnDestination>,
    /// The amount the destination itself fixes, msat (BIP21 `amount` or the invoice's).
    pub amount_msat: Option<u64>,
}

/// What each rail pays for a destination: fixed when a route is priced and stored with it, so a
/// submit needs no second parse (checking a BOLT11 signature costs more than the rest of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayTo {
    /// The on-chain address.
    pub address: Option<String>,
    /// The BOLT11 invoice or BOLT12 offer.
    pub lightning: Option<String>,
    /// The BOLT11 invoice's payment hash, hex.
    pub payment_hash: Option<String>,
    /// When the invoice or offer expires, unix seconds (`None`: never).
    pub pay_by: Option<u64>,
}

impl PayTo {
    /// What `rail` pays — an address, or an invoice or offer with the invoice's payment hash —
    /// as long as the invoice or offer has not expired at `now`.
    pub fn rail(&self, on_chain: bool, now: u64) -> Result<(String, Option<String>), DestinationError> {
        if on_chain {
            let address =
                self.address.clone().ok_or_else(|| DestinationError::Invalid("no on-chain address".into()))?;
            return Ok((address, None));
        }
        let text =
            self.lightning.clone().ok_or_else(|| DestinationError::Invalid("no Lightning invoice or offer".into()))?;
        if self.pay_by.is_some_and(|t| t <= now) {
            return Err(DestinationError::Expired(if is_offer(&text) { "offer" } else { "invoice" }));
        }
        Ok((text, self.payment_hash.clone()))
    }
}

impl Destination {
    /// What each rail pays.
    pub fn pay_to(&self) -> PayTo {
        let (lightning, payment_hash, pay_by) = match &self.lightning {
            Some(LnDestination::Bolt11(text, info)) => {
                // 0: an expiry too far away to count.
                (Some(text.clone()), Some(info.payment_hash.clone()), Some(info.expires_at).filter(|t| *t > 0))
            }
            Some(LnDestination::Bolt12(text, info)) => (Some(text.clone()), None, info.expires_at),
            Some(LnDestination::Keysend(text, _)) => (Some(text.clone()), None, None),
            None => (None, None, None),
        };
        PayTo { address: self.address.as_ref().map(ToString::to_string), lightning, payment_hash, pay_by }
    }
}

/// Parses `text` as a destination on `network`.
pub fn parse(text: &str, network: Network) -> Result<Destination, DestinationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DestinationError::Invalid("destination is empty".into()));
    }
    if text.len() > 8_192 {
        return Err(DestinationError::Invalid("destination is longer than 8192 bytes".into()));
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("bitcoin:") {
        return parse_bip21(&text["bitcoin:".len()..], network);
    }
    if lower.starts_with("lightning:") {
        return parse(&text["lightning:".len()..], network);
    }
    if lower.starts_with("ln") {
        let ln = parse_lightning(text, network)?;
        let kind = if matches!(ln, LnDestination::Bolt11(..)) { "bolt11" } else { "bolt12" };
        return Ok(Destination { kind, amount_msat: ln.amount_msat(), address: None, lightning: Some(ln) });
    }
    if is_keysend(text) {
        let node = read_keysend(text).map_err(|e| DestinationError::Invalid(e.to_string()))?;
        let ln = LnDestination::Keysend(keysend_destination(&node), node);
        return Ok(Destination { kind: "keysend", amount_msat: None, address: None, lightning: Some(ln) });
    }
    let address = parse_address(text, network)?;
    Ok(Destination { kind: "address", address: Some(address), lightning: None, amount_msat: None })
}

fn parse_address(text: &str, network: Network) -> Result<Address, DestinationError> {
    let unchecked = Address::<NetworkUnchecked>::from_str(text).map_err(|e| {
        DestinationError::Invalid(format!(
            "not an address, BOLT11 invoice, BOLT12 offer, node id (keysend) or BIP21 URI: {e}"
        ))
    })?;
    unchecked.require_network(network).map_err(|_| DestinationError::WrongNetwork("the address", network))
}

fn parse_lightning(text: &str, network: Network) -> Result<LnDestination, DestinationError> {
    let map = |e: LightningError| match e {
        LightningError::WrongNetwork(what) => DestinationError::WrongNetwork(what, network),
        LightningError::InvoiceExpired => DestinationError::Expired("invoice"),
        e if e.code() == "offer_expired" => DestinationError::Expired("offer"),
        e => DestinationError::Invalid(e.to_string()),
    };
    if is_offer(text) {
        read_offer(text, network).map(|info| LnDestination::Bolt12(text.to_owned(), info)).map_err(map)
    } else {
        read_bolt11(text, network).map(|info| LnDestination::Bolt11(text.to_owned(), info)).map_err(map)
    }
}

/// `<address>?amount=…&lightning=…&lno=…&label=…`; unknown `req-` parameters are refused, as
/// BIP21 requires.
fn parse_bip21(rest: &str, network: Network) -> Result<Destination, DestinationError> {
    let (addr_text, query) = rest.split_once('?').unwrap_or((rest, ""));
    let address = if addr_text.is_empty() { None } else { Some(parse_address(addr_text, network)?) };
    let (mut amount_msat, mut lightning) = (None, None);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.to_ascii_lowercase().as_str() {
            "amount" => amount_msat = Some(btc_to_msat(&value)?),
            "lightning" | "lno" if lightning.is_none() => lightning = Some(parse_lightning(value.trim(), network)?),
            k if k.starts_with("req-") => {
                return Err(DestinationError::Invalid(format!("BIP21 parameter {k} is required but not supported")))
            }
            _ => {}
        }
    }
    if address.is_none() && lightning.is_none() {
        return Err(DestinationError::Invalid("the BIP21 URI names neither an address nor a lightning invoice".into()));
    }
    if let (Some(uri), Some(inv)) = (amount_msat, lightning.as_ref().and_then(LnDestination::amount_msat)) {
        if uri != inv {
            return Err(DestinationError::AmountMismatch(format!(
                "the URI asks for {uri} msat but its lightning invoice for {inv} msat"
            )));
        }
    }
    let amount_msat = amount_msat.or_else(|| lightning.as_ref().and_then(LnDestination::amount_msat));
    Ok(Destination { kind: "bip21", address, lightning, amount_msat })
}

/// A BIP21 `amount` (decimal BTC, at most 8 decimals) in msat.
fn btc_to_msat(text: &str) -> Result<u64, DestinationError> {
    let bad = || DestinationError::Invalid(format!("BIP21 amount {text:?} is not a positive BTC amount"));
    let btc = Decimal::from_str_exact(text.trim()).map_err(|_| bad())?;
    if btc <= Decimal::ZERO || btc.scale() > 8 {
        return Err(bad());
    }
    let sats = btc.checked_mul(Decimal::from(100_000_000u64)).ok_or_else(bad)?;
    let sats: u64 = sats.trunc().try_into().map_err(|_| bad())?;
    if sats > 21_000_000 * 100_000_000 {
        return Err(bad());
    }
    Ok(sats * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGTEST_ADDR: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
    const MAINNET_ADDR: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";

    #[test]
    fn addresses_and_uris_are_checked() {
        let d = parse(REGTEST_ADDR, Network::Regtest).unwrap();
        assert_eq!((d.kind, d.amount_msat, d.lightning.is_none()), ("address", None, true));
        assert_eq!(parse(MAINNET_ADDR, Network::Regtest).unwrap_err().code(), "wrong_network");
        assert_eq!(parse("hello", Network::Regtest).unwrap_err().code(), "invalid_destination");
        assert_eq!(parse("  ", Network::Regtest).unwrap_err().code(), "invalid_destination");
        let uri = parse(&format!("bitcoin:{REGTEST_ADDR}?amount=0.00012345&label=x"), Network::Regtest).unwrap();
        assert_eq!((uri.kind, uri.amount_msat), ("bip21", Some(12_345_000)));
        assert!(uri.address.is_some() && uri.lightning.is_none());
        for bad in ["amount=0", "amount=-1", "amount=1.000000001", "amount=abc", "req-pop=1", "amount=21000001"] {
            let err = parse(&format!("BITCOIN:{REGTEST_ADDR}?{bad}"), Network::Regtest).unwrap_err();
            assert_eq!(err.code(), "invalid_destination", "{bad}");
        }
        assert_eq!(parse("bitcoin:?amount=1", Network::Regtest).unwrap_err().code(), "invalid_destination");
        assert_eq!(parse(&format!("bitcoin:{MAINNET_ADDR}"), Network::Regtest).unwrap_err().code(), "wrong_network");
        assert_eq!(parse("lnbcrt1garbage", Network::Regtest).unwrap_err().code(), "invalid_destination");
        assert_eq!(parse("lno1garbage", Network::Regtest).unwrap_err().code(), "invalid_destination");
    }

    #[test]
    fn each_rail_pays_what_was_priced_until_it_expires() {
        let bip21 = parse(&format!("bitcoin:{REGTEST_ADDR}?amount=0.0001"), Network::Regtest).unwrap();
        let pay = bip21.pay_to();
        assert_eq!(pay.rail(true, 0).unwrap(), (REGTEST_ADDR.to_owned(), None));
        assert_eq!(pay.rail(false, 0).unwrap_err().code(), "invalid_destination");
        let invoice = PayTo {
            address: None,
            lightning: Some("lnbcrt1invoice".into()),
            payment_hash: Some("ab".repeat(32)),
            pay_by: Some(1_000),
        };
        assert_eq!(invoice.rail(false, 999).unwrap(), ("lnbcrt1invoice".to_owned(), Some("ab".repeat(32))));
        let expired = invoice.rail(false, 1_000).unwrap_err();
        assert_eq!((expired.code(), expired.to_string()), ("invoice_expired", "the invoice has expired".to_owned()));
        assert_eq!(invoice.rail(true, 0).unwrap_err().code(), "invalid_destination");
        let offer = PayTo { lightning: Some("lno1offer".into()), pay_by: Some(5), ..PayTo::default() };
        assert_eq!(offer.rail(false, 9).unwrap_err().to_string(), "the offer has expired");
        let forever = PayTo { lightning: Some("lno1offer".into()), ..PayTo::default() };
        assert_eq!(forever.rail(false, u64::MAX).unwrap(), ("lno1offer".to_owned(), None));
    }

    #[test]
    fn a_node_id_is_a_keysend_destination_whose_amount_is_the_requests() {
        const NODE: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";
        for text in [NODE.to_owned(), format!("keysend:{NODE}"), format!(" KEYSEND:{NODE} ")] {
            let d = parse(&text, Network::Regtest).unwrap();
            assert_eq!((d.kind, d.amount_msat, d.address.is_none()), ("keysend", None, true), "{text}");
            let pay = d.pay_to();
            assert_eq!(pay.rail(false, u64::MAX).unwrap(), (format!("keysend:{NODE}"), None));
            assert_eq!(pay.rail(true, 0).unwrap_err().code(), "invalid_destination");
        }
        let bad = parse(&format!("keysend:{}", &NODE[..64]), Network::Regtest).unwrap_err();
        assert_eq!(bad.code(), "invalid_destination");
        assert!(bad.to_string().contains("not a node id"), "{bad}");
    }

    #[test]
    fn btc_amounts_convert_exactly() {
        assert_eq!(btc_to_msat("1").unwrap(), 100_000_000_000);
        assert_eq!(btc_to_msat("0.00000001").unwrap(), 1_000);
        assert_eq!(btc_to_msat("21000000").unwrap(), 2_100_000_000_000_000_000);
        assert!(btc_to_msat("1e3").is_err());
    }
}
