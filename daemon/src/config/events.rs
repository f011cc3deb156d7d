//! `[events]`: the outbox published to a NATS JetStream stream (off unless `nats_url` is set).

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[events]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Empty: no publishing. A NATS server such as `nats://127.0.0.1:4222` (JetStream enabled).
    pub nats_url: String,
    /// The JetStream stream the events go to; created (subjects `<subject_prefix>.>`) when missing.
    pub stream: String,
    /// An event `payment.settled` is published on `<subject_prefix>.payment.settled`.
    pub subject_prefix: String,
    /// How long a stream Sendero creates remembers a message id to drop a republished event,
    /// seconds (JetStream's duplicate window).
    pub duplicate_window_secs: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            nats_url: String::new(),
            stream: "SENDERO".into(),
            subject_prefix: "sendero".into(),
            duplicate_window_secs: 86_400,
        }
    }
}

impl EventsConfig {
    /// Whether events are published.
    pub fn enabled(&self) -> bool {
        !self.nats_url.is_empty()
    }

    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            return Ok(());
        }
        let url = &self.nats_url;
        if !["nats://", "tls://"].iter().any(|s| url.starts_with(s)) {
            return Err(ConfigError::Invalid(format!("events.nats_url {url:?} is not a nats:// or tls:// URL")));
        }
        let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok(&self.stream) {
            return Err(ConfigError::Invalid(format!(
                "events.stream {:?} must be letters, digits, '_' or '-'",
                self.stream
            )));
        }
        if !self.subject_prefix.split('.').all(name_ok) {
            return Err(ConfigError::Invalid(format!(
                "events.subject_prefix {:?} must be dot-separated tokens of letters, digits, '_' or '-'",
                self.subject_prefix
            )));
        }
        if self.duplicate_window_secs == 0 {
            return Err(ConfigError::Invalid("events.duplicate_window_secs must be above 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_bad_values_are_named() {
        assert!(!EventsConfig::default().enabled());
        assert!(EventsConfig::default().check().is_ok());
        let on = |f: fn(&mut EventsConfig)| {
            let mut c = EventsConfig { nats_url: "nats://127.0.0.1:4222".into(), ..EventsConfig::default() };
            f(&mut c);
            c.check().map_err(|e| e.to_string())
        };
        assert!(on(|_| {}).is_ok());
        assert!(on(|c| c.nats_url = "http://127.0.0.1:4222".into()).unwrap_err().contains("events.nats_url"));
        assert!(on(|c| c.stream = "a b".into()).unwrap_err().contains("events.stream"));
        assert!(on(|c| c.subject_prefix = "shop.*".into()).unwrap_err().contains("events.subject_prefix"));
        assert!(on(|c| c.subject_prefix = "shop..eu".into()).unwrap_err().contains("events.subject_prefix"));
        assert!(on(|c| c.duplicate_window_secs = 0).unwrap_err().contains("duplicate_window_secs"));
    }
}
