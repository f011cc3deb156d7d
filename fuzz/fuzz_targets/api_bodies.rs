//! The public API's request parsers (every JSON body, the quote and list query strings) on
//! anyone's bytes: no panic, and every refusal a 4xx with a stable code (asserted inside).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sendero::api::fuzzing;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::fx_execute(data);
    let _ = fuzzing::invoices_create(data);
    let _ = fuzzing::invoices_refund(data);
    let _ = fuzzing::payments_route(data);
    let _ = fuzzing::payments_submit(data);
    let _ = fuzzing::webhooks_create(data);
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = fuzzing::fx_quote(query);
        let _ = fuzzing::list_query(query);
    }
});
