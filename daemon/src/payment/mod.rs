//! Payouts: where they go (destinations); submission, sagas and the ledger build on this.

pub mod destination;
