//! Quotes as persisted: written behind (buffered, flushed in batches by the daemon's quote
//! writer and before any read of them), read back when a quote is executed or prices a payout.

use crate::store::sql::OptionalExtension;

use crate::store::sql::Value;
use crate::store::{DeferredRow, Store, StoreError};

/// A quote as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRow {
    /// `q_…`.
    pub quote_id: String,
    /// The key that asked.
    pub api_key_id: String,
    /// `BASE/QUOTE`.
    pub pair: String,
    /// `buy` / `sell`.
    pub side: &'static str,
    /// Marked-up rate at full precision.
    pub rate: String,
    /// Markup.
    pub markup_bps: u32,
    /// BASE minor units.
    pub amount_minor: u64,
    /// QUOTE minor units.
    pub quote_amount_minor: u64,
    /// The bitcoin leg.
    pub amount_sat: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// `api` or `requote`.
    pub origin: &'static str,
}

impl Store {
    /// Buffers a quote; it reaches the database at the next [`Store::flush_deferred`] (a quote
    /// moves no money: a crash may lose the last few milliseconds of quotes, never a fill).
    pub fn record_quote(&self, q: QuoteRow, now: u64) {
        self.defer(quote_row(&q, now));
    }

    /// The quote `quote_id`, if any.
    pub fn quote(&self, quote_id: &str) -> Result<Option<QuoteRow>, StoreError> {
        self.flush_deferred()?;
        // Flushed and committed: the read-only connection sees it.
        let conn = self.read();
        let row = conn
            .prepare_cached(
                "SELECT quote_id, api_key_id, pair, side, rate, markup_bps, amount_minor, quote_amount_minor,
                        amount_sat, expires_at, origin FROM fx_quotes WHERE quote_id = ?1",
            )?
            .query_row([quote_id], |r| {
                let side: String = r.get(3)?;
                let origin: String = r.get(10)?;
                Ok(QuoteRow {
                    quote_id: r.get(0)?,
                    api_key_id: r.get(1)?,
                    pair: r.get(2)?,
                    side: if side == "sell" { "sell" } else { "buy" },
                    rate: r.get(4)?,
                    markup_bps: r.get(5)?,
                    amount_minor: r.get::<_, i64>(6)? as u64,
                    quote_amount_minor: r.get::<_, i64>(7)? as u64,
                    amount_sat: r.get::<_, i64>(8)? as u64,
                    expires_at: r.get::<_, i64>(9)? as u64,
                    origin: if origin == "requote" { "requote" } else { "api" },
                })
            })
            .optional()?;
        Ok(row)
    }
}

/// The quote's row, written behind.
fn quote_row(q: &QuoteRow, now: u64) -> DeferredRow {
    let (text, int) = (|s: &str| Value::Text(s.to_owned()), |n: u64| Value::Integer(n as i64));
    DeferredRow {
        sql: "INSERT INTO fx_quotes (quote_id, api_key_id, pair, side, rate, markup_bps, amount_minor,
                                     quote_amount_minor, amount_sat, expires_at, created_at, origin)
              VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT DO NOTHING",
        values: vec![
            text(&q.quote_id),
            text(&q.api_key_id),
            text(&q.pair),
            text(q.side),
            text(&q.rate),
            int(u64::from(q.markup_bps)),
            int(q.amount_minor),
            int(q.quote_amount_minor),
            int(q.amount_sat),
            int(q.expires_at),
            int(now),
            text(q.origin),
        ],
    }
}
