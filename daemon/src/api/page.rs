//! The list endpoints' paging: `?status=&cursor=&limit=` read alike (unknown parameters refused),
//! and a page cut alike (one row more is read to know whether a next page exists).

use axum::http::StatusCode;

use super::ApiError;

/// The largest page.
const MAX_PAGE: usize = 100;
/// The page without `limit`.
const DEFAULT_PAGE: usize = 50;

/// A list request: the status filter as `status` reads it, the cursor, the page size.
pub(super) struct PageQuery<S> {
    pub status: S,
    pub cursor: Option<String>,
    pub limit: usize,
}

/// Reads `query`; `status` turns the `status` parameter into the filter, or says what it accepts.
pub(super) fn parse<S: Default>(
    query: &str,
    status: impl Fn(&str) -> Result<S, String>,
) -> Result<PageQuery<S>, ApiError> {
    let mut q = PageQuery { status: S::default(), cursor: None, limit: DEFAULT_PAGE };
    let bad = |code: &'static str, msg: String| ApiError::new(StatusCode::BAD_REQUEST, code, msg);
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "status" => q.status = status(&v).map_err(|msg| bad("invalid_status", msg))?,
            "cursor" => q.cursor = Some(v.into_owned()),
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => q.limit = n,
                _ => return Err(bad("invalid_limit", format!("limit must be 1 to {MAX_PAGE}"))),
            },
            other => {
                return Err(bad("invalid_request", format!("unknown parameter {other:?} (status, cursor, limit)")))
            }
        }
    }
    Ok(q)
}

/// `rows` (read with `limit + 1`) cut to `limit`, and the cursor of the next page if there is one.
pub(super) fn cut<T>(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> String) -> (Vec<T>, Option<String>) {
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(id) } else { None };
    (rows, next)
}
