//! Payout limits per API key, set by the operator (`apikey.limits.set`, audited): a maximum per
//! payout, a maximum per rolling 24 hours (in sats, or in a fiat currency converted at the
//! current mid-rate when a payout is submitted), and an optional destination allowlist (on-chain
//! addresses, node ids, BOLT12 offers; a BOLT11 invoice is allowed when its payee node id is
//! listed). The day's use counts every payout of the key created in the last 24 h that has not
//! failed (a failed payout gives its amount back); it is read inside the transaction that
//! debits a new payout, so two concurrent submits never both pass a limit only one fits.

use std::str::FromStr;

use crate::store::sql::{params, OptionalExtension};
use sendero_lightning::ldk_node::bitcoin::secp256k1::PublicKey;
use sendero_lightning::{is_keysend, is_offer, read_bolt11, read_keysend, read_offer};
use sendero_wallet::bitcoin::address::NetworkUnchecked;
use sendero_wallet::bitcoin::{Address, Network};
use serde::Serialize;

use crate::config::FxConfig;
use crate::fx::{FxError, RateCache};
use crate::store::{Store, StoreError};

/// The window of the daily limit, seconds.
pub const DAY_SECS: u64 = 86_400;

/// A key's limits as the operator set them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// `SAT`, or the fiat currency the amounts are in (minor units).
    pub currency: String,
    /// Most one payout may send, in `currency` (`None`: no limit).
    pub max_payout: Option<u64>,
    /// Most the key may pay out in any 24 hours, in `currency` (`None`: no limit).
    pub max_daily: Option<u64>,
    /// Destinations allowed, canonical (empty: any).
    pub allowlist: Vec<String>,
    /// Unix seconds.
    pub updated_at: u64,
}

/// A key's limits in msat at the current rate: what a submit checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// As set.
    pub limits: Limits,
    /// Per payout, msat.
    pub max_payout_msat: Option<u64>,
    /// Per rolling day, msat.
    pub max_daily_msat: Option<u64>,
}

/// What a refusal tells the client: the limits, today's use and what is left, in sats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Left {
    /// The limits' currency.
    pub currency: String,
    /// Per payout, in `currency`.
    pub max_payout: Option<u64>,
    /// Per day, in `currency`.
    pub max_daily: Option<u64>,
    /// Per payout at the current rate.
    pub max_payout_sat: Option<u64>,
    /// Per day at the current rate.
    pub max_daily_sat: Option<u64>,
    /// Paid out (not failed) in the last 24 h.
    pub used_today_sat: u64,
    /// What may still go out today (`None`: no daily limit).
    pub left_today_sat: Option<u64>,
}

impl Checked {
    /// The limits beside `used_msat` of today's use.
    pub fn left(&self, used_msat: u64) -> Left {
        Left {
            currency: self.limits.currency.clone(),
            max_payout: self.limits.max_payout,
            max_daily: self.limits.max_daily,
            max_payout_sat: self.max_payout_msat.map(|m| m / 1_000),
            max_daily_sat: self.max_daily_msat.map(|m| m / 1_000),
            used_today_sat: used_msat.div_ceil(1_000),
            left_today_sat: self.max_daily_msat.map(|m| m.saturating_sub(used_msat) / 1_000),
        }
    }
}

/// Why limits could not be set or read.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// A limit or an allowlist entry the gateway cannot use.
    #[error("{0}")]
    Invalid(String),
    /// A fiat limit without a rate to convert it.
    #[error(transparent)]
    Fx(#[from] FxError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `text` as an allowlist entry on `network`: a node id (lowercase hex), a BOLT12 offer, or an
/// on-chain address, in canonical form.
pub fn entry(text: &str, network: Network) -> Result<String, LimitError> {
    let text = text.trim();
    if text.len() == 66 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        let key = PublicKey::from_str(text).map_err(|e| LimitError::Invalid(format!("node id {text}: {e}")))?;
        return Ok(key.to_string());
    }
    if is_offer(text) {
        read_offer(text, network).map_err(|e| LimitError::Invalid(format!("offer {text}: {e}")))?;
        return Ok(text.to_ascii_lowercase());
    }
    Address::<NetworkUnchecked>::from_str(text)
        .ok()
        .and_then(|a| a.require_network(network).ok())
        .map(|a| a.to_string())
        .ok_or_else(|| {
            LimitError::Invalid(format!(
                "allowlist entry {text:?} is not an address of this network, a node id or a BOLT12 offer"
            ))
        })
}

/// Whether `paid` — what the rail pays: an address, a BOLT11 invoice, a BOLT12 offer or
/// `keysend:<node id>` — is on `allowlist` (an empty list allows everything).
pub fn allows(allowlist: &[String], paid: &str, network: Network) -> bool {
    if allowlist.is_empty() {
        return true;
    }
    let listed = |candidate: String| allowlist.contains(&candidate);
    let paid = paid.trim();
    if is_keysend(paid) {
        return read_keysend(paid).is_ok_and(|node| listed(node.to_string()));
    }
    if is_offer(paid) {
        let issuer = read_offer(paid, network).ok().and_then(|o| o.issuer);
        return listed(paid.to_ascii_lowercase()) || issuer.is_some_and(|i| listed(i.to_string()));
    }
    if paid.to_ascii_lowercase().starts_with("ln") {
        return read_bolt11(paid, network).is_ok_and(|info| listed(info.payee.to_string()));
    }
    entry(paid, network).is_ok_and(listed)
}

/// The key's limits in msat at the current rate (`None`: the key has none).
pub fn for_key(
    store: &Store,
    (config, cache): (&FxConfig, &RateCache),
    key_id: &str,
    now: u64,
) -> Result<Option<Checked>, LimitError> {
    let Some(limits) = store.key_limits(key_id)? else { return Ok(None) };
    let msat = |amount: Option<u64>| -> Result<Option<u64>, LimitError> {
        match amount {
            None => Ok(None),
            Some(a) => Ok(Some(crate::fx::mid_sats(config, cache, &limits.currency, a, now)?.saturating_mul(1_000))),
        }
    };
    let (max_payout_msat, max_daily_msat) = (msat(limits.max_payout)?, msat(limits.max_daily)?);
    Ok(Some(Checked { limits, max_payout_msat, max_daily_msat }))
}

/// What key `key_id` paid out since `since` (payouts not failed), msat, read on `conn` (inside
/// the submit's transaction).
pub fn used_since(conn: &crate::store::sql::Connection, key_id: &str, since: u64) -> crate::store::sql::Result<u64> {
    let used: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(amount_msat), 0) FROM payments
             WHERE api_key_id = ?1 AND created_at > ?2 AND state != 'failed'",
        )?
        .query_row(params![key_id, since as i64], |r| r.get(0))?;
    Ok(used.max(0) as u64)
}

impl Store {
    /// The key's limits, if it has any.
    pub fn key_limits(&self, key_id: &str) -> Result<Option<Limits>, StoreError> {
        let row = self
            .read()
            .prepare_cached(
                "SELECT currency, max_payout, max_daily, allowlist, updated_at FROM api_key_limits WHERE api_key_id = ?1",
            )?
            .query_row([key_id], |r| {
                let allowlist: String = r.get(3)?;
                Ok(Limits {
                    currency: r.get(0)?,
                    max_payout: r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                    max_daily: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                    allowlist: allowlist.split(',').filter(|e| !e.is_empty()).map(str::to_owned).collect(),
                    updated_at: r.get::<_, i64>(4)? as u64,
                })
            })
            .optional()?;
        Ok(row)
    }

    /// Sets (or with `None` removes) the key's limits.
    pub fn set_key_limits(&self, key_id: &str, limits: Option<&Limits>) -> Result<(), StoreError> {
        let conn = self.conn();
        match limits {
            None => conn.execute("DELETE FROM api_key_limits WHERE api_key_id = ?1", [key_id])?,
            Some(l) => conn.execute(
                "INSERT INTO api_key_limits (api_key_id, currency, max_payout, max_daily, allowlist, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (api_key_id) DO UPDATE SET currency = excluded.currency, max_payout = excluded.max_payout,
                   max_daily = excluded.max_daily, allowlist = excluded.allowlist, updated_at = excluded.updated_at",
                params![
                    key_id,
                    l.currency,
                    l.max_payout.map(|v| v as i64),
                    l.max_daily.map(|v| v as i64),
                    l.allowlist.join(","),
                    l.updated_at as i64
                ],
            )?,
        };
        Ok(())
    }

    /// What key `key_id` paid out since `since` (payouts not failed), msat.
    pub fn key_used_since(&self, key_id: &str, since: u64) -> Result<u64, StoreError> {
        Ok(used_since(&self.read(), key_id, since)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists_match_addresses_node_ids_and_invoice_payees() {
        let address = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
        let canonical = entry(&address.to_uppercase(), Network::Regtest).unwrap();
        assert_eq!(canonical, address);
        let node = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798".to_owned();
        assert_eq!(entry(&node.to_uppercase(), Network::Regtest).unwrap(), node);
        assert!(entry("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", Network::Regtest).is_err(), "mainnet");
        assert!(entry("nonsense", Network::Regtest).is_err());
        let list = vec![canonical.clone(), node.clone()];
        assert!(allows(&list, address, Network::Regtest));
        assert!(allows(&list, &format!("keysend:{node}"), Network::Regtest));
        assert!(!allows(&list, "bcrt1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l", Network::Regtest));
        assert!(!allows(&list, "lnbcrt1garbage", Network::Regtest));
        assert!(allows(&[], "anything", Network::Regtest));
    }

    #[test]
    fn limits_round_trip_and_refusals_say_what_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        assert_eq!(store.key_limits("ak_1").unwrap(), None);
        let limits = Limits {
            currency: "SAT".into(),
            max_payout: Some(10_000),
            max_daily: Some(25_000),
            allowlist: vec!["a".into(), "b".into()],
            updated_at: 5,
        };
        store.conn().as_sqlite().unwrap().pragma_update(None, "foreign_keys", false).unwrap();
        store.set_key_limits("ak_1", Some(&limits)).unwrap();
        assert_eq!(store.key_limits("ak_1").unwrap(), Some(limits.clone()));
        let checked = Checked { limits, max_payout_msat: Some(10_000_000), max_daily_msat: Some(25_000_000) };
        let left = checked.left(20_000_500);
        assert_eq!(
            (left.used_today_sat, left.left_today_sat, left.max_payout_sat),
            (20_001, Some(4_999), Some(10_000))
        );
        store.set_key_limits("ak_1", None).unwrap();
        assert_eq!(store.key_limits("ak_1").unwrap(), None);
    }
}
