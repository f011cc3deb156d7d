//! Payouts: where they go (destinations), how a priced route is submitted (exactly once, with
//! the treasury guard), and the saga that carries each payment to its rail and to a final state.
//!
//! A payment's saga states, each persisted before the next step runs:
//! `submitted` (accepted, FX quote locked) → `debited` (ledger: rail → in flight) → `sending`
//! (the rail call may have happened; for on-chain the signed transaction is stored first) →
//! `sent` (the rail has it) → `settled` | `failed` (ledger: in flight → payouts and fees, or
//! credited back; the quote released). Every change writes an outbox event in the same
//! transaction.

pub mod batch_policy;
mod batch_tx;
pub mod batcher;
pub mod batches;
pub mod bumper;
pub mod commit;
pub mod consolidate;
pub mod costs;
pub mod cpfp;
pub mod fee_holds;
#[cfg(test)]
mod ledger_props;
pub mod manual_bump;
pub mod payout_bump;
pub mod reconcile;
pub(crate) mod record;
pub mod refund;
pub mod saga;
pub mod steps;
pub mod submit;

use std::sync::Arc;

use sendero_wallet::bitcoin::Network;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::config::Config;
use crate::liquidity::guard::Guard;
use crate::rails::lightning::LnRail;
use crate::rails::onchain::Onchain;
use crate::route::learn::SharedLearner;
use crate::store::Store;

pub use record::{Change, InsertError, NewPayment};

/// How many times a transaction just built and refused at its first broadcast, for coins already
/// spent, is built again from other coins: a single payout then fails `broadcast_rejected`, a
/// batch is left to the saga's retries.
const MAX_REBUILDS: usize = 3;

/// The payments: what submitting a payout and carrying it to its rail use — both rails, the
/// store, the learner the saga teaches — and the two wakers the saga and the webhook sender sleep on.
pub struct Payments {
    /// The checked configuration (`[routing]`: saga pace, confirmations, waits).
    pub config: Arc<Config>,
    /// The chain destinations must belong to.
    pub network: Network,
    /// Where payments, the ledger and the outbox are kept.
    pub store: Arc<Store>,
    /// The on-chain rail.
    pub onchain: Arc<Onchain>,
    /// The Lightning rail.
    pub lightning: Arc<LnRail>,
    /// Accepts payments in group commits.
    pub committer: Arc<commit::Committer>,
    /// What the rails have done so far (the saga records each outcome).
    pub learner: SharedLearner,
    /// Wakes the saga: a payment was submitted, or the node told a payment's outcome.
    pub wake: Arc<Notify>,
    /// Wakes the webhook sender: an outbox event was written.
    pub webhooks_wake: Arc<Notify>,
    /// Wakes the batcher: a payout was queued, or an operator asked for a batch.
    pub batch_wake: Arc<Notify>,
    /// The rails' reserves: a rail below its own takes no new payouts.
    pub guard: Arc<Guard>,
    /// The feerates the batcher has seen lately, for the recent low of its "cheap" test and
    /// yesterday's fall; each sample is stored too (`fee_samples`), and a restart resumes them.
    pub fee_history: std::sync::Mutex<crate::batch::FeeHistory>,
    /// What the bumper has said once in the log: the unconfirmed transactions it leaves to wait
    /// out high fees (over their priority's deadline cap, by txid), those it cannot bid again
    /// (`rebid:<txid>`) and those it leaves while a stored payout spends from them
    /// (`held:<txid>`); and the stored batches bitcoind refused after a restart
    /// (`refused:<txid>`, said by the saga).
    pub waiting_out: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Whether yesterday's fall was ahead at the last look (its changes are logged).
    pub fall_ahead: std::sync::atomic::AtomicBool,
    /// bitcoind's status as the chain follower last saw it: the on-chain rails' breaker.
    pub chain: tokio::sync::watch::Receiver<crate::follower::ChainStatus>,
    /// Single payouts this process signed and has not yet offered to bitcoind (by payment id):
    /// refused at their first broadcast they provably never left, and may be built again.
    pub unoffered: std::sync::Mutex<std::collections::HashMap<String, saga::Unoffered>>,
}

/// The rail a payment travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rail {
    /// A transaction from the treasury.
    Onchain,
    /// An output of the next batch: queued, and sent with other payouts in one transaction.
    OnchainBatch,
    /// A payment from the embedded node.
    Lightning,
    /// Our own invoice: settled inside the gateway.
    OnUs,
}

impl Rail {
    /// `onchain`, `onchain_batch`, `lightning`, `on_us`.
    pub fn parse(text: &str) -> Option<Rail> {
        match text {
            "onchain" => Some(Rail::Onchain),
            "onchain_batch" => Some(Rail::OnchainBatch),
            "lightning" => Some(Rail::Lightning),
            "on_us" => Some(Rail::OnUs),
            _ => None,
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rail::Onchain => "onchain",
            Rail::OnchainBatch => "onchain_batch",
            Rail::Lightning => "lightning",
            Rail::OnUs => "on_us",
        }
    }

    /// Whether it pays from the treasury wallet (`onchain`, `onchain_batch`).
    pub fn on_chain(self) -> bool {
        matches!(self, Rail::Onchain | Rail::OnchainBatch)
    }

    /// The ledger account the rail's money sits in before it leaves: both on-chain rails spend
    /// the one treasury wallet (`treasury:onchain`).
    pub fn treasury_account(self) -> &'static str {
        match self {
            Rail::Onchain | Rail::OnchainBatch => "treasury:onchain",
            Rail::Lightning => "treasury:lightning",
            Rail::OnUs => "receipts:on_us",
        }
    }
}

/// Where a payment's saga stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Accepted; the FX quote (if any) is locked to it.
    Submitted,
    /// The ledger moved the amount and the fee reserve from the rail to in-flight.
    Debited,
    /// The rail call may have happened (resumes look at the rail's own record first).
    Sending,
    /// The rail has it; waiting for the outcome.
    Sent,
    /// Final: the payee was paid.
    Settled,
    /// Final: nothing was paid; the ledger credited back what it debited.
    Failed,
}

impl State {
    /// The name as stored.
    pub fn parse(text: &str) -> Option<State> {
        Some(match text {
            "submitted" => State::Submitted,
            "debited" => State::Debited,
            "sending" => State::Sending,
            "sent" => State::Sent,
            "settled" => State::Settled,
            "failed" => State::Failed,
            _ => return None,
        })
    }

    /// The name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Submitted => "submitted",
            State::Debited => "debited",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Settled => "settled",
            State::Failed => "failed",
        }
    }

    /// What clients see: `SUBMITTED`, `PENDING`, `SETTLED`, `FAILED`.
    pub fn status(self) -> &'static str {
        match self {
            State::Submitted | State::Debited => "SUBMITTED",
            State::Sending | State::Sent => "PENDING",
            State::Settled => "SETTLED",
            State::Failed => "FAILED",
        }
    }

    /// The saga states behind a client status (`None` for an unknown one).
    pub fn for_status(status: &str) -> Option<&'static [State]> {
        Some(match status.to_ascii_uppercase().as_str() {
            "SUBMITTED" => &[State::Submitted, State::Debited],
            "PENDING" => &[State::Sending, State::Sent],
            "SETTLED" => &[State::Settled],
            "FAILED" => &[State::Failed],
            _ => return None,
        })
    }

    /// Settled or failed.
    pub fn is_final(self) -> bool {
        matches!(self, State::Settled | State::Failed)
    }
}

/// One payout and its saga.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// `pay_…`.
    pub payment_id: String,
    /// The key that submitted it.
    pub api_key_id: String,
    /// Its idempotency key.
    pub idem_key: String,
    /// The route it was priced by.
    pub route_id: String,
    /// The chosen rail.
    pub rail: Rail,
    /// What the rail pays: an address, or an invoice / offer.
    pub destination: String,
    /// What the payee receives, msat.
    pub amount_msat: u64,
    /// The request's currency.
    pub currency: String,
    /// The request's amount, minor units.
    pub amount_minor: u64,
    /// The FX quote locked by this payment.
    pub fx_quote_id: Option<String>,
    /// Fee the ledger holds back until the rail says what it charged, msat.
    pub fee_reserve_msat: u64,
    /// On-chain: the feerate its route quoted, sat/kvB.
    pub fee_rate_sat_kvb: Option<u64>,
    /// Saga state.
    pub state: State,
    /// The rail's id: txid, or the node's payment id (the payment hash for BOLT11).
    pub rail_ref: Option<String>,
    /// On-chain: the signed transaction, kept before it is broadcast.
    pub raw_tx: Option<Vec<u8>>,
    /// What the rail charged, msat.
    pub fee_paid_msat: Option<u64>,
    /// Why it failed (stable code).
    pub failure_code: Option<String>,
    /// Why it failed (human).
    pub failure_message: Option<String>,
    /// Retries of a step that failed for a passing reason.
    pub attempts: u32,
    /// Unix seconds before which the saga does not look at it again.
    pub next_attempt_at: u64,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
    /// When it became final.
    pub final_at: Option<u64>,
}

impl Payment {
    /// The payment as clients see it (API responses and webhook payloads).
    pub fn view(&self) -> Value {
        let mut v = json!({
            "payment_id": self.payment_id,
            "status": self.state.status(),
            "state": self.state.as_str(),
            "rail": self.rail.as_str(),
            "route_id": self.route_id,
            "destination": self.destination,
            "amount": {"minor_units": self.amount_minor, "currency": self.currency},
            "amount_msat": self.amount_msat,
            "amount_sat": self.amount_msat.div_ceil(1_000),
            "fx_quote_id": self.fx_quote_id,
            "fee_paid_msat": self.fee_paid_msat,
            "fee_paid_sat": self.fee_paid_msat.map(|f| f.div_ceil(1_000)),
            "created_at": crate::rfc3339(self.created_at),
            "updated_at": crate::rfc3339(self.updated_at),
            "final_at": self.final_at.map(crate::rfc3339),
        });
        match self.rail {
            Rail::Onchain => {
                v["txid"] = json!(self.rail_ref);
                v["fee_rate_sat_vb"] = json!(self.fee_rate_sat_kvb.map(|r| r.div_ceil(1_000)));
                v["fee_rate_sat_kvb"] = json!(self.fee_rate_sat_kvb);
            }
            // `txid:vout`: the payout's own output of the batch's transaction.
            Rail::OnchainBatch => {
                let (txid, vout) = self.rail_ref.as_deref().and_then(|r| r.split_once(':')).unzip();
                v["txid"] = json!(txid);
                v["vout"] = json!(vout.and_then(|v| v.parse::<u32>().ok()));
            }
            // A BOLT11 payment and a keysend are known by their payment hash; a BOLT12 one by the
            // node's id.
            Rail::Lightning | Rail::OnUs if sendero_lightning::is_offer(&self.destination) => {
                v["ln_payment_id"] = json!(self.rail_ref)
            }
            Rail::Lightning | Rail::OnUs => v["payment_hash"] = json!(self.rail_ref),
        }
        if let Some(code) = &self.failure_code {
            v["failure"] = json!({"code": code, "message": self.failure_message});
        }
        v
    }
}

/// A transaction for unit tests spending output `vout` of the txid made of bytes `n`, and paying
/// nothing.
#[cfg(test)]
pub(crate) fn test_spend(n: u8, vout: u32) -> sendero_wallet::bitcoin::Transaction {
    use sendero_wallet::bitcoin::hashes::Hash;
    use sendero_wallet::bitcoin::{absolute, transaction, OutPoint, Transaction, TxIn, Txid};
    let input = TxIn { previous_output: OutPoint::new(Txid::from_byte_array([n; 32]), vout), ..TxIn::default() };
    Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![input],
        output: vec![],
    }
}

/// A payment for unit tests: `pay_<n>` of key `key`, 1,000 sat on `rail` to `destination`,
/// `submitted`, created at 1; tests change what they need.
#[cfg(test)]
pub(crate) fn test_payment(n: u32, rail: Rail, destination: String) -> Payment {
    Payment {
        payment_id: format!("pay_{n}"),
        api_key_id: "key".into(),
        idem_key: format!("idem_{n}"),
        route_id: format!("rt_{n}"),
        rail,
        destination,
        amount_msat: 1_000_000,
        currency: "SAT".into(),
        amount_minor: 1_000,
        fx_quote_id: None,
        fee_reserve_msat: 0,
        fee_rate_sat_kvb: None,
        state: State::Submitted,
        rail_ref: None,
        raw_tx: None,
        fee_paid_msat: None,
        failure_code: None,
        failure_message: None,
        attempts: 0,
        next_attempt_at: 0,
        created_at: 1,
        updated_at: 1,
        final_at: None,
    }
}
