//! Keysend (spontaneous) payments to a node id, paid at most once per key: the preimage is an
//! HMAC-SHA256 of the key under a secret derived from the node's seed, so the payment hash —
//! which ldk-node uses as the payment id of a spontaneous payment — is the same every time the
//! same key is paid, and ldk-node refuses a second payment while one is pending or succeeded.

use std::str::FromStr;

use ldk_node::bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use ldk_node::bitcoin::secp256k1::PublicKey;
use ldk_node::lightning::ln::channelmanager::PaymentId;
use ldk_node::lightning_types::payment::PaymentPreimage;

use crate::LightningError;

/// The prefix of a keysend destination: `keysend:<node id>`.
pub const KEYSEND_PREFIX: &str = "keysend:";

/// Whether `text` is a keysend destination: `keysend:<node id>` or a bare node id (66 hex
/// characters, `02…` or `03…`).
pub fn is_keysend(text: &str) -> bool {
    let text = text.trim();
    has_prefix(text) || looks_like_node_id(text)
}

/// Reads a keysend destination (see [`is_keysend`]): the node id, or `invalid_node_id`.
pub fn read_keysend(text: &str) -> Result<PublicKey, LightningError> {
    let text = text.trim();
    let id = if has_prefix(text) { &text[KEYSEND_PREFIX.len()..] } else { text };
    PublicKey::from_str(id.trim())
        .map_err(|_| LightningError::invalid("invalid_node_id", format!("{id:?} is not a node id")))
}

/// The canonical form of a keysend destination: `keysend:<node id>`.
pub fn keysend_destination(node: &PublicKey) -> String {
    format!("{KEYSEND_PREFIX}{node}")
}

fn has_prefix(text: &str) -> bool {
    // `get`, not indexing: the text is anyone's, and a byte count may fall inside a character.
    text.get(..KEYSEND_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(KEYSEND_PREFIX))
}

fn looks_like_node_id(text: &str) -> bool {
    text.len() == 66
        && (text.starts_with("02") || text.starts_with("03"))
        && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The secret keysend preimages are derived from: SHA-256 of a tag and the node's seed.
pub(crate) fn keysend_secret(seed: &[u8; 64]) -> [u8; 32] {
    let mut engine = sha256::Hash::engine();
    engine.input(b"sendero/keysend-preimage/v1");
    engine.input(seed);
    sha256::Hash::from_engine(engine).to_byte_array()
}

/// The preimage of the keysend payment for `key`.
pub(crate) fn preimage_for(secret: &[u8; 32], key: &str) -> PaymentPreimage {
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(secret);
    engine.input(key.as_bytes());
    PaymentPreimage(hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array())
}

/// ldk-node's payment id of the keysend payment for `key`: its payment hash.
pub(crate) fn payment_id_for(secret: &[u8; 32], key: &str) -> PaymentId {
    PaymentId(sha256::Hash::hash(&preimage_for(secret, key).0).to_byte_array())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    #[test]
    fn node_ids_and_the_keysend_form_are_destinations() {
        assert!(is_keysend(NODE) && is_keysend(&format!("keysend:{NODE}")) && is_keysend(&format!("KEYSEND:{NODE}")));
        assert_eq!(read_keysend(&format!(" keysend:{NODE} ")).unwrap().to_string(), NODE);
        assert_eq!(keysend_destination(&read_keysend(NODE).unwrap()), format!("keysend:{NODE}"));
        assert!(!is_keysend(&NODE[..64]), "too short");
        // Found by schemathesis: a multi-byte character across the prefix's length panicked.
        assert!(!is_keysend(">\u{aa99}\u{106a1d}%"));
        assert!(read_keysend("ke\u{e9}ysend").is_err());
        assert!(!is_keysend(&format!("04{}", &NODE[2..])), "not a compressed key");
        assert!(!is_keysend("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"));
        assert_eq!(read_keysend("keysend:02zz").unwrap_err().code(), "invalid_node_id");
    }

    #[test]
    fn the_same_key_pays_under_the_same_hash_and_other_keys_or_seeds_do_not() {
        let secret = keysend_secret(&[7; 64]);
        assert_eq!(payment_id_for(&secret, "pay_1"), payment_id_for(&secret, "pay_1"));
        assert_ne!(payment_id_for(&secret, "pay_1"), payment_id_for(&secret, "pay_2"));
        assert_ne!(payment_id_for(&secret, "pay_1"), payment_id_for(&keysend_secret(&[8; 64]), "pay_1"));
        let preimage = preimage_for(&secret, "pay_1");
        assert_eq!(payment_id_for(&secret, "pay_1").0, sha256::Hash::hash(&preimage.0).to_byte_array());
    }
}
