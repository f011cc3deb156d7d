//! The operator dashboard on `[dashboard] listen` (loopback only): one read-only page of
//! server-rendered HTML — balances per rail, each channel's liquidity, payouts and their states,
//! fees paid against one transaction per payout as a plot, the batch queue, the webhook backlog,
//! the FX rate sources' health — whose figures come from the same functions the admin RPC answers
//! with (`figures.rs`). It opens with the admin cookie (`POST /login`) or a one-time link from
//! `dashboard.login_url` (`GET /login?ticket=`); a session lasts 12 hours (`crate::login`).

mod figures;
mod page;
mod plot;
mod text;

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::state::AppState;

/// The session cookie's name.
const SESSION_COOKIE: &str = "sendero_dashboard";

/// The dashboard's routes: `/`, `/login`, `/logout`.
pub fn router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route("/login", get(ticket_login).post(cookie_login))
        .route("/logout", post(logout))
        .layer(axum::extract::DefaultBodyLimit::max(4 * 1024))
        .with_state(state)
}

/// `dashboard.login_url`: a link that logs a browser in once, within a minute.
pub(crate) async fn login_url(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    let off = || {
        AdminError::new(
            rpc_code::REFUSED,
            "dashboard_off",
            "the dashboard is off: set [dashboard] listen to a loopback address",
        )
    };
    let addr = ctx.logins.address().ok_or_else(off)?;
    let ticket = ctx.logins.ticket(Instant::now()).ok_or_else(off)?;
    Ok(json!({
        "url": format!("http://{addr}/login?ticket={ticket}"),
        "expires_in_secs": crate::login::TICKET_TTL.as_secs(),
    }))
}

/// The session token the request's cookie carries.
fn session(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

/// An HTML answer that no cache keeps and no other page frames.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// 303 to `/`, setting the session cookie (`Some`) or clearing it (`None`).
fn to_index(session: Option<&str>) -> Response {
    let cookie = match session {
        Some(token) => format!(
            "{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            crate::login::SESSION_TTL.as_secs()
        ),
        None => format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/"));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, value);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn login_page(ctx: &AppState, status: StatusCode, problem: Option<&str>) -> Response {
    html(status, page::login(&ctx.config.datadir.join(super::COOKIE_FILE).display().to_string(), problem))
}

async fn index(State(ctx): State<AppState>, headers: HeaderMap) -> Response {
    if !session(&headers).is_some_and(|s| ctx.logins.valid(s, Instant::now())) {
        return login_page(&ctx, StatusCode::OK, None);
    }
    let figures = figures::gather(&ctx).await;
    html(StatusCode::OK, page::dashboard(&figures))
}

/// `GET /login?ticket=`: a one-time link opens a session.
async fn ticket_login(State(ctx): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let ticket = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "ticket").map(|(_, v)| v.into_owned());
    let Some(ticket) = ticket else { return login_page(&ctx, StatusCode::OK, None) };
    match ctx.logins.redeem(&ticket, Instant::now()) {
        Some(session) => {
            tracing::info!("dashboard: logged in with a one-time link");
            to_index(Some(&session))
        }
        None => {
            tracing::info!("dashboard: a used or expired login link was refused");
            let why = "This login link was used already or has expired: get a new one with `sendero-cli dashboard.login_url`.";
            login_page(&ctx, StatusCode::UNAUTHORIZED, Some(why))
        }
    }
}

/// `POST /login` (`cookie=`, form-urlencoded): the admin cookie opens a session.
async fn cookie_login(State(ctx): State<AppState>, body: Bytes) -> Response {
    let cookie = form_urlencoded::parse(&body).find(|(k, _)| k == "cookie").map(|(_, v)| v.into_owned());
    match cookie.and_then(|c| ctx.logins.with_cookie(&c, Instant::now())) {
        Some(session) => {
            tracing::info!("dashboard: logged in with the admin cookie");
            to_index(Some(&session))
        }
        None => {
            tracing::info!("dashboard: a login with a wrong admin cookie was refused");
            login_page(&ctx, StatusCode::UNAUTHORIZED, Some("That is not the admin cookie."))
        }
    }
}

async fn logout(State(ctx): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(s) = session(&headers) {
        ctx.logins.logout(s);
    }
    to_index(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_is_read_from_any_cookie_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(session(&headers), None);
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; sendero_dashboardx=2"));
        assert_eq!(session(&headers), None);
        headers.append(header::COOKIE, HeaderValue::from_static("b=3;  sendero_dashboard=abc ; c=4"));
        assert_eq!(session(&headers), Some("abc"));
    }
}
