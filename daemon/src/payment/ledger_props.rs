//! Property tests of the ledger's invariants under random sequences of its real posting
//! operations — outside deposits (the wallet import's entry), payouts accepted by the committer's
//! treasury guard and debited, sent, settled (fee within the reserve) or failed by the saga's
//! steps, transfers between the treasury and the node, splice-outs — on a real store: after every
//! operation each entry balances (per currency), the books sum to zero, no treasury account is
//! negative, and each rail's `in_flight` is exactly what its open payouts hold.

use std::sync::Arc;

use proptest::prelude::*;

use super::commit::Committer;
use super::record::apply;
use super::steps::{debit, fail, first_step, settle};
use super::{Change, NewPayment, Payment, Rail, State};
use crate::ledger::{Posting, BTC};
use crate::store::Store;

/// One operation, its amounts in sat.
#[derive(Debug, Clone)]
enum Op {
    Deposit(u64),
    Submit { lightning: bool, amount: u64, reserve: u64 },
    Send(usize),
    Settle(usize, u64),
    Fail(usize),
    ToNode(u64, u64),
    ToTreasury(u64),
    SpliceOut(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let sat = 1..50_000u64;
    prop_oneof![
        sat.clone().prop_map(Op::Deposit),
        (any::<bool>(), sat.clone(), 0..2_000u64).prop_map(|(lightning, amount, reserve)| Op::Submit {
            lightning,
            amount,
            reserve
        }),
        any::<usize>().prop_map(Op::Send),
        (any::<usize>(), any::<u64>()).prop_map(|(i, f)| Op::Settle(i, f)),
        any::<usize>().prop_map(Op::Fail),
        (sat.clone(), 0..500u64).prop_map(|(a, f)| Op::ToNode(a, f)),
        sat.clone().prop_map(Op::ToTreasury),
        sat.prop_map(Op::SpliceOut),
    ]
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    committer: Arc<Committer>,
    runtime: tokio::runtime::Runtime,
    payments: Vec<Payment>,
    n: u32,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("s.sqlite")).unwrap());
        // No API keys or routes here: the payments stand alone.
        store.conn().as_sqlite().unwrap().pragma_update(None, "foreign_keys", false).unwrap();
        let committer = Arc::new(Committer::new(Arc::clone(&store)));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        World { _dir: dir, store, committer, runtime, payments: vec![], n: 0 }
    }

    fn balance(&self, account: &str) -> i64 {
        self.store.ledger_balance(account, BTC).unwrap()
    }

    /// What the rail's wallet or node still holds: the ledger's treasury plus what open payouts
    /// debited but have not handed to the rail (the committer's guard subtracts those again).
    fn spendable(&self, rail: Rail) -> u64 {
        let held: i64 = self.open(rail).filter(|p| p.state != State::Sent).map(held).sum();
        u64::try_from(self.balance(rail.treasury_account()) + held).unwrap()
    }

    fn open(&self, rail: Rail) -> impl Iterator<Item = &Payment> {
        self.payments.iter().filter(move |p| p.rail == rail && !p.state.is_final())
    }

    fn submit(&mut self, rail: Rail, amount: u64, reserve: u64) {
        self.n += 1;
        let mut payment = super::test_payment(self.n, rail, format!("dest{}", self.n));
        (payment.amount_msat, payment.fee_reserve_msat) = (amount * 1_000, reserve * 1_000);
        let need_msat = payment.amount_msat + payment.fee_reserve_msat;
        let new = NewPayment {
            first: first_step(&payment),
            spendable_msat: Some(self.spendable(rail)),
            need_msat,
            daily_limit: None,
            event: ("payment.submitted", "{}".into()),
            answer: b"{}".to_vec(),
            refund_of: None,
            payment,
        };
        let debited = new.first.next.clone();
        if self.runtime.block_on(self.committer.insert(new)).is_ok() {
            self.payments.extend(debited);
        }
    }

    /// Applies a saga step to open payment `i` (of those not final), as the saga does.
    fn step(&mut self, i: usize, make: impl Fn(&Payment) -> Change) {
        let open: Vec<usize> = (0..self.payments.len()).filter(|&k| !self.payments[k].state.is_final()).collect();
        let Some(&k) = open.get(i % open.len().max(1)) else { return };
        let change = make(&self.payments[k]);
        let mut conn = self.store.conn();
        let tx = conn.transaction().unwrap();
        assert!(apply(&tx, &self.payments[k], &change, 10).unwrap(), "the step applies once");
        tx.commit().unwrap();
        self.payments[k] = change.next.unwrap();
    }

    fn run(&mut self, op: Op) {
        let (onchain, lightning) = (self.balance("treasury:onchain"), self.balance("treasury:lightning"));
        let txid = format!("tx{}", self.n);
        self.n += 1;
        match op {
            Op::Deposit(sat) => {
                let postings = [
                    Posting::btc("treasury:onchain", sat as i64 * 1_000),
                    Posting::btc("external:onchain", -(sat as i64) * 1_000),
                ];
                assert!(self.store.ledger_post("external", &format!("wallet:{txid}"), &postings, 10).unwrap());
            }
            Op::Submit { lightning, amount, reserve } => {
                self.submit(if lightning { Rail::Lightning } else { Rail::Onchain }, amount, reserve)
            }
            Op::Send(i) => self.step(i, |p| Change {
                next: Some(Payment { state: State::Sending, ..p.clone() }),
                ..Change::default()
            }),
            // A rail charges at most the reserve held for its fee.
            Op::Settle(i, fee) => {
                self.step(i, |p| settle(p, fee % (p.fee_reserve_msat + 1), Some(format!("ref_{}", p.payment_id))))
            }
            Op::Fail(i) => self.step(i, |p| fail(p, "route_failed", "no route".into())),
            // Guarded by the ledger's own balance: what the rail holds less what payouts debited.
            Op::ToNode(sat, fee) if (sat + fee) as i64 * 1_000 <= onchain => {
                self.store.ln_transfer_to_node(&txid, sat, fee, 10).unwrap()
            }
            Op::ToTreasury(sat) if sat as i64 * 1_000 <= lightning => {
                self.store.ln_transfer_to_treasury(&txid, sat, 10).unwrap()
            }
            Op::SpliceOut(sat) if sat as i64 * 1_000 <= lightning => {
                self.store.ln_splice_out_booked(&txid, sat, 10).unwrap()
            }
            Op::ToNode(..) | Op::ToTreasury(_) | Op::SpliceOut(_) => {}
        }
    }

    fn check(&self) {
        let (unbalanced, totals) = self.store.ledger_integrity().unwrap();
        assert!(unbalanced.is_empty(), "unbalanced entries: {unbalanced:?}");
        assert!(totals.values().all(|t| *t == 0), "the books do not sum to zero: {totals:?}");
        for account in ["treasury:onchain", "treasury:lightning"] {
            assert!(self.balance(account) >= 0, "{account} is {}", self.balance(account));
        }
        for rail in [Rail::Onchain, Rail::Lightning] {
            let held: i64 = self.open(rail).map(held).sum();
            assert_eq!(self.balance(&format!("in_flight:{}", rail.as_str())), held, "{rail:?} in flight");
        }
    }
}

/// What a debited payout holds in flight, msat.
fn held(p: &Payment) -> i64 {
    debit(p).ledger[0].1[0].amount
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_entry_balances_and_no_treasury_goes_negative(ops in proptest::collection::vec(op(), 1..40)) {
        let mut world = World::new();
        for op in ops {
            world.run(op);
            world.check();
        }
    }
}
