//! Destination parsing (address, BOLT11, BOLT12, BIP21, keysend) on anyone's text, on every
//! network: no panic, and what parses re-parses to the same destination from its canonical text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendero::route::destination::{parse, LnDestination};
use sendero_lightning::{is_keysend, is_offer, read_bolt11, read_keysend, read_offer};
use sendero_wallet::bitcoin::Network;

const NETWORKS: [Network; 4] = [Network::Bitcoin, Network::Testnet, Network::Signet, Network::Regtest];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = (is_keysend(text), is_offer(text));
    let _ = read_keysend(text);
    for network in NETWORKS {
        let _ = read_offer(text, network);
        let _ = read_bolt11(text, network);
        let Ok(dest) = parse(text, network) else { continue };
        let pay = dest.pay_to();
        let _ = (pay.rail(true, 0), pay.rail(false, u64::MAX));
        if let Some(address) = &dest.address {
            let again = parse(&address.to_string(), network).expect("an accepted address re-parses");
            assert_eq!(again.address.as_ref(), Some(address));
        }
        if let Some(ln) = &dest.lightning {
            let again = parse(ln.text(), network);
            match (ln, again.as_ref().map(|d| d.lightning.as_ref())) {
                (LnDestination::Keysend(_, node), Ok(Some(LnDestination::Keysend(_, n)))) => assert_eq!(node, n),
                (LnDestination::Keysend(..), other) => panic!("keysend text did not re-parse: {other:?}"),
                (_, Ok(Some(other))) => assert_eq!(other.amount_msat(), ln.amount_msat()),
                // An invoice can expire between the two reads; anything else must agree.
                (_, _) => {}
            }
        }
        if let (Some(ln), Some(amount)) = (&dest.lightning, dest.amount_msat) {
            assert!(ln.amount_msat().is_none_or(|a| a == amount), "the URI's amount disagrees with its invoice");
        }
    }
});
