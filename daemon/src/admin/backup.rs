//! `backup.export`: the bundle `senderod --restore-from` restores (see [`crate::backup`]).

use base64::Engine;
use serde_json::{json, Value};

use super::error::{rpc_code, AdminError};
use super::params::Params;
use crate::backup::{BackupError, ExportFacts};
use crate::state::AppState;

impl From<BackupError> for AdminError {
    fn from(e: BackupError) -> Self {
        let rpc = match e {
            BackupError::Io { .. } | BackupError::Snapshot { .. } => rpc_code::INTERNAL,
            _ => rpc_code::REFUSED,
        };
        AdminError::new(rpc, e.code(), e.to_string())
    }
}

/// `backup.export {include_mnemonic?, allow_in_flight?}`: the bundle (base64) and its manifest.
/// Refused with `payouts_in_flight` while a payout is not yet with its rail (a restored gateway
/// would send it again if the old one sent it after the backup), unless `allow_in_flight`.
/// Audited, before the snapshot, so the bundle holds the record of its own export. Refused with
/// `store_is_postgres` when the books are in PostgreSQL.
pub(crate) async fn export(ctx: &AppState, params: Params) -> Result<Value, AdminError> {
    let params = params.only(&["include_mnemonic", "allow_in_flight"])?;
    let include_mnemonic = params.optional_bool("include_mnemonic")?.unwrap_or(false);
    let allow_in_flight = params.optional_bool("allow_in_flight")?.unwrap_or(false);
    if ctx.store.is_postgres() {
        return Err(AdminError::new(
            rpc_code::REFUSED,
            "store_is_postgres",
            "the books are in PostgreSQL ([store] url): back them up with PostgreSQL's own tools (pg_dump, \
             base backups); backup.export bundles a SQLite store with the Lightning node's state",
        ));
    }
    let store = std::sync::Arc::clone(&ctx.store);
    let in_flight = tokio::task::block_in_place(|| store.payments_not_with_rail())?;
    if !in_flight.is_empty() && !allow_in_flight {
        return Err(AdminError::new(
            rpc_code::REFUSED,
            "payouts_in_flight",
            format!(
                "{} payout(s) are not yet with their rail; export once they are (or pass allow_in_flight: a restore \
                 then resumes them, which pays twice any the old gateway sent after the backup)",
                in_flight.len()
            ),
        )
        .with("payment_ids", in_flight));
    }
    let (node_id, channels) = match ctx.lightning.node() {
        Ok(node) => (Some(node.node_id()), json!(node.channels())),
        Err(_) => (None, json!([])),
    };
    let facts = ExportFacts {
        network: ctx.network,
        node_id,
        channels,
        treasury: super::wallet_balance::balances(ctx),
        payouts_in_flight: in_flight,
        include_mnemonic,
    };
    let details = json!({ "include_mnemonic": include_mnemonic, "payouts_in_flight": facts.payouts_in_flight.len() });
    crate::audit::record(&ctx.store, "admin", "backup.export", &details)?;
    let datadir = ctx.config.datadir.clone();
    let (bytes, manifest) = tokio::task::block_in_place(|| crate::backup::export(&datadir, facts))?;
    tracing::info!(bytes = bytes.len(), files = manifest.files.len(), include_mnemonic, "backup exported");
    Ok(json!({
        "manifest": manifest,
        "bytes": bytes.len(),
        "bundle_base64": base64::engine::general_purpose::STANDARD.encode(&bytes),
    }))
}
