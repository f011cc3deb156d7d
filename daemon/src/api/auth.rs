//! The gate every `/v1` route but `/v1/health` goes through: `Authorization: Bearer <key>`, a
//! known, unrevoked key (else 401), within its rate limit (else 429), carrying the route's scope
//! (else 403).

use axum::http::{header, HeaderMap, StatusCode};

use super::ApiError;
use crate::apikey::{ApiKey, Scope};
use crate::state::AppState;

/// The caller's key, if it may use a route that needs `scope`.
pub(crate) fn authorize(ctx: &AppState, headers: &HeaderMap, scope: Scope) -> Result<ApiKey, ApiError> {
    authorize_any(ctx, headers, &[scope])
}

/// The caller's key, if it carries any of `scopes`.
pub(crate) fn authorize_any(ctx: &AppState, headers: &HeaderMap, scopes: &[Scope]) -> Result<ApiKey, ApiError> {
    let unauthorized = |why: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why);
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unauthorized("send an API key as Authorization: Bearer <key>"))?;
    let key = ctx
        .keys
        .authenticate(secret)
        .map_err(|e| {
            tracing::error!(error = %e, "API key lookup failed");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "key lookup failed")
        })?
        .ok_or_else(|| unauthorized("unknown or revoked API key"))?;
    if let Err(secs) = ctx.limiter.take(&key.id, std::time::Instant::now()) {
        let why = format!("this API key made more than its {} requests a second", ctx.config.api.rate_limit_per_sec);
        return Err(ApiError {
            retry_after_secs: Some(secs),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", why)
        });
    }
    if !scopes.iter().any(|s| key.allows(*s)) {
        let names = scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" or ");
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("this API key lacks the {names} scope")));
    }
    Ok(key)
}
