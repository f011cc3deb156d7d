//! `audit.list {after?, limit?}`: the audit log's entries; `audit.verify`: the hash chain
//! recomputed (ok, entries, the first broken entry, the head hash). And [`Request`]: an
//! operator's request audited before it acts and with its outcome; [`done`]: an
//! action audited once done (what the Lightning node does for the operator, which it records
//! itself before it acts).

use serde_json::{json, Value};

use super::error::AdminError;
use super::params::Params;
use crate::state::AppState;
use crate::store::StoreError;

pub(crate) async fn list(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["after", "limit"])?;
    let after = params.optional_positive_integer("after", "invalid_params")?.unwrap_or(0);
    let limit = params.optional_positive_integer("limit", "invalid_params")?.unwrap_or(100).min(1_000);
    Ok(json!({ "entries": ctx.store.audit_list(after as i64, limit as usize)? }))
}

pub(crate) async fn verify(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    params.only(&[])?;
    Ok(json!(ctx.store.audit_verify()?))
}

/// An operator's request that moves money, audited before it acts ([`Request::asked`], once valid
/// and built: `{method}.requested`) and with its outcome ([`Request::close`]).
pub(crate) struct Request<'a> {
    ctx: &'a AppState,
    method: &'a str,
    /// The `.requested` entry, once appended.
    seq: Option<i64>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(ctx: &'a AppState, method: &'a str) -> Request<'a> {
        Request { ctx, method, seq: None }
    }

    /// Appends `{method}.requested` with what was `asked` ([`crate::audit::requested`]).
    pub(crate) fn asked(&mut self, asked: &impl serde::Serialize) -> Result<(), StoreError> {
        self.seq = Some(crate::audit::requested(&self.ctx.store, "admin", self.method, &json!(asked))?.seq);
        Ok(())
    }

    /// Closes the request (nothing is appended when it was refused before [`Request::asked`]):
    /// its answer, or its refusal's code and message, is appended as `method` with
    /// `request_seq`, and an answer carries both entries' numbers (`request_seq`, `audit_seq`).
    /// The action is done whatever the store says: a failure to append is logged, not answered,
    /// which would invite a retry.
    pub(crate) fn close(self, result: Result<Value, AdminError>) -> Result<Value, AdminError> {
        let (Some(request), method) = (self.seq, self.method) else { return result };
        let outcome = match &result {
            Ok(out) => out.clone(),
            Err(e) => json!({"refused": {"code": e.code, "message": e.message}}),
        };
        let entry = crate::audit::outcome(&self.ctx.store, "admin", method, request, &outcome)
            .inspect_err(|e| tracing::error!(method, request_seq = request, error = %e, "the outcome of an audited request was not audited"))
            .ok();
        result.map(|mut out| {
            out["request_seq"] = json!(request);
            if let Some(entry) = entry {
                out["audit_seq"] = json!(entry.seq);
            }
            out
        })
    }
}

/// An operator's action done (`result` Ok), appended as `method` with what was `asked` and the
/// answer, which carries `audit_seq`; a refusal appends nothing ([`after`]).
pub(crate) fn done(
    ctx: &AppState,
    method: &str,
    asked: Value,
    result: Result<Value, AdminError>,
) -> Result<Value, AdminError> {
    let mut out = result?;
    if let Some(seq) = after(ctx, method, &json!({"asked": asked, "answer": out})) {
        out["audit_seq"] = json!(seq);
    }
    Ok(out)
}

/// Appends `method` with `details` for an operator's action already done; the entry's number. A
/// failure to append is logged, not answered: the action is done, and an error would invite a
/// retry.
pub(crate) fn after(ctx: &AppState, method: &str, details: &Value) -> Option<i64> {
    crate::audit::record(&ctx.store, "admin", method, details)
        .inspect_err(|e| tracing::error!(method, error = %e, "an operator's action was done but not audited"))
        .ok()
        .map(|entry| entry.seq)
}
