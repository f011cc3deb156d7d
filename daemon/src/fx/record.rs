//! FX records beside their code: fills (from `/v1/fx/execute`, and payout quotes filled when
//! their payment settles, linked to it), each execute fill booked in the ledger with both legs,
//! the `fx.report` figures (fills, spread, requotes and what they cost, expired quotes) and the
//! `fx.register` (quote ↔ fill ↔ payment ↔ ledger entry, the seed's section 8).

use crate::store::sql::{params, Connection};
use serde::Serialize;

use crate::ledger::{self, LedgerError, Posting};
use crate::store::{Store, StoreError};

/// A fill as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FillRow {
    /// `fx_…`.
    pub fx_entry_id: String,
    /// The quote filled.
    pub quote_id: String,
    /// Who.
    pub api_key_id: String,
    /// `BASE/QUOTE`.
    pub pair: String,
    /// `buy` / `sell`.
    pub side: &'static str,
    /// Locked rate applied.
    pub rate: String,
    /// Mid-rate at fill.
    pub mid_at_fill: String,
    /// BASE minor units.
    pub amount_minor: u64,
    /// QUOTE minor units.
    pub quote_amount_minor: u64,
    /// The bitcoin leg.
    pub amount_sat: u64,
    /// Spread earned against the mid at fill, in QUOTE minor units (negative if the market moved
    /// in the client's favour within the drift).
    pub spread_minor: i64,
}

/// One line of `fx.report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FxReportRow {
    /// `BASE/QUOTE`.
    pub pair: String,
    /// Fills.
    pub fills: u64,
    /// Sats converted.
    pub filled_sat: u64,
    /// Spread earned, QUOTE minor units.
    pub spread_minor: i64,
    /// Quotes issued as requotes.
    pub requotes: u64,
    /// Quotes that expired unfilled (and unused by a payout).
    pub expired: u64,
    /// Fills of payout quotes (a fiat-priced payout that settled).
    pub payout_fills: u64,
    /// What requotes cost the gateway against the quotes they replaced, QUOTE minor units:
    /// what filling the old quote at the market of the requote would have given away.
    pub requote_loss_minor: i64,
}

/// One row of `fx.register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisterRow {
    /// The quote.
    pub quote_id: String,
    /// `BASE/QUOTE`.
    pub pair: String,
    /// `buy` / `sell`.
    pub side: String,
    /// `api` or `requote` (then `requote_of` names the quote it replaced).
    pub origin: String,
    /// The quote a requote replaced.
    pub requote_of: Option<String>,
    /// The fill, once filled.
    pub fx_entry_id: Option<String>,
    /// The payout that used the quote (its latest attempt).
    pub payment_id: Option<String>,
    /// That payout's state.
    pub payment_state: Option<String>,
    /// The ledger entry that books the fill (`fx:<fx_entry_id>`, or the payout's settlement).
    pub ledger_reference: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
}

/// The ledger postings of an execute fill, both legs: the gateway gives BASE and takes QUOTE on
/// a buy, the reverse on a sell (`fx:<CUR>` is the gateway's position, `fx_clients:<CUR>` the
/// clients' side); bitcoin in msat.
pub fn fill_postings(fill: &FillRow) -> Vec<Posting> {
    let Some((base, quote)) = fill.pair.split_once('/') else { return vec![] };
    let units = |cur: &str, minor: u64| -> i64 {
        let v = if cur == ledger::BTC { u128::from(minor) * 1_000 } else { u128::from(minor) };
        i64::try_from(v).unwrap_or(i64::MAX)
    };
    let sign = if fill.side == "sell" { -1 } else { 1 };
    let (b, q) = (units(base, fill.amount_minor) * sign, units(quote, fill.quote_amount_minor) * sign);
    vec![
        Posting::in_currency(format!("fx:{base}"), base, -b),
        Posting::in_currency(format!("fx_clients:{base}"), base, b),
        Posting::in_currency(format!("fx:{quote}"), quote, q),
        Posting::in_currency(format!("fx_clients:{quote}"), quote, -q),
    ]
}

/// Inserts a fill inside the caller's transaction (a payout's: `payment_id` links it).
pub fn insert_fill(
    tx: &Connection,
    fill: &FillRow,
    payment_id: Option<&str>,
    now: u64,
) -> crate::store::sql::Result<()> {
    tx.prepare_cached(
        "INSERT INTO fx_fills (fx_entry_id, quote_id, api_key_id, pair, side, rate, mid_at_fill, amount_minor,
                               quote_amount_minor, amount_sat, spread_minor, created_at, payment_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        fill.fx_entry_id,
        fill.quote_id,
        fill.api_key_id,
        fill.pair,
        fill.side,
        fill.rate,
        fill.mid_at_fill,
        fill.amount_minor as i64,
        fill.quote_amount_minor as i64,
        fill.amount_sat as i64,
        fill.spread_minor,
        now as i64,
        payment_id
    ])?;
    Ok(())
}

impl Store {
    /// Records an execute fill, its ledger entry (`fx:<fx_entry_id>`, both legs) and the
    /// request's response in one transaction: all or nothing. A quote already filled is
    /// [`FillError::AlreadyFilled`].
    pub fn record_fill(
        &self,
        fill: &FillRow,
        idem: (&str, &str),
        status: u16,
        body: &[u8],
        now: u64,
    ) -> Result<(), FillError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(StoreError::from)?;
        match insert_fill(&tx, fill, None, now) {
            Err(e) if e.is_constraint_violation() => return Err(FillError::AlreadyFilled),
            other => other.map_err(StoreError::from)?,
        }
        let reference = format!("fx:{}", fill.fx_entry_id);
        ledger::post(&tx, "fx_fill", None, &reference, &fill_postings(fill), now)?;
        self.idempotency_answer(&tx, idem, status, body, now)?;
        tx.commit().map_err(StoreError::from)?;
        self.idempotency_release(idem.0, idem.1);
        Ok(())
    }

    /// Whether the quote has been filled.
    pub fn quote_filled(&self, quote_id: &str) -> Result<bool, StoreError> {
        let n: i64 =
            self.conn().query_row("SELECT COUNT(*) FROM fx_fills WHERE quote_id = ?1", [quote_id], |r| r.get(0))?;
        Ok(n > 0)
    }

    /// Records that quote `fresh` replaced `old`, and what the requote saved the gateway.
    pub fn record_requote(&self, fresh: &str, old: &str, loss_minor: i64) -> Result<(), StoreError> {
        self.flush_deferred()?;
        self.conn().execute(
            "UPDATE fx_quotes SET requote_of = ?2, requote_loss_minor = ?3 WHERE quote_id = ?1",
            params![fresh, old, loss_minor],
        )?;
        Ok(())
    }

    /// Fills, spread, requotes and expired quotes per pair between `from` and `to` (unix seconds).
    pub fn fx_report(&self, from: u64, to: u64) -> Result<Vec<FxReportRow>, StoreError> {
        self.flush_deferred()?;
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT q.pair,
                    COUNT(f.fx_entry_id),
                    COALESCE(SUM(f.amount_sat), 0),
                    COALESCE(SUM(f.spread_minor), 0),
                    SUM(CASE WHEN q.origin = 'requote' THEN 1 ELSE 0 END),
                    SUM(CASE WHEN f.fx_entry_id IS NULL AND q.expires_at < ?3 AND NOT EXISTS
                          (SELECT 1 FROM payments p WHERE p.fx_quote_id = q.quote_id AND p.state != 'failed')
                        THEN 1 ELSE 0 END),
                    COUNT(f.payment_id),
                    COALESCE(SUM(q.requote_loss_minor), 0)
             FROM fx_quotes q LEFT JOIN fx_fills f ON f.quote_id = q.quote_id
             WHERE q.created_at >= ?1 AND q.created_at < ?2
             GROUP BY q.pair ORDER BY q.pair",
        )?;
        let rows = stmt.query_map(params![from as i64, to as i64, crate::unix_now() as i64], |r| {
            Ok(FxReportRow {
                pair: r.get(0)?,
                fills: r.get::<_, i64>(1)? as u64,
                filled_sat: r.get::<_, i64>(2)? as u64,
                spread_minor: r.get(3)?,
                requotes: r.get::<_, i64>(4)? as u64,
                expired: r.get::<_, i64>(5)? as u64,
                payout_fills: r.get::<_, i64>(6)? as u64,
                requote_loss_minor: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `fx.register`: every quote between `from` and `to` with its fill, payout and ledger entry.
    pub fn fx_register(&self, from: u64, to: u64) -> Result<Vec<RegisterRow>, StoreError> {
        self.flush_deferred()?;
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT q.quote_id, q.pair, q.side, q.origin, q.requote_of, f.fx_entry_id,
                    COALESCE(f.payment_id, (SELECT p.payment_id FROM payments p WHERE p.fx_quote_id = q.quote_id
                                            ORDER BY p.created_at DESC LIMIT 1)),
                    q.created_at
             FROM fx_quotes q LEFT JOIN fx_fills f ON f.quote_id = q.quote_id
             WHERE q.created_at >= ?1 AND q.created_at < ?2 ORDER BY q.created_at, q.quote_id",
        )?;
        let rows = stmt.query_map(params![from as i64, to as i64], |r| {
            Ok(RegisterRow {
                quote_id: r.get(0)?,
                pair: r.get(1)?,
                side: r.get(2)?,
                origin: r.get(3)?,
                requote_of: r.get(4)?,
                fx_entry_id: r.get(5)?,
                payment_id: r.get(6)?,
                payment_state: None,
                ledger_reference: None,
                created_at: r.get::<_, i64>(7)? as u64,
            })
        })?;
        let mut out: Vec<RegisterRow> = rows.collect::<Result<_, _>>()?;
        let mut state = conn.prepare_cached("SELECT state FROM payments WHERE payment_id = ?1")?;
        for row in &mut out {
            if let Some(pid) = &row.payment_id {
                row.payment_state = state.query_row([pid], |r| r.get(0)).ok();
            }
            row.ledger_reference = match (&row.fx_entry_id, &row.payment_id) {
                (Some(_), Some(pid)) => Some(format!("pay:{pid}:settle")),
                (Some(fx), None) => Some(format!("fx:{fx}")),
                _ => None,
            };
        }
        Ok(out)
    }
}

/// Why a fill was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// The quote has a fill already.
    #[error("the quote is already filled")]
    AlreadyFilled,
    /// The ledger refused the entry.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
