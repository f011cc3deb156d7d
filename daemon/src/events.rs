//! The outbox on NATS JetStream (`[events] nats_url`): every outbox event — the payment and
//! invoice events webhooks carry, and the operator's — is published in the outbox's order on
//! `<subject_prefix>.<event type>`, its payload the event's JSON, its `Nats-Msg-Id` the event id
//! (so JetStream drops a republished one within the stream's duplicate window) and
//! `Sendero-Event-Type` the type. At least once: the cursor (`events.nats_cursor`, the last outbox
//! row JetStream acknowledged) is saved after the acknowledgements, so a crash between the two
//! republishes, and JetStream's dedupe makes it exactly once for consumers. While NATS is away the
//! outbox keeps the events; the publisher says so once and catches up when it is back.

use std::sync::Arc;
use std::time::Duration;

use crate::store::sql::params;
use async_nats::jetstream::{self, message::PublishMessage};
use tokio_util::sync::CancellationToken;

use crate::config::EventsConfig;
use crate::store::{Store, StoreError};

/// Meta key: the last outbox row JetStream acknowledged.
pub const CURSOR: &str = "events.nats_cursor";
/// Most events published before the cursor is saved.
const BATCH: usize = 256;
/// How long an idle publisher waits before it looks at the outbox again.
const IDLE: Duration = Duration::from_millis(250);
/// The longest wait between attempts while NATS is away.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// Row id (the outbox's order).
    pub id: i64,
    /// The event id (`evt_…`).
    pub event_id: String,
    /// e.g. `payment.settled`.
    pub event_type: String,
    /// The event's JSON.
    pub payload: String,
}

impl Store {
    /// Up to `limit` outbox events after row `after`, in order.
    pub fn outbox_after(&self, after: i64, limit: usize) -> Result<Vec<OutboxEvent>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT id, event_id, event_type, payload FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(OutboxEvent { id: r.get(0)?, event_id: r.get(1)?, event_type: r.get(2)?, payload: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Outbox events not yet acknowledged by JetStream.
    pub fn events_backlog(&self) -> Result<u64, StoreError> {
        let cursor = self.events_cursor()?;
        let conn = self.read();
        let n: i64 = conn.query_row("SELECT COUNT(*) FROM outbox WHERE id > ?1", [cursor], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn events_cursor(&self) -> Result<i64, StoreError> {
        Ok(self.meta(CURSOR)?.and_then(|c| c.parse().ok()).unwrap_or(0))
    }
}

/// Why a round of publishing stopped.
#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Nats(String),
}

fn nats(e: impl std::fmt::Display) -> PublishError {
    PublishError::Nats(e.to_string())
}

/// The subject of an event type.
pub fn subject(config: &EventsConfig, event_type: &str) -> String {
    format!("{}.{event_type}", config.subject_prefix)
}

/// How senderod connects: in the background (the publisher starts even while NATS is away), a
/// log line when the connection comes and goes.
fn connect_options(url: String) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::new()
        .name("senderod")
        .connection_timeout(Duration::from_secs(5))
        .request_timeout(Some(Duration::from_secs(5)))
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let url = url.clone();
            async move {
                match event {
                    async_nats::Event::Connected => tracing::info!(nats = %url, "events: connected to NATS"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(nats = %url, "events: NATS disconnected; events wait in the outbox")
                    }
                    other => tracing::debug!(nats = %url, event = %other, "events: NATS"),
                }
            }
        })
}

/// Publishes the outbox until `cancel`.
pub async fn run(store: Arc<Store>, config: EventsConfig, cancel: CancellationToken) {
    let options = connect_options(config.nats_url.clone());
    let client = match async_nats::connect_with_options(config.nats_url.as_str(), options).await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!(nats = %config.nats_url, error = %e, "events: cannot use the NATS URL; events are not published");
            cancel.cancelled().await;
            return;
        }
    };
    let js = jetstream::new(client);
    let (mut stream_ready, mut failing) = (false, false);
    // The last row JetStream acknowledged: read from the store once, then kept here.
    let mut cursor: Option<i64> = None;
    let mut backoff = Duration::from_millis(500);
    while !cancel.is_cancelled() {
        let round = async {
            if !stream_ready {
                ensure_stream(&js, &config).await?;
                stream_ready = true;
            }
            let after = match cursor {
                Some(after) => after,
                None => *cursor.insert(store.events_cursor()?),
            };
            let (published, last) = publish_round(&store, &js, &config, after).await?;
            cursor = Some(last);
            Ok::<_, PublishError>(published)
        };
        let wait = match round.await {
            Ok(published) => {
                if std::mem::take(&mut failing) {
                    let backlog = store.events_backlog().unwrap_or_default();
                    tracing::info!(published, backlog, "events: publishing to JetStream again");
                }
                backoff = Duration::from_millis(500);
                if published == BATCH {
                    continue;
                }
                IDLE
            }
            Err(e) => {
                let backlog = store.events_backlog().unwrap_or_default();
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, backlog, "events: cannot publish to JetStream; retrying (the outbox keeps them)");
                } else {
                    tracing::debug!(error = %e, backlog, "events: still cannot publish");
                }
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The stream, created when missing (subjects `<prefix>.>`, the configured duplicate window).
async fn ensure_stream(js: &jetstream::Context, config: &EventsConfig) -> Result<(), PublishError> {
    let wanted = jetstream::stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        duplicate_window: Duration::from_secs(config.duplicate_window_secs),
        ..Default::default()
    };
    let mut stream = js.get_or_create_stream(wanted).await.map_err(nats)?;
    let info = stream.info().await.map_err(nats)?;
    tracing::info!(stream = %config.stream, subjects = ?info.config.subjects, messages = info.state.messages,
        "events: publishing the outbox to JetStream");
    Ok(())
}

/// Publishes the events after row `after` (up to [`BATCH`]), waits for every acknowledgement,
/// then saves the cursor; how many were published and the cursor now.
async fn publish_round(
    store: &Store,
    js: &jetstream::Context,
    config: &EventsConfig,
    after: i64,
) -> Result<(usize, i64), PublishError> {
    let events = store.outbox_after(after, BATCH)?;
    let Some(last) = events.last().map(|e| e.id) else { return Ok((0, after)) };
    let mut acks = Vec::with_capacity(events.len());
    for e in &events {
        let message = PublishMessage::build()
            .payload(e.payload.clone().into_bytes().into())
            .message_id(&e.event_id)
            .header("Sendero-Event-Type", e.event_type.as_str());
        acks.push(js.send_publish(subject(config, &e.event_type), message).await.map_err(nats)?);
    }
    let mut duplicates = 0;
    for ack in acks {
        if ack.await.map_err(nats)?.duplicate {
            duplicates += 1;
        }
    }
    crate::failpoint::hit("events.published");
    store.set_meta(CURSOR, &last.to_string())?;
    crate::metrics::events_published(events.len() as u64);
    if duplicates > 0 {
        tracing::info!(duplicates, "events: JetStream dropped events published before a restart (same ids)");
    }
    tracing::debug!(events = events.len(), cursor = last, "events: published");
    Ok((events.len(), last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_goes_to_its_type_under_the_prefix() {
        let config = EventsConfig::default();
        assert_eq!(subject(&config, "payment.settled"), "sendero.payment.settled");
        let custom = EventsConfig { subject_prefix: "shop.eu".into(), ..EventsConfig::default() };
        assert_eq!(subject(&custom, "invoice.paid"), "shop.eu.invoice.paid");
    }
}
