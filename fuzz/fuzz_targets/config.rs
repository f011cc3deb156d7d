//! The config file from TOML text, as `senderod` reads it: no panic; a config that loads keeps
//! loading from its own serialisation, to the same settings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendero::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = Config::from_toml(text) else { return };
    let _ = (config.bitcoin_network(), config.api_listen(), config.admin_listen(), config.bitcoind_rpc());
    let written = toml::to_string(&config).expect("a loaded config serialises");
    let again = Config::from_toml(&written).unwrap_or_else(|e| panic!("{e}\n--- written:\n{written}"));
    assert_eq!(toml::to_string(&again).ok().as_deref(), Some(written.as_str()));
    assert_eq!(again.audited_policy(), config.audited_policy());
});
