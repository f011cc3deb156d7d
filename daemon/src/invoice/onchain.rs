//! On-chain payments to invoices: the treasury's receive outputs matched to the invoices'
//! addresses. A payment seen makes its invoice `processing`; it counts toward `paid` once its
//! confirmations meet the invoice's speed (high: 0 unless it signals RBF, medium: 1, low: 6);
//! it is booked once confirmed, whatever the speed, since the wallet's books count confirmed
//! coins; a reorg that takes it out of the chain takes both back ([`super::receipts`]). Unpaid
//! invoices past their expiry become `expired` first, so a payment that arrives after that is
//! credited as `paid_late`. Each tick reads only the invoices that can still receive or closed
//! within `[invoices] watch_days`, plus the invoice of any recent output to another address.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::store::sql::OptionalExtension;
use sendero_wallet::{Received, Treasury};
use tokio_util::sync::CancellationToken;

use super::receipts::OnChain;
use super::record::{apply, load};
use super::state::Next;
use super::{InvoiceError, Speed};
use crate::config::InvoicesConfig;
use crate::store::{Store, StoreError};

/// An output this recent (unconfirmed, or at most this many confirmations) to an address the
/// watched invoices do not have is looked up by its address: a late payment to an invoice that
/// closed before the watch window is still matched when it arrives.
pub const RECENT_CONFIRMATIONS: u32 = 6;

/// Confirmations a payment needs to count at `speed`.
pub fn required_confirmations(speed: Speed, signals_rbf: bool) -> u32 {
    match speed {
        Speed::High if signals_rbf => 1,
        Speed::High => 0,
        Speed::Medium => 1,
        Speed::Low => 6,
    }
}

/// Expires the unpaid invoices, then matches `received` (the treasury's receive outputs, at
/// wallet height `tip`) to the invoices and moves each on, then takes back what the outputs no
/// longer listed had booked or counted. Returns how many changes.
pub fn watch(
    (store, config): (&Store, &InvoicesConfig),
    received: &[Received],
    tip: u32,
    now: u64,
) -> Result<usize, InvoiceError> {
    let mut changed = store.invoices_expire(now)?;
    let since = now.saturating_sub(u64::from(config.watch_days) * 86_400);
    let addresses = store.invoice_addresses(since)?;
    let mut present = HashSet::new();
    for output in received {
        present.insert(output.outpoint.as_str());
        let confirmations = output.confirmation_height.map_or(0, |h| tip.saturating_sub(h) + 1);
        let watched = match addresses.get(&output.address) {
            Some(w) => Some(w.clone()),
            None if confirmations <= RECENT_CONFIRMATIONS => store.invoice_of_address(&output.address)?,
            None => None,
        };
        let Some((invoice_id, speed)) = watched else { continue };
        let seen = OnChain {
            outpoint: &output.outpoint,
            txid: &output.txid,
            amount_sat: output.amount_sat,
            confirmation_height: output.confirmation_height,
            signals_rbf: output.signals_rbf,
            counts: confirmations >= required_confirmations(speed, output.signals_rbf),
            present: true,
        };
        if store.invoice_receipt_seen(&invoice_id, &seen, config.tolerance_bps, now)? {
            changed += 1;
        }
    }
    for outpoint in store.invoice_receipts_live(since)? {
        if !present.contains(outpoint.as_str())
            && store.invoice_receipt_gone(&outpoint, &present, config.tolerance_bps, now)?
        {
            changed += 1;
        }
    }
    Ok(changed)
}

/// Watches every `interval` until `cancel`.
pub async fn run(
    (store, treasury, config): (Arc<Store>, Arc<Treasury>, InvoicesConfig),
    interval: Duration,
    cancel: CancellationToken,
) {
    loop {
        let (s, t, c) = (Arc::clone(&store), Arc::clone(&treasury), config.clone());
        let watched =
            tokio::task::spawn_blocking(move || watch((&s, &c), &t.received(), t.synced_height(), crate::unix_now()));
        match watched.await {
            Ok(Ok(n)) if n > 0 => tracing::debug!(changes = n, "invoices watched"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "watching invoices' on-chain payments failed"),
            Err(e) => tracing::error!(error = %e, "invoice watcher task failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

fn speed_of(inv_speed: &str) -> Speed {
    Speed::parse(inv_speed).unwrap_or(Speed::Low)
}

impl Store {
    /// The addresses the watcher reads each tick → (invoice id, speed): the invoices that can
    /// still receive (`new`, `processing`, `underpaid`) and those that expired or last changed
    /// since `since` (each through its own index: the cost follows these, not all invoices).
    pub fn invoice_addresses(&self, since: u64) -> Result<HashMap<String, (String, Speed)>, StoreError> {
        let conn = self.read();
        let mut stmt = conn.prepare_cached(
            "SELECT address, invoice_id, speed FROM invoices WHERE status IN ('new', 'processing', 'underpaid')
             UNION SELECT address, invoice_id, speed FROM invoices WHERE expires_at >= ?1
             UNION SELECT address, invoice_id, speed FROM invoices WHERE updated_at >= ?1",
        )?;
        let rows =
            stmt.query_map([since as i64], |r| Ok((r.get(0)?, (r.get(1)?, speed_of(&r.get::<_, String>(2)?)))))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The invoice `address` was made for, if any, with its speed.
    pub fn invoice_of_address(&self, address: &str) -> Result<Option<(String, Speed)>, StoreError> {
        let conn = self.read();
        let found = conn
            .prepare_cached("SELECT invoice_id, speed FROM invoices WHERE address = ?1")?
            .query_row([address], |r| Ok((r.get(0)?, speed_of(&r.get::<_, String>(1)?))))
            .optional()?;
        Ok(found)
    }

    /// What invoice receipts booked, sats by transaction (not the wallet's outside movements).
    pub fn invoice_booked_by_txid(&self) -> Result<HashMap<String, u64>, StoreError> {
        let conn = self.read();
        let mut stmt =
            conn.prepare_cached("SELECT txid, SUM(amount_sat) FROM invoice_receipts WHERE booked = 1 GROUP BY txid")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Expires the invoices still `new` or `underpaid` past their expiry (an underpaid one keeps
    /// its exception and what it received), each with its event; returns how many.
    fn invoices_expire(&self, now: u64) -> Result<usize, InvoiceError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT invoice_id FROM invoices WHERE status IN ('new', 'underpaid') AND expires_at <= ?1",
            )?;
            let rows = stmt.query_map([now as i64], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for id in &ids {
            if let Some(inv) = load(&tx, id)? {
                let exception = if inv.exception.as_deref() == Some("underpaid") { Some("underpaid") } else { None };
                let expired = Next {
                    status: "expired",
                    exception,
                    received_msat: inv.received_msat,
                    paid_late_msat: inv.paid_late_msat,
                    events: vec!["invoice.expired"],
                };
                apply(&tx, &inv, &expired, None, now)?;
                tracing::info!(invoice_id = %id, "invoice expired");
            }
        }
        tx.commit()?;
        Ok(ids.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::params;

    const DAY: u64 = 86_400;
    const NOW: u64 = 100 * DAY;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        (dir, store)
    }

    fn invoice(store: &Store, id: &str, status: &str, (expires_at, updated_at): (u64, u64)) {
        store
            .conn()
            .execute(
                "INSERT INTO invoices (invoice_id, api_key_id, status, currency, amount_minor, amount_sat, description,
                     speed, address, expires_at, created_at, updated_at)
                 VALUES (?1, 'k', ?2, 'SAT', 50000, 50000, '', 'medium', 'addr_' || ?1, ?3, 0, ?4)",
                params![id, status, expires_at as i64, updated_at as i64],
            )
            .unwrap();
    }

    fn output(id: &str, confirmation_height: Option<u32>) -> Received {
        Received {
            outpoint: format!("tx_{id}:0"),
            txid: format!("tx_{id}"),
            address: format!("addr_{id}"),
            amount_sat: 50_000,
            confirmation_height,
            signals_rbf: false,
        }
    }

    fn state(store: &Store, id: &str) -> (String, u64, u64, i64) {
        let inv = store.invoice(id).unwrap().unwrap();
        (inv.status, inv.received_msat, inv.paid_late_msat, store.ledger_balance("receivable:k", "BTC").unwrap())
    }

    fn events(store: &Store, event_type: &str) -> i64 {
        let conn = store.read();
        conn.query_row("SELECT COUNT(*) FROM outbox WHERE event_type = ?1", [event_type], |r| r.get(0)).unwrap()
    }

    #[test]
    fn confirmations_follow_the_speed_policy() {
        assert_eq!(required_confirmations(Speed::High, false), 0);
        assert_eq!(required_confirmations(Speed::High, true), 1, "an RBF-signalling payment may be replaced");
        assert_eq!(required_confirmations(Speed::Medium, false), 1);
        assert_eq!(required_confirmations(Speed::Low, true), 6);
    }

    #[test]
    fn the_watcher_reads_the_open_and_recently_closed_invoices_through_indexes() {
        let (_dir, store) = store();
        invoice(&store, "open", "new", (NOW + 3_600, NOW));
        invoice(&store, "short", "underpaid", (DAY, DAY));
        invoice(&store, "old_paid", "paid", (DAY, 2 * DAY));
        invoice(&store, "expired_lately", "expired", (NOW - 10 * DAY, NOW - 10 * DAY));
        invoice(&store, "paid_lately", "paid", (NOW - 40 * DAY, NOW - DAY));
        let mut watched: Vec<String> =
            store.invoice_addresses(NOW - 30 * DAY).unwrap().into_values().map(|v| v.0).collect();
        watched.sort();
        assert_eq!(watched, ["expired_lately", "open", "paid_lately", "short"]);
        assert_eq!(store.invoice_of_address("addr_old_paid").unwrap().map(|v| v.0).as_deref(), Some("old_paid"));
        let conn = store.read();
        let mut plan = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT address, invoice_id, speed FROM invoices
                 WHERE status IN ('new', 'processing', 'underpaid')
                 UNION SELECT address, invoice_id, speed FROM invoices WHERE expires_at >= 1
                 UNION SELECT address, invoice_id, speed FROM invoices WHERE updated_at >= 1",
            )
            .unwrap();
        let details: Vec<String> = plan.query_map([], |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        assert!(details.iter().all(|d| !d.starts_with("SCAN invoices")), "no full scan: {details:?}");
        let mut plan = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT outpoint FROM invoice_receipts WHERE seen_at >= 1 AND (booked = 1
                     OR counted = 1 OR invoice_id IN (SELECT invoice_id FROM invoices WHERE status = 'processing'))
                 UNION SELECT r.outpoint FROM invoices i JOIN invoice_receipts r ON r.invoice_id = i.invoice_id
                     WHERE i.status IN ('new', 'processing', 'underpaid')
                     AND (r.booked = 1 OR r.counted = 1 OR i.status = 'processing')",
            )
            .unwrap();
        let details: Vec<String> = plan.query_map([], |r| r.get(3)).unwrap().map(Result::unwrap).collect();
        assert!(details.iter().all(|d| !d.starts_with("SCAN")), "no full scan of the receipts: {details:?}");
    }

    #[test]
    fn a_reorged_payment_is_taken_back_and_booked_once_net_when_mined_again() {
        let (_dir, store) = store();
        let config = InvoicesConfig::default();
        invoice(&store, "r", "new", (NOW + 3_600, NOW));
        let watch_at = |outputs: &[Received], tip: u32| watch((&store, &config), outputs, tip, NOW).unwrap();
        watch_at(&[output("r", None)], 100);
        assert_eq!(state(&store, "r"), ("processing".into(), 0, 0, 0));
        watch_at(&[output("r", Some(101))], 101);
        assert_eq!(state(&store, "r"), ("paid".into(), 50_000_000, 0, -50_000_000));
        // invalidateblock: the transaction is back in the mempool.
        watch_at(&[output("r", None)], 100);
        assert_eq!(state(&store, "r"), ("processing".into(), 0, 0, 0), "taken back, booking reversed");
        watch_at(&[output("r", Some(101))], 101);
        watch_at(&[output("r", Some(101))], 102);
        assert_eq!(state(&store, "r"), ("paid".into(), 50_000_000, 0, -50_000_000), "one booking net");
        assert_eq!(store.ledger_balance("treasury:onchain", "BTC").unwrap(), 50_000_000);
        // Replaced out of the chain and the mempool: nothing counts, nothing is seen.
        watch_at(&[], 102);
        assert_eq!(state(&store, "r"), ("new".into(), 0, 0, 0));
        assert_eq!((events(&store, "invoice.paid"), events(&store, "invoice.reorged")), (2, 2));
        assert_eq!(store.ledger_balance("treasury:onchain", "BTC").unwrap(), 0);
        // Seen again, then replaced before it counted: back to new, and said so.
        watch_at(&[output("r", None)], 102);
        assert_eq!(state(&store, "r"), ("processing".into(), 0, 0, 0));
        let mut replacement = output("r", None);
        replacement.outpoint = "tx_r2:0".into();
        watch_at(&[replacement], 102);
        assert_eq!(state(&store, "r").0, "processing", "a replacement paying it keeps it processing");
        watch_at(&[], 102);
        assert_eq!(state(&store, "r").0, "new");
        assert_eq!((events(&store, "invoice.processing"), events(&store, "invoice.reorged")), (2, 3));
    }

    #[test]
    fn a_payment_after_expiry_is_credited_as_paid_late_and_a_second_one_overpays() {
        let (_dir, store) = store();
        let config = InvoicesConfig::default();
        invoice(&store, "late", "new", (NOW - 1, NOW - 3_600));
        invoice(&store, "twice", "new", (NOW + 3_600, NOW));
        let mut second = output("twice", Some(101));
        second.outpoint = "tx_twice:1".into();
        let outputs = [output("late", Some(101)), output("twice", Some(101)), second];
        watch((&store, &config), &outputs, 101, NOW).unwrap();
        let late = store.invoice("late").unwrap().unwrap();
        assert_eq!((late.status.as_str(), late.paid_late_msat), ("expired", 50_000_000));
        assert_eq!(super::super::view(&late)["status"], "paid_late");
        let twice = store.invoice("twice").unwrap().unwrap();
        assert_eq!((twice.status.as_str(), twice.exception.as_deref()), ("paid", Some("overpaid")));
        assert_eq!(super::super::view(&twice)["overpaid_msat"], 50_000_000);
        assert_eq!(store.ledger_balance("receivable:k", "BTC").unwrap(), -150_000_000, "every sat booked");
        let told =
            ["invoice.expired", "invoice.paid_late", "invoice.paid", "invoice.overpaid"].map(|e| events(&store, e));
        assert_eq!(told, [1, 1, 1, 1]);
    }

    #[test]
    fn a_lightning_payment_credited_after_expiry_is_paid_late_once() {
        // The node accepts an HTLC up to LDK's two hours of block-time slack past the BOLT11's
        // expiry, and a payment claimed before a crash is counted after the restart: both can
        // find the invoice already expired.
        let (_dir, store) = store();
        invoice(&store, "ln", "new", (NOW - 1, NOW - 3_600));
        store.conn().execute("UPDATE invoices SET payment_hash = 'h1' WHERE invoice_id = 'ln'", []).unwrap();
        watch((&store, &InvoicesConfig::default()), &[], 101, NOW).unwrap();
        assert_eq!(state(&store, "ln"), ("expired".into(), 0, 0, 0));
        for _ in 0..2 {
            crate::invoice::lightning_received((&store, 10), "h1", "pay1", 50_000_000, NOW).unwrap();
        }
        assert_eq!(state(&store, "ln"), ("expired".into(), 50_000_000, 50_000_000, -50_000_000), "credited once");
        assert_eq!(super::super::view(&store.invoice("ln").unwrap().unwrap())["status"], "paid_late");
        assert_eq!(events(&store, "invoice.paid_late"), 1);
    }
}
