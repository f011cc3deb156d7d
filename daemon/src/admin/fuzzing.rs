//! Entry point for the admin fuzz target (`fuzz/`): a request body read as the dispatcher reads
//! it, then every typed parameter getter tried on every key. Not an API.

use super::error::rpc_code;
use super::parse_request;

/// Reads `body` as a JSON-RPC request and its params: `Ok(method)` when the envelope is
/// well-formed, else the refusal's stable code. Asserts that every refusal carries a JSON-RPC
/// error number of the right class and that the getters agree with each other.
pub fn request(body: &[u8]) -> Result<String, &'static str> {
    let (_id, method, params) = match parse_request(body) {
        Ok(parsed) => parsed,
        Err((_id, e)) => {
            assert!(matches!(e.rpc_code, rpc_code::PARSE_ERROR | rpc_code::INVALID_REQUEST | rpc_code::INVALID_PARAMS));
            return Err(e.code);
        }
    };
    let map = params.into_map();
    let keys: Vec<String> = map.keys().cloned().collect();
    let params = super::params::Params::from_value(Some(serde_json::Value::Object(map))).map_err(|e| e.code)?;
    for key in &keys {
        let string = params.string(key);
        assert_eq!(string.as_ref().ok(), params.optional_string(key).ok().flatten().as_ref());
        let list = params.string_list(key);
        if let Ok(list) = &list {
            assert!(list.iter().all(|s| !s.contains(',') || string.is_err()), "a comma-separated item kept a comma");
        }
        let _ = params.optional_string_list(key);
        let _ = params.optional_bool(key);
        if let Ok(n) = params.positive_integer(key, "invalid_amount") {
            assert!(n >= 1);
        }
        let _ = params.optional_time(key);
    }
    let _ = params.only(&["address", "amount_sat", "id", "limit"]);
    Ok(method)
}
