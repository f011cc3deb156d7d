//! The rails money moves on, as objects that hold what they need: [`onchain::Onchain`] (the
//! treasury wallet, bitcoind, the one spend lock and the wallet's fee policy).

pub mod onchain;
