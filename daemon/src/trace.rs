//! Trace ids: each API request carries one — the W3C `traceparent` a client sent, else a new
//! one — in a `request` span, so every log line of the request names it. A payout keeps the trace
//! of the request that submitted it (`payment_traces`, by the request's idempotency key, written
//! before the payout exists), and the saga and the webhook sender
//! continue it: their spans for that payout carry the same `trace_id`.

use crate::store::sql::{params, OptionalExtension};

use crate::store::{Store, StoreError};

/// The 32-hex-digit trace id of a W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`), if
/// the header is well formed (an all-zero id is not).
pub fn from_traceparent(header: &str) -> Option<String> {
    let mut parts = header.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let valid = hex(version, 2) && version != "ff" && hex(trace, 32) && hex(parent, 16) && hex(flags, 2);
    (valid && trace.bytes().any(|b| b != b'0') && parent.bytes().any(|b| b != b'0')).then(|| trace.to_owned())
}

/// A new random trace id (32 hex digits).
pub fn new_trace_id() -> String {
    hex(&rand::random::<[u8; 16]>())
}

/// A `traceparent` for `trace_id` with a new span id (what the gateway answers and passes on).
pub fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{}-01", hex(&rand::random::<[u8; 8]>()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Remembers that the request `idem_key` of key `api_key_id` (a submit, a refund) ran under
    /// `trace_id`, before the payout it makes exists (the first trace stays).
    pub fn record_trace(&self, (api_key_id, idem_key): (&str, &str), trace_id: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO payment_traces (api_key_id, idem_key, trace_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![api_key_id, idem_key, trace_id],
        )?;
        Ok(())
    }

    /// The trace `payment_id` was submitted under, if known.
    pub fn trace_of(&self, payment_id: &str) -> Result<Option<String>, StoreError> {
        let conn = self.read();
        let trace = conn
            .prepare_cached(
                "SELECT t.trace_id FROM payments p JOIN payment_traces t
                     ON t.api_key_id = p.api_key_id AND t.idem_key = p.idem_key
                 WHERE p.payment_id = ?1",
            )?
            .query_row([payment_id], |r| r.get(0))
            .optional()?;
        Ok(trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_gives_its_trace_id_and_a_malformed_one_none() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(from_traceparent(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(), Some(id));
        assert_eq!(from_traceparent(&format!("00-{id}-00f067aa0ba902b7")), None);
        assert_eq!(from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), None);
        assert_eq!(from_traceparent(&format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase())), None);
        assert_eq!(from_traceparent(&format!("ff-{id}-00f067aa0ba902b7-01")), None);
        let fresh = new_trace_id();
        assert_eq!(from_traceparent(&traceparent(&fresh)), Some(fresh));
    }
}
