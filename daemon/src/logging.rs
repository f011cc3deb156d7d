//! Log output: human-readable or JSON lines on stderr, filtered by `log.level` (or `RUST_LOG`).
//! Warnings and errors of the libraries underneath (ldk-node, LDK, BDK) that repeat word for word
//! are written once per ten minutes: ldk-node reports each of its 18 fee targets as an ERROR on
//! every fee refresh where bitcoind has no estimate (always, on regtest), which is nothing an
//! operator can act on eighteen times.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogConfig;

/// How long a repeated library warning stays quiet.
const QUIET: Duration = Duration::from_secs(600);

/// Installs the global subscriber. Call once, first thing.
pub fn init(log: &LogConfig) -> Result<(), String> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .map_err(|e| format!("log.level {:?}: {e}", log.level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let output = match log.format.as_str() {
        "json" => fmt.json().with_current_span(true).boxed(),
        _ => fmt.boxed(),
    };
    tracing_subscriber::registry()
        .with(output.with_filter(Repeats::default()).with_filter(filter))
        .try_init()
        .map_err(|e| e.to_string())
}

/// Drops a library's warning or error that repeats the last one of the same text within
/// [`QUIET`].
#[derive(Default)]
struct Repeats {
    last: Mutex<HashMap<String, Instant>>,
}

impl Repeats {
    /// Whether `message` is written now (and remembered as written).
    fn fresh(&self, message: String, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.retain(|_, at| now.duration_since(*at) < QUIET);
        if last.contains_key(&message) {
            return false;
        }
        last.insert(message, now);
        true
    }
}

impl<S> Filter<S> for Repeats {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() > Level::WARN || meta.target().starts_with("sendero") {
            return true;
        }
        let mut text = Message(String::new());
        event.record(&mut text);
        self.fresh(text.0, Instant::now())
    }
}

/// An event's `message` field.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_library_warning_is_written_once_per_quiet_period() {
        let repeats = Repeats::default();
        let t0 = Instant::now();
        let fee = || "Failed to retrieve fee rate estimates".to_owned();
        assert!(repeats.fresh(fee(), t0));
        assert!(!repeats.fresh(fee(), t0 + Duration::from_millis(1)), "the 17 others of the same refresh");
        assert!(repeats.fresh("another warning".into(), t0), "other text is written");
        assert!(!repeats.fresh(fee(), t0 + QUIET - Duration::from_secs(1)));
        assert!(repeats.fresh(fee(), t0 + QUIET), "once more after the quiet period");
    }
}
