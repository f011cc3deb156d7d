//! The gateway's BIP39 mnemonic: created once, kept in a file only its owner can read, and turned
//! into the treasury's BIP84 descriptors.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::str::FromStr;

use bdk_wallet::bitcoin::bip32::Xpriv;
use bdk_wallet::bitcoin::Network;
use bdk_wallet::template::{Bip84, DescriptorTemplate};
use bdk_wallet::KeychainKind;
pub use bip39::Mnemonic;

use crate::WalletError;

/// Loads the mnemonic at `path`, or creates a new 24-word one there (mode 0600) when the file does
/// not exist. Returns the mnemonic and whether it was created now.
pub fn load_or_create_mnemonic(path: &Path) -> Result<(Mnemonic, bool), WalletError> {
    if path.exists() {
        return load_mnemonic(path).map(|m| (m, false));
    }
    let mnemonic = Mnemonic::generate(24).map_err(|e| WalletError::Keys(e.to_string()))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| WalletError::Keys(format!("create {}: {e}", path.display())))?;
    writeln!(file, "{mnemonic}")
        .and_then(|_| file.sync_all())
        .map_err(|e| WalletError::Keys(format!("write {}: {e}", path.display())))?;
    Ok((mnemonic, true))
}

/// Reads a mnemonic file, refusing one that others can read.
pub fn load_mnemonic(path: &Path) -> Result<Mnemonic, WalletError> {
    let meta = fs::metadata(path).map_err(|e| WalletError::Keys(format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(WalletError::Keys(format!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            meta.permissions().mode() & 0o777
        )));
    }
    let text = fs::read_to_string(path).map_err(|e| WalletError::Keys(format!("{}: {e}", path.display())))?;
    Mnemonic::from_str(text.trim()).map_err(|e| WalletError::Keys(format!("{}: {e}", path.display())))
}

/// The treasury's external and internal (change) descriptors: BIP84 account 0 of the mnemonic's
/// seed (empty passphrase).
pub fn treasury_descriptors(mnemonic: &Mnemonic, network: Network) -> Result<(String, String), WalletError> {
    let xprv = Xpriv::new_master(network, &mnemonic.to_seed("")).map_err(|e| WalletError::Keys(e.to_string()))?;
    let render = |keychain| -> Result<String, WalletError> {
        let (desc, keymap, _) = Bip84(xprv, keychain).build(network).map_err(|e| WalletError::Keys(e.to_string()))?;
        Ok(desc.to_string_with_secret(&keymap))
    };
    Ok((render(KeychainKind::External)?, render(KeychainKind::Internal)?))
}

/// The treasury's descriptors without their private keys: what a watch-only copy of the wallet
/// (an API front end, `senderod --role api`) follows the chain with.
pub fn treasury_public_descriptors(mnemonic: &Mnemonic, network: Network) -> Result<(String, String), WalletError> {
    let xprv = Xpriv::new_master(network, &mnemonic.to_seed("")).map_err(|e| WalletError::Keys(e.to_string()))?;
    let render = |keychain| -> Result<String, WalletError> {
        let (desc, _, _) = Bip84(xprv, keychain).build(network).map_err(|e| WalletError::Keys(e.to_string()))?;
        Ok(desc.to_string())
    };
    Ok((render(KeychainKind::External)?, render(KeychainKind::Internal)?))
}

/// The mnemonic's master key fingerprint (hex, as in descriptors' `[fingerprint/…]`): names the
/// wallet without revealing it, so a backup can tell whether a mnemonic is the one it was made with.
pub fn master_fingerprint(mnemonic: &Mnemonic, network: Network) -> Result<String, WalletError> {
    let master = Xpriv::new_master(network, &mnemonic.to_seed("")).map_err(|e| WalletError::Keys(e.to_string()))?;
    Ok(master.fingerprint(&bdk_wallet::bitcoin::secp256k1::Secp256k1::new()).to_string())
}

/// BIP85 purpose and the HEX application number.
const BIP85_PURPOSE: u32 = 83_696_968;
const BIP85_HEX: u32 = 128_169;

/// 64 bytes of BIP85 HEX entropy at `m/83696968'/128169'/64'/index'` of `master`: a child secret
/// that any BIP85 tool can re-derive from the mnemonic, and that shares no key with the
/// treasury's BIP84 account.
pub fn bip85_hex64(master: &Xpriv, index: u32) -> Result<[u8; 64], WalletError> {
    use bdk_wallet::bitcoin::bip32::ChildNumber;
    use bdk_wallet::bitcoin::hashes::{hmac, sha512, Hash, HashEngine};
    use bdk_wallet::bitcoin::secp256k1::Secp256k1;

    let hardened = |i| ChildNumber::from_hardened_idx(i).map_err(|e| WalletError::Keys(e.to_string()));
    let path = [hardened(BIP85_PURPOSE)?, hardened(BIP85_HEX)?, hardened(64)?, hardened(index)?];
    let child = master.derive_priv(&Secp256k1::new(), &path).map_err(|e| WalletError::Keys(e.to_string()))?;
    let mut engine = hmac::HmacEngine::<sha512::Hash>::new(b"bip-entropy-from-k");
    engine.input(&child.private_key.secret_bytes());
    Ok(hmac::Hmac::<sha512::Hash>::from_engine(engine).to_byte_array())
}

/// The seed the embedded Lightning node is built from: BIP85 HEX64 index 0 of the mnemonic.
/// `ldk-node` makes its own on-chain wallet as BIP84 account 0 of whatever seed it gets; giving
/// it this derived seed (never the mnemonic's own) keeps its keys apart from the treasury's.
pub fn lightning_seed(mnemonic: &Mnemonic, network: Network) -> Result<[u8; 64], WalletError> {
    let master = Xpriv::new_master(network, &mnemonic.to_seed("")).map_err(|e| WalletError::Keys(e.to_string()))?;
    bip85_hex64(&master, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABANDON: &str =
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    #[test]
    fn created_mnemonic_is_private_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnemonic");
        let (m, created) = load_or_create_mnemonic(&path).unwrap();
        assert!(created);
        assert_eq!(m.word_count(), 24);
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let (again, created) = load_or_create_mnemonic(&path).unwrap();
        assert!(!created);
        assert_eq!(again, m);
    }

    #[test]
    fn world_readable_mnemonic_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mnemonic");
        fs::write(&path, ABANDON).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_mnemonic(&path).unwrap_err();
        assert!(err.to_string().contains("readable by others"), "{err}");
    }

    #[test]
    fn master_fingerprint_is_the_one_wallets_show() {
        // "abandon … about" is the test mnemonic every wallet shows as [73c5da0a/…].
        let m = Mnemonic::from_str(ABANDON).unwrap();
        assert_eq!(master_fingerprint(&m, Network::Bitcoin).unwrap(), "73c5da0a");
        assert_eq!(master_fingerprint(&m, Network::Regtest).unwrap(), "73c5da0a");
    }

    #[test]
    fn bip85_hex64_follows_the_standard_test_vector() {
        let master = Xpriv::from_str("xprv9s21ZrQH143K2LBWUUQRFXhucrQqBpKdRRxNVq2zBqsx8HVqFk2uYo8kmbaLLHRdqtQpUm98uKfu3vca1LqdGhUtyoFnCNkfmXRyPXLjbKb").unwrap();
        let hex = |b: [u8; 64]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(bip85_hex64(&master, 0).unwrap()), "492db4698cf3b73a5a24998aa3e9d7fa96275d85724a91e71aa2d645442f878555d078fd1f1f67e368976f04137b1f7a0d19232136ca50c44614af72b5582a5c");
        assert_eq!(hex(bip85_hex64(&master, 1234).unwrap()), "61d3c182f7388268463ef327c454a10bc01b3992fa9d2ee1b3891a6b487a5248793e61271066be53660d24e8cb76ff0cfdd0e84e478845d797324c195df9ab8e");
    }

    #[test]
    fn lightning_seed_is_stable_and_not_the_treasury_seed() {
        let m = Mnemonic::from_str(ABANDON).unwrap();
        let seed = lightning_seed(&m, Network::Regtest).unwrap();
        assert_eq!(seed, lightning_seed(&m, Network::Regtest).unwrap());
        assert_ne!(seed, m.to_seed(""));
        // ldk-node's own wallet would be BIP84 account 0 of `seed`: not the treasury's first address.
        let node_master = Xpriv::new_master(Network::Regtest, &seed).unwrap();
        let (node_ext, _) = {
            let (d, k, _) = Bip84(node_master, KeychainKind::External).build(Network::Regtest).unwrap();
            (d.to_string_with_secret(&k), ())
        };
        let (treasury_ext, _) = treasury_descriptors(&m, Network::Regtest).unwrap();
        assert_ne!(node_ext, treasury_ext);
    }

    #[test]
    fn bip84_descriptors_follow_the_standard_test_vector() {
        // BIP84's test vector: the first receive address of "abandon … about" on mainnet.
        let m = Mnemonic::from_str(ABANDON).unwrap();
        let (ext, int) = treasury_descriptors(&m, Network::Bitcoin).unwrap();
        assert!(ext.starts_with("wpkh(xprv") && ext.contains("/84'/0'/0'/0/*"), "{ext}");

        assert!(int.contains("/84'/0'/0'/1/*"), "{int}");
        let mut db = bdk_wallet::rusqlite::Connection::open_in_memory().unwrap();
        let mut w = bdk_wallet::Wallet::create(ext, int).network(Network::Bitcoin).create_wallet(&mut db).unwrap();
        let first = w.reveal_next_address(KeychainKind::External).address;
        assert_eq!(first.to_string(), "bc1qcr8te4kr609gcawutmrza0j4xv80jy8z306fyu");
    }
}
