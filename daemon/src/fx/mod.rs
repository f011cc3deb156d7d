//! FX: rates from sources into a hot in-memory cache, and quotes priced from it with markup and
//! expiry. The quote path never touches the network; without a fresh rate it refuses.

mod execute;
pub mod money;
mod quote;
pub mod quotes;
mod rates;
pub mod record;
pub mod sources;

pub use execute::{execute, payout_fill, ExecuteError, ExecuteRequest};
pub use quote::{mid_sats, quote, FxError, Quote, QuoteRequest};
pub use rates::{Rate, RateCache, SourceHealth};
