//! The admin JSON-RPC envelope and params on anyone's bytes: no panic; refusals carry a
//! JSON-RPC error number of the right class and the typed getters agree (asserted inside).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sendero::admin::fuzzing::request(data);
});
