//! The reconciliation report (`recon.report`): every movement of a period, the ledger's side
//! against the rail's own record — the treasury wallet's transactions (BDK) on chain, the node's
//! payments, on-chain transactions and channel movements on Lightning — with the payouts and
//! invoices each one carries. Each item is classed `match` (both sides agree), `timing` (one side
//! has not caught up yet: in the mempool, a payout not final, a movement not settled, or the other
//! side outside the window), `missing` (on one side only) or `amount_mismatch`; totals per day and
//! rail in sats, with the fiat values of fiat-priced payouts and invoices (minor units).
//!
//! On chain the unit is the transaction: a batch is one item carrying all its payouts, a fee
//! bump's replacement is the payout's transaction, a child paying for a stuck one (`cpfp:`) and a
//! consolidation are items of their own, a transfer to or from the node is an item on both rails.
//! On Lightning the unit is the node's payment, the transfer, or the channel movement.

use std::collections::{BTreeMap, HashMap};

use sendero_lightning::{OnchainTx, Payment as NodePayment};
use sendero_wallet::TxRecord;
use serde::Serialize;
use serde_json::Value;

use crate::ledger::LedgerError;
use crate::payment::{Payment, Payments};
use crate::rails::lightning::SentByEvent;
use record::{Entry, InvoiceRow, MovementRow};

pub mod export;
mod invoices;
mod lightning;
mod onchain;
pub mod record;

pub use invoices::InvoiceCheck;

/// How the two sides of an item compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Both sides agree.
    Match,
    /// One side has not caught up yet.
    Timing,
    /// Only one side has it.
    Missing,
    /// Both have it, with other amounts.
    AmountMismatch,
}

/// One reconciled movement. Amounts are signed from the gateway's side: in is positive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// UTC day of `at`, `YYYY-MM-DD`.
    pub date: String,
    /// When it happened (its first ledger entry, else the rail's record), unix seconds.
    pub at: u64,
    /// `onchain` or `lightning`.
    pub rail: &'static str,
    /// What moved (`payout`, `batch`, `deposit`, `invoice_receipt`, `transfer_to_node`, …).
    pub kind: &'static str,
    /// How the sides compare.
    pub class: Class,
    /// The rail's reference: a txid, a node payment id, or a channel movement id.
    pub reference: String,
    /// The Lightning payment hash, when there is one.
    pub payment_hash: Option<String>,
    /// Payouts it carries.
    pub payment_ids: Vec<String>,
    /// Invoices it paid.
    pub invoice_ids: Vec<String>,
    /// The ledger entries that book it.
    pub ledger_refs: Vec<String>,
    /// What the ledger booked on the rail's treasury account, msat (absent: nothing).
    pub ledger_msat: Option<i64>,
    /// What the wallet or the node shows, msat (absent: no record).
    pub rail_msat: Option<i64>,
    /// `ledger_msat` in whole sats (rounded down).
    pub ledger_sat: Option<i64>,
    /// `rail_msat` in whole sats (rounded down).
    pub rail_sat: Option<i64>,
    /// Its fiat value, minor units, when its payouts or invoices were priced in fiat.
    pub fiat_minor: Option<i64>,
    /// That value's currency.
    pub fiat_currency: Option<String>,
    /// Why it is not a match, or how its rail side was read.
    pub note: Option<String>,
}

/// One day's items of one rail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Total {
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
    /// `onchain` or `lightning`.
    pub rail: String,
    /// How many items.
    pub items: u64,
    /// How many of each class.
    pub r#match: u64,
    /// See [`Class::Timing`].
    pub timing: u64,
    /// See [`Class::Missing`].
    pub missing: u64,
    /// See [`Class::AmountMismatch`].
    pub amount_mismatch: u64,
    /// Sum of the items' `ledger_sat`.
    pub ledger_sat: i64,
    /// Sum of the items' `rail_sat`.
    pub rail_sat: i64,
    /// Sum of the items' fiat values, by currency.
    pub fiat_minor: BTreeMap<String, i64>,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Start of the window (unix seconds, inclusive).
    pub from: u64,
    /// End of the window (exclusive).
    pub to: u64,
    /// No item and no invoice `missing` or `amount_mismatch`.
    pub ok: bool,
    /// Items per class.
    pub summary: BTreeMap<Class, u64>,
    /// Every item, by time.
    pub items: Vec<Item>,
    /// Per day and rail.
    pub totals: Vec<Total>,
    /// Each invoice with a payment in the window: what it counted against what the ledger booked.
    pub invoices: Vec<InvoiceCheck>,
    /// Each rail's balance now, ledger against wallet and node (`ledger.verify`'s figures).
    pub balances: Value,
}

/// The period asked for.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Inclusive, unix seconds.
    pub from: u64,
    /// Exclusive.
    pub to: u64,
}

impl Window {
    fn contains(&self, t: u64) -> bool {
        (self.from..self.to).contains(&t)
    }
}

/// Everything both sides hold, read once.
pub(crate) struct Sources {
    entries: Vec<Entry>,
    payments: HashMap<String, Payment>,
    invoices: HashMap<String, InvoiceRow>,
    invoice_by_hash: HashMap<String, String>,
    invoice_by_outpoint: HashMap<String, String>,
    txs: Vec<TxRecord>,
    node: Option<(Vec<NodePayment>, Vec<OnchainTx>)>,
    movements: Vec<MovementRow>,
    sent_by_event: HashMap<String, SentByEvent>,
}

/// One side of an item as it is gathered, before it is classed.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    kind: Option<&'static str>,
    ledger_msat: i64,
    booked: bool,
    ledger_at: Option<u64>,
    refs: Vec<String>,
    payment_ids: Vec<String>,
    invoice_ids: Vec<String>,
    open_payouts: u32,
    fiat: BTreeMap<String, i64>,
}

impl Draft {
    /// Adds an entry's amount on the rail's account.
    fn add(&mut self, e: &Entry, msat: i64) {
        self.ledger_msat += msat;
        self.booked |= e.postings > 0;
        self.ledger_at = Some(self.ledger_at.map_or(e.created_at, |t| t.min(e.created_at)));
        self.refs.push(e.reference.clone());
    }

    /// Adds a payout (once), its fiat value going out.
    fn payout(&mut self, p: &Payment) {
        if self.payment_ids.contains(&p.payment_id) {
            return;
        }
        self.payment_ids.push(p.payment_id.clone());
        if !matches!(p.state, crate::payment::State::Settled | crate::payment::State::Failed) {
            self.open_payouts += 1;
        }
        if p.fx_quote_id.is_some() && p.state != crate::payment::State::Failed {
            *self.fiat.entry(p.currency.clone()).or_default() -= i64::try_from(p.amount_minor).unwrap_or(i64::MAX);
        }
    }

    /// Adds an invoice's receipt of `msat` (once per receipt), valued at its locked rate.
    fn invoice(&mut self, inv: &InvoiceRow, msat: u64) {
        if !self.invoice_ids.contains(&inv.invoice_id) {
            self.invoice_ids.push(inv.invoice_id.clone());
        }
        if !matches!(inv.currency.as_str(), "SAT" | "BTC") {
            let minor = crate::invoice::fiat_value(inv.amount_minor, inv.amount_sat, msat);
            *self.fiat.entry(inv.currency.clone()).or_default() += i64::try_from(minor).unwrap_or(i64::MAX);
        }
    }

    /// The item, classed, with the rail's side and time.
    fn finish(self, rail: &'static str, reference: String, class: (Class, Option<&str>), rail_side: Side) -> Item {
        let at = self.ledger_at.or(rail_side.at.map(RailTime::unix)).unwrap_or_default();
        let single = (self.fiat.len() == 1).then(|| self.fiat.into_iter().next()).flatten();
        let ledger_msat = (self.booked || !self.refs.is_empty()).then_some(self.ledger_msat);
        Item {
            date: day(at),
            at,
            rail,
            kind: self.kind.unwrap_or("unbooked"),
            class: class.0,
            reference,
            payment_hash: rail_side.payment_hash,
            payment_ids: self.payment_ids,
            invoice_ids: self.invoice_ids,
            ledger_refs: self.refs,
            ledger_msat,
            rail_msat: rail_side.msat,
            ledger_sat: ledger_msat.map(sat),
            rail_sat: rail_side.msat.map(sat),
            fiat_currency: single.as_ref().map(|(c, _)| c.clone()),
            fiat_minor: single.map(|(_, v)| v),
            note: class.1.map(str::to_owned),
        }
    }
}

/// The rail's side of an item.
#[derive(Debug, Default)]
pub(crate) struct Side {
    msat: Option<i64>,
    at: Option<RailTime>,
    payment_hash: Option<String>,
}

/// Whole sats, rounded down (an outgoing 1,500 msat is −2 sat, as the wallet pays it).
/// The outpoint (`txid:vout`) an invoice's on-chain booking names: `invoice:onchain:<outpoint>`,
/// a later booking `invoice:onchain:<outpoint>:<n>` (mined again after a reorg), or its reversal
/// `invoice:reorg:<outpoint>:<n>`.
pub(super) fn invoice_outpoint(reference: &str) -> Option<String> {
    let rest = reference.strip_prefix("invoice:onchain:").or_else(|| reference.strip_prefix("invoice:reorg:"))?;
    let mut parts = rest.splitn(3, ':');
    Some(format!("{}:{}", parts.next()?, parts.next()?))
}

fn sat(msat: i64) -> i64 {
    msat.div_euclid(1_000)
}

/// `YYYY-MM-DD` (UTC) of unix seconds.
fn day(unix: u64) -> String {
    chrono::DateTime::from_timestamp(i64::try_from(unix).unwrap_or(0), 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// How far a block's time may stray from the clock (consensus allows two hours ahead).
pub(crate) const BLOCK_TIME_SLACK_SECS: u64 = 7_200;

/// When the rail's side happened: a time this machine's clock took, or a block's time, which is
/// known only to [`BLOCK_TIME_SLACK_SECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RailTime {
    /// Taken by this machine's clock (the wallet first saw it, the node updated it).
    Clock(u64),
    /// A block's header time.
    Block(u64),
}

impl RailTime {
    fn unix(self) -> u64 {
        match self {
            RailTime::Clock(t) | RailTime::Block(t) => t,
        }
    }
}

/// A match whose rail side falls outside the window is `timing`: the other half is in the period
/// before or after.
fn windowed(
    class: (Class, Option<&'static str>),
    rail_at: Option<RailTime>,
    w: Window,
) -> (Class, Option<&'static str>) {
    let outside = match rail_at {
        Some(RailTime::Clock(t)) => !w.contains(t),
        Some(RailTime::Block(t)) => {
            t.saturating_add(BLOCK_TIME_SLACK_SECS) < w.from || t >= w.to.saturating_add(BLOCK_TIME_SLACK_SECS)
        }
        None => false,
    };
    match class.0 {
        Class::Match if outside => (Class::Timing, Some("the rail's side of it falls outside the window")),
        _ => class,
    }
}

/// `recon.report`: brings the ledger up to date with the rails' records (as `ledger.verify`
/// does), then reconciles every movement in `window`.
pub fn report(ctx: &Payments, window: Window) -> Result<Report, LedgerError> {
    let verify = crate::payment::reconcile::verify(ctx)?;
    let sources = gather(ctx)?;
    let mut items = onchain::items(&sources, window);
    items.extend(lightning::items(&sources, window));
    items.retain(|i| window.contains(i.at));
    items.sort_by(|a, b| (a.at, a.rail, &a.reference).cmp(&(b.at, b.rail, &b.reference)));
    let mut summary: BTreeMap<Class, u64> =
        [Class::Match, Class::Timing, Class::Missing, Class::AmountMismatch].into_iter().map(|c| (c, 0)).collect();
    for i in &items {
        *summary.entry(i.class).or_default() += 1;
    }
    let invoices = invoices::checks(&sources, window);
    let ok = summary[&Class::Missing] == 0
        && summary[&Class::AmountMismatch] == 0
        && invoices.iter().all(|i| matches!(i.class, Class::Match | Class::Timing));
    let balances = serde_json::json!({
        "onchain": rail_balance(&verify["onchain"], &["ok", "wallet_msat", "ledger_treasury_msat", "in_flight_msat",
            "unconfirmed_external_msat", "difference_msat"]),
        "lightning": rail_balance(&verify["lightning"], &["ok", "status", "ledger_treasury_msat", "node_msat",
            "difference_msat", "tolerance_msat"]),
    });
    Ok(Report { from: window.from, to: window.to, ok, summary, totals: totals(&items), items, invoices, balances })
}

fn rail_balance(v: &Value, keys: &[&str]) -> Value {
    keys.iter()
        .filter_map(|k| v.get(*k).map(|x| ((*k).to_owned(), x.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn gather(ctx: &Payments) -> Result<Sources, LedgerError> {
    let payments = ctx.store.payments(None, &[], None, usize::MAX >> 1)?;
    let (invoices, invoice_by_outpoint) = ctx.store.recon_invoices()?;
    let invoice_by_hash =
        invoices.values().filter_map(|i| i.payment_hash.clone().map(|h| (h, i.invoice_id.clone()))).collect();
    let node = ctx.lightning.node().ok().map(|n| (n.payments(), n.onchain_txs()));
    Ok(Sources {
        entries: ctx.store.recon_entries()?,
        payments: payments.into_iter().map(|p| (p.payment_id.clone(), p)).collect(),
        invoices,
        invoice_by_hash,
        invoice_by_outpoint,
        txs: ctx.onchain.treasury().transactions(),
        node,
        movements: ctx.store.recon_movements()?,
        sent_by_event: ctx.store.ln_sent_by_event()?,
    })
}

/// Per day and rail, in item order.
fn totals(items: &[Item]) -> Vec<Total> {
    let mut by: BTreeMap<(String, &str), Total> = BTreeMap::new();
    for i in items {
        let t = by.entry((i.date.clone(), i.rail)).or_insert_with(|| Total {
            date: i.date.clone(),
            rail: i.rail.to_owned(),
            ..Total::default()
        });
        t.items += 1;
        match i.class {
            Class::Match => t.r#match += 1,
            Class::Timing => t.timing += 1,
            Class::Missing => t.missing += 1,
            Class::AmountMismatch => t.amount_mismatch += 1,
        }
        t.ledger_sat += i.ledger_sat.unwrap_or(0);
        t.rail_sat += i.rail_sat.unwrap_or(0);
        if let (Some(c), Some(v)) = (&i.fiat_currency, i.fiat_minor) {
            *t.fiat_minor.entry(c.clone()).or_default() += v;
        }
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_booking_names_its_outpoint_whatever_its_number() {
        assert_eq!(invoice_outpoint("invoice:onchain:ab:1").as_deref(), Some("ab:1"));
        assert_eq!(invoice_outpoint("invoice:onchain:ab:1:2").as_deref(), Some("ab:1"));
        assert_eq!(invoice_outpoint("invoice:reorg:ab:0:1").as_deref(), Some("ab:0"));
        assert_eq!(invoice_outpoint("invoice:on_us:pay_1"), None);
        assert_eq!(invoice_outpoint("wallet:ab"), None);
    }

    #[test]
    fn sats_round_down_and_days_are_utc() {
        assert_eq!((sat(1_500), sat(-1_500), sat(-1_000), sat(0)), (1, -2, -1, 0));
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(1_796_342_399), "2026-12-03");
        let w = Window { from: 100, to: 200 };
        assert_eq!(windowed((Class::Match, None), Some(RailTime::Clock(250)), w).0, Class::Timing);
        assert_eq!(windowed((Class::Match, None), Some(RailTime::Clock(150)), w).0, Class::Match);
        assert_eq!(windowed((Class::Missing, None), Some(RailTime::Clock(250)), w).0, Class::Missing);
        // A block's time a little ahead of the clock is not outside; hours after the end is.
        assert_eq!(windowed((Class::Match, None), Some(RailTime::Block(250)), w).0, Class::Match);
        assert_eq!(windowed((Class::Match, None), Some(RailTime::Block(8_000)), w).0, Class::Timing);
    }
}
