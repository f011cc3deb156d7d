//! The API's one error shape: `{"error": {"code", "message"}}` with a stable `code` and the HTTP
//! status a client can act on — and the one place where each domain error becomes it: 4xx for
//! what the client can fix, 503 with `Retry-After` for what clears by itself, 500 (logged, no
//! detail) for the gateway's own failures.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::fx::{ExecuteError, FxError};
use crate::invoice::InvoiceError;
use crate::limits::LimitError;
use crate::payment::refund::RefundError;
use crate::payment::submit::SubmitError;
use crate::payment::InsertError;
use crate::route::destination::DestinationError;
use crate::route::{QuoteUseError, RouteError};
use crate::store::StoreError;
use crate::webhook::WebhookError;

/// How long a client should wait before asking again when something clears by itself.
pub(crate) const RETRY_AFTER_SECS: u64 = 5;

/// How long a client should wait after `storage_full`: space is freed by an operator.
pub(crate) const STORAGE_RETRY_AFTER_SECS: u64 = 30;

/// An API error.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human message.
    pub message: String,
    /// Extra fields of the error object (e.g. the fresh `quote` of `requote_required`).
    pub extra: Map<String, Value>,
    /// `Retry-After`, seconds: the error clears by itself (a 503 a client should retry).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), extra: Map::new(), retry_after_secs: None }
    }

    /// A 500: logged with `what` and the cause, answered without detail.
    pub fn internal(what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{what}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("could not {what}"))
    }

    /// A store failure: 507 `storage_full` (with `Retry-After`: nothing was written, and it
    /// clears once space is freed) when the disk is full, else a 500 logged with `what`.
    pub fn store(what: &str, e: &StoreError) -> Self {
        if e.is_disk_full() {
            return Self::disk_full(&e);
        }
        Self::internal(what, &e)
    }

    /// 507 `storage_full`: the data directory's disk is full; nothing was written.
    pub fn disk_full(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "the data directory's disk is full: free space for the gateway to write again");
        ApiError {
            retry_after_secs: Some(STORAGE_RETRY_AFTER_SECS),
            ..Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the gateway's disk is full: nothing was written; retry once the operator has freed space",
            )
        }
    }

    /// A 503 for something that clears by itself, with `Retry-After: secs`.
    pub fn retry_later(code: &'static str, message: impl Into<String>, secs: u64) -> Self {
        ApiError { retry_after_secs: Some(secs), ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message) }
    }

    /// Adds a field to the error object.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    /// The status and the exact body bytes (what idempotent routes store and replay).
    pub fn render(&self) -> (StatusCode, Vec<u8>) {
        let mut error = self.extra.clone();
        error.insert("code".into(), Value::from(self.code));
        error.insert("message".into(), Value::from(self.message.clone()));
        if let Some(secs) = self.retry_after_secs {
            error.insert("retry_after_sec".into(), Value::from(secs));
        }
        (self.status, json!({ "error": error }).to_string().into_bytes())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.render();
        let mut response = json_bytes(status, body);
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// A JSON response made of exactly these bytes.
pub fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::store("read or write the store", &e)
    }
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::Fx(e) => ApiError::from(e),
            LimitError::Invalid(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_limits", m),
            LimitError::Store(e) => ApiError::store("read the key's limits", &e),
        }
    }
}

impl From<FxError> for ApiError {
    fn from(e: FxError) -> Self {
        let msg = e.to_string();
        match e {
            FxError::UnsupportedCurrency(_) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported_currency", msg),
            FxError::UnsupportedPair(_) => ApiError::new(StatusCode::BAD_REQUEST, "unsupported_pair", msg),
            FxError::InvalidAmount(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_amount", msg),
            FxError::RateUnavailable(_) => ApiError::retry_later("rate_unavailable", msg, RETRY_AFTER_SECS),
            FxError::Store(e) => ApiError::store("record the quote", &e),
        }
    }
}

impl From<InvoiceError> for ApiError {
    fn from(e: InvoiceError) -> Self {
        match e {
            InvoiceError::Fx(e) => e.into(),
            InvoiceError::Store(e) => e.into(),
            InvoiceError::Ledger(e) => ApiError::internal("book the invoice", &e),
        }
    }
}

impl From<ExecuteError> for ApiError {
    fn from(e: ExecuteError) -> Self {
        let msg = e.to_string();
        match e {
            ExecuteError::UnknownQuote(_) => ApiError::new(StatusCode::NOT_FOUND, "quote_not_found", msg),
            ExecuteError::Mismatch(_) => ApiError::new(StatusCode::BAD_REQUEST, "quote_mismatch", msg),
            ExecuteError::Expired(_) => ApiError::new(StatusCode::GONE, "quote_expired", msg),
            ExecuteError::AlreadyFilled(_) => ApiError::new(StatusCode::CONFLICT, "quote_already_filled", msg),
            ExecuteError::Requote { quote, .. } => ApiError::new(StatusCode::CONFLICT, "requote_required", msg)
                .with("quote", super::fx_quote::quote_json(&quote)),
            ExecuteError::OverBudget { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "fx_budget_exceeded", msg)
            }
            ExecuteError::Fx(e) => e.into(),
        }
    }
}

impl From<QuoteUseError> for ApiError {
    fn from(e: QuoteUseError) -> Self {
        let (status, code, msg) = (StatusCode::BAD_REQUEST, e.code(), e.to_string());
        match e {
            QuoteUseError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, code, msg),
            QuoteUseError::Expired(_) => ApiError::new(StatusCode::GONE, code, msg),
            QuoteUseError::AlreadyFilled(_) => ApiError::new(StatusCode::CONFLICT, code, msg),
            QuoteUseError::WrongSide(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, msg),
            QuoteUseError::Mismatch(_) => ApiError::new(status, code, msg),
            QuoteUseError::Store(e) => ApiError::store("read the quote", &e),
        }
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> Self {
        let msg = e.to_string();
        match e {
            RouteError::Destination(d) => ApiError::new(destination_status(&d), d.code(), msg),
            RouteError::InvalidAmount(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_amount", msg),
            RouteError::Fx(e) => e.into(),
            RouteError::Quote(e) => e.into(),
            RouteError::QuoteNotNeeded(_) => ApiError::new(StatusCode::BAD_REQUEST, "quote_mismatch", msg),
            RouteError::NoRail(unavailable) => {
                let error = match RouteError::passing(&unavailable) {
                    Some(u) => ApiError::retry_later(u.code, msg, RETRY_AFTER_SECS),
                    None => {
                        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, RouteError::no_rail_code(&unavailable), msg)
                    }
                };
                error.with("unavailable", serde_json::to_value(&unavailable).unwrap_or_default())
            }
            RouteError::Store(e) => ApiError::store("record the route", &e),
        }
    }
}

/// 409 for one of the gateway's own invoices already paid, else 400.
fn destination_status(d: &DestinationError) -> StatusCode {
    match d {
        DestinationError::AlreadyPaid(_) => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<RefundError> for ApiError {
    fn from(e: RefundError) -> Self {
        let msg = e.to_string();
        match e {
            RefundError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "invoice_not_found", msg),
            RefundError::NothingReceived(_) => ApiError::new(StatusCode::CONFLICT, "nothing_received", msg),
            RefundError::Exceeds { refundable_sat, needed_sat, .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_received", msg)
                    .with("refundable_sat", json!(refundable_sat))
                    .with("needed_sat", json!(needed_sat))
            }
            RefundError::Route(e) => e.into(),
            RefundError::Submit(e) => e.into(),
            RefundError::Store(e) => e.into(),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let msg = e.to_string();
        let err = |status, code| ApiError::new(status, code, msg.clone());
        match e {
            SubmitError::UnknownRoute(_) => err(StatusCode::NOT_FOUND, "route_not_found"),
            SubmitError::RouteExpired(_) => err(StatusCode::GONE, "route_expired"),
            SubmitError::InvalidRail(_) => err(StatusCode::BAD_REQUEST, "invalid_rail"),
            SubmitError::RailNotOffered { .. } => err(StatusCode::UNPROCESSABLE_ENTITY, "rail_not_offered"),
            SubmitError::RailDisabled(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "rail_disabled"),
            SubmitError::TreasuryReserve(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "treasury_reserve"),
            SubmitError::QuoteMismatch(_) => err(StatusCode::BAD_REQUEST, "quote_mismatch"),
            SubmitError::QuoteExpired(_) => err(StatusCode::GONE, "quote_expired"),
            SubmitError::Destination(d) => err(destination_status(&d), d.code()),
            SubmitError::RefundExceeds { refundable_sat, needed_sat } => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "refund_exceeds_received")
                    .with("refundable_sat", json!(refundable_sat))
                    .with("needed_sat", json!(needed_sat))
            }
            SubmitError::InsufficientFunds { available, .. } => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "insufficient_funds").with("available", json!(available))
            }
            SubmitError::LimitExceeded { left, .. } => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "limit_exceeded").with("limit", json!(left))
            }
            SubmitError::DestinationNotAllowed(_) => err(StatusCode::UNPROCESSABLE_ENTITY, "destination_not_allowed"),
            SubmitError::Conflict(InsertError::RouteTaken(_)) => err(StatusCode::CONFLICT, "route_already_submitted"),
            SubmitError::Conflict(InsertError::QuoteTaken(_)) => err(StatusCode::CONFLICT, "quote_already_used"),
            SubmitError::Conflict(InsertError::AlreadyPaying) => err(StatusCode::CONFLICT, "duplicate_payment"),
            SubmitError::Conflict(InsertError::IdemMismatch) => {
                err(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_mismatch")
            }
            SubmitError::LightningUnavailable(_) => ApiError::retry_later("lightning_starting", msg, RETRY_AFTER_SECS),
            SubmitError::ChannelNotUsable(_) => ApiError::retry_later("channel_not_usable", msg, RETRY_AFTER_SECS),
            SubmitError::BitcoindUnavailable(_) => ApiError::retry_later("bitcoind_unavailable", msg, RETRY_AFTER_SECS),
            SubmitError::Conflict(InsertError::Store(e)) | SubmitError::Store(e) => {
                ApiError::store("record the payment", &e)
            }
            SubmitError::Conflict(e) => ApiError::internal("record the payment", &e),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        let msg = e.to_string();
        match e {
            WebhookError::InvalidUrl(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_url", msg),
            WebhookError::InvalidEvent(_) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", msg),
            WebhookError::NotAllowed(_) => ApiError::new(StatusCode::BAD_REQUEST, "webhook_url_not_allowed", msg),
            WebhookError::Store(e) => ApiError::store("read or write webhooks", &e),
        }
    }
}
