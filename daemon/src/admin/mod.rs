//! The admin RPC: JSON-RPC 2.0 over HTTP, on a Unix socket in the data dir (mode 0600) or on a
//! loopback TCP port guarded by a cookie file. The method table below is the whole interface.

mod apikey;
mod audit;
mod backup;
mod batch;
mod bump;
mod client;
mod consolidate;
mod cost_reports;
pub mod dashboard;
pub mod error;
mod fees;
#[doc(hidden)]
pub mod fuzzing;
mod fx_report;
mod getinfo;
mod ledger;
mod ln_channels;
mod ln_node;
mod ln_payments;
pub mod metrics;
mod params;
mod payment_get;
mod rebalance;
mod recon;
mod routing;
mod treasury;
mod wallet_balance;
mod wallet_newaddress;
mod wallet_send;
mod wallet_transactions;
mod wallet_utxos;
mod webhooks;

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;

pub use client::{AdminClient, ClientError};
use error::{rpc_code, AdminError};
use params::Params;

use crate::state::AppState;

/// Socket file name inside the data dir.
pub const SOCKET_FILE: &str = "admin.sock";
/// Whether `method` acts on what only the node holds (its keys, its Lightning node, its
/// schedulers and in-memory policy): refused at a front end (`--role api`), which has none.
fn node_only(method: &str) -> bool {
    method.starts_with("ln.")
        || matches!(
            method,
            "wallet.newaddress"
                | "wallet.send"
                | "fees.set"
                | "fees.clear"
                | "batch.trigger"
                | "batch.bump"
                | "payment.bump"
                | "consolidate.run"
                | "treasury.policy.set"
                | "rebalance.preview"
                | "rebalance.run"
                | "routing.pin"
                | "routing.unpin"
                | "routing.disable"
                | "routing.enable"
                | "ledger.verify"
                | "backup.export"
        )
}

/// Cookie file name inside the data dir (TCP mode, or the dashboard on).
pub const COOKIE_FILE: &str = "admin.cookie";

/// The method table: each admin method and its handler. `METHODS` (what `method_not_found`
/// lists) is generated from it, so the two never disagree.
macro_rules! methods {
    ($($name:literal => $handler:path),* $(,)?) => {
        /// Every admin method, as `sendero-cli` names it.
        pub const METHODS: &[&str] = &[$($name),*];

        async fn dispatch(ctx: &AppState, method: &str, params: Params) -> Result<Value, AdminError> {
            match method {
                $($name => $handler(ctx, params).await,)*
                other => Err(AdminError::new(rpc_code::METHOD_NOT_FOUND, "method_not_found", format!("no method {other:?}"))
                    .with("methods", METHODS)),
            }
        }
    };
}

methods! {
    "getinfo" => getinfo::handle,
    "wallet.balance" => wallet_balance::handle,
    "wallet.newaddress" => wallet_newaddress::handle,
    "wallet.send" => wallet_send::handle,
    "wallet.utxos" => wallet_utxos::handle,
    "wallet.transactions" => wallet_transactions::handle,
    "fees.get" => fees::get,
    "fees.set" => fees::set,
    "fees.clear" => fees::clear,
    "ln.info" => ln_node::info,
    "ln.connect" => ln_node::connect,
    "ln.peers" => ln_node::peers,
    "ln.balance" => ln_node::balance,
    "ln.fund" => ln_channels::fund,
    "ln.open_channel" => ln_channels::open_channel,
    "ln.close_channel" => ln_channels::close_channel,
    "ln.channels" => ln_channels::channels,
    "ln.splice_in" => ln_channels::splice_in,
    "ln.splice_out" => ln_channels::splice_out,
    "ln.alarms" => ln_channels::alarms,
    "ln.ack_alarm" => ln_channels::ack_alarm,
    "ln.invoice" => ln_payments::invoice,
    "ln.offer" => ln_payments::offer,
    "ln.pay" => ln_payments::pay,
    "ln.keysend" => ln_payments::keysend,
    "ln.payments" => ln_payments::payments,
    "apikey.create" => apikey::create,
    "apikey.list" => apikey::list,
    "apikey.revoke" => apikey::revoke,
    "apikey.limits.set" => apikey::limits_set,
    "fx.report" => fx_report::handle,
    "fx.register" => fx_report::register,
    "ledger.balances" => ledger::balances,
    "ledger.verify" => ledger::verify,
    "payment.get" => payment_get::handle,
    "payment.bump" => bump::payment,
    "batch.list" => batch::list,
    "batch.get" => batch::get,
    "batch.trigger" => batch::trigger,
    "batch.bump" => bump::batch,
    "consolidate.preview" => consolidate::preview,
    "consolidate.run" => consolidate::run,
    "batch.preview" => cost_reports::preview,
    "fees.report" => cost_reports::report,
    "recon.report" => recon::report,
    "treasury.status" => treasury::status,
    "treasury.policy.set" => treasury::policy_set,
    "rebalance.preview" => rebalance::preview,
    "rebalance.run" => rebalance::run,
    "rebalance.history" => rebalance::history,
    "routing.stats" => routing::stats,
    "routing.pin" => routing::pin,
    "routing.unpin" => routing::unpin,
    "routing.disable" => routing::disable,
    "routing.enable" => routing::enable,
    "audit.list" => audit::list,
    "audit.verify" => audit::verify,
    "backup.export" => backup::export,
    "webhook.endpoints" => webhooks::endpoints,
    "webhook.deliveries" => webhooks::deliveries,
    "webhook.redeliver" => webhooks::redeliver,
    "dashboard.login_url" => dashboard::login_url,
}

/// A bound admin listener.
pub enum AdminListener {
    /// `<datadir>/admin.sock`, and the cookie written for the dashboard's login when it is on.
    Unix(UnixListener, PathBuf, Option<String>),
    /// Loopback TCP, with the cookie clients must present.
    Tcp(TcpListener, String),
}

/// Writes a fresh cookie to `<datadir>/admin.cookie` (mode 0600); returns it.
fn write_cookie(datadir: &Path) -> io::Result<String> {
    let cookie = crate::secret::random_hex(32);
    crate::secret::write_private(&datadir.join(COOKIE_FILE), &format!("{cookie}\n"))?;
    Ok(cookie)
}

impl AdminListener {
    /// Binds the socket (replacing a stale one) or the TCP port (writing a fresh cookie file).
    /// With `dashboard`, the socket gets a cookie file too: the secret the dashboard's login asks.
    pub async fn bind(datadir: &Path, tcp: Option<SocketAddr>, dashboard: bool) -> io::Result<AdminListener> {
        match tcp {
            None => {
                let path = datadir.join(SOCKET_FILE);
                if path.exists() {
                    std::fs::remove_file(&path)?;
                }
                let listener = UnixListener::bind(&path)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                let cookie = if dashboard { Some(write_cookie(datadir)?) } else { None };
                Ok(AdminListener::Unix(listener, path, cookie))
            }
            Some(addr) => {
                let listener = TcpListener::bind(addr).await?;
                Ok(AdminListener::Tcp(listener, write_cookie(datadir)?))
            }
        }
    }

    /// Where clients reach it.
    pub fn describe(&self) -> String {
        match self {
            AdminListener::Unix(_, path, _) => path.display().to_string(),
            AdminListener::Tcp(l, _) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        }
    }

    /// The cookie in `<datadir>/admin.cookie`, when one was written.
    pub fn cookie(&self) -> Option<&str> {
        match self {
            AdminListener::Unix(_, _, cookie) => cookie.as_deref(),
            AdminListener::Tcp(_, cookie) => Some(cookie),
        }
    }

    /// Serves until `cancel`, then removes the socket and the cookie file.
    pub async fn serve(self, ctx: AppState, cancel: CancellationToken) -> io::Result<()> {
        let datadir = ctx.config.datadir.clone();
        match self {
            AdminListener::Unix(listener, path, cookie) => {
                let app = router(ctx, None);
                let result = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await;
                let _ = std::fs::remove_file(path);
                if cookie.is_some() {
                    let _ = std::fs::remove_file(datadir.join(COOKIE_FILE));
                }
                result
            }
            AdminListener::Tcp(listener, cookie) => {
                let app = router(ctx, Some(cookie.into()));
                let result = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned()).await;
                let _ = std::fs::remove_file(datadir.join(COOKIE_FILE));
                result
            }
        }
    }
}

#[derive(Clone)]
struct AdminState {
    app: AppState,
    cookie: Option<Arc<str>>,
}

fn router(app: AppState, cookie: Option<Arc<str>>) -> Router {
    let limit = app.config.api.body_limit_bytes;
    Router::new()
        .route("/", post(rpc))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(AdminState { app, cookie })
}

async fn rpc(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if let Some(cookie) = &state.cookie {
        let presented =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| crate::secret::equal(p.as_bytes(), cookie.as_bytes())) {
            let e = AdminError::new(rpc_code::INVALID_REQUEST, "unauthorized", "the admin cookie is required");
            return refused(StatusCode::UNAUTHORIZED, e);
        }
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let limit = state.app.config.api.body_limit_bytes;
            let e = AdminError::new(
                rpc_code::INVALID_REQUEST,
                "body_too_large",
                format!("the request body is over the {limit}-byte limit ({})", rejection.body_text()),
            );
            return refused(rejection.status(), e);
        }
    };
    let (id, outcome) = match parse_request(&body) {
        Ok((id, method, params)) => {
            let outcome = match state.app.node_link.is_some() && node_only(&method) {
                true => Err(AdminError::new(
                    rpc_code::REFUSED,
                    "node_only",
                    format!("{method} acts on the node's wallet, Lightning node or schedulers: call it on the node (senderod --role node), not on a front end"),
                )),
                false => dispatch(&state.app, &method, params).await,
            };
            match &outcome {
                Ok(_) => tracing::debug!(%method, "admin call"),
                Err(e) => tracing::info!(%method, code = e.code, message = %e.message, "admin call refused"),
            }
            (id, outcome)
        }
        Err((id, e)) => (id, Err(e)),
    };
    let body = match outcome {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
    };
    Json(body).into_response()
}

/// A JSON-RPC error answered with an HTTP error status (the request never reached a method).
fn refused(status: StatusCode, e: AdminError) -> Response {
    (status, Json(json!({ "jsonrpc": "2.0", "id": Value::Null, "error": e.to_json() }))).into_response()
}

type BadRequest = (Value, AdminError);

fn parse_request(body: &[u8]) -> Result<(Value, String, Params), BadRequest> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        (Value::Null, AdminError::new(rpc_code::PARSE_ERROR, "parse_error", format!("malformed JSON: {e}")))
    })?;
    let invalid =
        |id: Value, why: &str| (id, AdminError::new(rpc_code::INVALID_REQUEST, "invalid_request", why.to_owned()));
    let Value::Object(mut obj) = request else {
        return Err(invalid(Value::Null, "a request is one JSON-RPC 2.0 object (batches are not supported)"));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    if obj.get("jsonrpc") != Some(&Value::from("2.0")) {
        return Err(invalid(id, "\"jsonrpc\" must be \"2.0\""));
    }
    let Some(Value::String(method)) = obj.remove("method") else {
        return Err(invalid(id, "\"method\" must be a string"));
    };
    let params = Params::from_value(obj.remove("params")).map_err(|e| (id.clone(), e))?;
    Ok((id, method, params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_checked_before_dispatch() {
        let code = |body: &str| parse_request(body.as_bytes()).err().map(|(_, e)| e.code);
        assert_eq!(code("{not json"), Some("parse_error"));
        assert_eq!(code("[1,2]"), Some("invalid_request"));
        assert_eq!(code(r#"{"id":1,"method":"getinfo"}"#), Some("invalid_request"));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":7}"#), Some("invalid_request"));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"getinfo","params":[1]}"#), Some("invalid_params"));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"getinfo"}"#), None);
    }
}
