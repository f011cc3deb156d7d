//! The double-entry ledger. Every movement of money is one entry of postings that sum to zero in
//! each currency; amounts are signed integers in the currency's smallest unit — bitcoin (`BTC`)
//! in msat, the smallest unit Lightning moves, fiat in its minor units. An entry carries a unique
//! reference, so a step that is retried after a crash never posts twice.
//!
//! # Accounts (assets positive)
//!
//! - `treasury:onchain` — the treasury wallet; `treasury:lightning` — everything the Lightning
//!   node holds: its own on-chain wallet, its channel balances, what closed channels still claim
//!   on-chain and what its sweeper is moving back to its wallet. Neither may ever be negative.
//! - `in_flight:<rail>` — payouts debited from a rail and not yet final.
//! - `payouts:<rail>` — what payees received; `fees:<rail>` — what the rail charged (routing fee,
//!   or the payout's mining fee); `fees:onchain_transfer` — the mining fee of a transfer from the
//!   treasury to the node.
//! - `fees:lightning_onchain` — the node's own on-chain costs: the fees of channel funding,
//!   splice, close, force-close and sweep transactions, anchor outputs left behind, and the
//!   sub-sat part of a balance that a close rounds away.
//! - `payouts:lightning_admin` — what the operator paid with `ln.pay` / `ln.keysend`;
//!   `payouts:splice_out` — what `ln.splice_out` sent to an address outside the gateway.
//! - `receipts:lightning` — Lightning payments the node received (it goes negative as money
//!   comes in); `receipts:on_us` — our own invoices settled internally by an `on_us` payout.
//! - `external:onchain` — the counterpart of treasury movements Sendero did not make (deposits,
//!   mined coins, admin sends), imported from the wallet's own history.
//! - `fx:<CUR>` / `payouts:<CUR>` — the fiat value of payouts priced through an FX quote.
//! - `receivable:<key>` — what the gateway holds for an API key's invoices (negative as payments
//!   come in): `ln:recv:<id>` / `invoice:onchain:<outpoint>` from the treasury of the rail,
//!   `invoice:on_us:<payment_id>` from `receipts:on_us` when one of the gateway's own payouts paid
//!   the invoice, and back by `invoice:refund:<payment_id>` when a refund settles (its amount
//!   moves from `payouts:<rail>` to the receivable: the merchant's money returned, not a payout
//!   of the gateway's; the refund's fee stays `fees:<rail>`).
//!
//! # Movements between rails (module [`lightning`])
//!
//! - `ln:transfer:<txid>` — treasury → node (`ln.fund`, and the funding `ln.open_channel` /
//!   `ln.splice_in` send first): `treasury:onchain` −(amount + fee), `treasury:lightning`
//!   +amount, `fees:onchain_transfer` +fee, posted as the treasury broadcasts; one a crash left unposted is
//!   found again as a transaction both wallets know. Node → treasury (`ln.splice_out` to a
//!   treasury address): `treasury:lightning` −amount, `treasury:onchain` +amount, once the
//!   treasury sees the transaction (its txid comes from `SplicePending`). Neither is ever
//!   imported as `external:onchain`.
//! - `ln:splice_out:<txid>` — `ln.splice_out` to an outside address: `treasury:lightning`
//!   −amount, `payouts:splice_out` +amount.
//! - `ln:recv:<payment_id>` — a Lightning payment the node received: `treasury:lightning`
//!   +amount, `receipts:lightning` −amount. `ln:send:<payment_id>` — one it sent that no payout
//!   tracks: `treasury:lightning` −(amount + fee), `payouts:lightning_admin` +amount,
//!   `fees:lightning` +fee. Both from the node's own payment records.
//! - `ln:settle:<movement>` — a channel open, splice or close (a *movement*, recorded from the
//!   node's events, which ldk-node delivers again until they are handled) costs on-chain fees
//!   that no record of ldk-node 0.7.1 attributes: its wallet computes a transaction's fee only
//!   when it knows every input, and does not say who paid it; a cooperative close's fee and a
//!   splice-out's come out of the funder's channel balance. So once the movement is over and the
//!   node is at rest (every channel ready, no close or sweep unresolved, no unconfirmed wallet
//!   transaction, no payment pending, no transfer on its way), the gap between
//!   `treasury:lightning` and the node's holdings is that movement's cost: `treasury:lightning`
//!   −gap, `fees:lightning_onchain` +gap — one entry per settlement. A gap below zero or above
//!   [`lightning::SETTLE_BOUND_MSAT`] is never posted: `ledger.verify` reports it.
use std::collections::BTreeMap;

use crate::store::sql::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::store::{Store, StoreError};

pub mod lightning;
mod rows;

/// Bitcoin in the ledger, counted in msat.
pub const BTC: &str = "BTC";

/// One leg of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posting {
    /// Account name, e.g. `treasury:onchain`.
    pub account: String,
    /// `BTC` (msat) or a fiat currency (minor units).
    pub currency: String,
    /// Signed amount.
    pub amount: i64,
}

impl Posting {
    /// A bitcoin posting, msat.
    pub fn btc(account: impl Into<String>, msat: i64) -> Self {
        Posting { account: account.into(), currency: BTC.into(), amount: msat }
    }

    /// A posting in `currency`'s minor units.
    pub fn in_currency(account: impl Into<String>, currency: &str, amount: i64) -> Self {
        Posting { account: account.into(), currency: currency.into(), amount }
    }
}

/// Why an entry was not posted.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The postings do not sum to zero in some currency (a bug in the caller).
    #[error("ledger entry {reference} does not balance in {currency} (sum {sum})")]
    Unbalanced {
        /// The entry.
        reference: String,
        /// The currency.
        currency: String,
        /// What the postings sum to.
        sum: i128,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::store::sql::Error> for LedgerError {
    fn from(e: crate::store::sql::Error) -> Self {
        LedgerError::Store(StoreError::Sql(e))
    }
}

/// Posts an entry inside the caller's transaction. Zero postings are dropped; an entry whose
/// `reference` is already posted is left as it is (returns false).
pub fn post(
    tx: &Connection,
    kind: &str,
    payment_id: Option<&str>,
    reference: &str,
    postings: &[Posting],
    now: u64,
) -> Result<bool, LedgerError> {
    let mut sums: BTreeMap<&str, i128> = BTreeMap::new();
    for p in postings {
        *sums.entry(&p.currency).or_default() += i128::from(p.amount);
    }
    if let Some((currency, sum)) = sums.into_iter().find(|(_, s)| *s != 0) {
        return Err(LedgerError::Unbalanced { reference: reference.into(), currency: currency.into(), sum });
    }
    let inserted: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO ledger_entries (kind, payment_id, reference, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (reference) DO NOTHING RETURNING id",
        )?
        .query_row(params![kind, payment_id, reference, now as i64], |r| r.get(0))
        .optional()?;
    let Some(entry) = inserted else { return Ok(false) };
    let mut insert =
        tx.prepare_cached("INSERT INTO ledger_postings (entry_id, account, currency, amount) VALUES (?1, ?2, ?3, ?4)")?;
    for p in postings.iter().filter(|p| p.amount != 0) {
        insert.execute(params![entry, p.account, p.currency, p.amount])?;
    }
    Ok(true)
}

/// One account's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// Account.
    pub account: String,
    /// Currency.
    pub currency: String,
    /// Sum of its postings.
    pub balance: i64,
}

impl Store {
    /// Every account's balance, by currency then account.
    pub fn ledger_balances(&self) -> Result<Vec<Balance>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT account, currency, SUM(amount) FROM ledger_postings GROUP BY currency, account ORDER BY currency, account",
        )?;
        let rows =
            stmt.query_map([], |r| Ok(Balance { account: r.get(0)?, currency: r.get(1)?, balance: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The balance of one account, 0 when it has no postings.
    pub fn ledger_balance(&self, account: &str, currency: &str) -> Result<i64, StoreError> {
        let sum: Option<i64> = self.conn().query_row(
            "SELECT SUM(amount) FROM ledger_postings WHERE account = ?1 AND currency = ?2",
            params![account, currency],
            |r| r.get(0),
        )?;
        Ok(sum.unwrap_or(0))
    }

    /// References of entries whose postings do not sum to zero in some currency (always empty
    /// unless the file was edited by hand), and the total per currency (always zero).
    pub fn ledger_integrity(&self) -> Result<(Vec<String>, BTreeMap<String, i64>), StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT e.reference FROM ledger_postings p JOIN ledger_entries e ON e.id = p.entry_id
             GROUP BY p.entry_id, p.currency, e.reference HAVING SUM(p.amount) != 0",
        )?;
        let unbalanced = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        let mut stmt = conn.prepare("SELECT currency, SUM(amount) FROM ledger_postings GROUP BY currency")?;
        let totals = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok((unbalanced, totals))
    }

    /// Posts an entry in its own transaction (imports of outside movements).
    pub fn ledger_post(
        &self,
        kind: &str,
        reference: &str,
        postings: &[Posting],
        now: u64,
    ) -> Result<bool, LedgerError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        let posted = post(&tx, kind, None, reference, postings, now)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(posted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_balance_per_currency_and_post_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let deposit = [Posting::btc("treasury:onchain", 5_000), Posting::btc("external:onchain", -5_000)];
        assert!(store.ledger_post("external", "wallet:a", &deposit, 1).unwrap());
        assert!(!store.ledger_post("external", "wallet:a", &deposit, 2).unwrap(), "same reference: not again");
        let lopsided = [Posting::btc("treasury:onchain", 5_000), Posting::btc("external:onchain", -4_999)];
        let err = store.ledger_post("external", "wallet:b", &lopsided, 3).unwrap_err();
        assert!(matches!(err, LedgerError::Unbalanced { sum: 1, .. }), "{err}");
        // Two currencies, each balanced on its own; a fiat leg cannot balance a bitcoin one.
        let fx = [
            Posting::btc("in_flight:onchain", -700),
            Posting::btc("payouts:onchain", 700),
            Posting::in_currency("payouts:EUR", "EUR", 50),
            Posting::in_currency("fx:EUR", "EUR", -50),
        ];
        assert!(store.ledger_post("settle", "pay:x:settle", &fx, 4).unwrap());
        let mixed = [Posting::btc("treasury:onchain", 50), Posting::in_currency("fx:EUR", "EUR", -50)];
        assert!(store.ledger_post("x", "mixed", &mixed, 5).is_err());
        assert_eq!(store.ledger_balance("treasury:onchain", BTC).unwrap(), 5_000);
        assert_eq!(store.ledger_balance("nothing", BTC).unwrap(), 0);
        let (unbalanced, totals) = store.ledger_integrity().unwrap();
        assert!(unbalanced.is_empty());
        assert_eq!(totals.values().copied().collect::<Vec<_>>(), [0, 0]);
    }
}
