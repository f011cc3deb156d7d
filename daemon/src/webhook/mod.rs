//! Signed webhooks, fed only from the outbox. Each API key registers endpoints; every outbox
//! event of that key is fanned out to its enabled endpoints as one delivery each, and delivered
//! as a Standard Webhook: `webhook-id` (the event id, the same on every retry), `webhook-timestamp`
//! and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by the
//! endpoint's `whsec_` secret. 2xx delivers; 5xx, 408, 429 and network errors are retried with
//! doubling waits up to `max_attempts`; 410 disables the endpoint; any other answer gives up.
//! Deliveries live in the store, so they survive restarts (at least once: a receiver dedupes on
//! `webhook-id`), every attempt is logged, and an operator can redeliver.

pub mod guard;
pub mod operator;
mod record;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sendero_wallet::bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use serde::Serialize;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use record::{Backlog, Delivery, Due, Endpoint};

use crate::config::Config;
use crate::store::{Store, StoreError};

/// The webhook sender: the store its endpoints, deliveries and the outbox live in, and the waker
/// it sleeps on between deliveries.
pub struct Webhooks {
    /// The checked configuration (`[webhooks]`).
    pub config: Arc<Config>,
    /// Where endpoints and deliveries are kept.
    pub store: Arc<Store>,
    /// Woken when an outbox event was written or a delivery was asked for again.
    pub wake: Arc<tokio::sync::Notify>,
}

/// Events an endpoint can subscribe to: one per persisted saga state (`payment.submitted` is
/// written with the ledger debit, in one transaction).
pub const EVENTS: &[&str] = &[
    "payment.submitted",
    "payment.sending",
    "payment.sent",
    "payment.settled",
    "payment.failed",
    "payment.debited",
    "payment.delayed",
    "invoice.processing",
    "invoice.paid",
    "invoice.underpaid",
    "invoice.overpaid",
    "invoice.expired",
    "invoice.paid_late",
    "invoice.reorged",
];

/// What an endpoint hears when it names no events: the states a client acts on.
pub const DEFAULT_EVENTS: &[&str] = &["payment.submitted", "payment.settled", "payment.failed"];

/// Operator events (no payment, no API key): an endpoint of any key gets them when it names them.
pub const OPERATOR_EVENTS: &[&str] = &["channel.closed_unexpectedly", "treasury.low", "treasury.recovered"];

/// Why an endpoint was not registered.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Not an absolute http(s) URL.
    #[error("url must be an absolute http:// or https:// URL: {0}")]
    InvalidUrl(String),
    /// The host is or resolves to an address the SSRF guard refuses (or does not resolve).
    #[error("{0}")]
    NotAllowed(String),
    /// Unknown event type.
    #[error("unknown event {0:?}; events are {events} and the operator's {operator}", events = EVENTS.join(", "), operator = OPERATOR_EVENTS.join(", "))]
    InvalidEvent(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A newly registered endpoint, with its secret (shown this once).
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_<base64>`: the HMAC key is the base64-decoded part.
    pub secret: String,
}

/// `url` as an absolute http(s) URL.
fn checked_url(url: &str) -> Result<reqwest::Url, WebhookError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| WebhookError::InvalidUrl(format!("{url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(WebhookError::InvalidUrl(url.to_owned()));
    }
    Ok(parsed)
}

/// A new `whsec_` signing secret.
fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    format!("whsec_{}", B64.encode(key))
}

/// Registers `url` for key `api_key_id`, for `events` (all when empty).
pub fn register(ctx: &Webhooks, api_key_id: &str, url: &str, events: &[String]) -> Result<Registered, WebhookError> {
    let parsed = checked_url(url)?;
    guard::Guard::new(&ctx.config.webhooks).check_url_blocking(&parsed).map_err(WebhookError::NotAllowed)?;
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str()) && !OPERATOR_EVENTS.contains(&e.as_str())) {
        return Err(WebhookError::InvalidEvent(bad.clone()));
    }
    let secret = new_secret();
    let now = crate::unix_now();
    let endpoint = Endpoint {
        endpoint_id: crate::secret::sortable_id("we_"),
        url: parsed.to_string(),
        events: if events.is_empty() {
            DEFAULT_EVENTS.iter().map(|e| (*e).to_owned()).collect()
        } else {
            events.to_vec()
        },
        state: "enabled".into(),
        disabled_reason: None,
        created_at: now,
    };
    ctx.store.insert_endpoint(&endpoint, api_key_id, &secret)?;
    tracing::info!(endpoint_id = %endpoint.endpoint_id, url = %endpoint.url, "webhook endpoint registered");
    Ok(Registered { endpoint, secret })
}

/// `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>` for a `whsec_` secret.
pub fn sign(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> Option<String> {
    let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut engine = hmac::HmacEngine::<sha256::Hash>::new(&key);
    engine.input(id.as_bytes());
    engine.input(b".");
    engine.input(timestamp.to_string().as_bytes());
    engine.input(b".");
    engine.input(body);
    Some(format!("v1,{}", B64.encode(hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array())))
}

/// Runs until `cancel`: fans new outbox events out to endpoints, then sends what is due.
pub async fn run(ctx: Arc<Webhooks>, cancel: CancellationToken) {
    // No redirects, no proxy from the environment, and names resolved only to addresses the
    // guard checked.
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(ctx.config.webhooks.timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(guard::Resolver(Arc::new(guard::Guard::new(&ctx.config.webhooks)))))
        .build()
    {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "webhook client could not be built; webhooks are off"),
    };
    let mut in_flight = JoinSet::new();
    let mut cursor = match ctx.store.fan_out_cursor() {
        Ok(c) => c,
        Err(e) => return tracing::error!(error = %e, "reading the webhook cursor; webhooks are off"),
    };
    loop {
        let store = Arc::clone(&ctx.store);
        match tokio::task::spawn_blocking(move || store.fan_out(cursor, crate::unix_now())).await {
            Ok(Ok((next, made))) => {
                cursor = next;
                if made > 0 {
                    tracing::debug!(deliveries = made, "webhook deliveries queued");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "fanning out webhook events"),
            Err(e) => tracing::error!(error = %e, "webhook task failed"),
        }
        let room = ctx.config.webhooks.concurrency.saturating_sub(in_flight.len());
        if room > 0 {
            let store = Arc::clone(&ctx.store);
            let hold = ctx.config.webhooks.timeout_secs + 5;
            let due = tokio::task::spawn_blocking(move || store.due_deliveries(crate::unix_now(), room, hold)).await;
            match due {
                Ok(Ok(due)) => {
                    for d in due {
                        in_flight.spawn(deliver(ctx.clone(), client.clone(), d));
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "reading due webhook deliveries"),
                Err(e) => tracing::error!(error = %e, "webhook task failed"),
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => {}
            _ = ctx.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
    // Attempts cut short stay pending and are sent again after the restart.
    in_flight.abort_all();
}

/// One attempt at one delivery, and its record.
/// Delivers `d` inside a `webhook.deliver` span that continues its payout's trace (if it is a
/// payout's event).
async fn deliver(ctx: Arc<Webhooks>, client: reqwest::Client, d: Due) {
    let payment_id = serde_json::from_str::<serde_json::Value>(&d.payload)
        .ok()
        .and_then(|v| v.get("payment_id").and_then(|p| p.as_str()).map(str::to_owned));
    let trace_id = payment_id.as_deref().and_then(|id| ctx.store.trace_of(id).ok().flatten()).unwrap_or_default();
    let span = tracing::info_span!("webhook.deliver", trace_id = %trace_id, event_type = %d.event_type,
        payment_id = payment_id.as_deref().unwrap_or_default());
    crate::telemetry::continue_trace(&span, &trace_id);
    tracing::Instrument::instrument(deliver_traced(ctx, client, d), span).await
}

async fn deliver_traced(ctx: Arc<Webhooks>, client: reqwest::Client, d: Due) {
    let timestamp = crate::unix_now();
    let body = serde_json::json!({
        "type": d.event_type,
        "timestamp": crate::rfc3339(d.created_at),
        "data": serde_json::from_str::<serde_json::Value>(&d.payload).unwrap_or_default(),
    })
    .to_string();
    let Some(signature) = sign(&d.secret, &d.event_id, timestamp, body.as_bytes()) else {
        return tracing::error!(endpoint_id = %d.endpoint_id, "webhook secret is malformed; delivery skipped");
    };
    let started = Instant::now();
    let (status, error, refused) = send(&ctx, &client, &d, (timestamp, signature), body).await;
    let elapsed = started.elapsed().as_millis() as u64;
    let c = &ctx.config.webhooks;
    let attempts = d.attempts + 1;
    let retry_in = c.backoff_base_secs.saturating_mul(1 << (attempts - 1).min(20)).min(c.backoff_max_secs);
    let outcome = match classify(status) {
        // The guard refused the address: nothing was sent, and sending again would not help.
        _ if refused => Outcome::GiveUp,
        Outcome::Retry if attempts >= c.max_attempts => Outcome::GiveUp,
        o => o,
    };
    log_attempt(&d, outcome, (status, error.as_deref()), elapsed, retry_in);
    let store = Arc::clone(&ctx.store);
    let now = crate::unix_now();
    let recorded = tokio::task::spawn_blocking(move || {
        store.record_attempt(
            &d,
            outcome.state(),
            status,
            error.as_deref(),
            elapsed,
            now + retry_in,
            outcome == Outcome::Gone,
            now,
        )
    })
    .await;
    if let Ok(Err(e)) = recorded {
        tracing::error!(error = %e, "recording a webhook attempt");
    }
}

/// Sends one attempt to an address the guard allows: the status, or the error and whether the
/// guard refused the address (then nothing was sent).
async fn send(
    ctx: &Webhooks,
    client: &reqwest::Client,
    d: &Due,
    (timestamp, signature): (u64, String),
    body: String,
) -> (Option<u16>, Option<String>, bool) {
    let literal = reqwest::Url::parse(&d.url).map(|url| guard::Guard::new(&ctx.config.webhooks).check_literal(&url));
    if let Ok(Err(refused)) = literal {
        return (None, Some(format!("webhook_url_not_allowed: {refused}")), true);
    }
    let sent = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("webhook-id", &d.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) => (Some(r.status().as_u16()), None, false),
        Err(e) => match guard::refusal(&e) {
            Some(refused) => (None, Some(format!("webhook_url_not_allowed: {refused}")), true),
            None => (None, Some(e.to_string()), false),
        },
    }
}

fn log_attempt(d: &Due, outcome: Outcome, (status, error): (Option<u16>, Option<&str>), ms: u64, retry_in: u64) {
    let (id, event_id, attempts) = (d.delivery_id, &d.event_id, d.attempts + 1);
    match outcome {
        Outcome::Delivered => tracing::info!(delivery_id = id, %event_id, status, ms, "webhook delivered"),
        Outcome::Retry => tracing::warn!(delivery_id = id, %event_id, status, error, attempts, retry_in_s = retry_in,
            "webhook delivery failed; will retry"),
        Outcome::Gone => {
            tracing::warn!(endpoint_id = %d.endpoint_id, url = %d.url, "webhook endpoint answered 410 Gone: disabled")
        }
        Outcome::GiveUp => {
            tracing::warn!(delivery_id = id, %event_id, status, error, attempts, "webhook delivery given up")
        }
    }
}

/// What an answer means for a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Delivered,
    /// 5xx, 408, 429, or no answer.
    Retry,
    /// 410: the endpoint is disabled.
    Gone,
    /// Any other answer, or out of attempts.
    GiveUp,
}

impl Outcome {
    fn state(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry => "pending",
            Outcome::Gone | Outcome::GiveUp => "failed",
        }
    }
}

/// Classifies an HTTP status (`None`: no answer).
pub fn classify(status: Option<u16>) -> Outcome {
    match status {
        Some(200..=299) => Outcome::Delivered,
        None | Some(408) | Some(429) | Some(500..=599) => Outcome::Retry,
        Some(410) => Outcome::Gone,
        Some(_) => Outcome::GiveUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The Standard Webhooks reference vector (standard-webhooks/libraries, test suite).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(sign(secret, id, 1614265330, body).unwrap(), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(sign("not-a-secret", id, 1, body).is_none());
    }

    #[test]
    fn answers_decide_retries() {
        assert_eq!(classify(Some(204)), Outcome::Delivered);
        for retry in [None, Some(500), Some(503), Some(408), Some(429)] {
            assert_eq!(classify(retry), Outcome::Retry, "{retry:?}");
        }
        assert_eq!(classify(Some(410)), Outcome::Gone);
        assert_eq!(classify(Some(400)), Outcome::GiveUp);
        assert_eq!(classify(Some(301)), Outcome::GiveUp);
    }
}
