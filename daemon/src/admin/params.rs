//! Reading JSON-RPC `params`: an object with known keys only, typed getters whose errors name the
//! key and carry the right stable code.

use serde_json::{Map, Value};

use super::error::AdminError;

/// A method's parameters (an object; absent or `null` is an empty one).
#[derive(Debug, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    /// Accepts an object, `null` or nothing.
    pub fn from_value(value: Option<Value>) -> Result<Params, AdminError> {
        match value {
            None | Some(Value::Null) => Ok(Params::default()),
            Some(Value::Object(map)) => Ok(Params(map)),
            Some(_) => Err(AdminError::invalid_params("params must be an object of named parameters")),
        }
    }

    /// Refuses any key not in `known`.
    pub fn only(self, known: &[&str]) -> Result<Params, AdminError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => {
                Err(AdminError::invalid_params(format!("unknown parameter {k:?}; accepted: {}", known.join(", "))))
            }
            None => Ok(self),
        }
    }

    /// The parameters as they came (for a method that hands them on whole, checked there).
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    /// A required string.
    pub fn string(&self, key: &str) -> Result<String, AdminError> {
        match self.0.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(AdminError::invalid_params(format!("{key} must be a string"))),
            None => Err(AdminError::invalid_params(format!("missing parameter {key}"))),
        }
    }

    /// A required list of strings: a JSON array, or one comma-separated string.
    pub fn string_list(&self, key: &str) -> Result<Vec<String>, AdminError> {
        let bad = || AdminError::invalid_params(format!("{key} must be a list of strings or a comma-separated string"));
        match self.0.get(key) {
            Some(Value::String(s)) => Ok(s.split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect()),
            Some(Value::Array(items)) => items.iter().map(|v| v.as_str().map(str::to_owned).ok_or_else(bad)).collect(),
            Some(_) => Err(bad()),
            None => Err(AdminError::invalid_params(format!("missing parameter {key}"))),
        }
    }

    /// An optional list of strings (see [`Params::string_list`]).
    pub fn optional_string_list(&self, key: &str) -> Result<Option<Vec<String>>, AdminError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.string_list(key).map(Some),
        }
    }

    /// An optional string.
    pub fn optional_string(&self, key: &str) -> Result<Option<String>, AdminError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(AdminError::invalid_params(format!("{key} must be a string"))),
        }
    }

    /// An optional boolean.
    pub fn optional_bool(&self, key: &str) -> Result<Option<bool>, AdminError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(AdminError::invalid_params(format!("{key} must be true or false"))),
        }
    }

    /// A required whole number ≥ 1; anything else is an error with `code`.
    pub fn positive_integer(&self, key: &str, code: &'static str) -> Result<u64, AdminError> {
        self.optional_positive_integer(key, code)?
            .ok_or_else(|| AdminError::invalid_params(format!("missing parameter {key}")))
    }

    /// An optional whole number ≥ 1; anything else is an error with `code`.
    pub fn optional_positive_integer(&self, key: &str, code: &'static str) -> Result<Option<u64>, AdminError> {
        let refuse = |why: &str| AdminError::new(super::error::rpc_code::INVALID_PARAMS, code, format!("{key} {why}"));
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
                (Some(0), _) => Err(refuse("must be at least 1")),
                (Some(v), _) => Ok(Some(v)),
                (None, Some(_)) => Err(refuse("must not be negative")),
                (None, None) => Err(refuse("must be a whole number")),
            },
            Some(_) => Err(refuse("must be a JSON integer")),
        }
    }
    /// An optional time: unix seconds (a JSON integer ≥ 1, or its digits as a string) or an
    /// RFC 3339 timestamp (`2026-12-03T10:00:00Z`).
    pub fn optional_time(&self, key: &str) -> Result<Option<u64>, AdminError> {
        let refuse = || AdminError::invalid_params(format!("{key} must be unix seconds or an RFC 3339 time"));
        match self.0.get(key) {
            Some(Value::String(s)) if s.trim().bytes().all(|b| b.is_ascii_digit()) => {
                s.trim().parse().map(Some).map_err(|_| refuse())
            }
            Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .and_then(|t| u64::try_from(t.timestamp()).ok())
                .map(Some)
                .ok_or_else(refuse),
            _ => self.optional_positive_integer(key, "invalid_params"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_are_checked_with_the_callers_code() {
        let p = Params::from_value(Some(json!({"a": 5, "z": 0, "n": -3, "f": 1.5, "s": "7"}))).unwrap();
        assert_eq!(p.positive_integer("a", "invalid_amount").unwrap(), 5);
        for key in ["z", "n", "f", "s"] {
            assert_eq!(p.positive_integer(key, "invalid_amount").unwrap_err().code, "invalid_amount", "{key}");
        }
        assert_eq!(p.positive_integer("missing", "invalid_amount").unwrap_err().code, "invalid_params");
        assert_eq!(p.optional_positive_integer("missing", "x").unwrap(), None);
    }

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        let p = Params::from_value(Some(json!({"n": 1_796_300_000, "d": "1796300000",
            "t": "2026-12-03T12:13:20Z", "o": "2026-12-03T13:13:20+01:00", "bad": "yesterday"})))
        .unwrap();
        for key in ["n", "d", "t", "o"] {
            assert_eq!(p.optional_time(key).unwrap(), Some(1_796_300_000), "{key}");
        }
        assert_eq!(p.optional_time("bad").unwrap_err().code, "invalid_params");
        assert_eq!(p.optional_time("missing").unwrap(), None);
    }

    #[test]
    fn shape_errors_are_invalid_params() {
        assert_eq!(Params::from_value(Some(json!([1]))).unwrap_err().code, "invalid_params");
        let err = Params::from_value(Some(json!({"adress": "x"}))).unwrap().only(&["address"]).unwrap_err();
        assert!(err.message.contains("adress"));
    }
}
