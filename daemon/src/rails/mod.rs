//! The rails money moves on, as objects that hold what they need: [`onchain::Onchain`] (the
//! treasury wallet, bitcoind, the one spend lock and the wallet's fee policy) and
//! [`lightning::LnRail`] (the embedded node); [`funding`] is the one place that uses both;
//! [`fees`] holds the feerates an operator may steer off mainnet.

pub mod fees;
pub mod funding;
pub mod lightning;
pub mod onchain;
