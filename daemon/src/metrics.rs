//! Prometheus metrics through the `metrics` facade and `metrics-exporter-prometheus`: counters and
//! histograms recorded where things happen (a payout final, an HTTP request, a quote served from
//! the rate cache or not, an FX source polled), gauges set from the gateway's own records when
//! scraped (`admin/metrics.rs`). Nothing is recorded until [`install`] runs (`[metrics] listen`
//! set): the facade's calls are then no-ops.
//!
//! Values are floats, as the exposition format has them; sats are exact in them up to 2^53.

use std::sync::OnceLock;

use metrics::Label;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds of the latency histograms (`*_seconds`): from a fast HTTP answer to a
/// low-priority on-chain payout's day.
const BUCKETS: [f64; 16] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3_600.0, 21_600.0, 86_400.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder (once); `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS);
            builder.ok()?.install_recorder().ok()
        })
        .as_ref()
}

/// Whether metrics are recorded (after [`install`]); callers skip building labels when not.
pub fn enabled() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// The text exposition of everything recorded, or `None` before [`install`].
pub fn render() -> Option<String> {
    let handle = HANDLE.get()?.as_ref()?;
    handle.run_upkeep();
    Some(handle.render())
}

/// A payout reached `state` (`settled` or `failed`) on `rail`, `secs` after its submission.
pub fn payout_final(rail: &'static str, state: &'static str, secs: u64) {
    metrics::counter!("sendero_payouts_final_total", "rail" => rail, "state" => state).increment(1);
    if state == "settled" {
        metrics::histogram!("sendero_payout_settle_seconds", "rail" => rail).record(secs as f64);
    }
}

/// An HTTP request to the public API answered `status` after `secs`; `route` is the matched
/// path template (`/v1/payments/{id}`), never the raw path.
pub fn http_request(route: String, method: String, status: u16, secs: f64) {
    let labels = [("route", route.clone()), ("method", method), ("status", status.to_string())];
    metrics::counter!("sendero_http_requests_total", &labels).increment(1);
    metrics::histogram!("sendero_http_request_duration_seconds", "route" => route).record(secs);
}

/// A quote asked the rate cache for `pair`: a fresh rate (`hit`) or none (`miss`: the quote is
/// refused with `rate_unavailable`).
pub fn rate_lookup(hit: bool) {
    let outcome = if hit { "hit" } else { "miss" };
    metrics::counter!("sendero_fx_rate_cache_total", "outcome" => outcome).increment(1);
}

/// An FX source answered (`ok`) or not for a pair.
pub fn fx_source(source: &'static str, ok: bool) {
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!("sendero_fx_source_polls_total", "source" => source, "outcome" => outcome).increment(1);
    metrics::gauge!("sendero_fx_source_up", "source" => source).set(if ok { 1.0 } else { 0.0 });
}

/// Sets gauge `name` with `labels` to `value` (scrape-time gauges).
pub fn gauge(name: &'static str, labels: &[(&'static str, String)], value: f64) {
    let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, v.clone())).collect();
    metrics::gauge!(name, labels).set(value);
}

/// `n` outbox events were acknowledged by JetStream (`[events]`).
pub fn events_published(n: u64) {
    metrics::counter!("sendero_events_published_total").increment(n);
}
