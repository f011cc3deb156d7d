//! Liquidity: the treasury policy in force (from `[treasury]`, changed at run time by an audited
//! `treasury.policy.set`), what each rail holds against its reserve, and the rebalancer that keeps
//! channels inside their band by splicing to and from the on-chain treasury. The decisions are
//! the pure [`crate::rebalance`] module's; this one feeds them and carries them out.

pub mod guard;
pub mod rebalancer;
pub mod splices;
